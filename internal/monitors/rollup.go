package monitors

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Stats over short ranges read the results themselves and give exact
// percentiles. Longer ranges read rollups (check_rollups_minute, _hour and
// _day, written with the results): per monitor and time bucket, how many
// checks, how many succeeded, and how many fell in each latency bin (a
// sparse histogram). Only the partial minutes at the range's two ends are
// read from the results (see planStats), so a year costs what a year of
// daily rows costs, whatever the number of results.
//
// Percentiles from rollups come from the latency bins (check_latency_bin in
// migration 0002): eighth-octave bins, each value replaced by its bin's
// geometric midpoint, interpolated between ranks as percentile_cont does.
// Each of the two values interpolated is within PercentileError (relative)
// of the value it stands for, so the estimate is within PercentileError of
// percentile_cont's answer, plus latencyBinLow/2 (0.004 ms) for values under
// latencyBinLow.

// PercentileError bounds the relative error of p50/p95/p99 computed from
// rollups: 2^(1/16) - 1.
var PercentileError = math.Exp2(1.0/16) - 1

const (
	// latencyBinLow is where bin 1 starts (ms); bin 0 holds [0, latencyBinLow).
	latencyBinLow = 1.0 / 128
	// latencyBinsPerOctave: each bin is 2^(1/8) wide.
	latencyBinsPerOctave = 8
	// latencyBins is the number of bins: 0 to 192 (2^17 ms and above).
	latencyBins = 193
	// rawStatsSpan is the longest range whose stats read every result: at
	// the shortest interval (10 s) 2,160 results, a couple of milliseconds.
	rawStatsSpan = 6 * time.Hour
)

// latencyBinValue is the value standing for bin k: its geometric midpoint.
func latencyBinValue(k int) float64 {
	if k <= 0 {
		return latencyBinLow / 2
	}
	return latencyBinLow * math.Exp2((float64(k)-0.5)/latencyBinsPerOctave)
}

// binCount is how many checks of a bucket fell in a latency bin.
type binCount struct {
	bin int
	n   int64
}

// binQuantile estimates percentile_cont(q) from counts per bin, sorted by bin.
func binQuantile(bins []binCount, total int64, q float64) float64 {
	if total == 0 {
		return 0
	}
	h := q * float64(total-1)
	lo := int64(math.Floor(h))
	hi := min(lo+1, total-1)
	vlo, vhi := binAtRank(bins, lo), binAtRank(bins, hi)
	return vlo + (h-float64(lo))*(vhi-vlo)
}

// binAtRank is the value standing for the rank-th smallest check (0-based).
func binAtRank(bins []binCount, rank int64) float64 {
	var seen int64
	for _, b := range bins {
		seen += b.n
		if rank < seen {
			return latencyBinValue(b.bin)
		}
	}
	return latencyBinValue(bins[len(bins)-1].bin)
}

// statsSegment is a part of a stats range and the table it is read from:
// a rollup table, or "" for the results.
type statsSegment struct {
	table  string
	lo, hi time.Time
}

// rollupGrains are the rollup tables, coarsest first.
var rollupGrains = []struct {
	grain time.Duration
	table string
}{
	{24 * time.Hour, "check_rollups_day"},
	{time.Hour, "check_rollups_hour"},
	{time.Minute, "check_rollups_minute"},
}

// planStats cuts [from, to) into segments per source: nil (every result)
// for a short range or a bucket not made of whole minutes; else the
// coarsest rollup whose grain divides the bucket for the whole grains in
// range, finer ones for the partial ones at the ends, and the results for
// the partial minutes. A year of daily buckets reads 365 daily rows, up to
// 2 × 23 hourly ones, 2 × 59 per-minute ones and two minutes of results.
func planStats(from, to time.Time, bucket time.Duration) []statsSegment {
	if to.Sub(from) <= rawStatsSpan {
		return nil
	}
	var grains []int
	for i, g := range rollupGrains {
		if bucket%g.grain == 0 {
			grains = append(grains, i)
		}
	}
	if len(grains) == 0 {
		return nil
	}
	return splitStats(from, to, grains)
}

func splitStats(from, to time.Time, grains []int) []statsSegment {
	if !from.Before(to) {
		return nil
	}
	if len(grains) == 0 {
		return []statsSegment{{lo: from, hi: to}}
	}
	g := rollupGrains[grains[0]]
	lo, hi := ceilTo(from, g.grain), to.Truncate(g.grain)
	if !lo.Before(hi) {
		return splitStats(from, to, grains[1:])
	}
	segs := splitStats(from, lo, grains[1:])
	segs = append(segs, statsSegment{table: g.table, lo: lo, hi: hi})
	return append(segs, splitStats(hi, to, grains[1:])...)
}

