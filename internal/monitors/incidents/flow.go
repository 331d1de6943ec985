package incidents

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/propagation"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/monitors"
	"github.com/beaconhq/beacon/internal/monitors/incidents/incidentsdb"
	"github.com/beaconhq/beacon/internal/notify"
	"github.com/beaconhq/beacon/internal/workflow"
)

// The incident workflows, on the platform's engine:
//
//	incident.confirm   re-check ×N (spaced) ─▶ decide ─▶ notify each channel
//	incident.notify    notify each channel (an incident resolved)
//
// The re-checks are a chord's header and decide its callback: it opens
// the incident when most re-checks failed and the monitor is still down.
// The notifications depend on the decision only, not on each other: a
// channel that keeps failing (River backs off for over half an hour) must
// not hold back the others.

// Workflow kinds.
const (
	KindConfirm = "incident.confirm"
	KindNotify  = "incident.notify"
)

// Notification events.
const (
	NotifyOpened   = "incident.opened"
	NotifyResolved = "incident.resolved"
)

// RecheckArgs asks for one re-check of a monitor.
type RecheckArgs struct {
	MonitorID int64 `json:"monitor_id"`
	OwnerID   int64 `json:"owner_id"`
}

// Recheck is a re-check's output.
type Recheck struct {
	OK         bool    `json:"ok"`
	Gone       bool    `json:"gone,omitempty"` // the monitor was deleted
	StatusCode *int    `json:"status_code,omitempty"`
	ErrorKind  string  `json:"error_kind,omitempty"`
	DurationMS float64 `json:"duration_ms"`
}

// DecideArgs are what the decision needs besides the re-checks.
type DecideArgs struct {
	MonitorID  int64     `json:"monitor_id"`
	OwnerID    int64     `json:"owner_id"`
	DetectedAt time.Time `json:"detected_at"`
	Cause      string    `json:"cause"`
}

// Decision is the confirmation's outcome, and what it passes on to the
// notifications.
type Decision struct {
	Confirmed  bool   `json:"confirmed"`
	IncidentID int64  `json:"incident_id,omitempty"`
	Failed     int    `json:"failed"`
	Of         int    `json:"of"`
	Why        string `json:"why"`
}

// NotifyArgs ask to notify one channel of an incident's event. Without an
// incident id, it is the decision's (the step's input).
type NotifyArgs struct {
	IncidentID int64  `json:"incident_id,omitempty"`
	ChannelID  int64  `json:"channel_id"`
	Event      string `json:"event"`
}

// Delivery is a notification's output.
type Delivery struct {
	Delivered bool   `json:"delivered"`
	Skipped   string `json:"skipped,omitempty"`
}

type kinds struct {
	recheck workflow.Kind[RecheckArgs, struct{}, Recheck]
	decide  workflow.Kind[DecideArgs, Recheck, Decision]
	notify  workflow.Kind[NotifyArgs, Decision, Delivery]
}

func (s *Service) define(reg *workflow.Registry) {
	s.kinds = kinds{
		// A re-check is a check: on the checks' queue, under their limits.
		recheck: workflow.Define(reg, "incident.recheck", s.recheck,
			workflow.StepOptions{MaxAttempts: 3, Queue: monitors.QueueChecks, Timeout: monitors.LongestJobTimeout}),
		decide: workflow.Define(reg, "incident.decide", s.decide, workflow.StepOptions{MaxAttempts: 5}),
		notify: workflow.Define(reg, "incident.notify", s.notifyStep,
			workflow.StepOptions{MaxAttempts: NotifyAttempts, Timeout: notifyTimeout + 15*time.Second}),
	}
}

// notifyTimeout bounds one delivery attempt.
const notifyTimeout = 30 * time.Second

// confirmTimeout is the deadline of an incident's workflows: the
// re-checks, and every notification's retries (NotifyAttempts). No
// workflow runs longer than an hour (BeaconWorkflowStuck).
const confirmTimeout = time.Hour

func (s *Service) recheck(ctx context.Context, a RecheckArgs, _ []struct{}) (Recheck, error) {
	if s.rechecker == nil {
		return Recheck{}, errors.New("this process cannot run checks")
	}
	r, err := s.rechecker(ctx, a.OwnerID, a.MonitorID)
	if apperr.CodeOf(err) == apperr.NotFound {
		return Recheck{Gone: true}, nil
	}
	if err != nil {
		return Recheck{}, err
	}
	return Recheck{OK: r.OK, StatusCode: r.StatusCode, ErrorKind: r.ErrorKind, DurationMS: r.DurationMS}, nil
}

