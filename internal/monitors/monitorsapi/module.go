// Package monitorsapi plugs the monitors domain into Beacon: its routes
// (HTTP <-> monitors.Service), and Module, which wires the domain's service,
// workers, periodic jobs, queues, metrics and bootstrap into the platform.
// cmd/beacon registers it with one line.
package monitorsapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric"

	"github.com/beaconhq/beacon/internal/auth"
	"github.com/beaconhq/beacon/internal/httpapi"
	"github.com/beaconhq/beacon/internal/monitors"
	"github.com/beaconhq/beacon/internal/monitors/incidents"
	"github.com/beaconhq/beacon/internal/netguard"
	"github.com/beaconhq/beacon/internal/notify"
	"github.com/beaconhq/beacon/internal/platform"
)

// Module returns the monitors domain as a platform module.
func Module() platform.Module { return module{} }

type module struct{}

func (module) Name() string { return "monitors" }

func (module) Build(env platform.Env) (platform.Parts, error) {
	tel := env.Telemetry
	svc := monitors.NewService(monitors.NewStore(env.Pool, nil), env.Jobs)
	// Checks and webhooks reach users' URLs under one network policy.
	policy := netguard.NewPolicy(env.Config.CheckAllow)
	client := policy.HTTPClient(netguard.ClientOptions{
		UserAgent: "Beacon/" + env.Version + " (synthetic monitoring)",
		Transport: func(rt http.RoundTripper) http.RoundTripper {
			return otelhttp.NewTransport(rt,
				otelhttp.WithTracerProvider(tel.TracerProvider),
				otelhttp.WithMeterProvider(tel.MeterProvider),
				otelhttp.WithPropagators(tel.Propagator))
		},
	})
	checker := &monitors.Checker{Client: client}
	incOpts := incidents.Options{
		Pool: env.Pool, WorkPool: env.WorkPool, Workflows: env.Workflows,
		Confirmations: env.Config.IncidentConfirmations, Spacing: env.Config.IncidentConfirmSpacing,
		Webhook: &notify.Webhook{Client: client, UserAgent: "Beacon/" + env.Version + " (notifications)"},
		Log:     env.Log.With("component", "incidents"),
	}
	if incOpts.Confirmations == 0 {
		incOpts.Confirmations = 3 // a configuration not loaded (Describe)
	}
	var err error
	if incOpts.Metrics, err = incidents.NewMetrics(tel.MeterProvider); err != nil {
		return platform.Parts{}, err
	}
	if env.Config.SMTPAddr != "" {
		tlsMode := env.Config.SMTPTLS
		if tlsMode == "opportunistic" {
			tlsMode = notify.TLSOpportunistic
		}
		incOpts.Email, err = notify.NewEmail(notify.SMTPConfig{Addr: env.Config.SMTPAddr, From: env.Config.SMTPFrom,
			Username: env.Config.SMTPUsername, Password: env.Config.SMTPPassword, TLS: tlsMode})
		if err != nil {
			return platform.Parts{}, err
		}
	}
	var workSvc *monitors.Service
	if env.WorkPool != nil {
		workSvc = monitors.NewService(monitors.NewStore(env.WorkPool, nil), nil)
		incOpts.Recheck = func(ctx context.Context, owner, id int64) (monitors.Result, error) {
			m, err := workSvc.Get(ctx, owner, id)
			if err != nil {
				return monitors.Result{}, err
			}
			return checker.Check(ctx, m), nil
		}
	}
	inc, err := incidents.New(incOpts)
	if err != nil {
		return platform.Parts{}, err
	}
	parts := platform.Parts{
		Queues:     map[string]river.QueueConfig{monitors.QueueChecks: {MaxWorkers: env.Config.WorkerConcurrency}},
		LongestJob: monitors.LongestJobTimeout,
		API:        Routes(svc, inc),
		Bootstrap: func(ctx context.Context, admin int64) error {
			n, err := svc.AdoptUnowned(ctx, admin)
			if n > 0 {
				env.Log.Info("gave unowned monitors to the first admin", "count", n)
			}
			return err
		},
	}
	if env.WorkPool == nil {
		return parts, nil
	}
	metrics, err := monitors.NewMetrics(tel.MeterProvider)
	if err != nil {
		return parts, err
	}
	workStore := monitors.NewStore(env.WorkPool, nil)
	deps := monitors.Deps{
		Store:             workStore,
		Checker:           checker,
		Metrics:           metrics,
		Log:               env.Log,
		SchedulerInterval: env.Config.SchedulerInterval,
		SchedulerBatch:    env.Config.SchedulerBatch,
		Retention:         env.Config.ResultRetention,
		OnStateChange:     inc.OnStateChange,
	}
	parts.AddWorkers = func(w *river.Workers) { monitors.AddWorkers(w, deps) }
	parts.PeriodicJobs = monitors.PeriodicJobs(deps)
	parts.Gauges = func(mp metric.MeterProvider) ([]metric.Registration, error) {
		states, err := monitors.ObserveStates(mp, workStore)
		if err != nil {
			return nil, err
		}
		open, err := incidents.ObserveOpen(mp, env.WorkPool)
		if err != nil {
			_ = states.Unregister()
			return nil, err
		}
		return []metric.Registration{states, open}, nil
	}
	return parts, nil
}