// statsQuery returns the statement computing stats of monitorID over
// [from, to) per bucket and its arguments; rollup says which of the two
// shapes its rows have (rawStatsSQL's, or rollupStatsSQL's).
func statsQuery(monitorID int64, from, to time.Time, bucket time.Duration) (sql string, args []any, rollup bool) {
	segs := planStats(from, to, bucket)
	if segs == nil {
		return rawStatsSQL, []any{monitorID, from, to, bucket.Seconds()}, false
	}
	sql, args = rollupStatsSQL(segs)
	return sql, append([]any{monitorID, bucket.Seconds()}, args...), true
}

// ceilTo rounds t up to a multiple of d since the epoch (d divides a day).
func ceilTo(t time.Time, d time.Duration) time.Time {
	if f := t.Truncate(d); !f.Equal(t) {
		return f.Add(d)
	}
	return t
}

// Stats summarises a monitor's checks in [from, to) per bucket. Buckets are
// aligned on multiples of bucket since the Unix epoch (the first may start
// before from), and only buckets holding checks are returned. Percentiles
// are exact over short ranges and within PercentileError over long ones
// (see planStats).
func (s *Store) Stats(ctx context.Context, owner, monitorID int64, from, to time.Time, bucket time.Duration) ([]Bucket, error) {
	if _, err := s.Get(ctx, owner, monitorID); err != nil {
		return nil, err
	}
	var (
		buckets []Bucket
		err     error
	)
	sql, args, rollup := statsQuery(monitorID, from, to, bucket)
	if rollup {
		buckets, err = s.rollupStats(ctx, sql, args)
	} else {
		buckets, err = s.rawStats(ctx, sql, args)
	}
	if err != nil {
		return nil, fmt.Errorf("stats of monitor %d: %w", monitorID, err)
	}
	if buckets == nil {
		buckets = []Bucket{}
	}
	return buckets, nil
}

// rawStatsSQL: stats of monitor $1 over [$2, $3) per bucket of $4 seconds.
const rawStatsSQL = `
		SELECT date_bin(make_interval(secs => $4), checked_at, timestamptz 'epoch') AS bucket,
		       count(*),
		       count(*) FILTER (WHERE ok),
		       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY duration_ms)
		FROM check_results
		WHERE monitor_id = $1 AND checked_at >= $2 AND checked_at < $3
		GROUP BY 1
		ORDER BY 1`

// rawStats computes the stats from every result in range, exactly.
func (s *Store) rawStats(ctx context.Context, sql string, args []any) ([]Bucket, error) {
	rows, err := s.q(ctx).Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Bucket, error) {
		var b Bucket
		var p []float64
		if err := r.Scan(&b.Start, &b.Checks, &b.Successes, &p); err != nil {
			return b, err
		}
		if len(p) == 3 {
			b.P50MS, b.P95MS, b.P99MS = p[0], p[1], p[2]
		}
		if b.Checks > 0 {
			b.Uptime = float64(b.Successes) / float64(b.Checks)
		}
		return b, nil
	})
}

// rollupStatsSQL reads segs: for each bucket (of $2 seconds, of monitor
// $1), rows of checks, successes and a latency histogram (bins, counts),
// by bucket; several rows of a bucket add up. The arguments after $1 and
// $2 are each segment's bounds.
// It is built per range, so it is Go, not queries.sql; so is rawStatsSQL,
// its alternative in statsQuery, whose parameters are by position, where
// sqlc would number them by first use (the bucket first).
func rollupStatsSQL(segs []statsSegment) (string, []any) {
	parts := make([]string, len(segs))
	args := make([]any, 0, 2*len(segs))
	for i, sg := range segs {
		lo, hi := 3+2*i, 4+2*i
		args = append(args, sg.lo, sg.hi)
		if sg.table != "" {
			parts[i] = fmt.Sprintf(`
			SELECT date_bin(make_interval(secs => $2), bucket, timestamptz 'epoch') AS b, checks, successes, bins, counts
			FROM %s WHERE monitor_id = $1 AND bucket >= $%d AND bucket < $%d`, pgx.Identifier{sg.table}.Sanitize(), lo, hi)
			continue
		}
		parts[i] = fmt.Sprintf(`
			SELECT b, sum(n)::int, sum(ok)::int, array_agg(bin ORDER BY bin), array_agg(n::int ORDER BY bin)
			FROM (SELECT date_bin(make_interval(secs => $2), checked_at, timestamptz 'epoch') AS b,
			             check_latency_bin(duration_ms) AS bin, count(*) AS n, count(*) FILTER (WHERE ok) AS ok
			      FROM check_results WHERE monitor_id = $1 AND checked_at >= $%d AND checked_at < $%d
			      GROUP BY 1, 2) e
			GROUP BY b`, lo, hi)
	}
	return "SELECT * FROM (" + strings.Join(parts, "\n\t\t\tUNION ALL") + "\n\t\t) s ORDER BY b", args
}

