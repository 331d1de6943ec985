#!/usr/bin/env bash
# `make run`: Beacon (`beacon all`) against DATABASE_URL, or against a local
# PostgreSQL kept in .data/ when DATABASE_URL is unset. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${DATABASE_URL:-}" ]; then
  port=${BEACON_PG_PORT:-55432}
  # Kept between runs: unlike the tests' throwaway clusters, it syncs to disk.
  PG_FSYNC=on scripts/pg.sh start .data "$port"
  trap 'scripts/pg.sh stop .data' EXIT
  DATABASE_URL=$(scripts/pg.sh url .data "$port")
  export DATABASE_URL
  echo "run: local PostgreSQL in .data/ on 127.0.0.1:$port (stopped on exit)"
fi
export BEACON_ENV=${BEACON_ENV:-development}
# The ops port (metrics, pprof) is never public: loopback unless asked otherwise.
export BEACON_OPS_ADDR=${BEACON_OPS_ADDR:-127.0.0.1:9464}
mkdir -p bin
go build -o bin/beacon ./cmd/beacon
api=http://localhost${BEACON_HTTP_ADDR:-:8080} dash=http://localhost${BEACON_DASHBOARD_ADDR:-:8081}
signin="admin@beacon.local / beacon-dev-password"
[ -n "${BEACON_ADMIN_EMAIL:-}" ] && signin="$BEACON_ADMIN_EMAIL / your BEACON_ADMIN_PASSWORD"
cat <<BANNER
run: Ctrl-C to stop
  dashboard  $dash  (sign in: $signin)
  API docs   $api/docs
  River UI   $dash/riverui/
  checks of local services need BEACON_CHECK_ALLOW_CIDRS=127.0.0.0/8
BANNER
# Not exec: the trap must stop PostgreSQL once beacon has exited.
bin/beacon all
