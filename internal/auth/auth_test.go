package auth_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/auth"
	"github.com/beaconhq/beacon/internal/page"
	"github.com/beaconhq/beacon/internal/pgtest"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type bundle struct {
	svc   *auth.Service
	clock *clock
	user  auth.User
	// replica is another API replica: a Service on the same database.
	replica *auth.Service
}

const password = "a very good password"

func setup(t *testing.T) *bundle {
	t.Helper()
	pool := pgtest.New(t)
	c := &clock{now: time.Now()}
	svc, err := auth.NewService(pool, auth.Config{Secret: secret, BcryptCost: 4, Now: c.Now,
		AccessTTL: 15 * time.Minute, RefreshTTL: time.Hour, MaxFailures: 3, FailureWindow: 10 * time.Minute})
	require.NoError(t, err)
	u, err := svc.CreateUser(context.Background(), "Ada@Example.org", password, auth.RoleMember)
	require.NoError(t, err)
	replica, err := auth.NewService(pool, auth.Config{Secret: secret, BcryptCost: 4, Now: c.Now})
	require.NoError(t, err)
	return &bundle{svc: svc, clock: c, user: u, replica: replica}
}

func requireOAuth(t *testing.T, err error, code string) *auth.OAuthError {
	t.Helper()
	var oe *auth.OAuthError
	require.True(t, errors.As(err, &oe), "want an OAuth error %s, got %v", code, err)
	require.Equal(t, code, oe.Code)
	return oe
}

func TestPasswordGrant(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	tok, err := b.svc.PasswordGrant(ctx, "ada@example.org", password, "1.2.3.4")
	require.NoError(t, err, "emails match case-insensitively")
	require.Equal(t, "Bearer", tok.TokenType)
	require.Equal(t, 900, tok.ExpiresIn)
	require.NotEmpty(t, tok.RefreshToken)

	p, err := b.svc.Authenticate(ctx, tok.AccessToken)
	require.NoError(t, err)
	require.Equal(t, b.user.ID, p.UserID)
	require.Equal(t, auth.RoleMember, p.Role)
	require.Empty(t, p.ClientID)
	require.WithinDuration(t, b.clock.Now().Add(15*time.Minute), p.Expires, time.Second, "the principal knows when its token ends")

	// Wrong password and unknown account fail the same way.
	_, err1 := b.svc.PasswordGrant(ctx, "ada@example.org", "wrong password!!", "1.2.3.4")
	_, err2 := b.svc.PasswordGrant(ctx, "nobody@example.org", "wrong password!!", "1.2.3.4")
	e1, e2 := requireOAuth(t, err1, "invalid_grant"), requireOAuth(t, err2, "invalid_grant")
	require.Equal(t, e1.Description, e2.Description, "a failed login never reveals whether the account exists")
}

func TestAccessTokensExpireAndResistTampering(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	tok, err := b.svc.PasswordGrant(ctx, "ada@example.org", password, "ip")
	require.NoError(t, err)
	// Verified once, so the expiry below is enforced on a remembered token too.
	_, err = b.svc.Authenticate(ctx, tok.AccessToken)
	require.NoError(t, err)

	parts := strings.Split(tok.AccessToken, ".")
	require.Len(t, parts, 3)
	// A payload claiming admin, with the original signature.
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	forged := strings.Replace(string(payload), `"role":"member"`, `"role":"admin"`, 1)
	require.NotEqual(t, string(payload), forged)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]

	otherKey, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "1", "role": "admin", "iss": "beacon", "aud": "beacon-api", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte("another-key-another-key-another-key"))
	require.NoError(t, err)
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{
		"sub": "1", "role": "admin", "iss": "beacon", "aud": "beacon-api", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	require.NoError(t, err)
	noExp, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "1", "role": "admin", "iss": "beacon", "aud": "beacon-api",
	}).SignedString(secret)
	require.NoError(t, err)
	wrongAud, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "1", "role": "admin", "iss": "beacon", "aud": "someone-else", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(secret)
	require.NoError(t, err)

	for name, bad := range map[string]string{
		"tampered": tampered, "other key": otherKey, "alg none": none, "no expiry": noExp,
		"wrong audience": wrongAud, "garbage": "not.a.jwt", "empty": "",
	} {
		_, err := b.svc.Authenticate(ctx, bad)
		require.ErrorIs(t, err, auth.ErrUnauthenticated, name)
	}

	b.clock.Add(16 * time.Minute)
	_, err = b.svc.Authenticate(ctx, tok.AccessToken)
	require.ErrorIs(t, err, auth.ErrUnauthenticated, "expired")
}

