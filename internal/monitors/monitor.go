// Package monitors is Beacon's example domain: HTTP endpoints (monitors)
// checked on a schedule by River workers, with their results and statistics.
//
// It owns its types, rules, SQL and workers; it knows nothing of HTTP routing.
// Replace it with your own domain by following the same shape.
package monitors

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/beaconhq/beacon/internal/apperr"
)

// State is what the latest check said of a monitor.
type State string

// Monitor states.
const (
	StateUnknown State = "unknown" // never checked
	StateUp      State = "up"
	StateDown    State = "down"
)

// Limits on what a monitor may ask for. They are the one source of truth:
// the API's schema is made from them (monitorsapi), and limits_test.go
// checks that the SQL CHECK constraints say the same.
const (
	MinInterval       = 10 * time.Second
	MaxInterval       = 24 * time.Hour
	MinTimeout        = 100 * time.Millisecond
	MaxTimeout        = 60 * time.Second
	MaxURLLen         = 2048
	MaxNameLen        = 200
	MaxExpectedStatus = 20
	// SlugPattern is what a public slug looks like: 3 to 64 lowercase
	// letters, digits or dashes, not starting or ending with a dash.
	SlugPattern = `^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$`
)

var slugPattern = regexp.MustCompile(SlugPattern)

// Methods a check may use. Checks carry no body, so only these make sense.
var Methods = []string{"GET", "HEAD", "POST"}

// Spec holds what a user sets on a monitor.
type Spec struct {
	Name            string `json:"name"`
	URL             string `json:"url"`
	Method          string `json:"method"`
	IntervalSeconds int    `json:"interval_seconds"`
	TimeoutMS       int    `json:"timeout_ms"`
	// ExpectedStatus lists the status codes that count as up; empty means any 2xx.
	ExpectedStatus []int `json:"expected_status"`
	Enabled        bool  `json:"enabled"`
	// PublicSlug publishes a status page at /v1/public/status/{slug}; nil: private.
	PublicSlug *string `json:"public_slug,omitempty"`
}

