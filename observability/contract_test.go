//go:build e2e

// Package observability_test holds the telemetry contract tests (`make e2e`):
// everything that feeds Grafana, Tempo and Loki runs for real here (Beacon,
// the collector built from our manifest, Prometheus, the exporters), and
// every expression a dashboard or rule asks for must return data.
package observability_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/beaconhq/beacon/internal/pgtest"
)

// root is the repository root (tests run in observability/).
const root = ".."

func rootPath(parts ...string) string { return filepath.Join(append([]string{root}, parts...)...) }

func lookBinary(t *testing.T, name, hint string) string {
	t.Helper()
	if filepath.IsAbs(name) || strings.Contains(name, "/") {
		if _, err := os.Stat(name); err != nil {
			t.Fatalf("%s not found: %s", name, hint)
		}
		return name
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found on PATH: %s", name, hint)
	}
	return p
}

func collectorBinary(t *testing.T) string {
	p, err := filepath.Abs(rootPath("bin", "otelcol-beacon"))
	require.NoError(t, err)
	return lookBinary(t, p, "run `make collector` (or `make e2e`)")
}

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
	return string(out)
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// ---- Static checks of what cannot run here.

func TestCollectorConfigsValidate(t *testing.T) {
	bin := collectorBinary(t)
	env := []string{"TRACES_FILE=" + filepath.Join(t.TempDir(), "t.json"), "LOGS_FILE=" + filepath.Join(t.TempDir(), "l.json")}
	for _, variant := range [][]string{
		{"config.yaml"},
		{"config.yaml", "elastic.yaml"},
		{"config.yaml", "test-sinks.yaml"},
	} {
		args := []string{"validate"}
		for _, f := range variant {
			args = append(args, "--config", rootPath("otel-collector", f))
		}
		run(t, ".", env, bin, args...)
	}
}

func TestPrometheusConfigAndRules(t *testing.T) {
	promtool := lookBinary(t, "promtool", "apt-get install prometheus")
	run(t, rootPath("observability", "prometheus"), nil, promtool, "check", "config", "prometheus.yml")
	rules, err := filepath.Glob(rootPath("observability", "prometheus", "rules", "*.yml"))
	require.NoError(t, err)
	require.NotEmpty(t, rules)
	run(t, ".", nil, promtool, append([]string{"check", "rules"}, rules...)...)
	tests, err := filepath.Glob(rootPath("observability", "prometheus", "tests", "*.yml"))
	require.NoError(t, err)
	require.NotEmpty(t, tests)
	for i := range tests {
		tests[i], _ = filepath.Rel(rootPath("observability", "prometheus"), tests[i])
	}
	run(t, rootPath("observability", "prometheus"), nil, promtool, append([]string{"test", "rules"}, tests...)...)

	// Every alert has a unit test that makes it fire.
	tested := map[string]bool{}
	for _, f := range tests {
		raw, err := os.ReadFile(rootPath("observability", "prometheus", f))
		require.NoError(t, err)
		for _, m := range regexp.MustCompile(`alertname:\s*"?([A-Za-z0-9_]+)`).FindAllStringSubmatch(string(raw), -1) {
			tested[m[1]] = true
		}
	}
	for _, r := range loadRules(t) {
		if r.Alert != "" {
			require.True(t, tested[r.Alert], "alert %s has no promtool test", r.Alert)
		}
	}
}

func TestAlertmanagerConfig(t *testing.T) {
	amtool := lookBinary(t, "amtool", "apt-get install prometheus-alertmanager")
	run(t, ".", nil, amtool, "check-config", rootPath("observability", "alertmanager", "alertmanager.yml"))
}

type datasource struct {
	Name     string         `yaml:"name"`
	Type     string         `yaml:"type"`
	UID      string         `yaml:"uid"`
	JSONData map[string]any `yaml:"jsonData"`
}

