package monitors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.opentelemetry.io/otel/trace"

	"github.com/beaconhq/beacon/internal/database"
)

// Queues used by this domain. Checks get their own queue so a slow target
// never delays the scheduler or maintenance.
const (
	QueueChecks = "checks"
)

// CheckArgs asks for one check of a monitor. Scheduled checks carry their
// slot, which makes them unique: a slot is never checked twice.
type CheckArgs struct {
	MonitorID int64      `json:"monitor_id"`
	Slot      *time.Time `json:"slot,omitempty"`
	Manual    bool       `json:"manual,omitempty"`
}

// Kind implements river.JobArgs.
func (CheckArgs) Kind() string { return "check" }

// InsertOpts implements river.JobArgsWithInsertOpts. Only infrastructure
// errors reach River (a failing target is a result), so a few attempts do.
func (a CheckArgs) InsertOpts() river.InsertOpts {
	opts := river.InsertOpts{Queue: QueueChecks, MaxAttempts: 3}
	if a.Slot != nil {
		opts.UniqueOpts = river.UniqueOpts{ByArgs: true}
	}
	return opts
}

// CheckOutput is what a check job records as its output.
type CheckOutput struct {
	ResultID int64  `json:"result_id,omitempty"`
	OK       bool   `json:"ok"`
	Skipped  string `json:"skipped,omitempty"`
}

// CheckWorker runs checks and stores their results. Make it with AddWorkers,
// which sets up the groups its checks share their queries in.
type CheckWorker struct {
	river.WorkerDefaults[CheckArgs]
	Store   *Store
	Checker *Checker
	Metrics *Metrics     // may be nil
	Log     *slog.Logger // may be nil
	lookups *database.Group[int64, found]
	results *database.Group[finished, int64]
}

// checkJobTimeout bounds a check job: the longest allowed check plus room to store it.
const checkJobTimeout = MaxTimeout + 15*time.Second

// LongestJobTimeout is the longest any job of this domain may run (River's
// default, one minute, for those that set none). River must not take a job
// running for less than this for a dead worker's (RescueStuckJobsAfter).
const LongestJobTimeout = checkJobTimeout

// Timeout implements river.Worker.
func (w *CheckWorker) Timeout(*river.Job[CheckArgs]) time.Duration { return checkJobTimeout }

// Work implements river.Worker.
func (w *CheckWorker) Work(ctx context.Context, job *river.Job[CheckArgs]) error {
	f, err := w.lookups.Do(ctx, job.Args.MonitorID)
	if err != nil {
		return err
	}
	if !f.ok {
		return river.JobCancel(fmt.Errorf("monitor %d no longer exists", job.Args.MonitorID))
	}
	m := f.m
	if !m.Enabled && !job.Args.Manual {
		return river.RecordOutput(ctx, CheckOutput{Skipped: "monitor disabled"})
	}

	res := w.Checker.Check(ctx, m)
	// Stopped (shutdown, job timeout) while checking: the check says nothing
	// about the target, so leave the job to be retried rather than store it.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("check of monitor %d interrupted: %w", m.ID, err)
	}
	res.JobID = &job.ID

	// The result is stored in the transaction that completes the job,
	// shared with the checks that finish at the same time.
	client := river.ClientFromContext[pgx.Tx](ctx)
	if res.ID, err = w.results.Do(ctx, finished{client: client, job: job, res: res,
		span: trace.SpanContextFromContext(ctx)}); err != nil {
		if errors.Is(err, ErrMonitorGone) {
			return river.JobCancel(err) // deleted while checked: a retry would fail the same way
		}
		return err
	}
	w.Metrics.RecordCheck(ctx, m.Method, res)
	if to := stateOf(res); w.Log != nil && to != m.State {
		// Info, in the job's span: at the default level a trace of a flip
		// has its log line, and a flip is rare enough to log every time.
		w.Log.InfoContext(ctx, "monitor state changed", "monitor_id", m.ID, "from", string(m.State), "to", string(to),
			"status_code", res.StatusCode, "error_kind", res.ErrorKind)
	}
	if w.Log != nil {
		// Debug: one line per check is too many at info for thousands of monitors.
		w.Log.DebugContext(ctx, "check stored", "monitor_id", m.ID, "ok", res.OK,
			"status_code", res.StatusCode, "error_kind", res.ErrorKind, "duration_ms", res.DurationMS)
	}
	return nil
}

// stateOf is the state a result puts its monitor in.
func stateOf(r Result) State {
	if r.OK {
		return StateUp
	}
	return StateDown
}

// ScheduleArgs asks the scheduler to enqueue every due check.
type ScheduleArgs struct{}

// Kind implements river.JobArgs.
func (ScheduleArgs) Kind() string { return "schedule_checks" }

// InsertOpts implements river.JobArgsWithInsertOpts: while one scheduler job
// is pending or running, ticks add none, so a slow tick never piles up.
func (ScheduleArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		MaxAttempts: 1,
		UniqueOpts: river.UniqueOpts{ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
			rivertype.JobStateRetryable, rivertype.JobStateScheduled,
		}},
	}
}

// ScheduleWorker enqueues due checks in batches.
type ScheduleWorker struct {
	river.WorkerDefaults[ScheduleArgs]
	Store *Store
	Batch int
	Log   *slog.Logger
}

