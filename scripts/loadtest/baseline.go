package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/monitors"
)

// The GET baseline: what `GET /v1/monitors/{id}` costs with nothing but
// net/http and pgx. It runs the same query as Beacon's handler
// (monitors.Store.Get: the monitor row by id and owner) and writes the same
// monitors.Monitor with encoding/json; no auth, no telemetry, no huma. It is
// a subcommand of this binary, run as its own process like beacon.

// baselineMain runs `loadtest baseline-server -addr A -owner N -max-conns M`
// with DATABASE_URL from the environment, until SIGTERM or SIGINT.
func baselineMain(args []string) int {
	fs := flag.NewFlagSet("loadtest baseline-server", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback)")
	owner := fs.Int64("owner", 0, "owner id the monitors are read as")
	maxConns := fs.Int("max-conns", 10, "PostgreSQL connections (as BEACON_DB_MAX_CONNS)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := serveBaseline(*addr, *owner, *maxConns); err != nil {
		fmt.Fprintln(os.Stderr, "baseline-server:", err)
		return 1
	}
	return 0
}

func serveBaseline(addr string, owner int64, maxConns int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	host, _, err := net.SplitHostPort(addr)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		return fmt.Errorf("-addr %q is not a loopback address", addr)
	}
	pool, err := openPool(ctx, os.Getenv("DATABASE_URL"), maxConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := monitors.NewStore(pool, nil)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("GET /v1/monitors/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil || id < 1 {
			http.Error(w, "bad id", http.StatusUnprocessableEntity)
			return
		}
		m, err := store.Get(r.Context(), owner, id)
		switch {
		case apperr.CodeOf(err) == apperr.NotFound:
			http.Error(w, "not found", http.StatusNotFound)
			return
		case err != nil:
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(m)
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
