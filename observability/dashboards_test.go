package observability_test

//lint:file-ignore SA1019 the dashboard files are Grafana's classic (v1) JSON model, which file provisioning reads; dashboardv2 is another schema

// Grafana's dashboards, checked without Grafana (its server is AGPL and never
// built here): every file decodes strictly into the Grafana Foundation SDK's
// Go types (an unknown or mistyped field fails, in the dashboard, its panels,
// their options, field configs and queries), then lint rules that keep them
// usable across environments. Runs in `make test`; the e2e contract test
// (contract_test.go) runs every query against a real Prometheus.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/loki"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/tempo"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

var registerSDKPlugins sync.Once

// grafanaDashboard is one dashboard file, decoded strictly.
type grafanaDashboard struct {
	file string
	dash dashboard.Dashboard
}

// gpanel is a panel with its queries; rows' nested panels are listed too.
type gpanel struct {
	p       dashboard.Panel
	queries []gquery
}

// gquery is one target: its datasource type and its query text.
type gquery struct {
	dsType, dsUID, expr string
}

func (g grafanaDashboard) where(p dashboard.Panel) string {
	return g.file + " / " + deref(p.Title)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// decodeDashboard decodes raw strictly. Panels are decoded again one by one:
// the SDK's PanelOrRowPanel decoder drops every panel (it mistakes its own
// empty error list for an error), and its panel decoder checks only the custom
// part of a field config, so the whole field config is decoded strictly here.
func decodeDashboard(raw []byte) (dashboard.Dashboard, error) {
	registerSDKPlugins.Do(plugins.RegisterDefaultPlugins)
	var d dashboard.Dashboard
	if err := sdkError(d.UnmarshalJSONStrict(raw)); err != nil {
		return d, err
	}
	var top struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		return d, err
	}
	if len(top.Panels) != len(d.Panels) {
		return d, fmt.Errorf("decoded %d panels of %d", len(d.Panels), len(top.Panels))
	}
	for i, rawPanel := range top.Panels {
		var head struct {
			Type   string            `json:"type"`
			Panels []json.RawMessage `json:"panels"`
		}
		if err := json.Unmarshal(rawPanel, &head); err != nil {
			return d, err
		}
		if head.Type == "row" {
			var row dashboard.RowPanel
			if err := sdkError(row.UnmarshalJSONStrict(rawPanel)); err != nil {
				return d, fmt.Errorf("panels[%d]: %w", i, err)
			}
			for j, nested := range head.Panels {
				p, err := decodePanel(nested)
				if err != nil {
					return d, fmt.Errorf("panels[%d].panels[%d]: %w", i, j, err)
				}
				row.Panels[j] = p
			}
			d.Panels[i] = dashboard.PanelOrRowPanel{RowPanel: &row}
			continue
		}
		p, err := decodePanel(rawPanel)
		if err != nil {
			return d, fmt.Errorf("panels[%d]: %w", i, err)
		}
		d.Panels[i] = dashboard.PanelOrRowPanel{Panel: &p}
	}
	return d, nil
}

// decodePanel decodes one panel strictly, with its queries (the SDK drops
// every query that decodes without error, for the same reason as panels).
func decodePanel(raw []byte) (dashboard.Panel, error) {
	var p dashboard.Panel
	if err := sdkError(p.UnmarshalJSONStrict(raw)); err != nil {
		return p, err
	}
	var fc struct {
		FieldConfig json.RawMessage   `json:"fieldConfig"`
		Targets     []json.RawMessage `json:"targets"`
	}
	if err := json.Unmarshal(raw, &fc); err != nil {
		return p, err
	}
	p.Targets = nil
	for i, rawTarget := range fc.Targets {
		var ds struct {
			Datasource struct {
				Type string `json:"type"`
			} `json:"datasource"`
		}
		if err := json.Unmarshal(rawTarget, &ds); err != nil {
			return p, err
		}
		typ := ds.Datasource.Type
		if typ == "" {
			typ = deref(deref(p.Datasource).Type)
		}
		var q interface {
			variants.Dataquery
			UnmarshalJSONStrict([]byte) error
		}
		switch typ {
		case "prometheus":
			q = &prometheus.Dataquery{}
		case "loki":
			q = &loki.Dataquery{}
		case "tempo":
			q = &tempo.Dataquery{}
		default:
			return p, fmt.Errorf("targets[%d]: datasource type %q is not checked here", i, typ)
		}
		if err := sdkError(q.UnmarshalJSONStrict(rawTarget)); err != nil {
			return p, fmt.Errorf("targets[%d]: %w", i, err)
		}
		p.Targets = append(p.Targets, q)
	}
	if fc.FieldConfig != nil {
		var f dashboard.FieldConfigSource
		if err := sdkError(f.UnmarshalJSONStrict(fc.FieldConfig)); err != nil {
			return p, fmt.Errorf("fieldConfig: %w", err)
		}
	}
	return p, nil
}

