package dashboard

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"

	"github.com/beaconhq/beacon/internal/httpx"
	"github.com/beaconhq/beacon/internal/problem"
)

// csrfHeader must accompany every unsafe /api request. A page on another
// site cannot add a custom header to a cross-origin request without a CORS
// preflight, which the dashboard never answers.
const (
	csrfHeader = "X-Requested-With"
	csrfValue  = "beacon"
)

// session is what the proxy knows of the browser's sign-in; it travels in
// the request context from the guard to the transport.
type session struct {
	access, refresh string
	// signIn is where a River UI page load goes when the API refuses the
	// session ("" for everything else).
	signIn string
}

type sessionKey struct{}

func withSession(ctx context.Context, s *session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

func sessionFrom(ctx context.Context) *session {
	s, _ := ctx.Value(sessionKey{}).(*session)
	return s
}

// newProxy relays /api/* to the API's /v1/* and /riverui/* as is, with the
// session's access token.
func newProxy(api *url.URL, rt http.RoundTripper, s *server) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			path, raw := pr.In.URL.Path, pr.In.URL.RawPath
			if rest, ok := strings.CutPrefix(path, "/api/"); ok {
				path = "/v1/" + rest
				if r, ok := strings.CutPrefix(raw, "/api/"); ok {
					raw = "/v1/" + r
				} else {
					raw = ""
				}
			}
			pr.Out.URL.Path, pr.Out.URL.RawPath = path, raw
			pr.SetURL(api)
			pr.SetXForwarded()

			// The browser's cookies hold the tokens; the API needs neither
			// them nor a header a page script chose.
			pr.Out.Header.Del("Cookie")
			pr.Out.Header.Del("Authorization")
			if sess := sessionFrom(pr.In.Context()); sess != nil && sess.access != "" {
				pr.Out.Header.Set("Authorization", "Bearer "+sess.access)
			}
			if httpx.IsUpgrade(pr.In) {
				// The guard checked Origin against the dashboard's host; the
				// API would compare it with its own host and refuse.
				pr.Out.Header.Del("Origin")
			} else {
				// Only websockets are relayed (the guards check their
				// origin); any other upgrade is sent as a plain request.
				pr.Out.Header.Del("Connection")
				pr.Out.Header.Del("Upgrade")
			}
		},
		Transport: &authTransport{base: rt, tokens: s.tokens, cookies: s.cookies, log: s.log},
		ModifyResponse: func(res *http.Response) error {
			if res.Header.Get("X-Content-Type-Options") == "" {
				res.Header.Set("X-Content-Type-Options", "nosniff")
			}
			if sess := sessionFrom(res.Request.Context()); res.StatusCode == http.StatusUnauthorized &&
				sess != nil && sess.signIn != "" && navigation(res.Request) {
				// The session has ended (the refresh failed): a person
				// opening River UI signs in and comes back.
				toSignIn(res, sess.signIn)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() == nil {
				s.log.WarnContext(r.Context(), "the API is unreachable", "method", r.Method, "path", r.URL.Path, "error", err)
			}
			problem.Write(w, http.StatusBadGateway, "the API is unavailable")
		},
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// apiGuard admits /api requests: unsafe methods need the CSRF header, the
// token endpoints stay out of reach of page scripts, and the session
// cookies are read once for the transport.
func (s *server) apiGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/oauth/") {
			// Tokens are handled by /auth/*: a page script must never see one.
			problem.Write(w, http.StatusNotFound, "sign in through /auth/login")
			return
		}
		if unsafeMethod(r.Method) && r.Header.Get(csrfHeader) != csrfValue {
			problem.Write(w, http.StatusForbidden, "missing header "+csrfHeader+": "+csrfValue)
			return
		}
		if httpx.IsUpgrade(r) && !sameOrigin(r) {
			problem.Write(w, http.StatusForbidden, "cross-origin websocket refused")
			return
		}
		next.ServeHTTP(w, r.WithContext(withSession(r.Context(), readSession(r))))
	})
}

// riverGuard admits River UI requests. River UI's own scripts cannot send
// the CSRF header, so unsafe requests must come from this origin instead.
// A browser navigating to River UI without a session is sent to sign in
// first; its scripts' requests get the API's 401 problem.
func (s *server) riverGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (unsafeMethod(r.Method) || httpx.IsUpgrade(r)) && (r.Header.Get("Origin") == "" || !sameOrigin(r)) {
			problem.Write(w, http.StatusForbidden, "cross-origin request refused")
			return
		}
		sess := readSession(r)
		sess.signIn = signInURL(r.URL)
		if sess.access == "" && sess.refresh == "" && navigation(r) {
			w.Header().Set("Cache-Control", "no-store")
			http.Redirect(w, r, sess.signIn, http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r.WithContext(withSession(r.Context(), sess)))
	})
}

