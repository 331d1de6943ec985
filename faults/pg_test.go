//go:build faults

package faults

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgCluster is a throwaway PostgreSQL cluster started with scripts/pg.sh
// (unix socket in dir only: nothing listens on TCP).
type pgCluster struct {
	root string // the repository, for scripts/pg.sh
	dir  string
	url  string // database "beacon", created by pg.sh
}

// startCluster starts a cluster in dir (created if needed).
func startCluster(ctx context.Context, root, dir string) (*pgCluster, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c := &pgCluster{root: root, dir: dir}
	if out, err := c.pgsh(ctx, "start", dir); err != nil {
		return nil, fmt.Errorf("scripts/pg.sh start %s: %w\n%s", dir, err, out)
	}
	out, err := c.pgsh(ctx, "url", dir)
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("scripts/pg.sh url: %w\n%s", err, out)
	}
	c.url = strings.TrimSpace(out)
	return c, nil
}

func (c *pgCluster) pgsh(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.root, "scripts", "pg.sh"), args...)
	cmd.Dir = c.root
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// stop stops the cluster (fast shutdown); it never uses a cancelled context.
func (c *pgCluster) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = c.pgsh(ctx, "stop", c.dir)
}

// restart runs pg_ctl restart in mode (fast, immediate) and returns once
// PostgreSQL accepts connections again (pg_ctl -w).
func (c *pgCluster) restart(ctx context.Context, mode string) error {
	return c.pgctl(ctx, "-D", filepath.Join(c.dir, "data"), "-l", filepath.Join(c.dir, "postgres.log"),
		"-m", mode, "-w", "-t", "60", "restart")
}

// pgctl runs pg_ctl as the cluster's owner (postgres when we are root).
func (c *pgCluster) pgctl(ctx context.Context, args ...string) error {
	bin, err := pgBin()
	if err != nil {
		return err
	}
	argv := append([]string{filepath.Join(bin, "pg_ctl")}, args...)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		quoted := make([]string, len(argv))
		for i, a := range argv {
			quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		cmd = exec.CommandContext(ctx, "su", "postgres", "-s", "/bin/sh", "-c", strings.Join(quoted, " "))
	} else {
		cmd = exec.CommandContext(ctx, argv[0], argv[1:]...)
	}
	cmd.Dir = "/" // the postgres user may not reach our working directory
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// pgBin finds the PostgreSQL server binaries as scripts/pg.sh does.
func pgBin() (string, error) {
	if b := os.Getenv("PG_BIN"); b != "" {
		return b, nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if b := strings.TrimSpace(string(out)); fileExists(filepath.Join(b, "pg_ctl")) {
			return b, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionLess(dirs[i], dirs[j]) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if fileExists(filepath.Join(dirs[i], "pg_ctl")) {
			return dirs[i], nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL server binaries not found (Debian: apt-get install postgresql, or set PG_BIN)")
}

// versionLess orders /usr/lib/postgresql/N/bin by N.
func versionLess(a, b string) bool {
	va, vb := filepath.Base(filepath.Dir(a)), filepath.Base(filepath.Dir(b))
	if len(va) != len(vb) {
		return len(va) < len(vb)
	}
	return va < vb
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// createDatabase creates database name on the cluster and returns its URL.
func (c *pgCluster) createDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, c.url)
	if err != nil {
		return "", fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(c.url)
	if err != nil {
		return "", errors.New("cannot parse the cluster's URL")
	}
	u.Path = "/" + name
	return u.String(), nil
}

// openPool connects the test itself to a database.
func openPool(ctx context.Context, dbURL string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, errors.New("invalid database URL")
	}
	cfg.MaxConns = 4
	cfg.ConnConfig.RuntimeParams["application_name"] = "faults"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}
