package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// backlogStates are the states of jobs not yet finished.
var backlogStates = []string{"available", "pending", "retryable", "running", "scheduled"}

// ObserveBacklog reports what otelriver does not: per queue and state, the
// number of unfinished jobs, and the age of the oldest available job (how
// long work has been waiting for a worker). queues are reported even when
// empty, so an alert sees zeros rather than no data. Unregister the result
// before closing pool.
func ObserveBacklog(mp metric.MeterProvider, pool *pgxpool.Pool, queues []string) (metric.Registration, error) {
	meter := mp.Meter("github.com/beaconhq/beacon/internal/jobs")
	backlog, err := meter.Int64ObservableGauge("beacon.jobs.backlog",
		metric.WithDescription("Unfinished River jobs by queue and state."),
		metric.WithUnit("{job}"))
	if err != nil {
		return nil, fmt.Errorf("backlog gauge: %w", err)
	}
	age, err := meter.Float64ObservableGauge("beacon.jobs.oldest_available_age",
		metric.WithDescription("Age of the oldest available River job by queue (0 when none waits)."),
		metric.WithUnit("s"))
	if err != nil {
		return nil, fmt.Errorf("backlog age gauge: %w", err)
	}
	reg, err := meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		// A callback's error makes the SDK drop the whole collection: every
		// other metric would vanish exactly while the database is down.
		// Report it to OTel's (throttled) handler and observe nothing.
		if err := observeBacklog(ctx, pool, queues, o, backlog, age); err != nil {
			otel.Handle(err)
		}
		return nil
	}, backlog, age)
	if err != nil {
		return nil, fmt.Errorf("backlog gauges: %w", err)
	}
	return reg, nil
}

func observeBacklog(ctx context.Context, pool *pgxpool.Pool, queues []string, o metric.Observer, backlog metric.Int64ObservableGauge, age metric.Float64ObservableGauge) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	// Inline, not in a queries.sql: river_job is River's table, created and
	// changed by River's migrator, not by a migration sqlc reads.
	rows, err := pool.Query(ctx, `
			SELECT queue, state::text, count(*), extract(epoch FROM now() - min(scheduled_at))::float8
			FROM river_job
			WHERE state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
			GROUP BY queue, state`)
	if err != nil {
		return fmt.Errorf("read backlog: %w", err)
	}
	defer rows.Close()
	type key struct{ queue, state string }
	counts := map[key]int64{}
	ages := map[string]float64{}
	for rows.Next() {
		var k key
		var n int64
		var a float64
		if err := rows.Scan(&k.queue, &k.state, &n, &a); err != nil {
			return fmt.Errorf("read backlog: %w", err)
		}
		counts[k] = n
		if k.state == "available" {
			ages[k.queue] = a
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read backlog: %w", err)
	}
	seen := map[string]bool{}
	for _, q := range queues {
		seen[q] = true
		for _, s := range backlogStates {
			counts[key{q, s}] += 0
		}
	}
	for k, n := range counts {
		o.ObserveInt64(backlog, n, metric.WithAttributes(attribute.String("queue", k.queue), attribute.String("state", k.state)))
		seen[k.queue] = true
	}
	for q := range seen {
		o.ObserveFloat64(age, max(ages[q], 0), metric.WithAttributes(attribute.String("queue", q)))
	}
	return nil
}
