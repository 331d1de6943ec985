#!/usr/bin/env bash
# Builds the Prometheus-project binaries that docker-compose.observability.yml runs as images,
# at the images' versions, for the telemetry contract tests (make e2e):
#
#   bin/prometheus, bin/promtool   github.com/prometheus/prometheus           v0.314.0 (= v3.14.0)
#   bin/postgres_exporter          github.com/prometheus-community/postgres_exporter v0.17.1
#   bin/node_exporter              github.com/prometheus/node_exporter        v1.9.1
#
# From the Go module proxy only (each module's own go.mod and go.sum, built as the main
# module: Prometheus' go.mod has a replace directive, so `go install pkg@version` refuses it).
# Each build is kept under ~/.cache/beacon/<tool>/<version> and copied into bin/ from there;
# PROMETHEUS_REBUILD=1 forces the builds. observability/contract_test.go fails when a
# version here and compose's image tag differ: bump both together.
#
# Prometheus is built with the service discoveries prometheus.yml uses (static, file and
# DNS: -tags remove_all_sd,enable_dns_sd), which halves the build; promtool check config
# fails on any other. Its web UI assets are not built in (no builtinassets tag): the tests
# use the HTTP API.
set -euo pipefail

PROMETHEUS_VERSION=v0.314.0 # prom/prometheus:v3.14.0
POSTGRES_EXPORTER_VERSION=v0.17.1
NODE_EXPORTER_VERSION=v1.9.1
GO=${GO:-go}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${BEACON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/beacon}
mkdir -p "$root/bin"

# build TOOL MODULE VERSION DISPLAY_VERSION TAGS PKG:BINARY...
build() {
  local tool=$1 module=$2 version=$3 display=$4 tags=$5
  shift 5
  local dir=$cache/$tool/$version${tags:+-${tags//,/-}} missing=0 spec
  for spec in "$@"; do
    [ -x "$dir/${spec#*:}" ] || missing=1
  done
  if [ "$missing" = 1 ] || [ "${PROMETHEUS_REBUILD:-0}" = 1 ]; then
    echo "build-prometheus: building $module@$version (a few minutes on a cold module cache)"
    local start src pkgs=() ldflags
    start=$(date +%s)
    src=$(GOFLAGS=-mod=mod "$GO" mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [ -n "$src" ] && [ -f "$src/go.mod" ] || { echo "build-prometheus: cannot download $module@$version" >&2; exit 1; }
    ldflags="-s -w -X github.com/prometheus/common/version.Version=$display -X github.com/prometheus/common/version.Branch=$version -X github.com/prometheus/common/version.BuildUser=beacon"
    mkdir -p "$dir.tmp"
    for spec in "$@"; do
      # The module's own go.mod and go.sum, as the main module; its go.work (if any) is not ours.
      (cd "$src" && GOWORK=off CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
        "$GO" build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$dir.tmp/${spec#*:}" "./${spec%%:*}")
    done
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    echo "build-prometheus: $tool $version built in $(( $(date +%s) - start ))s into $dir"
  fi
  for spec in "$@"; do
    cp "$dir/${spec#*:}" "$root/bin/${spec#*:}.tmp" && mv -f "$root/bin/${spec#*:}.tmp" "$root/bin/${spec#*:}"
  done
}

build prometheus github.com/prometheus/prometheus "$PROMETHEUS_VERSION" 3.14.0 remove_all_sd,enable_dns_sd \
  cmd/prometheus:prometheus cmd/promtool:promtool
build postgres_exporter github.com/prometheus-community/postgres_exporter "$POSTGRES_EXPORTER_VERSION" "${POSTGRES_EXPORTER_VERSION#v}" "" \
  cmd/postgres_exporter:postgres_exporter
build node_exporter github.com/prometheus/node_exporter "$NODE_EXPORTER_VERSION" "${NODE_EXPORTER_VERSION#v}" "" \
  .:node_exporter

"$root/bin/prometheus" --version | head -1
"$root/bin/postgres_exporter" --version 2>&1 | head -1
"$root/bin/node_exporter" --version 2>&1 | head -1
