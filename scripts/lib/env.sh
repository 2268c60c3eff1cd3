# shellcheck shell=bash
# Herald's shared environment: sourced by every script in scripts/, .ci/ and examples/.
#
# Every value can be overridden from the environment; the defaults below are what a developer
# gets on a fresh checkout. Nothing here starts or installs anything.

# Source once per shell (scripts source each other's libraries).
if [[ -n "${__HERALD_ENV_SH:-}" ]]; then return 0; fi
__HERALD_ENV_SH=1

# --- paths ------------------------------------------------------------------------------------
# The checkout root, from this file's location (scripts/lib/env.sh), whatever the caller's cwd.
HERALD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
# Runtime state: server data, logs, the Python venv, reports. Git-ignored (.run/).
HERALD_RUN_DIR="${HERALD_RUN_DIR:-$HERALD_ROOT/.run}"
# Where herald reads channels.d/ and templates/ from.
HERALD_CONFIG_DIR="${HERALD_CONFIG_DIR:-$HERALD_ROOT}"

# --- ports ------------------------------------------------------------------------------------
HERALD_PG_PORT="${HERALD_PG_PORT:-15432}"                 # PostgreSQL 15
HERALD_AMQP_PORT="${HERALD_AMQP_PORT:-5672}"              # RabbitMQ AMQP 0-9-1
HERALD_AMQP_DIST_PORT="${HERALD_AMQP_DIST_PORT:-25672}"   # RabbitMQ inter-node / CLI (Erlang dist)
HERALD_AMQP_MGMT_PORT="${HERALD_AMQP_MGMT_PORT:-15672}"   # RabbitMQ management UI/API (optional)
HERALD_EPMD_PORT="${HERALD_EPMD_PORT:-4369}"              # Erlang port mapper (shared by nodes)
HERALD_HTTP_PORT="${HERALD_HTTP_PORT:-8080}"              # herald gateway HTTP API
HERALD_SINK_PORT="${HERALD_SINK_PORT:-9099}"              # example webhook sink (herald sink)
# Herald's own Postfix (scripts/lib/postfix.sh): STARTTLS with a private CA, no TLS, self-signed.
HERALD_SMTP_PORT="${HERALD_SMTP_PORT:-2525}"
HERALD_SMTP_PLAIN_PORT="${HERALD_SMTP_PLAIN_PORT:-2526}"
HERALD_SMTP_SELFSIGNED_PORT="${HERALD_SMTP_SELFSIGNED_PORT:-2527}"
HERALD_WORKER_MANAGEMENT_PORT="${HERALD_WORKER_MANAGEMENT_PORT:-9100}"  # scripts/run's worker: /metrics, /healthz, /readyz
# scripts/check-observability: Prometheus 2.42 and Alertmanager 0.25 (9090-9098), and the Herald
# processes and recording receiver it runs (9190-9199; every Herald management port lies in 9100-9199).
HERALD_PROMETHEUS_PORT="${HERALD_PROMETHEUS_PORT:-9090}"
HERALD_ALERTMANAGER_PORT="${HERALD_ALERTMANAGER_PORT:-9093}"
HERALD_ALERTMANAGER_CLUSTER_PORT="${HERALD_ALERTMANAGER_CLUSTER_PORT:-9094}"  # gossip, bound to 127.0.0.1
HERALD_OBS_GATEWAY_PORT="${HERALD_OBS_GATEWAY_PORT:-9190}"
HERALD_OBS_WORKER_PORT="${HERALD_OBS_WORKER_PORT:-9191}"                # the first worker's management port
HERALD_OBS_LATE_WORKER_PORT="${HERALD_OBS_LATE_WORKER_PORT:-9192}"      # the worker started later for the idle queue
HERALD_OBS_RECEIVER_PORT="${HERALD_OBS_RECEIVER_PORT:-9193}"
# scripts/cluster: a 3-node RabbitMQ cluster; node N (1-3) uses BASE+N of each range.
HERALD_CLUSTER_AMQP_BASE="${HERALD_CLUSTER_AMQP_BASE:-5680}"      # AMQP 5681-5683
HERALD_CLUSTER_DIST_BASE="${HERALD_CLUSTER_DIST_BASE:-25680}"     # Erlang dist 25681-25683
HERALD_CLUSTER_MGMT_BASE="${HERALD_CLUSTER_MGMT_BASE:-15680}"     # management 15681-15683 (optional)
HERALD_CLUSTER_HTTP_PORT="${HERALD_CLUSTER_HTTP_PORT:-18090}"     # the cluster test's gateway
# scripts/container-smoke: host ports the compose stack publishes (compose.yaml reads the same names).
HERALD_SMOKE_API_PORT="${HERALD_SMOKE_API_PORT:-18080}"           # the API (edge proxy in front of the gateways)
HERALD_SMOKE_PG_PORT="${HERALD_SMOKE_PG_PORT:-18032}"             # the stack's PostgreSQL
HERALD_SMOKE_AMQP_MGMT_PORT="${HERALD_SMOKE_AMQP_MGMT_PORT:-18072}" # the stack's RabbitMQ management
# Herald's own Kannel (scripts/lib/kannel.sh): sendsms HTTP, bearerbox admin, box link, fake SMSC.
HERALD_KANNEL_SENDSMS_PORT="${HERALD_KANNEL_SENDSMS_PORT:-10002}"
HERALD_KANNEL_ADMIN_PORT="${HERALD_KANNEL_ADMIN_PORT:-10000}"
HERALD_KANNEL_BOX_PORT="${HERALD_KANNEL_BOX_PORT:-10001}"
HERALD_KANNEL_SMSC_PORT="${HERALD_KANNEL_SMSC_PORT:-10003}"
# Herald's own Synapse (scripts/lib/synapse.sh): Matrix client API.
HERALD_SYNAPSE_PORT="${HERALD_SYNAPSE_PORT:-8000}"

