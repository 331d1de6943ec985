package monitors_test

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/monitors"
)

// privateURL is what a published monitor checks: a status page must never show it.
const privateURL = "https://intranet.private.example/health?token=SECRET"

func publishedSpec(name, slug string) monitors.Spec {
	s := validSpec(name)
	s.URL = privateURL
	s.PublicSlug = &slug
	return s
}

// requireSlugTaken asserts err is the conflict a taken public slug gives.
func requireSlugTaken(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	e, ok := apperr.As(err)
	require.True(t, ok, "want an *apperr.Error, got %T: %v", err, err)
	require.Equal(t, apperr.Conflict, e.Code, "error: %v", err)
	require.Equal(t, "public_slug", e.Field, "error: %v", err)
}

func slugOf(t *testing.T, b *testBundle, id int64) *string {
	t.Helper()
	var slug *string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT public_slug FROM monitors WHERE id = $1`, id).Scan(&slug))
	return slug
}

func TestStorePublicSlug(t *testing.T) {
	t.Parallel()

	t.Run("CreateStoresIt", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		m := mustCreate(t, b, publishedSpec("api", "api-status"))
		require.NotNil(t, m.PublicSlug)
		require.Equal(t, "api-status", *m.PublicSlug)
		require.Equal(t, m, mustGet(t, b, m.ID))

		plain := mustCreate(t, b, validSpec("private"))
		require.Nil(t, plain.PublicSlug)
		require.Nil(t, slugOf(t, b, plain.ID))
	})

	t.Run("CreateInvalid", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.svc.Create(context.Background(), b.owner, publishedSpec("api", "Not A Slug"))
		requireInvalid(t, err, "public_slug")
		require.Zero(t, countRows(t, b.pool, `SELECT count(*) FROM monitors`))
	})

	t.Run("UniqueAcrossOwners", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		other := mustUser(t, b.pool, "other@example.com")
		mustCreate(t, b, publishedSpec("api", "status"))

		// Create: by another owner, or by the same one.
		_, err := b.svc.Create(ctx, other, publishedSpec("theirs", "status"))
		requireSlugTaken(t, err)
		_, err = b.svc.Create(ctx, b.owner, publishedSpec("second", "status"))
		requireSlugTaken(t, err)
		require.Equal(t, 1, countRows(t, b.pool, `SELECT count(*) FROM monitors`))

		// Update: the row is left as it was.
		theirs, err := b.svc.Create(ctx, other, validSpec("theirs"))
		require.NoError(t, err)
		b.clock.Set(t0.Add(time.Minute))
		_, err = b.svc.Update(ctx, other, theirs.ID, func(s *monitors.Spec) {
			s.Name = "renamed"
			s.PublicSlug = ptr("status")
		})
		requireSlugTaken(t, err)
		after, err := b.svc.Get(ctx, other, theirs.ID)
		require.NoError(t, err)
		require.Equal(t, theirs, after)
	})

	t.Run("UpdateKeepsClearsAndFrees", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		m := mustCreate(t, b, publishedSpec("api", "status"))

		// A change that does not touch the slug keeps it (and does not
		// conflict with the row itself).
		renamed, err := b.svc.Update(ctx, b.owner, m.ID, func(s *monitors.Spec) { s.Name = "renamed" })
		require.NoError(t, err)
		require.Equal(t, ptr("status"), renamed.PublicSlug)
		st, err := b.svc.PublicStatus(ctx, "status")
		require.NoError(t, err)
		require.Equal(t, "renamed", st.Name)

		// An invalid slug is refused before the database sees it.
		_, err = b.svc.Update(ctx, b.owner, m.ID, func(s *monitors.Spec) { s.PublicSlug = ptr("-bad-") })
		requireInvalid(t, err, "public_slug")
		require.Equal(t, ptr("status"), slugOf(t, b, m.ID))

		// Clearing unpublishes.
		cleared, err := b.svc.Update(ctx, b.owner, m.ID, func(s *monitors.Spec) { s.PublicSlug = nil })
		require.NoError(t, err)
		require.Nil(t, cleared.PublicSlug)
		require.Nil(t, slugOf(t, b, m.ID))
		_, err = b.svc.PublicStatus(ctx, "status")
		require.Equal(t, apperr.NotFound, apperr.CodeOf(err))

		// ... and frees the slug for anyone.
		other := mustUser(t, b.pool, "other@example.com")
		theirs, err := b.svc.Create(ctx, other, publishedSpec("theirs", "status"))
		require.NoError(t, err)
		st, err = b.svc.PublicStatus(ctx, "status")
		require.NoError(t, err)
		require.Equal(t, "theirs", st.Name)
		require.Equal(t, ptr("status"), theirs.PublicSlug)
	})
}

func TestStorePublicStatus(t *testing.T) {
	t.Parallel()

	t.Run("Published", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		m := mustCreate(t, b, publishedSpec("Public API", "public-api"))
		hidden := mustCreate(t, b, validSpec("hidden"))

		record := func(id int64, ago time.Duration, ok bool, ms float64) {
			mustRecord(t, b, monitors.Result{MonitorID: id, CheckedAt: t0.Add(-ago), OK: ok, DurationMS: ms})
		}
		record(m.ID, 8*24*time.Hour, false, 80)  // older than 7 days: in neither uptime
		record(m.ID, 3*24*time.Hour, true, 30)   // 7 days only
		record(m.ID, 2*24*time.Hour, true, 20)   // 7 days only
		record(m.ID, 23*time.Hour, false, 23)    // both
		record(m.ID, time.Hour, true, 1)         // both, newest
		record(hidden.ID, time.Minute, false, 5) // another monitor: counts nowhere

		st, err := b.svc.PublicStatus(ctx, "public-api")
		require.NoError(t, err)
		require.Equal(t, "Public API", st.Name)
		require.Equal(t, monitors.StateUp, st.State)
		require.NotNil(t, st.LastCheckedAt)
		requireSameTime(t, t0.Add(-time.Hour), *st.LastCheckedAt)
		require.NotNil(t, st.Uptime24h)
		require.InDelta(t, 0.5, *st.Uptime24h, 1e-9)
		require.NotNil(t, st.Uptime7d)
		require.InDelta(t, 3.0/4, *st.Uptime7d, 1e-9)

		// Recent: newest first, this monitor's only.
		var (
			times []time.Time
			oks   []bool
			ms    []float64
		)
		for _, c := range st.Recent {
			times = append(times, c.CheckedAt.UTC())
			oks = append(oks, c.OK)
			ms = append(ms, c.DurationMS)
		}
		require.Equal(t, []time.Time{
			t0.Add(-time.Hour), t0.Add(-23 * time.Hour), t0.Add(-48 * time.Hour), t0.Add(-72 * time.Hour), t0.Add(-192 * time.Hour),
		}, times)
		require.Equal(t, []bool{true, false, true, true, false}, oks)
		require.Equal(t, []float64{1, 23, 20, 30, 80}, ms)

		// What goes out: these fields and nothing else; never the URL.
		raw, err := json.Marshal(st)
		require.NoError(t, err)
		require.NotContains(t, string(raw), "intranet")
		require.NotContains(t, string(raw), "SECRET")
		require.NotContains(t, string(raw), "example")
		var page map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(raw, &page))
		require.Equal(t, []string{"last_checked_at", "name", "recent", "state", "uptime_24h", "uptime_7d"},
			slices.Sorted(maps.Keys(page)))
		var recent []map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(page["recent"], &recent))
		require.Len(t, recent, 5)
		for _, c := range recent {
			require.Equal(t, []string{"checked_at", "duration_ms", "ok"}, slices.Sorted(maps.Keys(c)))
		}
	})

	t.Run("NeverChecked", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		mustCreate(t, b, publishedSpec("new", "brand-new"))

		st, err := b.svc.PublicStatus(context.Background(), "brand-new")
		require.NoError(t, err)
		require.Equal(t, monitors.StateUnknown, st.State)
		require.Nil(t, st.LastCheckedAt)
		require.Nil(t, st.Uptime24h)
		require.Nil(t, st.Uptime7d)
		require.NotNil(t, st.Recent)
		require.Empty(t, st.Recent)

		raw, err := json.Marshal(st)
		require.NoError(t, err)
		require.JSONEq(t, `{"name":"new","state":"unknown","recent":[]}`, string(raw))
	})

	t.Run("RecentIsBounded", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		m := mustCreate(t, b, publishedSpec("busy", "busy"))
		_, err := b.pool.Exec(ctx, `
			INSERT INTO check_results (monitor_id, checked_at, duration_ms, ok)
			SELECT $1, $2::timestamptz - g * interval '1 minute', g, true FROM generate_series(1, 80) g`, m.ID, t0)
		require.NoError(t, err)

		st, err := b.svc.PublicStatus(ctx, "busy")
		require.NoError(t, err)
		require.Len(t, st.Recent, 50)
		requireSameTime(t, t0.Add(-time.Minute), st.Recent[0].CheckedAt)
		requireSameTime(t, t0.Add(-50*time.Minute), st.Recent[49].CheckedAt)
		require.NotNil(t, st.Uptime24h)
		require.InDelta(t, 1.0, *st.Uptime24h, 1e-9)
	})

	t.Run("Unknown", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		mustCreate(t, b, publishedSpec("api", "public-api"))
		mustCreate(t, b, validSpec("private"))
		for _, slug := range []string{"nope", "public-ap", "PUBLIC-API", "", "' OR 1=1 --"} {
			_, err := b.svc.PublicStatus(context.Background(), slug)
			require.Equal(t, apperr.NotFound, apperr.CodeOf(err), "slug %q: %v", slug, err)
		}
	})
}
