package monitorsapi_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	"riverqueue.com/riverui"

	"github.com/beaconhq/beacon/internal/auth"
	"github.com/beaconhq/beacon/internal/httpapi"
)

// TestEveryErrorIsAProblem walks the routes outside huma (docs, probes,
// websocket, River UI), a few huma ones and the OpenAPI document with wrong
// methods: each answers 405 with Allow as an RFC 9457 problem, never
// net/http's text/plain. River UI is the real one, whose own errors are
// text/plain.
func TestEveryErrorIsAProblem(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	admin := b.SignIn(t, "admin-methods@example.org", auth.RoleAdmin)
	ui, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(b.Client, nil),
		Logger:    slog.New(slog.DiscardHandler),
		Prefix:    "/riverui",
	})
	require.NoError(t, err)
	deps := b.Deps
	deps.RiverUI = ui
	deps.Events = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	h, _ := httpapi.NewServer(deps)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	call := func(t *testing.T, method, path string, header ...string) (*http.Response, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+admin)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		raw, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		var p map[string]any
		if method != http.MethodHead {
			require.NoError(t, json.Unmarshal(raw, &p), "%s %s: body is not JSON: %q", method, path, raw)
		}
		return res, p
	}
	requireProblem := func(t *testing.T, res *http.Response, p map[string]any, status int) {
		t.Helper()
		req := res.Request.Method + " " + res.Request.URL.Path
		require.Equal(t, status, res.StatusCode, req)
		require.Equal(t, "application/problem+json", res.Header.Get("Content-Type"), req)
		require.EqualValues(t, status, p["status"], req)
		require.Equal(t, http.StatusText(status), p["title"], req)
		require.NotEmpty(t, p["detail"], req)
	}

	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodDelete, "/docs", "GET, HEAD"},
		{http.MethodPost, "/docs/", "GET, HEAD"},
		{http.MethodPut, "/docs/init.js", "GET, HEAD"},
		{http.MethodDelete, "/healthz", "GET, HEAD"},
		{http.MethodPost, "/readyz", "GET, HEAD"},
		{"PROPFIND", "/readyz", "GET, HEAD"},
		{http.MethodPost, "/v1/events", "GET, HEAD"},
		{http.MethodDelete, "/riverui/", "GET, HEAD"}, // River UI's own 405
		{http.MethodPost, "/openapi.json", "GET, HEAD"},
		{http.MethodDelete, "/v1/me", "GET, HEAD"},
		{http.MethodPut, "/v1/monitors/1", "GET, HEAD, PATCH, DELETE"},
		{http.MethodGet, "/v1/oauth/token", "POST"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			res, p := call(t, tc.method, tc.path)
			requireProblem(t, res, p, http.StatusMethodNotAllowed)
			require.Equal(t, tc.allow, res.Header.Get("Allow"))
			require.Contains(t, p["detail"], tc.allow)
		})
	}

	// The right methods still work, and what matches no route stays a 404.
	for _, path := range []string{"/healthz", "/docs", "/riverui/"} {
		res, _ := call(t, http.MethodHead, path)
		require.Equal(t, http.StatusOK, res.StatusCode, "HEAD %s", path)
	}
	res, p := call(t, http.MethodDelete, "/nothing/here")
	requireProblem(t, res, p, http.StatusNotFound)
	require.Empty(t, res.Header.Get("Allow"))

	// River UI's other text/plain errors become problems too, with its
	// status and its explanation.
	res, p = call(t, http.MethodGet, "/riverui/api")
	requireProblem(t, res, p, http.StatusNotFound)
	res, p = call(t, http.MethodGet, "/riverui/", "Accept", "application/json")
	requireProblem(t, res, p, http.StatusNotAcceptable)
	require.Contains(t, p["detail"], "text/html")
}
