package beacon_test

// What compose runs but these tests cannot (Tempo, Loki and Grafana are AGPL
// images we never build; no Docker engine here) is checked by reading the
// configuration each service mounts, as that service will see it:
//   - every file or folder a mounted config references (Alertmanager's
//     template globs, Prometheus' rule files, Grafana's provisioning and
//     dashboards, Tempo's and Loki's storage, the collector's --config files)
//     resolves to a mount of that service: the repository for what is read,
//     a volume or tmpfs for what is written;
//   - every feature one component asks of another is switched on there:
//     Tempo's remote write -> Prometheus' --web.enable-remote-write-receiver,
//     exemplars (Grafana, Tempo) -> Prometheus' exemplar storage, OTLP logs
//     into Loki -> structured metadata on a v13 TSDB schema;
//   - every address one component sends to (collector exporters, scrape
//     targets, datasources, remote write, SMTP) is a service of the stack on
//     a port that service listens on (and, for Beacon's own SMTP relay, on a
//     network the sender shares), and nothing reports home (usage reports,
//     update checks, downloads).
// TestComposeReferenceChecksCatchProblems proves each check fails on a bad file.

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

var referenceChecks = []projectCheck{
	{"alertmanager references", checkAlertmanagerRefs},
	{"prometheus references", checkPrometheusRefs},
	{"grafana references", checkGrafanaRefs},
	{"tempo references", checkTempoRefs},
	{"loki references", checkLokiRefs},
	{"collector references", checkCollectorRefs},
	{"beacon references", checkBeaconRefs},
	{"nothing reports home", checkNoPhoneHome},
}

func TestComposeReferences(t *testing.T) {
	t.Parallel()

	for _, overlay := range []string{"", "elastic"} {
		t.Run("COLLECTOR_OVERLAY="+overlay, func(t *testing.T) {
			t.Parallel()
			env := append(composeEnv("COLLECTOR_OVERLAY"), "COLLECTOR_OVERLAY="+overlay)
			p, err := loadComposeEnv(t.Context(), allComposeFiles(t), env, "*")
			require.NoError(t, err)
			for _, name := range []string{"alertmanager", "prometheus", "grafana", "tempo", "loki", "collector"} {
				require.Contains(t, p.Services, name, "the checks below need it")
			}
			for _, c := range referenceChecks {
				problems := c.check(p)
				assert.Empty(t, problems, "%s:\n%s", c.name, strings.Join(problems, "\n"))
			}
		})
	}
}

// ---- Reading a service's view of its files.

// mountOf returns the mount of s that holds the container path cpath (the
// deepest one) and the host path it maps to (bind mounts only).
func mountOf(s types.ServiceConfig, cpath string) (types.ServiceVolumeConfig, string, bool) {
	cpath = path.Clean(cpath)
	var best types.ServiceVolumeConfig
	found := false
	for _, v := range s.Volumes {
		t := path.Clean(v.Target)
		if (cpath == t || strings.HasPrefix(cpath, t+"/") || t == "/") && (!found || len(t) > len(best.Target)) {
			best, found = v, true
		}
	}
	for _, tmpfs := range s.Tmpfs {
		t := path.Clean(strings.SplitN(tmpfs, ":", 2)[0])
		if (cpath == t || strings.HasPrefix(cpath, t+"/")) && (!found || len(t) > len(best.Target)) {
			best, found = types.ServiceVolumeConfig{Type: types.VolumeTypeTmpfs, Target: t}, true
		}
	}
	if !found {
		return best, "", false
	}
	host := ""
	if best.Type == types.VolumeTypeBind {
		rest := strings.TrimPrefix(strings.TrimPrefix(cpath, path.Clean(best.Target)), "/")
		host = filepath.Join(best.Source, filepath.FromSlash(rest))
	}
	return best, host, true
}

// readableFiles resolves a container path or glob to the repository files
// it matches through s's bind mounts, or says why it cannot.
func readableFiles(name string, s types.ServiceConfig, cpattern, what string) ([]string, string) {
	if !strings.ContainsAny(cpattern, "*?[") {
		// A file may be mounted by itself.
		if v, host, ok := mountOf(s, cpattern); ok && v.Type == types.VolumeTypeBind {
			if st, err := os.Stat(host); err != nil || st.IsDir() {
				return nil, fmt.Sprintf("%s: %s %s is no file in the mounted %s", name, what, cpattern, v.Source)
			}
			return []string{host}, ""
		}
	}
	dir := path.Dir(cpattern)
	v, host, ok := mountOf(s, dir)
	if !ok || v.Type != types.VolumeTypeBind {
		return nil, fmt.Sprintf("%s: %s %s is not mounted from the repository", name, what, cpattern)
	}
	matches, err := filepath.Glob(filepath.Join(host, path.Base(cpattern)))
	if err != nil || len(matches) == 0 {
		return nil, fmt.Sprintf("%s: %s %s matches nothing in the mounted %s", name, what, cpattern, v.Source)
	}
	return matches, ""
}

