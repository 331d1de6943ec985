package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Where the CPU goes during a measured phase, from /proc: the server child,
// PostgreSQL (the throwaway cluster's postmaster and its backends) and this
// process (load generator, and the raw River baseline). On a 2-core machine
// this says whether a figure is bound by the server, the database or the
// load generator.

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTicks = 100

// procCPU returns the CPU seconds pid has used; with children, also those
// of its waited-for children. -1 when unreadable.
func procCPU(pid int, children bool) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	fields, ok := statFields(string(b))
	if !ok || len(fields) < 15 {
		return -1
	}
	// After "pid (comm) ": state is field 3, so field N is fields[N-3].
	n := 2
	if children {
		n = 4
	}
	var ticks float64
	for _, f := range fields[11 : 11+n] {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return -1
		}
		ticks += v
	}
	return ticks / clockTicks
}

// statFields splits /proc/PID/stat after the command name (which may hold spaces).
func statFields(s string) ([]string, bool) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, false
	}
	return strings.Fields(s[i+1:]), true
}

// postgresCPU returns the CPU seconds of the cluster in dir: the postmaster,
// the backends it has reaped and those running now. -1 when unknown.
func postgresCPU(dir string) float64 {
	if dir == "" {
		return -1
	}
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		return -1
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return -1
	}
	total := procCPU(pm, true)
	if total < 0 {
		return -1
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // ended meanwhile
		}
		fields, ok := statFields(string(b))
		if !ok || len(fields) < 2 || fields[1] != strconv.Itoa(pm) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		if err != nil {
			continue
		}
		if c := procCPU(pid, false); c > 0 {
			total += c
		}
	}
	return total
}

// cpuMeter measures the cores used between start and String by some
// children, PostgreSQL and this process.
type cpuMeter struct {
	children []*proc
	pgDir    string
	t0       time.Time
	before   []float64 // each child's, then PostgreSQL's, then ours
}

// samples reads the CPU seconds used so far, in before's order, then the
// whole machine's.
func (m *cpuMeter) samples() []float64 {
	out := make([]float64, 0, len(m.children)+3)
	for _, p := range m.children {
		out = append(out, procCPU(p.cmd.Process.Pid, true))
	}
	return append(out, postgresCPU(m.pgDir), procCPU(os.Getpid(), false), machineCPU())
}

// machineCPU returns the CPU seconds all processes have used (user, nice,
// system, irq, softirq of /proc/stat; not steal). -1 when unreadable.
func machineCPU() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return -1
	}
	var ticks float64
	for _, i := range []int{1, 2, 3, 6, 7} {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return -1
		}
		ticks += v
	}
	return ticks / clockTicks
}

func (m *cpuMeter) start() {
	m.t0 = time.Now()
	m.before = m.samples()
}

// read returns the cores each part used since start, by name (the
// children's, "postgres", "loadtest", and "other": the rest of the
// machine), and the same as one line, e.g.
// "CPU cores: beacon all 1.10, postgres 0.62, loadtest 0.31, other 0.02".
func (m *cpuMeter) read() (map[string]float64, string) {
	secs := time.Since(m.t0).Seconds()
	if m.before == nil || secs <= 0 {
		return nil, ""
	}
	after := m.samples()
	names := make([]string, 0, len(after))
	for _, p := range m.children {
		names = append(names, p.name)
	}
	names = append(names, "postgres", "loadtest", "other")
	cores := map[string]float64{}
	var parts []string
	ours := 0.0
	for i, name := range names {
		if m.before[i] < 0 || after[i] < 0 {
			continue
		}
		c := (after[i] - m.before[i]) / secs
		if name == "other" {
			c = max(0, c-ours)
		} else {
			ours += c
		}
		cores[name] = c
		parts = append(parts, fmt.Sprintf("%s %.2f", name, c))
	}
	return cores, "CPU cores: " + strings.Join(parts, ", ")
}
