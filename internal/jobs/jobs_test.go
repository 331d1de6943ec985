package jobs_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/jobs"
	"github.com/beaconhq/beacon/internal/pgtest"
)

type blockArgs struct{}

func (blockArgs) Kind() string { return "block" }

// blockWorker blocks until released or its context is cancelled, as a check
// against a slow target does.
type blockWorker struct {
	river.WorkerDefaults[blockArgs]
	started chan struct{}
	release chan struct{}
	done    atomic.Int32
}

func (w *blockWorker) Work(ctx context.Context, _ *river.Job[blockArgs]) error {
	select {
	case w.started <- struct{}{}:
	default:
	}
	select {
	case <-w.release:
		w.done.Add(1)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A job running when the worker is stopped is not lost: the hard stop
// cancels it, River records the attempt, and another worker finishes it.
func TestStopDoesNotLoseRunningJob(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)

	w := &blockWorker{started: make(chan struct{}, 1), release: make(chan struct{})}
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	opts := jobs.Options{Workers: workers, Work: true, Logger: log,
		Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}}}

	first, err := jobs.NewClient(pool, opts)
	require.NoError(t, err)
	require.NoError(t, first.Start(ctx))
	res, err := first.Insert(ctx, blockArgs{}, &river.InsertOpts{MaxAttempts: 5})
	require.NoError(t, err)
	select {
	case <-w.started:
	case <-time.After(10 * time.Second):
		t.Fatal("job never started")
	}

	stopCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	require.NoError(t, jobs.Stop(stopCtx, first, 5*time.Second))

	row, err := jobs.Get(ctx, first, res.Job.ID)
	require.NoError(t, err)
	// River schedules the retry; with a short backoff it is available at once.
	require.Contains(t, []rivertype.JobState{rivertype.JobStateRetryable, rivertype.JobStateAvailable}, row.State,
		"an interrupted job is queued again, not completed or discarded")
	require.Nil(t, row.FinalizedAt)
	require.Zero(t, w.done.Load(), "the job did not run to its end")

	// Another worker (a restarted replica) completes it.
	close(w.release)
	second, err := jobs.NewClient(pool, opts)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "UPDATE river_job SET scheduled_at = now() WHERE id = $1", res.Job.ID) // skip the backoff
	require.NoError(t, err)
	require.NoError(t, second.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = jobs.Stop(ctx, second, time.Second)
	})
	row, err = jobs.Wait(ctx, second, res.Job.ID, 20*time.Second)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, row.State)
	require.EqualValues(t, 1, w.done.Load())
}

// A soft stop lets a running job finish.
func TestStopWaitsForJobsWithinTimeout(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	w := &blockWorker{started: make(chan struct{}, 1), release: make(chan struct{})}
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	client, err := jobs.NewClient(pool, jobs.Options{Workers: workers, Work: true, Logger: slog.New(slog.DiscardHandler),
		Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}}})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	res, err := client.Insert(ctx, blockArgs{}, nil)
	require.NoError(t, err)
	<-w.started
	go func() { time.Sleep(100 * time.Millisecond); close(w.release) }()

	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, jobs.Stop(stopCtx, client, time.Second))
	row, err := jobs.Get(ctx, client, res.Job.ID)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, row.State)
}

func TestWaitAndGet(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	workers := river.NewWorkers()
	river.AddWorker(workers, &blockWorker{})
	client, err := jobs.NewClient(pool, jobs.Options{Workers: workers}) // insert-only
	require.NoError(t, err)
	_, err = jobs.Get(ctx, client, 12345)
	require.ErrorIs(t, err, jobs.ErrJobNotFound)

	res, err := client.Insert(ctx, blockArgs{}, nil)
	require.NoError(t, err)
	start := time.Now()
	row, err := jobs.Wait(ctx, client, res.Job.ID, 300*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateAvailable, row.State, "nothing works it: still available when wait ends")
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	require.False(t, jobs.Finalized(row.State))
	require.True(t, jobs.Finalized(rivertype.JobStateCompleted))
}
