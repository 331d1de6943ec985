package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/beaconhq/beacon/internal/telemetry"
)

// syncBuffer is an io.Writer the logger and the test can share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the JSON log lines written so far.
func (b *syncBuffer) lines(tb testing.TB) []map[string]any {
	tb.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(tb, json.Unmarshal([]byte(l), &m), "line: %s", l)
		out = append(out, m)
	}
	return out
}

// memLogs is an sdklog.Processor keeping a copy of every record.
type memLogs struct {
	mu      sync.Mutex
	records []sdklog.Record
}

func (p *memLogs) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }

func (p *memLogs) OnEmit(_ context.Context, r *sdklog.Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.records = append(p.records, r.Clone())
	return nil
}

func (p *memLogs) Shutdown(context.Context) error   { return nil }
func (p *memLogs) ForceFlush(context.Context) error { return nil }

func (p *memLogs) all() []sdklog.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]sdklog.Record(nil), p.records...)
}

// capture is telemetry whose every signal lands in memory.
type capture struct {
	tel     *telemetry.Telemetry
	spans   *tracetest.InMemoryExporter
	metrics *sdkmetric.ManualReader
	logs    *memLogs
	out     *syncBuffer
}

// newCapture calls New with in-memory sinks on top of o.
func newCapture(tb testing.TB, o telemetry.Options) *capture {
	tb.Helper()
	c := &capture{
		spans:   tracetest.NewInMemoryExporter(),
		metrics: sdkmetric.NewManualReader(),
		logs:    &memLogs{},
		out:     &syncBuffer{},
	}
	o.SpanExporter, o.MetricReader, o.LogProcessor = c.spans, c.metrics, c.logs
	o.LogWriter, o.LogFormat = c.out, "json"
	tel, err := telemetry.New(context.Background(), o)
	require.NoError(tb, err)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(tb, tel.Shutdown(ctx))
	})
	c.tel = tel
	return c
}

func (c *capture) flush(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(tb, c.tel.ForceFlush(ctx))
}

func TestSignalsCarryResourceAndTraceIDs(t *testing.T) {
	t.Parallel()
	c := newCapture(t, telemetry.Options{Version: "1.2.3", Role: "api", Environment: "staging"})

	ctx, span := c.tel.TracerProvider.Tracer("test").Start(context.Background(), "work")
	c.tel.Logger.InfoContext(ctx, "inside the span", "k", "v")
	span.End()
	c.flush(t)

	spans := c.spans.GetSpans()
	require.Len(t, spans, 1)
	res := map[string]string{}
	for _, kv := range spans[0].Resource.Attributes() {
		res[string(kv.Key)] = kv.Value.String()
	}
	require.Equal(t, "beacon", res["service.name"])
	require.Equal(t, "1.2.3", res["service.version"])
	require.NotEmpty(t, res["service.instance.id"])
	require.Equal(t, "staging", res["deployment.environment"])
	require.Equal(t, "api", res["beacon.role"])

	sc := span.SpanContext()
	lines := c.out.lines(t)
	require.Len(t, lines, 1)
	require.Equal(t, "inside the span", lines[0]["msg"])
	require.Equal(t, sc.TraceID().String(), lines[0]["trace_id"])
	require.Equal(t, sc.SpanID().String(), lines[0]["span_id"])

	records := c.logs.all()
	require.Len(t, records, 1)
	require.Equal(t, "inside the span", records[0].Body().AsString())
	require.Equal(t, sc.TraceID(), records[0].TraceID())
	require.Equal(t, sc.SpanID(), records[0].SpanID())

	// Outside a span: no ids on the line.
	c.tel.Logger.Info("outside")
	lines = c.out.lines(t)
	require.Len(t, lines, 2)
	require.NotContains(t, lines[1], "trace_id")
}

