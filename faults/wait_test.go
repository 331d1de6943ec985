//go:build faults

package faults

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// waitFor polls check every `every` until it reports done, for at most
// timeout. check returns what it saw, for the failure message. If one of
// the watched processes dies unexpectedly the wait fails at once; on
// timeout it fails with the last thing seen and the processes' output.
func waitFor(t *testing.T, what string, timeout, every time.Duration, check func() (done bool, seen string), watch ...*proc) {
	t.Helper()
	if err := poll(timeout, every, check, watch...); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// poll is waitFor's loop; it returns the failure instead of reporting it.
func poll(timeout, every time.Duration, check func() (bool, string), watch ...*proc) error {
	deadline := time.Now().Add(timeout)
	seen := "nothing yet"
	for range int(timeout/every) + 2 {
		for _, p := range watch {
			if err := p.exited(); err != nil {
				return fmt.Errorf("last saw %s; %v", seen, err)
			}
		}
		done, s := check()
		if s != "" {
			seen = s
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(every)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "not within %s; last saw: %s", timeout, seen)
	for _, p := range watch {
		fmt.Fprintf(&b, "\n  %s output (tail):\n%s", p.name, p.tail())
	}
	return fmt.Errorf("%s", b.String())
}
