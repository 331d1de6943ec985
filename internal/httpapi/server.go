// Package httpapi is Beacon's HTTP API: huma v2 on net/http. routes.go holds
// the whole surface; this file builds the server around it.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/beaconhq/beacon/internal/auth"
	"github.com/beaconhq/beacon/internal/idempotency"
	"github.com/beaconhq/beacon/internal/jobs"
	"github.com/beaconhq/beacon/internal/monitors"
	"github.com/beaconhq/beacon/internal/telemetry"
)

// Deps are what the API needs. Only Log and Version are needed to describe
// the API (beacon openapi); serving needs them all.
type Deps struct {
	Log      *slog.Logger
	Version  string
	Monitors *monitors.Service
	Jobs     *river.Client[pgx.Tx]
	// Waiter wakes run-check requests when their job ends; nil: they poll.
	Waiter *jobs.Waiter
	// Idempotency stores the answers of creating POSTs sent with an
	// Idempotency-Key; nil: the header is ignored.
	Idempotency *idempotency.Store
	// Ready reports whether the process can serve: database reachable and
	// schema current (the /readyz probe).
	Ready func(context.Context) error
	// Gate is a cheap check run before every /v1 operation; while it
	// returns an error (schema behind), /v1 answers 503.
	Gate func() error
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Telemetry instruments the server; nil means none.
	Telemetry *telemetry.Telemetry
	// Auth issues and checks tokens. Without it every private operation
	// answers 401.
	Auth *auth.Service
	// Events serves the /v1/events websocket; nil: not served.
	Events http.Handler
	// RiverUI serves River's web UI under /riverui/ (admins only); nil: not served.
	RiverUI http.Handler
	// TrustedProxies may name the client in X-Forwarded-For (the dashboard).
	TrustedProxies []netip.Prefix
}

// OpenAPIPath is where the OpenAPI document is served (+ ".json", ".yaml").
const OpenAPIPath = "/openapi"

// NewServer returns the API's handler and its huma API (for the OpenAPI
// document and tests).
func NewServer(d Deps) (http.Handler, huma.API) {
	if d.Waiter == nil && d.Jobs != nil {
		d.Waiter = jobs.NewWaiter(d.Jobs, nil, d.Log)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Telemetry == nil {
		d.Telemetry = telemetry.Noop(d.Log)
	}
	mux := http.NewServeMux()
	cfg := huma.DefaultConfig("Beacon API", d.Version)
	cfg.Info.Description = "Synthetic monitoring: monitors, scheduled HTTP checks, results and statistics. " +
		"Every error is an RFC 9457 problem document."
	cfg.OpenAPIPath = OpenAPIPath
	cfg.Components.SecuritySchemes = securitySchemes()
	// huma's own docs page loads its scripts from a CDN; ours is embedded.
	cfg.DocsPath = ""
	// Schemas stay inline in the OpenAPI document; no $schema link in bodies.
	cfg.CreateHooks = nil
	api := humago.New(mux, cfg)
	addRoutes(mux, api, d)
	return instrument(d.Telemetry, recoverer(d.Log, logRequests(d.Log, mux))), api
}

// untraced paths: probes, docs and the OpenAPI document are polled or
// static, and would only bury the requests worth looking at.
func untraced(path string) bool {
	// /v1/events is a websocket: a span as long as the connection would
	// only distort the request-duration histogram.
	return path == "/healthz" || path == "/readyz" || path == "/metrics" || path == "/v1/events" ||
		path == "/docs" || strings.HasPrefix(path, "/docs/") || strings.HasPrefix(path, OpenAPIPath)
}

// instrument wraps the API in an OpenTelemetry server span and metrics. The
// span is named "METHOD /route/template" from the route the mux matched,
// never the raw path (which holds ids).
func instrument(tel *telemetry.Telemetry, next http.Handler) http.Handler {
	return otelhttp.NewHandler(next, "beacon.api",
		otelhttp.WithTracerProvider(tel.TracerProvider),
		otelhttp.WithMeterProvider(tel.MeterProvider),
		otelhttp.WithPropagators(tel.Propagator),
		otelhttp.WithFilter(func(r *http.Request) bool { return !untraced(r.URL.Path) }),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if route := route(r); route != "" {
				return r.Method + " " + route
			}
			return r.Method
		}),
	)
}

// route returns the path template the mux matched, or "" for no route.
func route(r *http.Request) string {
	_, path, _ := strings.Cut(r.Pattern, " ")
	if path == "" || path == "/" { // "/" is the catch-all 404
		return ""
	}
	return path
}

// recoverer turns a panic in a handler into a 500 problem and a log line,
// instead of a dropped connection.
func recoverer(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.ErrorContext(r.Context(), "panic in handler", "panic", v, "method", r.Method, "path", r.URL.Path)
				writeProblem(w, http.StatusInternalServerError, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logRequests logs one line per request. The query string is left out: it
// may carry secrets.
func logRequests(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		level := slog.LevelInfo
		if rec.status >= 500 {
			level = slog.LevelError
		}
		rt := route(r)
		if rt != "" {
			// otelhttp records http.route on its metrics; the span needs it too.
			trace.SpanFromContext(r.Context()).SetAttributes(semconv.HTTPRoute(rt))
		}
		log.LogAttrs(r.Context(), level, "http request",
			slog.String("method", r.Method), slog.String("route", rt), slog.String("path", r.URL.Path),
			slog.Int("status", rec.status), slog.Duration("duration", time.Since(start)))
	})
}
