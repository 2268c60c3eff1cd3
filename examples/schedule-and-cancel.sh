#!/usr/bin/env bash
# A notification scheduled a minute ahead, then cancelled before it goes out.
source "$(dirname "$0")/lib/common.sh"
at="$(date -u -d '+1 minute' '+%Y-%m-%dT%H:%M:%SZ')"
call POST /v1/notifications '{"channel": "webhook", "to": {"webhook_url": "'"$sink"'/hooks/later"},
  "message": {"text": "scheduled"}, "send_at": "'"$at"'"}'
call POST "/v1/notifications/$(field id)/cancel"
