#!/usr/bin/env bash
# The cost of authenticating one request: wrk against GET /api/v1/users/@me (an authenticated
# read with no other work) with a session token, then with an API key, then an unauthenticated
# baseline (GET /api/v1/capabilities). Needs wrk (Debian package) and a release build.
set -euo pipefail
. "$(dirname "$0")/need-wrk.sh"
cd "$(dirname "$0")/.."
T="${CARGO_TARGET_DIR:-target}"
PORT="${BENCH_PORT:-18182}"
cargo build --release -q -p conclave-server
data=$(mktemp -d); tok=bench-management-token-0123456789abcdef0123
CONCLAVE_DATA_DIR=$data CONCLAVE_LISTEN=127.0.0.1:$PORT CONCLAVE_ADMIN_TOKEN=$tok CONCLAVE_RATE_LIMITS=off RUST_LOG=warn $T/release/conclave serve 2>/dev/null &
pid=$!
trap 'kill $pid; wait $pid 2>/dev/null; rm -rf $data' EXIT
for _ in $(seq 100); do curl -fs http://127.0.0.1:$PORT/health/ready >/dev/null && break; sleep 0.1; done
B=http://127.0.0.1:$PORT/api/v1
curl -fs $B/admin/users -H "authorization: Bearer $tok" -H 'content-type: application/json' -d '{"username":"bench","password":"a long and unusual passphrase"}' >/dev/null
S=$(curl -fs $B/auth/login -H 'content-type: application/json' -d '{"username":"bench","password":"a long and unusual passphrase"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
ORG=$(curl -fs $B/orgs -H "authorization: Bearer $S" -H 'content-type: application/json' -d '{"name":"Bench"}' | sed -E 's/^\{"id":"([^"]+)".*/\1/')
K=$(curl -fs $B/api-keys -H "authorization: Bearer $S" -H 'content-type: application/json' -d "{\"name\":\"bench\",\"org_id\":\"$ORG\",\"scopes\":[\"org:read\"]}" | sed -E 's/.*"key":"([^"]+)".*/\1/')
curl -fs -o /dev/null -w "session: %{http_code}\n" $B/users/@me -H "authorization: Bearer $S"
curl -fs -o /dev/null -w "api key: %{http_code}\n" $B/users/@me -H "authorization: Bearer $K"
curl -fs -o /dev/null -w "no auth (capabilities): %{http_code}\n" $B/capabilities
echo "== session token"; wrk -t2 -c32 -d10s -H "authorization: Bearer $S" $B/users/@me | grep -E "Requests/sec|Latency|requests in"
echo "== api key"; wrk -t2 -c32 -d10s -H "authorization: Bearer $K" $B/users/@me | grep -E "Requests/sec|Latency|requests in"
echo "== unauthenticated baseline (GET /api/v1/capabilities)"; wrk -t2 -c32 -d10s $B/capabilities | grep -E "Requests/sec|Latency|requests in"
