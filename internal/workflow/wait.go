package workflow

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/beaconhq/beacon/internal/database"
)

// Waiter lets requests wait for workflows to end without polling, as
// jobs.Waiter does for jobs: a LISTEN on DoneChannel wakes the waiters of a
// workflow the moment its end commits. The listener runs while someone
// waits (it needs no lifecycle of its own); a slow poll covers a
// notification lost while it (re)connects.
type Waiter struct {
	e   *Engine
	log *slog.Logger

	mu        sync.Mutex
	waiting   map[int64]map[chan struct{}]struct{}
	listening bool
	stop      context.CancelFunc
	stopped   chan struct{}
}

// NewWaiter returns a waiter on e's workflows, listening through e's pool.
func NewWaiter(e *Engine) *Waiter {
	return &Waiter{e: e, log: e.log, waiting: map[int64]map[chan struct{}]struct{}{}}
}

// safetyPoll is how often a waiter looks while the listener is up.
const safetyPoll = time.Second

// Wait returns the state of workflow id once it has ended, or when maxWait
// has passed (then StateRunning).
func (w *Waiter) Wait(ctx context.Context, id int64, maxWait time.Duration) (State, error) {
	wake := w.register(id)
	defer w.unregister(id, wake)
	deadline := time.NewTimer(maxWait)
	defer deadline.Stop()
	delay := 10 * time.Millisecond
	for {
		s, err := w.e.State(ctx, id)
		if err != nil || s != StateRunning {
			return s, err
		}
		w.mu.Lock()
		wait := delay
		if w.listening {
			wait = safetyPoll
		}
		w.mu.Unlock()
		poll := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			poll.Stop()
			return "", ctx.Err()
		case <-deadline.C:
			poll.Stop()
			return s, nil
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
	if w.stop == nil && w.e.pool != nil {
		// The first waiter starts the listener.
		ctx, cancel := context.WithCancel(context.Background())
		w.stop, w.stopped = cancel, make(chan struct{})
		go w.listen(ctx, w.stopped)
	}
	return ch
}

func (w *Waiter) unregister(id int64, ch chan struct{}) {
	w.mu.Lock()
	delete(w.waiting[id], ch)
	if len(w.waiting[id]) == 0 {
		delete(w.waiting, id)
	}
	var stopped chan struct{}
	if len(w.waiting) == 0 && w.stop != nil {
		// The last waiter stops it, and waits for it to release its
		// connection (a pool does not close while one is out).
		w.stop()
		stopped = w.stopped
		w.stop, w.stopped = nil, nil
	}
	w.mu.Unlock()
	if stopped != nil {
		<-stopped
	}
}

func (w *Waiter) wake(id int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for wf, set := range w.waiting {
		if id != 0 && wf != id {
			continue
		}
		for ch := range set {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

func (w *Waiter) setListening(on bool) {
	w.mu.Lock()
	w.listening = on
	w.mu.Unlock()
}

func (w *Waiter) listen(ctx context.Context, done chan struct{}) {
	defer close(done)
	defer w.setListening(false)
	l := &database.Listener{
		Pool: w.e.pool, Channel: DoneChannel, Name: "workflow", Log: w.log,
		Listening: func(bool) {
			w.setListening(true)
			w.wake(0) // a workflow may have ended before the LISTEN
		},
		Lost: func() { w.setListening(false) },
		Handle: func(payload string) {
			if id, err := strconv.ParseInt(payload, 10, 64); err == nil {
				w.wake(id)
			}
		},
	}
	_ = l.Run(ctx)
}
