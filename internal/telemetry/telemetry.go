// Package telemetry sets up OpenTelemetry for every role: traces, metrics
// and logs, exported over OTLP when configured, metrics also served in the
// Prometheus format on the ops port, logs also written to stdout.
//
// The standard OTEL_* variables are honoured (the SDK reads them from the
// process environment). With no OTLP endpoint configured, nothing is
// exported and nothing complains: Beacon runs quietly.
package telemetry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/contrib/instrumentation/runtime"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// ServiceName is the default service.name (OTEL_SERVICE_NAME overrides it).
const ServiceName = "beacon"

// secondsBuckets are histogram bounds for durations in seconds, 1 ms to 60 s.
var secondsBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Options configure New.
type Options struct {
	Version     string // service.version
	Role        string // beacon.role: all, api, worker...
	Environment string // deployment.environment

	// Getenv reads OTEL_SDK_DISABLED and decides which signals export; the
	// exporters themselves read the rest of OTEL_* from the environment.
	Getenv func(string) string

	LogWriter io.Writer  // stdout in production
	LogFormat string     // json or text
	LogLevel  slog.Level //

	// Tests and benchmarks set these to capture each signal in memory;
	// when set they replace what the environment would select.
	SpanExporter sdktrace.SpanExporter
	MetricReader sdkmetric.Reader
	LogProcessor sdklog.Processor
}

// Telemetry holds the providers every instrumented part takes. Nothing is
// global: tests run several side by side.
type Telemetry struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
	Logger         *slog.Logger
	// MetricsHandler serves the metrics in the Prometheus text format (and
	// OpenMetrics, with exemplars, when asked) for the ops port.
	MetricsHandler http.Handler

	shutdowns []func(context.Context) error
	flushes   []func(context.Context) error
	opts      Options // what New was given (StartProfiling tags profiles with it)
}

// New sets up telemetry. Call Shutdown before exit to flush what is buffered.
func New(ctx context.Context, o Options) (*Telemetry, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	t := &Telemetry{
		Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		opts:       o,
	}
	stdout := stdoutHandler(o.LogWriter, o.LogFormat, o.LogLevel)

	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		t.TracerProvider = tracenoop.NewTracerProvider()
		t.MeterProvider = metricnoop.NewMeterProvider()
		t.Logger = slog.New(stdout)
		t.MetricsHandler = promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{})
		return t, nil
	}

	res, err := newResource(ctx, o)
	if err != nil {
		return nil, err
	}
	// Exporters report failures through OTel's global handler; send them to
	// our log, at most once a minute, so a dead collector cannot flood it.
	otel.SetErrorHandler(&throttledErrors{log: slog.New(stdout), every: time.Minute})

	// ---- Traces.
	spanExp := o.SpanExporter
	if spanExp == nil && exports(getenv, "TRACES") {
		if spanExp, err = autoexport.NewSpanExporter(ctx); err != nil {
			return nil, fmt.Errorf("telemetry: trace exporter: %w", err)
		}
	}
	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if spanExp != nil && !autoexport.IsNoneSpanExporter(spanExp) {
		tpOpts = append(tpOpts, sdktrace.WithBatcher(redactingExporter{spanExp}))
	}
	// No WithSampler: the SDK reads OTEL_TRACES_SAMPLER(_ARG); its default
	// is parent-based always-on.
	tp := sdktrace.NewTracerProvider(tpOpts...)
	t.TracerProvider = tp
	t.shutdowns = append(t.shutdowns, tp.Shutdown)
	t.flushes = append(t.flushes, tp.ForceFlush)

	// ---- Metrics: a Prometheus reader always, OTLP push when configured.
	reg := prometheus.NewRegistry()
	promExp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	t.MetricsHandler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
	mpOpts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(promExp)}
	// River's and the messaging durations are in seconds but use the SDK's
	// default bounds (0, 5, 10, ... 10000), made for milliseconds: a 2 ms
	// job would read as p95 4.75 s. Give them second-scale buckets.
	for _, name := range []string{"river.*", "messaging.*"} {
		mpOpts = append(mpOpts, sdkmetric.WithView(sdkmetric.NewView(
			sdkmetric.Instrument{Name: name, Kind: sdkmetric.InstrumentKindHistogram},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: secondsBuckets}},
		)))
	}
	switch {
	case o.MetricReader != nil:
		mpOpts = append(mpOpts, sdkmetric.WithReader(o.MetricReader))
	case exports(getenv, "METRICS") && !strings.EqualFold(getenv("OTEL_METRICS_EXPORTER"), "prometheus"):
		reader, err := autoexport.NewMetricReader(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: metric exporter: %w", err)
		}
		if !autoexport.IsNoneMetricReader(reader) {
			mpOpts = append(mpOpts, sdkmetric.WithReader(reader))
		}
	}
	mp := sdkmetric.NewMeterProvider(mpOpts...)
	t.MeterProvider = mp
	t.shutdowns = append(t.shutdowns, mp.Shutdown)
	t.flushes = append(t.flushes, mp.ForceFlush)
	if err := runtime.Start(runtime.WithMeterProvider(mp)); err != nil {
		return nil, fmt.Errorf("telemetry: runtime metrics: %w", err)
	}

	// ---- Logs: stdout always (with trace ids), OTLP when configured.
	proc := o.LogProcessor
	if proc == nil && exports(getenv, "LOGS") {
		exp, err := autoexport.NewLogExporter(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: log exporter: %w", err)
		}
		if !autoexport.IsNoneLogExporter(exp) {
			proc = sdklog.NewBatchProcessor(exp)
		}
	}
	if proc == nil {
		t.Logger = slog.New(stdout)
	} else {
		lp := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(proc))
		t.shutdowns = append(t.shutdowns, lp.Shutdown)
		t.flushes = append(t.flushes, lp.ForceFlush)
		bridge := otelslog.NewHandler(ServiceName, otelslog.WithLoggerProvider(lp), otelslog.WithSource(false))
		t.Logger = slog.New(slog.NewMultiHandler(stdout, MinLevel(bridge, o.LogLevel)))
	}
	return t, nil
}

