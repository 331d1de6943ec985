package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/riverqueue/river/rivertype"

	"github.com/beaconhq/beacon/internal/auth"
	"github.com/beaconhq/beacon/internal/jobs"
)

// Job is a River job as the API shows it.
type Job struct {
	ID          int64      `json:"id"`
	Kind        string     `json:"kind"`
	Queue       string     `json:"queue"`
	State       string     `json:"state"`
	Attempt     int        `json:"attempt"`
	MaxAttempts int        `json:"max_attempts"`
	Args        any        `json:"args"`
	Output      any        `json:"output,omitempty" doc:"What the job recorded when it finished"`
	Errors      []JobError `json:"errors"`
	CreatedAt   time.Time  `json:"created_at"`
	ScheduledAt time.Time  `json:"scheduled_at"`
	AttemptedAt *time.Time `json:"attempted_at,omitempty"`
	FinalizedAt *time.Time `json:"finalized_at,omitempty"`
}

// JobError is one failed attempt. Stack traces stay in River's tables.
type JobError struct {
	At      time.Time `json:"at"`
	Attempt int       `json:"attempt"`
	Error   string    `json:"error"`
}

func jobView(row *rivertype.JobRow) Job {
	j := Job{
		ID: row.ID, Kind: row.Kind, Queue: row.Queue, State: string(row.State),
		Attempt: row.Attempt, MaxAttempts: row.MaxAttempts, Errors: []JobError{},
		CreatedAt: row.CreatedAt, ScheduledAt: row.ScheduledAt, AttemptedAt: row.AttemptedAt, FinalizedAt: row.FinalizedAt,
	}
	_ = json.Unmarshal(row.EncodedArgs, &j.Args)
	if out := row.Output(); len(out) > 0 {
		_ = json.Unmarshal(out, &j.Output)
	}
	for _, e := range row.Errors {
		j.Errors = append(j.Errors, JobError{At: e.At, Attempt: e.Attempt, Error: e.Error})
	}
	return j
}

// JobIDPath names a job in the path.
type JobIDPath struct {
	ID int64 `path:"id" minimum:"1" doc:"Job id"`
}

// JobOutput is a job.
type JobOutput struct {
	Body Job
}

func getJob(d Deps) func(context.Context, *JobIDPath) (*JobOutput, error) {
	return func(ctx context.Context, in *JobIDPath) (*JobOutput, error) {
		row, err := jobs.Get(ctx, d.Jobs, in.ID)
		if errors.Is(err, jobs.ErrJobNotFound) {
			return nil, huma.Error404NotFound("job not found")
		}
		if err != nil {
			return nil, problem(ctx, d.Log, err)
		}
		// Who may see a job is the domain's say; others get a 404.
		if ok, err := maysee(ctx, d, row); err != nil {
			return nil, problem(ctx, d.Log, err)
		} else if !ok {
			return nil, huma.Error404NotFound("job not found")
		}
		return &JobOutput{Body: jobView(row)}, nil
	}
}

// maysee applies the JobAccess of the domain that declared the job's kind;
// a kind no domain declared is visible to admins only.
func maysee(ctx context.Context, d Deps, row *rivertype.JobRow) (bool, error) {
	p, _ := auth.PrincipalFrom(ctx)
	for _, r := range d.Routes {
		if access, ok := r.JobAccess[row.Kind]; ok {
			return access(ctx, p, row)
		}
	}
	return p.IsAdmin(), nil
}
