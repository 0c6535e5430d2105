#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, the store conformance suites and the HTTP suite,
# each storage suite on SQLite and on PostgreSQL.
#
# PostgreSQL comes from CONCLAVE_TEST_POSTGRES_URL (default postgres://root@127.0.0.1:5432/test);
# every test makes its own fresh database there. Without a reachable PostgreSQL the PostgreSQL
# suites are skipped (said loudly below) — except under CI=true, where that is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is not installed: install the Rust toolchain (https://rustup.rs) first" >&2
  exit 1
fi

# The TOTP interoperability test checks codes made by pyotp, an independent RFC 6238
# implementation. Without it that test says SKIPPED — except under CI=true, where it fails.
if ! python3 -c 'import pyotp' >/dev/null 2>&1; then
  python3 -m pip install --quiet pyotp ||
    echo "WARNING: could not install pyotp (python3 -m pip install pyotp): the TOTP interoperability test will not run." >&2
fi

pg_url="${CONCLAVE_TEST_POSTGRES_URL:-postgres://root@127.0.0.1:5432/test}"
pg_hostport="${pg_url#*@}"; pg_hostport="${pg_hostport%%/*}"
pg_host="${pg_hostport%%:*}"; pg_port="${pg_hostport##*:}"
if (exec 3<>"/dev/tcp/${pg_host}/${pg_port}") 2>/dev/null; then
  echo "PostgreSQL reachable at ${pg_host}:${pg_port}: the PostgreSQL suites will run."
  # Each test makes its own database; drop the ones earlier runs left behind.
  if command -v psql >/dev/null 2>&1; then
    psql "$pg_url" -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'conclave\_api\_%' OR datname LIKE 'conclave\_t\_%'" 2>/dev/null |
      while read -r db; do psql "$pg_url" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true; done
  fi
else
  if [ "${CI:-}" = "true" ]; then
    echo "FAIL: CI=true but PostgreSQL is not reachable at ${pg_host}:${pg_port}." >&2
    exit 1
  fi
  echo "================================================================================"
  echo "WARNING: PostgreSQL is not reachable at ${pg_host}:${pg_port}."
  echo "SKIPPED: the PostgreSQL store conformance suite and the PostgreSQL half of the"
  echo "HTTP suite (every test in the api::*::postgres modules passes without running)."
  echo "================================================================================"
fi

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole run (cargo prints one per test binary, the last often a
# doc-test binary with nothing in it).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "\nsummary: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
