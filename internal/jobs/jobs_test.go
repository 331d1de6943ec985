package jobs_test

import (
	"context"
	"log/slog"
	"strconv"
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

type doneArgs struct{}

func (doneArgs) Kind() string { return "done" }

type doneWorker struct {
	river.WorkerDefaults[doneArgs]
}

func (doneWorker) Work(context.Context, *river.Job[doneArgs]) error { return nil }

// A job inserted with Awaited metadata announces its end on DoneChannel,
// whoever completes it; other jobs stay silent. The first notification must
// be the awaited job's, although the plain job finished first.
func TestAwaitedJobsAnnounceTheirEnd(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "LISTEN "+jobs.DoneChannel)
	require.NoError(t, err)

	workers := river.NewWorkers()
	river.AddWorker(workers, doneWorker{})
	client, err := jobs.NewClient(pool, jobs.Options{Workers: workers, Work: true,
		Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}}})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	defer func() { _ = jobs.Stop(context.WithoutCancel(ctx), client, time.Second) }()

	plain, err := client.Insert(ctx, doneArgs{}, nil)
	require.NoError(t, err)
	row, err := jobs.Wait(ctx, client, plain.Job.ID, 30*time.Second)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, row.State)

	awaited, err := client.Insert(ctx, doneArgs{}, &river.InsertOpts{Metadata: jobs.Awaited})
	require.NoError(t, err)
	n, err := conn.Conn().WaitForNotification(ctx)
	require.NoError(t, err)
	require.Equal(t, strconv.FormatInt(awaited.Job.ID, 10), n.Payload)
}

// A running Waiter returns the finished job's row; one whose job does not
// end in time returns its latest row.
func TestWaiter(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	workers := river.NewWorkers()
	river.AddWorker(workers, doneWorker{})
	block := &blockWorker{started: make(chan struct{}, 1), release: make(chan struct{})}
	river.AddWorker(workers, block)
	client, err := jobs.NewClient(pool, jobs.Options{Workers: workers, Work: true,
		Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}}})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	defer func() {
		close(block.release)
		_ = jobs.Stop(context.WithoutCancel(ctx), client, time.Second)
	}()

	w := jobs.NewWaiter(client, pool, nil)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	defer func() { stop(); require.NoError(t, <-done) }()

	res, err := client.Insert(ctx, doneArgs{}, &river.InsertOpts{Metadata: jobs.Awaited})
	require.NoError(t, err)
	row, err := w.Wait(ctx, res.Job.ID, 30*time.Second)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, row.State)

	blocked, err := client.Insert(ctx, blockArgs{}, &river.InsertOpts{Metadata: jobs.Awaited})
	require.NoError(t, err)
	row, err = w.Wait(ctx, blocked.Job.ID, 200*time.Millisecond)
	require.NoError(t, err)
	require.False(t, jobs.Finalized(row.State), "still %s", row.State)
}
