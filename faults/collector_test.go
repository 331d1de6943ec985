//go:build faults

package faults

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Scenario 5: the OpenTelemetry collector is unreachable (closed port) or
// silent (accepts, never answers). Requests keep succeeding and the
// process's memory stays bounded.
func testCollectorUnreachable(t *testing.T, s *suite) {
	const (
		requests  = 2000
		spread    = 15 * time.Second // longer than the exporters' 10 s timeout
		maxGrowth = 100 << 20
	)
	db := s.newDatabase(t, "collector")
	silent := startSilentListener(t)
	for _, tc := range []struct{ name, endpoint string }{
		{"ClosedPort", "http://" + freeAddr()},
		{"SilentListener", "http://" + silent.addr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := s.env(db.url)
			env["OTEL_EXPORTER_OTLP_ENDPOINT"] = tc.endpoint
			// Export often, so the run meets many failed exports.
			env["OTEL_METRIC_EXPORT_INTERVAL"] = "1000"
			env["OTEL_BSP_SCHEDULE_DELAY"] = "200"
			env["OTEL_BLRP_SCHEDULE_DELAY"] = "200"
			env["BEACON_LOG_LEVEL"] = "info" // a log record per request, for the log exporter too
			all := s.startBeacon(t, "all ("+tc.name+")", "all", env)
			c := newClient(all.api)
			defer c.close()
			admin := c.signIn(t, adminEmail, adminPassword)
			var m struct {
				ID int64 `json:"id"`
			}
			admin.must(t, http.MethodPost, "/v1/monitors", monitorBody("collector "+tc.name, s.target.url("/ok")), http.StatusCreated, &m)
			path := fmt.Sprintf("/v1/monitors/%d", m.ID)
			get := func(int) result {
				r := result{method: http.MethodGet, path: path, start: time.Now()}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				r.resp, r.err = admin.send(ctx, r.method, r.path, nil, "", nil)
				r.end = time.Now()
				return r
			}

			warm := startLoad(4, 200, 0, get).wait()
			if bad := failed(warm); len(bad) > 0 {
				t.Fatalf("warm-up: %d of %d GETs failed:%s", len(bad), len(warm), examples(bad, 5))
			}
			before, err := all.rss()
			if err != nil {
				t.Fatal(err)
			}
			results := startLoad(4, requests, 4*spread/requests, get).wait()
			after, err := all.rss()
			if err != nil {
				t.Fatal(err)
			}
			if err := all.exited(); err != nil {
				t.Fatal(err)
			}
			if bad := failed(results); len(bad) > 0 {
				t.Errorf("%d of %d GETs failed with the collector %s (%s):%s", len(bad), len(results), tc.name, tally(results), examples(bad, 10))
			}
			var slowest time.Duration
			for _, r := range results {
				slowest = max(slowest, r.end.Sub(r.start))
			}
			t.Logf("%d GETs in %s (%s, slowest %s); RSS %d MB -> %d MB; %d \"telemetry export failing\" log lines",
				len(results), results[len(results)-1].end.Sub(results[0].start).Round(time.Millisecond), tally(results),
				slowest.Round(time.Millisecond), before>>20, after>>20, all.out.Count("telemetry export failing"))
			if after-before > maxGrowth {
				t.Errorf("RSS grew by %d MB during %d requests with the collector %s (bound: %d MB)", (after-before)>>20, len(results), tc.name, maxGrowth>>20)
			}
		})
	}
}

// silentListener accepts TCP connections and never answers; it reads
// what is sent so the sender is not simply blocked by a full window.
type silentListener struct {
	addr  string
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startSilentListener(t *testing.T) *silentListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &silentListener{addr: ln.Addr().String(), ln: ln}
	l.wg.Go(func() {
		for range 100_000 {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			l.mu.Lock()
			l.conns = append(l.conns, conn)
			l.mu.Unlock()
			l.wg.Go(func() { _, _ = io.Copy(io.Discard, conn) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		l.mu.Lock()
		for _, c := range l.conns {
			c.Close()
		}
		l.mu.Unlock()
		l.wg.Wait()
	})
	return l
}
