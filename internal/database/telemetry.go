package database

import (
	"fmt"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Traced returns an Open option that records a span per query (SQL text
// with placeholders, never parameter values) and query metrics.
func Traced(tp trace.TracerProvider, mp metric.MeterProvider) func(*pgxpool.Config) {
	return func(cfg *pgxpool.Config) {
		cfg.ConnConfig.Tracer = otelpgx.NewTracer(
			otelpgx.WithTracerProvider(tp),
			otelpgx.WithMeterProvider(mp),
		)
	}
}

// RecordPoolStats reports the pool's connection statistics as metrics.
func RecordPoolStats(pool *pgxpool.Pool, mp metric.MeterProvider) error {
	if err := otelpgx.RecordStats(pool, otelpgx.WithStatsMeterProvider(mp)); err != nil {
		return fmt.Errorf("pool metrics: %w", err)
	}
	return nil
}
