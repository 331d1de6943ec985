package httpapi

import (
	"context"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/jackc/pgx/v5"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/jobs"
	"github.com/beaconhq/beacon/internal/monitors"
)

// MonitorBody is what a client sends to create a monitor.
type MonitorBody struct {
	Name            string  `json:"name" minLength:"1" maxLength:"200" example:"Example home page"`
	URL             string  `json:"url" format:"uri" minLength:"1" maxLength:"2048" example:"https://example.com/" doc:"http or https URL to check; no credentials"`
	Method          string  `json:"method,omitempty" enum:"GET,HEAD,POST" doc:"HTTP method (default GET)"`
	IntervalSeconds int     `json:"interval_seconds,omitempty" minimum:"10" maximum:"86400" doc:"Seconds between checks (default 60)"`
	TimeoutMS       int     `json:"timeout_ms,omitempty" minimum:"100" maximum:"60000" doc:"Check timeout in milliseconds, shorter than the interval (default 5000)"`
	ExpectedStatus  []int   `json:"expected_status,omitempty" maxItems:"20" doc:"Status codes that count as up (default: any 2xx)"`
	Enabled         *bool   `json:"enabled,omitempty" doc:"Whether the monitor is checked on schedule (default true)"`
	PublicSlug      *string `json:"public_slug,omitempty" pattern:"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$" doc:"Publish a status page at /v1/public/status/{slug}"`
}

// MonitorPatch is what a client sends to change a monitor: absent fields stay.
type MonitorPatch struct {
	Name            *string `json:"name,omitempty" minLength:"1" maxLength:"200"`
	URL             *string `json:"url,omitempty" format:"uri" minLength:"1" maxLength:"2048"`
	Method          *string `json:"method,omitempty" enum:"GET,HEAD,POST"`
	IntervalSeconds *int    `json:"interval_seconds,omitempty" minimum:"10" maximum:"86400"`
	TimeoutMS       *int    `json:"timeout_ms,omitempty" minimum:"100" maximum:"60000"`
	ExpectedStatus  *[]int  `json:"expected_status,omitempty" maxItems:"20"`
	Enabled         *bool   `json:"enabled,omitempty"`
	// PublicSlug: a slug publishes the status page, "" unpublishes it.
	PublicSlug *string `json:"public_slug,omitempty" pattern:"^([a-z0-9][a-z0-9-]{1,62}[a-z0-9])?$" doc:"Slug of the public status page; empty string to unpublish"`
}

type MonitorIDPath struct {
	ID int64 `path:"id" minimum:"1" doc:"Monitor id"`
}

type monitorOutput struct {
	Body monitors.Monitor
}

// MonitorPage is one page of monitors.
type MonitorPage struct {
	Items      []monitors.Monitor `json:"items"`
	NextCursor string             `json:"next_cursor,omitempty" doc:"Pass as cursor to get the next page; absent on the last page"`
}

func listMonitors(d Deps) func(context.Context, *struct {
	Cursor string `query:"cursor" maxLength:"20" pattern:"^[0-9]*$" doc:"From a previous page's next_cursor"`
	Limit  int    `query:"limit" minimum:"1" maximum:"200" default:"50"`
}) (*struct{ Body MonitorPage }, error) {
	return func(ctx context.Context, in *struct {
		Cursor string `query:"cursor" maxLength:"20" pattern:"^[0-9]*$" doc:"From a previous page's next_cursor"`
		Limit  int    `query:"limit" minimum:"1" maximum:"200" default:"50"`
	}) (*struct{ Body MonitorPage }, error) {
		var after int64
		if in.Cursor != "" {
			var err error
			if after, err = strconv.ParseInt(in.Cursor, 10, 64); err != nil {
				return nil, huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{Location: "query.cursor", Message: "is not a cursor returned by this API"})
			}
		}
		items, err := d.Monitors.Store.List(ctx, owner(ctx), after, in.Limit+1)
		if err != nil {
			return nil, problem(ctx, d.Log, err)
		}
		out := &struct{ Body MonitorPage }{Body: MonitorPage{Items: items}}
		if len(items) > in.Limit {
			out.Body.Items = items[:in.Limit]
			out.Body.NextCursor = strconv.FormatInt(items[in.Limit-1].ID, 10)
		}
		if out.Body.Items == nil {
			out.Body.Items = []monitors.Monitor{}
		}
		return out, nil
	}
}

