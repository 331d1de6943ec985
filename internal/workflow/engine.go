package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/realtime"
)

// DoneChannel is the PostgreSQL channel on which a workflow announces its id
// when it ends (at the commit of the transaction that ends it).
const DoneChannel = "beacon_workflow_done"

// Realtime event types, published to the workflow's owner.
const (
	EventStep     = "workflow_step"
	EventFinished = "workflow_finished"
)

// MaxStepEvents: a workflow of more steps publishes no event for each
// step that succeeds (failures and the end still are): a dashboard
// following a chord of thousands would fall behind and be dropped.
const MaxStepEvents = 100

// Options configure an Engine.
type Options struct {
	// Name names the engine's workflows and River job kinds (<name>_step,
	// <name>_deadline, <name>_sweep); one engine per name in a process.
	// Default "workflow".
	Name     string
	Registry *Registry
	// Pool serves starts, reads and cancels; WorkPool runs steps (default Pool).
	Pool, WorkPool *pgxpool.Pool
	// Jobs inserts and cancels jobs outside workers (starts and cancels from
	// the API); inside a worker the worker's client is used.
	Jobs *river.Client[pgx.Tx]
	// Queue of the steps' jobs (default "workflows").
	Queue   string
	Metrics *Metrics     // may be nil
	Log     *slog.Logger // may be nil
	// SweepInterval is how often the sweeper looks for overdue workflows and
	// lost steps (default 30 s); Retention how long finished workflows are
	// kept (default 7 days).
	SweepInterval, Retention time.Duration
}

// Engine starts, runs, cancels and reads workflows.
type Engine struct {
	name     string
	reg      *Registry
	pool     *pgxpool.Pool
	workPool *pgxpool.Pool
	jobs     *river.Client[pgx.Tx]
	queue    string
	metrics  *Metrics
	log      *slog.Logger
	sweep    time.Duration
	keep     time.Duration
	// completions shares a transaction among the steps that complete at
	// the same time (group commit).
	completions *database.Group[completion, error]
}

var enginePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,30}$`)

// DefaultQueue is the steps' queue unless Options.Queue says otherwise.
const DefaultQueue = "workflows"

// New returns an engine. It does no I/O.
func New(o Options) (*Engine, error) {
	if o.Name == "" {
		o.Name = "workflow"
	}
	if !enginePattern.MatchString(o.Name) {
		return nil, fmt.Errorf("workflow: engine name %q: want lowercase letters, digits and _", o.Name)
	}
	if o.Registry == nil {
		return nil, errors.New("workflow: an engine needs a registry")
	}
	if o.WorkPool == nil {
		o.WorkPool = o.Pool
	}
	if o.Queue == "" {
		o.Queue = DefaultQueue
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = 30 * time.Second
	}
	if o.Retention <= 0 {
		o.Retention = 7 * 24 * time.Hour
	}
	e := &Engine{name: o.Name, reg: o.Registry, pool: o.Pool, workPool: o.WorkPool, jobs: o.Jobs, queue: o.Queue,
		metrics: o.Metrics, log: o.Log, sweep: o.SweepInterval, keep: o.Retention}
	e.completions = &database.Group[completion, error]{Fn: e.completeMany, Max: 200, Timeout: 30 * time.Second}
	return e, nil
}

// Registry is the engine's registry of step kinds.
func (e *Engine) Registry() *Registry { return e.reg }

// Name is the engine's name.
func (e *Engine) Name() string { return e.name }

// StepJobKind is the River kind of the engine's step jobs.
func (e *Engine) StepJobKind() string { return e.name + "_step" }

// ---- River jobs.

// StepJob is a step's River job arguments: River's UI shows the workflow
// and step of each job.
type StepJob struct {
	WorkflowID int64  `json:"workflow_id"`
	Step       int    `json:"step"`
	Name       string `json:"name"`
	StepKind   string `json:"step_kind"`
	// Args are the step's arguments; Deps the steps whose outputs are its inputs.
	Args json.RawMessage `json:"args"`
	Deps []int           `json:"deps,omitempty"`

	kind string
}

// Kind implements river.JobArgs.
func (j StepJob) Kind() string { return j.kind }

// deadlineJob ends a workflow still running at its deadline.
type deadlineJob struct {
	WorkflowID int64 `json:"workflow_id"`
	kind       string
}

func (j deadlineJob) Kind() string { return j.kind }

// sweepJob ends overdue workflows, fails steps whose job River gave up on
// without the engine hearing of it, and deletes old workflows.
type sweepJob struct{ kind string }

func (j sweepJob) Kind() string { return j.kind }

// AddWorkers registers the engine's workers. River's kinds are per engine,
// so args are given by value (river.AddWorkerArgs).
func (e *Engine) AddWorkers(w *river.Workers) {
	river.AddWorkerArgs(w, StepJob{kind: e.StepJobKind()}, &stepWorker{e: e})
	river.AddWorkerArgs(w, deadlineJob{kind: e.name + "_deadline"}, &deadlineWorker{e: e})
	river.AddWorkerArgs(w, sweepJob{kind: e.name + "_sweep"}, &sweepWorker{e: e})
}

// PeriodicJobs returns the sweeper.
func (e *Engine) PeriodicJobs() []*river.PeriodicJob {
	return []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(e.sweep),
		func() (river.JobArgs, *river.InsertOpts) {
			return sweepJob{kind: e.name + "_sweep"}, &river.InsertOpts{MaxAttempts: 1, UniqueOpts: river.UniqueOpts{
				ByState: []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending,
					rivertype.JobStateRunning, rivertype.JobStateRetryable, rivertype.JobStateScheduled}}}
		}, nil)}
}

// LongestJob is the longest a step of the registry may run.
func (e *Engine) LongestJob() time.Duration {
	e.reg.mu.RLock()
	defer e.reg.mu.RUnlock()
	longest := time.Minute
	for _, k := range e.reg.kinds {
		longest = max(longest, k.opts.Timeout)
	}
	return longest
}

// ---- Starting.

// Start is a workflow to start.
type Start struct {
	Kind    string // what the workflow is, for lists and metrics ("demo.chord")
	OwnerID int64
	Policy  Policy        // default FailFast
	Timeout time.Duration // from now to the deadline (default 1 h)
	Graph   *Graph
}

// Start stores a workflow and enqueues its first steps, in one transaction
// (the caller's, if ctx carries one: database.WithTx). Inside a River worker
// it inserts with the worker's client. It returns the workflow's id.
func (e *Engine) Start(ctx context.Context, s Start) (int64, error) {
	if s.Policy == "" {
		s.Policy = FailFast
	}
	if s.Timeout == 0 {
		s.Timeout = time.Hour
	}
	switch {
	case s.Graph == nil:
		return 0, apperr.Errorf(apperr.Invalid, "workflow: no graph")
	case s.Policy != FailFast && s.Policy != Continue:
		return 0, apperr.InvalidField("policy", "must be fail_fast or continue")
	case s.Timeout < time.Second || s.Timeout > MaxDeadline:
		return 0, apperr.InvalidField("timeout", "must be between 1 s and %s", MaxDeadline)
	case len(s.Kind) < 1 || len(s.Kind) > 100:
		return 0, apperr.InvalidField("kind", "must have 1 to 100 characters")
	}
	if err := s.Graph.validate(e.reg); err != nil {
		return 0, err
	}
	client := e.client(ctx)
	if client == nil {
		return 0, errors.New("workflow: no River client to insert steps with")
	}
	g := s.Graph
	n := len(g.steps)
	dependents := make([][]int32, n)
	for i := range dependents {
		dependents[i] = []int32{}
	}
	for i, st := range g.steps {
		for _, d := range st.deps {
			dependents[d] = append(dependents[d], int32(i))
		}
	}
	result, list := g.resultRefs()
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	deadline := time.Now().Add(s.Timeout)

	var id int64
	err := database.InTx(ctx, e.pool, func(ctx context.Context, tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			INSERT INTO workflows (engine, kind, owner_id, policy, steps_total, steps_left, result_steps, result_list, traceparent, deadline)
			VALUES ($1, $2, $3, $4, $5, $5, $6, $7, nullif($8, ''), $9) RETURNING id`,
			e.name, s.Kind, s.OwnerID, string(s.Policy), n, refsToInt32(result), list, carrier["traceparent"], deadline).Scan(&id)
		if err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.ForeignKeyViolation {
				return apperr.Errorf(apperr.NotFound, "no such owner")
			}
			return fmt.Errorf("insert workflow: %w", err)
		}
		var (
			idx, pending, maxAttempts, delays []int32
			names, kinds                      []string
			args                              [][]byte
			deps, deps2                       [][]int32
		)
		for i, st := range g.steps {
			k, _ := e.reg.lookup(st.call.Kind)
			idx = append(idx, int32(i))
			names = append(names, st.call.Name)
			kinds = append(kinds, st.call.Kind)
			args = append(args, st.args)
			deps = append(deps, refsToInt32(st.deps))
			deps2 = append(deps2, dependents[i])
			pending = append(pending, int32(len(st.deps)))
			maxAttempts = append(maxAttempts, int32(k.opts.MaxAttempts))
			delays = append(delays, int32(st.call.Delay.Milliseconds()))
		}
		// Arrays of arrays of different lengths do not fit a SQL array: the
		// edges go as JSON.
		depsJSON, _ := json.Marshal(deps)
		dependentsJSON, _ := json.Marshal(deps2)
		_, err = tx.Exec(ctx, `
			INSERT INTO workflow_steps (workflow_id, idx, name, kind, args, deps, dependents, pending_deps, max_attempts, delay_ms, state)
			SELECT $1, s.idx, s.name, s.kind, s.args,
				ARRAY(SELECT jsonb_array_elements_text(d.deps -> s.idx))::integer[],
				ARRAY(SELECT jsonb_array_elements_text(d.dependents -> s.idx))::integer[],
				s.pending, s.max_attempts, s.delay_ms, 'pending'
			FROM unnest($2::integer[], $3::text[], $4::text[], $5::jsonb[], $6::integer[], $7::integer[], $10::integer[])
				AS s(idx, name, kind, args, pending, max_attempts, delay_ms),
				(SELECT $8::jsonb AS deps, $9::jsonb AS dependents) d`,
			id, idx, names, kinds, args, pending, maxAttempts, depsJSON, dependentsJSON, delays)
		if err != nil {
			return fmt.Errorf("insert steps: %w", err)
		}
		var roots []readyStep
		for i, st := range g.steps {
			if len(st.deps) == 0 {
				roots = append(roots, readyStep{idx: int32(i), name: st.call.Name, kind: st.call.Kind, args: st.args,
					delayMS: int32(st.call.Delay.Milliseconds())})
			}
		}
		if err := e.enqueue(ctx, client, tx, id, carrier["traceparent"], roots); err != nil {
			return err
		}
		_, err = client.InsertTx(ctx, tx, deadlineJob{WorkflowID: id, kind: e.name + "_deadline"},
			&river.InsertOpts{Queue: e.queue, ScheduledAt: deadline, MaxAttempts: 5})
		if err != nil {
			return fmt.Errorf("schedule deadline: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	e.metrics.started(ctx, s.Kind)
	return id, nil
}

func (e *Engine) client(ctx context.Context) *river.Client[pgx.Tx] {
	if c, err := river.ClientFromContextSafely[pgx.Tx](ctx); err == nil {
		return c
	}
	return e.jobs
}

func refsToInt32(refs []Ref) []int32 {
	out := make([]int32, len(refs))
	for i, r := range refs {
		out[i] = int32(r)
	}
	return out
}

type readyStep struct {
	idx        int32
	name, kind string
	args       json.RawMessage
	deps       []int32
	delayMS    int32
}

// stepMetadata makes a step's span a child of the span that started its
// workflow (jobs.ContinueTrace, with the workflow's traceparent): one trace
// per workflow, whichever client inserts the step.
func stepMetadata(traceparent string) []byte {
	m := map[string]string{"beacon_trace": "continue"}
	if traceparent != "" {
		m["traceparent"] = traceparent
	}
	raw, _ := json.Marshal(m)
	return raw
}

// enqueue inserts the jobs of steps whose dependencies have all succeeded
// and marks them enqueued.
func (e *Engine) enqueue(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, wf int64, traceparent string, steps []readyStep) error {
	if len(steps) == 0 {
		return nil
	}
	// The jobs carry the workflow's trace, not the span that enqueues them.
	insertCtx := ctx
	if traceparent != "" {
		sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(),
			propagation.MapCarrier{"traceparent": traceparent}))
		if sc.IsValid() {
			insertCtx = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
	}
	meta := stepMetadata(traceparent)
	params := make([]river.InsertManyParams, len(steps))
	for i, s := range steps {
		k, ok := e.reg.lookup(s.kind)
		if !ok {
			return fmt.Errorf("workflow %d: step kind %q is not defined here", wf, s.kind)
		}
		queue := k.opts.Queue
		if queue == "" {
			queue = e.queue
		}
		deps := make([]int, len(s.deps))
		for j, d := range s.deps {
			deps[j] = int(d)
		}
		opts := &river.InsertOpts{Queue: queue, MaxAttempts: k.opts.MaxAttempts, Metadata: meta, Tags: []string{"workflow"}}
		if s.delayMS > 0 {
			opts.ScheduledAt = time.Now().Add(time.Duration(s.delayMS) * time.Millisecond)
		}
		params[i] = river.InsertManyParams{
			Args:       StepJob{WorkflowID: wf, Step: int(s.idx), Name: s.name, StepKind: s.kind, Args: s.args, Deps: deps, kind: e.StepJobKind()},
			InsertOpts: opts,
		}
	}
	res, err := client.InsertManyTx(insertCtx, tx, params)
	if err != nil {
		return fmt.Errorf("enqueue steps of workflow %d: %w", wf, err)
	}
	idx := make([]int32, len(steps))
	ids := make([]int64, len(steps))
	for i, s := range steps {
		idx[i], ids[i] = s.idx, res[i].Job.ID
	}
	_, err = tx.Exec(ctx, `
		UPDATE workflow_steps s SET state = 'enqueued', job_id = u.job_id, enqueued_at = now()
		FROM unnest($2::integer[], $3::bigint[]) AS u(idx, job_id)
		WHERE s.workflow_id = $1 AND s.idx = u.idx`, wf, idx, ids)
	if err != nil {
		return fmt.Errorf("mark steps enqueued: %w", err)
	}
	return nil
}

