#!/usr/bin/env bash
# Make Docker grading possible on this machine, offline: the engine (installed from
# Debian's packages and started, when run as root and missing), a base image made
# with debootstrap (no registry is needed), and the grading image built from the
# Dockerfile with the wheels of ci/constraints.txt (`llmsys image`; cached by a
# tag derived from the grader's sources). Needs the .venv of ci/setup.sh.
#
#   ci/docker.sh            set up everything; exit 0 when Docker grading works
#   BASE_IMAGE=img ci/docker.sh    build on an existing image instead (e.g. a CUDA one)
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE="${BASE_IMAGE:-llmsys-base:bookworm}"

log() { echo "[docker] $*" >&2; }

engine_up() { docker info >/dev/null 2>&1; }

debian_mirror() {
    local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list)
    awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | grep . \
        || awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' \
            "${files[@]}" 2>/dev/null | head -1
}

ensure_engine() {
    engine_up && return 0
    if [[ $EUID -ne 0 ]]; then
        log "no running Docker engine, and only root may start one here"
        log "tip: start dockerd (or ask for the docker group), then run this again"
        return 1
    fi
    if ! command -v dockerd >/dev/null 2>&1; then
        log "installing the Docker engine (Debian package docker.io) ..."
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
    fi
    # A daemon that was killed leaves its pid file, and a new one refuses to start.
    if [[ -f /var/run/docker.pid ]] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        rm -f /var/run/docker.pid
    fi
    log "starting dockerd (log: /var/log/llmsys-dockerd.log) ..."
    setsid dockerd >/var/log/llmsys-dockerd.log 2>&1 < /dev/null &
    for _ in $(seq 60); do
        engine_up && return 0
        sleep 1
    done
    log "dockerd did not come up in 60 s; see /var/log/llmsys-dockerd.log"
    return 1
}

ensure_base() {
    docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return 0
    if [[ "$BASE_IMAGE" != llmsys-base:* ]]; then
        log "base image $BASE_IMAGE is not on this host; pull or load it first (docker load -i ...)"
        return 1
    fi
    [[ $EUID -eq 0 ]] || { log "building $BASE_IMAGE needs root (debootstrap)"; return 1; }
    command -v debootstrap >/dev/null 2>&1 || {
        log "installing debootstrap ..."
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    # The Debian mirror this machine's apt already uses (never written into the repo):
    # the deb822 sources first, then the one-line format; LLMSYS_DEBIAN_MIRROR overrides.
    mirror="${LLMSYS_DEBIAN_MIRROR:-$(debian_mirror)}"
    if [[ -z "$mirror" ]]; then
        log "no Debian mirror found in /etc/apt/sources.list(.d)"
        log "tip: set LLMSYS_DEBIAN_MIRROR to the mirror's URL, or build on an existing image (BASE_IMAGE=...)"
        return 1
    fi
    root="$(mktemp -d /var/tmp/llmsys-base.XXXXXX)"
    log "building $BASE_IMAGE with debootstrap from $mirror (about a minute) ..."
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip \
        bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
        log "debootstrap failed; see $root.log"
        return 1
    }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | docker import - "$BASE_IMAGE" >/dev/null
    rm -rf "$root" "$root.log"
}

LLMSYS="$(command -v llmsys || echo .venv/bin/llmsys)"
[[ -x "$LLMSYS" ]] || { log "llmsys is not installed: run ci/test or ci/main once (they set up .venv)"; exit 2; }
ensure_engine
ensure_base
"$LLMSYS" image --base "$BASE_IMAGE"
