package monitors_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/monitors"
)

// Checks that finish together share transactions; each job still ends
// completed with its own result, and a monitor deleted while its check ran
// costs only its own job (cancelled), not the others' in its group.
func TestConcurrentResultsAreStoredWithTheirJobs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client := startWorkingClient(t, b) // 5 workers on the checks queue
	ctx := context.Background()

	// The target holds each request until five have arrived (or a second
	// has passed), so that checks finish together. The check of monitor 7
	// deletes it: its result then fails inside a group.
	const n, gone = 25, 7
	var (
		mu      sync.Mutex
		arrived int
		release = make(chan struct{})
		ms      = make([]monitors.Monitor, n)
		deleted = make(chan error, 1)
	)
	tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == fmt.Sprintf("/health/%d", gone) {
			deleted <- b.svc.Delete(ctx, b.owner, ms[gone].ID)
		}
		mu.Lock()
		arrived++
		if arrived%5 == 0 {
			close(release)
			release = make(chan struct{})
		}
		wait := release
		mu.Unlock()
		select {
		case <-wait:
		case <-time.After(time.Second):
		}
		w.WriteHeader(http.StatusOK)
	})
	for i := range ms {
		spec := validSpec(fmt.Sprintf("m%d", i))
		spec.URL = fmt.Sprintf("%s/health/%d", tg.URL, i)
		ms[i] = mustCreate(t, b, spec)
	}
	params := make([]river.InsertManyParams, n)
	for i, m := range ms {
		params[i] = river.InsertManyParams{Args: monitors.CheckArgs{MonitorID: m.ID, Manual: true}}
	}
	inserted, err := client.InsertMany(ctx, params)
	require.NoError(t, err)

	for i, res := range inserted {
		job := waitFinalized(t, client, res.Job.ID)
		if i == gone {
			require.NoError(t, <-deleted)
			require.Equal(t, rivertype.JobStateCancelled, job.State)
			continue
		}
		require.Equal(t, rivertype.JobStateCompleted, job.State, "job of monitor %d", ms[i].ID)
		out := checkOutput(t, job)
		stored, err := b.svc.CheckResult(ctx, job.ID)
		require.NoError(t, err)
		require.Equal(t, out.ResultID, stored.ID, "the output names the job's own result")
		require.Equal(t, ms[i].ID, stored.MonitorID)
		require.Equal(t, monitors.StateUp, mustGet(t, b, ms[i].ID).State)
	}
	require.Equal(t, n-1, countRows(t, b.pool, `SELECT count(*) FROM check_results`))
}
