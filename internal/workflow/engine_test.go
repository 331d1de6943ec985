package workflow_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/workflow"
)

func TestChainOutputsFlow(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	work(t, env.pool, env.eng, workOpts{})
	var calls []workflow.Call
	for i := 1; i <= 5; i++ {
		calls = append(calls, env.k.add.Call(fmt.Sprintf("add %d", i), NumArgs{N: i}))
	}
	id := env.start(t, workflow.Start{Graph: workflow.Chain(calls...)})
	wf := env.waitEnd(t, id, 30*time.Second)
	require.Equal(t, workflow.StateSucceeded, wf.State, describe(wf))
	// Each step adds its n to its predecessor's output: 1, 3, 6, 10, 15.
	require.JSONEq(t, `{"v":15}`, string(wf.Result))
	for i, s := range wf.Steps {
		require.Equal(t, workflow.StepSucceeded, s.State)
		want := (i + 1) * (i + 2) / 2
		require.JSONEq(t, fmt.Sprintf(`{"v":%d}`, want), string(s.Output))
		require.Equal(t, 1, s.Attempts)
		require.NotNil(t, s.FinishedAt)
		if i > 0 {
			require.Equal(t, []int{i - 1}, s.Deps)
		}
	}
}

func TestGroupResultsInOrder(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	work(t, env.pool, env.eng, workOpts{})
	var calls []workflow.Call
	for i := range 12 {
		calls = append(calls, env.k.square.Call(fmt.Sprintf("square %d", i), NumArgs{N: i}))
	}
	id := env.start(t, workflow.Start{Graph: workflow.Group(calls...)})
	wf := env.waitEnd(t, id, 30*time.Second)
	require.Equal(t, workflow.StateSucceeded, wf.State, describe(wf))
	var got []Num
	require.NoError(t, json.Unmarshal(wf.Result, &got))
	require.Len(t, got, 12)
	for i, n := range got {
		require.Equal(t, i*i, n.V)
	}
}

func TestChordCallbackGetsAllResults(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	work(t, env.pool, env.eng, workOpts{})
	var header []workflow.Call
	for i := range 20 {
		header = append(header, env.k.square.Call(fmt.Sprintf("square %d", i), NumArgs{N: i}))
	}
	id := env.start(t, workflow.Start{Graph: workflow.Chord(header, env.k.collect.Call("collect", struct{}{}))})
	wf := env.waitEnd(t, id, 30*time.Second)
	require.Equal(t, workflow.StateSucceeded, wf.State, describe(wf))
	var got []int
	require.NoError(t, json.Unmarshal(wf.Result, &got))
	want := make([]int, 20)
	for i := range want {
		want[i] = i * i
	}
	require.Equal(t, want, got)
	require.EqualValues(t, 1, env.c.collectRuns.Load())
}

// Many steps finishing at once on two "processes" (separate pools and River
// clients, 50 workers in all) start the chord's callback exactly once, and
// complete every step once.
func TestFanInExactlyOnce(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	// A second process: its own pool, engine and registry.
	pool2 := env.newPool(t)
	eng2, _ := env.engine(t, pool2, nil)
	work(t, env.pool, env.eng, workOpts{workers: 25})
	work(t, pool2, eng2, workOpts{workers: 25})

	const n = 200
	header := make([]workflow.Call, n)
	for i := range header {
		header[i] = env.k.square.Call(fmt.Sprintf("square %d", i), NumArgs{N: i})
	}
	id := env.start(t, workflow.Start{Graph: workflow.Chord(header, env.k.collect.Call("collect", struct{}{}))})
	wf := env.waitEnd(t, id, 90*time.Second)
	require.Equal(t, workflow.StateSucceeded, wf.State, describe(wf))
	require.EqualValues(t, 1, env.c.collectRuns.Load(), "the callback ran more than once")
	var got []int
	require.NoError(t, json.Unmarshal(wf.Result, &got))
	require.Len(t, got, n)
	for i, v := range got {
		require.Equal(t, i*i, v)
	}
	jobsByStep := stepJobs(t, env.pool, id)
	require.Len(t, jobsByStep, n+1)
	for step, states := range jobsByStep {
		require.Equal(t, map[string]int{"completed": 1}, states, "step %d", step)
	}
	for _, s := range wf.Steps {
		require.Equal(t, workflow.StepSucceeded, s.State)
		require.Equal(t, 1, s.Attempts)
	}
}