func loadDatasources(t *testing.T) map[string]datasource {
	t.Helper()
	raw, err := os.ReadFile(rootPath("observability", "grafana", "provisioning", "datasources", "datasources.yaml"))
	require.NoError(t, err)
	var doc struct {
		Datasources []datasource `yaml:"datasources"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &doc))
	byUID := map[string]datasource{}
	for _, d := range doc.Datasources {
		require.NotEmpty(t, d.UID, "datasource %s has no fixed uid", d.Name)
		byUID[d.UID] = d
	}
	return byUID
}

// uidsIn collects every value of a "datasourceUid" or datasource "uid" key.
func uidsIn(v any, into map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && (k == "datasourceUid" || k == "uid" && x["type"] != nil) {
				into[s] = true
			}
			uidsIn(val, into)
		}
	case []any:
		for _, e := range x {
			uidsIn(e, into)
		}
	}
}

func TestGrafanaProvisioning(t *testing.T) {
	ds := loadDatasources(t)
	for _, uid := range []string{"prometheus", "tempo", "loki"} {
		require.Contains(t, ds, uid)
	}
	// The links between signals, by uid.
	prom, tempo, loki := ds["prometheus"].JSONData, ds["tempo"].JSONData, ds["loki"].JSONData
	require.NotEmpty(t, prom["exemplarTraceIdDestinations"], "metrics -> traces")
	require.NotEmpty(t, tempo["tracesToLogsV2"], "traces -> logs")
	require.NotEmpty(t, tempo["tracesToMetrics"], "traces -> metrics")
	require.NotEmpty(t, tempo["serviceMap"], "service map")
	require.NotEmpty(t, loki["derivedFields"], "logs -> traces")
	refs := map[string]bool{}
	for _, d := range ds {
		uidsIn(d.JSONData, refs)
	}
	for uid := range refs {
		require.Contains(t, ds, uid, "a datasource link names unknown uid %q", uid)
	}

	dashboards := loadDashboards(t)
	require.GreaterOrEqual(t, len(dashboards), 5)
	seen := map[string]string{}
	for name, d := range dashboards {
		uid, _ := d["uid"].(string)
		require.NotEmpty(t, uid, "%s has no fixed uid", name)
		require.NotContains(t, seen, uid, "%s and %s share uid %s", name, seen[uid], uid)
		seen[uid] = name
		used := map[string]bool{}
		uidsIn(d["panels"], used)
		for u := range used {
			if strings.HasPrefix(u, "$") || u == "-- Grafana --" || u == "grafana" {
				continue
			}
			require.Contains(t, ds, u, "%s uses unknown datasource uid %q", name, u)
		}
	}
}

func TestTempoAndLokiConfigs(t *testing.T) {
	var tempo map[string]any
	raw, err := os.ReadFile(rootPath("observability", "tempo", "tempo.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, &tempo))
	for _, gone := range []string{"ingester", "compactor"} {
		require.NotContains(t, tempo, gone, "Tempo 3 has no %s block", gone)
	}
	require.NotNil(t, dig(tempo, "server", "http_listen_port"), "Grafana's Tempo datasource talks to :3200")
	require.NotNil(t, dig(tempo, "distributor", "receivers", "otlp"), "the collector sends OTLP")
	require.NotNil(t, dig(tempo, "storage", "trace", "backend"))
	// Span metrics come from the collector; Tempo makes the service graph
	// only, or every span would be counted twice.
	procs := fmt.Sprint(dig(tempo, "overrides", "defaults", "metrics_generator", "processors"))
	require.Contains(t, procs, "service-graphs")
	require.NotContains(t, procs, "span-metrics")
	collector, err := os.ReadFile(rootPath("otel-collector", "config.yaml"))
	require.NoError(t, err)
	require.Contains(t, string(collector), "span_metrics:")

	var loki map[string]any
	raw, err = os.ReadFile(rootPath("observability", "loki", "loki.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, &loki))
	require.Equal(t, false, loki["auth_enabled"])
	require.Equal(t, true, dig(loki, "limits_config", "allow_structured_metadata"), "OTLP logs keep trace_id in structured metadata")
	require.Contains(t, fmt.Sprint(dig(loki, "schema_config")), "v13")
	require.NotNil(t, dig(loki, "common", "storage"))
}

func dig(m map[string]any, keys ...string) any {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

// ---- Rules and dashboards as data.

type rule struct {
	Record string `yaml:"record"`
	Alert  string `yaml:"alert"`
	Expr   string `yaml:"expr"`
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	files, err := filepath.Glob(rootPath("observability", "prometheus", "rules", "*.yml"))
	require.NoError(t, err)
	var rules []rule
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		var doc struct {
			Groups []struct {
				Rules []rule `yaml:"rules"`
			} `yaml:"groups"`
		}
		require.NoError(t, yaml.Unmarshal(raw, &doc), f)
		for _, g := range doc.Groups {
			rules = append(rules, g.Rules...)
		}
	}
	return rules
}

func loadDashboards(t *testing.T) map[string]map[string]any {
	t.Helper()
	files, err := filepath.Glob(rootPath("observability", "grafana", "dashboards", "*.json"))
	require.NoError(t, err)
	out := map[string]map[string]any{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		var d map[string]any
		require.NoError(t, json.Unmarshal(raw, &d), f)
		out[filepath.Base(f)] = d
	}
	return out
}

type panelQuery struct {
	where, expr string
}

// promQueries returns every Prometheus target expression of every panel
// (rows' nested panels included).
func promQueries(name string, d map[string]any) []panelQuery {
	var out []panelQuery
	var walk func(panels []any)
	walk = func(panels []any) {
		for _, p := range panels {
			pm, _ := p.(map[string]any)
			if nested, ok := pm["panels"].([]any); ok {
				walk(nested)
			}
			title, _ := pm["title"].(string)
			panelDS, _ := pm["datasource"].(map[string]any)
			targets, _ := pm["targets"].([]any)
			for _, tg := range targets {
				tm, _ := tg.(map[string]any)
				ds, _ := tm["datasource"].(map[string]any)
				if ds == nil {
					ds = panelDS
				}
				if ds != nil && ds["uid"] != "prometheus" {
					continue
				}
				if expr, _ := tm["expr"].(string); strings.TrimSpace(expr) != "" {
					out = append(out, panelQuery{where: name + " / " + title, expr: expr})
				}
			}
		}
	}
	panels, _ := d["panels"].([]any)
	walk(panels)
	return out
}

var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m", "${__rate_interval}", "1m",
	"$__interval", "1m", "${__interval}", "1m",
	"$__range", "5m", "${__range}", "5m",
)

var templateVar = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*\}?`)

func substitute(expr string) string {
	return templateVar.ReplaceAllString(grafanaVars.Replace(expr), ".*")
}

// ---- The live stack.

type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
}