// writable reports a problem unless the container path cpath is on a named
// volume or tmpfs (a read-only or image root filesystem, or a read-only bind
// mount, cannot keep data).
func writable(name string, s types.ServiceConfig, cpath, what string) []string {
	v, _, ok := mountOf(s, cpath)
	if !ok || (v.Type != types.VolumeTypeVolume && v.Type != types.VolumeTypeTmpfs) {
		return []string{fmt.Sprintf("%s: %s %s is on no volume or tmpfs: its data would be lost or unwritable", name, what, cpath)}
	}
	if v.ReadOnly {
		return []string{fmt.Sprintf("%s: %s %s is on a read-only mount", name, what, cpath)}
	}
	return nil
}

// flagValue returns the value of -name or --name in the service's command.
func flagValue(s types.ServiceConfig, name string) (string, bool) {
	for i, arg := range s.Command {
		a := strings.TrimLeft(arg, "-")
		if len(a) == len(arg) {
			continue
		}
		if k, v, ok := strings.Cut(a, "="); ok && k == name {
			return v, true
		}
		if a == name && i+1 < len(s.Command) {
			return s.Command[i+1], true
		}
	}
	return "", false
}

func hasArg(s types.ServiceConfig, arg string) bool { return slices.Contains(s.Command, arg) }

// mountedYAML reads the YAML file the service's command names with flag.
func mountedYAML(name string, s types.ServiceConfig, flag string) (cfg map[string]any, cpath string, problem string) {
	cpath, ok := flagValue(s, flag)
	if !ok {
		return nil, "", fmt.Sprintf("%s: no %s in its command", name, flag)
	}
	files, problem := readableFiles(name, s, cpath, flag)
	if problem != "" {
		return nil, cpath, problem
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		return nil, cpath, fmt.Sprintf("%s: %v", name, err)
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return nil, cpath, fmt.Sprintf("%s: %s: %v", name, files[0], err)
	}
	return cfg, cpath, ""
}

// dig walks nested maps; nil if a key is missing.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func digString(v any, keys ...string) string {
	s, _ := dig(v, keys...).(string)
	return s
}

func serviceEnv(s types.ServiceConfig, k string) string {
	if v := s.Environment[k]; v != nil {
		return *v
	}
	return ""
}

// ---- Addresses: a service of the stack on a port it listens on.

// defaultPorts are the ports images listen on without being told.
var defaultPorts = map[string][]int{
	"prom/prometheus": {9090}, "prom/alertmanager": {9093}, "grafana/grafana": {3000},
	"axllent/mailpit": {1025, 8025}, "docker.elastic.co/elasticsearch/elasticsearch": {9200},
	"postgres": {5432}, "quay.io/prometheuscommunity/postgres-exporter": {9187},
	"prom/node-exporter": {9100}, "beacon": {8080, 9464},
}

// listenPorts is what the service listens on, as far as the files say:
// image defaults, published and exposed ports, the port its healthcheck
// probes, and the ports its own config (Tempo, Loki, collector) sets.
func listenPorts(p *types.Project, name string) map[int]bool {
	s := p.Services[name]
	ports := map[int]bool{}
	for _, port := range defaultPorts[imageRepository(s.Image)] {
		ports[port] = true
	}
	for _, port := range s.Ports {
		ports[int(port.Target)] = true
	}
	for _, e := range s.Expose {
		if n, err := strconv.Atoi(e); err == nil {
			ports[n] = true
		}
	}
	if s.HealthCheck != nil {
		for _, arg := range s.HealthCheck.Test {
			if u, err := url.Parse(arg); err == nil && u.Port() != "" {
				n, _ := strconv.Atoi(u.Port())
				ports[n] = true
			}
		}
	}
	addEndpoint := func(v any) {
		if s, ok := v.(string); ok {
			if _, port, err := net.SplitHostPort(expandDefaults(s)); err == nil {
				n, _ := strconv.Atoi(port)
				ports[n] = true
			}
		}
		if n, ok := v.(int); ok {
			ports[n] = true
		}
	}
	switch name {
	case "tempo", "loki":
		cfg, _, _ := mountedYAML(name, s, "config.file")
		addEndpoint(dig(cfg, "server", "http_listen_port"))
		addEndpoint(dig(cfg, "server", "grpc_listen_port"))
		for _, proto := range []string{"grpc", "http"} {
			addEndpoint(dig(cfg, "distributor", "receivers", "otlp", "protocols", proto, "endpoint"))
		}
	case "collector":
		for _, cfg := range collectorConfigs(s) {
			for _, proto := range []string{"grpc", "http"} {
				addEndpoint(dig(cfg, "receivers", "otlp", "protocols", proto, "endpoint"))
			}
			addEndpoint(dig(cfg, "exporters", "prometheus", "endpoint"))
			addEndpoint(dig(cfg, "extensions", "health_check", "endpoint"))
			readers, _ := dig(cfg, "service", "telemetry", "metrics", "readers").([]any)
			for _, r := range readers {
				if port := digString(r, "pull", "exporter", "prometheus", "port"); port != "" {
					n, _ := strconv.Atoi(expandDefaults(port))
					ports[n] = true
				}
			}
		}
	}
	return ports
}

