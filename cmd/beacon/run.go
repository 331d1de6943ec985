package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/beaconhq/beacon/internal/auth"
	"github.com/beaconhq/beacon/internal/config"
	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/platform"
	"github.com/beaconhq/beacon/internal/telemetry"
)

// usageError is a mistake on the command line (exit status 2).
type usageError string

func (e usageError) Error() string { return string(e) }

type role struct {
	name, summary, detail string
	run                   func(ctx context.Context, env environment, args []string) error
}

// environment is what run hands to a role.
type environment struct {
	getenv         func(string) string
	stdout, stderr io.Writer
}

var roles = []role{
	{"all", "API, workers and dashboard in one process (the local default)",
		"Serves the API on BEACON_HTTP_ADDR and the dashboard on BEACON_DASHBOARD_ADDR, and works jobs. Applies migrations first unless BEACON_MIGRATE_ON_START=false.",
		func(ctx context.Context, env environment, _ []string) error { return serve(ctx, env, roleAll) }},
	{"api", "HTTP API only (inserts jobs, never works them)",
		"Serves the API on BEACON_HTTP_ADDR. Never migrates: readiness fails until `beacon migrate` has run.",
		func(ctx context.Context, env environment, _ []string) error { return serve(ctx, env, roleAPI) }},
	{"worker", "River workers only",
		"Works check, scheduling and pruning jobs. Never migrates: waits until `beacon migrate` has run.",
		func(ctx context.Context, env environment, _ []string) error { return serve(ctx, env, roleWorker) }},
	{"dashboard", "the web dashboard only (talks to the API at BEACON_API_URL)",
		"Serves the dashboard on BEACON_DASHBOARD_ADDR. Needs no database: every read and write goes through the API.",
		func(ctx context.Context, env environment, _ []string) error { return serveDashboard(ctx, env) }},
	{"migrate", "apply the app's and River's migrations, then exit",
		"Idempotent and safe to run from several replicas at once (advisory lock).",
		runMigrate},
	{"openapi", "print the OpenAPI document (JSON) and exit",
		"Needs no database.",
		runOpenAPI},
	{"healthcheck", "GET a URL; exit 0 on 2xx (container health checks)",
		"Usage: beacon healthcheck URL",
		runHealthcheck},
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "beacon %s: synthetic monitoring platform\n\nUsage: beacon COMMAND [--help]\n\nCommands:\n", buildVersion())
	for _, r := range roles {
		fmt.Fprintf(w, "  %-12s %s\n", r.name, r.summary)
	}
	fmt.Fprintf(w, "\nConfiguration comes from environment variables:\n")
	// The default follows the meaning: some are longer than a column could be.
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, v := range config.Vars {
		meaning := v.Meaning
		if v.Default != "" {
			meaning += " (default: " + v.Default + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", v.Name, meaning)
	}
	_ = tw.Flush()
}

// run is Beacon's entry point, shared by main and the tests.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return usageError("a command is required")
	}
	name := args[0]
	if name == "-h" || name == "--help" || name == "help" {
		usage(stdout)
		return nil
	}
	for _, r := range roles {
		if r.name != name {
			continue
		}
		fs := flag.NewFlagSet("beacon "+name, flag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.Usage = func() {
			fmt.Fprintf(stdout, "beacon %s: %s\n\n%s\n", r.name, r.summary, r.detail)
		}
		if err := fs.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return usageError(err.Error())
		}
		return r.run(ctx, environment{getenv: getenv, stdout: stdout, stderr: stderr}, fs.Args())
	}
	usage(stderr)
	return usageError(fmt.Sprintf("unknown command %q", name))
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func loadConfig(env environment, needDB bool) (config.Config, error) {
	cfg, err := config.Load(env.getenv)
	if err != nil {
		return cfg, err
	}
	if needDB {
		if err := cfg.RequireDatabase(); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

func runMigrate(ctx context.Context, env environment, _ []string) error {
	cfg, err := loadConfig(env, true)
	if err != nil {
		return err
	}
	log := newLogger(cfg, env.stdout)
	pool, err := database.Open(ctx, cfg.DatabaseURL, nil)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := database.Migrate(ctx, pool, log); err != nil {
		return err
	}
	log.Info("schema is current", "database", cfg.MaskedDatabaseURL())
	// Only the first admin and the domains' bootstrap are needed here: the
	// token key is never used.
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	svc, err := auth.NewService(pool, auth.Config{Secret: key})
	if err != nil {
		return err
	}
	stack, err := platform.Assemble(ctx, platform.Options{
		Config: cfg, Telemetry: telemetry.Noop(log), Version: buildVersion(), Modules: domains(), Pool: pool, Auth: svc})
	if err != nil {
		return err
	}
	return stack.Bootstrap(ctx)
}

func runOpenAPI(_ context.Context, env environment, _ []string) error {
	api, err := platform.Describe(buildVersion(), domains())
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(api.OpenAPI(), "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(env.stdout, string(b))
	return err
}

func runHealthcheck(ctx context.Context, env environment, args []string) error {
	if len(args) != 1 || !(strings.HasPrefix(args[0], "http://") || strings.HasPrefix(args[0], "https://")) {
		return usageError("usage: beacon healthcheck http://HOST:PORT/PATH")
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
	if err != nil {
		return usageError("healthcheck: invalid URL")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("healthcheck: %s answered %s", args[0], resp.Status)
	}
	fmt.Fprintln(env.stdout, "ok")
	return nil
}
