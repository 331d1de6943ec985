-- Responses to POSTs sent with an Idempotency-Key, so that a retried request
-- (after a timeout, a 503, a dropped connection) returns the first answer
-- instead of creating again. The response is stored in the transaction that
-- made the change. Keys are per user and kept for a day.
CREATE TABLE idempotency_keys (
    owner_id     bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key          text        NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    request_hash bytea       NOT NULL,
    status       integer     NOT NULL,
    body         jsonb       NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (owner_id, key)
);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
