package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric"
	"riverqueue.com/riverui"

	"github.com/beaconhq/beacon/internal/auth"
	"github.com/beaconhq/beacon/internal/config"
	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/httpapi"
	"github.com/beaconhq/beacon/internal/idempotency"
	"github.com/beaconhq/beacon/internal/jobs"
	"github.com/beaconhq/beacon/internal/monitors"
	"github.com/beaconhq/beacon/internal/netguard"
	"github.com/beaconhq/beacon/internal/realtime"
	"github.com/beaconhq/beacon/internal/telemetry"
)

type roleKind int

const (
	roleAll roleKind = iota
	roleAPI
	roleWorker
)

func (k roleKind) String() string { return [...]string{"all", "api", "worker"}[k] }
func (k roleKind) serves() bool   { return k == roleAll || k == roleAPI }
func (k roleKind) works() bool    { return k == roleAll || k == roleWorker }

// app is a long-lived role wired up: what serve runs, and what the tests
// drive with in-memory telemetry.
type app struct {
	kind roleKind
	cfg  config.Config
	log  *slog.Logger
	// pool serves the API (BEACON_DB_MAX_CONNS), or is the worker role's
	// only pool; workPool is the workers' own (BEACON_DB_WORKER_MAX_CONNS),
	// so a backlog never starves requests of connections.
	pool     *pgxpool.Pool
	workPool *pgxpool.Pool // nil unless the role works; pool for `worker`
	probe    *database.Probe
	// worker works jobs (nil for `api`); jobs is the insert-only client the
	// API uses, on the API's pool (nil unless the role serves).
	worker   *river.Client[pgx.Tx]
	jobs     *river.Client[pgx.Tx]
	waiter   *jobs.Waiter // nil unless the role serves the API
	auth     *auth.Service
	store    *monitors.Store
	riverUI  *riverui.Handler // nil unless the role serves the API
	hub      *realtime.Hub    // nil unless the role serves the API
	api      http.Handler     // nil unless the role serves the API
	ops      http.Handler
	draining atomic.Bool
	// bootstrapped: the first admin exists. Readiness waits for it, so that
	// nobody signs in (and fails) before there is an account.
	bootstrapped atomic.Bool
	// gauges read the database at each collection: unregistered before the
	// pool closes, or the final flush would fail on a closed pool.
	gauges []metric.Registration
}

