package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/config"
	"github.com/beaconhq/beacon/internal/pgtest"
)

// browser talks to a `beacon dashboard` as a page of its origin does: a
// cookie jar, the Origin header, and X-Requested-With on unsafe /api calls.
type browser struct {
	t      *testing.T
	origin string // http://host:port of the dashboard
	jar    *cookiejar.Jar
	client *http.Client
}

func newBrowser(t *testing.T, dashAddr string) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &browser{
		t:      t,
		origin: "http://" + dashAddr,
		jar:    jar,
		client: &http.Client{
			Jar:           jar,
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// do sends a request and returns the response with its body read.
func (b *browser) do(method, path, body string, header ...string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequestWithContext(b.t.Context(), method, b.origin+path, strings.NewReader(body))
	require.NoError(b.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := b.client.Do(req)
	require.NoError(b.t, err, "%s %s", method, path)
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	require.NoError(b.t, err)
	return res, string(data)
}

// call is a page script's call to the API through the dashboard.
func (b *browser) call(method, path, body string) (*http.Response, string) {
	b.t.Helper()
	return b.do(method, "/api"+path, body, "X-Requested-With", "beacon", "Accept", "application/json")
}

func (b *browser) signIn(email, password string) (*http.Response, string) {
	b.t.Helper()
	body, err := json.Marshal(map[string]string{"email": email, "password": password})
	require.NoError(b.t, err)
	return b.do(http.MethodPost, "/auth/login", string(body), "Origin", b.origin, "X-Requested-With", "beacon")
}

// signInPatiently signs in, trying again (at most 3 times in all) while
// the dashboard answers 502 or 503: on a busy machine the API's answer
// (bcrypt, slower still under -race) can outlast the dashboard's token
// timeout. Three wrong passwords stay below the account's limit of five.
func (b *browser) signInPatiently(email, password string) (*http.Response, string) {
	b.t.Helper()
	var res *http.Response
	var body string
	for try := 1; ; try++ {
		res, body = b.signIn(email, password)
		transient := res.StatusCode == http.StatusBadGateway || res.StatusCode == http.StatusServiceUnavailable
		if !transient || try == 3 {
			return res, body
		}
		b.t.Logf("sign-in through the dashboard: %d %s; trying again", res.StatusCode, strings.TrimSpace(body))
	}
}

func (b *browser) cookie(name string) *http.Cookie {
	u, _ := url.Parse(b.origin)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// requireProblem checks an RFC 9457 problem document and returns its detail.
func requireProblem(t *testing.T, res *http.Response, body string, status int) string {
	t.Helper()
	require.Equal(t, status, res.StatusCode, body)
	require.Equal(t, "application/problem+json", res.Header.Get("Content-Type"), body)
	var p struct {
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &p), body)
	require.Equal(t, status, p.Status, body)
	require.NotEmpty(t, p.Title, body)
	require.NotEmpty(t, p.Detail, body)
	return p.Detail
}

// startDashboard runs `beacon dashboard` in-process against apiURL and
// returns it with its address.
func startDashboard(t *testing.T, apiURL string, env map[string]string) (*process, string) {
	t.Helper()
	addr := freeAddr(t)
	vars := map[string]string{"BEACON_API_URL": apiURL, "BEACON_DASHBOARD_ADDR": addr}
	for k, v := range env {
		vars[k] = v
	}
	return start(t, "dashboard", vars), addr
}

// The `dashboard` role against a real `beacon all`: sign-in and the session
// cookies, CSRF and origin checks, the proxy with token refresh, the events
// websocket, River UI's guard, static assets and problem documents.
func TestDashboardRoleAgainstTheAPI(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	tgt := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer tgt.Close()

	api := start(t, "all", map[string]string{
		"DATABASE_URL":             pgtest.NewEmptyURL(t),
		"BEACON_CHECK_ALLOW_CIDRS": "127.0.0.0/8",
	})
	api.waitStatus(t, "http://"+api.api+"/readyz", 200)
	dash, addr := startDashboard(t, "http://"+api.api, nil)
	// The dashboard is ready when the API it depends on is.
	dash.waitStatus(t, "http://"+dash.ops+"/readyz", 200)
	logs := func() string { return "dashboard output:\n" + dash.out.String() + "\nAPI output:\n" + api.out.String() }

	b := newBrowser(t, addr)

	t.Run("static assets", func(t *testing.T) {
		res, body := b.do(http.MethodGet, "/", "")
		require.Equal(t, 200, res.StatusCode)
		require.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"))
		require.Contains(t, res.Header.Get("Content-Security-Policy"), "default-src 'self'")
		require.Equal(t, "no-cache", res.Header.Get("Cache-Control"), "pages are revalidated: a deploy shows at once")
		require.Contains(t, body, `type="module"`)

		res, body = b.do(http.MethodGet, "/assets/app.js", "")
		require.Equal(t, 200, res.StatusCode)
		require.Equal(t, "text/javascript; charset=utf-8", res.Header.Get("Content-Type"))
		require.Equal(t, "no-cache", res.Header.Get("Cache-Control"))
		require.Contains(t, body, "import ")
		etag := res.Header.Get("ETag")
		require.NotEmpty(t, etag)
		res, _ = b.do(http.MethodGet, "/assets/app.js", "", "If-None-Match", etag)
		require.Equal(t, http.StatusNotModified, res.StatusCode)

		res, body = b.do(http.MethodGet, "/assets/nope.js", "")
		requireProblem(t, res, body, http.StatusNotFound)
		res, body = b.do(http.MethodGet, "/nope", "")
		requireProblem(t, res, body, http.StatusNotFound)
	})

	t.Run("no session", func(t *testing.T) {
		res, body := b.call(http.MethodGet, "/me", "")
		require.Contains(t, requireProblem(t, res, body, http.StatusUnauthorized), "access token", "the API's own problem")
	})

	t.Run("sign-in refused", func(t *testing.T) {
		res, body := b.signInPatiently(config.DevAdminEmail, "not-the-password")
		require.Equal(t, "invalid email or password", requireProblem(t, res, body, http.StatusUnauthorized))
		require.Nil(t, b.cookie("beacon_at"))

		// A page on another site cannot sign anyone in.
		res, body = b.do(http.MethodPost, "/auth/login",
			fmt.Sprintf(`{"email":%q,"password":%q}`, config.DevAdminEmail, config.DevAdminPassword), "Origin", "https://evil.example")
		requireProblem(t, res, body, http.StatusForbidden)
		require.Empty(t, res.Cookies())
	})

	// River UI before signing in: a person is sent to the sign-in page,
	// which comes back here; scripts get the API's 401.
	t.Run("River UI signed out", func(t *testing.T) {
		res, _ := b.do(http.MethodGet, "/riverui/", "", "Accept", "text/html", "Sec-Fetch-Mode", "navigate")
		require.Equal(t, http.StatusSeeOther, res.StatusCode)
		require.Equal(t, "/?next=%2Friverui%2F#/login", res.Header.Get("Location"))
		res, body := b.do(http.MethodGet, "/riverui/api/jobs", "", "Accept", "application/json")
		requireProblem(t, res, body, http.StatusUnauthorized)
	})

	res, body := b.signInPatiently(config.DevAdminEmail, config.DevAdminPassword)
	require.Equal(t, http.StatusNoContent, res.StatusCode, "%s\n%s", body, logs())
	for _, c := range res.Cookies() {
		require.True(t, c.HttpOnly, c.Name)
		require.Equal(t, http.SameSiteStrictMode, c.SameSite, c.Name)
		require.False(t, c.Secure, "development serves plain HTTP: %s", c.Name)
	}
	require.NotNil(t, b.cookie("beacon_at"))
	require.NotNil(t, b.cookie("beacon_rt"))
	require.NotContains(t, body, b.cookie("beacon_at").Value, "tokens never reach the page")

	t.Run("proxy with the session's token", func(t *testing.T) {
		res, body := b.call(http.MethodGet, "/me", "")
		require.Equal(t, 200, res.StatusCode, body)
		require.Contains(t, body, config.DevAdminEmail)

		// A token a script chose is not a session.
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, b.origin+"/api/me", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+b.cookie("beacon_at").Value)
		r, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		r.Body.Close()
		require.Equal(t, http.StatusUnauthorized, r.StatusCode)

		// The token endpoints are out of a page's reach.
		res, body = b.call(http.MethodPost, "/oauth/token", "")
		requireProblem(t, res, body, http.StatusNotFound)
	})

	var monitorID int64
	t.Run("CSRF header on unsafe calls", func(t *testing.T) {
		mon := fmt.Sprintf(`{"name":"dashboard role","url":%q,"interval_seconds":3600,"enabled":false,"public_slug":"dash-role"}`, tgt.URL)
		res, body := b.do(http.MethodPost, "/api/monitors", mon)
		require.Contains(t, requireProblem(t, res, body, http.StatusForbidden), "X-Requested-With")

		res, body = b.call(http.MethodPost, "/monitors", mon)
		require.Equal(t, http.StatusCreated, res.StatusCode, body)
		var m struct {
			ID int64 `json:"id"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &m))
		monitorID = m.ID

		// The API's validation problems pass through unchanged.
		res, body = b.call(http.MethodPost, "/monitors", `{"name":"","url":"not a url"}`)
		requireProblem(t, res, body, http.StatusUnprocessableEntity)
		require.Contains(t, body, `"errors"`)
	})

	t.Run("public status page", func(t *testing.T) {
		anon := newBrowser(t, addr)
		res, body := anon.do(http.MethodGet, "/status/dash-role", "")
		require.Equal(t, 200, res.StatusCode)
		require.Contains(t, body, `data-testid="status-page"`)
		res, body = anon.call(http.MethodGet, "/public/status/dash-role", "")
		require.Equal(t, 200, res.StatusCode, body)
		require.Contains(t, body, `"name":"dashboard role"`)
	})

	t.Run("websocket relay", func(t *testing.T) {
		require.NotZero(t, monitorID, "needs the monitor")
		u, _ := url.Parse(b.origin)
		header := http.Header{"Origin": {b.origin}}
		for _, c := range b.jar.Cookies(u) {
			header.Add("Cookie", c.Name+"="+c.Value)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()

		// Another site's page may not open it (cross-site websocket hijacking).
		evil := header.Clone()
		evil.Set("Origin", "https://evil.example")
		_, r, err := websocket.Dial(ctx, "ws://"+addr+"/api/events", &websocket.DialOptions{HTTPHeader: evil})
		require.Error(t, err)
		require.NotNil(t, r)
		require.Equal(t, http.StatusForbidden, r.StatusCode)

		conn, _, err := websocket.Dial(ctx, "ws://"+addr+"/api/events", &websocket.DialOptions{HTTPHeader: header})
		require.NoError(t, err, logs())
		defer conn.CloseNow()

		res, body := b.call(http.MethodPost, fmt.Sprintf("/monitors/%d/checks?wait=10", monitorID), "")
		require.Contains(t, []int{200, 202}, res.StatusCode, body)
		var seen []string
		for {
			_, msg, err := conn.Read(ctx)
			require.NoError(t, err, "no check_result event over the relayed websocket; got %q; %s", seen, logs())
			seen = append(seen, string(msg))
			var ev struct {
				Type      string `json:"type"`
				MonitorID int64  `json:"monitor_id"`
			}
			if json.Unmarshal(msg, &ev) == nil && ev.Type == "check_result" && ev.MonitorID == monitorID {
				break
			}
		}
		require.GreaterOrEqual(t, hits.Load(), int32(1))
		require.NoError(t, conn.Close(websocket.StatusNormalClosure, "done"))
	})

	t.Run("River UI signed in", func(t *testing.T) {
		res, body := b.do(http.MethodGet, "/riverui/", "", "Accept", "text/html", "Sec-Fetch-Mode", "navigate")
		require.Equal(t, 200, res.StatusCode, body)
		require.Contains(t, strings.ToLower(body), "<html")
		// River UI's scripts cannot send the CSRF header: unsafe calls must
		// come from this origin.
		res, body = b.do(http.MethodPost, "/riverui/api/jobs/cancel", `{"ids":[]}`)
		requireProblem(t, res, body, http.StatusForbidden)
		res, body = b.do(http.MethodPost, "/riverui/api/jobs/cancel", `{"ids":[]}`, "Origin", "https://evil.example")
		requireProblem(t, res, body, http.StatusForbidden)
	})

	t.Run("refresh when the access cookie has expired", func(t *testing.T) {
		u, _ := url.Parse(b.origin)
		old := b.cookie("beacon_rt").Value
		// The access cookie's Max-Age is the token's lifetime: once it is
		// gone, the refresh cookie renews the session.
		b.jar.SetCookies(u, []*http.Cookie{{Name: "beacon_at", Value: "", Path: "/", MaxAge: -1}})
		require.Nil(t, b.cookie("beacon_at"))
		res, body := b.call(http.MethodGet, "/me", "")
		require.Equal(t, 200, res.StatusCode, "%s\n%s", body, logs())
		require.NotNil(t, b.cookie("beacon_at"), "new access cookie")
		require.NotEqual(t, old, b.cookie("beacon_rt").Value, "the refresh token rotates")
	})

	t.Run("sign out", func(t *testing.T) {
		rt := b.cookie("beacon_rt").Value
		res, body := b.do(http.MethodPost, "/auth/logout", "", "Origin", b.origin, "X-Requested-With", "beacon")
		require.Equal(t, http.StatusNoContent, res.StatusCode, body)
		require.Nil(t, b.cookie("beacon_at"))
		require.Nil(t, b.cookie("beacon_rt"))

		// The API revoked the sign-in: the old refresh token is worthless.
		// A navigation to River UI with it ends on the sign-in page.
		u, _ := url.Parse(b.origin)
		b.jar.SetCookies(u, []*http.Cookie{{Name: "beacon_rt", Value: rt, Path: "/"}})
		res, _ = b.do(http.MethodGet, "/riverui/", "", "Accept", "text/html")
		require.Equal(t, http.StatusSeeOther, res.StatusCode, logs())
		require.Equal(t, "/?next=%2Friverui%2F#/login", res.Header.Get("Location"))
		require.Nil(t, b.cookie("beacon_rt"), "the refused session's cookies are cleared")
		res, body = b.call(http.MethodGet, "/me", "")
		requireProblem(t, res, body, http.StatusUnauthorized)
	})

	t.Run("health and metrics", func(t *testing.T) {
		s, body := get(t, b.origin+"/healthz")
		require.Equal(t, 200, s, body)
		s, body = get(t, "http://"+dash.ops+"/metrics")
		require.Equal(t, 200, s)
		require.Contains(t, body, `http_server_request_duration_seconds_count{`, "the dashboard's requests are measured")
		require.Contains(t, body, `http_client_request_duration_seconds_count{`, "so are its calls to the API")
	})

	require.NoError(t, dash.stop(t))
	out := dash.out.String()
	require.Contains(t, out, `"msg":"dashboard listening"`)
	require.Contains(t, out, `"msg":"stopped"`)
	require.NotContains(t, out, "panic")
	require.NotContains(t, out, config.DevAdminPassword, "no secret in the logs")
	require.NotContains(t, out, "beacon_rt=", "no cookie in the logs")
}

// Without its API the dashboard still starts and serves its pages, is not
// ready, and answers calls that need the API with a problem.
func TestDashboardRoleWithoutTheAPI(t *testing.T) {
	t.Parallel()
	gone := freeAddr(t) // nothing listens there
	dash, addr := startDashboard(t, "http://"+gone, nil)
	dash.waitStatus(t, "http://"+dash.ops+"/healthz", 200)
	s, body := get(t, "http://"+dash.ops+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, s)
	require.Contains(t, body, "API unreachable")

	b := newBrowser(t, addr)
	res, page := b.do(http.MethodGet, "/", "")
	require.Equal(t, 200, res.StatusCode)
	require.Contains(t, page, "<main")

	res, body = b.call(http.MethodGet, "/me", "")
	require.Equal(t, "the API is unavailable", requireProblem(t, res, body, http.StatusBadGateway))
	res, body = b.signIn(config.DevAdminEmail, config.DevAdminPassword)
	require.Equal(t, "the API is unavailable", requireProblem(t, res, body, http.StatusBadGateway))
	require.Empty(t, res.Cookies())

	require.NoError(t, dash.stop(t))
	require.Contains(t, dash.out.String(), "the API is unreachable")
}

// An API that answers but is not ready keeps the dashboard not ready, with
// the API's status in the reason.
func TestDashboardReadinessFollowsTheAPI(t *testing.T) {
	t.Parallel()
	var ready atomic.Bool
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/prefix/readyz" {
			http.NotFound(w, r)
			return
		}
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer fake.Close()
	dash, _ := startDashboard(t, fake.URL+"/prefix/", nil)
	dash.waitStatus(t, "http://"+dash.ops+"/healthz", 200)
	s, body := get(t, "http://"+dash.ops+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, s)
	require.Contains(t, body, "API not ready (503)")
	ready.Store(true)
	dash.waitStatus(t, "http://"+dash.ops+"/readyz", 200)
}

// Configuration and listen errors stop `beacon dashboard` with one line
// naming the variable.
func TestDashboardRoleStartupErrors(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()

	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"bad API URL", map[string]string{"BEACON_API_URL": "localhost:8080"}, "BEACON_API_URL"},
		{"dashboard port taken", map[string]string{"BEACON_DASHBOARD_ADDR": busy.Addr().String()}, "BEACON_DASHBOARD_ADDR"},
		{"ops port taken", map[string]string{"BEACON_OPS_ADDR": busy.Addr().String()}, "BEACON_OPS_ADDR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{
				"BEACON_API_URL":        "http://127.0.0.1:1",
				"BEACON_DASHBOARD_ADDR": freeAddr(t),
				"BEACON_OPS_ADDR":       freeAddr(t),
				"BEACON_LOG_FORMAT":     "json",
			}
			for k, v := range tc.env {
				vars[k] = v
			}
			var out syncBuffer
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			err := run(ctx, []string{"dashboard"}, func(k string) string { return vars[k] }, &out, &out)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "\n", "one line")
		})
	}
}