var envDefault = regexp.MustCompile(`\$\{(?:env:)?[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}`)

// expandDefaults replaces ${env:VAR:-default} with its default (the
// collector's configs are read with no such variable set in compose).
func expandDefaults(s string) string { return envDefault.ReplaceAllString(s, "$1") }

// checkAddress reports a problem unless endpoint ("host:port" or a URL)
// names a service of the project and a port it listens on.
func checkAddress(p *types.Project, who, what, endpoint string) []string {
	endpoint = expandDefaults(endpoint)
	host, port := "", ""
	if strings.Contains(endpoint, "://") {
		u, err := url.Parse(endpoint)
		if err != nil {
			return []string{fmt.Sprintf("%s: %s %q: %v", who, what, endpoint, err)}
		}
		host, port = u.Hostname(), u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
	} else {
		var err error
		if host, port, err = net.SplitHostPort(endpoint); err != nil {
			return []string{fmt.Sprintf("%s: %s %q: %v", who, what, endpoint, err)}
		}
	}
	if _, ok := p.Services[host]; !ok {
		return []string{fmt.Sprintf("%s: %s %s goes to %q, which is no service of the stack", who, what, endpoint, host)}
	}
	n, _ := strconv.Atoi(port)
	if !listenPorts(p, host)[n] {
		return []string{fmt.Sprintf("%s: %s %s: %s does not listen on port %s (it listens on %v)", who, what, endpoint, host, port, slices.Sorted(maps.Keys(listenPorts(p, host))))}
	}
	return nil
}

// ---- The checks.

// builtinTemplates are defined by Alertmanager itself.
var builtinTemplates = regexp.MustCompile(`^(__|email\.default\.|slack\.default\.|pagerduty\.default\.|webhook\.default\.)`)

func checkAlertmanagerRefs(p *types.Project) []string {
	const name = "alertmanager"
	s, ok := p.Services[name]
	if !ok {
		return nil
	}
	cfg, cpath, problem := mountedYAML(name, s, "config.file")
	if problem != "" {
		return []string{problem}
	}
	var problems []string
	defined := map[string]bool{}
	templates, _ := cfg["templates"].([]any)
	for _, tpl := range templates {
		pattern := tpl.(string)
		if !path.IsAbs(pattern) {
			pattern = path.Join(path.Dir(cpath), pattern)
		}
		files, problem := readableFiles(name, s, pattern, "template")
		if problem != "" {
			problems = append(problems, problem)
			continue
		}
		for _, f := range files {
			raw, _ := os.ReadFile(f)
			for _, m := range regexp.MustCompile(`\{\{-?\s*define\s+"([^"]+)"`).FindAllStringSubmatch(string(raw), -1) {
				defined[m[1]] = true
			}
		}
	}
	raw, _ := yaml.Marshal(cfg["receivers"])
	for _, m := range regexp.MustCompile(`template\s+\\?"([^"\\]+)\\?"`).FindAllStringSubmatch(string(raw), -1) {
		if !defined[m[1]] && !builtinTemplates.MatchString(m[1]) {
			problems = append(problems, fmt.Sprintf("%s: a receiver uses template %q, which no mounted template file defines", name, m[1]))
		}
	}
	if smarthost := digString(cfg, "global", "smtp_smarthost"); smarthost != "" {
		problems = append(problems, checkAddress(p, name, "smtp_smarthost", smarthost)...)
	}
	if dir, ok := flagValue(s, "storage.path"); ok {
		problems = append(problems, writable(name, s, dir, "--storage.path")...)
	} else {
		problems = append(problems, name+": no --storage.path")
	}
	return problems
}

