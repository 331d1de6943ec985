package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

func handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// HandleReadyz answers 200 when ready is nil-returning within 2 s, else 503
// with the reason. Exported so the ops port serves the same probe.
func HandleReadyz(ready func(context.Context) error) http.Handler { return handleReadyz(ready) }

func handleReadyz(ready func(context.Context) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if ready == nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"not ready","reason":"no readiness check"}` + "\n"))
			return
		}
		if err := ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
		_, _ = w.Write([]byte(`{"status":"ready"}` + "\n"))
	})
}

// HandleHealthz is the liveness probe: the process answers.
func HandleHealthz() http.Handler { return http.HandlerFunc(handleHealthz) }

func handleNotFound(w http.ResponseWriter, r *http.Request) {
	writeProblem(w, http.StatusNotFound, "no route for "+r.Method+" "+r.URL.Path)
}

// requireReady answers 503 while the process is not ready (schema behind,
// database down), instead of failing deeper with a confusing error.
func requireReady(api huma.API, gate func() error) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		if gate != nil {
			if err := gate(); err != nil {
				_ = huma.WriteErr(api, ctx, http.StatusServiceUnavailable, "not ready: "+err.Error())
				return
			}
		}
		next(ctx)
	}
}
