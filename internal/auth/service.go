package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beaconhq/beacon/internal/apperr"
)

// Config tunes the service.
type Config struct {
	Secret     []byte        // HMAC key for access tokens (>= 32 bytes)
	AccessTTL  time.Duration // access token lifetime
	RefreshTTL time.Duration // refresh token lifetime
	BcryptCost int           // 0: bcrypt.DefaultCost+1
	// Failed sign-ins of one account (whatever the address) within
	// FailureWindow before each further attempt must wait: 1 s after the
	// last failure, doubling with each failure, at most MaxDelay (1 min).
	// The owner is never locked out for longer than MaxDelay, however long
	// an attacker keeps guessing.
	MaxFailures int
	MaxDelay    time.Duration
	// Failed sign-ins from one address (any account) within FailureWindow
	// before that address must wait for the window to pass (default 20).
	MaxAddressFailures int
	FailureWindow      time.Duration
	Now                func() time.Time
}

// Service issues and checks tokens and manages users and clients.
type Service struct {
	pool *pgxpool.Pool
	cfg  Config
	// dummyHash keeps a login for an unknown account as slow as one for a
	// known account, so timing does not reveal which accounts exist.
	dummyHash string
	verified  *verifiedTokens
	users     userStates
}

// tokenLeeway is the clock skew allowed on a token's expiry.
const tokenLeeway = 5 * time.Second

// maxVerifiedTokens bounds the verified-token cache: at most a few MB.
const maxVerifiedTokens = 10000

// dummyHash11 is a bcrypt hash (cost 11) of a password nobody uses,
// precomputed so that starting a service costs no hashing.
const dummyHash11 = "$2a$11$iHCRDdUxrK2PExp3gIR4terLfJNhN1vcuiW1u5OYQwku74CwE1Bsq"

const (
	issuer   = "beacon"
	audience = "beacon-api"
)

// NewService returns a Service on pool.
func NewService(pool *pgxpool.Pool, cfg Config) (*Service, error) {
	if len(cfg.Secret) < 32 {
		return nil, errors.New("auth: the token secret must be at least 32 bytes")
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = 15 * time.Minute
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = 30 * 24 * time.Hour
	}
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = 11
	}
	if cfg.MaxFailures == 0 {
		cfg.MaxFailures = 5
	}
	if cfg.MaxDelay == 0 {
		cfg.MaxDelay = time.Minute
	}
	if cfg.MaxAddressFailures == 0 {
		cfg.MaxAddressFailures = 20
	}
	if cfg.FailureWindow == 0 {
		cfg.FailureWindow = 15 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	dummy := dummyHash11
	if cfg.BcryptCost != 11 {
		var err error
		if dummy, err = HashPassword("beacon-dummy-password-never-used", cfg.BcryptCost); err != nil {
			return nil, err
		}
	}
	return &Service{pool: pool, cfg: cfg, dummyHash: dummy, verified: newVerifiedTokens(maxVerifiedTokens),
		users: userStates{m: map[int64]userState{}}}, nil
}

// ---- Tokens.

// Token is a successful grant (RFC 6749 section 5.1).
type Token struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

type claims struct {
	jwt.RegisteredClaims
	Role     Role   `json:"role"`
	ClientID string `json:"client_id,omitempty"`
}

func (s *Service) accessToken(p Principal) (string, error) {
	now := s.cfg.Now()
	var jti [12]byte
	_, _ = rand.Read(jti[:])
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Audience:  jwt.ClaimStrings{audience},
			Subject:   strconv.FormatInt(p.UserID, 10),
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.cfg.AccessTTL)),
			ID:        base64.RawURLEncoding.EncodeToString(jti[:]),
		},
		Role:     p.Role,
		ClientID: p.ClientID,
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.cfg.Secret)
}