func checkPrometheusRefs(p *types.Project) []string {
	const name = "prometheus"
	s, ok := p.Services[name]
	if !ok {
		return nil
	}
	cfg, cpath, problem := mountedYAML(name, s, "config.file")
	if problem != "" {
		return []string{problem}
	}
	var problems []string
	rules, _ := cfg["rule_files"].([]any)
	for _, r := range rules {
		pattern := r.(string)
		if !path.IsAbs(pattern) {
			pattern = path.Join(path.Dir(cpath), pattern)
		}
		if _, problem := readableFiles(name, s, pattern, "rule_files"); problem != "" {
			problems = append(problems, problem)
		}
	}
	if dir, ok := flagValue(s, "storage.tsdb.path"); ok {
		problems = append(problems, writable(name, s, dir, "--storage.tsdb.path")...)
	} else {
		problems = append(problems, name+": no --storage.tsdb.path")
	}
	jobs, _ := cfg["scrape_configs"].([]any)
	for _, j := range jobs {
		job := digString(j, "job_name")
		statics, _ := dig(j, "static_configs").([]any)
		for _, sc := range statics {
			targets, _ := dig(sc, "targets").([]any)
			for _, target := range targets {
				if host, _, _ := net.SplitHostPort(target.(string)); host == "localhost" {
					continue
				}
				problems = append(problems, checkAddress(p, name, "job "+job+" target", target.(string))...)
			}
		}
		dnss, _ := dig(j, "dns_sd_configs").([]any)
		for _, d := range dnss {
			names, _ := dig(d, "names").([]any)
			port, _ := dig(d, "port").(int)
			for _, n := range names {
				problems = append(problems, checkAddress(p, name, "job "+job+" DNS name", net.JoinHostPort(n.(string), strconv.Itoa(port)))...)
			}
		}
	}
	ams, _ := dig(cfg, "alerting", "alertmanagers").([]any)
	for _, am := range ams {
		statics, _ := dig(am, "static_configs").([]any)
		for _, sc := range statics {
			targets, _ := dig(sc, "targets").([]any)
			for _, target := range targets {
				problems = append(problems, checkAddress(p, name, "alertmanager", target.(string))...)
			}
		}
	}
	return problems
}

// exemplarStorage reports whether Prometheus stores exemplars (a feature flag
// in v2 and v3).
func exemplarStorage(s types.ServiceConfig) bool {
	for _, arg := range s.Command {
		if features, ok := strings.CutPrefix(arg, "--enable-feature="); ok && slices.Contains(strings.Split(features, ","), "exemplar-storage") {
			return true
		}
	}
	return false
}

func checkGrafanaRefs(p *types.Project) []string {
	const name = "grafana"
	s, ok := p.Services[name]
	if !ok {
		return nil
	}
	var problems []string
	// Grafana reads provisioning from /etc/grafana/provisioning/<kind> (GF_PATHS_PROVISIONING).
	prov := cmp.Or(serviceEnv(s, "GF_PATHS_PROVISIONING"), "/etc/grafana/provisioning")
	datasources, problem := readableFiles(name, s, prov+"/datasources/*.yaml", "datasource provisioning")
	if problem != "" {
		problems = append(problems, problem)
	}
	for _, f := range datasources {
		var cfg map[string]any
		raw, _ := os.ReadFile(f)
		if err := yaml.Unmarshal(raw, &cfg); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %s: %v", name, f, err))
			continue
		}
		list, _ := cfg["datasources"].([]any)
		for _, ds := range list {
			if u := digString(ds, "url"); u != "" {
				problems = append(problems, checkAddress(p, name, "datasource "+digString(ds, "name"), u)...)
			}
			if dig(ds, "jsonData", "exemplarTraceIdDestinations") != nil {
				if prom, ok := p.Services["prometheus"]; ok && !exemplarStorage(prom) {
					problems = append(problems, fmt.Sprintf("%s: datasource %s links exemplars to traces, but prometheus lacks --enable-feature=exemplar-storage", name, digString(ds, "name")))
				}
			}
		}
	}
	providers, problem := readableFiles(name, s, prov+"/dashboards/*.yaml", "dashboard provisioning")
	if problem != "" {
		problems = append(problems, problem)
	}
	for _, f := range providers {
		var cfg map[string]any
		raw, _ := os.ReadFile(f)
		if err := yaml.Unmarshal(raw, &cfg); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %s: %v", name, f, err))
			continue
		}
		list, _ := cfg["providers"].([]any)
		for _, pr := range list {
			if dir := digString(pr, "options", "path"); dir != "" {
				if _, problem := readableFiles(name, s, dir+"/*.json", "dashboards folder"); problem != "" {
					problems = append(problems, problem)
				}
			}
		}
	}
	if home := serviceEnv(s, "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"); home != "" {
		if _, problem := readableFiles(name, s, home, "home dashboard"); problem != "" {
			problems = append(problems, problem)
		}
	}
	data := cmp.Or(serviceEnv(s, "GF_PATHS_DATA"), "/var/lib/grafana")
	problems = append(problems, writable(name, s, data, "data path")...)
	return problems
}

