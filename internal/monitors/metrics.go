package monitors

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

const meterName = "github.com/beaconhq/beacon/internal/monitors"

// Metrics records the domain's business metrics. Attributes are bounded:
// outcome, error kind and method, never a monitor id or URL.
type Metrics struct {
	duration metric.Float64Histogram
	checks   metric.Int64Counter
}

// NewMetrics creates the check instruments on mp.
func NewMetrics(mp metric.MeterProvider) (*Metrics, error) {
	meter := mp.Meter(meterName)
	duration, err := meter.Float64Histogram("beacon.check.duration",
		metric.WithDescription("Duration of HTTP checks, from request to the end of the body read."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
	if err != nil {
		return nil, fmt.Errorf("check duration histogram: %w", err)
	}
	checks, err := meter.Int64Counter("beacon.checks",
		metric.WithDescription("Checks stored, by outcome."),
		metric.WithUnit("{check}"))
	if err != nil {
		return nil, fmt.Errorf("checks counter: %w", err)
	}
	return &Metrics{duration: duration, checks: checks}, nil
}

// RecordCheck counts a stored check. ctx should hold the check's span, so
// the duration sample carries it as an exemplar.
func (m *Metrics) RecordCheck(ctx context.Context, method string, r Result) {
	if m == nil {
		return
	}
	outcome := "down"
	if r.OK {
		outcome = "up"
	}
	attrs := metric.WithAttributeSet(attribute.NewSet(
		attribute.String("outcome", outcome),
		attribute.String("error_kind", r.ErrorKind),
		attribute.String("http.request.method", method),
	))
	m.duration.Record(ctx, r.DurationMS/1000, attrs)
	m.checks.Add(ctx, 1, attrs)
}

// ObserveStates reports the number of monitors by state and enabled flag,
// read from the database at each collection. Unregister the result before
// closing the store's pool.
func ObserveStates(mp metric.MeterProvider, store *Store) (metric.Registration, error) {
	meter := mp.Meter(meterName)
	gauge, err := meter.Int64ObservableGauge("beacon.monitors",
		metric.WithDescription("Monitors by current state."),
		metric.WithUnit("{monitor}"))
	if err != nil {
		return nil, fmt.Errorf("monitors gauge: %w", err)
	}
	reg, err := meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		counts, err := store.CountByState(ctx)
		if err != nil {
			// Returning it would make the SDK drop every metric of this
			// collection; report it to OTel's (throttled) handler instead.
			otel.Handle(err)
			return nil
		}
		for _, state := range []State{StateUnknown, StateUp, StateDown} {
			for _, enabled := range []bool{true, false} {
				o.ObserveInt64(gauge, counts[stateKey{state, enabled}], metric.WithAttributes(
					attribute.String("state", string(state)), attribute.Bool("enabled", enabled)))
			}
		}
		return nil
	}, gauge)
	if err != nil {
		return nil, fmt.Errorf("monitors gauge: %w", err)
	}
	return reg, nil
}

type stateKey struct {
	state   State
	enabled bool
}

// CountByState counts monitors by state and enabled flag.
func (s *Store) CountByState(ctx context.Context) (map[stateKey]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT state, enabled, count(*) FROM monitors GROUP BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("count monitors: %w", err)
	}
	defer rows.Close()
	counts := map[stateKey]int64{}
	for rows.Next() {
		var k stateKey
		var n int64
		if err := rows.Scan(&k.state, &k.enabled, &n); err != nil {
			return nil, fmt.Errorf("count monitors: %w", err)
		}
		counts[k] = n
	}
	return counts, rows.Err()
}
