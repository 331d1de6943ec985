package incidents

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/monitors"
	"github.com/beaconhq/beacon/internal/monitors/incidents/incidentsdb"
	"github.com/beaconhq/beacon/internal/notify"
	"github.com/beaconhq/beacon/internal/page"
	"github.com/beaconhq/beacon/internal/workflow"
)

// Rechecker checks owner's monitor now, for a confirmation; a monitor
// deleted since is apperr.NotFound.
type Rechecker func(ctx context.Context, owner, monitorID int64) (monitors.Result, error)

// Options build a Service.
type Options struct {
	// Pool serves the API; WorkPool runs the workflow steps (default Pool).
	Pool, WorkPool *pgxpool.Pool
	Workflows      *workflow.Engine
	// Confirmations re-checks, Spacing apart, confirm an outage.
	Confirmations int
	Spacing       time.Duration
	// Recheck runs a re-check; nil in a process that runs no jobs.
	Recheck Rechecker
	// Webhook delivers webhooks (its client under the network policy);
	// Email sends mail (nil: email channels fail, saying so).
	Webhook *notify.Webhook
	Email   *notify.Email
	Metrics *Metrics     // may be nil
	Log     *slog.Logger // may be nil
}

// Service owns incidents and notification channels: the confirmation that
// opens an incident, the operations of its owner, and the notifications.
type Service struct {
	pool, workPool *pgxpool.Pool
	eng            *workflow.Engine
	kinds          kinds
	confirmations  int
	spacing        time.Duration
	rechecker      Rechecker
	webhook        *notify.Webhook
	email          *notify.Email
	metrics        *Metrics
	log            *slog.Logger
}

