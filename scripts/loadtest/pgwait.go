package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// waitSampler samples pg_stat_activity of one database every 100 ms while
// a drain runs: what Beacon's connections are doing (running on CPU, waiting
// on a lock or I/O, idle in a transaction the client holds open). It is the
// "where does the time go" half of a drain figure. With detail, each state
// also names the statement (for "idle in transaction": the last one the
// client sent before going quiet).
type waitSampler struct {
	detail  bool
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	counts  map[string]int
	samples int
}

// startWaitSampler starts sampling with pool (which must be on the database
// of interest); stop ends it and returns the summary.
func startWaitSampler(ctx context.Context, pool *pgxpool.Pool, detail bool) *waitSampler {
	ctx, cancel := context.WithCancel(ctx)
	w := &waitSampler{detail: detail, cancel: cancel, done: make(chan struct{}), counts: map[string]int{}}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for range 100_000 {
			w.sample(ctx, pool)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *waitSampler) sample(ctx context.Context, pool *pgxpool.Pool) {
	rows, err := pool.Query(ctx, `
		SELECT CASE
		         WHEN state = 'active' AND wait_event IS NULL THEN 'CPU'
		         WHEN state = 'active' THEN wait_event_type || ':' || wait_event
		         ELSE state
		       END || CASE WHEN $1 THEN ' [' || left(regexp_replace(query, '\s+', ' ', 'g'), 80) || ']' ELSE '' END
		FROM pg_stat_activity
		WHERE datname = current_database() AND backend_type = 'client backend'
		  AND pid <> pg_backend_pid() AND state <> 'idle'
		  AND coalesce(application_name, '') <> 'loadtest'`, w.detail)
	if err != nil {
		return
	}
	defer rows.Close()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.samples++
	for rows.Next() {
		var what string
		if rows.Scan(&what) == nil {
			w.counts[what]++
		}
	}
}

// stop ends sampling and summarizes it: the average number of busy
// connections and the top states, e.g. "avg 7.2 busy connections: CPU 3.1,
// Lock:transactionid 2.0, idle in transaction 1.5".
func (w *waitSampler) stop() string {
	w.cancel()
	<-w.done
	return w.summary()
}

// add adds the samples of o, stopped, to w: one summary of several phases.
func (w *waitSampler) add(o *waitSampler) {
	o.mu.Lock()
	defer o.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.counts == nil {
		w.counts = map[string]int{}
	}
	w.samples += o.samples
	for k, n := range o.counts {
		w.counts[k] += n
	}
}

// summary is what stop returns.
func (w *waitSampler) summary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.samples == 0 {
		return ""
	}
	type kv struct {
		k string
		n int
	}
	var all []kv
	total := 0
	for k, n := range w.counts {
		all = append(all, kv{k, n})
		total += n
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n || all[i].n == all[j].n && all[i].k < all[j].k })
	top, sep := 5, ", "
	if w.detail {
		top, sep = 12, "\n    "
	}
	parts := make([]string, 0, top)
	for i, e := range all {
		if i == top {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.1f", e.k, float64(e.n)/float64(w.samples)))
	}
	return fmt.Sprintf("PostgreSQL sessions busy (avg over %d samples) %.1f: %s", w.samples, float64(total)/float64(w.samples), strings.Join(parts, sep))
}
