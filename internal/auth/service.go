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
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/auth/authdb"
	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/page"
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
	q    *authdb.Queries // on pool; q.WithTx(tx) in a transaction
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
	return &Service{pool: pool, q: authdb.New(pool), cfg: cfg, dummyHash: dummy, verified: newVerifiedTokens(maxVerifiedTokens),
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

// issue signs an access token and, for a login (family set), stores a
// refresh token with q, which may be nil for a client credentials grant.
func (s *Service) issue(ctx context.Context, q *authdb.Queries, p Principal, family string) (Token, error) {
	access, err := s.accessToken(p)
	if err != nil {
		return Token{}, fmt.Errorf("sign access token: %w", err)
	}
	t := Token{AccessToken: access, TokenType: "Bearer", ExpiresIn: int(s.cfg.AccessTTL.Seconds())}
	if family == "" {
		return t, nil // client credentials: no refresh token (RFC 6749 4.4.3)
	}
	raw := randomToken()
	if err := q.InsertRefreshToken(ctx, authdb.InsertRefreshTokenParams{TokenHash: hashToken(raw), Family: family,
		UserID: p.UserID, ExpiresAt: s.cfg.Now().Add(s.cfg.RefreshTTL)}); err != nil {
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
	u, err := s.q.PasswordLogin(ctx, normalizeEmail(email))
	if errors.Is(err, pgx.ErrNoRows) {
		checkPassword(s.dummyHash, password)
		return Token{}, s.fail(ctx, errBadCredentials, account, address)
	}
	if err != nil {
		return Token{}, fmt.Errorf("password grant: %w", err)
	}
	if !checkPassword(u.PasswordHash, password) {
		return Token{}, s.fail(ctx, errBadCredentials, account, address)
	}
	return s.inTx(ctx, func(q *authdb.Queries) (Token, error) {
		return s.issue(ctx, q, Principal{UserID: u.ID, Role: Role(u.Role)}, randomToken())
	})
}

// ClientCredentialsGrant authenticates a machine client (RFC 6749 4.4); it
// acts as the user who created it.
func (s *Service) ClientCredentialsGrant(ctx context.Context, clientID, secret, remote string) (Token, error) {
	account, address := "client:"+clientID, "addr:"+remote
	if err := s.checkRateLimit(ctx, account, address); err != nil {
		return Token{}, err
	}
	c, err := s.q.ClientLogin(ctx, clientID)
	if errors.Is(err, pgx.ErrNoRows) {
		return Token{}, s.fail(ctx, errBadClient, account, address)
	}
	if err != nil {
		return Token{}, fmt.Errorf("client credentials grant: %w", err)
	}
	if subtle.ConstantTimeCompare(c.SecretHash, hashToken(secret)) != 1 {
		return Token{}, s.fail(ctx, errBadClient, account, address)
	}
	return s.issue(ctx, nil, Principal{UserID: c.UserID, Role: Role(c.Role), ClientID: clientID}, "")
}

// RefreshGrant exchanges a refresh token for new tokens (RFC 6749 6),
// rotating it. A token used twice is taken as stolen: its whole family is
// revoked, so neither the thief nor the victim can go on with it.
func (s *Service) RefreshGrant(ctx context.Context, refresh string) (Token, error) {
	tok, err := s.inTx(ctx, func(q *authdb.Queries) (Token, error) {
		r, err := q.RefreshTokenForUpdate(ctx, hashToken(refresh))
		if errors.Is(err, pgx.ErrNoRows) {
			return Token{}, errBadRefresh
		}
		if err != nil {
			return Token{}, fmt.Errorf("refresh grant: %w", err)
		}
		now := s.cfg.Now()
		if r.UsedAt != nil {
			if err := q.RevokeRefreshFamily(ctx, authdb.RevokeRefreshFamilyParams{Family: r.Family, RevokedAt: &now}); err != nil {
				return Token{}, fmt.Errorf("revoke token family: %w", err)
			}
			return Token{}, errReuse
		}
		if r.RevokedAt != nil || !now.Before(r.ExpiresAt) {
			return Token{}, errBadRefresh
		}
		if err := q.UseRefreshToken(ctx, authdb.UseRefreshTokenParams{ID: r.ID, UsedAt: &now}); err != nil {
			return Token{}, fmt.Errorf("refresh grant: %w", err)
		}
		return s.issue(ctx, q, Principal{UserID: r.UserID, Role: Role(r.Role)}, r.Family)
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
	now := s.cfg.Now()
	err := s.q.RevokeRefreshFamilyOf(ctx, authdb.RevokeRefreshFamilyOfParams{TokenHash: hashToken(refresh), RevokedAt: &now})
	if err != nil {
		return fmt.Errorf("revoke refresh token: %w", err)
	}
	return nil
}

// inTx runs f in a transaction (database.InTx), committing when f returns
// nil or errReuse; errReuse is returned after the commit.
func (s *Service) inTx(ctx context.Context, f func(*authdb.Queries) (Token, error)) (Token, error) {
	var (
		t      Token
		reused bool
	)
	err := database.InTx(ctx, s.pool, func(_ context.Context, tx pgx.Tx) error {
		var err error
		t, err = f(s.q.WithTx(tx))
		if errors.Is(err, errReuse) {
			reused = true
			return nil // commit the family's revocation
		}
		return err
	})
	if err != nil {
		return Token{}, err
	}
	if reused {
		return Token{}, errReuse
	}
	return t, nil
}

// ---- Rate limiting of failed logins, in the database so every replica agrees.

func (s *Service) checkRateLimit(ctx context.Context, account, address string) error {
	now := s.cfg.Now()
	f, err := s.q.LoginFailures(ctx, authdb.LoginFailuresParams{Account: account, Address: address,
		Since: now.Add(-s.cfg.FailureWindow)})
	if err != nil {
		return fmt.Errorf("rate limit: %w", err)
	}
	accountN, addressN := int(f.AccountFailures), int(f.AddressFailures)
	var wait time.Duration
	if accountN >= s.cfg.MaxFailures && accountN > 0 {
		delay := s.cfg.MaxDelay
		if extra := accountN - s.cfg.MaxFailures; extra < 30 {
			delay = min(delay, time.Second<<extra)
		}
		wait = f.AccountLast.Add(delay).Sub(now)
	}
	if addressN >= s.cfg.MaxAddressFailures && addressN > 0 {
		wait = max(wait, f.AddressFirst.Add(s.cfg.FailureWindow).Sub(now))
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
	if err := s.q.RecordLoginFailures(ctx, authdb.RecordLoginFailuresParams{Keys: keys, FailedAt: now}); err != nil {
		return fmt.Errorf("record failed login: %w", err)
	}
	// Old rows are useless; keep the table small without a cron.
	_ = s.q.PruneLoginFailures(ctx, now.Add(-24*time.Hour))
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
	r, err := s.q.CreateUser(ctx, authdb.CreateUserParams{Email: email, PasswordHash: hash, Role: string(role)})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UniqueViolation {
		return User{}, apperr.Errorf(apperr.Conflict, "a user with this email exists")
	}
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	return User{ID: r.ID, Email: r.Email, Role: Role(r.Role), CreatedAt: r.CreatedAt}, nil
}

// EnsureAdmin creates the first admin from configuration unless an account
// with that email exists; it returns the account's id.
func (s *Service) EnsureAdmin(ctx context.Context, email, password string) (int64, bool, error) {
	id, err := s.q.UserIDByEmail(ctx, normalizeEmail(email))
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

// MaxPageSize bounds a page of users or clients.
const MaxPageSize = 1000

// Users returns a page of accounts by id, and the cursor of the next page
// ("" on the last).
func (s *Service) Users(ctx context.Context, req page.Request) ([]User, string, error) {
	after, err := pageStart(req)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.q.ListUsers(ctx, authdb.ListUsersParams{After: after, MaxRows: int32(req.Limit + 1)})
	if err != nil {
		return nil, "", fmt.Errorf("list users: %w", err)
	}
	us := make([]User, len(rows))
	for i, r := range rows {
		us[i] = userOf(r)
	}
	us, next := page.Cut(us, req.Limit, func(u User) string { return page.Encode(u.ID) })
	return us, next, nil
}

// pageStart validates req and decodes the id its page starts after.
func pageStart(req page.Request) (int64, error) {
	if err := req.Validate(MaxPageSize); err != nil {
		return 0, err
	}
	var after int64
	if req.Cursor != "" {
		if err := page.Decode(req.Cursor, &after); err != nil {
			return 0, err
		}
	}
	return after, nil
}

// GetUser returns one account.
func (s *Service) GetUser(ctx context.Context, id int64) (User, error) {
	r, err := s.q.GetUser(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, apperr.Errorf(apperr.NotFound, "user %d not found", id)
	}
	return userOf(r), err
}

// userOf maps a user row; the queries that return one return the same columns.
func userOf[R authdb.GetUserRow | authdb.ListUsersRow | authdb.UpdateUserRow](row R) User {
	r := authdb.GetUserRow(row)
	return User{ID: r.ID, Email: r.Email, Role: Role(r.Role), Disabled: r.Disabled, CreatedAt: r.CreatedAt}
}

// DeleteUser removes an account with its monitors, clients and tokens.
func (s *Service) DeleteUser(ctx context.Context, id int64) error {
	// The user's tokens stop working on every replica at commit.
	err := database.InTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		n, err := q.DeleteUser(ctx, id)
		if err != nil {
			return err
		}
		if n == 0 {
			return errUserNotFound(id)
		}
		return notifyUserChanged(ctx, q, id)
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
	err := database.InTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
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
	r, err := s.q.WithTx(tx).CreateClient(ctx, authdb.CreateClientParams{UserID: userID, Name: name,
		ClientID: c.ClientID, SecretHash: hashToken(c.Secret)})
	if err != nil {
		return Client{}, fmt.Errorf("create client: %w", err)
	}
	c.ID, c.CreatedAt = r.ID, r.CreatedAt
	return c, nil
}

// Clients returns a page of the clients in scope by id, revoked ones
// included, and the cursor of the next page ("" on the last).
func (s *Service) Clients(ctx context.Context, scope Scope, req page.Request) ([]Client, string, error) {
	after, err := pageStart(req)
	if err != nil {
		return nil, "", err
	}
	var cs []Client
	if scope.all {
		var rows []authdb.ListAllClientsRow
		rows, err = s.q.ListAllClients(ctx, authdb.ListAllClientsParams{After: after, MaxRows: int32(req.Limit + 1)})
		cs = clientsOf(rows)
	} else {
		var rows []authdb.ListClientsOfRow
		rows, err = s.q.ListClientsOf(ctx, authdb.ListClientsOfParams{UserID: scope.userID, After: after, MaxRows: int32(req.Limit + 1)})
		cs = clientsOf(rows)
	}
	if err != nil {
		return nil, "", fmt.Errorf("list clients of %s: %w", scope, err)
	}
	cs, next := page.Cut(cs, req.Limit, func(c Client) string { return page.Encode(c.ID) })
	return cs, next, nil
}

// clientsOf maps client rows; the queries that return them return the same columns.
func clientsOf[R authdb.ListAllClientsRow | authdb.ListClientsOfRow](rows []R) []Client {
	cs := make([]Client, len(rows))
	for i, row := range rows {
		r := authdb.ListAllClientsRow(row)
		cs[i] = Client{ID: r.ID, UserID: r.UserID, Name: r.Name, ClientID: r.ClientID, CreatedAt: r.CreatedAt, RevokedAt: r.RevokedAt}
	}
	return cs
}

// RevokeClient revokes the client id if it is in scope (NotFound
// otherwise). Its access tokens stop working at once.
func (s *Service) RevokeClient(ctx context.Context, scope Scope, id int64) error {
	now := s.cfg.Now()
	var (
		n   int64
		err error
	)
	if scope.all {
		n, err = s.q.RevokeAnyClient(ctx, authdb.RevokeAnyClientParams{ID: id, RevokedAt: &now})
	} else {
		n, err = s.q.RevokeClientOf(ctx, authdb.RevokeClientOfParams{ID: id, UserID: scope.userID, RevokedAt: &now})
	}
	if err != nil {
		return fmt.Errorf("revoke client %d: %w", id, err)
	}
	if n == 0 {
		return apperr.Errorf(apperr.NotFound, "client %d not found", id)
	}
	return nil
}
