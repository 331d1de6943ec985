package monitors

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/jobs"
	"github.com/beaconhq/beacon/internal/page"
)

// Service is the domain's one entrance: every operation on monitors, with
// its validation, its scope (an owner sees only their monitors), its
// pagination and its transaction. The HTTP layer translates to and from it;
// nothing else reads or writes the domain's tables from outside.
//
// An operation called with a context carrying a transaction
// (database.WithTx) joins it: the caller can store something of its own
// atomically with it (an idempotent request's answer).
type Service struct {
	store *Store
	jobs  *river.Client[pgx.Tx] // inserts checks; nil: RunCheck is unavailable
	now   func() time.Time
}

// NewService returns the service over store, inserting jobs with client.
func NewService(store *Store, client *river.Client[pgx.Tx]) *Service {
	return &Service{store: store, jobs: client, now: store.now}
}

// Create validates spec and stores a new monitor of owner, due for a first
// check now.
func (s *Service) Create(ctx context.Context, owner int64, spec Spec) (Monitor, error) {
	spec.Normalize()
	if err := spec.Validate(); err != nil {
		return Monitor{}, err
	}
	return s.store.insert(ctx, owner, spec)
}

// Get returns one monitor of owner; another owner's is not found.
func (s *Service) Get(ctx context.Context, owner, id int64) (Monitor, error) {
	return s.store.Get(ctx, owner, id)
}

// MaxPageSize bounds a page of monitors.
const MaxPageSize = 200

// MonitorPage is one page of monitors, by id.
type MonitorPage struct {
	Items      []Monitor `json:"items"`
	NextCursor string    `json:"next_cursor,omitempty" doc:"Pass as cursor to get the next page; absent on the last page"`
}

// List returns a page of owner's monitors, by id.
func (s *Service) List(ctx context.Context, owner int64, req page.Request) (MonitorPage, error) {
	if err := req.Validate(MaxPageSize); err != nil {
		return MonitorPage{}, err
	}
	var after int64
	if req.Cursor != "" {
		if err := page.Decode(req.Cursor, &after); err != nil {
			return MonitorPage{}, err
		}
	}
	items, err := s.store.list(ctx, owner, after, req.Limit+1)
	if err != nil {
		return MonitorPage{}, err
	}
	var p MonitorPage
	p.Items, p.NextCursor = page.Cut(items, req.Limit, func(m Monitor) string { return page.Encode(m.ID) })
	return p, nil
}

// Update applies change to the spec of owner's monitor under a row lock,
// validates the outcome and stores it. A re-enabled monitor is due at once;
// a shorter interval brings the next check forward.
func (s *Service) Update(ctx context.Context, owner, id int64, change func(*Spec)) (Monitor, error) {
	var m Monitor
	err := database.InTx(ctx, s.store.pool, func(ctx context.Context, _ pgx.Tx) error {
		old, err := s.store.getForUpdate(ctx, owner, id)
		if err != nil {
			return err
		}
		spec := old.Spec
		spec.ExpectedStatus = append([]int(nil), old.ExpectedStatus...)
		change(&spec)
		spec.Normalize()
		if err := spec.Validate(); err != nil {
			return err
		}
		now := s.now()
		next := old.NextCheckAt
		if spec.Enabled && !old.Enabled {
			next = now
		} else if soonest := now.Add(time.Duration(spec.IntervalSeconds) * time.Second); next.After(soonest) {
			next = soonest
		}
		m, err = s.store.update(ctx, id, spec, next)
		return err
	})
	return m, err
}

// Delete removes owner's monitor and its results.
func (s *Service) Delete(ctx context.Context, owner, id int64) error {
	return s.store.Delete(ctx, owner, id)
}

// RunCheck enqueues an immediate check of owner's monitor and returns the
// job id. The job is inserted in the transaction that finds the monitor.
// The row is not locked (a lock is a write, on every call): a monitor
// deleted before its check runs cancels the job (CheckWorker).
func (s *Service) RunCheck(ctx context.Context, owner, id int64) (int64, error) {
	if s.jobs == nil {
		return 0, apperr.Errorf(apperr.Unavailable, "checks cannot be enqueued by this process")
	}
	var jobID int64
	err := database.InTx(ctx, s.store.pool, func(ctx context.Context, tx pgx.Tx) error {
		ok, err := s.store.Owns(ctx, owner, id)
		if err != nil {
			return fmt.Errorf("run check of monitor %d: %w", id, err)
		}
		if !ok {
			return notFound(id)
		}
		// The caller may wait for this check: its trace continues the request's.
		args := CheckArgs{MonitorID: id, Manual: true}
		opts := args.InsertOpts()
		opts.Metadata = jobs.Awaited
		res, err := s.jobs.InsertTx(ctx, tx, args, &opts)
		if err != nil {
			return fmt.Errorf("run check of monitor %d: %w", id, err)
		}
		jobID = res.Job.ID
		return nil
	})
	return jobID, err
}

// CheckResult returns the result a check job stored; NotFound if none.
func (s *Service) CheckResult(ctx context.Context, jobID int64) (Result, error) {
	return s.store.ResultByJob(ctx, jobID)
}

