//go:build faults

package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/beaconhq/beacon/internal/monitors"
)

// Scenario 1: kill -9 of a worker mid-drain. Jobs it held running are
// rescued by another worker after BEACON_JOB_RESCUE_AFTER, every job ends
// completed, and none stores its result twice.
func testKillWorkerMidDrain(t *testing.T, s *suite) {
	const (
		jobs       = 2000
		checkDelay = 300 * time.Millisecond // per check: 50 workers drain ~160 jobs/s
		// River's rescuer runs every 30 s on the elected leader, which a new
		// worker becomes once the dead one's lease has expired.
		rescueMargin = 60 * time.Second
	)
	db := s.newDatabase(t, "kill_worker")
	rescueAfter := chooseRescueAfter(t, s, db)

	ids := createMonitors(t, db, 20, s.target.url(fmt.Sprintf("/sleep/%d", checkDelay.Milliseconds())), 5*time.Second)
	jobIDs := insertChecks(t, db, ids, jobs)
	t.Logf("inserted %d check jobs; rescue after %s", len(jobIDs), rescueAfter)

	env := s.env(db.url)
	env["BEACON_JOB_RESCUE_AFTER"] = rescueAfter.String()
	a := s.startBeacon(t, "worker A", "worker", env)

	// Kill A once some jobs are completed and some are running.
	ctx := context.Background()
	waitFor(t, "worker A to complete some jobs while running others", time.Minute, 20*time.Millisecond, func() (bool, string) {
		st, err := jobStates(ctx, db, jobIDs)
		if err != nil {
			return false, err.Error()
		}
		return st["completed"] >= jobs/10 && st["running"] >= 10, statesString(st)
	}, a.proc)
	a.kill()
	var killedAt time.Time
	if err := db.pool.QueryRow(ctx, `SELECT now()`).Scan(&killedAt); err != nil {
		t.Fatal(err)
	}
	st, err := jobStates(ctx, db, jobIDs)
	if err != nil {
		t.Fatal(err)
	}
	stuck, err := jobsInState(ctx, db, jobIDs, "running")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGKILLed worker A: %s; %d jobs left running", statesString(st), len(stuck))
	if len(stuck) == 0 {
		t.Fatal("no job was left running by the killed worker: the scenario did not test a rescue")
	}

	b := s.startBeacon(t, "worker B", "worker", env.clone())
	waitAllCompleted(t, db, jobIDs, rescueAfter+rescueMargin+30*time.Second, b.proc)
	checkOneResultPerJob(t, db, jobIDs)

	// The stuck jobs were rescued (attempted again) within rescue-after + margin.
	var slowest time.Duration
	var late []string
	rows, err := db.pool.Query(ctx, `SELECT id, attempt, finalized_at FROM river_job WHERE id = ANY($1) ORDER BY id`, stuck)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var attempt int
		var fin time.Time
		if err := rows.Scan(&id, &attempt, &fin); err != nil {
			t.Fatal(err)
		}
		took := fin.Sub(killedAt)
		slowest = max(slowest, took)
		if took > rescueAfter+rescueMargin {
			late = append(late, fmt.Sprintf("job %d after %s", id, took.Round(time.Second)))
		}
		if attempt < 2 {
			t.Errorf("job %d was running when its worker died but completed at attempt %d: it was not rescued and run again", id, attempt)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(late) > 0 {
		t.Errorf("%d stuck jobs completed later than rescue-after %s + %s: %s", len(late), rescueAfter, rescueMargin, strings.Join(late, ", "))
	}
	t.Logf("%d stuck jobs rescued and completed within %s of the kill (rescue after %s)", len(stuck), slowest.Round(time.Second), rescueAfter)
}

// chooseRescueAfter returns 20 s if beacon accepts it, else the smallest
// value it accepts: rescuing sooner than the longest job timeout would run
// live jobs twice, so Beacon refuses that.
func chooseRescueAfter(t *testing.T, s *suite, db *database) time.Duration {
	t.Helper()
	want := 20 * time.Second
	env := s.env(db.url)
	env["BEACON_JOB_RESCUE_AFTER"] = want.String()
	p, err := s.spawnBeacon("worker (rescue-after probe)", "worker", env)
	if err != nil {
		t.Fatal(err)
	}
	if err := waitReady(p, 30*time.Second); err == nil {
		if _, err := p.terminate(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		return want
	}
	p.kill()
	if !strings.Contains(p.out.Last(5), "BEACON_JOB_RESCUE_AFTER") {
		t.Fatalf("beacon worker with BEACON_JOB_RESCUE_AFTER=%s neither started nor refused the value:\n%s", want, p.tail())
	}
	accepted := (monitors.LongestJobTimeout + time.Second).Truncate(time.Second)
	t.Logf("BEACON_JOB_RESCUE_AFTER=%s is refused (%s); using %s", want, strings.TrimSpace(p.out.Last(1)), accepted)
	return accepted
}
