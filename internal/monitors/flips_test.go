package monitors

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStateChanges(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	ptr := func(t time.Time) *time.Time { return &t }
	prior := map[int64]priorState{
		1: {owner: 7, state: StateUp, lastChecked: ptr(at(0))},
		2: {owner: 7, state: StateDown, lastChecked: ptr(at(0))},
		3: {owner: 0, state: StateUnknown},
		4: {owner: 7, state: StateUp, lastChecked: ptr(at(10))},
	}
	changes := stateChanges(prior, []Result{
		// 1: two results in one transaction; the latest (down) decides.
		{ID: 10, MonitorID: 1, CheckedAt: at(2), OK: false},
		{ID: 11, MonitorID: 1, CheckedAt: at(1), OK: true},
		// 2: still down: no change.
		{ID: 12, MonitorID: 2, CheckedAt: at(1), OK: false},
		// 3: a first check, no owner yet: a change all the same.
		{ID: 13, MonitorID: 3, CheckedAt: at(1), OK: true},
		// 4: a late result, older than the state it would change.
		{ID: 14, MonitorID: 4, CheckedAt: at(5), OK: false},
	})
	require.Len(t, changes, 2)
	require.Equal(t, int64(1), changes[0].MonitorID)
	require.Equal(t, int64(7), changes[0].OwnerID)
	require.Equal(t, StateUp, changes[0].From)
	require.Equal(t, StateDown, changes[0].To)
	require.Equal(t, int64(10), changes[0].Result.ID)
	require.Equal(t, int64(3), changes[1].MonitorID)
	require.Equal(t, StateUnknown, changes[1].From)
	require.Equal(t, StateUp, changes[1].To)
}
