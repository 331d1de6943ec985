// Package webasset serves files embedded in the binary (the API docs UI and
// the dashboard), each prepared once: content type, ETag, cache policy and
// the security headers of HTML pages.
package webasset

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"path"
	"time"
)

// Cache policies.
const (
	// Revalidate makes a redeploy take effect at once; the ETag keeps the
	// revalidation cheap.
	Revalidate = "no-cache"
	// Immutable suits files whose URL changes with their content.
	Immutable = "public, max-age=31536000, immutable"
)

// Asset is a file ready to serve.
type Asset struct {
	Body        []byte
	ContentType string
	ETag        string
	Cache       string
	HTML        bool
}

// New prepares name's body, to be revalidated on every use.
func New(name string, body []byte) *Asset {
	sum := sha256.Sum256(body)
	return &Asset{
		Body:        body,
		ContentType: ContentType(name),
		ETag:        `"` + hex.EncodeToString(sum[:16]) + `"`,
		Cache:       Revalidate,
		HTML:        path.Ext(name) == ".html",
	}
}

// Serve writes the asset; HTML pages get csp and are never framed.
// http.ServeContent handles HEAD, If-None-Match and Range.
func (a *Asset) Serve(w http.ResponseWriter, r *http.Request, csp string) {
	h := w.Header()
	h.Set("Content-Type", a.ContentType)
	h.Set("Cache-Control", a.Cache)
	h.Set("ETag", a.ETag)
	h.Set("X-Content-Type-Options", "nosniff")
	if a.HTML {
		h.Set("Content-Security-Policy", csp)
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.Body))
}

// ContentType is explicit rather than mime.TypeByExtension, which consults
// the host's mime database and varies between systems.
func ContentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case "", ".txt":
		// LICENSE, NOTICE and *.LICENSE.txt.
		return "text/plain; charset=utf-8"
	default:
		return "application/octet-stream"
	}
}
