package monitors_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/monitors"
	"github.com/beaconhq/beacon/internal/realtime"
)

// listen opens a connection of its own (a pooled one could be handed to
// someone else) listening on the events channel.
func listen(t *testing.T, b *testBundle) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, b.url)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	_, err = conn.Exec(ctx, "LISTEN "+pgx.Identifier{realtime.Channel}.Sanitize())
	require.NoError(t, err)
	return conn
}

// nextEvent waits for the next notification and decodes it strictly: the
// payload holds an Event and nothing else.
func nextEvent(t *testing.T, conn *pgx.Conn) monitors.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := conn.WaitForNotification(ctx)
	require.NoError(t, err)
	require.Equal(t, realtime.Channel, n.Channel)
	dec := json.NewDecoder(bytes.NewReader([]byte(n.Payload)))
	dec.DisallowUnknownFields()
	var ev monitors.Event
	require.NoError(t, dec.Decode(&ev), "payload: %s", n.Payload)
	return ev
}

// requireNoEvent asserts nothing arrives for a while. Notifications are
// delivered at commit, so a short wait after the commit (or rollback) that
// would have sent one is enough.
func requireNoEvent(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	n, err := conn.WaitForNotification(ctx)
	if err == nil {
		require.FailNow(t, "unexpected notification", "payload: %s", n.Payload)
	}
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.False(t, conn.IsClosed(), "a timed out wait must leave the connection usable")
}

func TestRecordResultNotifies(t *testing.T) {
	t.Parallel()

	t.Run("Committed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		conn := listen(t, b)
		m := mustCreate(t, b, validSpec("api"))

		jobID, status := int64(42), 503
		in := monitors.Result{
			MonitorID: m.ID, JobID: &jobID, CheckedAt: t0, DurationMS: 12.5,
			StatusCode: &status, ErrorKind: "status", Error: "unexpected status Service Unavailable",
		}
		in.ID = mustRecord(t, b, in)

		ev := nextEvent(t, conn)
		require.Equal(t, monitors.EventCheckResult, ev.Type)
		require.Equal(t, "check_result", ev.Type)
		require.NotNil(t, ev.OwnerID)
		require.Equal(t, b.owner, *ev.OwnerID)
		require.Equal(t, m.ID, ev.MonitorID)
		require.Equal(t, monitors.StateDown, ev.State)
		require.NotNil(t, ev.Result)
		requireSameTime(t, in.CheckedAt, ev.Result.CheckedAt)
		ev.Result.CheckedAt = in.CheckedAt
		require.Equal(t, in, *ev.Result)
		requireNoEvent(t, conn) // one result, one event
	})

	// The event carries the monitor's state after the result, which a late
	// result does not change.
	t.Run("LateResultCarriesCurrentState", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		conn := listen(t, b)
		m := mustCreate(t, b, validSpec("api"))

		mustRecord(t, b, monitors.Result{MonitorID: m.ID, CheckedAt: t0.Add(time.Minute), OK: true})
		require.Equal(t, monitors.StateUp, nextEvent(t, conn).State)

		late := mustRecord(t, b, monitors.Result{MonitorID: m.ID, CheckedAt: t0, ErrorKind: "connect", Error: "connection failed"})
		ev := nextEvent(t, conn)
		require.Equal(t, monitors.StateUp, ev.State)
		require.NotNil(t, ev.Result)
		require.Equal(t, late, ev.Result.ID)
		require.False(t, ev.Result.OK)
	})

	t.Run("RolledBackSendsNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		conn := listen(t, b)
		m := mustCreate(t, b, validSpec("api"))

		tx, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		rolledBack, err := b.store.RecordResult(ctx, tx, monitors.Result{MonitorID: m.ID, CheckedAt: t0, OK: true})
		require.NoError(t, err)
		require.NoError(t, tx.Rollback(ctx))
		requireNoEvent(t, conn)

		// The next event is the next committed result, not the rolled back one.
		committed := mustRecord(t, b, monitors.Result{MonitorID: m.ID, CheckedAt: t0.Add(time.Minute), OK: true})
		require.NotEqual(t, rolledBack, committed)
		ev := nextEvent(t, conn)
		require.NotNil(t, ev.Result)
		require.Equal(t, committed, ev.Result.ID)
	})

	// Before commit nothing is sent: a listener never hears of a result it
	// cannot read yet.
	t.Run("SentAtCommit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		conn := listen(t, b)
		m := mustCreate(t, b, validSpec("api"))

		tx, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
		id, err := b.store.RecordResult(ctx, tx, monitors.Result{MonitorID: m.ID, CheckedAt: t0, OK: true})
		require.NoError(t, err)
		requireNoEvent(t, conn)
		require.NoError(t, tx.Commit(ctx))
		ev := nextEvent(t, conn)
		require.NotNil(t, ev.Result)
		require.Equal(t, id, ev.Result.ID)
	})

	// A monitor nobody owns yet has nobody to tell.
	t.Run("UnownedSendsNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		conn := listen(t, b)
		id := mustInsertUnowned(t, b, "legacy")
		mustRecord(t, b, monitors.Result{MonitorID: id, CheckedAt: t0, OK: true})
		requireNoEvent(t, conn)
		require.Equal(t, 1, countRows(t, b.pool, `SELECT count(*) FROM check_results WHERE monitor_id = $1`, id))
	})

	// The worker's transaction (result plus job completion) sends it too.
	t.Run("FromCheckWorker", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		conn := listen(t, b)
		client := startWorkingClient(t, b)
		tg := newTarget(t, statusHandler(http.StatusOK))
		spec := validSpec("target")
		spec.URL = tg.URL + "/health"
		m := mustCreate(t, b, spec)

		svc := monitors.NewService(b.store, client)
		jobID, err := svc.RunCheck(context.Background(), b.owner, m.ID)
		require.NoError(t, err)

		ev := nextEvent(t, conn)
		require.Equal(t, monitors.EventCheckResult, ev.Type)
		require.Equal(t, m.ID, ev.MonitorID)
		require.NotNil(t, ev.OwnerID)
		require.Equal(t, b.owner, *ev.OwnerID)
		require.Equal(t, monitors.StateUp, ev.State)
		require.NotNil(t, ev.Result)
		require.True(t, ev.Result.OK)
		require.NotNil(t, ev.Result.JobID)
		require.Equal(t, jobID, *ev.Result.JobID)
		require.NotNil(t, ev.Result.StatusCode)
		require.Equal(t, http.StatusOK, *ev.Result.StatusCode)

		stored, err := b.svc.CheckResult(context.Background(), jobID)
		require.NoError(t, err)
		require.Equal(t, stored.ID, ev.Result.ID)
	})
}
