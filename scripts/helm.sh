#!/usr/bin/env bash
# Runs Helm, built from the Go module proxy on first use and kept under
# ~/.cache/beacon/helm/<version>, so CI needs no download beyond Go modules:
#   scripts/helm.sh lint deploy/helm/beacon
# First build: 4m45s of CPU (cold module and build caches), then instant.
# HELM_VERSION overrides the pinned version (a different cache folder).
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v3.22.0}
GO=${GO:-go}

dir=${BEACON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/beacon}/helm/$HELM_VERSION
bin=$dir/helm
if ! [ -x "$bin" ]; then
  echo "helm.sh: building helm.sh/helm/v3/cmd/helm@$HELM_VERSION into $dir (once; a few minutes on a cold module cache)" >&2
  start=$(date +%s)
  mkdir -p "$dir"
  tmp=$(mktemp -d "$dir/build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # go install with @version builds outside any module: this repository's go.mod plays no part.
  # The version is stamped as `helm version` and the chart's Capabilities.HelmVersion show it.
  GOBIN=$tmp CGO_ENABLED=0 GOFLAGS=-trimpath "$GO" install \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv -f "$tmp/helm" "$bin"
  rm -rf "$tmp"; trap - EXIT # exec below would skip the trap
  echo "helm.sh: built in $(( $(date +%s) - start ))s" >&2
fi
# Keep Helm's own state (repositories, plugins, registry logins) out of the user's home.
export HELM_CACHE_HOME=${HELM_CACHE_HOME:-$dir/home/cache}
export HELM_CONFIG_HOME=${HELM_CONFIG_HOME:-$dir/home/config}
export HELM_DATA_HOME=${HELM_DATA_HOME:-$dir/home/data}
exec "$bin" "$@"