func TestRefreshRotationAndReuseDetection(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	first, err := b.svc.PasswordGrant(ctx, "ada@example.org", password, "ip")
	require.NoError(t, err)

	second, err := b.svc.RefreshGrant(ctx, first.RefreshToken)
	require.NoError(t, err)
	require.NotEqual(t, first.RefreshToken, second.RefreshToken, "rotated")
	_, err = b.svc.Authenticate(ctx, second.AccessToken)
	require.NoError(t, err)

	// The spent token used again: taken as stolen, the whole family dies,
	// including the token rotated from it.
	_, err = b.svc.RefreshGrant(ctx, first.RefreshToken)
	requireOAuth(t, err, "invalid_grant")
	_, err = b.svc.RefreshGrant(ctx, second.RefreshToken)
	requireOAuth(t, err, "invalid_grant")

	// Another sign-in is another family, unaffected.
	third, err := b.svc.PasswordGrant(ctx, "ada@example.org", password, "ip")
	require.NoError(t, err)
	// Expiry.
	b.clock.Add(2 * time.Hour)
	_, err = b.svc.RefreshGrant(ctx, third.RefreshToken)
	requireOAuth(t, err, "invalid_grant")
	_, err = b.svc.RefreshGrant(ctx, "unknown-token")
	requireOAuth(t, err, "invalid_grant")
}

func TestRevokeRefresh(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	tok, err := b.svc.PasswordGrant(ctx, "ada@example.org", password, "ip")
	require.NoError(t, err)
	rotated, err := b.svc.RefreshGrant(ctx, tok.RefreshToken)
	require.NoError(t, err)
	require.NoError(t, b.svc.RevokeRefresh(ctx, tok.RefreshToken), "revoking any token of a sign-in ends it")
	_, err = b.svc.RefreshGrant(ctx, rotated.RefreshToken)
	requireOAuth(t, err, "invalid_grant")
	require.NoError(t, b.svc.RevokeRefresh(ctx, "never-issued"), "unknown tokens are not an error (RFC 7009)")
}

func TestClientCredentials(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	c, err := b.svc.CreateClient(ctx, b.user.ID, "ci")
	require.NoError(t, err)
	require.NotEmpty(t, c.Secret)

	tok, err := b.svc.ClientCredentialsGrant(ctx, c.ClientID, c.Secret, "ip")
	require.NoError(t, err)
	require.Empty(t, tok.RefreshToken, "no refresh token for client credentials")
	p, err := b.svc.Authenticate(ctx, tok.AccessToken)
	require.NoError(t, err)
	require.Equal(t, b.user.ID, p.UserID, "a client acts as its owner")
	require.Equal(t, c.ClientID, p.ClientID)

	_, err = b.svc.ClientCredentialsGrant(ctx, c.ClientID, "wrong", "ip")
	requireOAuth(t, err, "invalid_client")

	listed, _, err := b.svc.Clients(ctx, auth.OwnedBy(b.user.ID), firstPage)
	require.NoError(t, err)
	require.Len(t, listed, 1)
	require.Empty(t, listed[0].Secret, "the secret is shown once")

	// Another user cannot revoke it; its owner can, and its tokens stop at once.
	other, err := b.svc.CreateUser(ctx, "bob@example.org", password, auth.RoleMember)
	require.NoError(t, err)
	require.Equal(t, apperr.NotFound, apperr.CodeOf(b.svc.RevokeClient(ctx, auth.OwnedBy(other.ID), c.ID)))
	require.NoError(t, b.svc.RevokeClient(ctx, auth.OwnedBy(b.user.ID), c.ID))
	_, err = b.svc.Authenticate(ctx, tok.AccessToken)
	require.ErrorIs(t, err, auth.ErrUnauthenticated)
	_, err = b.svc.ClientCredentialsGrant(ctx, c.ClientID, c.Secret, "ip")
	requireOAuth(t, err, "invalid_client")
}

