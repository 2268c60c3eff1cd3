#!/usr/bin/env bash
# The attempt log, queried with MongoDB-style filters (docs/audit.md): a webhook whose URL answers 404
# (it fails for good on its first attempt), then every attempt of the last hour on the webhook channel
# that did not succeed (newest first), this notification's deliveries, and notifications by metadata.
source "$(dirname "$0")/lib/common.sh"
call POST /v1/notifications '{"channel": "webhook", "to": {"webhook_url": "'"$api"'/no-such-hook"}, "message": {"text": "audit me"}, "metadata": {"order": 42}}'
id="$(field id)"
sleep 2  # let the worker make its attempt
since="$(date -u -d '1 hour ago' +%Y-%m-%dT%H:%M:%SZ)"
call POST /v1/audit/query '{"collection": "attempts", "filter": {"channel": "webhook", "outcome": {"$ne": "success"}, "started_at": {"$gte": "'"$since"'"}}, "sort": {"started_at": -1}, "limit": 10}'
call POST /v1/audit/query '{"collection": "deliveries", "filter": {"notification_id": "'"$id"'"}}'
call POST /v1/audit/query '{"collection": "notifications", "filter": {"metadata.order": {"$gte": 40}}, "limit": 5}'
# A mistake in a filter is a 422 naming where it is (/filter/outcome/$nee):
call POST /v1/audit/query '{"collection": "attempts", "filter": {"outcome": {"$nee": "success"}}}' || true
