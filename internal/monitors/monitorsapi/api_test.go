package monitorsapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/httpapi"
	"github.com/beaconhq/beacon/internal/monitors"
	"github.com/beaconhq/beacon/internal/monitors/monitorsapi"
	"github.com/beaconhq/beacon/internal/platform"
	"github.com/beaconhq/beacon/internal/platform/platformtest"
	"github.com/beaconhq/beacon/internal/telemetry"
)

type (
	testBundle = platformtest.Bundle
	response   = platformtest.Response
)

type setupOpts struct {
	work bool // start a working River client (otherwise jobs stay queued)
	// telemetry, when set, instruments everything as production does: the
	// server, the pool's queries and River; its Logger is the log.
	telemetry *telemetry.Telemetry
}

// setup builds Beacon with this module exactly as a process does, on a
// fresh database, its API served over real HTTP (platformtest).
func setup(tb testing.TB, o setupOpts) *testBundle {
	tb.Helper()
	return platformtest.New(tb, platformtest.Options{
		Modules: []platform.Module{monitorsapi.Module()}, Work: o.work, Telemetry: o.telemetry})
}

var (
	readResponse   = platformtest.ReadResponse
	requireProblem = platformtest.RequireProblem
)

const testPassword = platformtest.Password

func mustCreate(tb testing.TB, b *testBundle, body map[string]any) map[string]any {
	tb.Helper()
	r := b.Do(tb, http.MethodPost, "/v1/monitors", body)
	require.Equal(tb, http.StatusCreated, r.Status, "body: %s", r.Body)
	return r.JSON(tb)
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

	r := b.Do(t, http.MethodPost, "/v1/monitors", map[string]any{"name": "Home", "url": "https://example.com/"})
	require.Equal(t, http.StatusCreated, r.Status, "body: %s", r.Body)
	m := r.JSON(t)
	id := int64(m["id"].(float64))
	require.Equal(t, fmt.Sprintf("/v1/monitors/%d", id), r.Header.Get("Location"))
	require.Equal(t, "GET", m["method"])
	require.EqualValues(t, 60, m["interval_seconds"])
	require.EqualValues(t, 5000, m["timeout_ms"])
	require.Equal(t, true, m["enabled"])
	require.Equal(t, "unknown", m["state"])

	got := b.Do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d", id), nil)
	require.Equal(t, http.StatusOK, got.Status)
	require.Equal(t, "Home", got.JSON(t)["name"])

	upd := b.Do(t, http.MethodPatch, fmt.Sprintf("/v1/monitors/%d", id), map[string]any{
		"enabled": false, "interval_seconds": 30, "expected_status": []int{204, 200, 200},
	})
	require.Equal(t, http.StatusOK, upd.Status, "body: %s", upd.Body)
	u := upd.JSON(t)
	require.Equal(t, false, u["enabled"])
	require.EqualValues(t, 30, u["interval_seconds"])
	require.Equal(t, []any{200.0, 204.0}, u["expected_status"], "sorted, deduplicated")
	require.Equal(t, "Home", u["name"], "absent fields are unchanged")

	require.Equal(t, http.StatusNoContent, b.Do(t, http.MethodDelete, fmt.Sprintf("/v1/monitors/%d", id), nil).Status)
	requireProblem(t, b.Do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d", id), nil), http.StatusNotFound)
}

func TestListMonitorsPaginates(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	for i := range 5 {
		mustCreate(t, b, map[string]any{"name": fmt.Sprintf("m%d", i), "url": "https://example.com/"})
	}
	var names []string
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 5, "pagination does not end")
		r := b.Do(t, http.MethodGet, "/v1/monitors?limit=2&cursor="+cursor, nil)
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		page := r.JSON(t)
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
	requireProblem(t, b.Do(t, http.MethodGet, "/v1/monitors?limit=0", nil), http.StatusUnprocessableEntity)
	requireProblem(t, b.Do(t, http.MethodGet, "/v1/monitors?cursor=abc", nil), http.StatusUnprocessableEntity)
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
			r := b.Do(t, http.MethodPost, "/v1/monitors", tc.body)
			p := requireProblem(t, r, tc.status)
			require.Less(t, len(r.Body), 2048, "the problem quotes little of the request")
			if tc.location != "" {
				var locations []string
				for _, e := range p["errors"].([]any) {
					locations = append(locations, e.(map[string]any)["location"].(string))
				}
				require.Contains(t, locations, tc.location, "problem: %s", r.Body)
			}
		})
	}
	// Nothing was stored by any of them.
	var n int
	require.NoError(t, b.Pool.QueryRow(context.Background(), "SELECT count(*) FROM monitors").Scan(&n))
	require.Zero(t, n)

	m := mustCreate(t, b, valid(nil))
	path := fmt.Sprintf("/v1/monitors/%d", int64(m["id"].(float64)))
	requireProblem(t, b.Do(t, http.MethodPatch, path, map[string]any{"url": "gopher://x"}), 422)
	require.Equal(t, "https://example.com/", b.Do(t, http.MethodGet, path, nil).JSON(t)["url"], "a refused patch changes nothing")
	requireProblem(t, b.Do(t, http.MethodGet, "/v1/monitors/abc", nil), 422)
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
		p := requireProblem(t, b.Do(t, tc.method, tc.path, body), http.StatusNotFound)
		require.NotEmpty(t, p["detail"], "%s %s", tc.method, tc.path)
	}
}