func TestFailFastCancelsTheRest(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	work(t, env.pool, env.eng, workOpts{})
	// The blocking step runs (or waits) while its sibling fails.
	fg := &workflow.Graph{}
	b := fg.Add(env.k.block.Call("block", NumArgs{}))
	f := fg.Add(env.k.fail.Call("fail", struct{}{}))
	fg.Add(env.k.collect.Call("after", struct{}{}), b, f)
	id2 := env.start(t, workflow.Start{Graph: fg})
	wf := env.waitEnd(t, id2, 30*time.Second)
	require.Equal(t, workflow.StateFailed, wf.State, describe(wf))
	require.Contains(t, wf.Error, "failed on purpose")
	require.Equal(t, workflow.StepCancelled, wf.Steps[0].State, describe(wf))
	require.Equal(t, workflow.StepFailed, wf.Steps[1].State)
	require.Equal(t, "failed on purpose", wf.Steps[1].Error)
	require.Equal(t, workflow.StepCancelled, wf.Steps[2].State)
	require.Equal(t, 1, wf.StepsFailed, "the failed step counts, the cancelled ones do not")
	require.Nil(t, wf.Result)
	// The blocked step's job is cancelled, the failed one's discarded, and
	// the callback never had one.
	eventually(t, 30*time.Second, func() (bool, string) {
		jobsByStep := stepJobs(t, env.pool, id2)
		ok := jobsByStep[0]["cancelled"] == 1 && jobsByStep[1]["discarded"] == 1 && len(jobsByStep[2]) == 0
		return ok, fmt.Sprint(jobsByStep)
	})
}

func TestContinuePolicy(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	work(t, env.pool, env.eng, workOpts{})
	// fail -> after fail (cancelled); square -> after square (runs).
	g := &workflow.Graph{}
	f := g.Add(env.k.fail.Call("fail", struct{}{}))
	g.Add(env.k.add.Call("after fail", NumArgs{N: 1}), f)
	s := g.Add(env.k.square.Call("square", NumArgs{N: 3}))
	g.Add(env.k.add.Call("after square", NumArgs{N: 1}), s)
	id := env.start(t, workflow.Start{Graph: g, Policy: workflow.Continue})
	wf := env.waitEnd(t, id, 30*time.Second)
	require.Equal(t, workflow.StateFailed, wf.State, describe(wf))
	require.Equal(t, 1, wf.StepsFailed)
	require.Equal(t, []workflow.StepState{workflow.StepFailed, workflow.StepCancelled, workflow.StepSucceeded, workflow.StepSucceeded},
		[]workflow.StepState{wf.Steps[0].State, wf.Steps[1].State, wf.Steps[2].State, wf.Steps[3].State}, describe(wf))
	require.JSONEq(t, `{"v":10}`, string(wf.Steps[3].Output))
}

func TestCancel(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	work(t, env.pool, env.eng, workOpts{})
	g := workflow.Chain(env.k.block.Call("block", NumArgs{}), env.k.add.Call("next", NumArgs{N: 1}))
	id := env.start(t, workflow.Start{Graph: g})
	eventually(t, 30*time.Second, func() (bool, string) {
		n := env.c.blocking.Load()
		return n == 1, fmt.Sprintf("%d blocking steps running", n)
	})
	other := newUser(t, env.pool, "other@example.org")
	require.Equal(t, apperr.NotFound, apperr.CodeOf(env.eng.Cancel(context.Background(), other, id)))
	_, err := env.eng.Get(context.Background(), other, id)
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))

	require.NoError(t, env.eng.Cancel(context.Background(), env.owner, id))
	wf := env.waitEnd(t, id, 10*time.Second)
	require.Equal(t, workflow.StateCancelled, wf.State)
	require.Equal(t, workflow.StepCancelled, wf.Steps[0].State)
	require.Equal(t, workflow.StepCancelled, wf.Steps[1].State)
	require.ErrorIs(t, env.eng.Cancel(context.Background(), env.owner, id), workflow.ErrFinished)
	// The running step was told to stop: its job ends cancelled.
	eventually(t, 30*time.Second, func() (bool, string) {
		j := stepJobs(t, env.pool, id)
		return j[0]["cancelled"] == 1 && env.c.blocking.Load() == 0, fmt.Sprint(j)
	})
}

func TestDeadline(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	work(t, env.pool, env.eng, workOpts{})
	id := env.start(t, workflow.Start{Graph: workflow.Chain(env.k.block.Call("block", NumArgs{})), Timeout: time.Second})
	wf := env.waitEnd(t, id, 30*time.Second)
	require.Equal(t, workflow.StateTimedOut, wf.State, describe(wf))
	require.Equal(t, "deadline passed", wf.Error)
	require.Equal(t, workflow.StepCancelled, wf.Steps[0].State)
}

func TestOutputTooLargeIsRefused(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	work(t, env.pool, env.eng, workOpts{})
	id := env.start(t, workflow.Start{Graph: workflow.Chain(env.k.big.Call("big", struct{}{}))})
	wf := env.waitEnd(t, id, 30*time.Second)
	require.Equal(t, workflow.StateFailed, wf.State)
	require.Equal(t, workflow.StepFailed, wf.Steps[0].State)
	require.Contains(t, wf.Steps[0].Error, "over the limit of 65536")
	require.Nil(t, wf.Steps[0].Output)
}

