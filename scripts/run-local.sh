#!/usr/bin/env bash
# `make run`: Beacon (`beacon all`) against DATABASE_URL, or against a local
# PostgreSQL kept in .data/ when DATABASE_URL is unset. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL's server binaries, where scripts/pg.sh finds them (PG_LIBDIR:
# Debian's versioned folders; the tests point it elsewhere).
have_pg() {
  [ -n "${PG_BIN:-}" ] && return 0
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then return 0; fi
  local d
  for d in "${PG_LIBDIR:-/usr/lib/postgresql}"/*/bin; do
    [ -x "$d/initdb" ] && return 0
  done
  command -v initdb >/dev/null 2>&1
}

# Without them: on Debian as root, install them when BEACON_INSTALL_PG=1 or
# when asked on a terminal; otherwise say the exact command.
need_pg() {
  have_pg && return 0
  local install="apt-get update && apt-get install -y postgresql" why="run: PostgreSQL's server binaries (initdb, postgres) not found"
  local other="or set DATABASE_URL to a server of yours"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "$why: install PostgreSQL's server package, set PG_BIN to its bin folder, $other" >&2
    exit 1
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "$why: install them with: sudo apt-get update && sudo apt-get install -y postgresql ($other)" >&2
    exit 1
  fi
  local yes=${BEACON_INSTALL_PG:-} answer
  if [ -z "$yes" ] && [ -t 0 ]; then
    read -r -p "$why. Install them now ($install)? [y/N] " answer || true
    case $answer in [yY]*) yes=1 ;; esac
  fi
  if [ "$yes" != 1 ]; then
    echo "$why: install them with: $install (BEACON_INSTALL_PG=1 make run does it; $other)" >&2
    exit 1
  fi
  echo "run: $install"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
  have_pg || { echo "$why, even after installing postgresql" >&2; exit 1; }
}

if [ -z "${DATABASE_URL:-}" ]; then
  need_pg
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
# A listen address as a URL: ":8080" is localhost:8080, "127.0.0.1:8080" itself.
url() { case $1 in :*) echo "http://localhost$1" ;; *) echo "http://$1" ;; esac; }
api=$(url "${BEACON_HTTP_ADDR:-:8080}") dash=$(url "${BEACON_DASHBOARD_ADDR:-:8081}")
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
