#!/usr/bin/env bash
# `molecule test -s <scenario>` for every scenario given, side by side (each scenario has its own
# hosts, names and molecule state; nothing is shared but the controller's release cache, whose
# writes are atomic). Every line is prefixed with its scenario's name. All scenarios run to their
# end; the exit status is 1 when any of them failed, and a summary gives each one's time, then what
# failed (pytest's FAILED/ERROR lines, the last `fatal:` lines of a playbook) as the output's last
# lines, where a CI log cut to its tail still shows them.
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
  molecule test -s "$scenario" 2>&1 | tee "$status_dir/$scenario.log"
  rc=${PIPESTATUS[0]}
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
for scenario in "$@"; do
  log=$status_dir/$scenario.log
  read -r rc _ < "$status_dir/$scenario" 2>/dev/null || rc=none
  [[ $rc != 0 && -f $log ]] || continue
  echo "== what failed in $scenario"
  # pytest's short summary (FAILED/ERROR lines) or, when no test ran, the playbook's last fatal lines
  if grep -qE '^(FAILED|ERROR) [^ ]+::' "$log"; then
    grep -E '^(FAILED|ERROR) [^ ]+::' "$log" | cut -c1-400 | head -n 20
  else
    grep -E 'fatal: |FAILED! =>|ERROR!' "$log" | tail -n 5 | cut -c1-400
  fi
done
exit "$failed"
