// Command benchratio reads `go test -bench -benchmem` output on stdin and
// prints the median of each benchmark's runs, then, for each pair of
// sub-benchmarks X/noop and X/instrumented, what telemetry costs: the
// instrumented throughput as a fraction of the no-op one (noop ns/op over
// instrumented ns/op) and the extra allocations and bytes per operation.
//
//	go test -run '^$' -bench . -benchmem -count 5 ./... | go run ./scripts/benchratio
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// procs is the -GOMAXPROCS suffix go test adds to benchmark names.
var procs = regexp.MustCompile(`-\d+$`)

// runs holds, per benchmark and unit (ns/op, B/op, allocs/op...), the
// value of each run, in input order.
type runs struct {
	names  []string
	values map[string]map[string][]float64
}

func parse(r io.Reader) (*runs, error) {
	rs := &runs{values: map[string]map[string][]float64{}}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// BenchmarkX-2  1000  123 ns/op  45 B/op  6 allocs/op
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := procs.ReplaceAllString(strings.TrimPrefix(f[0], "Benchmark"), "")
		if rs.values[name] == nil {
			rs.values[name] = map[string][]float64{}
			rs.names = append(rs.names, name)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("%s: value %q: %w", name, f[i], err)
			}
			rs.values[name][f[i+1]] = append(rs.values[name][f[i+1]], v)
		}
	}
	return rs, sc.Err()
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(vs))
	if n := len(s); n%2 == 1 {
		return s[n/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (rs *runs) median(name, unit string) (float64, bool) {
	vs, ok := rs.values[name][unit]
	return median(vs), ok
}

func write(w io.Writer, rs *runs) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\truns\tns/op\tB/op\tallocs/op")
	for _, name := range rs.names {
		ns, _ := rs.median(name, "ns/op")
		b, _ := rs.median(name, "B/op")
		a, _ := rs.median(name, "allocs/op")
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.0f\n", name, len(rs.values[name]["ns/op"]), ns, b, a)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	var pairs []string
	for _, name := range rs.names {
		if base, ok := strings.CutSuffix(name, "/noop"); ok && rs.values[base+"/instrumented"] != nil {
			pairs = append(pairs, base)
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\ntelemetry cost (medians; throughput = noop ns/op / instrumented ns/op)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\tthroughput\textra allocs/op\textra B/op")
	for _, base := range pairs {
		noopNS, _ := rs.median(base+"/noop", "ns/op")
		instNS, _ := rs.median(base+"/instrumented", "ns/op")
		noopA, _ := rs.median(base+"/noop", "allocs/op")
		instA, _ := rs.median(base+"/instrumented", "allocs/op")
		noopB, _ := rs.median(base+"/noop", "B/op")
		instB, _ := rs.median(base+"/instrumented", "B/op")
		ratio := 0.0
		if instNS > 0 {
			ratio = noopNS / instNS
		}
		fmt.Fprintf(tw, "%s\t%.2fx\t%+.0f\t%+.0f\n", base, ratio, instA-noopA, instB-noopB)
	}
	return tw.Flush()
}

func main() {
	rs, err := parse(os.Stdin)
	if err == nil {
		err = write(os.Stdout, rs)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchratio:", err)
		os.Exit(1)
	}
}
