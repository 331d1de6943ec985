package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/beaconhq/beacon/internal/harness"
)

// proc is a child process. Its output is kept in a harness.Tail; one goroutine
// per process waits for it and ends when it exits (stop makes sure it does).
type proc struct {
	name     string
	cmd      *exec.Cmd
	out      *harness.Tail
	done     chan struct{} // closed when the process has exited
	waitErr  error         // valid after done
	stopping atomic.Bool
}

// startProc starts a child in its own process group (a terminal's Ctrl-C
// reaches us only; we stop children in order), killed if we die first.
func startProc(name, path string, args, env []string) (*proc, error) {
	p := &proc{name: name, out: &harness.Tail{Max: 256 << 10}, done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = env
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited returns an error if the process ended without being asked to.
func (p *proc) exited() error {
	select {
	case <-p.done:
		if p.stopping.Load() {
			return nil
		}
		return fmt.Errorf("%s exited unexpectedly (%v); last output:\n%s", p.name, p.waitErr, p.out.Last(30))
	default:
		return nil
	}
}

// stop asks the process to stop (SIGTERM), waits up to grace, then kills
// it. It returns an error if the process had died before or did not stop
// cleanly in time.
func (p *proc) stop(grace time.Duration) error {
	died := p.exited()
	if !p.stopping.CompareAndSwap(false, true) {
		<-p.done
		return died
	}
	if died != nil {
		return died
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		if p.waitErr != nil {
			return fmt.Errorf("%s stopped with %v; last output:\n%s", p.name, p.waitErr, p.out.Last(30))
		}
		return nil
	case <-timer.C:
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s did not stop within %s and was killed; last output:\n%s", p.name, grace, p.out.Last(30))
	}
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// buildBeacon compiles cmd/beacon into dir once for the whole run.
func buildBeacon(ctx context.Context, root, dir string) (string, error) {
	out := filepath.Join(dir, "beacon")
	gobin := os.Getenv("GO")
	if gobin == "" {
		gobin = "go"
	}
	logf("building cmd/beacon")
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", out, "./cmd/beacon")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/beacon: %w\n%s", err, b)
	}
	return out, nil
}

// envMap is a process environment being built.
type envMap map[string]string

// callerEnv returns this process's environment: PATH, HOME and the caller's
// BEACON_* and OTEL_* settings pass through to the children.
func callerEnv() envMap {
	m := envMap{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

func (m envMap) list() []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// beaconProc is a running beacon role and where to reach it.
type beaconProc struct {
	*proc
	api string // http://127.0.0.1:port of the API ("" for the worker)
	ops string // http://127.0.0.1:port of the ops port
}

// beaconEnv is the environment of a beacon child on database dbURL.
func (r *runner) beaconEnv(dbURL string) (envMap, map[string]string, error) {
	env := callerEnv()
	addrs := map[string]string{}
	for _, k := range []string{"BEACON_HTTP_ADDR", "BEACON_OPS_ADDR", "BEACON_DASHBOARD_ADDR"} {
		a, err := freeAddr()
		if err != nil {
			return nil, nil, err
		}
		env[k] = a
		addrs[k] = a
	}
	env["DATABASE_URL"] = dbURL
	env["BEACON_CHECK_ALLOW_CIDRS"] = "127.0.0.0/8"
	env["BEACON_MIGRATE_ON_START"] = "false"
	if env["BEACON_LOG_LEVEL"] == "" {
		env["BEACON_LOG_LEVEL"] = "warn"
	}
	return env, addrs, nil
}

// migrate runs `beacon migrate` on dbURL and waits for it.
func (r *runner) migrate(ctx context.Context, dbURL string) error {
	env, _, err := r.beaconEnv(dbURL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.beacon, "migrate")
	cmd.Env = env.list()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("beacon migrate: %w\n%s", err, out)
	}
	return nil
}

// startBeacon starts `beacon <role>` on dbURL, with edit applied to its
// environment, and waits until its ops port answers /readyz with 200.
func (r *runner) startBeacon(ctx context.Context, role, dbURL string, edit func(envMap)) (*beaconProc, error) {
	env, addrs, err := r.beaconEnv(dbURL)
	if err != nil {
		return nil, err
	}
	if edit != nil {
		edit(env)
	}
	p, err := startProc("beacon "+role, r.beacon, []string{role}, env.list())
	if err != nil {
		return nil, err
	}
	r.track(p)
	b := &beaconProc{proc: p, ops: "http://" + addrs["BEACON_OPS_ADDR"]}
	if role != "worker" {
		b.api = "http://" + addrs["BEACON_HTTP_ADDR"]
	}
	if err := waitReady(ctx, p, b.ops+"/readyz", 60*time.Second); err != nil {
		_ = p.stop(5 * time.Second)
		return nil, err
	}
	return b, nil
}

// waitReady polls url until it answers 200, p dies, or timeout passes. On
// failure the error says what it last saw and shows the child's output.
func waitReady(ctx context.Context, p *proc, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	lastSeen := "nothing yet"
	const every = 100 * time.Millisecond
	tick := time.NewTicker(every)
	defer tick.Stop()
	notReady := func() error {
		return fmt.Errorf("%s not ready after %s at %s; last saw %s; last output:\n%s", p.name, timeout, url, lastSeen, p.out.Last(30))
	}
	for range int(timeout/every) + 2 {
		if err := p.exited(); err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			lastSeen = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		} else if ctx.Err() == nil {
			lastSeen = err.Error()
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return notReady()
			}
			return ctx.Err()
		case <-p.done:
		case <-tick.C:
		}
	}
	return notReady()
}
