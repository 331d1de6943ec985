package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/beaconhq/beacon/internal/monitors"
)

// backlog is a batch of check jobs inserted by the load test, known by its
// tag and its id range (one transaction: the ids are contiguous).
type backlog struct {
	tag            string
	minID, maxID   int64
	n              int
	committedAt    time.Time
	insertDuration time.Duration
}

// insertChunk is how many jobs one InsertMany call carries.
const insertChunk = 1000

// insertBacklog inserts n manual check jobs spread over monitorIDs, as the
// API would (monitors.CheckArgs with its InsertOpts, queue "checks"), plus
// tag. All chunks go in one transaction, so a running worker sees the whole
// backlog at once.
func insertBacklog(ctx context.Context, pool *pgxpool.Pool, monitorIDs []int64, n int, tag string) (backlog, error) {
	b := backlog{tag: tag, n: n}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: quietLogger()})
	if err != nil {
		return b, fmt.Errorf("river insert client: %w", err)
	}
	start := time.Now()
	tx, err := pool.Begin(ctx)
	if err != nil {
		return b, fmt.Errorf("insert backlog: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	for done := 0; done < n; done += insertChunk {
		params := make([]river.InsertManyParams, 0, min(insertChunk, n-done))
		for i := done; i < n && i < done+insertChunk; i++ {
			args := monitors.CheckArgs{MonitorID: monitorIDs[i%len(monitorIDs)], Manual: true}
			opts := args.InsertOpts()
			opts.Tags = []string{tag}
			params = append(params, river.InsertManyParams{Args: args, InsertOpts: &opts})
		}
		res, err := client.InsertManyTx(ctx, tx, params)
		if err != nil {
			return b, fmt.Errorf("insert backlog: %w", err)
		}
		for _, r := range res {
			if b.minID == 0 || r.Job.ID < b.minID {
				b.minID = r.Job.ID
			}
			b.maxID = max(b.maxID, r.Job.ID)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return b, fmt.Errorf("insert backlog: %w", err)
	}
	b.committedAt = time.Now()
	b.insertDuration = b.committedAt.Sub(start)
	return b, nil
}

// quietLogger is River's logger in this process: warnings and errors only.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// waitDrained polls every 50 ms until no job of b is waiting or running
// (available, pending, scheduled, retryable or running), ctx ends, timeout
// passes, or alive reports a dead worker.
func waitDrained(ctx context.Context, pool *pgxpool.Pool, b backlog, timeout time.Duration, alive func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	const every = 50 * time.Millisecond
	tick := time.NewTicker(every)
	defer tick.Stop()
	var left int
	var err error
	for range int(timeout/every) + 2 {
		err = pool.QueryRow(ctx, `
			SELECT count(*) FROM river_job
			WHERE queue = $1 AND id BETWEEN $2 AND $3
			  AND state IN ('available', 'pending', 'scheduled', 'retryable', 'running')`,
			monitors.QueueChecks, b.minID, b.maxID).Scan(&left)
		if err == nil && left == 0 {
			return nil
		}
		if alive != nil {
			if err := alive(); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return ctx.Err()
			}
		case <-tick.C:
			continue
		}
		break
	}
	return fmt.Errorf("backlog %s not drained after %s: %d jobs left (last error: %v)", b.name(), timeout, left, err)
}

// name names the backlog in messages.
func (b backlog) name() string {
	if b.tag == "" {
		return "of submitted checks"
	}
	return b.tag
}

// drainStats is what river_job says of a drained backlog.
type drainStats struct {
	expected, jobs, completed int
	firstAttempt, lastFinal   time.Time
	// run time of each job: finalized_at - attempted_at
	p50, p99, max time.Duration
	results       int     // check_results rows of the backlog's jobs (-1: not checked)
	distinctJobs  int     // distinct job ids among them
	cpu           string  // cores used while draining, for the progress line
	otherCPU      float64 // cores the rest of the machine used meanwhile
}

// rate is jobs per second from the first attempt to the last completion.
func (d drainStats) rate() float64 {
	span := d.lastFinal.Sub(d.firstAttempt)
	if span <= 0 {
		return 0
	}
	return float64(d.jobs) / span.Seconds()
}

// span is the drain time from the first attempt to the last completion.
func (d drainStats) span() time.Duration { return d.lastFinal.Sub(d.firstAttempt) }