// New returns the service and defines its step kinds on the engine.
func New(o Options) (*Service, error) {
	if o.Workflows == nil {
		return nil, fmt.Errorf("incidents: no workflow engine")
	}
	if o.Confirmations < 1 || o.Confirmations > 10 {
		return nil, fmt.Errorf("incidents: %d confirmations, want 1 to 10", o.Confirmations)
	}
	if o.WorkPool == nil {
		o.WorkPool = o.Pool
	}
	if o.Webhook == nil {
		o.Webhook = &notify.Webhook{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Service{pool: o.Pool, workPool: o.WorkPool, eng: o.Workflows, confirmations: o.Confirmations,
		spacing: o.Spacing, rechecker: o.Recheck, webhook: o.Webhook, email: o.Email, metrics: o.Metrics, log: o.Log}
	s.define(o.Workflows.Registry())
	return s, nil
}

// ---- Reacting to checks.

// OnStateChange is the monitors' StateHook: in the transaction that stores
// the checks, a monitor gone down starts its confirmation (unless an
// incident is already open), and one back up resolves its incident.
func (s *Service) OnStateChange(ctx context.Context, tx pgx.Tx, changes []monitors.StateChange) error {
	for _, c := range changes {
		if c.OwnerID == 0 {
			continue // nobody to tell yet
		}
		// The workflow continues the trace of the check that saw the flip.
		cctx := ctx
		if c.Trace.IsValid() {
			cctx = trace.ContextWithSpanContext(ctx, c.Trace)
		}
		var err error
		switch c.To {
		case monitors.StateDown:
			err = s.confirm(cctx, tx, c)
		case monitors.StateUp:
			err = s.recover(cctx, tx, c)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) confirm(ctx context.Context, tx pgx.Tx, c monitors.StateChange) error {
	open, err := activeIncident(ctx, tx, c.MonitorID)
	if err != nil || open != 0 {
		return err
	}
	checks := make([]workflow.Call, s.confirmations)
	for i := range checks {
		checks[i] = s.kinds.recheck.Call(fmt.Sprintf("re-check %d", i+1),
			RecheckArgs{MonitorID: c.MonitorID, OwnerID: c.OwnerID}).After(time.Duration(i+1) * s.spacing)
	}
	g := workflow.Chord(checks, s.kinds.decide.Call("decide", DecideArgs{MonitorID: c.MonitorID, OwnerID: c.OwnerID,
		DetectedAt: c.Result.CheckedAt, Cause: truncate(causeOf(c.Result), MaxCause)}))
	decision := workflow.Ref(g.Len() - 1)
	if err := s.addNotifications(ctx, tx, g, c.OwnerID, 0, NotifyOpened, decision); err != nil {
		return err
	}
	g.SetResult(false, decision)
	_, err = s.eng.Start(database.WithTx(ctx, tx), workflow.Start{Kind: KindConfirm, OwnerID: c.OwnerID,
		Policy: workflow.Continue, Timeout: confirmTimeout, Graph: g})
	if err != nil {
		return fmt.Errorf("start the confirmation of monitor %d: %w", c.MonitorID, err)
	}
	return nil
}

// addNotifications adds to g a step per channel of owner, after deps.
func (s *Service) addNotifications(ctx context.Context, tx pgx.Tx, g *workflow.Graph, owner, incident int64, event string, deps ...workflow.Ref) error {
	chans, err := ownerChannels(ctx, tx, owner, 0, MaxChannelsPerUser)
	if err != nil {
		return err
	}
	for _, ch := range chans {
		g.Add(s.kinds.notify.Call(fmt.Sprintf("notify %s #%d", ch.Kind, ch.ID),
			NotifyArgs{IncidentID: incident, ChannelID: ch.ID, Event: event}), deps...)
	}
	return nil
}

func (s *Service) recover(ctx context.Context, tx pgx.Tx, c monitors.StateChange) error {
	id, err := incidentsdb.New(tx).ResolveRecovered(ctx, c.MonitorID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("resolve the incident of monitor %d: %w", c.MonitorID, err)
	}
	return s.resolved(ctx, tx, c.OwnerID, id, "recovered: a check succeeded")
}

// resolved finishes resolving incident id in tx: its timeline, its
// owner's dashboards, and the notifications, in the incident's trace.
func (s *Service) resolved(ctx context.Context, tx pgx.Tx, owner, id int64, detail string) error {
	if err := addEvent(ctx, tx, id, EventResolved, detail); err != nil {
		return err
	}
	if err := publish(ctx, tx, owner, id); err != nil {
		return err
	}
	traceparent, err := incidentsdb.New(tx).IncidentTraceparent(ctx, id)
	if err != nil {
		return err
	}
	if traceparent != nil {
		sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(),
			propagation.MapCarrier{"traceparent": *traceparent}))
		if sc.IsValid() {
			ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
	}
	g := &workflow.Graph{}
	if err := s.addNotifications(ctx, tx, g, owner, id, NotifyResolved); err != nil {
		return err
	}
	if g.Len() == 0 {
		return nil
	}
	_, err = s.eng.Start(database.WithTx(ctx, tx), workflow.Start{Kind: KindNotify, OwnerID: owner,
		Policy: workflow.Continue, Timeout: confirmTimeout, Graph: g})
	return err
}

// ---- The owner's operations.

// Query filters a list of incidents.
type Query struct {
	// State is open, acknowledged, resolved, or active (open or
	// acknowledged); empty: all.
	State     string
	MonitorID int64
	page.Request
}

// IncidentPage is a page of incidents, newest first.
type IncidentPage struct {
	Items      []Incident `json:"items"`
	NextCursor string     `json:"next_cursor,omitempty" doc:"Pass as cursor to get the next page; absent on the last page"`
}

// List returns a page of owner's incidents.
func (s *Service) List(ctx context.Context, owner int64, q Query) (IncidentPage, error) {
	if err := q.Validate(MaxPageSize); err != nil {
		return IncidentPage{}, err
	}
	var states []string
	switch q.State {
	case "":
		states = []string{}
	case "active":
		states = []string{string(StateOpen), string(StateAcknowledged)}
	case string(StateOpen), string(StateAcknowledged), string(StateResolved):
		states = []string{q.State}
	default:
		return IncidentPage{}, apperr.InvalidField("state", "must be open, acknowledged, resolved or active")
	}
	var before int64
	if q.Cursor != "" {
		if err := page.Decode(q.Cursor, &before); err != nil {
			return IncidentPage{}, err
		}
	}
	items, err := listIncidents(ctx, database.Q(ctx, s.pool), owner, states, q.MonitorID, before, q.Limit+1)
	if err != nil {
		return IncidentPage{}, err
	}
	var p IncidentPage
	p.Items, p.NextCursor = page.Cut(items, q.Limit, func(in Incident) string { return page.Encode(in.ID) })
	return p, nil
}

// Get returns owner's incident id with its timeline.
func (s *Service) Get(ctx context.Context, owner, id int64) (Detail, error) {
	var d Detail
	err := database.InTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		if d.Incident, err = getIncident(ctx, tx, owner, id); err != nil {
			return err
		}
		d.Timeline, err = timeline(ctx, tx, id)
		return err
	})
	return d, err
}

// ErrResolved means the incident is resolved already.
var ErrResolved = apperr.Errorf(apperr.Conflict, "the incident is already resolved")

// Acknowledge marks owner's open incident as acknowledged by user: someone
// is on it. An incident already acknowledged stays as it is.
func (s *Service) Acknowledge(ctx context.Context, owner, user, id int64) (Incident, error) {
	var in Incident
	err := database.InTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		cur, err := lockIncident(ctx, tx, owner, id)
		if err != nil {
			return err
		}
		switch cur {
		case StateResolved:
			return ErrResolved
		case StateOpen:
			err := incidentsdb.New(tx).AcknowledgeIncident(ctx, incidentsdb.AcknowledgeIncidentParams{ID: id, UserID: user})
			if err != nil {
				return err
			}
			if err := addEvent(ctx, tx, id, EventAcknowledged, "acknowledged"); err != nil {
				return err
			}
			if err := publish(ctx, tx, owner, id); err != nil {
				return err
			}
		}
		in, err = getIncident(ctx, tx, owner, id)
		return err
	})
	return in, err
}

