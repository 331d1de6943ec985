package monitorsdb_test

import (
	"context"
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	_ "github.com/beaconhq/beacon/internal/monitors" // registers the domain's migrations
	"github.com/beaconhq/beacon/internal/pgtest"
)

// sqlc reads ../sqlc_schema.sql, which stands in for check_results' identity
// sequence, as if it were a table: its columns must be the ones the
// migrated database's sequence has, or the code would be typed against a
// relation that does not exist.
func TestSQLCSchemaMatchesDatabase(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../sqlc_schema.sql")
	require.NoError(t, err)
	want := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(\w+)\s+(bigint|boolean)\s+NOT NULL,?$`).FindAllStringSubmatch(string(src), -1) {
		want[m[1]] = m[2]
	}
	require.Len(t, want, 3, "columns read from sqlc_schema.sql")

	pool := pgtest.New(t)
	rows, err := pool.Query(context.Background(), `
		SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		WHERE c.oid = 'check_results_id_seq'::regclass AND c.relkind = 'S' AND a.attnum > 0 AND a.attnotnull
		ORDER BY a.attnum`)
	require.NoError(t, err)
	got := map[string]string{}
	for rows.Next() {
		var name, typ string
		require.NoError(t, rows.Scan(&name, &typ))
		got[name] = typ
	}
	require.NoError(t, rows.Err())
	require.Equal(t, want, got)
}
