#!/usr/bin/env bash
# Throwaway or local PostgreSQL clusters from the machine's PostgreSQL binaries,
# for `make run` and `make test`. No Docker needed.
#
#   scripts/pg.sh start DIR [PORT]   init DIR/data if needed, start, create db "beacon"
#                                    (no PORT: unix socket in DIR only, no TCP)
#   scripts/pg.sh stop DIR           fast shutdown
#   scripts/pg.sh url DIR [PORT]     print the connection URL
set -euo pipefail

die() { echo "pg.sh: $*" >&2; exit 1; }

find_bin() {
  if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then pg_config --bindir; return; fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  die "PostgreSQL server binaries not found: install them (Debian: apt-get install -y postgresql) or set PG_BIN"
}

# initdb and postgres refuse to run as root: run them as the postgres user then.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    # From /: the caller's folder may be private to root.
    (cd / && su postgres -s /bin/sh -c "$(printf '%q ' "$@")")
  else
    "$@"
  fi
}

url() {
  local dir=$1 port=${2:-}
  if [ -n "$port" ]; then
    echo "postgres://postgres@127.0.0.1:$port/beacon?sslmode=disable"
  else
    echo "postgres://postgres@/beacon?host=$dir&port=5432&sslmode=disable"
  fi
}

start() {
  local dir port bin
  [ $# -ge 1 ] || die "usage: pg.sh start DIR [PORT]"
  mkdir -p "$1"
  dir=$(cd "$1" && pwd)
  port=${2:-}
  bin=$(find_bin)
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' user to own the cluster"
    chown postgres: "$dir"
    (cd / && su postgres -s /bin/sh -c "test -w '$dir'") || die "$dir is not reachable by the postgres user (a parent folder is private?)"
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  fi
  if as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    echo "pg.sh: already running in $dir" >&2
  else
    local listen="''" p=5432
    if [ -n "$port" ]; then listen=127.0.0.1; p=$port; fi
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 \
      -o "-p $p -k $dir -c listen_addresses=$listen -c fsync=${PG_FSYNC:-off} -c max_connections=300" start >/dev/null \
      || { tail -n 20 "$dir/postgres.log" >&2; die "could not start PostgreSQL (see $dir/postgres.log)"; }
  fi
  local p=${port:-5432}
  if ! as_owner "$bin/psql" -h "$dir" -p "$p" -U postgres -d postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = 'beacon'" | grep -q 1; then
    as_owner "$bin/createdb" -h "$dir" -p "$p" -U postgres beacon
  fi
}

stop() {
  [ $# -ge 1 ] || die "usage: pg.sh stop DIR"
  local dir bin
  dir=$(cd "$1" && pwd)
  bin=$(find_bin)
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
  fi
}

cmd=${1:-}; shift || true
case "$cmd" in
  start) start "$@" ;;
  stop) stop "$@" ;;
  url) url "$@" ;;
  *) die "usage: pg.sh start|stop|url DIR [PORT]" ;;
esac
