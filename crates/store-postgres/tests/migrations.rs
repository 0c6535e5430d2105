//! The SQLite and PostgreSQL migrations define the same schema: a fresh database of each is
//! migrated and introspected, and the two must have the same tables; the same columns (name,
//! nullability and type family — see [`sqlite_type_of`] for the explicit mapping); the same
//! primary keys, unique constraints (names included: the store maps violations by them), foreign
//! keys (columns, target, `ON DELETE`), check constraint names and indexes.
//!
//! SQLite does not keep constraint names in its catalogue, so they are read from the stored
//! `CREATE TABLE` text and checked against what `pragma_*` reports for the same columns.

mod support;

use conclave_core::audit::AuditKey;
use conclave_store_postgres::PgStore;
use conclave_store_sqlite::SqliteStore;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{PgPool, Row, SqlitePool};
use std::collections::{BTreeMap, BTreeSet};
use support::FreshDatabase;

/// A column as both backends can describe it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Column {
    /// The SQLite declared type (for PostgreSQL: the one its type maps to).
    family: String,
    not_null: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ForeignKey {
    name: String,
    columns: Vec<String>,
    target: String,
    target_columns: Vec<String>,
    on_delete: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Table {
    columns: BTreeMap<String, Column>,
    /// Name and columns.
    primary_key: Option<(String, Vec<String>)>,
    unique: BTreeSet<(String, Vec<String>)>,
    foreign_keys: BTreeSet<ForeignKey>,
    checks: BTreeSet<String>,
    /// Indexes not backing a constraint: name, unique, columns.
    indexes: BTreeSet<(String, bool, Vec<String>)>,
}

type Schema = BTreeMap<String, Table>;

const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// The full-text index of messages (MSG-6) is each engine's own, with no counterpart in the
/// other: SQLite's FTS5 table `message_search` (and the shadow tables FTS5 keeps for it,
/// `message_search_*`); PostgreSQL's generated column `messages.search` and its GIN index.
/// The schemas are compared without them, and [`each_backend_has_its_full_text_index`] checks
/// that each backend has its own.
const SQLITE_FULL_TEXT: &str = "message_search";
/// PostgreSQL's: table, generated column, index.
const PG_FULL_TEXT: (&str, &str, &str) = ("messages", "search", "messages_search_idx");

/// Whether a SQLite table is the full-text index or one of its shadow tables.
fn sqlite_full_text(table: &str) -> bool {
    table == SQLITE_FULL_TEXT
        || table
            .strip_prefix(SQLITE_FULL_TEXT)
            .is_some_and(|rest| rest.starts_with('_'))
}

/// The SQLite type a PostgreSQL column type is stored as by these migrations. Every type the
/// PostgreSQL schema uses must be listed: an unknown one fails the test.
fn sqlite_type_of(pg_type: &str) -> &'static str {
    match pg_type {
        // Ids are 16-byte blobs, hashes and ciphertexts raw bytes.
        "uuid" | "bytea" => "BLOB",
        // Times are RFC 3339 text in UTC.
        "text" | "timestamp with time zone" => "TEXT",
        "boolean" | "smallint" | "integer" | "bigint" => "INTEGER",
        "double precision" => "REAL",
        other => panic!("PostgreSQL type {other:?} has no SQLite mapping here; add one"),
    }
}

/// `ON DELETE` as SQLite spells it, from `pg_constraint.confdeltype`.
fn on_delete(code: &str) -> String {
    match code {
        "a" => "NO ACTION",
        "r" => "RESTRICT",
        "c" => "CASCADE",
        "n" => "SET NULL",
        "d" => "SET DEFAULT",
        other => panic!("unknown confdeltype {other:?}"),
    }
    .to_owned()
}

/// The rows `sql` answers on PostgreSQL (`what` they are, for a failure).
async fn postgres_rows(pool: &PgPool, what: &str, sql: &str) -> Vec<PgRow> {
    sqlx::query(sql)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("reading {what}: {e}"))
}