// ---- Running a step.

type stepWorker struct {
	river.WorkerDefaults[StepJob]
	e *Engine
}

func (w *stepWorker) Timeout(job *river.Job[StepJob]) time.Duration {
	if k, ok := w.e.reg.lookup(job.Args.StepKind); ok && k.opts.Timeout > 0 {
		return k.opts.Timeout
	}
	return 0
}

// errStale means the step is no longer to run or complete: it finished
// already (a rescued job's first run ended late) or its workflow ended.
var errStale = errors.New("workflow step is no longer enqueued")

func (w *stepWorker) Work(ctx context.Context, job *river.Job[StepJob]) error {
	e := w.e
	k, ok := e.reg.lookup(job.Args.StepKind)
	if !ok {
		// A kind another version defines: leave it to a process that knows it.
		return fmt.Errorf("step kind %q is not defined in this process", job.Args.StepKind)
	}
	var inputs []json.RawMessage
	if len(job.Args.Deps) > 0 {
		var err error
		if inputs, err = e.inputs(ctx, job.Args); err != nil {
			if errors.Is(err, errStale) {
				return river.JobCancel(err)
			}
			return err
		}
	}
	out, err := e.runStep(context.WithValue(ctx, stepInfoKey{}, StepInfo{WorkflowID: job.Args.WorkflowID, Step: job.Args.Step,
		Name: job.Args.Name, Attempt: job.Attempt, MaxAttempts: job.MaxAttempts}), k, job.Args, inputs)
	if err != nil {
		var perm *permanentError
		if !errors.As(err, &perm) && job.Attempt < job.MaxAttempts {
			return err // River retries it
		}
		// The last attempt: the step fails, in a transaction that discards
		// its job. A job timeout has cancelled ctx; the failure is stored anyway.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		ferr := e.failStep(fctx, job.JobRow, job.Args, err.Error(), true)
		if ferr != nil && !errors.Is(ferr, errStale) {
			return fmt.Errorf("%w (and storing the failure: %v)", err, ferr)
		}
		return river.JobCancel(err)
	}
	// The work is done: it is recorded even if the job's context ended
	// meanwhile (a timeout, a hard stop), unless another run of the step
	// has completed it since.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if err := e.completeStep(cctx, completion{client: river.ClientFromContext[pgx.Tx](ctx), job: job, out: out}); err != nil {
		if errors.Is(err, errStale) {
			return river.JobCancel(err)
		}
		return err
	}
	return nil
}