func TestLogLevelFiltersBothSinks(t *testing.T) {
	t.Parallel()
	c := newCapture(t, telemetry.Options{LogLevel: slog.LevelWarn})
	ctx := context.Background()
	c.tel.Logger.InfoContext(ctx, "chatter")
	c.tel.Logger.DebugContext(ctx, "noise")
	require.Empty(t, c.out.String())
	require.Empty(t, c.logs.all())

	c.tel.Logger.WarnContext(ctx, "worth it")
	lines := c.out.lines(t)
	require.Len(t, lines, 1)
	require.Equal(t, "worth it", lines[0]["msg"])
	records := c.logs.all()
	require.Len(t, records, 1)
	require.Equal(t, "worth it", records[0].Body().AsString())
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"https://user:pw@example.com/a", "https://REDACTED@example.com/a"},
		{"https://user@example.com/a", "https://REDACTED@example.com/a"},
		{"https://example.com/a?token=s3cret&x=1", "https://example.com/a?token=REDACTED&x=REDACTED"},
		{"https://example.com/a?flag&k=", "https://example.com/a?flag&k=REDACTED"},
		{"https://example.com/a/b", "https://example.com/a/b"},
		{"https://example.com/a#frag", "https://example.com/a#frag"},
		// Unparsable: nothing kept after the path, nor any credentials.
		{"http://[::1%zz/p?token=s3cret", "http://[::1%zz/p?REDACTED"},
		{"http://[::1%zz/p", "http://[::1%zz/p"},
		{"http://user:s3cret@[::1%zz/p", "http://REDACTED"},
		{"http://user:s3cret?@[::1%zz/p", "http://REDACTED"},
	} {
		got := telemetry.RedactURL(tc.in)
		require.Equal(t, tc.want, got, "RedactURL(%q)", tc.in)
		require.NotContains(t, got, "s3cret")
	}
	require.Equal(t,
		`Get "https://REDACTED@example.com/p?token=REDACTED": EOF; then https://example.com/ok`,
		telemetry.RedactURLs(`Get "https://u:pw@example.com/p?token=s3cret": EOF; then https://example.com/ok`))
}