func TestRunCheckAsync(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{}) // nothing works the jobs: they stay queued
	m := mustCreate(t, b, map[string]any{"name": "x", "url": "https://example.com/"})
	r := b.Do(t, http.MethodPost, fmt.Sprintf("/v1/monitors/%d/checks", int64(m["id"].(float64))), nil)
	require.Equal(t, http.StatusAccepted, r.Status, "body: %s", r.Body)
	run := r.JSON(t)
	jobURL := run["job_url"].(string)
	require.Equal(t, jobURL, r.Header.Get("Location"))
	require.Nil(t, run["result"])

	j := b.Do(t, http.MethodGet, jobURL, nil)
	require.Equal(t, http.StatusOK, j.Status, "body: %s", j.Body)
	job := j.JSON(t)
	require.Equal(t, "check", job["kind"])
	require.Equal(t, "checks", job["queue"])
	require.Equal(t, "available", job["state"])
	require.Equal(t, map[string]any{"monitor_id": m["id"], "manual": true}, job["args"])

	// wait longer than the job can take here: still 202 when it has not run.
	r = b.Do(t, http.MethodPost, fmt.Sprintf("/v1/monitors/%d/checks?wait=1", int64(m["id"].(float64))), nil)
	require.Equal(t, http.StatusAccepted, r.Status, "body: %s", r.Body)
	requireProblem(t, b.Do(t, http.MethodPost, fmt.Sprintf("/v1/monitors/%d/checks?wait=31", int64(m["id"].(float64))), nil), 422)
}