// runStep runs a step's function; a panic is the step's error (its stack
// is logged, not stored: the step's error is shown to the workflow's owner).
func (e *Engine) runStep(ctx context.Context, k *stepKind, a StepJob, inputs []json.RawMessage) (out json.RawMessage, err error) {
	defer func() {
		if r := recover(); r != nil {
			e.log.ErrorContext(ctx, "workflow step panicked", "workflow_id", a.WorkflowID, "step", a.Step,
				"step_kind", a.StepKind, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = fmt.Errorf("step panicked: %v", r)
		}
	}()
	return k.run(ctx, a.Args, inputs)
}

// inputs reads the outputs of a step's dependencies, in order, checking that
// the step is still to run.
func (e *Engine) inputs(ctx context.Context, a StepJob) ([]json.RawMessage, error) {
	var (
		state   string
		wfState string
		outputs []json.RawMessage
	)
	err := e.workPool.QueryRow(ctx, `
		SELECT s.state, w.state,
			ARRAY(SELECT d.output FROM unnest(s.deps) WITH ORDINALITY AS u(dep, ord)
				JOIN workflow_steps d ON d.workflow_id = s.workflow_id AND d.idx = u.dep ORDER BY u.ord)
		FROM workflow_steps s JOIN workflows w ON w.id = s.workflow_id
		WHERE s.workflow_id = $1 AND s.idx = $2`, a.WorkflowID, a.Step).Scan(&state, &wfState, &outputs)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errStale // the workflow was deleted
	}
	if err != nil {
		return nil, fmt.Errorf("read inputs of workflow %d step %d: %w", a.WorkflowID, a.Step, err)
	}
	if state != string(StepEnqueued) || wfState != string(StateRunning) {
		return nil, errStale
	}
	if len(outputs) != len(a.Deps) {
		return nil, fmt.Errorf("workflow %d step %d: %d inputs for %d dependencies", a.WorkflowID, a.Step, len(outputs), len(a.Deps))
	}
	return outputs, nil
}

