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
	"github.com/beaconhq/beacon/internal/monitors/monitorsdb"
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

// db returns the generated statements on ctx's transaction, else the pool.
func (s *Store) db(ctx context.Context) *monitorsdb.Queries { return monitorsdb.New(s.q(ctx)) }

// monitorOf is the Monitor of a row of monitors.
func monitorOf(r monitorsdb.Monitor) Monitor {
	return Monitor{
		ID:      r.ID,
		OwnerID: r.OwnerID,
		Spec: Spec{
			Name:            r.Name,
			URL:             r.Url,
			Method:          r.Method,
			IntervalSeconds: r.IntervalSeconds,
			TimeoutMS:       r.TimeoutMs,
			ExpectedStatus:  r.ExpectedStatus,
			Enabled:         r.Enabled,
			PublicSlug:      r.PublicSlug,
		},
		State:         State(r.State),
		LastCheckedAt: r.LastCheckedAt,
		NextCheckAt:   r.NextCheckAt,
		CreatedAt:     r.CreatedAt,
		UpdatedAt:     r.UpdatedAt,
	}
}

// monitorsOf is monitorOf for many rows; never nil.
func monitorsOf(rows []monitorsdb.Monitor) []Monitor {
	ms := make([]Monitor, len(rows))
	for i, r := range rows {
		ms[i] = monitorOf(r)
	}
	return ms
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
	r, err := s.db(ctx).InsertMonitor(ctx, monitorsdb.InsertMonitorParams{
		OwnerID:         owner,
		Name:            spec.Name,
		Url:             spec.URL,
		Method:          spec.Method,
		IntervalSeconds: spec.IntervalSeconds,
		TimeoutMs:       spec.TimeoutMS,
		ExpectedStatus:  spec.ExpectedStatus,
		Enabled:         spec.Enabled,
		PublicSlug:      spec.PublicSlug,
		Now:             s.now(),
	})
	if err != nil {
		if e := slugTaken(err); e != err {
			return Monitor{}, e
		}
		return Monitor{}, fmt.Errorf("create monitor: %w", err)
	}
	return monitorOf(r), nil
}

// Get returns one monitor of owner; another owner's is not found.
func (s *Store) Get(ctx context.Context, owner, id int64) (Monitor, error) {
	r, err := s.db(ctx).GetMonitor(ctx, monitorsdb.GetMonitorParams{ID: id, OwnerID: owner})
	if errors.Is(err, pgx.ErrNoRows) {
		return Monitor{}, notFound(id)
	}
	if err != nil {
		return Monitor{}, fmt.Errorf("get monitor %d: %w", id, err)
	}
	return monitorOf(r), nil
}

// lookupMany returns the monitors among ids, whoever owns them, for the
// workers; missing ones are left out.
func (s *Store) lookupMany(ctx context.Context, ids []int64) ([]Monitor, error) {
	rows, err := s.db(ctx).LookupMonitors(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("get %d monitors: %w", len(ids), err)
	}
	return monitorsOf(rows), nil
}

