package monitors

import (
	"context"

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

// stateChanges orders the flips RecordResults' statement saw (by monitor)
// as the results came, each with the result that made it: the monitor's
// latest, with its stored id.
func stateChanges(flipped map[int64]StateChange, rs []Result, ids []int64) []StateChange {
	if len(flipped) == 0 {
		return nil
	}
	var out []StateChange
	for i, r := range rs {
		c, ok := flipped[r.MonitorID]
		if !ok {
			continue
		}
		if c.Result.MonitorID == 0 {
			out = append(out, c) // first seen: its place in the order
		}
		// The latest result of the state written (ties: the last given).
		if stateOf(r) == c.To && (c.Result.MonitorID == 0 || !r.CheckedAt.Before(c.Result.CheckedAt)) {
			c.Result = r
			c.Result.ID = ids[i]
			flipped[r.MonitorID] = c
		}
	}
	for i := range out {
		out[i] = flipped[out[i].MonitorID]
	}
	return out
}
