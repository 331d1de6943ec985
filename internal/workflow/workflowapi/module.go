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
	"github.com/riverqueue/river/rivertype"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/auth"
	"github.com/beaconhq/beacon/internal/httpapi"
	"github.com/beaconhq/beacon/internal/platform"
	"github.com/beaconhq/beacon/internal/workflow"
)

// Module returns the workflows' API (read, follow and cancel one's
// workflows) with its demo workflow, as a platform module. The engine
// itself is the platform's (platform.Env.Workflows).
func Module() platform.Module { return module{} }

type module struct{}

func (module) Name() string { return "workflow" }

func (module) Build(env platform.Env) (platform.Parts, error) {
	demo := defineDemo(env.Workflows.Registry())
	return platform.Parts{API: Routes(env.Workflows, demo)}, nil
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