// finished is a workflow that a transaction ended.
type finished struct {
	kind     string
	state    State
	duration time.Duration
}

// countDown records that n steps ended (failed of them failing) and ends the
// workflow when none is left. It updates the workflow row, so it comes last
// in a transaction (the lock order: steps, then their workflow).
func (e *Engine) countDown(ctx context.Context, tx pgx.Tx, wf int64, n, failed int) (*finished, error) {
	var c countDownRow
	err := tx.QueryRow(ctx, countDownSQL("$2", "$3")+` RETURNING `+countDownReturning, wf, n, failed).
		Scan(&c.left, &c.state, &c.kind, &c.owner, &c.took)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errStale // ended meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("count down workflow %d: %w", wf, err)
	}
	if c.left > 0 {
		return nil, nil
	}
	return e.announce(ctx, tx, wf, c.owner, c.kind, State(c.state), c.took)
}

// countDownSQL updates workflow $1 for n steps ended, failed of them
// failing (SQL expressions), and ends it when none is left.
func countDownSQL(n, failed string) string {
	return `UPDATE workflows SET steps_left = steps_left - ` + n + `, steps_failed = steps_failed + ` + failed + `,
			state = CASE WHEN steps_left - ` + n + ` > 0 THEN state
				WHEN steps_failed + ` + failed + ` > 0 THEN 'failed' ELSE 'succeeded' END,
			finished_at = CASE WHEN steps_left - ` + n + ` > 0 THEN finished_at ELSE now() END,
			error = CASE WHEN steps_left - ` + n + ` = 0 AND steps_failed + ` + failed + ` > 0 AND error IS NULL
				THEN (steps_failed + ` + failed + `)::text || ' step(s) failed' ELSE error END
		WHERE id = $1 AND state = 'running'`
}

const countDownReturning = `steps_left, state, kind, owner_id,
	extract(epoch FROM coalesce(finished_at, now()) - created_at)::float8 AS took`

type countDownRow struct {
	left        int
	state, kind string
	owner       int64
	took        float64
}

// announce tells the waiters and the owner's dashboards that wf ended.
func (e *Engine) announce(ctx context.Context, tx pgx.Tx, wf, owner int64, kind string, state State, took float64) (*finished, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, DoneChannel, strconv.FormatInt(wf, 10)); err != nil {
		return nil, fmt.Errorf("notify end of workflow %d: %w", wf, err)
	}
	err := realtime.Publish(ctx, tx, realtime.Event{Type: EventFinished, OwnerID: owner, Data: map[string]any{
		"workflow_id": wf, "kind": kind, "state": state}})
	if err != nil {
		return nil, err
	}
	return &finished{kind: kind, state: state, duration: time.Duration(took * float64(time.Second))}, nil
}

