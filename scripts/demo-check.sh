#!/usr/bin/env bash
# Prove the demo answers from this host, show the balancing, then print where it is.
#   scripts/demo-check.sh HTTPS_URL [HTTP_URL]
set -euo pipefail
url="$1"
http_url="${2:-}"
field() { sed -n "s:.*<span id=\"$1\">\([^<]*\)</span>.*:\1:p" <<<"$2" | head -n1; }

code=
for _ in $(seq 1 30); do
  code=$(curl -ks -o /dev/null -w '%{http_code}' --max-time 5 "$url" || true)
  [ "$code" = 200 ] && break
  sleep 1
done
if [ "$code" != 200 ]; then
  echo "demo-check: $url did not answer 200 within 30 s (last status: ${code:-none})" >&2
  exit 1
fi

echo
echo "Six requests, each answered by the backend the load balancer picked:"
for _ in 1 2 3 4 5 6; do
  page=$(curl -ks --max-time 5 "$url")
  printf '  %-18s %-10s release %s\n' "$(field host "$page")" "$(field instance "$page")" "$(field release "$page")"
done
if [ -n "$http_url" ]; then
  location=$(curl -s -o /dev/null -w '%{redirect_url}' --max-time 5 "$http_url" || true)
  echo "  $http_url redirects to ${location:-nothing}"
fi
printf '\nThe demo answers: %s  (self-signed certificate: your browser will ask)\n' "$url"
