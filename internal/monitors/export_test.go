package monitors

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// What the tests of package monitors_test look at inside: the hot paths'
// SQL (explain_test.go) and the rollups' percentile estimate (rollup_test.go).

const (
	ClaimDueSQL      = claimDueSQL
	ResultsPageSQL   = resultsPageSQL
	LatestResultsSQL = latestResultsSQL
	RawStatsSQL      = rawStatsSQL
	RawStatsSpan     = rawStatsSpan
)

// StatsStatement is the statement Store.Stats runs and its arguments, and the
// tables it reads ("" for the results).
func StatsStatement(monitorID int64, from, to time.Time, bucket time.Duration) (sql string, args []any, tables []string) {
	sql, args, _ = statsQuery(monitorID, from, to, bucket)
	for _, s := range planStats(from, to, bucket) {
		tables = append(tables, s.table)
	}
	return sql, args, tables
}

// BinQuantile estimates percentile_cont(q) of values binned as
// check_latency_bin does (bins[i] is the bin of one value).
func BinQuantile(bins []int, q float64) float64 {
	counts := map[int]int64{}
	for _, b := range bins {
		counts[b]++
	}
	var bc []binCount
	for k := 0; k <= 192; k++ {
		if n := counts[k]; n > 0 {
			bc = append(bc, binCount{bin: k, n: n})
		}
	}
	return binQuantile(bc, int64(len(bins)), q)
}

// LatencyBinLow is where latency bin 1 starts (ms).
const LatencyBinLow = latencyBinLow

// RecordResultsChanges is recordResults: ids and the state changes.
func (s *Store) RecordResultsChanges(ctx context.Context, tx pgx.Tx, rs []Result) ([]int64, []StateChange, error) {
	return s.recordResults(ctx, tx, rs)
}