func TestSpansCarryNoSecrets(t *testing.T) {
	t.Parallel()
	c := newCapture(t, telemetry.Options{})
	instr := []otelhttp.Option{
		otelhttp.WithTracerProvider(c.tel.TracerProvider),
		otelhttp.WithMeterProvider(c.tel.MeterProvider),
		otelhttp.WithPropagators(c.tel.Propagator),
	}
	var (
		mu      sync.Mutex
		gotAuth []string
	)
	srv := httptest.NewServer(otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusNoContent)
	}), "target", instr...))
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport, instr...)}
	host := strings.TrimPrefix(srv.URL, "http://")

	for _, tc := range []struct {
		name, url string
		bearer    bool
	}{
		{"bearer header", "http://" + host + "/path?token=SECRET&x=1", true},
		{"userinfo", "http://user:SECRET@" + host + "/path?token=SECRET&x=1", false},
	} {
		req, err := http.NewRequest(http.MethodGet, tc.url, nil)
		require.NoError(t, err)
		if tc.bearer {
			req.Header.Set("Authorization", "Bearer SECRET")
		}
		resp, err := client.Do(req)
		require.NoError(t, err, tc.name)
		resp.Body.Close()
		require.Equal(t, http.StatusNoContent, resp.StatusCode, tc.name)
	}
	// The secrets did travel: they were only kept out of telemetry.
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, gotAuth, 2)
	require.Equal(t, "Bearer SECRET", gotAuth[0])
	require.True(t, strings.HasPrefix(gotAuth[1], "Basic "), gotAuth[1])

	// Secrets from other instrumentation, set at any time: query and header
	// attributes, URLs, and an error message quoting a URL.
	_, span := c.tel.TracerProvider.Tracer("test").Start(context.Background(), "manual")
	span.SetAttributes(
		attribute.String("url.query", "token=SECRET&x=1"),
		attribute.String("http.url", "https://u:SECRET@example.com/?k=SECRET"),
		attribute.StringSlice("http.request.header.authorization", []string{"Bearer SECRET"}),
		attribute.StringSlice("http.response.header.set-cookie", []string{"session=SECRET"}),
		attribute.StringSlice("http.request.header.accept", []string{"text/plain"}),
	)
	span.RecordError(errors.New(`Get "http://127.0.0.1:1/x?token=SECRET": connection refused`))
	span.End()
	// A server span ends just after its response is sent: wait for all five
	// (two client, two server, the manual one).
	require.Eventually(t, func() bool { c.flush(t); return len(c.spans.GetSpans()) == 5 }, 5*time.Second, 10*time.Millisecond)

	spans := c.spans.GetSpans()
	var clients, manual int
	for _, s := range spans {
		attrs := map[string]attribute.Value{}
		for _, kv := range s.Attributes {
			require.NotContains(t, kv.Value.String(), "SECRET", "span %q attribute %s", s.Name, kv.Key)
			attrs[string(kv.Key)] = kv.Value
		}
		for _, e := range s.Events {
			require.NotContains(t, e.Name, "SECRET")
			for _, kv := range e.Attributes {
				require.NotContains(t, kv.Value.String(), "SECRET", "span %q event %q", s.Name, e.Name)
			}
		}
		switch {
		case s.SpanKind == trace.SpanKindClient:
			clients++
			full := attrs["url.full"].AsString()
			require.Contains(t, full, host+"/path?", "url.full keeps the path")
			require.Contains(t, full, "token=REDACTED")
		case s.Name == "manual":
			manual++
			require.Equal(t, "token=REDACTED&x=REDACTED", attrs["url.query"].AsString())
			require.Equal(t, "https://REDACTED@example.com/?k=REDACTED", attrs["http.url"].AsString())
			require.Equal(t, []string{"REDACTED"}, attrs["http.request.header.authorization"].AsStringSlice())
			require.Equal(t, []string{"REDACTED"}, attrs["http.response.header.set-cookie"].AsStringSlice())
			require.Equal(t, []string{"text/plain"}, attrs["http.request.header.accept"].AsStringSlice(), "harmless headers stay")
			require.Len(t, s.Events, 1)
			require.Contains(t, s.Events[0].Attributes, attribute.String("exception.message",
				`Get "http://127.0.0.1:1/x?token=REDACTED": connection refused`))
		}
	}
	require.Equal(t, 2, clients)
	require.Equal(t, 1, manual)
}

// otelEnv are the variables that would make New export somewhere.
var otelEnv = []string{
	"OTEL_SDK_DISABLED",
	"OTEL_EXPORTER_OTLP_ENDPOINT",
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
	"OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER",
}

// clearOTelEnv empties the OTEL_* variables for this (non-parallel) test.
func clearOTelEnv(t *testing.T) {
	t.Helper()
	for _, k := range otelEnv {
		t.Setenv(k, "")
	}
}

const exportFailing = "telemetry export failing"

// Not parallel: t.Setenv.
func TestQuietWithoutEndpoint(t *testing.T) {
	clearOTelEnv(t)
	// Were anything exported (to the default localhost:4318, where nothing
	// listens), it would fail within these delays and be reported.
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "100")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
	t.Setenv("OTEL_BLRP_SCHEDULE_DELAY", "20")
	t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "50")

	out := &syncBuffer{}
	tel, err := telemetry.New(context.Background(), telemetry.Options{Getenv: os.Getenv, LogWriter: out, LogFormat: "json"})
	require.NoError(t, err)

	counter, err := tel.MeterProvider.Meter("test").Int64Counter("quiet.things")
	require.NoError(t, err)
	for range 50 {
		ctx, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "work")
		require.True(t, span.IsRecording())
		tel.Logger.InfoContext(ctx, "working")
		counter.Add(ctx, 1)
		span.End()
	}
	rec := httptest.NewRecorder()
	tel.MetricsHandler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), "quiet_things_total")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, tel.ForceFlush(ctx), "nothing to export to, so nothing fails")
	time.Sleep(time.Second)
	require.NoError(t, tel.Shutdown(ctx))
	require.NotContains(t, out.String(), exportFailing)
	require.Len(t, out.lines(t), 50, "the log lines, and only those")
}

