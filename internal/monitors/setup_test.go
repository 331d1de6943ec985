package monitors_test

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/monitors"
	"github.com/beaconhq/beacon/internal/netguard"
	"github.com/beaconhq/beacon/internal/page"
	"github.com/beaconhq/beacon/internal/pgtest"
)

// t0 is the tests' "now": a whole hour, so buckets and slots are easy to
// reason about, and whole microseconds, as PostgreSQL stores them.
var t0 = time.Date(2030, 1, 2, 10, 0, 0, 0, time.UTC)

// testClock is a settable clock for the store.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

type testBundle struct {
	url   string // of the test's database
	pool  *pgxpool.Pool
	store *monitors.Store
	svc   *monitors.Service // without a job client: RunCheck is unavailable
	clock *testClock
	owner int64 // a user; mustCreate and mustGet act as them
}

// setup gives a test its own migrated database, a user who owns what the
// test creates, and a store whose clock starts at t0.
func setup(t *testing.T) *testBundle {
	t.Helper()
	url := pgtest.NewURL(t)
	pool := mustOpen(t, url, nil)
	clock := &testClock{now: t0}
	store := monitors.NewStore(pool, clock.Now)
	return &testBundle{
		url: url, pool: pool, store: store, svc: monitors.NewService(store, nil), clock: clock,
		owner: mustUser(t, pool, "owner@example.com"),
	}
}

// mustUser inserts a member directly (the auth package is not under test
// here) and returns its id.
func mustUser(t *testing.T, pool *pgxpool.Pool, email string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, pool.QueryRow(context.Background(),
		`INSERT INTO users (email, password_hash, role) VALUES ($1, 'x', 'member') RETURNING id`, email).Scan(&id))
	return id
}

// mustOpen opens a pool on url, closed when the test ends.
func mustOpen(t *testing.T, url string, configure func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	pool, err := database.Open(context.Background(), url, configure)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// loopbackClient may reach loopback only: the one range tests may send to.
func loopbackClient() *monitors.Checker {
	policy := netguard.NewPolicy([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	return &monitors.Checker{Client: policy.HTTPClient(netguard.ClientOptions{})}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// validSpec returns a spec that passes validation. Its URL is only stored,
// never requested.
func validSpec(name string) monitors.Spec {
	return monitors.Spec{Name: name, URL: "https://example.com/health", Enabled: true}
}

// mustCreate creates a monitor of b.owner.
func mustCreate(t *testing.T, b *testBundle, spec monitors.Spec) monitors.Monitor {
	t.Helper()
	m, err := b.svc.Create(context.Background(), b.owner, spec)
	require.NoError(t, err)
	return m
}

// mustGet reads a monitor of b.owner.
func mustGet(t *testing.T, b *testBundle, id int64) monitors.Monitor {
	t.Helper()
	m, err := b.svc.Get(context.Background(), b.owner, id)
	require.NoError(t, err)
	return m
}

// mustRecord stores r in a transaction of its own and returns its id.
func mustRecord(t *testing.T, b *testBundle, r monitors.Result) int64 {
	t.Helper()
	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	id, err := b.store.RecordResult(ctx, tx, r)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	return id
}

// requireInvalid asserts err is an apperr.Invalid error about field.
func requireInvalid(t *testing.T, err error, field string) {
	t.Helper()
	require.Error(t, err)
	e, ok := apperr.As(err)
	require.True(t, ok, "want an *apperr.Error, got %T: %v", err, err)
	require.Equal(t, apperr.Invalid, e.Code, "error: %v", err)
	require.Equal(t, field, e.Field, "error: %v", err)
}

func requireSameTime(t *testing.T, want, got time.Time) {
	t.Helper()
	require.True(t, want.Equal(got), "want %s, got %s", want.UTC(), got.UTC())
}

func countRows(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// rq is a results query.
func rq(from, to time.Time, cursor string, limit int) monitors.ResultQuery {
	return monitors.ResultQuery{Range: monitors.Range{From: from, To: to}, Request: page.Request{Cursor: cursor, Limit: limit}}
}

// listAfter lists owner's monitors with ids above after, through the
// service's cursor.
func listAfter(ctx context.Context, b *testBundle, owner, after int64, limit int) ([]monitors.Monitor, error) {
	cursor := ""
	if after > 0 {
		cursor = page.Encode(after)
	}
	p, err := b.svc.List(ctx, owner, page.Request{Cursor: cursor, Limit: limit})
	return p.Items, err
}
