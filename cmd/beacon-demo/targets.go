package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/open-feature/flagd/core/pkg/logger"
	"github.com/open-feature/flagd/core/pkg/sync/file"
	flagd "github.com/open-feature/go-sdk-contrib/providers/flagd/pkg"
	"github.com/open-feature/go-sdk/openfeature"
)

// targetNames are the demo endpoints, served at /<name>. Each has four
// flags: <name>-outage, <name>-latency-ms, <name>-error-rate and
// <name>-slow-body.
var targetNames = []string{"shop", "search", "payments"}

// faults is what the flags ask of one target right now.
type faults struct {
	Outage    bool    `json:"outage"`
	LatencyMS int64   `json:"latency_ms"`
	ErrorRate float64 `json:"error_rate"`
	SlowBody  bool    `json:"slow_body"`
}

// slowBody: a slow response trickles its body for this long.
const (
	slowBodyChunks = 20
	slowBodyPause  = 250 * time.Millisecond
)

// targets serves the demo endpoints, their faults read from a flagd flags
// file through OpenFeature at every request: an edit of the file changes
// the behaviour within about a second, with no restart.
type targets struct {
	client *openfeature.Client
	log    *slog.Logger

	mu     sync.Mutex
	warned map[string]bool
}

// domainSeq numbers the OpenFeature domains of target servers.
var domainSeq struct {
	sync.Mutex
	n int
}

// newTargets starts an OpenFeature flagd provider, in-process, on the flags
// file at path, and waits until it has read it.
func newTargets(path string, log *slog.Logger) (*targets, func(), error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, nil, fmt.Errorf("flags file: %w", err)
	}
	// flagd's fileinfo watcher polls the file every second: unlike an
	// inotify watch, it also sees editors that save by renaming, and edits
	// on the host of a file bind-mounted into a container.
	src := file.NewFileSync(abs, file.FILEINFO, logger.NewLogger(nil, false))
	provider, err := flagd.NewProvider(
		flagd.WithInProcessResolver(),
		flagd.WithCustomSyncProviderAndUri(src, "file:"+abs),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("flagd provider: %w", err)
	}
	// A domain of its own: tests run several target servers in one process.
	domainSeq.Lock()
	domainSeq.n++
	domain := fmt.Sprintf("beacon-demo-%d", domainSeq.n)
	domainSeq.Unlock()
	if err := openfeature.SetNamedProviderAndWait(domain, provider); err != nil {
		return nil, nil, fmt.Errorf("flags file %s: %w", abs, err)
	}
	t := &targets{client: openfeature.NewClient(domain), log: log, warned: map[string]bool{}}
	return t, provider.Shutdown, nil
}

// faultsOf evaluates the four flags of a target. A missing or mistyped flag
// means no fault, with a warning once per flag.
func (t *targets) faultsOf(ctx context.Context, name string) faults {
	ec := openfeature.NewEvaluationContext(name, map[string]any{"target": name})
	var f faults
	var err error
	warn := func(key string, err error) {
		if err == nil {
			return
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		if !t.warned[key] {
			t.warned[key] = true
			t.log.Warn("flag unusable, assuming no fault", "flag", key, "error", err.Error())
		}
	}
	f.Outage, err = t.client.BooleanValue(ctx, name+"-outage", false, ec)
	warn(name+"-outage", err)
	f.LatencyMS, err = t.client.IntValue(ctx, name+"-latency-ms", 0, ec)
	warn(name+"-latency-ms", err)
	f.ErrorRate, err = t.client.FloatValue(ctx, name+"-error-rate", 0, ec)
	warn(name+"-error-rate", err)
	f.SlowBody, err = t.client.BooleanValue(ctx, name+"-slow-body", false, ec)
	warn(name+"-slow-body", err)
	f.LatencyMS = min(max(f.LatencyMS, 0), 60_000)
	f.ErrorRate = min(max(f.ErrorRate, 0), 1)
	return f
}

func (t *targets) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	// What every target's flags say now, for people and tests.
	mux.HandleFunc("GET /flags", func(w http.ResponseWriter, r *http.Request) {
		out := map[string]faults{}
		for _, name := range targetNames {
			out[name] = t.faultsOf(r.Context(), name)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	for _, name := range targetNames {
		mux.HandleFunc("/"+name, func(w http.ResponseWriter, r *http.Request) { t.serve(w, r, name) })
	}
	return mux
}

func (t *targets) serve(w http.ResponseWriter, r *http.Request, name string) {
	f := t.faultsOf(r.Context(), name)
	if f.LatencyMS > 0 {
		timer := time.NewTimer(time.Duration(f.LatencyMS) * time.Millisecond)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-r.Context().Done():
			return
		}
	}
	switch {
	case f.Outage:
		http.Error(w, name+": down (flag "+name+"-outage)", http.StatusServiceUnavailable)
		return
	case f.ErrorRate > 0 && rand.Float64() < f.ErrorRate:
		http.Error(w, name+": internal error (flag "+name+"-error-rate)", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !f.SlowBody {
		_, _ = w.Write([]byte(name + ": ok\n"))
		return
	}
	flusher, _ := w.(http.Flusher)
	chunk := []byte(strings.Repeat(".", 63) + "\n")
	for range slowBodyChunks {
		if _, err := w.Write(chunk); err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-time.After(slowBodyPause):
		case <-r.Context().Done():
			return
		}
	}
}

// runTargets serves the targets on addr until ctx ends.
func runTargets(ctx context.Context, addr, flagsPath string, log *slog.Logger) error {
	t, shutdown, err := newTargets(flagsPath, log)
	if err != nil {
		return err
	}
	defer shutdown()
	srv := &http.Server{Addr: addr, Handler: t.handler(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("demo targets serving", "addr", addr, "targets", targetNames, "flags", flagsPath)
	select {
	case err := <-errc:
		return fmt.Errorf("targets: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