// decide opens the incident if most re-checks failed and the monitor is
// still down. Run again (its first run's completion lost), it finds the
// incident its workflow opened and decides the same.
func (s *Service) decide(ctx context.Context, a DecideArgs, checks []Recheck) (Decision, error) {
	info, _ := workflow.StepFrom(ctx)
	d := Decision{Of: len(checks)}
	for _, c := range checks {
		if c.Gone {
			d.Why = "the monitor was deleted"
			return d, nil
		}
		if !c.OK {
			d.Failed++
		}
	}
	var opened bool
	err := database.InTx(ctx, s.workPool, func(ctx context.Context, tx pgx.Tx) error {
		db := incidentsdb.New(tx)
		state, err := db.MonitorState(ctx, incidentsdb.MonitorStateParams{ID: a.MonitorID, OwnerID: a.OwnerID})
		if errors.Is(err, pgx.ErrNoRows) {
			d.Why = "the monitor was deleted"
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case d.Failed*2 <= d.Of:
			d.Why = fmt.Sprintf("%d of %d re-checks failed: not an outage", d.Failed, d.Of)
			return nil
		case monitors.State(state) != monitors.StateDown:
			d.Why = "the monitor recovered during the confirmation"
			return nil
		}
		d.Confirmed = true
		d.Why = fmt.Sprintf("%d of %d re-checks failed", d.Failed, d.Of)
		carrier := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(ctx, carrier)
		d.IncidentID, err = db.OpenIncident(ctx, incidentsdb.OpenIncidentParams{MonitorID: a.MonitorID, OwnerID: a.OwnerID,
			Cause: truncate(a.Cause, MaxCause), DetectedAt: a.DetectedAt, WorkflowID: info.WorkflowID,
			Traceparent: carrier["traceparent"]})
		if errors.Is(err, pgx.ErrNoRows) {
			// An incident is already open: this workflow's own (a rerun),
			// or another's, which notified already.
			open, err := db.ActiveIncident(ctx, a.MonitorID)
			if err != nil {
				return fmt.Errorf("read the open incident of monitor %d: %w", a.MonitorID, err)
			}
			d.IncidentID = open.ID
			if open.WorkflowID != info.WorkflowID {
				d.Confirmed, d.Why = false, fmt.Sprintf("incident %d was already open", d.IncidentID)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("open incident: %w", err)
		}
		opened = true
		for _, e := range []struct{ kind, detail string }{
			{EventDetected, "check failed: " + a.Cause},
			{EventConfirmed, d.Why},
			{EventOpened, "incident opened"},
		} {
			if err := addEvent(ctx, tx, d.IncidentID, e.kind, e.detail); err != nil {
				return err
			}
		}
		return publish(ctx, tx, a.OwnerID, d.IncidentID)
	})
	if err != nil {
		return Decision{}, err
	}
	outcome := "dismissed"
	if d.Confirmed {
		outcome = "confirmed"
	}
	s.metrics.confirmation(ctx, outcome)
	if opened {
		s.metrics.opened(ctx)
		s.log.InfoContext(ctx, "incident opened", "incident_id", d.IncidentID, "monitor_id", a.MonitorID)
	}
	return d, nil
}

// notifyStep tells one channel of an incident's event. A failure is
// retried by River with backoff; the last attempt's failure, or a
// permanent one, is written on the incident's timeline and fails the step.
func (s *Service) notifyStep(ctx context.Context, a NotifyArgs, in []Decision) (Delivery, error) {
	id := a.IncidentID
	if id == 0 {
		if len(in) != 1 || !in[0].Confirmed {
			return Delivery{Skipped: "no incident opened"}, nil
		}
		id = in[0].IncidentID
	}
	var (
		inc Incident
		ch  channel
		url string
	)
	err := database.InTx(ctx, s.workPool, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		if inc, err = getIncident(ctx, tx, 0, id); err != nil {
			return err
		}
		target, err := incidentsdb.New(tx).IncidentTarget(ctx, id)
		if err != nil {
			return err
		}
		url = target.Url
		ch, err = getChannel(ctx, tx, target.OwnerID, a.ChannelID)
		return err
	})
	switch {
	case apperr.CodeOf(err) == apperr.NotFound:
		return Delivery{Skipped: "the incident or the channel was deleted"}, nil
	case err != nil:
		return Delivery{}, err
	}
	msg := message(a.Event, inc, url)
	msg.ID = fmt.Sprintf("incident-%d-%s-channel-%d", inc.ID, strings.TrimPrefix(a.Event, "incident."), ch.ID)
	sendCtx, cancel := context.WithTimeout(ctx, notifyTimeout)
	defer cancel()
	err = s.send(sendCtx, ch, msg)
	info, _ := workflow.StepFrom(ctx)
	if err == nil {
		s.metrics.sent(ctx, ch.Kind, "delivered")
		if err := addEvent(ctx, s.workPool, inc.ID, EventNotified, fmt.Sprintf("%s %q: %s", ch.Kind, ch.Name, a.Event)); err != nil {
			s.log.WarnContext(ctx, "notified but could not write the timeline", "incident_id", inc.ID, "error", err)
		}
		return Delivery{Delivered: true}, nil
	}
	if !notify.IsPermanent(err) && !info.LastAttempt() {
		return Delivery{}, err // River retries with backoff
	}
	s.metrics.sent(ctx, ch.Kind, "failed")
	detail := fmt.Sprintf("%s %q: %s, gave up after %d attempt(s): %v", ch.Kind, ch.Name, a.Event, info.Attempt, err)
	if werr := addEvent(ctx, s.workPool, inc.ID, EventNotifyFailed, detail); werr != nil {
		return Delivery{}, werr // retried: the failure must reach the timeline
	}
	s.log.WarnContext(ctx, "notification failed", "incident_id", inc.ID, "channel_id", ch.ID, "kind", ch.Kind, "error", err)
	return Delivery{}, workflow.Permanent(err)
}

