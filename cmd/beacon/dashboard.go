package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/beaconhq/beacon/internal/config"
	"github.com/beaconhq/beacon/internal/dashboard"
	"github.com/beaconhq/beacon/internal/telemetry"
)

// newDashboard builds the web dashboard, talking to the API at apiURL over
// HTTP only, with its requests traced through to the API.
func newDashboard(cfg config.Config, apiURL string, tel *telemetry.Telemetry) (http.Handler, error) {
	u, err := url.Parse(apiURL)
	if err != nil {
		return nil, fmt.Errorf("dashboard: API URL: %w", err)
	}
	h, err := dashboard.New(dashboard.Options{
		APIURL:        u,
		Log:           tel.Logger.With("component", "dashboard"),
		SecureCookies: cfg.Env == config.Production,
		// A reverse proxy in front of the dashboard names the browser.
		TrustedProxies: cfg.TrustedProxies,
		Transport: otelhttp.NewTransport(http.DefaultTransport.(*http.Transport).Clone(),
			otelhttp.WithTracerProvider(tel.TracerProvider),
			otelhttp.WithMeterProvider(tel.MeterProvider),
			otelhttp.WithPropagators(tel.Propagator)),
	})
	if err != nil {
		return nil, err
	}
	return otelhttp.NewHandler(h, "beacon.dashboard",
		otelhttp.WithTracerProvider(tel.TracerProvider),
		otelhttp.WithMeterProvider(tel.MeterProvider),
		otelhttp.WithPropagators(tel.Propagator),
		otelhttp.WithFilter(func(r *http.Request) bool { return r.URL.Path != "/healthz" }),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "dashboard " + r.Method }),
	), nil
}

// dashboardHTTPServer serves h with the timeouts of a public server.
func dashboardHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No WriteTimeout: the dashboard proxies the events websocket.
	}
}

// serveDashboard runs `beacon dashboard`: the web UI only, no database.
func serveDashboard(ctx context.Context, env environment) error {
	cfg, err := loadConfig(env, false)
	if err != nil {
		return err
	}
	tel, flush, err := startTelemetry(ctx, env, cfg, "dashboard")
	if err != nil {
		return err
	}
	defer flush()
	log := tel.Logger
	h, err := newDashboard(cfg, cfg.APIURL, tel)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.DashboardAddr)
	if err != nil {
		return fmt.Errorf("listen on BEACON_DASHBOARD_ADDR %s: %w", cfg.DashboardAddr, err)
	}
	opsLn, err := net.Listen("tcp", cfg.OpsAddr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("listen on BEACON_OPS_ADDR %s: %w", cfg.OpsAddr, err)
	}
	srv := dashboardHTTPServer(h)
	// Ready when the API it depends on is.
	ops := &http.Server{Handler: opsMux(func(ctx context.Context) error { return apiReady(ctx, cfg.APIURL) }, tel.MetricsHandler), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- serveHTTP(srv, ln, "dashboard") }()
	go func() { errc <- serveHTTP(ops, opsLn, "ops") }()
	log.Info("dashboard listening", "addr", ln.Addr().String(), "api", cfg.APIURL)

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutdown requested")
	case runErr = <-errc:
		log.Error("stopping after failure", "error", runErr)
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	_ = ops.Shutdown(shutdownCtx)
	log.Info("stopped")
	return runErr
}

// apiReady asks the API's readiness probe (the caller bounds the time).
func apiReady(ctx context.Context, apiURL string) error {
	u, err := url.Parse(apiURL)
	if err != nil {
		return fmt.Errorf("API URL: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.JoinPath("/readyz").String(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("API unreachable")
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("API not ready (%d)", resp.StatusCode)
	}
	return nil
}
