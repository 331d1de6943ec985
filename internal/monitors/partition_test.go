package monitors_test

import (
	"context"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/monitors"
	"github.com/beaconhq/beacon/internal/pgtest"
)

// downgradeTo0001 puts a migrated database back to the monitors' schema of
// migration 0001 (one plain check_results table), as databases migrated
// before 0002 are.
func downgradeTo0001(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	_, err := pool.Exec(ctx, `
		DROP TABLE check_results, check_rollups_minute, check_rollups_hour, check_rollups_day CASCADE;
		DROP FUNCTION check_results_ensure_partitions, check_results_attach, check_latency_bin;
		DELETE FROM beacon_schema_migrations WHERE module = 'monitors' AND version >= 2`)
	require.NoError(t, err)
	sql, err := os.ReadFile("migrations/0001_monitors.sql")
	require.NoError(t, err)
	_, err = pool.Exec(ctx, string(sql))
	require.NoError(t, err)
	require.Equal(t, "r", relkind(t, pool, "check_results"))
}

func relkind(t *testing.T, pool *pgxpool.Pool, name string) string {
	t.Helper()
	var k string
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT relkind::text FROM pg_class WHERE oid = $1::regclass`, name).Scan(&k))
	return k
}

// resultsDigest identifies every stored result, column by column.
func resultsDigest(t *testing.T, pool *pgxpool.Pool) (count int, maxID int64, digest string) {
	t.Helper()
	require.NoError(t, pool.QueryRow(context.Background(), `
		SELECT count(*), coalesce(max(id), 0), md5(coalesce(string_agg(
			concat_ws('|', id, monitor_id, job_id, extract(epoch FROM checked_at), duration_ms, status_code, ok, error_kind, error),
			',' ORDER BY id), ''))
		FROM check_results`).Scan(&count, &maxID, &digest))
	return count, maxID, digest
}

// TestMigratePartitionsPopulatedResults applies migration 0002 to a
// database holding 50,000 results over 40 days in 0001's table: every
// result keeps its id and columns, the reads give the same answers, the
// rollups count every result, and new results go on from the old ids.
func TestMigratePartitionsPopulatedResults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewURL(t)
	pool := mustOpen(t, url, nil)
	owner := mustUser(t, pool, "owner@example.com")
	downgradeTo0001(t, pool)

	now := time.Now().UTC().Truncate(time.Second)
	clock := &testClock{now: now}
	store := monitors.NewStore(pool, clock.Now)
	svc := monitors.NewService(store, nil)
	var ids []int64
	for i := range 50 {
		spec := validSpec("m")
		spec.Name = "m" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		m, err := svc.Create(ctx, owner, spec)
		require.NoError(t, err)
		ids = append(ids, m.ID)
	}
	// 50,000 results, one every 69 s back from now (40 days), spread over
	// the monitors; durations and outcomes vary deterministically.
	_, err := pool.Exec(ctx, `
		INSERT INTO check_results (monitor_id, job_id, checked_at, duration_ms, status_code, ok, error_kind, error)
		SELECT ($1::bigint[])[1 + g % 50], CASE WHEN g % 3 = 0 THEN g END, $2::timestamptz - g * interval '69 seconds',
		       (g * 7919 % 100000) / 100.0, CASE WHEN g % 10 = 0 THEN 500 ELSE 200 END, g % 10 <> 0,
		       CASE WHEN g % 10 = 0 THEN 'status' END, CASE WHEN g % 10 = 0 THEN 'got 500' END
		FROM generate_series(1, 50000) g`, ids, now)
	require.NoError(t, err)

	count, maxID, digest := resultsDigest(t, pool)
	require.Equal(t, 50000, count)
	m := ids[7]
	pageBefore, err := svc.Results(ctx, owner, m, rq(now.Add(-20*24*time.Hour), now, "", 200))
	require.NoError(t, err)
	require.Equal(t, 200, len(pageBefore.Items))
	statsQ := monitors.StatsQuery{Range: monitors.Range{From: now.Add(-6 * time.Hour), To: now}, Bucket: "1h"}
	statsBefore, err := svc.Stats(ctx, owner, m, statsQ)
	require.NoError(t, err)
	require.NotEmpty(t, statsBefore.Buckets)

	start := time.Now()
	require.NoError(t, database.Migrate(ctx, pool, discardLogger()))
	t.Logf("migration 0002 on 50,000 results: %s", time.Since(start).Round(time.Millisecond))

	require.Equal(t, "p", relkind(t, pool, "check_results"))
	var legacyParent string
	require.NoError(t, pool.QueryRow(ctx, `SELECT inhparent::regclass::text FROM pg_inherits WHERE inhrelid = 'check_results_legacy'::regclass`).Scan(&legacyParent))
	require.Equal(t, "check_results", legacyParent)
	// ATTACH adopted the table's index rather than building another.
	require.Equal(t, 1, countRows(t, pool, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'check_results_monitor_time_idx'::regclass
		AND inhrelid = 'check_results_legacy_monitor_time_idx'::regclass`))

	c2, max2, digest2 := resultsDigest(t, pool)
	require.Equal(t, count, c2)
	require.Equal(t, maxID, max2)
	require.Equal(t, digest, digest2)

	pageAfter, err := svc.Results(ctx, owner, m, rq(now.Add(-20*24*time.Hour), now, "", 200))
	require.NoError(t, err)
	require.True(t, reflect.DeepEqual(pageBefore, pageAfter), "the same page before and after the migration")
	statsAfter, err := svc.Stats(ctx, owner, m, statsQ)
	require.NoError(t, err)
	require.Equal(t, statsBefore, statsAfter)

	// The rollups hold every result, per monitor and hour.
	require.Equal(t, 0, countRows(t, pool, `
		SELECT count(*) FROM (
			SELECT monitor_id, date_bin('1 hour', checked_at, timestamptz 'epoch') AS h, count(*) AS n, count(*) FILTER (WHERE ok) AS ok
			FROM check_results GROUP BY 1, 2
		) r FULL JOIN (
			SELECT monitor_id, bucket AS h, sum(checks) AS n, sum(successes) AS ok FROM check_rollups_hour GROUP BY 1, 2
		) u USING (monitor_id, h)
		WHERE r.n IS DISTINCT FROM u.n OR r.ok IS DISTINCT FROM u.ok`))
	require.Equal(t, 50000, countRows(t, pool, `SELECT sum(checks) FROM check_rollups_minute`))
	require.Equal(t, 50000, countRows(t, pool, `SELECT sum(checks) FROM check_rollups_day`))

	// Stats over 30 days read the rollups and count what the results hold.
	long, err := svc.Stats(ctx, owner, m, monitors.StatsQuery{Range: monitors.Range{From: now.Add(-30 * 24 * time.Hour), To: now}})
	require.NoError(t, err)
	require.Equal(t, int64(countRows(t, pool, `SELECT count(*) FROM check_results WHERE monitor_id = $1 AND checked_at >= $2 AND checked_at < $3`,
		m, now.Add(-30*24*time.Hour), now)), long.Checks)

	// New results take ids after the old ones, in today's partition or the next.
	id := mustRecordWith(t, pool, store, monitors.Result{MonitorID: m, CheckedAt: now, DurationMS: 12, OK: true})
	require.Greater(t, id, maxID)
	id2 := mustRecordWith(t, pool, store, monitors.Result{MonitorID: m, CheckedAt: now.Add(3 * 24 * time.Hour), DurationMS: 12, OK: true})
	require.Greater(t, id2, id)
	require.Equal(t, "check_results_p"+now.Add(3*24*time.Hour).Format("20060102"), partitionOf(t, pool, id2))
}