// CreateMonitorInput is a monitor to create.
type CreateMonitorInput struct {
	IdempotencyHeader
	Body MonitorBody
}

// CreateMonitorOutput is the monitor created.
type CreateMonitorOutput struct {
	Location string `header:"Location"`
	Replayed bool   `header:"Idempotent-Replayed" doc:"true when this answers a retry (same Idempotency-Key)"`
	Body     monitors.Monitor
}

func createMonitor(d Deps) func(context.Context, *CreateMonitorInput) (*CreateMonitorOutput, error) {
	return func(ctx context.Context, in *CreateMonitorInput) (*CreateMonitorOutput, error) {
		b := in.Body
		spec := monitors.Spec{
			Name: b.Name, URL: b.URL, Method: b.Method, IntervalSeconds: b.IntervalSeconds,
			TimeoutMS: b.TimeoutMS, ExpectedStatus: b.ExpectedStatus, Enabled: b.Enabled == nil || *b.Enabled,
			PublicSlug: b.PublicSlug,
		}
		var (
			m        monitors.Monitor
			replayed bool
			err      error
		)
		if in.IdempotencyKey == "" || d.Idempotency == nil {
			m, err = d.Monitors.Store.Create(ctx, owner(ctx), spec)
		} else {
			m, replayed, err = idempotent(ctx, d, in.IdempotencyKey, "create-monitor", in.Body, func(tx pgx.Tx) (monitors.Monitor, error) {
				return d.Monitors.Store.CreateTx(ctx, tx, owner(ctx), spec)
			})
		}
		if err != nil {
			return nil, problem(ctx, d.Log, bodyField(err))
		}
		return &CreateMonitorOutput{Location: "/v1/monitors/" + strconv.FormatInt(m.ID, 10), Replayed: replayed, Body: m}, nil
	}
}

func getMonitor(d Deps) func(context.Context, *MonitorIDPath) (*monitorOutput, error) {
	return func(ctx context.Context, in *MonitorIDPath) (*monitorOutput, error) {
		m, err := d.Monitors.Store.Get(ctx, owner(ctx), in.ID)
		if err != nil {
			return nil, problem(ctx, d.Log, err)
		}
		return &monitorOutput{Body: m}, nil
	}
}

