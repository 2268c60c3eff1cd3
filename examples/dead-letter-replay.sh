#!/usr/bin/env bash
# A delivery that fails for good (the receiver answers 404), listed as a dead letter and replayed.
# The replay fails again here (the URL still answers 404): point a replay at a fixed receiver in real use.
source "$(dirname "$0")/lib/common.sh"
call POST /v1/notifications '{"channel": "webhook", "to": {"webhook_url": "'"$api"'/no-such-hook"}, "message": {"text": "will fail"}}'
delivery="$(field deliveries.0.id)"
for _ in $(seq 1 20); do
  call GET "/v1/notifications/$(field id)" >/dev/null || true
  [[ "$(field deliveries.0.status)" == failed ]] && break
  sleep 1
done
call GET "/v1/deadletters?channel=webhook&limit=5"
call POST "/v1/deliveries/$delivery/retry"
