#!/usr/bin/env bash
# Runs a command (tests, benchmarks) with TEST_DATABASE_URL pointing at a real
# PostgreSQL. When it is unset, a throwaway cluster is started from the local
# binaries (unix socket only: no TCP port to collide on) and removed after.
#   scripts/with-testdb.sh go test ./...
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${TEST_DATABASE_URL:-}" ]; then
  dir=$(mktemp -d /tmp/beacon-test-pg.XXXXXX)
  chmod 755 "$dir"
  cleanup() { scripts/pg.sh stop "$dir"; rm -rf "$dir"; }
  trap cleanup EXIT
  scripts/pg.sh start "$dir"
  TEST_DATABASE_URL=$(scripts/pg.sh url "$dir")
  export TEST_DATABASE_URL
fi
"$@"
