//! The SQLite store: one file, WAL journal, a single writer connection (so writes queue in the
//! pool instead of failing with `SQLITE_BUSY`) and a few reader connections. Message sends are
//! group-committed by one writer task (`store-sql/src/batch.rs`). The SQL itself is
//! shared with PostgreSQL: `crates/store-sql/src` is compiled here as the private module `sql`,
//! over `sqlx::Sqlite`.

use conclave_core::store::StoreError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite};
use std::str::FromStr;
use std::time::Duration;

/// How a batch of sends begins: with the write lock taken at once (waiting up to the busy
/// timeout), since the batch reads (replays, authors) before it writes, and a read
/// transaction that has to wait for the write lock gets `SQLITE_BUSY` without waiting.
const BEGIN_SENDS: &str = "BEGIN IMMEDIATE";

/// How search asks FTS5 (MSG-6): the table `message_search` keyed by the message's rowid (its
/// `message_id` is checked too, so an entry can never stand for another message), ranked by
/// `bm25`, each word of the query a quoted phrase so nothing in it is FTS5 syntax.
const SEARCH: sql::SearchSql = sql::SearchSql {
    from: "message_search s JOIN messages m ON m.rowid = s.rowid AND m.id = s.message_id",
    matches: "message_search MATCH $1",
    score: "bm25(message_search)",
    score_in_window: true,
    query: fts5_phrases,
    index: "message_search",
    newest_first: "s.rowid DESC",
    row_matches: "EXISTS (SELECT 1 FROM message_search WHERE message_search MATCH $1 \
                  AND rowid = m.rowid AND message_id = m.id)",
    join_in_order: "CROSS JOIN",
};

/// Every word as an FTS5 string (double quotes doubled): a phrase of the word's tokens, all
/// of them required (FTS5's implicit `AND`).
fn fts5_phrases(words: &[&str]) -> String {
    let quoted: Vec<String> = words
        .iter()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    quoted.join(" ")
}

/// Statements made wholly of generated parameters use anonymous `?`s (see `tuples`).
const ANONYMOUS_PARAMETERS: bool = true;

/// How many connections serve plain reads.
const READERS: u32 = 4;

/// Prepared statements the writer keeps (sqlx's default is 100). A group-commit batch of n
/// messages runs statements whose text depends on n and on how many conversations and authors
/// it holds; with the default, batches of changing sizes pushed each other out and every batch
/// was parsed and planned again.
const WRITER_STATEMENTS: usize = 512;

/// When a commit reaches the disk (`PRAGMA synchronous`, in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// The WAL is synced at checkpoints only: a commit survives the process being killed
    /// (`kill -9`, a crash), but the last commits before a power loss or an OS crash may be
    /// lost (the database stays consistent).
    #[default]
    Normal,
    /// The WAL is synced at every commit: a commit survives a power loss too, at the cost of
    /// an fsync per transaction (group commit makes that one per batch of sends).
    Full,
}

/// A `Store` on an SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    reader: Pool<Sqlite>,
    /// At most one connection: SQLite allows one writer at a time anyway.
    writer: Pool<Sqlite>,
    /// Chains the audit rows this store appends (DATA-4).
    audit_key: conclave_core::audit::AuditKey,
    /// The one group-commit writer of message sends.
    writers: sql::Writers,
}

impl SqliteStore {
    /// Opens (creating it if missing) the database at `url` — `sqlite://path`, `sqlite:path` or
    /// a plain path — and applies this crate's migrations, with `synchronous = NORMAL`.
    pub async fn connect(
        url: &str,
        audit_key: conclave_core::audit::AuditKey,
    ) -> Result<Self, StoreError> {
        Self::open(url, audit_key, Synchronous::Normal).await
    }

    /// [`Self::connect`] with the given [`Synchronous`] setting.
    pub async fn open(
        url: &str,
        audit_key: conclave_core::audit::AuditKey,
        synchronous: Synchronous,
    ) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(backend)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            .synchronous(match synchronous {
                Synchronous::Normal => SqliteSynchronous::Normal,
                Synchronous::Full => SqliteSynchronous::Full,
            });
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone().statement_cache_capacity(WRITER_STATEMENTS))
            .await
            .map_err(backend)?;
        sqlx::migrate!()
            .run(&writer)
            .await
            .map_err(|e| StoreError::Backend(format!("migrating: {e}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options)
            .await
            .map_err(backend)?;
        tracing::debug!(url, ?synchronous, "sqlite store ready");
        Ok(Self {
            reader,
            writer,
            audit_key,
            writers: sql::Writers::new(1),
        })
    }

    /// The key the audit chains are made with.
    #[must_use]
    pub fn audit_key(&self) -> &conclave_core::audit::AuditKey {
        &self.audit_key
    }

    /// The pool for reads outside transactions.
    #[must_use]
    pub fn reader(&self) -> &Pool<Sqlite> {
        &self.reader
    }

    /// The single-connection pool every write and transaction goes through.
    #[must_use]
    pub fn writer(&self) -> &Pool<Sqlite> {
        &self.writer
    }

    /// The group-commit writer of message sends.
    fn writers(&self) -> &sql::Writers {
        &self.writers
    }

    /// Ends the send writer and closes both pools, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.writers.close();
        self.writer.close().await;
        self.reader.close().await;
    }
}

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The database the shared SQL runs on.
type Db = Sqlite;
/// The type the shared SQL implements the store traits for.
type Backend = SqliteStore;

#[path = "../../store-sql/src/mod.rs"]
mod sql;