async fn postgres_schema(pool: &PgPool) -> Schema {
    let mut schema = Schema::new();
    let columns = postgres_rows(
        pool,
        "columns",
        "SELECT c.table_name::text AS t, c.column_name::text AS c, c.data_type::text AS ty, \
         c.is_nullable::text AS nullable FROM information_schema.columns c \
         JOIN information_schema.tables t ON t.table_schema = c.table_schema \
         AND t.table_name = c.table_name \
         WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'",
    )
    .await;
    for row in columns {
        let table: String = row.get("t");
        let ty: String = row.get("ty");
        if (table.as_str(), row.get::<&str, _>("c")) == (PG_FULL_TEXT.0, PG_FULL_TEXT.1) {
            continue;
        }
        let nullable: String = row.get("nullable");
        schema.entry(table).or_default().columns.insert(
            row.get("c"),
            Column {
                family: sqlite_type_of(&ty).to_owned(),
                not_null: nullable == "NO",
            },
        );
    }
    let constraints = postgres_rows(
        pool,
        "constraints",
        "SELECT c.conname::text AS name, c.contype::text AS kind, t.relname::text AS t, \
         ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i) \
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n \
               ORDER BY k.i) AS cols, \
         rt.relname::text AS target, \
         ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i) \
               JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n \
               ORDER BY k.i) AS target_cols, \
         c.confdeltype::text AS on_delete \
         FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace LEFT JOIN pg_class rt ON rt.oid = c.confrelid \
         WHERE n.nspname = 'public'",
    )
    .await;
    for row in constraints {
        let table: String = row.get("t");
        let name: String = row.get("name");
        let cols: Vec<String> = row.get("cols");
        let entry = schema.entry(table).or_default();
        match row.get::<String, _>("kind").as_str() {
            "p" => entry.primary_key = Some((name, cols)),
            "u" => {
                entry.unique.insert((name, cols));
            }
            "f" => {
                entry.foreign_keys.insert(ForeignKey {
                    name,
                    columns: cols,
                    target: row.get("target"),
                    target_columns: row.get("target_cols"),
                    on_delete: on_delete(&row.get::<String, _>("on_delete")),
                });
            }
            "c" => {
                entry.checks.insert(name);
            }
            other => panic!("constraint {name} of unexpected kind {other:?}"),
        }
    }
    let indexes = postgres_rows(
        pool,
        "indexes",
        "SELECT i.relname::text AS name, t.relname::text AS t, ix.indisunique AS uniq, \
         ARRAY(SELECT a.attname::text FROM unnest(ix.indkey::int2[]) WITH ORDINALITY k(n, o) \
               JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n ORDER BY k.o) AS cols \
         FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid \
         JOIN pg_class t ON t.oid = ix.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = 'public' \
         AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = ix.indexrelid)",
    )
    .await;
    for row in indexes {
        let table: String = row.get("t");
        if row.get::<&str, _>("name") == PG_FULL_TEXT.2 {
            continue;
        }
        schema.entry(table).or_default().indexes.insert((
            row.get("name"),
            row.get("uniq"),
            row.get("cols"),
        ));
    }
    schema.remove(MIGRATIONS_TABLE);
    schema
}

/// A named table constraint found in SQLite's `CREATE TABLE` text: name, kind, columns.
#[derive(Debug)]
struct Named {
    name: String,
    kind: &'static str,
    columns: Vec<String>,
}

/// Words and single punctuation characters of a statement; quoted strings are skipped.
fn tokens(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            let mut word = c.to_string();
            while let Some(&n) = chars.peek().filter(|n| n.is_alphanumeric() || **n == '_') {
                word.push(n);
                chars.next();
            }
            out.push(word);
        } else if c == '\'' {
            for n in chars.by_ref() {
                if n == '\'' {
                    break;
                }
            }
        } else if !c.is_whitespace() {
            out.push(c.to_string());
        }
    }
    out
}

