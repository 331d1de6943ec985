package database_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/database"
)

// Unreachable PostgreSQL is told apart from a failing query.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	// A real connection error: nothing listens on port 1.
	pool, err := pgxpool.New(context.Background(), "postgres://u@127.0.0.1:1/none?connect_timeout=5")
	require.NoError(t, err)
	defer pool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, connErr := pool.Exec(ctx, "SELECT 1")
	require.Error(t, connErr)

	for name, tc := range map[string]struct {
		err  error
		want bool
	}{
		"refused":          {fmt.Errorf("get monitor: %w", connErr), true},
		"connection lost":  {fmt.Errorf("query: %w", io.ErrUnexpectedEOF), true},
		"closed":           {pgconn.ErrConnClosed, true},
		"admin shutdown":   {&pgconn.PgError{Code: "57P01"}, true},
		"too many clients": {&pgconn.PgError{Code: "53300"}, true},
		"unique violation": {&pgconn.PgError{Code: "23505"}, false},
		"syntax error":     {&pgconn.PgError{Code: "42601"}, false},
		"other":            {errors.New("boom"), false},
		"nil":              {nil, false},
	} {
		require.Equal(t, tc.want, database.Unavailable(tc.err), name)
	}
}
