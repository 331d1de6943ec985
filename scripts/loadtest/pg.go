package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beaconhq/beacon/internal/config"
	"github.com/beaconhq/beacon/internal/database"
)

// pgServer is the PostgreSQL server of a run: a throwaway cluster started
// with scripts/pg.sh (unix socket only, like scripts/with-testdb.sh), or the
// server of TEST_DATABASE_URL. Databases created on it are dropped by close.
type pgServer struct {
	root    string
	dir     string // the throwaway cluster's folder; "" for TEST_DATABASE_URL
	baseURL string // a database to connect to for CREATE/DROP DATABASE
	admin   *pgxpool.Pool
	created []string
	version string
}

// startPostgres starts the throwaway cluster, or connects to TEST_DATABASE_URL when set.
func startPostgres(ctx context.Context, root, work string) (*pgServer, error) {
	s := &pgServer{root: root}
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		s.baseURL = u
		logf("using TEST_DATABASE_URL %s", config.MaskURL(u))
	} else {
		s.dir = filepath.Join(work, "pg")
		if err := os.MkdirAll(s.dir, 0o755); err != nil {
			return nil, err
		}
		logf("starting a throwaway PostgreSQL in %s", s.dir)
		if out, err := s.pgsh(ctx, "start", s.dir); err != nil {
			return nil, fmt.Errorf("scripts/pg.sh start: %w\n%s", err, out)
		}
		out, err := s.pgsh(ctx, "url", s.dir)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("scripts/pg.sh url: %w\n%s", err, out)
		}
		s.baseURL = strings.TrimSpace(out)
	}
	pool, err := pgxpool.New(ctx, s.baseURL)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	s.admin = pool
	if err := pool.QueryRow(ctx, "SHOW server_version").Scan(&s.version); err != nil {
		s.close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return s, nil
}

func (s *pgServer) pgsh(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.root, "scripts", "pg.sh"), args...)
	cmd.Dir = s.root
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// createDB creates a fresh, empty database and returns its URL.
func (s *pgServer) createDB(ctx context.Context, name string) (string, error) {
	if _, err := s.admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	s.created = append(s.created, name)
	u, err := url.Parse(s.baseURL)
	if err != nil {
		return "", errors.New("cannot parse the PostgreSQL URL")
	}
	u.Path = "/" + name
	return u.String(), nil
}

// close drops the databases it created (on TEST_DATABASE_URL's server) or
// stops and forgets the throwaway cluster. It never uses a cancelled context.
func (s *pgServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s.admin != nil {
		if s.dir == "" {
			for _, name := range s.created {
				if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
					logf("drop database %s: %v", name, err)
				}
			}
		}
		s.admin.Close()
	}
	if s.dir != "" {
		if out, err := s.pgsh(ctx, "stop", s.dir); err != nil {
			logf("scripts/pg.sh stop: %v\n%s", err, out)
		}
	}
}

// openPool connects to a database of the run with at most maxConns connections.
func openPool(ctx context.Context, dbURL string, maxConns int) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, errors.New("parse database URL: invalid connection string")
	}
	cfg.MaxConns = int32(maxConns)
	cfg.ConnConfig.RuntimeParams["application_name"] = "loadtest"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	return pool, nil
}

// migrateDB applies Beacon's migrations (app and River, as `beacon migrate`
// does) to the raw River baseline's database, without a beacon process.
func migrateDB(ctx context.Context, pool *pgxpool.Pool) error {
	return database.Migrate(ctx, pool, slog.New(slog.DiscardHandler))
}
