package database_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/database"
)

// Calls that arrive while one runs go together in the next; each gets its
// own result, and an item that fails its group fails alone.
func TestGroup(t *testing.T) {
	t.Parallel()
	bad := errors.New("13 is bad")
	first := make(chan struct{})
	release := make(chan struct{})
	var (
		mu    sync.Mutex
		sizes []int
	)
	g := &database.Group[int, int]{Max: 8, Fn: func(_ context.Context, items []int) ([]int, error) {
		mu.Lock()
		sizes = append(sizes, len(items))
		n := len(sizes)
		mu.Unlock()
		if n == 1 {
			close(first)
			<-release // hold the first call while the others queue up
		}
		out := make([]int, len(items))
		for i, v := range items {
			if v == 13 {
				return nil, bad
			}
			out[i] = 2 * v
		}
		return out, nil
	}}

	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 21)
	got := make([]int, 21)
	wg.Go(func() { got[0], errs[0] = g.Do(ctx, 0) })
	<-first
	for i := 1; i <= 20; i++ {
		wg.Go(func() { got[i], errs[i] = g.Do(ctx, i) })
	}
	// Queued behind the held call: wait until all 20 are in, then let go.
	require.Eventually(t, func() bool { return g.Queued() == 20 }, 30*time.Second, time.Millisecond, "queued")
	close(release)
	wg.Wait()

	for i := range 21 {
		if i == 13 {
			require.ErrorIs(t, errs[i], bad)
			continue
		}
		require.NoError(t, errs[i], "item %d", i)
		require.Equal(t, 2*i, got[i])
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 1, sizes[0])
	require.Equal(t, 8, sizes[1], "the queued calls went 8 at a time")
}

// A caller that gives up gets its context's error; the others are served.
func TestGroupCallerGivesUp(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	g := &database.Group[int, int]{Fn: func(_ context.Context, items []int) ([]int, error) {
		<-release
		return items, nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := g.Do(ctx, 1)
	require.ErrorIs(t, err, context.Canceled)
	close(release)
	v, err := g.Do(context.Background(), 2)
	require.NoError(t, err)
	require.Equal(t, 2, v)
}

// While PostgreSQL is unreachable, a failed group is not retried item by
// item: every caller gets the error at once.
func TestGroupUnavailableIsNotRetriedAlone(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var (
		mu    sync.Mutex
		calls int
	)
	g := &database.Group[int, int]{Fn: func(_ context.Context, items []int) ([]int, error) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			<-release
			return items, nil
		}
		return nil, io.ErrUnexpectedEOF // the connection went away
	}}
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = g.Do(ctx, 0) })
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return calls == 1 }, 30*time.Second, time.Millisecond)
	errs := make([]error, 5)
	for i := range errs {
		wg.Go(func() { _, errs[i] = g.Do(ctx, i+1) })
	}
	require.Eventually(t, func() bool { return g.Queued() == 5 }, 30*time.Second, time.Millisecond, "queued")
	close(release)
	wg.Wait()
	for _, err := range errs {
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 2, calls, "one call for the held item, one for the group: no retries alone")
}
