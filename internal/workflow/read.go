package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/page"
)

// Workflow is a workflow as its owner sees it.
type Workflow struct {
	ID          int64      `json:"id"`
	Kind        string     `json:"kind"`
	State       State      `json:"state" enum:"running,succeeded,failed,cancelled,timed_out"`
	Policy      Policy     `json:"policy" enum:"fail_fast,continue"`
	OwnerID     int64      `json:"owner_id"`
	StepsTotal  int        `json:"steps_total"`
	StepsLeft   int        `json:"steps_left" doc:"Steps not ended yet"`
	StepsFailed int        `json:"steps_failed"`
	Error       string     `json:"error,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	Deadline    time.Time  `json:"deadline"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	// Result is the output of the result step, or the list of the outputs
	// of the result steps; present once the workflow succeeded.
	Result json.RawMessage `json:"result,omitempty"`
	Steps  []Step          `json:"steps,omitempty"`
}

// Step is one step of a workflow.
type Step struct {
	Index int       `json:"index"`
	Name  string    `json:"name"`
	Kind  string    `json:"kind"`
	State StepState `json:"state" enum:"pending,enqueued,succeeded,failed,cancelled"`
	// JobState is River's state of the step's job while it is enqueued
	// (available, running, retryable...).
	JobState    string          `json:"job_state,omitempty"`
	Deps        []int           `json:"deps"`
	JobID       *int64          `json:"job_id,omitempty"`
	Attempts    int             `json:"attempts"`
	MaxAttempts int             `json:"max_attempts"`
	EnqueuedAt  *time.Time      `json:"enqueued_at,omitempty"`
	StartedAt   *time.Time      `json:"started_at,omitempty" doc:"Start of the latest attempt"`
	FinishedAt  *time.Time      `json:"finished_at,omitempty"`
	Output      json.RawMessage `json:"output,omitempty"`
	// Error is why the step failed or was cancelled, or the latest
	// attempt's error while River retries it.
	Error string `json:"error,omitempty"`
}

const workflowColumns = `w.id, w.kind, w.state, w.policy, w.owner_id, w.steps_total, w.steps_left, w.steps_failed,
	coalesce(w.error, ''), w.created_at, w.deadline, w.finished_at`

func scanWorkflow(r pgx.Row, w *Workflow, extra ...any) error {
	return r.Scan(append([]any{&w.ID, &w.Kind, &w.State, &w.Policy, &w.OwnerID, &w.StepsTotal, &w.StepsLeft, &w.StepsFailed,
		&w.Error, &w.CreatedAt, &w.Deadline, &w.FinishedAt}, extra...)...)
}

var errNotFound = apperr.Errorf(apperr.NotFound, "no such workflow")

// Get returns workflow id of owner (of anyone when owner is 0) with its
// steps; another owner's workflow is not found.
func (e *Engine) Get(ctx context.Context, owner, id int64) (Workflow, error) {
	var w Workflow
	_, joined := database.TxFrom(ctx)
	err := database.InTx(ctx, e.pool, func(ctx context.Context, tx pgx.Tx) error {
		// One snapshot for the workflow and its steps (a caller's
		// transaction has its own).
		if !joined {
			if _, err := tx.Exec(ctx, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
				return err
			}
		}
		var (
			resultSteps []int32
			resultList  bool
		)
		err := scanWorkflow(tx.QueryRow(ctx, `SELECT `+workflowColumns+`, w.result_steps, w.result_list
			FROM workflows w WHERE w.id = $1 AND w.engine = $2 AND ($3 = 0 OR w.owner_id = $3)`, id, e.name, owner),
			&w, &resultSteps, &resultList)
		if errors.Is(err, pgx.ErrNoRows) {
			return errNotFound
		}
		if err != nil {
			return fmt.Errorf("read workflow %d: %w", id, err)
		}
		rows, err := tx.Query(ctx, `
			SELECT s.idx, s.name, s.kind, s.state, coalesce(j.state::text, ''), s.deps, s.job_id,
				coalesce(s.attempts, j.attempt, 0), s.max_attempts, s.enqueued_at, j.attempted_at, s.finished_at, s.output,
				coalesce(s.error, CASE WHEN s.state = 'enqueued' THEN j.errors[array_length(j.errors, 1)] ->> 'error' END, '')
			FROM workflow_steps s LEFT JOIN river_job j ON j.id = s.job_id
			WHERE s.workflow_id = $1 ORDER BY s.idx`, id)
		if err != nil {
			return fmt.Errorf("read steps of workflow %d: %w", id, err)
		}
		w.Steps, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Step, error) {
			var (
				s    Step
				deps []int32
			)
			err := r.Scan(&s.Index, &s.Name, &s.Kind, &s.State, &s.JobState, &deps, &s.JobID, &s.Attempts, &s.MaxAttempts,
				&s.EnqueuedAt, &s.StartedAt, &s.FinishedAt, &s.Output, &s.Error)
			if s.State != StepEnqueued {
				s.JobState = ""
			}
			s.Deps = make([]int, len(deps))
			for i, d := range deps {
				s.Deps[i] = int(d)
			}
			return s, err
		})
		if err != nil {
			return fmt.Errorf("read steps of workflow %d: %w", id, err)
		}
		if w.State == StateSucceeded {
			w.Result = result(w.Steps, resultSteps, resultList)
		}
		return nil
	})
	return w, err
}

