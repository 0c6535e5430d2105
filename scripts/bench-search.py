#!/usr/bin/env python3
"""Search latency (MSG-6, issue 16) on a large messages table, on SQLite or PostgreSQL.

Starts `conclave serve` (the binary given, default target/debug/conclave; use a release build for
numbers worth writing down) on a free port with a fresh data dir (and, for postgres, a fresh
database on 127.0.0.1:5432), registers a user, creates an org with two conversations — one the
user takes part in, one they do not — and then writes MESSAGES rows straight into `messages`
with one SQL statement (sqlite3 / psql; the FTS5 triggers and the generated tsvector index them
exactly as a send would), 90 % into the user's conversation; on PostgreSQL then `VACUUM ANALYZE`
(the steady state: the GIN pending list merged). Each message is eight words from a
5,000-word vocabulary, plus `common` in one message of ten and `rare` in one of ten thousand.
Then it runs QUERIES searches per case — a rare word, a common word, two words — in both
orders, org-wide and in the conversation, one after another, and prints p50/p95/max in ms as
JSON (the last line; BENCH_SEARCH_KEEP_DB=1 keeps the PostgreSQL database for EXPLAIN). Send throughput before/after is `scripts/bench.sh … throughput` with
BENCH_SERVER_BIN set to each build.

    python3 scripts/bench-search.py sqlite|postgres [path/to/conclave] [MESSAGES] [QUERIES]
"""
import json, os, shutil, subprocess, sys, tempfile, time, urllib.parse

from benchlib import call, org_with_group, serve, sign_up

BACKEND = sys.argv[1] if len(sys.argv) > 1 else "sqlite"
BIN = sys.argv[2] if len(sys.argv) > 2 else "target/debug/conclave"
MESSAGES = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
QUERIES = int(sys.argv[4]) if len(sys.argv) > 4 else 100
PG = "postgres://root@127.0.0.1:5432"


def fill_sql(conv_in, conv_out, author, n):
    """One INSERT … SELECT of `n` messages (90 % in `conv_in`), per backend."""
    if BACKEND == "sqlite":
        words = " || ' ' || ".join(["'w' || (abs(random()) % 5000)"] * 8)
        return f"""
PRAGMA busy_timeout = 60000;
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n})
INSERT INTO messages (id, conversation_id, seq, author_id, content, format, created_at)
SELECT randomblob(16),
       CASE WHEN i % 10 = 0 THEN X'{conv_out.replace('-', '')}' ELSE X'{conv_in.replace('-', '')}' END,
       1000000000 + i, X'{author.replace('-', '')}',
       {words} || CASE WHEN i % 10 = 3 THEN ' common' ELSE '' END
                || CASE WHEN i % 10000 = 7 THEN ' rare' ELSE '' END,
       'text', strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
FROM s;
"""
    words = " || ' ' || ".join(["'w' || floor(random() * 5000)::int"] * 8)
    return f"""
INSERT INTO messages (id, conversation_id, seq, author_id, content, format, created_at)
SELECT gen_random_uuid(),
       CASE WHEN i % 10 = 0 THEN '{conv_out}'::uuid ELSE '{conv_in}'::uuid END,
       1000000000 + i, '{author}'::uuid,
       {words} || CASE WHEN i % 10 = 3 THEN ' common' ELSE '' END
                || CASE WHEN i % 10000 = 7 THEN ' rare' ELSE '' END,
       'text', now()
FROM generate_series(1, {n}) AS i;
"""


def percentiles(samples):
    s = sorted(samples)
    pick = lambda q: round(s[min(len(s) - 1, int(q * len(s)))] * 1000, 2)
    return {"p50_ms": pick(0.50), "p95_ms": pick(0.95), "max_ms": round(s[-1] * 1000, 2)}


def main():
    data = tempfile.mkdtemp(prefix="conclave-bench-search-")
    env = {}
    db = None
    if BACKEND == "postgres":
        db = f"conclave_bench_search_{os.getpid()}"
        subprocess.run(["psql", "-h", "127.0.0.1", "-d", "test", "-qc", f"CREATE DATABASE {db}"], check=True)
        env["CONCLAVE_DATABASE_URL"] = f"{PG}/{db}"
    server, port = serve(BIN, data, **env)
    try:
        token, author = sign_up(port, "bench")
        other, _ = sign_up(port, "other")
        org, conv_in = org_with_group(port, token, "Bench", "Mine")
        _, conv_out = org_with_group(port, other, "Other", "Theirs")
        sql = fill_sql(conv_in, conv_out, author, MESSAGES)
        start = time.monotonic()
        if BACKEND == "sqlite":
            subprocess.run(["sqlite3", os.path.join(data, "conclave.db")], input=sql, text=True, check=True)
        else:
            subprocess.run(["psql", "-h", "127.0.0.1", "-d", db, "-q", "-v", "ON_ERROR_STOP=1"], input=sql, text=True, check=True)
        fill_secs = round(time.monotonic() - start, 1)
        if BACKEND == "postgres":
            # A bulk insert leaves the GIN index's new entries in its pending list, which every
            # query scans linearly until (auto)vacuum merges it; steady state is merged.
            subprocess.run(["psql", "-h", "127.0.0.1", "-d", db, "-qc", "VACUUM ANALYZE messages"], check=True)
        report = {"backend": BACKEND, "messages": MESSAGES, "queries_per_case": QUERIES,
                  "fill_and_index_secs": fill_secs, "cases": {}}
        for scope, base in [("org", f"/api/v1/orgs/{org}/search"), ("conversation", f"/api/v1/conversations/{conv_in}/search")]:
            for name, q in [("rare", "rare"), ("common", "common"), ("two_words", "common w42")]:
                for sort in ["relevance", "newest"]:
                    path = f"{base}?{urllib.parse.urlencode({'q': q, 'sort': sort, 'limit': 20})}"
                    call(port, "GET", path, token)  # warm
                    samples = []
                    for _ in range(QUERIES):
                        t = time.monotonic()
                        page = call(port, "GET", path, token)
                        samples.append(time.monotonic() - t)
                    report["cases"][f"{scope}/{name}/{sort}"] = {**percentiles(samples), "hits": len(page["items"])}
        print(json.dumps(report, indent=1))
        print(json.dumps(report))
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(data, ignore_errors=True)
        if db and not os.environ.get("BENCH_SEARCH_KEEP_DB"):
            subprocess.run(["psql", "-h", "127.0.0.1", "-d", "test", "-qc", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"])


if __name__ == "__main__":
    main()
