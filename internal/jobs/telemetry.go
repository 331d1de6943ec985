package jobs

import (
	"context"
	"encoding/json"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/riverqueue/rivercontrib/otelriver"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// ContinueTrace is job metadata asking the worker to make the job's work
// span a child of the span that inserted it, not just a link to it: for
// work a caller waits for (a check run from the API), one trace then shows
// the request, the job and what the job did. Other jobs start traces of
// their own, linked to their producer, as otelriver does by default.
var ContinueTrace = []byte(`{"beacon_trace":"continue"}`)

// Middleware returns River's telemetry: otelriver (insert and work spans,
// trace context carried in job metadata, semantic metrics), preceded by the
// trace continuation ContinueTrace asks for.
func Middleware(tp trace.TracerProvider, mp metric.MeterProvider) []rivertype.Plugin {
	return []rivertype.Plugin{
		&continueTrace{},
		otelriver.NewMiddleware(&otelriver.MiddlewareConfig{
			DurationUnit:                "s",
			EnableSemanticMetrics:       true,
			EnableTracePropagation:      true,
			EnableWorkSpanJobKindSuffix: true,
			TracerProvider:              tp,
			MeterProvider:               mp,
		}),
	}
}

type continueTrace struct{ river.WorkerMiddlewareDefaults }

func (*continueTrace) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	var meta map[string]any
	if json.Unmarshal(job.Metadata, &meta) == nil && meta["beacon_trace"] == "continue" {
		carrier := propagation.MapCarrier{}
		if tp, ok := meta["traceparent"].(string); ok {
			carrier["traceparent"] = tp
		}
		if sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier)); sc.IsValid() {
			ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
	}
	return doInner(ctx)
}
