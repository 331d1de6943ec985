package dashboard

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeAPI stands in for Beacon's API (our own code, tested on its own): the
// token and revocation endpoints with refresh-token rotation and reuse
// detection, /v1/me, /v1/monitors, /v1/public/status/{slug}, a raw
// websocket-style echo at /v1/events and /riverui/.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	seq       int
	access    map[string]bool // valid access tokens
	refresh   map[string]bool // refresh token -> still unused
	revoked   []string
	refreshes int             // refresh grants, successful or not
	requests  []*http.Request // clones of what reached /v1/me, /v1/monitors, /riverui/
}

const (
	testEmail     = "admin@beacon.local"
	testPassword  = "correct horse battery"
	limitedEmail  = "limited@beacon.local"
	startingEmail = "starting@beacon.local" // the API answers 503: not ready
	brokenEmail   = "broken@beacon.local"   // the API answers 200 without a token
)

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, access: map[string]bool{}, refresh: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/oauth/token", f.token)
	mux.HandleFunc("POST /v1/oauth/revoke", f.revoke)
	mux.HandleFunc("GET /v1/me", f.authed(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"id": 1, "email": testEmail, "role": "admin"})
	}))
	mux.HandleFunc("GET /v1/monitors", f.authed(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"items": []any{map[string]any{"id": 7, "name": "Example", "state": "up"}}})
	}))
	mux.HandleFunc("POST /v1/monitors", f.authed(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body["url"] == "" {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
				"title": "Unprocessable Entity", "status": 422, "detail": "validation failed",
				"errors": []any{map[string]any{"location": "body.url", "message": "must have a host"}},
			})
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"id": 8, "name": body["name"]})
	}))
	mux.HandleFunc("GET /v1/public/status/{slug}", func(w http.ResponseWriter, r *http.Request) {
		f.record(r)
		writeJSON(w, http.StatusOK, map[string]any{"name": "Example", "state": "up", "recent": []any{}})
	})
	mux.HandleFunc("GET /v1/events", f.authed(f.events))
	mux.HandleFunc("/riverui/", f.authed(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<p>river</p>")
	}))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeAPI) record(r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Clone(r.Context()))
}

