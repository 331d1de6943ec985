#!/usr/bin/env bash
# Builds Beacon's OpenTelemetry Collector (bin/otelcol-beacon) from
# otel-collector/builder-config.yaml with the OpenTelemetry Collector Builder (ocb).
# Installs the builder into $(go env GOPATH)/bin when it is missing or another version.
# Skips the build when bin/otelcol-beacon is newer than the manifest; set
# OTELCOL_REBUILD=1 to force it. Needs only the Go toolchain and the Go module proxy.
set -euo pipefail

BUILDER_VERSION=v0.165.0
GO=${GO:-go}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

manifest=otel-collector/builder-config.yaml
binary=bin/otelcol-beacon
scratch=bin/otelcol-build   # must match dist.output_path in the manifest

if [ -x "$binary" ] && [ "$binary" -nt "$manifest" ] && [ "${OTELCOL_REBUILD:-0}" != 1 ]; then
  echo "build-collector: $binary is newer than $manifest, skipping the build (OTELCOL_REBUILD=1 forces it)"
  exit 0
fi

# A build is kept per manifest under a stable cache folder, so a fresh clone
# (CI) copies it instead of spending minutes rebuilding the same binary.
cache_dir=${BEACON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/beacon}/otelcol/$(sha256sum "$manifest" | cut -c1-16)
if [ -x "$cache_dir/otelcol-beacon" ] && [ "${OTELCOL_REBUILD:-0}" != 1 ]; then
  mkdir -p bin
  cp "$cache_dir/otelcol-beacon" "$binary.tmp" && mv -f "$binary.tmp" "$binary"
  echo "build-collector: $binary copied from $cache_dir (same manifest)"
  exit 0
fi

gopath=$("$GO" env GOPATH)
gobin=${gopath%%:*}/bin   # first GOPATH entry, where `go install` puts tools
builder=$gobin/builder
if ! [ -x "$builder" ] || ! "$builder" version 2>&1 | grep -q " $BUILDER_VERSION\$"; then
  echo "build-collector: installing go.opentelemetry.io/collector/cmd/builder@$BUILDER_VERSION into $gobin"
  GOBIN=$gobin "$GO" install "go.opentelemetry.io/collector/cmd/builder@$BUILDER_VERSION"
fi

mkdir -p bin
# The generated module sits inside this git work tree: do not stamp VCS data into it
# (fails where git cannot read the tree, e.g. another owner).
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false"
echo "build-collector: building $binary with $("$builder" version 2>&1) (takes a few minutes on a cold module cache)"
start=$(date +%s)
"$builder" --config "$manifest"
mv -f "$scratch/otelcol-beacon" "$binary.tmp"
mv -f "$binary.tmp" "$binary"
echo "build-collector: $binary built in $(( $(date +%s) - start ))s"
mkdir -p "$cache_dir" && cp "$binary" "$cache_dir/otelcol-beacon.tmp" && mv -f "$cache_dir/otelcol-beacon.tmp" "$cache_dir/otelcol-beacon"
"$binary" --version
