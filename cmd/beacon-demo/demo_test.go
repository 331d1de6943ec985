package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/harness"
	"github.com/beaconhq/beacon/internal/pgtest"
)

// setVariant rewrites the flags file with flag's defaultVariant changed, the
// way editors save: a new file renamed over the old one.
func setVariant(t *testing.T, path, flag, variant string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	flags := doc["flags"].(map[string]any)
	f, ok := flags[flag].(map[string]any)
	require.True(t, ok, "no flag %s", flag)
	f["defaultVariant"] = variant
	out, err := json.MarshalIndent(doc, "", "  ")
	require.NoError(t, err)
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, out, 0o644))
	require.NoError(t, os.Rename(tmp, path))
}

// copyFlags copies the shipped flags file into a temporary folder.
func copyFlags(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("flags/flags.json")
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "flags.json")
	require.NoError(t, os.WriteFile(path, raw, 0o644))
	return path
}

type answer struct {
	status  int
	elapsed time.Duration
	body    string
}

func get(t *testing.T, url string) answer {
	t.Helper()
	start := time.Now()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, time.Since(start), string(b)}
}

// waitFor polls get(url) until ok accepts the answer, or fails with the
// last one after a minute.
func waitFor(t *testing.T, url, what string, ok func(answer) bool) answer {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		a := get(t, url)
		if ok(a) {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not %s after 1 min; last answer %d in %s: %q", url, what, a.status, a.elapsed, a.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestTargetsFollowTheFlagsFile(t *testing.T) {
	path := copyFlags(t)
	tg, shutdown, err := newTargets(path, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer shutdown()
	srv := httptest.NewServer(tg.handler())
	defer srv.Close()

	// The shipped defaults: payments is down, search is slow, shop is fine.
	assert.Equal(t, http.StatusServiceUnavailable, get(t, srv.URL+"/payments").status)
	shop := get(t, srv.URL+"/shop")
	assert.Equal(t, http.StatusOK, shop.status)
	assert.Equal(t, "shop: ok\n", shop.body)
	search := get(t, srv.URL+"/search")
	assert.Equal(t, http.StatusOK, search.status)
	assert.GreaterOrEqual(t, search.elapsed, 1500*time.Millisecond, "search-latency-ms is slow (1500)")

	// Edits apply without a restart.
	setVariant(t, path, "payments-outage", "off")
	waitFor(t, srv.URL+"/payments", "up", func(a answer) bool { return a.status == http.StatusOK })

	setVariant(t, path, "shop-error-rate", "most")
	waitFor(t, srv.URL+"/flags", "reporting shop's error rate", func(a answer) bool {
		return strings.Contains(a.body, `"shop":{"outage":false,"latency_ms":0,"error_rate":0.8`)
	})
	errors := 0
	for range 50 {
		if get(t, srv.URL+"/shop").status == http.StatusInternalServerError {
			errors++
		}
	}
	assert.Greater(t, errors, 20, "0.8 error rate: 500s in 50 calls")
	assert.Less(t, errors, 50, "0.8 error rate: some calls succeed")

	setVariant(t, path, "search-latency-ms", "none")
	waitFor(t, srv.URL+"/search", "fast", func(a answer) bool { return a.status == http.StatusOK && a.elapsed < time.Second })

	setVariant(t, path, "shop-error-rate", "none")
	setVariant(t, path, "shop-slow-body", "on")
	slow := waitFor(t, srv.URL+"/shop", "slow", func(a answer) bool { return a.elapsed > 4*time.Second })
	assert.Equal(t, http.StatusOK, slow.status)
	assert.Len(t, slow.body, slowBodyChunks*64)

	setVariant(t, path, "shop-outage", "on")
	waitFor(t, srv.URL+"/shop", "down", func(a answer) bool { return a.status == http.StatusServiceUnavailable })
}

func TestTargetsRefuseAMissingFlagsFile(t *testing.T) {
	_, _, err := newTargets(filepath.Join(t.TempDir(), "absent.json"), slog.New(slog.DiscardHandler))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "flags file")
}

func TestRunRejectsBadInput(t *testing.T) {
	env := func(string) string { return "" }
	for _, args := range [][]string{
		nil,
		{"bogus"},
		{"traffic", "-rate", "0"},
		{"traffic", "-api", "localhost:8080"},
		{"traffic", "-interval", "5"},
		{"healthcheck"},
	} {
		err := run(t.Context(), args, env, io.Discard, io.Discard)
		require.Error(t, err, "%v", args)
		assert.NotContains(t, err.Error(), "\n", "one line: %v", args)
	}
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// TestTrafficAgainstBeacon runs the generator for 20 s against a real
// `beacon all` (its own database) and the demo targets: every answer must
// be an expected one, the demo monitors exist once however often the
// generator starts, and the target in outage shows as a down monitor.
func TestTrafficAgainstBeacon(t *testing.T) {
	root, err := harness.ModuleRoot()
	require.NoError(t, err)
	bin := filepath.Join(t.TempDir(), "beacon")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/beacon")
	build.Dir = root
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/beacon:\n%s", out)

	tg, shutdown, err := newTargets(copyFlags(t), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer shutdown()
	targets := httptest.NewServer(tg.handler())
	defer targets.Close()

	apiAddr, opsAddr, dashAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	logs := &harness.Tail{Max: 64 << 10}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	beacon := exec.CommandContext(ctx, bin, "all")
	beacon.Env = append(os.Environ(),
		"DATABASE_URL="+pgtest.NewEmptyURL(t),
		"BEACON_ENV=development",
		"BEACON_HTTP_ADDR="+apiAddr, "BEACON_OPS_ADDR="+opsAddr, "BEACON_DASHBOARD_ADDR="+dashAddr,
		"BEACON_CHECK_ALLOW_CIDRS=127.0.0.0/8",
		"BEACON_SCHEDULER_INTERVAL=1s",
		"BEACON_LOG_FORMAT=text",
		"OTEL_SDK_DISABLED=true",
	)
	beacon.Stdout, beacon.Stderr = logs, logs
	beacon.WaitDelay = 10 * time.Second
	require.NoError(t, beacon.Start())
	defer func() {
		_ = beacon.Process.Signal(os.Interrupt)
		_ = beacon.Wait()
	}()

	var genLog bytes.Buffer
	cfg := trafficConfig{
		API: "http://" + apiAddr, Targets: targets.URL,
		Email: "admin@beacon.local", Password: "beacon-dev-password",
		Rate: 8, Duration: 20 * time.Second, Interval: 10, BadSignIns: 4 * time.Second,
	}
	st, err := runTraffic(t.Context(), cfg, slog.New(slog.NewTextHandler(&genLog, nil)))
	require.NoError(t, err, "generator log:\n%s\nbeacon log:\n%s", genLog.String(), logs.Last(40))
	snap, unexpected := st.snapshot()
	t.Logf("calls: %s", snap)
	require.Zero(t, unexpected, "unexpected answers:\n%s\nbeacon log:\n%s", genLog.String(), logs.Last(40))
	for _, action := range []string{"list monitors", "get monitor", "run check", "failed sign-in"} {
		assert.Positive(t, st.Calls[action], "no %q in 20 s: %s", action, snap)
	}

	// Idempotent setup: a second start finds the same monitors.
	c := &apiClient{base: cfg.API, cfg: cfg, http: &http.Client{Timeout: 30 * time.Second}}
	require.NoError(t, c.signIn(t.Context()))
	first, err := c.ensureMonitors(t.Context())
	require.NoError(t, err)
	again, err := c.ensureMonitors(t.Context())
	require.NoError(t, err)
	assert.Equal(t, first, again)

	// The incident: payments (outage on by default) is down, shop is up.
	deadline := time.Now().Add(90 * time.Second)
	for {
		all, err := c.listMonitors(t.Context())
		require.NoError(t, err)
		state := map[string]string{}
		demo := 0
		for _, m := range all {
			if strings.HasPrefix(m.Name, monitorPrefix) {
				demo++
				state[strings.TrimPrefix(m.Name, monitorPrefix)] = m.State
			}
		}
		require.Equal(t, len(targetNames), demo, "one monitor per target: %v", all)
		if state["payments"] == "down" && state["shop"] == "up" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("monitor states after 90 s: %v\nbeacon log:\n%s", state, logs.Last(40))
		}
		time.Sleep(500 * time.Millisecond)
	}
}