// Monitor is a stored monitor and what Beacon knows of its health.
type Monitor struct {
	ID      int64  `json:"id"`
	OwnerID *int64 `json:"-"`
	Spec
	State         State      `json:"state"`
	LastCheckedAt *time.Time `json:"last_checked_at,omitempty"`
	NextCheckAt   time.Time  `json:"next_check_at"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

// Interval returns the check interval.
func (m Monitor) Interval() time.Duration { return time.Duration(m.IntervalSeconds) * time.Second }

// Timeout returns the check timeout.
func (m Monitor) Timeout() time.Duration { return time.Duration(m.TimeoutMS) * time.Millisecond }

// storableText reports whether PostgreSQL can store s as text.
func storableText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// Normalize fills defaults and canonical forms before validation.
func (s *Spec) Normalize() {
	s.Name = strings.TrimSpace(s.Name)
	s.URL = strings.TrimSpace(s.URL)
	s.Method = strings.ToUpper(strings.TrimSpace(s.Method))
	if s.Method == "" {
		s.Method = "GET"
	}
	if s.IntervalSeconds == 0 {
		s.IntervalSeconds = 60
	}
	if s.TimeoutMS == 0 {
		s.TimeoutMS = 5000
	}
	if s.ExpectedStatus == nil {
		s.ExpectedStatus = []int{}
	}
	slices.Sort(s.ExpectedStatus)
	s.ExpectedStatus = slices.Compact(s.ExpectedStatus)
}

// Validate checks the domain rules; transport-level checks (types, lengths)
// happen earlier but are repeated here so no caller can bypass them.
func (s Spec) Validate() error {
	if s.Name == "" || len([]rune(s.Name)) > MaxNameLen {
		return apperr.InvalidField("name", "must be 1 to %d characters", MaxNameLen)
	}
	if !storableText(s.Name) {
		return apperr.InvalidField("name", "must be valid UTF-8 without NUL characters")
	}
	if !storableText(s.URL) {
		return apperr.InvalidField("url", "must be valid UTF-8 without NUL characters")
	}
	if err := validateURL(s.URL); err != nil {
		return err
	}
	if !slices.Contains(Methods, s.Method) {
		return apperr.InvalidField("method", "must be one of %s", strings.Join(Methods, ", "))
	}
	// Compare the integers before converting: a huge value would overflow
	// time.Duration and wrap into range.
	if s.IntervalSeconds < int(MinInterval/time.Second) || s.IntervalSeconds > int(MaxInterval/time.Second) {
		return apperr.InvalidField("interval_seconds", "must be between %d and %d", int(MinInterval.Seconds()), int(MaxInterval.Seconds()))
	}
	if s.TimeoutMS < int(MinTimeout/time.Millisecond) || s.TimeoutMS > int(MaxTimeout/time.Millisecond) {
		return apperr.InvalidField("timeout_ms", "must be between %d and %d", MinTimeout.Milliseconds(), MaxTimeout.Milliseconds())
	}
	if time.Duration(s.TimeoutMS)*time.Millisecond >= time.Duration(s.IntervalSeconds)*time.Second {
		return apperr.InvalidField("timeout_ms", "must be shorter than the interval (%d s)", s.IntervalSeconds)
	}
	if s.PublicSlug != nil && !slugPattern.MatchString(*s.PublicSlug) {
		return apperr.InvalidField("public_slug", "must be 3 to 64 lowercase letters, digits or dashes, not starting or ending with a dash")
	}
	if len(s.ExpectedStatus) > MaxExpectedStatus {
		return apperr.InvalidField("expected_status", "at most %d status codes", MaxExpectedStatus)
	}
	for _, c := range s.ExpectedStatus {
		if c < 100 || c > 599 {
			return apperr.InvalidField("expected_status", "%d is not an HTTP status code (100-599)", c)
		}
	}
	return nil
}

func validateURL(raw string) error {
	if raw == "" || len(raw) > MaxURLLen {
		return apperr.InvalidField("url", "must be 1 to %d characters", MaxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return apperr.InvalidField("url", "is not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return apperr.InvalidField("url", "scheme must be http or https")
	}
	if u.Hostname() == "" {
		return apperr.InvalidField("url", "must have a host")
	}
	// Credentials in a URL end up in logs, traces and job arguments.
	if u.User != nil {
		return apperr.InvalidField("url", "must not contain credentials")
	}
	if u.Fragment != "" {
		return apperr.InvalidField("url", "must not contain a fragment")
	}
	return nil
}

// Expects reports whether status counts as up for this monitor.
func (s Spec) Expects(status int) bool {
	if len(s.ExpectedStatus) == 0 {
		return status >= 200 && status < 300
	}
	return slices.Contains(s.ExpectedStatus, status)
}

// Result is the outcome of one check.
type Result struct {
	ID         int64     `json:"id"`
	MonitorID  int64     `json:"monitor_id"`
	JobID      *int64    `json:"job_id,omitempty"`
	CheckedAt  time.Time `json:"checked_at"`
	DurationMS float64   `json:"duration_ms"`
	StatusCode *int      `json:"status_code,omitempty"`
	OK         bool      `json:"ok"`
	// ErrorKind classifies a failure: timeout, dns, connect, tls, refused,
	// redirect, status or request.
	ErrorKind string `json:"error_kind,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Bucket summarises the checks of one time bucket.
type Bucket struct {
	Start     time.Time `json:"start"`
	Checks    int64     `json:"checks"`
	Successes int64     `json:"successes"`
	Uptime    float64   `json:"uptime"`
	P50MS     float64   `json:"p50_ms"`
	P95MS     float64   `json:"p95_ms"`
	P99MS     float64   `json:"p99_ms"`
}
