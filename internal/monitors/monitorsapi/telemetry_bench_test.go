package monitorsapi_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/beaconhq/beacon/internal/telemetry"
)

// countingSpans is a SpanExporter that counts spans and keeps none.
type countingSpans struct{ n atomic.Int64 }

func (e *countingSpans) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.n.Add(int64(len(spans)))
	return nil
}

func (e *countingSpans) Shutdown(context.Context) error { return nil }

// discardLogs is a log Exporter that keeps nothing.
type discardLogs struct{}

func (discardLogs) Export(context.Context, []sdklog.Record) error { return nil }
func (discardLogs) Shutdown(context.Context) error                { return nil }
func (discardLogs) ForceFlush(context.Context) error              { return nil }

// BenchmarkGetMonitor measures GET /v1/monitors/{id} through the full
// handler chain on a real database, without telemetry (noop: no-op
// providers, request log lines still formatted as JSON, as in production)
// and with it as production runs it (instrumented: every request sampled,
// a server span, a span per query, HTTP and SQL metrics, the log line also
// sent as an OTel record), exporting to in-process sinks through the same
// batching processors as OTLP would use. docs/performance.md has the numbers.
func BenchmarkGetMonitor(b *testing.B) {
	b.Run("noop", func(b *testing.B) {
		tel := telemetry.Noop(slog.New(slog.NewJSONHandler(io.Discard, nil)))
		benchGetMonitor(b, tel)
	})
	b.Run("instrumented", func(b *testing.B) {
		spans := &countingSpans{}
		tel, err := telemetry.New(context.Background(), telemetry.Options{
			Version: "bench", Role: "api", Environment: "bench",
			LogWriter: io.Discard, LogFormat: "json",
			SpanExporter: spans,
			MetricReader: sdkmetric.NewManualReader(),
			LogProcessor: sdklog.NewBatchProcessor(discardLogs{}),
		})
		require.NoError(b, err)
		b.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
		benchGetMonitor(b, tel)
		require.NoError(b, tel.ForceFlush(context.Background()))
		b.ReportMetric(float64(spans.n.Load())/float64(b.N), "spans/op")
		require.Positive(b, spans.n.Load(), "spans were exported")
	})
}

func benchGetMonitor(b *testing.B, tel *telemetry.Telemetry) {
	bundle := setup(b, setupOpts{telemetry: tel})
	m := mustCreate(b, bundle, map[string]any{"name": "bench", "url": "https://example.com/"})
	path := fmt.Sprintf("/v1/monitors/%d", int64(m["id"].(float64)))
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		bundle.Handler.ServeHTTP(rec, bundle.Request(b, http.MethodGet, path, nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