func result(steps []Step, refs []int32, list bool) json.RawMessage {
	out := func(i int32) json.RawMessage {
		if int(i) < len(steps) && steps[i].Output != nil {
			return steps[i].Output
		}
		return json.RawMessage("null")
	}
	if !list {
		if len(refs) == 0 {
			return nil
		}
		return out(refs[0])
	}
	items := make([]json.RawMessage, len(refs))
	for i, r := range refs {
		items[i] = out(r)
	}
	raw, _ := json.Marshal(items)
	return raw
}

// State returns the state of workflow id (whoever owns it).
func (e *Engine) State(ctx context.Context, id int64) (State, error) {
	var s State
	err := database.Q(ctx, e.pool).QueryRow(ctx, `SELECT state FROM workflows WHERE id = $1 AND engine = $2`, id, e.name).Scan(&s)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", errNotFound
	}
	return s, err
}

// OwnerOf returns the owner of workflow id.
func (e *Engine) OwnerOf(ctx context.Context, id int64) (int64, error) {
	var owner int64
	err := database.Q(ctx, e.pool).QueryRow(ctx, `SELECT owner_id FROM workflows WHERE id = $1 AND engine = $2`, id, e.name).Scan(&owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, errNotFound
	}
	return owner, err
}

// Query filters a list of workflows.
type Query struct {
	State State  // "" for any
	Kind  string // "" for any
	page.Request
}

// Page is a page of workflows, newest first, without their steps.
type Page struct {
	Items      []Workflow `json:"items"`
	NextCursor string     `json:"next_cursor,omitempty" doc:"Pass as cursor to get the next page; absent on the last page"`
}

// MaxLimit bounds a page of workflows.
const MaxLimit = 200

// List returns a page of owner's workflows, newest first.
func (e *Engine) List(ctx context.Context, owner int64, q Query) (Page, error) {
	if err := q.Validate(MaxLimit); err != nil {
		return Page{}, err
	}
	if q.State != "" && !slices.Contains(States, q.State) {
		return Page{}, apperr.InvalidField("state", "must be one of running, succeeded, failed, cancelled, timed_out")
	}
	if len(q.Kind) > 100 {
		return Page{}, apperr.InvalidField("kind", "has at most 100 characters")
	}
	var after int64
	if q.Cursor != "" {
		if err := page.Decode(q.Cursor, &after); err != nil {
			return Page{}, err
		}
	}
	rows, err := database.Q(ctx, e.pool).Query(ctx, `
		SELECT `+workflowColumns+` FROM workflows w
		WHERE w.owner_id = $1 AND w.engine = $2 AND ($3 = '' OR w.state = $3) AND ($4 = '' OR w.kind = $4)
			AND ($5 = 0 OR w.id < $5)
		ORDER BY w.id DESC LIMIT $6`, owner, e.name, string(q.State), q.Kind, after, q.Limit+1)
	if err != nil {
		return Page{}, fmt.Errorf("list workflows: %w", err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Workflow, error) {
		var w Workflow
		return w, scanWorkflow(r, &w)
	})
	if err != nil {
		return Page{}, fmt.Errorf("list workflows: %w", err)
	}
	items, next := page.Cut(items, q.Limit, func(w Workflow) string { return page.Encode(w.ID) })
	return Page{Items: items, NextCursor: next}, nil
}
