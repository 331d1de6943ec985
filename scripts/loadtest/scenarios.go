package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beaconhq/beacon/internal/config"
)

// runner holds what the scenarios share: the options, Beacon's effective
// knobs, the binary, the database server, the check target and the report.
type runner struct {
	opts   options
	cfg    config.Config
	root   string
	work   string
	beacon string // the beacon binary built for this run
	pg     *pgServer
	report *report

	targetURL  string
	target     *http.Server
	targetDone chan struct{}

	mu    sync.Mutex
	procs []*proc

	// The database of the `beacon all` group and its monitors, reused by g.
	dbAll       string
	monitorsAll []int64
}

// track remembers a child so stopAll can stop it if a scenario could not.
func (r *runner) track(p *proc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.procs = append(r.procs, p)
}

// stopAll stops what is still running: children (newest first), the check
// target, PostgreSQL.
func (r *runner) stopAll() {
	r.mu.Lock()
	procs := r.procs
	r.procs = nil
	r.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		wasStopped := p.stopping.Load()
		if err := p.stop(30 * time.Second); err != nil && !wasStopped {
			logf("%v", err)
		}
	}
	if r.target != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = r.target.Shutdown(ctx)
		cancel()
		<-r.targetDone
	}
	if r.pg != nil {
		r.pg.close()
	}
}

// setup builds beacon, starts PostgreSQL and the check target.
func (r *runner) setup(ctx context.Context) error {
	var err error
	if r.beacon, err = buildBeacon(ctx, r.root, r.work); err != nil {
		return err
	}
	if r.pg, err = startPostgres(ctx, r.root, r.work); err != nil {
		return err
	}
	r.report.pgVer = r.pg.version
	r.report.pgWhere = "server of TEST_DATABASE_URL"
	if r.pg.dir != "" {
		r.report.pgWhere = "throwaway cluster, unix socket, fsync off"
		r.report.pgLocal = true
	}
	return r.startTarget()
}

// startTarget serves the monitors' check target: 200 "ok" at once.
func (r *runner) startTarget() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	r.targetURL = "http://" + ln.Addr().String() + "/"
	r.target = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte("ok"))
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	r.targetDone = make(chan struct{})
	go func() {
		defer close(r.targetDone)
		_ = r.target.Serve(ln)
	}()
	return nil
}

// dbName names a database of this run (unique on a shared server).
func dbName(group string) string {
	return fmt.Sprintf("loadtest_%d_%s", os.Getpid(), group)
}

// runScenarios runs the groups in order; a group that breaks marks its
// remaining rows as errors and the next group still runs.
func (r *runner) runScenarios(ctx context.Context) {
	groups := []struct {
		name, key string
		ids       []string
		run       func(context.Context) error
	}{
		{"beacon all", "all", []string{"a1", "a2", "e", "f1", "h0", "b2", "h1", "f2"}, r.groupAll},
		{"beacon api + worker", "split", []string{"b1", "c"}, r.groupSplit},
		{"raw River", "raw", []string{"d"}, r.groupRawRiver},
		{"workflow", "workflow", []string{"w1", "w2"}, r.groupWorkflow},
		{"telemetry", "telemetry", []string{"g1", "g2"}, r.groupTelemetry},
		{"stats", "stats", []string{"t1", "t2", "t3", "t4"}, r.groupStats},
		{"scheduler", "scheduler", schedIDs(r.opts), r.groupScheduler},
	}
	for _, g := range groups {
		if ctx.Err() != nil {
			return
		}
		if r.opts.only != nil && !r.opts.only[g.key] {
			r.report.skip(g.ids, "not run (-only)")
			continue
		}
		logf("-- %s", g.name)
		if err := g.run(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			logf("%s: %v", g.name, err)
			r.report.fail(g.ids, err)
		}
	}
}

// groupNames are the groups -only may name, in run order.
var groupNames = []string{"all", "split", "raw", "workflow", "telemetry", "stats", "scheduler"}

// done records a row and prints it as progress.
func (r *runner) done(id string, row *row) {
	r.report.set(id, row)
	line := id + ": " + row.value
	if row.hasLatency {
		line += fmt.Sprintf(", p50 %s, p99 %s, max %s", ms(row.p50), ms(row.p99), ms(row.max))
	}
	line += ", non-2xx " + row.bad
	for _, s := range []string{row.extra, row.cpu} {
		if s != "" {
			line += "; " + s
		}
	}
	logf("%s", line)
	if row.waits != "" {
		logf("%s: %s", id, row.waits)
	}
}

