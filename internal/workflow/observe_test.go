package workflow_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/beaconhq/beacon/internal/jobs"
	"github.com/beaconhq/beacon/internal/realtime"
	"github.com/beaconhq/beacon/internal/workflow"
)

// Progress is published to the owner on realtime.Channel, at the commit of
// each step and of the workflow's end.
func TestEventsOnProgress(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	conn, err := env.pool.Acquire(context.Background())
	require.NoError(t, err)
	defer func() { _ = conn.Conn().Close(context.Background()); conn.Release() }()
	_, err = conn.Exec(context.Background(), "LISTEN "+realtime.Channel)
	require.NoError(t, err)

	work(t, env.pool, env.eng, workOpts{})
	id := env.start(t, workflow.Start{Graph: workflow.Chain(env.k.add.Call("one", NumArgs{N: 1}), env.k.add.Call("two", NumArgs{N: 2}))})
	var events []map[string]any
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(events) == 0 || events[len(events)-1]["type"] != workflow.EventFinished {
		n, err := conn.Conn().WaitForNotification(ctx)
		require.NoError(t, err, "events so far: %v", events)
		var ev map[string]any
		require.NoError(t, json.Unmarshal([]byte(n.Payload), &ev))
		events = append(events, ev)
	}
	want := []map[string]any{
		{"type": "workflow_step", "owner_id": float64(env.owner), "workflow_id": float64(id), "step": 0.0, "name": "one", "state": "succeeded"},
		{"type": "workflow_step", "owner_id": float64(env.owner), "workflow_id": float64(id), "step": 1.0, "name": "two", "state": "succeeded"},
		{"type": "workflow_finished", "owner_id": float64(env.owner), "workflow_id": float64(id), "kind": "test", "state": "succeeded"},
	}
	require.Equal(t, want, events)

	// A larger workflow publishes its end, not each step.
	calls := make([]workflow.Call, workflow.MaxStepEvents+1)
	for i := range calls {
		calls[i] = env.k.square.Call(fmt.Sprintf("square %d", i), NumArgs{N: i})
	}
	big := env.start(t, workflow.Start{Graph: workflow.Group(calls...)})
	events = events[:0]
	for len(events) == 0 || events[len(events)-1]["type"] != workflow.EventFinished {
		n, err := conn.Conn().WaitForNotification(ctx)
		require.NoError(t, err, "events so far: %v", events)
		var ev map[string]any
		require.NoError(t, json.Unmarshal([]byte(n.Payload), &ev))
		events = append(events, ev)
	}
	require.Len(t, events, 1, "%v", events)
	require.Equal(t, float64(big), events[0]["workflow_id"])
}

// Every step of a workflow is a span of the trace that started it; the
// workflows started and ended, their duration and the gauges are reported.
func TestTraceAndMetrics(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	metrics, err := workflow.NewMetrics(mp)
	require.NoError(t, err)
	reg := workflow.NewRegistry()
	k := defineKinds(reg, env.c, nil)
	client, err := jobs.NewClient(env.pool, jobs.Options{})
	require.NoError(t, err)
	eng, err := workflow.New(workflow.Options{Registry: reg, Pool: env.pool, Jobs: client, Metrics: metrics})
	require.NoError(t, err)
	gauges, err := eng.ObserveGauges(mp)
	require.NoError(t, err)
	defer func() { _ = gauges.Unregister() }()
	work(t, env.pool, eng, workOpts{plugins: jobs.Middleware(tp, mp)})

	ctx, root := tp.Tracer("test").Start(context.Background(), "start workflow")
	header := []workflow.Call{k.square.Call("a", NumArgs{N: 1}), k.square.Call("b", NumArgs{N: 2})}
	id, err := eng.Start(ctx, workflow.Start{Kind: "traced", OwnerID: env.owner, Graph: workflow.Chord(header, k.collect.Call("c", struct{}{}))})
	require.NoError(t, err)
	root.End()
	state, err := workflow.NewWaiter(eng).Wait(context.Background(), id, 30*time.Second)
	require.NoError(t, err)
	require.Equal(t, workflow.StateSucceeded, state)

	traceID := root.SpanContext().TraceID()
	eventually(t, 10*time.Second, func() (bool, string) {
		var work []string
		for _, s := range spans.Ended() {
			if s.SpanKind().String() == "consumer" && s.SpanContext().TraceID() == traceID {
				work = append(work, s.Name())
			}
		}
		return len(work) == 3, fmt.Sprintf("work spans in the workflow's trace: %v", work)
	})

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	sums := map[string]int64{}
	var durations uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					kind, _ := p.Attributes.Value("kind")
					outcome, _ := p.Attributes.Value("outcome")
					sums[m.Name+"/"+kind.AsString()+"/"+outcome.AsString()] += p.Value
				}
			case metricdata.Histogram[float64]:
				if m.Name == "beacon.workflow.duration" {
					for _, p := range d.DataPoints {
						durations += p.Count
					}
				}
			case metricdata.Gauge[int64]:
				if m.Name == "beacon.workflows.running" {
					require.EqualValues(t, 0, d.DataPoints[0].Value)
				}
			}
		}
	}
	require.EqualValues(t, 1, sums["beacon.workflows.started/traced/"])
	require.EqualValues(t, 1, sums["beacon.workflows.finished/traced/succeeded"])
	require.EqualValues(t, 1, durations)
}
