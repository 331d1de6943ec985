package monitors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/realtime"
)

// Store reads and writes the domain's tables; Service is its only caller
// outside the workers. Every method runs on the transaction its context
// carries (database.WithTx), if any, else on the pool: a read inside an
// operation's transaction sees its writes.
type Store struct {
	pool  *pgxpool.Pool
	now   func() time.Time
	parts partitionDays // days whose partitions exist
}

// NewStore returns a Store on pool. now is the clock; nil means time.Now.
func NewStore(pool *pgxpool.Pool, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{pool: pool, now: now}
}

// q is what a statement runs on: ctx's transaction, else the pool.
func (s *Store) q(ctx context.Context) database.Querier { return database.Q(ctx, s.pool) }

const monitorColumns = `id, owner_id, name, url, method, interval_seconds, timeout_ms, expected_status,
	enabled, public_slug, state, last_checked_at, next_check_at, created_at, updated_at`

func scanMonitor(row pgx.Row) (Monitor, error) {
	var m Monitor
	err := row.Scan(&m.ID, &m.OwnerID, &m.Name, &m.URL, &m.Method, &m.IntervalSeconds, &m.TimeoutMS, &m.ExpectedStatus,
		&m.Enabled, &m.PublicSlug, &m.State, &m.LastCheckedAt, &m.NextCheckAt, &m.CreatedAt, &m.UpdatedAt)
	return m, err
}

// slugTaken turns the unique violation on public_slug into a conflict.
func slugTaken(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UniqueViolation && strings.Contains(pgErr.ConstraintName, "public_slug") {
		return &apperr.Error{Code: apperr.Conflict, Field: "public_slug", Message: "this public slug is taken"}
	}
	return err
}

func notFound(id int64) error {
	return apperr.Errorf(apperr.NotFound, "monitor %d not found", id)
}

// insert stores a new monitor of owner with a validated spec, due for a
// first check now.
func (s *Store) insert(ctx context.Context, owner int64, spec Spec) (Monitor, error) {
	m, err := scanMonitor(s.q(ctx).QueryRow(ctx, `
		INSERT INTO monitors (owner_id, name, url, method, interval_seconds, timeout_ms, expected_status, enabled,
			public_slug, next_check_at, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $10)
		RETURNING `+monitorColumns,
		owner, spec.Name, spec.URL, spec.Method, spec.IntervalSeconds, spec.TimeoutMS, spec.ExpectedStatus, spec.Enabled,
		spec.PublicSlug, s.now()))
	if err != nil {
		if e := slugTaken(err); e != err {
			return Monitor{}, e
		}
		return Monitor{}, fmt.Errorf("create monitor: %w", err)
	}
	return m, nil
}

// Get returns one monitor of owner; another owner's is not found.
func (s *Store) Get(ctx context.Context, owner, id int64) (Monitor, error) {
	m, err := scanMonitor(s.q(ctx).QueryRow(ctx, `SELECT `+monitorColumns+` FROM monitors WHERE id = $1 AND owner_id = $2`, id, owner))
	if errors.Is(err, pgx.ErrNoRows) {
		return Monitor{}, notFound(id)
	}
	if err != nil {
		return Monitor{}, fmt.Errorf("get monitor %d: %w", id, err)
	}
	return m, nil
}