// list returns up to limit monitors of owner with an id greater than after, by id.
func (s *Store) list(ctx context.Context, owner, after int64, limit int) ([]Monitor, error) {
	rows, err := s.db(ctx).ListMonitors(ctx, monitorsdb.ListMonitorsParams{OwnerID: owner, After: after, Max: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list monitors: %w", err)
	}
	return monitorsOf(rows), nil
}

// getForUpdate reads owner's monitor and locks its row until ctx's
// transaction ends.
func (s *Store) getForUpdate(ctx context.Context, owner, id int64) (Monitor, error) {
	r, err := s.db(ctx).GetMonitorForUpdate(ctx, monitorsdb.GetMonitorForUpdateParams{ID: id, OwnerID: owner})
	if errors.Is(err, pgx.ErrNoRows) {
		return Monitor{}, notFound(id)
	}
	if err != nil {
		return Monitor{}, fmt.Errorf("update monitor %d: %w", id, err)
	}
	return monitorOf(r), nil
}

// update stores a validated spec and the next check of monitor id.
func (s *Store) update(ctx context.Context, id int64, spec Spec, next time.Time) (Monitor, error) {
	r, err := s.db(ctx).UpdateMonitor(ctx, monitorsdb.UpdateMonitorParams{
		ID:              id,
		Name:            spec.Name,
		Url:             spec.URL,
		Method:          spec.Method,
		IntervalSeconds: spec.IntervalSeconds,
		TimeoutMs:       spec.TimeoutMS,
		ExpectedStatus:  spec.ExpectedStatus,
		Enabled:         spec.Enabled,
		NextCheckAt:     next,
		Now:             s.now(),
		PublicSlug:      spec.PublicSlug,
	})
	if err != nil {
		if e := slugTaken(err); e != err {
			return Monitor{}, e
		}
		return Monitor{}, fmt.Errorf("update monitor %d: %w", id, err)
	}
	return monitorOf(r), nil
}

// Delete removes a monitor of owner and its results.
func (s *Store) Delete(ctx context.Context, owner, id int64) error {
	n, err := s.db(ctx).DeleteMonitor(ctx, monitorsdb.DeleteMonitorParams{ID: id, OwnerID: owner})
	if err != nil {
		return fmt.Errorf("delete monitor %d: %w", id, err)
	}
	if n == 0 {
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
	ids, _, err := s.recordResults(ctx, tx, rs)
	return ids, err
}

// recordResults is RecordResults, also returning the state changes the
// results made. The monitors' rows are locked (in id order) before their
// state is read, in the same statement: each flip is seen by exactly one
// transaction, whatever the concurrency.
func (s *Store) recordResults(ctx context.Context, tx pgx.Tx, rs []Result) ([]int64, []StateChange, error) {
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
			return nil, nil, err
		}
		monitorIDs[i], jobIDs[i], checkedAt[i], durations[i] = r.MonitorID, r.JobID, r.CheckedAt, r.DurationMS
		codes[i], oks[i], kinds[i], texts[i], bodies[i] = r.StatusCode, r.OK, r.ErrorKind, r.Error, string(body)
	}
	// The partitions must exist before the statement: the rollups have no
	// default partition. This is a map lookup unless a day is new.
	if err := s.ensurePartitions(ctx, tx, checkedAt); err != nil {
		return nil, nil, fmt.Errorf("record %d results: %w", n, err)
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
		), prior AS (
			-- Locked first, so the state read is the one this update replaces.
			SELECT id, state FROM monitors WHERE id IN (SELECT monitor_id FROM latest) ORDER BY id FOR UPDATE
		), upd AS (
			-- A late result must not overwrite a newer one's state.
			UPDATE monitors m SET state = CASE WHEN l.ok THEN 'up' ELSE 'down' END, last_checked_at = l.checked_at
			FROM latest l JOIN prior p ON p.id = l.monitor_id
			WHERE m.id = l.monitor_id AND (m.last_checked_at IS NULL OR m.last_checked_at <= l.checked_at)
			RETURNING m.id, m.state, p.state AS prior_state
		), cur AS (
			SELECT m.id, m.owner_id, coalesce(upd.state, m.state) AS state
			FROM monitors m LEFT JOIN upd ON upd.id = m.id
			WHERE m.id IN (SELECT monitor_id FROM latest)
		)
		SELECT r.id, CASE WHEN cur.owner_id IS NOT NULL THEN
			pg_notify($10, jsonb_build_object('type', $11::text, 'owner_id', cur.owner_id, 'monitor_id', r.monitor_id,
				'state', cur.state, 'result', r.body || jsonb_build_object('id', r.id))::text) END
		, coalesce(cur.owner_id, 0), upd.prior_state, upd.state
		FROM r JOIN cur ON cur.id = r.monitor_id LEFT JOIN upd ON upd.id = r.monitor_id
		ORDER BY r.n`,
		monitorIDs, jobIDs, checkedAt, durations, codes, oks, kinds, texts, bodies, realtime.Channel, EventCheckResult)
	if err != nil {
		return nil, nil, fmt.Errorf("record %d results: %w", n, err)
	}
	type stored struct {
		id          int64
		owner       int64
		prior, next *State // set when the result's monitor's state was written
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (stored, error) {
		var st stored
		return st, row.Scan(&st.id, nil, &st.owner, &st.prior, &st.next)
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.ForeignKeyViolation {
		return nil, nil, fmt.Errorf("record %d results: %w", n, ErrMonitorGone)
	}
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.CheckViolation && strings.HasPrefix(pgErr.Message, "no partition") {
		// Dropped by another process since this one saw it: a retry creates it again.
		s.parts.forget(checkedAt)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("record %d results: %w", n, err)
	}
	if len(out) != n {
		return nil, nil, fmt.Errorf("record %d results: %d stored", n, len(out))
	}
	ids := make([]int64, n)
	flipped := map[int64]StateChange{}
	for i, st := range out {
		ids[i] = st.id
		if st.prior != nil && st.next != nil && *st.prior != *st.next {
			flipped[rs[i].MonitorID] = StateChange{MonitorID: rs[i].MonitorID, OwnerID: st.owner, From: *st.prior, To: *st.next}
		}
	}
	return ids, stateChanges(flipped, rs, ids), nil
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

// resultOf is the Result of a row of check_results.
func resultOf(r monitorsdb.ResultsPageRow) Result {
	res := Result{
		ID:         r.ID,
		MonitorID:  r.MonitorID,
		JobID:      r.JobID,
		CheckedAt:  r.CheckedAt,
		DurationMS: r.DurationMs,
		OK:         r.Ok,
		ErrorKind:  r.ErrorKind,
		Error:      r.Error,
	}
	if r.StatusCode != nil {
		code := int(*r.StatusCode)
		res.StatusCode = &code
	}
	return res
}

// ResultByJob returns the result a check job stored, if any.
func (s *Store) ResultByJob(ctx context.Context, jobID int64) (Result, error) {
	r, err := s.db(ctx).ResultByJob(ctx, jobID)
	if errors.Is(err, pgx.ErrNoRows) {
		return Result{}, apperr.Errorf(apperr.NotFound, "job %d stored no result", jobID)
	}
	if err != nil {
		return Result{}, fmt.Errorf("result of job %d: %w", jobID, err)
	}
	return resultOf(monitorsdb.ResultsPageRow(r)), nil
}

// ResultPage is one page of results; NextCursor is empty on the last page.
type ResultPage struct {
	Items      []Result `json:"items"`
	NextCursor string   `json:"next_cursor,omitempty"`
}

// The statements whose plans explain_test.go checks (export_test.go).
const (
	claimDueSQL      = monitorsdb.ClaimDue
	resultsPageSQL   = monitorsdb.ResultsPage
	latestResultsSQL = monitorsdb.LatestResults
)

// results returns up to limit results of a monitor in [from, to) sorting
// before (beforeAt, beforeID), newest first.
func (s *Store) results(ctx context.Context, monitorID int64, from, to, beforeAt time.Time, beforeID int64, limit int) ([]Result, error) {
	rows, err := s.db(ctx).ResultsPage(ctx, monitorsdb.ResultsPageParams{MonitorID: monitorID, FromAt: from, ToAt: to,
		BeforeAt: beforeAt, BeforeID: beforeID, Max: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("results of monitor %d: %w", monitorID, err)
	}
	items := make([]Result, len(rows))
	for i, r := range rows {
		items[i] = resultOf(r)
	}
	return items, nil
}

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
	rows, err := monitorsdb.New(tx).ClaimDue(ctx, monitorsdb.ClaimDueParams{Now: s.now(), Max: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("claim due monitors: %w", err)
	}
	due := make([]Due, len(rows))
	for i, r := range rows {
		due[i] = Due{MonitorID: r.ID, Slot: r.Slot}
	}
	return due, nil
}

// AdoptUnowned gives monitors created before accounts existed to owner.
func (s *Store) AdoptUnowned(ctx context.Context, owner int64) (int64, error) {
	n, err := s.db(ctx).AdoptUnowned(ctx, owner)
	if err != nil {
		return 0, fmt.Errorf("adopt unowned monitors: %w", err)
	}
	return n, nil
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

// PublicStatus returns the status page of the monitor published as slug.
func (s *Store) PublicStatus(ctx context.Context, slug string) (Status, error) {
	q := s.db(ctx)
	m, err := q.PublicMonitor(ctx, slug)
	if errors.Is(err, pgx.ErrNoRows) {
		return Status{}, apperr.Errorf(apperr.NotFound, "no public status page %q", slug)
	}
	if err != nil {
		return Status{}, fmt.Errorf("status page %q: %w", slug, err)
	}
	st := Status{Name: m.Name, State: State(m.State), LastCheckedAt: m.LastCheckedAt}
	now := s.now()
	up, err := q.Uptime(ctx, monitorsdb.UptimeParams{MonitorID: m.ID, Since24h: now.Add(-24 * time.Hour), Since7d: now.Add(-7 * 24 * time.Hour)})
	if err != nil {
		return Status{}, fmt.Errorf("status page %q: %w", slug, err)
	}
	if up.Checks24h > 0 {
		st.Uptime24h = &up.Uptime24h
	}
	if up.Checks7d > 0 {
		st.Uptime7d = &up.Uptime7d
	}
	rows, err := q.LatestResults(ctx, m.ID)
	if err != nil {
		return Status{}, fmt.Errorf("status page %q: %w", slug, err)
	}
	st.Recent = make([]StatusCheck, len(rows))
	for i, r := range rows {
		st.Recent[i] = StatusCheck{CheckedAt: r.CheckedAt, OK: r.Ok, DurationMS: r.DurationMs}
	}
	return st, nil
}

// Owns reports whether owner owns monitor id (for scoping jobs).
func (s *Store) Owns(ctx context.Context, owner, id int64) (bool, error) {
	return s.db(ctx).OwnsMonitor(ctx, monitorsdb.OwnsMonitorParams{ID: id, OwnerID: owner})
}