// seen returns the requests that reached path.
func (f *fakeAPI) seen(path string) []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*http.Request
	for _, r := range f.requests {
		if r.URL.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeAPI) authed(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.record(r)
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		f.mu.Lock()
		valid := ok && f.access[tok]
		f.mu.Unlock()
		if !valid {
			w.Header().Set("WWW-Authenticate", `Bearer realm="beacon", error="invalid_token"`)
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"title":"Unauthorized","status":401,"detail":"a valid access token is required"}`)
			return
		}
		next(w, r)
	}
}

// issue mints a token pair; callers hold f.mu.
func (f *fakeAPI) issue() map[string]any {
	f.seq++
	at, rt := fmt.Sprintf("at-%d", f.seq), fmt.Sprintf("rt-%d", f.seq)
	f.access[at] = true
	f.refresh[rt] = true
	return map[string]any{"access_token": at, "refresh_token": rt, "token_type": "Bearer", "expires_in": 900}
}

// login gives a valid pair without going through the dashboard.
func (f *fakeAPI) login() (access, refresh string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.issue()
	return t["access_token"].(string), t["refresh_token"].(string)
}

func (f *fakeAPI) expire(access string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.access, access)
}

func (f *fakeAPI) counts() (refreshes int, revoked []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refreshes, append([]string(nil), f.revoked...)
}

func (f *fakeAPI) token(w http.ResponseWriter, r *http.Request) {
	assert.Equal(f.t, "application/x-www-form-urlencoded", r.Header.Get("Content-Type"))
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request"})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.PostForm.Get("grant_type") {
	case "password":
		switch {
		case r.PostForm.Get("username") == limitedEmail:
			w.Header().Set("Retry-After", "42")
			writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": "slow_down"})
		case r.PostForm.Get("username") == startingEmail:
			w.Header().Set("Retry-After", "3")
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"title": "Service Unavailable", "status": 503})
		case r.PostForm.Get("username") == brokenEmail:
			writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer"})
		case r.PostForm.Get("username") == testEmail && r.PostForm.Get("password") == testPassword:
			writeJSON(w, http.StatusOK, f.issue())
		default:
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_grant"})
		}
	case "refresh_token":
		f.refreshes++
		rt := r.PostForm.Get("refresh_token")
		unused, known := f.refresh[rt]
		if !known || !unused {
			if known {
				// Reuse: the real API revokes the whole sign-in.
				for k := range f.refresh {
					f.refresh[k] = false
				}
			}
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_grant"})
			return
		}
		f.refresh[rt] = false
		writeJSON(w, http.StatusOK, f.issue())
	default:
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "unsupported_grant_type"})
	}
}

func (f *fakeAPI) revoke(w http.ResponseWriter, r *http.Request) {
	require.NoError(f.t, r.ParseForm())
	f.mu.Lock()
	defer f.mu.Unlock()
	tok := r.PostForm.Get("token")
	f.revoked = append(f.revoked, tok)
	f.refresh[tok] = false
	w.WriteHeader(http.StatusOK)
}

// events completes an upgrade by hand and echoes bytes: enough to prove
// the dashboard relays upgraded connections.
func (f *fakeAPI) events(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Origin") != "" {
		http.Error(w, "origin mismatch", http.StatusForbidden)
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if !assert.NoError(f.t, err) {
		return
	}
	defer conn.Close()
	_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	_ = rw.Flush()
	buf := make([]byte, 64)
	n, _ := rw.Read(buf)
	_, _ = conn.Write(buf[:n])
}

// ---- The dashboard under test.

type testBundle struct {
	api    *fakeAPI
	dash   *httptest.Server
	client *http.Client
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func setup(t *testing.T, secure bool) *testBundle {
	t.Helper()
	api := newFakeAPI(t)
	u, err := url.Parse(api.srv.URL)
	require.NoError(t, err)
	logs := &syncBuffer{}
	h, err := New(Options{
		APIURL:        u,
		Log:           slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		SecureCookies: secure,
	})
	require.NoError(t, err)
	dash := httptest.NewServer(h)
	t.Cleanup(dash.Close)
	t.Cleanup(func() {
		// Whatever the test did, no token may reach the logs.
		assert.NotRegexp(t, `\b[ar]t-\d+\b|`+regexp.QuoteMeta(testPassword), logs.String())
	})
	return &testBundle{
		api:  api,
		dash: dash,
		logs: logs,
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
	}
}

// do sends a request to the dashboard with the given cookies and headers.
func (b *testBundle) do(t *testing.T, method, path, body string, cookies map[string]string, headers ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, b.dash.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	if body == "" {
		req.Body = http.NoBody
	}
	for name, value := range cookies {
		req.AddCookie(&http.Cookie{Name: name, Value: value})
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := b.client.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func (b *testBundle) login(t *testing.T, email, password string, headers ...string) *http.Response {
	t.Helper()
	body, err := json.Marshal(map[string]string{"email": email, "password": password})
	require.NoError(t, err)
	return b.do(t, http.MethodPost, "/auth/login", string(body), nil,
		append([]string{"Content-Type", "application/json", "X-Requested-With", "beacon"}, headers...)...)
}

func readAll(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return string(b)
}

// assertProblem checks that res is an RFC 9457 problem with status and a
// detail to show (containing detail when given), and returns the detail.
func assertProblem(t *testing.T, res *http.Response, status int, detail string) string {
	t.Helper()
	body := readAll(t, res)
	require.Equal(t, status, res.StatusCode, body)
	assert.Equal(t, "application/problem+json", res.Header.Get("Content-Type"), body)
	assert.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &p), body)
	assert.Equal(t, status, p.Status, body)
	assert.Equal(t, http.StatusText(status), p.Title, body)
	assert.NotEmpty(t, p.Detail, body)
	assert.Contains(t, p.Detail, detail, body)
	assert.NotContains(t, body, `"error"`, "one error format: no {\"error\": ...}")
	return p.Detail
}

func cookiesByName(res *http.Response) map[string]*http.Cookie {
	out := map[string]*http.Cookie{}
	for _, c := range res.Cookies() {
		out[c.Name] = c
	}
	return out
}

// ---- Sign-in and sign-out.

func TestLoginSetsSessionCookies(t *testing.T) {
	t.Parallel()
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("secure=%v", secure), func(t *testing.T) {
			t.Parallel()
			b := setup(t, secure)
			res := b.login(t, testEmail, testPassword)
			body := readAll(t, res)
			require.Equal(t, http.StatusNoContent, res.StatusCode, body)
			assert.Empty(t, body)
			assert.Equal(t, "no-store", res.Header.Get("Cache-Control"))

			cs := cookiesByName(res)
			require.Contains(t, cs, accessCookie)
			require.Contains(t, cs, refreshCookie)
			at, rt := cs[accessCookie], cs[refreshCookie]
			assert.Equal(t, "at-1", at.Value)
			assert.Equal(t, "rt-1", rt.Value)
			for _, c := range []*http.Cookie{at, rt} {
				assert.True(t, c.HttpOnly, c.Name)
				assert.Equal(t, http.SameSiteStrictMode, c.SameSite, c.Name)
				assert.Equal(t, "/", c.Path, c.Name)
				assert.Equal(t, secure, c.Secure, c.Name)
			}
			assert.Equal(t, 900, at.MaxAge, "the access cookie lives as long as the token")
			assert.Positive(t, rt.MaxAge)

			// Tokens appear only in Set-Cookie.
			for name, values := range res.Header {
				if name != "Set-Cookie" {
					assert.NotContains(t, strings.Join(values, " "), "at-1", name)
					assert.NotContains(t, strings.Join(values, " "), "rt-1", name)
				}
			}
		})
	}
}

func TestLoginRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	for _, tc := range []struct{ name, email, password string }{
		{"wrong password", testEmail, "nope"},
		{"unknown user", "who@beacon.local", testPassword},
		{"empty", "", ""},
	} {
		res := b.login(t, tc.email, tc.password)
		assertProblem(t, res, http.StatusUnauthorized, "invalid email or password")
		assert.Equal(t, "no-store", res.Header.Get("Cache-Control"), tc.name)
		assert.Empty(t, res.Cookies(), tc.name)
	}
}

func TestLoginRateLimitPassesRetryAfter(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	res := b.login(t, limitedEmail, "whatever")
	assertProblem(t, res, http.StatusTooManyRequests, "too many failed sign-ins")
	assert.Equal(t, "42", res.Header.Get("Retry-After"))
	assert.Empty(t, res.Cookies())
}

func TestLoginWhileAPIStarts(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	res := b.login(t, startingEmail, "whatever")
	assertProblem(t, res, http.StatusServiceUnavailable, "not ready")
	assert.Equal(t, "3", res.Header.Get("Retry-After"))
	assert.Empty(t, res.Cookies())
}

func TestLoginWithBrokenTokenResponse(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	res := b.login(t, brokenEmail, "whatever")
	assertProblem(t, res, http.StatusBadGateway, "the API is unavailable")
	assert.Empty(t, res.Cookies())
	assert.Contains(t, b.logs.String(), "token response without an access token")
}

func TestLoginRejectsBadRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	asJSON := []string{"Content-Type", "application/json"}

	res := b.do(t, http.MethodPost, "/auth/login", `{"email":`, nil, asJSON...)
	assertProblem(t, res, http.StatusBadRequest, "JSON object with email and password") // malformed JSON

	huge := `{"email":"` + strings.Repeat("a", maxLoginBody) + `","password":"x"}`
	res = b.do(t, http.MethodPost, "/auth/login", huge, nil, asJSON...)
	assertProblem(t, res, http.StatusRequestEntityTooLarge, "too large") // body over 1 MiB

	res = b.do(t, http.MethodPost, "/auth/login", "email=a&password=b", nil, "Content-Type", "application/x-www-form-urlencoded")
	assertProblem(t, res, http.StatusUnsupportedMediaType, "application/json") // a cross-site form cannot post JSON

	res = b.login(t, testEmail, testPassword, "Origin", "https://evil.example")
	assertProblem(t, res, http.StatusForbidden, "cross-origin")
	assert.Empty(t, res.Cookies())
	res = b.login(t, testEmail, testPassword, "Origin", "null")
	assertProblem(t, res, http.StatusForbidden, "cross-origin") // opaque origin

	res = b.do(t, http.MethodGet, "/auth/login", "", nil)
	assertProblem(t, res, http.StatusMethodNotAllowed, "POST")
	assert.Equal(t, http.MethodPost, res.Header.Get("Allow"))
	res = b.do(t, http.MethodGet, "/auth/logout", "", nil)
	assertProblem(t, res, http.StatusMethodNotAllowed, "POST")

	res = b.do(t, http.MethodPost, "/auth/logout", "", nil, "Origin", "https://evil.example")
	assertProblem(t, res, http.StatusForbidden, "cross-origin")
	assert.Empty(t, res.Cookies(), "a cross-site page cannot sign anyone out")
}

func TestLoginSameOrigin(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	res := b.login(t, testEmail, testPassword, "Origin", b.dash.URL)
	assert.Equal(t, http.StatusNoContent, res.StatusCode, "the dashboard's own page")
	// Behind a proxy that rewrites Host, the public host is forwarded.
	res = b.login(t, testEmail, testPassword, "Origin", "https://beacon.example.com", "X-Forwarded-Host", "beacon.example.com")
	assert.Equal(t, http.StatusNoContent, res.StatusCode, "public host behind a proxy")
}

func TestLoginWhenAPIIsDown(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	b.api.srv.Close()
	res := b.login(t, testEmail, testPassword)
	assertProblem(t, res, http.StatusBadGateway, "the API is unavailable")
	assert.Empty(t, res.Cookies())
}

func TestLogoutRevokesAndClears(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	at, rt := b.api.login()
	res := b.do(t, http.MethodPost, "/auth/logout", "", map[string]string{accessCookie: at, refreshCookie: rt}, "X-Requested-With", "beacon")
	require.Equal(t, http.StatusNoContent, res.StatusCode)

	_, revoked := b.api.counts()
	assert.Equal(t, []string{rt}, revoked)
	cs := cookiesByName(res)
	for _, name := range []string{accessCookie, refreshCookie} {
		require.Contains(t, cs, name)
		assert.Empty(t, cs[name].Value, name)
		assert.Negative(t, cs[name].MaxAge, "%s must be deleted (Max-Age=0)", name)
		assert.True(t, cs[name].HttpOnly, name)
		assert.Equal(t, "/", cs[name].Path, name)
	}

	// Without a session there is nothing to revoke, and it still succeeds.
	res = b.do(t, http.MethodPost, "/auth/logout", "", nil)
	assert.Equal(t, http.StatusNoContent, res.StatusCode)
	_, revoked = b.api.counts()
	assert.Len(t, revoked, 1)
}

// ---- The API proxy.

func TestProxyAddsAuthorizationFromCookie(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	at, rt := b.api.login()
	res := b.do(t, http.MethodGet, "/api/monitors?limit=5", "", map[string]string{accessCookie: at, refreshCookie: rt},
		"Authorization", "Bearer chosen-by-a-script")
	require.Equal(t, http.StatusOK, res.StatusCode, readAll(t, res))
	assert.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))

	seen := b.api.seen("/v1/monitors")
	require.Len(t, seen, 1)
	assert.Equal(t, "Bearer "+at, seen[0].Header.Get("Authorization"))
	assert.Equal(t, "limit=5", seen[0].URL.RawQuery)
	assert.Empty(t, seen[0].Header.Get("Cookie"), "the browser's cookies stay with the dashboard")
	assert.NotEmpty(t, seen[0].Header.Get("X-Forwarded-For"))
}

func TestProxyStripsBrowserAuthorization(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	at, _ := b.api.login()
	// A valid token in a header a script set is not a session.
	res := b.do(t, http.MethodGet, "/api/me", "", nil, "Authorization", "Bearer "+at)
	assert.Equal(t, http.StatusUnauthorized, res.StatusCode)
	seen := b.api.seen("/v1/me")
	require.Len(t, seen, 1)
	assert.Empty(t, seen[0].Header.Get("Authorization"))
}

func TestProxyRequiresCSRFHeaderOnUnsafeMethods(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	at, rt := b.api.login()
	session := map[string]string{accessCookie: at, refreshCookie: rt}
	body := `{"name":"x","url":"https://example.com/"}`

	for _, method := range []string{http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete} {
		res := b.do(t, method, "/api/monitors", body, session, "Content-Type", "application/json")
		assertProblem(t, res, http.StatusForbidden, "X-Requested-With")
	}
	res := b.do(t, http.MethodPost, "/api/monitors", body, session, "Content-Type", "application/json", "X-Requested-With", "something-else")
	assert.Equal(t, http.StatusForbidden, res.StatusCode)
	assert.Empty(t, b.api.seen("/v1/monitors"), "refused requests never reach the API")

	res = b.do(t, http.MethodPost, "/api/monitors", body, session, "Content-Type", "application/json", "X-Requested-With", "beacon")
	assert.Equal(t, http.StatusCreated, res.StatusCode)
}

func TestProxyPassesProblemsThrough(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	at, rt := b.api.login()
	res := b.do(t, http.MethodPost, "/api/monitors", `{"name":"x","url":""}`, map[string]string{accessCookie: at, refreshCookie: rt},
		"Content-Type", "application/json", "X-Requested-With", "beacon")
	require.Equal(t, http.StatusUnprocessableEntity, res.StatusCode)
	assert.Contains(t, readAll(t, res), `"location":"body.url"`)
}

func TestProxyRefusesTokenEndpoints(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	res := b.do(t, http.MethodPost, "/api/oauth/token", "grant_type=password&username="+testEmail+"&password="+url.QueryEscape(testPassword), nil,
		"Content-Type", "application/x-www-form-urlencoded", "X-Requested-With", "beacon")
	assertProblem(t, res, http.StatusNotFound, "/auth/login") // tokens must never reach page scripts
	refreshes, _ := b.api.counts()
	assert.Zero(t, refreshes)
}

func TestProxyRefreshesOn401ForGet(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	at, rt := b.api.login()
	b.api.expire(at)

	res := b.do(t, http.MethodGet, "/api/me", "", map[string]string{accessCookie: at, refreshCookie: rt})
	require.Equal(t, http.StatusOK, res.StatusCode, readAll(t, res))

	seen := b.api.seen("/v1/me")
	require.Len(t, seen, 2, "the request is retried once")
	assert.Equal(t, "Bearer "+at, seen[0].Header.Get("Authorization"))
	assert.Equal(t, "Bearer at-2", seen[1].Header.Get("Authorization"))

	cs := cookiesByName(res)
	require.Contains(t, cs, accessCookie)
	require.Contains(t, cs, refreshCookie)
	assert.Equal(t, "at-2", cs[accessCookie].Value)
	assert.Equal(t, "rt-2", cs[refreshCookie].Value)
	assert.True(t, cs[accessCookie].HttpOnly)
	assert.Equal(t, http.SameSiteStrictMode, cs[refreshCookie].SameSite)
	refreshes, _ := b.api.counts()
	assert.Equal(t, 1, refreshes)
}

func TestProxyDoesNotRetryPost(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	at, rt := b.api.login()
	b.api.expire(at)

	res := b.do(t, http.MethodPost, "/api/monitors", `{"name":"x","url":"https://example.com/"}`,
		map[string]string{accessCookie: at, refreshCookie: rt}, "Content-Type", "application/json", "X-Requested-With", "beacon")
	assert.Equal(t, http.StatusUnauthorized, res.StatusCode)
	assert.Len(t, b.api.seen("/v1/monitors"), 1, "a request with a body is sent once")
	refreshes, _ := b.api.counts()
	assert.Zero(t, refreshes)
	assert.Empty(t, res.Cookies())
}

func TestProxyRefreshesExpiredAccessCookieBeforeSending(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	_, rt := b.api.login()
	// The access cookie's Max-Age ran out: only the refresh cookie is left.
	// Even a POST can then go through, since nothing is replayed.
	res := b.do(t, http.MethodPost, "/api/monitors", `{"name":"x","url":"https://example.com/"}`,
		map[string]string{refreshCookie: rt}, "Content-Type", "application/json", "X-Requested-With", "beacon")
	require.Equal(t, http.StatusCreated, res.StatusCode, readAll(t, res))
	seen := b.api.seen("/v1/monitors")
	require.Len(t, seen, 1)
	assert.Equal(t, "Bearer at-2", seen[0].Header.Get("Authorization"))
	assert.Equal(t, "at-2", cookiesByName(res)[accessCookie].Value)
}

func TestProxyClearsCookiesWhenRefreshIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	res := b.do(t, http.MethodGet, "/api/me", "", map[string]string{accessCookie: "stale", refreshCookie: "revoked"})
	assert.Equal(t, http.StatusUnauthorized, res.StatusCode)
	assert.Contains(t, readAll(t, res), "a valid access token is required", "the API's own 401 reaches the UI")
	cs := cookiesByName(res)
	require.Contains(t, cs, accessCookie)
	require.Contains(t, cs, refreshCookie)
	assert.Negative(t, cs[accessCookie].MaxAge)
	assert.Negative(t, cs[refreshCookie].MaxAge)
}

func TestProxyConcurrentRefreshesShareOneGrant(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	at, rt := b.api.login()
	b.api.expire(at)

	// A page loads several things at once when its token has expired; one
	// refresh must serve them all, or the API sees a reused refresh token
	// and ends the sign-in.
	const n = 8
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, b.dash.URL+"/api/monitors", nil)
			if !assert.NoError(t, err) {
				return
			}
			req.AddCookie(&http.Cookie{Name: accessCookie, Value: at})
			req.AddCookie(&http.Cookie{Name: refreshCookie, Value: rt})
			res, err := b.client.Do(req)
			if !assert.NoError(t, err) {
				return
			}
			res.Body.Close()
			codes[i] = res.StatusCode
		})
	}
	wg.Wait()
	for i, c := range codes {
		assert.Equal(t, http.StatusOK, c, "request %d", i)
	}
	refreshes, _ := b.api.counts()
	assert.Equal(t, 1, refreshes)
}

func TestProxyAPIUnavailable(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	b.api.srv.Close()
	res := b.do(t, http.MethodGet, "/api/monitors", "", map[string]string{accessCookie: "at-1"})
	assertProblem(t, res, http.StatusBadGateway, "the API is unavailable")
	assert.Contains(t, b.logs.String(), "the API is unreachable")
}

func TestPublicStatusNeedsNoSession(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	res := b.do(t, http.MethodGet, "/api/public/status/example", "", nil)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	seen := b.api.seen("/v1/public/status/example")
	require.Len(t, seen, 1)
	assert.Empty(t, seen[0].Header.Get("Authorization"))
}

func TestRiverUIProxied(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	at, _ := b.api.login()
	res := b.do(t, http.MethodGet, "/riverui/jobs", "", map[string]string{accessCookie: at})
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "<p>river</p>", readAll(t, res))
	seen := b.api.seen("/riverui/jobs")
	require.Len(t, seen, 1)
	assert.Equal(t, "Bearer "+at, seen[0].Header.Get("Authorization"))

	res = b.do(t, http.MethodPost, "/riverui/api/jobs/cancel", "{}", map[string]string{accessCookie: at}, "Origin", "https://evil.example")
	assertProblem(t, res, http.StatusForbidden, "cross-origin")
	res = b.do(t, http.MethodPost, "/riverui/api/jobs/cancel", "{}", map[string]string{accessCookie: at})
	assertProblem(t, res, http.StatusForbidden, "cross-origin") // no Origin: not from a page of this origin
}

// A person opening River UI without a session signs in first and comes
// back; River UI's scripts and API clients still get the API's problem.
func TestRiverUIWithoutSession(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	const html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

	for _, headers := range [][]string{
		{"Accept", html}, // a browser without Fetch Metadata
		{"Accept", html, "Sec-Fetch-Mode", "navigate"},
		{"Accept", "*/*", "Sec-Fetch-Mode", "navigate"},
	} {
		res := b.do(t, http.MethodGet, "/riverui/jobs?state=running", "", nil, headers...)
		require.Equal(t, http.StatusSeeOther, res.StatusCode, "%v", headers)
		loc, err := url.Parse(res.Header.Get("Location"))
		require.NoError(t, err)
		assert.Equal(t, "/", loc.Path)
		assert.Equal(t, "login", strings.TrimPrefix(loc.Fragment, "/"))
		assert.Equal(t, "/riverui/jobs?state=running", loc.Query().Get("next"))
		assert.Equal(t, "no-store", res.Header.Get("Cache-Control"))
	}
	assert.Empty(t, b.api.seen("/riverui/jobs"), "no session: the API is not asked")

	// Scripts, API clients, and fetches that are not navigations.
	for _, headers := range [][]string{
		{"Accept", "application/json"},
		{},
		{"Accept", html, "Sec-Fetch-Mode", "cors"},
	} {
		res := b.do(t, http.MethodGet, "/riverui/api/jobs", "", nil, headers...)
		assertProblem(t, res, http.StatusUnauthorized, "access token")
	}
	res := b.do(t, http.MethodPost, "/riverui/api/jobs/cancel", "{}", nil, "Accept", html, "Origin", b.dash.URL)
	assertProblem(t, res, http.StatusUnauthorized, "access token")
}

// A session the API no longer accepts (its refresh token is spent) ends
// on the sign-in page too, with the cookies cleared.
func TestRiverUIExpiredSessionSignsInAgain(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	at, rt := b.api.login()
	b.api.expire(at)
	b.api.mu.Lock()
	b.api.refresh[rt] = false // spent: the refresh is refused
	b.api.mu.Unlock()

	res := b.do(t, http.MethodGet, "/riverui/", "", map[string]string{accessCookie: at, refreshCookie: rt}, "Accept", "text/html")
	readAll(t, res)
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	assert.Equal(t, "/?next=%2Friverui%2F#/login", res.Header.Get("Location"))
	assert.Empty(t, res.Header.Get("WWW-Authenticate"))
	cs := cookiesByName(res)
	require.Contains(t, cs, refreshCookie, "the refused session's cookies are cleared")
	assert.Negative(t, cs[refreshCookie].MaxAge)
	require.Len(t, b.api.seen("/riverui/"), 1, "the API decided")

	// Refreshable: no detour.
	at, rt = b.api.login()
	b.api.expire(at)
	res = b.do(t, http.MethodGet, "/riverui/", "", map[string]string{accessCookie: at, refreshCookie: rt}, "Accept", "text/html")
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "<p>river</p>", readAll(t, res))
}

// Only websockets are relayed as upgrades: any other protocol switch
// reaches the API as a plain request.
func TestNonWebsocketUpgradeIsNotRelayed(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	at, _ := b.api.login()
	res := b.do(t, http.MethodGet, "/riverui/jobs", "", map[string]string{accessCookie: at},
		"Connection", "Upgrade", "Upgrade", "h2c")
	require.Equal(t, http.StatusOK, res.StatusCode)
	seen := b.api.seen("/riverui/jobs")
	require.Len(t, seen, 1)
	assert.Empty(t, seen[0].Header.Get("Upgrade"))
}

// upgrade opens a raw upgraded connection through the dashboard.
func upgrade(t *testing.T, b *testBundle, cookie, origin string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	conn, err := net.Dial("tcp", b.dash.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	req := "GET /api/events HTTP/1.1\r\nHost: " + b.dash.Listener.Addr().String() + "\r\n" +
		"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	if cookie != "" {
		req += "Cookie: " + cookie + "\r\n"
	}
	if origin != "" {
		req += "Origin: " + origin + "\r\n"
	}
	_, err = io.WriteString(conn, req+"\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	return conn, br, res
}

func TestWebsocketProxied(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	at, rt := b.api.login()
	cookie := accessCookie + "=" + at + "; " + refreshCookie + "=" + rt

	conn, br, res := upgrade(t, b, cookie, "http://"+b.dash.Listener.Addr().String())
	require.Equal(t, http.StatusSwitchingProtocols, res.StatusCode)
	_, err := io.WriteString(conn, "hello")
	require.NoError(t, err)
	got := make([]byte, 5)
	_, err = io.ReadFull(br, got)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(got))

	seen := b.api.seen("/v1/events")
	require.Len(t, seen, 1)
	assert.Equal(t, "Bearer "+at, seen[0].Header.Get("Authorization"))

	_, _, res = upgrade(t, b, cookie, "https://evil.example")
	assert.Equal(t, http.StatusForbidden, res.StatusCode, "cross-site websocket hijacking")
}

// ---- The UI.

const wantCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"

func TestPagesServedWithCSP(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	for _, tc := range []struct{ path, want string }{
		{"/", `data-testid="user-menu"`},
		{"/status/my-service", `data-testid="status-page"`},
	} {
		res := b.do(t, http.MethodGet, tc.path, "", nil)
		body := readAll(t, res)
		require.Equal(t, http.StatusOK, res.StatusCode, tc.path)
		assert.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"), tc.path)
		assert.Equal(t, wantCSP, res.Header.Get("Content-Security-Policy"), tc.path)
		assert.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"), tc.path)
		assert.Equal(t, "no-cache", res.Header.Get("Cache-Control"), tc.path)
		assert.Contains(t, body, tc.want, tc.path)
		// The CSP forbids inline scripts and styles: they would silently fail.
		assert.NotRegexp(t, `<script[^>]*>[^<]|<style|\sstyle=`, body, tc.path)
	}
	for _, path := range []string{"/status/", "/status/a/b", "/nope", "/assets/index.html", "/assets/missing.js", "/assets/"} {
		res := b.do(t, http.MethodGet, path, "", nil)
		assertProblem(t, res, http.StatusNotFound, "")
	}
	res := b.do(t, http.MethodPost, "/", "", nil)
	assertProblem(t, res, http.StatusNotFound, "")
}

func TestAssets(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	for name, ct := range map[string]string{
		"app.js": "text/javascript; charset=utf-8", "status.js": "text/javascript; charset=utf-8",
		"charts.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8",
	} {
		res := b.do(t, http.MethodGet, "/assets/"+name, "", nil)
		require.Equal(t, http.StatusOK, res.StatusCode, name)
		assert.Equal(t, ct, res.Header.Get("Content-Type"), name)
		assert.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"), name)
		etag := res.Header.Get("ETag")
		require.NotEmpty(t, etag, name)

		res = b.do(t, http.MethodGet, "/assets/"+name, "", nil, "If-None-Match", etag)
		assert.Equal(t, http.StatusNotModified, res.StatusCode, name)
	}
}

// TestNoExternalURLs guards the offline guarantee: nothing the UI ships
// points at another origin (comments aside).
func TestNoExternalURLs(t *testing.T) {
	t.Parallel()
	comments := map[string]*regexp.Regexp{
		".html": regexp.MustCompile(`(?s)<!--.*?-->`),
		".css":  regexp.MustCompile(`(?s)/\*.*?\*/`),
		// Block comments, and line comments that start a line or follow code.
		".js": regexp.MustCompile(`(?ms)/\*.*?\*/|(^|[^:'"])//[^\n]*`),
	}
	absolute := regexp.MustCompile(`(?i)https?://|(src|href)\s*=\s*["']?//`)
	n := 0
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		text := string(b)
		for ext, re := range comments {
			if strings.HasSuffix(p, ext) {
				text = re.ReplaceAllString(text, "")
			}
		}
		if m := absolute.FindString(text); m != "" {
			t.Errorf("%s references an absolute URL (%q)", p, m)
		}
		return nil
	})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, n, 4)
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	res := b.do(t, http.MethodGet, "/healthz", "", nil)
	assert.Equal(t, http.StatusOK, res.StatusCode)
}

