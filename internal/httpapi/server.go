// Package httpapi is Beacon's HTTP API: huma v2 on net/http. routes.go holds
// the whole surface; this file builds the server around it.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"reflect"
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
	"github.com/beaconhq/beacon/internal/telemetry"
)

// Deps are what the API needs. Only Log and Version are needed to describe
// the API (beacon openapi); serving needs them all.
type Deps struct {
	Log     *slog.Logger
	Version string
	// Routes are the domains' parts of the API.
	Routes []Routes
	Jobs   *river.Client[pgx.Tx]
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
	cfg.Info.Description = "Beacon's API. Every error is an RFC 9457 problem document."
	cfg.OpenAPIPath = OpenAPIPath
	// Relative: "Try it out" in /docs calls the origin that served the
	// document, wherever Beacon is deployed.
	cfg.Servers = []*huma.Server{{URL: "/", Description: "The server that serves this document"}}
	cfg.Tags = apiTags(d.Routes)
	cfg.Components.SecuritySchemes = securitySchemes()
	// huma's own docs page loads its scripts from a CDN; ours is embedded.
	cfg.DocsPath = ""
	// Schemas stay inline in the OpenAPI document; no $schema link in bodies.
	cfg.CreateHooks = nil
	api := humago.New(mux, cfg)
	addRoutes(mux, api, d)
	documentErrors(api)
	return instrument(d.Telemetry, recoverer(d.Log, logRequests(d.Log, plainErrors(mux)))), api
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

// problemType is the media type of every error Beacon answers (RFC 9457).
const problemType = "application/problem+json"

// problemResponse documents an error response whose body is a problem
// document shaped like T: huma.ErrorModel, or a type that extends it.
func problemResponse[T any](api huma.API, description string) *huma.Response {
	schema := api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[T](), true, "")
	return &huma.Response{Description: description, Content: map[string]*huma.MediaType{problemType: {Schema: schema}}}
}

// documentErrors completes the documented errors of every operation, once
// all are registered: an error response declared with a description only
// (such as the 401 and 403 of private and admin operations) gets the
// problem schema, and an operation without a default response gets one for
// the errors it does not list.
func documentErrors(api huma.API) {
	oapi := api.OpenAPI()
	fallback := problemResponse[huma.ErrorModel](api,
		"Any other error, for example 404 (no such resource, or not yours), 409, 422 (invalid input) "+
			"or 503 (not ready, or the database is unreachable; see Retry-After).")
	for _, item := range oapi.Paths {
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Delete, item.Options, item.Head, item.Patch, item.Trace} {
			if op == nil {
				continue
			}
			for code, resp := range op.Responses {
				if (code == "default" || code[0] == '4' || code[0] == '5') && len(resp.Content) == 0 {
					resp.Content = map[string]*huma.MediaType{problemType: fallback.Content[problemType]}
				}
			}
			if op.Responses["default"] == nil {
				op.Responses["default"] = fallback
			}
		}
	}
}

// unrouted answers what no route takes: 405 with Allow when routes take the
// path with other methods, else 404. Without it the catch-all "/" would
// answer 404 to a wrong method, and net/http's ServeMux would answer 405 in
// text/plain.
func unrouted(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		allow := allowedMethods(mux, r)
		if allow == "" {
			handleNotFound(w, r)
			return
		}
		w.Header().Set("Allow", allow)
		writeProblem(w, http.StatusMethodNotAllowed, notAllowed(r, allow))
	})
}

// allowedMethods lists, in Allow header form, the methods that a route other
// than the catch-all takes for r's path; "" when there are none.
func allowedMethods(mux *http.ServeMux, r *http.Request) string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if _, pattern := mux.Handler(&http.Request{Method: m, URL: r.URL, Host: r.Host}); pattern != "" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	return strings.Join(allow, ", ")
}

func notAllowed(r *http.Request, allow string) string {
	detail := r.Method + " is not allowed on " + r.URL.Path
	if allow != "" {
		detail += "; allowed: " + allow
	}
	return detail
}

// plainErrors replaces error answers in text/plain or without a
// Content-Type (net/http's http.Error and http.NotFound, which River UI and
// the websocket library use) with problem documents of the same status,
// keeping headers such as Allow. Errors with a body type of their own
// (problem documents, River UI's JSON API) pass untouched.
func plainErrors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pw := &problemWriter{ResponseWriter: w}
		next.ServeHTTP(pw, r)
		if pw.held == 0 {
			return
		}
		var detail string
		switch pw.held {
		case http.StatusNotFound:
			detail = "no route for " + r.Method + " " + r.URL.Path
		case http.StatusMethodNotAllowed:
			detail = notAllowed(r, w.Header().Get("Allow"))
		default:
			detail = plainDetail(pw.body)
		}
		w.Header().Del("Content-Length")
		writeProblem(w, pw.held, detail)
	})
}

// maxPlainDetail bounds how much of a replaced text/plain body is kept.
const maxPlainDetail = 200

// plainDetail is the first line of a text/plain error body.
func plainDetail(body []byte) string {
	line, _, _ := strings.Cut(string(body), "\n")
	return strings.TrimSpace(strings.ToValidUTF8(line, ""))
}

// problemWriter holds back an error response that is not a problem document
// (status >= 400, text/plain or no Content-Type) for plainErrors to replace.
type problemWriter struct {
	http.ResponseWriter
	wrote bool
	held  int    // status of the held-back error; 0: passing through
	body  []byte // the start of the held-back body
}

func (p *problemWriter) WriteHeader(code int) {
	if p.held != 0 { // superfluous: the held-back status stands
		return
	}
	if p.wrote || code < 200 { // superfluous, or informational (1xx)
		p.ResponseWriter.WriteHeader(code)
		return
	}
	p.wrote = true
	ct := p.Header().Get("Content-Type")
	if code >= 400 && (ct == "" || strings.HasPrefix(ct, "text/plain")) {
		p.held = code
		return
	}
	p.ResponseWriter.WriteHeader(code)
}

func (p *problemWriter) Write(b []byte) (int, error) {
	if !p.wrote {
		p.WriteHeader(http.StatusOK)
	}
	if p.held != 0 {
		if room := maxPlainDetail - len(p.body); room > 0 {
			p.body = append(p.body, b[:min(room, len(b))]...)
		}
		return len(b), nil
	}
	return p.ResponseWriter.Write(b)
}

// FlushError keeps http.ResponseController from sending a held-back
// error's headers early.
func (p *problemWriter) FlushError() error {
	if p.held != 0 {
		return nil
	}
	return http.NewResponseController(p.ResponseWriter).Flush()
}

func (p *problemWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }
