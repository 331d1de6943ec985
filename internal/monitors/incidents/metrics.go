package incidents

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/beaconhq/beacon/internal/monitors/incidents/incidentsdb"
)

const meterName = "github.com/beaconhq/beacon/internal/monitors/incidents"

// Metrics count incidents, confirmations and notifications. Attributes are
// bounded: a channel kind and an outcome, never an id.
type Metrics struct {
	openedN        metric.Int64Counter
	confirmationsN metric.Int64Counter
	sentN          metric.Int64Counter
}

// NewMetrics creates the instruments on mp.
func NewMetrics(mp metric.MeterProvider) (*Metrics, error) {
	meter := mp.Meter(meterName)
	opened, err := meter.Int64Counter("beacon.incidents.opened",
		metric.WithDescription("Incidents opened (outages confirmed)."), metric.WithUnit("{incident}"))
	if err != nil {
		return nil, fmt.Errorf("incidents opened counter: %w", err)
	}
	confirmations, err := meter.Int64Counter("beacon.incident.confirmations",
		metric.WithDescription("Monitors gone down, by the confirmation's outcome (confirmed, dismissed)."),
		metric.WithUnit("{confirmation}"))
	if err != nil {
		return nil, fmt.Errorf("confirmations counter: %w", err)
	}
	sent, err := meter.Int64Counter("beacon.notifications.sent",
		metric.WithDescription("Notifications by channel kind (webhook, email) and outcome (delivered, failed: given up after every retry)."),
		metric.WithUnit("{notification}"))
	if err != nil {
		return nil, fmt.Errorf("notifications counter: %w", err)
	}
	// Every series exists from the start, at 0: a rate sees the first
	// event, and an alert on it can fire on the first failure.
	ctx := context.Background()
	opened.Add(ctx, 0)
	for _, outcome := range []string{"confirmed", "dismissed"} {
		confirmations.Add(ctx, 0, metric.WithAttributes(attribute.String("outcome", outcome)))
	}
	for _, kind := range []string{ChannelWebhook, ChannelEmail} {
		for _, outcome := range []string{"delivered", "failed"} {
			sent.Add(ctx, 0, metric.WithAttributes(attribute.String("channel", kind), attribute.String("outcome", outcome)))
		}
	}
	return &Metrics{openedN: opened, confirmationsN: confirmations, sentN: sent}, nil
}

func (m *Metrics) opened(ctx context.Context) {
	if m != nil {
		m.openedN.Add(ctx, 1)
	}
}

func (m *Metrics) confirmation(ctx context.Context, outcome string) {
	if m != nil {
		m.confirmationsN.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", outcome)))
	}
}

func (m *Metrics) sent(ctx context.Context, kind, outcome string) {
	if m != nil {
		m.sentN.Add(ctx, 1, metric.WithAttributes(attribute.String("channel", kind), attribute.String("outcome", outcome)))
	}
}

// ObserveOpen reports the incidents not resolved, all owners, read at each
// collection. Unregister it before closing pool.
func ObserveOpen(mp metric.MeterProvider, pool *pgxpool.Pool) (metric.Registration, error) {
	meter := mp.Meter(meterName)
	open, err := meter.Int64ObservableGauge("beacon.incidents.open",
		metric.WithDescription("Incidents not resolved (open or acknowledged)."), metric.WithUnit("{incident}"))
	if err != nil {
		return nil, fmt.Errorf("open incidents gauge: %w", err)
	}
	return meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		n, err := incidentsdb.New(pool).CountOpenIncidents(ctx)
		if err != nil {
			otel.Handle(fmt.Errorf("open incidents: %w", err))
			return nil
		}
		o.ObserveInt64(open, n)
		return nil
	}, open)
}