func TestNewValidatesOptions(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"", "localhost:8080", "/v1", "ftp://api", "http://user:pw@api"} {
		var u *url.URL
		if raw != "" {
			var err error
			u, err = url.Parse(raw)
			require.NoError(t, err)
		}
		_, err := New(Options{APIURL: u})
		assert.Error(t, err, "%q", raw)
	}
	_, err := New(Options{APIURL: &url.URL{Scheme: "http", Host: "localhost:8080"}})
	assert.NoError(t, err)
}

// TestModulesResolve: every import between the UI's ES modules names an
// embedded file, and each page preloads every module it ends up loading
// (one round trip instead of one per import level).
func TestModulesResolve(t *testing.T) {
	t.Parallel()
	imports := regexp.MustCompile(`(?m)^import\s[^'"]*['"]\./([\w.-]+)['"];`)
	preloads := regexp.MustCompile(`<link rel="modulepreload" href="/assets/([\w.-]+)">`)
	deps := map[string][]string{}
	entries, err := fs.ReadDir(static, "static")
	require.NoError(t, err)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".js") {
			continue
		}
		b, err := static.ReadFile("static/" + e.Name())
		require.NoError(t, err)
		for _, m := range imports.FindAllStringSubmatch(string(b), -1) {
			_, err := static.ReadFile("static/" + m[1])
			require.NoError(t, err, "%s imports ./%s, which is not embedded", e.Name(), m[1])
			deps[e.Name()] = append(deps[e.Name()], m[1])
		}
	}
	require.NotEmpty(t, deps["app.js"])
	for page, entry := range map[string]string{"index.html": "app.js", "status.html": "status.js"} {
		html, err := static.ReadFile("static/" + page)
		require.NoError(t, err)
		preloaded := map[string]bool{}
		for _, m := range preloads.FindAllStringSubmatch(string(html), -1) {
			preloaded[m[1]] = true
		}
		seen := map[string]bool{}
		var walk func(string)
		walk = func(m string) {
			for _, d := range deps[m] {
				if !seen[d] {
					seen[d] = true
					assert.True(t, preloaded[d], "%s loads %s (through %s) but does not preload it", page, d, m)
					walk(d)
				}
			}
		}
		walk(entry)
		for m := range preloaded {
			assert.True(t, seen[m], "%s preloads %s, which %s never imports", page, m, entry)
		}
	}
}
