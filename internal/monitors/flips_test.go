package monitors

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStateChangesPickTheLatestResult(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	rs := []Result{
		{MonitorID: 1, CheckedAt: at(1), OK: false},
		{MonitorID: 2, CheckedAt: at(1), OK: true},
		{MonitorID: 1, CheckedAt: at(3), OK: false},
		{MonitorID: 1, CheckedAt: at(2), OK: true},
		{MonitorID: 3, CheckedAt: at(1), OK: false},
	}
	ids := []int64{10, 11, 12, 13, 14}
	changes := stateChanges(map[int64]StateChange{
		1: {MonitorID: 1, OwnerID: 7, From: StateUp, To: StateDown},
		3: {MonitorID: 3, From: StateUnknown, To: StateDown},
	}, rs, ids)
	require.Len(t, changes, 2)
	require.Equal(t, int64(1), changes[0].MonitorID, "in the order the results came")
	require.Equal(t, int64(12), changes[0].Result.ID, "the latest result made the flip")
	require.Equal(t, int64(7), changes[0].OwnerID)
	require.Equal(t, int64(3), changes[1].MonitorID)
	require.Equal(t, int64(14), changes[1].Result.ID)
	require.Nil(t, stateChanges(map[int64]StateChange{}, rs, ids))
}