// rollupStats sums the rows of rollupStatsSQL per bucket.
func (s *Store) rollupStats(ctx context.Context, sql string, args []any) ([]Bucket, error) {
	rows, err := s.q(ctx).Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var (
		out  []Bucket
		hist [latencyBins]int64
		bins []binCount
	)
	flush := func() {
		if len(out) == 0 {
			return
		}
		b := &out[len(out)-1]
		b.Uptime = float64(b.Successes) / float64(b.Checks)
		bins = bins[:0]
		for k, n := range hist {
			if n > 0 {
				bins = append(bins, binCount{bin: k, n: n})
			}
		}
		b.P50MS = binQuantile(bins, b.Checks, 0.5)
		b.P95MS = binQuantile(bins, b.Checks, 0.95)
		b.P99MS = binQuantile(bins, b.Checks, 0.99)
		hist = [latencyBins]int64{}
	}
	var (
		start   time.Time
		n, succ int64
	)
	for _, f := range rows.FieldDescriptions()[3:] {
		if f.Format != pgx.BinaryFormatCode {
			return nil, fmt.Errorf("histogram column %s not in binary format", f.Name)
		}
	}
	for rows.Next() {
		// The histograms are read from PostgreSQL's binary array format
		// directly: pgx's generic array decoding was half of a year's cost.
		if err := rows.Scan(&start, &n, &succ, nil, nil); err != nil {
			return nil, err
		}
		raw := rows.RawValues()
		hb, hc := rawArray(raw[3]), rawArray(raw[4])
		if len(out) == 0 || !out[len(out)-1].Start.Equal(start) {
			flush()
			out = append(out, Bucket{Start: start})
		}
		b := &out[len(out)-1]
		b.Checks += n
		b.Successes += succ
		if err := addHistogram(&hist, hb, hc); err != nil {
			return nil, fmt.Errorf("rollup at %s: %w", start, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	flush()
	return out, nil
}

// rawArray is a one-dimensional integer array as PostgreSQL sends it in
// binary: a header (dimensions, null flag, element type, then length and
// lower bound per dimension), then each element as a length and its bytes.
type rawArray []byte

// ints calls f with each element of a, which must be 2- or 4-byte
// integers without NULLs, and returns their number.
func (a rawArray) ints(f func(i int, v int64) error) (int, error) {
	if len(a) < 12 {
		return 0, errors.New("short array")
	}
	dims := binary.BigEndian.Uint32(a)
	if dims == 0 {
		return 0, nil
	}
	if dims != 1 || len(a) < 20 {
		return 0, fmt.Errorf("array of %d dimensions", dims)
	}
	n := int(binary.BigEndian.Uint32(a[12:]))
	p := a[20:]
	for i := range n {
		if len(p) < 4 {
			return i, errors.New("short array")
		}
		size := int32(binary.BigEndian.Uint32(p))
		p = p[4:]
		var v int64
		switch {
		case size == 2 && len(p) >= 2:
			v = int64(int16(binary.BigEndian.Uint16(p)))
		case size == 4 && len(p) >= 4:
			v = int64(int32(binary.BigEndian.Uint32(p)))
		default:
			return i, fmt.Errorf("array element of %d bytes", size)
		}
		p = p[size:]
		if err := f(i, v); err != nil {
			return i, err
		}
	}
	return n, nil
}

// addHistogram adds a rollup's histogram (its bins and their counts) to hist.
func addHistogram(hist *[latencyBins]int64, bins, counts rawArray) error {
	var idx [latencyBins]int16
	nb, err := bins.ints(func(i int, v int64) error {
		if v < 0 || v >= latencyBins || i >= latencyBins {
			return fmt.Errorf("latency bin %d out of range", v)
		}
		idx[i] = int16(v)
		return nil
	})
	if err != nil {
		return err
	}
	nc, err := counts.ints(func(i int, v int64) error {
		if i >= nb {
			return errors.New("more counts than bins")
		}
		hist[idx[i]] += v
		return nil
	})
	if err != nil {
		return err
	}
	if nc != nb {
		return fmt.Errorf("%d bins, %d counts", nb, nc)
	}
	return nil
}
