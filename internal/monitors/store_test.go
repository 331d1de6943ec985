package monitors_test

import (
	"cmp"
	"context"
	"encoding/base64"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/monitors"
)

func TestStoreCreateGet(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	m, err := b.svc.Create(ctx, b.owner, monitors.Spec{
		Name: " api ", URL: "https://example.com/health", Method: "head",
		ExpectedStatus: []int{204, 200, 204}, Enabled: true,
	})
	require.NoError(t, err)
	require.NotZero(t, m.ID)
	require.Equal(t, "api", m.Name)
	require.Equal(t, "HEAD", m.Method)
	require.Equal(t, 60, m.IntervalSeconds)
	require.Equal(t, 5000, m.TimeoutMS)
	require.Equal(t, []int{200, 204}, m.ExpectedStatus)
	require.True(t, m.Enabled)
	require.Equal(t, monitors.StateUnknown, m.State)
	require.Nil(t, m.LastCheckedAt)
	requireSameTime(t, t0, m.NextCheckAt) // due for a first check at once

	require.Equal(t, m, mustGet(t, b, m.ID))

	plain := mustCreate(t, b, validSpec("plain"))
	require.NotNil(t, plain.ExpectedStatus, "an empty list must read back as [], not null")
	require.Empty(t, plain.ExpectedStatus)

	_, err = b.svc.Get(ctx, b.owner, plain.ID+1000)
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
}

func TestStoreCreateInvalid(t *testing.T) {
	t.Parallel()
	b := setup(t)

	spec := validSpec("api")
	spec.URL = "https://user:secret@example.com/"
	_, err := b.svc.Create(context.Background(), b.owner, spec)
	requireInvalid(t, err, "url")
	require.Zero(t, countRows(t, b.pool, `SELECT count(*) FROM monitors`))
}

func TestStoreList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	var want []int64
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		want = append(want, mustCreate(t, b, validSpec(name)).ID)
	}

	var (
		got   []int64
		sizes []int
		after int64
	)
	for range 10 { // bounded: a broken cursor must not loop forever
		page, err := listAfter(ctx, b, b.owner, after, 2)
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		sizes = append(sizes, len(page))
		for _, m := range page {
			got = append(got, m.ID)
		}
		after = page[len(page)-1].ID
	}
	require.Equal(t, want, got)
	require.Equal(t, []int{2, 2, 1}, sizes)

	page, err := listAfter(ctx, b, b.owner, want[1], 100)
	require.NoError(t, err)
	require.Len(t, page, 3)
	require.Equal(t, want[2], page[0].ID)
	require.Equal(t, "c", page[0].Name)
}

