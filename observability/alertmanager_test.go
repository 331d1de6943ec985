//go:build e2e

package observability_test

// Alertmanager for real (Debian's prometheus-alertmanager) with the
// repository's alertmanager.yml and templates, rewritten only for the SMTP
// address: alerts posted to its API must arrive as mails at a local SMTP sink,
// with a rendered body, through the receiver their severity routes them to,
// and an inhibited alert must not be mailed at all.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/beaconhq/beacon/internal/notify/smtptest"
)

func TestAlertmanagerDelivers(t *testing.T) {
	sink := smtptest.Start(t)
	am := startAlertmanager(t, sink.Addr())

	runbook := func(alert string) string {
		return "https://github.com/beaconhq/beacon/blob/main/docs/alerts.md#" + strings.ToLower(alert)
	}
	alert := func(labels map[string]string, summary string) amAlert {
		return amAlert{
			Labels: labels,
			Annotations: map[string]string{
				"summary":     summary,
				"description": "Description of " + labels["alertname"] + ".",
				"runbook_url": runbook(labels["alertname"]),
			},
		}
	}
	svc := func(labels map[string]string) map[string]string {
		labels["service_name"], labels["deployment_environment"] = "beacon", "production"
		return labels
	}
	alerts := []amAlert{
		// Routed by severity: page, ticket, and neither (default receiver).
		alert(map[string]string{"alertname": "BeaconRoleDown", "severity": "page", "job": "beacon-worker", "beacon_role": "worker"}, "Beacon worker is down"),
		alert(map[string]string{"alertname": "BeaconTargetDown", "severity": "ticket", "job": "node", "instance": "node-exporter:9100"}, "Prometheus cannot scrape node (node-exporter:9100)"),
		alert(map[string]string{"alertname": "BeaconUnclassified"}, "An alert without severity"),
		// Inhibited: consequences of the dead worker role...
		alert(svc(map[string]string{"alertname": "BeaconMonitorDown", "severity": "page"}), "2 enabled monitor(s) down"),
		alert(svc(map[string]string{"alertname": "BeaconJobBacklogOld", "severity": "page", "queue": "checks"}), "River queue checks has jobs waiting"),
		alert(map[string]string{"alertname": "BeaconTargetDown", "severity": "ticket", "job": "beacon-worker", "instance": "172.18.0.6:9464", "beacon_role": "worker"}, "Prometheus cannot scrape beacon-worker"),
		// ...and the slow burn of an SLO whose fast burn pages.
		alert(svc(map[string]string{"alertname": "BeaconAPIErrorBudgetBurnFast", "severity": "page", "slo": "api-availability"}), "beacon API is burning its error budget fast"),
		alert(svc(map[string]string{"alertname": "BeaconAPIErrorBudgetBurnSlow", "severity": "ticket", "slo": "api-availability"}), "beacon API is burning its error budget"),
		// Not inhibited: another SLO's slow burn (no page for it).
		alert(svc(map[string]string{"alertname": "BeaconAPILatencyBudgetBurnSlow", "severity": "ticket", "slo": "api-latency"}), "beacon API is burning its latency budget"),
	}
	am.post(t, alerts)

	// Alertmanager's own view: the receiver each alert routes to, and which are inhibited.
	wantReceiver := map[string]string{
		"BeaconRoleDown":                 "oncall-page",
		"BeaconTargetDown":               "oncall-ticket",
		"BeaconUnclassified":             "oncall-email",
		"BeaconMonitorDown":              "oncall-page",
		"BeaconJobBacklogOld":            "oncall-page",
		"BeaconAPIErrorBudgetBurnFast":   "oncall-page",
		"BeaconAPIErrorBudgetBurnSlow":   "oncall-ticket",
		"BeaconAPILatencyBudgetBurnSlow": "oncall-ticket",
	}
	wantInhibited := map[string]bool{
		"BeaconMonitorDown":              true,
		"BeaconJobBacklogOld":            true,
		"BeaconTargetDown/beacon-worker": true,
		"BeaconAPIErrorBudgetBurnSlow":   true,
		"BeaconTargetDown/node":          false,
		"BeaconAPILatencyBudgetBurnSlow": false,
		"BeaconRoleDown":                 false,
		"BeaconAPIErrorBudgetBurnFast":   false,
		"BeaconUnclassified":             false,
	}
	var last []amAlertStatus
	waitUntil(t, 30*time.Second, func() bool {
		last = am.alerts(t)
		return len(last) == len(alerts) && !slices.ContainsFunc(last, func(a amAlertStatus) bool { return a.Status.State == "unprocessed" })
	}, func() string { return fmt.Sprintf("alerts: %+v\nlog:\n%s", last, am.log.String()) })
	for _, a := range last {
		name := a.Labels["alertname"]
		require.Len(t, a.Receivers, 1, name)
		require.Equal(t, wantReceiver[name], a.Receivers[0].Name, "%s: receiver", name)
		key := name
		if name == "BeaconTargetDown" {
			key += "/" + a.Labels["job"]
		}
		want, ok := wantInhibited[key]
		require.True(t, ok, "unexpected alert %s", key)
		require.Equal(t, want, len(a.Status.InhibitedBy) > 0, "%s: inhibited (state %s, by %v)", key, a.Status.State, a.Status.InhibitedBy)
	}

	// The mails. Groups (by alertname and severity) wait 10 s for pages, 30 s for the
	// default route and 1 min for tickets: once the tickets' mails are in, every page
	// group has long been flushed, so an inhibited page that was not mailed never will be.
	wantMails := map[string]string{ // alertname -> subject prefix
		"BeaconRoleDown":                 "[PAGE] ",
		"BeaconAPIErrorBudgetBurnFast":   "[PAGE] ",
		"BeaconTargetDown":               "[TICKET] ",
		"BeaconAPILatencyBudgetBurnSlow": "[TICKET] ",
		"BeaconUnclassified":             "[FIRING:1] ",
	}
	var mails []smtptest.Mail
	waitUntil(t, 3*time.Minute, func() bool {
		mails = sink.Mails()
		return len(mails) >= len(wantMails)
	}, func() string {
		return fmt.Sprintf("mails so far:\n%s\nalertmanager log:\n%s", smtptest.Describe(mails), am.log.String())
	})

	byAlert := map[string]smtptest.Mail{}
	for _, m := range mails {
		require.Equal(t, []string{"oncall@beacon.local"}, m.To, "envelope recipients")
		require.Equal(t, "alertmanager@beacon.local", m.From, "envelope sender")
		name := firstAlertName(m.Text)
		require.NotEmpty(t, name, "mail without a rendered alert line:\n%s", m.Data)
		_, dup := byAlert[name]
		require.False(t, dup, "%s mailed twice:\n%s", name, smtptest.Describe(mails))
		byAlert[name] = m
	}
	for name, prefix := range wantMails {
		m, ok := byAlert[name]
		require.True(t, ok, "no mail for %s; mails:\n%s", name, smtptest.Describe(mails))
		require.True(t, strings.HasPrefix(m.Subject, prefix), "%s: subject %q, want prefix %q", name, m.Subject, prefix)
		require.Contains(t, m.Subject, name)
		// The text part is beacon.email.text, rendered: not headers only.
		sev := map[string]string{"[PAGE] ": "page", "[TICKET] ": "ticket", "[FIRING:1] ": ""}[prefix]
		require.Contains(t, m.Text, fmt.Sprintf("[FIRING] %s (%s)", name, sev), name)
		require.Contains(t, m.Text, "Description of "+name+".", name)
		require.Contains(t, m.Text, "Runbook: "+runbook(name), name)
		require.Contains(t, m.Text, "Labels: alertname="+name+" ", name)
		require.Contains(t, m.Text, "Since: ", name)
	}
	for _, name := range []string{"BeaconMonitorDown", "BeaconJobBacklogOld", "BeaconAPIErrorBudgetBurnSlow"} {
		_, mailed := byAlert[name]
		require.False(t, mailed, "%s is inhibited but was mailed:\n%s", name, byAlert[name].Data)
	}
	for _, m := range mails {
		require.NotContains(t, m.Text, "172.18.0.6:9464", "the dead role's scrape failure is inhibited:\n%s", m.Data)
	}
	require.NotContains(t, am.log.String(), "not defined", "a template is missing")
}

