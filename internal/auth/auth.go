// Package auth is Beacon's identity: users and roles, machine clients, and
// the OAuth2 (RFC 6749) grants that turn them into short-lived signed access
// tokens (JWT) and rotated refresh tokens.
package auth

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Role is what a user may do.
type Role string

// Roles.
const (
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleAdmin || r == RoleMember }

// Principal is who makes a request: a user, possibly through one of their
// API clients.
type Principal struct {
	UserID   int64
	Role     Role
	ClientID string // set when authenticated as a machine client
	// Expires is when the token that authenticated the principal expires;
	// long-lived connections (websockets) end then. Zero: no expiry known.
	Expires time.Time
}

// IsAdmin reports whether the principal has the admin role.
func (p Principal) IsAdmin() bool { return p.Role == RoleAdmin }

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal of ctx, if any.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// OAuthError is an RFC 6749 section 5.2 error: Code is the "error" value a
// client acts on; Description is safe to show.
type OAuthError struct {
	Code        string // invalid_request, invalid_client, invalid_grant, unsupported_grant_type, ...
	Description string
	// RetryAfter is set (seconds) when the caller is rate limited.
	RetryAfter int
}

func (e *OAuthError) Error() string { return e.Code + ": " + e.Description }

// Errors shared by the grants. A failed login never tells whether the
// account exists.
var (
	errBadCredentials = &OAuthError{Code: "invalid_grant", Description: "invalid username or password"}
	errBadClient      = &OAuthError{Code: "invalid_client", Description: "invalid client credentials"}
	errBadRefresh     = &OAuthError{Code: "invalid_grant", Description: "invalid, expired or revoked refresh token"}
)

// ErrUnauthenticated means a token is missing, malformed, expired or
// wrongly signed.
var ErrUnauthenticated = errors.New("unauthenticated")

// normalizeEmail makes emails comparable; uniqueness is case-insensitive.
func normalizeEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }
