package workflow_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/workflow"
)

// A worker process dies mid-workflow (its River client stopped hard with
// steps stuck running, as after kill -9); the other process's River rescues
// those steps and finishes the workflow. When the dead process's steps come
// back to life late and try to complete, they are refused: no step
// completes twice, no output changes.
func TestKilledWorkerMidWorkflow(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	const (
		n         = 30
		healthy   = 8 // steps process A completes before it "dies"
		rescueAfr = 3 * time.Second
	)
	var (
		aDone, aStuck atomic.Int64
		release       = make(chan struct{})
	)
	var slow workflow.Kind[NumArgs, Num, Num]
	slowA := func(r *workflow.Registry) {
		slow = workflow.Define(r, "slow", func(_ context.Context, a NumArgs, _ []Num) (Num, error) {
			if aDone.Add(1) <= healthy {
				return Num{V: a.N * a.N}, nil
			}
			// Dead: neither returns nor heeds its context, until released.
			aStuck.Add(1)
			defer aStuck.Add(-1)
			<-release
			return Num{V: -1}, nil
		}, workflow.StepOptions{})
	}
	slowB := func(r *workflow.Registry) {
		workflow.Define(r, "slow", func(_ context.Context, a NumArgs, _ []Num) (Num, error) {
			return Num{V: a.N * a.N}, nil
		}, workflow.StepOptions{})
	}
	var freeOnce sync.Once
	free := func() { freeOnce.Do(func() { close(release) }) }
	poolA, poolB := env.newPool(t), env.newPool(t)
	engA, kA := env.engine(t, poolA, slowA)
	engB, _ := env.engine(t, poolB, slowB)

	t.Cleanup(free) // after a failure too, before A's client is stopped
	var (
		mu      sync.Mutex
		workedA = map[int64]error{} // what process A's steps returned, by job
	)
	clientA, _ := work(t, poolA, engA, workOpts{workers: 4, rescueAfter: rescueAfr,
		worked: func(job *rivertype.JobRow, err error) {
			mu.Lock()
			workedA[job.ID] = err
			mu.Unlock()
		}})
	header := make([]workflow.Call, n)
	for i := range header {
		header[i] = slow.Call(fmt.Sprintf("slow %d", i), NumArgs{N: i})
	}
	id, err := engA.Start(context.Background(), workflow.Start{Kind: "test", OwnerID: env.owner,
		Graph: workflow.Chord(header, kA.collect.Call("collect", struct{}{}))})
	require.NoError(t, err)

	eventually(t, 60*time.Second, func() (bool, string) {
		return aStuck.Load() == 4, fmt.Sprintf("%d of process A's steps stuck, %d run", aStuck.Load(), aDone.Load())
	})
	// Kill A: its client stops fetching and gives up on the stuck jobs,
	// which stay running in the database.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_ = clientA.StopAndCancel(ctx)
	cancel()
	// The jobs left running by the dead process.
	var rescued []int64
	require.NoError(t, env.pool.QueryRow(context.Background(),
		`SELECT array_agg(id) FROM river_job WHERE state = 'running' AND kind = 'workflow_step'`).Scan(&rescued))
	require.Len(t, rescued, 4)

	// B starts once they are overdue, so that its River, elected leader,
	// rescues them at its first pass rather than 30 s later.
	eventually(t, 30*time.Second, func() (bool, string) {
		var overdue bool
		require.NoError(t, env.pool.QueryRow(context.Background(),
			`SELECT bool_and(attempted_at < now() - $2::float8 * interval '1 second') FROM river_job WHERE id = ANY($1)`,
			rescued, rescueAfr.Seconds()).Scan(&overdue))
		return overdue, "stuck jobs not overdue yet"
	})
	work(t, poolB, engB, workOpts{workers: 10, rescueAfter: rescueAfr})
	wf := env.waitEnd(t, id, 120*time.Second)
	require.Equal(t, workflow.StateSucceeded, wf.State, describe(wf))
	require.EqualValues(t, 1, env.c.collectRuns.Load())
	var got []int
	require.NoError(t, json.Unmarshal(wf.Result, &got))
	for i, v := range got {
		require.Equal(t, i*i, v)
	}
	for _, s := range wf.Steps {
		if slices.Contains(rescued, *s.JobID) {
			require.GreaterOrEqual(t, s.Attempts, 2, describe(wf))
		}
	}

	// The dead process's steps finish late: their completion is refused
	// and nothing changes.
	free()
	eventually(t, 30*time.Second, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, id := range rescued {
			if _, ok := workedA[id]; ok {
				n++
			}
		}
		return n == 4, fmt.Sprintf("%d of the 4 late steps returned: %v", n, workedA)
	})
	for _, id := range rescued {
		err := workedA[id]
		var cancel *river.JobCancelError
		require.ErrorAs(t, err, &cancel)
		require.ErrorContains(t, err, "no longer enqueued")
	}
	after := env.waitEnd(t, id, time.Second)
	require.Equal(t, wf.Result, after.Result)
	for i, s := range after.Steps {
		require.Equal(t, wf.Steps[i].Output, s.Output)
		require.Equal(t, wf.Steps[i].FinishedAt, s.FinishedAt)
	}
	for step, states := range stepJobs(t, env.pool, id) {
		require.Equal(t, map[string]int{"completed": 1}, states, "step %d", step)
	}
}
