package database

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Reconnection backoff of a Listener. A listener that was up for less than
// maxListenBackoff does not reset it, so a connection that dies as soon as
// it is made is retried (and logged) at most every maxListenBackoff.
const (
	minListenBackoff = 100 * time.Millisecond
	maxListenBackoff = 5 * time.Second
)

// listenHealthInterval: after this long without a notification a Listener
// pings its connection. A connection lost without a TCP reset (failover,
// NAT expiry) would otherwise leave it deaf until TCP keepalive gives up,
// many minutes later.
const listenHealthInterval = 30 * time.Second

// Listener holds one connection of Pool that LISTENs on Channel, and hands
// each notification's payload to Handle. When the connection fails it
// reconnects with backoff (100 ms to 5 s), logging once per failure streak.
type Listener struct {
	Pool    *pgxpool.Pool
	Channel string
	// Name names the listener in log lines ("event", "job").
	Name string
	Log  *slog.Logger // may be nil
	// Listening is called each time LISTEN has succeeded; recovered is true
	// after a failure, when the notifications of the gap were lost. It may
	// be nil.
	Listening func(recovered bool)
	// Lost is called when the connection has failed, before reconnecting.
	// It may be nil.
	Lost func()
	// Handle receives each payload, in order, on Run's goroutine.
	Handle func(payload string)
	// PingTimeout bounds the health ping after a quiet spell (default 5 s).
	PingTimeout time.Duration
}

// Run listens until ctx ends, then returns nil. Call it once.
func (l *Listener) Run(ctx context.Context) error {
	if l.Log == nil {
		l.Log = slog.New(slog.DiscardHandler)
	}
	delay := minListenBackoff
	failures := 0
	for {
		up, err := l.listen(ctx, func() {
			if failures > 0 {
				l.Log.Info(l.Name+" listener recovered", "failed_attempts", failures)
			}
			if l.Listening != nil {
				l.Listening(failures > 0)
			}
			failures = 0
		})
		if ctx.Err() != nil {
			return nil
		}
		if l.Lost != nil {
			l.Lost()
		}
		if up >= maxListenBackoff {
			delay = minListenBackoff
		}
		failures++
		// One line per failure streak: a database outage must not flood the log.
		if failures == 1 {
			l.Log.Warn(l.Name+" listener lost its connection; reconnecting", "error", err.Error())
		} else {
			l.Log.Debug(l.Name+" listener still failing", "error", err.Error(), "attempt", failures)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(2*delay, maxListenBackoff)
	}
}

// listen LISTENs on one connection and dispatches notifications until the
// connection fails or ctx ends. It reports how long it was listening.
func (l *Listener) listen(ctx context.Context, listening func()) (time.Duration, error) {
	conn, err := l.Pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("acquire listener connection: %w", err)
	}
	// A connection that has LISTENed must not go back to the pool: it would
	// keep collecting notifications while serving queries. Closing it first
	// makes Release discard it.
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = conn.Conn().Close(closeCtx)
		cancel()
		conn.Release()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{l.Channel}.Sanitize()); err != nil {
		return 0, fmt.Errorf("listen on %s: %w", l.Channel, err)
	}
	since := time.Now()
	listening()
	pingTimeout := l.PingTimeout
	if pingTimeout <= 0 {
		pingTimeout = 5 * time.Second
	}
	for {
		waitCtx, cancel := context.WithTimeout(ctx, listenHealthInterval)
		n, err := conn.Conn().WaitForNotification(waitCtx)
		quiet := waitCtx.Err() != nil
		cancel()
		if n != nil {
			l.Handle(n.Payload)
		}
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return time.Since(since), ctx.Err()
		case quiet && !conn.Conn().IsClosed():
			// Only our own deadline expired; pgx keeps the connection
			// usable after a timed-out read. Make sure the server is there.
			pingCtx, cancel := context.WithTimeout(ctx, pingTimeout)
			err := conn.Ping(pingCtx)
			cancel()
			if err != nil {
				return time.Since(since), fmt.Errorf("ping listener connection: %w", err)
			}
		default:
			return time.Since(since), fmt.Errorf("wait for notification: %w", err)
		}
	}
}
