//go:build faults

package faults

import (
	"testing"
	"time"
)

// TestFaults runs every scenario against real beacon processes. Each is a
// subtest on its own database (the PostgreSQL restart on its own cluster).
// The kill-and-rescue scenario spends most of its time waiting for River's
// rescuer (BEACON_JOB_RESCUE_AFTER cannot go below the longest job timeout),
// so it overlaps with the others, which run one at a time (make faults
// passes -parallel 8 so that every scenario has a slot from the start; with
// fewer slots they still pass, later).
func TestFaults(t *testing.T) {
	s := newSuite(t)
	scenarios := []struct {
		name    string
		run     func(*testing.T, *suite)
		overlap bool // runs alongside the others instead of taking turns
	}{
		{"KillWorkerMidDrain", testKillWorkerMidDrain, true},
		{"PostgresRestartUnderLoad", testPostgresRestart, false},
		{"RollingRestartBehindHAProxy", testRollingRestart, false},
		{"SigtermWorkerWithLongChecks", testSigtermWorker, false},
		{"CollectorUnreachable", testCollectorUnreachable, false},
		{"AccessRevokedAtOnce", testAccessRevoked, false},
		{"FuzzOpenAPI", testFuzzOpenAPI, false},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			if !sc.overlap {
				queued := time.Now()
				s.serial.Lock()
				t.Logf("its turn came after %s", time.Since(queued).Round(time.Second))
				// Registered first, so it runs after the scenario's own
				// cleanups have stopped its processes.
				t.Cleanup(s.serial.Unlock)
			}
			sc.run(t, s)
		})
	}
}
