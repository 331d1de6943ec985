package monitors_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/monitors"
)

// Two transactions store a failure of the same monitor at once: the one
// that commits first sees the flip, the other, blocked on the monitor's
// row until then, sees the state it left (down) and no flip.
func TestAFlipIsSeenByOneTransaction(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	m := mustCreate(t, b, validSpec("flips"))
	mustRecord(t, b, monitors.Result{MonitorID: m.ID, CheckedAt: t0, OK: true})

	tx1, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx1.Rollback(ctx) //nolint:errcheck // no-op after commit
	_, first, err := b.store.RecordResultsChanges(ctx, tx1, []monitors.Result{{MonitorID: m.ID, CheckedAt: t0.Add(time.Second)}})
	require.NoError(t, err)
	require.Len(t, first, 1)
	require.Equal(t, monitors.StateUp, first[0].From)
	require.Equal(t, monitors.StateDown, first[0].To)
	require.Equal(t, b.owner, first[0].OwnerID)

	type outcome struct {
		changes []monitors.StateChange
		err     error
	}
	second := make(chan outcome, 1)
	go func() {
		tx2, err := b.pool.Begin(ctx)
		if err != nil {
			second <- outcome{err: err}
			return
		}
		defer tx2.Rollback(ctx) //nolint:errcheck // no-op after commit
		_, changes, err := b.store.RecordResultsChanges(ctx, tx2, []monitors.Result{{MonitorID: m.ID, CheckedAt: t0.Add(2 * time.Second)}})
		if err == nil {
			err = tx2.Commit(ctx)
		}
		second <- outcome{changes, err}
	}()
	// The second waits for the first's row lock.
	waitFor(t, 30*time.Second, "the second transaction waits on the monitor's row", func() (bool, string) {
		n := countRows(t, b.pool, `SELECT count(*) FROM pg_locks WHERE NOT granted`)
		return n > 0, "no lock waited on"
	})
	require.NoError(t, tx1.Commit(ctx))
	got := <-second
	require.NoError(t, got.err)
	require.Empty(t, got.changes, "the second saw the first's flip as done")
	require.Equal(t, monitors.StateDown, mustGet(t, b, m.ID).State)
}

// waitFor polls cond until it holds, failing with what it last said.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