func (e *Engine) publishStep(ctx context.Context, tx pgx.Tx, owner int64, a StepJob, state StepState) error {
	return realtime.Publish(ctx, tx, realtime.Event{Type: EventStep, OwnerID: owner, Data: map[string]any{
		"workflow_id": a.WorkflowID, "step": a.Step, "name": a.Name, "state": state}})
}

// failStep marks a step failed (its job discarded in the same transaction
// when discardJob: the job is still running) and applies the workflow's
// policy: fail fast cancels every step not ended, continue cancels only the
// steps that depend on this one.
func (e *Engine) failStep(ctx context.Context, row *rivertype.JobRow, a StepJob, msg string, discardJob bool) error {
	if len(msg) > 2000 {
		msg = msg[:2000] + "…"
	}
	var client *river.Client[pgx.Tx]
	if discardJob {
		client = river.ClientFromContext[pgx.Tx](ctx)
	} else {
		client = e.client(ctx)
	}
	var fin *finished
	err := database.InTx(ctx, e.workPool, func(ctx context.Context, tx pgx.Tx) error {
		var (
			owner  int64
			policy string
		)
		attempt := row.Attempt
		err := tx.QueryRow(ctx, `
			UPDATE workflow_steps s SET state = 'failed', error = $3, attempts = $4, finished_at = now()
			FROM workflows w
			WHERE s.workflow_id = $1 AND s.idx = $2 AND s.state = 'enqueued' AND w.id = s.workflow_id AND w.state = 'running'
			RETURNING w.owner_id, w.policy`, a.WorkflowID, a.Step, msg, attempt).Scan(&owner, &policy)
		if errors.Is(err, pgx.ErrNoRows) {
			return errStale
		}
		if err != nil {
			return fmt.Errorf("store failure: %w", err)
		}
		if discardJob {
			if err := discard(ctx, client, tx, row, msg); err != nil {
				return err
			}
		}
		if err := e.publishStep(ctx, tx, owner, a, StepFailed); err != nil {
			return err
		}
		if Policy(policy) == FailFast {
			fin, err = e.endFailed(ctx, client, tx, a.WorkflowID, StateFailed,
				fmt.Sprintf("step %d (%s) failed: %s", a.Step, a.Name, msg), 1)
			return err
		}
		// Continue: what depends on the failed step, directly or not, cannot run.
		var skipped int
		err = tx.QueryRow(ctx, `
			WITH RECURSIVE below(idx) AS (
				SELECT unnest(dependents) FROM workflow_steps WHERE workflow_id = $1 AND idx = $2
				UNION
				SELECT unnest(s.dependents) FROM workflow_steps s JOIN below b ON s.workflow_id = $1 AND s.idx = b.idx),
			locked AS (
				SELECT s.idx FROM workflow_steps s JOIN below b ON s.idx = b.idx
				WHERE s.workflow_id = $1 AND s.state = 'pending' ORDER BY s.idx FOR UPDATE OF s),
			upd AS (
				UPDATE workflow_steps s SET state = 'cancelled', finished_at = now(), error = 'a step it depends on failed'
				FROM locked WHERE s.workflow_id = $1 AND s.idx = locked.idx RETURNING 1)
			SELECT count(*) FROM upd`, a.WorkflowID, a.Step).Scan(&skipped)
		if err != nil {
			return fmt.Errorf("cancel dependents: %w", err)
		}
		fin, err = e.countDown(ctx, tx, a.WorkflowID, 1+skipped, 1)
		return err
	})
	if err != nil {
		return err
	}
	e.metrics.finished(ctx, fin)
	return nil
}

