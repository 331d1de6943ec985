package telemetry_test

// Profiling tests push to a local net/http sink of our own (Pyroscope is
// AGPL: it is neither built nor run here) that decodes what the client
// sends to /ingest. The CPU profiler is process-wide, so none of these
// tests runs in parallel.

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/beaconhq/beacon/internal/telemetry"
)

// ingest is one upload received by profileSink.
type ingest struct {
	name     string // e.g. beacon{role=api,version=v1,...}
	user     string
	password string
	profile  []byte // the pprof protobuf, gunzipped
	config   string // the sample_type_config part (absent for CPU profiles)
}

// profileSink accepts the Pyroscope push protocol (POST /ingest with a
// multipart profile) and keeps what it received; discard drops the bodies
// (the overhead benchmark).
type profileSink struct {
	mu      sync.Mutex
	got     []ingest
	discard bool
}

func (s *profileSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/ingest" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if s.discard {
		_, _ = io.Copy(io.Discard, r.Body)
		return
	}
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f, _, err := r.FormFile("profile")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	defer f.Close()
	raw, _ := io.ReadAll(f)
	if zr, err := gzip.NewReader(bytes.NewReader(raw)); err == nil {
		if b, err := io.ReadAll(zr); err == nil {
			raw = b
		}
	}
	in := ingest{name: r.URL.Query().Get("name"), profile: raw}
	if cf, _, err := r.FormFile("sample_type_config"); err == nil {
		b, _ := io.ReadAll(cf)
		cf.Close()
		in.config = string(b)
	}
	in.user, in.password, _ = r.BasicAuth()
	s.mu.Lock()
	s.got = append(s.got, in)
	s.mu.Unlock()
}

func (s *profileSink) uploads() []ingest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// burnCPU hashes for about d of CPU time: something for the CPU profiler
// to sample.
func burnCPU(d time.Duration) {
	buf := make([]byte, 64<<10)
	for start := time.Now(); time.Since(start) < d; {
		sum := sha256.Sum256(buf)
		buf[0] = sum[0]
	}
}

// contend makes mutex contention and blocking for the mutex and block
// profiles.
func contend() {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				mu.Lock()
				time.Sleep(50 * time.Microsecond)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestProfilingPushesProfilesLinkedToSpans(t *testing.T) {
	sink := &profileSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()

	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// Credentials in the URL become basic auth and never reach the log.
	serverURL := strings.Replace(srv.URL, "http://", "http://tenant:s3cret-token@", 1)
	p, err := telemetry.StartProfiling(telemetry.ProfilingOptions{
		ServerURL: serverURL, Version: "v-test", Role: "api", Environment: "test",
		Logger: log, UploadRate: time.Second,
	})
	require.NoError(t, err)
	require.NotNil(t, p)
	defer func() { _ = p.Stop(context.Background()) }()

	spans := tracetest.NewInMemoryExporter()
	sdk := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer func() { _ = sdk.Shutdown(context.Background()) }()
	tracer := telemetry.LinkProfiles(sdk).Tracer("test")

	ctx, root := tracer.Start(context.Background(), "GET /v1/monitors")
	_, child := tracer.Start(ctx, "db.query")
	burnCPU(400 * time.Millisecond)
	contend()
	child.End()
	root.End()
	rootID := root.SpanContext().SpanID().String()

	// Every span ended; the root carries the profile id, the child does not
	// (its samples count under the root's id).
	ended := spans.GetSpans()
	require.Len(t, ended, 2)
	attr := func(s tracetest.SpanStub) string {
		for _, kv := range s.Attributes {
			if kv.Key == "pyroscope.profile.id" {
				return kv.Value.AsString()
			}
		}
		return ""
	}
	for _, s := range ended {
		switch s.Name {
		case "GET /v1/monitors":
			assert.Equal(t, rootID, attr(s), "root span's pyroscope.profile.id")
		case "db.query":
			assert.Empty(t, attr(s), "child span has no profile id of its own")
		}
	}

	// Wait for a CPU profile whose samples carry the root span's id, and
	// for every other profile type. The type of an upload is in its
	// sample_type_config (the CPU profile has none: its types are Go's).
	wantTypes := []string{"cpu", "alloc_objects", "alloc_space", "inuse_objects", "inuse_space",
		"mutex_count", "mutex_duration", "block_count", "block_duration", "goroutine"}
	deadline := time.Now().Add(60 * time.Second)
	for {
		seen := map[string]bool{}
		linked := false
		for _, u := range sink.uploads() {
			if u.config == "" && bytes.Contains(u.profile, []byte("cpu")) && bytes.Contains(u.profile, []byte("nanoseconds")) {
				seen["cpu"] = true
				if bytes.Contains(u.profile, []byte(rootID)) {
					linked = true
				}
			}
			var cfg map[string]struct {
				DisplayName string `json:"display-name"`
			}
			if json.Unmarshal([]byte(u.config), &cfg) == nil {
				for k, v := range cfg {
					seen[k] = true
					seen[v.DisplayName] = true
				}
			}
		}
		missing := slices.DeleteFunc(slices.Clone(wantTypes), func(typ string) bool { return seen[typ] })
		if linked && len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s: CPU profile with span_id %s: %v; missing types %v; %d uploads\nlog:\n%s",
				rootID, linked, missing, len(sink.uploads()), logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}

	for _, u := range sink.uploads() {
		for _, tag := range []string{"role=api", "version=v-test", "environment=test"} {
			assert.Contains(t, u.name, tag, "tags of %s", u.name)
		}
		assert.Equal(t, "tenant", u.user)
		assert.Equal(t, "s3cret-token", u.password)
	}
	assert.Contains(t, logs.String(), "continuous profiling on")
	assert.NotContains(t, logs.String(), "s3cret-token", "the log must not show credentials")
}

func TestTelemetryStartProfiling(t *testing.T) {
	t.Run("off without a URL", func(t *testing.T) {
		tel := telemetry.Noop(nil)
		before := tel.TracerProvider
		require.NoError(t, tel.StartProfiling("  "))
		assert.Equal(t, before, tel.TracerProvider, "no URL: the tracer provider is left alone")
	})

	t.Run("bad URL", func(t *testing.T) {
		for _, bad := range []string{"pyroscope:4040", "ftp://pyroscope:4040", "http://", "http://user:hunter2@%zz"} {
			_, err := telemetry.StartProfiling(telemetry.ProfilingOptions{ServerURL: bad})
			require.Error(t, err, bad)
			assert.Contains(t, err.Error(), "BEACON_PYROSCOPE_URL", bad)
			assert.NotContains(t, err.Error(), "hunter2", "the error must not echo credentials")
		}
	})

	t.Run("on: spans of the telemetry's provider carry the profile id", func(t *testing.T) {
		sink := &profileSink{discard: true}
		srv := httptest.NewServer(sink)
		defer srv.Close()
		spans := tracetest.NewInMemoryExporter()
		tel, err := telemetry.New(context.Background(), telemetry.Options{
			Version: "v2", Role: "worker", Environment: "test", SpanExporter: spans,
			LogWriter: io.Discard, LogFormat: "json",
		})
		require.NoError(t, err)
		require.NoError(t, tel.StartProfiling(srv.URL))
		_, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "job")
		span.End()
		require.NoError(t, tel.ForceFlush(context.Background()))
		got := spans.GetSpans() // before Shutdown, which empties the exporter
		require.NoError(t, tel.Shutdown(context.Background()))
		require.Len(t, got, 1)
		var id string
		for _, kv := range got[0].Attributes {
			if kv.Key == "pyroscope.profile.id" {
				id = kv.Value.AsString()
			}
		}
		assert.Equal(t, got[0].SpanContext.SpanID().String(), id)
	})
}

