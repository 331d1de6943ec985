package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/auth"
	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/httpapi"
	"github.com/beaconhq/beacon/internal/idempotency"
	"github.com/beaconhq/beacon/internal/jobs"
	"github.com/beaconhq/beacon/internal/monitors"
	"github.com/beaconhq/beacon/internal/netguard"
	"github.com/beaconhq/beacon/internal/pgtest"
	"github.com/beaconhq/beacon/internal/telemetry"
)

type testBundle struct {
	pool    *pgxpool.Pool
	client  *river.Client[pgx.Tx]
	server  *httptest.Server
	handler http.Handler // what server serves
	deps    httpapi.Deps
	auth    *auth.Service
	// token is sent by request unless cleared: a member's, the bundle's user.
	token string
}

type setupOpts struct {
	work bool // start a working River client (otherwise jobs stay queued)
	// telemetry, when set, instruments everything as production does: the
	// server, the pool's queries and River; its Logger is the log.
	telemetry *telemetry.Telemetry
}

// setup builds the API exactly as production does (httpapi.NewServer) on a
// fresh database, served over real HTTP.
func setup(tb testing.TB, o setupOpts) *testBundle {
	tb.Helper()
	var (
		pool    *pgxpool.Pool
		plugins []rivertype.Plugin
	)
	log := slog.New(slog.DiscardHandler)
	if tel := o.telemetry; tel != nil {
		var err error
		pool, err = database.Open(context.Background(), pgtest.NewURL(tb), database.Traced(tel.TracerProvider, tel.MeterProvider))
		require.NoError(tb, err)
		tb.Cleanup(pool.Close)
		plugins = jobs.Middleware(tel.TracerProvider, tel.MeterProvider)
		log = tel.Logger
	} else {
		pool = pgtest.New(tb)
	}
	store := monitors.NewStore(pool, nil)
	policy := netguard.NewPolicy([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	workers := river.NewWorkers()
	monitors.AddWorkers(workers, monitors.Deps{
		Store: store, Checker: &monitors.Checker{Client: policy.HTTPClient(netguard.ClientOptions{})},
		Log: log, SchedulerInterval: time.Hour, SchedulerBatch: 100, Retention: 24 * time.Hour,
	})
	client, err := jobs.NewClient(pool, jobs.Options{
		Workers: workers, Work: o.work, Logger: log, Plugins: plugins,
		Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}, monitors.QueueChecks: {MaxWorkers: 5}},
	})
	require.NoError(tb, err)
	if o.work {
		require.NoError(tb, client.Start(context.Background()))
		tb.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = jobs.Stop(ctx, client, time.Second)
		})
	}
	probe := database.NewProbe(pool)
	require.NoError(tb, probe.Ready(context.Background()))
	svc, err := auth.NewService(pool, auth.Config{Secret: []byte("test-only-key-test-only-key-test-only"), BcryptCost: 4})
	require.NoError(tb, err)
	deps := httpapi.Deps{
		Log: log, Version: "test",
		Monitors: &monitors.Service{Store: store, Jobs: client}, Jobs: client,
		Ready: probe.Ready, Gate: probe.SchemaError, Telemetry: o.telemetry,
		Auth: svc, RiverUI: riverUIStub, Idempotency: idempotency.New(pool),
	}
	h, _ := httpapi.NewServer(deps)
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	b := &testBundle{pool: pool, client: client, server: srv, handler: h, deps: deps, auth: svc}
	b.token = b.signIn(tb, "member@example.org", auth.RoleMember)
	return b
}

// riverUIStub stands for River UI behind the API's admin guard.
var riverUIStub = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("river ui")) })

const testPassword = "test password 1234"

// signIn creates a user (if new) and signs in through the token endpoint,
// as a client would.
func (b *testBundle) signIn(tb testing.TB, email string, role auth.Role) string {
	tb.Helper()
	if _, err := b.auth.CreateUser(context.Background(), email, testPassword, role); apperr.CodeOf(err) != apperr.Conflict {
		require.NoError(tb, err)
	}
	resp, err := b.server.Client().PostForm(b.server.URL+"/v1/oauth/token", url.Values{
		"grant_type": {"password"}, "username": {email}, "password": {testPassword}})
	require.NoError(tb, err)
	defer resp.Body.Close()
	var tok auth.Token
	require.Equal(tb, http.StatusOK, resp.StatusCode)
	require.NoError(tb, json.NewDecoder(resp.Body).Decode(&tok))
	return tok.AccessToken
}