// send delivers msg on ch.
func (s *Service) send(ctx context.Context, ch channel, msg notify.Message) error {
	switch ch.Kind {
	case ChannelWebhook:
		return s.webhook.Send(ctx, ch.URL, []byte(ch.secret), msg)
	case ChannelEmail:
		if s.email == nil {
			return &notify.PermanentError{Err: errors.New("email is off: BEACON_SMTP_ADDR is not set")}
		}
		return s.email.Send(ctx, ch.Address, msg)
	}
	return &notify.PermanentError{Err: fmt.Errorf("unknown channel kind %q", ch.Kind)}
}

// message renders an incident's event for every channel kind.
func message(event string, in Incident, target string) notify.Message {
	what := "DOWN"
	text := fmt.Sprintf("%s is down since %s.\n\nCause: %s\nTarget: %s\n", in.MonitorName,
		in.DetectedAt.UTC().Format(time.RFC1123), in.Cause, target)
	switch event {
	case NotifyResolved:
		what = "RESOLVED"
		how := "it recovered"
		if in.Resolution == ResolutionManual {
			how = "resolved by hand"
		}
		took := ""
		if in.ResolvedAt != nil {
			took = " after " + in.ResolvedAt.Sub(in.DetectedAt).Round(time.Second).String()
		}
		text = fmt.Sprintf("%s: %s%s.\n\nTarget: %s\n", in.MonitorName, how, took, target)
	case "test":
		what = "TEST"
		text = "This is a test notification from Beacon: this channel works.\n"
	}
	text += "\nIncident " + strconv.FormatInt(in.ID, 10) + " (monitor " + strconv.FormatInt(in.MonitorID, 10) + ").\n"
	return notify.Message{
		Event:   event,
		Subject: fmt.Sprintf("[Beacon] %s: %s", what, in.MonitorName),
		Text:    text,
		Payload: map[string]any{"incident": in},
	}
}

// causeOf describes a failed check in one line.
func causeOf(r monitors.Result) string {
	switch {
	case r.ErrorKind == "status" && r.StatusCode != nil:
		return fmt.Sprintf("HTTP %d", *r.StatusCode)
	case r.Error != "":
		return r.ErrorKind + ": " + r.Error
	case r.ErrorKind != "":
		return r.ErrorKind
	}
	return "check failed"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Whole runes only.
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