func TestStoreUpdate(t *testing.T) {
	t.Parallel()

	t.Run("PatchSemantics", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		spec := monitors.Spec{
			Name: "api", URL: "https://example.com/health", Method: "HEAD",
			IntervalSeconds: 120, TimeoutMS: 1000, ExpectedStatus: []int{200, 204}, Enabled: true,
		}
		before := mustCreate(t, b, spec)

		b.clock.Set(t0.Add(time.Minute))
		after, err := b.svc.Update(context.Background(), b.owner, before.ID, func(s *monitors.Spec) { s.Name = "renamed" })
		require.NoError(t, err)

		want := spec
		want.Name = "renamed"
		require.Equal(t, want, after.Spec)
		requireSameTime(t, t0.Add(time.Minute), after.UpdatedAt)
		requireSameTime(t, before.CreatedAt, after.CreatedAt)
		requireSameTime(t, before.NextCheckAt, after.NextCheckAt)
		require.Equal(t, after, mustGet(t, b, before.ID))
	})

	t.Run("ChangeIsNormalized", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		m := mustCreate(t, b, validSpec("api"))
		after, err := b.svc.Update(context.Background(), b.owner, m.ID, func(s *monitors.Spec) {
			s.Method = "post"
			s.ExpectedStatus = []int{404, 200, 404}
		})
		require.NoError(t, err)
		require.Equal(t, "POST", after.Method)
		require.Equal(t, []int{200, 404}, after.ExpectedStatus)
	})

	t.Run("ReEnableIsDueNow", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		m := mustCreate(t, b, validSpec("api"))
		mustClaim(t, b, 10) // next check at t0+60s

		b.clock.Set(t0.Add(10 * time.Second))
		off, err := b.svc.Update(ctx, b.owner, m.ID, func(s *monitors.Spec) { s.Enabled = false })
		require.NoError(t, err)
		require.False(t, off.Enabled)
		requireSameTime(t, t0.Add(60*time.Second), off.NextCheckAt)

		b.clock.Set(t0.Add(10 * time.Minute))
		on, err := b.svc.Update(ctx, b.owner, m.ID, func(s *monitors.Spec) { s.Enabled = true })
		require.NoError(t, err)
		require.True(t, on.Enabled)
		requireSameTime(t, t0.Add(10*time.Minute), on.NextCheckAt)
	})

	t.Run("ShorterIntervalBringsNextCheckForward", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		spec := validSpec("api")
		spec.IntervalSeconds = 3600
		m := mustCreate(t, b, spec)
		mustClaim(t, b, 10)
		requireSameTime(t, t0.Add(time.Hour), mustGet(t, b, m.ID).NextCheckAt)

		b.clock.Set(t0.Add(time.Minute))
		shorter, err := b.svc.Update(ctx, b.owner, m.ID, func(s *monitors.Spec) { s.IntervalSeconds = 60 })
		require.NoError(t, err)
		requireSameTime(t, t0.Add(2*time.Minute), shorter.NextCheckAt)

		// A longer interval never pushes the next check back.
		b.clock.Set(t0.Add(90 * time.Second))
		longer, err := b.svc.Update(ctx, b.owner, m.ID, func(s *monitors.Spec) { s.IntervalSeconds = 7200 })
		require.NoError(t, err)
		requireSameTime(t, t0.Add(2*time.Minute), longer.NextCheckAt)
	})

	t.Run("InvalidChangeLeavesRowUnchanged", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		m := mustCreate(t, b, validSpec("api"))

		b.clock.Set(t0.Add(time.Minute))
		_, err := b.svc.Update(context.Background(), b.owner, m.ID, func(s *monitors.Spec) {
			s.Name = "renamed"
			s.Enabled = false
			s.TimeoutMS = s.IntervalSeconds * 1000
		})
		requireInvalid(t, err, "timeout_ms")
		require.Equal(t, m, mustGet(t, b, m.ID))
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.svc.Update(context.Background(), b.owner, 42, func(s *monitors.Spec) { s.Name = "x" })
		require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
	})
}

func TestStoreDelete(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	m := mustCreate(t, b, validSpec("doomed"))
	other := mustCreate(t, b, validSpec("other"))
	for i := range 3 {
		mustRecord(t, b, monitors.Result{MonitorID: m.ID, CheckedAt: t0.Add(time.Duration(i) * time.Second), OK: true})
	}
	mustRecord(t, b, monitors.Result{MonitorID: other.ID, CheckedAt: t0, OK: true})

	require.NoError(t, b.svc.Delete(ctx, b.owner, m.ID))

	_, err := b.svc.Get(ctx, b.owner, m.ID)
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
	require.Zero(t, countRows(t, b.pool, `SELECT count(*) FROM check_results WHERE monitor_id = $1`, m.ID))
	require.Equal(t, 1, countRows(t, b.pool, `SELECT count(*) FROM check_results WHERE monitor_id = $1`, other.ID))

	require.Equal(t, apperr.NotFound, apperr.CodeOf(b.svc.Delete(ctx, b.owner, m.ID)))
	_, err = b.svc.Results(ctx, b.owner, m.ID, rq(t0, t0.Add(time.Hour), "", 10))
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
	_, err = b.store.Stats(ctx, b.owner, m.ID, t0, t0.Add(time.Hour), time.Minute)
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
}

