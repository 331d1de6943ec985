// Package database owns the PostgreSQL connection pool and the schema: the
// app's migrations and River's, embedded in the binary.
package database

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLock is the advisory lock key held while migrating, so that
// several replicas running `beacon migrate` at once apply each step once.
const migrationLock = 0x6265_6163_6f6e // "beacon"

// Open connects a pool and checks that the server answers.
func Open(ctx context.Context, url string, configure func(*pgxpool.Config)) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message can quote the URL, password included.
		return nil, errors.New("parse DATABASE_URL: invalid connection string")
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "beacon"
	}
	if configure != nil {
		configure(cfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	return pool, nil
}

type migration struct {
	version int
	name    string
	sql     string
}

func appMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number and _", e.Name())
		}
		body, err := fs.ReadFile(migrationFS, "migrations/"+e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// Migrate applies River's migrations and then the app's. A session-level
// advisory lock makes concurrent runs (several replicas) wait for each other;
// each app migration is applied and recorded in one transaction, so a failed
// step leaves the schema as it was before that step. It is idempotent.
//
// River's steps run in transactions of their own: one of them adds an enum
// value that a later one uses, which PostgreSQL refuses in one transaction.
func Migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	ms, err := appMigrations()
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrationLock)); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer func() {
		// On a broken connection the lock goes with the session anyway.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrationLock))
	}()

	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return fmt.Errorf("migrate: river: %w", err)
	}
	res, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("migrate: river: %w", err)
	}
	for _, v := range res.Versions {
		log.Info("applied river migration", "version", v.Version, "name", v.Name)
	}

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS beacon_schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrate: bookkeeping table: %w", err)
	}
	applied, err := appliedVersions(ctx, conn)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO beacon_schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate: %s: %w", m.name, err)
		}
		log.Info("applied migration", "version", m.version, "name", m.name)
	}
	return nil
}

func appliedVersions(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) (map[int]bool, error) {
	rows, err := q.Query(ctx, "SELECT version FROM beacon_schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	applied := make(map[int]bool, len(versions))
	for _, v := range versions {
		applied[v] = true
	}
	return applied, nil
}

// ErrSchemaBehind reports that migrations are pending: run `beacon migrate`.
var ErrSchemaBehind = errors.New("database schema is behind this binary: run `beacon migrate`")

// CheckSchema returns nil when every embedded migration, River's and the
// app's, has been applied; ErrSchemaBehind (wrapped, with what is missing)
// when not; another error when the database cannot be asked.
func CheckSchema(ctx context.Context, pool *pgxpool.Pool) error {
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return err
	}
	res, err := migrator.Validate(ctx, nil)
	if err != nil {
		return fmt.Errorf("check river schema: %w", err)
	}
	if !res.OK {
		return fmt.Errorf("%w (river: %s)", ErrSchemaBehind, strings.Join(res.Messages, "; "))
	}
	ms, err := appMigrations()
	if err != nil {
		return err
	}
	applied, err := appliedVersions(ctx, pool)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table: never migrated
		return fmt.Errorf("%w (no migrations applied)", ErrSchemaBehind)
	}
	if err != nil {
		return err
	}
	var missing []string
	for _, m := range ms {
		if !applied[m.version] {
			missing = append(missing, m.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w (pending: %s)", ErrSchemaBehind, strings.Join(missing, ", "))
	}
	return nil
}

// Probe answers readiness questions about the database. The schema check is
// remembered once it passes (a schema does not go back), so the cheap
// SchemaError can gate every request.
type Probe struct {
	pool     *pgxpool.Pool
	schemaOK atomic.Bool
}

// NewProbe returns a Probe on pool.
func NewProbe(pool *pgxpool.Pool) *Probe { return &Probe{pool: pool} }

// Ready pings the database and, until it has passed once, checks the schema.
func (p *Probe) Ready(ctx context.Context) error {
	if err := p.pool.Ping(ctx); err != nil {
		return errors.New("database unreachable")
	}
	if p.schemaOK.Load() {
		return nil
	}
	if err := CheckSchema(ctx, p.pool); err != nil {
		return err
	}
	p.schemaOK.Store(true)
	return nil
}

// SchemaError returns ErrSchemaBehind until Ready has seen a current schema.
// It does no I/O.
func (p *Probe) SchemaError() error {
	if p.schemaOK.Load() {
		return nil
	}
	return ErrSchemaBehind
}

// MigrationsDigest identifies the embedded app migrations (for test templates).
func MigrationsDigest() string {
	ms, err := appMigrations()
	if err != nil {
		return "invalid"
	}
	h := sha256.New()
	for _, m := range ms {
		fmt.Fprintf(h, "%d\x00%s\x00", m.version, m.sql)
	}
	return hex.EncodeToString(h.Sum(nil))
}
