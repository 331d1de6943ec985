package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"time"
)

// static holds the UI: plain HTML, CSS and ES modules, no build step and
// nothing fetched from another origin.
//
//go:embed static
var static embed.FS

// csp allows only this origin. The UI has no inline script or style, and
// its charts are SVG built with DOM calls, so nothing needs 'unsafe-inline'.
// 'self' in connect-src covers the same-origin websocket.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'"

// Every file must be revalidated so a redeploy takes effect at once; the
// ETag makes that cheap. (Module imports cannot carry a version query, so
// long-lived caching would risk mixing old and new modules.)
const cacheRevalidate = "no-cache"

// asset is a file ready to serve, prepared once at start.
type asset struct {
	body        []byte
	contentType string
	etag        string
	html        bool
}

type assets struct {
	byName map[string]*asset
}

func loadAssets() (*assets, error) {
	a := &assets{byName: map[string]*asset{}}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		name := path.Base(p)
		sum := sha256.Sum256(body)
		a.byName[name] = &asset{
			body:        body,
			contentType: contentType(name),
			etag:        `"` + hex.EncodeToString(sum[:16]) + `"`,
			html:        path.Ext(name) == ".html",
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dashboard: read embedded assets: %w", err)
	}
	for _, name := range []string{"index.html", "status.html", "app.js", "app.css"} {
		if a.byName[name] == nil {
			return nil, fmt.Errorf("dashboard: embedded asset %s is missing", name)
		}
	}
	return a, nil
}

// page serves one HTML page whatever the path (the app shell, the status
// page shell).
func (a *assets) page(name string) http.Handler {
	p := a.byName[name]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveAsset(w, r, p)
	})
}

// files serves /assets/{name}; HTML pages are served only at their routes.
func (a *assets) files() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := a.byName[r.PathValue("name")]
		if f == nil || f.html {
			http.NotFound(w, r)
			return
		}
		serveAsset(w, r, f)
	})
}

func serveAsset(w http.ResponseWriter, r *http.Request, a *asset) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", cacheRevalidate)
	h.Set("ETag", a.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	if a.html {
		h.Set("Content-Security-Policy", csp)
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
	}
	// ServeContent handles HEAD, If-None-Match and Range.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// contentType is explicit: mime.TypeByExtension depends on the host's mime
// database.
func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	default:
		return "application/octet-stream"
	}
}
