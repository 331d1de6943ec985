package workflow

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

const meterName = "github.com/beaconhq/beacon/internal/workflow"

// Metrics records workflows started and ended. Attributes are bounded: the
// workflow kind (defined in code) and the outcome, never an id.
type Metrics struct {
	startedN  metric.Int64Counter
	finishedN metric.Int64Counter
	duration  metric.Float64Histogram
}

// NewMetrics creates the workflow instruments on mp.
func NewMetrics(mp metric.MeterProvider) (*Metrics, error) {
	meter := mp.Meter(meterName)
	started, err := meter.Int64Counter("beacon.workflows.started",
		metric.WithDescription("Workflows started, by kind."), metric.WithUnit("{workflow}"))
	if err != nil {
		return nil, fmt.Errorf("workflows started counter: %w", err)
	}
	finished, err := meter.Int64Counter("beacon.workflows.finished",
		metric.WithDescription("Workflows ended, by kind and outcome (succeeded, failed, cancelled, timed_out)."),
		metric.WithUnit("{workflow}"))
	if err != nil {
		return nil, fmt.Errorf("workflows finished counter: %w", err)
	}
	duration, err := meter.Float64Histogram("beacon.workflow.duration",
		metric.WithDescription("Time from a workflow's start to its end, by kind and outcome."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600))
	if err != nil {
		return nil, fmt.Errorf("workflow duration histogram: %w", err)
	}
	return &Metrics{startedN: started, finishedN: finished, duration: duration}, nil
}

func (m *Metrics) started(ctx context.Context, kind string) {
	if m == nil {
		return
	}
	m.startedN.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", kind)))
}

// finished records the end of a workflow, once its transaction committed.
func (m *Metrics) finished(ctx context.Context, f *finished) {
	if m == nil || f == nil {
		return
	}
	attrs := metric.WithAttributeSet(attribute.NewSet(attribute.String("kind", f.kind), attribute.String("outcome", string(f.state))))
	m.finishedN.Add(ctx, 1, attrs)
	m.duration.Record(ctx, f.duration.Seconds(), attrs)
}

// ObserveGauges reports, read from the database at each collection, the
// steps of running workflows by state and the age of the oldest running
// workflow. Unregister the result before closing the engine's pool.
func (e *Engine) ObserveGauges(mp metric.MeterProvider) (metric.Registration, error) {
	meter := mp.Meter(meterName)
	steps, err := meter.Int64ObservableGauge("beacon.workflow.steps",
		metric.WithDescription("Steps of running workflows, by state."), metric.WithUnit("{step}"))
	if err != nil {
		return nil, fmt.Errorf("workflow steps gauge: %w", err)
	}
	running, err := meter.Int64ObservableGauge("beacon.workflows.running",
		metric.WithDescription("Workflows running."), metric.WithUnit("{workflow}"))
	if err != nil {
		return nil, fmt.Errorf("workflows running gauge: %w", err)
	}
	oldest, err := meter.Float64ObservableGauge("beacon.workflows.oldest_running_age",
		metric.WithDescription("Age of the oldest running workflow (0 when none runs)."), metric.WithUnit("s"))
	if err != nil {
		return nil, fmt.Errorf("oldest workflow gauge: %w", err)
	}
	engine := attribute.String("engine", e.name)
	return meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		counts, n, age, err := e.census(ctx)
		if err != nil {
			otel.Handle(err) // returning it would drop every metric of the collection
			return nil
		}
		for _, s := range StepStates {
			o.ObserveInt64(steps, counts[s], metric.WithAttributes(engine, attribute.String("state", string(s))))
		}
		o.ObserveInt64(running, n, metric.WithAttributes(engine))
		o.ObserveFloat64(oldest, age, metric.WithAttributes(engine))
		return nil
	}, steps, running, oldest)
}

// census counts the steps of running workflows by state, the running
// workflows and the age of the oldest, in seconds.
func (e *Engine) census(ctx context.Context) (map[StepState]int64, int64, float64, error) {
	var (
		states []string
		counts []int64
		n      int64
		age    float64
	)
	err := e.workPool.QueryRow(ctx, `
		WITH running AS (SELECT id, created_at FROM workflows WHERE engine = $1 AND state = 'running'),
		by_state AS (
			SELECT s.state, count(*) AS n FROM workflow_steps s JOIN running r ON r.id = s.workflow_id GROUP BY s.state)
		SELECT coalesce((SELECT array_agg(state) FROM by_state), '{}'),
			coalesce((SELECT array_agg(n) FROM by_state), '{}'),
			(SELECT count(*) FROM running),
			coalesce((SELECT extract(epoch FROM now() - min(created_at))::float8 FROM running), 0)`,
		e.name).Scan(&states, &counts, &n, &age)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("workflow census: %w", err)
	}
	m := make(map[StepState]int64, len(states))
	for i, s := range states {
		m[StepState(s)] = counts[i]
	}
	return m, n, age, nil
}