// session is a started beacon role with a signed-in API client.
type session struct {
	*beaconProc
	client *apiClient
}

// startSession starts `beacon role`, signs in once, and stops the role
// again if that fails.
func (r *runner) startSession(ctx context.Context, role, dbURL string, edit func(envMap)) (*session, error) {
	b, err := r.startBeacon(ctx, role, dbURL, edit)
	if err != nil {
		return nil, err
	}
	c := newAPIClient(b.api)
	if err := c.signIn(ctx, r.cfg); err != nil {
		c.close()
		_ = b.stop(10 * time.Second)
		return nil, err
	}
	return &session{beaconProc: b, client: c}, nil
}

// stop stops the role; an unexpected exit or unclean stop is an error.
func (s *session) stop() error {
	s.client.close()
	return s.beaconProc.stop(30 * time.Second)
}

// urls returns base+"/v1/monitors/{id}"+suffix for every monitor, and a
// function spreading requests over them.
func urls(base string, ids []int64, suffix string) func(uint64) string {
	list := make([]string, len(ids))
	for i, id := range ids {
		list[i] = base + "/v1/monitors/" + strconv.FormatInt(id, 10) + suffix
	}
	return func(seq uint64) string { return list[seq%uint64(len(list))] }
}

// load runs spec and fails if a server child died meanwhile. The result
// also says how many cores the servers, PostgreSQL and this process used
// during the measured phase.
func (r *runner) load(ctx context.Context, spec loadSpec, servers ...*proc) (loadResult, error) {
	meter := &cpuMeter{children: servers, pgDir: r.pgDir()}
	inner := spec.beforeMeasure
	spec.beforeMeasure = func(ctx context.Context) (<-chan struct{}, error) {
		var stop <-chan struct{}
		if inner != nil {
			var err error
			if stop, err = inner(ctx); err != nil {
				return nil, err
			}
		}
		meter.start()
		return stop, nil
	}
	res, err := runLoad(ctx, spec)
	res.cores, res.cpu = meter.read()
	if err != nil {
		return res, err
	}
	for _, p := range servers {
		if err := p.exited(); err != nil {
			return res, err
		}
	}
	return res, nil
}

// pgDir is the throwaway cluster's folder ("" on TEST_DATABASE_URL's server).
func (r *runner) pgDir() string {
	if r.pg == nil {
		return ""
	}
	return r.pg.dir
}

// groupAll: scenarios a, e, f, h and b(ii) on one `beacon all`, then the
// GET baseline (f2) once it has stopped.
func (r *runner) groupAll(ctx context.Context) error {
	dbURL, err := r.pg.createDB(ctx, dbName("all"))
	if err != nil {
		return err
	}
	if err := r.migrate(ctx, dbURL); err != nil {
		return err
	}
	s, err := r.startSession(ctx, "all", dbURL, nil)
	if err != nil {
		return err
	}
	defer s.stop() //nolint:errcheck // the explicit stop below reports
	ids, err := s.client.createMonitors(ctx, r.targetURL, r.opts.monitors)
	if err != nil {
		return err
	}
	r.dbAll, r.monitorsAll = dbURL, ids
	pool, err := openPool(ctx, dbURL, 4)
	if err != nil {
		return err
	}
	defer pool.Close()
	o := r.opts
	token := s.client.token

	// a: sync round trips.
	for _, c := range []struct {
		id string
		n  int
	}{{"a1", 1}, {"a2", o.concurrency}} {
		res, err := r.load(ctx, loadSpec{
			method: http.MethodPost, url: urls(s.api, ids, "/checks?wait=10"), token: token,
			concurrency: c.n, warmup: o.warmup, duration: o.duration,
		}, s.proc)
		if err != nil {
			return err
		}
		r.done(c.id, loadRow(res, "checks/s", true))
	}

	// e: enqueue->start latency at a steady rate.
	if err := r.enqueueLatency(ctx, s, pool, ids); err != nil {
		return err
	}

	// f1, h0: GET monitor.
	for _, c := range []struct {
		id string
		n  int
	}{{"f1", o.concurrency}, {"h0", 4}} {
		res, err := r.load(ctx, loadSpec{
			method: http.MethodGet, url: urls(s.api, ids, ""), token: token,
			concurrency: c.n, warmup: o.warmup, duration: o.duration,
		}, s.proc)
		if err != nil {
			return err
		}
		r.done(c.id, loadRow(res, "req/s", false))
	}

	// b2, h1: the same process drains a backlog while serving.
	if err := r.duringDrain(ctx, s, pool, ids, "b2", http.MethodPost, "/checks", o.concurrency); err != nil {
		return err
	}
	if err := r.duringDrain(ctx, s, pool, ids, "h1", http.MethodGet, "", 4); err != nil {
		return err
	}
	if err := s.stop(); err != nil {
		return err
	}

	// f2: the baseline, alone on the machine like f1 was.
	return r.getBaseline(ctx, dbURL, pool, ids)
}