func TestStoreRecordResult(t *testing.T) {
	t.Parallel()

	t.Run("StoresEveryField", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		m := mustCreate(t, b, validSpec("api"))

		jobID, status := int64(777), 503
		in := monitors.Result{
			MonitorID: m.ID, JobID: &jobID, CheckedAt: t0, DurationMS: 12.345,
			StatusCode: &status, ErrorKind: "status", Error: "unexpected status Service Unavailable",
		}
		in.ID = mustRecord(t, b, in)

		got, err := b.svc.CheckResult(context.Background(), jobID)
		require.NoError(t, err)
		requireSameTime(t, in.CheckedAt, got.CheckedAt)
		got.CheckedAt = in.CheckedAt
		require.Equal(t, in, got)

		_, err = b.svc.CheckResult(context.Background(), jobID+1)
		require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
	})

	t.Run("EmptyErrorReadsBackEmpty", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		m := mustCreate(t, b, validSpec("api"))
		jobID := int64(1)
		mustRecord(t, b, monitors.Result{MonitorID: m.ID, JobID: &jobID, CheckedAt: t0, OK: true})

		require.Zero(t, countRows(t, b.pool, `SELECT count(*) FROM check_results WHERE error_kind IS NOT NULL OR error IS NOT NULL`))
		got, err := b.svc.CheckResult(context.Background(), jobID)
		require.NoError(t, err)
		require.True(t, got.OK)
		require.Empty(t, got.ErrorKind)
		require.Empty(t, got.Error)
		require.Nil(t, got.StatusCode)
	})

	t.Run("State", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		m := mustCreate(t, b, validSpec("api"))
		requireState := func(want monitors.State, lastChecked time.Time) {
			t.Helper()
			got := mustGet(t, b, m.ID)
			require.Equal(t, want, got.State)
			require.NotNil(t, got.LastCheckedAt)
			requireSameTime(t, lastChecked, *got.LastCheckedAt)
		}

		mustRecord(t, b, monitors.Result{MonitorID: m.ID, CheckedAt: t0, OK: true})
		requireState(monitors.StateUp, t0)

		mustRecord(t, b, monitors.Result{MonitorID: m.ID, CheckedAt: t0.Add(time.Minute), ErrorKind: "connect"})
		requireState(monitors.StateDown, t0.Add(time.Minute))

		// A late result (a retried job, a slow worker) is stored but does
		// not overwrite the state a newer one set.
		mustRecord(t, b, monitors.Result{MonitorID: m.ID, CheckedAt: t0.Add(30 * time.Second), OK: true})
		requireState(monitors.StateDown, t0.Add(time.Minute))
		require.Equal(t, 3, countRows(t, b.pool, `SELECT count(*) FROM check_results WHERE monitor_id = $1`, m.ID))

		mustRecord(t, b, monitors.Result{MonitorID: m.ID, CheckedAt: t0.Add(2 * time.Minute), OK: true})
		requireState(monitors.StateUp, t0.Add(2*time.Minute))
	})

	t.Run("RolledBack", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		m := mustCreate(t, b, validSpec("api"))

		tx, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		_, err = b.store.RecordResult(ctx, tx, monitors.Result{MonitorID: m.ID, CheckedAt: t0, OK: true})
		require.NoError(t, err)
		require.NoError(t, tx.Rollback(ctx))

		require.Equal(t, monitors.StateUnknown, mustGet(t, b, m.ID).State)
		require.Zero(t, countRows(t, b.pool, `SELECT count(*) FROM check_results`))
	})
}

