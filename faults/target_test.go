//go:build faults

package faults

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// target is the monitors' check target, on loopback: /ok answers at once,
// /sleep/{ms} after ms milliseconds (or when the checker gives up).
type target struct {
	base string // http://127.0.0.1:port
	srv  *http.Server
	done chan struct{}
	hits atomic.Int64
}

func startTarget() (*target, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	tg := &target{base: "http://" + ln.Addr().String(), done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ok", func(w http.ResponseWriter, _ *http.Request) {
		tg.hits.Add(1)
		_, _ = w.Write([]byte("ok"))
	})
	mux.HandleFunc("GET /sleep/{ms}", func(w http.ResponseWriter, r *http.Request) {
		tg.hits.Add(1)
		ms, err := strconv.Atoi(r.PathValue("ms"))
		if err != nil || ms < 0 || ms > 60_000 {
			http.Error(w, "bad delay", http.StatusBadRequest)
			return
		}
		timer := time.NewTimer(time.Duration(ms) * time.Millisecond)
		defer timer.Stop()
		select {
		case <-timer.C:
			_, _ = w.Write([]byte("ok"))
		case <-r.Context().Done():
		}
	})
	tg.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(tg.done)
		_ = tg.srv.Serve(ln)
	}()
	return tg, nil
}

// url returns the target URL of path ("/ok", "/sleep/300").
func (tg *target) url(path string) string { return tg.base + path }

func (tg *target) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = tg.srv.Shutdown(ctx)
	<-tg.done
}