// enqueueLatency is scenario e: async checks at opts.rateHz for
// opts.rateFor, then attempted_at - created_at of those jobs from river_job.
func (r *runner) enqueueLatency(ctx context.Context, s *session, pool *pgxpool.Pool, ids []int64) error {
	var mu sync.Mutex
	var jobIDs []int64
	var badBodies int
	res, err := r.load(ctx, loadSpec{
		method: http.MethodPost, url: urls(s.api, ids, "/checks"), token: s.client.token,
		concurrency: 8, duration: r.opts.rateFor, rate: r.opts.rateHz,
		onResponse: func(status int, body []byte) {
			if status != http.StatusAccepted {
				return
			}
			var out struct {
				JobID int64 `json:"job_id"`
			}
			mu.Lock()
			defer mu.Unlock()
			if json.Unmarshal(body, &out) != nil || out.JobID == 0 {
				badBodies++
				return
			}
			jobIDs = append(jobIDs, out.JobID)
		},
	}, s.proc)
	if err != nil {
		return err
	}
	// Every job must have started; wait a little for the last ones.
	var notStarted int
	deadline := time.Now().Add(30 * time.Second)
	for range 600 {
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE id = ANY($1) AND attempted_at IS NULL`, jobIDs).Scan(&notStarted); err != nil {
			return fmt.Errorf("e: %w", err)
		}
		if notStarted == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var pcts []float64
	var maxLat *float64
	var n int
	err = pool.QueryRow(ctx, `
		SELECT count(*), percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY d), max(d)
		FROM (SELECT extract(epoch FROM attempted_at - created_at)::float8 AS d
		      FROM river_job WHERE id = ANY($1) AND attempted_at IS NOT NULL) s`, jobIDs).Scan(&n, &pcts, &maxLat)
	if err != nil {
		return fmt.Errorf("e: %w", err)
	}
	row := &row{hasLatency: n > 0, throughput: res.rate(), cpu: res.cpu, otherCPU: res.cores["other"]}
	if len(pcts) == 3 && maxLat != nil {
		row.p50, row.p99, row.max = seconds(pcts[0]), seconds(pcts[2]), seconds(*maxLat)
		row.value = fmt.Sprintf("p95 %s (%d jobs at %s/s)", ms(seconds(pcts[1])), n, rate(res.rate()))
	} else {
		row.value = "no job started"
	}
	bad := res.non2xx() + res.errors + badBodies
	row.failures = bad + notStarted
	row.bad = fmt.Sprintf("%d", bad)
	if notStarted > 0 {
		row.bad += fmt.Sprintf(", %d jobs never started", notStarted)
	}
	if res.dropped > 0 {
		row.bad += fmt.Sprintf(", %d ticks dropped", res.dropped)
	}
	r.done("e", row)
	return nil
}

// duringDrain measures a load (id: b2 or h1) on s while s drains a fresh
// backlog: the backlog is committed after the warmup, and the measured phase
// ends when it has drained. The row's value also says how long the drain
// took under that load.
func (r *runner) duringDrain(ctx context.Context, s *session, pool *pgxpool.Pool, ids []int64, id, method, suffix string, concurrency int) error {
	var b backlog
	var drainErr error
	var waits *waitSampler
	drained := make(chan struct{})
	started := false
	res, err := r.load(ctx, loadSpec{
		method: method, url: urls(s.api, ids, suffix), token: s.client.token,
		concurrency: concurrency, warmup: r.opts.warmup, duration: r.opts.drainMax,
		beforeMeasure: func(ctx context.Context) (<-chan struct{}, error) {
			var err error
			if b, err = insertBacklog(ctx, pool, ids, r.opts.backlog, "lt_"+id); err != nil {
				return nil, err
			}
			started = true
			waits = startWaitSampler(ctx, pool, r.opts.pgDetail)
			go func() {
				defer close(drained)
				drainErr = waitDrained(ctx, pool, b, r.opts.drainMax, s.exited)
			}()
			return drained, nil
		},
	}, s.proc)
	if started {
		<-drained
	}
	var waitSummary string
	if waits != nil {
		waitSummary = waits.stop()
	}
	if err != nil {
		return err
	}
	if drainErr != nil {
		return drainErr
	}
	d, err := measureDrain(ctx, pool, b, true)
	if err != nil {
		return err
	}
	row := loadRow(res, "req/s", false)
	row.waits = waitSummary
	row.extra = fmt.Sprintf("(drain under load: %s checks/s, %.1f s)", rate(d.rate()), d.span().Seconds())
	if f := d.failed(); f > 0 {
		row.failures += f
		row.bad += fmt.Sprintf("; backlog: %d of %d jobs failed", f, d.expected)
	}

	// Checks submitted by the load queue behind the backlog: let them run
	// (so the next scenario starts on an idle queue) and check them too.
	submitted := backlog{minID: b.maxID + 1, maxID: math.MaxInt64, n: res.statuses[http.StatusAccepted]}
	if submitted.n > 0 {
		t0 := time.Now()
		if err := waitDrained(ctx, pool, submitted, r.opts.drainMax, s.exited); err != nil {
			return err
		}
		sd, err := measureDrain(ctx, pool, submitted, true)
		if err != nil {
			return err
		}
		row.extra += fmt.Sprintf(" (its %s submitted checks ran %.1f s more)", count(sd.jobs), time.Since(t0).Seconds())
		if f := sd.failed(); f > 0 {
			row.failures += f
			row.bad += fmt.Sprintf("; submitted: %d of %d jobs failed", f, sd.expected)
		}
	}
	r.done(id, row)
	return nil
}

// getBaseline is f2: the plain net/http + pgx server on the same database.
func (r *runner) getBaseline(ctx context.Context, dbURL string, pool *pgxpool.Pool, ids []int64) error {
	var owner int64
	if err := pool.QueryRow(ctx, `SELECT owner_id FROM monitors WHERE id = $1`, ids[0]).Scan(&owner); err != nil {
		return fmt.Errorf("f2: owner of the monitors: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	env := callerEnv()
	env["DATABASE_URL"] = dbURL
	p, err := startProc("baseline-server", self, []string{"baseline-server", "-addr", addr,
		"-owner", strconv.FormatInt(owner, 10), "-max-conns", strconv.Itoa(r.cfg.DBMaxConns)}, env.list())
	if err != nil {
		return err
	}
	r.track(p)
	defer p.stop(10 * time.Second) //nolint:errcheck // the explicit stop below reports
	base := "http://" + addr
	if err := waitReady(ctx, p, base+"/readyz", 30*time.Second); err != nil {
		return err
	}
	res, err := r.load(ctx, loadSpec{
		method: http.MethodGet, url: urls(base, ids, ""),
		concurrency: r.opts.concurrency, warmup: r.opts.warmup, duration: r.opts.duration,
	}, p)
	if err != nil {
		return err
	}
	r.done("f2", loadRow(res, "req/s", false))
	return p.stop(10 * time.Second)
}

// groupSplit: b(i) on `beacon api` alone, then c: a backlog inserted with
// no worker running, drained by one `beacon worker`.
func (r *runner) groupSplit(ctx context.Context) error {
	dbURL, err := r.pg.createDB(ctx, dbName("split"))
	if err != nil {
		return err
	}
	if err := r.migrate(ctx, dbURL); err != nil {
		return err
	}
	pool, err := openPool(ctx, dbURL, 4)
	if err != nil {
		return err
	}
	defer pool.Close()

	s, err := r.startSession(ctx, "api", dbURL, nil)
	if err != nil {
		return err
	}
	defer s.stop() //nolint:errcheck // the explicit stop below reports
	ids, err := s.client.createMonitors(ctx, r.targetURL, r.opts.monitors)
	if err != nil {
		return err
	}
	res, err := r.load(ctx, loadSpec{
		method: http.MethodPost, url: urls(s.api, ids, "/checks"), token: s.client.token,
		concurrency: r.opts.concurrency, warmup: r.opts.warmup, duration: r.opts.duration,
	}, s.proc)
	if err != nil {
		return err
	}
	b1 := loadRow(res, "req/s", false)
	if n := res.statuses[http.StatusAccepted]; n != res.count {
		b1.bad += fmt.Sprintf(", %d not 202", res.count-n)
		b1.failures += res.count - n - res.non2xx()
	}
	r.done("b1", b1)
	if err := s.stop(); err != nil {
		return err
	}

	// c: b1's jobs were never worked; remove them so the worker drains the backlog only.
	if _, err := pool.Exec(ctx, `DELETE FROM river_job WHERE queue = 'checks'`); err != nil {
		return fmt.Errorf("c: %w", err)
	}
	b, err := insertBacklog(ctx, pool, ids, r.opts.backlog, "lt_c")
	if err != nil {
		return err
	}
	logf("c: %s jobs inserted in %.2f s with no worker running; starting beacon worker", count(b.n), b.insertDuration.Seconds())
	t0 := time.Now()
	w, err := r.startBeacon(ctx, "worker", dbURL, nil)
	if err != nil {
		return err
	}
	defer w.stop(30 * time.Second) //nolint:errcheck // the explicit stop below reports
	meter := &cpuMeter{children: []*proc{w.proc}, pgDir: r.pgDir()}
	meter.start()
	waits := startWaitSampler(ctx, pool, r.opts.pgDetail)
	drainErr := waitDrained(ctx, pool, b, r.opts.drainMax, w.exited)
	waitSummary := waits.stop()
	if drainErr != nil {
		return drainErr
	}
	wall := time.Since(t0)
	cores, cpu := meter.read()
	if err := w.stop(30 * time.Second); err != nil {
		return err
	}
	d, err := measureDrain(ctx, pool, b, true)
	if err != nil {
		return err
	}
	d.cpu, d.otherCPU = cpu, cores["other"]
	row := drainRow(d, "checks/s")
	row.waits = waitSummary
	row.extra = fmt.Sprintf("(first job %.2f s after process start; %.1f s start to drained)", d.firstAttempt.Sub(t0).Seconds(), wall.Seconds())
	r.done("c", row)
	return nil
}

// groupRawRiver: d, River alone with a no-op worker on a fresh database.
func (r *runner) groupRawRiver(ctx context.Context) error {
	dbURL, err := r.pg.createDB(ctx, dbName("raw"))
	if err != nil {
		return err
	}
	ids := make([]int64, r.opts.monitors)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	d, err := r.rawRiverDrain(ctx, dbURL, ids)
	if err != nil {
		return err
	}
	r.done("d", drainRow(d, "jobs/s"))
	return nil
}

// groupTelemetry: g, the same GET load on `beacon all` with the SDK
// disabled, then exporting everything to the collector.
func (r *runner) groupTelemetry(ctx context.Context) error {
	if r.dbAll == "" {
		r.report.skip([]string{"g1", "g2"}, "skipped: the `beacon all` group failed")
		return nil
	}
	off := func(env envMap) { env["OTEL_SDK_DISABLED"] = "true" }
	if err := r.getMonitorRow(ctx, "g1", off, nil); err != nil {
		return err
	}
	binary := r.collectorBinary()
	if binary == "" {
		r.report.skip([]string{"g2"}, "skipped: run make collector")
		return nil
	}
	col, err := r.startCollector(ctx, binary)
	if err != nil {
		return err
	}
	defer col.stop(10 * time.Second) //nolint:errcheck // the explicit stop below reports
	on := func(env envMap) {
		for k := range env {
			if strings.HasPrefix(k, "OTEL_") {
				delete(env, k)
			}
		}
		env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://" + col.grpc
		env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc"
	}
	if err := r.getMonitorRow(ctx, "g2", on, col); err != nil {
		return err
	}
	return col.stop(10 * time.Second)
}

// getMonitorRow starts `beacon all` on the first group's database with edit
// applied, measures GET monitor at the usual concurrency, and stops it.
// With col, the collector must have received spans by then.
func (r *runner) getMonitorRow(ctx context.Context, id string, edit func(envMap), col *collectorProc) error {
	s, err := r.startSession(ctx, "all", r.dbAll, edit)
	if err != nil {
		return err
	}
	defer s.stop() //nolint:errcheck // the explicit stop below reports
	servers := []*proc{s.proc}
	if col != nil {
		servers = append(servers, col.proc)
	}
	res, err := r.load(ctx, loadSpec{
		method: http.MethodGet, url: urls(s.api, r.monitorsAll, ""), token: s.client.token,
		concurrency: r.opts.concurrency, warmup: r.opts.warmup, duration: r.opts.duration,
	}, servers...)
	if err != nil {
		return err
	}
	row := loadRow(res, "req/s", false)
	// Stopping flushes what is buffered: the collector has it afterwards.
	if err := s.stop(); err != nil {
		return err
	}
	if col != nil {
		row.extra = fmt.Sprintf("(the collector used %.2f cores)", res.cores[col.name])
		if !col.sawTraces() {
			row.failures++
			row.bad += "; the collector received no spans"
		}
	}
	r.done(id, row)
	return nil
}