func updateMonitor(d Deps) func(context.Context, *struct {
	MonitorIDPath
	Body MonitorPatch
}) (*monitorOutput, error) {
	return func(ctx context.Context, in *struct {
		MonitorIDPath
		Body MonitorPatch
	}) (*monitorOutput, error) {
		p := in.Body
		m, err := d.Monitors.Store.Update(ctx, owner(ctx), in.ID, func(s *monitors.Spec) {
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
		})
		if err != nil {
			return nil, problem(ctx, d.Log, bodyField(err))
		}
		return &monitorOutput{Body: m}, nil
	}
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// bodyField locates a domain validation error in the request body, the way
// huma locates its own ("body.url").
func bodyField(err error) error {
	if e, ok := apperr.As(err); ok && e.Code == apperr.Invalid && e.Field != "" {
		c := *e
		c.Field = "body." + e.Field
		return &c
	}
	return err
}

func deleteMonitor(d Deps) func(context.Context, *MonitorIDPath) (*struct{}, error) {
	return func(ctx context.Context, in *MonitorIDPath) (*struct{}, error) {
		if err := d.Monitors.Store.Delete(ctx, owner(ctx), in.ID); err != nil {
			return nil, problem(ctx, d.Log, err)
		}
		return nil, nil
	}
}

// CheckRun tells where a requested check stands.
type CheckRun struct {
	JobID  int64            `json:"job_id"`
	State  string           `json:"state" doc:"River job state: available, running, completed, retryable, discarded..."`
	JobURL string           `json:"job_url"`
	Result *monitors.Result `json:"result,omitempty" doc:"Present when the check finished within wait"`
}

type runCheckOutput struct {
	Status   int
	Location string `header:"Location"`
	Body     CheckRun
}

// maxWait bounds how long a request may hold a connection for a check.
const maxWait = 30

// RunCheckInput asks for a check of a monitor now.
type RunCheckInput struct {
	MonitorIDPath
	IdempotencyHeader
	Wait int `query:"wait" minimum:"0" maximum:"30" doc:"Seconds to wait for the result (0: do not wait)"`
}

func runCheck(d Deps) func(context.Context, *RunCheckInput) (*runCheckOutput, error) {
	return func(ctx context.Context, in *RunCheckInput) (*runCheckOutput, error) {
		var (
			id  int64
			err error
		)
		if in.IdempotencyKey == "" || d.Idempotency == nil {
			id, err = d.Monitors.RunCheck(ctx, owner(ctx), in.ID)
		} else {
			// A retry follows the job the first request enqueued.
			id, _, err = idempotent(ctx, d, in.IdempotencyKey, "run-check", in.ID, func(tx pgx.Tx) (int64, error) {
				return d.Monitors.RunCheckTx(ctx, tx, owner(ctx), in.ID)
			})
		}
		if err != nil {
			return nil, problem(ctx, d.Log, err)
		}
		jobURL := "/v1/jobs/" + strconv.FormatInt(id, 10)
		out := &runCheckOutput{Status: 202, Location: jobURL, Body: CheckRun{JobID: id, State: "available", JobURL: jobURL}}
		if in.Wait <= 0 {
			return out, nil
		}
		job, err := d.Waiter.Wait(ctx, id, time.Duration(min(in.Wait, maxWait))*time.Second)
		if err != nil {
			return nil, problem(ctx, d.Log, err)
		}
		out.Body.State = string(job.State)
		if !jobs.Finalized(job.State) {
			return out, nil
		}
		out.Status = 200
		if r, err := d.Monitors.Store.ResultByJob(ctx, id); err == nil {
			out.Body.Result = &r
		} else if apperr.CodeOf(err) != apperr.NotFound {
			return nil, problem(ctx, d.Log, err)
		}
		return out, nil
	}
}

type RangeQuery struct {
	From time.Time `query:"from" doc:"Start of the range, RFC 3339 (default: to minus 24 h)"`
	To   time.Time `query:"to" doc:"End of the range, exclusive, RFC 3339 (default: now)"`
}

// resolve fills defaults and checks the range.
func (q RangeQuery) resolve(now time.Time, maxSpan time.Duration) (time.Time, time.Time, error) {
	to, from := q.To, q.From
	if to.IsZero() {
		to = now
	}
	if from.IsZero() {
		from = to.Add(-24 * time.Hour)
	}
	if !from.Before(to) {
		return from, to, huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{Location: "query.from", Message: "must be before to"})
	}
	if maxSpan > 0 && to.Sub(from) > maxSpan {
		return from, to, huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{Location: "query.from", Message: "range must not exceed " + maxSpan.String()})
	}
	return from, to, nil
}

func listResults(d Deps) func(context.Context, *struct {
	MonitorIDPath
	RangeQuery
	Cursor string `query:"cursor" maxLength:"100" doc:"From a previous page's next_cursor"`
	Limit  int    `query:"limit" minimum:"1" maximum:"1000" default:"100"`
}) (*struct{ Body monitors.ResultPage }, error) {
	return func(ctx context.Context, in *struct {
		MonitorIDPath
		RangeQuery
		Cursor string `query:"cursor" maxLength:"100" doc:"From a previous page's next_cursor"`
		Limit  int    `query:"limit" minimum:"1" maximum:"1000" default:"100"`
	}) (*struct{ Body monitors.ResultPage }, error) {
		from, to, err := in.resolve(d.Now(), 0)
		if err != nil {
			return nil, err
		}
		page, err := d.Monitors.Store.Results(ctx, owner(ctx), in.ID, monitors.ResultQuery{From: from, To: to, Cursor: in.Cursor, Limit: in.Limit})
		if e, ok := apperr.As(err); ok && e.Field == "cursor" {
			err = &apperr.Error{Code: e.Code, Field: "query.cursor", Message: e.Message}
		}
		if err != nil {
			return nil, problem(ctx, d.Log, err)
		}
		return &struct{ Body monitors.ResultPage }{Body: page}, nil
	}
}

