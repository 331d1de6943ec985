-- Incidents (internal/monitors/incidents): confirmed outages of monitors,
-- their timelines, and the channels their owners are notified on.

-- Notification channels: where a user is told of incidents.
CREATE TABLE notification_channels (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id   bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       text        NOT NULL CHECK (kind IN ('webhook', 'email')),
    name       text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    -- The webhook's URL or the email address.
    target     text        NOT NULL CHECK (char_length(target) BETWEEN 3 AND 2048),
    -- The webhook's signing key (shown once, at creation).
    secret     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'webhook') = (secret IS NOT NULL))
);

CREATE INDEX notification_channels_owner_idx ON notification_channels (owner_id, id);

-- An incident: a monitor's outage, confirmed by re-checks, until it
-- recovers or its owner resolves it.
CREATE TABLE incidents (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    monitor_id      bigint      NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
    owner_id        bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    state           text        NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'acknowledged', 'resolved')),
    cause           text        NOT NULL DEFAULT '' CHECK (char_length(cause) <= 500),
    -- The check that saw the monitor go down, and when.
    detected_at     timestamptz NOT NULL,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    acknowledged_by bigint      REFERENCES users (id) ON DELETE SET NULL,
    resolved_at     timestamptz,
    resolution      text        CHECK (resolution IN ('recovered', 'manual')),
    resolved_by     bigint      REFERENCES users (id) ON DELETE SET NULL,
    -- The workflow that confirmed it (workflows are deleted after their
    -- retention: no foreign key), and the trace its notifications join.
    workflow_id     bigint      NOT NULL,
    traceparent     text,
    CHECK ((state = 'resolved') = (resolved_at IS NOT NULL AND resolution IS NOT NULL)),
    CHECK ((state = 'open') = (acknowledged_at IS NULL) OR state = 'resolved')
);

-- At most one incident not resolved per monitor: the confirmation that
-- opens it is idempotent, whatever the concurrency.
CREATE UNIQUE INDEX incidents_active_idx ON incidents (monitor_id) WHERE state <> 'resolved';
CREATE INDEX incidents_owner_idx ON incidents (owner_id, id DESC);
CREATE INDEX incidents_recent_idx ON incidents (monitor_id, id DESC);

-- What happened to an incident, in order.
CREATE TABLE incident_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id bigint      NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind        text        NOT NULL CHECK (kind IN ('detected', 'confirmed', 'opened', 'notified', 'notify_failed',
                                                     'acknowledged', 'resolved')),
    detail      text        NOT NULL DEFAULT '' CHECK (char_length(detail) <= 1000)
);

CREATE INDEX incident_events_incident_idx ON incident_events (incident_id, id);