fn named_constraints(sql: &str) -> Vec<Named> {
    let t = tokens(sql);
    let word = |i: usize| t.get(i).map(|s| s.to_ascii_uppercase()).unwrap_or_default();
    let list = |mut i: usize| {
        let mut cols = Vec::new();
        assert_eq!(word(i), "(", "a column list in {sql}");
        i += 1;
        while word(i) != ")" {
            if word(i) != "," {
                cols.push(t[i].clone());
            }
            i += 1;
        }
        cols
    };
    let mut found = Vec::new();
    for i in 0..t.len() {
        if word(i) != "CONSTRAINT" {
            continue;
        }
        let name = t[i + 1].clone();
        let (kind, columns) = match (word(i + 2).as_str(), word(i + 3).as_str()) {
            ("PRIMARY", "KEY") => ("primary key", list(i + 4)),
            ("UNIQUE", _) => ("unique", list(i + 3)),
            ("FOREIGN", "KEY") => ("foreign key", list(i + 4)),
            ("CHECK", _) => ("check", Vec::new()),
            (other, _) => panic!("constraint {name} of unknown kind {other} in {sql}"),
        };
        found.push(Named {
            name,
            kind,
            columns,
        });
    }
    found
}

/// The one constraint of `kind` on exactly `columns`.
fn name_of(named: &[Named], kind: &str, columns: &[String], table: &str) -> String {
    let matching: Vec<&Named> = named
        .iter()
        .filter(|n| n.kind == kind && n.columns == columns)
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "{table}: expected one named {kind} constraint on {columns:?}, found {matching:?}"
    );
    matching[0].name.clone()
}

