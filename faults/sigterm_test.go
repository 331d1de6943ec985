//go:build faults

package faults

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Scenario 4: SIGTERM of a worker whose checks cannot finish within
// BEACON_SHUTDOWN_TIMEOUT. Each job is either completed with its result, or
// back to available/retryable (not left running for the rescuer), and then
// completed by another worker: none lost, none stored twice.
func testSigtermWorker(t *testing.T, s *suite) {
	const (
		jobs            = 20
		checkDelay      = 3 * time.Second
		shutdownTimeout = 2 * time.Second
	)
	db := s.newDatabase(t, "sigterm_worker")
	ids := createMonitors(t, db, 5, s.target.url(fmt.Sprintf("/sleep/%d", checkDelay.Milliseconds())), 10*time.Second)

	env := s.env(db.url)
	env["BEACON_SHUTDOWN_TIMEOUT"] = shutdownTimeout.String()
	a := s.startBeacon(t, "worker A", "worker", env)
	jobIDs := insertChecks(t, db, ids, jobs)

	ctx := context.Background()
	waitFor(t, fmt.Sprintf("worker A to run all %d slow checks", jobs), 30*time.Second, 20*time.Millisecond, func() (bool, string) {
		st, err := jobStates(ctx, db, jobIDs)
		if err != nil {
			return false, err.Error()
		}
		return st["running"] == jobs, statesString(st)
	}, a.proc)
	took, err := a.terminate(shutdownTimeout + 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	st, err := jobStates(ctx, db, jobIDs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("worker A stopped %s after SIGTERM; jobs: %s", took.Round(time.Millisecond), statesString(st))
	for state, n := range st {
		switch state {
		case "completed", "available", "retryable":
		default:
			left, _ := jobsInState(ctx, db, jobIDs, state)
			t.Errorf("%d jobs are %s after the worker stopped (want completed, available or retryable): %v", n, state, left)
		}
	}
	if st["running"] > 0 {
		// Only the rescuer would release them (BEACON_JOB_RESCUE_AFTER
		// later): another worker cannot complete them in this scenario.
		t.FailNow()
	}
	// Completed jobs stored their result; the others stored none.
	var stored, unfinishedWithResult int
	if err := db.pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE j.state = 'completed'), count(*) FILTER (WHERE j.state <> 'completed')
		FROM check_results r JOIN river_job j ON j.id = r.job_id WHERE j.id = ANY($1)`, jobIDs).Scan(&stored, &unfinishedWithResult); err != nil {
		t.Fatal(err)
	}
	if stored != st["completed"] {
		t.Errorf("%d jobs completed by worker A but %d results stored for them", st["completed"], stored)
	}
	if unfinishedWithResult > 0 {
		t.Errorf("%d results stored for jobs that were not completed", unfinishedWithResult)
	}

	b := s.startBeacon(t, "worker B", "worker", env.clone())
	waitAllCompleted(t, db, jobIDs, time.Minute, b.proc)
	checkOneResultPerJob(t, db, jobIDs)
}
