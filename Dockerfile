# syntax=docker/dockerfile:1
#
# tiercache image: tiercached (entrypoint), tierctl and a static /healthz
# probe on distroless/static, running as the distroless "nonroot" user
# (65532:65532).
#
#   docker build -t tiercache:dev --build-arg VERSION=$(git describe --always) .
#   docker run -d --name tiercache \
#     -v tiercache-data:/var/lib/tiercache -v tiercache-run:/run/tiercache \
#     tiercache:dev --mem-max 2GiB --disk-max 50GiB
#   docker exec tiercache tierctl stats
#
# Pipelines in other containers mount the socket volume at /run/tiercache and
# run with supplementary group 65532 (the socket is 0660, group 65532).

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/bin/ \
        ./cmd/tiercached ./cmd/tierctl ./deploy/healthcheck
# The volumes' mount points, owned by the runtime user: Docker copies the
# ownership into a new named volume. distroless has no shell to mkdir with.
RUN mkdir -p /out/rootfs/var/lib/tiercache /out/rootfs/run/tiercache

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="tiercache" \
      org.opencontainers.image.description="Two-tier (memory, disk) cache daemon for AI pipelines, speaking the Redis protocol on a Unix socket" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/tiercache/tiercache"
COPY --from=build --chown=65532:65532 /out/rootfs/ /
COPY --from=build /out/bin/tiercached /out/bin/tierctl /out/bin/healthcheck /usr/local/bin/

# Every flag has a TIERCACHE_* variable; a flag on the command line wins.
# --nats defaults to embedded (a single-node daemon with its own NATS);
# join a cluster with TIERCACHE_NATS=nats://n1:4222,nats://n2:4222,...
ENV TIERCACHE_SOCKET=/run/tiercache/tiercache.sock \
    TIERCACHE_DATA_DIR=/var/lib/tiercache \
    TIERCACHE_METRICS=:9100 \
    TIERCACHE_LOG_FORMAT=json

USER 65532:65532
VOLUME ["/var/lib/tiercache", "/run/tiercache"]
# Prometheus /metrics and /healthz. The RESP server is on the socket only:
# to expose it, add --tcp :6380 with a password (--requirepass-file on a
# mounted secret); protected mode refuses a TCP address other containers
# can reach without one (--protected-mode no to accept that).
EXPOSE 9100

# /healthz answers 200 while serving and 503 once a shutdown has begun. The
# probe finds it from TIERCACHE_METRICS; set TIERCACHE_HEALTHCHECK_URL if
# --metrics is given on the command line instead.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/healthcheck"]

# SIGTERM is a graceful stop (write-back of L1-only entries, Pebble closed);
# give it time: docker stop -t 30, or stop_grace_period in compose.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tiercached"]
