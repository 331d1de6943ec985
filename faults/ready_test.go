//go:build faults

package faults

import (
	"fmt"
	"net/http"
	"sync"
	"time"
)

// readyWatch polls a /readyz and keeps what it answered, and when.
type readyWatch struct {
	mu      sync.Mutex
	samples []readySample
	stopped chan struct{}
	done    chan struct{}
	once    sync.Once
}

type readySample struct {
	at     time.Time
	status int // 0: no answer
}

func watchReady(ops string, every time.Duration) *readyWatch {
	w := &readyWatch{stopped: make(chan struct{}), done: make(chan struct{})}
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	go func() {
		defer close(w.done)
		defer hc.CloseIdleConnections()
		for range int(10 * time.Minute / every) {
			status, _, _ := getStatus(hc, ops+"/readyz")
			w.mu.Lock()
			w.samples = append(w.samples, readySample{time.Now(), status})
			w.mu.Unlock()
			select {
			case <-w.stopped:
				return
			case <-time.After(every):
			}
		}
	}()
	return w
}

func (w *readyWatch) stop() {
	w.once.Do(func() { close(w.stopped) })
	<-w.done
}

// firstOKAfter returns when /readyz first answered 200 at or after t.
func (w *readyWatch) firstOKAfter(t time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.samples {
		if s.status == http.StatusOK && !s.at.Before(t) {
			return s.at
		}
	}
	return time.Time{}
}

// saw reports whether /readyz answered status between from and to.
func (w *readyWatch) saw(status int, from, to time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.samples {
		if s.status == status && !s.at.Before(from) && !s.at.After(to) {
			return true
		}
	}
	return false
}

// between summarises the answers between from and to.
func (w *readyWatch) between(from, to time.Time) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	counts := map[int]int{}
	for _, s := range w.samples {
		if !s.at.Before(from) && !s.at.After(to) {
			counts[s.status]++
		}
	}
	return fmt.Sprintf("answers (0 = none): %v", counts)
}
