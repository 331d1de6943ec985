package monitors_test

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/jobs"
	"github.com/beaconhq/beacon/internal/monitors"
	"github.com/beaconhq/beacon/internal/pgtest"
)

func deps(store *monitors.Store) monitors.Deps {
	return monitors.Deps{
		Store:          store,
		Checker:        loopbackClient(),
		Log:            discardLogger(),
		SchedulerBatch: 50,
		Retention:      24 * time.Hour,
	}
}

// insertOnlyClient is a client as the API role has: it inserts, never works.
func insertOnlyClient(t *testing.T, pool *pgxpool.Pool, store *monitors.Store) *river.Client[pgx.Tx] {
	t.Helper()
	workers := river.NewWorkers()
	monitors.AddWorkers(workers, deps(store))
	client, err := jobs.NewClient(pool, jobs.Options{Workers: workers, Logger: discardLogger()})
	require.NoError(t, err)
	return client
}

// startWorkingClient starts a client that works this domain's jobs (but
// runs no periodic job) and stops it when the test ends.
func startWorkingClient(t *testing.T, b *testBundle) *river.Client[pgx.Tx] {
	t.Helper()
	workers := river.NewWorkers()
	monitors.AddWorkers(workers, deps(b.store))
	client, err := jobs.NewClient(b.pool, jobs.Options{
		Workers: workers,
		Work:    true,
		Queues: map[string]river.QueueConfig{
			river.QueueDefault:   {MaxWorkers: 2},
			monitors.QueueChecks: {MaxWorkers: 5},
		},
		Logger: discardLogger(),
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, jobs.Stop(ctx, client, 5*time.Second))
	})
	return client
}

// waitFinalized waits for a job to reach a final state and returns it.
func waitFinalized(t *testing.T, client *river.Client[pgx.Tx], id int64) *rivertype.JobRow {
	t.Helper()
	job, err := jobs.Wait(context.Background(), client, id, 20*time.Second)
	require.NoError(t, err)
	require.True(t, jobs.Finalized(job.State), "job %d still %s", id, job.State)
	return job
}

func checkOutput(t *testing.T, job *rivertype.JobRow) monitors.CheckOutput {
	t.Helper()
	raw := job.Output()
	require.NotEmpty(t, raw, "job %d recorded no output (metadata %s)", job.ID, job.Metadata)
	var out monitors.CheckOutput
	require.NoError(t, json.Unmarshal(raw, &out))
	return out
}