# scripts/bench: its own durable PostgreSQL and RabbitMQ node, gateways on BASE+0.., the sink.
HERALD_BENCH_PG_PORT="${HERALD_BENCH_PG_PORT:-16432}"             # PostgreSQL, fsync and synchronous_commit on
HERALD_BENCH_AMQP_PORT="${HERALD_BENCH_AMQP_PORT:-5690}"          # RabbitMQ node heraldbench@localhost
HERALD_BENCH_AMQP_DIST_PORT="${HERALD_BENCH_AMQP_DIST_PORT:-25690}"
HERALD_BENCH_HTTP_BASE="${HERALD_BENCH_HTTP_BASE:-8190}"          # gateway N (0-3) on BASE+N
HERALD_BENCH_SINK_PORT="${HERALD_BENCH_SINK_PORT:-9190}"          # herald sink, the webhook receiver

# Enable RabbitMQ's management plugin (UI + HTTP API on $HERALD_AMQP_MGMT_PORT)? It adds ~3 s to
# a cold start and ~50 MB of memory, so it is on for developers and off in CI.
if [[ -z "${HERALD_RABBITMQ_MANAGEMENT:-}" ]]; then
  if [[ "${CI:-}" == "true" ]]; then HERALD_RABBITMQ_MANAGEMENT=0; else HERALD_RABBITMQ_MANAGEMENT=1; fi
fi

# --- connection URLs --------------------------------------------------------------------------
HERALD_POSTGRES_URL="${HERALD_POSTGRES_URL:-postgres://postgres@127.0.0.1:$HERALD_PG_PORT/herald}"
# scripts/test points HERALD_POSTGRES_URL at this one, so tests never touch the dev database.
HERALD_TEST_POSTGRES_URL="${HERALD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:$HERALD_PG_PORT/herald_test}"
HERALD_AMQP_URL="${HERALD_AMQP_URL:-amqp://guest:guest@127.0.0.1:$HERALD_AMQP_PORT/}"
# The Postfix instance's folder (config, queue, Maildir, log, test CA): named after its port, not
# the checkout, so every checkout that reuses a running instance finds its Maildir.
HERALD_POSTFIX_DIR="${HERALD_POSTFIX_DIR:-/var/tmp/herald-postfix-$HERALD_SMTP_PORT}"

# The Kannel and Synapse folders (config, logs, the fake SMSC's log, the homeserver's database): named
# after their ports, not the checkout, so every checkout reusing a running instance reads the same logs.
HERALD_KANNEL_DIR="${HERALD_KANNEL_DIR:-/var/tmp/herald-kannel-$HERALD_KANNEL_SENDSMS_PORT}"
HERALD_KANNEL_USERNAME="${HERALD_KANNEL_USERNAME:-herald}"
HERALD_KANNEL_PASSWORD="${HERALD_KANNEL_PASSWORD:-herald-kannel-test}"
HERALD_SYNAPSE_DIR="${HERALD_SYNAPSE_DIR:-/var/tmp/herald-synapse-$HERALD_SYNAPSE_PORT}"
HERALD_SYNAPSE_USER="${HERALD_SYNAPSE_USER:-herald}"
HERALD_SYNAPSE_PASSWORD="${HERALD_SYNAPSE_PASSWORD:-herald-synapse-test}"