type stack struct {
	t       *testing.T
	dir     string
	mu      sync.Mutex
	procs   []*proc
	addr    map[string]string
	beacon  string
	token   string
	traces  string
	logs    string
	promURL string
}

func (s *stack) start(name string, env []string, bin string, args ...string) {
	s.t.Helper()
	logf, err := os.Create(filepath.Join(s.dir, name+".log"))
	require.NoError(s.t, err)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(s.t, cmd.Start(), name)
	s.mu.Lock()
	s.procs = append(s.procs, &proc{name: name, cmd: cmd, log: logf})
	s.mu.Unlock()
}

// stopProc stops one process of the stack, as an outage would.
func (s *stack) stopProc(name string) {
	s.t.Helper()
	for _, p := range s.procs {
		if p.name == name {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
			return
		}
	}
	s.t.Fatalf("no process %s", name)
}

func (s *stack) stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		_ = p.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
		p.log.Close()
	}
}

// waitHTTP waits for url to answer 2xx, failing with the process log if not.
func (s *stack) waitHTTP(name, url string) {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	logs, _ := os.ReadFile(filepath.Join(s.dir, name+".log"))
	s.t.Fatalf("%s never answered at %s; its log:\n%s", name, url, tail(string(logs), 4000))
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// promConfig rewrites prometheus.yml for this run: the same jobs, labels and
// rules, with each job's target pointed at the local process and shorter
// intervals so a test sees several scrapes.
func (s *stack) promConfig(targets map[string]string) string {
	s.t.Helper()
	raw, err := os.ReadFile(rootPath("observability", "prometheus", "prometheus.yml"))
	require.NoError(s.t, err)
	var cfg map[string]any
	require.NoError(s.t, yaml.Unmarshal(raw, &cfg))
	global, _ := cfg["global"].(map[string]any)
	if global == nil {
		global = map[string]any{}
	}
	global["scrape_interval"], global["evaluation_interval"], global["scrape_timeout"] = "2s", "2s", "2s"
	cfg["global"] = global
	jobs, _ := cfg["scrape_configs"].([]any)
	seen := map[string]bool{}
	for _, j := range jobs {
		jm := j.(map[string]any)
		name := jm["job_name"].(string)
		target, ok := targets[name]
		require.True(s.t, ok, "prometheus.yml has job %q that the test does not run", name)
		seen[name] = true
		jm["scrape_interval"] = "2s"
		if _, ok := jm["scrape_timeout"]; ok {
			jm["scrape_timeout"] = "2s"
		}
		statics, _ := jm["static_configs"].([]any)
		require.Len(s.t, statics, 1, "job %s: one static_config expected", name)
		sc := statics[0].(map[string]any)
		sc["targets"] = []any{target}
	}
	for name := range targets {
		require.True(s.t, seen[name], "prometheus.yml lacks job %q", name)
	}
	if al, ok := cfg["alerting"].(map[string]any); ok {
		for _, am := range al["alertmanagers"].([]any) {
			for _, sc := range am.(map[string]any)["static_configs"].([]any) {
				sc.(map[string]any)["targets"] = []any{targets["alertmanager"]}
			}
		}
	}
	// Rule files: absolute paths to the repository's.
	rulesDir, err := filepath.Abs(rootPath("observability", "prometheus", "rules"))
	require.NoError(s.t, err)
	cfg["rule_files"] = []any{filepath.Join(rulesDir, "*.yml")}
	out, err := yaml.Marshal(cfg)
	require.NoError(s.t, err)
	path := filepath.Join(s.dir, "prometheus.yml")
	require.NoError(s.t, os.WriteFile(path, out, 0o644))
	return path
}

func startStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{t: t, dir: t.TempDir(), addr: map[string]string{}}
	t.Cleanup(s.stop)
	for _, n := range []string{"otlp", "otlphttp", "apps", "collector", "health", "postgres-exporter", "node", "prometheus", "alertmanager", "alertmanager-cluster", "api", "ops"} {
		s.addr[n] = freePort(t)
	}
	s.addr["dashboard"] = freePort(t)
	s.traces = filepath.Join(s.dir, "traces.json")
	s.logs = filepath.Join(s.dir, "logs.json")

	// PostgreSQL: a fresh database on the test server, and its exporter.
	dbURL := pgtest.NewEmptyURL(t)
	s.start("postgres-exporter", []string{"DATA_SOURCE_NAME=" + dbURL},
		lookBinary(t, "prometheus-postgres-exporter", "apt-get install prometheus-postgres-exporter"),
		"--web.listen-address="+s.addr["postgres-exporter"])
	s.start("node", nil, lookBinary(t, "prometheus-node-exporter", "apt-get install prometheus-node-exporter"),
		"--web.listen-address="+s.addr["node"])

	// The collector built from our manifest, with file sinks for traces and logs.
	host, port, _ := net.SplitHostPort(s.addr["collector"])
	s.start("collector", []string{
		"OTLP_GRPC_ENDPOINT=" + s.addr["otlp"], "OTLP_HTTP_ENDPOINT=" + s.addr["otlphttp"],
		"PROMETHEUS_EXPORTER_ENDPOINT=" + s.addr["apps"],
		"COLLECTOR_METRICS_HOST=" + host, "COLLECTOR_METRICS_PORT=" + port,
		"HEALTH_CHECK_ENDPOINT=" + s.addr["health"],
		"TRACES_FILE=" + s.traces, "LOGS_FILE=" + s.logs,
	}, collectorBinary(t), "--config", rootPath("otel-collector", "config.yaml"), "--config", rootPath("otel-collector", "test-sinks.yaml"))
	s.waitHTTP("collector", "http://"+s.addr["health"]+"/")

	amDir := filepath.Join(s.dir, "alertmanager")
	require.NoError(t, os.MkdirAll(amDir, 0o755))
	s.start("alertmanager", nil, lookBinary(t, "prometheus-alertmanager", "apt-get install prometheus-alertmanager"),
		"--config.file="+rootPath("observability", "alertmanager", "alertmanager.yml"),
		"--storage.path="+amDir, "--web.listen-address="+s.addr["alertmanager"],
		"--cluster.listen-address=")

	// Beacon, exporting to the collector.
	bin := filepath.Join(s.dir, "beacon")
	run(t, root, nil, "go", "build", "-o", bin, "./cmd/beacon")
	s.start("beacon", []string{
		"DATABASE_URL=" + dbURL,
		"BEACON_HTTP_ADDR=" + s.addr["api"], "BEACON_OPS_ADDR=" + s.addr["ops"], "BEACON_DASHBOARD_ADDR=" + s.addr["dashboard"],
		"BEACON_CHECK_ALLOW_CIDRS=127.0.0.0/8", "BEACON_SCHEDULER_INTERVAL=1s", "BEACON_LOG_FORMAT=json",
		"BEACON_LOG_LEVEL=debug",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + s.addr["otlp"], "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_BSP_SCHEDULE_DELAY=200", "OTEL_BLRP_SCHEDULE_DELAY=200", "OTEL_METRIC_EXPORT_INTERVAL=2000",
		"OTEL_RESOURCE_ATTRIBUTES=deployment.environment=e2e",
	}, bin, "all")
	s.beacon = "http://" + s.addr["api"]
	s.waitHTTP("beacon", s.beacon+"/readyz")
	s.signIn()

	// Prometheus 2.42 (Debian) with the repository's config, rewritten.
	promDir := filepath.Join(s.dir, "prometheus-data")
	cfg := s.promConfig(map[string]string{
		"collector-apps": s.addr["apps"], "collector": s.addr["collector"],
		"postgres": s.addr["postgres-exporter"], "node": s.addr["node"],
		"prometheus": s.addr["prometheus"], "alertmanager": s.addr["alertmanager"],
	})
	s.start("prometheus", nil, lookBinary(t, "prometheus", "apt-get install prometheus"),
		"--config.file="+cfg, "--storage.tsdb.path="+promDir,
		"--web.listen-address="+s.addr["prometheus"], "--enable-feature=exemplar-storage")
	s.promURL = "http://" + s.addr["prometheus"]
	s.waitHTTP("prometheus", s.promURL+"/-/ready")
	return s
}

