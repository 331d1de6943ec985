//go:build faults

package faults

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/beaconhq/beacon/internal/harness"
)

// proc is a child process: its own process group, killed if we die, its
// output kept for failure messages.
type proc struct {
	name     string
	cmd      *exec.Cmd
	out      *harness.Tail
	done     chan struct{} // closed when it has exited
	waitErr  error         // valid once done is closed
	stopping atomic.Bool   // we asked it to end: its exit is expected
	// stopSignal asks it to stop gracefully (default SIGTERM).
	stopSignal syscall.Signal
}

func startProc(name, path string, args, env []string) (*proc, error) {
	p := &proc{name: name, out: &harness.Tail{Max: 512 << 10}, done: make(chan struct{})}
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

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited returns an error if the process ended without being asked to.
func (p *proc) exited() error {
	select {
	case <-p.done:
		if p.stopping.Load() {
			return nil
		}
		return fmt.Errorf("%s exited unexpectedly (%v); last output:\n%s", p.name, p.waitErr, p.tail())
	default:
		return nil
	}
}

// tail is the end of the child's output, for failure messages.
func (p *proc) tail() string {
	return indent(p.out.Last(30))
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() {
	p.stopping.Store(true)
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// terminate sends SIGTERM (or stopSignal) and waits up to grace for the
// exit; then it kills
// the process group. It reports how long the exit took, and an error if the
// process had died before, failed, or had to be killed.
func (p *proc) terminate(grace time.Duration) (time.Duration, error) {
	died := p.exited()
	if !p.stopping.CompareAndSwap(false, true) {
		<-p.done
		return 0, died
	}
	if died != nil {
		return 0, died
	}
	start := time.Now()
	sig := syscall.SIGTERM
	if p.stopSignal != 0 {
		sig = p.stopSignal
	}
	_ = p.cmd.Process.Signal(sig)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		took := time.Since(start)
		if p.waitErr != nil {
			return took, fmt.Errorf("%s stopped with %v after %v; last output:\n%s", p.name, p.waitErr, sig, p.tail())
		}
		return took, nil
	case <-timer.C:
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
		return grace, fmt.Errorf("%s did not stop within %s of %v and was killed; last output:\n%s", p.name, grace, sig, p.tail())
	}
}

// rss returns the process's resident set size in bytes (VmRSS).
func (p *proc) rss() (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.pid()) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", p.pid())
}

func indent(s string) string {
	return "    | " + strings.ReplaceAll(s, "\n", "\n    | ")
}
