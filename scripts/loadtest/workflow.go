package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/beaconhq/beacon/internal/platform"
	"github.com/beaconhq/beacon/internal/workflow"
	"github.com/beaconhq/beacon/internal/workflow/workflowapi"
)

// Rows w1 and w2: a chord of opts.chordSteps steps and its callback, run by
// a `beacon worker` (Beacon's engine, its demo step kinds, its queue and
// worker count), against as many bare River jobs plus one inserted once
// they have all completed, run by a River client in this process with a
// no-op worker. Runs alternate (chord, bare, chord, ...) so that a busy
// machine weighs on both alike; each figure is wall time as this process
// sees it, from the start to hearing of the last job's completion.

// chordWorkers is the workflow queue's MaxWorkers in a beacon worker (the
// platform's queue "workflows"): the bare jobs run with as many.
const chordWorkers = platform.WorkflowWorkers

// bareQueue is the bare jobs' queue: the beacon worker does not work it,
// so the two can share a database and run in turns.
const bareQueue = "loadtest_bare"

// chordTimeout bounds one run of either kind.
const chordTimeout = 2 * time.Minute

type bareArgs struct{}

func (bareArgs) Kind() string { return "loadtest_bare" }

// bareWorker does nothing: the bare job of the baseline.
type bareWorker struct {
	river.WorkerDefaults[bareArgs]
}

// Work implements river.Worker.
func (bareWorker) Work(context.Context, *river.Job[bareArgs]) error { return nil }

// sumOfSquares is the chord's result: 1² + ... + n².
func sumOfSquares(n int) int { return n * (n + 1) * (2*n + 1) / 6 }

// groupWorkflow: w1 and w2 on a fresh database, with one `beacon worker`.
func (r *runner) groupWorkflow(ctx context.Context) error {
	dbURL, err := r.pg.createDB(ctx, dbName("workflow"))
	if err != nil {
		return err
	}
	if err := r.migrate(ctx, dbURL); err != nil {
		return err
	}
	// pool starts the chords and waits for them; barePool serves the bare
	// jobs' River client, the size of a worker's pool.
	pool, err := openPool(ctx, dbURL, 4)
	if err != nil {
		return err
	}
	defer pool.Close()
	barePool, err := openPool(ctx, dbURL, r.cfg.DBWorkerMaxConns)
	if err != nil {
		return err
	}
	defer barePool.Close()
	var owner int64
	if err := pool.QueryRow(ctx, `SELECT id FROM users WHERE role = 'admin' ORDER BY id LIMIT 1`).Scan(&owner); err != nil {
		return fmt.Errorf("w1: the admin `beacon migrate` creates: %w", err)
	}

	inserter, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: quietLogger()})
	if err != nil {
		return fmt.Errorf("w1: river insert client: %w", err)
	}
	reg := workflow.NewRegistry()
	// The API's demo chord (POST /v1/workflows/demo), larger than the API
	// allows; the beacon worker runs its steps.
	chord := workflowapi.DemoChord(reg)
	eng, err := workflow.New(workflow.Options{Registry: reg, Pool: pool, Jobs: inserter})
	if err != nil {
		return err
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, &bareWorker{})
	bare, err := river.NewClient[pgx.Tx](riverpgxv5.New(barePool), &river.Config{
		FetchCooldown:     r.cfg.JobFetchCooldown,
		FetchPollInterval: r.cfg.JobFetchPollInterval,
		Queues:            map[string]river.QueueConfig{bareQueue: {MaxWorkers: chordWorkers}},
		Workers:           workers,
		Logger:            quietLogger(),
	})
	if err != nil {
		return fmt.Errorf("w2: river client: %w", err)
	}
	n := r.opts.chordSteps
	completed, unsubscribe := bare.SubscribeConfig(&river.SubscribeConfig{
		ChanSize: 2*n + 100, Kinds: []river.EventKind{river.EventKindJobCompleted}})
	defer unsubscribe()
	// The client's own context: cancelling it would hard-stop it; Stop ends it.
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	if err := bare.Start(runCtx); err != nil {
		return fmt.Errorf("w2: start river client: %w", err)
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = bare.Stop(stopCtx)
	}()

	w, err := r.startBeacon(ctx, "worker", dbURL, nil)
	if err != nil {
		return err
	}
	defer w.stop(30 * time.Second) //nolint:errcheck // the explicit stop below reports

	b := &chordBench{
		n: n, eng: eng, waiter: workflow.NewWaiter(eng), graph: chord, owner: owner, worker: w.proc,
		bare: bare, completed: completed,
	}
	chordCPU, bareCPU := &cpuTotal{}, &cpuTotal{}
	chordWaits := &waitSampler{detail: r.opts.pgDetail} // the beacon worker's sessions, over the timed chords
	var chordRuns, bareRuns []time.Duration
	failed, retried := 0, 0
	for i := range r.opts.chordWarmups + r.opts.chordRuns {
		measured := i >= r.opts.chordWarmups
		meter := &cpuMeter{children: []*proc{w.proc}, pgDir: r.pgDir()}
		meter.start()
		waits := startWaitSampler(ctx, pool, r.opts.pgDetail)
		took, ok, again, err := b.chord(ctx)
		waits.stop()
		if err != nil {
			return err
		}
		if measured {
			chordCPU.add(meter)
			chordWaits.add(waits)
			chordRuns = append(chordRuns, took)
			retried += again
			if !ok {
				failed++
			}
		}
		meter.start()
		took, err = b.bareJobs(ctx)
		if err != nil {
			return err
		}
		if measured {
			bareCPU.add(meter)
			bareRuns = append(bareRuns, took)
		}
	}
	if err := w.stop(30 * time.Second); err != nil {
		return err
	}

	w1 := durationsRow(chordRuns, n+1, chordCPU)
	w1.failures = failed
	w1.bad = fmt.Sprintf("%d failed", failed)
	if retried > 0 {
		w1.bad += fmt.Sprintf(", %d steps retried", retried)
	}
	w1.waits = chordWaits.summary()
	r.done("w1", w1)
	w2 := durationsRow(bareRuns, n+1, bareCPU)
	w2.bad = "0 failed"
	r.done("w2", w2)
	return nil
}

