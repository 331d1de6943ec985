package database

import (
	"fmt"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// Traced returns an Open option that records a span per query (SQL text
// with placeholders, never parameter values) and query metrics.
//
// Two otelpgx defaults are turned off for cost, measured in
// docs/performance.md: it deep-copies the pool and connection configuration
// on every span to read the server's address (18 allocations a query), so
// the connection attributes are set once here instead; and a span per pool
// acquisition doubles the spans of a request for little insight (the pool's
// wait shows in pgxpool_* metrics).
func Traced(tp trace.TracerProvider, mp metric.MeterProvider) func(*pgxpool.Config) {
	return func(cfg *pgxpool.Config) {
		cc := cfg.ConnConfig
		cfg.ConnConfig.Tracer = otelpgx.NewTracer(
			otelpgx.WithTracerProvider(tp),
			otelpgx.WithMeterProvider(mp),
			otelpgx.WithDisableConnectionDetailsInAttributes(),
			otelpgx.WithDisableAcquireTracer(),
			otelpgx.WithTracerAttributes(
				semconv.DBSystemNamePostgreSQL,
				semconv.ServerAddress(cc.Host),
				semconv.ServerPort(int(cc.Port)),
				semconv.DBNamespace(cc.Database),
			),
		)
	}
}

// RecordPoolStats reports the pool's connection statistics as metrics, with
// db.client.connection.pool.name set to name ("api", "worker"): one process
// may hold both pools, on the same server and database.
func RecordPoolStats(pool *pgxpool.Pool, name string, mp metric.MeterProvider) error {
	if err := otelpgx.RecordStats(pool, otelpgx.WithStatsMeterProvider(mp),
		otelpgx.WithStatsAttributes(semconv.DBClientConnectionPoolName(name))); err != nil {
		return fmt.Errorf("pool metrics: %w", err)
	}
	return nil
}