// Authenticate verifies an access token and returns its principal. Only
// HS256 with our key, our issuer and audience, and an unexpired token pass;
// a token stops working as soon as its user is deleted or disabled, or its
// client revoked, and carries its user's current role. It returns
// ErrUnauthenticated for a token that does not pass, and database errors
// as they are.
func (s *Service) Authenticate(ctx context.Context, token string) (Principal, error) {
	now := s.cfg.Now()
	p, ok := s.verified.get(token, now)
	if !ok {
		var err error
		if p, err = s.verify(token); err != nil {
			return Principal{}, err
		}
		s.verified.put(token, p, now)
	}
	// What the token cannot tell: is its user still there, enabled, and in
	// which role now; is its client still active.
	return s.checkUser(ctx, p)
}

// verify checks a token's signature and claims.
func (s *Service) verify(token string) (Principal, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return s.cfg.Secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer), jwt.WithAudience(audience),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(s.cfg.Now), jwt.WithLeeway(tokenLeeway))
	if err != nil {
		return Principal{}, ErrUnauthenticated
	}
	id, err := strconv.ParseInt(c.Subject, 10, 64)
	if err != nil || !c.Role.Valid() {
		return Principal{}, ErrUnauthenticated
	}
	return Principal{UserID: id, Role: c.Role, ClientID: c.ClientID, Expires: c.ExpiresAt.Time}, nil
}