export HERALD_ROOT HERALD_RUN_DIR HERALD_CONFIG_DIR \
  HERALD_PG_PORT HERALD_AMQP_PORT HERALD_AMQP_DIST_PORT HERALD_AMQP_MGMT_PORT HERALD_EPMD_PORT \
  HERALD_HTTP_PORT HERALD_SINK_PORT HERALD_WORKER_MANAGEMENT_PORT HERALD_RABBITMQ_MANAGEMENT \
  HERALD_SMTP_PORT HERALD_SMTP_PLAIN_PORT HERALD_SMTP_SELFSIGNED_PORT HERALD_POSTFIX_DIR \
  HERALD_PROMETHEUS_PORT HERALD_ALERTMANAGER_PORT HERALD_ALERTMANAGER_CLUSTER_PORT \
  HERALD_OBS_GATEWAY_PORT HERALD_OBS_WORKER_PORT HERALD_OBS_LATE_WORKER_PORT HERALD_OBS_RECEIVER_PORT \
  HERALD_CLUSTER_AMQP_BASE HERALD_CLUSTER_DIST_BASE HERALD_CLUSTER_MGMT_BASE HERALD_CLUSTER_HTTP_PORT \
  HERALD_SMOKE_API_PORT HERALD_SMOKE_PG_PORT HERALD_SMOKE_AMQP_MGMT_PORT \
  HERALD_KANNEL_SENDSMS_PORT HERALD_KANNEL_ADMIN_PORT HERALD_KANNEL_BOX_PORT HERALD_KANNEL_SMSC_PORT HERALD_KANNEL_DIR \
  HERALD_KANNEL_USERNAME HERALD_KANNEL_PASSWORD \
  HERALD_SYNAPSE_PORT HERALD_SYNAPSE_DIR HERALD_SYNAPSE_USER HERALD_SYNAPSE_PASSWORD \
  HERALD_BENCH_PG_PORT HERALD_BENCH_AMQP_PORT HERALD_BENCH_AMQP_DIST_PORT HERALD_BENCH_HTTP_BASE HERALD_BENCH_SINK_PORT \
  HERALD_POSTGRES_URL HERALD_TEST_POSTGRES_URL HERALD_AMQP_URL

# --- toolchain --------------------------------------------------------------------------------
# Swift lives in /opt/swift on these machines and is not always on PATH.
if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi
export DEBIAN_FRONTEND=noninteractive
# glibc makes up to 8 malloc arenas per core, each keeping memory freed into it: with NIO's, the C
# shims' and Swift's threads that is tens of MiB of RSS per Herald process for nothing (the image sets
# the same). Two arenas on these 2 cores cost no measurable throughput.
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"

# --- helpers ----------------------------------------------------------------------------------
# say "message": progress for humans, on stderr so it never mixes into captured output.
# Never fails: a clean-up must go on even when the terminal or a `| tee` is already gone.
say()  { printf '[herald] %s\n' "$*" >&2 || true; }
warn() { printf '[herald] warning: %s\n' "$*" >&2 || true; }
die()  { printf '[herald] error: %s\n' "$*" >&2 || true; exit 1; }

# port_listening PORT: true when something listens on 127.0.0.1:PORT (or on all addresses).
port_listening() {
  ss -Htln "sport = :$1" 2>/dev/null | grep -q .
}

# live_pid FILE: prints the pid in FILE when that process is alive; false otherwise.
live_pid() {
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(cat "$1")"
  kill -0 "$pid" 2>/dev/null || return 1
  printf '%s' "$pid"
}

# stop_pid PID: SIGTERM, up to 10 s for it to end, then SIGKILL.
stop_pid() {
  local i
  kill "$1" 2>/dev/null || return 0
  for i in {1..100}; do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}

# pg_answers: true when a PostgreSQL server accepts connections on 127.0.0.1:$HERALD_PG_PORT.
pg_answers() {
  pg_isready -q -h 127.0.0.1 -p "$HERALD_PG_PORT" -U postgres -d postgres -t 2 >/dev/null 2>&1
}

# amqp_answers: true when something listens on the AMQP port.
amqp_answers() {
  port_listening "$HERALD_AMQP_PORT"
}

# swift_build_flags: the flags for `swift build`/`swift test` common to all scripts.
# HERALD_BUILD=debug|release picks the configuration; HERALD_SCRATCH_PATH a build folder other
# than .build (name it .build-NAME so git ignores it).
swift_build_flags() {
  local flags=(-c "${HERALD_BUILD:-debug}")
  if [[ -n "${HERALD_SCRATCH_PATH:-}" ]]; then flags+=(--scratch-path "$HERALD_SCRATCH_PATH"); fi
  printf '%s\n' "${flags[@]}"
}
