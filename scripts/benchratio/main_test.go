package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const sample = `goos: linux
pkg: github.com/beaconhq/beacon/internal/httpapi
BenchmarkGetMonitor/noop-2         	   29714	     40000 ns/op	   11430 B/op	      88 allocs/op
BenchmarkGetMonitor/noop-2         	   24472	     50000 ns/op	   11426 B/op	      88 allocs/op
BenchmarkGetMonitor/noop-2         	   28686	     90000 ns/op	   11425 B/op	      88 allocs/op
BenchmarkGetMonitor/instrumented-2 	   14407	     45000 ns/op	         3.000 spans/op	   26570 B/op	     142 allocs/op
BenchmarkGetMonitor/instrumented-2 	   10000	    200000 ns/op	         3.001 spans/op	   26560 B/op	     142 allocs/op
BenchmarkGetMonitor/instrumented-2 	   12771	     62500 ns/op	         3.000 spans/op	   26559 B/op	     142 allocs/op
BenchmarkStats/day/5m-2         	     367	   3005367 ns/op	  175900 B/op	    1841 allocs/op
--- BENCH: BenchmarkSomething
PASS
ok  	github.com/beaconhq/beacon/internal/httpapi	8.323s
`

func TestReport(t *testing.T) {
	t.Parallel()
	rs, err := parse(strings.NewReader(sample))
	require.NoError(t, err)
	require.Equal(t, []string{"GetMonitor/noop", "GetMonitor/instrumented", "Stats/day/5m"}, rs.names)
	require.Equal(t, []float64{3.000, 3.001, 3.000}, rs.values["GetMonitor/instrumented"]["spans/op"])

	var out strings.Builder
	require.NoError(t, write(&out, rs))
	// Medians: 50000 and 62500 ns/op, so 0.80x; 142 - 88 allocs.
	require.Regexp(t, `GetMonitor\s+0\.80x\s+\+54\s+\+15134`, out.String())
	require.Regexp(t, `Stats/day/5m\s+1\s+3005367\s+175900\s+1841`, out.String())
}

func TestMedian(t *testing.T) {
	t.Parallel()
	require.Equal(t, 0.0, median(nil))
	require.Equal(t, 2.0, median([]float64{3, 1, 2}))
	require.Equal(t, 2.5, median([]float64{4, 1, 2, 3}))
}
