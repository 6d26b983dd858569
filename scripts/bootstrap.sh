#!/usr/bin/env bash
# Everything the make targets need on the controller, idempotent and fast once done:
#   1. .venv with the pinned toolchain (requirements/controller.txt), rebuilt when that file changes;
#   2. the collections of requirements.yml (bundled with the `ansible` package: works offline);
#   3. a running Docker engine (scripts/ensure-docker.sh);
#   4. the Debian 12 and 13 systemd base images (scripts/build-image.sh, cached by tag).
#
#   scripts/bootstrap.sh [--no-docker]
#
# Environment:
#   WSGIDEPLOY_PYTHON   interpreter for the venv (default: newest working python3.1x on PATH)
#   WSGIDEPLOY_VENV     venv directory (default: .venv in the project)
#   WSGIDEPLOY_IMAGE_DEBIAN12 / WSGIDEPLOY_IMAGE_DEBIAN13
#                       use these images instead of building ours (a registry user's own images)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${WSGIDEPLOY_VENV:-$root/.venv}"
pins="$root/requirements/controller.txt"

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

pick_python() {
  if [ -n "${WSGIDEPLOY_PYTHON:-}" ]; then echo "$WSGIDEPLOY_PYTHON"; return; fi
  local v
  # A name on PATH is not enough (pyenv shims answer for versions that are not active): it must run.
  for v in 3.14 3.13 3.12 3.11; do
    if command -v "python$v" >/dev/null 2>&1 && "python$v" -c 'import venv, ensurepip' >/dev/null 2>&1; then
      echo "python$v"; return
    fi
  done
  if command -v python3 >/dev/null 2>&1 && python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo python3; return
  fi
  die "need Python >= 3.11 with venv and ensurepip (Debian: apt-get install python3-venv)"
}

ensure_venv() {
  local py stamp want
  py="$(pick_python)"
  want="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])') $(sha256sum "$pins" | cut -c1-16)"
  stamp="$venv/.wsgideploy-stamp"
  if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  say "creating $venv with $py (toolchain from requirements/controller.txt)"
  rm -rf "$venv"
  "$py" -m venv "$venv" || die "could not create a venv with $py"
  local log="$venv/pip-install.log"
  { "$venv/bin/python" -m pip install --upgrade pip && "$venv/bin/python" -m pip install -r "$pins"; } >"$log" 2>&1 \
    || { tail -n 20 "$log" >&2; die "installing the toolchain failed (full log: $log)"; }
  echo "$want" > "$stamp"
}

ensure_collections() {
  "$venv/bin/ansible-galaxy" collection install -r "$root/requirements.yml" >/dev/null \
    || die "ansible-galaxy collection install -r requirements.yml failed"
}

ensure_images() {
  local v var
  for v in 12 13; do
    var="WSGIDEPLOY_IMAGE_DEBIAN$v"
    if [ -n "${!var:-}" ]; then
      docker image inspect "${!var}" >/dev/null 2>&1 || die "$var=${!var}: no such image on this Docker engine"
      continue
    fi
    "$root/scripts/build-image.sh" "$v"
  done
}

ensure_venv
ensure_collections
if [ "${1:-}" != "--no-docker" ]; then
  "$root/scripts/ensure-docker.sh"
  ensure_images
fi
