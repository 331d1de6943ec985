package main

import (
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The load generator: n workers, each sending one request at a time over
// keep-alive connections and recording every latency (closed loop), or the
// same workers fed by a ticker (open loop at a fixed rate). Percentiles are
// exact: computed from every sample, not from a histogram.

// loadSpec describes one load.
type loadSpec struct {
	method      string
	url         func(seq uint64) string // the URL of the seq-th request
	token       string                  // bearer token; "" sends none
	concurrency int
	warmup      time.Duration // unrecorded phase first (closed loop only)
	duration    time.Duration // longest measured phase
	// beforeMeasure runs between warmup and the measured phase (e.g. to
	// insert a backlog); stop, when it closes, ends the measured phase early.
	beforeMeasure func(ctx context.Context) (stop <-chan struct{}, err error)
	// rate, when > 0, sends this many requests per second (open loop) for
	// duration instead of a closed loop.
	rate int
	// onResponse, when set, receives every measured response's status and
	// body; it is called from several workers at once.
	onResponse func(status int, body []byte)
}

// loadResult is what one measured phase saw.
type loadResult struct {
	count    int                // responses, any status
	errors   int                // requests without a response (transport errors, timeouts)
	dropped  int                // open loop: ticks skipped because every worker was busy
	statuses map[int]int        // responses by status
	lat      []time.Duration    // latency of every response, sorted
	elapsed  time.Duration      // length of the measured phase
	firstErr string             // the first transport error, for the report
	cpu      string             // cores used while measured (set by runner.load)
	cores    map[string]float64 // the same by process name
}

// rate is responses per second over the measured phase.
func (r loadResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.count) / r.elapsed.Seconds()
}

// non2xx counts responses outside 200-299.
func (r loadResult) non2xx() int {
	n := 0
	for code, c := range r.statuses {
		if code < 200 || code > 299 {
			n += c
		}
	}
	return n
}

// pct returns the q-quantile latency (nearest rank); 0 without samples.
func (r loadResult) pct(q float64) time.Duration {
	return quantile(r.lat, q)
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// maxRequestsPerWorker bounds a worker's loop whatever the clock says.
const maxRequestsPerWorker = 5_000_000

// requestTimeout bounds one request: above the longest ?wait= we send (10 s).
const requestTimeout = 30 * time.Second

// newLoadClient returns a client with keep-alive and an idle connection per worker.
func newLoadClient(concurrency int) *http.Client {
	return &http.Client{
		Timeout: requestTimeout,
		Transport: &http.Transport{
			Proxy:               nil, // loopback only: never through a proxy
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        concurrency * 2,
			MaxIdleConnsPerHost: concurrency * 2,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}
}

// runLoad runs spec's warmup, then its measured phase, and returns what the
// measured phase saw. Its error is ctx's or beforeMeasure's.
func runLoad(ctx context.Context, spec loadSpec) (loadResult, error) {
	client := newLoadClient(spec.concurrency)
	defer client.CloseIdleConnections()
	var seq atomic.Uint64
	if spec.warmup > 0 && spec.rate == 0 {
		runPhase(ctx, client, spec, &seq, spec.warmup, nil, false)
	}
	if err := ctx.Err(); err != nil {
		return loadResult{}, err
	}
	var stop <-chan struct{}
	if spec.beforeMeasure != nil {
		var err error
		if stop, err = spec.beforeMeasure(ctx); err != nil {
			return loadResult{}, err
		}
	}
	res := runPhase(ctx, client, spec, &seq, spec.duration, stop, true)
	return res, ctx.Err()
}

// workerStats is one worker's share of a phase.
type workerStats struct {
	count, errors int
	statuses      map[int]int
	lat           []time.Duration
	firstErr      string
}

// runPhase runs the workers for d (or until stop closes or ctx ends) and
// merges what they recorded.
func runPhase(ctx context.Context, client *http.Client, spec loadSpec, seq *atomic.Uint64, d time.Duration, stop <-chan struct{}, record bool) loadResult {
	deadline := time.Now().Add(d)
	var permits chan struct{}
	var dropped int
	var feeder sync.WaitGroup
	if spec.rate > 0 {
		// Open loop: a ticker hands out permits; a tick finding every worker busy is dropped.
		permits = make(chan struct{}, spec.concurrency)
		feeder.Go(func() {
			defer close(permits)
			tick := time.NewTicker(time.Second / time.Duration(spec.rate))
			defer tick.Stop()
			for range int(d.Seconds()*float64(spec.rate)) + 1 {
				select {
				case <-ctx.Done():
					return
				case <-stop:
					return
				case <-tick.C:
				}
				if time.Now().After(deadline) {
					return
				}
				select {
				case permits <- struct{}{}:
				default:
					dropped++
				}
			}
		})
	}
	per := make([]workerStats, spec.concurrency)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range spec.concurrency {
		wg.Go(func() { per[w] = runWorker(ctx, client, spec, seq, deadline, stop, permits, record) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	feeder.Wait()

	res := loadResult{statuses: map[int]int{}, elapsed: elapsed, dropped: dropped}
	for _, s := range per {
		res.count += s.count
		res.errors += s.errors
		res.lat = append(res.lat, s.lat...)
		for code, n := range s.statuses {
			res.statuses[code] += n
		}
		if res.firstErr == "" {
			res.firstErr = s.firstErr
		}
	}
	slices.Sort(res.lat)
	return res
}

// runWorker sends requests one at a time until the deadline, stop, ctx's
// end, or (open loop) the permits run out.
func runWorker(ctx context.Context, client *http.Client, spec loadSpec, seq *atomic.Uint64, deadline time.Time, stop <-chan struct{}, permits <-chan struct{}, record bool) workerStats {
	s := workerStats{statuses: map[int]int{}}
	for range maxRequestsPerWorker {
		if permits != nil {
			if _, ok := <-permits; !ok {
				break
			}
		}
		if ctx.Err() != nil || time.Now().After(deadline) || closed(stop) {
			break
		}
		status, body, lat, err := send(ctx, client, spec, seq.Add(1)-1)
		if !record {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				break // interrupted: not the server's fault
			}
			s.errors++
			if s.firstErr == "" {
				s.firstErr = err.Error()
			}
			continue
		}
		s.count++
		s.statuses[status]++
		s.lat = append(s.lat, lat)
		if spec.onResponse != nil {
			spec.onResponse(status, body)
		}
	}
	return s
}

// send does one request and reads the whole response.
func send(ctx context.Context, client *http.Client, spec loadSpec, seq uint64) (int, []byte, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, spec.method, spec.url(seq), nil)
	if err != nil {
		return 0, nil, 0, err
	}
	if spec.token != "" {
		req.Header.Set("Authorization", "Bearer "+spec.token)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, 0, err
	}
	var body []byte
	if spec.onResponse != nil {
		body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	resp.Body.Close()
	lat := time.Since(start)
	if err != nil {
		return 0, nil, 0, err
	}
	return resp.StatusCode, body, lat, nil
}

// closed reports whether c is closed (false for nil).
func closed(c <-chan struct{}) bool {
	if c == nil {
		return false
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}
