//go:build faults

package faults

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beaconhq/beacon/internal/config"
	"github.com/beaconhq/beacon/internal/harness"
)

// suite is what the scenarios share: the beacon binary, a PostgreSQL
// cluster (each scenario gets its own database on it), the check target and
// the token key every replica signs with.
type suite struct {
	root   string
	work   string
	beacon string
	pg     *pgCluster
	target *target
	secret string
	// serial is held by every scenario but the long kill-and-rescue one,
	// which overlaps with them: the machine has two cores and timing
	// assertions of the others must not compete with each other.
	serial sync.Mutex
}

// Development admin: `beacon migrate` creates it (BEACON_ENV=development).
const (
	adminEmail    = config.DevAdminEmail
	adminPassword = config.DevAdminPassword
)

// newSuite builds beacon, starts PostgreSQL and the check target; all of it
// is stopped when t ends.
func newSuite(t *testing.T) *suite {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s := &suite{}
	var err error
	if s.root, err = harness.ModuleRoot(); err != nil {
		t.Fatal(err)
	}
	if s.work = os.Getenv("FAULTS_WORKDIR"); s.work == "" {
		if s.work, err = os.MkdirTemp("", "beacon-faults."); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(s.work) })
	}
	// PostgreSQL runs as the postgres user when we are root: it must reach the folder.
	if err := os.Chmod(s.work, 0o755); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	s.secret = hex.EncodeToString(key) // 64 bytes, shared by every replica

	if s.beacon = os.Getenv("FAULTS_BEACON"); s.beacon != "" {
		t.Logf("using the beacon binary %s (FAULTS_BEACON)", s.beacon)
	} else {
		start := time.Now()
		if s.beacon, err = buildBeacon(ctx, s.root, s.work); err != nil {
			t.Fatal(err)
		}
		t.Logf("built cmd/beacon in %s", time.Since(start).Round(time.Millisecond))
	}
	if s.pg, err = startCluster(ctx, s.root, filepath.Join(s.work, "pg-shared")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.pg.stop)
	if s.target, err = startTarget(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.target.close)
	return s
}

// buildBeacon compiles cmd/beacon once for the whole suite.
func buildBeacon(ctx context.Context, root, dir string) (string, error) {
	out := filepath.Join(dir, "beacon")
	gobin := os.Getenv("GO")
	if gobin == "" {
		gobin = "go"
	}
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", out, "./cmd/beacon")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/beacon: %w\n%s", err, b)
	}
	return out, nil
}

// database is a migrated database of one scenario, with a pool for the
// test's own queries.
type database struct {
	url  string
	pool *pgxpool.Pool
}

// newDatabase creates a database on the shared cluster and migrates it.
func (s *suite) newDatabase(t *testing.T, name string) *database {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	u, err := s.pg.createDatabase(ctx, "faults_"+name)
	if err != nil {
		t.Fatal(err)
	}
	return s.migrated(t, u)
}

// migrated runs `beacon migrate` on dbURL (which also creates the first
// admin) and opens a pool on it.
func (s *suite) migrated(t *testing.T, dbURL string) *database {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := s.env(dbURL)
	cmd := exec.CommandContext(ctx, s.beacon, "migrate")
	cmd.Env = env.list()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("beacon migrate: %v\n%s", err, indent(string(out)))
	}
	pool, err := openPool(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect to %s: %v", config.MaskURL(dbURL), err)
	}
	t.Cleanup(pool.Close)
	return &database{url: dbURL, pool: pool}
}

// adminID returns the development admin's user id.
func (db *database) adminID(t *testing.T) int64 {
	t.Helper()
	var id int64
	if err := db.pool.QueryRow(context.Background(), `SELECT id FROM users WHERE lower(email) = lower($1)`, adminEmail).Scan(&id); err != nil {
		t.Fatalf("find the development admin: %v", err)
	}
	return id
}