// Resolve resolves owner's incident by hand and notifies its channels.
func (s *Service) Resolve(ctx context.Context, owner, user, id int64) (Incident, error) {
	var in Incident
	err := database.InTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		cur, err := lockIncident(ctx, tx, owner, id)
		if err != nil {
			return err
		}
		if cur == StateResolved {
			return ErrResolved
		}
		if err := incidentsdb.New(tx).ResolveIncident(ctx, incidentsdb.ResolveIncidentParams{ID: id, UserID: user}); err != nil {
			return err
		}
		if err := s.resolved(ctx, tx, owner, id, "resolved by hand"); err != nil {
			return err
		}
		in, err = getIncident(ctx, tx, owner, id)
		return err
	})
	return in, err
}

func lockIncident(ctx context.Context, tx pgx.Tx, owner, id int64) (State, error) {
	st, err := incidentsdb.New(tx).LockIncident(ctx, incidentsdb.LockIncidentParams{ID: id, OwnerID: owner})
	if errors.Is(err, pgx.ErrNoRows) {
		return "", errNoIncident
	}
	return State(st), err
}

// PublicIncidents are the incidents of the monitor published as slug, for
// its status page.
func (s *Service) PublicIncidents(ctx context.Context, slug string) ([]PublicIncident, error) {
	return publicIncidents(ctx, database.Q(ctx, s.pool), slug)
}

// ---- Channels.

// ChannelSpec describes a channel to create.
type ChannelSpec struct {
	Kind    string
	Name    string
	URL     string // a webhook's
	Address string // an email channel's
}

// Validate checks a spec; the error names the field at fault.
func (c *ChannelSpec) Validate() error {
	c.Name = strings.TrimSpace(c.Name)
	if n := len([]rune(c.Name)); n < 1 || n > MaxChannelName {
		return apperr.InvalidField("name", "must have 1 to %d characters", MaxChannelName)
	}
	switch c.Kind {
	case ChannelWebhook:
		if c.Address != "" {
			return apperr.InvalidField("address", "is for email channels; a webhook has a url")
		}
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(c.URL) > MaxChannelTarget {
			return apperr.InvalidField("url", "must be an http(s) URL of at most %d characters", MaxChannelTarget)
		}
		if u.User != nil {
			return apperr.InvalidField("url", "must not carry credentials: the request is signed (Beacon-Signature)")
		}
	case ChannelEmail:
		if c.URL != "" {
			return apperr.InvalidField("url", "is for webhooks; an email channel has an address")
		}
		if err := notify.ValidAddress(c.Address); err != nil || len(c.Address) > 254 {
			return apperr.InvalidField("address", "must be one email address like ops@example.com")
		}
	default:
		return apperr.InvalidField("kind", "must be webhook or email")
	}
	return nil
}