func TestSDKDisabled(t *testing.T) {
	t.Parallel()
	out := &syncBuffer{}
	env := map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}
	tel, err := telemetry.New(context.Background(), telemetry.Options{
		Getenv: func(k string) string { return env[k] }, LogWriter: out, LogFormat: "text",
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })

	ctx, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "work")
	require.False(t, span.IsRecording())
	require.False(t, span.SpanContext().IsValid())
	tel.Logger.InfoContext(ctx, "still logging")
	span.End()
	require.Contains(t, out.String(), "msg=\"still logging\"")

	rec := httptest.NewRecorder()
	tel.MetricsHandler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
}

// Not parallel: t.Setenv.
func TestNamedTraceExporters(t *testing.T) {
	for _, name := range []string{"console", "none"} {
		t.Run(name, func(t *testing.T) {
			clearOTelEnv(t)
			t.Setenv("OTEL_TRACES_EXPORTER", name)
			tel, err := telemetry.New(context.Background(), telemetry.Options{Getenv: os.Getenv, LogWriter: io.Discard})
			require.NoError(t, err)
			_, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "work")
			require.True(t, span.IsRecording(), "spans are recorded whatever the exporter")
			// Not ended: a console exporter would print it into the test output.
			require.NoError(t, tel.Shutdown(context.Background()))
		})
	}
}

func TestMetricsHandlerServesPrometheus(t *testing.T) {
	t.Parallel()
	c := newCapture(t, telemetry.Options{})
	// Instruments shaped like a domain's: a counter and a histogram in seconds.
	meter := c.tel.MeterProvider.Meter("test")
	checks, err := meter.Int64Counter("beacon.checks")
	require.NoError(t, err)
	duration, err := meter.Float64Histogram("beacon.check.duration", metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.05, 0.1, 1))
	require.NoError(t, err)
	ctx, span := c.tel.TracerProvider.Tracer("test").Start(context.Background(), "check")
	up := metric.WithAttributes(attribute.String("outcome", "up"))
	checks.Add(ctx, 1, up)
	duration.Record(ctx, 0.042, up)
	checks.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "down"), attribute.String("error_kind", "timeout")))
	span.End()
	traceID := span.SpanContext().TraceID().String()

	scrape := func(accept string) (string, string) {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		rec := httptest.NewRecorder()
		c.tel.MetricsHandler.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code)
		return rec.Header().Get("Content-Type"), rec.Body.String()
	}

	ctype, body := scrape("")
	require.True(t, strings.HasPrefix(ctype, "text/plain; version=0.0.4"), ctype)
	require.Regexp(t, `(?m)^beacon_checks_total\{[^}]*outcome="up"[^}]*\} 1$`, body)
	require.Regexp(t, `(?m)^beacon_checks_total\{[^}]*error_kind="timeout"[^}]*outcome="down"[^}]*\} 1$`, body)
	require.Regexp(t, `(?m)^beacon_check_duration_seconds_bucket\{[^}]*outcome="up",le="0.05"\} 1$`, body)
	require.NotContains(t, body, traceID, "the classic format has no exemplars")

	ctype, body = scrape("application/openmetrics-text; version=1.0.0")
	require.True(t, strings.HasPrefix(ctype, "application/openmetrics-text"), ctype)
	require.Regexp(t, `(?m)^beacon_check_duration_seconds_bucket\{[^}]*\} 1 # \{[^}]*trace_id="`+regexp.QuoteMeta(traceID)+`"`, body,
		"an exemplar leads from the histogram to the trace")

	// The ManualReader sees the same instruments.
	var rm metricdata.ResourceMetrics
	require.NoError(t, c.metrics.Collect(context.Background(), &rm))
	var names []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			names = append(names, m.Name)
		}
	}
	require.Contains(t, names, "beacon.checks")
	require.Contains(t, names, "beacon.check.duration")
}
