package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/beaconhq/beacon/internal/config"
)

// scenario names a row of the table, in print order.
type scenario struct {
	id, name, target string
}

// scenarios are the rows of the table. Targets (issue 8 of the tracker)
// are text for the reader, never checked: edit them here.
func scenarios(opts options, cfg config.Config) []scenario {
	c := opts.concurrency
	rows := []scenario{
		{"a1", "a1 sync check `POST /checks?wait=10`, c=1", "p50 ≤ 10 ms, no miss"},
		{"a2", fmt.Sprintf("a2 sync check `?wait=10`, c=%d", c), "≥ 600/s, p99 ≤ 60 ms, no miss"},
		{"b1", fmt.Sprintf("b1 async submit `POST /checks` (202), `beacon api` alone, no worker, c=%d", c), "≥ 3,000 req/s"},
		{"b2", fmt.Sprintf("b2 async submit, `beacon all` draining a %s backlog, c=%d", count(opts.backlog), c), "≥ 1,500 req/s"},
		{"c", fmt.Sprintf("c drain %s checks, one `beacon worker` (p: job run time)", count(opts.backlog)), "≥ 3,000/s and ≥ 0.8× raw River"},
		{"d", fmt.Sprintf("d raw River drain %s no-op jobs, same fetch settings (p: job run time)", count(opts.backlog)), "~7,600 jobs/s at 5 ms cooldown (TOOLCHAIN.md)"},
		{"w1", fmt.Sprintf("w1 chord of %s steps + callback, one `beacon worker` (%d step workers): start → callback (p: per run)", count(opts.chordSteps), chordWorkers),
			"reference (`BenchmarkChord1000`, 50 workers: 2.9-4.7× bare)"},
		{"w2", fmt.Sprintf("w2 %s bare River jobs, then 1 once they completed: no-op, %d workers, this process (p: per run)", count(opts.chordSteps), chordWorkers), "reference"},
		{"e", fmt.Sprintf("e enqueue→start (attempted_at − created_at), %d async checks/s on `beacon all`", opts.rateHz), "p95 ≤ 20 ms (poll: " + cfg.JobFetchPollInterval.String() + ")"},
		{"f1", fmt.Sprintf("f1 `GET /v1/monitors/{id}`, `beacon all`, c=%d", c), "≥ 0.9× f2"},
		{"f2", fmt.Sprintf("f2 same GET, net/http + pgx baseline (same query and JSON, no auth), c=%d", c), "reference"},
		{"g1", fmt.Sprintf("g1 GET monitor, `beacon all`, OTEL_SDK_DISABLED=true, c=%d", c), "reference"},
		{"g2", fmt.Sprintf("g2 GET monitor, `beacon all` exporting OTLP/gRPC to otelcol-beacon, c=%d", c), "≥ 0.9× g1"},
		{"h0", "h0 GET monitor, `beacon all` idle, c=4", "reference"},
		{"h1", fmt.Sprintf("h1 GET monitor, `beacon all` draining a %s backlog, c=4", count(opts.backlog)), "no request over 1 s"},
	}
	year := fmt.Sprintf("a year every %d s", opts.statsInterval)
	rows = append(rows,
		scenario{"t1", "t1 stats over 30 days, 6 h buckets, every result (the query before rollups; " + year + ")", "reference (was 78-93 ms at 10 s)"},
		scenario{"t2", "t2 same, `Store.Stats` (hourly rollups; per-minute ones and results at the ends)", "≤ 10 ms"},
		scenario{"t3", "t3 stats over 365 days, 24 h buckets, every result", "reference"},
		scenario{"t4", "t4 same, `Store.Stats` (daily rollups; hourly, per-minute ones and results at the ends)", "≤ 50 ms"},
	)
	for _, k := range opts.schedProcs {
		rows = append(rows, scenario{fmt.Sprintf("s%d", k),
			fmt.Sprintf("s%d %s monitors every %d s, %d `beacon worker` process(es), scheduler tick %s (p: slot → job start)",
				k, count(opts.schedMonitors), opts.schedInterval, k, schedulerInterval),
			"lag p99 ≤ 2 s; twice 0, skipped 0"})
	}
	return rows
}

// schedIDs are the ids of the s rows.
func schedIDs(opts options) []string {
	var ids []string
	for _, k := range opts.schedProcs {
		ids = append(ids, fmt.Sprintf("s%d", k))
	}
	return ids
}

// row is one measured scenario.
type row struct {
	value         string
	p50, p99, max time.Duration
	hasLatency    bool
	bad           string  // the non-2xx / errors cell
	throughput    float64 // for ratios
	failures      int     // failed requests or jobs (smoke mode fails on any)
	err           string  // something broke: the row is an error
	skipped       string  // not run, and why
	extra         string  // appended to the ratio cell
	cpu           string  // cores used, for the progress line
	otherCPU      float64 // cores the rest of the machine used meanwhile
	waits         string  // what PostgreSQL sessions did, for the progress line
}

