package monitors_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/monitors"
)

// The scheduler, worked in isolation by rivertest: one run enqueues one
// check per due monitor, with its slot (unique by args), and none for the
// disabled or not-yet-due ones.
func TestScheduleWorkerWithRivertest(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	due := mustCreate(t, b, validSpec("due"))
	also := mustCreate(t, b, validSpec("also due"))
	off := validSpec("disabled")
	off.Enabled = false
	mustCreate(t, b, off)

	driver := riverpgxv5.New(b.pool)
	worker := rivertest.NewWorker(t, driver, &river.Config{}, &monitors.ScheduleWorker{Store: b.store, Batch: 50, Log: discardLogger()})
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // test
	res, err := worker.Work(ctx, t, tx, monitors.ScheduleArgs{}, nil)
	require.NoError(t, err)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	require.NoError(t, tx.Commit(ctx))

	checks := rivertest.RequireManyInserted(ctx, t, driver, []rivertest.ExpectedJob{
		{Args: monitors.CheckArgs{}, Opts: &rivertest.RequireInsertedOpts{Queue: monitors.QueueChecks, MaxAttempts: 3}},
		{Args: monitors.CheckArgs{}, Opts: &rivertest.RequireInsertedOpts{Queue: monitors.QueueChecks, MaxAttempts: 3}},
	})
	var got []int64
	for _, j := range checks {
		var args monitors.CheckArgs
		require.NoError(t, json.Unmarshal(j.EncodedArgs, &args))
		require.NotNil(t, args.Slot, "a scheduled check carries its slot")
		requireSameTime(t, t0, *args.Slot)
		got = append(got, args.MonitorID)
	}
	require.ElementsMatch(t, []int64{due.ID, also.ID}, got)

	// Their next slots moved past now: a second run enqueues nothing.
	tx2, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx2.Rollback(ctx) //nolint:errcheck // test
	_, err = worker.Work(ctx, t, tx2, monitors.ScheduleArgs{}, nil)
	require.NoError(t, err)
	require.NoError(t, tx2.Commit(ctx))
	var n int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'check'`).Scan(&n))
	require.Equal(t, 2, n)
	require.True(t, mustGet(t, b, due.ID).NextCheckAt.After(t0.Add(time.Second)))
}