// chordBench runs the two halves of the workflow group.
type chordBench struct {
	n         int
	eng       *workflow.Engine
	waiter    *workflow.Waiter
	graph     func(n int) *workflow.Graph
	owner     int64
	worker    *proc
	bare      *river.Client[pgx.Tx]
	completed <-chan *river.Event
}

// chord starts a chord and waits for it to end. ok says it succeeded with
// the right result; retried counts its steps that took more than one
// attempt. An error means the run could not be measured.
func (b *chordBench) chord(ctx context.Context) (took time.Duration, ok bool, retried int, err error) {
	// A worker that dies ends the wait at once, not after chordTimeout.
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-b.worker.done:
			cancel()
		case <-waitCtx.Done():
		}
	}()
	graph := b.graph(b.n)
	t0 := time.Now()
	id, err := b.eng.Start(waitCtx, workflow.Start{Kind: "demo.chord", OwnerID: b.owner, Timeout: 2 * chordTimeout, Graph: graph})
	if err != nil {
		return 0, false, 0, fmt.Errorf("w1: start the chord: %w", err)
	}
	state, err := b.waiter.Wait(waitCtx, id, chordTimeout)
	took = time.Since(t0)
	if exited := b.worker.exited(); exited != nil {
		return 0, false, 0, exited
	}
	if err != nil {
		return 0, false, 0, fmt.Errorf("w1: wait for workflow %d: %w", id, err)
	}
	wf, err := b.eng.Get(ctx, 0, id)
	if err != nil {
		return 0, false, 0, fmt.Errorf("w1: read workflow %d: %w", id, err)
	}
	if state == workflow.StateRunning {
		return 0, false, 0, fmt.Errorf("w1: workflow %d still running after %s: %d of %d steps left",
			id, chordTimeout, wf.StepsLeft, wf.StepsTotal)
	}
	for _, s := range wf.Steps {
		if s.Attempts > 1 {
			retried++
		}
	}
	var result workflowapi.DemoValue
	if state != workflow.StateSucceeded || json.Unmarshal(wf.Result, &result) != nil || result.Value != sumOfSquares(b.n) {
		logf("w1: workflow %d ended %s with result %s (want %d): %s", id, state, wf.Result, sumOfSquares(b.n), wf.Error)
		return took, false, retried, nil
	}
	return took, true, retried, nil
}

