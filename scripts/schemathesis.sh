#!/usr/bin/env bash
# Checks the OpenAPI document against the server that serves it (CORE-11): starts the debug
# `conclave` binary on a free port with a fresh SQLite data dir, creates fixtures (the first
# server admin through a preset bootstrap token, two users, orgs, a team, conversations,
# messages, a bot, an API key, an invite, content guards and a flag), then runs schemathesis signed in as the admin with
# scripts/schemathesis.toml. Any failure of its checks fails the script.
#
# Not run: the operations that end the run's own session or account —
#   POST /auth/logout; DELETE /auth/sessions/{id} (schemathesis finds the current session's id
#   in GET /auth/sessions); POST /auth/password and DELETE /users/@me, which take the
#   account's password: the run's guesses would only be refused (and counted by the back-off),
#   and a right one would change the password or erase the account the run signs in with.
# POST /auth/sessions/revoke-others runs: it keeps the current session.
#
#   scripts/schemathesis.sh [extra `st run` flags…]
# Needs schemathesis (the version pinned in scripts/test.sh, which installs it) and curl;
# CONCLAVE_BIN names another server binary (default: the debug build, built first).
# SCHEMATHESIS_MAX_EXAMPLES (default 25) bounds the cases per operation.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${CONCLAVE_BIN:-}" ]; then
  cargo build --locked -q -p conclave-server --bin conclave
fi
bin="${CONCLAVE_BIN:-${CARGO_TARGET_DIR:-target}/debug/conclave}"

data=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:${port}"
bootstrap_token="schemathesis-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
CONCLAVE_DATA_DIR="$data" CONCLAVE_LISTEN="127.0.0.1:${port}" CONCLAVE_BOOTSTRAP_TOKEN="$bootstrap_token" \
  CONCLAVE_AGENT_ALLOW_CIDRS=127.0.0.1/32 CONCLAVE_AGENT_ALLOW_PORTS=11434 CONCLAVE_RATE_LIMITS=off RUST_LOG=warn env -u CONCLAVE_BIN "$bin" serve 2>"$data/server.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 600); do
  curl -fs "$base/health/ready" >/dev/null && break
  kill -0 "$pid" 2>/dev/null || { echo "schemathesis: the server did not start:" >&2; cat "$data/server.log" >&2; exit 1; }
  sleep 0.1
done

# call METHOD PATH TOKEN [JSON]: prints the answer's body; fails unless it is 2xx.
call() {
  local args=(-sS -X "$1" -w '\n%{http_code}' "$base/api/v1$2")
  [ -n "$3" ] && args+=(-H "authorization: Bearer $3")
  [ -n "${4:-}" ] && args+=(-H 'content-type: application/json' -d "$4")
  local out status
  out=$(curl "${args[@]}")
  status=${out##*$'\n'}
  if [[ $status != 2* ]]; then
    echo "schemathesis setup: $1 $2 answered $status: ${out%$'\n'*}" >&2
    return 1
  fi
  printf '%s' "${out%$'\n'*}"
}
# field NAME [NAME…]: reads a member (nested by the names) of the JSON on stdin.
field() {
  python3 -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1:]: v = v[k]
print(v)' "$@"
}

password="schemathesis fixture password"
signed_in=$(call POST /auth/bootstrap "" \
  "{\"bootstrap_token\":\"$bootstrap_token\",\"username\":\"admin\",\"password\":\"$password\"}")
admin=$(field token <<<"$signed_in")
user() { call POST /admin/users "$admin" "{\"username\":\"$1\",\"password\":\"$password\"}" | field id; }
org() { call POST /orgs "$admin" "{\"name\":\"$1\"}" | field id; }
member() { call POST "/orgs/$1/members" "$admin" "{\"user_id\":\"$2\",\"role\":\"member\"}" >/dev/null; }
conversation() {
  call POST "/orgs/$1/conversations" "$admin" \
    "{\"kind\":\"group\",\"name\":\"$2\",\"participant_ids\":[\"$ST_USER\",\"$ST_USER_SPARE\"]}" | field id
}
message() { call POST "/conversations/$1/messages" "$admin" "{\"content\":\"$2\"}" | field id; }

ST_USER=$(user bob)
ST_USER_SPARE=$(user carol)
ST_ORG=$(org Acme)
ST_ORG_SPARE=$(org Spare)
ST_ORG_DOOMED=$(org Doomed)
for o in "$ST_ORG" "$ST_ORG_SPARE"; do
  member "$o" "$ST_USER"
  member "$o" "$ST_USER_SPARE"
