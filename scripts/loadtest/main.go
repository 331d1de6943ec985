// Command loadtest measures Beacon's job path and request path end to end on
// this machine and prints one markdown table, with ratios computed in the
// same run (`make loadtest`; `make loadtest-smoke` for the short CI variant).
//
// It starts a throwaway PostgreSQL (or uses TEST_DATABASE_URL), builds
// cmd/beacon once and runs it as child processes (`migrate`, `all`, `api`,
// `worker`), with a local check target and the load generator in this
// process. Every address is on the loopback interface. Progress goes to
// stderr, one line per scenario with the cores each process used (and, for
// drains, what PostgreSQL's sessions were doing); the table goes to stdout.
//
//	go run ./scripts/loadtest [-smoke] [-pgdetail]
//	go run ./scripts/loadtest baseline-server ...   (internal: the GET baseline)
//
// Beacon runs with its defaults unless the caller's environment sets
// BEACON_* (or OTEL_*) variables, which are passed through; the raw River
// baseline reads the same knobs with config.Load. The exit status is 1 when
// something broke (a child died, a setup step failed) and, with -smoke, also
// when any request or check job failed; 130 when interrupted.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/beaconhq/beacon/internal/config"
	"github.com/beaconhq/beacon/internal/harness"
)

// options are the sizes of one run.
type options struct {
	smoke       bool
	duration    time.Duration // measured phase of each load scenario
	warmup      time.Duration // unrecorded phase before it
	backlog     int           // check jobs in each backlog
	monitors    int           // monitors created per database
	rateFor     time.Duration // how long scenario e submits at rateHz
	rateHz      int           // scenario e's steady submission rate
	drainMax    time.Duration // longest wait for a backlog to drain
	concurrency int           // closed-loop workers of the throughput scenarios
	pgDetail    bool          // drain progress lines name the statements PostgreSQL sessions are in

	schedMonitors int             // s rows: monitors scheduled
	schedInterval int             // their interval, seconds
	schedCycles   int             // intervals measured
	schedProcs    []int           // worker processes, one row each
	statsInterval int             // t rows: seconds between generated results (a year of them)
	statsRuns     int             // t rows: timed runs of each query
	chordSteps    int             // w rows: steps of the chord's header (and bare jobs before the last one)
	chordWarmups  int             // w rows: unrecorded runs of each first
	chordRuns     int             // w rows: timed runs of each
	only          map[string]bool // groups to run (-only); nil: all
}

func fullOptions() options {
	return options{
		duration: 10 * time.Second, warmup: time.Second, backlog: 10_000, monitors: 1000,
		rateFor: 20 * time.Second, rateHz: 10, drainMax: 3 * time.Minute, concurrency: 16,
		schedMonitors: 20_000, schedInterval: 60, schedCycles: 2, schedProcs: []int{1, 2, 4},
		statsInterval: 10, statsRuns: 30,
		chordSteps: 1000, chordWarmups: 1, chordRuns: 5,
	}
}

func smokeOptions() options {
	return options{
		smoke: true, duration: 2 * time.Second, warmup: 300 * time.Millisecond, backlog: 500, monitors: 20,
		rateFor: 2 * time.Second, rateHz: 10, drainMax: 45 * time.Second, concurrency: 16,
		schedMonitors: 200, schedInterval: 10, schedCycles: 2, schedProcs: []int{1},
		statsInterval: 3600, statsRuns: 6,
		chordSteps: 200, chordWarmups: 1, chordRuns: 2,
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "baseline-server" {
		os.Exit(baselineMain(os.Args[2:]))
	}
	smoke := flag.Bool("smoke", false, "short run for CI (also LOADTEST_SMOKE=1): ~2 s per scenario, backlog 500")
	only := flag.String("only", "", "run only these groups, comma-separated: all, split, raw, workflow, telemetry, stats, scheduler (default: every group)")
	pgDetail := flag.Bool("pgdetail", false, "during drains, also name the statements PostgreSQL sessions are in (also LOADTEST_PG_DETAIL=1)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "loadtest: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	opts := fullOptions()
	if *smoke || truthy(os.Getenv("LOADTEST_SMOKE")) {
		opts = smokeOptions()
	}
	opts.pgDetail = *pgDetail || truthy(os.Getenv("LOADTEST_PG_DETAIL"))
	if err := schedOverrides(&opts, os.Getenv); err != nil {
		fmt.Fprintf(os.Stderr, "loadtest: %v\n", err)
		os.Exit(2)
	}
	if *only != "" {
		opts.only = map[string]bool{}
		for _, g := range strings.Split(*only, ",") {
			if !slices.Contains(groupNames, strings.TrimSpace(g)) {
				fmt.Fprintf(os.Stderr, "loadtest: -only: no group %q (groups: %s)\n", g, strings.Join(groupNames, ", "))
				os.Exit(2)
			}
			opts.only[strings.TrimSpace(g)] = true
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, opts)
	stop()
	os.Exit(code)
}

func truthy(s string) bool {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	return err == nil && b
}

// logf prints progress to stderr; the table goes to stdout.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadtest: "+format+"\n", args...)
}

// run does the whole measurement and returns the exit status: 0, 1 when
// something broke (or, in smoke mode, a request or job failed), 130 when
// interrupted.
func run(ctx context.Context, opts options) int {
	started := time.Now()
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		logf("%v", err)
		return 1
	}
	root, err := harness.ModuleRoot()
	if err != nil {
		logf("%v", err)
		return 1
	}
	work, err := os.MkdirTemp("", "beacon-loadtest.")
	if err != nil {
		logf("%v", err)
		return 1
	}
	defer os.RemoveAll(work)
	// PostgreSQL runs as the postgres user when we are root: it must reach the folder.
	if err := os.Chmod(work, 0o755); err != nil {
		logf("%v", err)
		return 1
	}

	r := &runner{opts: opts, cfg: cfg, root: root, work: work, report: newReport(opts, cfg)}
	defer r.stopAll()
	err = r.setup(ctx)
	if err == nil {
		r.runScenarios(ctx)
	}
	if ctx.Err() != nil {
		logf("interrupted: cleaning up")
		return 130
	}
	if err != nil {
		logf("setup failed: %v", err)
		return 1
	}
	r.report.elapsed = time.Since(started)
	r.report.print(os.Stdout)
	if r.report.broken() {
		logf("something broke: see the rows marked error above")
		return 1
	}
	if opts.smoke && r.report.failures() > 0 {
		logf("smoke mode: %d failed requests or jobs", r.report.failures())
		return 1
	}
	return 0
}
