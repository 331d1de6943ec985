package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/beaconhq/beacon/internal/config"
	"github.com/beaconhq/beacon/internal/jobs"
	"github.com/beaconhq/beacon/internal/telemetry"
)

// serve runs the long-lived roles until ctx is cancelled (SIGINT/SIGTERM),
// then shuts down within the configured timeout.
func serve(ctx context.Context, env environment, kind roleKind) error {
	// ---- Configuration.
	cfg, err := loadConfig(env, true)
	if err != nil {
		return err
	}

	// ---- Telemetry: first, so everything after it is observed; flushed last.
	tel, flush, err := startTelemetry(ctx, env, cfg, kind.String())
	if err != nil {
		return err
	}
	defer flush()
	log := tel.Logger
	log.Info("starting", "version", buildVersion(), "env", cfg.Env, "database", cfg.MaskedDatabaseURL())

	// ---- Database, domain, jobs, handlers.
	a, err := newApp(ctx, cfg, kind, tel)
	if err != nil {
		return err
	}
	defer a.close()

	// ---- Listeners first, so a busy port fails before anything starts.
	var apiLn, dashLn net.Listener
	closeAll := func() {
		for _, l := range []net.Listener{apiLn, dashLn} {
			if l != nil {
				l.Close()
			}
		}
	}
	if a.stack.API != nil {
		if apiLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return fmt.Errorf("listen on BEACON_HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
		}
	}
	if kind == roleAll {
		if dashLn, err = net.Listen("tcp", cfg.DashboardAddr); err != nil {
			closeAll()
			return fmt.Errorf("listen on BEACON_DASHBOARD_ADDR %s: %w", cfg.DashboardAddr, err)
		}
	}
	opsLn, err := net.Listen("tcp", cfg.OpsAddr)
	if err != nil {
		closeAll()
		return fmt.Errorf("listen on BEACON_OPS_ADDR %s: %w", cfg.OpsAddr, err)
	}

	errc := make(chan error, 4)

	// ---- Live updates: one LISTEN connection fans events out to websockets.
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHub()
	hubDone := make(chan error, 1)
	if a.stack.Hub != nil {
		go func() { hubDone <- a.stack.Hub.Run(hubCtx) }()
	} else {
		hubDone <- nil
	}

	// ---- Listeners the API needs until it has drained: job ends wake the
	// requests waiting on them; account changes (deleted, disabled, demoted
	// users) let tokens be checked without a query per request.
	listenCtx, stopListeners := context.WithCancel(context.WithoutCancel(ctx))
	defer stopListeners()
	var listeners sync.WaitGroup
	if a.stack.API != nil {
		listeners.Go(func() { _ = a.stack.Waiter.Run(listenCtx) })
		listeners.Go(func() { _ = a.stack.Auth.RunInvalidation(listenCtx, log.With("component", "auth")) })
	}

	// ---- Ops server: probes, metrics and pprof, never public.
	opsSrv := &http.Server{Handler: a.ops, ReadHeaderTimeout: 5 * time.Second}
	go func() { errc <- serveHTTP(opsSrv, opsLn, "ops") }()
	log.Info("ops listening", "addr", opsLn.Addr().String())

	// ---- API server.
	var apiSrv *http.Server
	if a.stack.API != nil {
		apiSrv = &http.Server{
			Handler:           a.stack.API,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			// Above the longest run-check wait (30 s).
			WriteTimeout: 45 * time.Second,
			IdleTimeout:  2 * time.Minute,
		}
		go func() { errc <- serveHTTP(apiSrv, apiLn, "api") }()
		log.Info("api listening", "addr", apiLn.Addr().String(), "docs", "/docs")
	}

	// ---- Dashboard (beacon all): it reaches this process's API over HTTP,
	// as a separate `beacon dashboard` would.
	var dashSrv *http.Server
	if dashLn != nil {
		_, port, _ := net.SplitHostPort(apiLn.Addr().String())
		h, err := newDashboard(cfg, "http://127.0.0.1:"+port, tel)
		if err != nil {
			closeAll()
			return err
		}
		dashSrv = dashboardHTTPServer(h)
		go func() { errc <- serveHTTP(dashSrv, dashLn, "dashboard") }()
		log.Info("dashboard listening", "addr", dashLn.Addr().String())
	}

	// ---- Schema gate, then workers. River's context is not ctx: cancelling
	// it would hard-stop jobs, and shutdown must try a soft stop first.
	// starter ends once the workers have started or startup was abandoned;
	// shutdown waits for it, so it never races a client still starting.
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	startCtx, cancelStart := context.WithCancel(ctx)
	defer cancelStart()
	starter := make(chan bool, 1)
	go func() {
		started, err := a.startWorkers(startCtx, runCtx)
		if err != nil {
			errc <- err
		} else if started {
			log.Info("workers started", "concurrency", cfg.WorkerConcurrency)
		}
		starter <- started
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
	a.draining.Store(true)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if dashSrv != nil {
		if err := dashSrv.Shutdown(shutdownCtx); err != nil {
			log.Warn("dashboard did not drain in time", "error", err)
		}
	}
	// Websockets are not tracked by http.Server.Shutdown: close them first,
	// so clients move to another replica while HTTP drains.
	stopHub()
	<-hubDone
	if apiSrv != nil {
		if err := apiSrv.Shutdown(shutdownCtx); err != nil {
			log.Warn("api did not drain in time", "error", err)
		}
	}
	stopListeners()
	listeners.Wait()
	cancelStart()
	if started := <-starter; started {
		// Keep a fifth of the budget for the hard stop.
		softCtx, cancelSoft := context.WithTimeout(shutdownCtx, cfg.ShutdownTimeout*4/5)
		if err := jobs.Stop(softCtx, a.stack.Worker, cfg.ShutdownTimeout/5); err != nil {
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

// startTelemetry sets up telemetry for a role; flush sends what is buffered
// (within 5 s) and stops it.
func startTelemetry(ctx context.Context, env environment, cfg config.Config, role string) (*telemetry.Telemetry, func(), error) {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	tel, err := telemetry.New(ctx, telemetry.Options{
		Version: buildVersion(), Role: role, Environment: string(cfg.Env),
		Getenv: env.getenv, LogWriter: env.stdout, LogFormat: cfg.LogFormat, LogLevel: level,
	})
	if err != nil {
		return nil, nil, err
	}
	tel.Logger = tel.Logger.With("role", role)
	// Continuous profiling, when BEACON_PYROSCOPE_URL is set; before the
	// app takes the tracer provider, so spans link to their profiles.
	if err := tel.StartProfiling(cfg.PyroscopeURL); err != nil {
		return nil, nil, err
	}
	flush := func() {
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(flushCtx)
	}
	return tel, flush, nil
}

func serveHTTP(srv *http.Server, ln net.Listener, name string) error {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s server: %w", name, err)
	}
	return nil
}
