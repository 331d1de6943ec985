package docsui

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

const testSpecURL = "/openapi.json"

func serve(t *testing.T, method, target string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler("/docs", testSpecURL).ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec.Result()
}

func readBody(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

func TestIndex(t *testing.T) {
	t.Parallel()
	for _, target := range []string{"/docs", "/docs/"} {
		t.Run(target, func(t *testing.T) {
			t.Parallel()
			res := serve(t, http.MethodGet, target)
			body := readBody(t, res)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200", res.StatusCode)
			}
			wantHeaders := map[string]string{
				"Content-Type":            "text/html; charset=utf-8",
				"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
				"Cache-Control":           "no-cache",
				"X-Content-Type-Options":  "nosniff",
			}
			for k, want := range wantHeaders {
				if got := res.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			for _, want := range []string{
				`<meta name="openapi-url" content="/openapi.json">`,
				`<title>Beacon API</title>`,
				`src="/docs/swagger-ui-bundle.js?v=`,
				`src="/docs/init.js?v=`,
				`href="/docs/swagger-ui.css?v=`,
			} {
				if !strings.Contains(body, want) {
					t.Errorf("index.html lacks %q:\n%s", want, body)
				}
			}
			// The CSP forbids inline scripts, so any <script> with a body would
			// silently not run.
			if regexp.MustCompile(`<script[^>]*>[^<]`).MatchString(body) {
				t.Errorf("index.html has an inline script:\n%s", body)
			}
		})
	}
}

func TestIndexEscapesSpecURL(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	Handler("/docs", `/x"><script>alert(1)</script>`).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/docs", nil))
	if body := rec.Body.String(); strings.Contains(body, "<script>alert") {
		t.Fatalf("spec URL not escaped:\n%s", body)
	}
}

func TestPrefixNormalized(t *testing.T) {
	t.Parallel()
	h := Handler("api/docs/", testSpecURL)
	for _, target := range []string{"/api/docs", "/api/docs/", "/api/docs/init.js"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", target, rec.Code)
		}
	}
}

func TestAssets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, contentType, cache string
	}{
		{"swagger-ui-bundle.js", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
		{"swagger-ui.css", "text/css; charset=utf-8", "public, max-age=31536000, immutable"},
		{"init.js", "text/javascript; charset=utf-8", "no-cache"},
		{"oauth2-redirect.html", "text/html; charset=utf-8", "no-cache"},
		{"oauth2-redirect.js", "text/javascript; charset=utf-8", "no-cache"},
		{"favicon-32x32.png", "image/png", "no-cache"},
		{"LICENSE", "text/plain; charset=utf-8", "no-cache"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := serve(t, http.MethodGet, "/docs/"+tt.name)
			body := readBody(t, res)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200", res.StatusCode)
			}
			if body == "" {
				t.Error("empty body")
			}
			if got := res.Header.Get("Content-Type"); got != tt.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tt.contentType)
			}
			if got := res.Header.Get("Cache-Control"); got != tt.cache {
				t.Errorf("Cache-Control = %q, want %q", got, tt.cache)
			}
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
			}
			if strings.HasSuffix(tt.name, ".js") || strings.HasSuffix(tt.name, ".css") {
				if strings.Contains(body, "sourceMappingURL=") {
					t.Error("vendored file still references a source map that is not shipped")
				}
			}
		})
	}
}

func TestHead(t *testing.T) {
	t.Parallel()
	res := serve(t, http.MethodHead, "/docs/swagger-ui.css")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", res.StatusCode)
	}
	if body := readBody(t, res); body != "" {
		t.Errorf("HEAD returned a body of %d bytes", len(body))
	}
}

func TestConditionalGet(t *testing.T) {
	t.Parallel()
	h := Handler("/docs", testSpecURL)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/docs/init.js", nil))
	etag := rec.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	req := httptest.NewRequest(http.MethodGet, "/docs/init.js", nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Errorf("status = %d, want 304", rec.Code)
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	for _, target := range []string{
		"/docs/nope.js",
		"/docs/VERSION",
		"/docs/assets/swagger-ui.css",
		"/docs/../docs/init.js.map",
		"/docs/swagger-ui-bundle.js.map",
		"/docsx",
		"/other",
	} {
		res := serve(t, http.MethodGet, target)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", target, res.StatusCode)
		}
		requireProblem(t, res, http.StatusNotFound, "GET "+target)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	for _, target := range []string{"/docs", "/docs/", "/docs/init.js"} {
		res := serve(t, http.MethodPost, target)
		if res.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST %s = %d, want 405", target, res.StatusCode)
		}
		if got := res.Header.Get("Allow"); got != "GET, HEAD" {
			t.Errorf("POST %s: Allow = %q, want %q", target, got, "GET, HEAD")
		}
		requireProblem(t, res, http.StatusMethodNotAllowed, "POST "+target)
	}
}

// requireProblem checks that res is an RFC 9457 problem document for status.
func requireProblem(t *testing.T, res *http.Response, status int, req string) {
	t.Helper()
	if got := res.Header.Get("Content-Type"); got != "application/problem+json" {
		t.Errorf("%s: Content-Type = %q, want application/problem+json", req, got)
	}
	var p struct {
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal([]byte(readBody(t, res)), &p); err != nil {
		t.Fatalf("%s: body is not JSON: %v", req, err)
	}
	if p.Status != status || p.Title == "" || p.Detail == "" {
		t.Errorf("%s: problem = %+v, want status %d with a title and a detail", req, p, status)
	}
}

// TestNoExternalURLs guards the offline guarantee: the pages we author must
// not pull anything from another origin.
func TestNoExternalURLs(t *testing.T) {
	t.Parallel()
	absolute := regexp.MustCompile(`(?i)https?://|(src|href)\s*=\s*["']?//`)
	for _, name := range []string{"index.html", "init.js"} {
		b, err := files.ReadFile(name)
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		if m := absolute.Find(b); m != nil {
			t.Errorf("%s references an absolute URL (%q)", name, m)
		}
	}
	if body := readBody(t, serve(t, http.MethodGet, "/docs")); absolute.MatchString(body) {
		t.Errorf("rendered index.html references an absolute URL:\n%s", body)
	}
}