// discard marks a running job discarded in tx, with msg as its last error.
func discard(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, row *rivertype.JobRow, msg string) error {
	now := time.Now().UTC()
	errData, err := json.Marshal(rivertype.AttemptError{At: now, Attempt: row.Attempt, Error: msg})
	if err != nil {
		return err
	}
	_, err = client.Pilot().JobSetStateIfRunningMany(ctx, client.Driver().UnwrapExecutor(tx), &riverdriver.JobSetStateIfRunningManyParams{
		ID:              []int64{row.ID},
		Attempt:         []*int{nil},
		ErrData:         [][]byte{errData},
		FinalizedAt:     []*time.Time{&now},
		MetadataDoMerge: []bool{false},
		MetadataUpdates: [][]byte{nil},
		ScheduledAt:     []*time.Time{nil},
		State:           []rivertype.JobState{rivertype.JobStateDiscarded},
	})
	if err != nil {
		return fmt.Errorf("discard job %d: %w", row.ID, err)
	}
	return nil
}

// end ends a running workflow as state: every step not ended is cancelled
// (their jobs too), then the workflow row (the lock order of countDown). It
// returns errStale if the workflow was not running.
func (e *Engine) end(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, wf int64, state State, why string) (*finished, error) {
	return e.endFailed(ctx, client, tx, wf, state, why, 0)
}

// endFailed is end, counting failed more failed steps (a fail-fast
// failure's own step).
func (e *Engine) endFailed(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, wf int64, state State, why string, failed int) (*finished, error) {
	rows, err := tx.Query(ctx, `
		WITH locked AS (
			SELECT idx FROM workflow_steps WHERE workflow_id = $1 AND state IN ('pending', 'enqueued')
			ORDER BY idx FOR UPDATE)
		UPDATE workflow_steps s SET state = 'cancelled', finished_at = now(),
			error = coalesce(s.error, $2)
		FROM locked WHERE s.workflow_id = $1 AND s.idx = locked.idx
		RETURNING s.job_id`, wf, "workflow "+string(state))
	if err != nil {
		return nil, fmt.Errorf("cancel steps of workflow %d: %w", wf, err)
	}
	jobIDs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*int64, error) {
		var id *int64
		return id, r.Scan(&id)
	})
	if err != nil {
		return nil, fmt.Errorf("cancel steps of workflow %d: %w", wf, err)
	}
	var (
		owner int64
		kind  string
		took  float64
	)
	err = tx.QueryRow(ctx, `
		UPDATE workflows SET state = $2, finished_at = now(), steps_left = 0, error = coalesce(error, $3),
			steps_failed = steps_failed + $4
		WHERE id = $1 AND state = 'running'
		RETURNING owner_id, kind, extract(epoch FROM finished_at - created_at)::float8`,
		wf, string(state), why, failed).Scan(&owner, &kind, &took)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errStale
	}
	if err != nil {
		return nil, fmt.Errorf("end workflow %d: %w", wf, err)
	}
	if client != nil {
		for _, id := range jobIDs {
			if id == nil {
				continue
			}
			// A job waiting is cancelled; a running one is told to stop, and
			// its completion will find its step cancelled.
			if _, err := client.JobCancelTx(ctx, tx, *id); err != nil && !errors.Is(err, river.ErrNotFound) {
				return nil, fmt.Errorf("cancel job %d: %w", *id, err)
			}
		}
	}
	return e.announce(ctx, tx, wf, owner, kind, state, took)
}

// ErrFinished means the workflow had already ended.
var ErrFinished = apperr.Errorf(apperr.Conflict, "the workflow has already ended")

// Cancel ends a running workflow of owner as cancelled. Another owner's
// workflow is not found; one already ended is ErrFinished.
func (e *Engine) Cancel(ctx context.Context, owner, id int64) error {
	fin, err := e.endNow(ctx, owner, id, StateCancelled, "cancelled")
	if err != nil {
		return err
	}
	e.metrics.finished(ctx, fin)
	return nil
}

// endNow ends workflow id (of owner, unless owner is 0) as state.
func (e *Engine) endNow(ctx context.Context, owner, id int64, state State, why string) (*finished, error) {
	var fin *finished
	for attempt := 0; ; attempt++ {
		err := database.InTx(ctx, e.pool, func(ctx context.Context, tx pgx.Tx) error {
			var cur string
			err := tx.QueryRow(ctx, `SELECT state FROM workflows WHERE id = $1 AND engine = $2 AND ($3 = 0 OR owner_id = $3)`,
				id, e.name, owner).Scan(&cur)
			if errors.Is(err, pgx.ErrNoRows) {
				return apperr.Errorf(apperr.NotFound, "no such workflow")
			}
			if err != nil {
				return err
			}
			if cur != string(StateRunning) {
				return ErrFinished
			}
			fin, err = e.end(ctx, e.client(ctx), tx, id, state, why)
			if errors.Is(err, errStale) {
				return ErrFinished
			}
			return err
		})
		var pgErr *pgconn.PgError
		if attempt < 3 && errors.As(err, &pgErr) && (pgErr.Code == pgerrcode.DeadlockDetected || pgErr.Code == pgerrcode.SerializationFailure) {
			continue
		}
		return fin, err
	}
}