done
ST_TEAM=$(call POST "/orgs/$ST_ORG/teams" "$admin" '{"name":"Team"}' | field id)
call POST "/orgs/$ST_ORG/teams/$ST_TEAM/members/$ST_USER" "$admin" >/dev/null
ST_CONV=$(conversation "$ST_ORG" General)
ST_CONV_DOOMED=$(conversation "$ST_ORG" Doomed)
ST_MSG=$(message "$ST_CONV" hello)
ST_MSG_DOOMED=$(message "$ST_CONV" goodbye)
ST_BOT=$(call POST "/orgs/$ST_ORG/bots" "$admin" '{"name":"Helper"}' | field id)
ST_KEY=$(call POST /api-keys "$admin" \
  "{\"name\":\"Key\",\"org_id\":\"$ST_ORG\",\"scopes\":[\"messages:read\"]}" | field id)
ST_INVITE=$(call POST "/orgs/$ST_ORG/invites" "$admin" '{"max_uses":100000}' | field code)
# Content guards live in the spare org, so the guards the run creates never screen the
# messages of the others' operations; a flagged message gives the review queue a flag.
guard() { call POST "/orgs/$ST_ORG_SPARE/guards" "$admin" "$1" | field id; }
ST_GUARD=$(guard '{"kind":"blocklist","mode":"flag","terms":["review"]}')
ST_GUARD_DOOMED=$(guard '{"kind":"regex","mode":"flag","patterns":["doomed"]}')
message "$(conversation "$ST_ORG_SPARE" Reviewed)" "please review" >/dev/null
ST_FLAG=$(call GET "/orgs/$ST_ORG_SPARE/flags" "$admin" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["items"][0]["id"])')
# Agents on a local model endpoint (allowed for agents by the server's CONCLAVE_AGENT_* above;
# nothing listens there, and nothing in the run mentions them).
agent() {
  call POST "/orgs/$ST_ORG/agents" "$admin" \
    "{\"name\":\"$1\",\"endpoint\":\"http://127.0.0.1:11434/v1\",\"model\":\"llama3\"}" | field id
}
ST_AGENT=$(agent Llama)
ST_AGENT_DOOMED=$(agent Doomed)
# Support widget keys (WEB-4) of the org's team; the widget routes themselves need a page
# origin the run does not send, so they answer 403 (their own gate).
wkey() {
  call POST "/orgs/$ST_ORG/widget-keys" "$admin" \
    "{\"name\":\"$1\",\"allowed_origins\":[\"https://shop.example\"],\"team_id\":\"$ST_TEAM\"}" | field id
}
ST_WKEY=$(wkey Shop)
ST_WKEY_DOOMED=$(wkey Doomed)
export ST_USER ST_USER_SPARE ST_ORG ST_ORG_SPARE ST_ORG_DOOMED ST_TEAM ST_CONV ST_CONV_DOOMED \
  ST_MSG ST_MSG_DOOMED ST_BOT ST_KEY ST_INVITE ST_GUARD ST_GUARD_DOOMED ST_FLAG ST_AGENT \
  ST_AGENT_DOOMED ST_WKEY ST_WKEY_DOOMED

status=0
# One worker: schemathesis runs workers as threads, and CPython before 3.11.9 / 3.12.3 keeps the
# AST builder's recursion depth in one per-interpreter counter (python/cpython#106905), so two
# threads describing hypothesis strategies at once (hypothesis parses lambdas' source) can fail a
# run with "SystemError: AST constructor recursion depth mismatch" — seen once in CI on 3.11.7.
# `st` itself, whether or not pip put it on PATH.
python3 -c 'import sys; from schemathesis.cli import schemathesis; sys.argv[0] = "st"; sys.exit(schemathesis())' \
  --config-file scripts/schemathesis.toml run "$base/api/v1/openapi.json" \
  --header "Authorization: Bearer $admin" \
  --exclude-operation-id logout --exclude-operation-id revoke_session \
  --exclude-operation-id change_password --exclude-operation-id erase \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,negative_data_rejection,positive_data_acceptance \
  --phases examples,coverage,fuzzing \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-25}" \
  --workers 1 --no-color --generation-database none \
  "$@" || status=$?
if [ "$status" != 0 ]; then
  echo "schemathesis failed; the server's log:" >&2
  grep -E 'ERROR|panicked' "$data/server.log" >&2 || true
fi
exit "$status"
