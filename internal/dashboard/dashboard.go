// Package dashboard is Beacon's web UI: a small server that serves an
// embedded single-page app and relays its calls to the Beacon API over HTTP.
// It never touches the database.
//
// The browser never holds a token where script can read it. The dashboard
// signs in on the user's behalf (POST /auth/login calls the API's token
// endpoint) and keeps the access and refresh tokens in HttpOnly,
// SameSite=Strict cookies; /api/* is a reverse proxy to the API's /v1/*
// that turns the access cookie into an Authorization header. When the
// access token has expired (its cookie is gone) or the API answers 401 to a
// GET or HEAD, the proxy refreshes the tokens once, server-side, and sets the
// new cookies. Requests with a body are never replayed: they are not
// buffered, so a 401 to them reaches the UI, which signs in again.
//
// Cross-site request forgery is stopped twice: SameSite=Strict cookies, and
// the "X-Requested-With: beacon" header every unsafe /api request must
// carry (a cross-site page cannot set it without a CORS preflight, which the
// dashboard never grants).
//
// Every refusal, the dashboard's own or the API's, is an RFC 9457 problem
// document (internal/problem), so the UI reads errors one way. A browser
// that navigates to River UI without a session is the exception: it is sent
// to the sign-in page, which brings it back.
package dashboard

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/beaconhq/beacon/internal/problem"
)

// Options configure the dashboard.
type Options struct {
	// APIURL is where the Beacon API is (scheme and host, optionally a path
	// prefix), e.g. http://localhost:8080.
	APIURL *url.URL
	// Log receives errors talking to the API; nil discards them. Tokens and
	// cookies are never logged.
	Log *slog.Logger
	// SecureCookies sets the Secure flag on the session cookies. Turn it
	// off only for plain-HTTP local runs.
	SecureCookies bool
	// Transport carries every request to the API (for telemetry); nil means
	// a clone of http.DefaultTransport.
	Transport http.RoundTripper
	// TrustedProxies are the peers (a reverse proxy in front of the
	// dashboard) whose X-Forwarded-For names the browser; the sign-in passes
	// the browser's address on to the API for its rate limits.
	TrustedProxies []netip.Prefix
}

// tokenTimeout bounds a call to the token or revocation endpoint.
const tokenTimeout = 10 * time.Second

// New returns the dashboard's handler: the whole surface is in routes.
func New(opts Options) (http.Handler, error) {
	if opts.APIURL == nil {
		return nil, errors.New("dashboard: APIURL is required")
	}
	if (opts.APIURL.Scheme != "http" && opts.APIURL.Scheme != "https") || opts.APIURL.Host == "" {
		return nil, fmt.Errorf("dashboard: APIURL %q must be an absolute http or https URL", opts.APIURL.Redacted())
	}
	if opts.APIURL.User != nil {
		return nil, errors.New("dashboard: APIURL must not contain credentials")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Transport == nil {
		opts.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	api := *opts.APIURL
	api.RawQuery, api.Fragment = "", ""

	ui, err := loadAssets()
	if err != nil {
		return nil, err
	}
	tokens := newTokenClient(&api, opts.Transport)
	s := &server{
		log:    opts.Log,
		ui:     ui,
		tokens: tokens,
		cookies: cookieJar{
			secure: opts.SecureCookies,
		},
		trusted: opts.TrustedProxies,
	}
	s.proxy = newProxy(&api, opts.Transport, s)
	return s.routes(), nil
}

type server struct {
	log     *slog.Logger
	ui      *assets
	tokens  *tokenClient
	cookies cookieJar
	proxy   http.Handler
	trusted []netip.Prefix
}

// routes is the dashboard's whole HTTP surface.
func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", handleHealthz)

	// The app shell and its assets. Client-side routes live in the hash.
	mux.Handle("GET /{$}", s.ui.page("index.html"))
	mux.Handle("GET /status/{slug}", s.ui.page("status.html"))
	mux.Handle("GET /assets/{name}", s.ui.files())

	// Session: the only place tokens are handled.
	mux.HandleFunc("POST /auth/login", s.handleLogin)
	mux.HandleFunc("POST /auth/logout", s.handleLogout)
	mux.HandleFunc("/auth/login", onlyPost)
	mux.HandleFunc("/auth/logout", onlyPost)

	// The API, with the session's access token (/api/events is the
	// websocket: ReverseProxy relays upgrades).
	mux.Handle("/api/", s.apiGuard(s.proxy))
	mux.Handle("/riverui/", s.riverGuard(s.proxy))

	// Anything else is a problem too, not net/http's plain text.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, http.StatusNotFound, "no such page: "+r.URL.Path)
	})
	return mux
}

func onlyPost(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Allow", http.MethodPost)
	problem.Write(w, http.StatusMethodNotAllowed, "use POST")
}

func handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}
