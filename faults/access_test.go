//go:build faults

package faults

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// Scenario 6: a user deleted, disabled or demoted loses access at once,
// with the tokens they already hold; and the sign-in limit of an account
// holds whatever address the attempts claim to come from.
func testAccessRevoked(t *testing.T, s *suite) {
	db := s.newDatabase(t, "access")
	api := s.startBeacon(t, "api", "api", s.env(db.url))
	c := newClient(api.api)
	defer c.close()
	admin := c.signIn(t, adminEmail, adminPassword)

	// newUser creates a user as the admin and signs them in.
	newUser := func(t *testing.T, name, role string) (int64, *apiClient) {
		t.Helper()
		email, password := name+"@faults.example", "faults-password-"+name
		var u struct {
			ID int64 `json:"id"`
		}
		admin.must(t, http.MethodPost, "/v1/admin/users", map[string]any{"email": email, "password": password, "role": role}, http.StatusCreated, &u)
		return u.ID, c.signIn(t, email, password)
	}
	// expect asserts the status of a request made with a user's token.
	expect := func(t *testing.T, who *apiClient, method, path string, body any, want int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r, err := who.call(ctx, method, path, body, nil)
		if err != nil {
			t.Errorf("%s %s: %v", method, path, err)
			return
		}
		if r.status != want {
			t.Errorf("%s %s: want %d, got %s", method, path, want, r)
		}
	}
	seq := 0
	anotherUser := func() map[string]any {
		seq++
		return map[string]any{"email": fmt.Sprintf("made-%d@faults.example", seq), "password": "faults-password-made", "role": "member"}
	}

	// The user's own token is used in a loop while the admin changes the
	// account: every request sent after the admin's change was answered
	// must be refused, on /v1/me and on an admin operation. A user whose
	// access outlives the change by a moment only loses a race, so each
	// change is made to a few users.
	const rounds = 3
	t.Run("Deleted", func(t *testing.T) {
		for i := range rounds {
			id, u := newUser(t, fmt.Sprintf("deleted-%d", i), "admin")
			expect(t, u, http.MethodPost, "/v1/admin/users", anotherUser(), http.StatusCreated)
			refusedAtOnce(t, u, map[string]int{"/v1/me": http.StatusUnauthorized, "/v1/admin/users": http.StatusUnauthorized}, func() {
				admin.must(t, http.MethodDelete, fmt.Sprintf("/v1/admin/users/%d", id), nil, http.StatusNoContent, nil)
			})
			expect(t, u, http.MethodPost, "/v1/admin/users", anotherUser(), http.StatusUnauthorized)
		}
	})
	t.Run("Disabled", func(t *testing.T) {
		for i := range rounds {
			id, u := newUser(t, fmt.Sprintf("disabled-%d", i), "admin")
			refusedAtOnce(t, u, map[string]int{"/v1/me": http.StatusUnauthorized, "/v1/admin/users": http.StatusUnauthorized}, func() {
				admin.must(t, http.MethodPatch, fmt.Sprintf("/v1/admin/users/%d", id), map[string]any{"disabled": true}, http.StatusOK, nil)
			})
			expect(t, u, http.MethodPost, "/v1/admin/users", anotherUser(), http.StatusUnauthorized)
		}
	})
	t.Run("Demoted", func(t *testing.T) {
		for i := range rounds {
			id, u := newUser(t, fmt.Sprintf("demoted-%d", i), "admin")
			refusedAtOnce(t, u, map[string]int{"/v1/me": http.StatusOK, "/v1/admin/users": http.StatusForbidden}, func() {
				admin.must(t, http.MethodPatch, fmt.Sprintf("/v1/admin/users/%d", id), map[string]any{"role": "member"}, http.StatusOK, nil)
			})
			expect(t, u, http.MethodPost, "/v1/admin/users", anotherUser(), http.StatusForbidden)
		}
	})
	t.Run("SignInLimitAcrossAddresses", func(t *testing.T) {
		const attempts, allowed = 40, 10
		email := "limited@faults.example"
		admin.must(t, http.MethodPost, "/v1/admin/users", map[string]any{"email": email, "password": "faults-password-limited", "role": "member"}, http.StatusCreated, nil)
		var statuses []string
		limited, firstLimited := 0, 0
		for i := range attempts {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			// 203.0.113.0/24 is for documentation: a new address each time.
			r, err := c.passwordGrant(ctx, email, "wrong-password-"+fmt.Sprint(i), fmt.Sprintf("203.0.113.%d", i+1))
			cancel()
			if err != nil {
				t.Fatalf("sign-in attempt %d: %v", i+1, err)
			}
			statuses = append(statuses, fmt.Sprint(r.status))
			switch r.status {
			case http.StatusTooManyRequests:
				limited++
				if firstLimited == 0 {
					firstLimited = i + 1
				}
				if r.header.Get("Retry-After") == "" {
					t.Errorf("attempt %d: 429 without Retry-After: %s", i+1, r)
				}
			case http.StatusBadRequest, http.StatusUnauthorized:
				if firstLimited > 0 {
					t.Errorf("attempt %d was checked again (%d) after attempt %d had been limited", i+1, r.status, firstLimited)
				}
			default:
				t.Errorf("attempt %d: want 400 (invalid_grant) or 429, got %s", i+1, r)
			}
		}
		t.Logf("%d wrong passwords from %d addresses: %s", attempts, attempts, strings.Join(statuses, " "))
		if firstLimited == 0 || firstLimited > allowed {
			t.Errorf("%d wrong passwords for one account, each from another X-Forwarded-For: %d answered 429 (first at attempt %d); want 429 from attempt %d on at the latest",
				attempts, limited, firstLimited, allowed)
		}
	})
}

