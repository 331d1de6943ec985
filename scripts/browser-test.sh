#!/usr/bin/env bash
# Browser tests (`make browser`): builds beacon, starts a throwaway PostgreSQL
# and `beacon all` (API, workers, dashboard) on free loopback ports, then runs
# e2e/browser/*.test.mjs with node's test runner in Debian's Chromium
# (playwright-core, never a downloaded browser). Checks may reach 127.0.0.0/8
# only (BEACON_CHECK_ALLOW_CIDRS), where the tests serve their targets.
# Logs and screenshots go to test-results/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM_PATH" ]; then
  echo "browser-test: $CHROMIUM_PATH not found: apt-get install chromium" >&2
  exit 1
fi
export CHROMIUM_PATH
command -v node >/dev/null 2>&1 || { echo "browser-test: node not found: apt-get install nodejs npm" >&2; exit 1; }

# node_modules must match package-lock.json exactly (npm ci otherwise).
(
  cd e2e/browser
  if ! node -e '
    const fs = require("fs");
    const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
    for (const [p, e] of Object.entries(lock.packages)) {
      if (!p) continue;
      const v = JSON.parse(fs.readFileSync(p + "/package.json", "utf8")).version;
      if (v !== e.version) process.exit(1);
    }' 2>/dev/null; then
    echo "browser-test: npm ci in e2e/browser"
    npm ci --no-audit --no-fund --loglevel=error
  fi
)

results=$root/test-results
mkdir -p "$results"
tmp=$(mktemp -d /tmp/beacon-browser.XXXXXX)
chmod 755 "$tmp"
beacon_pid=
cleanup() {
  local rc=$?
  if [ -n "$beacon_pid" ] && kill -0 "$beacon_pid" 2>/dev/null; then
    kill -TERM "$beacon_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$beacon_pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$beacon_pid" 2>/dev/null || true
    wait "$beacon_pid" 2>/dev/null || true
  fi
  scripts/pg.sh stop "$tmp/pg" 2>/dev/null || true
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "browser-test: building beacon"
"${GO:-go}" build -o "$tmp/beacon" ./cmd/beacon

scripts/pg.sh start "$tmp/pg"
DATABASE_URL=$(scripts/pg.sh url "$tmp/pg")

# Three free loopback ports, held open together so they differ.
read -r api_port ops_port dash_port < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')

log=$results/beacon.log
: >"$log"
DATABASE_URL=$DATABASE_URL \
  BEACON_ENV=development \
  BEACON_HTTP_ADDR=127.0.0.1:$api_port \
  BEACON_OPS_ADDR=127.0.0.1:$ops_port \
  BEACON_DASHBOARD_ADDR=127.0.0.1:$dash_port \
  BEACON_CHECK_ALLOW_CIDRS=127.0.0.0/8 \
  BEACON_SCHEDULER_INTERVAL=1s \
  BEACON_INCIDENT_CONFIRMATIONS=2 \
  BEACON_INCIDENT_CONFIRM_SPACING=1s \
  BEACON_LOG_FORMAT=json \
  "$tmp/beacon" all >>"$log" 2>&1 &
beacon_pid=$!

api=http://127.0.0.1:$api_port
dash=http://127.0.0.1:$dash_port
echo "browser-test: beacon all: API $api, dashboard $dash (log: test-results/beacon.log)"
ready=
for _ in $(seq 1 240); do
  if ! kill -0 "$beacon_pid" 2>/dev/null; then
    echo "browser-test: beacon exited early:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  if curl -fsS -o /dev/null --max-time 2 "$api/readyz" 2>/dev/null \
    && curl -fsS -o /dev/null --max-time 2 "$dash/healthz" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.25
done
if [ -z "$ready" ]; then
  echo "browser-test: beacon not ready after 60 s ($api/readyz, $dash/healthz):" >&2
  tail -n 30 "$log" >&2
  exit 1
fi

# One file at a time: they share the server and the development admin.
BEACON_API_URL=$api BEACON_DASHBOARD_URL=$dash BEACON_TEST_RESULTS=$results \
  node --test --test-reporter=spec --test-concurrency=1 --test-timeout=600000 e2e/browser/
