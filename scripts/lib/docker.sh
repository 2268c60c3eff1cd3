# shellcheck shell=bash
# Docker for scripts that build and run Herald's images on this machine (scripts/container-smoke,
# scripts/images): installs docker.io, docker-compose and mmdebstrap, runs a dockerd of the
# checkout's own (own socket, data and exec folders; no firewall changes, no default bridge) and
# makes the Debian base image locally, because no registry can be reached here.
#
#   docker_install           apt-get the packages that are missing
#   dockerd_start            start our dockerd (or reuse it) and export DOCKER_HOST
#   dockerd_stop             stop every container of our dockerd, then the daemon
#   docker_base_image        local/debian:bookworm from mmdebstrap + docker import (cached)
#
# Our dockerd: --iptables=false --ip-forward=false --ip-masq=false leave the host's firewall and
# forwarding alone (Docker's defaults change them and never put them back); --bridge=none makes no
# docker0. Compose networks still connect the containers; builds that run apt use the host network.
# Everything lives under HERALD_DOCKER_DIR (default /var/tmp/herald-docker-CHECKOUT: overlay2 needs
# a plain file system, and a path under .run/ would end up in build contexts).

# shellcheck source=scripts/lib/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

HERALD_DOCKER_DIR="${HERALD_DOCKER_DIR:-/var/tmp/herald-docker-$(printf '%s' "$HERALD_ROOT" | cksum | cut -d' ' -f1)}"
HERALD_BASE_IMAGE="${HERALD_BASE_IMAGE:-local/debian:bookworm}"
HERALD_DEBIAN_MIRROR="${HERALD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
export HERALD_DOCKER_DIR HERALD_BASE_IMAGE

docker_install() {
  local missing=() pkg
  for pkg in docker.io docker-compose mmdebstrap; do
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" == installed ]] || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  say "installing ${missing[*]}"
  if [[ ! -d /var/lib/apt/lists ]] || [[ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v lock)" ]]; then
    apt-get update -qq
  fi
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt-get update -qq && apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
}

dockerd_start() {
  export DOCKER_HOST="unix://$HERALD_DOCKER_DIR/docker.sock"
  if docker info >/dev/null 2>&1; then
    return 0
  fi
  mkdir -p "$HERALD_DOCKER_DIR/data" "$HERALD_DOCKER_DIR/exec"
  say "starting dockerd (data $HERALD_DOCKER_DIR, log $HERALD_DOCKER_DIR/dockerd.log)"
  # setsid: its own session, so that a Ctrl-C on the terminal reaches our trap first.
  setsid dockerd --host "$DOCKER_HOST" --data-root "$HERALD_DOCKER_DIR/data" --exec-root "$HERALD_DOCKER_DIR/exec" \
    --pidfile "$HERALD_DOCKER_DIR/dockerd.pid" --iptables=false --ip-forward=false --ip-masq=false \
    --bridge=none --storage-driver=overlay2 >"$HERALD_DOCKER_DIR/dockerd.log" 2>&1 </dev/null &
  local _
  for _ in $(seq 1 150); do
    docker info >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  tail -n 30 "$HERALD_DOCKER_DIR/dockerd.log" >&2
  die "dockerd did not answer within 30 s"
}

dockerd_stop() {
  export DOCKER_HOST="unix://$HERALD_DOCKER_DIR/docker.sock"
  local pid
  [[ -s "$HERALD_DOCKER_DIR/dockerd.pid" ]] || return 0
  pid="$(cat "$HERALD_DOCKER_DIR/dockerd.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    # Containers live outside our process tree: stop them explicitly before the daemon.
    local ids
    ids="$(docker ps -q 2>/dev/null || true)"
    if [[ -n "$ids" ]]; then
      # shellcheck disable=SC2086  # one id per word
      docker rm -f $ids >/dev/null 2>&1 || true
    fi
    kill "$pid" 2>/dev/null || true
    local _
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { warn "dockerd (pid $pid) still running: SIGKILL"; kill -9 "$pid" 2>/dev/null || true; }
  fi
  rm -f "$HERALD_DOCKER_DIR/dockerd.pid"
}

# docker_base_image: the Debian 12 image every Dockerfile of the project starts from here (ARG
# BASE / RUNTIME_BASE), made once with mmdebstrap and kept in our dockerd.
docker_base_image() {
  if docker image inspect "$HERALD_BASE_IMAGE" >/dev/null 2>&1; then
    return 0
  fi
  local tarball="$HERALD_DOCKER_DIR/debian-bookworm.tar"
  if [[ ! -s "$tarball" ]]; then
    say "mmdebstrap: building $HERALD_BASE_IMAGE (~45 s)"
    mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm "$tarball.tmp.tar" "$HERALD_DEBIAN_MIRROR" \
      || die "mmdebstrap failed"
    mv "$tarball.tmp.tar" "$tarball"
  fi
  docker import "$tarball" "$HERALD_BASE_IMAGE" >/dev/null
}
