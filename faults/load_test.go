//go:build faults

package faults

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// result is one request of a load run.
type result struct {
	seq        int
	method     string
	path       string
	key        string // what identifies the request (e.g. its Idempotency-Key)
	body       []byte // the request body, to send it again
	start, end time.Time
	resp       *response // nil on a transport error
	err        error
}

func (r result) ok() bool { return r.resp != nil && r.resp.status >= 200 && r.resp.status < 300 }

// String describes the outcome for failure messages.
func (r result) String() string {
	out := "transport error: " + fmt.Sprint(r.err)
	if r.resp != nil {
		out = r.resp.String()
	}
	return fmt.Sprintf("#%d %s %s at %s: %s", r.seq, r.method, r.path, r.start.Format("15:04:05.000"), out)
}

// load runs requests from a few workers until stopped or max requests were
// sent; each worker waits pace between its requests. Stopping lets the
// requests in flight finish.
type load struct {
	mu       sync.Mutex
	results  []result
	next     atomic.Int64
	stopping atomic.Bool
	wg       sync.WaitGroup
}

func startLoad(workers, max int, pace time.Duration, do func(seq int) result) *load {
	l := &load{}
	for range workers {
		l.wg.Go(func() {
			for !l.stopping.Load() {
				seq := int(l.next.Add(1) - 1)
				if seq >= max {
					return
				}
				r := do(seq)
				r.seq = seq
				l.mu.Lock()
				l.results = append(l.results, r)
				l.mu.Unlock()
				if pace > 0 {
					time.Sleep(pace)
				}
			}
		})
	}
	return l
}

// stop waits for the requests in flight and returns every result in order.
func (l *load) stop() []result {
	l.stopping.Store(true)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]result(nil), l.results...)
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

// wait waits until the workers have sent max requests and returns every
// result in order.
func (l *load) wait() []result {
	l.wg.Wait()
	return l.stop()
}

// snapshot returns a copy of the results so far.
func (l *load) snapshot() []result {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]result(nil), l.results...)
}

// okSince counts the successful requests started at or after t.
func (l *load) okSince(t time.Time) int {
	n := 0
	for _, r := range l.snapshot() {
		if r.ok() && !r.start.Before(t) {
			n++
		}
	}
	return n
}

// tally summarises outcomes: "201×812, 503×14, transport error×2".
func tally(rs []result) string {
	counts := map[string]int{}
	for _, r := range rs {
		k := "transport error"
		if r.resp != nil {
			k = fmt.Sprint(r.resp.status)
		}
		counts[k]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, counts[k])
	}
	return strings.Join(parts, ", ")
}

// examples lists up to n results, one a line.
func examples(rs []result, n int) string {
	var b strings.Builder
	for i, r := range rs {
		if i == n {
			fmt.Fprintf(&b, "\n    ... and %d more", len(rs)-n)
			break
		}
		b.WriteString("\n    " + r.String())
	}
	return b.String()
}
