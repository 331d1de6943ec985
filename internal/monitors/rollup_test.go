package monitors_test

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/monitors"
)

// percentileCont is PostgreSQL's percentile_cont(q) of sorted values.
func percentileCont(sorted []float64, q float64) float64 {
	h := q * float64(len(sorted)-1)
	lo := int(math.Floor(h))
	hi := min(lo+1, len(sorted)-1)
	return sorted[lo] + (h-float64(lo))*(sorted[hi]-sorted[lo])
}

// latencyBin is check_latency_bin (migration 0002) in Go.
func latencyBin(ms float64) int {
	if ms < monitors.LatencyBinLow {
		return 0
	}
	return min(192, int(math.Floor(math.Log2(ms/monitors.LatencyBinLow)*8))+1)
}

// withinBound asserts est is within the stated error of exact.
func withinBound(t *testing.T, exact, est float64, what string) float64 {
	t.Helper()
	bound := monitors.PercentileError*exact + monitors.LatencyBinLow/2
	require.LessOrEqual(t, math.Abs(est-exact), bound*(1+1e-9), "%s: estimate %g, exact %g", what, est, exact)
	if exact == 0 {
		return 0
	}
	return math.Abs(est-exact) / exact
}

// samplers draw latencies (ms) of different shapes: a fast service, one
// with a slow tail, one spread over five orders of magnitude, loopback.
var samplers = map[string]func(r *rand.Rand) float64{
	"lognormal": func(r *rand.Rand) float64 { return math.Exp(math.Log(80) + 0.4*r.NormFloat64()) },
	"slow tail": func(r *rand.Rand) float64 {
		if r.Float64() < 0.06 {
			return math.Exp(math.Log(3000) + 0.5*r.NormFloat64())
		}
		return math.Exp(math.Log(40) + 0.3*r.NormFloat64())
	},
	"uniform log": func(r *rand.Rand) float64 { return math.Pow(10, -1+5*r.Float64()) },
	"loopback":    func(r *rand.Rand) float64 { return 0.05 + 0.4*r.Float64() },
}

// TestBinQuantileBound checks the stated error against percentile_cont on
// random samples of every shape and size, in Go.
func TestBinQuantileBound(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 14))
	worst := 0.0
	for name, draw := range samplers {
		for _, n := range []int{1, 2, 3, 10, 100, 1000, 20000} {
			for range 5 {
				vals := make([]float64, n)
				bins := make([]int, n)
				for i := range vals {
					vals[i] = draw(r)
					bins[i] = latencyBin(vals[i])
				}
				slices.Sort(vals)
				for _, q := range []float64{0.5, 0.95, 0.99} {
					rel := withinBound(t, percentileCont(vals, q), monitors.BinQuantile(bins, q), name)
					worst = max(worst, rel)
				}
			}
		}
	}
	t.Logf("worst relative error %.4f, bound %.4f", worst, monitors.PercentileError)
}

