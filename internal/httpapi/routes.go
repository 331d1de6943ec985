package httpapi

import (
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/beaconhq/beacon/internal/httpapi/docsui"
)

// addRoutes is the whole HTTP surface of Beacon.
func addRoutes(mux *http.ServeMux, api huma.API, d Deps) {
	// Operations: probes and documentation, outside /v1 and never gated.
	mux.HandleFunc("GET /healthz", handleHealthz)
	mux.Handle("GET /readyz", handleReadyz(d.Ready))
	docs := docsui.Handler("/docs", OpenAPIPath+".json")
	mux.Handle("/docs", docs)
	mux.Handle("/docs/", docs)
	mux.HandleFunc("/", handleNotFound)

	v1 := huma.NewGroup(api, "/v1")
	v1.UseMiddleware(requireReady(api, d.Gate))

	// Monitors.
	huma.Register(v1, huma.Operation{
		OperationID: "list-monitors", Method: http.MethodGet, Path: "/monitors",
		Summary: "List monitors", Tags: []string{"Monitors"},
	}, listMonitors(d))
	huma.Register(v1, huma.Operation{
		OperationID: "create-monitor", Method: http.MethodPost, Path: "/monitors",
		Summary: "Create a monitor", Tags: []string{"Monitors"}, DefaultStatus: http.StatusCreated,
	}, createMonitor(d))
	huma.Register(v1, huma.Operation{
		OperationID: "get-monitor", Method: http.MethodGet, Path: "/monitors/{id}",
		Summary: "Get a monitor", Tags: []string{"Monitors"},
	}, getMonitor(d))
	huma.Register(v1, huma.Operation{
		OperationID: "update-monitor", Method: http.MethodPatch, Path: "/monitors/{id}",
		Summary: "Update a monitor", Description: "Changes only the fields present in the body.",
		Tags: []string{"Monitors"},
	}, updateMonitor(d))
	huma.Register(v1, huma.Operation{
		OperationID: "delete-monitor", Method: http.MethodDelete, Path: "/monitors/{id}",
		Summary: "Delete a monitor and its results", Tags: []string{"Monitors"}, DefaultStatus: http.StatusNoContent,
	}, deleteMonitor(d))

	// Checks and their results.
	huma.Register(v1, huma.Operation{
		OperationID: "run-check", Method: http.MethodPost, Path: "/monitors/{id}/checks",
		Summary: "Run a check now",
		Description: "Enqueues a check. Without `wait` it answers 202 at once with the job to follow; " +
			"with `wait` it answers 200 with the result if the check ends within that many seconds, else 202.",
		Tags: []string{"Checks"}, DefaultStatus: http.StatusAccepted,
		Responses: map[string]*huma.Response{"200": {Description: "The check finished within `wait`."}},
	}, runCheck(d))
	huma.Register(v1, huma.Operation{
		OperationID: "list-results", Method: http.MethodGet, Path: "/monitors/{id}/results",
		Summary: "List check results", Description: "Newest first, paginated by `cursor`.", Tags: []string{"Checks"},
	}, listResults(d))
	huma.Register(v1, huma.Operation{
		OperationID: "get-stats", Method: http.MethodGet, Path: "/monitors/{id}/stats",
		Summary:     "Uptime and latency per time bucket",
		Description: "Check count, successes, uptime ratio and p50/p95/p99 latency per bucket; buckets without checks are omitted.",
		Tags:        []string{"Checks"},
	}, getStats(d))

	// Jobs.
	huma.Register(v1, huma.Operation{
		OperationID: "get-job", Method: http.MethodGet, Path: "/jobs/{id}",
		Summary: "Get a job's state, attempts, errors and output", Tags: []string{"Jobs"},
	}, getJob(d))
}
