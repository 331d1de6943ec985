package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/auth/authdb"
	"github.com/beaconhq/beacon/internal/database"
)

// UsersChannel carries the id of a user whose account changed (deleted,
// disabled, role changed), sent by the transaction that changed it: every
// API replica then forgets what it remembered of that user.
const UsersChannel = "beacon_users"

// userState is what a token cannot tell: whether its user still exists, is
// enabled, and their role now.
type userState struct {
	role    Role
	active  bool
	fetched time.Time
}

// userStates remembers user states while its listener (Run) hears every
// change; without it (not running, or reconnecting) nothing is remembered
// and every request reads the user. A remembered state is also dropped after
// userStateTTL, in case a notification was lost.
type userStates struct {
	live atomic.Bool
	mu   sync.Mutex
	m    map[int64]userState
	gen  uint64 // bumped by every invalidation
}

const userStateTTL = time.Minute

func (c *userStates) get(id int64, now time.Time) (userState, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.m[id]
	if !c.live.Load() || !ok || now.Sub(st.fetched) >= userStateTTL {
		return userState{}, false, c.gen
	}
	return st, true, c.gen
}

// put remembers st, unless an invalidation came after gen was read (the
// state may predate it) or nobody listens.
func (c *userStates) put(id int64, st userState, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live.Load() || gen != c.gen {
		return
	}
	if len(c.m) >= maxVerifiedTokens {
		clear(c.m)
	}
	c.m[id] = st
}

// forget drops one user's state, or every state when id is 0.
func (c *userStates) forget(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if id == 0 {
		clear(c.m)
		return
	}
	delete(c.m, id)
}

// RunInvalidation listens for account changes on UsersChannel until ctx
// ends, so that user states can be remembered between requests; without
// it every authenticated request reads its user. It returns nil when ctx
// ends.
func (s *Service) RunInvalidation(ctx context.Context, log *slog.Logger) error {
	defer s.users.live.Store(false)
	l := &database.Listener{
		Pool: s.pool, Channel: UsersChannel, Name: "account", Log: log,
		Listening: func(bool) {
			s.users.forget(0)
			s.users.live.Store(true)
		},
		Lost: func() {
			s.users.live.Store(false)
			s.users.forget(0)
		},
		Handle: func(payload string) {
			id, err := strconv.ParseInt(payload, 10, 64)
			if err != nil {
				id = 0
			}
			s.users.forget(id)
		},
	}
	return l.Run(ctx)
}

// checkUser returns the principal with its user's current role, or
// ErrUnauthenticated if the user is gone or disabled (or, for a client
// token, the client is revoked). Database errors are returned as they are.
func (s *Service) checkUser(ctx context.Context, p Principal) (Principal, error) {
	now := s.cfg.Now()
	if p.ClientID == "" {
		if st, ok, _ := s.users.get(p.UserID, now); ok {
			return withState(p, st)
		}
	}
	_, _, gen := s.users.get(p.UserID, now)
	r, err := s.q.UserState(ctx, authdb.UserStateParams{UserID: p.UserID, ClientID: p.ClientID})
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, ErrUnauthenticated
	}
	if err != nil {
		return Principal{}, fmt.Errorf("check user %d: %w", p.UserID, err)
	}
	if p.ClientID != "" && (r.ClientRow == nil || r.ClientRevokedAt != nil) {
		return Principal{}, ErrUnauthenticated
	}
	st := userState{role: Role(r.Role), active: r.Active, fetched: now}
	s.users.put(p.UserID, st, gen)
	return withState(p, st)
}

func withState(p Principal, st userState) (Principal, error) {
	if !st.active || !st.role.Valid() {
		return Principal{}, ErrUnauthenticated
	}
	p.Role = st.role
	return p, nil
}

// notifyUserChanged announces, at the commit of q's transaction, that user
// id changed.
func notifyUserChanged(ctx context.Context, q *authdb.Queries, id int64) error {
	if err := q.NotifyUserChanged(ctx, authdb.NotifyUserChangedParams{Channel: UsersChannel, Payload: strconv.FormatInt(id, 10)}); err != nil {
		return fmt.Errorf("announce change of user %d: %w", id, err)
	}
	return nil
}

// UserChange is what an admin may change of a user; nil fields stay.
type UserChange struct {
	Role     *Role
	Disabled *bool
}

// UpdateUser changes a user's role or disables (enables) them. Their tokens
// follow at once, on every replica. The last enabled admin can be neither
// demoted nor disabled.
func (s *Service) UpdateUser(ctx context.Context, id int64, c UserChange) (User, error) {
	if c.Role != nil && !c.Role.Valid() {
		return User{}, invalidRole(*c.Role)
	}
	var u User
	err := database.InTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		// Admins are locked in id order, so two concurrent changes cannot
		// each believe the other admin remains.
		if err := q.LockAdmins(ctx); err != nil {
			return err
		}
		r, err := q.UpdateUser(ctx, authdb.UpdateUserParams{ID: id, Role: (*string)(c.Role), Disabled: c.Disabled})
		if errors.Is(err, pgx.ErrNoRows) {
			return errUserNotFound(id)
		}
		if err != nil {
			return err
		}
		u = userOf(r)
		admins, err := q.CountEnabledAdmins(ctx)
		if err != nil {
			return err
		}
		if admins == 0 {
			return errLastAdmin
		}
		return notifyUserChanged(ctx, q, id)
	})
	if err != nil {
		return User{}, wrapUser("update user", id, err)
	}
	// This replica forgets at once; the others when they hear the NOTIFY.
	s.users.forget(id)
	return u, nil
}

var errLastAdmin = apperr.Errorf(apperr.Conflict, "the last enabled admin can be neither demoted nor disabled")

func invalidRole(r Role) error {
	return &apperr.Error{Code: apperr.Invalid, Field: "role", Message: fmt.Sprintf("%q is not admin or member", r)}
}

func errUserNotFound(id int64) error { return apperr.Errorf(apperr.NotFound, "user %d not found", id) }

// wrapUser adds context to a database error; domain errors stay as they are.
func wrapUser(op string, id int64, err error) error {
	if _, ok := apperr.As(err); ok || err == nil {
		return err
	}
	return fmt.Errorf("%s %d: %w", op, id, err)
}
