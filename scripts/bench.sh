#!/usr/bin/env bash
# Runs one conclave-bench scenario against a fresh release server and prints its report.
#   scripts/bench.sh sqlite|postgres idle|fanout|throughput [conclave-bench flags…]
# (with `fanout --streaming-agents N --model-port P`, set BENCH_MODEL_PORT=P when P is not 18190)
# The server runs with CONCLAVE_RATE_LIMITS=off on 127.0.0.1:$BENCH_PORT (default 18181) with a
# fresh data dir (and, for postgres, a fresh database on 127.0.0.1:5432); it is stopped
# afterwards. BENCH_SERVER_BIN names another server binary to run (a before/after comparison: the
# same conclave-bench drives both); without it the release binaries are built first.
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:?sqlite or postgres}"; scenario="${2:?idle, fanout or throughput}"; shift 2
target="${CARGO_TARGET_DIR:-target}"
port="${BENCH_PORT:-18181}"
if [ -z "${BENCH_SERVER_BIN:-}" ]; then
  cargo build --release -q -p conclave-server -p conclave-bench
fi
server="${BENCH_SERVER_BIN:-$target/release/conclave}"
data=$(mktemp -d)
token="bench-management-token-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export CONCLAVE_DATA_DIR="$data" CONCLAVE_LISTEN="127.0.0.1:$port" CONCLAVE_ADMIN_TOKEN="$token" \
       CONCLAVE_RATE_LIMITS=off RUST_LOG=warn
# `--streaming-agents N` serves the agents' model from the bench on loopback (--model-port).
export CONCLAVE_AGENT_ALLOW_CIDRS=127.0.0.1/32 CONCLAVE_AGENT_ALLOW_PORTS="${BENCH_MODEL_PORT:-18190}" \
       CONCLAVE_AGENT_INVOCATIONS_PER_MINUTE=100000
if [ "$backend" = postgres ]; then
  db="conclave_bench_$(date +%s)"
  psql -h 127.0.0.1 -d test -qc "CREATE DATABASE $db"
  export CONCLAVE_DATABASE_URL="postgres://root@127.0.0.1:5432/$db"
fi
ulimit -n "$(ulimit -Hn)"
"$server" serve 2>"$data/server.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"; [ -n "${db:-}" ] && psql -h 127.0.0.1 -d test -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.1; done
kill -0 $pid 2>/dev/null || { echo "the server did not start:" >&2; cat "$data/server.log" >&2; exit 1; }
"$target/release/conclave-bench" "$scenario" --url "http://127.0.0.1:$port" --admin-token "$token" --server-pid "$pid" "$@"