// sdkError turns the SDK's empty error list (returned as a non-nil error) into nil.
func sdkError(err error) error {
	var list cog.BuildErrors
	if errors.As(err, &list) && len(list) == 0 {
		return nil
	}
	return err
}

func loadGrafanaDashboards(t *testing.T) []grafanaDashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("grafana", "dashboards", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var out []grafanaDashboard
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		d, err := decodeDashboard(raw)
		require.NoError(t, err, "%s does not decode strictly into the Grafana Foundation SDK's types", f)
		out = append(out, grafanaDashboard{file: filepath.Base(f), dash: d})
	}
	return out
}

// panels lists every panel, rows' nested panels included (rows themselves are not panels here).
func (g grafanaDashboard) panels(t *testing.T) []gpanel {
	t.Helper()
	var flat []dashboard.Panel
	for _, pr := range g.dash.Panels {
		switch {
		case pr.Panel != nil:
			flat = append(flat, *pr.Panel)
		case pr.RowPanel != nil:
			flat = append(flat, pr.RowPanel.Panels...)
		}
	}
	var out []gpanel
	for _, p := range flat {
		gp := gpanel{p: p}
		for _, tg := range p.Targets {
			switch q := tg.(type) {
			case *prometheus.Dataquery:
				gp.queries = append(gp.queries, gquery{"prometheus", deref(deref(q.Datasource).Uid), q.Expr})
			case *loki.Dataquery:
				gp.queries = append(gp.queries, gquery{"loki", deref(deref(q.Datasource).Uid), q.Expr})
			case *tempo.Dataquery:
				gp.queries = append(gp.queries, gquery{"tempo", deref(deref(q.Datasource).Uid), deref(q.Query)})
			default:
				t.Fatalf("%s: a query of unknown type %T (name its datasource type)", g.where(p), tg)
			}
		}
		out = append(out, gp)
	}
	return out
}

// gvariable is a template variable: datasource variables name a plugin
// (prometheus, loki, tempo); query variables hold a Prometheus query.
type gvariable struct {
	name, typ, query, dsUID string
	includeAll              bool
	allValue                string
}

func (g grafanaDashboard) variables() []gvariable {
	var out []gvariable
	for _, v := range g.dash.Templating.List {
		gv := gvariable{name: v.Name, typ: string(v.Type), dsUID: deref(deref(v.Datasource).Uid),
			includeAll: deref(v.IncludeAll), allValue: deref(v.AllValue)}
		if v.Query != nil {
			switch {
			case v.Query.String != nil:
				gv.query = *v.Query.String
			case v.Query.Map != nil:
				gv.query, _ = v.Query.Map["query"].(string)
			}
		}
		out = append(out, gv)
	}
	return out
}

// variableRef finds $name, ${name} and ${name:format} in a query.
var variableRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// grafanaBuiltins are the variables Grafana itself provides.
var grafanaBuiltins = map[string]bool{"__rate_interval": true, "__interval": true, "__interval_ms": true, "__range": true, "__range_s": true, "__range_ms": true}

// labelValuesQuery parses Grafana's label_values(selector, label) (or label_values(label)).
var labelValuesQuery = regexp.MustCompile(`^\s*label_values\(\s*(?:(.*),\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$`)

