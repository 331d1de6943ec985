// Command beacon-demo lights Beacon's telemetry up (docs/demo.md):
//
//	beacon-demo targets [-addr :8090] [-flags cmd/beacon-demo/flags/flags.json]
//	beacon-demo traffic [-api http://localhost:8080] [-targets http://127.0.0.1:8090] ...
//	beacon-demo healthcheck URL
//
// targets serves endpoints (/shop, /search, /payments) whose faults (added
// latency, errors, outage, slow bodies) follow feature flags read through
// OpenFeature from a flagd flags file, re-read within a second of an edit.
// traffic signs in to Beacon with OAuth2, creates one monitor per target
// (idempotent) and calls the API: lists, reads, checks run and waited for,
// monitors created and deleted, sign-ins, some failing on purpose.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "beacon-demo:", err)
		os.Exit(1)
	}
}

const usage = `usage: beacon-demo targets|traffic|healthcheck [flags]  (beacon-demo COMMAND -h for the flags)`

// run is main without the process: tests call it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	envOr := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("beacon-demo "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	switch args[0] {
	case "targets":
		addr := fs.String("addr", envOr("DEMO_TARGETS_ADDR", "127.0.0.1:8090"), "listen address (DEMO_TARGETS_ADDR)")
		flags := fs.String("flags", envOr("DEMO_FLAGS_FILE", "cmd/beacon-demo/flags/flags.json"), "flagd flags file, re-read on change (DEMO_FLAGS_FILE)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return runTargets(ctx, *addr, *flags, log)

	case "traffic":
		var cfg trafficConfig
		fs.StringVar(&cfg.API, "api", envOr("BEACON_API_URL", "http://localhost:8080"), "Beacon's API (BEACON_API_URL)")
		fs.StringVar(&cfg.Targets, "targets", envOr("DEMO_TARGETS_URL", "http://127.0.0.1:8090"), "the demo targets, as Beacon's workers reach them (DEMO_TARGETS_URL)")
		fs.StringVar(&cfg.Email, "email", envOr("BEACON_ADMIN_EMAIL", "admin@beacon.local"), "account to sign in with (BEACON_ADMIN_EMAIL)")
		fs.Float64Var(&cfg.Rate, "rate", 4, "API calls per second")
		fs.DurationVar(&cfg.Duration, "duration", 0, "stop after this long and exit 1 if any answer was unexpected (0: run until stopped)")
		fs.IntVar(&cfg.Interval, "interval", 15, "interval_seconds of the demo monitors (10-86400)")
		fs.DurationVar(&cfg.BadSignIns, "bad-sign-ins", 2*time.Minute, "one failing sign-in this often (0: none); more than 20 in 15 min would slow this address's sign-ins down")
		fs.StringVar(&cfg.StatusAddr, "status-addr", envOr("DEMO_STATUS_ADDR", "127.0.0.1:8091"), "serves /healthz and /stats (empty: off) (DEMO_STATUS_ADDR)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		// The password only from the environment: never on a command line.
		cfg.Password = envOr("BEACON_ADMIN_PASSWORD", "beacon-dev-password")
		st, err := runTraffic(ctx, cfg, log)
		if err != nil {
			return err
		}
		b, unexpected := st.snapshot()
		fmt.Fprintf(stdout, "%s\n", b)
		if unexpected > 0 {
			return fmt.Errorf("traffic: %d unexpected answers (last: %s)", unexpected, st.LastError)
		}
		return nil

	case "healthcheck":
		// The images have no shell or HTTP client: the binary probes itself.
		if len(args) != 2 {
			return errors.New("usage: beacon-demo healthcheck URL")
		}
		hctx, cancel := context.WithTimeout(ctx, 4*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(hctx, http.MethodGet, args[1], nil)
		if err != nil {
			return fmt.Errorf("healthcheck: %w", err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("healthcheck: %w", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthcheck: %s: %s", args[1], resp.Status)
		}
		return nil
	}
	return fmt.Errorf("unknown command %q; %s", args[0], usage)
}
