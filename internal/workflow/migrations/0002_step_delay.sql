-- A step may wait a while after its dependencies succeeded before it runs
-- (Call.After): its job is scheduled that much later.
ALTER TABLE workflow_steps ADD COLUMN delay_ms integer NOT NULL DEFAULT 0
    CHECK (delay_ms BETWEEN 0 AND 86400000);
