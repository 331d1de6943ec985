package main

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/config"
	"github.com/beaconhq/beacon/internal/pgtest"
	"github.com/beaconhq/beacon/internal/telemetry"
)

func loadTestConfig(t *testing.T, env map[string]string) config.Config {
	t.Helper()
	cfg, err := config.Load(func(k string) string { return env[k] })
	require.NoError(t, err)
	return cfg
}

// `beacon all` gives its workers a pool of their own, so a backlog cannot
// take the connections requests need; `worker` has only the workers' pool.
func TestPoolsPerRole(t *testing.T) {
	t.Parallel()
	url := pgtest.NewURL(t)
	tel := telemetry.Noop(slog.New(slog.DiscardHandler))
	cfg := loadTestConfig(t, map[string]string{"DATABASE_URL": url, "BEACON_DB_MAX_CONNS": "3", "BEACON_DB_WORKER_MAX_CONNS": "7"})

	all, err := newApp(context.Background(), cfg, roleAll, tel)
	require.NoError(t, err)
	defer all.close()
	require.NotSame(t, all.pool, all.workPool)
	require.EqualValues(t, 3, all.pool.Config().MaxConns)
	require.EqualValues(t, 7, all.workPool.Config().MaxConns)
	require.NotSame(t, all.stack.Jobs, all.stack.Worker, "the API inserts through a client on its own pool")

	worker, err := newApp(context.Background(), cfg, roleWorker, tel)
	require.NoError(t, err)
	defer worker.close()
	require.Same(t, worker.pool, worker.workPool)
	require.EqualValues(t, 7, worker.pool.Config().MaxConns)
	require.Nil(t, worker.stack.Jobs)

	api, err := newApp(context.Background(), cfg, roleAPI, tel)
	require.NoError(t, err)
	defer api.close()
	require.Nil(t, api.workPool)
	require.Nil(t, api.stack.Worker)
	require.EqualValues(t, 3, api.pool.Config().MaxConns)
}

// A rescue delay shorter than a job may legitimately run would hand a
// running job to a second worker: refused at start, naming the variable.
func TestRescueAfterMustOutlastJobs(t *testing.T) {
	t.Parallel()
	cfg := loadTestConfig(t, map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/none", "BEACON_JOB_RESCUE_AFTER": "30s"})
	_, err := newApp(context.Background(), cfg, roleWorker, telemetry.Noop(slog.New(slog.DiscardHandler)))
	require.ErrorContains(t, err, "BEACON_JOB_RESCUE_AFTER")
}
