package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/config"
	"github.com/beaconhq/beacon/internal/pgtest"
)

// syncBuffer is an io.Writer safe for the logger and the test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

type process struct {
	api, ops string
	out      *syncBuffer
	cancel   context.CancelFunc
	done     chan error
}

// start runs beacon ROLE in-process, as main does, with env on top of defaults.
func start(t *testing.T, role string, env map[string]string) *process {
	t.Helper()
	p := &process{api: freeAddr(t), ops: freeAddr(t), out: &syncBuffer{}, done: make(chan error, 1)}
	vars := map[string]string{
		"BEACON_HTTP_ADDR":        p.api,
		"BEACON_OPS_ADDR":         p.ops,
		"BEACON_DASHBOARD_ADDR":   freeAddr(t),
		"BEACON_LOG_FORMAT":       "json",
		"BEACON_SHUTDOWN_TIMEOUT": "5s",
	}
	for k, v := range env {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { p.done <- run(ctx, []string{role}, func(k string) string { return vars[k] }, p.out, p.out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			t.Error("beacon did not stop")
		}
	})
	return p
}

// stop cancels the context (as SIGTERM does) and returns run's error.
func (p *process) stop(t *testing.T) error {
	t.Helper()
	p.cancel()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("beacon did not stop within 15 s")
		return nil
	}
}

// signIn gets an access token for the development admin (the defaults
// BEACON_ADMIN_EMAIL and BEACON_ADMIN_PASSWORD take in development), once:
// the caller has waited for /readyz, which answers 200 only once the first
// admin exists. Failed sign-ins count towards the account's limit, so they
// are never retried in a loop.
func (p *process) signIn(t *testing.T) string {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {config.DevAdminEmail}, "password": {config.DevAdminPassword}}
	resp, err := http.PostForm("http://"+p.api+"/v1/oauth/token", form)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &tok) != nil || tok.AccessToken == "" {
		t.Fatalf("sign in as the development admin: %d %s; output:\n%s", resp.StatusCode, body, p.out.String())
	}
	return tok.AccessToken
}

// getAs GETs url with a bearer token.
func getAs(t *testing.T, token, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitStatus polls url until it answers status, failing at once (with the
// process's output) if the process exits first.
func (p *process) waitStatus(t *testing.T, url string, status int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if s, _ := get(t, url); s == status {
			return
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("beacon exited (%v) before %s answered %d; output:\n%s", err, url, status, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered %d; output:\n%s", url, status, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	getenv := func(string) string { return "" }

	err := run(context.Background(), nil, getenv, &out, &errOut)
	require.IsType(t, usageError(""), err)
	require.Contains(t, errOut.String(), "Commands:")

	err = run(context.Background(), []string{"serve"}, getenv, &out, &errOut)
	require.IsType(t, usageError(""), err)
	require.Contains(t, err.Error(), `unknown command "serve"`)

	out.Reset()
	require.NoError(t, run(context.Background(), []string{"--help"}, getenv, &out, &errOut))
	for _, name := range []string{"all", "api", "worker", "migrate", "openapi", "DATABASE_URL", "BEACON_OPS_ADDR"} {
		require.Contains(t, out.String(), name)
	}
	for _, role := range []string{"all", "api", "worker", "migrate", "openapi", "healthcheck"} {
		out.Reset()
		require.NoError(t, run(context.Background(), []string{role, "--help"}, getenv, &out, &errOut), role)
		require.True(t, strings.HasPrefix(out.String(), "beacon "+role+": "), out.String())
	}
	err = run(context.Background(), []string{"api", "--port", "1"}, getenv, &out, &errOut)
	require.IsType(t, usageError(""), err)
}

func TestConfigErrorsAreOneLine(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := run(context.Background(), []string{"api"}, func(k string) string {
		return map[string]string{"DATABASE_URL": "postgres://localhost/x", "BEACON_WORKER_CONCURRENCY": "lots"}[k]
	}, &out, &out)
	require.ErrorContains(t, err, "BEACON_WORKER_CONCURRENCY")
	require.NotContains(t, err.Error(), "\n")

	err = run(context.Background(), []string{"migrate"}, func(string) string { return "" }, &out, &out)
	require.ErrorContains(t, err, "DATABASE_URL: required")
}

func TestOpenAPICommand(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"openapi"}, func(string) string { return "" }, &out, io.Discard))
	var doc map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &doc))
	require.Equal(t, "3.1.0", doc["openapi"])
	require.Contains(t, doc["paths"], "/v1/monitors/{id}/checks")
}

func TestHealthcheckCommand(t *testing.T) {
	t.Parallel()
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }))
	defer bad.Close()
	env := func(string) string { return "" }
	require.NoError(t, run(context.Background(), []string{"healthcheck", ok.URL}, env, io.Discard, io.Discard))
	require.ErrorContains(t, run(context.Background(), []string{"healthcheck", bad.URL}, env, io.Discard, io.Discard), "503")
	require.IsType(t, usageError(""), run(context.Background(), []string{"healthcheck"}, env, io.Discard, io.Discard))
}

