package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beaconhq/beacon/internal/config"
	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/httpapi"
	"github.com/beaconhq/beacon/internal/platform"
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
	// stack is Beacon assembled around the domains: jobs, API, accounts.
	stack    *platform.Stack
	ops      http.Handler
	draining atomic.Bool
	// bootstrapped: the first admin exists. Readiness waits for it, so that
	// nobody signs in (and fails) before there is an account.
	bootstrapped atomic.Bool
}

// newApp connects to the database (migrating first for `all` when asked)
// and assembles the domains with the platform, instrumented with tel.
// close releases what it opened.
func newApp(ctx context.Context, cfg config.Config, kind roleKind, tel *telemetry.Telemetry) (a *app, err error) {
	a = &app{kind: kind, cfg: cfg, log: tel.Logger}
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
	// Configuration errors first: they need no database.
	if err := checkRescue(cfg); err != nil {
		return nil, err
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
	a.stack, err = platform.Assemble(ctx, platform.Options{
		Config: cfg, Telemetry: tel, Version: buildVersion(), Modules: domains(),
		Pool: a.pool, WorkPool: a.workPool, Serve: kind.serves(), Work: kind.works(),
		Ready: a.ready, Gate: a.probe.SchemaError, RiverUI: kind.serves(),
	})
	if err != nil {
		return nil, err
	}
	a.ops = opsMux(a.ready, tel.MetricsHandler)
	return a, nil
}

// checkRescue refuses a rescue delay shorter than the domains' longest job,
// before anything connects.
func checkRescue(cfg config.Config) error {
	_, err := platform.Assemble(context.Background(), platform.Options{Config: cfg, Modules: domains()})
	return err
}

func (a *app) close() {
	if a.stack != nil {
		a.stack.Close()
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

// startWorkers waits for a current schema, bootstraps the first admin and
// the domains, then starts River UI (API roles) and River (working roles).
// It reports whether the workers started.
func (a *app) startWorkers(ctx, runCtx context.Context) (bool, error) {
	if err := waitForSchema(ctx, a.probe, a.log); err != nil {
		return false, nil
	}
	if err := a.stack.Bootstrap(ctx); err != nil {
		return false, fmt.Errorf("bootstrap: %w", err)
	}
	a.bootstrapped.Store(true)
	if a.stack.RiverUI != nil {
		if err := a.stack.RiverUI.Start(runCtx); err != nil {
			return false, fmt.Errorf("start river ui: %w", err)
		}
	}
	if a.stack.Worker == nil {
		return false, nil
	}
	if err := a.stack.Worker.Start(runCtx); err != nil {
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