func TestStoreResults(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	m := mustCreate(t, b, validSpec("api"))
	other := mustCreate(t, b, validSpec("other"))
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	from, to := at(0), at(10)

	// Inserted out of time order, so ids and times disagree, with ties.
	var inRange []monitors.Result
	for _, s := range []int{7, 2, 0, 10, 2, 5, -1, 7, 2} {
		r := monitors.Result{MonitorID: m.ID, CheckedAt: at(s), OK: true, DurationMS: float64(s + 1)}
		r.ID = mustRecord(t, b, r)
		if !r.CheckedAt.Before(from) && r.CheckedAt.Before(to) {
			inRange = append(inRange, r)
		}
	}
	mustRecord(t, b, monitors.Result{MonitorID: other.ID, CheckedAt: at(5), OK: true})
	slices.SortFunc(inRange, func(x, y monitors.Result) int {
		return cmp.Or(y.CheckedAt.Compare(x.CheckedAt), cmp.Compare(y.ID, x.ID))
	})
	wantIDs := make([]int64, len(inRange))
	for i, r := range inRange {
		wantIDs[i] = r.ID
	}
	require.Len(t, wantIDs, 7)

	// The index returns ties in id order whatever the query says; without
	// it, the sort must break ties itself.
	noIndex := monitors.NewStore(mustOpen(t, b.url, func(c *pgxpool.Config) {
		for _, p := range []string{"enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan"} {
			c.ConnConfig.RuntimeParams[p] = "off"
		}
	}), b.clock.Now)
	for name, store := range map[string]*monitors.Store{"PagesNewestFirst": b.store, "PagesNewestFirstWithoutIndex": noIndex} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			requirePages(t, store, b.owner, m.ID, from, to, wantIDs)
		})
	}

	t.Run("ExactLastPageHasNoCursor", func(t *testing.T) {
		t.Parallel()
		page, err := b.svc.Results(ctx, b.owner, m.ID, rq(from, to, "", len(wantIDs)))
		require.NoError(t, err)
		require.Len(t, page.Items, len(wantIDs))
		require.Empty(t, page.NextCursor)
		requireSameTime(t, at(7), page.Items[0].CheckedAt)
		require.InDelta(t, 8.0, page.Items[0].DurationMS, 0)
	})

	t.Run("Range", func(t *testing.T) {
		t.Parallel()
		// [2 s, 7 s): the three at 2 s and the one at 5 s; not those at 7 s.
		page, err := b.svc.Results(ctx, b.owner, m.ID, rq(at(2), at(7), "", 100))
		require.NoError(t, err)
		var got []time.Time
		for _, r := range page.Items {
			got = append(got, r.CheckedAt.UTC())
		}
		require.Equal(t, []time.Time{at(5), at(2), at(2), at(2)}, got)
		require.Empty(t, page.NextCursor)
	})

	t.Run("EmptyRange", func(t *testing.T) {
		t.Parallel()
		page, err := b.svc.Results(ctx, b.owner, m.ID, rq(at(100), at(200), "", 10))
		require.NoError(t, err)
		require.NotNil(t, page.Items)
		require.Empty(t, page.Items)
		require.Empty(t, page.NextCursor)
	})

	t.Run("GarbageCursor", func(t *testing.T) {
		t.Parallel()
		enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
		for _, c := range []string{"!!!", "not base64 at all", enc("12345"), enc("abc.1"), enc("1.abc"), enc(".")} {
			_, err := b.svc.Results(ctx, b.owner, m.ID, rq(from, to, c, 2))
			requireInvalid(t, err, "cursor")
		}
	})
}

