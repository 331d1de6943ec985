//go:build faults

package faults

import (
	"encoding/csv"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// haproxy is a haproxy child balancing over API replicas.
type haproxy struct {
	*proc
	front string // http://127.0.0.1:port clients use
	stats string // the stats page (CSV at ;csv)
	hc    *http.Client
}

// haproxyConfig balances round-robin over servers (name -> host:port),
// checking /readyz; a request whose connection fails or comes back empty
// is retried on another server (option redispatch 1: every retry may move).
const haproxyConfig = `global
    maxconn 1024

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check 2s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout

frontend api
    bind %s
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 200ms fastinter 100ms downinter 200ms fall 1 rise 2
%s
listen stats
    bind %s
    stats enable
    stats uri /stats
`

// startHAProxy writes a config for servers and starts haproxy in the
// foreground. Without haproxy the scenario fails: it cannot run here.
func startHAProxy(t *testing.T, dir string, servers map[string]string) *haproxy {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		for _, p := range []string{"/usr/sbin/haproxy", "/usr/local/sbin/haproxy"} {
			if fileExists(p) {
				bin, err = p, nil
				break
			}
		}
	}
	if err != nil {
		t.Fatal("haproxy is not installed, so this scenario cannot run here (Debian: apt-get install -y haproxy; .ci/run installs it)")
	}
	front, stats := freeAddr(), freeAddr()
	var lines strings.Builder
	for _, name := range slices.Sorted(maps.Keys(servers)) {
		fmt.Fprintf(&lines, "    server %s %s check\n", name, servers[name])
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, haproxyConfig, front, lines.String(), stats), 0o644); err != nil {
		t.Fatal(err)
	}
	check := exec.Command(bin, "-c", "-f", cfg)
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c -f %s: %v\n%s", cfg, err, indent(string(out)))
	}
	p, err := startProc("haproxy", bin, []string{"-db", "-f", cfg}, []string{"PATH=" + os.Getenv("PATH")})
	if err != nil {
		t.Fatal(err)
	}
	p.stopSignal = syscall.SIGUSR1 // soft stop: SIGTERM is haproxy's hard stop
	h := &haproxy{proc: p, front: "http://" + front, stats: "http://" + stats + "/stats;csv",
		hc: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}}
	t.Cleanup(func() {
		h.hc.CloseIdleConnections()
		if _, err := h.terminate(10 * time.Second); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	return h
}

// serverStates returns each backend server's status (UP, DOWN, ...).
func (h *haproxy) serverStates() (map[string]string, error) {
	resp, err := h.hc.Get(h.stats)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	r := csv.NewReader(resp.Body)
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil || len(recs) == 0 {
		return nil, fmt.Errorf("stats CSV: %v", err)
	}
	col := map[string]int{}
	for i, name := range recs[0] {
		col[strings.TrimPrefix(name, "# ")] = i
	}
	px, sv, st := col["pxname"], col["svname"], col["status"]
	out := map[string]string{}
	for _, rec := range recs[1:] {
		if len(rec) > st && rec[px] == "replicas" && rec[sv] != "BACKEND" {
			out[rec[sv]] = rec[st]
		}
	}
	return out, nil
}

// waitUp waits until haproxy sees every named server UP.
func (h *haproxy) waitUp(t *testing.T, names ...string) {
	t.Helper()
	waitFor(t, "haproxy to see "+strings.Join(names, ", ")+" UP", 30*time.Second, 50*time.Millisecond, func() (bool, string) {
		states, err := h.serverStates()
		if err != nil {
			return false, err.Error()
		}
		for _, n := range names {
			if states[n] != "UP" {
				return false, fmt.Sprint(states)
			}
		}
		return true, fmt.Sprint(states)
	}, h.proc)
}
