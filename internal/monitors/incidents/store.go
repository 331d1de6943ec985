package incidents

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/realtime"
)

// The package's SQL. Every statement is scoped by owner where a user acts;
// the workflow steps act for the owner their workflow was started for.

const incidentColumns = `i.id, i.monitor_id, m.name, i.state, i.cause, i.detected_at, i.opened_at,
	i.acknowledged_at, i.resolved_at, coalesce(i.resolution, ''), i.workflow_id`

const incidentFrom = ` FROM incidents i JOIN monitors m ON m.id = i.monitor_id `

func scanIncident(row pgx.Row, extra ...any) (Incident, error) {
	var in Incident
	err := row.Scan(append([]any{&in.ID, &in.MonitorID, &in.MonitorName, &in.State, &in.Cause, &in.DetectedAt,
		&in.OpenedAt, &in.AcknowledgedAt, &in.ResolvedAt, &in.Resolution, &in.WorkflowID}, extra...)...)
	return in, err
}

var errNoIncident = apperr.Errorf(apperr.NotFound, "no such incident")

// getIncident reads incident id of owner (of anyone when owner is 0).
func getIncident(ctx context.Context, q database.Querier, owner, id int64) (Incident, error) {
	in, err := scanIncident(q.QueryRow(ctx, `SELECT `+incidentColumns+incidentFrom+`
		WHERE i.id = $1 AND ($2 = 0 OR i.owner_id = $2)`, id, owner))
	if errors.Is(err, pgx.ErrNoRows) {
		return Incident{}, errNoIncident
	}
	if err != nil {
		return Incident{}, fmt.Errorf("read incident %d: %w", id, err)
	}
	return in, nil
}

// addEvent appends to an incident's timeline.
func addEvent(ctx context.Context, q database.Querier, incident int64, kind, detail string) error {
	if len(detail) > 1000 {
		detail = detail[:997] + "..."
	}
	_, err := q.Exec(ctx, `INSERT INTO incident_events (incident_id, kind, detail) VALUES ($1, $2, $3)`,
		incident, kind, detail)
	if err != nil {
		return fmt.Errorf("add %s to incident %d: %w", kind, incident, err)
	}
	return nil
}

// EventIncident is the realtime event type announcing an incident's change
// to its owner: {"type":"incident","incident":{...}}.
const EventIncident = "incident"

// publish announces incident id's current state to its owner, at commit.
func publish(ctx context.Context, tx pgx.Tx, owner, id int64) error {
	in, err := getIncident(ctx, tx, owner, id)
	if err != nil {
		return err
	}
	return realtime.Publish(ctx, tx, realtime.Event{Type: EventIncident, OwnerID: owner,
		Data: map[string]any{"incident": in}})
}

func timeline(ctx context.Context, q database.Querier, id int64) ([]Event, error) {
	rows, err := q.Query(ctx, `SELECT at, kind, detail FROM incident_events WHERE incident_id = $1 ORDER BY id LIMIT $2`,
		id, MaxTimeline)
	if err != nil {
		return nil, fmt.Errorf("read timeline of incident %d: %w", id, err)
	}
	events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) {
		var e Event
		return e, r.Scan(&e.At, &e.Kind, &e.Detail)
	})
	if err != nil {
		return nil, fmt.Errorf("read timeline of incident %d: %w", id, err)
	}
	return events, nil
}

// listIncidents reads a page of owner's incidents, newest first, after the
// incident id before (0: from the newest).
func listIncidents(ctx context.Context, q database.Querier, owner int64, states []string, monitor, before int64, limit int) ([]Incident, error) {
	rows, err := q.Query(ctx, `SELECT `+incidentColumns+incidentFrom+`
		WHERE i.owner_id = $1 AND (cardinality($2::text[]) = 0 OR i.state = ANY($2))
			AND ($3 = 0 OR i.monitor_id = $3) AND ($4 = 0 OR i.id < $4)
		ORDER BY i.id DESC LIMIT $5`, owner, states, monitor, before, limit)
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Incident, error) { return scanIncident(r) })
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	return out, nil
}

// publicIncidents are the incidents a status page shows: those not
// resolved and those resolved within PublicWindow, newest first.
func publicIncidents(ctx context.Context, q database.Querier, slug string) ([]PublicIncident, error) {
	rows, err := q.Query(ctx, `
		SELECT i.id, i.state, i.opened_at, i.resolved_at
		FROM incidents i JOIN monitors m ON m.id = i.monitor_id
		WHERE m.public_slug = $1 AND (i.state <> 'resolved' OR i.resolved_at > now() - make_interval(secs => $2))
		ORDER BY i.id DESC LIMIT 20`, slug, PublicWindow.Seconds())
	if err != nil {
		return nil, fmt.Errorf("public incidents: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PublicIncident, error) {
		var p PublicIncident
		return p, r.Scan(&p.ID, &p.State, &p.OpenedAt, &p.ResolvedAt)
	})
	if err != nil {
		return nil, fmt.Errorf("public incidents: %w", err)
	}
	return out, nil
}

// channel is a channel with its secret, as the notifier needs it.
type channel struct {
	Channel
	owner  int64
	secret string
}

const channelColumns = `id, owner_id, kind, name, target, coalesce(secret, ''), created_at`

func scanChannel(row pgx.Row) (channel, error) {
	var (
		c      channel
		target string
	)
	if err := row.Scan(&c.ID, &c.owner, &c.Kind, &c.Name, &target, &c.secret, &c.CreatedAt); err != nil {
		return channel{}, err
	}
	if c.Kind == ChannelWebhook {
		c.URL = target
	} else {
		c.Address = target
	}
	return c, nil
}

var errNoChannel = apperr.Errorf(apperr.NotFound, "no such channel")

func getChannel(ctx context.Context, q database.Querier, owner, id int64) (channel, error) {
	c, err := scanChannel(q.QueryRow(ctx, `SELECT `+channelColumns+` FROM notification_channels
		WHERE id = $1 AND ($2 = 0 OR owner_id = $2)`, id, owner))
	if errors.Is(err, pgx.ErrNoRows) {
		return channel{}, errNoChannel
	}
	if err != nil {
		return channel{}, fmt.Errorf("read channel %d: %w", id, err)
	}
	return c, nil
}

// ownerChannels lists owner's channels by id, after the channel id after.
func ownerChannels(ctx context.Context, q database.Querier, owner, after int64, limit int) ([]channel, error) {
	rows, err := q.Query(ctx, `SELECT `+channelColumns+` FROM notification_channels
		WHERE owner_id = $1 AND id > $2 ORDER BY id LIMIT $3`, owner, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (channel, error) { return scanChannel(r) })
	if err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	return out, nil
}

// activeIncident returns the id of monitor's incident not resolved, or 0.
func activeIncident(ctx context.Context, q database.Querier, monitor int64) (int64, error) {
	var id int64
	err := q.QueryRow(ctx, `SELECT id FROM incidents WHERE monitor_id = $1 AND state <> 'resolved'`, monitor).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("active incident of monitor %d: %w", monitor, err)
	}
	return id, nil
}
