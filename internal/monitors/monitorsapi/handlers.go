package monitorsapi

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/httpapi"
	"github.com/beaconhq/beacon/internal/jobs"
	"github.com/beaconhq/beacon/internal/monitors"
	"github.com/beaconhq/beacon/internal/monitors/incidents"
	"github.com/beaconhq/beacon/internal/page"
)

// Handlers translate between HTTP and monitors.Service, and do nothing else:
// validation, scope, pagination and transactions are the service's.

// MonitorBody is what a client sends to create a monitor. Its limits come
// from the domain's constants (TransformSchema), not from tags.
type MonitorBody struct {
	Name            string  `json:"name" example:"Example home page"`
	URL             string  `json:"url" format:"uri" example:"https://example.com/" doc:"http or https URL to check; no credentials"`
	Method          string  `json:"method,omitempty" doc:"HTTP method (default GET)"`
	IntervalSeconds int     `json:"interval_seconds,omitempty" doc:"Seconds between checks (default 60)"`
	TimeoutMS       int     `json:"timeout_ms,omitempty" doc:"Check timeout in milliseconds, shorter than the interval (default 5000)"`
	ExpectedStatus  []int   `json:"expected_status,omitempty" doc:"Status codes that count as up (default: any 2xx)"`
	Enabled         *bool   `json:"enabled,omitempty" doc:"Whether the monitor is checked on schedule (default true)"`
	PublicSlug      *string `json:"public_slug,omitempty" doc:"Publish a status page at /v1/public/status/{slug}"`
}

// TransformSchema implements huma.SchemaTransformer: the domain's limits.
func (MonitorBody) TransformSchema(_ huma.Registry, s *huma.Schema) *huma.Schema {
	return withLimits(s, monitors.SlugPattern)
}

// withLimits puts the domain's limits on a monitor body's properties.
func withLimits(s *huma.Schema, slugPattern string) *huma.Schema {
	p := s.Properties
	ptr := func(v float64) *float64 { return &v }
	iptr := func(v int) *int { return &v }
	p["name"].MinLength, p["name"].MaxLength = iptr(1), iptr(monitors.MaxNameLen)
	p["url"].MinLength, p["url"].MaxLength = iptr(1), iptr(monitors.MaxURLLen)
	p["method"].Enum = nil
	for _, m := range monitors.Methods {
		p["method"].Enum = append(p["method"].Enum, m)
	}
	p["interval_seconds"].Minimum = ptr(monitors.MinInterval.Seconds())
	p["interval_seconds"].Maximum = ptr(monitors.MaxInterval.Seconds())
	p["timeout_ms"].Minimum = ptr(float64(monitors.MinTimeout.Milliseconds()))
	p["timeout_ms"].Maximum = ptr(float64(monitors.MaxTimeout.Milliseconds()))
	p["expected_status"].MaxItems = iptr(monitors.MaxExpectedStatus)
	p["public_slug"].Pattern = slugPattern
	return s
}

func (b MonitorBody) spec() monitors.Spec {
	return monitors.Spec{
		Name: b.Name, URL: b.URL, Method: b.Method, IntervalSeconds: b.IntervalSeconds,
		TimeoutMS: b.TimeoutMS, ExpectedStatus: b.ExpectedStatus, Enabled: b.Enabled == nil || *b.Enabled,
		PublicSlug: b.PublicSlug,
	}
}

// MonitorPatch is what a client sends to change a monitor: absent fields
// stay. Its limits are MonitorBody's.
type MonitorPatch struct {
	Name            *string `json:"name,omitempty"`
	URL             *string `json:"url,omitempty" format:"uri"`
	Method          *string `json:"method,omitempty"`
	IntervalSeconds *int    `json:"interval_seconds,omitempty"`
	TimeoutMS       *int    `json:"timeout_ms,omitempty"`
	ExpectedStatus  *[]int  `json:"expected_status,omitempty"`
	Enabled         *bool   `json:"enabled,omitempty"`
	// PublicSlug: a slug publishes the status page, "" unpublishes it.
	PublicSlug *string `json:"public_slug,omitempty" doc:"Slug of the public status page; empty string to unpublish"`
}

// TransformSchema implements huma.SchemaTransformer: the domain's limits,
// and an empty slug to unpublish.
func (MonitorPatch) TransformSchema(_ huma.Registry, s *huma.Schema) *huma.Schema {
	return withLimits(s, "^("+strings.TrimSuffix(strings.TrimPrefix(monitors.SlugPattern, "^"), "$")+")?$")
}

