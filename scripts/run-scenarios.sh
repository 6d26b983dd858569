#!/usr/bin/env bash
# `molecule test -s <scenario>` for every scenario given, side by side (each scenario has its own
# hosts, names and molecule state; nothing is shared but the controller's release cache, whose
# writes are atomic). Every line is prefixed with its scenario's name. All scenarios run to their
# end; the exit status is 1 when any of them failed, and a summary gives each one's time.
#   scripts/run-scenarios.sh [--serial] SCENARIO...
set -uo pipefail

serial=false
if [[ ${1:-} == --serial ]]; then
  serial=true
  shift
fi
if [[ $# -eq 0 ]]; then
  echo "usage: $0 [--serial] SCENARIO..." >&2
  exit 2
fi

status_dir=$(mktemp -d)
trap 'rm -rf "$status_dir"' EXIT

run() {
  local scenario=$1 t0 rc seconds
  t0=$(date +%s)
  echo "== molecule test -s $scenario"
  molecule test -s "$scenario" 2>&1
  rc=$?
  seconds=$(( $(date +%s) - t0 ))
  echo "$rc $seconds" > "$status_dir/$scenario"
  echo "== molecule test -s $scenario: exit $rc after $seconds s"
}

pids=()
for scenario in "$@"; do
  if $serial; then
    run "$scenario" | sed -u "s/^/[$scenario] /"
  else
    (run "$scenario" | sed -u "s/^/[$scenario] /") &
    pids+=("$!")
  fi
done
for pid in "${pids[@]}"; do
  wait "$pid"
done

failed=0
echo "== scenarios"
for scenario in "$@"; do
  if [[ -f $status_dir/$scenario ]]; then
    read -r rc seconds < "$status_dir/$scenario"
  else
    rc=none seconds=?
  fi
  echo "   $scenario: exit $rc, $seconds s"
  [[ $rc == 0 ]] || failed=1
done
exit "$failed"
