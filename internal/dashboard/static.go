package dashboard

import (
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"path"

	"github.com/beaconhq/beacon/internal/problem"
	"github.com/beaconhq/beacon/internal/webasset"
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

// Every file is revalidated (webasset.Revalidate) so a redeploy takes effect
// at once; module imports cannot carry a version query, so long-lived
// caching would risk mixing old and new modules.

type assets struct {
	byName map[string]*webasset.Asset
}

func loadAssets() (*assets, error) {
	a := &assets{byName: map[string]*webasset.Asset{}}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		name := path.Base(p)
		a.byName[name] = webasset.New(name, body)
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
		p.Serve(w, r, csp)
	})
}

// files serves /assets/{name}; HTML pages are served only at their routes.
func (a *assets) files() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := a.byName[r.PathValue("name")]
		if f == nil || f.HTML {
			problem.Write(w, http.StatusNotFound, "no such asset")
			return
		}
		f.Serve(w, r, csp)
	})
}
