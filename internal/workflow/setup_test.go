package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/jobs"
	"github.com/beaconhq/beacon/internal/pgtest"
	"github.com/beaconhq/beacon/internal/workflow"
)

// Num is the output of the test steps.
type Num struct {
	V int `json:"v"`
}

// NumArgs are the arguments of the test steps.
type NumArgs struct {
	N int `json:"n"`
}

// kinds are the test step kinds of one "process" (an engine with its own
// registry and River client).
type kinds struct {
	// add outputs N plus the sum of its inputs.
	add workflow.Kind[NumArgs, Num, Num]
	// square outputs N*N.
	square workflow.Kind[NumArgs, Num, Num]
	// collect is a callback: it outputs the inputs, counting its runs.
	collect workflow.Kind[struct{}, Num, []int]
	// fail fails permanently; big outputs more than MaxOutput.
	fail workflow.Kind[struct{}, Num, Num]
	big  workflow.Kind[struct{}, Num, string]
	// block waits until its context ends (a cancel, a deadline).
	block workflow.Kind[NumArgs, Num, Num]
	// panics panics; flaky fails its first attempt.
	panics workflow.Kind[struct{}, Num, Num]
	flaky  workflow.Kind[NumArgs, Num, Num]
	// info outputs the step it runs as (workflow.StepFrom).
	info workflow.Kind[struct{}, Num, workflow.StepInfo]
}

type counters struct {
	collectRuns atomic.Int64
	blocking    atomic.Int64 // block steps running now
}

func defineKinds(reg *workflow.Registry, c *counters, extra func(*workflow.Registry)) kinds {
	var k kinds
	k.add = workflow.Define(reg, "add", func(_ context.Context, a NumArgs, in []Num) (Num, error) {
		v := a.N
		for _, n := range in {
			v += n.V
		}
		return Num{V: v}, nil
	}, workflow.StepOptions{})
	k.square = workflow.Define(reg, "square", func(_ context.Context, a NumArgs, _ []Num) (Num, error) {
		return Num{V: a.N * a.N}, nil
	}, workflow.StepOptions{})
	k.collect = workflow.Define(reg, "collect", func(_ context.Context, _ struct{}, in []Num) ([]int, error) {
		c.collectRuns.Add(1)
		out := make([]int, len(in))
		for i, n := range in {
			out[i] = n.V
		}
		return out, nil
	}, workflow.StepOptions{})
	k.fail = workflow.Define(reg, "fail", func(context.Context, struct{}, []Num) (Num, error) {
		return Num{}, workflow.Permanent(errors.New("failed on purpose"))
	}, workflow.StepOptions{})
	k.big = workflow.Define(reg, "big", func(context.Context, struct{}, []Num) (string, error) {
		return strings.Repeat("x", workflow.MaxOutput), nil
	}, workflow.StepOptions{})
	k.block = workflow.Define(reg, "block", func(ctx context.Context, a NumArgs, _ []Num) (Num, error) {
		c.blocking.Add(1)
		defer c.blocking.Add(-1)
		<-ctx.Done()
		return Num{}, ctx.Err()
	}, workflow.StepOptions{MaxAttempts: 1})
	k.panics = workflow.Define(reg, "panics", func(context.Context, struct{}, []Num) (Num, error) {
		panic("step on purpose")
	}, workflow.StepOptions{MaxAttempts: 1})
	var flakyRuns sync.Map
	k.flaky = workflow.Define(reg, "flaky", func(_ context.Context, a NumArgs, _ []Num) (Num, error) {
		if _, again := flakyRuns.LoadOrStore(a.N, true); !again {
			return Num{}, errors.New("first attempt fails")
		}
		return Num{V: a.N}, nil
	}, workflow.StepOptions{MaxAttempts: 2})
	k.info = workflow.Define(reg, "info", func(ctx context.Context, _ struct{}, _ []Num) (workflow.StepInfo, error) {
		i, ok := workflow.StepFrom(ctx)
		if !ok {
			return i, workflow.Permanent(errors.New("no step in the context"))
		}
		return i, nil
	}, workflow.StepOptions{MaxAttempts: 4})
	if extra != nil {
		extra(reg)
	}
	return k
}

type testEnv struct {
	url   string
	pool  *pgxpool.Pool
	eng   *workflow.Engine
	k     kinds
	c     *counters
	owner int64
}

// newEnv makes a database, a user and an engine with the test kinds; no
// client works its steps until work is called.
func newEnv(t testing.TB) *testEnv {
	t.Helper()
	url := pgtest.NewURL(t)
	pool := openPool(t, url)
	env := &testEnv{pool: pool, url: url, c: &counters{}}
	env.owner = newUser(t, pool, "owner@example.org")
	env.eng, env.k = env.engine(t, pool, nil)
	return env
}

func openPool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := database.Open(context.Background(), url, nil)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// newPool is another pool on env's database: another process's.
func (env *testEnv) newPool(t testing.TB) *pgxpool.Pool { return openPool(t, env.url) }

func newUser(t testing.TB, pool *pgxpool.Pool, email string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, pool.QueryRow(context.Background(),
		`INSERT INTO users (email, password_hash, role) VALUES ($1, 'x', 'member') RETURNING id`, email).Scan(&id))
	return id
}

