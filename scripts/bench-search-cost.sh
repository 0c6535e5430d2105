#!/bin/bash
# Send throughput on SQLite with the search index (FTS5 triggers) and without it (triggers dropped
# after the migrations ran), same release binary, same conclave-bench, alternating passes.
set -e
BIN=${1:?a release conclave}; BENCH=${CARGO_TARGET_DIR:-target}/release/conclave-bench
PORT=18381; token="bench-management-token-0123456789abcdef0123"
ulimit -n "$(ulimit -Hn)"
run() {
  variant=$1
  data=$(mktemp -d)
  export CONCLAVE_DATA_DIR=$data CONCLAVE_LISTEN=127.0.0.1:$PORT CONCLAVE_ADMIN_TOKEN=$token CONCLAVE_RATE_LIMITS=off RUST_LOG=warn
  $BIN serve 2>$data/server.log & pid=$!
  for _ in $(seq 100); do curl -fs http://127.0.0.1:$PORT/health/ready >/dev/null && break; sleep 0.1; done
  if [ "$variant" = without ]; then
    kill $pid; wait $pid 2>/dev/null || true
    sqlite3 $data/conclave.db "DROP TRIGGER message_search_insert; DROP TRIGGER message_search_update; DROP TRIGGER message_search_delete;"
    $BIN serve 2>>$data/server.log & pid=$!
    for _ in $(seq 100); do curl -fs http://127.0.0.1:$PORT/health/ready >/dev/null && break; sleep 0.1; done
  fi
  echo "=== $variant search index"
  $BENCH throughput --url http://127.0.0.1:$PORT --admin-token $token --server-pid $pid --conversations 100 --clients-per-conversation 10 --duration-secs 15 2>&1 | grep -E "persisted|other processes|send latency|^latency|p50" | head -6
  sqlite3 $data/conclave.db "SELECT 'indexed rows: ' || count(*) FROM message_search; SELECT 'messages: ' || count(*) FROM messages;"
  kill $pid; wait $pid 2>/dev/null || true; rm -rf $data
}
for pass in 1 2; do run with; run without; done
