package workflowapi_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/auth"
	"github.com/beaconhq/beacon/internal/platform"
	"github.com/beaconhq/beacon/internal/platform/platformtest"
	"github.com/beaconhq/beacon/internal/workflow/workflowapi"
)

type (
	bundle   = platformtest.Bundle
	response = platformtest.Response
)

// setup builds Beacon with this module as a process does (platformtest) on
// a fresh database; work starts a client that works the steps.
func setup(t *testing.T, work bool) *bundle {
	t.Helper()
	return platformtest.New(t, platformtest.Options{
		Modules: []platform.Module{workflowapi.Module()}, Work: work,
		Env: map[string]string{"BEACON_WORKER_CONCURRENCY": "10"},
	})
}

var requireProblem = platformtest.RequireProblem

func TestDemoChainWaits(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	r := b.Do(t, http.MethodPost, "/v1/workflows/demo?wait=25", map[string]any{"kind": "chain", "n": 10})
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	w := r.JSON(t)
	require.Equal(t, "succeeded", w["state"], "body: %s", r.Body)
	require.Equal(t, "demo.chain", w["kind"])
	require.Equal(t, map[string]any{"value": 55.0}, w["result"]) // 1 + 2 + ... + 10
	steps := w["steps"].([]any)
	require.Len(t, steps, 10)
	last := steps[9].(map[string]any)
	require.Equal(t, "add 10", last["name"])
	require.Equal(t, "succeeded", last["state"])
	require.EqualValues(t, 1, last["attempts"])
	require.NotEmpty(t, last["finished_at"])
	require.Equal(t, []any{8.0}, last["deps"])
	require.Equal(t, fmt.Sprintf("/v1/workflows/%d", int64(w["id"].(float64))), r.Header.Get("Location"))
}

