package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/beaconhq/beacon/internal/config"
	"github.com/beaconhq/beacon/internal/jobs"
	"github.com/beaconhq/beacon/internal/pgtest"
	"github.com/beaconhq/beacon/internal/telemetry"
)

// logSink keeps the OTel log records it is given.
type logSink struct {
	mu      sync.Mutex
	records []sdklog.Record
}

func (s *logSink) OnEmit(_ context.Context, r *sdklog.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, r.Clone())
	return nil
}
func (s *logSink) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (s *logSink) Shutdown(context.Context) error                         { return nil }
func (s *logSink) ForceFlush(context.Context) error                       { return nil }

func (s *logSink) all() []sdklog.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sdklog.Record(nil), s.records...)
}

func (s *logSink) withTrace(id trace.TraceID) []sdklog.Record {
	var out []sdklog.Record
	for _, r := range s.all() {
		if r.TraceID() == id {
			out = append(out, r)
		}
	}
	return out
}

type telemetryBundle struct {
	app     *app
	api     *httptest.Server
	spans   *tracetest.InMemoryExporter
	metrics *sdkmetric.ManualReader
	logs    *logSink
	stdout  *syncBuffer
	tel     *telemetry.Telemetry
}

// setupTelemetry wires `beacon all` exactly as serve does (newApp), with
// every signal captured in memory, and starts its workers.
func setupTelemetry(t *testing.T) *telemetryBundle {
	t.Helper()
	ctx := context.Background()
	b := &telemetryBundle{spans: tracetest.NewInMemoryExporter(), metrics: sdkmetric.NewManualReader(), logs: &logSink{}, stdout: &syncBuffer{}}
	env := map[string]string{
		"DATABASE_URL":             pgtest.NewURL(t),
		"BEACON_CHECK_ALLOW_CIDRS": "127.0.0.0/8",
		"BEACON_LOG_LEVEL":         "debug",
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	require.NoError(t, err)
	b.tel, err = telemetry.New(ctx, telemetry.Options{
		Version: "test", Role: "all", Environment: "development", Getenv: func(string) string { return "" },
		LogWriter: b.stdout, LogFormat: "json", LogLevel: slog.LevelDebug,
		SpanExporter: b.spans, MetricReader: b.metrics, LogProcessor: b.logs,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.tel.Shutdown(context.Background()) })

	b.app, err = newApp(ctx, cfg, roleAll, b.tel)
	require.NoError(t, err)
	t.Cleanup(b.app.close)
	started, err := b.app.startWorkers(ctx, ctx)
	require.NoError(t, err)
	require.True(t, started)
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = jobs.Stop(stopCtx, b.app.stack.Worker, time.Second)
	})
	b.api = httptest.NewServer(b.app.stack.API)
	t.Cleanup(b.api.Close)
	return b
}

// signIn gets a token for the development admin, as a person would.
func (b *telemetryBundle) signIn(t *testing.T) string {
	t.Helper()
	resp, err := http.PostForm(b.api.URL+"/v1/oauth/token", url.Values{
		"grant_type": {"password"}, "username": {config.DevAdminEmail}, "password": {config.DevAdminPassword}})
	require.NoError(t, err)
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	return tok.AccessToken
}

func (b *telemetryBundle) request(t *testing.T, method, path, body string, header http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, b.api.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, raw
}