type deadlineWorker struct {
	river.WorkerDefaults[deadlineJob]
	e *Engine
}

func (w *deadlineWorker) Work(ctx context.Context, job *river.Job[deadlineJob]) error {
	fin, err := w.e.expire(ctx, job.Args.WorkflowID)
	if err != nil {
		return err
	}
	w.e.metrics.finished(ctx, fin)
	return nil
}

// expire ends wf as timed out if it is still running past its deadline.
func (e *Engine) expire(ctx context.Context, wf int64) (*finished, error) {
	var fin *finished
	err := database.InTx(ctx, e.workPool, func(ctx context.Context, tx pgx.Tx) error {
		var overdue bool
		err := tx.QueryRow(ctx, `SELECT state = 'running' AND deadline <= now() FROM workflows WHERE id = $1`, wf).Scan(&overdue)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil || !overdue {
			return err
		}
		fin, err = e.end(ctx, e.client(ctx), tx, wf, StateTimedOut, "deadline passed")
		if errors.Is(err, errStale) {
			return nil
		}
		return err
	})
	return fin, err
}

type sweepWorker struct {
	river.WorkerDefaults[sweepJob]
	e *Engine
}

func (w *sweepWorker) Work(ctx context.Context, _ *river.Job[sweepJob]) error {
	return w.e.Sweep(ctx)
}

// Sweep ends the workflows past their deadline, fails the steps whose job
// River finalized without the engine hearing of it (a worker killed on the
// last attempt, a job deleted), and deletes the workflows ended more than
// the retention ago. The sweeper job runs it periodically.
func (e *Engine) Sweep(ctx context.Context) error {
	rows, err := e.workPool.Query(ctx, `
		SELECT id FROM workflows WHERE engine = $1 AND state = 'running' AND deadline <= now() ORDER BY id LIMIT 1000`, e.name)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	overdue, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	for _, id := range overdue {
		fin, err := e.expire(ctx, id)
		if err != nil {
			return err
		}
		e.metrics.finished(ctx, fin)
	}

	rows, err = e.workPool.Query(ctx, `
		SELECT s.workflow_id, s.idx, s.name, s.kind, coalesce(j.attempt, 0),
			CASE WHEN j.id IS NULL THEN 'its job is gone' ELSE 'its job was ' || j.state::text END
		FROM workflows w
		JOIN workflow_steps s ON s.workflow_id = w.id AND s.state = 'enqueued'
		LEFT JOIN river_job j ON j.id = s.job_id
		WHERE w.engine = $1 AND w.state = 'running'
			AND (j.id IS NULL OR j.state IN ('discarded', 'cancelled', 'completed'))
		LIMIT 1000`, e.name)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	type lost struct {
		job     StepJob
		attempt int
		why     string
	}
	lostSteps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (lost, error) {
		var l lost
		return l, r.Scan(&l.job.WorkflowID, &l.job.Step, &l.job.Name, &l.job.StepKind, &l.attempt, &l.why)
	})
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	for _, l := range lostSteps {
		err := e.failStep(ctx, &rivertype.JobRow{Attempt: l.attempt}, l.job, l.why, false)
		if err != nil && !errors.Is(err, errStale) {
			return err
		}
		e.log.WarnContext(ctx, "failed a workflow step whose job ended without it", "workflow_id", l.job.WorkflowID,
			"step", l.job.Step, "reason", l.why)
	}

	tag, err := e.workPool.Exec(ctx, `
		DELETE FROM workflows WHERE id IN (
			SELECT id FROM workflows WHERE engine = $1 AND state <> 'running' AND finished_at < now() - make_interval(secs => $2)
			LIMIT 10000)`, e.name, e.keep.Seconds())
	if err != nil {
		return fmt.Errorf("sweep: delete old workflows: %w", err)
	}
	if n := tag.RowsAffected(); n > 0 {
		e.log.DebugContext(ctx, "deleted old workflows", "count", n)
	}
	return nil
}