// matchersOn returns every value a selector in expr matches label against, with its operator.
func matchersOn(expr, label string) []string {
	re := regexp.MustCompile(`[{,]\s*` + regexp.QuoteMeta(label) + `\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(expr, -1) {
		out = append(out, m[1]+`"`+m[2]+`"`)
	}
	return out
}

func TestDashboardsDecodeStrictly(t *testing.T) {
	// The decoder does fail on what Grafana would silently drop.
	for name, bad := range map[string]string{
		"unknown dashboard field": `{"schemaVersion": 41, "title": "x", "panelz": []}`,
		"unknown panel field":     `{"schemaVersion": 41, "panels": [{"type": "timeseries", "id": 1, "titel": "x"}]}`,
		"unknown option":          `{"schemaVersion": 41, "panels": [{"type": "timeseries", "id": 1, "options": {"legend": {"showLegend": true, "displayMode": "list", "placement": "bottom", "calcs": []}, "tooltip": {"mode": "single", "sort": "none"}, "legnd": {}}}]}`,
		"unknown field default":   `{"schemaVersion": 41, "panels": [{"type": "timeseries", "id": 1, "fieldConfig": {"defaults": {"units": "s"}, "overrides": []}}]}`,
		"mistyped query":          `{"schemaVersion": 41, "panels": [{"type": "timeseries", "id": 1, "datasource": {"type": "prometheus", "uid": "x"}, "targets": [{"refId": "A", "expr": 3}]}]}`,
		"unknown query field":     `{"schemaVersion": 41, "panels": [{"type": "timeseries", "id": 1, "datasource": {"type": "prometheus", "uid": "x"}, "targets": [{"refId": "A", "expr": "up", "exprr": "up"}]}]}`,
	} {
		_, err := decodeDashboard([]byte(bad))
		require.Error(t, err, name)
	}
	require.NotEmpty(t, loadGrafanaDashboards(t))
}

func TestDashboardsLint(t *testing.T) {
	dashboards := loadGrafanaDashboards(t)
	require.GreaterOrEqual(t, len(dashboards), 5)
	uids := map[string]string{}
	all := map[string][]string{} // metric family -> where a panel queries it
	for _, g := range dashboards {
		t.Run(g.file, func(t *testing.T) {
			d := g.dash
			uid := deref(d.Uid)
			require.NotEmpty(t, uid, "fixed uid")
			require.NotContains(t, uids, uid, "uid shared with %s", uids[uid])
			uids[uid] = g.file
			require.NotEmpty(t, deref(d.Title))
			require.False(t, deref(d.Editable), "provisioned dashboards are edited in the repository")

			vars := map[string]gvariable{}
			for _, v := range g.variables() {
				require.NotContains(t, vars, v.name, "variable %s defined twice", v.name)
				vars[v.name] = v
			}
			// A datasource variable per datasource type used, an environment and an instance variable.
			require.Equal(t, "datasource", vars["datasource"].typ, "variable datasource (type datasource) is missing")
			require.Equal(t, "prometheus", vars["datasource"].query, "variable datasource picks Prometheus datasources")
			for _, name := range []string{"env", "instance"} {
				v, ok := vars[name]
				require.True(t, ok, "variable %s is missing", name)
				require.Equal(t, "query", v.typ, "variable %s", name)
				require.True(t, v.includeAll && v.allValue == ".*", "variable %s: include All, as .*", name)
			}
			for _, v := range vars {
				switch v.typ {
				case "datasource":
					require.Contains(t, []string{"prometheus", "loki", "tempo"}, v.query, "variable %s", v.name)
				case "query":
					require.Equal(t, "${datasource}", v.dsUID, "variable %s queries the datasource variable", v.name)
					require.Regexp(t, labelValuesQuery, v.query, "variable %s: label_values(selector, label)", v.name)
					for _, m := range variableRef.FindAllStringSubmatch(v.query, -1) {
						ref := m[1] + m[2]
						require.Contains(t, vars, ref, "variable %s uses undefined $%s", v.name, ref)
					}
				default:
					t.Fatalf("variable %s: type %s is not checked by the contract test", v.name, v.typ)
				}
			}
			dsVar := map[string]string{} // datasource type -> variable
			for _, v := range vars {
				if v.typ == "datasource" {
					require.NotContains(t, dsVar, v.query, "two datasource variables for %s", v.query)
					dsVar[v.query] = "${" + v.name + "}"
				}
			}

			ids := map[uint32]string{}
			addID := func(id uint32, title string) {
				require.NotZero(t, id, "%s: panel without id", title)
				require.NotContains(t, ids, id, "%s: id %d already used by %s", title, id, ids[id])
				ids[id] = title
			}
			for _, pr := range d.Panels {
				if pr.RowPanel != nil {
					addID(pr.RowPanel.Id, deref(pr.RowPanel.Title))
					require.NotEmpty(t, deref(pr.RowPanel.Title), "row %d has no title", pr.RowPanel.Id)
				}
			}
			var grid []dashboard.GridPos
			for _, gp := range g.panels(t) {
				p, where := gp.p, g.where(gp.p)
				addID(deref(p.Id), deref(p.Title))
				require.NotEmpty(t, deref(p.Title), "%s: title", where)
				require.NotEmpty(t, strings.TrimSpace(deref(p.Description)), "%s: description", where)
				require.NotNil(t, p.GridPos, "%s: gridPos", where)
				for _, other := range grid {
					require.False(t, overlaps(*p.GridPos, other), "%s overlaps another panel", where)
				}
				grid = append(grid, *p.GridPos)

				ds := deref(p.Datasource)
				dsType := deref(ds.Type)
				require.Contains(t, dsVar, dsType, "%s: datasource type %q has no datasource variable", where, dsType)
				require.Equal(t, dsVar[dsType], deref(ds.Uid), "%s: datasource comes from the variable", where)
				require.NotEmpty(t, gp.queries, "%s: no queries", where)
				if dsType == "prometheus" {
					require.NotEmpty(t, deref(deref(p.FieldConfig).Defaults.Unit), "%s: unit", where)
				}
				for _, q := range gp.queries {
					require.Equal(t, dsType, q.dsType, "%s: query of another datasource type than its panel", where)
					require.Equal(t, dsVar[dsType], q.dsUID, "%s: query's datasource comes from the variable", where)
					require.NotEmpty(t, strings.TrimSpace(q.expr), "%s: empty query", where)
					for _, m := range variableRef.FindAllStringSubmatch(q.expr, -1) {
						ref := m[1] + m[2]
						require.True(t, grafanaBuiltins[ref] || vars[ref].typ == "query", "%s: $%s is not a query variable of this dashboard: %s", where, ref, q.expr)
					}
					lintQuery(t, where, q)
					if q.dsType == "prometheus" {
						for _, f := range metricFamilies(q.expr) {
							all[f] = append(all[f], where)
						}
					}
				}
			}
		})
	}

	// What the dashboards must show (issue 10), each backed by an alert.
	alerts := platformAlertExprs(t)
	for _, want := range []struct{ metric, alert string }{
		{`up`, "BeaconRoleDown"},
		{`pg_stat_user_tables_n_dead_tup`, "BeaconPostgresVacuumLagging"},
		{`pg_stat_user_tables_last_autovacuum`, ""},
		{`pg_stat_activity_max_tx_duration`, "BeaconPostgresLongTransaction"},
		{`otelcol_exporter_enqueue_failed_spans`, "BeaconCollectorQueueFull"},
		{`otelcol_exporter_enqueue_failed_log_records`, "BeaconCollectorQueueFull"},
		{`otelcol_exporter_enqueue_failed_metric_points`, "BeaconCollectorQueueFull"},
		// Workflows and incidents (dashboard workflows.json).
		{`beacon_workflows_oldest_running_age_seconds`, "BeaconWorkflowStuck"},
		{`beacon_workflows_finished_total`, "BeaconWorkflowsFailing"},
		{`beacon_notifications_sent_total`, "BeaconNotificationsFailing"},
	} {
		require.NotEmpty(t, all[want.metric], "no panel shows %s", want.metric)
		if want.alert != "" {
			expr, ok := alerts[want.alert]
			require.True(t, ok, "alert %s is missing", want.alert)
			if want.metric != "up" {
				require.Contains(t, expr, want.metric, "alert %s", want.alert)
			}
		}
	}
	var overview grafanaDashboard
	for _, g := range dashboards {
		if deref(g.dash.Uid) == "beacon-overview" {
			overview = g
		}
	}
	require.Equal(t, "Instances up", rowTitles(overview)[0], "the Overview starts with the Instances up row")
}

func rowTitles(g grafanaDashboard) []string {
	var out []string
	for _, pr := range g.dash.Panels {
		if pr.RowPanel != nil {
			out = append(out, deref(pr.RowPanel.Title))
		}
	}
	return append(out, "")
}

func overlaps(a, b dashboard.GridPos) bool {
	return a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H
}

// lintQuery: no hard-coded instance or environment; Beacon's own series are
// filtered by environment.
func lintQuery(t *testing.T, where string, q gquery) {
	t.Helper()
	if q.dsType == "tempo" {
		require.Contains(t, q.expr, `resource.deployment.environment=~"$env"`, "%s: filter by environment", where)
		return
	}
	for _, label := range []string{"instance", "service_instance_id", "deployment_environment"} {
		for _, m := range matchersOn(q.expr, label) {
			require.Regexp(t, `^=~"\$\{?[a-z_]+\}?"$`, m, "%s: hard-coded %s%s (use a variable): %s", where, label, m, q.expr)
		}
	}
	if strings.Contains(q.expr, `service_name="beacon"`) {
		for _, sel := range regexp.MustCompile(`\{[^{}]*service_name="beacon"[^{}]*\}`).FindAllString(q.expr, -1) {
			require.Contains(t, sel, `deployment_environment=~"$env"`, "%s: Beacon's series are filtered by environment: %s", where, q.expr)
		}
	}
}

// metricFamilies returns the metric names a PromQL expression selects (roughly:
// identifiers followed by a selector, a range or an aggregation's closing paren).
func metricFamilies(expr string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{|\[)`).FindAllStringSubmatch(expr, -1) {
		if !slices.Contains([]string{"by", "without", "on", "ignoring", "group_left", "group_right"}, m[1]) {
			out = append(out, m[1])
		}
	}
	return out
}

// platformAlertExprs returns every alert's expression by name, from the rules files.
func platformAlertExprs(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("prometheus", "rules", "*.yml"))
	require.NoError(t, err)
	out := map[string]string{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		var doc struct {
			Groups []struct {
				Rules []struct {
					Alert string `yaml:"alert"`
					Expr  string `yaml:"expr"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		require.NoError(t, yaml.Unmarshal(raw, &doc), f)
		for _, g := range doc.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					out[r.Alert] = r.Expr
				}
			}
		}
	}
	return out
}