// requirePages pages through a monitor's results two at a time and asserts
// it gets exactly want, in order, on pages of 2, 2, ..., the rest.
func requirePages(t *testing.T, store *monitors.Store, owner, monitorID int64, from, to time.Time, want []int64) {
	t.Helper()
	var (
		got    []int64
		sizes  []int
		cursor string
	)
	for range 2 * len(want) { // bounded: a cursor that does not advance must not loop forever
		page, err := monitors.NewService(store, nil).Results(context.Background(), owner, monitorID, rq(from, to, cursor, 2))
		require.NoError(t, err)
		sizes = append(sizes, len(page.Items))
		for _, r := range page.Items {
			require.Equal(t, monitorID, r.MonitorID)
			got = append(got, r.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	require.Equal(t, want, got)
	wantSizes := make([]int, 0, len(want)/2+1)
	for n := len(want); n > 0; n -= 2 {
		wantSizes = append(wantSizes, min(n, 2))
	}
	require.Equal(t, wantSizes, sizes)
}

func TestStoreStats(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	m := mustCreate(t, b, validSpec("api"))
	other := mustCreate(t, b, validSpec("other"))
	at := func(h, min int) time.Time { return t0.Add(time.Duration(h)*time.Hour + time.Duration(min)*time.Minute) }
	record := func(id int64, checkedAt time.Time, ms float64, ok bool) {
		mustRecord(t, b, monitors.Result{MonitorID: id, CheckedAt: checkedAt, DurationMS: ms, OK: ok})
	}

	// Range [10:20, 12:59): the first bucket (10:00) starts before it.
	from, to := at(0, 20), at(2, 59)
	record(m.ID, at(0, 19), 5000, false) // before from
	record(m.ID, at(2, 59), 5000, false) // at to: excluded
	record(other.ID, at(0, 30), 5000, false)
	// 10:00 bucket.
	record(m.ID, at(0, 20), 10, true)
	record(m.ID, at(0, 30), 40, true)
	record(m.ID, at(0, 40), 30, false)
	record(m.ID, at(0, 50), 20, true)
	// No check in the 11:00 bucket. 12:00 bucket:
	record(m.ID, at(2, 0), 1000, true)
	record(m.ID, at(2, 10), 300, false)
	record(m.ID, at(2, 20), 100, true)
	record(m.ID, at(2, 30), 400, false)
	record(m.ID, at(2, 58), 200, true)

	buckets, err := b.store.Stats(ctx, b.owner, m.ID, from, to, time.Hour)
	require.NoError(t, err)
	require.Len(t, buckets, 2)

	// percentile_cont(p) interpolates at position p*(n-1) of the sorted values.
	// 10:00: [10 20 30 40]: p50 at 1.5 -> 25; p95 at 2.85 -> 38.5; p99 at 2.97 -> 39.7.
	first := buckets[0]
	requireSameTime(t, at(0, 0), first.Start)
	require.Equal(t, int64(4), first.Checks)
	require.Equal(t, int64(3), first.Successes)
	require.InDelta(t, 0.75, first.Uptime, 1e-9)
	require.InDelta(t, 25, first.P50MS, 1e-9)
	require.InDelta(t, 38.5, first.P95MS, 1e-9)
	require.InDelta(t, 39.7, first.P99MS, 1e-9)

	// 12:00: [100 200 300 400 1000]: p50 at 2 -> 300; p95 at 3.8 -> 880; p99 at 3.96 -> 976.
	second := buckets[1]
	requireSameTime(t, at(2, 0), second.Start)
	require.Equal(t, int64(5), second.Checks)
	require.Equal(t, int64(3), second.Successes)
	require.InDelta(t, 0.6, second.Uptime, 1e-9)
	require.InDelta(t, 300, second.P50MS, 1e-9)
	require.InDelta(t, 880, second.P95MS, 1e-9)
	require.InDelta(t, 976, second.P99MS, 1e-9)

	t.Run("AlignedToEpoch", func(t *testing.T) {
		t.Parallel()
		// 7 minutes does not divide an hour: buckets align on the epoch, not on from.
		const size = 7 * time.Minute
		buckets, err := b.store.Stats(ctx, b.owner, m.ID, from, to, size)
		require.NoError(t, err)

		want := map[int64][2]int64{} // bucket start -> checks, successes
		for _, c := range []struct {
			at time.Time
			ok bool
		}{
			{at(0, 20), true}, {at(0, 30), true}, {at(0, 40), false}, {at(0, 50), true},
			{at(2, 0), true}, {at(2, 10), false}, {at(2, 20), true}, {at(2, 30), false}, {at(2, 58), true},
		} {
			start := c.at.Unix() / int64(size.Seconds()) * int64(size.Seconds())
			w := want[start]
			w[0]++
			if c.ok {
				w[1]++
			}
			want[start] = w
		}

		got := map[int64][2]int64{}
		var starts []int64
		for _, bk := range buckets {
			require.Zero(t, bk.Start.Unix()%int64(size.Seconds()), "bucket %s not aligned", bk.Start)
			got[bk.Start.Unix()] = [2]int64{bk.Checks, bk.Successes}
			starts = append(starts, bk.Start.Unix())
		}
		require.Equal(t, want, got)
		require.True(t, slices.IsSorted(starts), "buckets in time order")
		// The first bucket starts before from (10:20 is not a multiple of 7 min).
		require.True(t, buckets[0].Start.Before(from))
	})

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		buckets, err := b.store.Stats(ctx, b.owner, m.ID, at(5, 0), at(6, 0), time.Hour)
		require.NoError(t, err)
		require.NotNil(t, buckets)
		require.Empty(t, buckets)
	})
}

// Retention by partitions: TestPruneResultsDropsWholePartitions (partition_test.go).

// mustClaim claims due monitors at the store's current time and commits.
func mustClaim(t *testing.T, b *testBundle, limit int) []monitors.Due {
	t.Helper()
	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	due, err := b.store.ClaimDue(ctx, tx, limit)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	return due
}

func TestStoreClaimDue(t *testing.T) {
	t.Parallel()

	t.Run("ClaimedOnceKeepingPhase", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		m := mustCreate(t, b, validSpec("api")) // next = t0, every 60 s

		// Two slots (t0+60 s, t0+120 s) were missed while nothing ran: one
		// check for the oldest, then back on the t0 + k*60 s grid.
		b.clock.Set(t0.Add(150 * time.Second))
		due := mustClaim(t, b, 10)
		require.Len(t, due, 1)
		require.Equal(t, m.ID, due[0].MonitorID)
		requireSameTime(t, t0, due[0].Slot)
		requireSameTime(t, t0.Add(180*time.Second), mustGet(t, b, m.ID).NextCheckAt)

		require.Empty(t, mustClaim(t, b, 10), "claimed twice")

		// Exactly due counts as due.
		b.clock.Set(t0.Add(180 * time.Second))
		due = mustClaim(t, b, 10)
		require.Len(t, due, 1)
		requireSameTime(t, t0.Add(180*time.Second), due[0].Slot)
		requireSameTime(t, t0.Add(240*time.Second), mustGet(t, b, m.ID).NextCheckAt)
	})

	t.Run("OnlyEnabledAndDue", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		due := mustCreate(t, b, validSpec("due"))
		off := validSpec("disabled")
		off.Enabled = false
		disabled := mustCreate(t, b, off)
		b.clock.Set(t0.Add(200 * time.Second))
		later := mustCreate(t, b, validSpec("later"))

		b.clock.Set(t0.Add(150 * time.Second))
		claimed := mustClaim(t, b, 10)
		require.Len(t, claimed, 1)
		require.Equal(t, due.ID, claimed[0].MonitorID)
		requireSameTime(t, t0, mustGet(t, b, disabled.ID).NextCheckAt)
		requireSameTime(t, t0.Add(200*time.Second), mustGet(t, b, later.ID).NextCheckAt)
	})

	t.Run("LimitTakesOldestFirst", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var ids []int64
		for i := range 3 {
			b.clock.Set(t0.Add(time.Duration(i) * time.Second))
			ids = append(ids, mustCreate(t, b, validSpec("m")).ID)
		}
		b.clock.Set(t0.Add(10 * time.Second))
		var got []int64
		for _, d := range mustClaim(t, b, 2) {
			got = append(got, d.MonitorID)
		}
		require.ElementsMatch(t, ids[:2], got)
		due := mustClaim(t, b, 2)
		require.Len(t, due, 1)
		require.Equal(t, ids[2], due[0].MonitorID)
	})

	t.Run("LockedRowsSkipped", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		m := mustCreate(t, b, validSpec("api"))
		// A claim that blocked instead of skipping would hang: bound it.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()

		tx1, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		defer tx1.Rollback(ctx) //nolint:errcheck // rolled back below
		due, err := b.store.ClaimDue(ctx, tx1, 10)
		require.NoError(t, err)
		require.Len(t, due, 1)

		tx2, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		defer tx2.Rollback(ctx) //nolint:errcheck // no-op after commit
		due, err = b.store.ClaimDue(ctx, tx2, 10)
		require.NoError(t, err)
		require.Empty(t, due, "a row claimed by an open transaction must be skipped")

		// The first claim is abandoned: the slot is still there to take.
		require.NoError(t, tx1.Rollback(ctx))
		due, err = b.store.ClaimDue(ctx, tx2, 10)
		require.NoError(t, err)
		require.Len(t, due, 1)
		require.Equal(t, m.ID, due[0].MonitorID)
		requireSameTime(t, t0, due[0].Slot)
		require.NoError(t, tx2.Commit(ctx))
	})
}
