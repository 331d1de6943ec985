package database

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Group runs the calls that arrive while another is running together, as
// one call of Fn over all of them (group commit): under load, many callers
// share one round trip or one transaction; alone, a caller runs at once,
// without waiting for company. A goroutine runs only while calls are
// queued: the first call starts it, and it ends when the queue is empty.
type Group[T, R any] struct {
	// Fn handles items in one go and returns one result per item, in order.
	// Its context carries the first caller's values (its trace) but not its
	// cancellation, bounded by Timeout instead: one caller giving up must
	// not fail the others.
	Fn func(ctx context.Context, items []T) ([]R, error)
	// Max bounds the items per call (default 100).
	Max int
	// Timeout bounds one call of Fn (default 30 s).
	Timeout time.Duration

	mu      sync.Mutex
	queue   []*groupCall[T, R]
	running bool
}

type groupCall[T, R any] struct {
	ctx  context.Context
	item T
	res  R
	done chan error // receives the outcome once
}

// Do queues item and returns its result once the call of Fn that took it
// has returned. If Fn fails for several items, each is tried again alone,
// so that an error is only the item's that caused it (unless PostgreSQL is
// unreachable: then every item gets the error at once). If ctx ends first,
// Do returns ctx's error; the item may still be handled.
func (g *Group[T, R]) Do(ctx context.Context, item T) (R, error) {
	c := &groupCall[T, R]{ctx: ctx, item: item, done: make(chan error, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	start := !g.running
	g.running = true
	g.mu.Unlock()
	if start {
		go g.run()
	}
	select {
	case err := <-c.done:
		return c.res, err
	case <-ctx.Done():
		var zero R
		return zero, ctx.Err()
	}
}

func (g *Group[T, R]) run() {
	limit := g.Max
	if limit <= 0 {
		limit = 100
	}
	for {
		g.mu.Lock()
		calls := g.queue[:min(len(g.queue), limit)]
		g.queue = g.queue[len(calls):]
		if len(calls) == 0 {
			g.queue, g.running = nil, false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		err := g.call(calls)
		// Alone, an item may succeed where its group failed; not while the
		// database is unreachable, and not for a caller that gave up.
		if err != nil && len(calls) > 1 && !Unavailable(err) {
			for _, c := range calls {
				if c.ctx.Err() != nil {
					c.done <- c.ctx.Err()
					continue
				}
				c.done <- g.call([]*groupCall[T, R]{c})
			}
			continue
		}
		for _, c := range calls {
			c.done <- err
		}
	}
}

// call runs Fn over calls and sets their results; it sends no outcome.
func (g *Group[T, R]) call(calls []*groupCall[T, R]) error {
	timeout := g.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(calls[0].ctx), timeout)
	defer cancel()
	items := make([]T, len(calls))
	for i, c := range calls {
		items[i] = c.item
	}
	res, err := g.Fn(ctx, items)
	if err != nil {
		return err
	}
	if len(res) != len(items) {
		return fmt.Errorf("group: %d results for %d items", len(res), len(items))
	}
	for i, c := range calls {
		c.res = res[i]
	}
	return nil
}

// Queued reports how many calls wait for a call of Fn.
func (g *Group[T, R]) Queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}