func (p MonitorPatch) apply(s *monitors.Spec) {
	set(&s.Name, p.Name)
	set(&s.URL, p.URL)
	set(&s.Method, p.Method)
	set(&s.IntervalSeconds, p.IntervalSeconds)
	set(&s.TimeoutMS, p.TimeoutMS)
	set(&s.ExpectedStatus, p.ExpectedStatus)
	set(&s.Enabled, p.Enabled)
	if p.PublicSlug != nil {
		s.PublicSlug = p.PublicSlug
		if *p.PublicSlug == "" {
			s.PublicSlug = nil
		}
	}
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// MonitorIDPath names a monitor in the path.
type MonitorIDPath struct {
	ID int64 `path:"id" minimum:"1" doc:"Monitor id"`
}

// PageQuery asks for one page of a list.
type PageQuery struct {
	Cursor string `query:"cursor" maxLength:"200" doc:"From a previous page's next_cursor"`
}

func (q PageQuery) request(limit int) page.Request {
	return page.Request{Cursor: q.Cursor, Limit: limit}
}

// ListMonitorsInput asks for a page of the caller's monitors.
type ListMonitorsInput struct {
	PageQuery
	Limit int `query:"limit" minimum:"1" maximum:"200" default:"50"`
}

// MonitorPageOutput is a page of monitors.
type MonitorPageOutput struct {
	Body monitors.MonitorPage
}

// MonitorOutput is one monitor.
type MonitorOutput struct {
	Body monitors.Monitor
}

// CreateMonitorInput is a monitor to create.
type CreateMonitorInput struct {
	httpapi.IdempotencyHeader
	Body MonitorBody
}

// CreateMonitorOutput is the monitor created.
type CreateMonitorOutput struct {
	Location string `header:"Location"`
	Replayed bool   `header:"Idempotent-Replayed" doc:"true when this answers a retry (same Idempotency-Key)"`
	Body     monitors.Monitor
}

// UpdateMonitorInput changes a monitor.
type UpdateMonitorInput struct {
	MonitorIDPath
	Body MonitorPatch
}

// CheckRun tells where a requested check stands.
type CheckRun struct {
	JobID  int64            `json:"job_id"`
	State  string           `json:"state" doc:"River job state: available, running, completed, retryable, discarded..."`
	JobURL string           `json:"job_url"`
	Result *monitors.Result `json:"result,omitempty" doc:"Present when the check finished within wait"`
}

// maxWait bounds how long a request may hold a connection for a check.
const maxWait = 30

// RunCheckInput asks for a check of a monitor now.
type RunCheckInput struct {
	MonitorIDPath
	httpapi.IdempotencyHeader
	Wait int `query:"wait" minimum:"0" maximum:"30" doc:"Seconds to wait for the result (0: do not wait)"`
}

// RunCheckOutput is a check enqueued (202) or finished (200).
type RunCheckOutput struct {
	Status   int
	Location string `header:"Location"`
	Body     CheckRun
}

// RangeQuery is a time range in the query string.
type RangeQuery struct {
	From time.Time `query:"from" doc:"Start of the range, RFC 3339 (default: to minus 24 h)"`
	To   time.Time `query:"to" doc:"End of the range, exclusive, RFC 3339 (default: now)"`
}

func (q RangeQuery) rng() monitors.Range { return monitors.Range{From: q.From, To: q.To} }

// ListResultsInput asks for a page of a monitor's results.
type ListResultsInput struct {
	MonitorIDPath
	RangeQuery
	PageQuery
	Limit int `query:"limit" minimum:"1" maximum:"1000" default:"100"`
}

// ResultPageOutput is a page of results.
type ResultPageOutput struct {
	Body monitors.ResultPage
}

// StatsInput asks for a monitor's stats.
type StatsInput struct {
	MonitorIDPath
	RangeQuery
	Bucket string `query:"bucket" maxLength:"10" example:"1h" doc:"Bucket size as a duration (1m to 24h); default: at most 200 buckets"`
}

// StatsOutput is a monitor's stats.
type StatsOutput struct {
	Body monitors.Stats
}

// StatusPageInput names a published status page.
type StatusPageInput struct {
	Slug Slug `path:"slug"`
}

// Slug is a public slug in a path: its schema is the domain's pattern.
type Slug string

// Schema implements huma.SchemaProvider.
func (Slug) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeString, Pattern: monitors.SlugPattern}
}

// StatusPageOutput is a published status page.
type StatusPageOutput struct {
	Body StatusPage
}

type handlers struct {
	d   httpapi.Deps
	svc *monitors.Service
	inc *incidents.Service
}

func owner(ctx context.Context) int64 { return httpapi.Caller(ctx).UserID }

func (h handlers) problem(ctx context.Context, err error) error {
	return httpapi.Problem(ctx, h.d.Log, err)
}

