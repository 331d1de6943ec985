package monitorsapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/beaconhq/beacon/internal/telemetry"
)

// memTelemetry is telemetry whose spans and metrics land in memory.
type memTelemetry struct {
	tel     *telemetry.Telemetry
	spans   *tracetest.InMemoryExporter
	metrics *sdkmetric.ManualReader
}

func newMemTelemetry(tb testing.TB) *memTelemetry {
	tb.Helper()
	m := &memTelemetry{spans: tracetest.NewInMemoryExporter(), metrics: sdkmetric.NewManualReader()}
	tel, err := telemetry.New(context.Background(), telemetry.Options{
		Version: "test", SpanExporter: m.spans, MetricReader: m.metrics, LogWriter: io.Discard,
	})
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	m.tel = tel
	return m
}

// serverSpans flushes and returns the server spans exported since the last call.
func (m *memTelemetry) serverSpans(tb testing.TB) []tracetest.SpanStub {
	tb.Helper()
	require.NoError(tb, m.tel.ForceFlush(context.Background()))
	var out []tracetest.SpanStub
	for _, s := range m.spans.GetSpans() {
		if s.SpanKind == trace.SpanKindServer {
			out = append(out, s)
		}
	}
	m.spans.Reset()
	return out
}

func attrMap(kvs []attribute.KeyValue) map[string]attribute.Value {
	m := make(map[string]attribute.Value, len(kvs))
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value
	}
	return m
}

func TestServerSpansAndMetrics(t *testing.T) {
	t.Parallel()
	mt := newMemTelemetry(t)
	b := setup(t, setupOpts{telemetry: mt.tel})
	m := mustCreate(t, b, map[string]any{"name": "x", "url": "https://example.com/"})
	path := fmt.Sprintf("/v1/monitors/%d", int64(m["id"].(float64)))
	// The server spans of the sign-in and the create end after their
	// responses are written: wait for both, and drop them.
	seen := 0
	require.Eventually(t, func() bool { seen += len(mt.serverSpans(t)); return seen >= 2 }, 5*time.Second, 10*time.Millisecond)

	// Probes and documentation are not traced.
	for _, p := range []string{"/healthz", "/readyz", "/docs", "/openapi.json", "/openapi.yaml"} {
		require.Equal(t, http.StatusOK, b.Do(t, http.MethodGet, p, nil).Status, p)
	}

	require.Equal(t, http.StatusOK, b.Do(t, http.MethodGet, path, nil).Status)
	requireProblem(t, b.Do(t, http.MethodGet, "/v2/nothing", nil), http.StatusNotFound)
	var spans []tracetest.SpanStub
	require.Eventually(t, func() bool {
		spans = append(spans, mt.serverSpans(t)...)
		return len(spans) >= 2
	}, 5*time.Second, 10*time.Millisecond)
	time.Sleep(50 * time.Millisecond) // a span from an untraced route would end by now
	spans = append(spans, mt.serverSpans(t)...)
	require.Len(t, spans, 2, "only the two /v1 and unknown requests are traced")

	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	get, ok := byName["GET /v1/monitors/{id}"]
	require.True(t, ok, "span names: %v", byName)
	attrs := attrMap(get.Attributes)
	require.Equal(t, "/v1/monitors/{id}", attrs["http.route"].AsString())
	require.EqualValues(t, 200, attrs["http.response.status_code"].AsInt64())
	require.Equal(t, path, attrs["url.path"].AsString())

	unknown, ok := byName["GET"]
	require.True(t, ok, "an unknown route's span is named by its method alone: %v", byName)
	require.EqualValues(t, 404, attrMap(unknown.Attributes)["http.response.status_code"].AsInt64())
	require.NotContains(t, attrMap(unknown.Attributes), "http.route")

	var rm metricdata.ResourceMetrics
	require.NoError(t, mt.metrics.Collect(context.Background(), &rm))
	var found bool
	for _, sm := range rm.ScopeMetrics {
		for _, mm := range sm.Metrics {
			if mm.Name != "http.server.request.duration" {
				continue
			}
			found = true
			require.Equal(t, "s", mm.Unit)
			var routes []string
			for _, dp := range mm.Data.(metricdata.Histogram[float64]).DataPoints {
				if v, ok := dp.Attributes.Value("http.route"); ok {
					routes = append(routes, v.AsString())
				}
			}
			require.Contains(t, routes, "/v1/monitors/{id}")
			require.NotContains(t, routes, path, "routes, never raw paths")
		}
	}
	require.True(t, found, "http.server.request.duration recorded")
}

func TestAPIPortDoesNotServeMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{telemetry: newMemTelemetry(t).tel})
	requireProblem(t, b.Do(t, http.MethodGet, "/metrics", nil), http.StatusNotFound)
}

// failureLines is a log writer that keeps only the export-failure reports,
// so that thousands of request lines do not weigh on the heap measured.
type failureLines struct {
	mu    sync.Mutex
	lines []string
	total atomic.Int64
}

func (w *failureLines) Write(p []byte) (int, error) {
	w.total.Add(1)
	if bytes.Contains(p, []byte("telemetry export failing")) {
		w.mu.Lock()
		w.lines = append(w.lines, string(p))
		w.mu.Unlock()
	}
	return len(p), nil
}

func (w *failureLines) failures() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.lines...)
}

func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// With the collector unreachable, requests are unaffected, memory stays
// bounded and the failure is reported once, not per batch: whether the
// connection is refused (each export fails at once) or the collector
// accepts and never answers (each export waits for its timeout, so spans
// pile up faster than they leave and the SDK's queues must drop them).
// Not parallel: t.Setenv (the OTLP exporters read the process environment).
func TestUnreachableCollector(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		closed := ln.Addr().String()
		require.NoError(t, ln.Close())
		requireResilient(t, closed)
	})
	t.Run("silent", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		var wg sync.WaitGroup
		t.Cleanup(wg.Wait)
		t.Cleanup(func() { ln.Close() })
		wg.Go(func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				// Read the request, never answer; the exporter's timeout closes it.
				wg.Go(func() {
					defer conn.Close()
					_, _ = io.Copy(io.Discard, conn)
				})
			}
		})
		requireResilient(t, ln.Addr().String())
	})
}

func requireResilient(t *testing.T, collector string) {
	for _, k := range []string{
		"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
	} {
		t.Setenv(k, "")
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+collector)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	// Per request to the collector, then per export including retries (ms).
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "300")
	t.Setenv("OTEL_BSP_EXPORT_TIMEOUT", "600")
	t.Setenv("OTEL_BLRP_EXPORT_TIMEOUT", "600")
	t.Setenv("OTEL_METRIC_EXPORT_TIMEOUT", "600")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	t.Setenv("OTEL_BLRP_SCHEDULE_DELAY", "50")
	t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")

	out := &failureLines{}
	tel, err := telemetry.New(context.Background(), telemetry.Options{
		Version: "test", Getenv: os.Getenv, LogWriter: out, LogFormat: "json",
	})
	require.NoError(t, err)
	b := setup(t, setupOpts{telemetry: tel})
	m := mustCreate(t, b, map[string]any{"name": "x", "url": "https://example.com/"})
	path := fmt.Sprintf("/v1/monitors/%d", int64(m["id"].(float64)))
	proto := b.Request(t, http.MethodGet, path, nil)

	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	t.Cleanup(client.CloseIdleConnections)
	get := func() error {
		resp, err := client.Do(proto.Clone(context.Background()))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	// burst sends n requests from 4 clients; it returns the first failure.
	burst := func(n int) error {
		var (
			next  atomic.Int64
			wg    sync.WaitGroup
			first atomic.Value
		)
		for range 4 {
			wg.Go(func() {
				for next.Add(1) <= int64(n) {
					if err := get(); err != nil {
						first.CompareAndSwap(nil, err)
						return
					}
				}
			})
		}
		wg.Wait()
		if err, _ := first.Load().(error); err != nil {
			return err
		}
		return nil
	}

	require.NoError(t, burst(500))
	before := heapAlloc()
	require.NoError(t, burst(2500))
	after := heapAlloc()
	growth := int64(after) - int64(before)
	t.Logf("heap: %d KiB after 500 requests, %d KiB after 3000 (growth %d KiB)", before>>10, after>>10, growth>>10)
	// Each request makes three spans and a log record; kept, they would
	// weigh about 4.6 KiB (11 MiB over 2,500 requests, measured with an
	// in-memory exporter). Bounded queues are full after the first burst.
	require.Less(t, growth, int64(8<<20), "the SDK's queues are bounded")
	require.Greater(t, out.total.Load(), int64(3000), "request lines were logged")

	// A silent collector fails an export only when its timeout expires.
	require.Eventually(t, func() bool { return len(out.failures()) > 0 }, 10*time.Second, 20*time.Millisecond,
		"failing exports are reported")
	time.Sleep(time.Second) // time for many more batches to fail
	failures := out.failures()
	require.LessOrEqual(t, len(failures), 2, "reported once a minute, not per batch: %v", failures)

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		done <- tel.Shutdown(ctx)
	}()
	select {
	case err := <-done:
		t.Logf("shutdown: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown ignored its 2 s deadline")
	}
}
