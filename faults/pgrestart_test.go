//go:build faults

package faults

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Scenario 2: PostgreSQL restarts (fast, then immediate) under create load.
// Every answer is 2xx or a 503 problem with Retry-After (never 500);
// /readyz goes 503 then 200; the API recovers within 5 s of PostgreSQL
// accepting connections; every acknowledged create is stored; retrying a
// 503 or a transport error with the same Idempotency-Key creates nothing
// twice.
func testPostgresRestart(t *testing.T, s *suite) {
	const recoverWithin = 5 * time.Second
	// Its own cluster: the other scenarios' databases must not go down.
	cl, err := startCluster(context.Background(), s.root, filepath.Join(s.work, "pg-restart"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.stop)
	db := s.migrated(t, cl.url)
	api := s.startBeacon(t, "api", "api", s.env(db.url))
	c := newClient(api.api)
	defer c.close()
	admin := c.signIn(t, adminEmail, adminPassword)

	ready := watchReady(api.ops, 20*time.Millisecond)
	defer ready.stop()

	var run [4]byte
	_, _ = rand.Read(run[:])
	prefix := "pgr-" + hex.EncodeToString(run[:]) + "-"
	create := func(name string, body []byte) result {
		r := result{method: http.MethodPost, path: "/v1/monitors", key: name, body: body, start: time.Now()}
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.resp, r.err = admin.send(rctx, r.method, r.path, body, "application/json", http.Header{"Idempotency-Key": {name}})
		r.end = time.Now()
		return r
	}
	ld := startLoad(4, 20_000, 10*time.Millisecond, func(seq int) result {
		name := fmt.Sprintf("%s%05d", prefix, seq)
		body, _ := json.Marshal(monitorBody(name, s.target.url("/ok")))
		return create(name, body)
	})
	defer ld.stop()

	mark := time.Now()
	for _, mode := range []string{"fast", "immediate"} {
		waitFor(t, "50 creates to succeed before the restart", 30*time.Second, 20*time.Millisecond, func() (bool, string) {
			n := ld.okSince(mark)
			return n >= 50, fmt.Sprintf("%d successful creates; all so far: %s", n, tally(ld.snapshot()))
		}, api.proc)
		up := restartAndRecover(t, cl, mode, api, ready, ld, recoverWithin)
		mark = up.Add(recoverWithin)
		waitFor(t, "50 creates to succeed after the recovery", 30*time.Second, 20*time.Millisecond, func() (bool, string) {
			n := ld.okSince(mark)
			return n >= 50, fmt.Sprintf("%d successful creates", n)
		}, api.proc)
		if late := failed(startedAfter(ld.snapshot(), mark)); len(late) > 0 {
			t.Errorf("restart -m %s: %d requests started more than %s after PostgreSQL was back failed:%s", mode, len(late), recoverWithin, examples(late, 10))
		}
	}
	results := ld.stop()
	ready.stop()
	t.Logf("%d creates: %s", len(results), tally(results))

	retry := checkCreateAnswers(t, results)
	checkAcknowledgedStored(t, db, prefix, results)
	// Retrying with the same Idempotency-Key creates nothing twice: the
	// failed requests, and a few acknowledged ones replayed.
	replayed := 0
	for _, r := range results {
		if r.ok() && replayed < 10 {
			retry = append(retry, r)
			replayed++
		}
	}
	const maxRetries = 3000
	if len(retry) > maxRetries {
		t.Errorf("%d requests to retry; retrying the first %d", len(retry), maxRetries)
		retry = retry[:maxRetries]
	}
	var retryFailed []result
	for _, r := range retry {
		if again := create(r.key, r.body); !again.ok() {
			retryFailed = append(retryFailed, again)
		}
	}
	if len(retryFailed) > 0 {
		t.Errorf("%d of %d retries with the same Idempotency-Key failed:%s", len(retryFailed), len(retry), examples(retryFailed, 10))
	}
	checkCreatedOnce(t, db, prefix, results, fmt.Sprintf("%d requests retried, %d of them acknowledged before", len(retry), replayed))
	t.Logf("retried %d requests (%d acknowledged ones among them) with their Idempotency-Key", len(retry), replayed)
}

// restartAndRecover restarts PostgreSQL in mode under load and checks the
// API's recovery: /readyz answered 503 during the restart, then 200, and a
// create succeeded, both within recoverWithin of PostgreSQL accepting
// connections again. It returns that moment.
func restartAndRecover(t *testing.T, cl *pgCluster, mode string, api *beaconProc, ready *readyWatch, ld *load, recoverWithin time.Duration) time.Time {
	t.Helper()
	down := time.Now()
	if err := cl.restart(context.Background(), mode); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	var readyAt, createdAt time.Time
	waitFor(t, fmt.Sprintf("the API to recover after pg_ctl restart -m %s", mode), 30*time.Second, 20*time.Millisecond, func() (bool, string) {
		readyAt = ready.firstOKAfter(up)
		createdAt = time.Time{}
		for _, r := range ld.snapshot() {
			if r.ok() && !r.start.Before(up) && (createdAt.IsZero() || r.end.Before(createdAt)) {
				createdAt = r.end
			}
		}
		return !readyAt.IsZero() && !createdAt.IsZero(), fmt.Sprintf("readyz 200 at %s, a create at %s; requests since: %s",
			since(up, readyAt), since(up, createdAt), tally(startedAfter(ld.snapshot(), up)))
	}, api.proc)
	t.Logf("pg_ctl restart -m %s took %s; then /readyz 200 after %s, a create after %s", mode,
		up.Sub(down).Round(time.Millisecond), since(up, readyAt), since(up, createdAt))
	if !ready.saw(http.StatusServiceUnavailable, down, readyAt) {
		t.Errorf("restart -m %s: /readyz never answered 503 between the restart and its recovery (polled every 20 ms): %s",
			mode, ready.between(down, readyAt))
	}
	if d := readyAt.Sub(up); d > recoverWithin {
		t.Errorf("restart -m %s: /readyz answered 200 only %s after PostgreSQL accepted connections (want <= %s)", mode, d, recoverWithin)
	}
	if d := createdAt.Sub(up); d > recoverWithin {
		t.Errorf("restart -m %s: the first create succeeded %s after PostgreSQL accepted connections (want <= %s)", mode, d, recoverWithin)
	}
	return up
}

// checkCreateAnswers checks that every answer is 2xx, or 503 as a problem
// with Retry-After, and returns the requests whose outcome is unknown
// (every one not answered 2xx), to retry.
func checkCreateAnswers(t *testing.T, results []result) (retry []result) {
	t.Helper()
	var wrong, bad503 []result
	for _, r := range results {
		switch {
		case r.ok():
			continue
		case r.resp == nil:
		case r.resp.status == http.StatusServiceUnavailable:
			if !r.resp.isProblem() || r.resp.header.Get("Retry-After") == "" {
				bad503 = append(bad503, r)
			}
		default:
			wrong = append(wrong, r)
		}
		retry = append(retry, r)
	}
	if len(wrong) > 0 {
		t.Errorf("%d answers were neither 2xx nor 503:%s", len(wrong), examples(wrong, 10))
	}
	if len(bad503) > 0 {
		t.Errorf("%d 503 answers were not application/problem+json with Retry-After (headers of the first: %v):%s",
			len(bad503), bad503[0].resp.header, examples(bad503, 5))
	}
	return retry
}

// checkAcknowledgedStored checks that every create answered 2xx is stored,
// with the id the answer gave.
func checkAcknowledgedStored(t *testing.T, db *database, prefix string, results []result) {
	t.Helper()
	stored := monitorsByName(t, db, prefix)
	var lost []string
	for _, r := range results {
		if !r.ok() {
			continue
		}
		var m struct {
			ID int64 `json:"id"`
		}
		_ = json.Unmarshal(r.resp.body, &m)
		if ids := stored[r.key]; len(ids) == 0 || !slices.Contains(ids, m.ID) {
			lost = append(lost, fmt.Sprintf("%s (id %d, stored: %v)", r.key, m.ID, ids))
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d acknowledged creates are not in the database: %s", len(lost), strings.Join(first(lost, 10), "; "))
	}
}

// checkCreatedOnce checks that each request, retried or not, left exactly
// one monitor of its name.
func checkCreatedOnce(t *testing.T, db *database, prefix string, results []result, retried string) {
	t.Helper()
	stored := monitorsByName(t, db, prefix)
	var twice, missing []string
	for _, r := range results {
		switch n := len(stored[r.key]); {
		case n > 1:
			twice = append(twice, fmt.Sprintf("%s×%d", r.key, n))
		case n == 0:
			missing = append(missing, r.key)
		}
	}
	if len(twice) > 0 {
		t.Errorf("%d monitors were created more than once despite the same Idempotency-Key (%s): %s",
			len(twice), retried, strings.Join(first(twice, 10), ", "))
	}
	if len(missing) > 0 {
		t.Errorf("%d requests left no monitor even after a retry: %s", len(missing), strings.Join(first(missing, 10), ", "))
	}
}

// monitorsByName returns the ids of the monitors named prefix*, by name.
func monitorsByName(t *testing.T, db *database, prefix string) map[string][]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := db.pool.Query(ctx, `SELECT name, id FROM monitors WHERE starts_with(name, $1)`, prefix)
	if err != nil {
		t.Fatalf("list monitors: %v", err)
	}
	type row struct {
		Name string
		ID   int64
	}
	list, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatalf("list monitors: %v", err)
	}
	out := map[string][]int64{}
	for _, r := range list {
		out[r.Name] = append(out[r.Name], r.ID)
	}
	return out
}

func startedAfter(rs []result, t time.Time) []result {
	var out []result
	for _, r := range rs {
		if !r.start.Before(t) {
			out = append(out, r)
		}
	}
	return out
}

func failed(rs []result) []result {
	var out []result
	for _, r := range rs {
		if !r.ok() {
			out = append(out, r)
		}
	}
	return out
}

// since prints t relative to base ("never" when zero).
func since(base, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Sub(base).Round(time.Millisecond).String()
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("... and %d more", len(s)-n))
	}
	return s
}