// newApp connects to the database (migrating first for `all` when asked)
// and wires the domain, the job queue and the handlers with telemetry.
// close releases what it opened.
func newApp(ctx context.Context, cfg config.Config, kind roleKind, tel *telemetry.Telemetry) (a *app, err error) {
	a = &app{kind: kind, cfg: cfg, log: tel.Logger}
	rescueAfter := cfg.JobRescueAfter
	if rescueAfter == 0 {
		rescueAfter = monitors.LongestJobTimeout + 15*time.Second
	} else if rescueAfter <= monitors.LongestJobTimeout {
		return nil, fmt.Errorf("config: BEACON_JOB_RESCUE_AFTER: %s must exceed the longest job timeout (%s), or running jobs would be run twice",
			rescueAfter, monitors.LongestJobTimeout)
	}
	openPool := func(name string, maxConns int) (*pgxpool.Pool, error) {
		traced := database.Traced(tel.TracerProvider, tel.MeterProvider)
		pool, err := database.Open(ctx, cfg.DatabaseURL, func(c *pgxpool.Config) {
			traced(c)
			c.MaxConns = int32(maxConns)
		})
		if err != nil {
			return nil, err
		}
		if err := database.RecordPoolStats(pool, name, tel.MeterProvider); err != nil {
			pool.Close()
			return nil, err
		}
		return pool, nil
	}
	if kind.serves() {
		a.pool, err = openPool("api", cfg.DBMaxConns)
	} else {
		a.pool, err = openPool("worker", cfg.DBWorkerMaxConns)
	}
	if err != nil {
		return nil, err
	}
	built := a // a is nil once an error is returned
	defer func() {
		if err != nil {
			built.close()
		}
	}()
	switch kind {
	case roleAll:
		if a.workPool, err = openPool("worker", cfg.DBWorkerMaxConns); err != nil {
			return nil, err
		}
	case roleWorker:
		a.workPool = a.pool
	}
	if kind == roleAll && cfg.MigrateOnStart {
		if err := database.Migrate(ctx, a.pool, a.log); err != nil {
			return nil, err
		}
	}
	a.probe = database.NewProbe(a.pool)

	// ---- Domain and jobs.
	store := monitors.NewStore(a.pool, nil)
	a.store = store
	workStore := store // the workers' queries use the workers' pool
	if a.workPool != nil {
		workStore = monitors.NewStore(a.workPool, nil)
	}
	metrics, err := monitors.NewMetrics(tel.MeterProvider)
	if err != nil {
		return nil, err
	}
	policy := netguard.NewPolicy(cfg.CheckAllow)
	checkClient := policy.HTTPClient(netguard.ClientOptions{
		UserAgent: "Beacon/" + buildVersion() + " (synthetic monitoring)",
		Transport: func(rt http.RoundTripper) http.RoundTripper {
			return otelhttp.NewTransport(rt,
				otelhttp.WithTracerProvider(tel.TracerProvider),
				otelhttp.WithMeterProvider(tel.MeterProvider),
				otelhttp.WithPropagators(tel.Propagator))
		},
	})
	domain := monitors.Deps{
		Store:             workStore,
		Checker:           &monitors.Checker{Client: checkClient},
		Metrics:           metrics,
		Log:               a.log,
		SchedulerInterval: cfg.SchedulerInterval,
		SchedulerBatch:    cfg.SchedulerBatch,
		Retention:         cfg.ResultRetention,
	}
	workers := river.NewWorkers()
	monitors.AddWorkers(workers, domain)
	queues := map[string]river.QueueConfig{
		river.QueueDefault:   {MaxWorkers: 5},
		monitors.QueueChecks: {MaxWorkers: cfg.WorkerConcurrency},
	}
	jobOpts := jobs.Options{
		Workers:           workers,
		Queues:            queues,
		PeriodicJobs:      monitors.PeriodicJobs(domain),
		Plugins:           jobs.Middleware(tel.TracerProvider, tel.MeterProvider),
		Logger:            telemetry.Quieter(a.log.With("component", "river"), slog.LevelWarn),
		RescueAfter:       rescueAfter,
		FetchCooldown:     cfg.JobFetchCooldown,
		FetchPollInterval: cfg.JobFetchPollInterval,
	}
	if kind.serves() {
		if a.jobs, err = jobs.NewClient(a.pool, jobOpts); err != nil {
			return nil, err
		}
		a.waiter = jobs.NewWaiter(a.jobs, a.pool, a.log.With("component", "jobs"))
	}
	if kind.works() {
		jobOpts.Work = true
		if a.worker, err = jobs.NewClient(a.workPool, jobOpts); err != nil {
			return nil, err
		}
		// Database-wide gauges: reported by the processes that work jobs.
		names := make([]string, 0, len(queues))
		for q := range queues {
			names = append(names, q)
		}
		backlog, err := jobs.ObserveBacklog(tel.MeterProvider, a.workPool, names)
		if err != nil {
			return nil, err
		}
		a.gauges = append(a.gauges, backlog)
		states, err := monitors.ObserveStates(tel.MeterProvider, workStore)
		if err != nil {
			return nil, err
		}
		a.gauges = append(a.gauges, states)
	}

	// ---- Identity.
	a.auth, err = newAuth(a.pool, cfg, a.log)
	if err != nil {
		return nil, err
	}

	// ---- Handlers.
	if kind.serves() {
		a.riverUI, err = riverui.NewHandler(&riverui.HandlerOpts{
			Endpoints: riverui.NewEndpoints(a.jobs, nil),
			Logger:    telemetry.Quieter(a.log.With("component", "riverui"), slog.LevelWarn),
			Prefix:    "/riverui",
		})
		if err != nil {
			return nil, fmt.Errorf("river ui: %w", err)
		}
		a.hub = realtime.NewHub(a.pool, a.log.With("component", "realtime"), realtime.Options{})
		a.api, _ = httpapi.NewServer(httpapi.Deps{
			Log: a.log, Version: buildVersion(), Telemetry: tel,
			Monitors: &monitors.Service{Store: store, Jobs: a.jobs},
			Jobs:     a.jobs, Waiter: a.waiter, Ready: a.ready, Gate: a.probe.SchemaError,
			Idempotency: idempotency.New(a.pool),
			Auth:        a.auth, RiverUI: a.riverUI, TrustedProxies: cfg.TrustedProxies,
			Events: realtime.Handler(a.hub, func(r *http.Request) (auth.Principal, error) {
				return httpapi.AuthenticateRequest(a.auth, r)
			}),
		})
	}
	a.ops = opsMux(a.ready, tel.MetricsHandler)
	return a, nil
}