// as returns a copy of the bundle that sends token (none when empty).
func (b *testBundle) as(token string) *testBundle {
	c := *b
	c.token = token
	return &c
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	require.NoError(tb, json.Unmarshal(r.body, &m), "body: %s", r.body)
	return m
}

// request builds the request do sends; tests sending their own (through
// another client, or straight to b.handler) build it here too.
func (b *testBundle) request(tb testing.TB, method, path string, body any) *http.Request {
	tb.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	default:
		raw, err := json.Marshal(v)
		require.NoError(tb, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, b.server.URL+path, rd)
	require.NoError(tb, err)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if b.token != "" {
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	return req
}

func (b *testBundle) do(tb testing.TB, method, path string, body any) response {
	tb.Helper()
	resp, err := b.server.Client().Do(b.request(tb, method, path, body))
	require.NoError(tb, err)
	return readResponse(tb, resp)
}

// readResponse reads and closes resp.
func readResponse(tb testing.TB, resp *http.Response) response {
	tb.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	return response{status: resp.StatusCode, header: resp.Header, body: raw}
}

// requireProblem asserts an RFC 9457 problem with status, returning it.
func requireProblem(tb testing.TB, r response, status int) map[string]any {
	tb.Helper()
	require.Equal(tb, status, r.status, "body: %s", r.body)
	require.Equal(tb, "application/problem+json", r.header.Get("Content-Type"))
	p := r.json(tb)
	require.EqualValues(tb, status, p["status"])
	require.NotEmpty(tb, p["title"])
	return p
}

func (b *testBundle) mustCreate(tb testing.TB, body map[string]any) map[string]any {
	tb.Helper()
	r := b.do(tb, http.MethodPost, "/v1/monitors", body)
	require.Equal(tb, http.StatusCreated, r.status, "body: %s", r.body)
	return r.json(tb)
}

func target(tb testing.TB, h http.HandlerFunc) string {
	tb.Helper()
	s := httptest.NewServer(h)
	tb.Cleanup(s.Close)
	return s.URL + "/health"
}

func TestMonitorCRUD(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})

	r := b.do(t, http.MethodPost, "/v1/monitors", map[string]any{"name": "Home", "url": "https://example.com/"})
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	m := r.json(t)
	id := int64(m["id"].(float64))
	require.Equal(t, fmt.Sprintf("/v1/monitors/%d", id), r.header.Get("Location"))
	require.Equal(t, "GET", m["method"])
	require.EqualValues(t, 60, m["interval_seconds"])
	require.EqualValues(t, 5000, m["timeout_ms"])
	require.Equal(t, true, m["enabled"])
	require.Equal(t, "unknown", m["state"])

	got := b.do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d", id), nil)
	require.Equal(t, http.StatusOK, got.status)
	require.Equal(t, "Home", got.json(t)["name"])

	upd := b.do(t, http.MethodPatch, fmt.Sprintf("/v1/monitors/%d", id), map[string]any{
		"enabled": false, "interval_seconds": 30, "expected_status": []int{204, 200, 200},
	})
	require.Equal(t, http.StatusOK, upd.status, "body: %s", upd.body)
	u := upd.json(t)
	require.Equal(t, false, u["enabled"])
	require.EqualValues(t, 30, u["interval_seconds"])
	require.Equal(t, []any{200.0, 204.0}, u["expected_status"], "sorted, deduplicated")
	require.Equal(t, "Home", u["name"], "absent fields are unchanged")

	require.Equal(t, http.StatusNoContent, b.do(t, http.MethodDelete, fmt.Sprintf("/v1/monitors/%d", id), nil).status)
	requireProblem(t, b.do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d", id), nil), http.StatusNotFound)
}

