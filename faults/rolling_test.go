//go:build faults

package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Scenario 3: two API replicas behind haproxy, each restarted in turn
// (SIGTERM, then started again) under GET and POST load: no client sees a
// non-2xx answer.
func testRollingRestart(t *testing.T, s *suite) {
	db := s.newDatabase(t, "rolling")
	dir := filepath.Join(s.work, "haproxy")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// One environment per replica: a restart reuses its ports. The token
	// key is the suite's, so a token works on both.
	envs := map[string]envMap{"a": s.env(db.url), "b": s.env(db.url)}
	replicas := map[string]*beaconProc{}
	for _, name := range []string{"a", "b"} {
		replicas[name] = s.startBeacon(t, "api "+name, "api", envs[name])
	}
	hp := startHAProxy(t, dir, map[string]string{"a": envs["a"]["BEACON_HTTP_ADDR"], "b": envs["b"]["BEACON_HTTP_ADDR"]})
	hp.waitUp(t, "a", "b")

	c := newClient(hp.front)
	defer c.close()
	admin := c.signIn(t, adminEmail, adminPassword)
	var m struct {
		ID int64 `json:"id"`
	}
	admin.must(t, http.MethodPost, "/v1/monitors", monitorBody("rolling", s.target.url("/ok")), http.StatusCreated, &m)
	getPath := fmt.Sprintf("/v1/monitors/%d", m.ID)

	ld := startLoad(4, 100_000, 20*time.Millisecond, func(seq int) result {
		r := result{method: http.MethodGet, path: getPath, start: time.Now()}
		var body []byte
		if seq%2 == 1 {
			r.method, r.path = http.MethodPost, "/v1/monitors"
			body, _ = json.Marshal(monitorBody(fmt.Sprintf("rolling %d", seq), s.target.url("/ok")))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.resp, r.err = admin.send(ctx, r.method, r.path, body, "application/json", nil)
		r.end = time.Now()
		return r
	})
	defer ld.stop()
	flowing := func(what string) {
		t.Helper()
		mark := time.Now()
		waitFor(t, "100 successful requests "+what, 30*time.Second, 20*time.Millisecond, func() (bool, string) {
			n := ld.okSince(mark)
			return n >= 100, fmt.Sprintf("%d; all so far: %s", n, tally(ld.snapshot()))
		}, hp.proc)
	}

	flowing("before the restarts")
	for _, name := range []string{"a", "b"} {
		took, err := replicas[name].terminate(30 * time.Second)
		if err != nil {
			t.Errorf("replica %s did not stop cleanly: %v", name, err)
		}
		replicas[name] = s.startBeacon(t, "api "+name+" (restarted)", "api", envs[name])
		hp.waitUp(t, "a", "b")
		t.Logf("replica %s stopped %s after SIGTERM, restarted and back in haproxy", name, took.Round(time.Millisecond))
		flowing("after restarting " + name)
	}
	results := ld.stop()
	if bad := failed(results); len(bad) > 0 {
		t.Errorf("%d of %d requests through haproxy were not answered 2xx (%s):%s", len(bad), len(results), tally(results), examples(bad, 10))
	}
	t.Logf("%d requests during the rolling restart: %s", len(results), tally(results))
}
