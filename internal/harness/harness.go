// Package harness holds what Beacon's out-of-process test beds (the load
// test, the fault suite) share for running real processes: the module's
// root, and the tail of a child's output for failure messages.
package harness

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Tail keeps the last Max bytes written to it, safe for concurrent use.
type Tail struct {
	Max int
	mu  sync.Mutex
	buf []byte
}

// Write implements io.Writer.
func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.Max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// Last returns the last n lines kept.
func (t *Tail) Last(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimRight(string(t.buf), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Count returns how many times s occurs in what is kept.
func (t *Tail) Count(s string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Count(t.buf, []byte(s))
}

// ModuleRoot returns the Beacon module's root, searched from the working
// directory upwards.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for range 64 {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/beaconhq/beacon\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("run from inside the Beacon repository (no go.mod of github.com/beaconhq/beacon above the working directory)")
}
