package monitors_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/monitors"
)

// The SQL CHECK constraints say what the Go constants say: the database is
// the last line, and must refuse exactly what the domain refuses.
func TestSQLChecksAgreeWithLimits(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rows, err := b.pool.Query(context.Background(), `
		SELECT pg_get_constraintdef(oid) FROM pg_constraint
		WHERE conrelid = 'monitors'::regclass AND contype = 'c'`)
	require.NoError(t, err)
	var defs []string
	for rows.Next() {
		var d string
		require.NoError(t, rows.Scan(&d))
		defs = append(defs, d)
	}
	require.NoError(t, rows.Err())
	all := strings.Join(defs, "\n")
	for _, want := range []string{
		fmt.Sprintf("char_length(name) >= 1) AND (char_length(name) <= %d)", monitors.MaxNameLen),
		fmt.Sprintf("char_length(url) >= 1) AND (char_length(url) <= %d)", monitors.MaxURLLen),
		fmt.Sprintf("interval_seconds >= %d) AND (interval_seconds <= %d)", int(monitors.MinInterval.Seconds()), int(monitors.MaxInterval.Seconds())),
		fmt.Sprintf("timeout_ms >= %d) AND (timeout_ms <= %d)", monitors.MinTimeout.Milliseconds(), monitors.MaxTimeout.Milliseconds()),
		"public_slug ~ '" + monitors.SlugPattern + "'::text",
	} {
		require.Contains(t, all, want)
	}
	for _, m := range monitors.Methods {
		require.Contains(t, all, "'"+m+"'::text")
	}
}