func (h handlers) listMonitors(ctx context.Context, in *ListMonitorsInput) (*MonitorPageOutput, error) {
	p, err := h.svc.List(ctx, owner(ctx), in.request(in.Limit))
	if err != nil {
		return nil, h.problem(ctx, httpapi.QueryField(err))
	}
	return &MonitorPageOutput{Body: p}, nil
}

func (h handlers) createMonitor(ctx context.Context, in *CreateMonitorInput) (*CreateMonitorOutput, error) {
	spec := in.Body.spec()
	m, replayed, err := httpapi.Idempotent(ctx, h.d, in.IdempotencyKey, "create-monitor", in.Body,
		func(ctx context.Context) (monitors.Monitor, error) { return h.svc.Create(ctx, owner(ctx), spec) })
	if err != nil {
		return nil, h.problem(ctx, httpapi.BodyField(err))
	}
	return &CreateMonitorOutput{Location: "/v1/monitors/" + strconv.FormatInt(m.ID, 10), Replayed: replayed, Body: m}, nil
}

func (h handlers) getMonitor(ctx context.Context, in *MonitorIDPath) (*MonitorOutput, error) {
	m, err := h.svc.Get(ctx, owner(ctx), in.ID)
	if err != nil {
		return nil, h.problem(ctx, err)
	}
	return &MonitorOutput{Body: m}, nil
}

func (h handlers) updateMonitor(ctx context.Context, in *UpdateMonitorInput) (*MonitorOutput, error) {
	m, err := h.svc.Update(ctx, owner(ctx), in.ID, in.Body.apply)
	if err != nil {
		return nil, h.problem(ctx, httpapi.BodyField(err))
	}
	return &MonitorOutput{Body: m}, nil
}

func (h handlers) deleteMonitor(ctx context.Context, in *MonitorIDPath) (*struct{}, error) {
	if err := h.svc.Delete(ctx, owner(ctx), in.ID); err != nil {
		return nil, h.problem(ctx, err)
	}
	return nil, nil
}

func (h handlers) runCheck(ctx context.Context, in *RunCheckInput) (*RunCheckOutput, error) {
	// A retry with the same key follows the job the first request enqueued.
	id, _, err := httpapi.Idempotent(ctx, h.d, in.IdempotencyKey, "run-check", in.ID,
		func(ctx context.Context) (int64, error) { return h.svc.RunCheck(ctx, owner(ctx), in.ID) })
	if err != nil {
		return nil, h.problem(ctx, err)
	}
	jobURL := "/v1/jobs/" + strconv.FormatInt(id, 10)
	out := &RunCheckOutput{Status: 202, Location: jobURL, Body: CheckRun{JobID: id, State: "available", JobURL: jobURL}}
	if in.Wait <= 0 {
		return out, nil
	}
	job, err := h.d.Waiter.Wait(ctx, id, time.Duration(min(in.Wait, maxWait))*time.Second)
	if err != nil {
		return nil, h.problem(ctx, err)
	}
	out.Body.State = string(job.State)
	if !jobs.Finalized(job.State) {
		return out, nil
	}
	out.Status = 200
	if r, err := h.svc.CheckResult(ctx, id); err == nil {
		out.Body.Result = &r
	} else if apperr.CodeOf(err) != apperr.NotFound {
		return nil, h.problem(ctx, err)
	}
	return out, nil
}

func (h handlers) listResults(ctx context.Context, in *ListResultsInput) (*ResultPageOutput, error) {
	p, err := h.svc.Results(ctx, owner(ctx), in.ID, monitors.ResultQuery{Range: in.rng(), Request: in.request(in.Limit)})
	if err != nil {
		return nil, h.problem(ctx, httpapi.QueryField(err))
	}
	return &ResultPageOutput{Body: p}, nil
}

func (h handlers) getStats(ctx context.Context, in *StatsInput) (*StatsOutput, error) {
	st, err := h.svc.Stats(ctx, owner(ctx), in.ID, monitors.StatsQuery{Range: in.rng(), Bucket: in.Bucket})
	if err != nil {
		return nil, h.problem(ctx, httpapi.QueryField(err))
	}
	return &StatsOutput{Body: st}, nil
}

func (h handlers) getStatusPage(ctx context.Context, in *StatusPageInput) (*StatusPageOutput, error) {
	st, err := h.svc.PublicStatus(ctx, string(in.Slug))
	if err != nil {
		return nil, h.problem(ctx, err)
	}
	page := StatusPage{Status: st}
	if page.Incidents, err = h.inc.PublicIncidents(ctx, string(in.Slug)); err != nil {
		return nil, h.problem(ctx, err)
	}
	return &StatusPageOutput{Body: page}, nil
}