// TestRollupStats records random results over five days and compares the
// stats read from the rollups (hourly and per-minute) with exact ones
// computed from every result: the same buckets, counts and successes, and
// percentiles within the stated error.
func TestRollupStats(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 15))

	m := mustCreate(t, b, validSpec("api"))
	start := t0.Add(-5 * 24 * time.Hour)
	const n = 20000
	draw := samplers["slow tail"]
	var batch []monitors.Result
	for i := range n {
		at := start.Add(time.Duration(r.Int64N(int64(5 * 24 * time.Hour)))).Truncate(time.Microsecond)
		batch = append(batch, monitors.Result{MonitorID: m.ID, CheckedAt: at, DurationMS: draw(r), OK: r.Float64() < 0.97})
		if len(batch) == 1000 || i == n-1 {
			require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
				_, err := b.store.RecordResults(ctx, tx, batch)
				return err
			}))
			batch = batch[:0]
		}
	}
	require.Equal(t, n, countRows(t, b.pool, `SELECT sum(checks) FROM check_rollups_hour`))
	require.Equal(t, n, countRows(t, b.pool, `SELECT sum(checks) FROM check_rollups_minute`))
	require.Equal(t, n, countRows(t, b.pool, `SELECT sum(checks) FROM check_rollups_day`))

	// Unaligned ends: the partial hours and minutes come from the results.
	from, to := start.Add(17*time.Minute+23*time.Second), t0.Add(-41*time.Minute-5*time.Second)
	for _, c := range []struct {
		bucket time.Duration
		tables []string // read, in order ("" the results)
	}{
		{24 * time.Hour, []string{"", "check_rollups_minute", "check_rollups_hour", "check_rollups_day", "check_rollups_hour", "check_rollups_minute", ""}},
		{6 * time.Hour, []string{"", "check_rollups_minute", "check_rollups_hour", "check_rollups_minute", ""}},
		{time.Hour, []string{"", "check_rollups_minute", "check_rollups_hour", "check_rollups_minute", ""}},
		{15 * time.Minute, []string{"", "check_rollups_minute", ""}},
	} {
		_, _, tables := monitors.StatsStatement(m.ID, from, to, c.bucket)
		require.Equal(t, c.tables, tables, "bucket %s", c.bucket)

		got, err := b.store.Stats(ctx, b.owner, m.ID, from, to, c.bucket)
		require.NoError(t, err)
		rows, err := b.pool.Query(ctx, monitors.RawStatsSQL, m.ID, from, to, c.bucket.Seconds())
		require.NoError(t, err)
		want, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (monitors.Bucket, error) {
			var bk monitors.Bucket
			var p []float64
			err := row.Scan(&bk.Start, &bk.Checks, &bk.Successes, &p)
			bk.P50MS, bk.P95MS, bk.P99MS = p[0], p[1], p[2]
			return bk, err
		})
		require.NoError(t, err)
		require.Equal(t, len(want), len(got), "bucket %s", c.bucket)
		worst := 0.0
		for i := range want {
			w, g := want[i], got[i]
			requireSameTime(t, w.Start, g.Start)
			require.Equal(t, w.Checks, g.Checks, "bucket %s at %s", c.bucket, w.Start)
			require.Equal(t, w.Successes, g.Successes, "bucket %s at %s", c.bucket, w.Start)
			require.InDelta(t, float64(w.Successes)/float64(w.Checks), g.Uptime, 1e-12)
			for _, p := range [][2]float64{{w.P50MS, g.P50MS}, {w.P95MS, g.P95MS}, {w.P99MS, g.P99MS}} {
				worst = max(worst, withinBound(t, p[0], p[1], "bucket "+c.bucket.String()+" at "+w.Start.String()))
			}
		}
		t.Logf("bucket %s: %d buckets, worst relative error %.4f (bound %.4f)", c.bucket, len(want), worst, monitors.PercentileError)
	}

	// A short range reads the results: exact percentiles.
	_, _, tables := monitors.StatsStatement(m.ID, t0.Add(-monitors.RawStatsSpan), t0, time.Hour)
	require.Empty(t, tables)
}

// TestRollupsFollowDeletes: deleting a monitor deletes its rollups.
func TestRollupsFollowDeletes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	m := mustCreate(t, b, validSpec("gone"))
	keep := mustCreate(t, b, validSpec("kept"))
	for i := range 3 {
		mustRecord(t, b, monitors.Result{MonitorID: m.ID, CheckedAt: t0.Add(time.Duration(i) * time.Minute), DurationMS: 3, OK: true})
		mustRecord(t, b, monitors.Result{MonitorID: keep.ID, CheckedAt: t0.Add(time.Duration(i) * time.Minute), DurationMS: 3, OK: true})
	}
	require.NoError(t, b.svc.Delete(ctx, b.owner, m.ID))
	for _, table := range []string{"check_rollups_minute", "check_rollups_hour"} {
		require.Equal(t, 0, countRows(t, b.pool, `SELECT count(*) FROM `+table+` WHERE monitor_id = $1`, m.ID))
		require.Equal(t, 3, countRows(t, b.pool, `SELECT sum(checks) FROM `+table+` WHERE monitor_id = $1`, keep.ID))
	}
}
