package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// DoneChannel is the PostgreSQL channel on which a finalized job that was
// inserted with Awaited metadata announces its id (a trigger on river_job,
// migration 0003). NOTIFY is sent at commit, whichever process finished the
// job and however (River's completer, JobCompleteTx, a cancel or a discard).
const DoneChannel = "beacon_job_done"

// Awaited is job metadata for work a caller waits for: the worker makes its
// span a child of the inserting request's (see ContinueTrace), and the job
// announces its end on DoneChannel so that a Waiter wakes at once.
var Awaited = []byte(`{"beacon_trace":"continue","beacon_notify":"done"}`)

// Waiter lets requests wait for jobs without polling: one LISTEN connection
// per process (Run) wakes the waiters of a job the moment it is finalized.
// A slow poll stays as a safety net for a lost notification; without Run
// (tests, or while the listener reconnects) Wait polls with backoff.
type Waiter struct {
	client *river.Client[pgx.Tx]
	pool   *pgxpool.Pool
	log    *slog.Logger

	listening atomic.Bool
	mu        sync.Mutex
	waiting   map[int64]map[chan struct{}]struct{}
}

// NewWaiter returns a Waiter reading jobs through client and listening
// through pool. log may be nil.
func NewWaiter(client *river.Client[pgx.Tx], pool *pgxpool.Pool, log *slog.Logger) *Waiter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Waiter{client: client, pool: pool, log: log, waiting: map[int64]map[chan struct{}]struct{}{}}
}

// safetyPoll is how often a waiter looks at its job while the listener is
// up: only a notification lost with a dropped connection needs it.
const safetyPoll = time.Second

// Wait returns the job's row once it is finalized, or its latest row when
// maxWait has passed first.
func (w *Waiter) Wait(ctx context.Context, id int64, maxWait time.Duration) (*rivertype.JobRow, error) {
	// Registered before the first read, so a notification sent between the
	// read and the wait is not missed.
	wake := w.register(id)
	defer w.unregister(id, wake)
	deadline := time.NewTimer(maxWait)
	defer deadline.Stop()
	delay := 10 * time.Millisecond
	for {
		job, err := Get(ctx, w.client, id)
		if err != nil || Finalized(job.State) {
			return job, err
		}
		wait := delay
		if w.listening.Load() {
			wait = safetyPoll
		}
		poll := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			poll.Stop()
			return nil, ctx.Err()
		case <-deadline.C:
			poll.Stop()
			return job, nil
		case <-wake:
		case <-poll.C:
			delay = min(delay*2, 200*time.Millisecond)
		}
		poll.Stop()
	}
}

func (w *Waiter) register(id int64) chan struct{} {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	set := w.waiting[id]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		w.waiting[id] = set
	}
	set[ch] = struct{}{}
	return ch
}

func (w *Waiter) unregister(id int64, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.waiting[id], ch)
	if len(w.waiting[id]) == 0 {
		delete(w.waiting, id)
	}
}

// wake tells the waiters of job id (every waiter when id is 0) to look again.
func (w *Waiter) wake(id int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for job, set := range w.waiting {
		if id != 0 && job != id {
			continue
		}
		for ch := range set {
			select {
			case ch <- struct{}{}:
			default: // already woken
			}
		}
	}
}

// Run listens on DoneChannel until ctx ends, reconnecting with backoff
// (100 ms to 5 s) when its connection fails; it returns nil when ctx ends.
// After each (re)connection every waiter looks again, in case its job
// finished while nobody listened.
func (w *Waiter) Run(ctx context.Context) error {
	delay := 100 * time.Millisecond
	failures := 0
	for {
		err := w.listen(ctx, func() {
			if failures > 0 {
				w.log.Info("job listener recovered", "failed_attempts", failures)
			}
			failures, delay = 0, 100*time.Millisecond
		})
		w.listening.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		failures++
		if failures == 1 { // one line per outage, not one per attempt
			w.log.Warn("job listener lost its connection; waits poll until it is back", "error", err.Error())
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func (w *Waiter) listen(ctx context.Context, up func()) error {
	conn, err := w.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire: %w", err)
	}
	// A connection that LISTENed must not serve queries again: closing it
	// first makes Release discard it.
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = conn.Conn().Close(closeCtx)
		cancel()
		conn.Release()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+DoneChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	w.listening.Store(true)
	up()
	w.wake(0)
	for {
		// A connection lost without a TCP reset would leave the listener
		// deaf for many minutes: after a quiet spell, ping it.
		waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		n, err := conn.Conn().WaitForNotification(waitCtx)
		quiet := waitCtx.Err() != nil && ctx.Err() == nil
		cancel()
		switch {
		case err == nil:
			if id, err := strconv.ParseInt(n.Payload, 10, 64); err == nil {
				w.wake(id)
			}
		case quiet && !conn.Conn().IsClosed():
			pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := conn.Ping(pingCtx)
			cancel()
			if err != nil {
				return fmt.Errorf("ping: %w", err)
			}
		default:
			return fmt.Errorf("wait for notification: %w", err)
		}
	}
}