// report collects the rows of a run and prints the table.
type report struct {
	opts    options
	cfg     config.Config
	mu      sync.Mutex
	rows    map[string]*row
	pgVer   string
	pgWhere string
	pgLocal bool // PostgreSQL is the throwaway cluster, whose CPU is measured
	elapsed time.Duration
}

func newReport(opts options, cfg config.Config) *report {
	return &report{opts: opts, cfg: cfg, rows: map[string]*row{}}
}

func (rep *report) set(id string, r *row) {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	rep.rows[id] = r
}

func (rep *report) get(id string) *row {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	return rep.rows[id]
}

// fail marks every row of ids not measured yet as broken by err.
func (rep *report) fail(ids []string, err error) {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	msg = strings.TrimSuffix(msg, "; last output:")
	for _, id := range ids {
		if rep.get(id) == nil {
			rep.set(id, &row{err: msg})
		}
	}
}

// skip marks rows as not run.
func (rep *report) skip(ids []string, why string) {
	for _, id := range ids {
		if rep.get(id) == nil {
			rep.set(id, &row{skipped: why})
		}
	}
}

// broken reports whether any row is an error.
func (rep *report) broken() bool {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	for _, r := range rep.rows {
		if r.err != "" {
			return true
		}
	}
	return false
}

// failures counts failed requests and jobs over every row.
func (rep *report) failures() int {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	n := 0
	for _, r := range rep.rows {
		n += r.failures
	}
	return n
}

// loadRow turns a load result into a row. misses counts 202s of sync
// checks (answered, but the check did not finish within wait).
func loadRow(res loadResult, unit string, misses bool) *row {
	r := &row{
		value: fmt.Sprintf("%s %s", rate(res.rate()), unit), throughput: res.rate(),
		p50: res.pct(0.50), p99: res.pct(0.99), max: res.pct(1), hasLatency: len(res.lat) > 0,
		cpu: res.cpu, otherCPU: res.cores["other"],
	}
	bad := res.non2xx()
	r.failures = bad + res.errors
	r.bad = fmt.Sprint(bad)
	if res.errors > 0 {
		r.bad += fmt.Sprintf(" + %d errors (%s)", res.errors, shorten(res.firstErr, 60))
	}
	if bad > 0 {
		r.bad += " (" + statusList(res.statuses) + ")"
	}
	if misses {
		r.bad += fmt.Sprintf(", %d miss", res.statuses[202])
	}
	r.value += fmt.Sprintf(" (%s in %.1f s)", count(res.count), res.elapsed.Seconds())
	return r
}

// drainRow turns drain statistics into a row.
func drainRow(d drainStats, unit string) *row {
	r := &row{
		value:      fmt.Sprintf("%s %s (%s in %.2f s)", rate(d.rate()), unit, count(d.jobs), d.span().Seconds()),
		throughput: d.rate(), p50: d.p50, p99: d.p99, max: d.max, hasLatency: true,
		failures: d.failed(), cpu: d.cpu, otherCPU: d.otherCPU,
	}
	r.bad = fmt.Sprintf("%d failed", d.failed())
	if d.failed() > 0 {
		r.bad += fmt.Sprintf(" (%d of %d completed", d.completed, d.expected)
		if d.results >= 0 {
			r.bad += fmt.Sprintf(", %d results for %d jobs", d.results, d.distinctJobs)
		}
		r.bad += ")"
	}
	return r
}

func statusList(statuses map[int]int) string {
	codes := make([]int, 0, len(statuses))
	for c := range statuses {
		if c < 200 || c > 299 {
			codes = append(codes, c)
		}
	}
	sort.Ints(codes)
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%d×%d", statuses[c], c)
	}
	return strings.Join(parts, ", ")
}

// ratio is the ratio cell of a row: computed from other rows of the same run.
func (rep *report) ratio(id string) string {
	thr := func(a, b, label string) string {
		ra, rb := rep.get(a), rep.get(b)
		if ra == nil || rb == nil || ra.err != "" || rb.err != "" || ra.skipped != "" || rb.skipped != "" || rb.throughput == 0 {
			return ""
		}
		return fmt.Sprintf("%.2f× %s", ra.throughput/rb.throughput, label)
	}
	switch id {
	case "a2":
		return thr("a2", "a1", "a1")
	case "b2":
		return thr("b2", "b1", "b1")
	case "c":
		return thr("c", "d", "raw River")
	case "f1":
		return thr("f1", "f2", "baseline")
	case "g2":
		return thr("g2", "g1", "off")
	case "t2", "t4":
		raw := map[string]string{"t2": "t1", "t4": "t3"}[id]
		a, b := rep.get(id), rep.get(raw)
		if a == nil || b == nil || a.p50 == 0 || b.p50 == 0 || a.err != "" || b.err != "" {
			return ""
		}
		return fmt.Sprintf("%s's p50 ÷ this p50: %.1f×", raw, float64(b.p50)/float64(a.p50))
	case "s2", "s4":
		return thr(id, "s1", "s1 checks/s")
	case "w1":
		// p50s of whole runs: (w1 - w2) / steps is what the engine adds to each step.
		a, b := rep.get("w1"), rep.get("w2")
		if a == nil || b == nil || a.p50 == 0 || b.p50 == 0 || a.err != "" || b.err != "" || a.skipped != "" || b.skipped != "" {
			return ""
		}
		return fmt.Sprintf("%.2f× w2; overhead %.2f ms/step", float64(a.p50)/float64(b.p50),
			(a.p50-b.p50).Seconds()*1000/float64(rep.opts.chordSteps))
	case "h1":
		h0, h1 := rep.get("h0"), rep.get("h1")
		if h0 == nil || h1 == nil || !h0.hasLatency || !h1.hasLatency || h0.p99 == 0 {
			return ""
		}
		return fmt.Sprintf("p99 %.2f× h0", float64(h1.p99)/float64(h0.p99))
	}
	return ""
}