func TestCheckWorker(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := startWorkingClient(t, b)
	ctx := context.Background()

	monitorOf := func(t *testing.T, url string, enabled bool) monitors.Monitor {
		t.Helper()
		spec := validSpec("target")
		spec.URL, spec.Enabled = url, enabled
		return mustCreate(t, b, spec)
	}
	resultsOfJob := func(t *testing.T, jobID int64) int {
		t.Helper()
		return countRows(t, b.pool, `SELECT count(*) FROM check_results WHERE job_id = $1`, jobID)
	}

	t.Run("Up", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(t, statusHandler(http.StatusOK))
		m := monitorOf(t, tg.URL+"/health", true)

		// The way the API asks for a check.
		svc := monitors.NewService(b.store, client)
		jobID, err := svc.RunCheck(ctx, b.owner, m.ID)
		require.NoError(t, err)

		job := waitFinalized(t, client, jobID)
		require.Equal(t, rivertype.JobStateCompleted, job.State)
		require.Equal(t, monitors.QueueChecks, job.Queue)
		require.Equal(t, 1, job.Attempt)
		require.Empty(t, job.Errors)

		out := checkOutput(t, job)
		require.True(t, out.OK)
		require.Empty(t, out.Skipped)
		require.Equal(t, 1, resultsOfJob(t, jobID))
		res, err := b.svc.CheckResult(ctx, jobID)
		require.NoError(t, err)
		require.Equal(t, out.ResultID, res.ID)
		require.Equal(t, m.ID, res.MonitorID)
		require.True(t, res.OK)
		require.Equal(t, http.StatusOK, *res.StatusCode)

		got := mustGet(t, b, m.ID)
		require.Equal(t, monitors.StateUp, got.State)
		require.NotNil(t, got.LastCheckedAt)
		requireSameTime(t, res.CheckedAt, *got.LastCheckedAt)
		require.Equal(t, int32(1), tg.hits.Load())
	})

	t.Run("Down", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(t, statusHandler(http.StatusInternalServerError))
		m := monitorOf(t, tg.URL+"/health", true)

		ins, err := client.Insert(ctx, monitors.CheckArgs{MonitorID: m.ID, Manual: true}, nil)
		require.NoError(t, err)

		// A failing target is a result, not a job error: nothing to retry.
		job := waitFinalized(t, client, ins.Job.ID)
		require.Equal(t, rivertype.JobStateCompleted, job.State)
		require.Equal(t, 1, job.Attempt)
		require.Empty(t, job.Errors)

		out := checkOutput(t, job)
		require.False(t, out.OK)
		require.NotZero(t, out.ResultID)
		res, err := b.svc.CheckResult(ctx, job.ID)
		require.NoError(t, err)
		require.Equal(t, out.ResultID, res.ID)
		require.Equal(t, "status", res.ErrorKind)
		require.Equal(t, http.StatusInternalServerError, *res.StatusCode)
		require.Equal(t, monitors.StateDown, mustGet(t, b, m.ID).State)
	})

	t.Run("DeletedMonitor", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(t, statusHandler(http.StatusOK))
		m := monitorOf(t, tg.URL+"/health", true)
		require.NoError(t, b.svc.Delete(ctx, b.owner, m.ID))

		ins, err := client.Insert(ctx, monitors.CheckArgs{MonitorID: m.ID, Manual: true}, nil)
		require.NoError(t, err)

		job := waitFinalized(t, client, ins.Job.ID)
		require.Equal(t, rivertype.JobStateCancelled, job.State)
		require.Equal(t, 1, job.Attempt, "a vanished monitor is not retried")
		require.Zero(t, resultsOfJob(t, job.ID))
		require.Zero(t, tg.hits.Load())
	})

	// Deleted while its check runs: the result has nowhere to go, and a
	// retry would fail the same way, so the job is cancelled at once.
	t.Run("DeletedWhileChecking", func(t *testing.T) {
		t.Parallel()
		deleted := make(chan error, 1)
		var id atomic.Int64
		tg := newTarget(t, func(w http.ResponseWriter, _ *http.Request) {
			deleted <- b.svc.Delete(ctx, b.owner, id.Load())
			w.WriteHeader(http.StatusOK)
		})
		m := monitorOf(t, tg.URL+"/health", true)
		id.Store(m.ID)
		ins, err := client.Insert(ctx, monitors.CheckArgs{MonitorID: m.ID, Manual: true}, nil)
		require.NoError(t, err)

		job := waitFinalized(t, client, ins.Job.ID)
		require.NoError(t, <-deleted)
		require.Equal(t, rivertype.JobStateCancelled, job.State)
		require.Equal(t, 1, job.Attempt, "not retried")
		require.Zero(t, resultsOfJob(t, job.ID))
	})

	t.Run("DisabledScheduled", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(t, statusHandler(http.StatusOK))
		m := monitorOf(t, tg.URL+"/health", false)
		slot := t0
		ins, err := client.Insert(ctx, monitors.CheckArgs{MonitorID: m.ID, Slot: &slot}, nil)
		require.NoError(t, err)

		job := waitFinalized(t, client, ins.Job.ID)
		require.Equal(t, rivertype.JobStateCompleted, job.State)
		out := checkOutput(t, job)
		require.Equal(t, "monitor disabled", out.Skipped)
		require.Zero(t, out.ResultID)
		require.Zero(t, resultsOfJob(t, job.ID))
		require.Zero(t, tg.hits.Load())
		require.Equal(t, monitors.StateUnknown, mustGet(t, b, m.ID).State)
	})

	// Asked for by a user: a disabled monitor is still checked.
	t.Run("DisabledManual", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(t, statusHandler(http.StatusOK))
		m := monitorOf(t, tg.URL+"/health", false)
		ins, err := client.Insert(ctx, monitors.CheckArgs{MonitorID: m.ID, Manual: true}, nil)
		require.NoError(t, err)

		job := waitFinalized(t, client, ins.Job.ID)
		require.Equal(t, rivertype.JobStateCompleted, job.State)
		require.True(t, checkOutput(t, job).OK)
		require.Equal(t, 1, resultsOfJob(t, job.ID))
		require.Equal(t, int32(1), tg.hits.Load())
	})
}

func TestRunCheckNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	svc := monitors.NewService(b.store, insertOnlyClient(t, b.pool, b.store))

	_, err := svc.RunCheck(context.Background(), b.owner, 12345)
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
	require.Zero(t, countRows(t, b.pool, `SELECT count(*) FROM river_job`))
}

func TestScheduleWorker(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := startWorkingClient(t, b)
	ctx := context.Background()

	tg := newTarget(t, statusHandler(http.StatusOK))
	var ids []int64
	for range 3 {
		spec := validSpec("target")
		spec.URL = tg.URL + "/health"
		ids = append(ids, mustCreate(t, b, spec).ID)
	}
	off := validSpec("disabled")
	off.Enabled = false
	mustCreate(t, b, off)

	ins, err := client.Insert(ctx, monitors.ScheduleArgs{}, nil)
	require.NoError(t, err)
	job := waitFinalized(t, client, ins.Job.ID)
	require.Equal(t, rivertype.JobStateCompleted, job.State)

	// Each due monitor got one check for its slot, and the checks ran.
	require.Equal(t, 3, countRows(t, b.pool, `SELECT count(*) FROM river_job WHERE kind = 'check'`))
	require.Eventually(t, func() bool {
		return countRows(t, b.pool, `SELECT count(*) FROM river_job WHERE kind = 'check' AND state = 'completed'`) == 3
	}, 20*time.Second, 20*time.Millisecond)
	for _, id := range ids {
		require.Equal(t, monitors.StateUp, mustGet(t, b, id).State)
	}
	require.Equal(t, int32(3), tg.hits.Load())
}

