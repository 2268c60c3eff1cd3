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
# Herald's own Kannel (scripts/lib/kannel.sh): sendsms HTTP, bearerbox admin, box link, fake SMSC.
HERALD_KANNEL_SENDSMS_PORT="${HERALD_KANNEL_SENDSMS_PORT:-10002}"
HERALD_KANNEL_ADMIN_PORT="${HERALD_KANNEL_ADMIN_PORT:-10000}"
HERALD_KANNEL_BOX_PORT="${HERALD_KANNEL_BOX_PORT:-10001}"
HERALD_KANNEL_SMSC_PORT="${HERALD_KANNEL_SMSC_PORT:-10003}"
# Herald's own Synapse (scripts/lib/synapse.sh): Matrix client API.
HERALD_SYNAPSE_PORT="${HERALD_SYNAPSE_PORT:-8000}"

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
  HERALD_HTTP_PORT HERALD_SINK_PORT HERALD_RABBITMQ_MANAGEMENT \
  HERALD_KANNEL_SENDSMS_PORT HERALD_KANNEL_ADMIN_PORT HERALD_KANNEL_BOX_PORT HERALD_KANNEL_SMSC_PORT HERALD_KANNEL_DIR \
  HERALD_KANNEL_USERNAME HERALD_KANNEL_PASSWORD \
  HERALD_SYNAPSE_PORT HERALD_SYNAPSE_DIR HERALD_SYNAPSE_USER HERALD_SYNAPSE_PASSWORD \
  HERALD_POSTGRES_URL HERALD_TEST_POSTGRES_URL HERALD_AMQP_URL

# --- toolchain --------------------------------------------------------------------------------
# Swift lives in /opt/swift on these machines and is not always on PATH.
if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi
export DEBIAN_FRONTEND=noninteractive

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
