package idempotency_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/idempotency"
	"github.com/beaconhq/beacon/internal/pgtest"
)

func newUser(t *testing.T, pool *pgxpool.Pool, email string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, pool.QueryRow(context.Background(),
		`INSERT INTO users (email, password_hash, role) VALUES ($1, 'x', 'member') RETURNING id`, email).Scan(&id))
	return id
}

func fingerprint(t *testing.T, body any) []byte {
	t.Helper()
	f, err := idempotency.Fingerprint("op", body)
	require.NoError(t, err)
	return f
}

// answer is a create that counts its runs and answers its run number.
type answer struct{ runs atomic.Int32 }

func (a *answer) create(pgx.Tx) (idempotency.Response, error) {
	n := a.runs.Add(1)
	return idempotency.Response{Status: 201, Body: json.RawMessage(fmt.Sprintf(`{"run":%d}`, n))}, nil
}

func TestDoAnswersOncePerOwnerAndKey(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	s := idempotency.New(pool)
	ada, bob := newUser(t, pool, "ada@example.org"), newUser(t, pool, "bob@example.org")
	var a answer

	resp, replayed, err := s.Do(ctx, ada, "k", fingerprint(t, "x"), a.create)
	require.NoError(t, err)
	require.False(t, replayed)
	require.Equal(t, 201, resp.Status)
	require.JSONEq(t, `{"run":1}`, string(resp.Body))

	resp, replayed, err = s.Do(ctx, ada, "k", fingerprint(t, "x"), a.create)
	require.NoError(t, err)
	require.True(t, replayed)
	require.Equal(t, 201, resp.Status)
	require.JSONEq(t, `{"run":1}`, string(resp.Body), "the first answer")

	// Keys are per owner.
	resp, replayed, err = s.Do(ctx, bob, "k", fingerprint(t, "x"), a.create)
	require.NoError(t, err)
	require.False(t, replayed)
	require.JSONEq(t, `{"run":2}`, string(resp.Body))

	// The same key for another request is refused and runs nothing.
	_, _, err = s.Do(ctx, ada, "k", fingerprint(t, "y"), a.create)
	require.Equal(t, apperr.Invalid, apperr.CodeOf(err), "%v", err)
	require.EqualValues(t, 2, a.runs.Load())

	// A bad key is refused before anything runs.
	_, _, err = s.Do(ctx, ada, "", fingerprint(t, "x"), a.create)
	require.Equal(t, apperr.Invalid, apperr.CodeOf(err), "%v", err)
	require.EqualValues(t, 2, a.runs.Load())
}

// A failed create stores nothing: the key is free again.
func TestDoStoresNothingOnError(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	s := idempotency.New(pool)
	ada := newUser(t, pool, "ada@example.org")
	boom := errors.New("boom")

	_, _, err := s.Do(ctx, ada, "k", fingerprint(t, "x"), func(tx pgx.Tx) (idempotency.Response, error) {
		_, err := tx.Exec(ctx, `INSERT INTO users (email, password_hash, role) VALUES ('made@example.org', 'x', 'member')`)
		require.NoError(t, err)
		return idempotency.Response{}, boom
	})
	require.ErrorIs(t, err, boom)
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM idempotency_keys`).Scan(&n))
	require.Zero(t, n, "no key stored")
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM users WHERE email = 'made@example.org'`).Scan(&n))
	require.Zero(t, n, "the change is rolled back with it")

	var a answer
	_, replayed, err := s.Do(ctx, ada, "k", fingerprint(t, "y"), a.create)
	require.NoError(t, err)
	require.False(t, replayed)
	require.EqualValues(t, 1, a.runs.Load())
}

// A key lives for TTL; an expired key is claimed anew, even for another
// request, and expired keys are pruned.
func TestDoExpiredKey(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	s := idempotency.New(pool)
	ada := newUser(t, pool, "ada@example.org")
	var a answer

	_, _, err := s.Do(ctx, ada, "old", fingerprint(t, "x"), a.create)
	require.NoError(t, err)
	_, _, err = s.Do(ctx, ada, "gone", fingerprint(t, "x"), a.create)
	require.NoError(t, err)
	var ttl float64
	require.NoError(t, pool.QueryRow(ctx,
		`SELECT extract(epoch FROM expires_at - now()) FROM idempotency_keys WHERE key = 'old'`).Scan(&ttl))
	require.InDelta(t, idempotency.TTL.Seconds(), ttl, 60, "expires after TTL")

	_, err = pool.Exec(ctx, `UPDATE idempotency_keys SET expires_at = now() - interval '1 second'`)
	require.NoError(t, err)
	resp, replayed, err := s.Do(ctx, ada, "old", fingerprint(t, "y"), a.create)
	require.NoError(t, err)
	require.False(t, replayed, "an expired key is claimed anew")
	require.JSONEq(t, `{"run":3}`, string(resp.Body))

	rows, err := pool.Query(ctx, `SELECT key FROM idempotency_keys ORDER BY key`)
	require.NoError(t, err)
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"old"}, keys, "the other expired key is pruned")
}

// Concurrent requests with one key run create once; the others wait for
// its commit and replay its answer.
func TestDoConcurrentSameKey(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	s := idempotency.New(pool)
	ada := newUser(t, pool, "ada@example.org")
	var a answer

	const n = 8
	var wg sync.WaitGroup
	bodies := make([]string, n)
	replays := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			resp, replayed, err := s.Do(ctx, ada, "same", fingerprint(t, "x"), a.create)
			bodies[i], replays[i], errs[i] = string(resp.Body), replayed, err
		})
	}
	wg.Wait()
	fresh := 0
	for i := range n {
		require.NoError(t, errs[i])
		require.JSONEq(t, `{"run":1}`, bodies[i])
		if !replays[i] {
			fresh++
		}
	}
	require.Equal(t, 1, fresh, "one request ran create")
	require.EqualValues(t, 1, a.runs.Load())
}
