package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/auth"
)

// A deleted, disabled or demoted user's token follows at once, also while
// user states are remembered between requests (the invalidation listener
// runs, as on every API replica).
func TestAccountChangesReachTokensAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- b.svc.RunInvalidation(ctx, nil) }()
	go func() { done <- b.replica.RunInvalidation(ctx, nil) }()
	defer func() { cancel(); require.NoError(t, <-done); require.NoError(t, <-done) }()
	require.Eventually(t, func() bool { return b.svc.InvalidationLive() && b.replica.InvalidationLive() },
		30*time.Second, 10*time.Millisecond, "listeners up")

	root, err := b.svc.CreateUser(ctx, "root@example.org", password, auth.RoleAdmin)
	require.NoError(t, err)
	x, err := b.svc.CreateUser(ctx, "x@example.org", password, auth.RoleAdmin)
	require.NoError(t, err)
	tok, err := b.svc.PasswordGrant(ctx, "x@example.org", password, "ip")
	require.NoError(t, err)
	p, err := b.svc.Authenticate(ctx, tok.AccessToken) // now remembered
	require.NoError(t, err)
	require.True(t, p.IsAdmin())
	p, err = b.replica.Authenticate(ctx, tok.AccessToken) // by the other replica too
	require.NoError(t, err)
	require.True(t, p.IsAdmin())

	// eventually: the change is announced at commit and heard a moment later.
	eventually := func(what string, ok func() bool) {
		t.Helper()
		require.Eventually(t, ok, 30*time.Second, 5*time.Millisecond, what)
	}
	// On the replica that makes a change, it holds as soon as the call returns.
	member := auth.RoleMember
	_, err = b.svc.UpdateUser(ctx, x.ID, auth.UserChange{Role: &member})
	require.NoError(t, err)
	p, err = b.svc.Authenticate(ctx, tok.AccessToken)
	require.NoError(t, err)
	require.False(t, p.IsAdmin(), "demoted at once")
	// Another replica follows when it hears the NOTIFY, a moment later.
	eventually("demoted on the other replica", func() bool {
		p, err := b.replica.Authenticate(ctx, tok.AccessToken)
		return err == nil && !p.IsAdmin()
	})

	yes, no := true, false
	u, err := b.svc.UpdateUser(ctx, x.ID, auth.UserChange{Disabled: &yes})
	require.NoError(t, err)
	require.True(t, u.Disabled)
	eventually("disabled", func() bool {
		_, err := b.svc.Authenticate(ctx, tok.AccessToken)
		return err == auth.ErrUnauthenticated
	})
	_, err = b.svc.PasswordGrant(ctx, "x@example.org", password, "ip")
	require.Error(t, err, "a disabled user cannot sign in")
	require.NotEqual(t, auth.ErrUnauthenticated, err)

	_, err = b.svc.UpdateUser(ctx, x.ID, auth.UserChange{Disabled: &no})
	require.NoError(t, err)
	eventually("enabled", func() bool { _, err := b.svc.Authenticate(ctx, tok.AccessToken); return err == nil })

	require.NoError(t, b.svc.DeleteUser(ctx, x.ID))
	eventually("deleted", func() bool {
		_, err := b.svc.Authenticate(ctx, tok.AccessToken)
		return err == auth.ErrUnauthenticated
	})

	// The last enabled admin stays one.
	_, err = b.svc.UpdateUser(ctx, root.ID, auth.UserChange{Role: &member})
	require.Equal(t, apperr.Conflict, apperr.CodeOf(err))
	_, err = b.svc.UpdateUser(ctx, root.ID, auth.UserChange{Disabled: &yes})
	require.Equal(t, apperr.Conflict, apperr.CodeOf(err))
	_, err = b.svc.UpdateUser(ctx, 424242, auth.UserChange{Disabled: &yes})
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
}
