package jobs

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/beaconhq/beacon/internal/database"
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

// Run listens on DoneChannel until ctx ends, reconnecting with backoff when
// its connection fails; it returns nil when ctx ends. After each
// (re)connection every waiter looks again, in case its job finished while
// nobody listened; while disconnected, waits poll.
func (w *Waiter) Run(ctx context.Context) error {
	defer w.listening.Store(false)
	l := &database.Listener{
		Pool: w.pool, Channel: DoneChannel, Name: "job", Log: w.log,
		Listening: func(bool) {
			w.listening.Store(true)
			w.wake(0)
		},
		Lost: func() { w.listening.Store(false) },
		Handle: func(payload string) {
			if id, err := strconv.ParseInt(payload, 10, 64); err == nil {
				w.wake(id)
			}
		},
	}
	return l.Run(ctx)
}
