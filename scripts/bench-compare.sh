#!/usr/bin/env bash
# Benchmarks one server binary: the session-authentication cost (wrk on GET /api/v1/users/@me, as
# scripts/bench-auth.sh) and the SQLite throughput scenario (as scripts/bench.sh), for before/after
# comparisons of two builds with the same conclave-bench binary.
#   scripts/bench-compare.sh <path to a release conclave binary> <label>
# Needs wrk and a release conclave-bench in ${CARGO_TARGET_DIR:-target}/release. The server listens
# on 127.0.0.1:$BENCH_PORT (default 18181). AUTH_ONLY=1 skips the throughput run.
set -euo pipefail
. "$(dirname "$0")/need-wrk.sh"
BIN="${1:?a conclave binary}"; LABEL="${2:-run}"
BENCH="${CARGO_TARGET_DIR:-target}/release/conclave-bench"
PORT="${BENCH_PORT:-18181}"
run_server() {
  data=$(mktemp -d); token="bench-management-token-0123456789abcdef0123"
  CONCLAVE_DATA_DIR=$data CONCLAVE_LISTEN=127.0.0.1:$PORT CONCLAVE_ADMIN_TOKEN=$token CONCLAVE_RATE_LIMITS=off RUST_LOG=warn $BIN serve 2>$data/server.log &
  pid=$!
  for _ in $(seq 100); do curl -fs http://127.0.0.1:$PORT/health/ready >/dev/null && break; sleep 0.1; done
}
stop_server() { kill $pid; wait $pid 2>/dev/null || true; rm -rf $data; }
trap 'kill ${pid:-} 2>/dev/null || true' EXIT
echo "=== $LABEL: auth"
run_server
B=http://127.0.0.1:$PORT/api/v1
curl -fs $B/admin/users -H "authorization: Bearer $token" -H 'content-type: application/json' -d '{"username":"bench","password":"a long and unusual passphrase"}' >/dev/null
S=$(curl -fs $B/auth/login -H 'content-type: application/json' -d '{"username":"bench","password":"a long and unusual passphrase"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
wrk -t2 -c32 -d10s -H "authorization: Bearer $S" $B/users/@me | grep -E "Requests/sec|Latency"
stop_server
# AUTH_ONLY=1: the authentication run only. Any CONCLAVE_* variable set here reaches the server
# (e.g. CONCLAVE_CACHE__TTL_MS=0 runs it with the identity and access cache off).
[ -n "${AUTH_ONLY:-}" ] && exit 0
echo "=== $LABEL: throughput sqlite"
run_server
ulimit -n "$(ulimit -Hn)"
$BENCH throughput --url http://127.0.0.1:$PORT --admin-token $token --server-pid $pid --conversations 100 --clients-per-conversation 10 --duration-secs 15 2>&1 | tail -15
stop_server
