package telemetry

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// stdoutHandler writes records as JSON or text, each one made under a span
// carrying trace_id and span_id, so a log line leads to its trace.
func stdoutHandler(w io.Writer, format string, level slog.Level) slog.Handler {
	if w == nil {
		w = io.Discard
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return traceIDs{h}
}

type traceIDs struct{ slog.Handler }

func (h traceIDs) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceIDs) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceIDs{h.Handler.WithAttrs(attrs)}
}
func (h traceIDs) WithGroup(name string) slog.Handler { return traceIDs{h.Handler.WithGroup(name)} }

// MinLevel filters h to records at min or above.
func MinLevel(h slog.Handler, min slog.Level) slog.Handler { return minLevel{Handler: h, min: min} }

type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{Handler: h.Handler.WithAttrs(attrs), min: h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: h.Handler.WithGroup(name), min: h.min}
}

// Quieter raises a logger's threshold, e.g. for a library that reports
// routine statistics at info level every few seconds (River does), and
// logs a repeated record at most once a minute (see Deduplicated).
func Quieter(log *slog.Logger, min slog.Level) *slog.Logger {
	return slog.New(Deduplicated(MinLevel(log.Handler(), min), time.Minute))
}

// Deduplicated passes the first record of each level and message, then
// drops the same one until window has passed; the next one that passes says
// how many were dropped ("repeated"). A library that logs the same failure
// on every poll (River, each 100 ms per queue, while PostgreSQL is down)
// then logs it about once per window.
func Deduplicated(h slog.Handler, window time.Duration) slog.Handler {
	return dedup{Handler: h, state: &dedupState{window: window, seen: map[dedupKey]*dedupEntry{}}}
}

type dedup struct {
	slog.Handler
	state *dedupState
}

type dedupKey struct {
	level slog.Level
	msg   string
}

type dedupEntry struct {
	passed  time.Time
	dropped int
}

type dedupState struct {
	window time.Duration
	mu     sync.Mutex
	seen   map[dedupKey]*dedupEntry
}

// maxDedupKeys bounds the messages remembered; past it, all are forgotten.
const maxDedupKeys = 1000

func (h dedup) Handle(ctx context.Context, r slog.Record) error {
	s := h.state
	k := dedupKey{r.Level, r.Message}
	s.mu.Lock()
	e := s.seen[k]
	if e != nil && r.Time.Sub(e.passed) < s.window {
		e.dropped++
		s.mu.Unlock()
		return nil
	}
	if e == nil {
		if len(s.seen) >= maxDedupKeys {
			clear(s.seen)
		}
		e = &dedupEntry{}
		s.seen[k] = e
	}
	dropped := e.dropped
	e.passed, e.dropped = r.Time, 0
	s.mu.Unlock()
	if dropped > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("repeated", dropped))
	}
	return h.Handler.Handle(ctx, r)
}

func (h dedup) WithAttrs(attrs []slog.Attr) slog.Handler {
	return dedup{Handler: h.Handler.WithAttrs(attrs), state: h.state}
}

func (h dedup) WithGroup(name string) slog.Handler {
	return dedup{Handler: h.Handler.WithGroup(name), state: h.state}
}