// beacon all: migrates, serves the API and the ops port, schedules checks of
// a monitor created through the API, and stops cleanly on cancellation.
func TestAllServesAndChecksOnSchedule(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	tgt := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer tgt.Close()

	p := start(t, "all", map[string]string{
		"DATABASE_URL":              pgtest.NewEmptyURL(t),
		"BEACON_CHECK_ALLOW_CIDRS":  "127.0.0.0/8",
		"BEACON_SCHEDULER_INTERVAL": "1s",
	})
	p.waitStatus(t, "http://"+p.api+"/readyz", 200)
	p.waitStatus(t, "http://"+p.ops+"/readyz", 200)

	token := p.signIn(t)
	body := fmt.Sprintf(`{"name":"target","url":%q,"interval_seconds":10}`, tgt.URL)
	req, err := http.NewRequest(http.MethodPost, "http://"+p.api+"/v1/monitors", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	loc := resp.Header.Get("Location")

	// The scheduler, not a manual run, produces the first result.
	require.Eventually(t, func() bool {
		_, b := getAs(t, token, "http://"+p.api+loc+"/results")
		return strings.Contains(b, `"ok":true`)
	}, 20*time.Second, 100*time.Millisecond, "no scheduled check ran")
	require.GreaterOrEqual(t, hits.Load(), int32(1))
	_, m := getAs(t, token, "http://"+p.api+loc)
	require.Contains(t, m, `"state":"up"`)

	// Docs, pprof only on the ops port.
	s, body := get(t, "http://"+p.api+"/docs")
	require.Contains(t, body, "swagger-ui")
	require.Equal(t, 200, s)
	s, _ = get(t, "http://"+p.ops+"/debug/pprof/")
	require.Equal(t, 200, s)
	s, _ = get(t, "http://"+p.api+"/debug/pprof/")
	require.Equal(t, 404, s)
	s, body = get(t, "http://"+p.ops+"/metrics")
	require.Equal(t, 200, s)
	require.Contains(t, body, "beacon_checks_total")
	require.Contains(t, body, "http_server_request_duration_seconds_bucket")
	s, _ = get(t, "http://"+p.api+"/metrics")
	require.Equal(t, 404, s, "metrics are never served on the public port")

	require.NoError(t, p.stop(t))
	require.Contains(t, p.out.String(), `"msg":"stopped"`)
	require.NotContains(t, p.out.String(), "panic")
}

// beacon api refuses to serve until the schema is current, then serves
// without a restart once `beacon migrate` has run.
func TestAPIWaitsForMigrations(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewEmptyURL(t)
	p := start(t, "api", map[string]string{"DATABASE_URL": dbURL})
	p.waitStatus(t, "http://"+p.api+"/healthz", 200)
	s, b := get(t, "http://"+p.api+"/readyz")
	require.Equal(t, 503, s)
	require.Contains(t, b, "beacon migrate")
	s, b = get(t, "http://"+p.api+"/v1/monitors")
	require.Equal(t, 503, s)
	require.Contains(t, b, "beacon migrate")

	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"migrate"}, func(k string) string {
		return map[string]string{"DATABASE_URL": dbURL}[k]
	}, &out, &out))
	require.Contains(t, out.String(), "schema is current")
	// Running it again is a no-op.
	require.NoError(t, run(context.Background(), []string{"migrate"}, func(k string) string {
		return map[string]string{"DATABASE_URL": dbURL}[k]
	}, &out, &out))

	p.waitStatus(t, "http://"+p.api+"/readyz", 200)
	s, _ = get(t, "http://"+p.api+"/v1/monitors")
	require.Equal(t, 401, s, "serving, and private")
	s, _ = getAs(t, p.signIn(t), "http://"+p.api+"/v1/monitors")
	require.Equal(t, 200, s)
	require.NoError(t, p.stop(t))
}

// Several replicas migrating at once apply each step once.
func TestConcurrentMigrations(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewEmptyURL(t)
	env := func(k string) string { return map[string]string{"DATABASE_URL": dbURL}[k] }
	errs := make(chan error, 4)
	for range 4 {
		go func() { errs <- run(context.Background(), []string{"migrate"}, env, io.Discard, io.Discard) }()
	}
	for range 4 {
		require.NoError(t, <-errs)
	}
}

func TestListenFailureIsReported(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	var out bytes.Buffer
	env := map[string]string{"DATABASE_URL": pgtest.NewURL(t), "BEACON_OPS_ADDR": ln.Addr().String()}
	err = run(context.Background(), []string{"worker"}, func(k string) string { return env[k] }, &out, &out)
	require.ErrorContains(t, err, "BEACON_OPS_ADDR")
}

// Every variable's meaning starts at the same column of `beacon --help`,
// however long its name.
func TestHelpAlignsTheEnvironmentTable(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	usage(&out)
	column := -1
	rows := 0
	for _, line := range strings.Split(out.String(), "\n") {
		for _, v := range config.Vars {
			if !strings.HasPrefix(line, "  "+v.Name+" ") {
				continue
			}
			at := strings.Index(line, v.Meaning)
			require.Positive(t, at, line)
			if column < 0 {
				column = at
			}
			require.Equal(t, column, at, "misaligned: %q", line)
			rows++
		}
	}
	require.Equal(t, len(config.Vars), rows)
}