// A user id never means everyone: OwnedBy(0) and the zero Scope (a
// request without a principal) see and revoke nothing; every user's
// clients are only reached through AllUsers.
func TestClientScopes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	other, err := b.svc.CreateUser(ctx, "bob@example.org", password, auth.RoleMember)
	require.NoError(t, err)
	mine, err := b.svc.CreateClient(ctx, b.user.ID, "mine")
	require.NoError(t, err)
	theirs, err := b.svc.CreateClient(ctx, other.ID, "theirs")
	require.NoError(t, err)
	ids := func(cs []auth.Client) []int64 {
		out := []int64{}
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}

	for name, nobody := range map[string]auth.Scope{"OwnedBy(0)": auth.OwnedBy(0), "zero Scope": {}} {
		require.False(t, nobody.All(), name)
		listed, _, err := b.svc.Clients(ctx, nobody, firstPage)
		require.NoError(t, err, name)
		require.Empty(t, listed, "%s lists nobody's clients", name)
		for _, c := range []auth.Client{mine, theirs} {
			require.Equal(t, apperr.NotFound, apperr.CodeOf(b.svc.RevokeClient(ctx, nobody, c.ID)), "%s revokes nothing", name)
		}
	}
	listed, _, err := b.svc.Clients(ctx, auth.OwnedBy(b.user.ID), firstPage)
	require.NoError(t, err)
	require.Equal(t, []int64{mine.ID}, ids(listed))
	listed, _, err = b.svc.Clients(ctx, auth.AllUsers(), firstPage)
	require.NoError(t, err)
	require.Equal(t, []int64{mine.ID, theirs.ID}, ids(listed))
	for _, c := range listed {
		require.Nil(t, c.RevokedAt, "no scope above revoked %s", c.Name)
	}

	// An admin revokes anyone's client; revoking twice keeps the first time.
	require.NoError(t, b.svc.RevokeClient(ctx, auth.AllUsers(), theirs.ID))
	listed, _, err = b.svc.Clients(ctx, auth.OwnedBy(other.ID), firstPage)
	require.NoError(t, err)
	require.Len(t, listed, 1)
	require.NotNil(t, listed[0].RevokedAt)
	first := *listed[0].RevokedAt
	b.clock.Add(time.Minute)
	require.NoError(t, b.svc.RevokeClient(ctx, auth.AllUsers(), theirs.ID))
	listed, _, err = b.svc.Clients(ctx, auth.OwnedBy(other.ID), firstPage)
	require.NoError(t, err)
	require.True(t, first.Equal(*listed[0].RevokedAt), "revoked at %v, then %v", first, *listed[0].RevokedAt)
	require.Equal(t, apperr.NotFound, apperr.CodeOf(b.svc.RevokeClient(ctx, auth.AllUsers(), theirs.ID+mine.ID+1000)))
}

func TestFailedLoginsAreRateLimited(t *testing.T) {
	t.Parallel()
	b := setup(t) // 3 failures per account, then a doubling delay
	ctx := context.Background()
	for range 3 {
		_, err := b.svc.PasswordGrant(ctx, "ada@example.org", "wrong password!!", "9.9.9.9")
		requireOAuth(t, err, "invalid_grant")
	}
	// Even the right password is refused now, with a time to wait, and
	// from any address: the limit is the account's.
	for _, addr := range []string{"9.9.9.9", "8.8.8.8", "7.7.7.7"} {
		_, err := b.svc.PasswordGrant(ctx, "ada@example.org", password, addr)
		e := requireOAuth(t, err, "slow_down")
		require.Equal(t, 1, e.RetryAfter, "1 s after the third failure")
	}
	// Each further failure doubles the wait, up to a minute: an attacker
	// cannot lock the owner out for longer.
	for i, want := range []int{2, 4, 8, 16, 32, 60, 60} {
		b.clock.Add(time.Duration(1<<i) * time.Second) // the wait has passed
		_, err := b.svc.PasswordGrant(ctx, "ada@example.org", "wrong password!!", fmt.Sprintf("10.0.0.%d", i))
		requireOAuth(t, err, "invalid_grant")
		_, err = b.svc.PasswordGrant(ctx, "ada@example.org", password, "9.9.9.9")
		require.Equal(t, want, requireOAuth(t, err, "slow_down").RetryAfter, "after failure %d", i+4)
	}
	b.clock.Add(time.Minute)
	_, err := b.svc.PasswordGrant(ctx, "ada@example.org", password, "9.9.9.9")
	require.NoError(t, err, "the owner gets in once the wait has passed")

	// Unknown accounts are limited the same way.
	for range 3 {
		_, _ = b.svc.PasswordGrant(ctx, "ghost@example.org", "wrong password!!", "6.6.6.6")
	}
	_, err = b.svc.PasswordGrant(ctx, "ghost@example.org", "wrong password!!", "6.6.6.6")
	requireOAuth(t, err, "slow_down")

	// One address guessing across accounts is stopped too (20 per window).
	for i := range 20 {
		_, err := b.svc.PasswordGrant(ctx, fmt.Sprintf("u%d@example.org", i), "wrong password!!", "5.5.5.5")
		requireOAuth(t, err, "invalid_grant")
	}
	_, err = b.svc.PasswordGrant(ctx, "ada@example.org", password, "5.5.5.5")
	requireOAuth(t, err, "slow_down")
	b.clock.Add(11 * time.Minute)
	_, err = b.svc.PasswordGrant(ctx, "ada@example.org", password, "5.5.5.5")
	require.NoError(t, err)
}

func TestUsersAndFirstAdmin(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	id, created, err := b.svc.EnsureAdmin(ctx, "root@example.org", password)
	require.NoError(t, err)
	require.True(t, created)
	again, created, err := b.svc.EnsureAdmin(ctx, "ROOT@example.org", "another password 123")
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, id, again)

	_, err = b.svc.CreateUser(ctx, "ada@EXAMPLE.org", password, auth.RoleMember)
	require.Equal(t, apperr.Conflict, apperr.CodeOf(err))
	for _, bad := range []struct{ email, pw string }{{"not-an-email", password}, {"x@y.z", "short"}, {"x@y.z", "changeme-changeme"}} {
		_, err = b.svc.CreateUser(ctx, bad.email, bad.pw, auth.RoleMember)
		require.Equal(t, apperr.Invalid, apperr.CodeOf(err), "%v", bad)
	}
	users, next, err := b.svc.Users(ctx, firstPage)
	require.NoError(t, err)
	require.Len(t, users, 2)
	require.Empty(t, next)
	// One at a time, by the cursor.
	users, next, err = b.svc.Users(ctx, page.Request{Limit: 1})
	require.NoError(t, err)
	require.Len(t, users, 1)
	rest, last, err := b.svc.Users(ctx, page.Request{Cursor: next, Limit: 1})
	require.NoError(t, err)
	require.Empty(t, last)
	require.Len(t, rest, 1)
	require.Greater(t, rest[0].ID, users[0].ID)
	_, _, err = b.svc.Users(ctx, page.Request{Cursor: "garbage", Limit: 1})
	require.Equal(t, apperr.Invalid, apperr.CodeOf(err))
	require.NoError(t, b.svc.DeleteUser(ctx, b.user.ID))
	_, err = b.svc.GetUser(ctx, b.user.ID)
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
}

// firstPage is a page large enough for any list of these tests.
var firstPage = page.Request{Limit: auth.MaxPageSize}