// mustRecordWith stores r with store in a transaction of its own.
func mustRecordWith(t *testing.T, pool *pgxpool.Pool, store *monitors.Store, r monitors.Result) int64 {
	t.Helper()
	ctx := context.Background()
	var id int64
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		id, err = store.RecordResult(ctx, tx, r)
		return err
	}))
	return id
}

// partitionOf names the partition holding result id.
func partitionOf(t *testing.T, pool *pgxpool.Pool, id int64) string {
	t.Helper()
	var name string
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT tableoid::regclass::text FROM check_results WHERE id = $1`, id).Scan(&name))
	return name
}

// partitionsOf lists the partitions of table, by name.
func partitionsOf(t *testing.T, pool *pgxpool.Pool, table string) map[string]bool {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = $1::regclass`, table)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	out := map[string]bool{}
	for _, n := range names {
		out[n] = true
	}
	return out
}

// TestPruneResultsDropsWholePartitions: retention drops the partitions
// entirely older than the cutoff, keeps the day that straddles it whole,
// and keeps hourly rollups to their own cutoff.
func TestPruneResultsDropsWholePartitions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	m := mustCreate(t, b, validSpec("api"))
	at := func(s string) time.Time {
		ts, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return ts
	}
	// t0 is 2030-01-02T10:00Z; cutoff a day before.
	cutoff := t0.Add(-24 * time.Hour)
	for _, s := range []string{"2029-11-20T12:00:00Z", "2029-12-30T12:00:00Z", "2029-12-31T23:59:59Z"} {
		mustRecord(t, b, monitors.Result{MonitorID: m.ID, CheckedAt: at(s), DurationMS: 5, OK: true})
	}
	var kept []int64
	for _, s := range []string{"2030-01-01T00:00:00Z", "2030-01-01T09:59:00Z", "2030-01-02T09:00:00Z"} {
		kept = append(kept, mustRecord(t, b, monitors.Result{MonitorID: m.ID, CheckedAt: at(s), DurationMS: 5, OK: true}))
	}
	// Straight into the table, on days without partitions: the default
	// partition takes them; the old one goes, the future one stays.
	_, err := b.pool.Exec(ctx, `INSERT INTO check_results (monitor_id, checked_at, duration_ms, ok) VALUES ($1, '2029-06-01T00:00:00Z', 1, true)`, m.ID)
	require.NoError(t, err)
	var future int64
	require.NoError(t, b.pool.QueryRow(ctx, `INSERT INTO check_results (monitor_id, checked_at, duration_ms, ok) VALUES ($1, '2030-03-01T00:00:00Z', 1, true) RETURNING id`, m.ID).Scan(&future))
	require.Equal(t, "check_results_default", partitionOf(t, b.pool, future))
	kept = append(kept, future)

	// Hourly rollups: keep from December on.
	rollupCutoff := at("2029-12-01T00:00:00Z")
	dropped, err := b.store.PruneResults(ctx, cutoff, rollupCutoff)
	require.NoError(t, err)
	names := map[string]bool{}
	for _, p := range dropped {
		require.False(t, p.Upper.After(map[bool]time.Time{true: rollupCutoff, false: cutoff}[p.Table == "check_rollups_hour"]),
			"%s ends at %s, after its cutoff", p.Name, p.Upper)
		names[p.Name] = true
	}
	for _, want := range []string{"check_results_p20291120", "check_results_p20291230", "check_results_p20291231",
		"check_rollups_minute_p20291231", "check_rollups_hour_p202911", "check_rollups_day_p202911"} {
		require.True(t, names[want], "%s dropped; dropped: %v", want, names)
	}
	for _, table := range []string{"check_results", "check_rollups_minute"} {
		left := partitionsOf(t, b.pool, table)
		require.True(t, left[table+"_p20300101"], "the day straddling the cutoff stays: %v", left)
		require.Equal(t, 0, countRows(t, b.pool, `
			SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = $1::regclass AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
			  AND (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz <= $2`, table, cutoff),
			"no partition of %s ending before the cutoff is left", table)
	}
	require.True(t, partitionsOf(t, b.pool, "check_rollups_hour")["check_rollups_hour_p202912"])

	rows, err := b.pool.Query(ctx, `SELECT id FROM check_results ORDER BY id`)
	require.NoError(t, err)
	left, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.Equal(t, kept, left)
	// The December hourly rollups stay for the stats of that month.
	require.Equal(t, 2, countRows(t, b.pool, `SELECT sum(checks) FROM check_rollups_hour WHERE bucket < '2030-01-01'`))

	dropped, err = b.store.PruneResults(ctx, cutoff, rollupCutoff)
	require.NoError(t, err)
	require.Empty(t, dropped)

	// Results still go into the kept days, and into dropped ones again.
	mustRecord(t, b, monitors.Result{MonitorID: m.ID, CheckedAt: at("2030-01-01T12:00:00Z"), DurationMS: 5, OK: true})
	late := mustRecord(t, b, monitors.Result{MonitorID: m.ID, CheckedAt: at("2029-12-30T13:00:00Z"), DurationMS: 5, OK: true})
	require.Equal(t, "check_results_p20291230", partitionOf(t, b.pool, late))
}

