//go:build e2e

// Package observability_test holds the telemetry contract tests (`make e2e`):
// everything that feeds Grafana, Tempo and Loki runs for real here, at the
// versions compose runs: Beacon's roles as separate processes, the collector
// built from our manifest (compose builds the same one, otel-collector/Dockerfile),
// Prometheus v3 and the exporters built from the Go module proxy at compose's
// image versions (scripts/build-prometheus.sh). Every expression a dashboard
// or rule asks for must return finite data, and every alert must fire
// (state firing) from a real condition or be listed with the reason it cannot.
package observability_test

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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

// builtBinary is one of scripts/build-prometheus.sh's binaries (bin/).
func builtBinary(t *testing.T, name string) string {
	p, err := filepath.Abs(rootPath("bin", name))
	require.NoError(t, err)
	return lookBinary(t, p, "run scripts/build-prometheus.sh (or `make e2e`)")
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
	promtool := builtBinary(t, "promtool") // compose's Prometheus version
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

// ---- Tests and compose run the same versions.

type composeService struct {
	Image string `yaml:"image"`
	Build any    `yaml:"build"`
}

func composeServices(t *testing.T) map[string]composeService {
	t.Helper()
	raw, err := os.ReadFile(rootPath("docker-compose.observability.yml"))
	require.NoError(t, err)
	var doc struct {
		Services map[string]composeService `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &doc))
	return doc.Services
}

// imageTag returns the tag of an image reference (repo:tag).
func imageTag(t *testing.T, ref string) string {
	t.Helper()
	i := strings.LastIndex(ref, ":")
	require.True(t, i > strings.LastIndex(ref, "/"), "image %q has no tag", ref)
	return ref[i+1:]
}

// The binaries the contract test runs in place of compose's Prometheus-project
// images: same version as the image tag, or the test fails until both move.
func TestBinariesMatchComposeImages(t *testing.T) {
	services := composeServices(t)
	for _, c := range []struct{ service, binary, prefix string }{
		{"prometheus", "prometheus", "prometheus, version "},
		{"prometheus", "promtool", "promtool, version "},
		{"postgres-exporter", "postgres_exporter", "postgres_exporter, version "},
		{"node-exporter", "node_exporter", "node_exporter, version "},
	} {
		s, ok := services[c.service]
		require.True(t, ok, "compose has no service %s", c.service)
		tag := imageTag(t, s.Image)
		out := run(t, ".", nil, builtBinary(t, c.binary), "--version")
		line := strings.SplitN(strings.TrimSpace(out), "\n", 2)[0]
		require.True(t, strings.HasPrefix(line, c.prefix), "%s --version: %q", c.binary, line)
		version, _, _ := strings.Cut(strings.TrimPrefix(line, c.prefix), " ")
		require.Equal(t, tag, "v"+version,
			"%s runs %s in compose but the test builds %s: change PROMETHEUS_VERSION, POSTGRES_EXPORTER_VERSION or NODE_EXPORTER_VERSION in scripts/build-prometheus.sh together with the image tag", c.service, s.Image, version)
	}
}

// Compose builds the collector from our manifest (otel-collector/Dockerfile),
// the binary definition the tests run (bin/otelcol-beacon).
func TestComposeBuildsOurCollector(t *testing.T) {
	s := composeServices(t)["collector"]
	build, ok := s.Build.(map[string]any)
	require.True(t, ok, "compose's collector must build otel-collector/Dockerfile (build: {context: ./otel-collector}), has build %v image %q", s.Build, s.Image)
	require.Equal(t, "./otel-collector", build["context"])
	if df, ok := build["dockerfile"]; ok {
		require.Equal(t, "Dockerfile", df)
	}

	var manifest struct {
		Dist struct {
			Version string `yaml:"version"`
			Name    string `yaml:"name"`
		} `yaml:"dist"`
	}
	raw, err := os.ReadFile(rootPath("otel-collector", "builder-config.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, &manifest))
	require.NotEmpty(t, manifest.Dist.Version)
	require.Equal(t, manifest.Dist.Version, imageTag(t, s.Image), "compose's collector image tag is the manifest's dist.version")
	require.Contains(t, run(t, ".", nil, collectorBinary(t), "--version"), manifest.Dist.Version,
		"bin/otelcol-beacon is not built from the current manifest: make collector")

	dockerfile, err := os.ReadFile(rootPath("otel-collector", "Dockerfile"))
	require.NoError(t, err)
	script, err := os.ReadFile(rootPath("scripts", "build-collector.sh"))
	require.NoError(t, err)
	want := regexp.MustCompile(`(?m)^BUILDER_VERSION=(\S+)`).FindStringSubmatch(string(script))
	require.NotNil(t, want, "scripts/build-collector.sh sets BUILDER_VERSION")
	require.Contains(t, string(dockerfile), "ARG BUILDER_VERSION="+want[1]+"\n", "the Dockerfile's builder is the script's")
	require.Contains(t, string(dockerfile), "COPY builder-config.yaml ./")
	require.Contains(t, string(dockerfile), "builder --config builder-config.yaml")
	require.Contains(t, string(dockerfile), "/"+manifest.Dist.Name, "the image runs the manifest's binary")
	for _, m := range regexp.MustCompile(`(?m)^FROM\s+(?:--\S+\s+)?(\S+)`).FindAllStringSubmatch(string(dockerfile), -1) {
		ref := m[1]
		require.True(t, strings.Contains(ref, "@sha256:") || (strings.Contains(ref, ":") && !strings.HasSuffix(ref, ":latest")), "FROM %s is not pinned", ref)
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

// ---- The live stack.

type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
}

type stack struct {
	t       *testing.T
	dir     string
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
	p := &proc{name: name, cmd: cmd, log: logf, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	s.procs = append(s.procs, p)
}

func (s *stack) proc(name string) *proc {
	for _, p := range s.procs {
		if p.name == name {
			return p
		}
	}
	s.t.Fatalf("no process %s", name)
	return nil
}

// kill stops one process of the stack at once, as a crash would.
func (s *stack) kill(name string) {
	s.t.Helper()
	p := s.proc(name)
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (s *stack) stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		p.log.Close()
	}
	if s.t.Failed() {
		for _, p := range s.procs {
			s.t.Logf("---- %s log (tail):\n%s", p.name, s.logTail(p.name, 3000))
		}
	}
}

func (s *stack) logTail(name string, n int) string {
	raw, _ := os.ReadFile(filepath.Join(s.dir, name+".log"))
	return tail(string(raw), n)
}

// waitHTTP waits for url to answer 2xx, failing with the process log if not.
func (s *stack) waitHTTP(name, url string) {
	s.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		select {
		case <-s.proc(name).done:
			s.t.Fatalf("%s exited; its log:\n%s", name, s.logTail(name, 4000))
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(300 * time.Millisecond)
	}
	s.t.Fatalf("%s never answered at %s (last: %s); its log:\n%s", name, url, last, s.logTail(name, 4000))
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// jobsNotRun are prometheus.yml's jobs whose targets cannot run here, with
// the reason; the test drops them from its copy of the config.
var jobsNotRun = map[string]string{
	"tempo":   "Tempo is AGPL: never built or linked, only run as compose's image (compose_refs_test.go checks its config)",
	"loki":    "Loki is AGPL: never built or linked, only run as compose's image (compose_refs_test.go checks its config)",
	"grafana": "Grafana is AGPL: never built or linked; its dashboards are checked by dashboards_test.go and queried here",
}

// promConfig rewrites prometheus.yml for this run: the same jobs, labels,
// relabelling and rules, with each job's targets (static or DNS discovery)
// replaced by the local process, and short intervals.
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
	var kept []any
	for _, j := range jobs {
		jm := j.(map[string]any)
		name := jm["job_name"].(string)
		if _, ok := jobsNotRun[name]; ok {
			seen[name] = true
			continue
		}
		target, ok := targets[name]
		require.True(s.t, ok, "prometheus.yml has job %q that the test neither runs nor lists in jobsNotRun", name)
		seen[name] = true
		jm["scrape_interval"] = "2s"
		if _, ok := jm["scrape_timeout"]; ok {
			jm["scrape_timeout"] = "2s"
		}
		discovery := 0
		for k := range jm {
			if strings.HasSuffix(k, "_sd_configs") || k == "static_configs" {
				discovery++
				delete(jm, k)
			}
		}
		require.Equal(s.t, 1, discovery, "job %s: one static_configs or *_sd_configs expected", name)
		jm["static_configs"] = []any{map[string]any{"targets": []any{target}}}
		kept = append(kept, jm)
	}
	cfg["scrape_configs"] = kept
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
	rulesDir, err := filepath.Abs(rootPath("observability", "prometheus", "rules"))
	require.NoError(s.t, err)
	cfg["rule_files"] = []any{filepath.Join(rulesDir, "*.yml")}
	out, err := yaml.Marshal(cfg)
	require.NoError(s.t, err)
	path := filepath.Join(s.dir, "prometheus.yml")
	require.NoError(s.t, os.WriteFile(path, out, 0o644))
	return path
}

// brokenBackends writes a collector overlay that adds, to the traces pipeline,
// two OTLP exporters whose backend is down (a closed local port): one retries
// with a one-request queue, so its queue fills and new spans are dropped; one
// does not retry, so every send fails. What a Tempo outage does.
func (s *stack) brokenBackends() string {
	s.t.Helper()
	var exporters []any
	for _, f := range []string{"config.yaml", "test-sinks.yaml"} {
		raw, err := os.ReadFile(rootPath("otel-collector", f))
		require.NoError(s.t, err)
		var c map[string]any
		require.NoError(s.t, yaml.Unmarshal(raw, &c))
		if l, ok := dig(c, "service", "pipelines", "traces", "exporters").([]any); ok {
			exporters = l // lists replace: the last overlay's wins
		}
	}
	require.NotEmpty(s.t, exporters)
	dead := freePort(s.t) // closed once freePort returns
	overlay := map[string]any{
		"exporters": map[string]any{
			"otlp_grpc/queue_full": map[string]any{
				"endpoint": dead, "tls": map[string]any{"insecure": true}, "timeout": "1s",
				"sending_queue":    map[string]any{"enabled": true, "queue_size": 1, "num_consumers": 1},
				"retry_on_failure": map[string]any{"enabled": true, "initial_interval": "10m", "max_interval": "10m", "max_elapsed_time": "30m"},
			},
			"otlp_grpc/failing": map[string]any{
				"endpoint": dead, "tls": map[string]any{"insecure": true}, "timeout": "1s",
				"sending_queue":    map[string]any{"enabled": false},
				"retry_on_failure": map[string]any{"enabled": false},
			},
		},
		"service": map[string]any{"pipelines": map[string]any{"traces": map[string]any{
			"exporters": append(slices.Clone(exporters), "otlp_grpc/queue_full", "otlp_grpc/failing"),
		}}},
	}
	out, err := yaml.Marshal(overlay)
	require.NoError(s.t, err)
	path := filepath.Join(s.dir, "broken-backends.yaml")
	require.NoError(s.t, os.WriteFile(path, out, 0o644))
	return path
}

// beaconRoles are the long-running roles compose runs, each its own process
// with its own ops port (Prometheus' jobs beacon-<role> scrape it for `up`).
var beaconRoles = []string{"api", "worker", "dashboard"}

func startStack(t *testing.T, dbURL string) *stack {
	t.Helper()
	s := &stack{t: t, dir: t.TempDir(), addr: map[string]string{}}
	t.Cleanup(s.stop)
	for _, n := range []string{"otlp", "otlphttp", "apps", "collector", "health", "postgres-exporter", "node", "prometheus", "alertmanager", "api", "dashboard"} {
		s.addr[n] = freePort(t)
	}
	for _, r := range beaconRoles {
		s.addr["ops-"+r] = freePort(t)
	}
	s.traces = filepath.Join(s.dir, "traces.json")
	s.logs = filepath.Join(s.dir, "logs.json")

	// The exporters, at compose's versions.
	s.start("postgres-exporter", []string{"DATA_SOURCE_NAME=" + dbURL}, builtBinary(t, "postgres_exporter"),
		"--web.listen-address="+s.addr["postgres-exporter"])
	s.start("node", nil, builtBinary(t, "node_exporter"), "--web.listen-address="+s.addr["node"])

	// The collector built from our manifest, with file sinks for traces and logs,
	// and two exporters whose backend is down.
	host, port, _ := net.SplitHostPort(s.addr["collector"])
	s.start("collector", []string{
		"OTLP_GRPC_ENDPOINT=" + s.addr["otlp"], "OTLP_HTTP_ENDPOINT=" + s.addr["otlphttp"],
		"PROMETHEUS_EXPORTER_ENDPOINT=" + s.addr["apps"],
		"COLLECTOR_METRICS_HOST=" + host, "COLLECTOR_METRICS_PORT=" + port,
		"HEALTH_CHECK_ENDPOINT=" + s.addr["health"],
		"TRACES_FILE=" + s.traces, "LOGS_FILE=" + s.logs,
	}, collectorBinary(t), "--config", rootPath("otel-collector", "config.yaml"), "--config", rootPath("otel-collector", "test-sinks.yaml"),
		"--config", s.brokenBackends())
	s.waitHTTP("collector", "http://"+s.addr["health"]+"/")

	// Alertmanager with the repository's config and templates, its SMTP
	// smarthost a closed local port (Prometheus sends alerts to it; delivery is
	// alertmanager_test.go's): no lookup of compose's mailpit leaves the machine.
	amDir := filepath.Join(s.dir, "alertmanager")
	amSrc := rootPath("observability", "alertmanager")
	require.NoError(t, os.CopyFS(amDir, os.DirFS(amSrc)))
	raw, err := os.ReadFile(filepath.Join(amSrc, "alertmanager.yml"))
	require.NoError(t, err)
	var amCfg map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &amCfg))
	global, ok := amCfg["global"].(map[string]any)
	require.True(t, ok, "alertmanager.yml has no global section")
	global["smtp_smarthost"] = freePort(t)
	raw, err = yaml.Marshal(amCfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(amDir, "alertmanager.yml"), raw, 0o600))
	s.start("alertmanager", nil, lookBinary(t, "prometheus-alertmanager", "apt-get install prometheus-alertmanager"),
		"--config.file="+filepath.Join(amDir, "alertmanager.yml"),
		"--storage.path="+filepath.Join(amDir, "data"), "--web.listen-address="+s.addr["alertmanager"],
		"--cluster.listen-address=")

	// Beacon: migrations, then each role on its own, exporting to the collector
	// at the default log level (BEACON_LOG_LEVEL unset: info).
	bin := filepath.Join(s.dir, "beacon")
	run(t, root, nil, "go", "build", "-o", bin, "./cmd/beacon")
	env := func(role string) []string {
		return []string{
			"BEACON_LOG_LEVEL=", "DATABASE_URL=" + dbURL,
			"BEACON_HTTP_ADDR=" + s.addr["api"], "BEACON_OPS_ADDR=" + s.addr["ops-"+role], "BEACON_DASHBOARD_ADDR=" + s.addr["dashboard"],
			"BEACON_API_URL=http://" + s.addr["api"],
			"BEACON_CHECK_ALLOW_CIDRS=127.0.0.0/8", "BEACON_SCHEDULER_INTERVAL=1s", "BEACON_LOG_FORMAT=json",
			// The one sign-in's token outlives the run (default 15 minutes): the
			// workflow driver (startWorkflows) uses it to the end.
			"BEACON_ACCESS_TOKEN_TTL=1h",
			// Incidents open within seconds of a monitor going down.
			"BEACON_INCIDENT_CONFIRMATIONS=2", "BEACON_INCIDENT_CONFIRM_SPACING=1s",
			"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + s.addr["otlp"], "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
			"OTEL_BSP_SCHEDULE_DELAY=200", "OTEL_BLRP_SCHEDULE_DELAY=200", "OTEL_METRIC_EXPORT_INTERVAL=2000",
			"OTEL_RESOURCE_ATTRIBUTES=deployment.environment=e2e",
		}
	}
	run(t, root, env("migrate"), bin, "migrate")
	for _, role := range beaconRoles {
		s.start(role, env(role), bin, role)
	}
	for _, role := range beaconRoles {
		s.waitHTTP(role, "http://"+s.addr["ops-"+role]+"/readyz")
	}
	s.beacon = "http://" + s.addr["api"]
	s.signIn()

	// Prometheus at compose's version with the repository's config, rewritten.
	promDir := filepath.Join(s.dir, "prometheus-data")
	cfg := s.promConfig(map[string]string{
		"collector-apps": s.addr["apps"], "collector": s.addr["collector"],
		"beacon-api": s.addr["ops-api"], "beacon-worker": s.addr["ops-worker"], "beacon-dashboard": s.addr["ops-dashboard"],
		"postgres": s.addr["postgres-exporter"], "node": s.addr["node"],
		"prometheus": s.addr["prometheus"], "alertmanager": s.addr["alertmanager"],
	})
	s.start("prometheus", nil, builtBinary(t, "prometheus"),
		"--config.file="+cfg, "--storage.tsdb.path="+promDir,
		"--web.listen-address="+s.addr["prometheus"], "--enable-feature=exemplar-storage", "--web.enable-remote-write-receiver")
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

func (s *stack) createMonitor(name, target string) string {
	s.t.Helper()
	code, m := s.api(http.MethodPost, "/v1/monitors", fmt.Sprintf(`{"name":%q,"url":%q,"interval_seconds":10}`, name, target))
	require.Equal(s.t, http.StatusCreated, code, "%v", m)
	return fmt.Sprint(int64(m["id"].(float64)))
}

// checkNow runs a check of monitor id and waits for its result.
func (s *stack) checkNow(id string) map[string]any {
	s.t.Helper()
	code, m := s.api(http.MethodPost, "/v1/monitors/"+id+"/checks?wait=10", "")
	require.Equal(s.t, http.StatusOK, code, "%v", m)
	return m
}

// drive sends the traffic the dashboards describe: checks on schedule and on
// demand, reads, and client errors.
func (s *stack) drive(ids ...string) {
	s.t.Helper()
	for range 3 {
		for _, id := range ids {
			s.checkNow(id)
			s.api(http.MethodGet, "/v1/monitors/"+id, "")
			s.api(http.MethodGet, "/v1/monitors/"+id+"/results", "")
			s.api(http.MethodGet, "/v1/monitors/"+id+"/stats", "")
		}
		s.api(http.MethodGet, "/v1/monitors", "")
		s.api(http.MethodGet, "/v1/monitors/999999", "")                      // 404
		s.api(http.MethodPost, "/v1/monitors", `{"name":"","url":"ftp://x"}`) // 422
	}
}

// demoWorkflows are the workflows the run starts, through the API, over and
// over: every demo kind, and a chain whose second step fails (the failure
// panels and BeaconWorkflowsFailing: half of demo.chain's workflows fail).
var demoWorkflows = []struct{ spec, state string }{
	{`{"kind":"chain","n":3}`, "succeeded"},
	{`{"kind":"group","n":3}`, "succeeded"},
	{`{"kind":"chord","n":3}`, "succeeded"},
	{`{"kind":"chain","n":3,"fail_step":2}`, "failed"},
}

// startWorkflows runs demoWorkflows once, checking that each ends as
// expected, then again every few seconds until the test ends: duration
// quantiles and ratios need workflows ending within each rate window, and the
// failure alert a sustained share of failures. Workflow metrics: started
// counted by the API, ended and the gauges by the worker.
func (s *stack) startWorkflows() {
	s.t.Helper()
	for _, w := range demoWorkflows {
		code, m := s.api(http.MethodPost, "/v1/workflows/demo?wait=30", w.spec)
		require.Contains(s.t, []int{http.StatusOK, http.StatusAccepted}, code, "start demo workflow %s: %v", w.spec, m)
		id := fmt.Sprint(int64(m["id"].(float64)))
		waitFor(s.t, time.Minute, "demo workflow "+id+" "+w.spec+" ends", func() string {
			if m["state"] != "running" {
				return ""
			}
			_, m = s.api(http.MethodGet, "/v1/workflows/"+id, "")
			return fmt.Sprintf("workflow: %v", m)
		})
		require.Equal(s.t, w.state, m["state"], "demo workflow %s: %v", w.spec, m)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var last atomic.Value // the last unexpected answer, for the log
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			for _, w := range demoWorkflows {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.beacon+"/v1/workflows/demo?wait=30", strings.NewReader(w.spec))
				if err != nil {
					last.Store(err.Error())
					return
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+s.token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					last.Store(err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
					last.Store(fmt.Sprintf("%s: %d %s", w.spec, resp.StatusCode, body))
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	s.t.Cleanup(func() {
		cancel()
		<-done
		if v := last.Load(); v != nil {
			s.t.Logf("workflow driver, last unexpected answer: %v", v)
		}
	})
}

// ---- Prometheus' API.

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query runs an instant query; it returns how many series hold a finite value
// (NaN and ±Inf are not data) and how many series there were.
func (s *stack) query(expr string) (finite, total int, err error) {
	resp, err := http.Get(s.promURL + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, 0, err
	}
	if r.Status != "success" {
		return 0, 0, fmt.Errorf("%s", r.Error)
	}
	var samples []promSample
	switch r.Data.ResultType {
	case "vector":
		if err := json.Unmarshal(r.Data.Result, &samples); err != nil {
			return 0, 0, err
		}
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(r.Data.Result, &v); err != nil {
			return 0, 0, err
		}
		samples = []promSample{{Value: v}}
	default:
		return 0, 0, fmt.Errorf("result type %s", r.Data.ResultType)
	}
	for _, smp := range samples {
		str, _ := smp.Value[1].(string)
		if v, err := strconv.ParseFloat(str, 64); err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
			finite++
		}
	}
	return finite, len(samples), nil
}

// labelValues returns the values of label on the series selector matches
// over the last 10 minutes: Grafana's label_values(selector, label).
func (s *stack) labelValues(selector, label string) ([]string, error) {
	q := url.Values{"start": {strconv.FormatInt(time.Now().Add(-10*time.Minute).Unix(), 10)}}
	if selector != "" {
		q.Set("match[]", selector)
	}
	resp, err := http.Get(s.promURL + "/api/v1/label/" + url.PathEscape(label) + "/values?" + q.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string   `json:"status"`
		Error  string   `json:"error"`
		Data   []string `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s", r.Error)
	}
	return r.Data, nil
}

// alertStates returns each alert's state in Prometheus (firing beats pending).
func (s *stack) alertStates(t *testing.T) map[string]string {
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
	out := map[string]string{}
	for _, a := range r.Data.Alerts {
		if out[a.Labels["alertname"]] != "firing" {
			out[a.Labels["alertname"]] = a.State
		}
	}
	return out
}

// ---- Which alerts the run cannot fire.

// alertsNotDriven lists alerts the run does not drive into firing, with the
// reason; their selectors must still match real series, and each has a
// firing case in the promtool unit tests.
var alertsNotDriven = map[string]string{
	"BeaconAPIErrorBudgetBurnFast":   "needs over 7.2% of /v1 requests answering 5xx for 2 minutes: Beacon answers 5xx only when its database fails, which this run does not inject",
	"BeaconAPIErrorBudgetBurnSlow":   "needs over 3% of /v1 requests answering 5xx for 5 minutes (see BeaconAPIErrorBudgetBurnFast)",
	"BeaconAPILatencyBudgetBurnFast": "needs over 14.4% of /v1 requests slower than 0.5 s for 2 minutes: nothing in this run slows the API down",
	"BeaconAPILatencyBudgetBurnSlow": "needs over 6% of /v1 requests slower than 0.5 s for 5 minutes",
	"BeaconJobFailureRateHigh":       "needs 10 minutes of more than 10% of jobs failing (a failing target is a result, not a failed job)",
	"BeaconJobBacklogOld":            "needs a job waiting over 5 minutes, then 5 more minutes",
	"BeaconCollectorRefusingData":    "needs the memory limiter to refuse data (80% of the cgroup's memory) for 5 minutes",
	"BeaconPostgresVacuumLagging":    "needs 30 minutes of over 10000 dead rows that autovacuum does not reclaim",
	"BeaconWorkflowStuck":            "needs a workflow still running 65 minutes after it started, past every deadline in use: the engine ends each by its deadline",
}

// ---- The test.

func TestTelemetryContract(t *testing.T) {
	dbURL := pgtest.NewEmptyURL(t)
	ctx := context.Background()
	// Before anything else, the clock of the longest driver: a transaction
	// left open (BeaconPostgresLongTransaction: over 5 minutes, for 1 minute).
	// First some dead rows for autovacuum to reclaim (the vacuum panels).
	db, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close(context.Background()) })
	_, err = db.Exec(ctx, `CREATE TABLE contract_churn (id int); INSERT INTO contract_churn SELECT generate_series(1, 5000); DELETE FROM contract_churn`)
	require.NoError(t, err)
	longTx, err := db.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = longTx.Rollback(context.Background()) })
	_, err = longTx.Exec(ctx, `SELECT 1`)
	require.NoError(t, err)

	s := startStack(t, dbURL)
	s.startWorkflows()
	up := startTarget(t, http.StatusOK)
	down := startTarget(t, http.StatusInternalServerError)
	var flipStatus atomic.Int32
	flipStatus.Store(http.StatusOK)
	flip := startFlippingTarget(t, &flipStatus)

	// A webhook that refuses every delivery (410: given up at once): the
	// "down" monitor's incident opens and its notification fails
	// (BeaconNotificationsFailing, the incident panels).
	gone := startTarget(t, http.StatusGone)
	code, ch := s.api(http.MethodPost, "/v1/channels", fmt.Sprintf(`{"kind":"webhook","name":"refuses","url":%q}`, gone))
	require.Equal(t, http.StatusCreated, code, "%v", ch)

	ids := []string{s.createMonitor("up", up), s.createMonitor("down", down)}
	flipID := s.createMonitor("flips", flip)
	s.checkNow(flipID) // up
	s.drive(ids...)
	flipStatus.Store(http.StatusInternalServerError)
	s.checkNow(flipID) // up -> down: "monitor state changed"

	// Span metrics flush every 15 s and scrapes run every 2 s.
	waitFor(t, 90*time.Second, "span metrics reach Prometheus", func() string {
		if n, _, err := s.query(`traces_span_metrics_calls_total`); err != nil || n == 0 {
			return fmt.Sprintf("none yet (err %v)", err)
		}
		return ""
	})
	s.drive(ids...)

	t.Run("every expression has finite data", func(t *testing.T) {
		s.requireFiniteData(t)
	})

	t.Run("alert selectors", func(t *testing.T) {
		for _, r := range loadRules(t) {
			if r.Alert == "" {
				continue
			}
			_, _, err := s.query(r.Expr)
			require.NoError(t, err, "alert %s does not parse on Prometheus: %s", r.Alert, r.Expr)
			// Every selector names series that exist: a renamed metric or
			// label would otherwise make the alert silently unable to fire.
			for _, sel := range slices.Compact(slices.Sorted(slices.Values(selectorPattern.FindAllString(r.Expr, -1)))) {
				_, n, err := s.query("count(" + sel + ")")
				require.NoError(t, err)
				require.Positive(t, n, "alert %s selects nothing: %s", r.Alert, sel)
			}
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

	t.Run("state change logged under its trace at info", func(t *testing.T) {
		s.requireStateChangeLog(t, flipID)
	})

	// Outages: the node exporter and Beacon's dashboard role die. The
	// collector and the PostgreSQL exporter die last: the collector's and
	// PostgreSQL's own alerts need their metrics to fire first.
	s.kill("node")
	s.kill("dashboard")

	rules := loadRules(t)
	alerts := map[string]bool{}
	for _, r := range rules {
		if r.Alert != "" {
			alerts[r.Alert] = true
		}
	}
	for name := range alertsNotDriven {
		require.True(t, alerts[name], "alertsNotDriven lists %s, which no rules file defines", name)
	}
	driven := func(skip ...string) []string {
		var out []string
		for name := range alerts {
			if _, ok := alertsNotDriven[name]; !ok && !slices.Contains(skip, name) {
				out = append(out, name)
			}
		}
		slices.Sort(out)
		return out
	}
	// Long enough for the slowest driver (the open transaction: 6 minutes
	// after the start) on a busy machine.
	waitFiring := func(what string, names []string) {
		waitFor(t, 10*time.Minute, what, func() string {
			states := s.alertStates(t)
			var missing []string
			for _, n := range names {
				if states[n] != "firing" {
					missing = append(missing, fmt.Sprintf("%s (%s)", n, cmp.Or(states[n], "inactive")))
				}
			}
			if len(missing) > 0 {
				return "not firing: " + strings.Join(missing, ", ") +
					" (a new alert must be driven here or listed in alertsNotDriven with its reason)"
			}
			return ""
		})
	}
	waitFiring("every driven alert but BeaconCollectorDown and BeaconPostgresDown fires", driven("BeaconCollectorDown", "BeaconPostgresDown"))

	s.kill("collector")
	s.kill("postgres-exporter")
	waitFiring("BeaconCollectorDown and BeaconPostgresDown fire, and no alert resolves because its data vanished", driven())

	t.Run("alerts fire or are listed", func(t *testing.T) {
		states := s.alertStates(t)
		for _, name := range slices.Sorted(maps.Keys(alerts)) {
			if reason, ok := alertsNotDriven[name]; ok {
				t.Logf("alert %s not driven (%s): %s", name, cmp.Or(states[name], "inactive"), reason)
				continue
			}
			require.Equal(t, "firing", states[name], "alert %s", name)
		}
	})
}

// requireFiniteData: every dashboard query (template variables substituted
// with the values their own queries return), every variable query and every
// recording rule returns at least one finite value. Polls: rate windows fill
// and autovacuum runs on its own clock.
func (s *stack) requireFiniteData(t *testing.T) {
	type check struct{ where, expr string }
	var checks []check
	for _, g := range loadGrafanaDashboards(t) {
		// Each variable's values, in order: later queries may use earlier variables.
		values := map[string]string{}
		subst := func(expr string) string {
			return variableRef.ReplaceAllStringFunc(expr, func(ref string) string {
				m := variableRef.FindStringSubmatch(ref)
				name := m[1] + m[2]
				switch name {
				case "__rate_interval":
					return "1m"
				case "__interval":
					return "15s"
				case "__range":
					return "5m"
				}
				v, ok := values[name]
				require.True(t, ok, "%s: $%s used before it is defined", g.file, name)
				return v
			})
		}
		for _, v := range g.variables() {
			if v.typ != "query" {
				continue
			}
			m := labelValuesQuery.FindStringSubmatch(v.query)
			require.NotNil(t, m, "%s: variable %s: %s", g.file, v.name, v.query)
			selector := subst(m[1])
			var got []string
			waitFor(t, 3*time.Minute, g.file+": values of variable "+v.name, func() string {
				var err error
				got, err = s.labelValues(selector, m[2])
				if err != nil || len(got) == 0 {
					return fmt.Sprintf("label_values(%s, %s): %v %v", selector, m[2], got, err)
				}
				return ""
			})
			quoted := make([]string, len(got))
			for i, x := range got {
				quoted[i] = strings.ReplaceAll(regexp.QuoteMeta(x), `\`, `\\`)
			}
			values[v.name] = "(" + strings.Join(quoted, "|") + ")"
		}
		for _, gp := range g.panels(t) {
			for _, q := range gp.queries {
				if q.dsType == "prometheus" {
					checks = append(checks, check{g.where(gp.p), subst(q.expr)})
				}
			}
		}
	}
	for _, r := range loadRules(t) {
		if r.Record != "" {
			checks = append(checks, check{"recording rule " + r.Record, r.Record})
		}
	}

	pending := map[int]string{} // check -> what it last returned
	for i := range checks {
		pending[i] = "not queried yet"
	}
	waitFor(t, 4*time.Minute, "finite data from every expression", func() string {
		for i := range pending {
			finite, total, err := s.query(checks[i].expr)
			switch {
			case err != nil:
				t.Fatalf("%s: %v: %s", checks[i].where, err, checks[i].expr)
			case finite > 0:
				delete(pending, i)
			default:
				pending[i] = fmt.Sprintf("%d series, none finite", total)
			}
		}
		var out []string
		for i, last := range pending {
			out = append(out, fmt.Sprintf("%s: %s (%s)", checks[i].where, checks[i].expr, last))
		}
		slices.Sort(out)
		return strings.Join(out, "\n")
	})
}

var selectorPattern = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*\{[^{}]*\}`)

// otlpLines reads the collector's file exporter output (one OTLP JSON
// document per line).
func otlpLines(path string) []map[string]any {
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
	TraceID, SpanID, Name string
}

func (s *stack) spans() []span {
	var out []span
	for _, doc := range otlpLines(s.traces) {
		for _, rs := range asSlice(doc["resourceSpans"]) {
			for _, ss := range asSlice(asMap(rs)["scopeSpans"]) {
				for _, sp := range asSlice(asMap(ss)["spans"]) {
					m := asMap(sp)
					out = append(out, span{TraceID: str(m["traceId"]), SpanID: str(m["spanId"]), Name: str(m["name"])})
				}
			}
		}
	}
	return out
}

// requireCheckTrace finds a trace that holds the API request, River's insert
// and work spans and the outbound check: propagation API -> River -> check.
func (s *stack) requireCheckTrace(t *testing.T) {
	waitFor(t, 30*time.Second, "a complete check trace", func() string {
		byTrace := map[string]map[string]bool{}
		for _, sp := range s.spans() {
			if byTrace[sp.TraceID] == nil {
				byTrace[sp.TraceID] = map[string]bool{}
			}
			byTrace[sp.TraceID][sp.Name] = true
		}
		names := map[string][]string{}
		for id, set := range byTrace {
			if set["POST /v1/monitors/{id}/checks"] && set["river.insert_many"] && set["river.work/check"] && (set["HTTP GET"] || set["GET"]) {
				return ""
			}
			names[id] = slices.Sorted(maps.Keys(set))
		}
		return fmt.Sprintf("span names by trace: %v", names)
	})
}

// requireStateChangeLog finds the worker's "monitor state changed" record of
// the flipped monitor in the collector's log output, with the trace id of a
// trace that holds the check job's span: at the default level, a flip's trace
// has its log line.
func (s *stack) requireStateChangeLog(t *testing.T, monitorID string) {
	waitFor(t, 30*time.Second, `the "monitor state changed" record under its check's trace`, func() string {
		checkTraces := map[string]bool{}
		for _, sp := range s.spans() {
			if sp.Name == "river.work/check" {
				checkTraces[sp.TraceID] = true
			}
		}
		var seen []string
		for _, doc := range otlpLines(s.logs) {
			for _, rl := range asSlice(doc["resourceLogs"]) {
				for _, sl := range asSlice(asMap(rl)["scopeLogs"]) {
					for _, lr := range asSlice(asMap(sl)["logRecords"]) {
						m := asMap(lr)
						body := str(asMap(m["body"])["stringValue"])
						if body != "monitor state changed" {
							continue
						}
						attrs := map[string]string{}
						for _, a := range asSlice(m["attributes"]) {
							v := asMap(asMap(a)["value"])
							attrs[str(asMap(a)["key"])] = str(v["stringValue"]) + str(v["intValue"])
						}
						seen = append(seen, fmt.Sprintf("trace %q severity %q %v", str(m["traceId"]), str(m["severityText"]), attrs))
						if attrs["monitor_id"] == monitorID && attrs["from"] == "up" && attrs["to"] == "down" && checkTraces[str(m["traceId"])] {
							return ""
						}
					}
				}
			}
		}
		return fmt.Sprintf("records seen: %v", seen)
	})
}

func asSlice(v any) []any        { s, _ := v.([]any); return s }
func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }
func str(v any) string           { s, _ := v.(string); return s }

func startTarget(t *testing.T, status int) string {
	var s atomic.Int32
	s.Store(int32(status))
	return startFlippingTarget(t, &s)
}

// startFlippingTarget serves the status held in status, read at each request.
func startFlippingTarget(t *testing.T, status *atomic.Int32) string {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(int(status.Load())) })}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return "http://" + ln.Addr().String() + "/"
}

// waitFor polls cond until it returns "" (done), failing after d with what
// it last returned.
func waitFor(t *testing.T, d time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		last := cond()
		if last == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last seen:\n%s", d, what, last)
		}
		time.Sleep(time.Second)
	}
}