func attr(kvs []attribute.KeyValue, key string) (attribute.Value, bool) {
	for _, kv := range kvs {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// One check run from the API is one trace: the server span, its database
// spans, River's insert and work spans and the outbound check; the target
// sees the trace in traceparent; the request's and the job's logs carry its
// id; the check metrics are recorded with units and bounded attributes; and
// no secret the client sent appears in any signal.
func TestCheckRequestIsOneTrace(t *testing.T) {
	t.Parallel()
	b := setupTelemetry(t)
	ctx := context.Background()

	var mu sync.Mutex
	var seenTraceparent string
	tgt := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seenTraceparent = r.Header.Get("traceparent")
		mu.Unlock()
	}))
	defer tgt.Close()

	const secret = "SECRET-abc123"
	token := b.signIn(t)
	bearer := http.Header{"Authorization": {"Bearer " + token}}
	status, raw := b.request(t, http.MethodPost, "/v1/monitors",
		fmt.Sprintf(`{"name":"t","url":%q,"enabled":false}`, tgt.URL+"/health?api_key="+secret), bearer)
	require.Equal(t, http.StatusCreated, status, string(raw))
	var m struct{ ID int64 }
	require.NoError(t, json.Unmarshal(raw, &m))

	header := http.Header{"Authorization": {"Bearer " + token}, "Cookie": {"session=" + secret}, "X-Api-Key": {secret}}
	status, raw = b.request(t, http.MethodPost, fmt.Sprintf("/v1/monitors/%d/checks?wait=10", m.ID), "", header)
	require.Equal(t, http.StatusOK, status, string(raw))
	require.Contains(t, string(raw), `"ok":true`)
	require.NoError(t, b.tel.ForceFlush(ctx))

	// The server span of the check request names the route, not the path.
	var server tracetest.SpanStub
	for _, s := range b.spans.GetSpans() {
		if s.Name == "POST /v1/monitors/{id}/checks" {
			server = s
		}
	}
	require.True(t, server.SpanContext.IsValid(), "no server span for the check request")
	require.Equal(t, trace.SpanKindServer, server.SpanKind)
	route, _ := attr(server.Attributes, "http.route")
	require.Equal(t, "/v1/monitors/{id}/checks", route.AsString())
	code, _ := attr(server.Attributes, "http.response.status_code")
	require.EqualValues(t, 200, code.AsInt64())
	traceID := server.SpanContext.TraceID()

	byName := map[string][]tracetest.SpanStub{}
	var db, client []tracetest.SpanStub
	for _, s := range b.spans.GetSpans() {
		if s.SpanContext.TraceID() != traceID {
			continue
		}
		byName[s.Name] = append(byName[s.Name], s)
		if v, ok := attr(s.Attributes, "db.system.name"); ok && v.AsString() == "postgresql" {
			db = append(db, s)
		} else if v, ok := attr(s.Attributes, "db.system"); ok && v.AsString() == "postgresql" {
			db = append(db, s)
		}
		if _, ok := attr(s.Attributes, "http.request.method"); ok && s.SpanKind == trace.SpanKindClient {
			client = append(client, s)
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	require.NotEmpty(t, db, "no database spans in the trace; spans: %v", names)
	require.Contains(t, names, "river.insert_many", "spans: %v", names)
	require.Contains(t, names, "river.work/check", "spans: %v", names)
	work := byName["river.work/check"][0]
	require.Equal(t, trace.SpanKindConsumer, work.SpanKind)
	require.Len(t, client, 1, "one outbound check span; spans: %v", names)
	require.Equal(t, work.SpanContext.SpanID(), client[0].Parent.SpanID(), "the check request is made under the work span")
	method, _ := attr(client[0].Attributes, "http.request.method")
	require.Equal(t, "GET", method.AsString())
	full, _ := attr(client[0].Attributes, "url.full")
	require.Equal(t, tgt.URL+"/health?api_key=REDACTED", full.AsString())
	sc, _ := attr(client[0].Attributes, "http.response.status_code")
	require.EqualValues(t, 200, sc.AsInt64())

	mu.Lock()
	require.Contains(t, seenTraceparent, traceID.String(), "the target received the trace in traceparent")
	mu.Unlock()

	// Logs: the request's line and the job's line carry the trace id, on
	// stdout and in OTel logs.
	var requestLog, jobLog bool
	for _, r := range b.logs.withTrace(traceID) {
		switch r.Body().AsString() {
		case "http request":
			requestLog = true
		case "check stored":
			jobLog = true
		}
	}
	require.True(t, requestLog, "the request's OTel log record carries the trace id")
	require.True(t, jobLog, "the job's OTel log record carries the trace id")
	require.Contains(t, b.stdout.String(), `"trace_id":"`+traceID.String()+`"`)

	// Metrics, with units and bounded attributes.
	var rm metricdata.ResourceMetrics
	require.NoError(t, b.metrics.Collect(ctx, &rm))
	found := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, mm := range sm.Metrics {
			found[mm.Name] = mm
		}
	}
	dur := found["beacon.check.duration"]
	require.Equal(t, "s", dur.Unit)
	hist := dur.Data.(metricdata.Histogram[float64])
	require.Len(t, hist.DataPoints, 1)
	outcome, _ := hist.DataPoints[0].Attributes.Value("outcome")
	require.Equal(t, "up", outcome.AsString())
	require.EqualValues(t, 1, hist.DataPoints[0].Count)
	require.NotEmpty(t, hist.DataPoints[0].Exemplars, "the check duration carries an exemplar")
	require.Equal(t, traceID[:], hist.DataPoints[0].Exemplars[0].TraceID)
	require.Equal(t, "{check}", found["beacon.checks"].Unit)
	require.Equal(t, "s", found["http.server.request.duration"].Unit)
	for _, name := range []string{"beacon.monitors", "beacon.jobs.backlog", "beacon.jobs.oldest_available_age", "go.goroutine.count"} {
		require.Contains(t, found, name)
	}
	var riverMetric bool
	for name := range found {
		if strings.HasPrefix(name, "river.") {
			riverMetric = true
		}
	}
	require.True(t, riverMetric, "otelriver records its metrics")

	// No secret, access token or password in any span, log or metric.
	rec := httptest.NewRecorder()
	b.app.ops.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), "beacon_checks_total")
	for _, leak := range []string{secret, token, config.DevAdminPassword} {
		for _, s := range b.spans.GetSpans() {
			for _, kv := range s.Attributes {
				require.NotContains(t, kv.Value.String(), leak, "span %q attribute %s", s.Name, kv.Key)
			}
			for _, e := range s.Events {
				for _, kv := range e.Attributes {
					require.NotContains(t, kv.Value.String(), leak, "span %q event %s", s.Name, e.Name)
				}
			}
		}
		require.NotContains(t, b.stdout.String(), leak)
		for _, r := range b.logs.all() {
			require.NotContains(t, r.Body().String(), leak)
			r.WalkAttributes(func(kv attribute.KeyValue) bool {
				require.NotContains(t, kv.Value.String(), leak, "log attribute %s", kv.Key)
				return true
			})
		}
		require.NotContains(t, rec.Body.String(), leak)
	}
}
