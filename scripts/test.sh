#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, the store conformance suites and the HTTP suite,
# each storage suite on SQLite and on PostgreSQL; then the browser tests of the web client
# (web/tests, Node's test runner driving Debian's Chromium through playwright-core).
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
# implementation, and the webhook signing test verifies our headers with standardwebhooks.
# Without them those tests say SKIPPED — except under CI=true, where they fail.
if ! python3 -c 'import pyotp, standardwebhooks' >/dev/null 2>&1; then
  python3 -m pip install --quiet pyotp standardwebhooks ||
    echo "WARNING: could not install pyotp and standardwebhooks (python3 -m pip install pyotp standardwebhooks): the TOTP and webhook signing interoperability tests will not run." >&2
fi

# The fake model provider of the HTTP suite (api::llm) is checked against the official `openai`
# Python client (scripts/openai-check.py). Without it that test says SKIPPED — except under
# CI=true, where it fails.
if ! python3 -c 'import openai' >/dev/null 2>&1; then
  python3 -m pip install --quiet openai ||
    echo "WARNING: could not install openai (python3 -m pip install openai): the fake provider's interoperability test will not run." >&2
fi

# Host-app JWTs (AUTH-11) are checked with tokens minted by PyJWT, an independent JOSE
# implementation (api::sso). Without it those tests say SKIPPED — except under CI=true, where
# they fail.
if ! python3 -c 'import jwt, cryptography' >/dev/null 2>&1; then
  python3 -m pip install --quiet 'pyjwt[crypto]' ||
    echo "WARNING: could not install pyjwt (python3 -m pip install 'pyjwt[crypto]'): the host JWT interoperability tests will not run." >&2
fi

# The MCP endpoint (api::mcp) is checked with the official MCP SDKs as independent clients: the
# Python one (`mcp`, scripts/mcp-check.py) here, the TypeScript one (@modelcontextprotocol/sdk,
# web/tests/mcp-check.mjs) from web/tests' packages, installed before the Rust tests below.
# Without them those tests say SKIPPED — except under CI=true, where they fail.
if ! python3 -c 'import mcp' >/dev/null 2>&1; then
  python3 -m pip install --quiet mcp ||
    echo "WARNING: could not install mcp (python3 -m pip install mcp): the MCP Python SDK interoperability test will not run." >&2
fi

# A step that cannot run says SKIPPED loudly (`skipped WHAT`); under CI=true it fails the run
# instead (`ci_requires STEP MISSING`, where MISSING is empty when nothing is missing).
skipped() {
  echo "================================================================================"
  echo "SKIPPED: $1"
  echo "================================================================================"
}
ci_requires() {
  if [ -n "$2" ] && [ "${CI:-}" = "true" ]; then
    echo "FAIL: CI=true but $1 cannot run: missing $2." >&2
    exit 1
  fi
}

# pinned_tool VAR STEP WHAT HINT CHECK INSTALL...: when the function CHECK does not find the
# pinned tool WHAT, runs INSTALL (HINT is that command as a person would type it). VAR is then
# empty, or says what is missing and how to install it; see ci_requires for CI=true.
pinned_tool() {
  local var=$1 step=$2 what=$3 hint=$4 check=$5
  shift 5
  if ! "$check"; then
    "$@" || echo "WARNING: could not install ${what} (${hint})." >&2
  fi
  printf -v "$var" '%s' ""
  "$check" || printf -v "$var" '%s' "${what} (${hint})"
  ci_requires "$step" "${!var}"
}

# The S3 file storage test (files::s3_…) runs against moto in server mode, a real
# S3-compatible server. Without it that test says SKIPPED — except under CI=true, where it fails.
if ! python3 -c 'import moto.server' >/dev/null 2>&1; then
  python3 -m pip install --quiet 'moto[server]' ||
    echo "WARNING: could not install moto (python3 -m pip install 'moto[server]'): the S3 storage test will not run." >&2
fi

# schemathesis checks the OpenAPI document against a live server (scripts/schemathesis.sh), at
# this pinned version. Without it that step says SKIPPED — except under CI=true, where it fails.
schemathesis_version=4.32.5
schemathesis_installed() {
  [ "$(python3 -m pip show schemathesis 2>/dev/null | sed -n 's/^Version: //p')" = "$schemathesis_version" ]
}
pinned_tool schemathesis_missing "the OpenAPI check" "schemathesis ${schemathesis_version}" \
  "python3 -m pip install schemathesis==${schemathesis_version}" schemathesis_installed \
  python3 -m pip install --quiet "schemathesis==${schemathesis_version}"

# cargo-deny checks the dependency graph against deny.toml (licences, bans, sources and, when
# the RustSec database can be fetched, advisories), at this pinned version. Without it that
# step says SKIPPED — except under CI=true, where it fails.
cargo_deny_version=0.20.2
cargo_deny_installed() {
  [ "$(cargo deny --version 2>/dev/null | sed -n 's/^cargo-deny //p')" = "$cargo_deny_version" ]
}
pinned_tool cargo_deny_missing "the dependency check" "cargo-deny ${cargo_deny_version}" \
  "cargo install --locked cargo-deny --version ${cargo_deny_version}" cargo_deny_installed \
  cargo install --quiet --locked cargo-deny --version "$cargo_deny_version"

