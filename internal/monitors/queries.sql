-- internal/monitors' static SQL; `make generate` turns it into package
-- monitorsdb. What stays in Go is built at run time (stats over rollup
-- segments, partition DDL on names computed per day) or owned elsewhere
-- (RecordResults' statement).

-- ---- Monitors.

-- name: InsertMonitor :one
INSERT INTO monitors (owner_id, name, url, method, interval_seconds, timeout_ms, expected_status, enabled,
    public_slug, next_check_at, created_at, updated_at)
VALUES (sqlc.arg(owner_id)::bigint, sqlc.arg(name), sqlc.arg(url), sqlc.arg(method), sqlc.arg(interval_seconds),
    sqlc.arg(timeout_ms), sqlc.arg(expected_status), sqlc.arg(enabled), sqlc.narg(public_slug),
    sqlc.arg(now), sqlc.arg(now), sqlc.arg(now))
RETURNING *;

-- name: GetMonitor :one
SELECT * FROM monitors WHERE id = sqlc.arg(id) AND owner_id = sqlc.arg(owner_id)::bigint;

-- name: GetMonitorForUpdate :one
-- Locks the row until the transaction ends.
SELECT * FROM monitors WHERE id = sqlc.arg(id) AND owner_id = sqlc.arg(owner_id)::bigint FOR UPDATE;

-- name: LookupMonitors :many
-- Whoever owns them: for the workers.
SELECT * FROM monitors WHERE id = ANY(sqlc.arg(ids)::bigint[]);

-- name: ListMonitors :many
SELECT * FROM monitors WHERE owner_id = sqlc.arg(owner_id)::bigint AND id > sqlc.arg(after)
ORDER BY id LIMIT sqlc.arg(max);

-- name: UpdateMonitor :one
UPDATE monitors SET name = sqlc.arg(name), url = sqlc.arg(url), method = sqlc.arg(method),
    interval_seconds = sqlc.arg(interval_seconds), timeout_ms = sqlc.arg(timeout_ms),
    expected_status = sqlc.arg(expected_status), enabled = sqlc.arg(enabled), next_check_at = sqlc.arg(next_check_at),
    updated_at = sqlc.arg(now), public_slug = sqlc.narg(public_slug)
WHERE id = sqlc.arg(id)
RETURNING *;

-- name: DeleteMonitor :execrows
DELETE FROM monitors WHERE id = sqlc.arg(id) AND owner_id = sqlc.arg(owner_id)::bigint;

-- name: OwnsMonitor :one
SELECT EXISTS (SELECT 1 FROM monitors WHERE id = sqlc.arg(id) AND owner_id = sqlc.arg(owner_id)::bigint) AS owns;

-- name: AdoptUnowned :execrows
UPDATE monitors SET owner_id = sqlc.arg(owner_id)::bigint WHERE owner_id IS NULL;

-- name: ClaimDue :many
-- Claims up to max due slots at now; explain_test.go checks its plan.
WITH due AS (
    SELECT id, next_check_at, interval_seconds
    FROM monitors
    WHERE enabled AND next_check_at <= sqlc.arg(now)
    ORDER BY next_check_at
    LIMIT sqlc.arg(max)
    FOR UPDATE SKIP LOCKED
)
UPDATE monitors m
SET next_check_at = due.next_check_at + make_interval(secs => due.interval_seconds *
    (floor(extract(epoch FROM sqlc.arg(now)::timestamptz - due.next_check_at) / due.interval_seconds) + 1))
FROM due
WHERE m.id = due.id
RETURNING m.id, due.next_check_at AS slot;

-- ---- Results.

-- name: ResultByJob :one
SELECT id, monitor_id, job_id, checked_at, duration_ms, status_code, ok,
    coalesce(error_kind, '')::text AS error_kind, coalesce(error, '')::text AS error
FROM check_results WHERE job_id = sqlc.arg(job_id)::bigint;

-- name: ResultsPage :many
-- Newest first, in [from, to), before (before_at, before_id); explain_test.go
-- checks its plan.
SELECT id, monitor_id, job_id, checked_at, duration_ms, status_code, ok,
    coalesce(error_kind, '')::text AS error_kind, coalesce(error, '')::text AS error
FROM check_results
WHERE monitor_id = sqlc.arg(monitor_id) AND checked_at >= sqlc.arg(from_at) AND checked_at < sqlc.arg(to_at)
    AND (checked_at, id) < (sqlc.arg(before_at)::timestamptz, sqlc.arg(before_id)::bigint)
ORDER BY checked_at DESC, id DESC
LIMIT sqlc.arg(max);

-- ---- Public status pages.

-- name: PublicMonitor :one
SELECT id, name, state, last_checked_at FROM monitors WHERE public_slug = sqlc.arg(slug)::text;

-- name: Uptime :one
-- A period without checks has no uptime: sqlc types avg() as never NULL,
-- so each comes with its count of checks.
SELECT count(*) FILTER (WHERE checked_at >= sqlc.arg(since_24h)) AS checks_24h,
    coalesce(avg(ok::int) FILTER (WHERE checked_at >= sqlc.arg(since_24h)), 0)::float8 AS uptime_24h,
    count(*) AS checks_7d, coalesce(avg(ok::int), 0)::float8 AS uptime_7d
FROM check_results WHERE monitor_id = sqlc.arg(monitor_id) AND checked_at >= sqlc.arg(since_7d);

-- name: LatestResults :many
-- explain_test.go checks its plan.
SELECT checked_at, ok, duration_ms FROM check_results
WHERE monitor_id = sqlc.arg(monitor_id) ORDER BY checked_at DESC, id DESC LIMIT 50;

-- ---- Partitions. In partitions.go stay the DDL that names a partition
-- (DETACH, DROP: an identifier cannot be a parameter) and the catalog
-- queries on pg_inherits, a table sqlc's catalog lacks.

-- name: MissingPartitions :one
SELECT count(*) FROM unnest(sqlc.arg(names)::text[]) AS n(name) WHERE to_regclass(n.name) IS NULL;

-- name: EnsurePartitions :one
SELECT check_results_ensure_partitions(sqlc.arg(from_at), sqlc.arg(to_at));

-- name: EnsureDayPartitions :exec
SELECT check_results_ensure_partitions(d.day, d.day + interval '24 hours')
FROM unnest(sqlc.arg(days)::timestamptz[]) AS d(day);

-- name: PruneDefaultPartition :exec
DELETE FROM check_results_default WHERE checked_at < sqlc.arg(before);