// TestEnsurePartitions creates the partitions ahead, moves what the default
// partition took for a new day, and is idempotent.
func TestEnsurePartitions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	m := mustCreate(t, b, validSpec("api"))

	var id int64
	require.NoError(t, b.pool.QueryRow(ctx, `INSERT INTO check_results (monitor_id, checked_at, duration_ms, ok) VALUES ($1, '2031-02-10T05:00:00Z', 1, true) RETURNING id`, m.ID).Scan(&id))
	require.Equal(t, "check_results_default", partitionOf(t, b.pool, id))

	from := time.Date(2031, 2, 9, 13, 0, 0, 0, time.UTC)
	n, err := b.store.EnsurePartitions(ctx, from, from.Add(monitors.PartitionsAhead))
	require.NoError(t, err)
	// Days 9 to 17 February of results and minute rollups, February of hourly and daily ones.
	require.Equal(t, 9*2+2, n)
	require.Equal(t, "check_results_p20310210", partitionOf(t, b.pool, id))
	require.Equal(t, 0, countRows(t, b.pool, `SELECT count(*) FROM check_results_default`))

	n, err = b.store.EnsurePartitions(ctx, from, from.Add(monitors.PartitionsAhead))
	require.NoError(t, err)
	require.Zero(t, n)

	// The month's end: hourly and daily rollups get March.
	n, err = b.store.EnsurePartitions(ctx, time.Date(2031, 2, 28, 0, 0, 0, 0, time.UTC), time.Date(2031, 3, 1, 1, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	require.Equal(t, 2*2+2, n)
	require.True(t, partitionsOf(t, b.pool, "check_rollups_hour")["check_rollups_hour_p203103"])
}

// TestRecordAfterAnotherProcessDropped: a store that saw a day's
// partitions fails once when another process dropped them meanwhile, then
// creates them again on the next attempt (a job's retry).
func TestRecordAfterAnotherProcessDropped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	m := mustCreate(t, b, validSpec("api"))
	day := time.Date(2029, 6, 1, 12, 0, 0, 0, time.UTC)
	mustRecord(t, b, monitors.Result{MonitorID: m.ID, CheckedAt: day, DurationMS: 5, OK: true})

	other := monitors.NewStore(b.pool, b.clock.Now)
	dropped, err := other.PruneResults(ctx, day.Add(24*time.Hour), day.Add(60*24*time.Hour))
	require.NoError(t, err)
	require.NotEmpty(t, dropped)
	require.False(t, partitionsOf(t, b.pool, "check_rollups_minute")["check_rollups_minute_p20290601"])

	r := monitors.Result{MonitorID: m.ID, CheckedAt: day.Add(time.Minute), DurationMS: 5, OK: true}
	err = pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		_, err := b.store.RecordResult(ctx, tx, r)
		return err
	})
	require.ErrorContains(t, err, "no partition")
	id := mustRecord(t, b, r)
	require.Equal(t, "check_results_p20290601", partitionOf(t, b.pool, id))
	require.Equal(t, 1, countRows(t, b.pool, `SELECT sum(checks) FROM check_rollups_hour WHERE monitor_id = $1`, m.ID))
}
