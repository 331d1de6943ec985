// Package workflowapi plugs the workflow engine into Beacon: its routes
// (reading and cancelling one's workflows, starting the demo workflow) and
// Module, which wires the engine's workers, sweeper, queue and metrics.
// cmd/beacon registers it with one line.
//
// The engine (internal/workflow) is generic; only server-defined step kinds
// run, so the API starts no arbitrary graph: a domain that wants workflows
// defines its kinds and starts them from its own service.
package workflowapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.opentelemetry.io/otel/metric"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/auth"
	"github.com/beaconhq/beacon/internal/httpapi"
	"github.com/beaconhq/beacon/internal/platform"
	"github.com/beaconhq/beacon/internal/workflow"
)

// stepWorkers run the steps of a worker process at once. The demo's steps
// are arithmetic; a step holds a database connection only to read its
// inputs, and completions share one transaction per process.
const stepWorkers = 10

// Module returns the workflow engine, with its demo workflow, as a
// platform module.
func Module() platform.Module { return module{} }

type module struct{}

func (module) Name() string { return "workflow" }

func (module) Build(env platform.Env) (platform.Parts, error) {
	reg := workflow.NewRegistry()
	demo := defineDemo(reg)
	metrics, err := workflow.NewMetrics(env.Telemetry.MeterProvider)
	if err != nil {
		return platform.Parts{}, err
	}
	eng, err := workflow.New(workflow.Options{
		Registry: reg, Pool: env.Pool, WorkPool: env.WorkPool, Jobs: env.Jobs,
		Metrics: metrics, Log: env.Log.With("component", "workflow"),
	})
	if err != nil {
		return platform.Parts{}, err
	}
	parts := platform.Parts{
		Queues:     map[string]river.QueueConfig{workflow.DefaultQueue: {MaxWorkers: stepWorkers}},
		LongestJob: eng.LongestJob(),
		API:        Routes(eng, demo),
	}
	if env.WorkPool == nil {
		return parts, nil
	}
	parts.AddWorkers = eng.AddWorkers
	parts.PeriodicJobs = eng.PeriodicJobs()
	parts.Gauges = func(mp metric.MeterProvider) ([]metric.Registration, error) {
		r, err := eng.ObserveGauges(mp)
		if err != nil {
			return nil, err
		}
		return []metric.Registration{r}, nil
	}
	return parts, nil
}

// Routes is the workflows' part of the API.
func Routes(eng *workflow.Engine, demo demoKinds) *httpapi.Routes {
	h := handlers{eng: eng, demo: demo, waiter: workflow.NewWaiter(eng)}
	return &httpapi.Routes{
		Tags: []*huma.Tag{{Name: "Workflows",
			Description: "Workflows: DAGs of steps run as jobs (chains, groups, chords); yours to follow and cancel."}},
		Register: func(v1 huma.API, d httpapi.Deps) {
			h.d = d
			register(v1, h)
		},
		JobAccess: map[string]httpapi.JobAccess{
			// A step's job is visible to its workflow's owner.
			eng.StepJobKind(): func(ctx context.Context, p auth.Principal, row *rivertype.JobRow) (bool, error) {
				var args workflow.StepJob
				if err := json.Unmarshal(row.EncodedArgs, &args); err != nil {
					return false, nil
				}
				owner, err := eng.OwnerOf(ctx, args.WorkflowID)
				if apperr.CodeOf(err) == apperr.NotFound {
					return false, nil
				}
				return err == nil && owner == p.UserID, err
			},
		},
	}
}

func register(v1 huma.API, h handlers) {
	huma.Register(v1, httpapi.Private(huma.Operation{
		OperationID: "list-workflows", Method: http.MethodGet, Path: "/workflows",
		Summary: "List workflows", Tags: []string{"Workflows"},
		Description: "Your workflows, newest first, without their steps; filtered by `state` and `kind`, paginated by `cursor`.",
	}), h.list)
	huma.Register(v1, httpapi.Private(huma.Operation{
		OperationID: "get-workflow", Method: http.MethodGet, Path: "/workflows/{id}",
		Summary: "Get a workflow", Tags: []string{"Workflows"},
		Description: "One of your workflows with its steps: state, attempts, timings, outputs or errors, and its " +
			"result once it succeeded. Another user's workflow answers 404.",
	}), h.get)
	huma.Register(v1, httpapi.Private(huma.Operation{
		OperationID: "cancel-workflow", Method: http.MethodPost, Path: "/workflows/{id}/cancel",
		Summary: "Cancel a workflow", Tags: []string{"Workflows"},
		Description: "Cancels a running workflow: its steps not ended are cancelled, running ones told to stop. " +
			"A workflow already ended answers 409.",
	}), h.cancel)
	huma.Register(v1, httpapi.Private(huma.Operation{
		OperationID: "start-demo-workflow", Method: http.MethodPost, Path: "/workflows/demo",
		Summary: "Start a demo workflow", Tags: []string{"Workflows"}, DefaultStatus: http.StatusAccepted,
		Description: "Starts a chain, group or chord of `n` arithmetic steps. Without `wait` it answers 202 at once, " +
			"Location naming the workflow; with `wait` it answers 200 with the workflow if it ends within that many " +
			"seconds, else 202.",
		Responses: map[string]*huma.Response{"200": {Description: "The workflow ended within `wait`."}},
	}), h.startDemo)
}