// Noop returns telemetry that records nothing: the baseline of benchmarks,
// and what tests use when they do not look at telemetry.
func Noop(log *slog.Logger) *Telemetry {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Telemetry{
		TracerProvider: tracenoop.NewTracerProvider(),
		MeterProvider:  metricnoop.NewMeterProvider(),
		Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		Logger:         log,
		MetricsHandler: promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{}),
	}
}

// ForceFlush exports everything buffered now (tests use it before asserting).
func (t *Telemetry) ForceFlush(ctx context.Context) error {
	var errs []error
	for _, f := range t.flushes {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}

// Shutdown flushes and stops every provider within ctx's deadline.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for i := len(t.shutdowns) - 1; i >= 0; i-- {
		errs = append(errs, t.shutdowns[i](ctx))
	}
	t.shutdowns = nil
	return errors.Join(errs...)
}

// exports reports whether a signal ("TRACES", "METRICS", "LOGS") should be
// exported: OTEL_<SIGNAL>_EXPORTER names an exporter, or an OTLP endpoint is
// configured. Without either, exporting would only retry against
// localhost:4318 and log errors, so the signal stays in-process.
func exports(getenv func(string) string, signal string) bool {
	if getenv("OTEL_"+signal+"_EXPORTER") != "" {
		return true
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != ""
}

func newResource(ctx context.Context, o Options) (*resource.Resource, error) {
	var id [8]byte
	_, _ = rand.Read(id[:])
	base := resource.NewSchemaless(
		semconv.ServiceName(ServiceName),
		semconv.ServiceVersion(o.Version),
		semconv.ServiceInstanceID(hex.EncodeToString(id[:])),
		attribute.String("deployment.environment", o.Environment),
		attribute.String("beacon.role", o.Role),
	)
	// Later sources win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
	// override the defaults above.
	env, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return resource.Merge(base, env)
}

// throttledErrors logs OTel internal errors, at most one per period.
type throttledErrors struct {
	log   *slog.Logger
	every time.Duration
	mu    sync.Mutex
	last  time.Time
	count int
}

func (h *throttledErrors) Handle(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.count++
	if time.Since(h.last) < h.every {
		return
	}
	h.log.Warn("telemetry export failing", "error", err.Error(), "errors_since_last_report", h.count)
	h.last, h.count = time.Now(), 0
}
