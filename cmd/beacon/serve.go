package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"

	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/httpapi"
	"github.com/beaconhq/beacon/internal/jobs"
	"github.com/beaconhq/beacon/internal/monitors"
	"github.com/beaconhq/beacon/internal/netguard"
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

// serve runs the long-lived roles until ctx is cancelled (SIGINT/SIGTERM),
// then shuts down within the configured timeout.
func serve(ctx context.Context, env environment, kind roleKind) error {
	// ---- Configuration and logging.
	cfg, log, err := loadConfig(env, true)
	if err != nil {
		return err
	}
	log = log.With("role", kind.String())
	log.Info("starting", "version", buildVersion(), "env", cfg.Env, "database", cfg.MaskedDatabaseURL())

	// ---- Database.
	pool, err := database.Open(ctx, cfg.DatabaseURL, nil)
	if err != nil {
		return err
	}
	defer pool.Close()
	if kind == roleAll && cfg.MigrateOnStart {
		if err := database.Migrate(ctx, pool, log); err != nil {
			return err
		}
	}
	probe := database.NewProbe(pool)
	var draining atomic.Bool
	ready := func(ctx context.Context) error {
		if draining.Load() {
			return errors.New("shutting down")
		}
		return probe.Ready(ctx)
	}

	// ---- Domain and jobs.
	store := monitors.NewStore(pool, nil)
	policy := netguard.NewPolicy(cfg.CheckAllow)
	domain := monitors.Deps{
		Store:             store,
		Checker:           &monitors.Checker{Client: policy.HTTPClient(netguard.ClientOptions{UserAgent: "Beacon/" + buildVersion() + " (synthetic monitoring)"})},
		Log:               log,
		SchedulerInterval: cfg.SchedulerInterval,
		SchedulerBatch:    cfg.SchedulerBatch,
		Retention:         cfg.ResultRetention,
	}
	workers := river.NewWorkers()
	monitors.AddWorkers(workers, domain)
	client, err := jobs.NewClient(pool, jobs.Options{
		Workers: workers,
		Work:    kind.works(),
		Queues: map[string]river.QueueConfig{
			river.QueueDefault:   {MaxWorkers: 5},
			monitors.QueueChecks: {MaxWorkers: cfg.WorkerConcurrency},
		},
		PeriodicJobs: monitors.PeriodicJobs(domain),
		Logger:       quieter(log.With("component", "river"), slog.LevelWarn),
		// Longer than any job's timeout, so only a dead worker's jobs are rescued.
		RescueAfter: 5 * time.Minute,
	})
	if err != nil {
		return err
	}

	// ---- Listeners first, so a busy port fails before anything starts.
	var apiLn net.Listener
	if kind.serves() {
		if apiLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return fmt.Errorf("listen on BEACON_HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
		}
	}
	opsLn, err := net.Listen("tcp", cfg.OpsAddr)
	if err != nil {
		if apiLn != nil {
			apiLn.Close()
		}
		return fmt.Errorf("listen on BEACON_OPS_ADDR %s: %w", cfg.OpsAddr, err)
	}

	errc := make(chan error, 3)

	// ---- Ops server: probes and pprof, never public.
	opsSrv := &http.Server{Handler: opsMux(ready), ReadHeaderTimeout: 5 * time.Second}
	go func() { errc <- serveHTTP(opsSrv, opsLn, "ops") }()
	log.Info("ops listening", "addr", opsLn.Addr().String())

	// ---- API server.
	var apiSrv *http.Server
	if kind.serves() {
		handler, _ := httpapi.NewServer(httpapi.Deps{
			Log: log, Version: buildVersion(),
			Monitors: &monitors.Service{Store: store, Jobs: client},
			Jobs:     client, Ready: ready, Gate: probe.SchemaError,
		})
		apiSrv = &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			// Above the longest run-check wait (30 s).
			WriteTimeout: 45 * time.Second,
			IdleTimeout:  2 * time.Minute,
		}
		go func() { errc <- serveHTTP(apiSrv, apiLn, "api") }()
		log.Info("api listening", "addr", apiLn.Addr().String(), "docs", "/docs")
	}

	// ---- Schema gate, then workers. River's context is not ctx: cancelling
	// it would hard-stop jobs, and shutdown must try a soft stop first.
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	// starter ends once the workers have started or startup was abandoned;
	// shutdown waits for it, so it never races a client still starting.
	starter := make(chan bool, 1)
	startCtx, cancelStart := context.WithCancel(ctx)
	defer cancelStart()
	go func() {
		started := false
		defer func() { starter <- started }()
		if err := waitForSchema(startCtx, probe, log); err != nil {
			return
		}
		if kind.works() {
			if err := client.Start(runCtx); err != nil {
				errc <- fmt.Errorf("start workers: %w", err)
				return
			}
			started = true
			log.Info("workers started", "concurrency", cfg.WorkerConcurrency)
		}
	}()

	// ---- Wait for a signal or a failure.
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutdown requested")
	case runErr = <-errc:
		log.Error("stopping after failure", "error", runErr)
	}

	// ---- Shutdown: stop accepting, drain HTTP, then jobs (soft, then hard).
	draining.Store(true)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if apiSrv != nil {
		if err := apiSrv.Shutdown(shutdownCtx); err != nil {
			log.Warn("api did not drain in time", "error", err)
		}
	}
	cancelStart()
	if started := <-starter; started {
		// Keep a fifth of the budget for the hard stop.
		softCtx, cancelSoft := context.WithTimeout(shutdownCtx, cfg.ShutdownTimeout*4/5)
		if err := jobs.Stop(softCtx, client, cfg.ShutdownTimeout/5); err != nil {
			log.Warn("workers stopped with error", "error", err)
		}
		cancelSoft()
	}
	if err := opsSrv.Shutdown(shutdownCtx); err != nil {
		log.Warn("ops server did not drain in time", "error", err)
	}
	log.Info("stopped")
	return runErr
}

func serveHTTP(srv *http.Server, ln net.Listener, name string) error {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s server: %w", name, err)
	}
	return nil
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

// opsMux serves the internal port: probes and pprof.
func opsMux(ready func(context.Context) error) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", httpapi.HandleHealthz())
	mux.Handle("GET /readyz", httpapi.HandleReadyz(ready))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
