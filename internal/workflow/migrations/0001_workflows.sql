-- Workflows (internal/workflow): a DAG of steps, each run as a River job.
-- A workflow row is locked last by every transaction that changes it (after
-- its steps, in index order), so completions, failures and cancels never
-- deadlock on each other.
CREATE TABLE workflows (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    engine       text        NOT NULL CHECK (engine ~ '^[a-z][a-z0-9_]{0,30}$'),
    kind         text        NOT NULL CHECK (length(kind) BETWEEN 1 AND 100),
    owner_id     bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    state        text        NOT NULL DEFAULT 'running'
                             CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled', 'timed_out')),
    policy       text        NOT NULL CHECK (policy IN ('fail_fast', 'continue')),
    -- Steps not yet succeeded, failed or cancelled; the transaction that
    -- brings it to 0 finishes the workflow.
    steps_total  integer     NOT NULL CHECK (steps_total BETWEEN 1 AND 10000),
    steps_left   integer     NOT NULL CHECK (steps_left >= 0),
    steps_failed integer     NOT NULL DEFAULT 0,
    -- The result: the output of result_steps[1], or (result_list) the list
    -- of their outputs in order.
    result_steps integer[]   NOT NULL,
    result_list  boolean     NOT NULL,
    error        text,
    traceparent  text,
    deadline     timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    CHECK ((state = 'running') = (finished_at IS NULL))
);

CREATE INDEX workflows_owner_idx ON workflows (owner_id, id DESC);
CREATE INDEX workflows_running_idx ON workflows (engine, deadline) WHERE state = 'running';
CREATE INDEX workflows_finished_idx ON workflows (finished_at) WHERE state <> 'running';

CREATE TABLE workflow_steps (
    workflow_id  bigint      NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    idx          integer     NOT NULL CHECK (idx >= 0),
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    kind         text        NOT NULL CHECK (length(kind) BETWEEN 1 AND 100),
    args         jsonb       NOT NULL,
    -- deps are the steps whose outputs are this step's inputs, in order;
    -- dependents the steps that wait for this one.
    deps         integer[]   NOT NULL,
    dependents   integer[]   NOT NULL,
    pending_deps integer     NOT NULL CHECK (pending_deps >= 0),
    max_attempts integer     NOT NULL CHECK (max_attempts BETWEEN 1 AND 100),
    state        text        NOT NULL CHECK (state IN ('pending', 'enqueued', 'succeeded', 'failed', 'cancelled')),
    job_id       bigint,
    attempts     integer,
    output       jsonb,
    error        text,
    enqueued_at  timestamptz,
    finished_at  timestamptz,
    PRIMARY KEY (workflow_id, idx)
);

CREATE INDEX workflow_steps_job_idx ON workflow_steps (job_id) WHERE job_id IS NOT NULL;
