package monitors_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Huge values must not overflow time.Duration and wrap into range.
func TestValidateRejectsOverflowingDurations(t *testing.T) {
	t.Parallel()
	s := validSpec("x")
	s.Normalize()
	s.IntervalSeconds = 1<<55 + 60
	requireInvalid(t, s.Validate(), "interval_seconds")
	s.IntervalSeconds = 60
	s.TimeoutMS = 1<<58 + 5000
	requireInvalid(t, s.Validate(), "timeout_ms")
}

// A connection reset mid-response names neither the worker's address nor the target's.
func TestCheckerErrorHidesAddresses(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		require.NoError(t, err)
		_ = conn.(*net.TCPConn).SetLinger(0) // close with RST
		conn.Close()
	})
	r := loopbackClient().Check(context.Background(), monitorFor(t, tg.URL+secretQuery))
	requireFailure(t, r, "request")
	require.NotContains(t, r.Error, "127.0.0.1")
}

func TestStoreRejectsBadLimits(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m := mustCreate(t, b, validSpec("x"))
	_, err := b.svc.Results(context.Background(), b.owner, m.ID, rq(t0.Add(-time.Hour), t0, "", 0))
	requireInvalid(t, err, "limit")
}
