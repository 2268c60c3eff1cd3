#!/usr/bin/env bash
# No channel named: routing.yaml chooses (a webhook_url routes to the webhook channel).
source "$(dirname "$0")/lib/common.sh"
call POST /v1/notifications '{"to": {"webhook_url": "'"$sink"'/hooks/routed"}, "message": {"text": "routed by rules"},
  "metadata": {"example": "routing"}}'
echo "rule: $(field rule), strategy: $(field strategy)"
