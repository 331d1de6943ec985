// Package incidents is the monitors domain's incidents: when a monitor goes
// down, a confirmation workflow re-checks it; a confirmed outage opens an
// incident and notifies its owner's channels (webhook, email); recovery, or
// the owner, resolves it and notifies again. It is built on the platform's
// workflow engine (internal/workflow): the second use of the template's
// shape, next to the checks themselves.
//
// Everything that decides (a flip seen, an incident opened or resolved)
// happens in the transaction that stores its cause, so an incident is
// opened once per outage, whatever the concurrency, crashes or retries.
package incidents

import (
	"embed"
	"io/fs"
	"time"

	"github.com/beaconhq/beacon/internal/database"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// The incidents' tables are this package's, migrated after the monitors'
// (this package imports monitors, whose init registers first).
func init() {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err)
	}
	database.RegisterMigrations("incidents", sub)
}

// State of an incident.
type State string

// Incident states: open until acknowledged or resolved; resolved is final.
const (
	StateOpen         State = "open"
	StateAcknowledged State = "acknowledged"
	StateResolved     State = "resolved"
)

// Resolutions: how an incident was resolved.
const (
	ResolutionRecovered = "recovered"
	ResolutionManual    = "manual"
)

// Incident is a confirmed outage of a monitor.
type Incident struct {
	ID             int64      `json:"id"`
	MonitorID      int64      `json:"monitor_id"`
	MonitorName    string     `json:"monitor_name"`
	State          State      `json:"state" enum:"open,acknowledged,resolved"`
	Cause          string     `json:"cause" doc:"What the check that saw the monitor go down found"`
	DetectedAt     time.Time  `json:"detected_at" doc:"When a check first saw the monitor down"`
	OpenedAt       time.Time  `json:"opened_at" doc:"When re-checks confirmed the outage"`
	AcknowledgedAt *time.Time `json:"acknowledged_at,omitempty"`
	ResolvedAt     *time.Time `json:"resolved_at,omitempty"`
	Resolution     string     `json:"resolution,omitempty" enum:"recovered,manual"`
	WorkflowID     int64      `json:"workflow_id" doc:"The workflow that confirmed the outage and notified (GET /v1/workflows/{id})"`
}

// Event kinds of an incident's timeline.
const (
	EventDetected     = "detected"
	EventConfirmed    = "confirmed"
	EventOpened       = "opened"
	EventNotified     = "notified"
	EventNotifyFailed = "notify_failed"
	EventAcknowledged = "acknowledged"
	EventResolved     = "resolved"
)

// Event is one line of an incident's timeline.
type Event struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind" enum:"detected,confirmed,opened,notified,notify_failed,acknowledged,resolved"`
	Detail string    `json:"detail"`
}

// Detail is an incident with its timeline.
type Detail struct {
	Incident
	Timeline []Event `json:"timeline"`
}

// PublicIncident is an incident as a status page shows it: no cause (a
// check's error may name private hosts), only its times.
type PublicIncident struct {
	ID         int64      `json:"id"`
	State      State      `json:"state" enum:"open,acknowledged,resolved"`
	OpenedAt   time.Time  `json:"opened_at"`
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
}

// Channel kinds.
const (
	ChannelWebhook = "webhook"
	ChannelEmail   = "email"
)

// Channel is where a user is notified of incidents.
type Channel struct {
	ID        int64     `json:"id"`
	Kind      string    `json:"kind" enum:"webhook,email"`
	Name      string    `json:"name"`
	URL       string    `json:"url,omitempty" doc:"The webhook's URL"`
	Address   string    `json:"address,omitempty" doc:"The email address"`
	CreatedAt time.Time `json:"created_at"`
}

// NewChannel is a channel just created: a webhook's signing secret is
// shown this once.
type NewChannel struct {
	Channel
	Secret string `json:"secret,omitempty" doc:"The webhook's signing secret (Beacon-Signature header); shown only now"`
}

// Limits, checked by the service and the SQL CHECKs alike.
const (
	MaxChannelName     = 100
	MaxChannelTarget   = 2048
	MaxChannelsPerUser = 20
	MaxCause           = 500
	MaxTimeline        = 500
	MaxPageSize        = 200
	// PublicWindow is how long a resolved incident stays on a status page.
	PublicWindow = 14 * 24 * time.Hour
	// NotifyAttempts is how many times a notification is tried, River
	// backing off between tries (attempt⁴ seconds: about 38 minutes in
	// all, inside the workflow's one-hour deadline).
	NotifyAttempts = 7
)
