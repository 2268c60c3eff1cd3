# One image for every Herald role: the command picks it.
#
#   docker run herald:latest gateway                      # the HTTP API and the outbox relay
#   docker run herald:latest worker --channel webhook     # one channel group's worker
#   docker run herald:latest migrate                      # database migrations (a one-shot job)
#   docker run herald:latest keys create --tenant shop    # and every other `herald` subcommand
#
# Targets (docs/deployment.md):
#   runtime (default)  builds Herald in a Swift toolchain stage, then copies the one static binary
#                      into a slim Debian runtime. Needs the Swift and Debian images:
#                      docker build -t herald:latest .
#   prebuilt           the same runtime around a binary built on the host, for machines that can't
#                      pull images: put it at deploy/docker/bin/herald (scripts/images does), then
#                      docker build --target prebuilt --build-arg RUNTIME_BASE=local/debian:bookworm .
#
# The runtime: non-root user herald (uid 10001), tini as PID 1 (forwards SIGTERM for the graceful
# shutdown and SIGHUP for configuration reloads to herald, reaps zombies), the shipped configuration
# in /etc/herald (HERALD_CONFIG_DIR: mount a directory over it, or set the variable, to use your
# own), a HEALTHCHECK against the role's /healthz, and only the C libraries Herald links:
# libcurl, rabbitmq-c (with OpenSSL) and libstdc++ — the Swift runtime is linked in statically (the
# `prebuilt` target carries the host toolchain's runtime libraries beside the binary instead).

ARG SWIFT_IMAGE=swift:6.3.1-bookworm
ARG RUNTIME_BASE=debian:bookworm-slim

# --- the runtime every target shares ---------------------------------------------------------------
FROM ${RUNTIME_BASE} AS runtime-base
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates tzdata tini curl libcurl4 librabbitmq4 libstdc++6 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 herald \
 && useradd --system --uid 10001 --gid herald --home-dir /var/lib/herald --create-home --shell /usr/sbin/nologin herald
COPY --chown=root:root channels.d/ /etc/herald/channels.d/
COPY --chown=root:root templates/ /etc/herald/templates/
COPY --chown=root:root routing.yaml retry-policies.yaml /etc/herald/
COPY --chown=root:root deploy/docker/healthcheck deploy/docker/config-watch /usr/local/bin/
ENV PATH=/opt/herald/bin:$PATH \
    HERALD_CONFIG_DIR=/etc/herald \
    HERALD_HTTP_HOST=0.0.0.0 \
    HERALD_HTTP_PORT=8080 \
    HERALD_LOG_FORMAT=json \
    MALLOC_ARENA_MAX=2
WORKDIR /var/lib/herald
USER 10001:10001
EXPOSE 8080
# The gateway answers /healthz on HERALD_HTTP_PORT; a worker on HERALD_MANAGEMENT_PORT when it serves
# one. deploy/docker/healthcheck picks the port.
HEALTHCHECK --interval=10s --timeout=4s --start-period=20s --retries=3 CMD ["/usr/local/bin/healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "herald"]
CMD ["gateway"]

# --- a binary built on the host (scripts/images) -----------------------------------------------------
# Before the toolchain stage: Docker's legacy builder (no BuildKit, as on machines that can't pull)
# builds every stage up to the target, and this target must not need the Swift image. The folder
# (with its README) always exists, so that a legacy build of the default target passes this stage
# even without a binary; scripts/images checks the image it builds runs `herald --help`.
FROM runtime-base AS prebuilt
COPY --chown=root:root deploy/docker/bin/ /opt/herald/bin/
# scripts/images puts the Swift runtime libraries the host's binary loads beside it.
ENV LD_LIBRARY_PATH=/opt/herald/bin/lib

# --- Swift toolchain stage ----------------------------------------------------------------------------
FROM ${SWIFT_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends librabbitmq-dev libcurl4-openssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the manifest changes.
COPY Package.swift ./
RUN swift package resolve
COPY Sources/ Sources/
COPY Tests/ Tests/
RUN swift build -c release --product herald --static-swift-stdlib -Xlinker -l_FoundationICU \
 && install -D -m 0755 "$(swift build -c release --show-bin-path)/herald" /staging/herald

# --- the default target: the runtime with the binary from the toolchain stage ------------------------
FROM runtime-base AS runtime
COPY --from=build --chown=root:root /staging/herald /opt/herald/bin/herald
RUN ["herald", "--help"]