func TestListMonitorsPaginates(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	for i := range 5 {
		b.mustCreate(t, map[string]any{"name": fmt.Sprintf("m%d", i), "url": "https://example.com/"})
	}
	var names []string
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 5, "pagination does not end")
		r := b.do(t, http.MethodGet, "/v1/monitors?limit=2&cursor="+cursor, nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		page := r.json(t)
		items := page["items"].([]any)
		require.LessOrEqual(t, len(items), 2)
		for _, it := range items {
			names = append(names, it.(map[string]any)["name"].(string))
		}
		next, _ := page["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	require.Equal(t, []string{"m0", "m1", "m2", "m3", "m4"}, names)
	requireProblem(t, b.do(t, http.MethodGet, "/v1/monitors?limit=0", nil), http.StatusUnprocessableEntity)
	requireProblem(t, b.do(t, http.MethodGet, "/v1/monitors?cursor=abc", nil), http.StatusUnprocessableEntity)
}

func TestValidationProblems(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	valid := func(over map[string]any) map[string]any {
		m := map[string]any{"name": "x", "url": "https://example.com/"}
		for k, v := range over {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name     string
		body     any
		status   int
		location string
	}{
		{"missing name", map[string]any{"url": "https://example.com/"}, 422, "body"},
		{"empty name", valid(map[string]any{"name": ""}), 422, "body.name"},
		{"ftp url", valid(map[string]any{"url": "ftp://example.com/"}), 422, "body.url"},
		{"credentials in url", valid(map[string]any{"url": "https://user:pw@example.com/"}), 422, "body.url"},
		{"interval too short", valid(map[string]any{"interval_seconds": 5}), 422, "body.interval_seconds"},
		{"timeout not below interval", valid(map[string]any{"interval_seconds": 10, "timeout_ms": 10000}), 422, "body.timeout_ms"},
		{"bad method", valid(map[string]any{"method": "DELETE"}), 422, "body.method"},
		{"bad status code", valid(map[string]any{"expected_status": []int{700}}), 422, "body.expected_status"},
		{"unknown field", valid(map[string]any{"intervl": 10}), 422, "body.intervl"},
		{"wrong type", valid(map[string]any{"interval_seconds": "often"}), 422, "body.interval_seconds"},
		{"malformed json", `{"name":`, 400, ""},
		// A huge malformed body is not echoed back whole.
		{"huge malformed json", `{"name": "` + strings.Repeat("x", 900_000) + "\n", 400, ""},
		{"NUL in name", valid(map[string]any{"name": "a\u0000b"}), 422, "body.name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.do(t, http.MethodPost, "/v1/monitors", tc.body)
			p := requireProblem(t, r, tc.status)
			require.Less(t, len(r.body), 2048, "the problem quotes little of the request")
			if tc.location != "" {
				var locations []string
				for _, e := range p["errors"].([]any) {
					locations = append(locations, e.(map[string]any)["location"].(string))
				}
				require.Contains(t, locations, tc.location, "problem: %s", r.body)
			}
		})
	}
	// Nothing was stored by any of them.
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT count(*) FROM monitors").Scan(&n))
	require.Zero(t, n)

	m := b.mustCreate(t, valid(nil))
	path := fmt.Sprintf("/v1/monitors/%d", int64(m["id"].(float64)))
	requireProblem(t, b.do(t, http.MethodPatch, path, map[string]any{"url": "gopher://x"}), 422)
	require.Equal(t, "https://example.com/", b.do(t, http.MethodGet, path, nil).json(t)["url"], "a refused patch changes nothing")
	requireProblem(t, b.do(t, http.MethodGet, "/v1/monitors/abc", nil), 422)
}

func TestNotFoundProblems(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/v1/monitors/999"},
		{http.MethodPatch, "/v1/monitors/999"},
		{http.MethodDelete, "/v1/monitors/999"},
		{http.MethodPost, "/v1/monitors/999/checks"},
		{http.MethodGet, "/v1/monitors/999/results"},
		{http.MethodGet, "/v1/monitors/999/stats"},
		{http.MethodGet, "/v1/jobs/999"},
		{http.MethodGet, "/v2/nothing"},
	} {
		var body any
		if tc.method == http.MethodPatch {
			body = map[string]any{"name": "y"}
		}
		p := requireProblem(t, b.do(t, tc.method, tc.path, body), http.StatusNotFound)
		require.NotEmpty(t, p["detail"], "%s %s", tc.method, tc.path)
	}
}

func TestRunCheckAsync(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{}) // nothing works the jobs: they stay queued
	m := b.mustCreate(t, map[string]any{"name": "x", "url": "https://example.com/"})
	r := b.do(t, http.MethodPost, fmt.Sprintf("/v1/monitors/%d/checks", int64(m["id"].(float64))), nil)
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	run := r.json(t)
	jobURL := run["job_url"].(string)
	require.Equal(t, jobURL, r.header.Get("Location"))
	require.Nil(t, run["result"])

	j := b.do(t, http.MethodGet, jobURL, nil)
	require.Equal(t, http.StatusOK, j.status, "body: %s", j.body)
	job := j.json(t)
	require.Equal(t, "check", job["kind"])
	require.Equal(t, "checks", job["queue"])
	require.Equal(t, "available", job["state"])
	require.Equal(t, map[string]any{"monitor_id": m["id"], "manual": true}, job["args"])

	// wait longer than the job can take here: still 202 when it has not run.
	r = b.do(t, http.MethodPost, fmt.Sprintf("/v1/monitors/%d/checks?wait=1", int64(m["id"].(float64))), nil)
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	requireProblem(t, b.do(t, http.MethodPost, fmt.Sprintf("/v1/monitors/%d/checks?wait=31", int64(m["id"].(float64))), nil), 422)
}