func TestEnqueueDueTwoClients(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// Two processes: each its own pool and its own client on one database.
	url := pgtest.NewURL(t)
	clock := &testClock{now: t0}
	type proc struct {
		pool   *pgxpool.Pool
		store  *monitors.Store
		client *river.Client[pgx.Tx]
	}
	var procs []proc
	for range 2 {
		pool := mustOpen(t, url, nil)
		store := monitors.NewStore(pool, clock.Now)
		procs = append(procs, proc{pool: pool, store: store, client: insertOnlyClient(t, pool, store)})
	}
	pool := procs[0].pool

	// 200 monitors due at different past instants, every 60 s.
	const count = 200
	_, err := pool.Exec(ctx, `
		INSERT INTO monitors (name, url, method, interval_seconds, timeout_ms, next_check_at)
		SELECT 'm' || g, 'https://example.com/' || g, 'GET', 60, 5000, $1::timestamptz - g * interval '1 second'
		FROM generate_series(1, $2::int) g`, t0, count)
	require.NoError(t, err)

	// enqueueRound runs EnqueueDue from both processes at once, several
	// goroutines each, and returns how many checks they say they enqueued.
	enqueueRound := func() int {
		t.Helper()
		var (
			wg    sync.WaitGroup
			total atomic.Int64
		)
		errs := make(chan error, 8)
		for i := range 8 {
			p := procs[i%2]
			wg.Go(func() {
				n, err := monitors.EnqueueDue(ctx, p.store, p.client, 7)
				total.Add(int64(n))
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		return int(total.Load())
	}
	jobsPerMonitor := func() map[int64]int {
		t.Helper()
		rows, err := pool.Query(ctx, `
			SELECT (args->>'monitor_id')::bigint, count(DISTINCT args->>'slot')::int, count(*)::int
			FROM river_job WHERE kind = 'check' GROUP BY 1`)
		require.NoError(t, err)
		per := map[int64]int{}
		for rows.Next() {
			var id int64
			var slots, n int
			require.NoError(t, rows.Scan(&id, &slots, &n))
			require.Equal(t, n, slots, "monitor %d has two jobs for one slot", id)
			per[id] = n
		}
		require.NoError(t, rows.Err())
		return per
	}
	requireEach := func(per map[int64]int, want int) {
		t.Helper()
		require.Len(t, per, count)
		for id, n := range per {
			require.Equal(t, want, n, "jobs of monitor %d", id)
		}
	}

	clock.Set(t0.Add(30 * time.Second))
	require.Equal(t, count, enqueueRound())
	requireEach(jobsPerMonitor(), 1)
	require.Equal(t, count, countRows(t, pool, `SELECT count(*) FROM river_job WHERE kind = 'check' AND queue = $1 AND state = 'available'`, monitors.QueueChecks))

	// The slots moved on: nothing is due until the next one.
	require.Zero(t, enqueueRound())
	requireEach(jobsPerMonitor(), 1)

	// A minute later every monitor is due for its next slot, once.
	clock.Set(t0.Add(90 * time.Second))
	require.Equal(t, count, enqueueRound())
	requireEach(jobsPerMonitor(), 2)
	require.Zero(t, countRows(t, pool, `SELECT count(*) FROM monitors WHERE next_check_at <= $1`, clock.Now()))
}

func TestCheckArgsUnique(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := insertOnlyClient(t, b.pool, b.store)
	ctx := context.Background()

	slot := t0
	first, err := client.Insert(ctx, monitors.CheckArgs{MonitorID: 1, Slot: &slot}, nil)
	require.NoError(t, err)
	require.False(t, first.UniqueSkippedAsDuplicate)
	require.Equal(t, monitors.QueueChecks, first.Job.Queue)
	require.Equal(t, 3, first.Job.MaxAttempts)

	again, err := client.Insert(ctx, monitors.CheckArgs{MonitorID: 1, Slot: &slot}, nil)
	require.NoError(t, err)
	require.True(t, again.UniqueSkippedAsDuplicate)
	require.Equal(t, first.Job.ID, again.Job.ID)

	// Another slot or another monitor is another check.
	next := t0.Add(time.Minute)
	other, err := client.Insert(ctx, monitors.CheckArgs{MonitorID: 1, Slot: &next}, nil)
	require.NoError(t, err)
	require.False(t, other.UniqueSkippedAsDuplicate)
	other, err = client.Insert(ctx, monitors.CheckArgs{MonitorID: 2, Slot: &slot}, nil)
	require.NoError(t, err)
	require.False(t, other.UniqueSkippedAsDuplicate)

	// Manual checks carry no slot and are never merged.
	for range 2 {
		manual, err := client.Insert(ctx, monitors.CheckArgs{MonitorID: 1, Manual: true}, nil)
		require.NoError(t, err)
		require.False(t, manual.UniqueSkippedAsDuplicate)
	}
	require.Equal(t, 5, countRows(t, b.pool, `SELECT count(*) FROM river_job WHERE kind = 'check'`))
}

func TestPruneWorker(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	m := mustCreate(t, b, validSpec("api"))

	// Retention 24 h, now t0 (10:00): the daily partitions entirely older
	// than t0-24h go; the day that straddles the cutoff stays whole.
	for _, age := range []time.Duration{72 * time.Hour, 48 * time.Hour, 34*time.Hour + time.Second} {
		mustRecord(t, b, monitors.Result{MonitorID: m.ID, CheckedAt: t0.Add(-age), OK: true})
	}
	var kept []int64
	for _, age := range []time.Duration{34 * time.Hour, 25 * time.Hour, 23 * time.Hour, time.Minute} {
		kept = append(kept, mustRecord(t, b, monitors.Result{MonitorID: m.ID, CheckedAt: t0.Add(-age), OK: true}))
	}

	client := startWorkingClient(t, b)
	ins, err := client.Insert(ctx, monitors.PruneArgs{}, nil)
	require.NoError(t, err)
	job := waitFinalized(t, client, ins.Job.ID)
	require.Equal(t, rivertype.JobStateCompleted, job.State)

	var left []int64
	rows, err := b.pool.Query(ctx, `SELECT id FROM check_results ORDER BY id`)
	require.NoError(t, err)
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		left = append(left, id)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, kept, left)
}