// signIn gets an access token for the development admin, once: /readyz
// answered 200, so the first admin exists, and failed sign-ins count
// towards the account's limit, so they are never retried in a loop.
func (s *stack) signIn() {
	s.t.Helper()
	resp, err := http.PostForm(s.beacon+"/v1/oauth/token", url.Values{
		"grant_type": {"password"}, "username": {"admin@beacon.local"}, "password": {"beacon-dev-password"}})
	require.NoError(s.t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &tok) != nil || tok.AccessToken == "" {
		s.t.Fatalf("sign in as the development admin: %d %s", resp.StatusCode, body)
	}
	s.token = tok.AccessToken
}

func (s *stack) api(method, path, body string) (int, map[string]any) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.beacon+path, strings.NewReader(body))
	require.NoError(s.t, err)
	req.Header.Set("Content-Type", "application/json")
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// drive sends the traffic the dashboards describe: monitors up and down,
// checks on schedule and on demand, reads, and client errors.
func (s *stack) drive(up, down string) {
	s.t.Helper()
	var ids []string
	for i, u := range []string{up, down} {
		code, m := s.api(http.MethodPost, "/v1/monitors", fmt.Sprintf(`{"name":"m%d","url":%q,"interval_seconds":10}`, i, u))
		require.Equal(s.t, http.StatusCreated, code, "%v", m)
		ids = append(ids, fmt.Sprint(int64(m["id"].(float64))))
	}
	for range 3 {
		for _, id := range ids {
			code, m := s.api(http.MethodPost, "/v1/monitors/"+id+"/checks?wait=10", "")
			require.Equal(s.t, http.StatusOK, code, "%v", m)
			s.api(http.MethodGet, "/v1/monitors/"+id, "")
			s.api(http.MethodGet, "/v1/monitors/"+id+"/results", "")
			s.api(http.MethodGet, "/v1/monitors/"+id+"/stats", "")
		}
		s.api(http.MethodGet, "/v1/monitors", "")
		s.api(http.MethodGet, "/v1/monitors/999999", "")                      // 404
		s.api(http.MethodPost, "/v1/monitors", `{"name":"","url":"ftp://x"}`) // 422
	}
}