func checkTempoRefs(p *types.Project) []string {
	const name = "tempo"
	s, ok := p.Services[name]
	if !ok {
		return nil
	}
	cfg, _, problem := mountedYAML(name, s, "config.file")
	if problem != "" {
		return []string{problem}
	}
	var problems []string
	for _, key := range [][]string{
		{"storage", "trace", "wal", "path"},
		{"storage", "trace", "local", "path"},
		{"metrics_generator", "storage", "path"},
	} {
		if dir := digString(cfg, key...); dir != "" {
			problems = append(problems, writable(name, s, dir, strings.Join(key, "."))...)
		}
	}
	writes, _ := dig(cfg, "metrics_generator", "storage", "remote_write").([]any)
	for _, w := range writes {
		u := digString(w, "url")
		addr := checkAddress(p, name, "remote_write", u)
		problems = append(problems, addr...)
		if len(addr) > 0 {
			continue
		}
		parsed, _ := url.Parse(u)
		if target := p.Services[parsed.Hostname()]; imageRepository(target.Image) == "prom/prometheus" {
			if !hasArg(target, "--web.enable-remote-write-receiver") {
				problems = append(problems, fmt.Sprintf("%s: remote-writes to %s, but %s lacks --web.enable-remote-write-receiver", name, u, parsed.Hostname()))
			}
			if send, _ := dig(w, "send_exemplars").(bool); send && !exemplarStorage(target) {
				problems = append(problems, fmt.Sprintf("%s: remote-writes exemplars to %s, but %s lacks --enable-feature=exemplar-storage", name, u, parsed.Hostname()))
			}
		}
	}
	return problems
}

func checkLokiRefs(p *types.Project) []string {
	const name = "loki"
	s, ok := p.Services[name]
	if !ok {
		return nil
	}
	cfg, _, problem := mountedYAML(name, s, "config.file")
	if problem != "" {
		return []string{problem}
	}
	var problems []string
	for _, key := range [][]string{
		{"common", "path_prefix"},
		{"common", "storage", "filesystem", "chunks_directory"},
		{"common", "storage", "filesystem", "rules_directory"},
	} {
		if dir := digString(cfg, key...); dir != "" {
			problems = append(problems, writable(name, s, dir, strings.Join(key, "."))...)
		}
	}
	// OTLP logs (the collector sends to /otlp) need structured metadata, which needs
	// the TSDB store and schema v13 in the period in force.
	if c, ok := p.Services["collector"]; ok && collectorSendsTo(c, name, "/otlp") {
		if allow, _ := dig(cfg, "limits_config", "allow_structured_metadata").(bool); !allow {
			problems = append(problems, name+": the collector sends OTLP logs, but limits_config.allow_structured_metadata is not true")
		}
		periods, _ := dig(cfg, "schema_config", "configs").([]any)
		if len(periods) == 0 {
			problems = append(problems, name+": no schema_config")
		} else if last := periods[len(periods)-1]; digString(last, "schema") != "v13" || digString(last, "store") != "tsdb" {
			problems = append(problems, fmt.Sprintf("%s: the collector sends OTLP logs, but the current schema is %s on %s (OTLP needs v13 on tsdb)", name, digString(last, "schema"), digString(last, "store")))
		}
	}
	return problems
}

// collectorConfigs reads every --config file of the collector.
func collectorConfigs(s types.ServiceConfig) []map[string]any {
	var out []map[string]any
	for _, arg := range s.Command {
		cpath, ok := strings.CutPrefix(arg, "--config=")
		if !ok {
			continue
		}
		files, problem := readableFiles("collector", s, cpath, "--config")
		if problem != "" {
			continue
		}
		raw, _ := os.ReadFile(files[0])
		var cfg map[string]any
		if yaml.Unmarshal(raw, &cfg) == nil {
			out = append(out, cfg)
		}
	}
	return out
}

// collectorSendsTo reports whether an exporter of the collector sends to
// service host under a path starting with prefix.
func collectorSendsTo(s types.ServiceConfig, host, prefix string) bool {
	for _, cfg := range collectorConfigs(s) {
		exporters, _ := cfg["exporters"].(map[string]any)
		for _, e := range exporters {
			if u, err := url.Parse(expandDefaults(digString(e, "endpoint"))); err == nil && u.Hostname() == host && strings.HasPrefix(u.Path, prefix) {
				return true
			}
		}
	}
	return false
}