func TestRunCheckSyncAndJobStatus(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{work: true})
	var hits int
	up := target(t, func(w http.ResponseWriter, _ *http.Request) { hits++; w.WriteHeader(http.StatusNoContent) })
	m := b.mustCreate(t, map[string]any{"name": "up", "url": up, "enabled": false})
	id := int64(m["id"].(float64))

	r := b.do(t, http.MethodPost, fmt.Sprintf("/v1/monitors/%d/checks?wait=10", id), nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	run := r.json(t)
	require.Equal(t, "completed", run["state"])
	res := run["result"].(map[string]any)
	require.Equal(t, true, res["ok"])
	require.EqualValues(t, 204, res["status_code"])
	require.Equal(t, run["job_id"], res["job_id"])
	require.Equal(t, 1, hits)

	job := b.do(t, http.MethodGet, run["job_url"].(string), nil).json(t)
	require.Equal(t, "completed", job["state"])
	require.EqualValues(t, 1, job["attempt"])
	require.Equal(t, true, job["output"].(map[string]any)["ok"])
	require.Equal(t, res["id"], job["output"].(map[string]any)["result_id"])

	// The monitor's state follows the result; a failing target is a result too.
	require.Equal(t, "up", b.do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d", id), nil).json(t)["state"])
	down := target(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	require.Equal(t, http.StatusOK, b.do(t, http.MethodPatch, fmt.Sprintf("/v1/monitors/%d", id), map[string]any{"url": down}).status)
	r = b.do(t, http.MethodPost, fmt.Sprintf("/v1/monitors/%d/checks?wait=10", id), nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	res = r.json(t)["result"].(map[string]any)
	require.Equal(t, false, res["ok"])
	require.Equal(t, "status", res["error_kind"])
	require.Equal(t, "down", b.do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d", id), nil).json(t)["state"])

	// A check slower than wait answers 202 with the job to follow.
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := target(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	require.Equal(t, http.StatusOK, b.do(t, http.MethodPatch, fmt.Sprintf("/v1/monitors/%d", id), map[string]any{"url": slow, "timeout_ms": 5000}).status)
	r = b.do(t, http.MethodPost, fmt.Sprintf("/v1/monitors/%d/checks?wait=1", id), nil)
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	require.Contains(t, []string{"available", "running"}, r.json(t)["state"])
}

func TestResultsAndStats(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	m := b.mustCreate(t, map[string]any{"name": "x", "url": "https://example.com/"})
	id := int64(m["id"].(float64))
	ctx := context.Background()
	base := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	// Ten results a minute apart: 10..100 ms, the last two failing.
	_, err := b.pool.Exec(ctx, `
		INSERT INTO check_results (monitor_id, checked_at, duration_ms, status_code, ok)
		SELECT $1, $2::timestamptz + (i - 1) * interval '1 minute', i * 10, 200, i <= 8
		FROM generate_series(1, 10) AS i`, id, base)
	require.NoError(t, err)

	q := "from=2026-11-01T10:00:00Z&to=2026-11-01T11:00:00Z"
	var seen []float64
	cursor := ""
	for range 10 {
		r := b.do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d/results?limit=3&%s&cursor=%s", id, q, cursor), nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		page := r.json(t)
		for _, it := range page["items"].([]any) {
			seen = append(seen, it.(map[string]any)["duration_ms"].(float64))
		}
		cursor, _ = page["next_cursor"].(string)
		if cursor == "" {
			break
		}
	}
	require.Equal(t, []float64{100, 90, 80, 70, 60, 50, 40, 30, 20, 10}, seen, "newest first, each once")
	requireProblem(t, b.do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d/results?cursor=zzz", id), nil), 422)
	requireProblem(t, b.do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d/results?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", id), nil), 422)
	requireProblem(t, b.do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d/results?from=yesterday", id), nil), 422)

	r := b.do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d/stats?%s&bucket=5m", id, q), nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	var stats struct {
		BucketSeconds int64    `json:"bucket_seconds"`
		Checks        int64    `json:"checks"`
		Uptime        *float64 `json:"uptime"`
		Buckets       []monitors.Bucket
	}
	require.NoError(t, json.Unmarshal(r.body, &stats))
	require.EqualValues(t, 300, stats.BucketSeconds)
	require.EqualValues(t, 10, stats.Checks)
	require.InDelta(t, 0.8, *stats.Uptime, 1e-9)
	require.Len(t, stats.Buckets, 2)
	first, second := stats.Buckets[0], stats.Buckets[1]
	require.Equal(t, base, first.Start.UTC())
	require.EqualValues(t, 5, first.Checks)
	require.EqualValues(t, 5, first.Successes)
	require.InDelta(t, 30, first.P50MS, 1e-9)   // 10..50
	require.InDelta(t, 48, first.P95MS, 1e-9)   // linear interpolation: 40 + 0.8*(50-40)
	require.InDelta(t, 49.6, first.P99MS, 1e-9) // 40 + 0.96*10
	require.EqualValues(t, 3, second.Successes)
	require.InDelta(t, 0.6, second.Uptime, 1e-9)

	for _, bad := range []string{"bucket=1s", "bucket=soon", "bucket=1m&from=2026-09-01T00:00:00Z&to=2026-11-01T00:00:00Z", "from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z"} {
		requireProblem(t, b.do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d/stats?%s", id, bad), nil), 422)
	}
	// No checks in range: empty buckets, no uptime.
	empty := b.do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d/stats?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z", id), nil).json(t)
	require.Equal(t, []any{}, empty["buckets"])
	require.NotContains(t, empty, "uptime")
}

func TestInternalErrorsDoNotLeak(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	m := b.mustCreate(t, map[string]any{"name": "x", "url": "https://example.com/"})
	_, err := b.pool.Exec(context.Background(), "DROP TABLE check_results")
	require.NoError(t, err)
	r := b.do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d/results", int64(m["id"].(float64))), nil)
	p := requireProblem(t, r, http.StatusInternalServerError)
	require.Equal(t, "internal error", p["detail"])
	for _, leak := range []string{"check_results", "relation", "SQLSTATE", "pgx", ".go:"} {
		require.NotContains(t, string(r.body), leak)
	}
}

func TestSchemaGateAndProbes(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	deps := b.deps
	deps.Gate = func() error { return database.ErrSchemaBehind }
	deps.Ready = func(context.Context) error { return database.ErrSchemaBehind }
	h, _ := httpapi.NewServer(deps)
	gated := &testBundle{server: httptest.NewServer(h)}
	t.Cleanup(gated.server.Close)

	p := requireProblem(t, gated.do(t, http.MethodGet, "/v1/monitors", nil), http.StatusServiceUnavailable)
	require.Contains(t, p["detail"], "beacon migrate")
	require.Equal(t, http.StatusOK, gated.do(t, http.MethodGet, "/healthz", nil).status, "liveness does not depend on the database")
	ready := gated.do(t, http.MethodGet, "/readyz", nil)
	require.Equal(t, http.StatusServiceUnavailable, ready.status)
	require.Contains(t, string(ready.body), "beacon migrate")

	require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/readyz", nil).status)
	require.True(t, errors.Is(deps.Gate(), database.ErrSchemaBehind))
}

func TestOpenAPIAndDocs(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	r := b.do(t, http.MethodGet, "/openapi.json", nil)
	require.Equal(t, http.StatusOK, r.status)
	doc := r.json(t)
	require.Equal(t, "3.1.0", doc["openapi"])
	var ids []string
	for _, item := range doc["paths"].(map[string]any) {
		for _, op := range item.(map[string]any) {
			ids = append(ids, op.(map[string]any)["operationId"].(string))
		}
	}
	require.ElementsMatch(t, []string{
		"issue-token", "revoke-token", "get-status-page", "get-me", "list-clients", "create-client", "revoke-client",
		"list-monitors", "create-monitor", "get-monitor", "update-monitor", "delete-monitor",
		"run-check", "list-results", "get-stats", "get-job",
		"list-users", "create-user", "delete-user", "update-user", "list-all-clients", "revoke-any-client",
	}, ids)

	docs := b.do(t, http.MethodGet, "/docs", nil)
	require.Equal(t, http.StatusOK, docs.status)
	require.Contains(t, string(docs.body), "/openapi.json")
	require.NotRegexp(t, `(?i)<script[^>]+src="https?://`, string(docs.body), "docs must load no remote script")
}

func readAll(tb testing.TB, resp *http.Response) []byte {
	tb.Helper()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	return raw
}
