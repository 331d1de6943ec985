-- The monitors domain's tables. IF NOT EXISTS: databases migrated before
-- migrations belonged to modules already hold these tables, from the
-- platform's former migrations 1 and 2.

-- Monitors: HTTP endpoints checked on a schedule, owned by a user.
CREATE TABLE IF NOT EXISTS monitors (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    url              text        NOT NULL CHECK (char_length(url) BETWEEN 1 AND 2048),
    method           text        NOT NULL CHECK (method IN ('GET', 'HEAD', 'POST')),
    interval_seconds integer     NOT NULL CHECK (interval_seconds BETWEEN 10 AND 86400),
    timeout_ms       integer     NOT NULL CHECK (timeout_ms BETWEEN 100 AND 60000),
    expected_status  integer[]   NOT NULL DEFAULT '{}',
    enabled          boolean     NOT NULL DEFAULT true,
    state            text        NOT NULL DEFAULT 'unknown' CHECK (state IN ('unknown', 'up', 'down')),
    last_checked_at  timestamptz,
    -- The next slot the scheduler will enqueue; it only moves forward.
    next_check_at    timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    owner_id         bigint REFERENCES users (id) ON DELETE CASCADE,
    -- Publishes a status page at /v1/public/status/{public_slug}.
    public_slug      text UNIQUE CHECK (public_slug ~ '^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$')
);

CREATE INDEX IF NOT EXISTS monitors_due_idx ON monitors (next_check_at) WHERE enabled;

-- Check results: one row per check, pruned after the retention period.
CREATE TABLE IF NOT EXISTS check_results (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    monitor_id  bigint           NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
    job_id      bigint,
    checked_at  timestamptz      NOT NULL,
    duration_ms double precision NOT NULL CHECK (duration_ms >= 0),
    status_code integer,
    ok          boolean          NOT NULL,
    error_kind  text,
    error       text
);

-- Serves both the paginated listing (newest first) and the stats range scan
-- as an index-only scan.
CREATE INDEX IF NOT EXISTS check_results_monitor_time_idx
    ON check_results (monitor_id, checked_at DESC, id DESC) INCLUDE (ok, duration_ms);
CREATE INDEX IF NOT EXISTS check_results_job_idx ON check_results (job_id) WHERE job_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS check_results_checked_at_idx ON check_results (checked_at);
CREATE INDEX IF NOT EXISTS monitors_owner_idx ON monitors (owner_id, id);