func checkCollectorRefs(p *types.Project) []string {
	const name = "collector"
	s, ok := p.Services[name]
	if !ok {
		return nil
	}
	var problems []string
	n := 0
	for _, arg := range s.Command {
		if cpath, ok := strings.CutPrefix(arg, "--config="); ok {
			n++
			if _, problem := readableFiles(name, s, cpath, "--config"); problem != "" {
				problems = append(problems, problem)
			}
		}
	}
	if n == 0 {
		problems = append(problems, name+": no --config= in its command")
	}
	for _, cfg := range collectorConfigs(s) {
		exporters, _ := cfg["exporters"].(map[string]any)
		for _, id := range slices.Sorted(maps.Keys(exporters)) {
			endpoint := digString(exporters[id], "endpoint")
			if endpoint == "" {
				continue
			}
			host, _, err := net.SplitHostPort(expandDefaults(endpoint))
			if id == "prometheus" || (err == nil && (host == "0.0.0.0" || host == "")) {
				continue // a listening endpoint, not a destination
			}
			problems = append(problems, checkAddress(p, name, "exporter "+id, endpoint)...)
		}
	}
	return problems
}

// beaconAddressVars are the settings that make Beacon's roles send to a
// host:port.
var beaconAddressVars = []string{"BEACON_SMTP_ADDR"}

// checkBeaconRefs: where Beacon's own containers send mail is a service of the
// stack that listens there, on a network they share (the relay is published
// nowhere, so a shared network is the only way to it).
func checkBeaconRefs(p *types.Project) []string {
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s := p.Services[name]
		if imageRepository(s.Image) != beaconImage {
			continue
		}
		for _, k := range beaconAddressVars {
			addr := serviceEnv(s, k)
			if addr == "" {
				continue
			}
			what := k + " " + addr
			if found := checkAddress(p, name, k, addr); len(found) > 0 {
				problems = append(problems, found...)
				continue
			}
			host, _, _ := net.SplitHostPort(addr)
			if !shareNetwork(s, p.Services[host]) {
				problems = append(problems, fmt.Sprintf("%s: %s: shares no network with %s", name, what, host))
			}
		}
	}
	return problems
}

// shareNetwork reports whether two services join a common network (a
// service that lists none is on "default").
func shareNetwork(a, b types.ServiceConfig) bool {
	networks := func(s types.ServiceConfig) []string {
		if len(s.Networks) == 0 {
			return []string{"default"}
		}
		return slices.Collect(maps.Keys(s.Networks))
	}
	theirs := networks(b)
	return slices.ContainsFunc(networks(a), func(n string) bool { return slices.Contains(theirs, n) })
}

// checkNoPhoneHome: no component sends anything outside the stack. Prometheus,
// Alertmanager and the collector send only where their configs say (the
// address checks above); these are the ones that report home by default.
func checkNoPhoneHome(p *types.Project) []string {
	var problems []string
	if s, ok := p.Services["tempo"]; ok {
		cfg, _, problem := mountedYAML("tempo", s, "config.file")
		if problem == "" {
			if v, ok := dig(cfg, "usage_report", "reporting_enabled").(bool); !ok || v {
				problems = append(problems, "tempo: usage_report.reporting_enabled must be false (Tempo reports usage to Grafana Labs by default)")
			}
		}
	}
	if s, ok := p.Services["loki"]; ok {
		cfg, _, problem := mountedYAML("loki", s, "config.file")
		if problem == "" {
			if v, ok := dig(cfg, "analytics", "reporting_enabled").(bool); !ok || v {
				problems = append(problems, "loki: analytics.reporting_enabled must be false (Loki reports usage to Grafana Labs by default)")
			}
		}
	}
	if s, ok := p.Services["pyroscope"]; ok && !hasArg(s, "-usage-stats.enabled=false") {
		problems = append(problems, "pyroscope: -usage-stats.enabled=false must be in its command (Pyroscope reports usage to Grafana Labs by default)")
	}
	want := map[string]map[string]string{
		"grafana": {
			"GF_ANALYTICS_REPORTING_ENABLED":           "false",
			"GF_ANALYTICS_CHECK_FOR_UPDATES":           "false",
			"GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES":    "false",
			"GF_NEWS_NEWS_FEED_ENABLED":                "false",
			"GF_PLUGINS_PREINSTALL_DISABLED":           "true",
			"GF_PLUGINS_PLUGIN_ADMIN_ENABLED":          "false",
			"GF_PLUGINS_PUBLIC_KEY_RETRIEVAL_DISABLED": "true",
			"GF_SNAPSHOTS_EXTERNAL_ENABLED":            "false",
			"GF_SECURITY_DISABLE_GRAVATAR":             "true",
			"GF_INSTALL_PLUGINS":                       "",
		},
		"pgadmin":       {"PGADMIN_CONFIG_UPGRADE_CHECK_ENABLED": "False"},
		"kibana":        {"TELEMETRY_OPTIN": "false", "TELEMETRY_ENABLED": "false", "NEWSFEED_ENABLED": "false"},
		"elasticsearch": {"ingest.geoip.downloader.enabled": "false"},
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		s, ok := p.Services[name]
		if !ok {
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(want[name])) {
			if got := serviceEnv(s, k); !strings.EqualFold(got, want[name][k]) {
				problems = append(problems, fmt.Sprintf("%s: %s is %q, must be %q", name, k, got, want[name][k]))
			}
		}
	}
	return problems
}

