#!/usr/bin/env bash
# Lints the dashboard's JavaScript (internal/dashboard/static) with ESLint
# (eslint.config.js) and type-checks it with tsc --noEmit --checkJs
# (tsconfig.json, JSDoc types), both pinned in package-lock.json. Part of
# `make lint`. The only download is `npm ci`, run when node_modules is
# missing or does not match package-lock.json; linting stays offline.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

for cmd in node npm; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "frontend-lint: $cmd not found: apt-get install nodejs npm" >&2; exit 1; }
done

# node_modules/.package-lock.stamp is the package-lock.json it was installed
# from; npm ci empties node_modules first, so a failed install leaves no stamp.
cd "$here"
if ! cmp -s package-lock.json node_modules/.package-lock.stamp 2>/dev/null; then
  echo "frontend-lint: npm ci in tools/frontend-lint"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.package-lock.stamp
fi

cd "$root"
status=0
"$here/node_modules/.bin/eslint" --config "$here/eslint.config.js" --max-warnings 0 \
  --cache --cache-location "$here/node_modules/.cache/eslint" internal/dashboard/static || status=1
"$here/node_modules/.bin/tsc" -p "$here/tsconfig.json" || status=1
if [ "$status" -ne 0 ]; then
  echo "frontend-lint: fix the files above (internal/dashboard/static); types are JSDoc comments checked by tsc --checkJs" >&2
fi
exit "$status"
