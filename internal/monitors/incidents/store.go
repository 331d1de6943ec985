package incidents

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/monitors/incidents/incidentsdb"
	"github.com/beaconhq/beacon/internal/realtime"
)

// The package's SQL is in queries.sql, typed by sqlc into incidentsdb; the
// functions here map its rows to the package's types. Every statement is
// scoped by owner where a user acts; the workflow steps act for the owner
// their workflow was started for.

// incidentOf is the Incident of a row of GetIncident (ListIncidents' rows
// convert to it).
func incidentOf(r incidentsdb.GetIncidentRow) Incident {
	return Incident{ID: r.ID, MonitorID: r.MonitorID, MonitorName: r.MonitorName, State: State(r.State), Cause: r.Cause,
		DetectedAt: r.DetectedAt, OpenedAt: r.OpenedAt, AcknowledgedAt: r.AcknowledgedAt, ResolvedAt: r.ResolvedAt,
		Resolution: r.Resolution, WorkflowID: r.WorkflowID}
}

var errNoIncident = apperr.Errorf(apperr.NotFound, "no such incident")

// getIncident reads incident id of owner (of anyone when owner is 0).
func getIncident(ctx context.Context, q database.Querier, owner, id int64) (Incident, error) {
	r, err := incidentsdb.New(q).GetIncident(ctx, incidentsdb.GetIncidentParams{ID: id, OwnerID: owner})
	if errors.Is(err, pgx.ErrNoRows) {
		return Incident{}, errNoIncident
	}
	if err != nil {
		return Incident{}, fmt.Errorf("read incident %d: %w", id, err)
	}
	return incidentOf(r), nil
}

// addEvent appends to an incident's timeline.
func addEvent(ctx context.Context, q database.Querier, incident int64, kind, detail string) error {
	if len(detail) > 1000 {
		detail = detail[:997] + "..."
	}
	err := incidentsdb.New(q).AddEvent(ctx, incidentsdb.AddEventParams{IncidentID: incident, Kind: kind, Detail: detail})
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
	rows, err := incidentsdb.New(q).Timeline(ctx, incidentsdb.TimelineParams{IncidentID: id, Max: MaxTimeline})
	if err != nil {
		return nil, fmt.Errorf("read timeline of incident %d: %w", id, err)
	}
	events := make([]Event, len(rows))
	for i, r := range rows {
		events[i] = Event(r)
	}
	return events, nil
}

// listIncidents reads a page of owner's incidents, newest first, after the
// incident id before (0: from the newest).
func listIncidents(ctx context.Context, q database.Querier, owner int64, states []string, monitor, before int64, limit int) ([]Incident, error) {
	rows, err := incidentsdb.New(q).ListIncidents(ctx, incidentsdb.ListIncidentsParams{OwnerID: owner, States: states,
		MonitorID: monitor, Before: before, Max: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	out := make([]Incident, len(rows))
	for i, r := range rows {
		out[i] = incidentOf(incidentsdb.GetIncidentRow(r))
	}
	return out, nil
}

// publicIncidents are the incidents a status page shows: those not
// resolved and those resolved within PublicWindow, newest first.
func publicIncidents(ctx context.Context, q database.Querier, slug string) ([]PublicIncident, error) {
	rows, err := incidentsdb.New(q).PublicIncidents(ctx, incidentsdb.PublicIncidentsParams{Slug: slug,
		WindowSeconds: PublicWindow.Seconds()})
	if err != nil {
		return nil, fmt.Errorf("public incidents: %w", err)
	}
	out := make([]PublicIncident, len(rows))
	for i, r := range rows {
		out[i] = PublicIncident{ID: r.ID, State: State(r.State), OpenedAt: r.OpenedAt, ResolvedAt: r.ResolvedAt}
	}
	return out, nil
}

// channel is a channel with its secret, as the notifier needs it.
type channel struct {
	Channel
	owner  int64
	secret string
}

// channelOf is the channel of a row of GetChannel (OwnerChannels' and
// InsertChannel's rows convert to it).
func channelOf(r incidentsdb.GetChannelRow) channel {
	c := channel{Channel: Channel{ID: r.ID, Kind: r.Kind, Name: r.Name, CreatedAt: r.CreatedAt}, owner: r.OwnerID,
		secret: r.Secret}
	if c.Kind == ChannelWebhook {
		c.URL = r.Target
	} else {
		c.Address = r.Target
	}
	return c
}

var errNoChannel = apperr.Errorf(apperr.NotFound, "no such channel")

func getChannel(ctx context.Context, q database.Querier, owner, id int64) (channel, error) {
	r, err := incidentsdb.New(q).GetChannel(ctx, incidentsdb.GetChannelParams{ID: id, OwnerID: owner})
	if errors.Is(err, pgx.ErrNoRows) {
		return channel{}, errNoChannel
	}
	if err != nil {
		return channel{}, fmt.Errorf("read channel %d: %w", id, err)
	}
	return channelOf(r), nil
}

// ownerChannels lists owner's channels by id, after the channel id after.
func ownerChannels(ctx context.Context, q database.Querier, owner, after int64, limit int) ([]channel, error) {
	rows, err := incidentsdb.New(q).OwnerChannels(ctx, incidentsdb.OwnerChannelsParams{OwnerID: owner, After: after,
		Max: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	out := make([]channel, len(rows))
	for i, r := range rows {
		out[i] = channelOf(incidentsdb.GetChannelRow(r))
	}
	return out, nil
}

// activeIncident returns the id of monitor's incident not resolved, or 0.
func activeIncident(ctx context.Context, q database.Querier, monitor int64) (int64, error) {
	r, err := incidentsdb.New(q).ActiveIncident(ctx, monitor)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("active incident of monitor %d: %w", monitor, err)
	}
	return r.ID, nil
}
