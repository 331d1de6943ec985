//go:build faults

package faults

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/beaconhq/beacon/internal/monitors"
)

// createMonitors creates n disabled monitors (never scheduled: only the
// checks the test inserts run) of the admin checking targetURL.
func createMonitors(t *testing.T, db *database, n int, targetURL string, timeout time.Duration) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	svc := monitors.NewService(monitors.NewStore(db.pool, nil), nil)
	owner := db.adminID(t)
	ids := make([]int64, n)
	for i := range n {
		m, err := svc.Create(ctx, owner, monitors.Spec{
			Name: fmt.Sprintf("faults %d", i+1), URL: targetURL, IntervalSeconds: 86400,
			TimeoutMS: int(timeout / time.Millisecond), Enabled: false,
		})
		if err != nil {
			t.Fatalf("create monitor: %v", err)
		}
		ids[i] = m.ID
	}
	return ids
}

// insertChecks inserts n manual check jobs spread over the monitors, in
// one transaction, as the API's async run-check does one at a time.
func insertChecks(t *testing.T, db *database, monitorIDs []int64, n int) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, err := river.NewClient(riverpgxv5.New(db.pool), &river.Config{SkipUnknownJobCheck: true})
	if err != nil {
		t.Fatalf("river client: %v", err)
	}
	params := make([]river.InsertManyParams, n)
	for i := range n {
		params[i] = river.InsertManyParams{Args: monitors.CheckArgs{MonitorID: monitorIDs[i%len(monitorIDs)], Manual: true}}
	}
	res, err := client.InsertMany(ctx, params)
	if err != nil {
		t.Fatalf("insert %d check jobs: %v", n, err)
	}
	ids := make([]int64, len(res))
	for i, r := range res {
		ids[i] = r.Job.ID
	}
	return ids
}

// jobStates counts the jobs by state.
func jobStates(ctx context.Context, db *database, ids []int64) (map[string]int, error) {
	rows, err := db.pool.Query(ctx, `SELECT state::text, count(*) FROM river_job WHERE id = ANY($1) GROUP BY 1`, ids)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		out[s] = n
	}
	return out, rows.Err()
}

// statesString prints state counts in a stable order.
func statesString(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// jobsInState returns the ids of the jobs in state.
func jobsInState(ctx context.Context, db *database, ids []int64, state string) ([]int64, error) {
	rows, err := db.pool.Query(ctx, `SELECT id FROM river_job WHERE id = ANY($1) AND state::text = $2 ORDER BY id`, ids, state)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// waitAllCompleted waits until every job is completed.
func waitAllCompleted(t *testing.T, db *database, ids []int64, timeout time.Duration, watch ...*proc) {
	t.Helper()
	waitFor(t, fmt.Sprintf("all %d jobs completed", len(ids)), timeout, 250*time.Millisecond, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := jobStates(ctx, db, ids)
		if err != nil {
			return false, err.Error()
		}
		return st["completed"] == len(ids), statesString(st)
	}, watch...)
}

// checkOneResultPerJob asserts that every job stored exactly one result
// (none lost, none stored twice).
func checkOneResultPerJob(t *testing.T, db *database, ids []int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := db.pool.Query(ctx, `SELECT job_id, count(*) FROM check_results WHERE job_id = ANY($1) GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 20`, ids)
	if err != nil {
		t.Fatalf("query duplicate results: %v", err)
	}
	type dup struct{ Job, Results int64 }
	dups, err := pgx.CollectRows(rows, pgx.RowToStructByPos[dup])
	if err != nil {
		t.Fatalf("query duplicate results: %v", err)
	}
	if len(dups) > 0 {
		t.Errorf("jobs stored more than one result (job, results): %v", dups)
	}
	var with int
	if err := db.pool.QueryRow(ctx, `SELECT count(DISTINCT job_id) FROM check_results WHERE job_id = ANY($1)`, ids).Scan(&with); err != nil {
		t.Fatalf("count results: %v", err)
	}
	if with != len(ids) {
		missing, _ := db.pool.Query(ctx, `SELECT j FROM unnest($1::bigint[]) j WHERE NOT EXISTS (SELECT 1 FROM check_results r WHERE r.job_id = j) ORDER BY j LIMIT 20`, ids)
		some, _ := pgx.CollectRows(missing, pgx.RowTo[int64])
		t.Errorf("%d of %d jobs have a result; some without one: %v", with, len(ids), some)
	}
}
