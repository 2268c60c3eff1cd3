#!/usr/bin/env bash
# Sends one notification through Herald's webhook channel and follows it until it is delivered.
#
# Needs a running Herald (./scripts/run) with the example sink on port 9099: the sink's log
# ([sink] lines in scripts/run's output) shows the webhook arriving.
#
#   examples/send-webhook.sh            # HERALD_HTTP_PORT (default 8080), HERALD_SINK_PORT (9099)
#
# The API key: HERALD_API_KEY, else the one scripts/run keeps in .run/api-key.
set -euo pipefail
key="${HERALD_API_KEY:-$(cat "$(dirname "$0")/../.run/api-key" 2>/dev/null || true)}"
[[ -n "$key" ]] || { echo "no API key: start Herald with ./scripts/run (it prints one), or set HERALD_API_KEY" >&2; exit 1; }

api="http://127.0.0.1:${HERALD_HTTP_PORT:-8080}"
sink="http://127.0.0.1:${HERALD_SINK_PORT:-9099}"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT

body=$(cat <<JSON
{"channel":"webhook","to":{"webhook_url":"$sink/hooks/demo"},"message":{"subject":"Hello","text":"Hello from Herald"},"metadata":{"example":true}}
JSON
)

echo "POST $api/v1/notifications"
echo "$body"
code="$(curl -sS -o "$tmp" -w '%{http_code}' -H 'Content-Type: application/json' -H "Authorization: Bearer $key" \
  --data-binary "$body" "$api/v1/notifications")" \
  || { echo "Herald does not answer on $api: start it with ./scripts/run" >&2; exit 1; }
echo "-> HTTP $code"
cat "$tmp"; echo
[[ "$code" == 202 ]] || { echo "expected 202 Accepted" >&2; exit 1; }

id="$(python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])' <"$tmp")"

# Prints the deliveries' statuses; exits 0 once one of them is final (sent or failed).
check='
import json, sys
doc = json.load(sys.stdin)
statuses = [d.get("status") for d in doc.get("deliveries") or [] if isinstance(d, dict)]
if not statuses and doc.get("status"):
    statuses = [doc["status"]]
print(", ".join(str(s) for s in statuses) or "no delivery yet")
sys.exit(0 if any(s in ("sent", "failed") for s in statuses) else 1)
'

echo "GET $api/v1/notifications/$id (until a delivery is sent or failed, 15 s at most)"
final=""
for _ in $(seq 1 30); do
  curl -sS -o "$tmp" -H "Authorization: Bearer $key" "$api/v1/notifications/$id" || true
  if state="$(python3 -c "$check" <"$tmp" 2>/dev/null)"; then final=1; fi
  echo "   ${state:-unreadable answer}"
  [[ -n "$final" ]] && break
  sleep 0.5
done

python3 -m json.tool <"$tmp" || cat "$tmp"
[[ -n "$final" ]] || { echo "not delivered within 15 s: see the worker's log (.run/logs/)" >&2; exit 1; }
