-- internal/monitors/incidents' SQL; `make generate` turns it into package
-- incidentsdb. Every statement is scoped by owner where a user acts; the
-- workflow steps act for the owner their workflow was started for. An
-- owner_id of 0 in GetIncident and GetChannel means anyone's.

-- ---- Incidents.

-- name: GetIncident :one
SELECT i.id, i.monitor_id, m.name AS monitor_name, i.state, i.cause, i.detected_at, i.opened_at,
    i.acknowledged_at, i.resolved_at, coalesce(i.resolution, '')::text AS resolution, i.workflow_id
FROM incidents i JOIN monitors m ON m.id = i.monitor_id
WHERE i.id = sqlc.arg(id) AND (sqlc.arg(owner_id)::bigint = 0 OR i.owner_id = sqlc.arg(owner_id)::bigint);

-- name: ListIncidents :many
-- Newest first, before the incident id before (0: from the newest); an
-- empty states, a monitor_id of 0: all.
SELECT i.id, i.monitor_id, m.name AS monitor_name, i.state, i.cause, i.detected_at, i.opened_at,
    i.acknowledged_at, i.resolved_at, coalesce(i.resolution, '')::text AS resolution, i.workflow_id
FROM incidents i JOIN monitors m ON m.id = i.monitor_id
WHERE i.owner_id = sqlc.arg(owner_id)
    AND (cardinality(sqlc.arg(states)::text[]) = 0 OR i.state = ANY(sqlc.arg(states)::text[]))
    AND (sqlc.arg(monitor_id)::bigint = 0 OR i.monitor_id = sqlc.arg(monitor_id)::bigint)
    AND (sqlc.arg(before)::bigint = 0 OR i.id < sqlc.arg(before)::bigint)
ORDER BY i.id DESC LIMIT sqlc.arg(max);

-- name: PublicIncidents :many
-- Those not resolved and those resolved within window_seconds, newest first.
SELECT i.id, i.state, i.opened_at, i.resolved_at
FROM incidents i JOIN monitors m ON m.id = i.monitor_id
WHERE m.public_slug = sqlc.arg(slug)::text
    AND (i.state <> 'resolved' OR i.resolved_at > now() - make_interval(secs => sqlc.arg(window_seconds)::float8))
ORDER BY i.id DESC LIMIT 20;

-- name: ActiveIncident :one
-- The monitor's incident not resolved (at most one: incidents_active_idx).
SELECT id, workflow_id FROM incidents WHERE monitor_id = sqlc.arg(monitor_id) AND state <> 'resolved';

-- name: OpenIncident :one
-- No row when an incident is already open for the monitor.
INSERT INTO incidents (monitor_id, owner_id, cause, detected_at, workflow_id, traceparent)
VALUES (sqlc.arg(monitor_id), sqlc.arg(owner_id), sqlc.arg(cause), sqlc.arg(detected_at), sqlc.arg(workflow_id),
    nullif(sqlc.arg(traceparent)::text, ''))
ON CONFLICT (monitor_id) WHERE state <> 'resolved' DO NOTHING
RETURNING id;

-- name: IncidentTarget :one
-- Whom an incident's notification is for, and the URL its monitor checks.
SELECT i.owner_id, m.url FROM incidents i JOIN monitors m ON m.id = i.monitor_id WHERE i.id = sqlc.arg(id);

-- name: IncidentTraceparent :one
SELECT traceparent FROM incidents WHERE id = sqlc.arg(id);

-- name: LockIncident :one
-- Locks the row until the transaction ends.
SELECT state FROM incidents WHERE id = sqlc.arg(id) AND owner_id = sqlc.arg(owner_id) FOR UPDATE;

-- name: AcknowledgeIncident :exec
UPDATE incidents SET state = 'acknowledged', acknowledged_at = now(), acknowledged_by = sqlc.arg(user_id)::bigint
WHERE id = sqlc.arg(id);

-- name: ResolveIncident :exec
-- By hand.
UPDATE incidents SET state = 'resolved', resolved_at = now(), resolution = 'manual',
    resolved_by = sqlc.arg(user_id)::bigint
WHERE id = sqlc.arg(id);

-- name: ResolveRecovered :one
-- No row when the monitor has no incident open.
UPDATE incidents SET state = 'resolved', resolved_at = now(), resolution = 'recovered'
WHERE monitor_id = sqlc.arg(monitor_id) AND state <> 'resolved'
RETURNING id;

-- name: CountOpenIncidents :one
-- Every owner's.
SELECT count(*) FROM incidents WHERE state <> 'resolved';

-- name: AddEvent :exec
INSERT INTO incident_events (incident_id, kind, detail) VALUES (sqlc.arg(incident_id), sqlc.arg(kind), sqlc.arg(detail));

-- name: Timeline :many
SELECT at, kind, detail FROM incident_events WHERE incident_id = sqlc.arg(incident_id) ORDER BY id LIMIT sqlc.arg(max);

-- name: MonitorState :one
SELECT state FROM monitors WHERE id = sqlc.arg(id) AND owner_id = sqlc.arg(owner_id)::bigint;

-- ---- Channels.

-- name: GetChannel :one
SELECT id, owner_id, kind, name, target, coalesce(secret, '')::text AS secret, created_at
FROM notification_channels
WHERE id = sqlc.arg(id) AND (sqlc.arg(owner_id)::bigint = 0 OR owner_id = sqlc.arg(owner_id)::bigint);

-- name: OwnerChannels :many
-- By id, after the channel id after.
SELECT id, owner_id, kind, name, target, coalesce(secret, '')::text AS secret, created_at
FROM notification_channels
WHERE owner_id = sqlc.arg(owner_id) AND id > sqlc.arg(after) ORDER BY id LIMIT sqlc.arg(max);

-- name: LockOwnerChannels :exec
-- Serializes the creations of owner's channels until the transaction ends.
SELECT pg_advisory_xact_lock(hashtextextended('notification_channels', sqlc.arg(owner_id)::bigint));

-- name: CountChannels :one
SELECT count(*) FROM notification_channels WHERE owner_id = sqlc.arg(owner_id);

-- name: InsertChannel :one
INSERT INTO notification_channels (owner_id, kind, name, target, secret)
VALUES (sqlc.arg(owner_id), sqlc.arg(kind), sqlc.arg(name), sqlc.arg(target), nullif(sqlc.arg(secret)::text, ''))
RETURNING id, owner_id, kind, name, target, coalesce(secret, '')::text AS secret, created_at;

-- name: DeleteChannel :execrows
DELETE FROM notification_channels WHERE id = sqlc.arg(id) AND owner_id = sqlc.arg(owner_id);
