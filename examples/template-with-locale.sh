#!/usr/bin/env bash
# A template with data and a locale: the welcome template in Russian, to the example sink's webhook.
source "$(dirname "$0")/lib/common.sh"
call POST /v1/templates/welcome/render '{"data": {"name": "Аня", "product": "Herald", "login_url": "https://example.com/login"}, "locale": "ru"}'
call POST /v1/notifications '{"channel": "webhook", "to": {"webhook_url": "'"$sink"'/hooks/welcome", "locale": "ru"},
  "template": "welcome", "data": {"name": "Аня", "product": "Herald", "login_url": "https://example.com/login"}}'
sleep 1
call GET "/v1/notifications/$(field id)"
