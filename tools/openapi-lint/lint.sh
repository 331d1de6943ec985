#!/usr/bin/env bash
# Lints the OpenAPI document Beacon serves (`beacon openapi`) with the Redocly
# CLI pinned in package-lock.json and the rules in redocly.yaml. Part of
# `make lint`. The only download is `npm ci`, run when node_modules is missing
# or does not match package-lock.json; linting itself stays offline.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

for cmd in node npm; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "openapi-lint: $cmd not found: apt-get install nodejs npm" >&2; exit 1; }
done

# node_modules/.package-lock.stamp is the package-lock.json it was installed
# from; npm ci empties node_modules first, so a failed install leaves no stamp.
cd "$here"
if ! cmp -s package-lock.json node_modules/.package-lock.stamp 2>/dev/null; then
  echo "openapi-lint: npm ci in tools/openapi-lint"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.package-lock.stamp
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/beacon-openapi-lint.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && "${GO:-go}" run ./cmd/beacon openapi) >"$tmp/openapi.json"

# No telemetry and no update check: nothing leaves the machine.
cd "$tmp"
if ! REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
  "$here/node_modules/.bin/redocly" lint --config "$here/redocly.yaml" openapi.json; then
  echo "openapi-lint: openapi.json is the output of \`make openapi\`; fix the document at its source (internal/httpapi)" >&2
  exit 1
fi
