#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`.
#  - Docker already running (any install, any socket): use it, change nothing.
#  - dockerd missing: install Debian's docker.io (needs root and apt).
#  - dockerd present but not running: start it in the background (root) and wait.
# Prints one clear line on failure and exits non-zero.
set -euo pipefail

WAIT_SECONDS="${DOCKER_WAIT_SECONDS:-60}"
LOG="${DOCKERD_LOG:-/var/log/wsgideploy-dockerd.log}"

say() { printf 'ensure-docker: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

docker_ok() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

if docker_ok; then
  exit 0
fi

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else die "need root to $* (run as root or configure passwordless sudo)"
  fi
}

if ! command -v dockerd >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || die "no Docker engine and no apt-get to install Debian's docker.io; install Docker and re-run"
  say "dockerd not found: installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq >/dev/null || die "apt-get update failed"
  as_root apt-get install -y -qq --no-install-recommends docker.io iptables ca-certificates >/dev/null \
    || die "apt-get install docker.io failed"
fi

if ! docker_ok; then
  # A service manager may own dockerd (a normal host); prefer it.
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    as_root systemctl start docker >/dev/null 2>&1 || true
  fi
fi

if ! docker_ok && ! pgrep -x dockerd >/dev/null 2>&1; then
  say "starting dockerd in the background (log: $LOG)"
  as_root mkdir -p "$(dirname "$LOG")"
  # setsid + nohup: survives the calling shell; `make` may be run from a short-lived session.
  as_root setsid nohup dockerd >>"$LOG" 2>&1 </dev/null &
fi

for _ in $(seq 1 "$WAIT_SECONDS"); do
  docker_ok && { say "Docker engine is up"; exit 0; }
  sleep 1
done
die "Docker engine did not answer 'docker info' within ${WAIT_SECONDS}s (see $LOG)"
