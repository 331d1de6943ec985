package database_test

import (
	"context"
	"log/slog"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/database"
	"github.com/beaconhq/beacon/internal/pgtest"
)

// A module of this test binary only: its migrations apply after the
// platform's, and build on them.
func init() {
	database.RegisterMigrations("testmod", fstest.MapFS{
		"0001_things.sql": {Data: []byte(`CREATE TABLE testmod_things (id bigint PRIMARY KEY, owner_id bigint REFERENCES users (id))`)},
		"0002_more.sql":   {Data: []byte(`ALTER TABLE testmod_things ADD COLUMN name text`)},
		"README.md":       {Data: []byte("not a migration")},
	})
}

func TestModulesMigrateInOrderAndOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := database.Open(ctx, pgtest.NewEmptyURL(t), nil)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	log := slog.New(slog.DiscardHandler)

	require.ErrorIs(t, database.CheckSchema(ctx, pool), database.ErrSchemaBehind)
	require.NoError(t, database.Migrate(ctx, pool, log))
	require.NoError(t, database.Migrate(ctx, pool, log), "migrating twice applies nothing twice")
	require.NoError(t, database.CheckSchema(ctx, pool))
	require.Equal(t, []string{"beacon", "testmod"}, database.Modules())

	var n int
	require.NoError(t, pool.QueryRow(ctx,
		`SELECT count(*) FROM beacon_schema_migrations WHERE module = 'testmod' AND version IN (1, 2)`).Scan(&n))
	require.Equal(t, 2, n)
	_, err = pool.Exec(ctx, `INSERT INTO testmod_things (id, name) VALUES (1, 'x')`)
	require.NoError(t, err)

	// A module's migration not yet applied is named when the schema is checked.
	_, err = pool.Exec(ctx, `DELETE FROM beacon_schema_migrations WHERE module = 'testmod' AND version = 2`)
	require.NoError(t, err)
	require.ErrorContains(t, database.CheckSchema(ctx, pool), "testmod/0002_more.sql")
}

// A database migrated before migrations belonged to modules has a ledger of
// versions only, all the platform's: it is adopted, and nothing reapplied
// (reapplying would fail: the tables exist).
func TestLedgerFromBeforeModulesIsAdopted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := database.Open(ctx, pgtest.NewEmptyURL(t), nil)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	log := slog.New(slog.DiscardHandler)
	require.NoError(t, database.Migrate(ctx, pool, log))

	_, err = pool.Exec(ctx, `
		CREATE TABLE old_ledger AS SELECT version, name, applied_at FROM beacon_schema_migrations WHERE module = 'beacon';
		DROP TABLE beacon_schema_migrations;
		CREATE TABLE beacon_schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
		INSERT INTO beacon_schema_migrations SELECT * FROM old_ledger;
		INSERT INTO beacon_schema_migrations (version, name) VALUES (1, '0001_monitors.sql');
		DROP TABLE old_ledger`)
	require.NoError(t, err)
	// The test module's tables exist too, but the old ledger cannot say so:
	// drop them, as a database from before would not have them.
	_, err = pool.Exec(ctx, `DROP TABLE testmod_things`)
	require.NoError(t, err)

	require.ErrorIs(t, database.CheckSchema(ctx, pool), database.ErrSchemaBehind, "the test module is pending")
	require.NoError(t, database.Migrate(ctx, pool, log))
	require.NoError(t, database.CheckSchema(ctx, pool))
	var modules []string
	rows, err := pool.Query(ctx, `SELECT DISTINCT module FROM beacon_schema_migrations ORDER BY 1`)
	require.NoError(t, err)
	for rows.Next() {
		var m string
		require.NoError(t, rows.Scan(&m))
		modules = append(modules, m)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"beacon", "testmod"}, modules)
}

func TestRegisterMigrationsRefusesMistakes(t *testing.T) {
	t.Parallel()
	for name, reg := range map[string]func(){
		"bad module name": func() { database.RegisterMigrations("Bad-Name", fstest.MapFS{}) },
		"twice":           func() { database.RegisterMigrations("testmod", fstest.MapFS{}) },
		"bad file name":   func() { database.RegisterMigrations("other1", fstest.MapFS{"first.sql": {}}) },
		"same version": func() {
			database.RegisterMigrations("other2", fstest.MapFS{"0001_a.sql": {}, "01_b.sql": {}})
		},
	} {
		require.Panics(t, reg, name)
	}
}
