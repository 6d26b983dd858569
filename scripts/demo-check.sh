#!/usr/bin/env bash
# Prove the demo answers from this host, then print where it is.
set -euo pipefail
url="$1"
for _ in $(seq 1 30); do
  code=$(curl -ks -o /dev/null -w '%{http_code}' --max-time 5 "$url" || true)
  if [ "$code" = 200 ]; then
    page=$(curl -ks --max-time 5 "$url")
    host=$(sed -n 's:.*<span id="host">\([^<]*\)</span>.*:\1:p' <<<"$page" | head -n1)
    release=$(sed -n 's:.*<span id="release">\([^<]*\)</span>.*:\1:p' <<<"$page" | head -n1)
    printf '\nThe demo answers: %s  (served by %s, release %s)\n' "$url" "${host:-?}" "${release:-?}"
    exit 0
  fi
  sleep 1
done
echo "demo-check: $url did not answer 200 within 30 s (last status: ${code:-none})" >&2
exit 1