// ---- The checks fail on bad files.

// TestComposeReferenceChecksCatchProblems: a stack whose configs reference
// what is not mounted, ask for what is not enabled and send where nothing
// listens; each check must report its problems.
func TestComposeReferenceChecksCatchProblems(t *testing.T) {
	t.Parallel()

	dir := t.TempDir()
	files := map[string]string{
		"am/alertmanager.yml": `
global: {smtp_smarthost: "smtp.example.com:25"}
templates: [templates/*.tmpl]
route: {receiver: mail}
receivers:
  - name: mail
    email_configs:
      - to: x@example.com
        text: '{{ template "beacon.email.text" . }}'
`,
		"am/templates/beacon.tmpl": `{{ define "beacon.email.text" }}x{{ end }}`,
		"prom/prometheus.yml": `
rule_files: [rules/*.yml]
alerting:
  alertmanagers: [{static_configs: [{targets: ["alertmanager:9094"]}]}]
scrape_configs:
  - job_name: gone
    static_configs: [{targets: ["nosuch:9999"]}]
  - job_name: beacon-api
    dns_sd_configs: [{names: [api], type: A, port: 9464}]
`,
		"prom/rules/alerts.yml": "groups: []\n",
		"grafana/datasources/ds.yaml": `
datasources:
  - {name: Prometheus, url: "http://prometheus:9091", jsonData: {exemplarTraceIdDestinations: [{name: trace_id}]}}
`,
		"grafana/dashboards/provider.yaml": `
providers:
  - {name: x, options: {path: /var/lib/grafana/dashboards}}
`,
		"tempo.yaml": `
storage: {trace: {wal: {path: /var/tempo/wal}, local: {path: /tmp/blocks}}}
metrics_generator:
  storage:
    path: /var/tempo/generator
    remote_write: [{url: "http://prometheus:9090/api/v1/write", send_exemplars: true}]
`,
		"loki.yaml": `
common: {path_prefix: /loki, storage: {filesystem: {chunks_directory: /data/chunks}}}
schema_config: {configs: [{from: "2024-01-01", store: boltdb-shipper, schema: v12}]}
limits_config: {allow_structured_metadata: false}
`,
		"collector.yaml": `
receivers: {otlp: {protocols: {grpc: {endpoint: "0.0.0.0:4317"}}}}
exporters:
  otlp_grpc: {endpoint: "${env:TEMPO_ENDPOINT:-tempo:4319}"}
  otlp_http: {endpoint: "http://loki:3100/otlp"}
  otlp_http/saas: {endpoint: "https://otlp.example.com/v1"}
  prometheus: {endpoint: "0.0.0.0:8889"}
`,
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	}
	compose := `
services:
  alertmanager:
    image: prom/alertmanager:v0.35.0
    command: [--config.file=/etc/alertmanager/alertmanager.yml, --storage.path=/alertmanager]
    volumes:
      - ./am/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro
  prometheus:
    image: prom/prometheus:v3.14.0
    command: [--config.file=/etc/prometheus/prometheus.yml, --storage.tsdb.path=/prometheus]
    volumes:
      - ./prom/prometheus.yml:/etc/prometheus/prometheus.yml:ro
      - prometheus-data:/prometheus
  grafana:
    image: grafana/grafana:13.2.0
    environment:
      GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH: /var/lib/grafana/dashboards/home.json
      GF_ANALYTICS_REPORTING_ENABLED: "true"
    volumes:
      - ./grafana/datasources:/etc/grafana/provisioning/datasources:ro
      - ./grafana/dashboards:/etc/grafana/provisioning/dashboards:ro
  tempo:
    image: grafana/tempo:3.0.3
    command: [-config.file=/etc/tempo/tempo.yaml]
    volumes:
      - ./tempo.yaml:/etc/tempo/tempo.yaml:ro
      - tempo-data:/var/tempo
  loki:
    image: grafana/loki:3.7.6
    command: [-config.file=/etc/loki/loki.yaml]
    volumes:
      - ./loki.yaml:/etc/loki/loki.yaml:ro
  collector:
    image: otel/opentelemetry-collector-contrib:0.165.1
    command: [--config=/etc/otelcol/config.yaml, --config=/etc/otelcol/elastic.yaml]
    volumes:
      - ./collector.yaml:/etc/otelcol/config.yaml:ro
  api:
    image: beacon:dev
    environment:
      BEACON_SMTP_ADDR: smtp.example.com:25
  worker:
    image: beacon:dev
    environment:
      BEACON_SMTP_ADDR: mailpit:1025
  dashboard:
    image: beacon:dev
    environment:
      BEACON_SMTP_ADDR: mailpit:2525
    networks: [mail]
  mailpit:
    image: axllent/mailpit:v1.27.0
    networks: [mail]
  pgadmin:
    image: dpage/pgadmin4:9.8
  pyroscope:
    image: grafana/pyroscope:1.18.1
networks:
  mail: {}
volumes:
  prometheus-data: {}
  tempo-data: {}
`
	project, err := loadCompose(t.Context(), []string{writeFileIn(t, dir, "docker-compose.yml", compose)})
	require.NoError(t, err, "the bad file must still be valid compose")

	tests := []struct {
		check func(*types.Project) []string
		want  []string
	}{
		{checkAlertmanagerRefs, []string{
			"alertmanager: template /etc/alertmanager/templates/*.tmpl is not mounted from the repository",
			`alertmanager: a receiver uses template "beacon.email.text", which no mounted template file defines`,
			`smtp_smarthost smtp.example.com:25 goes to "smtp.example.com", which is no service`,
			"alertmanager: --storage.path /alertmanager is on no volume or tmpfs",
		}},
		{checkPrometheusRefs, []string{
			"prometheus: rule_files /etc/prometheus/rules/*.yml is not mounted from the repository",
			`job gone target nosuch:9999 goes to "nosuch", which is no service`,
			"prometheus: alertmanager alertmanager:9094: alertmanager does not listen on port 9094",
		}},
		{checkGrafanaRefs, []string{
			"grafana: datasource Prometheus http://prometheus:9091: prometheus does not listen on port 9091",
			"grafana: datasource Prometheus links exemplars to traces, but prometheus lacks --enable-feature=exemplar-storage",
			"grafana: dashboards folder /var/lib/grafana/dashboards/*.json is not mounted from the repository",
			"grafana: home dashboard /var/lib/grafana/dashboards/home.json is not mounted",
			"grafana: data path /var/lib/grafana is on no volume or tmpfs",
		}},
		{checkTempoRefs, []string{
			"tempo: storage.trace.local.path /tmp/blocks is on no volume or tmpfs",
			"tempo: remote-writes to http://prometheus:9090/api/v1/write, but prometheus lacks --web.enable-remote-write-receiver",
			"tempo: remote-writes exemplars to http://prometheus:9090/api/v1/write, but prometheus lacks --enable-feature=exemplar-storage",
		}},
		{checkLokiRefs, []string{
			"loki: common.path_prefix /loki is on no volume or tmpfs",
			"loki: common.storage.filesystem.chunks_directory /data/chunks is on no volume or tmpfs",
			"loki: the collector sends OTLP logs, but limits_config.allow_structured_metadata is not true",
			"loki: the collector sends OTLP logs, but the current schema is v12 on boltdb-shipper",
		}},
		{checkCollectorRefs, []string{
			"collector: --config /etc/otelcol/elastic.yaml is not mounted from the repository",
			"collector: exporter otlp_grpc tempo:4319: tempo does not listen on port 4319",
			`collector: exporter otlp_http/saas https://otlp.example.com/v1 goes to "otlp.example.com", which is no service`,
		}},
		{checkBeaconRefs, []string{
			`api: BEACON_SMTP_ADDR smtp.example.com:25 goes to "smtp.example.com", which is no service`,
			"worker: BEACON_SMTP_ADDR mailpit:1025: shares no network with mailpit",
			"dashboard: BEACON_SMTP_ADDR mailpit:2525: mailpit does not listen on port 2525",
		}},
		{checkNoPhoneHome, []string{
			"tempo: usage_report.reporting_enabled must be false",
			"loki: analytics.reporting_enabled must be false",
			`grafana: GF_ANALYTICS_REPORTING_ENABLED is "true", must be "false"`,
			`grafana: GF_PLUGINS_PUBLIC_KEY_RETRIEVAL_DISABLED is "", must be "true"`,
			`pgadmin: PGADMIN_CONFIG_UPGRADE_CHECK_ENABLED is "", must be "False"`,
			"pyroscope: -usage-stats.enabled=false must be in its command",
		}},
	}
	for _, tt := range tests {
		problems := tt.check(project)
		for _, want := range tt.want {
			assert.True(t, slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, want) }),
				"want a problem containing %q, got:\n%s", want, strings.Join(problems, "\n"))
		}
	}
}

func writeFileIn(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}
