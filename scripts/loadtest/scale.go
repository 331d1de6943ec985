package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beaconhq/beacon/internal/monitors"
)

// The scale scenarios (issue 14): s<k>, many monitors scheduled for real
// and checked by k `beacon worker` processes; t1-t4, stats over a month and
// a year of results, from the results themselves and from the rollups.

// schedulerInterval is the scheduler tick of the s rows, unless the caller
// sets BEACON_SCHEDULER_INTERVAL: a slot waits up to one tick to be claimed,
// so the default (5 s) alone would put the lag's p99 near 5 s.
const schedulerInterval = "1s"

// schedOverrides applies LOADTEST_SCHED_MONITORS (how many monitors) and
// LOADTEST_SCHED_PROCS (worker processes, e.g. "1,2"), to find the ceiling.
func schedOverrides(opts *options, getenv func(string) string) error {
	if v := getenv("LOADTEST_SCHED_MONITORS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10_000_000 {
			return fmt.Errorf("LOADTEST_SCHED_MONITORS=%q: want a number of monitors from 1 to 10,000,000", v)
		}
		opts.schedMonitors = n
	}
	if v := getenv("LOADTEST_SCHED_PROCS"); v != "" {
		opts.schedProcs = nil
		for _, f := range strings.Split(v, ",") {
			k, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || k < 1 || k > 16 || slices.Contains(opts.schedProcs, k) {
				return fmt.Errorf("LOADTEST_SCHED_PROCS=%q: want distinct numbers of worker processes from 1 to 16, e.g. 1,2,4", v)
			}
			opts.schedProcs = append(opts.schedProcs, k)
		}
	}
	return nil
}

// groupScheduler runs s<k> for each number of worker processes, each on a
// fresh database.
func (r *runner) groupScheduler(ctx context.Context) error {
	for _, k := range r.opts.schedProcs {
		id := fmt.Sprintf("s%d", k)
		if err := r.schedulerRow(ctx, id, k); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			logf("%s: %v", id, err)
			r.report.fail([]string{id}, err)
		}
	}
	return nil
}