func (a *app) close() {
	for _, g := range a.gauges {
		_ = g.Unregister()
	}
	if a.workPool != nil && a.workPool != a.pool {
		a.workPool.Close()
	}
	a.pool.Close()
}

// ready is the readiness probe: not while draining, and only with a
// reachable database on a current schema.
func (a *app) ready(ctx context.Context) error {
	if a.draining.Load() {
		return errors.New("shutting down")
	}
	if err := a.probe.Ready(ctx); err != nil {
		return err
	}
	if !a.bootstrapped.Load() {
		return errors.New("starting: first admin not created yet")
	}
	return nil
}

// newAuth builds the identity service. Without BEACON_JWT_SECRET (allowed
// only in development) tokens are signed with a random key: they stop
// working when the process restarts.
func newAuth(pool *pgxpool.Pool, cfg config.Config, log *slog.Logger) (*auth.Service, error) {
	secret := []byte(cfg.JWTSecret)
	if len(secret) == 0 {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
		log.Warn("BEACON_JWT_SECRET is unset: tokens are signed with a random key and end with this process (development only)")
	}
	return auth.NewService(pool, auth.Config{Secret: secret, AccessTTL: cfg.AccessTTL, RefreshTTL: cfg.RefreshTTL})
}

// bootstrap creates the first admin from configuration if absent, and gives
// them the monitors created before accounts existed.
func bootstrap(ctx context.Context, svc *auth.Service, store *monitors.Store, cfg config.Config, log *slog.Logger) error {
	id, created, err := svc.EnsureAdmin(ctx, cfg.AdminEmail, cfg.AdminPassword)
	if err != nil {
		return err
	}
	if created {
		log.Info("created the first admin", "email", cfg.AdminEmail)
	}
	n, err := store.AdoptUnowned(ctx, id)
	if err != nil {
		return err
	}
	if n > 0 {
		log.Info("gave unowned monitors to the first admin", "count", n)
	}
	return nil
}

// startWorkers waits for a current schema, bootstraps the first admin, then
// starts River and River UI. It reports whether the workers started.
func (a *app) startWorkers(ctx, runCtx context.Context) (bool, error) {
	if err := waitForSchema(ctx, a.probe, a.log); err != nil {
		return false, nil
	}
	if err := bootstrap(ctx, a.auth, a.store, a.cfg, a.log); err != nil {
		return false, fmt.Errorf("bootstrap: %w", err)
	}
	a.bootstrapped.Store(true)
	if a.riverUI != nil {
		if err := a.riverUI.Start(runCtx); err != nil {
			return false, fmt.Errorf("start river ui: %w", err)
		}
	}
	if !a.kind.works() {
		return false, nil
	}
	if err := a.worker.Start(runCtx); err != nil {
		return false, fmt.Errorf("start workers: %w", err)
	}
	return true, nil
}

// waitForSchema blocks until the schema is current, logging why not every
// 10 s; it returns ctx's error if stopped first.
func waitForSchema(ctx context.Context, probe *database.Probe, log *slog.Logger) error {
	var lastLog time.Time
	for {
		checkCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := probe.Ready(checkCtx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Since(lastLog) >= 10*time.Second {
			log.Error("not serving: database not ready", "reason", err.Error())
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// opsMux serves the internal port: probes, metrics and pprof.
func opsMux(ready func(context.Context) error, metrics http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", httpapi.HandleHealthz())
	mux.Handle("GET /readyz", httpapi.HandleReadyz(ready))
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
