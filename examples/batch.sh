#!/usr/bin/env bash
# Three notifications in one request (one of them invalid): a result per item.
source "$(dirname "$0")/lib/common.sh"
item() { printf '{"channel": "webhook", "to": {"webhook_url": "%s/hooks/batch-%s"}, "message": {"text": "item %s"}}' "$sink" "$1" "$1"; }
call POST /v1/notifications/batch "{\"notifications\": [$(item 1), {\"channel\": \"webhook\", \"to\": {}}, $(item 3)]}"
