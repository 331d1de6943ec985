package workflowapi

import (
	"context"
	"strconv"
	"time"

	"github.com/beaconhq/beacon/internal/httpapi"
	"github.com/beaconhq/beacon/internal/page"
	"github.com/beaconhq/beacon/internal/workflow"
)

// Handlers translate between HTTP and the engine, and do nothing else.

// WorkflowIDPath names a workflow in the path.
type WorkflowIDPath struct {
	ID int64 `path:"id" minimum:"1" doc:"Workflow id"`
}

// ListWorkflowsInput asks for a page of the caller's workflows.
type ListWorkflowsInput struct {
	State  string `query:"state" enum:"running,succeeded,failed,cancelled,timed_out" doc:"Only workflows in this state"`
	Kind   string `query:"kind" maxLength:"100" doc:"Only workflows of this kind (\"demo.chord\")"`
	Cursor string `query:"cursor" maxLength:"200" doc:"From a previous page's next_cursor"`
	Limit  int    `query:"limit" minimum:"1" maximum:"200" default:"50"`
}

// WorkflowPageOutput is a page of workflows.
type WorkflowPageOutput struct {
	Body workflow.Page
}

// WorkflowOutput is one workflow.
type WorkflowOutput struct {
	Body workflow.Workflow
}

// maxWait bounds how long a request may hold a connection for a workflow.
const maxWait = 30

// StartDemoInput asks for a demo workflow.
type StartDemoInput struct {
	httpapi.IdempotencyHeader
	Wait int `query:"wait" minimum:"0" maximum:"30" doc:"Seconds to wait for the workflow to end (0: do not wait)"`
	Body DemoSpec
}

// StartDemoOutput is a workflow started (202) or ended (200).
type StartDemoOutput struct {
	Status   int
	Location string `header:"Location"`
	Replayed bool   `header:"Idempotent-Replayed" doc:"true when this answers a retry (same Idempotency-Key)"`
	Body     workflow.Workflow
}

type handlers struct {
	d      httpapi.Deps
	eng    *workflow.Engine
	demo   demoKinds
	waiter *workflow.Waiter
}

// Admins see their own workflows only, like every user: River's UI (admins
// only) shows every step's job.
func owner(ctx context.Context) int64 { return httpapi.Caller(ctx).UserID }

func (h handlers) problem(ctx context.Context, err error) error {
	return httpapi.Problem(ctx, h.d.Log, err)
}

func (h handlers) list(ctx context.Context, in *ListWorkflowsInput) (*WorkflowPageOutput, error) {
	p, err := h.eng.List(ctx, owner(ctx), workflow.Query{State: workflow.State(in.State), Kind: in.Kind,
		Request: page.Request{Cursor: in.Cursor, Limit: in.Limit}})
	if err != nil {
		return nil, h.problem(ctx, httpapi.QueryField(err))
	}
	return &WorkflowPageOutput{Body: p}, nil
}

func (h handlers) get(ctx context.Context, in *WorkflowIDPath) (*WorkflowOutput, error) {
	w, err := h.eng.Get(ctx, owner(ctx), in.ID)
	if err != nil {
		return nil, h.problem(ctx, err)
	}
	return &WorkflowOutput{Body: w}, nil
}

func (h handlers) cancel(ctx context.Context, in *WorkflowIDPath) (*WorkflowOutput, error) {
	if err := h.eng.Cancel(ctx, owner(ctx), in.ID); err != nil {
		return nil, h.problem(ctx, err)
	}
	return h.get(ctx, in)
}

func (h handlers) startDemo(ctx context.Context, in *StartDemoInput) (*StartDemoOutput, error) {
	g, err := h.demo.graph(in.Body)
	if err != nil {
		return nil, h.problem(ctx, httpapi.BodyField(err))
	}
	policy := workflow.Policy(in.Body.Policy)
	id, replayed, err := httpapi.Idempotent(ctx, h.d, in.IdempotencyKey, "start-demo-workflow", in.Body,
		func(ctx context.Context) (int64, error) {
			return h.eng.Start(ctx, workflow.Start{Kind: "demo." + in.Body.Kind, OwnerID: owner(ctx), Policy: policy,
				Timeout: 5 * time.Minute, Graph: g})
		})
	if err != nil {
		return nil, h.problem(ctx, httpapi.BodyField(err))
	}
	out := &StartDemoOutput{Status: 202, Location: "/v1/workflows/" + strconv.FormatInt(id, 10), Replayed: replayed}
	if in.Wait > 0 {
		state, err := h.waiter.Wait(ctx, id, time.Duration(min(in.Wait, maxWait))*time.Second)
		if err != nil {
			return nil, h.problem(ctx, err)
		}
		if state != workflow.StateRunning {
			out.Status = 200
		}
	}
	if out.Body, err = h.eng.Get(ctx, owner(ctx), id); err != nil {
		return nil, h.problem(ctx, err)
	}
	return out, nil
}