pg_url="${CONCLAVE_TEST_POSTGRES_URL:-postgres://root@127.0.0.1:5432/test}"
pg_hostport="${pg_url#*@}"; pg_hostport="${pg_hostport%%/*}"
pg_host="${pg_hostport%%:*}"; pg_port="${pg_hostport##*:}"
if (exec 3<>"/dev/tcp/${pg_host}/${pg_port}") 2>/dev/null; then
  echo "PostgreSQL reachable at ${pg_host}:${pg_port}: the PostgreSQL suites will run."
  # Each test makes its own database; drop the ones earlier runs left behind (not when
  # CONCLAVE_TEST_KEEP_DATABASES=1: another run is using the same server).
  if command -v psql >/dev/null 2>&1 && [ "${CONCLAVE_TEST_KEEP_DATABASES:-}" != 1 ]; then
    # One psql session for all of them (one process per database took minutes after many runs).
    psql "$pg_url" -Atqc "SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE);', datname) FROM pg_database WHERE datname LIKE 'conclave\_api\_%' OR datname LIKE 'conclave\_t\_%'" 2>/dev/null |
      psql "$pg_url" -q >/dev/null 2>&1 || true
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

# The browser tests need Chromium at /usr/bin/chromium and Node with npm. Missing ones are
# installed when possible; what still misses makes those tests say SKIPPED — except under
# CI=true, where it is a failure.
browser_missing=""
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing chromium for the browser tests (apt-get)…"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } ||
    echo "WARNING: apt-get install chromium failed." >&2
fi
[ -x /usr/bin/chromium ] || browser_missing="chromium (/usr/bin/chromium)"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  browser_missing="${browser_missing:+$browser_missing, }node and npm"
fi
ci_requires "the browser tests" "$browser_missing"

# The LDAP sign-in tests (api::sso::ldap, AUTH-10) start their own OpenLDAP server — Debian's
# `slapd`, with `ldap-utils` — from a temporary directory on free ports. Installing the package
# starts (or tries to start) a system slapd on port 389, which the tests do not use: it is
# stopped. Without slapd those tests say SKIPPED — except under CI=true, where they fail.
if [ ! -x /usr/sbin/slapd ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing slapd and ldap-utils for the LDAP tests (apt-get)…"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slapd ldap-utils >/dev/null; } ||
    echo "WARNING: apt-get install slapd ldap-utils failed." >&2
  if command -v service >/dev/null 2>&1; then service slapd stop >/dev/null 2>&1 || true; fi
fi
ldap_missing=""
[ -x /usr/sbin/slapd ] && [ -x /usr/sbin/slapadd ] || ldap_missing="slapd (apt-get install slapd ldap-utils)"
ci_requires "the LDAP tests" "$ldap_missing"

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# No module imports a sibling that imports it back (issue 11).
python3 scripts/module-cycles.py
if [ -n "$cargo_deny_missing" ]; then
  skipped "the dependency check (cargo deny check) — missing ${cargo_deny_missing}."
else
  # The advisories check fetches the RustSec database by cloning github.com/rustsec/advisory-db.
  # Where GitHub cannot be reached that one check says SKIPPED, under CI=true too: the build
  # machines (this one and CI's, 2026-12-04) reach only package registries ("Could not resolve
  # host: github.com"), so it could never pass there. Licences, bans and sources need only
  # Cargo.lock and always run.
  if cargo deny fetch db >/dev/null 2>&1; then
    cargo deny --locked check advisories bans licenses sources
  else
    skipped "cargo deny check advisories — the RustSec database (github.com) cannot be fetched."
    cargo deny --locked check bans licenses sources
  fi
fi
log=$(mktemp)
browser_log=$(mktemp)
st_log=$(mktemp)
trap 'rm -f "$log" "$browser_log" "$st_log"' EXIT
status=0
# web/tests' packages first: besides the browser tests, the HTTP suite's OpenID tests start the
# real `oidc-provider` from there (api::sso::oidc, web/tests/oidc-provider.mjs) and the MCP tests
# run the TypeScript SDK from there (web/tests/mcp-check.mjs). Without node those tests say
# SKIPPED — except under CI=true, where they fail.
if command -v npm >/dev/null 2>&1; then
  (cd web/tests && npm ci --no-audit --no-fund --loglevel=error) ||
    echo "WARNING: npm ci in web/tests failed: the OpenID, MCP TypeScript SDK and browser tests will not run." >&2
fi
cargo test --workspace --locked "$@" 2>&1 | tee "$log" || status=$?

if [ -n "$schemathesis_missing" ]; then
  skipped "the OpenAPI check (scripts/schemathesis.sh) — missing ${schemathesis_missing}."
  echo "schemathesis: skipped" >"$st_log"
elif ./scripts/schemathesis.sh; then
  echo "schemathesis: ok" >"$st_log"
else
  status=1
  echo "schemathesis: failed" >"$st_log"
fi

if [ -n "$browser_missing" ]; then
  skipped "browser tests (web/tests) — missing ${browser_missing}."
else
  cargo build --locked -p conclave-server --bin conclave
  CONCLAVE_BIN="${CARGO_TARGET_DIR:-target}/debug/conclave" \
    node --test --test-concurrency=1 --test-reporter=tap web/tests/ 2>&1 | tee "$browser_log" ||
    status=$?
fi

# One closing line for the whole run: cargo prints one per test binary (the last often a
# doc-test binary with nothing in it) and node's runner its own.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     /^# pass / { p += $3 } /^# fail / { f += $3 } /^# skipped / { s += $3 }
     /^schemathesis: ok$/ { p++ } /^schemathesis: failed$/ { f++ } /^schemathesis: skipped$/ { s++ }
     END { printf "\nsummary: %d passed, %d failed, %d skipped\n", p, f, s }' "$log" "$browser_log" "$st_log"
exit "$status"
