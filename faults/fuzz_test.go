//go:build faults

package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

// Scenario 7: every operation of the served OpenAPI document gets malformed
// input (wrong types, 100 KB strings, NUL characters in every string field,
// negative and huge numbers, missing required fields, invalid JSON, wrong
// content types), with and without a token. No answer is a 5xx, every
// error is application/problem+json, no answer echoes more than 1 KB of the
// input, none takes more than 2 s. At most 30 requests per operation,
// chosen with a fixed seed. FAULTS_FUZZ_VERBOSE=1 logs every request.
func testFuzzOpenAPI(t *testing.T, s *suite) {
	const (
		seed     = 20261202
		perOp    = 30
		slowest  = 2 * time.Second
		maxEcho  = 1024
		hugeSize = 100 << 10
	)
	db := s.newDatabase(t, "fuzz")
	api := s.startBeacon(t, "api", "api", s.env(db.url))
	c := newClient(api.api)
	defer c.close()
	admin := c.signIn(t, adminEmail, adminPassword)

	fixtures := fuzzFixtures(t, admin, s.target.url("/ok"))

	var doc map[string]any
	{
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := c.send(ctx, http.MethodGet, "/openapi.json", nil, "", nil)
		cancel()
		if err != nil || r.status != http.StatusOK {
			t.Fatalf("GET /openapi.json: %v %v", err, r)
		}
		if err := json.Unmarshal(r.body, &doc); err != nil {
			t.Fatalf("GET /openapi.json: %v", err)
		}
	}
	ops := operations(doc)
	if len(ops) == 0 {
		t.Fatal("the OpenAPI document has no operations")
	}

	g := &fuzzGen{doc: doc, rng: rand.New(rand.NewPCG(seed, seed)), huge: hugeString(hugeSize), target: s.target.url("/ok"), fixtures: fixtures}
	var failures []string
	total, statuses := 0, map[int]int{}
	verbose := os.Getenv("FAULTS_FUZZ_VERBOSE") != ""
	for _, op := range ops {
		for _, fc := range g.cases(op, perOp) {
			who := admin
			if fc.noToken {
				who = c.withToken("")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			start := time.Now()
			r, err := who.send(ctx, op.method, fc.path, fc.body, fc.contentType, fc.header)
			took := time.Since(start)
			cancel()
			total++
			what := fmt.Sprintf("%s %s [%s]", op.method, op.template, fc.label)
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s: no answer: %v", what, err))
				continue
			}
			statuses[r.status]++
			if verbose {
				t.Logf("%s: %d %s (%d bytes, %s) %.200s", what, r.status, r.contentType(), len(r.body), took.Round(time.Millisecond), r.body)
			}
			var broken []string
			if r.status >= 500 {
				broken = append(broken, "a 5xx")
			}
			if r.status >= 400 && !r.isProblem() {
				broken = append(broken, "an error that is not application/problem+json")
			}
			if took > slowest {
				broken = append(broken, fmt.Sprintf("slow (%s > %s)", took.Round(time.Millisecond), slowest))
			}
			if echoed(r.body, g.huge, maxEcho) {
				broken = append(broken, fmt.Sprintf("%d bytes echoing more than %d bytes of the input", len(r.body), maxEcho))
			}
			if len(broken) > 0 {
				failures = append(failures, fmt.Sprintf("%s: %s: %s", what, strings.Join(broken, ", "), r))
			}
		}
	}
	t.Logf("%d requests over %d operations (seed %d); statuses: %v", total, len(ops), seed, statuses)
	if len(failures) > 0 {
		sort.Strings(failures)
		t.Errorf("%d of %d fuzz requests broke a rule:\n    %s", len(failures), total, strings.Join(first(failures, 60), "\n    "))
	}
}

// fuzzFixtures creates what the operations act on and returns, by path
// template, the value of its path variable: real resources for the
// caller's own paths; other paths get ids nobody has (so no user, the
// admin least of all, is ever changed).
func fuzzFixtures(t *testing.T, admin *apiClient, targetURL string) map[string]string {
	t.Helper()
	var mon struct {
		ID int64 `json:"id"`
	}
	body := monitorBody("fuzz fixture", targetURL)
	body["public_slug"] = "fuzz-status"
	admin.must(t, http.MethodPost, "/v1/monitors", body, http.StatusCreated, &mon)
	var run struct {
		JobID int64 `json:"job_id"`
	}
	admin.must(t, http.MethodPost, fmt.Sprintf("/v1/monitors/%d/checks", mon.ID), nil, http.StatusAccepted, &run)
	var cl struct {
		ID int64 `json:"id"`
	}
	admin.must(t, http.MethodPost, "/v1/clients", map[string]any{"name": "fuzz fixture"}, http.StatusCreated, &cl)
	return map[string]string{
		"/v1/monitors/{id}":        fmt.Sprint(mon.ID),
		"/v1/jobs/{id}":            fmt.Sprint(run.JobID),
		"/v1/clients/{id}":         fmt.Sprint(cl.ID),
		"/v1/public/status/{slug}": "fuzz-status",
	}
}

// hugeString is n bytes of a 16-byte pattern: any 1 KB of it found in an
// answer is an echo.
func hugeString(n int) string {
	const unit = "FuzzEcho01234567"
	return strings.Repeat(unit, n/len(unit))
}

// echoed reports whether body repeats more than limit bytes of huge: the
// pattern repeats every 16 bytes, so looking for the 16 shifted windows of
// limit+1 bytes is enough.
func echoed(body []byte, huge string, limit int) bool {
	if len(body) <= limit || len(huge) <= limit+16 {
		return false
	}
	for off := range 16 {
		if bytes.Contains(body, []byte(huge[off:off+limit+1])) {
			return true
		}
	}
	return false
}