/// The rows `sql` answers on SQLite with `arg` bound (the table or index a pragma reads).
async fn sqlite_rows(pool: &SqlitePool, sql: &str, arg: &str) -> Vec<SqliteRow> {
    sqlx::query(sql)
        .bind(arg)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn sqlite_strings(pool: &SqlitePool, sql: &str, arg: &str, col: &str) -> Vec<String> {
    let rows = sqlite_rows(pool, sql, arg).await;
    rows.iter().map(|r| r.get::<String, _>(col)).collect()
}

/// A SQLite table's columns (with their primary-key position).
const PRAGMA_COLUMNS: &str = "SELECT name, type, \"notnull\" AS nn, pk FROM pragma_table_info(?)";

/// A SQLite table's indexes.
const PRAGMA_INDEXES: &str = "SELECT name, \"unique\" AS uniq, origin FROM pragma_index_list(?)";

/// A SQLite table's foreign keys, one row per column.
const PRAGMA_FOREIGN_KEYS: &str =
    "SELECT id, \"table\" AS target, \"from\" AS col, \"to\" AS target_col, on_delete \
         FROM pragma_foreign_key_list(?) ORDER BY id, seq";

async fn sqlite_table(pool: &SqlitePool, name: &str, sql: &str) -> Table {
    let named = named_constraints(sql);
    let mut table = Table::default();
    let mut pk: Vec<(i64, String)> = Vec::new();
    for row in sqlite_rows(pool, PRAGMA_COLUMNS, name).await {
        let column: String = row.get("name");
        let key: i64 = row.get("pk");
        if key > 0 {
            pk.push((key, column.clone()));
        }
        table.columns.insert(
            column,
            Column {
                family: row.get::<String, _>("type").to_ascii_uppercase(),
                not_null: row.get("nn"),
            },
        );
    }
    pk.sort();
    if !pk.is_empty() {
        let cols: Vec<String> = pk.into_iter().map(|(_, c)| c).collect();
        table.primary_key = Some((name_of(&named, "primary key", &cols, name), cols));
    }
    for row in sqlite_rows(pool, PRAGMA_INDEXES, name).await {
        let index: String = row.get("name");
        let cols = sqlite_strings(
            pool,
            "SELECT name FROM pragma_index_info(?) ORDER BY seqno",
            &index,
            "name",
        )
        .await;
        match row.get::<String, _>("origin").as_str() {
            "pk" => {}
            "u" => {
                table
                    .unique
                    .insert((name_of(&named, "unique", &cols, name), cols));
            }
            _ => {
                table.indexes.insert((index, row.get("uniq"), cols));
            }
        }
    }
    let mut fks: BTreeMap<i64, ForeignKey> = BTreeMap::new();
    for row in sqlite_rows(pool, PRAGMA_FOREIGN_KEYS, name).await {
        let fk = fks.entry(row.get("id")).or_insert_with(|| ForeignKey {
            name: String::new(),
            columns: Vec::new(),
            target: row.get("target"),
            target_columns: Vec::new(),
            on_delete: row.get("on_delete"),
        });
        fk.columns.push(row.get("col"));
        fk.target_columns.push(row.get("target_col"));
    }
    for (_, mut fk) in fks {
        fk.name = name_of(&named, "foreign key", &fk.columns, name);
        table.foreign_keys.insert(fk);
    }
    table.checks = named
        .iter()
        .filter(|n| n.kind == "check")
        .map(|n| n.name.clone())
        .collect();
    table
}

async fn sqlite_schema(pool: &SqlitePool) -> Schema {
    let mut schema = Schema::new();
    for row in sqlx::query(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(pool)
    .await
    .expect("reading tables")
    {
        let name: String = row.get("name");
        if name != MIGRATIONS_TABLE && !sqlite_full_text(&name) {
            let table = sqlite_table(pool, &name, &row.get::<String, _>("sql")).await;
            schema.insert(name, table);
        }
    }
    schema
}

/// Every difference between the two schemas, one line each.
fn differences(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    let names: BTreeSet<&String> = sqlite.keys().chain(postgres.keys()).collect();
    for name in names {
        match (sqlite.get(name), postgres.get(name)) {
            (Some(s), Some(p)) if s == p => {}
            (Some(s), Some(p)) => out.push(format!(
                "table {name} differs:\n  sqlite:   {s:?}\n  postgres: {p:?}"
            )),
            (s, _) => out.push(format!(
                "table {name} exists only in {}",
                if s.is_some() { "sqlite" } else { "postgres" }
            )),
        }
    }
    out
}

/// A migrated SQLite store on a fresh file, and the file.
async fn migrated_sqlite() -> (SqliteStore, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("conclave-schema-{}.db", uuid::Uuid::now_v7()));
    let store = SqliteStore::connect(
        &format!("sqlite://{}", path.display()),
        AuditKey::from_bytes([7; 32]),
    )
    .await
    .expect("migrating sqlite");
    (store, path)
}

async fn remove_sqlite(store: SqliteStore, path: std::path::PathBuf) {
    store.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// The comparison is not blind: on two SQLite databases, one changed after migrating, it reports
/// an added column, a changed nullability, a renamed unique constraint and a changed
/// `ON DELETE` — and, between the second and an unchanged database, only the added table.
#[tokio::test]
async fn the_comparison_reports_each_kind_of_difference() {
    let (a, a_path) = migrated_sqlite().await;
    let (b, b_path) = migrated_sqlite().await;
    for sql in [
        "CREATE TABLE probe (id BLOB NOT NULL, user_id BLOB, code TEXT NOT NULL, \
         CONSTRAINT probe_pkey PRIMARY KEY (id), \
         CONSTRAINT probe_code_unique UNIQUE (code), \
         CONSTRAINT probe_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE)",
        "ALTER TABLE users ADD COLUMN probe_note TEXT",
    ] {
        sqlx::query(sql).execute(a.writer()).await.expect(sql);
    }
    sqlx::query(
        "CREATE TABLE probe (id BLOB NOT NULL, user_id BLOB NOT NULL, code TEXT NOT NULL, \
         CONSTRAINT probe_pkey PRIMARY KEY (id), \
         CONSTRAINT probe_code_key UNIQUE (code), \
         CONSTRAINT probe_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL)",
    )
    .execute(b.writer())
    .await
    .expect("the other probe table");
    let (left, right) = (
        sqlite_schema(a.reader()).await,
        sqlite_schema(b.reader()).await,
    );
    let diff = differences(&left, &right);
    assert_eq!(diff.len(), 2, "users and probe differ: {diff:#?}");
    let probe = (&left["probe"], &right["probe"]);
    assert_ne!(probe.0.columns["user_id"], probe.1.columns["user_id"]);
    assert_ne!(probe.0.unique, probe.1.unique);
    assert_ne!(probe.0.foreign_keys, probe.1.foreign_keys);
    assert_eq!(probe.0.primary_key, probe.1.primary_key);
    assert!(left["users"].columns.contains_key("probe_note"));
    assert!(!right["users"].columns.contains_key("probe_note"));
    let (c, c_path) = migrated_sqlite().await;
    let same = differences(&right, &sqlite_schema(c.reader()).await);
    assert_eq!(
        same.len(),
        1,
        "only the probe table, which c lacks: {same:#?}"
    );
    for (store, path) in [(a, a_path), (b, b_path), (c, c_path)] {
        remove_sqlite(store, path).await;
    }
}

#[tokio::test]
async fn sqlite_and_postgres_migrations_define_the_same_schema() {
    let Some(db) = FreshDatabase::create("migrations equivalence").await else {
        return;
    };
    let pg = PgStore::connect(&db.url, AuditKey::from_bytes([7; 32]))
        .await
        .expect("migrating postgres");
    let (lite, path) = migrated_sqlite().await;
    let sqlite = sqlite_schema(lite.reader()).await;
    let postgres = postgres_schema(pg.reader()).await;
    remove_sqlite(lite, path).await;
    pg.close().await;
    db.drop_database().await;
    assert!(
        sqlite.len() > 10,
        "introspection found the tables: {sqlite:?}"
    );
    let diff = differences(&sqlite, &postgres);
    assert!(
        diff.is_empty(),
        "the migrations differ:\n{}",
        diff.join("\n")
    );
}

/// The part of each schema the comparison leaves out (see [`SQLITE_FULL_TEXT`]) is there: an
/// FTS5 table with its triggers on SQLite; a generated `tsvector` column with a GIN index on
/// PostgreSQL.
#[tokio::test]
async fn each_backend_has_its_full_text_index() {
    let (lite, path) = migrated_sqlite().await;
    let objects: Vec<(String, String)> = sqlx::query(
        "SELECT type, name FROM sqlite_master WHERE name = 'message_search' \
         OR (type = 'trigger' AND tbl_name = 'messages') ORDER BY name",
    )
    .fetch_all(lite.reader())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("type"), r.get("name")))
    .collect();
    let fts: String = sqlx::query("SELECT sql FROM sqlite_master WHERE name = 'message_search'")
        .fetch_one(lite.reader())
        .await
        .unwrap()
        .get("sql");
    remove_sqlite(lite, path).await;
    assert!(fts.contains("fts5"), "{fts}");
    let names: Vec<&str> = objects.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_search",
            "message_search_delete",
            "message_search_insert",
            "message_search_update"
        ]
    );
    assert!(!sqlite_full_text("message_searches") && sqlite_full_text("message_search_data"));

    let Some(db) = FreshDatabase::create("full-text index").await else {
        return;
    };
    let pg = PgStore::connect(&db.url, AuditKey::from_bytes([7; 32]))
        .await
        .expect("migrating postgres");
    let column = sqlx::query(
        "SELECT data_type::text AS ty, is_generated::text AS generated \
         FROM information_schema.columns WHERE table_name = $1 AND column_name = $2",
    )
    .bind(PG_FULL_TEXT.0)
    .bind(PG_FULL_TEXT.1)
    .fetch_one(pg.reader())
    .await
    .expect("the generated column");
    let index: String = sqlx::query("SELECT indexdef FROM pg_indexes WHERE indexname = $1")
        .bind(PG_FULL_TEXT.2)
        .fetch_one(pg.reader())
        .await
        .expect("the index")
        .get("indexdef");
    pg.close().await;
    db.drop_database().await;
    assert_eq!(column.get::<String, _>("ty"), "tsvector");
    assert_eq!(column.get::<String, _>("generated"), "ALWAYS");
    assert!(index.contains("USING gin (search)"), "{index}");
}