// BenchmarkProfiledRequest measures what continuous profiling costs a
// CPU-bound request: a root span and a child around hashing and JSON
// encoding. noop: no profiler, the plain SDK provider; instrumented: every
// profile type pushed once a second (15 times more often than in
// production) to a local sink, spans wrapped by LinkProfiles.
// scripts/benchratio prints instrumented/noop.
func BenchmarkProfiledRequest(b *testing.B) {
	run := func(b *testing.B, profiled bool) {
		sdk := sdktrace.NewTracerProvider()
		defer func() { _ = sdk.Shutdown(context.Background()) }()
		var tp trace.TracerProvider = sdk
		if profiled {
			srv := httptest.NewServer(&profileSink{discard: true})
			defer srv.Close()
			p, err := telemetry.StartProfiling(telemetry.ProfilingOptions{ServerURL: srv.URL, UploadRate: time.Second})
			require.NoError(b, err)
			defer func() { _ = p.Stop(context.Background()) }()
			tp = telemetry.LinkProfiles(sdk)
		}
		tracer := tp.Tracer("bench")
		payload := make([]byte, 16<<10)
		type result struct {
			Sum   [32]byte `json:"sum"`
			Items []int    `json:"items"`
		}
		b.ReportAllocs()
		cpuStart := processCPU(b)
		b.ResetTimer()
		for b.Loop() {
			ctx, root := tracer.Start(context.Background(), "GET /v1/monitors/{id}")
			_, child := tracer.Start(ctx, "work")
			r := result{Sum: sha256.Sum256(payload), Items: make([]int, 64)}
			if _, err := json.Marshal(r); err != nil {
				b.Fatal(err)
			}
			child.End()
			root.End()
		}
		// CPU time of the whole process (the profiler's goroutines
		// included) per request: less sensitive than ns/op to other load
		// on a shared machine.
		b.ReportMetric(float64(processCPU(b)-cpuStart)/float64(b.N), "cpu-ns/op")
	}
	b.Run("noop", func(b *testing.B) { run(b, false) })
	b.Run("instrumented", func(b *testing.B) { run(b, true) })
}

// processCPU is the user and system CPU time this process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