// navigation reports whether r is a browser loading a page (a person), as
// opposed to a script's fetch or an API client: a GET or HEAD that asks for
// HTML. Sec-Fetch-Mode says so exactly where browsers send it.
func navigation(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if mode := r.Header.Get("Sec-Fetch-Mode"); mode != "" {
		return mode == "navigate"
	}
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mt, _, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(mt), "text/html") {
				return true
			}
		}
	}
	return false
}

// signInURL is the dashboard's sign-in page with the page to return to
// once signed in (a River UI path). The app follows only River UI paths
// there, so the parameter cannot send anyone off-site.
func signInURL(back *url.URL) string {
	path := back.EscapedPath()
	if back.RawQuery != "" {
		path += "?" + back.RawQuery
	}
	return "/?" + url.Values{"next": {path}}.Encode() + "#/login"
}

// toSignIn turns the API's 401 into a redirect to the sign-in page, keeping
// the response's cookies (the cleared session).
func toSignIn(res *http.Response, location string) {
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	for _, h := range []string{"Content-Type", "Content-Length", "Content-Encoding", "WWW-Authenticate", "Etag", "Last-Modified"} {
		res.Header.Del(h)
	}
	res.StatusCode, res.Status = http.StatusSeeOther, "303 See Other"
	res.Header.Set("Location", location)
	res.Header.Set("Cache-Control", "no-store")
	res.Body, res.ContentLength = http.NoBody, 0
}

func readSession(r *http.Request) *session {
	return &session{access: cookieValue(r, accessCookie), refresh: cookieValue(r, refreshCookie)}
}

func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// authTransport refreshes the session's tokens when they are needed:
// before the request when the access cookie has expired (its Max-Age is the
// token's lifetime), and after a 401 to a bodiless GET or HEAD, which it
// then sends again. The new cookies ride on the response.
type authTransport struct {
	base    http.RoundTripper
	tokens  *tokenClient
	cookies cookieJar
	log     *slog.Logger
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	sess := sessionFrom(req.Context())
	if sess == nil || sess.refresh == "" {
		return t.base.RoundTrip(req)
	}
	var setCookies []*http.Cookie
	refreshed := false
	if sess.access == "" {
		refreshed = true
		tok, cs := t.refresh(req.Context(), sess.refresh)
		setCookies = cs
		if tok.Access != "" {
			req = req.Clone(req.Context())
			req.Header.Set("Authorization", "Bearer "+tok.Access)
		}
	}

	res, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode == http.StatusUnauthorized && !refreshed && replayable(req) {
		tok, cs := t.refresh(req.Context(), sess.refresh)
		setCookies = cs
		if tok.Access != "" {
			_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
			res.Body.Close()
			retry := req.Clone(req.Context())
			retry.Header.Set("Authorization", "Bearer "+tok.Access)
			if res, err = t.base.RoundTrip(retry); err != nil {
				// The new tokens are lost with this response; the refresh
				// grace period hands them to the browser's next request.
				return nil, err
			}
		}
	}
	for _, c := range setCookies {
		res.Header.Add("Set-Cookie", c.String())
	}
	return res, nil
}

// refresh returns the new tokens and the cookies to set: the new pair, or
// cleared cookies when the API refused the refresh token. A transient
// failure returns neither, and the request goes on without a token.
func (t *authTransport) refresh(ctx context.Context, refreshToken string) (tokens, []*http.Cookie) {
	tok, err := t.tokens.refresh(ctx, refreshToken)
	var ge *grantError
	switch {
	case err == nil:
		return tok, t.cookies.set(tok)
	case errors.As(err, &ge) && ge.rejected():
		t.log.InfoContext(ctx, "session expired: the API refused the refresh token")
		return tokens{}, t.cookies.clear()
	default:
		if ctx.Err() == nil {
			t.log.WarnContext(ctx, "refreshing a session failed", "error", err)
		}
		return tokens{}, nil
	}
}

// replayable: only requests without a body are sent twice, so nothing is
// buffered and nothing with side effects is repeated.
func replayable(req *http.Request) bool {
	return (req.Method == http.MethodGet || req.Method == http.MethodHead) &&
		(req.Body == nil || req.Body == http.NoBody)
}
