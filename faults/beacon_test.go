//go:build faults

package faults

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

// envMap is a child's environment being built.
type envMap map[string]string

func (m envMap) list() []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func (m envMap) clone() envMap {
	c := make(envMap, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// env is a beacon child's environment on dbURL: nothing of the caller's
// BEACON_* or OTEL_* settings, every port a free one on loopback.
func (s *suite) env(dbURL string) envMap {
	env := envMap{}
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v := os.Getenv(k); v != "" {
			env[k] = v
		}
	}
	for _, k := range []string{"BEACON_HTTP_ADDR", "BEACON_OPS_ADDR", "BEACON_DASHBOARD_ADDR"} {
		env[k] = freeAddr()
	}
	env["DATABASE_URL"] = dbURL
	env["BEACON_CHECK_ALLOW_CIDRS"] = "127.0.0.0/8"
	env["BEACON_LOG_LEVEL"] = "warn"
	env["BEACON_JWT_SECRET"] = s.secret
	env["BEACON_MIGRATE_ON_START"] = "false"
	return env
}

// freeAddr returns a loopback address nobody listens on now.
func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("no free port on loopback: %v", err))
	}
	defer ln.Close()
	return ln.Addr().String()
}

// beaconProc is a running beacon role and where to reach it.
type beaconProc struct {
	*proc
	role string
	env  envMap
	api  string // http://127.0.0.1:port of the API ("" for a worker)
	ops  string // http://127.0.0.1:port of the ops port
}

// startBeacon starts `beacon role` with env and waits until its ops port
// answers /readyz with 200. It is stopped (SIGTERM) when t ends, if still
// running, after its output is shown if t failed.
func (s *suite) startBeacon(t *testing.T, name, role string, env envMap) *beaconProc {
	t.Helper()
	b, err := s.spawnBeacon(name, role, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if out := strings.TrimSpace(b.out.Last(30)); t.Failed() && out != "" {
			t.Logf("%s output (tail):\n%s", b.name, indent(out))
		}
		if _, err := b.terminate(30 * time.Second); err != nil && !strings.Contains(err.Error(), "exited unexpectedly") {
			t.Logf("cleanup: %v", err)
		}
	})
	if err := waitReady(b, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	return b
}

// spawnBeacon starts the process without waiting for it.
func (s *suite) spawnBeacon(name, role string, env envMap) (*beaconProc, error) {
	p, err := startProc(name, s.beacon, []string{role}, env.list())
	if err != nil {
		return nil, err
	}
	b := &beaconProc{proc: p, role: role, env: env, ops: "http://" + env["BEACON_OPS_ADDR"]}
	if role != "worker" {
		b.api = "http://" + env["BEACON_HTTP_ADDR"]
	}
	return b, nil
}

// waitReady polls the ops port's /readyz until 200.
func waitReady(b *beaconProc, timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer hc.CloseIdleConnections()
	err := poll(timeout, 100*time.Millisecond, func() (bool, string) {
		status, body, err := getStatus(hc, b.ops+"/readyz")
		if err != nil {
			return false, err.Error()
		}
		return status == http.StatusOK, fmt.Sprintf("%d %s", status, body)
	}, b.proc)
	if err != nil {
		return fmt.Errorf("%s not ready at %s/readyz: %v", b.name, b.ops, err)
	}
	return nil
}

// getStatus GETs url and returns the status and the start of the body.
func getStatus(hc *http.Client, url string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}
