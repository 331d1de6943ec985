package monitors_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/monitors"
)

// The check worker, worked by rivertest. rivertest.Worker inserts the job
// and marks it running in the test's transaction, uncommitted
// (river@v0.51.2/rivertest/worker.go:87 InsertTx(ctx, tx, ...) and :160
// JobUpdateFull on UnwrapExecutor(tx)), while CheckWorker stores its result
// and completes its job in a transaction of its own (database.InTx in
// batch.go, jobs.CompleteManyTx). A transaction on another connection
// would not see that job (jobs.ErrNotRunning), or, had the test committed
// the insert, would wait for the row lock the test's transaction holds.
// So the job's context carries the test's transaction (database.WithTx):
// the worker's transaction becomes a savepoint of it, as an operation
// composes into its caller's, and River's completer then finds the job
// already completed, as after river.JobCompleteTx. What this does not
// cover, the separate commit, TestCheckWorker covers with a real client.
func TestCheckWorkerWithRivertest(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	// The partitions of the clock's days exist, as the partition job keeps them.
	_, err := b.store.EnsurePartitions(ctx, t0.Add(-24*time.Hour), t0.Add(48*time.Hour))
	require.NoError(t, err)
	driver := riverpgxv5.New(b.pool)

	// work works one check of m in a transaction of its own, committed
	// after; each test has its own worker, so no group spans two tests'
	// transactions.
	work := func(t *testing.T, m monitors.Monitor) *rivertest.WorkResult {
		t.Helper()
		d := deps(b.store)
		d.Checker.Now = b.clock.Now
		worker := rivertest.NewWorker(t, driver, &river.Config{}, monitors.NewCheckWorker(d))
		tx, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
		res, err := worker.Work(database.WithTx(ctx, tx), t, tx, monitors.CheckArgs{MonitorID: m.ID, Manual: true}, nil)
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
		return res
	}
	monitorOf := func(t *testing.T, url string) monitors.Monitor {
		t.Helper()
		spec := validSpec("target")
		spec.URL = url
		return mustCreate(t, b, spec)
	}
	jobState := func(t *testing.T, id int64) rivertype.JobState {
		t.Helper()
		var s rivertype.JobState
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT state FROM river_job WHERE id = $1`, id).Scan(&s))
		return s
	}
	resultsOfJob := func(t *testing.T, id int64) int {
		t.Helper()
		return countRows(t, b.pool, `SELECT count(*) FROM check_results WHERE job_id = $1`, id)
	}

	t.Run("Stored", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(t, statusHandler(http.StatusOK))
		m := monitorOf(t, tg.URL+"/health")

		res := work(t, m)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		out := checkOutput(t, res.Job)
		require.True(t, out.OK)
		require.NotZero(t, out.ResultID)
		require.Empty(t, out.Skipped)

		// Committed: the job, its result and the monitor's new state.
		require.Equal(t, rivertype.JobStateCompleted, jobState(t, res.Job.ID))
		r, err := b.svc.CheckResult(ctx, res.Job.ID)
		require.NoError(t, err)
		require.Equal(t, out.ResultID, r.ID)
		require.Equal(t, m.ID, r.MonitorID)
		require.Equal(t, &res.Job.ID, r.JobID)
		require.True(t, r.OK)
		require.NotNil(t, r.StatusCode)
		require.Equal(t, http.StatusOK, *r.StatusCode)
		requireSameTime(t, t0, r.CheckedAt)
		got := mustGet(t, b, m.ID)
		require.Equal(t, monitors.StateUp, got.State)
		require.NotNil(t, got.LastCheckedAt)
		requireSameTime(t, t0, *got.LastCheckedAt)
	})

	t.Run("DeletedBefore", func(t *testing.T) {
		t.Parallel()
		m := monitorOf(t, "http://127.0.0.1:1/never")
		require.NoError(t, b.svc.Delete(ctx, b.owner, m.ID))

		res := work(t, m)
		require.Equal(t, river.EventKindJobCancelled, res.EventKind)
		require.Equal(t, rivertype.JobStateCancelled, jobState(t, res.Job.ID))
		require.NotEmpty(t, res.Job.Errors)
		require.Contains(t, res.Job.Errors[len(res.Job.Errors)-1].Error, "no longer exists")
		require.Zero(t, resultsOfJob(t, res.Job.ID))
	})

	t.Run("DeletedWhileChecked", func(t *testing.T) {
		t.Parallel()
		var id atomic.Int64
		tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
			// Committed on another connection while the check runs.
			_, err := b.pool.Exec(r.Context(), `DELETE FROM monitors WHERE id = $1`, id.Load())
			if err != nil {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		m := monitorOf(t, tg.URL+"/health")
		id.Store(m.ID)

		res := work(t, m)
		require.Equal(t, 1, int(tg.hits.Load()))
		require.Equal(t, river.EventKindJobCancelled, res.EventKind)
		require.Equal(t, rivertype.JobStateCancelled, jobState(t, res.Job.ID))
		require.NotEmpty(t, res.Job.Errors)
		require.Contains(t, res.Job.Errors[len(res.Job.Errors)-1].Error, monitors.ErrMonitorGone.Error())
		require.Zero(t, resultsOfJob(t, res.Job.ID))
		_, err := b.store.Get(ctx, b.owner, m.ID)
		require.Error(t, err)
	})
}
