package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/jobs"
)

// completion is a step whose work succeeded, to complete.
type completion struct {
	client *river.Client[pgx.Tx]
	job    *river.Job[StepJob]
	out    json.RawMessage
}

// completeStep completes a step: its output stored, the dependents it was
// the last to wait for enqueued, its job completed and, if it was the last
// step, the workflow ended, all in one transaction. The steps that finish
// at the same time in this process share that transaction (group commit);
// it returns errStale if the step was no longer to complete.
func (e *Engine) completeStep(ctx context.Context, c completion) error {
	staleErr, err := e.completions.Do(ctx, c)
	if err != nil {
		return err
	}
	return staleErr
}

// errRollback rolls back a batch whose only item is stale.
var errRollback = errors.New("rollback")

// completeMany completes steps in one transaction; each result is nil or
// errStale. The locks are taken in the engine's order: steps (by workflow
// and index), then their dependents, then the workflows (by id).
func (e *Engine) completeMany(ctx context.Context, items []completion) ([]error, error) {
	results := make([]error, len(items))
	client := items[0].client
	for _, it := range items[1:] {
		if it.client != client {
			return nil, errors.New("workflow: completions of different River clients") // retried alone
		}
	}
	var ended []*finished
	err := database.InTx(ctx, e.workPool, func(ctx context.Context, tx pgx.Tx) error {
		ended = nil
		n := len(items)
		wfs, idxs, attempts := make([]int64, n), make([]int32, n), make([]int32, n)
		outs := make([][]byte, n)
		for i, it := range items {
			wfs[i], idxs[i], attempts[i], outs[i] = it.job.Args.WorkflowID, int32(it.job.Args.Step), int32(it.job.Attempt), it.out
		}
		rows, err := tx.Query(ctx, `
			WITH u AS (SELECT * FROM unnest($1::bigint[], $2::integer[], $3::jsonb[], $4::integer[]) AS u(wf, idx, output, attempt)),
			locked AS (
				SELECT s.workflow_id, s.idx FROM workflow_steps s JOIN u ON s.workflow_id = u.wf AND s.idx = u.idx
				JOIN workflows w ON w.id = s.workflow_id
				WHERE s.state = 'enqueued' AND w.state = 'running'
				ORDER BY s.workflow_id, s.idx FOR UPDATE OF s)
			UPDATE workflow_steps s SET state = 'succeeded', output = u.output, attempts = u.attempt, finished_at = now()
			FROM locked, u, workflows w
			WHERE s.workflow_id = locked.workflow_id AND s.idx = locked.idx AND u.wf = s.workflow_id AND u.idx = s.idx
				AND w.id = s.workflow_id AND s.state = 'enqueued'
			RETURNING s.workflow_id, s.idx, s.dependents, w.owner_id, coalesce(w.traceparent, ''), w.steps_total`,
			wfs, idxs, outs, attempts)
		if err != nil {
			return fmt.Errorf("store outputs: %w", err)
		}
		type key struct {
			wf  int64
			idx int32
		}
		type live struct {
			dependents []int32
			owner      int64
			trace      string
			total      int
		}
		done := map[key]live{}
		for rows.Next() {
			var (
				k key
				l live
			)
			if err := rows.Scan(&k.wf, &k.idx, &l.dependents, &l.owner, &l.trace, &l.total); err != nil {
				rows.Close()
				return fmt.Errorf("store outputs: %w", err)
			}
			done[k] = l
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store outputs: %w", err)
		}
		var (
			completions []jobs.Completion
			depCount    = map[key]int32{}
			stepsDone   = map[int64]int32{}
			traces      = map[int64]string{}
			owners      = map[int64]int64{}
		)
		for i, it := range items {
			k := key{it.job.Args.WorkflowID, int32(it.job.Args.Step)}
			l, ok := done[k]
			if !ok {
				results[i] = errStale
				continue
			}
			results[i] = nil
			completions = append(completions, jobs.Completion{ID: it.job.ID})
			for _, d := range l.dependents {
				depCount[key{k.wf, d}]++
			}
			stepsDone[k.wf]++
			traces[k.wf], owners[k.wf] = l.trace, l.owner
			if l.total <= MaxStepEvents {
				if err := e.publishStep(ctx, tx, l.owner, it.job.Args, StepSucceeded); err != nil {
					return err
				}
			}
		}
		if len(completions) == 0 {
			return errRollback
		}
		if err := jobs.CompleteManyTx(ctx, client, tx, completions); err != nil {
			if errors.Is(err, jobs.ErrNotRunning) && len(items) == 1 {
				results[0] = errStale // rescued and not yet rerun: the rerun will complete it
				return errRollback
			}
			return err // a batch is retried item by item
		}

		// The rows that many steps update (a chord's callback, the
		// workflow) come last, so that they are locked for the least time.
		// Each dependent's counter is decremented under its row lock:
		// whichever transaction brings it to 0, and only that one, enqueues it.
		if len(depCount) > 0 {
			keys := make([]key, 0, len(depCount))
			for k := range depCount {
				keys = append(keys, k)
			}
			dw, di, dn := make([]int64, len(keys)), make([]int32, len(keys)), make([]int32, len(keys))
			for i, k := range keys {
				dw[i], di[i], dn[i] = k.wf, k.idx, depCount[k]
			}
			rows, err := tx.Query(ctx, `
				WITH d AS (SELECT * FROM unnest($1::bigint[], $2::integer[], $3::integer[]) AS d(wf, idx, n)),
				locked AS (
					SELECT s.workflow_id, s.idx FROM workflow_steps s JOIN d ON s.workflow_id = d.wf AND s.idx = d.idx
					WHERE s.state = 'pending' ORDER BY s.workflow_id, s.idx FOR UPDATE OF s)
				UPDATE workflow_steps s SET pending_deps = s.pending_deps - d.n
				FROM locked, d
				WHERE s.workflow_id = locked.workflow_id AND s.idx = locked.idx AND d.wf = s.workflow_id AND d.idx = s.idx
				RETURNING s.workflow_id, s.idx, s.pending_deps, s.name, s.kind, s.args, s.deps, s.delay_ms`, dw, di, dn)
			if err != nil {
				return fmt.Errorf("count down dependents: %w", err)
			}
			ready := map[int64][]readyStep{}
			for rows.Next() {
				var (
					wf      int64
					r       readyStep
					pending int32
				)
				if err := rows.Scan(&wf, &r.idx, &pending, &r.name, &r.kind, &r.args, &r.deps, &r.delayMS); err != nil {
					rows.Close()
					return fmt.Errorf("count down dependents: %w", err)
				}
				if pending == 0 {
					ready[wf] = append(ready[wf], r)
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("count down dependents: %w", err)
			}
			for _, wf := range slices.Sorted(mapKeys(ready)) {
				steps := ready[wf]
				slices.SortFunc(steps, func(x, y readyStep) int { return int(x.idx - y.idx) })
				if err := e.enqueue(ctx, client, tx, wf, traces[wf], steps); err != nil {
					return err
				}
			}
		}

		cw, cn := make([]int64, 0, len(stepsDone)), make([]int32, 0, len(stepsDone))
		for _, wf := range slices.Sorted(mapKeys(stepsDone)) {
			cw, cn = append(cw, wf), append(cn, stepsDone[wf])
		}
		rows, err = tx.Query(ctx, `
			WITH c AS (SELECT * FROM unnest($1::bigint[], $2::integer[]) AS c(wf, n)),
			locked AS (SELECT w.id FROM workflows w JOIN c ON c.wf = w.id WHERE w.state = 'running' ORDER BY w.id FOR UPDATE OF w)
			UPDATE workflows w SET steps_left = w.steps_left - c.n,
				state = CASE WHEN w.steps_left - c.n > 0 THEN w.state WHEN w.steps_failed > 0 THEN 'failed' ELSE 'succeeded' END,
				finished_at = CASE WHEN w.steps_left - c.n > 0 THEN w.finished_at ELSE now() END,
				error = CASE WHEN w.steps_left - c.n = 0 AND w.steps_failed > 0 AND w.error IS NULL
					THEN w.steps_failed::text || ' step(s) failed' ELSE w.error END
			FROM locked, c WHERE w.id = locked.id AND c.wf = w.id
			RETURNING w.id, `+countDownReturning, cw, cn)
		if err != nil {
			return fmt.Errorf("count down workflows: %w", err)
		}
		var (
			counted int
			toEnd   []struct {
				wf int64
				c  countDownRow
			}
		)
		for rows.Next() {
			var (
				wf int64
				c  countDownRow
			)
			if err := rows.Scan(&wf, &c.left, &c.state, &c.kind, &c.owner, &c.took); err != nil {
				rows.Close()
				return fmt.Errorf("count down workflows: %w", err)
			}
			counted++
			if c.left == 0 {
				toEnd = append(toEnd, struct {
					wf int64
					c  countDownRow
				}{wf, c})
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("count down workflows: %w", err)
		}
		if counted != len(cw) {
			// Their steps were locked and enqueued in running workflows:
			// nothing may end those before this commits.
			return fmt.Errorf("count down workflows: %d of %d still running", counted, len(cw))
		}
		for _, x := range toEnd {
			f, err := e.announce(ctx, tx, x.wf, x.c.owner, x.c.kind, State(x.c.state), x.c.took)
			if err != nil {
				return err
			}
			ended = append(ended, f)
		}
		return nil
	})
	if errors.Is(err, errRollback) {
		return results, nil
	}
	if err != nil {
		return nil, err
	}
	for _, f := range ended {
		e.metrics.finished(ctx, f)
	}
	return results, nil
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