// CreateChannel stores a channel of owner; a webhook gets a new signing
// secret, returned this once.
func (s *Service) CreateChannel(ctx context.Context, owner int64, spec ChannelSpec) (NewChannel, error) {
	if err := spec.Validate(); err != nil {
		return NewChannel{}, err
	}
	target, secret := spec.Address, ""
	if spec.Kind == ChannelWebhook {
		target = spec.URL
		var err error
		if secret, err = notify.NewSecret(); err != nil {
			return NewChannel{}, err
		}
	}
	var out NewChannel
	err := database.InTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		db := incidentsdb.New(tx)
		// Under the owner's lock, so that concurrent creations respect the limit.
		if err := db.LockOwnerChannels(ctx, owner); err != nil {
			return err
		}
		n, err := db.CountChannels(ctx, owner)
		if err != nil {
			return err
		}
		if n >= MaxChannelsPerUser {
			return apperr.Errorf(apperr.Conflict, "you have %d channels, the most allowed: delete one first", n)
		}
		r, err := db.InsertChannel(ctx, incidentsdb.InsertChannelParams{OwnerID: owner, Kind: spec.Kind, Name: spec.Name,
			Target: target, Secret: secret})
		if err != nil {
			return fmt.Errorf("create channel: %w", err)
		}
		out = NewChannel{Channel: channelOf(incidentsdb.GetChannelRow(r)).Channel, Secret: secret}
		return nil
	})
	return out, err
}

// ChannelPage is a page of channels, by id.
type ChannelPage struct {
	Items      []Channel `json:"items"`
	NextCursor string    `json:"next_cursor,omitempty" doc:"Pass as cursor to get the next page; absent on the last page"`
}

// Channels returns a page of owner's channels.
func (s *Service) Channels(ctx context.Context, owner int64, req page.Request) (ChannelPage, error) {
	if err := req.Validate(MaxPageSize); err != nil {
		return ChannelPage{}, err
	}
	var after int64
	if req.Cursor != "" {
		if err := page.Decode(req.Cursor, &after); err != nil {
			return ChannelPage{}, err
		}
	}
	chans, err := ownerChannels(ctx, database.Q(ctx, s.pool), owner, after, req.Limit+1)
	if err != nil {
		return ChannelPage{}, err
	}
	items := make([]Channel, len(chans))
	for i, c := range chans {
		items[i] = c.Channel
	}
	var p ChannelPage
	p.Items, p.NextCursor = page.Cut(items, req.Limit, func(c Channel) string { return page.Encode(c.ID) })
	return p, nil
}

// DeleteChannel deletes owner's channel; notifications not yet sent to it
// are skipped.
func (s *Service) DeleteChannel(ctx context.Context, owner, id int64) error {
	n, err := incidentsdb.New(database.Q(ctx, s.pool)).DeleteChannel(ctx, incidentsdb.DeleteChannelParams{ID: id, OwnerID: owner})
	if err != nil {
		return fmt.Errorf("delete channel %d: %w", id, err)
	}
	if n == 0 {
		return errNoChannel
	}
	return nil
}

// TestChannel sends a test notification to owner's channel now. A failure
// is apperr.Unavailable with the reason (the destination's answer, never
// the secret).
func (s *Service) TestChannel(ctx context.Context, owner, id int64) error {
	ch, err := getChannel(ctx, database.Q(ctx, s.pool), owner, id)
	if err != nil {
		return err
	}
	msg := message("test", Incident{MonitorName: "Beacon test"}, "")
	msg.ID = fmt.Sprintf("test-channel-%d-%d", ch.ID, time.Now().UnixNano())
	sendCtx, cancel := context.WithTimeout(ctx, notifyTimeout)
	defer cancel()
	if err := s.send(sendCtx, ch, msg); err != nil {
		return apperr.Errorf(apperr.Unavailable, "the test notification failed: %v", err)
	}
	s.metrics.sent(ctx, ch.Kind, "delivered")
	return nil
}