// refusedAtOnce GETs the paths with the user's token in a loop (two at a
// time) while change (the admin's request) runs; once it has returned,
// every request sent after must get want[path]. Those answered before it
// began must have succeeded: the loop also fills whatever the API
// remembers of the user.
func refusedAtOnce(t *testing.T, user *apiClient, want map[string]int, change func()) {
	t.Helper()
	paths := slices.Sorted(maps.Keys(want))
	ld := startLoad(2, 20_000, 0, func(seq int) result {
		r := result{method: http.MethodGet, path: paths[seq%len(paths)], start: time.Now()}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.resp, r.err = user.send(ctx, r.method, r.path, nil, "", nil)
		r.end = time.Now()
		return r
	})
	defer ld.stop()
	started := time.Now()
	waitFor(t, "20 requests of the user to succeed before the change", 10*time.Second, 5*time.Millisecond, func() (bool, string) {
		n := ld.okSince(started)
		return n >= 20, fmt.Sprintf("%d; all: %s", n, tally(ld.snapshot()))
	})
	changing := time.Now()
	change()
	changed := time.Now()
	waitFor(t, "50 requests of the user sent after the change", 10*time.Second, 5*time.Millisecond, func() (bool, string) {
		n := len(startedAfter(ld.snapshot(), changed))
		return n >= 50, fmt.Sprint(n)
	})
	results := ld.stop()
	var before []result // answered before the change began: they must have succeeded
	for _, r := range results {
		if r.end.Before(changing) && !r.ok() {
			before = append(before, r)
		}
	}
	if len(before) > 0 {
		t.Fatalf("before the change, requests with the user's token failed:%s", examples(before, 5))
	}
	after := startedAfter(results, changed)
	var wrong []result
	for _, r := range after {
		if r.resp == nil || r.resp.status != want[r.path] {
			wrong = append(wrong, r)
		}
	}
	if len(wrong) > 0 {
		t.Errorf("%d of %d requests sent with the user's token after the change was answered (at %s) were not refused as %v; the first came %s after it:%s",
			len(wrong), len(after), changed.Format("15:04:05.000"), want, wrong[0].start.Sub(changed), examples(wrong, 10))
	}
}
