-- internal/auth's SQL; `make generate` turns it into package authdb.

-- ---- Tokens.

-- name: InsertRefreshToken :exec
INSERT INTO refresh_tokens (token_hash, family, user_id, expires_at) VALUES ($1, $2, $3, $4);

-- name: PasswordLogin :one
SELECT id, password_hash, role FROM users WHERE lower(email) = sqlc.arg(email) AND disabled_at IS NULL;

-- name: ClientLogin :one
SELECT c.user_id, c.secret_hash, u.role FROM api_clients c JOIN users u ON u.id = c.user_id
WHERE c.client_id = $1 AND c.revoked_at IS NULL AND u.disabled_at IS NULL;

-- name: RefreshTokenForUpdate :one
SELECT r.id, r.user_id, r.family, r.expires_at, r.used_at, r.revoked_at, u.role
FROM refresh_tokens r JOIN users u ON u.id = r.user_id AND u.disabled_at IS NULL
WHERE r.token_hash = $1 FOR UPDATE OF r;

-- name: RevokeRefreshFamily :exec
UPDATE refresh_tokens SET revoked_at = $2 WHERE family = $1 AND revoked_at IS NULL;

-- name: UseRefreshToken :exec
UPDATE refresh_tokens SET used_at = $2 WHERE id = $1;

-- name: RevokeRefreshFamilyOf :exec
UPDATE refresh_tokens SET revoked_at = sqlc.arg(revoked_at)
WHERE family = (SELECT t.family FROM refresh_tokens t WHERE t.token_hash = sqlc.arg(token_hash)) AND revoked_at IS NULL;

-- ---- Rate limiting of failed logins.

-- name: LoginFailures :one
-- account_last and address_first are the epoch when their count is 0 (sqlc
-- cannot type a nullable max() or min()).
SELECT count(*) FILTER (WHERE key = sqlc.arg(account)) AS account_failures,
       coalesce(max(failed_at) FILTER (WHERE key = sqlc.arg(account)), 'epoch')::timestamptz AS account_last,
       count(*) FILTER (WHERE key = sqlc.arg(address)) AS address_failures,
       coalesce(min(failed_at) FILTER (WHERE key = sqlc.arg(address)), 'epoch')::timestamptz AS address_first
FROM login_failures WHERE key IN (sqlc.arg(account), sqlc.arg(address)) AND failed_at > sqlc.arg(since);

-- name: RecordLoginFailures :exec
INSERT INTO login_failures (key, failed_at) SELECT unnest(sqlc.arg(keys)::text[]), sqlc.arg(failed_at);

-- name: PruneLoginFailures :exec
DELETE FROM login_failures WHERE failed_at < $1;

-- ---- Users.

-- name: CreateUser :one
INSERT INTO users (email, password_hash, role) VALUES ($1, $2, $3)
RETURNING id, email, role, created_at;

-- name: UserIDByEmail :one
SELECT id FROM users WHERE lower(email) = sqlc.arg(email);

-- name: ListUsers :many
SELECT id, email, role, (disabled_at IS NOT NULL)::bool AS disabled, created_at FROM users
WHERE id > sqlc.arg(after) ORDER BY id LIMIT sqlc.arg(max_rows);

-- name: GetUser :one
SELECT id, email, role, (disabled_at IS NOT NULL)::bool AS disabled, created_at FROM users WHERE id = $1;

-- name: DeleteUser :execrows
DELETE FROM users WHERE id = $1;

-- name: UserState :one
-- What a token cannot tell: the user's role now, whether they are enabled,
-- and the token's client if it has one of this user's (client_id is unique).
SELECT u.role, (u.disabled_at IS NULL)::bool AS active, c.id AS client_row, c.revoked_at AS client_revoked_at
FROM users u LEFT JOIN api_clients c ON c.client_id = sqlc.arg(client_id) AND c.user_id = u.id
WHERE u.id = sqlc.arg(user_id);

-- name: NotifyUserChanged :exec
SELECT pg_notify(sqlc.arg(channel)::text, sqlc.arg(payload)::text);

-- name: LockAdmins :exec
-- Admins are locked in id order, so two concurrent changes cannot each
-- believe the other admin remains.
SELECT 1 FROM users WHERE role = 'admin' ORDER BY id FOR UPDATE;

-- name: UpdateUser :one
UPDATE users SET role = coalesce(sqlc.narg(role), role),
    disabled_at = CASE WHEN sqlc.narg(disabled)::bool IS NULL THEN disabled_at
                       WHEN sqlc.narg(disabled)::bool THEN coalesce(disabled_at, now()) END
WHERE id = sqlc.arg(id)
RETURNING id, email, role, (disabled_at IS NOT NULL)::bool AS disabled, created_at;

-- name: CountEnabledAdmins :one
SELECT count(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL;

-- ---- Machine clients. A user's and everyone's are separate queries: no
-- parameter value turns the first into the second.

-- name: CreateClient :one
INSERT INTO api_clients (user_id, name, client_id, secret_hash) VALUES ($1, $2, $3, $4)
RETURNING id, created_at;

-- name: ListClientsOf :many
SELECT id, user_id, name, client_id, created_at, revoked_at FROM api_clients
WHERE user_id = sqlc.arg(user_id) AND id > sqlc.arg(after) ORDER BY id LIMIT sqlc.arg(max_rows);

-- name: ListAllClients :many
SELECT id, user_id, name, client_id, created_at, revoked_at FROM api_clients
WHERE id > sqlc.arg(after) ORDER BY id LIMIT sqlc.arg(max_rows);

-- name: RevokeClientOf :execrows
UPDATE api_clients SET revoked_at = coalesce(revoked_at, sqlc.arg(revoked_at))
WHERE id = sqlc.arg(id) AND user_id = sqlc.arg(user_id);

-- name: RevokeAnyClient :execrows
UPDATE api_clients SET revoked_at = coalesce(revoked_at, sqlc.arg(revoked_at)) WHERE id = sqlc.arg(id);