// MayWatchCheck reports whether owner may follow a check job of args (they
// own its monitor).
func (s *Service) MayWatchCheck(ctx context.Context, owner int64, args CheckArgs) (bool, error) {
	return s.store.Owns(ctx, owner, args.MonitorID)
}

// Range is a time range [From, To); zero values take the defaults (To: now,
// From: To minus a day).
type Range struct {
	From, To time.Time
}

func (r Range) resolve(now time.Time, maxSpan time.Duration) (time.Time, time.Time, error) {
	to, from := r.To, r.From
	if to.IsZero() {
		to = now
	}
	if from.IsZero() {
		from = to.Add(-24 * time.Hour)
	}
	if !from.Before(to) {
		return from, to, apperr.InvalidField("from", "must be before to")
	}
	if maxSpan > 0 && to.Sub(from) > maxSpan {
		return from, to, apperr.InvalidField("from", "range must not exceed %s", maxSpan)
	}
	return from, to, nil
}

// MaxResultsPage bounds a page of results.
const MaxResultsPage = 1000

// ResultQuery selects a page of results, newest first.
type ResultQuery struct {
	Range
	page.Request
}

// Results returns a page of the results of owner's monitor in the range,
// newest first.
func (s *Service) Results(ctx context.Context, owner, monitorID int64, q ResultQuery) (ResultPage, error) {
	from, to, err := q.resolve(s.now(), 0)
	if err != nil {
		return ResultPage{}, err
	}
	if err := q.Validate(MaxResultsPage); err != nil {
		return ResultPage{}, err
	}
	// Without a cursor, start just past To: (To, MaxInt64) sorts after every row in range.
	beforeAt, beforeID := to, int64(1<<63-1)
	if q.Cursor != "" {
		if err := page.Decode(q.Cursor, &beforeAt, &beforeID); err != nil {
			return ResultPage{}, err
		}
		if beforeAt.After(to) {
			beforeAt, beforeID = to, 1<<63-1
		}
	}
	if _, err := s.store.Get(ctx, owner, monitorID); err != nil {
		return ResultPage{}, err
	}
	items, err := s.store.results(ctx, monitorID, from, to, beforeAt, beforeID, q.Limit+1)
	if err != nil {
		return ResultPage{}, err
	}
	var p ResultPage
	p.Items, p.NextCursor = page.Cut(items, q.Limit, func(r Result) string { return page.Encode(r.CheckedAt, r.ID) })
	return p, nil
}

// Stats is a monitor's uptime and latency over a range, per bucket.
type Stats struct {
	From          time.Time `json:"from"`
	To            time.Time `json:"to"`
	BucketSeconds int64     `json:"bucket_seconds"`
	Checks        int64     `json:"checks" doc:"Checks in the whole range"`
	Uptime        *float64  `json:"uptime,omitempty" doc:"Uptime ratio over the whole range; absent without checks"`
	Buckets       []Bucket  `json:"buckets"`
}

// StatsQuery selects the range and the bucket size ("" chooses one that
// gives at most 200 buckets).
type StatsQuery struct {
	Range
	Bucket string
}

const (
	// MaxStatsSpan is the longest range stats cover: a year (a leap one
	// included), read from the daily rollups.
	MaxStatsSpan = 366 * 24 * time.Hour
	maxBuckets   = 1000
)

// autoBuckets are the bucket sizes chosen when the client names none.
var autoBuckets = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 6 * time.Hour, 24 * time.Hour}

// Stats summarises owner's monitor's checks per bucket over the range.
func (s *Service) Stats(ctx context.Context, owner, monitorID int64, q StatsQuery) (Stats, error) {
	from, to, err := q.resolve(s.now(), MaxStatsSpan)
	if err != nil {
		return Stats{}, err
	}
	bucket, err := chooseBucket(q.Bucket, to.Sub(from))
	if err != nil {
		return Stats{}, err
	}
	buckets, err := s.store.Stats(ctx, owner, monitorID, from, to, bucket)
	if err != nil {
		return Stats{}, err
	}
	st := Stats{From: from, To: to, BucketSeconds: int64(bucket.Seconds()), Buckets: buckets}
	var ok int64
	for _, b := range buckets {
		st.Checks += b.Checks
		ok += b.Successes
	}
	if st.Checks > 0 {
		u := float64(ok) / float64(st.Checks)
		st.Uptime = &u
	}
	return st, nil
}

func chooseBucket(raw string, span time.Duration) (time.Duration, error) {
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
		return 0, apperr.InvalidField("bucket", "is not a duration like 5m or 1h")
	}
	if b < time.Minute || b > 24*time.Hour || b%time.Second != 0 {
		return 0, apperr.InvalidField("bucket", "must be whole seconds between 1m and 24h")
	}
	if span/b > maxBuckets {
		return 0, apperr.InvalidField("bucket", "gives more than %d buckets for this range: choose a larger bucket", maxBuckets)
	}
	return b, nil
}

// PublicStatus returns the status page of the monitor published as slug.
func (s *Service) PublicStatus(ctx context.Context, slug string) (Status, error) {
	return s.store.PublicStatus(ctx, slug)
}

// AdoptUnowned gives monitors created before accounts existed to the first
// admin; the platform calls it at startup.
func (s *Service) AdoptUnowned(ctx context.Context, admin int64) (int64, error) {
	return s.store.AdoptUnowned(ctx, admin)
}
