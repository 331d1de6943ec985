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
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgerrcode"
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
	module  string
	version int
	name    string
	sql     string
}

// platformModule names the platform's own migrations (accounts, job
// notifications, idempotency keys) in the ledger.
const platformModule = "beacon"

// migrationSet is one module's migrations: the platform's, or a domain's.
type migrationSet struct {
	module string
	fsys   fs.FS
}

var (
	setsMu sync.Mutex
	// sets are applied in this order: the platform's first, then the
	// domains' in the order they registered. Go runs a package's init after
	// those of the packages it imports, so a domain that builds on another
	// one's tables registers after it.
	sets = []migrationSet{{module: platformModule, fsys: mustSub(migrationFS, "migrations")}}
)

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

var modulePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,30}$`)

// RegisterMigrations adds a module's migrations: the .sql files at the root
// of fsys, named NNNN_what.sql and applied in NNNN order, each once, in a
// transaction of its own. A domain calls it from an init function with its
// embedded migrations, so every binary and test that links the domain
// migrates its tables, and one that does not never sees them. Each module
// owns its tables: a migration never alters another module's.
func RegisterMigrations(module string, fsys fs.FS) {
	if !modulePattern.MatchString(module) {
		panic(fmt.Sprintf("database: migration module %q: want lowercase letters, digits and _", module))
	}
	setsMu.Lock()
	defer setsMu.Unlock()
	for _, s := range sets {
		if s.module == module {
			panic(fmt.Sprintf("database: migrations of module %q registered twice", module))
		}
	}
	if _, err := readSet(migrationSet{module: module, fsys: fsys}); err != nil {
		panic(fmt.Sprintf("database: %v", err))
	}
	sets = append(sets, migrationSet{module: module, fsys: fsys})
}

// Modules lists the modules whose migrations are registered, in order.
func Modules() []string {
	setsMu.Lock()
	defer setsMu.Unlock()
	names := make([]string, len(sets))
	for i, s := range sets {
		names[i] = s.module
	}
	return names
}

func readSet(set migrationSet) ([]migration, error) {
	entries, err := fs.ReadDir(set.fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("migrations of %s: %w", set.module, err)
	}
	var ms []migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("migration %s/%s: name must start with a positive number and _", set.module, e.Name())
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s/%s and %s share version %d", set.module, other, e.Name(), v)
		}
		seen[v] = e.Name()
		body, err := fs.ReadFile(set.fsys, e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{module: set.module, version: v, name: e.Name(), sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// appMigrations lists every registered migration in the order they apply.
func appMigrations() ([]migration, error) {
	setsMu.Lock()
	all := slices.Clone(sets)
	setsMu.Unlock()
	var ms []migration
	for _, set := range all {
		m, err := readSet(set)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m...)
	}
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

	if err := ensureLedger(ctx, conn); err != nil {
		return err
	}
	applied, err := appliedVersions(ctx, conn)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if applied[ledgerKey{m.module, m.version}] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO beacon_schema_migrations (module, version, name) VALUES ($1, $2, $3)", m.module, m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate: %s/%s: %w", m.module, m.name, err)
		}
		log.Info("applied migration", "module", m.module, "version", m.version, "name", m.name)
	}
	return nil
}

// ensureLedger creates the ledger of applied migrations, or brings one from
// before modules up to date: its rows were all the platform's.
func ensureLedger(ctx context.Context, conn *pgxpool.Conn) error {
	_, err := conn.Exec(ctx, `
		CREATE TABLE IF NOT EXISTS beacon_schema_migrations (
			module     text    NOT NULL DEFAULT 'beacon',
			version    integer NOT NULL,
			name       text    NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now(),
			PRIMARY KEY (module, version));
		DO $$ BEGIN
			IF NOT EXISTS (SELECT 1 FROM information_schema.columns
				WHERE table_schema = current_schema() AND table_name = 'beacon_schema_migrations' AND column_name = 'module') THEN
				ALTER TABLE beacon_schema_migrations ADD COLUMN module text NOT NULL DEFAULT 'beacon';
				ALTER TABLE beacon_schema_migrations DROP CONSTRAINT beacon_schema_migrations_pkey;
				ALTER TABLE beacon_schema_migrations ADD PRIMARY KEY (module, version);
			END IF;
		END $$`)
	if err != nil {
		return fmt.Errorf("migrate: bookkeeping table: %w", err)
	}
	return nil
}

type ledgerKey struct {
	module  string
	version int
}

func appliedVersions(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) (map[ledgerKey]bool, error) {
	read := func(sql string) ([]ledgerKey, error) {
		rows, err := q.Query(ctx, sql)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ledgerKey, error) {
			var k ledgerKey
			return k, r.Scan(&k.module, &k.version)
		})
	}
	keys, err := read("SELECT module, version FROM beacon_schema_migrations")
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UndefinedColumn {
		// A ledger from before modules: every row is the platform's.
		keys, err = read("SELECT '" + platformModule + "', version FROM beacon_schema_migrations")
	}
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	applied := make(map[ledgerKey]bool, len(keys))
	for _, k := range keys {
		applied[k] = true
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
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UndefinedTable { // never migrated
		return fmt.Errorf("%w (no migrations applied)", ErrSchemaBehind)
	}
	if err != nil {
		return err
	}
	var missing []string
	for _, m := range ms {
		if !applied[ledgerKey{m.module, m.version}] {
			missing = append(missing, m.module+"/"+m.name)
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

// MigrationsDigest identifies the registered migrations (for test templates).
func MigrationsDigest() string {
	ms, err := appMigrations()
	if err != nil {
		return "invalid"
	}
	h := sha256.New()
	for _, m := range ms {
		fmt.Fprintf(h, "%s\x00%d\x00%s\x00", m.module, m.version, m.sql)
	}
	return hex.EncodeToString(h.Sum(nil))
}