// Work implements river.Worker.
func (w *ScheduleWorker) Work(ctx context.Context, _ *river.Job[ScheduleArgs]) error {
	client := river.ClientFromContext[pgx.Tx](ctx)
	n, err := EnqueueDue(ctx, w.Store, client, w.Batch)
	if n > 0 {
		w.Log.DebugContext(ctx, "enqueued checks", "count", n)
	}
	return err
}

// maxBatchesPerRun bounds one scheduler run; what is left waits for the next tick.
const maxBatchesPerRun = 100

// EnqueueDue claims due monitors and inserts their check jobs, batch at a
// time, each batch in one transaction with the claim: a slot is enqueued
// exactly when it is claimed. It returns the number of checks enqueued.
func EnqueueDue(ctx context.Context, store *Store, client *river.Client[pgx.Tx], batch int) (int, error) {
	total := 0
	for range maxBatchesPerRun {
		n, err := enqueueBatch(ctx, store, client, batch)
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
	return total, nil
}

func enqueueBatch(ctx context.Context, store *Store, client *river.Client[pgx.Tx], batch int) (int, error) {
	var n int
	err := database.InTx(ctx, store.pool, func(ctx context.Context, tx pgx.Tx) error {
		due, err := store.ClaimDue(ctx, tx, batch)
		if err != nil || len(due) == 0 {
			return err
		}
		params := make([]river.InsertManyParams, len(due))
		for i, d := range due {
			slot := d.Slot.UTC()
			args := CheckArgs{MonitorID: d.MonitorID, Slot: &slot}
			opts := args.InsertOpts()
			params[i] = river.InsertManyParams{Args: args, InsertOpts: &opts}
		}
		if _, err := client.InsertManyTx(ctx, tx, params); err != nil {
			return err
		}
		n = len(due)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("enqueue due checks: %w", err)
	}
	return n, nil
}

// PruneArgs asks for the partitions of the coming days to be created and
// those past the retention period to be dropped.
type PruneArgs struct{}

// Kind implements river.JobArgs.
func (PruneArgs) Kind() string { return "prune_results" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (PruneArgs) InsertOpts() river.InsertOpts {
	return ScheduleArgs{}.InsertOpts()
}

// PruneWorker keeps the partitions of results and rollups: it creates those
// of the next PartitionsAhead, and drops whole partitions once entirely
// older than Retention (hourly and daily rollups: HourlyRollupRetention, if
// longer).
// A drop is quick whatever the number of rows: no DELETE, nothing to vacuum.
type PruneWorker struct {
	river.WorkerDefaults[PruneArgs]
	Store     *Store
	Retention time.Duration
	Log       *slog.Logger
}

// Timeout implements river.Worker.
func (w *PruneWorker) Timeout(*river.Job[PruneArgs]) time.Duration { return time.Minute }

// Work implements river.Worker.
func (w *PruneWorker) Work(ctx context.Context, _ *river.Job[PruneArgs]) error {
	now := w.Store.now()
	created, err := w.Store.EnsurePartitions(ctx, now.Add(-day), now.Add(PartitionsAhead))
	if err != nil {
		return err
	}
	if created > 0 {
		w.Log.InfoContext(ctx, "created result partitions", "count", created)
	}
	rollups := now.Add(-max(w.Retention, HourlyRollupRetention))
	dropped, err := w.Store.PruneResults(ctx, now.Add(-w.Retention), rollups)
	for _, p := range dropped {
		w.Log.InfoContext(ctx, "dropped result partition", "table", p.Table, "partition", p.Name,
			"until", p.Upper, "retention", w.Retention.String())
	}
	return err
}

// Deps are what this domain's workers need.
type Deps struct {
	Store             *Store
	Checker           *Checker
	Metrics           *Metrics // may be nil
	Log               *slog.Logger
	SchedulerInterval time.Duration
	SchedulerBatch    int
	Retention         time.Duration
	// OnStateChange, if set, is told of every state change in the
	// transaction that stores it (StateHook).
	OnStateChange StateHook
}

// newCheckWorker builds the check worker with its groups.
func newCheckWorker(d Deps) *CheckWorker {
	return &CheckWorker{Store: d.Store, Checker: d.Checker, Metrics: d.Metrics, Log: d.Log,
		lookups: newLookupGroup(d.Store), results: newResultGroup(d.Store, d.OnStateChange)}
}

// AddWorkers registers this domain's workers.
func AddWorkers(workers *river.Workers, d Deps) {
	river.AddWorker(workers, newCheckWorker(d))
	river.AddWorker(workers, &ScheduleWorker{Store: d.Store, Batch: d.SchedulerBatch, Log: d.Log})
	river.AddWorker(workers, &PruneWorker{Store: d.Store, Retention: d.Retention, Log: d.Log})
}

// PeriodicJobs returns this domain's periodic jobs. River runs them on the
// elected leader only, so several worker replicas schedule each tick once.
func PeriodicJobs(d Deps) []*river.PeriodicJob {
	return []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(d.SchedulerInterval),
			func() (river.JobArgs, *river.InsertOpts) { return ScheduleArgs{}, nil },
			&river.PeriodicJobOpts{ID: "schedule_checks", RunOnStart: true}),
		river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
			func() (river.JobArgs, *river.InsertOpts) { return PruneArgs{}, nil },
			&river.PeriodicJobOpts{ID: "prune_results", RunOnStart: true}),
	}
}
