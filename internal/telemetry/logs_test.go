package telemetry_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/telemetry"
)

// A failure logged on every poll is logged once per window, and the next
// line says how many were dropped; other messages are not held back.
func TestDeduplicated(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	h := telemetry.Deduplicated(slog.NewTextHandler(&buf, nil), time.Minute)
	log := slog.New(h).With("component", "river")
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	emit := func(at time.Duration, msg string) {
		r := slog.NewRecord(t0.Add(at), slog.LevelError, msg, 0)
		require.NoError(t, log.Handler().Handle(context.Background(), r))
	}
	for i := range 200 { // 20 s of a 100 ms poll
		emit(time.Duration(i)*100*time.Millisecond, "producer: Error fetching jobs")
	}
	emit(30*time.Second, "something else")
	emit(61*time.Second, "producer: Error fetching jobs")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 3, buf.String())
	require.Contains(t, lines[0], "Error fetching jobs")
	require.NotContains(t, lines[0], "repeated")
	require.Contains(t, lines[1], "something else")
	require.Contains(t, lines[2], "repeated=199")
	require.Contains(t, lines[2], "component=river", "attributes survive")
}
