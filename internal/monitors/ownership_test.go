package monitors_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/monitors"
)

func requireNotFound(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err), "error: %v", err)
}

// mustInsertUnowned inserts a monitor as it was before accounts existed
// (owner_id NULL) and returns its id.
func mustInsertUnowned(t *testing.T, b *testBundle, name string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.pool.QueryRow(context.Background(), `
		INSERT INTO monitors (name, url, method, interval_seconds, timeout_ms, next_check_at)
		VALUES ($1, 'https://example.com/legacy', 'GET', 60, 5000, $2) RETURNING id`, name, t0).Scan(&id))
	return id
}

func ownerOf(t *testing.T, b *testBundle, id int64) *int64 {
	t.Helper()
	var owner *int64
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT owner_id FROM monitors WHERE id = $1`, id).Scan(&owner))
	return owner
}

// Another owner's monitor does not exist as far as a user can tell: every
// scoped operation says not found and changes nothing.
func TestStoreOwnerScoping(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	other := mustUser(t, b.pool, "other@example.com")

	m := mustCreate(t, b, validSpec("mine"))
	require.NotNil(t, m.OwnerID)
	require.Equal(t, b.owner, *m.OwnerID)
	for i := range 3 {
		mustRecord(t, b, monitors.Result{MonitorID: m.ID, CheckedAt: t0.Add(time.Duration(i) * time.Minute), OK: true, DurationMS: 10})
	}
	before := mustGet(t, b, m.ID)

	t.Run("Get", func(t *testing.T) {
		_, err := b.svc.Get(ctx, other, m.ID)
		requireNotFound(t, err)
	})

	t.Run("Update", func(t *testing.T) {
		called := false
		_, err := b.svc.Update(ctx, other, m.ID, func(s *monitors.Spec) {
			called = true
			s.Name = "stolen"
			s.Enabled = false
		})
		requireNotFound(t, err)
		require.False(t, called, "the change must not even be computed for another owner's monitor")
		require.Equal(t, before, mustGet(t, b, m.ID))
	})

	t.Run("Delete", func(t *testing.T) {
		requireNotFound(t, b.svc.Delete(ctx, other, m.ID))
		require.Equal(t, before, mustGet(t, b, m.ID))
		require.Equal(t, 3, countRows(t, b.pool, `SELECT count(*) FROM check_results WHERE monitor_id = $1`, m.ID))
	})

	t.Run("Results", func(t *testing.T) {
		_, err := b.svc.Results(ctx, other, m.ID, rq(t0, t0.Add(time.Hour), "", 10))
		requireNotFound(t, err)
		// The owner still sees them.
		page, err := b.svc.Results(ctx, b.owner, m.ID, rq(t0, t0.Add(time.Hour), "", 10))
		require.NoError(t, err)
		require.Len(t, page.Items, 3)
	})

	t.Run("Stats", func(t *testing.T) {
		_, err := b.store.Stats(ctx, other, m.ID, t0, t0.Add(time.Hour), time.Hour)
		requireNotFound(t, err)
		buckets, err := b.store.Stats(ctx, b.owner, m.ID, t0, t0.Add(time.Hour), time.Hour)
		require.NoError(t, err)
		require.Len(t, buckets, 1)
	})

	t.Run("RunCheck", func(t *testing.T) {
		svc := monitors.NewService(b.store, insertOnlyClient(t, b.pool, b.store))
		_, err := svc.RunCheck(ctx, other, m.ID)
		requireNotFound(t, err)
		require.Zero(t, countRows(t, b.pool, `SELECT count(*) FROM river_job`))

		jobID, err := svc.RunCheck(ctx, b.owner, m.ID)
		require.NoError(t, err)
		require.Equal(t, 1, countRows(t, b.pool, `SELECT count(*) FROM river_job WHERE id = $1`, jobID))
	})

	t.Run("Owns", func(t *testing.T) {
		ok, err := b.store.Owns(ctx, b.owner, m.ID)
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = b.store.Owns(ctx, other, m.ID)
		require.NoError(t, err)
		require.False(t, ok)
		ok, err = b.store.Owns(ctx, b.owner, m.ID+1000)
		require.NoError(t, err)
		require.False(t, ok)
	})

	// Last: the monitor goes.
	t.Run("OwnerDeletes", func(t *testing.T) {
		require.NoError(t, b.svc.Delete(ctx, b.owner, m.ID))
		requireNotFound(t, b.svc.Delete(ctx, b.owner, m.ID))
	})
}

// List returns one's own monitors only, and pages through them with ids
// interleaved with another owner's.
func TestStoreListScoped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	other := mustUser(t, b.pool, "other@example.com")

	var mine, theirs []int64
	for i := range 7 {
		if i%2 == 0 {
			mine = append(mine, mustCreate(t, b, validSpec("mine")).ID)
		} else {
			m, err := b.svc.Create(ctx, other, validSpec("theirs"))
			require.NoError(t, err)
			theirs = append(theirs, m.ID)
		}
	}
	mustInsertUnowned(t, b, "legacy") // nobody's: listed to no one

	listAll := func(owner int64) []int64 {
		t.Helper()
		var (
			ids   []int64
			after int64
		)
		for range 10 {
			page, err := listAfter(ctx, b, owner, after, 2)
			require.NoError(t, err)
			if len(page) == 0 {
				break
			}
			for _, m := range page {
				require.NotNil(t, m.OwnerID)
				require.Equal(t, owner, *m.OwnerID)
				ids = append(ids, m.ID)
			}
			after = page[len(page)-1].ID
		}
		return ids
	}
	require.Equal(t, mine, listAll(b.owner))
	require.Equal(t, theirs, listAll(other))
	require.Empty(t, listAll(mustUser(t, b.pool, "nobody@example.com")))
}

func TestStoreAdoptUnowned(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	admin := mustUser(t, b.pool, "admin@example.com")

	mine := mustCreate(t, b, validSpec("mine"))
	legacy := []int64{mustInsertUnowned(t, b, "legacy-1"), mustInsertUnowned(t, b, "legacy-2")}

	// Before adoption nobody may see them.
	for _, id := range legacy {
		_, err := b.svc.Get(ctx, admin, id)
		requireNotFound(t, err)
		_, err = b.svc.Get(ctx, b.owner, id)
		requireNotFound(t, err)
	}

	n, err := b.store.AdoptUnowned(ctx, admin)
	require.NoError(t, err)
	require.Equal(t, int64(2), n)

	for _, id := range legacy {
		m, err := b.svc.Get(ctx, admin, id)
		require.NoError(t, err)
		require.NotNil(t, m.OwnerID)
		require.Equal(t, admin, *m.OwnerID)
	}
	page, err := listAfter(ctx, b, admin, 0, 10)
	require.NoError(t, err)
	require.Len(t, page, 2)
	// An owned monitor keeps its owner.
	require.Equal(t, &b.owner, ownerOf(t, b, mine.ID))
	require.Equal(t, mine, mustGet(t, b, mine.ID))

	// Idempotent: nothing left to adopt, and nothing taken from the admin.
	n, err = b.store.AdoptUnowned(ctx, b.owner)
	require.NoError(t, err)
	require.Zero(t, n)
	for _, id := range legacy {
		require.Equal(t, &admin, ownerOf(t, b, id))
	}
}
