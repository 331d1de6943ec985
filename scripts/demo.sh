#!/usr/bin/env bash
# `make demo`: Beacon (`make run`: `beacon all`, a local PostgreSQL in .data/ when DATABASE_URL
# is unset), the demo targets and the traffic generator, without Docker (docs/demo.md).
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

flags=${DEMO_FLAGS_FILE:-cmd/beacon-demo/flags/flags.json}
targets_addr=${DEMO_TARGETS_ADDR:-127.0.0.1:8090}
mkdir -p bin
go build -o bin/beacon-demo ./cmd/beacon-demo

pids=()
stop() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT

bin/beacon-demo targets -addr "$targets_addr" -flags "$flags" &
pids+=($!)
api=${BEACON_HTTP_ADDR:-:8080}
case $api in :*) api=http://localhost$api ;; *) api=http://$api ;; esac
# Waits for the API to be ready, then signs in as the development admin (or BEACON_ADMIN_*).
BEACON_API_URL=$api bin/beacon-demo traffic -targets "http://$targets_addr" &
pids+=($!)

cat <<BANNER
demo: targets on http://$targets_addr (/shop /search /payments; current faults: /flags),
      traffic generator calling $api (its counts: http://${DEMO_STATUS_ADDR:-127.0.0.1:8091}/stats)
  monitors "demo: shop|search|payments" appear in the dashboard; payments starts in an outage
  toggle a fault: edit $flags, set a flag's "defaultVariant"
      (e.g. "shop-latency-ms": "very-slow", "shop-error-rate": "most", "payments-outage": "off");
      it applies within a second, no restart
  metrics: ${BEACON_OPS_ADDR:-127.0.0.1:9464}/metrics; for Grafana, run the monitoring stack
      (make up) and start with OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317
BANNER
# Only the targets' own address may be checked among private ones.
BEACON_CHECK_ALLOW_CIDRS=${BEACON_CHECK_ALLOW_CIDRS:-${targets_addr%:*}/32} scripts/run-local.sh