// ---- Alertmanager

type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
}

type amAlertStatus struct {
	Labels    map[string]string `json:"labels"`
	Receivers []struct {
		Name string `json:"name"`
	} `json:"receivers"`
	Status struct {
		State       string   `json:"state"`
		InhibitedBy []string `json:"inhibitedBy"`
	} `json:"status"`
}

type alertmanager struct {
	url string
	log *syncBuffer
}

// startAlertmanager runs prometheus-alertmanager with the repository's
// alertmanager.yml and templates (copied side by side, as compose mounts the
// folder), its SMTP smarthost pointed at smtpAddr.
func startAlertmanager(t *testing.T, smtpAddr string) *alertmanager {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		t.Fatal("prometheus-alertmanager not found on PATH: apt-get install prometheus-alertmanager")
	}
	src := filepath.Join("..", "observability", "alertmanager")
	raw, err := os.ReadFile(filepath.Join(src, "alertmanager.yml"))
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &cfg))
	global, ok := cfg["global"].(map[string]any)
	require.True(t, ok, "alertmanager.yml has no global section")
	require.Contains(t, global, "smtp_smarthost")
	global["smtp_smarthost"] = smtpAddr
	out, err := yaml.Marshal(cfg)
	require.NoError(t, err)

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "alertmanager.yml"), out, 0o600))
	require.NoError(t, os.CopyFS(filepath.Join(dir, "templates"), os.DirFS(filepath.Join(src, "templates"))))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()

	am := &alertmanager{url: "http://" + addr, log: &syncBuffer{}}
	cmd := exec.Command(bin,
		"--config.file="+filepath.Join(dir, "alertmanager.yml"),
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=",
		"--log.level=debug",
	)
	cmd.Stdout, cmd.Stderr = am.log, am.log
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("alertmanager log:\n%s", am.log.String())
		}
	})
	waitUntil(t, 60*time.Second, func() bool {
		select {
		case <-exited:
			t.Fatalf("alertmanager exited:\n%s", am.log.String())
		default:
		}
		resp, err := http.Get(am.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, func() string { return "alertmanager not ready; log:\n" + am.log.String() })
	return am
}

func (am *alertmanager) post(t *testing.T, alerts []amAlert) {
	t.Helper()
	now := time.Now().UTC()
	for i := range alerts {
		alerts[i].StartsAt, alerts[i].EndsAt = now, now.Add(time.Hour)
	}
	body, err := json.Marshal(alerts)
	require.NoError(t, err)
	resp, err := http.Post(am.url+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "POST /api/v2/alerts: %s", msg)
}

func (am *alertmanager) alerts(t *testing.T) []amAlertStatus {
	t.Helper()
	resp, err := http.Get(am.url + "/api/v2/alerts")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out []amAlertStatus
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

// ---- Mails

// firstAlertName reads the alert name of the first "[FIRING] Name (severity)"
// line of beacon.email.text.
func firstAlertName(text string) string {
	for line := range strings.Lines(text) {
		if rest, ok := strings.CutPrefix(line, "[FIRING] "); ok {
			name, _, _ := strings.Cut(rest, " ")
			return name
		}
	}
	return ""
}

// ---- helpers

// waitUntil polls cond until it holds or timeout passes, then fails with what
// describe says.
func waitUntil(t *testing.T, timeout time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s: %s", timeout, describe())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
