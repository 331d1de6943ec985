package monitors

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"go.opentelemetry.io/otel/trace"

	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/jobs"
)

// Under load, check workers share their database work: the monitors of the
// checks that start together are read in one query, and the results of the
// checks that finish together are stored, and their jobs completed, in one
// transaction (database.Group). Alone, a check does both on its own at once.
// Each result is still stored in the transaction that completes its job.

// maxGroup bounds how many checks share one query or transaction.
const maxGroup = 128

// finished is a check ready to be stored: its job and its result.
type finished struct {
	client *river.Client[pgx.Tx]
	job    *river.Job[CheckArgs]
	res    Result
	span   trace.SpanContext // the check job's
}

// newResultGroup stores results and completes their jobs; it returns the
// results' ids. A deleted monitor fails its group with ErrMonitorGone (and
// then only its own check, when retried alone). It tells onChange, when not
// nil, of the state changes in each transaction.
func newResultGroup(store *Store, onChange StateHook) *database.Group[finished, int64] {
	return &database.Group[finished, int64]{Max: maxGroup, Fn: func(ctx context.Context, fs []finished) ([]int64, error) {
		results := make([]Result, len(fs))
		for i, f := range fs {
			results[i] = f.res
		}
		var ids []int64
		err := database.InTx(ctx, store.pool, func(ctx context.Context, tx pgx.Tx) error {
			var (
				changes []StateChange
				err     error
			)
			if ids, changes, err = store.recordResults(ctx, tx, results); err != nil {
				return err
			}
			if onChange != nil && len(changes) > 0 {
				for i := range changes {
					for j, id := range ids {
						if id == changes[i].Result.ID {
							changes[i].Trace = fs[j].span
						}
					}
				}
				if err := onChange(ctx, tx, changes); err != nil {
					return fmt.Errorf("on state change: %w", err)
				}
			}
			done := make([]jobs.Completion, len(fs))
			for i, f := range fs {
				done[i] = jobs.Completion{ID: f.job.ID, Output: CheckOutput{ResultID: ids[i], OK: f.res.OK}}
			}
			// In the transaction that stores their results: a crash can
			// neither lose a result nor store it twice.
			return jobs.CompleteManyTx(ctx, fs[0].client, tx, done)
		})
		return ids, err
	}}
}

// found is a monitor read for a check; ok is false if it does not exist.
type found struct {
	m  Monitor
	ok bool
}

// newLookupGroup reads the monitors of checks about to run.
func newLookupGroup(store *Store) *database.Group[int64, found] {
	return &database.Group[int64, found]{Max: maxGroup, Fn: func(ctx context.Context, ids []int64) ([]found, error) {
		ms, err := store.lookupMany(ctx, ids)
		if err != nil {
			return nil, err
		}
		byID := make(map[int64]Monitor, len(ms))
		for _, m := range ms {
			byID[m.ID] = m
		}
		out := make([]found, len(ids))
		for i, id := range ids {
			out[i].m, out[i].ok = byID[id]
		}
		return out, nil
	}}
}
