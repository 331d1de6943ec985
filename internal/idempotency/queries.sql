-- internal/idempotency's SQL; `make generate` turns it into package idempotencydb.

-- name: ClaimKey :execrows
-- Claims a key that is new or expired; 0 rows: the key is live (its answer
-- is stored, or its first request is still running and holds the row).
INSERT INTO idempotency_keys (owner_id, key, request_hash, status, body, expires_at)
VALUES (sqlc.arg(owner_id), sqlc.arg(key), sqlc.arg(request_hash), 0, 'null', now() + sqlc.arg(ttl)::interval)
ON CONFLICT (owner_id, key) DO UPDATE
    SET request_hash = EXCLUDED.request_hash, status = 0, body = 'null', expires_at = EXCLUDED.expires_at
    WHERE idempotency_keys.expires_at < now();

-- name: GetAnswer :one
SELECT request_hash, status, body FROM idempotency_keys WHERE owner_id = $1 AND key = $2;

-- name: SaveAnswer :exec
UPDATE idempotency_keys SET status = $3, body = $4 WHERE owner_id = $1 AND key = $2;

-- name: DeleteExpired :exec
DELETE FROM idempotency_keys WHERE expires_at < now();
