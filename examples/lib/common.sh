# shellcheck shell=bash
# Shared by the examples: where Herald is, the API key, and a curl that shows what it sends.
set -euo pipefail
api="http://127.0.0.1:${HERALD_HTTP_PORT:-8080}"
sink="http://127.0.0.1:${HERALD_SINK_PORT:-9099}"
examples_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
key="${HERALD_API_KEY:-$(cat "$examples_dir/../.run/api-key" 2>/dev/null || true)}"
[[ -n "$key" ]] || { echo "no API key: start Herald with ./scripts/run (it prints one), or set HERALD_API_KEY" >&2; exit 1; }

# call METHOD PATH [JSON]: prints the request and the answer; exits non-zero on a 4xx/5xx.
call() {
  local method="$1" path="$2" body="${3:-}" out code
  out="$(mktemp)"
  echo "> $method $path"
  [[ -n "$body" ]] && echo "$body"
  code="$(curl -sS -o "$out" -w '%{http_code}' -X "$method" -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $key" ${body:+--data-binary "$body"} "$api$path")" \
    || { echo "Herald does not answer on $api: start it with ./scripts/run" >&2; rm -f "$out"; exit 1; }
  echo "< HTTP $code"
  python3 -m json.tool <"$out" 2>/dev/null || cat "$out"
  LAST_BODY="$(cat "$out")"
  rm -f "$out"
  [[ "$code" -lt 400 ]]
}

# field JSONPATH: a value from the last answer (dotted path, numbers index arrays).
field() {
  python3 -c 'import json,sys
v=json.loads(sys.argv[2])
for p in sys.argv[1].split("."): v=v[int(p)] if isinstance(v,list) else v[p]
print(v)' "$1" "$LAST_BODY"
}