// A step whose job River ended without the engine hearing of it (here: its
// job deleted) is failed by the sweeper; an overdue workflow is timed out.
func TestSweep(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	ctx := context.Background()
	lost := env.start(t, workflow.Start{Graph: workflow.Chain(env.k.square.Call("square", NumArgs{N: 2}))})
	overdue := env.start(t, workflow.Start{Graph: workflow.Chain(env.k.square.Call("square", NumArgs{N: 2}))})
	_, err := env.pool.Exec(ctx, `DELETE FROM river_job WHERE kind = 'workflow_step' AND (args->>'workflow_id')::bigint = $1`, lost)
	require.NoError(t, err)
	_, err = env.pool.Exec(ctx, `UPDATE workflows SET deadline = now() - interval '1 second' WHERE id = $1`, overdue)
	require.NoError(t, err)
	require.NoError(t, env.eng.Sweep(ctx))
	wf, err := env.eng.Get(ctx, env.owner, lost)
	require.NoError(t, err)
	require.Equal(t, workflow.StateFailed, wf.State, describe(wf))
	require.Equal(t, "its job is gone", wf.Steps[0].Error)
	wf, err = env.eng.Get(ctx, env.owner, overdue)
	require.NoError(t, err)
	require.Equal(t, workflow.StateTimedOut, wf.State, describe(wf))
}

func TestStartRefusesBadGraphs(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	ctx := context.Background()
	for name, s := range map[string]workflow.Start{
		"no steps":      {Kind: "x", OwnerID: env.owner, Graph: &workflow.Graph{}},
		"bad policy":    {Kind: "x", OwnerID: env.owner, Graph: workflow.Chain(env.k.add.Call("a", NumArgs{})), Policy: "maybe"},
		"long deadline": {Kind: "x", OwnerID: env.owner, Graph: workflow.Chain(env.k.add.Call("a", NumArgs{})), Timeout: 30 * 24 * time.Hour},
		"unknown dep": {Kind: "x", OwnerID: env.owner, Graph: func() *workflow.Graph {
			g := &workflow.Graph{}
			g.Add(env.k.add.Call("a", NumArgs{}), 3)
			return g
		}()},
	} {
		_, err := env.eng.Start(ctx, s)
		require.Equal(t, apperr.Invalid, apperr.CodeOf(err), "%s: %v", name, err)
	}
	var n int
	require.NoError(t, env.pool.QueryRow(ctx, `SELECT count(*) FROM workflows`).Scan(&n))
	require.Zero(t, n)
}

// A panic fails the step (its message stored, not its stack); an error
// before the last attempt is retried by River.
func TestPanicAndRetry(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	work(t, env.pool, env.eng, workOpts{})
	id := env.start(t, workflow.Start{Graph: workflow.Chain(env.k.panics.Call("panics", struct{}{}))})
	wf := env.waitEnd(t, id, 30*time.Second)
	require.Equal(t, workflow.StateFailed, wf.State, describe(wf))
	require.Equal(t, "step panicked: step on purpose", wf.Steps[0].Error)

	id = env.start(t, workflow.Start{Graph: workflow.Chain(env.k.flaky.Call("flaky", NumArgs{N: 7}))})
	wf = env.waitEnd(t, id, 60*time.Second)
	require.Equal(t, workflow.StateSucceeded, wf.State, describe(wf))
	require.Equal(t, 2, wf.Steps[0].Attempts)
	require.JSONEq(t, `{"v":7}`, string(wf.Result))
}

// A delayed step's job is scheduled its delay after the step became ready
// (at the start for a root, at its dependency's completion otherwise), and
// a step function knows which step and attempt it runs.
func TestDelayedStepsAndStepInfo(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	work(t, env.pool, env.eng, workOpts{})
	g := workflow.Chain(
		env.k.info.Call("first", struct{}{}).After(1500*time.Millisecond),
		env.k.info.Call("second", struct{}{}).After(time.Second))
	id := env.start(t, workflow.Start{Graph: g})
	wf := env.waitEnd(t, id, 60*time.Second)
	require.Equal(t, workflow.StateSucceeded, wf.State, describe(wf))
	for i, st := range wf.Steps {
		var info workflow.StepInfo
		require.NoError(t, json.Unmarshal(st.Output, &info))
		require.Equal(t, workflow.StepInfo{WorkflowID: id, Step: i, Name: st.Name, Attempt: 1, MaxAttempts: 4}, info)
	}
	// The delays, read from River's schedule: the jobs were not made
	// available before their time.
	var first, second time.Duration
	err := env.pool.QueryRow(context.Background(), `
		SELECT (SELECT scheduled_at FROM river_job WHERE id = s0.job_id) - w.created_at,
			(SELECT scheduled_at FROM river_job WHERE id = s1.job_id) - s0.finished_at
		FROM workflows w
		JOIN workflow_steps s0 ON s0.workflow_id = w.id AND s0.idx = 0
		JOIN workflow_steps s1 ON s1.workflow_id = w.id AND s1.idx = 1
		WHERE w.id = $1`, id).Scan(&first, &second)
	require.NoError(t, err)
	require.GreaterOrEqual(t, first, 1400*time.Millisecond, "the first step waits its delay from the start")
	require.GreaterOrEqual(t, second, 900*time.Millisecond, "the second waits its delay from the first's end")

	_, err = env.eng.Start(context.Background(), workflow.Start{Kind: "bad", OwnerID: env.owner,
		Graph: workflow.Chain(env.k.info.Call("late", struct{}{}).After(25 * time.Hour))})
	require.Error(t, err)
	require.Contains(t, err.Error(), "delay")
}