func (s *Service) issue(ctx context.Context, q pgx.Tx, p Principal, family string) (Token, error) {
	access, err := s.accessToken(p)
	if err != nil {
		return Token{}, fmt.Errorf("sign access token: %w", err)
	}
	t := Token{AccessToken: access, TokenType: "Bearer", ExpiresIn: int(s.cfg.AccessTTL.Seconds())}
	if family == "" {
		return t, nil // client credentials: no refresh token (RFC 6749 4.4.3)
	}
	raw := randomToken()
	if _, err := q.Exec(ctx, `INSERT INTO refresh_tokens (token_hash, family, user_id, expires_at) VALUES ($1, $2, $3, $4)`,
		hashToken(raw), family, p.UserID, s.cfg.Now().Add(s.cfg.RefreshTTL)); err != nil {
		return Token{}, fmt.Errorf("store refresh token: %w", err)
	}
	t.RefreshToken = raw
	return t, nil
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashToken(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}

// PasswordGrant logs a user in (RFC 6749 4.3). remote identifies the caller
// for rate limiting (e.g. the client IP).
func (s *Service) PasswordGrant(ctx context.Context, email, password, remote string) (Token, error) {
	account, address := "login:"+normalizeEmail(email), "addr:"+remote
	if err := s.checkRateLimit(ctx, account, address); err != nil {
		return Token{}, err
	}
	var (
		id   int64
		hash string
		role Role
	)
	err := s.pool.QueryRow(ctx, `SELECT id, password_hash, role FROM users WHERE lower(email) = $1 AND disabled_at IS NULL`,
		normalizeEmail(email)).Scan(&id, &hash, &role)
	if errors.Is(err, pgx.ErrNoRows) {
		checkPassword(s.dummyHash, password)
		return Token{}, s.fail(ctx, errBadCredentials, account, address)
	}
	if err != nil {
		return Token{}, fmt.Errorf("password grant: %w", err)
	}
	if !checkPassword(hash, password) {
		return Token{}, s.fail(ctx, errBadCredentials, account, address)
	}
	return s.inTx(ctx, func(tx pgx.Tx) (Token, error) {
		return s.issue(ctx, tx, Principal{UserID: id, Role: role}, randomToken())
	})
}

// ClientCredentialsGrant authenticates a machine client (RFC 6749 4.4); it
// acts as the user who created it.
func (s *Service) ClientCredentialsGrant(ctx context.Context, clientID, secret, remote string) (Token, error) {
	account, address := "client:"+clientID, "addr:"+remote
	if err := s.checkRateLimit(ctx, account, address); err != nil {
		return Token{}, err
	}
	var (
		userID int64
		hash   []byte
		role   Role
	)
	err := s.pool.QueryRow(ctx, `
		SELECT c.user_id, c.secret_hash, u.role FROM api_clients c JOIN users u ON u.id = c.user_id
		WHERE c.client_id = $1 AND c.revoked_at IS NULL AND u.disabled_at IS NULL`, clientID).Scan(&userID, &hash, &role)
	if errors.Is(err, pgx.ErrNoRows) {
		return Token{}, s.fail(ctx, errBadClient, account, address)
	}
	if err != nil {
		return Token{}, fmt.Errorf("client credentials grant: %w", err)
	}
	if subtle.ConstantTimeCompare(hash, hashToken(secret)) != 1 {
		return Token{}, s.fail(ctx, errBadClient, account, address)
	}
	return s.issue(ctx, nil, Principal{UserID: userID, Role: role, ClientID: clientID}, "")
}

// RefreshGrant exchanges a refresh token for new tokens (RFC 6749 6),
// rotating it. A token used twice is taken as stolen: its whole family is
// revoked, so neither the thief nor the victim can go on with it.
func (s *Service) RefreshGrant(ctx context.Context, refresh string) (Token, error) {
	tok, err := s.inTx(ctx, func(tx pgx.Tx) (Token, error) {
		var (
			id, userID        int64
			family            string
			expires           time.Time
			usedAt, revokedAt *time.Time
			role              Role
		)
		err := tx.QueryRow(ctx, `
			SELECT r.id, r.user_id, r.family, r.expires_at, r.used_at, r.revoked_at, u.role
			FROM refresh_tokens r JOIN users u ON u.id = r.user_id AND u.disabled_at IS NULL
			WHERE r.token_hash = $1 FOR UPDATE OF r`, hashToken(refresh)).Scan(&id, &userID, &family, &expires, &usedAt, &revokedAt, &role)
		if errors.Is(err, pgx.ErrNoRows) {
			return Token{}, errBadRefresh
		}
		if err != nil {
			return Token{}, fmt.Errorf("refresh grant: %w", err)
		}
		now := s.cfg.Now()
		if usedAt != nil {
			if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = $2 WHERE family = $1 AND revoked_at IS NULL`, family, now); err != nil {
				return Token{}, fmt.Errorf("revoke token family: %w", err)
			}
			return Token{}, errReuse
		}
		if revokedAt != nil || !now.Before(expires) {
			return Token{}, errBadRefresh
		}
		if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET used_at = $2 WHERE id = $1`, id, now); err != nil {
			return Token{}, fmt.Errorf("refresh grant: %w", err)
		}
		return s.issue(ctx, tx, Principal{UserID: userID, Role: role}, family)
	})
	if errors.Is(err, errReuse) {
		// The family's revocation must be committed even though the grant fails.
		return Token{}, errBadRefresh
	}
	return tok, err
}

// errReuse commits the transaction (revoking the family) and then fails.
var errReuse = errors.New("refresh token reused")

// RevokeRefresh revokes a refresh token's whole family (logout, RFC 7009).
// Unknown tokens are not an error, as the RFC asks.
func (s *Service) RevokeRefresh(ctx context.Context, refresh string) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE refresh_tokens SET revoked_at = $2
		WHERE family = (SELECT family FROM refresh_tokens WHERE token_hash = $1) AND revoked_at IS NULL`,
		hashToken(refresh), s.cfg.Now())
	if err != nil {
		return fmt.Errorf("revoke refresh token: %w", err)
	}
	return nil
}

// inTx runs f in a transaction, committing when f returns nil or errReuse.
func (s *Service) inTx(ctx context.Context, f func(pgx.Tx) (Token, error)) (Token, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Token{}, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	t, err := f(tx)
	if err != nil && !errors.Is(err, errReuse) {
		return Token{}, err
	}
	if cerr := tx.Commit(ctx); cerr != nil {
		return Token{}, cerr
	}
	return t, err
}

// ---- Rate limiting of failed logins, in the database so every replica agrees.

func (s *Service) checkRateLimit(ctx context.Context, account, address string) error {
	now := s.cfg.Now()
	var (
		accountN, addressN  int
		lastFail, firstFail *time.Time
	)
	if err := s.pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE key = $1), max(failed_at) FILTER (WHERE key = $1),
		       count(*) FILTER (WHERE key = $2), min(failed_at) FILTER (WHERE key = $2)
		FROM login_failures WHERE key IN ($1, $2) AND failed_at > $3`,
		account, address, now.Add(-s.cfg.FailureWindow)).Scan(&accountN, &lastFail, &addressN, &firstFail); err != nil {
		return fmt.Errorf("rate limit: %w", err)
	}
	var wait time.Duration
	if accountN >= s.cfg.MaxFailures && lastFail != nil {
		delay := s.cfg.MaxDelay
		if extra := accountN - s.cfg.MaxFailures; extra < 30 {
			delay = min(delay, time.Second<<extra)
		}
		wait = lastFail.Add(delay).Sub(now)
	}
	if addressN >= s.cfg.MaxAddressFailures && firstFail != nil {
		wait = max(wait, firstFail.Add(s.cfg.FailureWindow).Sub(now))
	}
	if wait <= 0 {
		return nil
	}
	return &OAuthError{Code: "slow_down", Description: "too many failed attempts; try again later",
		RetryAfter: max(1, int(math.Ceil(wait.Seconds())))}
}

