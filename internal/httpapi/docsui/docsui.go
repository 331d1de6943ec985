// Package docsui serves the interactive API documentation (Swagger UI) from
// assets embedded in the binary.
//
// huma's built-in /docs page pulls its scripts and styles from a CDN, which
// fails on air-gapped deployments and widens the page's CSP. Vendoring
// swagger-ui-dist (see scripts/vendor-swagger-ui.sh) keeps the docs working
// offline under a strict `script-src 'self'` policy.
package docsui

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"github.com/beaconhq/beacon/internal/problem"
	"github.com/beaconhq/beacon/internal/webasset"
)

//go:embed index.html init.js assets
var files embed.FS

// csp allows only same-origin scripts so a compromised spec or injected
// markup cannot load code from elsewhere; Swagger UI sets style attributes
// at run time, hence 'unsafe-inline' for styles only.
const csp = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; " +
	"script-src 'self'; connect-src 'self'; frame-ancestors 'none'"

// Handler returns an http.Handler serving the docs UI at prefix (e.g.
// "/docs") that loads the OpenAPI document from specURL.
//
// The handler expects the full request path, so mount it at both prefix and
// prefix+"/" without http.StripPrefix. specURL should be same-origin (for
// example "/openapi.json"): the page's CSP only allows same-origin fetches,
// which also applies to "Try it out" requests and OAuth2 token requests.
//
// Handler panics if the embedded assets are missing, which can only happen
// if the package was built without running the vendoring script.
func Handler(prefix, specURL string) http.Handler {
	prefix = "/" + strings.Trim(prefix, "/")
	base := prefix + "/"
	if prefix == "/" {
		prefix = ""
		base = "/"
	}

	version := strings.TrimSpace(string(mustRead("assets/VERSION")))
	initJS := mustRead("init.js")

	var index bytes.Buffer
	tmpl := template.Must(template.New("index.html").Parse(string(mustRead("index.html"))))
	err := tmpl.Execute(&index, struct {
		SpecURL, Base, Version, InitHash string
	}{
		SpecURL:  specURL,
		Base:     base,
		Version:  version,
		InitHash: webasset.New("init.js", initJS).ETag[1:13],
	})
	if err != nil {
		panic("docsui: render index.html: " + err.Error())
	}

	assets := map[string]*webasset.Asset{
		"init.js": newAsset("init.js", initJS),
	}
	entries, err := fs.ReadDir(files, "assets")
	if err != nil {
		panic("docsui: read embedded assets: " + err.Error())
	}
	for _, e := range entries {
		// VERSION is build metadata, not something the browser needs.
		if e.IsDir() || e.Name() == "VERSION" {
			continue
		}
		assets[e.Name()] = newAsset(e.Name(), mustRead("assets/"+e.Name()))
	}
	for _, name := range []string{"swagger-ui-bundle.js", "swagger-ui.css", "oauth2-redirect.html", "favicon-32x32.png"} {
		if assets[name] == nil {
			panic("docsui: missing vendored asset " + name + "; run scripts/vendor-swagger-ui.sh")
		}
	}

	return &handler{
		prefix: prefix,
		index:  newAsset("index.html", index.Bytes()),
		assets: assets,
	}
}

// allow is the Allow header of every page and asset.
const allow = "GET, HEAD"

type handler struct {
	prefix string
	index  *webasset.Asset
	assets map[string]*webasset.Asset
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Errors are RFC 9457 problem documents, like every error of the API.
	a := h.lookup(r.URL.Path)
	if a == nil {
		problem.Write(w, http.StatusNotFound, "no route for "+r.Method+" "+r.URL.Path)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", allow)
		problem.Write(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path+"; allowed: "+allow)
		return
	}

	a.Serve(w, r, csp)
}

func (h *handler) lookup(p string) *webasset.Asset {
	if p == h.prefix || p == h.prefix+"/" {
		return h.index
	}
	name, ok := strings.CutPrefix(p, h.prefix+"/")
	if !ok || strings.Contains(name, "/") {
		return nil
	}
	return h.assets[name]
}

// newAsset prepares a file; the vendored files are referenced from
// index.html with ?v=<version>, so an upgrade changes their URL and a long
// cache is safe.
func newAsset(name string, body []byte) *webasset.Asset {
	a := webasset.New(name, body)
	if name == "swagger-ui-bundle.js" || name == "swagger-ui.css" {
		a.Cache = webasset.Immutable
	}
	return a
}

func mustRead(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("docsui: read embedded " + name + ": " + err.Error())
	}
	return b
}
