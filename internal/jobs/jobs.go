// Package jobs builds Beacon's River client: one queue for every role, with
// workers only where the role works jobs.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
)

// Options configure the client.
type Options struct {
	Workers *river.Workers
	// Work makes the client work jobs; otherwise it only inserts them (the
	// API role) and PeriodicJobs are ignored.
	Work         bool
	Queues       map[string]river.QueueConfig
	PeriodicJobs []*river.PeriodicJob
	Logger       *slog.Logger
	// RescueAfter is how long a job may stay running before River assumes
	// its worker died and makes it available again.
	RescueAfter time.Duration
	// FetchCooldown is the least time between two fetches of a queue by a
	// working client (and between two of its insert notifications).
	FetchCooldown time.Duration
	// FetchPollInterval bounds the wait for a job whose insert sent no
	// notification (River's default: 1 s).
	FetchPollInterval time.Duration
	// ID names the client in River's tables (leader election); default: River's.
	ID string
	// Plugins are River middleware and hooks, such as Middleware's telemetry.
	Plugins []rivertype.Plugin
}

// NewClient returns a River client on pool.
func NewClient(pool *pgxpool.Pool, o Options) (*river.Client[pgx.Tx], error) {
	cfg := &river.Config{
		Workers:              o.Workers,
		Logger:               o.Logger,
		RescueStuckJobsAfter: o.RescueAfter,
		FetchCooldown:        o.FetchCooldown,
		FetchPollInterval:    o.FetchPollInterval,
		ID:                   o.ID,
		Plugins:              o.Plugins,
	}
	if o.Work {
		cfg.Queues = o.Queues
		cfg.PeriodicJobs = o.PeriodicJobs
	} else {
		// An insert-only client fetches nothing: its cooldown only spaces
		// the insert notifications that wake workers. A job inserted within
		// it sends none and waits for a worker's poll, so keep it at River's
		// least, where a caller waiting on its job is rarely left to the poll.
		cfg.FetchCooldown = river.FetchCooldownMin
	}
	client, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return client, nil
}

// Stop stops a working client gracefully: running jobs get until ctx's
// deadline to finish (soft stop); then their contexts are cancelled and River
// waits briefly for them to return (hard stop). Cancelled jobs are retried
// later, so none is lost.
func Stop(ctx context.Context, client *river.Client[pgx.Tx], hardGrace time.Duration) error {
	err := client.Stop(ctx)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return err
	}
	hardCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hardGrace)
	defer cancel()
	return client.StopAndCancel(hardCtx)
}

// ErrJobNotFound means no job has the id.
var ErrJobNotFound = errors.New("job not found")

// Get returns a job row.
func Get(ctx context.Context, client *river.Client[pgx.Tx], id int64) (*rivertype.JobRow, error) {
	job, err := client.JobGet(ctx, id)
	if errors.Is(err, river.ErrNotFound) {
		return nil, ErrJobNotFound
	}
	return job, err
}

// Finalized reports whether a job reached a state it will not leave.
func Finalized(s rivertype.JobState) bool {
	switch s {
	case rivertype.JobStateCompleted, rivertype.JobStateCancelled, rivertype.JobStateDiscarded:
		return true
	}
	return false
}

// Wait polls a job until it is finalized or maxWait has passed, and returns
// its last row. Polling (backing off to 200 ms) works whichever process
// works the job; a serving process uses a running Waiter instead.
func Wait(ctx context.Context, client *river.Client[pgx.Tx], id int64, maxWait time.Duration) (*rivertype.JobRow, error) {
	return NewWaiter(client, nil, nil).Wait(ctx, id, maxWait)
}

// Completion is a running job to mark completed, and the output it records
// (as river.RecordOutput would; nil for none).
type Completion struct {
	ID     int64
	Output any
}

// ErrNotRunning means a job to complete was no longer running (cancelled,
// rescued or already completed); nothing was completed.
var ErrNotRunning = errors.New("job is no longer running")

// CompleteManyTx marks running jobs completed in tx, as river.JobCompleteTx
// does for one job, in one statement: work that stores its effects and
// completes its jobs in one transaction can do it for many jobs at once. If
// any job is no longer running it returns ErrNotRunning, and the caller
// should roll tx back.
func CompleteManyTx(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, done []Completion) error {
	now := time.Now().UTC()
	p := &riverdriver.JobSetStateIfRunningManyParams{
		ID:              make([]int64, len(done)),
		Attempt:         make([]*int, len(done)),
		ErrData:         make([][]byte, len(done)),
		FinalizedAt:     make([]*time.Time, len(done)),
		MetadataDoMerge: make([]bool, len(done)),
		MetadataUpdates: make([][]byte, len(done)),
		ScheduledAt:     make([]*time.Time, len(done)),
		State:           make([]rivertype.JobState, len(done)),
	}
	for i, c := range done {
		p.ID[i], p.FinalizedAt[i], p.State[i] = c.ID, &now, rivertype.JobStateCompleted
		if c.Output != nil {
			out, err := json.Marshal(map[string]any{rivertype.MetadataKeyOutput: c.Output})
			if err != nil {
				return fmt.Errorf("job %d output: %w", c.ID, err)
			}
			p.MetadataDoMerge[i], p.MetadataUpdates[i] = true, out
		}
	}
	rows, err := client.Pilot().JobSetStateIfRunningMany(ctx, client.Driver().UnwrapExecutor(tx), p)
	if err != nil {
		return fmt.Errorf("complete %d jobs: %w", len(done), err)
	}
	if len(rows) != len(done) {
		return ErrNotRunning
	}
	for _, r := range rows {
		if r.State != rivertype.JobStateCompleted {
			return ErrNotRunning
		}
	}
	return nil
}