// engine builds an engine on pool with its own registry (a process's).
func (env *testEnv) engine(t testing.TB, pool *pgxpool.Pool, extra func(*workflow.Registry)) (*workflow.Engine, kinds) {
	t.Helper()
	reg := workflow.NewRegistry()
	k := defineKinds(reg, env.c, extra)
	client, err := jobs.NewClient(pool, jobs.Options{})
	require.NoError(t, err)
	eng, err := workflow.New(workflow.Options{Registry: reg, Pool: pool, Jobs: client})
	require.NoError(t, err)
	return eng, k
}

type workOpts struct {
	workers     int
	rescueAfter time.Duration
	// worked, if set, hears of each job worked, once Work has returned.
	worked func(job *rivertype.JobRow, err error)
	// plugins are River middleware, such as jobs.Middleware's telemetry.
	plugins []rivertype.Plugin
	// addWorkers adds workers besides the engine's.
	addWorkers func(*river.Workers)
}

type observeWork struct {
	river.WorkerMiddlewareDefaults
	worked func(job *rivertype.JobRow, err error)
}

func (o *observeWork) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	err := doInner(ctx)
	o.worked(job, err)
	return err
}

// work starts a River client working eng's steps on pool, stopped when the
// test ends; stop stops it at once.
func work(t testing.TB, pool *pgxpool.Pool, eng *workflow.Engine, o workOpts) (client *river.Client[pgx.Tx], stop func()) {
	t.Helper()
	if o.workers == 0 {
		o.workers = 10
	}
	workers := river.NewWorkers()
	eng.AddWorkers(workers)
	if o.addWorkers != nil {
		o.addWorkers(workers)
	}
	cfg := &river.Config{
		Workers:           workers,
		Queues:            map[string]river.QueueConfig{workflow.DefaultQueue: {MaxWorkers: o.workers}},
		FetchCooldown:     5 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		Logger:            slog.New(slog.DiscardHandler),
	}
	cfg.Plugins = o.plugins
	if o.worked != nil {
		cfg.Middleware = []rivertype.Middleware{&observeWork{worked: o.worked}}
	}
	if o.rescueAfter > 0 {
		cfg.RescueStuckJobsAfter, cfg.JobTimeout = o.rescueAfter, o.rescueAfter // River wants no longer timeout
	}
	client, err := river.NewClient(riverpgxv5.New(pool), cfg)
	require.NoError(t, err)
	require.NoError(t, client.Start(context.Background()))
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = jobs.Stop(ctx, client, 2*time.Second)
		})
	}
	t.Cleanup(stop)
	return client, stop
}

func (env *testEnv) start(t testing.TB, s workflow.Start) int64 {
	t.Helper()
	if s.OwnerID == 0 {
		s.OwnerID = env.owner
	}
	if s.Kind == "" {
		s.Kind = "test"
	}
	id, err := env.eng.Start(context.Background(), s)
	require.NoError(t, err)
	return id
}

// waitEnd waits for workflow id to end and returns it, failing with what it
// last saw.
func (env *testEnv) waitEnd(t testing.TB, id int64, within time.Duration) workflow.Workflow {
	t.Helper()
	w := workflow.NewWaiter(env.eng)
	ctx, cancel := context.WithTimeout(context.Background(), within+5*time.Second)
	defer cancel()
	state, err := w.Wait(ctx, id, within)
	require.NoError(t, err)
	wf, err := env.eng.Get(context.Background(), 0, id)
	require.NoError(t, err)
	require.NotEqual(t, workflow.StateRunning, state, "workflow %d still running after %s: %s", id, within, describe(wf))
	return wf
}

// eventually polls cond until it holds, failing with what last was seen.
func eventually(t testing.TB, within time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	delay := 10 * time.Millisecond
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s; last saw: %s", within, saw)
		}
		time.Sleep(delay)
		delay = min(2*delay, 200*time.Millisecond)
	}
}

func describe(w workflow.Workflow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "workflow %d %s (%d/%d left, error %q):", w.ID, w.State, w.StepsLeft, w.StepsTotal, w.Error)
	for i, s := range w.Steps {
		if i == 20 {
			fmt.Fprintf(&b, " ... %d more", len(w.Steps)-i)
			break
		}
		fmt.Fprintf(&b, " [%d %s %s job=%s attempts=%d err=%q]", s.Index, s.Name, s.State, s.JobState, s.Attempts, s.Error)
	}
	return b.String()
}

// stepJobs counts the River jobs of each step of workflow id, by state.
func stepJobs(t testing.TB, pool *pgxpool.Pool, id int64) map[int]map[string]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT (args->>'step')::int, state::text FROM river_job WHERE kind = 'workflow_step' AND (args->>'workflow_id')::bigint = $1`, id)
	require.NoError(t, err)
	out := map[int]map[string]int{}
	for rows.Next() {
		var (
			step  int
			state string
		)
		require.NoError(t, rows.Scan(&step, &state))
		if out[step] == nil {
			out[step] = map[string]int{}
		}
		out[step][state]++
	}
	require.NoError(t, rows.Err())
	return out
}