// failed counts jobs that did not complete and, when results were checked,
// missing or duplicate results.
func (d drainStats) failed() int {
	n := d.expected - d.completed
	if d.results >= 0 {
		n += abs(d.completed-d.distinctJobs) + (d.results - d.distinctJobs)
	}
	return n
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// measureDrain reads b's jobs (of queue "checks"; with b.tag only, unless
// it is "") back from river_job and, when withResults, counts the
// check_results rows they stored.
func measureDrain(ctx context.Context, pool *pgxpool.Pool, b backlog, withResults bool) (drainStats, error) {
	d := drainStats{expected: b.n}
	var first, last *time.Time
	var pcts []float64
	var maxRun *float64
	err := pool.QueryRow(ctx, `
		SELECT count(*), count(*) FILTER (WHERE state = 'completed'), min(attempted_at), max(finalized_at),
		       percentile_disc(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM finalized_at - attempted_at)),
		       max(extract(epoch FROM finalized_at - attempted_at))::float8
		FROM river_job
		WHERE queue = $4 AND id BETWEEN $1 AND $2 AND ($3 = '' OR $3 = ANY(tags))`,
		b.minID, b.maxID, b.tag, monitors.QueueChecks).Scan(&d.jobs, &d.completed, &first, &last, &pcts, &maxRun)
	if err != nil {
		return d, fmt.Errorf("measure drain of %s: %w", b.tag, err)
	}
	if first != nil && last != nil {
		d.firstAttempt, d.lastFinal = *first, *last
	}
	if len(pcts) == 2 {
		d.p50, d.p99 = seconds(pcts[0]), seconds(pcts[1])
	}
	if maxRun != nil {
		d.max = seconds(*maxRun)
	}
	d.results = -1
	if withResults {
		err := pool.QueryRow(ctx, `
			SELECT count(*), count(DISTINCT r.job_id)
			FROM check_results r JOIN river_job j ON j.id = r.job_id
			WHERE r.job_id BETWEEN $1 AND $2 AND ($3 = '' OR $3 = ANY(j.tags))`,
			b.minID, b.maxID, b.tag).Scan(&d.results, &d.distinctJobs)
		if err != nil {
			return d, fmt.Errorf("count results of %s: %w", b.tag, err)
		}
	}
	return d, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// noopWorker works check jobs by doing nothing: the raw River baseline.
type noopWorker struct {
	river.WorkerDefaults[monitors.CheckArgs]
}

// Work implements river.Worker.
func (noopWorker) Work(context.Context, *river.Job[monitors.CheckArgs]) error { return nil }

// rawRiverDrain inserts n check jobs into a fresh database, then starts a
// River client with a no-op worker and Beacon's fetch settings (same
// FetchCooldown, FetchPollInterval, MaxWorkers on queue "checks", and a pool
// the size of the workers' pool) and times the drain.
func (r *runner) rawRiverDrain(ctx context.Context, dbURL string, monitorIDs []int64) (drainStats, error) {
	pool, err := openPool(ctx, dbURL, r.cfg.DBWorkerMaxConns)
	if err != nil {
		return drainStats{}, err
	}
	defer pool.Close()
	if err := migrateDB(ctx, pool); err != nil {
		return drainStats{}, err
	}
	b, err := insertBacklog(ctx, pool, monitorIDs, r.opts.backlog, "lt_raw")
	if err != nil {
		return drainStats{}, err
	}
	meter := &cpuMeter{pgDir: r.pgDir()}
	workers := river.NewWorkers()
	river.AddWorker(workers, &noopWorker{})
	client, err := river.NewClient[pgx.Tx](riverpgxv5.New(pool), &river.Config{
		FetchCooldown:     r.cfg.JobFetchCooldown,
		FetchPollInterval: r.cfg.JobFetchPollInterval,
		Queues:            map[string]river.QueueConfig{monitors.QueueChecks: {MaxWorkers: r.cfg.WorkerConcurrency}},
		Workers:           workers,
		Logger:            quietLogger(),
	})
	if err != nil {
		return drainStats{}, fmt.Errorf("raw river client: %w", err)
	}
	// The client's own context: cancelling it would hard-stop it; Stop ends it.
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	meter.start()
	if err := client.Start(runCtx); err != nil {
		return drainStats{}, fmt.Errorf("start raw river client: %w", err)
	}
	drainErr := waitDrained(ctx, pool, b, r.opts.drainMax, nil)
	cores, cpu := meter.read()
	stopCtx, cancelStop := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancelStop()
	if err := client.Stop(stopCtx); err != nil && drainErr == nil {
		drainErr = fmt.Errorf("stop raw river client: %w", err)
	}
	if drainErr != nil {
		return drainStats{}, drainErr
	}
	d, err := measureDrain(ctx, pool, b, false)
	d.cpu, d.otherCPU = cpu, cores["other"]
	return d, err
}