// Routes is the domain's part of the API.
func Routes(svc *monitors.Service, inc *incidents.Service) *httpapi.Routes {
	return &httpapi.Routes{
		Tags: []*huma.Tag{
			{Name: "Public: status pages", Description: "Status pages of the monitors their owners published. No access token needed."},
			{Name: "Monitors", Description: "The HTTP endpoints you watch: what to request, how often, and which answers count as up."},
			{Name: "Checks", Description: "Checks on demand, check results, and uptime and latency statistics."},
			{Name: "Incidents", Description: "Outages confirmed by re-checks: follow, acknowledge and resolve them."},
			{Name: "Notification channels", Description: "Webhooks and email addresses told of your incidents."},
		},
		Register: func(v1 huma.API, d httpapi.Deps) {
			h := handlers{d: d, svc: svc, inc: inc}
			register(v1, h)
			registerIncidents(v1, h)
		},
		JobAccess: map[string]httpapi.JobAccess{
			// A check job is visible to the owner of the monitor it checks.
			monitors.CheckArgs{}.Kind(): func(ctx context.Context, p auth.Principal, row *rivertype.JobRow) (bool, error) {
				var args monitors.CheckArgs
				if err := json.Unmarshal(row.EncodedArgs, &args); err != nil {
					return false, nil
				}
				return svc.MayWatchCheck(ctx, p.UserID, args)
			},
		},
	}
}

func register(v1 huma.API, h handlers) {
	api := v1
	huma.Register(v1, httpapi.Public(huma.Operation{
		OperationID: "get-status-page", Method: http.MethodGet, Path: "/public/status/{slug}",
		Summary: "A published monitor's status page", Tags: []string{"Public: status pages"},
		Description: "The name, state, uptime over 24 h and 7 days, the latest checks and the recent incidents of the " +
			"monitor published under this slug (its `public_slug`). Needs no token.",
		Responses: map[string]*huma.Response{
			"404": httpapi.ProblemResponse[huma.ErrorModel](api, "No monitor is published under this slug."),
			"422": httpapi.ProblemResponse[huma.ErrorModel](api, "The slug is not a valid slug."),
		},
	}), h.getStatusPage)

	huma.Register(v1, httpapi.Private(huma.Operation{
		OperationID: "list-monitors", Method: http.MethodGet, Path: "/monitors",
		Summary: "List monitors", Tags: []string{"Monitors"},
		Description: "Your monitors by id, paginated by `cursor`.",
	}), h.listMonitors)
	huma.Register(v1, httpapi.Private(huma.Operation{
		OperationID: "create-monitor", Method: http.MethodPost, Path: "/monitors",
		Summary: "Create a monitor", Tags: []string{"Monitors"}, DefaultStatus: http.StatusCreated,
		Description: "Registers an HTTP endpoint to check on schedule; Location names the new monitor. " +
			"A `public_slug` already taken answers 409.",
	}), h.createMonitor)
	huma.Register(v1, httpapi.Private(huma.Operation{
		OperationID: "get-monitor", Method: http.MethodGet, Path: "/monitors/{id}",
		Summary: "Get a monitor", Tags: []string{"Monitors"},
		Description: "One of your monitors, with its current state; another user's monitor answers 404.",
	}), h.getMonitor)
	huma.Register(v1, httpapi.Private(huma.Operation{
		OperationID: "update-monitor", Method: http.MethodPatch, Path: "/monitors/{id}",
		Summary: "Update a monitor", Description: "Changes only the fields present in the body.",
		Tags: []string{"Monitors"},
	}), h.updateMonitor)
	huma.Register(v1, httpapi.Private(huma.Operation{
		OperationID: "delete-monitor", Method: http.MethodDelete, Path: "/monitors/{id}",
		Summary: "Delete a monitor and its results", Tags: []string{"Monitors"}, DefaultStatus: http.StatusNoContent,
		Description: "Stops its checks and deletes its results and its status page.",
	}), h.deleteMonitor)

	huma.Register(v1, httpapi.Private(huma.Operation{
		OperationID: "run-check", Method: http.MethodPost, Path: "/monitors/{id}/checks",
		Summary: "Run a check now",
		Description: "Enqueues a check. Without `wait` it answers 202 at once with the job to follow; " +
			"with `wait` it answers 200 with the result if the check ends within that many seconds, else 202.",
		Tags: []string{"Checks"}, DefaultStatus: http.StatusAccepted,
		Responses: map[string]*huma.Response{"200": {Description: "The check finished within `wait`."}},
	}), h.runCheck)
	huma.Register(v1, httpapi.Private(huma.Operation{
		OperationID: "list-results", Method: http.MethodGet, Path: "/monitors/{id}/results",
		Summary: "List check results", Description: "Newest first, paginated by `cursor`.", Tags: []string{"Checks"},
	}), h.listResults)
	huma.Register(v1, httpapi.Private(huma.Operation{
		OperationID: "get-stats", Method: http.MethodGet, Path: "/monitors/{id}/stats",
		Summary:     "Uptime and latency per time bucket",
		Description: "Check count, successes, uptime ratio and p50/p95/p99 latency per bucket; buckets without checks are omitted.",
		Tags:        []string{"Checks"},
	}), h.getStats)
}