type promResult struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Data   struct {
		Result []json.RawMessage `json:"result"`
	} `json:"data"`
}

func (s *stack) query(expr string) (int, error) {
	resp, err := http.Get(s.promURL + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r promResult
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("%s", r.Error)
	}
	return len(r.Data.Result), nil
}

// onlyUnderFailure lists metric names that legitimately have no series in
// this run, with the reason; an expression or alert selector naming one may
// return nothing. Keep it short: an entry here is checked only statically.
var onlyUnderFailure = map[string]string{
	"otelcol_exporter_queue_":       "only exporters with a sending queue report it (Tempo's and Loki's); the test swaps them for file exporters",
	"otelcol_exporter_send_failed_": "appears only once an export has finally failed, after 5 minutes of retries",
	"otelcol_receiver_refused_":     "appears only when the memory limiter refuses data",
}

// excused returns the reason expr may have no data, if any.
func excused(expr string) (string, bool) {
	for name, reason := range onlyUnderFailure {
		if strings.Contains(expr, name) {
			return reason, true
		}
	}
	return "", false
}

// alertsNotDriven lists alerts the run does not drive into firing, with the
// reason; their selectors must still match real series, and each has a
// firing case in the promtool unit tests.
var alertsNotDriven = map[string]string{
	"BeaconAPIErrorBudgetBurnFast":   "needs an hour of 5xx above 14.4x the 0.5% budget",
	"BeaconAPIErrorBudgetBurnSlow":   "needs six hours of 5xx above 6x the budget",
	"BeaconAPILatencyBudgetBurnFast": "needs an hour of requests slower than 0.5 s above 14.4x the 1% budget",
	"BeaconAPILatencyBudgetBurnSlow": "needs six hours of slow requests above 6x the budget",
	"BeaconJobFailureRateHigh":       "needs 10 minutes of more than 10% of jobs failing (checks only fail on infrastructure errors)",
	"BeaconJobBacklogOld":            "needs a job waiting more than 5 minutes",
	"BeaconCollectorExportFailing":   "needs 5 minutes of failed exports",
	"BeaconCollectorRefusingData":    "needs the memory limiter to refuse data",
	"BeaconCollectorQueueNearlyFull": "the test's file exporters have no queue",
}

