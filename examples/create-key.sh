#!/usr/bin/env bash
# Creates an API key for a tenant of your own (the token is shown once; only its hash is stored).
#   examples/create-key.sh TENANT [SCOPES]     e.g. examples/create-key.sh shop send,read
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
herald="${HERALD_BIN:-$root/.build/debug/herald}"
[[ -x "$herald" ]] || herald="$root/.build/release/herald"
"$herald" keys create --tenant "${1:?tenant}" --scopes "${2:-send,read}"
"$herald" keys list --tenant "$1"
