package telemetry

// Continuous profiling: CPU, allocation, in-use memory, mutex and block
// profiles pushed to a Pyroscope-compatible server (BEACON_PYROSCOPE_URL),
// and span <-> profile links: every local root span carries
// pyroscope.profile.id, and the CPU samples taken while it runs carry its
// span id (pprof labels), so Grafana opens the flame graph of one request
// from its trace.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	otelpyroscope "github.com/grafana/otel-profiling-go"
	"github.com/grafana/pyroscope-go"
	"go.opentelemetry.io/otel/trace"
)

// Sampling rates of the contention profiles, process-wide while profiling
// runs. Both are off in Go by default; these keep their cost negligible.
const (
	// MutexProfileFraction reports 1 in 10 mutex contention events.
	MutexProfileFraction = 10
	// BlockProfileRate samples one blocking event per 100 µs spent blocked
	// (events longer than that are always recorded).
	BlockProfileRate = 100_000
	// profileUploadRate is how often profiles are pushed: Pyroscope's
	// default, and Grafana's smallest useful step for a flame graph.
	profileUploadRate = 15 * time.Second
)

// ProfileTypes are the profiles pushed.
var ProfileTypes = []pyroscope.ProfileType{
	pyroscope.ProfileCPU,
	pyroscope.ProfileAllocObjects, pyroscope.ProfileAllocSpace,
	pyroscope.ProfileInuseObjects, pyroscope.ProfileInuseSpace,
	pyroscope.ProfileMutexCount, pyroscope.ProfileMutexDuration,
	pyroscope.ProfileBlockCount, pyroscope.ProfileBlockDuration,
	pyroscope.ProfileGoroutines,
}

// ProfilingOptions configure StartProfiling.
type ProfilingOptions struct {
	// ServerURL is the Pyroscope server, e.g. http://pyroscope:4040; empty
	// turns profiling off. user:password in the URL become basic auth.
	ServerURL   string
	ServiceName string // the application name (service_name in Pyroscope)
	Version     string
	Role        string
	Environment string
	Logger      *slog.Logger
	// UploadRate defaults to 15 s; HTTPClient to the library's. Tests and
	// the overhead benchmark set them.
	UploadRate time.Duration
	HTTPClient *http.Client
}

// Profiler pushes profiles until Stop.
type Profiler struct {
	p        *pyroscope.Profiler
	stopOnce sync.Once
}

// StartProfiling starts pushing profiles to o.ServerURL. It returns nil and
// no error when o.ServerURL is empty: profiling is off.
func StartProfiling(o ProfilingOptions) (*Profiler, error) {
	if strings.TrimSpace(o.ServerURL) == "" {
		return nil, nil
	}
	u, err := url.Parse(o.ServerURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("telemetry: profiling: BEACON_PYROSCOPE_URL is not an http(s) URL")
	}
	var user, password string
	if u.User != nil {
		user = u.User.Username()
		password, _ = u.User.Password()
		u.User = nil
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	name := o.ServiceName
	if name == "" {
		name = ServiceName
	}
	rate := o.UploadRate
	if rate <= 0 {
		rate = profileUploadRate
	}
	tags := map[string]string{}
	for k, v := range map[string]string{"version": o.Version, "role": o.Role, "environment": o.Environment} {
		if v != "" {
			tags[k] = v
		}
	}
	if host, err := os.Hostname(); err == nil && host != "" {
		tags["instance"] = host
	}
	cfg := pyroscope.Config{
		ApplicationName:   name,
		ServerAddress:     u.String(),
		BasicAuthUser:     user,
		BasicAuthPassword: password,
		Tags:              tags,
		UploadRate:        rate,
		ProfileTypes:      ProfileTypes,
		Logger:            &profilerLog{log: log, every: time.Minute},
	}
	if o.HTTPClient != nil {
		cfg.HTTPClient = o.HTTPClient
	}
	runtime.SetMutexProfileFraction(MutexProfileFraction)
	runtime.SetBlockProfileRate(BlockProfileRate)
	p, err := pyroscope.Start(cfg)
	if err != nil {
		runtime.SetMutexProfileFraction(0)
		runtime.SetBlockProfileRate(0)
		return nil, fmt.Errorf("telemetry: profiling: %w", err)
	}
	// The URL without credentials: nothing secret reaches the log.
	log.Info("continuous profiling on", "server", u.String(), "service", name, "upload_every", rate.String())
	return &Profiler{p: p}, nil
}

// Stop uploads what was collected and stops profiling. A nil Profiler
// (profiling off) stops nothing.
func (p *Profiler) Stop(context.Context) error {
	if p == nil {
		return nil
	}
	p.stopOnce.Do(func() {
		_ = p.p.Stop()
		runtime.SetMutexProfileFraction(0)
		runtime.SetBlockProfileRate(0)
	})
	return nil
}

// Flush uploads the profiles collected so far and waits for the upload.
func (p *Profiler) Flush() {
	if p != nil {
		p.p.Flush(true)
	}
}

// StartProfiling turns continuous profiling on for t when serverURL is set
// (BEACON_PYROSCOPE_URL), with the service name, version, role and
// environment t was created with, and links spans to profiles. Call it
// right after New, before anything takes t.TracerProvider; Shutdown stops
// it. With an empty serverURL it does nothing.
func (t *Telemetry) StartProfiling(serverURL string) error {
	if strings.TrimSpace(serverURL) == "" {
		return nil
	}
	getenv := t.opts.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	name := strings.TrimSpace(getenv("OTEL_SERVICE_NAME"))
	p, err := StartProfiling(ProfilingOptions{
		ServerURL: serverURL, ServiceName: name,
		Version: t.opts.Version, Role: t.opts.Role, Environment: t.opts.Environment,
		Logger: t.Logger,
	})
	if err != nil {
		return err
	}
	t.TracerProvider = LinkProfiles(t.TracerProvider)
	t.shutdowns = append(t.shutdowns, p.Stop)
	return nil
}

// LinkProfiles wraps tp so that each local root span carries the attribute
// pyroscope.profile.id (its span id) and the CPU samples taken while it and
// its children run carry the pprof labels span_id, span_name and trace_id.
func LinkProfiles(tp trace.TracerProvider) trace.TracerProvider {
	return otelpyroscope.NewTracerProvider(tp)
}

// profilerLog adapts slog to the profiler's logger: its errors (a failed
// upload every 15 s per profile type while the server is away) are logged at
// most once a period; the rest at debug.
type profilerLog struct {
	log   *slog.Logger
	every time.Duration
	mu    sync.Mutex
	last  time.Time
	count int
}

func (l *profilerLog) Infof(format string, args ...any) {
	l.log.Debug("profiler: " + fmt.Sprintf(format, args...))
}

func (l *profilerLog) Debugf(format string, args ...any) {
	l.log.Debug("profiler: " + fmt.Sprintf(format, args...))
}

func (l *profilerLog) Errorf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count++
	if time.Since(l.last) < l.every {
		return
	}
	l.log.Warn("profile upload failing", "error", fmt.Sprintf(format, args...), "errors_since_last_report", l.count)
	l.last, l.count = time.Now(), 0
}