func TestDemoChordAsync(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	r := b.Do(t, http.MethodPost, "/v1/workflows/demo", map[string]any{"kind": "chord", "n": 20})
	require.Equal(t, http.StatusAccepted, r.Status, "body: %s", r.Body)
	loc := r.Header.Get("Location")
	require.NotEmpty(t, loc)
	var last response
	deadline := time.Now().Add(60 * time.Second)
	for {
		last = b.Do(t, http.MethodGet, loc, nil)
		require.Equal(t, http.StatusOK, last.Status)
		if last.JSON(t)["state"] != "running" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	w := last.JSON(t)
	require.Equal(t, "succeeded", w["state"], "body: %s", last.Body)
	require.Equal(t, map[string]any{"value": 2870.0}, w["result"]) // 1² + ... + 20²
	require.Len(t, w["steps"], 21)

	// The step jobs are the owner's to see at /v1/jobs, nobody else's.
	step := w["steps"].([]any)[0].(map[string]any)
	jobURL := fmt.Sprintf("/v1/jobs/%d", int64(step["job_id"].(float64)))
	job := b.Do(t, http.MethodGet, jobURL, nil)
	require.Equal(t, http.StatusOK, job.Status, "body: %s", job.Body)
	other := b.As(b.SignIn(t, "other@example.org", auth.RoleMember))
	requireProblem(t, other.Do(t, http.MethodGet, jobURL, nil), http.StatusNotFound)
}

func TestDemoGroupAndFailure(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	r := b.Do(t, http.MethodPost, "/v1/workflows/demo?wait=25", map[string]any{"kind": "group", "n": 4})
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	require.Equal(t, []any{map[string]any{"value": 1.0}, map[string]any{"value": 4.0}, map[string]any{"value": 9.0},
		map[string]any{"value": 16.0}}, r.JSON(t)["result"])

	r = b.Do(t, http.MethodPost, "/v1/workflows/demo?wait=25", map[string]any{"kind": "chain", "n": 5, "fail_step": 3})
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	w := r.JSON(t)
	require.Equal(t, "failed", w["state"])
	require.Contains(t, w["error"], "step 3 failed on request")
	require.Nil(t, w["result"])
	states := []string{}
	for _, s := range w["steps"].([]any) {
		states = append(states, s.(map[string]any)["state"].(string))
	}
	require.Equal(t, []string{"succeeded", "succeeded", "failed", "cancelled", "cancelled"}, states)

	// continue: the chord's other squares run; the callback cannot.
	r = b.Do(t, http.MethodPost, "/v1/workflows/demo?wait=25",
		map[string]any{"kind": "chord", "n": 3, "fail_step": 2, "policy": "continue"})
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	w = r.JSON(t)
	require.Equal(t, "failed", w["state"])
	require.Equal(t, "continue", w["policy"])
	states = states[:0]
	for _, s := range w["steps"].([]any) {
		states = append(states, s.(map[string]any)["state"].(string))
	}
	require.Equal(t, []string{"succeeded", "failed", "succeeded", "cancelled"}, states)
}

func TestBadInputIsAProblem(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	for _, body := range []map[string]any{
		{"kind": "chain", "n": 0},
		{"kind": "chain", "n": 101},
		{"kind": "tree", "n": 3},
		{"kind": "chain", "n": 3, "fail_step": 4},
		{"kind": "chain", "n": 3, "policy": "sometimes"},
		{"n": 3},
	} {
		p := requireProblem(t, b.Do(t, http.MethodPost, "/v1/workflows/demo", body), http.StatusUnprocessableEntity)
		require.NotEmpty(t, p["errors"], "%v", body)
	}
	requireProblem(t, b.Do(t, http.MethodPost, "/v1/workflows/demo?wait=31", map[string]any{"kind": "chain", "n": 1}),
		http.StatusUnprocessableEntity)
	requireProblem(t, b.Do(t, http.MethodGet, "/v1/workflows?state=done", nil), http.StatusUnprocessableEntity)
	requireProblem(t, b.Do(t, http.MethodGet, "/v1/workflows?cursor=nope", nil), http.StatusUnprocessableEntity)
	requireProblem(t, b.Do(t, http.MethodGet, "/v1/workflows/0", nil), http.StatusUnprocessableEntity)
	requireProblem(t, b.Do(t, http.MethodGet, "/v1/workflows/999", nil), http.StatusNotFound)
	// Nothing was started.
	r := b.Do(t, http.MethodGet, "/v1/workflows", nil)
	require.Equal(t, http.StatusOK, r.Status)
	require.Empty(t, r.JSON(t)["items"])
}

// Without workers, workflows stay running: listed, filtered, paginated,
// cancelled, and another user's are not found.
func TestListCancelAndScope(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	ids := []int64{}
	for _, kind := range []string{"chain", "group", "chord", "chain"} {
		r := b.Do(t, http.MethodPost, "/v1/workflows/demo", map[string]any{"kind": kind, "n": 2})
		require.Equal(t, http.StatusAccepted, r.Status, "body: %s", r.Body)
		ids = append(ids, int64(r.JSON(t)["id"].(float64)))
	}
	other := b.As(b.SignIn(t, "other@example.org", auth.RoleMember))
	admin := b.As(b.SignIn(t, "admin@example.org", auth.RoleAdmin))
	for _, o := range []*bundle{other, admin} {
		requireProblem(t, o.Do(t, http.MethodGet, fmt.Sprintf("/v1/workflows/%d", ids[0]), nil), http.StatusNotFound)
		requireProblem(t, o.Do(t, http.MethodPost, fmt.Sprintf("/v1/workflows/%d/cancel", ids[0]), nil), http.StatusNotFound)
		r := o.Do(t, http.MethodGet, "/v1/workflows", nil)
		require.Equal(t, http.StatusOK, r.Status)
		require.Empty(t, r.JSON(t)["items"])
	}

	// Pages of 3, newest first.
	var got []int64
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 4, "pagination does not end")
		r := b.Do(t, http.MethodGet, "/v1/workflows?limit=3&cursor="+url.QueryEscape(cursor), nil)
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		p := r.JSON(t)
		for _, it := range p["items"].([]any) {
			m := it.(map[string]any)
			require.Nil(t, m["steps"], "a list has no steps")
			got = append(got, int64(m["id"].(float64)))
		}
		next, _ := p["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	require.Equal(t, []int64{ids[3], ids[2], ids[1], ids[0]}, got)

	r := b.Do(t, http.MethodPost, fmt.Sprintf("/v1/workflows/%d/cancel", ids[0]), nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	w := r.JSON(t)
	require.Equal(t, "cancelled", w["state"])
	for _, s := range w["steps"].([]any) {
		require.Equal(t, "cancelled", s.(map[string]any)["state"])
	}
	requireProblem(t, b.Do(t, http.MethodPost, fmt.Sprintf("/v1/workflows/%d/cancel", ids[0]), nil), http.StatusConflict)

	count := func(query string) int {
		r := b.Do(t, http.MethodGet, "/v1/workflows?"+query, nil)
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		return len(r.JSON(t)["items"].([]any))
	}
	require.Equal(t, 1, count("state=cancelled"))
	require.Equal(t, 3, count("state=running"))
	require.Equal(t, 2, count("kind=demo.chain"))
	require.Equal(t, 1, count("kind=demo.chain&state=running"))
	require.Zero(t, count("kind="+url.QueryEscape(strings.Repeat("x", 50))))
}