// fail records a failed sign-in under each key and returns e.
func (s *Service) fail(ctx context.Context, e *OAuthError, keys ...string) error {
	now := s.cfg.Now()
	if _, err := s.pool.Exec(ctx, `INSERT INTO login_failures (key, failed_at) SELECT unnest($1::text[]), $2`, keys, now); err != nil {
		return fmt.Errorf("record failed login: %w", err)
	}
	// Old rows are useless; keep the table small without a cron.
	_, _ = s.pool.Exec(ctx, `DELETE FROM login_failures WHERE failed_at < $1`, now.Add(-24*time.Hour))
	return e
}

// ---- Users.

// User is an account.
type User struct {
	ID        int64     `json:"id"`
	Email     string    `json:"email"`
	Role      Role      `json:"role"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

// CreateUser adds an account.
func (s *Service) CreateUser(ctx context.Context, email, password string, role Role) (User, error) {
	email = strings.TrimSpace(email)
	if !strings.Contains(email, "@") || len(email) < 3 || len(email) > 254 {
		return User{}, apperr.InvalidField("email", "is not an email address")
	}
	if !role.Valid() {
		return User{}, apperr.InvalidField("role", "must be admin or member")
	}
	if err := ValidatePassword(password); err != nil {
		return User{}, apperr.InvalidField("password", "%s", err.Error())
	}
	hash, err := HashPassword(password, s.cfg.BcryptCost)
	if err != nil {
		return User{}, err
	}
	var u User
	err = s.pool.QueryRow(ctx, `INSERT INTO users (email, password_hash, role) VALUES ($1, $2, $3)
		RETURNING id, email, role, created_at`, email, hash, role).Scan(&u.ID, &u.Email, &u.Role, &u.CreatedAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return User{}, apperr.Errorf(apperr.Conflict, "a user with this email exists")
	}
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// EnsureAdmin creates the first admin from configuration unless an account
// with that email exists; it returns the account's id.
func (s *Service) EnsureAdmin(ctx context.Context, email, password string) (int64, bool, error) {
	var id int64
	err := s.pool.QueryRow(ctx, `SELECT id FROM users WHERE lower(email) = $1`, normalizeEmail(email)).Scan(&id)
	if err == nil {
		return id, false, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, false, fmt.Errorf("find admin: %w", err)
	}
	u, err := s.CreateUser(ctx, email, password, RoleAdmin)
	if apperr.CodeOf(err) == apperr.Conflict { // another replica won the race
		return s.EnsureAdmin(ctx, email, password)
	}
	if err != nil {
		return 0, false, fmt.Errorf("create first admin: %w", err)
	}
	return u.ID, true, nil
}

// Users lists accounts by id.
func (s *Service) Users(ctx context.Context) ([]User, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, email, role, disabled_at IS NOT NULL, created_at FROM users ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) {
		var u User
		return u, r.Scan(&u.ID, &u.Email, &u.Role, &u.Disabled, &u.CreatedAt)
	})
}

// GetUser returns one account.
func (s *Service) GetUser(ctx context.Context, id int64) (User, error) {
	var u User
	err := s.pool.QueryRow(ctx, `SELECT id, email, role, disabled_at IS NOT NULL, created_at FROM users WHERE id = $1`, id).
		Scan(&u.ID, &u.Email, &u.Role, &u.Disabled, &u.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, apperr.Errorf(apperr.NotFound, "user %d not found", id)
	}
	return u, err
}

// DeleteUser removes an account with its monitors, clients and tokens.
func (s *Service) DeleteUser(ctx context.Context, id int64) error {
	// The user's tokens stop working on every replica at commit.
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM users WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return errUserNotFound(id)
		}
		return notifyUserChanged(ctx, tx, id)
	})
	if err == nil {
		// This replica forgets at once; the others when they hear the NOTIFY.
		s.users.forget(id)
	}
	return wrapUser("delete user", id, err)
}

// ---- Machine clients.

// Client is a machine client; Secret is only set when it is created.
type Client struct {
	ID        int64      `json:"id"`
	UserID    int64      `json:"user_id"`
	Name      string     `json:"name"`
	ClientID  string     `json:"client_id"`
	Secret    string     `json:"client_secret,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// CreateClient makes a client for a user and returns its secret, once.
func (s *Service) CreateClient(ctx context.Context, userID int64, name string) (Client, error) {
	var c Client
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		c, err = s.CreateClientTx(ctx, tx, userID, name)
		return err
	})
	return c, err
}

