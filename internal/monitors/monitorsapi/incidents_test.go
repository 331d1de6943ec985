package monitorsapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/beaconhq/beacon/internal/monitors/monitorsapi"
	"github.com/beaconhq/beacon/internal/notify"
	"github.com/beaconhq/beacon/internal/notify/smtptest"
	"github.com/beaconhq/beacon/internal/platform"
	"github.com/beaconhq/beacon/internal/platform/platformtest"
	"github.com/beaconhq/beacon/internal/workflow/workflowapi"
)

// hookReceiver is a webhook endpoint that keeps the deliveries whose
// signature verifies with its secret, and counts the others.
type hookReceiver struct {
	srv    *httptest.Server
	secret atomic.Pointer[string]
	status atomic.Int32 // answer (200 unless set)
	bad    atomic.Int32

	mu         sync.Mutex
	deliveries []delivery
}

type delivery struct {
	Event, ID string
	Data      map[string]any
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	h.status.Store(http.StatusOK)
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		secret := h.secret.Load()
		if secret == nil || notify.Verify([]byte(*secret), r.Header.Get("Beacon-Signature"), body, time.Now(), 5*time.Minute) != nil {
			h.bad.Add(1)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var env struct {
			Event string         `json:"event"`
			ID    string         `json:"id"`
			Data  map[string]any `json:"data"`
		}
		if err := json.Unmarshal(body, &env); err != nil || env.Event != r.Header.Get("Beacon-Event") {
			h.bad.Add(1)
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.deliveries = append(h.deliveries, delivery{Event: env.Event, ID: env.ID, Data: env.Data})
		h.mu.Unlock()
		w.WriteHeader(int(h.status.Load()))
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) events() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, d := range h.deliveries {
		out = append(out, d.Event)
	}
	return out
}

// waitUntil polls cond until it reports done, failing with what it last
// said after timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// An outage end to end: a target goes down, the re-checks confirm it, an
// incident opens, a signed webhook and an email go out; the target comes
// back, the incident is resolved and both channels hear of it. The
// detecting check, every step and every delivery are one trace.
func TestIncidentEndToEnd(t *testing.T) {
	mem := newMemTelemetry(t)
	sink := smtptest.Start(t)
	b := platformtest.New(t, platformtest.Options{
		Modules: []platform.Module{monitorsapi.Module(), workflowapi.Module()}, Work: true, Telemetry: mem.tel,
		Env: map[string]string{
			"BEACON_INCIDENT_CONFIRMATIONS": "3", "BEACON_INCIDENT_CONFIRM_SPACING": "1s",
			"BEACON_SMTP_ADDR": sink.Addr(), "BEACON_SMTP_TLS": "none", "BEACON_SMTP_FROM": "beacon@example.org",
		},
	})
	var status atomic.Int32
	status.Store(http.StatusOK)
	url := target(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(int(status.Load())) })
	hook := newHookReceiver(t)

	r := b.Do(t, http.MethodPost, "/v1/channels", map[string]any{"kind": "webhook", "name": "hook", "url": hook.srv.URL + "/beacon"})
	require.Equal(t, http.StatusCreated, r.Status, "body: %s", r.Body)
	secret, _ := r.JSON(t)["secret"].(string)
	require.True(t, strings.HasPrefix(secret, "whsec_"), "secret: %q", secret)
	hook.secret.Store(&secret)
	r = b.Do(t, http.MethodPost, "/v1/channels", map[string]any{"kind": "email", "name": "ops", "address": "ops@example.org"})
	require.Equal(t, http.StatusCreated, r.Status, "body: %s", r.Body)
	require.NotContains(t, r.JSON(t), "secret")
	r = b.Do(t, http.MethodGet, "/v1/channels", nil)
	require.Equal(t, http.StatusOK, r.Status)
	require.NotContains(t, string(r.Body), secret, "a secret is shown only at creation")

	m := mustCreate(t, b, map[string]any{"name": "shop", "url": url, "interval_seconds": 3600, "public_slug": "shop-status"})
	id := int64(m["id"].(float64))
	check := func(want bool) {
		t.Helper()
		r := b.Do(t, http.MethodPost, fmt.Sprintf("/v1/monitors/%d/checks?wait=30", id), nil)
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		require.Equal(t, want, r.JSON(t)["result"].(map[string]any)["ok"], "body: %s", r.Body)
	}
	check(true)
	status.Store(http.StatusServiceUnavailable)
	check(false) // up -> down: the confirmation starts

	var incident map[string]any
	waitUntil(t, 90*time.Second, "an incident opens", func() (bool, string) {
		r := b.Do(t, http.MethodGet, "/v1/incidents?state=active", nil)
		items, _ := r.JSON(t)["items"].([]any)
		if len(items) != 1 {
			return false, string(r.Body)
		}
		incident = items[0].(map[string]any)
		return true, ""
	})
	require.Equal(t, "open", incident["state"])
	require.Equal(t, "HTTP 503", incident["cause"])
	require.Equal(t, "shop", incident["monitor_name"])
	incID := int64(incident["id"].(float64))

	waitUntil(t, 60*time.Second, "the webhook and the email announce it", func() (bool, string) {
		mails := sink.Mails()
		ok := slices.Contains(hook.events(), "incident.opened") && len(mails) >= 1
		wf := b.Do(t, http.MethodGet, fmt.Sprintf("/v1/workflows/%v", incident["workflow_id"]), nil)
		return ok, fmt.Sprintf("webhook events %v (bad %d), mails: %s; workflow: %s", hook.events(), hook.bad.Load(),
			smtptest.Describe(mails), wf.Body)
	})
	mail := sink.Mails()[0]
	require.Equal(t, []string{"ops@example.org"}, mail.To)
	require.Contains(t, mail.Subject, "DOWN: shop")
	require.Contains(t, mail.Text, "HTTP 503")
	require.Zero(t, hook.bad.Load(), "every delivery is signed with the channel's secret")

	// The public status page shows it, without its cause.
	r = b.As("").Do(t, http.MethodGet, "/v1/public/status/shop-status", nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	pub := r.JSON(t)["incidents"].([]any)
	require.Len(t, pub, 1)
	require.Equal(t, "open", pub[0].(map[string]any)["state"])
	require.NotContains(t, string(r.Body), "503")

	// Acknowledged: someone is on it.
	r = b.Do(t, http.MethodPost, fmt.Sprintf("/v1/incidents/%d/acknowledge", incID), nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	require.Equal(t, "acknowledged", r.JSON(t)["state"])

	// The target recovers: the next check resolves the incident.
	status.Store(http.StatusOK)
	check(true)
	waitUntil(t, 60*time.Second, "both channels hear of the recovery", func() (bool, string) {
		mails := sink.Mails()
		ok := slices.Contains(hook.events(), "incident.resolved") && len(mails) >= 2
		return ok, fmt.Sprintf("webhook events %v, mails: %s", hook.events(), smtptest.Describe(mails))
	})
	require.Contains(t, sink.Mails()[1].Subject, "RESOLVED: shop")

	var detail map[string]any
	waitUntil(t, 30*time.Second, "the timeline is complete", func() (bool, string) {
		r := b.Do(t, http.MethodGet, fmt.Sprintf("/v1/incidents/%d", incID), nil)
		detail = r.JSON(t)
		var kinds []string
		for _, e := range detail["timeline"].([]any) {
			kinds = append(kinds, e.(map[string]any)["kind"].(string))
		}
		notified := 0
		for _, k := range kinds {
			if k == "notified" {
				notified++
			}
		}
		return notified == 4 && kinds[0] == "detected" && slices.Contains(kinds, "resolved"), fmt.Sprint(kinds)
	})
	require.Equal(t, "resolved", detail["state"])
	require.Equal(t, "recovered", detail["resolution"])

	// Its workflow: three re-checks, the decision, two notifications.
	// (A step writes the timeline before the engine completes it: the
	// workflow may end a moment after its last notification shows.)
	wf := int64(detail["workflow_id"].(float64))
	var w map[string]any
	waitUntil(t, 30*time.Second, "the confirmation workflow ends", func() (bool, string) {
		r := b.Do(t, http.MethodGet, fmt.Sprintf("/v1/workflows/%d", wf), nil)
		w = r.JSON(t)
		return w["state"] != "running", string(r.Body)
	})
	require.Equal(t, "incident.confirm", w["kind"])
	require.Equal(t, "succeeded", w["state"], "workflow: %v", w)
	require.Len(t, w["steps"], 6)
	require.Equal(t, true, w["result"].(map[string]any)["confirmed"])

	// One trace: the check that saw the outage, the confirmation's steps,
	// the deliveries, and the notifications of the recovery.
	waitUntil(t, 30*time.Second, "the incident's trace holds every step", func() (bool, string) {
		require.NoError(t, mem.tel.ForceFlush(t.Context()))
		byTrace := map[trace.TraceID][]string{}
		for _, s := range mem.spans.GetSpans() {
			byTrace[s.SpanContext.TraceID()] = append(byTrace[s.SpanContext.TraceID()], s.Name)
		}
		for _, names := range byTrace {
			steps, checks, posts := 0, 0, 0
			for _, n := range names {
				switch {
				case strings.Contains(n, "workflow_step"):
					steps++
				case n == "river.work/check":
					checks++
				case n == "HTTP POST": // a webhook delivery
					posts++
				}
			}
			if steps > 0 {
				// 3 re-checks + decide + 2 notifications, then 2 for the recovery.
				return steps >= 8 && checks >= 1 && posts >= 2, fmt.Sprintf("one trace has %d step spans, %d check spans, %d POSTs: %v",
					steps, checks, posts, names)
			}
		}
		return false, fmt.Sprintf("no trace with workflow steps among %d traces", len(byTrace))
	})
}
