# shellcheck shell=bash
# Starting, watching and stopping herald processes in the background: shared by scripts/run and
# scripts/load. Each process writes to its own log file; herald_tail_logs shows them all on the
# terminal, one prefix per process.

# shellcheck source=scripts/lib/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

HERALD_PIDS=()        # processes started by herald_launch, in order
HERALD_PNAMES=()      # their names (the log file is $HERALD_LOG_DIR/NAME.log)
HERALD_TAILER_PID=""  # process group of the log tailer
HERALD_LOG_DIR="${HERALD_LOG_DIR:-$HERALD_RUN_DIR/logs}"

# herald_build: builds with `swift build` (HERALD_BUILD=debug|release) and sets HERALD_BIN to the
# herald executable of that build.
herald_build() {
  local flags
  mapfile -t flags < <(swift_build_flags)
  say "swift build ${flags[*]}"
  swift build "${flags[@]}" 9>&-
  HERALD_BIN="$(swift build "${flags[@]}" --show-bin-path 9>&-)/herald"
  [[ -x "$HERALD_BIN" ]] || die "swift build finished but $HERALD_BIN does not exist"
  export HERALD_BIN
}

# herald_launch NAME COMMAND...: starts COMMAND in the background with stdout and stderr in
# $HERALD_LOG_DIR/NAME.log (truncated first). fd 9 (the scripts' lock) is not inherited.
herald_launch() {
  local name="$1"; shift
  local log="$HERALD_LOG_DIR/$name.log"
  mkdir -p "$HERALD_LOG_DIR"
  : >"$log"
  "$@" >>"$log" 2>&1 9>&- </dev/null &
  HERALD_PIDS+=("$!")
  HERALD_PNAMES+=("$name")
  say "started $name (pid $!): ${*/#$HERALD_ROOT\//}"
}

# herald_alive PID: the process exists and is not a zombie.
herald_alive() {
  local st
  st="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [[ "$st" != Z* ]]
}

# herald_check_alive: dies (showing the end of its log) if a launched process has exited.
herald_check_alive() {
  local i
  for i in "${!HERALD_PIDS[@]}"; do
    if ! herald_alive "${HERALD_PIDS[$i]}"; then
      local name="${HERALD_PNAMES[$i]}"
      printf '[herald] ---- last lines of %s ----\n' "$HERALD_LOG_DIR/$name.log" >&2
      tail -n 30 "$HERALD_LOG_DIR/$name.log" >&2 || true
      die "$name (pid ${HERALD_PIDS[$i]}) exited"
    fi
  done
}

# herald_wait_http URL TIMEOUT_SECONDS: waits until URL answers 200, while checking that the
# launched processes are still alive.
herald_wait_http() {
  local url="$1" deadline=$((SECONDS + $2)) code
  say "waiting for $url"
  while :; do
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)"
    [[ "$code" == 200 ]] && return 0
    herald_check_alive
    ((SECONDS < deadline)) || die "$url did not answer 200 within $2 s (last: ${code:-none}); logs in $HERALD_LOG_DIR"
    sleep 0.5
  done
}

# herald_tail_logs: follows every launched process's log on stdout, each line prefixed
# "[name] ". One `tail -F | sed -u` per log (sed -u: line by line; mawk would buffer), all in
# their own process group so that herald_stop_all can stop them together.
herald_tail_logs() {
  local logs=() name
  for name in "${HERALD_PNAMES[@]}"; do logs+=("$HERALD_LOG_DIR/$name.log"); done
  ((${#logs[@]})) || return 0
  # shellcheck disable=SC2016  # the program is for the inner bash
  setsid bash -c '
    for f; do
      n="${f##*/}"; n="${n%.log}"
      tail -n +1 -F "$f" 2>/dev/null | sed -u "s/^/[$n] /" &
    done
    wait' _ "${logs[@]}" 9>&- </dev/null &
  HERALD_TAILER_PID=$!
}

# herald_stop_all [GRACE_SECONDS]: SIGTERM to every launched process (graceful shutdown), SIGKILL
# to those still alive after the grace period (default 10 s); then stops the log tailer.
herald_stop_all() {
  local grace="${1:-10}" pid alive deadline
  if ((${#HERALD_PIDS[@]})); then
    say "stopping ${HERALD_PNAMES[*]}"
    kill -TERM "${HERALD_PIDS[@]}" 2>/dev/null || true
    deadline=$((SECONDS + grace))
    while ((SECONDS < deadline)); do
      alive=0
      for pid in "${HERALD_PIDS[@]}"; do herald_alive "$pid" && alive=1; done
      ((alive)) || break
      sleep 0.2
    done
    for pid in "${HERALD_PIDS[@]}"; do
      if herald_alive "$pid"; then
        warn "pid $pid did not stop within $grace s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done
    wait "${HERALD_PIDS[@]}" 2>/dev/null || true
    HERALD_PIDS=(); HERALD_PNAMES=()
  fi
  if [[ -n "$HERALD_TAILER_PID" ]]; then
    sleep 0.3  # let the tailer print the last lines
    kill -TERM -- "-$HERALD_TAILER_PID" 2>/dev/null || true
    wait "$HERALD_TAILER_PID" 2>/dev/null || true
    HERALD_TAILER_PID=""
  fi
}

# herald_api_key: prints an API key for local runs (scripts/run, scripts/load, examples/): the one kept
# in $HERALD_RUN_DIR/api-key (git-ignored) while the database still knows it, else a new one for
# tenant "local" with scopes send,read and a high rate (local load tests). Needs a migrated database.
herald_api_key() {
  local file="$HERALD_RUN_DIR/api-key" token prefix
  if [[ -s "$file" && -z "${HERALD_BIN:-}" ]]; then cat "$file"; return 0; fi
  [[ -n "${HERALD_BIN:-}" ]] || die "no herald binary to create an API key with (run scripts/run first)"
  if [[ -s "$file" ]]; then
    token="$(cat "$file")"
    prefix="${token%_*}"
    if "$HERALD_BIN" keys list --tenant local 2>/dev/null | awk -v p="$prefix" '$1 == p && $NF == "-" {found = 1} END {exit !found}'; then
      printf '%s\n' "$token"
      return 0
    fi
  fi
  token="$("$HERALD_BIN" keys create --tenant local --scopes send,read --name "scripts (local)" --rate-limit 100000 --quiet)" \
    || die "herald keys create failed"
  (umask 077 && printf '%s\n' "$token" >"$file")
  printf '%s\n' "$token"
}
