package monitorsapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/auth"
	"github.com/beaconhq/beacon/internal/monitors/incidents"
	"github.com/beaconhq/beacon/internal/monitors/monitorsapi"
	"github.com/beaconhq/beacon/internal/platform"
	"github.com/beaconhq/beacon/internal/platform/platformtest"
	"github.com/beaconhq/beacon/internal/workflow/workflowapi"
)

// incidentBundle is Beacon with workers and fast confirmations.
func incidentBundle(t *testing.T, env map[string]string) *testBundle {
	e := map[string]string{"BEACON_INCIDENT_CONFIRMATIONS": "2", "BEACON_INCIDENT_CONFIRM_SPACING": "500ms"}
	for k, v := range env {
		e[k] = v
	}
	return platformtest.New(t, platformtest.Options{
		Modules: []platform.Module{monitorsapi.Module(), workflowapi.Module()}, Work: true, Env: e})
}

// flipTarget is a target whose status the test sets.
func flipTarget(t *testing.T) (string, *atomic.Int32) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	return target(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(int(status.Load())) }), &status
}

func runCheck(t *testing.T, b *testBundle, id int64, wantOK bool) {
	t.Helper()
	r := b.Do(t, http.MethodPost, fmt.Sprintf("/v1/monitors/%d/checks?wait=30", id), nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	require.Equal(t, wantOK, r.JSON(t)["result"].(map[string]any)["ok"], "body: %s", r.Body)
}

func workflowsOf(t *testing.T, b *testBundle, kind string) []any {
	r := b.Do(t, http.MethodGet, "/v1/workflows?kind="+kind, nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	items, _ := r.JSON(t)["items"].([]any)
	return items
}

// A monitor that is back up before the re-checks run opens no incident:
// its confirmation is dismissed.
func TestFlapIsDismissed(t *testing.T) {
	b := incidentBundle(t, map[string]string{"BEACON_INCIDENT_CONFIRM_SPACING": "2s"})
	url, status := flipTarget(t)
	id := int64(mustCreate(t, b, map[string]any{"name": "flappy", "url": url, "interval_seconds": 3600})["id"].(float64))
	runCheck(t, b, id, true)
	status.Store(http.StatusInternalServerError)
	runCheck(t, b, id, false)
	status.Store(http.StatusOK) // before the first re-check, 2 s later
	var wf map[string]any
	waitUntil(t, 60*time.Second, "the confirmation ends", func() (bool, string) {
		items := workflowsOf(t, b, incidents.KindConfirm)
		if len(items) != 1 || items[0].(map[string]any)["state"] == "running" {
			return false, fmt.Sprint(items)
		}
		wf = items[0].(map[string]any)
		return true, ""
	})
	require.Equal(t, "succeeded", wf["state"])
	r := b.Do(t, http.MethodGet, fmt.Sprintf("/v1/workflows/%v", wf["id"]), nil)
	require.Equal(t, false, r.JSON(t)["result"].(map[string]any)["confirmed"], "body: %s", r.Body)
	r = b.Do(t, http.MethodGet, "/v1/incidents", nil)
	require.Empty(t, r.JSON(t)["items"], "body: %s", r.Body)
}

// The owner's operations: acknowledge (idempotent), resolve by hand (once),
// another user's incident not found; a channel that refuses is written on
// the timeline and fails its step; a test notification says why it failed.
func TestIncidentOperationsAndFailedNotifications(t *testing.T) {
	b := incidentBundle(t, nil)
	hook := newHookReceiver(t)
	hook.status.Store(http.StatusGone) // a 4xx: given up at once
	r := b.Do(t, http.MethodPost, "/v1/channels", map[string]any{"kind": "webhook", "name": "gone", "url": hook.srv.URL})
	require.Equal(t, http.StatusCreated, r.Status, "body: %s", r.Body)
	secret := r.JSON(t)["secret"].(string)
	hook.secret.Store(&secret)
	chID := int64(r.JSON(t)["id"].(float64))

	r = b.Do(t, http.MethodPost, fmt.Sprintf("/v1/channels/%d/test", chID), nil)
	p := requireProblem(t, r, http.StatusServiceUnavailable)
	require.Contains(t, p["detail"], "410")
	require.NotContains(t, string(r.Body), secret)

	url, status := flipTarget(t)
	id := int64(mustCreate(t, b, map[string]any{"name": "api", "url": url, "interval_seconds": 3600})["id"].(float64))
	runCheck(t, b, id, true)
	status.Store(http.StatusBadGateway)
	runCheck(t, b, id, false)

	var incID int64
	waitUntil(t, 60*time.Second, "the incident opens and its notification fails", func() (bool, string) {
		r := b.Do(t, http.MethodGet, "/v1/incidents?state=open", nil)
		items, _ := r.JSON(t)["items"].([]any)
		if len(items) != 1 {
			return false, string(r.Body)
		}
		incID = int64(items[0].(map[string]any)["id"].(float64))
		d := b.Do(t, http.MethodGet, fmt.Sprintf("/v1/incidents/%d", incID), nil)
		return strings.Contains(string(d.Body), `"notify_failed"`), string(d.Body)
	})
	d := b.Do(t, http.MethodGet, fmt.Sprintf("/v1/incidents/%d", incID), nil).JSON(t)
	var failed string
	for _, e := range d["timeline"].([]any) {
		if ev := e.(map[string]any); ev["kind"] == "notify_failed" {
			failed = ev["detail"].(string)
		}
	}
	require.Contains(t, failed, "410")
	require.NotContains(t, failed, secret)
	waitUntil(t, 30*time.Second, "the confirmation fails for its notification", func() (bool, string) {
		w := b.Do(t, http.MethodGet, fmt.Sprintf("/v1/workflows/%v", d["workflow_id"]), nil).JSON(t)
		return w["state"] == "failed", fmt.Sprint(w["state"], w["error"])
	})

	// Another user sees nothing of it.
	other := b.As(b.SignIn(t, "other@example.org", auth.RoleMember))
	for _, path := range []string{"/v1/incidents/%d", "/v1/incidents/%d/acknowledge", "/v1/incidents/%d/resolve"} {
		method := http.MethodPost
		if !strings.Contains(path, "/a") && !strings.Contains(path, "/r") {
			method = http.MethodGet
		}
		requireProblem(t, other.Do(t, method, fmt.Sprintf(path, incID), nil), http.StatusNotFound)
	}
	require.Empty(t, other.Do(t, http.MethodGet, "/v1/incidents", nil).JSON(t)["items"])
	requireProblem(t, other.Do(t, http.MethodPost, fmt.Sprintf("/v1/channels/%d/test", chID), nil), http.StatusNotFound)
	requireProblem(t, other.Do(t, http.MethodDelete, fmt.Sprintf("/v1/channels/%d", chID), nil), http.StatusNotFound)

	for range 2 {
		r := b.Do(t, http.MethodPost, fmt.Sprintf("/v1/incidents/%d/acknowledge", incID), nil)
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		require.Equal(t, "acknowledged", r.JSON(t)["state"])
	}
	r = b.Do(t, http.MethodPost, fmt.Sprintf("/v1/incidents/%d/resolve", incID), nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	require.Equal(t, "resolved", r.JSON(t)["state"])
	require.Equal(t, "manual", r.JSON(t)["resolution"])
	requireProblem(t, b.Do(t, http.MethodPost, fmt.Sprintf("/v1/incidents/%d/resolve", incID), nil), http.StatusConflict)
	requireProblem(t, b.Do(t, http.MethodPost, fmt.Sprintf("/v1/incidents/%d/acknowledge", incID), nil), http.StatusConflict)
	// The manual resolution notifies (and fails again, on the same channel).
	waitUntil(t, 30*time.Second, "the resolution's notification is tried", func() (bool, string) {
		items := workflowsOf(t, b, incidents.KindNotify)
		return len(items) == 1 && items[0].(map[string]any)["state"] != "running", fmt.Sprint(items)
	})
	require.Zero(t, hook.bad.Load())
}

func TestChannelValidation(t *testing.T) {
	b := platformtest.New(t, platformtest.Options{Modules: []platform.Module{monitorsapi.Module()}})
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"kind": "sms", "name": "x", "url": "https://example.com"}, "kind"},
		{map[string]any{"kind": "webhook", "name": "x", "url": "ftp://example.com/"}, "url"},
		{map[string]any{"kind": "webhook", "name": "x", "url": "https://user:pw@example.com/"}, "url"},
		{map[string]any{"kind": "webhook", "name": "x", "address": "a@example.com"}, "url"},
		{map[string]any{"kind": "email", "name": "x", "address": "not an address"}, "address"},
		{map[string]any{"kind": "email", "name": "x", "address": "a@example.com\r\nBcc: b@example.com"}, "address"},
		{map[string]any{"kind": "email", "name": "   ", "address": "a@example.com"}, "name"},
	} {
		r := b.Do(t, http.MethodPost, "/v1/channels", tc.body)
		p := requireProblem(t, r, http.StatusUnprocessableEntity)
		require.Contains(t, fmt.Sprint(p["errors"]), tc.field, "%v: %s", tc.body, r.Body)
	}
	for i := range incidents.MaxChannelsPerUser {
		r := b.Do(t, http.MethodPost, "/v1/channels", map[string]any{"kind": "email", "name": fmt.Sprint("c", i), "address": "ops@example.org"})
		require.Equal(t, http.StatusCreated, r.Status, "body: %s", r.Body)
	}
	r := b.Do(t, http.MethodPost, "/v1/channels", map[string]any{"kind": "email", "name": "one too many", "address": "ops@example.org"})
	requireProblem(t, r, http.StatusConflict)
	r = b.Do(t, http.MethodGet, "/v1/channels?limit=15", nil)
	require.Len(t, r.JSON(t)["items"], 15)
	next := r.JSON(t)["next_cursor"].(string)
	r = b.Do(t, http.MethodGet, "/v1/channels?limit=15&cursor="+next, nil)
	require.Len(t, r.JSON(t)["items"], 5)
	requireProblem(t, b.Do(t, http.MethodGet, "/v1/incidents?state=bogus", nil), http.StatusUnprocessableEntity)
	requireProblem(t, b.Do(t, http.MethodGet, "/v1/incidents/999", nil), http.StatusNotFound)
}
