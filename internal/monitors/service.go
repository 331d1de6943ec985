package monitors

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/beaconhq/beacon/internal/jobs"
)

// Service holds the operations that span the store and the job queue.
type Service struct {
	Store *Store
	Jobs  *river.Client[pgx.Tx]
}

// RunCheck enqueues an immediate check of a monitor and returns the job id.
// The job is inserted in the transaction that finds the monitor. The row is
// not locked (a lock is a write, on every call): a monitor deleted before
// its check runs cancels the job (CheckWorker).
func (s *Service) RunCheck(ctx context.Context, owner, id int64) (int64, error) {
	var jobID int64
	err := pgx.BeginFunc(ctx, s.Store.Pool(), func(tx pgx.Tx) error {
		var err error
		jobID, err = s.RunCheckTx(ctx, tx, owner, id)
		return err
	})
	return jobID, err
}

// RunCheckTx is RunCheck in tx, for a caller that stores more in the same
// transaction (an idempotent request's answer).
func (s *Service) RunCheckTx(ctx context.Context, tx pgx.Tx, owner, id int64) (int64, error) {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM monitors WHERE id = $1 AND owner_id = $2`, id, owner).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, notFound(id)
	}
	if err != nil {
		return 0, fmt.Errorf("run check of monitor %d: %w", id, err)
	}
	// The caller may wait for this check: its trace continues the request's.
	args := CheckArgs{MonitorID: id, Manual: true}
	opts := args.InsertOpts()
	opts.Metadata = jobs.Awaited
	res, err := s.Jobs.InsertTx(ctx, tx, args, &opts)
	if err != nil {
		return 0, fmt.Errorf("run check of monitor %d: %w", id, err)
	}
	return res.Job.ID, nil
}
