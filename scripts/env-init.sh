#!/bin/sh
# `make up`: creates or completes the compose stack's .env with random secrets.
#
#   scripts/env-init.sh [FILE]        (default: .env in the repository root)
#
# Adds only the keys FILE lacks, each on its own line; never changes a line
# that is there, so a second run keeps the first run's secrets and your
# edits. FILE is made private (mode 0600). Secrets are never printed: the
# output says where they are. The values pass Beacon's production checks
# (internal/config): 64 random hex characters for the signing key, 32 for
# each password (hex: no character compose or a URL would interpret).
# POSIX sh, so that it runs wherever Docker does.
set -eu

file=${1:-"$(cd "$(dirname "$0")/.." && pwd)/.env"}

# hex N: N random bytes as 2N lowercase hex characters.
hex() {
  od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

# has KEY: FILE has a KEY= line (commented lines do not count).
has() {
  [ -f "$file" ] && grep -q "^[[:space:]]*\(export[[:space:]]\{1,\}\)\{0,1\}$1=" "$file"
}

# empty KEY: FILE's KEY= line has no value.
empty() {
  grep -q "^[[:space:]]*\(export[[:space:]]\{1,\}\)\{0,1\}$1=[[:space:]]*\$" "$file"
}

umask 077
if [ ! -f "$file" ]; then
  printf '# Beacon compose settings and secrets, made by scripts/env-init.sh (`make up`).\n# Private (mode 0600) and git-ignored. A missing key is added at the next `make up`;\n# nothing here is ever overwritten.\n' >"$file"
fi
chmod 600 "$file"

added=""
add() { # KEY VALUE
  if has "$1"; then
    if empty "$1"; then
      echo "env-init: $1 is empty in $file: give it a value or delete the line (a new one is generated)" >&2
    fi
    return 0
  fi
  # Make sure the file ends with a newline before appending.
  if [ -s "$file" ] && [ "$(tail -c 1 "$file" | od -An -c | tr -d ' ')" != '\n' ]; then
    echo >>"$file"
  fi
  printf '%s=%s\n' "$1" "$2" >>"$file"
  added="$added $1"
}

add BEACON_JWT_SECRET "$(hex 32)"
add BEACON_ADMIN_EMAIL admin@example.com
add BEACON_ADMIN_PASSWORD "$(hex 16)"
add GRAFANA_ADMIN_PASSWORD "$(hex 16)"
add PGADMIN_DEFAULT_EMAIL admin@example.com
add PGADMIN_DEFAULT_PASSWORD "$(hex 16)"
# PostgreSQL reads its password only when its volume is first initialised: a
# volume made before this file (with the compose default) keeps that one, and
# a new password here would lock Beacon out. Leave it to the default then.
if has POSTGRES_PASSWORD; then
  :
elif command -v docker >/dev/null 2>&1 && docker volume inspect beacon_postgres-data >/dev/null 2>&1; then
  echo "env-init: volume beacon_postgres-data exists: POSTGRES_PASSWORD not generated (the volume keeps the password it was created with)" >&2
else
  add POSTGRES_PASSWORD "$(hex 24)"
fi

if [ -n "$added" ]; then
  echo "env-init: added to $file:$added"
else
  echo "env-init: $file has every key; nothing changed"
fi
# Compose prefers the shell's environment to .env: say what it will use.
if [ -n "${BEACON_ADMIN_EMAIL:-}" ]; then
  email=$BEACON_ADMIN_EMAIL
else
  email=$(sed -n 's/^[[:space:]]*\(export[[:space:]]\{1,\}\)\{0,1\}BEACON_ADMIN_EMAIL=//p' "$file" | tail -n 1)
fi
if [ -n "${BEACON_ADMIN_PASSWORD:-}" ]; then
  where="your BEACON_ADMIN_PASSWORD (set in this shell)"
else
  where="grep BEACON_ADMIN_PASSWORD $file"
fi
echo "env-init: dashboard sign-in: $email; password: $where"