// schedulerRow: N monitors due at slots spread evenly over one interval,
// checked against the local target by k worker processes for a window of
// whole intervals. Every slot of the window must be checked once: none
// twice (River's unique jobs), none skipped (the scheduler keeping up).
// Lag is attempted_at (the job starts) minus its slot.
func (r *runner) schedulerRow(ctx context.Context, id string, k int) error {
	dbURL, err := r.pg.createDB(ctx, dbName("sched"+fmt.Sprint(k)))
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

	var workers []*beaconProc
	defer func() {
		for _, w := range workers {
			_ = w.stop(30 * time.Second)
		}
	}()
	for i := range k {
		w, err := r.startBeacon(ctx, "worker", dbURL, func(env envMap) {
			if env["BEACON_SCHEDULER_INTERVAL"] == "" {
				env["BEACON_SCHEDULER_INTERVAL"] = schedulerInterval
			}
		})
		if err != nil {
			return err
		}
		w.name = fmt.Sprintf("worker %d", i+1)
		workers = append(workers, w)
	}

	n, interval := r.opts.schedMonitors, r.opts.schedInterval
	window := time.Duration(r.opts.schedCycles*interval) * time.Second
	start := time.Now().Add(3 * time.Second).UTC().Truncate(time.Millisecond)
	end := start.Add(window)
	if _, err := pool.Exec(ctx, `
		INSERT INTO monitors (name, url, method, interval_seconds, timeout_ms, enabled, next_check_at)
		SELECT 'lt' || g, $1, 'GET', $2::int, 2000, true, $3::timestamptz + make_interval(secs => g * $2::int::float8 / $4::int)
		FROM generate_series(0, $4::int - 1) g`, r.targetURL, interval, start, n); err != nil {
		return fmt.Errorf("%s: insert monitors: %w", id, err)
	}
	expected := n * r.opts.schedCycles
	logf("%s: %s monitors every %d s, %d worker process(es), slots in [%s, %s): %s expected",
		id, count(n), interval, k, start.Format("15:04:05"), end.Format("15:04:05"), count(expected))

	children := make([]*proc, len(workers))
	for i, w := range workers {
		children[i] = w.proc
	}
	time.Sleep(time.Until(start))
	var walStart string
	if err := pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&walStart); err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	meter := &cpuMeter{children: children, pgDir: r.pgDir()}
	meter.start()
	waits := startWaitSampler(ctx, pool, r.opts.pgDetail)
	alive := func() error {
		for _, w := range workers {
			if err := w.exited(); err != nil {
				return err
			}
		}
		return nil
	}
	// The window's slots are checked by its end plus the lag; then no more are due in it.
	checked, waitErr := waitSlots(ctx, pool, start, end, expected, end.Add(30*time.Second), alive)
	cores, cpu := meter.read()
	waitSummary := waits.stop()
	var wal float64
	if err := pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)`, walStart).Scan(&wal); err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	if waitErr != nil {
		return fmt.Errorf("%s: %w (%d of %d slots checked)", id, waitErr, checked, expected)
	}
	for _, w := range workers {
		if err := w.stop(30 * time.Second); err != nil {
			return err
		}
	}
	workers = nil

	var (
		jobs, twice             int
		p50, p99, lagMax        float64
		resultsTwice, nonOK     int
		firstAttempt, lastFinal time.Time
	)
	err = pool.QueryRow(ctx, `
		WITH j AS (
			SELECT id, (args->>'monitor_id')::bigint AS monitor_id, (args->>'slot')::timestamptz AS slot,
			       state, attempted_at, finalized_at
			FROM river_job WHERE kind = 'check' AND args ? 'slot'
		), w AS (SELECT * FROM j WHERE slot >= $1 AND slot < $2)
		SELECT (SELECT count(*) FROM w),
		       (SELECT count(*) FROM (SELECT 1 FROM j GROUP BY monitor_id, slot HAVING count(*) > 1) d),
		       (SELECT coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM attempted_at - slot)), 0) FROM w),
		       (SELECT coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM attempted_at - slot)), 0) FROM w),
		       (SELECT coalesce(max(extract(epoch FROM attempted_at - slot)), 0) FROM w),
		       (SELECT count(*) FROM (SELECT 1 FROM check_results c JOIN j ON j.id = c.job_id
		                              GROUP BY j.monitor_id, j.slot HAVING count(*) > 1) d),
		       (SELECT count(*) FROM check_results c JOIN w ON w.id = c.job_id WHERE NOT c.ok),
		       (SELECT min(attempted_at) FROM w), (SELECT max(finalized_at) FROM w)`,
		start, end).Scan(&jobs, &twice, &p50, &p99, &lagMax, &resultsTwice, &nonOK, &firstAttempt, &lastFinal)
	if err != nil {
		return fmt.Errorf("%s: measure: %w", id, err)
	}
	skipped := expected - checked
	row := &row{
		value:      fmt.Sprintf("%s checks/s (%s of %s slots in %s)", rate(float64(checked)/window.Seconds()), count(checked), count(expected), window),
		throughput: float64(checked) / window.Seconds(),
		p50:        seconds(p50), p99: seconds(p99), max: seconds(lagMax), hasLatency: true,
		bad:      fmt.Sprintf("twice %d, skipped %d, failed checks %d", twice+resultsTwice, skipped, nonOK),
		failures: twice + resultsTwice + skipped + nonOK,
		cpu:      cpu, otherCPU: cores["other"], waits: waitSummary,
	}
	workerCores := 0.0
	for _, c := range children {
		workerCores += cores[c.name]
	}
	row.extra = fmt.Sprintf("workers %.2f cores, postgres %.2f: %.0f checks/s per worker core; WAL %.1f KB per check; first job %s after the first slot, last done %s after the window",
		workerCores, cores["postgres"], row.throughput/max(workerCores, 0.01), wal/1024/max(float64(checked), 1),
		firstAttempt.Sub(start).Round(time.Millisecond), lastFinal.Sub(end).Round(time.Millisecond))
	r.done(id, row)
	return nil
}

// waitSlots waits until every slot in [from, to) has a completed check
// job, or until deadline; it returns how many have.
func waitSlots(ctx context.Context, pool *pgxpool.Pool, from, to time.Time, expected int, deadline time.Time, alive func() error) (int, error) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	checked := 0
	for {
		err := pool.QueryRow(ctx, `
			SELECT count(DISTINCT (args->>'monitor_id', args->>'slot')) FROM river_job
			WHERE kind = 'check' AND state = 'completed' AND (args->>'slot')::timestamptz >= $1 AND (args->>'slot')::timestamptz < $2`,
			from, to).Scan(&checked)
		if err != nil {
			return checked, err
		}
		if checked >= expected {
			return checked, nil
		}
		if err := alive(); err != nil {
			return checked, err
		}
		if time.Now().After(deadline) {
			if time.Now().Before(to) {
				return checked, errors.New("deadline before the window's end")
			}
			return checked, nil // the rest were skipped: the row says how many
		}
		select {
		case <-ctx.Done():
			return checked, ctx.Err()
		case <-tick.C:
		}
	}
}

// rawStatsBefore is Store.Stats' query before rollups (every result in
// range, exact percentiles): the baseline of t1 and t3.
const rawStatsBefore = `
	SELECT date_bin(make_interval(secs => $4), checked_at, timestamptz 'epoch') AS bucket,
	       count(*), count(*) FILTER (WHERE ok),
	       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY duration_ms)
	FROM check_results
	WHERE monitor_id = $1 AND checked_at >= $2 AND checked_at < $3
	GROUP BY 1 ORDER BY 1`

// groupStats: t1-t4, stats of one monitor with a year of results (every
// statsInterval seconds) among another monitor's as many, generated with
// generate_series straight into the tables with their rollups.
func (r *runner) groupStats(ctx context.Context) error {
	dbURL, err := r.pg.createDB(ctx, dbName("stats"))
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

	now := time.Now().UTC().Truncate(time.Second)
	t0 := time.Now()
	var owner, monitor, other int64
	if err := pool.QueryRow(ctx, `INSERT INTO users (email, password_hash, role) VALUES ('loadtest-stats@example.com', 'x', 'member') RETURNING id`).Scan(&owner); err != nil {
		return err
	}
	for _, id := range []*int64{&monitor, &other} {
		if err := pool.QueryRow(ctx, `INSERT INTO monitors (owner_id, name, url, method, interval_seconds, timeout_ms, enabled)
			VALUES ($1, 'stats', 'http://127.0.0.1:9/', 'GET', 10, 1000, false) RETURNING id`, owner).Scan(id); err != nil {
			return err
		}
	}
	year := 365 * 24 * time.Hour
	store := monitors.NewStore(pool, func() time.Time { return now })
	if _, err := store.EnsurePartitions(ctx, now.Add(-year-48*time.Hour), now.Add(48*time.Hour)); err != nil {
		return err
	}
	perMonitor := int(year.Seconds()) / r.opts.statsInterval
	for _, id := range []int64{monitor, other} {
		// Lognormal latencies around 50 ms, 1 % failures.
		if _, err := pool.Exec(ctx, `
			INSERT INTO check_results (monitor_id, checked_at, duration_ms, ok)
			SELECT $1, $2::timestamptz - g * make_interval(secs => $3),
			       exp(ln(50) + 0.4 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())), random() > 0.01
			FROM generate_series(1, $4) g`, id, now, r.opts.statsInterval, perMonitor); err != nil {
			return fmt.Errorf("generate results: %w", err)
		}
	}
	for _, sql := range []string{
		`INSERT INTO check_rollups_minute (monitor_id, bucket, checks, successes, bins, counts)
		 SELECT monitor_id, bucket, sum(n), sum(ok), array_agg(bin ORDER BY bin), array_agg(n::int ORDER BY bin)
		FROM (SELECT monitor_id, date_bin('1 minute', checked_at, timestamptz 'epoch') AS bucket, check_latency_bin(duration_ms) AS bin,
		             count(*) AS n, count(*) FILTER (WHERE ok) AS ok
		      FROM check_results GROUP BY 1, 2, 3) g
		GROUP BY 1, 2`,
		`INSERT INTO check_rollups_hour (monitor_id, bucket, checks, successes, bins, counts)
		 SELECT monitor_id, bucket, sum(n), sum(ok), array_agg(bin ORDER BY bin), array_agg(n::int ORDER BY bin)
		FROM (SELECT monitor_id, date_bin('1 hour', checked_at, timestamptz 'epoch') AS bucket, check_latency_bin(duration_ms) AS bin,
		             count(*) AS n, count(*) FILTER (WHERE ok) AS ok
		      FROM check_results GROUP BY 1, 2, 3) g
		GROUP BY 1, 2`,
		`INSERT INTO check_rollups_day (monitor_id, bucket, checks, successes, bins, counts)
		 SELECT monitor_id, bucket, sum(n), sum(ok), array_agg(bin ORDER BY bin), array_agg(n::int ORDER BY bin)
		FROM (SELECT monitor_id, date_bin('1 day', checked_at, timestamptz 'epoch') AS bucket, check_latency_bin(duration_ms) AS bin,
		             count(*) AS n, count(*) FILTER (WHERE ok) AS ok
		      FROM check_results GROUP BY 1, 2, 3) g
		GROUP BY 1, 2`,
		`VACUUM ANALYZE check_results, check_rollups_minute, check_rollups_hour, check_rollups_day`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			return fmt.Errorf("generate rollups: %w", err)
		}
	}
	var rows, hourRows int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM check_results), (SELECT count(*) FROM check_rollups_hour)`).Scan(&rows, &hourRows); err != nil {
		return err
	}
	logf("t: %s results (2 monitors, a year every %d s), %s hourly rollup rows, generated in %.1f s",
		count(int(rows)), r.opts.statsInterval, count(int(hourRows)), time.Since(t0).Seconds())

	month := 30 * 24 * time.Hour
	for _, c := range []struct {
		id     string
		span   time.Duration
		bucket time.Duration
		raw    bool
		runs   int
	}{
		{"t1", month, 6 * time.Hour, true, r.opts.statsRuns},
		{"t2", month, 6 * time.Hour, false, r.opts.statsRuns},
		{"t3", year, 24 * time.Hour, true, max(3, r.opts.statsRuns/6)},
		{"t4", year, 24 * time.Hour, false, r.opts.statsRuns},
	} {
		from := now.Add(-c.span)
		var lat []time.Duration
		var checks int64
		meter := &cpuMeter{pgDir: r.pgDir()}
		meter.start()
		for i := range c.runs + 2 {
			begin := time.Now()
			var n int64
			if c.raw {
				n, err = rawChecks(ctx, pool, monitor, from, now, c.bucket)
			} else {
				var bs []monitors.Bucket
				bs, err = store.Stats(ctx, owner, monitor, from, now, c.bucket)
				for _, b := range bs {
					n += b.Checks
				}
			}
			if err != nil {
				return fmt.Errorf("%s: %w", c.id, err)
			}
			if i >= 2 { // two warm-up runs
				lat = append(lat, time.Since(begin))
			}
			checks = n
		}
		_, cpu := meter.read()
		slices.Sort(lat)
		want := int64(c.span.Seconds()) / int64(r.opts.statsInterval)
		row := &row{
			value: fmt.Sprintf("%s checks in %d buckets, %d runs", count(int(checks)), int(c.span/c.bucket)+1, c.runs),
			p50:   quantile(lat, 0.5), p99: quantile(lat, 0.99), max: quantile(lat, 1), hasLatency: true,
			bad: "0", cpu: cpu,
		}
		// The range holds want results (give or take the ends).
		if checks < want-2 || checks > want+2 {
			row.bad = fmt.Sprintf("counted %d checks, %d in range", checks, want)
			row.failures = 1
		}
		row.throughput = 1 / max(row.p50.Seconds(), 1e-9)
		r.done(c.id, row)
	}
	return nil
}

// rawChecks runs the query before rollups and returns the checks it counted.
func rawChecks(ctx context.Context, pool *pgxpool.Pool, monitor int64, from, to time.Time, bucket time.Duration) (int64, error) {
	rows, err := pool.Query(ctx, rawStatsBefore, monitor, from, to, bucket.Seconds())
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var total int64
	for rows.Next() {
		var (
			start time.Time
			n, ok int64
			pcts  []float64
		)
		if err := rows.Scan(&start, &n, &ok, &pcts); err != nil {
			return 0, err
		}
		total += n
	}
	return total, rows.Err()
}