// Stats is the stats endpoint's answer.
type Stats struct {
	From          time.Time         `json:"from"`
	To            time.Time         `json:"to"`
	BucketSeconds int64             `json:"bucket_seconds"`
	Checks        int64             `json:"checks" doc:"Checks in the whole range"`
	Uptime        *float64          `json:"uptime,omitempty" doc:"Uptime ratio over the whole range; absent without checks"`
	Buckets       []monitors.Bucket `json:"buckets"`
}

const (
	maxStatsSpan = 93 * 24 * time.Hour
	maxBuckets   = 1000
)

// autoBuckets are the bucket sizes chosen when the client names none.
var autoBuckets = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 6 * time.Hour, 24 * time.Hour}

func getStats(d Deps) func(context.Context, *struct {
	MonitorIDPath
	RangeQuery
	Bucket string `query:"bucket" maxLength:"10" example:"1h" doc:"Bucket size as a duration (1m to 24h); default: at most 200 buckets"`
}) (*struct{ Body Stats }, error) {
	return func(ctx context.Context, in *struct {
		MonitorIDPath
		RangeQuery
		Bucket string `query:"bucket" maxLength:"10" example:"1h" doc:"Bucket size as a duration (1m to 24h); default: at most 200 buckets"`
	}) (*struct{ Body Stats }, error) {
		from, to, err := in.resolve(d.Now(), maxStatsSpan)
		if err != nil {
			return nil, err
		}
		bucket, err := chooseBucket(in.Bucket, to.Sub(from))
		if err != nil {
			return nil, err
		}
		buckets, err := d.Monitors.Store.Stats(ctx, owner(ctx), in.ID, from, to, bucket)
		if err != nil {
			return nil, problem(ctx, d.Log, err)
		}
		s := Stats{From: from, To: to, BucketSeconds: int64(bucket.Seconds()), Buckets: buckets}
		var ok int64
		for _, b := range buckets {
			s.Checks += b.Checks
			ok += b.Successes
		}
		if s.Checks > 0 {
			u := float64(ok) / float64(s.Checks)
			s.Uptime = &u
		}
		return &struct{ Body Stats }{Body: s}, nil
	}
}

func chooseBucket(raw string, span time.Duration) (time.Duration, error) {
	invalid := func(msg string) error {
		return huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{Location: "query.bucket", Message: msg, Value: raw})
	}
	if raw == "" {
		for _, b := range autoBuckets {
			if span/b <= 200 {
				return b, nil
			}
		}
		return autoBuckets[len(autoBuckets)-1], nil
	}
	b, err := time.ParseDuration(raw)
	if err != nil {
		return 0, invalid("is not a duration like 5m or 1h")
	}
	if b < time.Minute || b > 24*time.Hour || b%time.Second != 0 {
		return 0, invalid("must be whole seconds between 1m and 24h")
	}
	if span/b > maxBuckets {
		return 0, invalid("gives more than 1000 buckets for this range: choose a larger bucket")
	}
	return b, nil
}

func getStatusPage(d Deps) func(context.Context, *struct {
	Slug string `path:"slug" pattern:"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$"`
}) (*struct{ Body monitors.Status }, error) {
	return func(ctx context.Context, in *struct {
		Slug string `path:"slug" pattern:"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$"`
	}) (*struct{ Body monitors.Status }, error) {
		st, err := d.Monitors.Store.PublicStatus(ctx, in.Slug)
		if err != nil {
			return nil, problem(ctx, d.Log, err)
		}
		return &struct{ Body monitors.Status }{Body: st}, nil
	}
}