// print writes the table, the machine line and the command.
func (rep *report) print(w io.Writer) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | value | p50 | p99 | max | non-2xx | target | ratio |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---|---|---|")
	for _, s := range scenarios(rep.opts, rep.cfg) {
		r := rep.get(s.id)
		cells := []string{s.name, "", "", "", "", "", s.target, ""}
		switch {
		case r == nil:
			cells[1] = "not run"
		case r.err != "":
			cells[1] = "error: " + shorten(r.err, 120)
		case r.skipped != "":
			cells[1] = r.skipped
		default:
			cells[1] = r.value
			if r.hasLatency {
				cells[2], cells[3], cells[4] = ms(r.p50), ms(r.p99), ms(r.max)
			}
			cells[5] = r.bad
			cells[7] = strings.TrimSpace(rep.ratio(s.id) + " " + r.extra)
		}
		for i := range cells {
			cells[i] = strings.ReplaceAll(cells[i], "|", `\|`)
		}
		fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, rep.machineLine())
	if id, other := rep.busiest(); other >= 0.05 {
		who := "other processes on the machine (not this run)"
		if !rep.pgLocal {
			who = "other processes on the machine (PostgreSQL of TEST_DATABASE_URL included)"
		}
		fmt.Fprintf(w, "%s used up to %.2f cores during a measured phase (%s): figures from a shared machine are noisy\n", who, other, id)
	}
	fmt.Fprintln(w, rep.modeLine())
	fmt.Fprintln(w, "command: "+commandLine())
}

// busiest returns the row during which the rest of the machine used the
// most CPU, and how much.
func (rep *report) busiest() (string, float64) {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	id, most := "", 0.0
	for k, r := range rep.rows {
		if r.otherCPU > most {
			id, most = k, r.otherCPU
		}
	}
	return id, most
}

func (rep *report) machineLine() string {
	return fmt.Sprintf("machine: nproc %d, %s, %s, PostgreSQL %s (%s); knobs: BEACON_WORKER_CONCURRENCY=%d BEACON_JOB_FETCH_COOLDOWN=%s BEACON_JOB_FETCH_POLL_INTERVAL=%s BEACON_DB_MAX_CONNS=%d BEACON_DB_WORKER_MAX_CONNS=%d",
		runtime.NumCPU(), cpuModel(), runtime.Version(), rep.pgVer, rep.pgWhere,
		rep.cfg.WorkerConcurrency, rep.cfg.JobFetchCooldown, rep.cfg.JobFetchPollInterval, rep.cfg.DBMaxConns, rep.cfg.DBWorkerMaxConns)
}

func (rep *report) modeLine() string {
	mode := "full"
	if rep.opts.smoke {
		mode = "smoke"
	}
	return fmt.Sprintf("mode: %s (%s per load after %s warmup, backlogs of %s checks over %d monitors, e: %d/s for %s); run time %s",
		mode, rep.opts.duration, rep.opts.warmup, count(rep.opts.backlog), rep.opts.monitors, rep.opts.rateHz, rep.opts.rateFor,
		rep.elapsed.Round(time.Second))
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// commandLine is the command that reproduces this run, with the settings
// taken from the environment.
func commandLine() string {
	var env []string
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case k == "TEST_DATABASE_URL":
			env = append(env, k+"="+config.MaskURL(v))
		case strings.HasPrefix(k, "BEACON_"), strings.HasPrefix(k, "OTEL_"), strings.HasPrefix(k, "LOADTEST_"):
			if strings.Contains(k, "SECRET") || strings.Contains(k, "PASSWORD") {
				v = "xxxxx"
			}
			env = append(env, k+"="+v)
		}
	}
	sort.Strings(env)
	parts := append(env, "go run ./scripts/loadtest")
	parts = append(parts, os.Args[1:]...)
	return strings.Join(parts, " ")
}

// rate formats a per-second figure with sensible precision.
func rate(v float64) string {
	switch {
	case v >= 1000:
		return count(int(v + 0.5))
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

// count formats an integer with thousands separators.
func count(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// ms formats a latency in milliseconds, 3 significant digits.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}

func shorten(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