var selectorPattern = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*\{[^{}]*\}`)

func TestTelemetryContract(t *testing.T) {
	s := startStack(t)
	upTarget := startTarget(t, http.StatusOK)
	downTarget := startTarget(t, http.StatusInternalServerError)
	s.drive(upTarget, downTarget)

	// Span metrics flush every 15 s and scrapes run every 2 s: give every
	// rate window two samples and every exporter a flush.
	waitFor(t, 90*time.Second, "span metrics reach Prometheus", func() bool {
		n, err := s.query(`traces_span_metrics_calls_total`)
		return err == nil && n > 0
	})
	time.Sleep(10 * time.Second)
	s.drive(upTarget, downTarget)
	time.Sleep(6 * time.Second)

	t.Run("dashboards", func(t *testing.T) {
		for name, d := range loadDashboards(t) {
			for _, q := range promQueries(name, d) {
				expr := substitute(q.expr)
				n, err := s.query(expr)
				require.NoError(t, err, "%s: %s", q.where, expr)
				if n == 0 {
					if reason, ok := excused(q.expr); ok {
						t.Logf("%s: no data (%s)", q.where, reason)
						continue
					}
				}
				require.Positive(t, n, "%s returns no data: %s", q.where, expr)
			}
		}
	})

	t.Run("recording rules", func(t *testing.T) {
		waitFor(t, 30*time.Second, "rules evaluated", func() bool {
			for _, r := range loadRules(t) {
				if _, ok := excused(r.Expr); r.Record != "" && !ok {
					if n, err := s.query(r.Record); err != nil || n == 0 {
						return false
					}
				}
			}
			return true
		})
		for _, r := range loadRules(t) {
			if r.Record == "" {
				continue
			}
			n, err := s.query(r.Record)
			require.NoError(t, err)
			if n == 0 {
				if reason, ok := excused(r.Expr); ok {
					t.Logf("recording rule %s: no data (%s)", r.Record, reason)
					continue
				}
			}
			require.Positive(t, n, "recording rule %s has no data (expr %s)", r.Record, r.Expr)
		}
	})

	t.Run("alert selectors", func(t *testing.T) {
		for _, r := range loadRules(t) {
			if r.Alert == "" {
				continue
			}
			_, err := s.query(r.Expr)
			require.NoError(t, err, "alert %s does not parse on Prometheus: %s", r.Alert, r.Expr)
			// Every selector names series that exist: a renamed metric or
			// label would otherwise make the alert silently unable to fire.
			for _, sel := range selectorPattern.FindAllString(r.Expr, -1) {
				n, err := s.query("count(" + sel + ")")
				require.NoError(t, err)
				if n == 0 {
					if reason, ok := excused(sel); ok {
						t.Logf("alert %s: %s has no series (%s)", r.Alert, sel, reason)
						continue
					}
				}
				require.Positive(t, n, "alert %s selects nothing: %s", r.Alert, sel)
			}
		}
	})

	// Drive failures: a monitor is already down; now stop the node and the
	// PostgreSQL exporters, as an outage would.
	s.stopProc("node")
	s.stopProc("postgres-exporter")
	waitFor(t, 60*time.Second, "target and database alerts", func() bool {
		a := s.alerts(t)
		return a["BeaconTargetDown"] && a["BeaconPostgresDown"] && a["BeaconMonitorDown"]
	})

	t.Run("alerts fire or are listed", func(t *testing.T) {
		firing := s.alerts(t)
		for _, r := range loadRules(t) {
			if r.Alert == "" || firing[r.Alert] {
				continue
			}
			reason, ok := alertsNotDriven[r.Alert]
			require.True(t, ok, "alert %s was neither driven into firing nor listed with a reason", r.Alert)
			t.Logf("alert %s not driven: %s", r.Alert, reason)
		}
	})

	t.Run("exemplars", func(t *testing.T) {
		for _, metric := range []string{"beacon_check_duration_seconds_bucket", "http_server_request_duration_seconds_bucket"} {
			resp, err := http.Get(s.promURL + "/api/v1/query_exemplars?query=" + url.QueryEscape(metric) +
				fmt.Sprintf("&start=%d&end=%d", time.Now().Add(-10*time.Minute).Unix(), time.Now().Unix()))
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Contains(t, string(body), "trace_id", "no exemplars on %s: %s", metric, body)
		}
	})

	t.Run("traces", func(t *testing.T) {
		s.requireCheckTrace(t)
	})

	t.Run("logs", func(t *testing.T) {
		waitFor(t, 20*time.Second, "logs with trace ids", func() bool { return s.logsWithTraceID() > 0 })
	})
}

func (s *stack) alerts(t *testing.T) map[string]bool {
	resp, err := http.Get(s.promURL + "/api/v1/alerts")
	require.NoError(t, err)
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
	out := map[string]bool{}
	for _, a := range r.Data.Alerts {
		out[a.Labels["alertname"]] = true // pending or firing: the expression matched
	}
	return out
}

// otlpLines reads the collector's file exporter output (one OTLP JSON
// document per line).
func otlpLines(t *testing.T, path string) []map[string]any {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

type span struct {
	TraceID, SpanID, ParentSpanID, Name string
	Kind                                float64
}

func (s *stack) spans(t *testing.T) []span {
	var out []span
	for _, doc := range otlpLines(t, s.traces) {
		for _, rs := range asSlice(doc["resourceSpans"]) {
			for _, ss := range asSlice(asMap(rs)["scopeSpans"]) {
				for _, sp := range asSlice(asMap(ss)["spans"]) {
					m := asMap(sp)
					k, _ := m["kind"].(float64)
					out = append(out, span{TraceID: str(m["traceId"]), SpanID: str(m["spanId"]), ParentSpanID: str(m["parentSpanId"]), Name: str(m["name"]), Kind: k})
				}
			}
		}
	}
	return out
}

// requireCheckTrace finds a trace that holds the API request, River's insert
// and work spans and the outbound check: propagation API -> River -> check.
func (s *stack) requireCheckTrace(t *testing.T) {
	var names map[string][]string
	defer func() {
		if t.Failed() {
			t.Logf("span names by trace: %v", names)
		}
	}()
	waitFor(t, 20*time.Second, "a complete check trace", func() bool {
		byTrace := map[string]map[string]bool{}
		for _, sp := range s.spans(t) {
			if byTrace[sp.TraceID] == nil {
				byTrace[sp.TraceID] = map[string]bool{}
			}
			byTrace[sp.TraceID][sp.Name] = true
		}
		names = map[string][]string{}
		for id, set := range byTrace {
			if set["POST /v1/monitors/{id}/checks"] && set["river.insert_many"] && set["river.work/check"] && (set["HTTP GET"] || set["GET"]) {
				return true
			}
			for n := range set {
				names[id] = append(names[id], n)
			}
		}
		return false
	})
}

func (s *stack) logsWithTraceID() int {
	n := 0
	for _, doc := range otlpLines(s.t, s.logs) {
		for _, rl := range asSlice(doc["resourceLogs"]) {
			for _, sl := range asSlice(asMap(rl)["scopeLogs"]) {
				for _, lr := range asSlice(asMap(sl)["logRecords"]) {
					if str(asMap(lr)["traceId"]) != "" {
						n++
					}
				}
			}
		}
	}
	return n
}

func asSlice(v any) []any        { s, _ := v.([]any); return s }
func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }
func str(v any) string           { s, _ := v.(string); return s }

func startTarget(t *testing.T, status int) string {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) })}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return "http://" + ln.Addr().String() + "/"
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
