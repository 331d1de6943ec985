package monitors_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/monitors"
)

// planNode is a node of EXPLAIN (FORMAT JSON)'s plan.
type planNode struct {
	NodeType     string     `json:"Node Type"`
	RelationName string     `json:"Relation Name"`
	IndexName    string     `json:"Index Name"`
	Plans        []planNode `json:"Plans"`
}

// scan is one scan of a table in a plan.
type scan struct{ node, relation, index string }

// explain returns the scans of sql's plan and the plan as text (for failures).
func explain(t *testing.T, b *testBundle, sql string, args ...any) ([]scan, string) {
	t.Helper()
	var raw []byte
	require.NoError(t, b.pool.QueryRow(context.Background(), "EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&raw))
	var out []struct {
		Plan planNode `json:"Plan"`
	}
	require.NoError(t, json.Unmarshal(raw, &out))
	var scans []scan
	var walk func(n planNode, depth int, text *strings.Builder)
	walk = func(n planNode, depth int, text *strings.Builder) {
		fmt.Fprintf(text, "%s%s %s %s\n", strings.Repeat("  ", depth), n.NodeType, n.RelationName, n.IndexName)
		if n.RelationName != "" {
			idx := n.IndexName
			if n.NodeType == "Bitmap Heap Scan" && len(n.Plans) == 1 && n.Plans[0].NodeType == "Bitmap Index Scan" {
				idx = n.Plans[0].IndexName // a few rows: the index, then their pages in order
			}
			scans = append(scans, scan{n.NodeType, n.RelationName, idx})
		}
		for _, c := range n.Plans {
			walk(c, depth+1, text)
		}
	}
	var text strings.Builder
	walk(out[0].Plan, 0, &text)
	return scans, text.String()
}

// childIndexes names the partitions' indexes of a partitioned index.
func childIndexes(t *testing.T, b *testBundle, parent string) map[string]bool {
	t.Helper()
	rows, err := b.pool.Query(context.Background(),
		`SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = $1::regclass`, parent)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	out := map[string]bool{parent: true}
	for _, n := range names {
		out[n] = true
	}
	return out
}

// requireScans asserts that the plan reads exactly the relations named,
// each through an index of indexes, and nothing else of those tables.
func requireScans(t *testing.T, scans []scan, plan string, tablePrefix string, want []string, indexes map[string]bool) {
	t.Helper()
	var got []string
	for _, s := range scans {
		if !strings.HasPrefix(s.relation, tablePrefix) {
			continue
		}
		got = append(got, s.relation)
		require.Contains(t, []string{"Index Scan", "Index Only Scan", "Bitmap Heap Scan"}, s.node, "scan of %s:\n%s", s.relation, plan)
		require.True(t, indexes[s.index], "%s read through %q, not the intended index:\n%s", s.relation, s.index, plan)
	}
	sort.Strings(got)
	sort.Strings(want)
	require.Equal(t, want, got, "partitions read:\n%s", plan)
}

// TestHotPathPlans checks with EXPLAIN that the hot paths use their
// indexes and read only the partitions of their range, on tables large
// enough (20,000 monitors, 288,000 results over 10 days, analysed) that
// the planner would scan them whole otherwise.
func TestHotPathPlans(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	// 20,000 monitors due over the next hour, a tenth of them disabled.
	_, err := b.pool.Exec(ctx, `
		INSERT INTO monitors (owner_id, name, url, method, interval_seconds, timeout_ms, enabled, next_check_at)
		SELECT $1, 'm' || g, 'https://example.com/' || g, 'GET', 60, 1000, g % 10 <> 0, $2::timestamptz + (g % 3600) * interval '1 second'
		FROM generate_series(1, 20000) g`, b.owner, t0)
	require.NoError(t, err)
	var first int64
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT min(id) FROM monitors`).Scan(&first))

	// 100 monitors checked every 5 minutes for 10 days before t0, and their rollups.
	_, err = b.store.EnsurePartitions(ctx, t0.Add(-11*24*time.Hour), t0.Add(24*time.Hour))
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `
		INSERT INTO check_results (monitor_id, checked_at, duration_ms, ok)
		SELECT $1 + g % 100, $2::timestamptz - (g / 100) * interval '5 minutes', 1 + g % 97, g % 50 <> 0
		FROM generate_series(100, 100 * 288 * 10 + 99) g`, first, t0)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `
		INSERT INTO check_rollups_hour (monitor_id, bucket, checks, successes, bins, counts)
		SELECT monitor_id, bucket, sum(n), sum(ok), array_agg(bin ORDER BY bin), array_agg(n::int ORDER BY bin)
		FROM (SELECT monitor_id, date_bin('1 hour', checked_at, timestamptz 'epoch') AS bucket, check_latency_bin(duration_ms) AS bin,
		             count(*) AS n, count(*) FILTER (WHERE ok) AS ok
		      FROM check_results GROUP BY 1, 2, 3) g
		GROUP BY 1, 2`)
	require.NoError(t, err)
	for _, grain := range []string{"minute", "day"} {
		_, err = b.pool.Exec(ctx, `
			INSERT INTO check_rollups_`+grain+` (monitor_id, bucket, checks, successes, bins, counts)
			SELECT monitor_id, bucket, sum(n), sum(ok), array_agg(bin ORDER BY bin), array_agg(n::int ORDER BY bin)
			FROM (SELECT monitor_id, date_bin('1 `+grain+`', checked_at, timestamptz 'epoch') AS bucket, check_latency_bin(duration_ms) AS bin,
			             count(*) AS n, count(*) FILTER (WHERE ok) AS ok
			      FROM check_results GROUP BY 1, 2, 3) g
			GROUP BY 1, 2`)
		require.NoError(t, err)
	}
	_, err = b.pool.Exec(ctx, `ANALYZE monitors; ANALYZE check_results; ANALYZE check_rollups_minute; ANALYZE check_rollups_hour; ANALYZE check_rollups_day`)
	require.NoError(t, err)

	resultIdx := childIndexes(t, b, "check_results_monitor_time_idx")
	m := first + 77
	const day24 = 24 * time.Hour
	day := func(ts time.Time) string { return "check_results_p" + ts.UTC().Format("20060102") }

	t.Run("ClaimDue", func(t *testing.T) {
		scans, plan := explain(t, b, monitors.ClaimDueSQL, t0.Add(time.Minute), 100)
		require.Contains(t, scans, scan{"Index Scan", "monitors", "monitors_due_idx"}, plan)
		for _, s := range scans {
			require.NotEqual(t, "Seq Scan", s.node, plan)
		}
	})

	t.Run("LatestResults", func(t *testing.T) {
		scans, plan := explain(t, b, monitors.LatestResultsSQL, m)
		require.NotContains(t, plan, "Sort ", "latest results come in index order:\n%s", plan)
		for _, s := range scans {
			require.Contains(t, []string{"Index Scan", "Index Only Scan"}, s.node, plan)
			require.True(t, resultIdx[s.index], "%s through %s:\n%s", s.relation, s.index, plan)
		}
	})

	t.Run("ResultsPage", func(t *testing.T) {
		// Three days, newest first: the partitions' indexes merged in order, no sort.
		from := t0.Add(-3 * 24 * time.Hour)
		scans, plan := explain(t, b, monitors.ResultsPageSQL, m, from, t0, t0, int64(1<<63-1), 101)
		requireScans(t, scans, plan, "check_results", []string{day(from), day(from.Add(day24)), day(from.Add(2 * day24)), day(t0)}, resultIdx)
		require.NotContains(t, plan, "Sort", plan)
	})

	t.Run("RawStats", func(t *testing.T) {
		from := t0.Add(-monitors.RawStatsSpan)
		sql, args, tables := monitors.StatsStatement(m, from, t0, time.Hour)
		require.Empty(t, tables, "a short range reads the results")
		scans, plan := explain(t, b, sql, args...)
		requireScans(t, scans, plan, "check_results", []string{day(t0)}, resultIdx)
	})

	t.Run("RollupStats", func(t *testing.T) {
		// 8 days with unaligned ends, daily buckets: daily rollups in the
		// middle, hourly and per-minute ones for the partial days and
		// hours, results for the partial minutes.
		from, to := t0.Add(-8*24*time.Hour+17*time.Minute+23*time.Second), t0.Add(-3*time.Minute-5*time.Second)
		sql, args, tables := monitors.StatsStatement(m, from, to, 24*time.Hour)
		require.Equal(t, []string{"", "check_rollups_minute", "check_rollups_hour", "check_rollups_day", "check_rollups_hour", "check_rollups_minute", ""}, tables)
		scans, plan := explain(t, b, sql, args...)
		requireScans(t, scans, plan, "check_results", []string{day(from), day(to)}, resultIdx)
		minute := func(ts time.Time) string { return "check_rollups_minute_p" + ts.UTC().Format("20060102") }
		requireScans(t, scans, plan, "check_rollups_minute", []string{minute(from), minute(to)}, childIndexes(t, b, "check_rollups_minute_pkey"))
		requireScans(t, scans, plan, "check_rollups_hour", []string{"check_rollups_hour_p202912", "check_rollups_hour_p203001"},
			childIndexes(t, b, "check_rollups_hour_pkey"))
		requireScans(t, scans, plan, "check_rollups_day", []string{"check_rollups_day_p202912", "check_rollups_day_p203001"},
			childIndexes(t, b, "check_rollups_day_pkey"))
	})
}
