package monitors

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/trace"
)

// StateChange is a monitor whose state a stored result changed.
type StateChange struct {
	MonitorID int64
	OwnerID   int64 // 0: the monitor has no owner yet
	From, To  State
	// Result is the result that changed the state (stored: it has its id).
	Result Result
	// Trace is the span of the check job that stored it.
	Trace trace.SpanContext
}

// StateHook is told, in the transaction that stores the results and
// completes their jobs, of the state changes they made: what it writes
// commits with them or not at all (an incident workflow starts exactly
// when a flip is stored). An error fails the whole transaction.
type StateHook func(ctx context.Context, tx pgx.Tx, changes []StateChange) error

// priorState is a monitor's state before a transaction's results.
type priorState struct {
	owner       int64
	state       State
	lastChecked *time.Time
}

// lockStates locks the monitors of ids, in id order, and returns their
// states: the results stored next in the transaction cannot race another
// transaction's, so each flip is seen by exactly one transaction.
func lockStates(ctx context.Context, tx pgx.Tx, ids []int64) (map[int64]priorState, error) {
	rows, err := tx.Query(ctx, `
		SELECT id, coalesce(owner_id, 0), state, last_checked_at FROM monitors
		WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids)
	if err != nil {
		return nil, fmt.Errorf("lock monitor states: %w", err)
	}
	out := make(map[int64]priorState, len(ids))
	for rows.Next() {
		var (
			id int64
			p  priorState
		)
		if err := rows.Scan(&id, &p.owner, &p.state, &p.lastChecked); err != nil {
			rows.Close()
			return nil, fmt.Errorf("lock monitor states: %w", err)
		}
		out[id] = p
	}
	rows.Close()
	return out, rows.Err()
}

// stateChanges are the flips that results (stored, with their ids) make
// from prior, by the rule RecordResults applies: per monitor the latest
// result sets the state, unless a newer result was stored before.
func stateChanges(prior map[int64]priorState, results []Result) []StateChange {
	latest := map[int64]Result{}
	var order []int64
	for _, r := range results {
		cur, seen := latest[r.MonitorID]
		if !seen {
			order = append(order, r.MonitorID)
		}
		if !seen || !r.CheckedAt.Before(cur.CheckedAt) {
			latest[r.MonitorID] = r
		}
	}
	var out []StateChange
	for _, id := range order {
		r, p := latest[id], prior[id]
		if p.lastChecked != nil && p.lastChecked.After(r.CheckedAt) {
			continue // a late result: the state stays the newer one's
		}
		if to := stateOf(r); to != p.state {
			out = append(out, StateChange{MonitorID: id, OwnerID: p.owner, From: p.state, To: to, Result: r})
		}
	}
	return out
}