// bareJobs inserts n bare jobs at once, waits for all to complete, then
// inserts one more (the callback's stand-in) and waits for it.
func (b *chordBench) bareJobs(ctx context.Context) (time.Duration, error) {
	for len(b.completed) > 0 { // events of an earlier run, if any
		<-b.completed
	}
	params := make([]river.InsertManyParams, b.n)
	for i := range params {
		params[i] = river.InsertManyParams{Args: bareArgs{}, InsertOpts: &river.InsertOpts{Queue: bareQueue}}
	}
	timeout := time.NewTimer(chordTimeout)
	defer timeout.Stop()
	wait := func(want int) error {
		for done := 0; done < want; {
			select {
			case ev := <-b.completed:
				if ev.Job.Kind == (bareArgs{}).Kind() {
					done++
				}
			case <-timeout.C:
				return fmt.Errorf("w2: %d of %d bare jobs completed in %s", done, want, chordTimeout)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	t0 := time.Now()
	if _, err := b.bare.InsertMany(ctx, params); err != nil {
		return 0, fmt.Errorf("w2: insert: %w", err)
	}
	if err := wait(b.n); err != nil {
		return 0, err
	}
	if _, err := b.bare.Insert(ctx, bareArgs{}, &river.InsertOpts{Queue: bareQueue}); err != nil {
		return 0, fmt.Errorf("w2: insert: %w", err)
	}
	if err := wait(1); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// durationsRow is a row of runs of `jobs` jobs each: p50, p99 and max of
// the runs (with a handful of runs, p99 is the max), and jobs/s at the p50.
func durationsRow(runs []time.Duration, jobs int, cpu *cpuTotal) *row {
	sorted := slices.Clone(runs)
	slices.Sort(sorted)
	pct := func(p float64) time.Duration {
		i := max(0, int(p*float64(len(sorted))+0.999999)-1)
		return sorted[min(i, len(sorted)-1)]
	}
	r := &row{p50: pct(0.5), p99: pct(0.99), max: sorted[len(sorted)-1], hasLatency: true}
	r.throughput = float64(jobs) / r.p50.Seconds()
	r.value = fmt.Sprintf("%.2f s p50 (%s jobs/s; %d runs)", r.p50.Seconds(), rate(r.throughput), len(runs))
	r.cpu, r.otherCPU = cpu.String(), cpu.cores("other")
	return r
}

// cpuTotal averages the cores that several measured intervals used,
// weighted by their lengths.
type cpuTotal struct {
	names    []string           // in cpuMeter's order
	coreSecs map[string]float64 // by name
	secs     float64
}

// add ends m's interval and adds it.
func (t *cpuTotal) add(m *cpuMeter) {
	secs := time.Since(m.t0).Seconds()
	cores, _ := m.read()
	if t.coreSecs == nil {
		t.coreSecs = map[string]float64{}
		for _, p := range m.children {
			t.names = append(t.names, p.name)
		}
		t.names = append(t.names, "postgres", "loadtest", "other")
	}
	for name, c := range cores {
		t.coreSecs[name] += c * secs
	}
	t.secs += secs
}

// cores is the average cores name used (0 when unknown).
func (t *cpuTotal) cores(name string) float64 {
	if t.secs == 0 {
		return 0
	}
	return t.coreSecs[name] / t.secs
}

// String is the progress line's part, e.g. "CPU cores: beacon worker 0.90,
// postgres 0.70, loadtest 0.10, other 0.05".
func (t *cpuTotal) String() string {
	var parts []string
	for _, name := range t.names {
		if _, ok := t.coreSecs[name]; ok {
			parts = append(parts, fmt.Sprintf("%s %.2f", name, t.cores(name)))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "CPU cores: " + strings.Join(parts, ", ")
}
