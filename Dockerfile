# Beacon: one static binary, one image, several roles (api, worker, migrate, all).
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t beacon:dev .
#
# Needs BuildKit (the default builder since Docker Engine 23) for the cache
# mounts. No `# syntax=` line on purpose: the built-in Dockerfile frontend
# supports everything used here, and a syntax image would be one more floating
# reference pulled at build time.
#
# Base images are pinned by tag. Digests (`@sha256:...`) are stronger but could
# not be resolved where this file was written (no registry access); pin them with
# `docker buildx imagetools inspect IMAGE:TAG` or let Renovate/Dependabot do it.
# compose_test.go checks that the tags are not `latest` and that the builder's
# Go is at least go.mod's.

FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm AS build

# Fail instead of downloading another toolchain if go.mod ever asks for a newer Go
# than this image has: bump the tag above together with go.mod.
ENV GOTOOLCHAIN=local
WORKDIR /src

# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .

# Set by BuildKit for the requested --platform; the build cross-compiles
# natively instead of running under emulation.
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/beacon ./cmd/beacon

# Static, no shell, no package manager; runs as uid/gid 65532 (nonroot).
FROM gcr.io/distroless/static-debian12:nonroot

ARG VERSION=dev
ARG REVISION=
ARG CREATED=
LABEL org.opencontainers.image.title="beacon" \
      org.opencontainers.image.description="Beacon synthetic monitoring: API, workers and migrations in one binary" \
      org.opencontainers.image.source="https://github.com/beaconhq/beacon" \
      org.opencontainers.image.url="https://github.com/beaconhq/beacon" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"

COPY --from=build /out/beacon /beacon

USER nonroot:nonroot

# The public API. The ops port (9464: health, metrics, pprof) is deliberately
# not exposed, so `docker run -P` never publishes it.
EXPOSE 8080

# No curl in this image: the binary probes itself. Every long-running role
# serves /readyz on the ops port; `migrate` exits before this matters.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/beacon", "healthcheck", "http://127.0.0.1:9464/readyz"]

ENTRYPOINT ["/beacon"]
CMD ["all"]
