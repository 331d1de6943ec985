package main

import (
	"context"
	"os"
	"path/filepath"
	"time"
)

// collectorProc is the OpenTelemetry Collector built by `make collector`,
// receiving on loopback ports with scripts/loadtest/collector.yaml.
type collectorProc struct {
	*proc
	grpc string // host:port of the OTLP/gRPC receiver
}

// collectorBinary returns bin/otelcol-beacon, or "" when it was not built.
func (r *runner) collectorBinary() string {
	path := filepath.Join(r.root, "bin", "otelcol-beacon")
	if st, err := os.Stat(path); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return ""
	}
	return path
}

// startCollector starts the collector and waits for its health check.
func (r *runner) startCollector(ctx context.Context, binary string) (*collectorProc, error) {
	env := callerEnv()
	addrs := map[string]string{}
	for _, k := range []string{"LOADTEST_OTLP_GRPC", "LOADTEST_OTLP_HTTP", "LOADTEST_COLLECTOR_HEALTH"} {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		env[k] = a
		addrs[k] = a
	}
	config := filepath.Join(r.root, "scripts", "loadtest", "collector.yaml")
	p, err := startProc("otelcol-beacon", binary, []string{"--config", config}, env.list())
	if err != nil {
		return nil, err
	}
	r.track(p)
	if err := waitReady(ctx, p, "http://"+addrs["LOADTEST_COLLECTOR_HEALTH"]+"/", 30*time.Second); err != nil {
		_ = p.stop(5 * time.Second)
		return nil, err
	}
	return &collectorProc{proc: p, grpc: addrs["LOADTEST_OTLP_GRPC"]}, nil
}

// sawTraces reports whether the debug exporter logged a batch of spans.
func (c *collectorProc) sawTraces() bool {
	return c.out.Count(`"spans"`) > 0 || c.out.Count("Traces") > 0
}