// lookupMany returns the monitors among ids, whoever owns them, for the
// workers; missing ones are left out.
func (s *Store) lookupMany(ctx context.Context, ids []int64) ([]Monitor, error) {
	rows, err := s.q(ctx).Query(ctx, `SELECT `+monitorColumns+` FROM monitors WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("get %d monitors: %w", len(ids), err)
	}
	ms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Monitor, error) { return scanMonitor(r) })
	if err != nil {
		return nil, fmt.Errorf("get %d monitors: %w", len(ids), err)
	}
	return ms, nil
}

// list returns up to limit monitors of owner with an id greater than after, by id.
func (s *Store) list(ctx context.Context, owner, after int64, limit int) ([]Monitor, error) {
	rows, err := s.q(ctx).Query(ctx, `SELECT `+monitorColumns+` FROM monitors WHERE owner_id = $1 AND id > $2 ORDER BY id LIMIT $3`, owner, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list monitors: %w", err)
	}
	ms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Monitor, error) { return scanMonitor(r) })
	if err != nil {
		return nil, fmt.Errorf("list monitors: %w", err)
	}
	return ms, nil
}

// getForUpdate reads owner's monitor and locks its row until ctx's
// transaction ends.
func (s *Store) getForUpdate(ctx context.Context, owner, id int64) (Monitor, error) {
	m, err := scanMonitor(s.q(ctx).QueryRow(ctx, `SELECT `+monitorColumns+` FROM monitors WHERE id = $1 AND owner_id = $2 FOR UPDATE`, id, owner))
	if errors.Is(err, pgx.ErrNoRows) {
		return Monitor{}, notFound(id)
	}
	if err != nil {
		return Monitor{}, fmt.Errorf("update monitor %d: %w", id, err)
	}
	return m, nil
}

// update stores a validated spec and the next check of monitor id.
func (s *Store) update(ctx context.Context, id int64, spec Spec, next time.Time) (Monitor, error) {
	m, err := scanMonitor(s.q(ctx).QueryRow(ctx, `
		UPDATE monitors SET name = $2, url = $3, method = $4, interval_seconds = $5, timeout_ms = $6,
			expected_status = $7, enabled = $8, next_check_at = $9, updated_at = $10, public_slug = $11
		WHERE id = $1
		RETURNING `+monitorColumns,
		id, spec.Name, spec.URL, spec.Method, spec.IntervalSeconds, spec.TimeoutMS, spec.ExpectedStatus, spec.Enabled, next, s.now(),
		spec.PublicSlug))
	if err != nil {
		if e := slugTaken(err); e != err {
			return Monitor{}, e
		}
		return Monitor{}, fmt.Errorf("update monitor %d: %w", id, err)
	}
	return m, nil
}

// Delete removes a monitor of owner and its results.
func (s *Store) Delete(ctx context.Context, owner, id int64) error {
	tag, err := s.q(ctx).Exec(ctx, `DELETE FROM monitors WHERE id = $1 AND owner_id = $2`, id, owner)
	if err != nil {
		return fmt.Errorf("delete monitor %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return notFound(id)
	}
	return nil
}

// RecordResult stores a check result and the monitor's new state in tx, so
// the caller can complete the job that produced it in the same transaction,
// and announces the result to the monitor's owner (NOTIFY, sent at commit).
// A monitor deleted meanwhile is ErrMonitorGone.
func (s *Store) RecordResult(ctx context.Context, tx pgx.Tx, r Result) (int64, error) {
	ids, err := s.RecordResults(ctx, tx, []Result{r})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// RecordResults is RecordResult for many results, in one statement (one
// round trip, whatever their number); it returns their ids in order. Of
// several results of one monitor, the latest sets its state. If any
// result's monitor was deleted it fails with ErrMonitorGone and stores none.
func (s *Store) RecordResults(ctx context.Context, tx pgx.Tx, rs []Result) ([]int64, error) {
	n := len(rs)
	var (
		monitorIDs = make([]int64, n)
		jobIDs     = make([]*int64, n)
		checkedAt  = make([]time.Time, n)
		durations  = make([]float64, n)
		codes      = make([]*int, n)
		oks        = make([]bool, n)
		kinds      = make([]string, n)
		texts      = make([]string, n)
		bodies     = make([]string, n)
	)
	for i, r := range rs {
		// Whoever the caller, the text must fit a NOTIFY payload and be valid UTF-8.
		r.Error = capText(r.Error)
		// The event carries the result as Go encodes it; SQL adds the id.
		body, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		monitorIDs[i], jobIDs[i], checkedAt[i], durations[i] = r.MonitorID, r.JobID, r.CheckedAt, r.DurationMS
		codes[i], oks[i], kinds[i], texts[i], bodies[i] = r.StatusCode, r.OK, r.ErrorKind, r.Error, string(body)
	}
	// The partitions must exist before the statement: the rollups have no
	// default partition. This is a map lookup unless a day is new.
	if err := s.ensurePartitions(ctx, tx, checkedAt); err != nil {
		return nil, fmt.Errorf("record %d results: %w", n, err)
	}
	// The rollups are written by the same statement, in (monitor, bucket)
	// order so that concurrent groups lock shared rows in one order.
	rows, err := tx.Query(ctx, `
		WITH r AS (
			SELECT nextval(pg_get_serial_sequence('check_results', 'id')) AS id, r.*
			FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::float8[], $5::int[], $6::bool[], $7::text[], $8::text[], $9::jsonb[])
				WITH ORDINALITY AS r(monitor_id, job_id, checked_at, duration_ms, status_code, ok, error_kind, error, body, n)
		), ins AS (
			INSERT INTO check_results (id, monitor_id, job_id, checked_at, duration_ms, status_code, ok, error_kind, error)
			OVERRIDING SYSTEM VALUE
			SELECT id, monitor_id, job_id, checked_at, duration_ms, status_code, ok, NULLIF(error_kind, ''), NULLIF(error, '')
			FROM r
		), binned AS (
			SELECT monitor_id, checked_at, check_latency_bin(duration_ms) AS bin, ok FROM r
		), minute AS (
			INSERT INTO check_rollups_minute AS t (monitor_id, bucket, checks, successes, bins, counts)
			SELECT monitor_id, bucket, sum(n), sum(ok), array_agg(bin ORDER BY bin), array_agg(n::int ORDER BY bin)
			FROM (SELECT monitor_id, date_bin('1 minute', checked_at, timestamptz 'epoch') AS bucket, bin,
					count(*) AS n, count(*) FILTER (WHERE ok) AS ok
				FROM binned GROUP BY 1, 2, 3) g
			GROUP BY 1, 2 ORDER BY 1, 2
			ON CONFLICT (monitor_id, bucket) DO UPDATE
			SET checks = t.checks + excluded.checks, successes = t.successes + excluded.successes,
				(bins, counts) = (SELECT array_agg(bin ORDER BY bin), array_agg(n ORDER BY bin)
					FROM (SELECT bin, sum(n)::int AS n FROM unnest(t.bins || excluded.bins, t.counts || excluded.counts) AS u(bin, n)
						GROUP BY bin) m)
		), hour AS (
			INSERT INTO check_rollups_hour AS t (monitor_id, bucket, checks, successes, bins, counts)
			SELECT monitor_id, bucket, sum(n), sum(ok), array_agg(bin ORDER BY bin), array_agg(n::int ORDER BY bin)
			FROM (SELECT monitor_id, date_bin('1 hour', checked_at, timestamptz 'epoch') AS bucket, bin,
					count(*) AS n, count(*) FILTER (WHERE ok) AS ok
				FROM binned GROUP BY 1, 2, 3) g
			GROUP BY 1, 2 ORDER BY 1, 2
			ON CONFLICT (monitor_id, bucket) DO UPDATE
			SET checks = t.checks + excluded.checks, successes = t.successes + excluded.successes,
				(bins, counts) = (SELECT array_agg(bin ORDER BY bin), array_agg(n ORDER BY bin)
					FROM (SELECT bin, sum(n)::int AS n FROM unnest(t.bins || excluded.bins, t.counts || excluded.counts) AS u(bin, n)
						GROUP BY bin) m)
		), day AS (
			INSERT INTO check_rollups_day AS t (monitor_id, bucket, checks, successes, bins, counts)
			SELECT monitor_id, bucket, sum(n), sum(ok), array_agg(bin ORDER BY bin), array_agg(n::int ORDER BY bin)
			FROM (SELECT monitor_id, date_bin('1 day', checked_at, timestamptz 'epoch') AS bucket, bin,
					count(*) AS n, count(*) FILTER (WHERE ok) AS ok
				FROM binned GROUP BY 1, 2, 3) g
			GROUP BY 1, 2 ORDER BY 1, 2
			ON CONFLICT (monitor_id, bucket) DO UPDATE
			SET checks = t.checks + excluded.checks, successes = t.successes + excluded.successes,
				(bins, counts) = (SELECT array_agg(bin ORDER BY bin), array_agg(n ORDER BY bin)
					FROM (SELECT bin, sum(n)::int AS n FROM unnest(t.bins || excluded.bins, t.counts || excluded.counts) AS u(bin, n)
						GROUP BY bin) m)
		), latest AS (
			SELECT DISTINCT ON (monitor_id) monitor_id, checked_at, ok FROM r ORDER BY monitor_id, checked_at DESC
		), upd AS (
			-- A late result must not overwrite a newer one's state.
			UPDATE monitors m SET state = CASE WHEN l.ok THEN 'up' ELSE 'down' END, last_checked_at = l.checked_at
			FROM latest l
			WHERE m.id = l.monitor_id AND (m.last_checked_at IS NULL OR m.last_checked_at <= l.checked_at)
			RETURNING m.id, m.state
		), cur AS (
			SELECT m.id, m.owner_id, coalesce(upd.state, m.state) AS state
			FROM monitors m LEFT JOIN upd ON upd.id = m.id
			WHERE m.id IN (SELECT monitor_id FROM latest)
		)
		SELECT r.id, CASE WHEN cur.owner_id IS NOT NULL THEN
			pg_notify($10, jsonb_build_object('type', $11::text, 'owner_id', cur.owner_id, 'monitor_id', r.monitor_id,
				'state', cur.state, 'result', r.body || jsonb_build_object('id', r.id))::text) END
		FROM r JOIN cur ON cur.id = r.monitor_id
		ORDER BY r.n`,
		monitorIDs, jobIDs, checkedAt, durations, codes, oks, kinds, texts, bodies, realtime.Channel, EventCheckResult)
	if err != nil {
		return nil, fmt.Errorf("record %d results: %w", n, err)
	}
	ids, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (int64, error) {
		var id int64
		return id, row.Scan(&id, nil)
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.ForeignKeyViolation {
		return nil, fmt.Errorf("record %d results: %w", n, ErrMonitorGone)
	}
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.CheckViolation && strings.HasPrefix(pgErr.Message, "no partition") {
		// Dropped by another process since this one saw it: a retry creates it again.
		s.parts.forget(checkedAt)
	}
	if err != nil {
		return nil, fmt.Errorf("record %d results: %w", n, err)
	}
	if len(ids) != n {
		return nil, fmt.Errorf("record %d results: %d stored", n, len(ids))
	}
	return ids, nil
}

// ErrMonitorGone means the monitor was deleted while its check ran.
var ErrMonitorGone = errors.New("monitor deleted")

// Event types.
const (
	EventCheckResult = "check_result"
)

// Event announces a change to a monitor's owner: the envelope the realtime
// hub routes (realtime.Channel), published by RecordResults' SQL.
type Event struct {
	Type      string  `json:"type"`
	OwnerID   *int64  `json:"owner_id,omitempty"`
	MonitorID int64   `json:"monitor_id"`
	State     State   `json:"state,omitempty"`
	Result    *Result `json:"result,omitempty"`
}

const resultColumns = `id, monitor_id, job_id, checked_at, duration_ms, status_code, ok,
	coalesce(error_kind, ''), coalesce(error, '')`

func scanResult(row pgx.Row) (Result, error) {
	var r Result
	err := row.Scan(&r.ID, &r.MonitorID, &r.JobID, &r.CheckedAt, &r.DurationMS, &r.StatusCode, &r.OK, &r.ErrorKind, &r.Error)
	return r, err
}

// ResultByJob returns the result a check job stored, if any.
func (s *Store) ResultByJob(ctx context.Context, jobID int64) (Result, error) {
	r, err := scanResult(s.q(ctx).QueryRow(ctx, `SELECT `+resultColumns+` FROM check_results WHERE job_id = $1`, jobID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Result{}, apperr.Errorf(apperr.NotFound, "job %d stored no result", jobID)
	}
	if err != nil {
		return Result{}, fmt.Errorf("result of job %d: %w", jobID, err)
	}
	return r, nil
}

// ResultPage is one page of results; NextCursor is empty on the last page.
type ResultPage struct {
	Items      []Result `json:"items"`
	NextCursor string   `json:"next_cursor,omitempty"`
}

// resultsPageSQL is a page of results ($1 monitor, [$2, $3), before ($4, $5), $6 limit).
const resultsPageSQL = `
		SELECT ` + resultColumns + ` FROM check_results
		WHERE monitor_id = $1 AND checked_at >= $2 AND checked_at < $3 AND (checked_at, id) < ($4, $5)
		ORDER BY checked_at DESC, id DESC
		LIMIT $6`

// results returns up to limit results of a monitor in [from, to) sorting
// before (beforeAt, beforeID), newest first.
func (s *Store) results(ctx context.Context, monitorID int64, from, to, beforeAt time.Time, beforeID int64, limit int) ([]Result, error) {
	rows, err := s.q(ctx).Query(ctx, resultsPageSQL,
		monitorID, from, to, beforeAt, beforeID, limit)
	if err != nil {
		return nil, fmt.Errorf("results of monitor %d: %w", monitorID, err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Result, error) { return scanResult(r) })
	if err != nil {
		return nil, fmt.Errorf("results of monitor %d: %w", monitorID, err)
	}
	return items, nil
}

// claimDueSQL claims due slots ($1 now, $2 limit); explain_test.go checks its plan.
const claimDueSQL = `
		WITH due AS (
			SELECT id, next_check_at, interval_seconds
			FROM monitors
			WHERE enabled AND next_check_at <= $1
			ORDER BY next_check_at
			LIMIT $2
			FOR UPDATE SKIP LOCKED
		)
		UPDATE monitors m
		SET next_check_at = due.next_check_at + make_interval(secs => due.interval_seconds *
			(floor(extract(epoch FROM $1::timestamptz - due.next_check_at) / due.interval_seconds) + 1))
		FROM due
		WHERE m.id = due.id
		RETURNING m.id, due.next_check_at`

// Due is a check slot claimed by the scheduler.
type Due struct {
	MonitorID int64
	Slot      time.Time
}

// ClaimDue takes up to limit enabled monitors whose next check is due, in
// tx, and moves each one's next slot past now (skipping slots missed while
// nothing ran). Rows locked by a concurrent scheduler are skipped, so two
// schedulers never claim the same slot.
func (s *Store) ClaimDue(ctx context.Context, tx pgx.Tx, limit int) ([]Due, error) {
	rows, err := tx.Query(ctx, claimDueSQL,
		s.now(), limit)
	if err != nil {
		return nil, fmt.Errorf("claim due monitors: %w", err)
	}
	due, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Due])
	if err != nil {
		return nil, fmt.Errorf("claim due monitors: %w", err)
	}
	return due, nil
}

// AdoptUnowned gives monitors created before accounts existed to owner.
func (s *Store) AdoptUnowned(ctx context.Context, owner int64) (int64, error) {
	tag, err := s.q(ctx).Exec(ctx, `UPDATE monitors SET owner_id = $1 WHERE owner_id IS NULL`, owner)
	if err != nil {
		return 0, fmt.Errorf("adopt unowned monitors: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Status is a monitor's public status page: what its owner chose to publish.
// The URL is left out: it may point at something private.
type Status struct {
	Name          string        `json:"name"`
	State         State         `json:"state"`
	LastCheckedAt *time.Time    `json:"last_checked_at,omitempty"`
	Uptime24h     *float64      `json:"uptime_24h,omitempty"`
	Uptime7d      *float64      `json:"uptime_7d,omitempty"`
	Recent        []StatusCheck `json:"recent"`
}

// StatusCheck is one recent check on a status page.
type StatusCheck struct {
	CheckedAt  time.Time `json:"checked_at"`
	OK         bool      `json:"ok"`
	DurationMS float64   `json:"duration_ms"`
}

// latestResultsSQL is a monitor's ($1) latest results.
const latestResultsSQL = `SELECT checked_at, ok, duration_ms FROM check_results
		WHERE monitor_id = $1 ORDER BY checked_at DESC, id DESC LIMIT 50`

// PublicStatus returns the status page of the monitor published as slug.
func (s *Store) PublicStatus(ctx context.Context, slug string) (Status, error) {
	var (
		st Status
		id int64
	)
	q := s.q(ctx)
	err := q.QueryRow(ctx, `SELECT id, name, state, last_checked_at FROM monitors WHERE public_slug = $1`, slug).
		Scan(&id, &st.Name, &st.State, &st.LastCheckedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Status{}, apperr.Errorf(apperr.NotFound, "no public status page %q", slug)
	}
	if err != nil {
		return Status{}, fmt.Errorf("status page %q: %w", slug, err)
	}
	now := s.now()
	err = q.QueryRow(ctx, `
		SELECT avg(ok::int) FILTER (WHERE checked_at >= $2), avg(ok::int)
		FROM check_results WHERE monitor_id = $1 AND checked_at >= $3`,
		id, now.Add(-24*time.Hour), now.Add(-7*24*time.Hour)).Scan(&st.Uptime24h, &st.Uptime7d)
	if err != nil {
		return Status{}, fmt.Errorf("status page %q: %w", slug, err)
	}
	rows, err := q.Query(ctx, latestResultsSQL, id)
	if err != nil {
		return Status{}, fmt.Errorf("status page %q: %w", slug, err)
	}
	st.Recent, err = pgx.CollectRows(rows, pgx.RowToStructByPos[StatusCheck])
	if err != nil {
		return Status{}, fmt.Errorf("status page %q: %w", slug, err)
	}
	if st.Recent == nil {
		st.Recent = []StatusCheck{}
	}
	return st, nil
}

// Owns reports whether owner owns monitor id (for scoping jobs).
func (s *Store) Owns(ctx context.Context, owner, id int64) (bool, error) {
	var ok bool
	err := s.q(ctx).QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM monitors WHERE id = $1 AND owner_id = $2)`, id, owner).Scan(&ok)
	return ok, err
}