func TestRunCheckSyncAndJobStatus(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{work: true})
	var hits int
	up := target(t, func(w http.ResponseWriter, _ *http.Request) { hits++; w.WriteHeader(http.StatusNoContent) })
	m := mustCreate(t, b, map[string]any{"name": "up", "url": up, "enabled": false})
	id := int64(m["id"].(float64))

	r := b.Do(t, http.MethodPost, fmt.Sprintf("/v1/monitors/%d/checks?wait=10", id), nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	run := r.JSON(t)
	require.Equal(t, "completed", run["state"])
	res := run["result"].(map[string]any)
	require.Equal(t, true, res["ok"])
	require.EqualValues(t, 204, res["status_code"])
	require.Equal(t, run["job_id"], res["job_id"])
	require.Equal(t, 1, hits)

	job := b.Do(t, http.MethodGet, run["job_url"].(string), nil).JSON(t)
	require.Equal(t, "completed", job["state"])
	require.EqualValues(t, 1, job["attempt"])
	require.Equal(t, true, job["output"].(map[string]any)["ok"])
	require.Equal(t, res["id"], job["output"].(map[string]any)["result_id"])

	// The monitor's state follows the result; a failing target is a result too.
	require.Equal(t, "up", b.Do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d", id), nil).JSON(t)["state"])
	down := target(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	require.Equal(t, http.StatusOK, b.Do(t, http.MethodPatch, fmt.Sprintf("/v1/monitors/%d", id), map[string]any{"url": down}).Status)
	r = b.Do(t, http.MethodPost, fmt.Sprintf("/v1/monitors/%d/checks?wait=10", id), nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	res = r.JSON(t)["result"].(map[string]any)
	require.Equal(t, false, res["ok"])
	require.Equal(t, "status", res["error_kind"])
	require.Equal(t, "down", b.Do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d", id), nil).JSON(t)["state"])

	// A check slower than wait answers 202 with the job to follow.
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := target(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	require.Equal(t, http.StatusOK, b.Do(t, http.MethodPatch, fmt.Sprintf("/v1/monitors/%d", id), map[string]any{"url": slow, "timeout_ms": 5000}).Status)
	r = b.Do(t, http.MethodPost, fmt.Sprintf("/v1/monitors/%d/checks?wait=1", id), nil)
	require.Equal(t, http.StatusAccepted, r.Status, "body: %s", r.Body)
	require.Contains(t, []string{"available", "running"}, r.JSON(t)["state"])
}

func TestResultsAndStats(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	m := mustCreate(t, b, map[string]any{"name": "x", "url": "https://example.com/"})
	id := int64(m["id"].(float64))
	ctx := context.Background()
	base := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	// Ten results a minute apart: 10..100 ms, the last two failing.
	_, err := b.Pool.Exec(ctx, `
		INSERT INTO check_results (monitor_id, checked_at, duration_ms, status_code, ok)
		SELECT $1, $2::timestamptz + (i - 1) * interval '1 minute', i * 10, 200, i <= 8
		FROM generate_series(1, 10) AS i`, id, base)
	require.NoError(t, err)

	q := "from=2026-11-01T10:00:00Z&to=2026-11-01T11:00:00Z"
	var seen []float64
	cursor := ""
	for range 10 {
		r := b.Do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d/results?limit=3&%s&cursor=%s", id, q, cursor), nil)
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		page := r.JSON(t)
		for _, it := range page["items"].([]any) {
			seen = append(seen, it.(map[string]any)["duration_ms"].(float64))
		}
		cursor, _ = page["next_cursor"].(string)
		if cursor == "" {
			break
		}
	}
	require.Equal(t, []float64{100, 90, 80, 70, 60, 50, 40, 30, 20, 10}, seen, "newest first, each once")
	requireProblem(t, b.Do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d/results?cursor=zzz", id), nil), 422)
	requireProblem(t, b.Do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d/results?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", id), nil), 422)
	requireProblem(t, b.Do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d/results?from=yesterday", id), nil), 422)

	r := b.Do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d/stats?%s&bucket=5m", id, q), nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	var stats struct {
		BucketSeconds int64    `json:"bucket_seconds"`
		Checks        int64    `json:"checks"`
		Uptime        *float64 `json:"uptime"`
		Buckets       []monitors.Bucket
	}
	require.NoError(t, json.Unmarshal(r.Body, &stats))
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

	for _, bad := range []string{"bucket=1s", "bucket=soon", "bucket=1m&from=2026-09-01T00:00:00Z&to=2026-11-01T00:00:00Z", "from=2025-01-01T00:00:00Z&to=2026-01-03T00:00:00Z"} {
		requireProblem(t, b.Do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d/stats?%s", id, bad), nil), 422)
	}
	// No checks in range: empty buckets, no uptime.
	empty := b.Do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d/stats?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z", id), nil).JSON(t)
	require.Equal(t, []any{}, empty["buckets"])
	require.NotContains(t, empty, "uptime")
}

func TestInternalErrorsDoNotLeak(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	m := mustCreate(t, b, map[string]any{"name": "x", "url": "https://example.com/"})
	_, err := b.Pool.Exec(context.Background(), "DROP TABLE check_results")
	require.NoError(t, err)
	r := b.Do(t, http.MethodGet, fmt.Sprintf("/v1/monitors/%d/results", int64(m["id"].(float64))), nil)
	p := requireProblem(t, r, http.StatusInternalServerError)
	require.Equal(t, "internal error", p["detail"])
	for _, leak := range []string{"check_results", "relation", "SQLSTATE", "pgx", ".go:"} {
		require.NotContains(t, string(r.Body), leak)
	}
}

func TestSchemaGateAndProbes(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	deps := b.Deps
	deps.Gate = func() error { return database.ErrSchemaBehind }
	deps.Ready = func(context.Context) error { return database.ErrSchemaBehind }
	h, _ := httpapi.NewServer(deps)
	gated := &testBundle{Server: httptest.NewServer(h)}
	t.Cleanup(gated.Server.Close)

	p := requireProblem(t, gated.Do(t, http.MethodGet, "/v1/monitors", nil), http.StatusServiceUnavailable)
	require.Contains(t, p["detail"], "beacon migrate")
	require.Equal(t, http.StatusOK, gated.Do(t, http.MethodGet, "/healthz", nil).Status, "liveness does not depend on the database")
	ready := gated.Do(t, http.MethodGet, "/readyz", nil)
	require.Equal(t, http.StatusServiceUnavailable, ready.Status)
	require.Contains(t, string(ready.Body), "beacon migrate")

	require.Equal(t, http.StatusOK, b.Do(t, http.MethodGet, "/readyz", nil).Status)
	require.True(t, errors.Is(deps.Gate(), database.ErrSchemaBehind))
}

func TestOpenAPIAndDocs(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	r := b.Do(t, http.MethodGet, "/openapi.json", nil)
	require.Equal(t, http.StatusOK, r.Status)
	doc := r.JSON(t)
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
		"list-incidents", "get-incident", "acknowledge-incident", "resolve-incident",
		"list-channels", "create-channel", "delete-channel", "test-channel",
		"list-users", "create-user", "delete-user", "update-user", "list-all-clients", "revoke-any-client",
	}, ids)

	docs := b.Do(t, http.MethodGet, "/docs", nil)
	require.Equal(t, http.StatusOK, docs.Status)
	require.Contains(t, string(docs.Body), "/openapi.json")
	require.NotRegexp(t, `(?i)<script[^>]+src="https?://`, string(docs.Body), "docs must load no remote script")
}

func readAll(tb testing.TB, resp *http.Response) []byte {
	tb.Helper()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	return raw
}
