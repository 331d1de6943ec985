#!/usr/bin/env bash
# Runs sqlc (pinned) with the given arguments, e.g. `scripts/sqlc.sh generate`.
# Builds it once into ~/.cache/beacon/sqlc/<version>/ (needs cgo: gcc) and reuses it.
set -euo pipefail

SQLC_VERSION=v1.31.1
GO=${GO:-go}

cache_dir=${BEACON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/beacon}/sqlc/$SQLC_VERSION
sqlc=$cache_dir/sqlc
if ! [ -x "$sqlc" ]; then
  if ! command -v "${CC:-gcc}" >/dev/null 2>&1; then
    echo "sqlc.sh: building sqlc needs a C compiler (cgo) and ${CC:-gcc} is not installed: apt-get install gcc" >&2
    exit 1
  fi
  echo "sqlc.sh: building github.com/sqlc-dev/sqlc/cmd/sqlc@$SQLC_VERSION into $cache_dir (once: about 7 CPU-minutes)" >&2
  start=$(date +%s)
  mkdir -p "$cache_dir"
  tmp=$(mktemp -d "$cache_dir/build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # sqlc's PostgreSQL parser (pg_query_go) is C: cgo is required.
  CGO_ENABLED=1 GOBIN=$tmp "$GO" install "github.com/sqlc-dev/sqlc/cmd/sqlc@$SQLC_VERSION"
  mv -f "$tmp/sqlc" "$sqlc"
  rm -rf "$tmp"
  trap - EXIT
  echo "sqlc.sh: built in $(( $(date +%s) - start ))s" >&2
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
exec "$sqlc" "$@"