// CreateClientTx is CreateClient in tx, for a caller that stores more in
// the same transaction (an idempotent request's answer).
func (s *Service) CreateClientTx(ctx context.Context, tx pgx.Tx, userID int64, name string) (Client, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 200 {
		return Client{}, apperr.InvalidField("name", "must be 1 to 200 characters")
	}
	c := Client{UserID: userID, Name: name, ClientID: "bcn_" + randomToken()[:20], Secret: randomToken()}
	err := tx.QueryRow(ctx, `INSERT INTO api_clients (user_id, name, client_id, secret_hash) VALUES ($1, $2, $3, $4)
		RETURNING id, created_at`, userID, name, c.ClientID, hashToken(c.Secret)).Scan(&c.ID, &c.CreatedAt)
	if err != nil {
		return Client{}, fmt.Errorf("create client: %w", err)
	}
	return c, nil
}

// Clients lists the clients of a user, or of everyone when userID is 0.
func (s *Service) Clients(ctx context.Context, userID int64) ([]Client, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, user_id, name, client_id, created_at, revoked_at FROM api_clients
		WHERE $1 = 0 OR user_id = $1 ORDER BY id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Client, error) {
		var c Client
		return c, r.Scan(&c.ID, &c.UserID, &c.Name, &c.ClientID, &c.CreatedAt, &c.RevokedAt)
	})
}

// RevokeClient revokes a client of userID (any client when userID is 0).
// Its access tokens stop working at once.
func (s *Service) RevokeClient(ctx context.Context, userID, id int64) error {
	tag, err := s.pool.Exec(ctx, `UPDATE api_clients SET revoked_at = coalesce(revoked_at, $3)
		WHERE id = $1 AND ($2 = 0 OR user_id = $2)`, id, userID, s.cfg.Now())
	if err != nil {
		return fmt.Errorf("revoke client %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return apperr.Errorf(apperr.NotFound, "client %d not found", id)
	}
	return nil
}
