//! The SQLite store: one file, WAL journal, a single writer connection (so writes queue in the
//! pool instead of failing with `SQLITE_BUSY`) and a few reader connections. The SQL itself is
//! shared with PostgreSQL: `crates/store-sql/src` is compiled here as the private module `sql`,
//! over `sqlx::Sqlite`.

use conclave_core::store::StoreError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite};
use std::str::FromStr;
use std::time::Duration;

/// How many connections serve plain reads.
const READERS: u32 = 4;

/// A `Store` on an SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    reader: Pool<Sqlite>,
    /// At most one connection: SQLite allows one writer at a time anyway.
    writer: Pool<Sqlite>,
    /// Chains the audit rows this store appends (DATA-4).
    audit_key: conclave_core::audit::AuditKey,
}

impl SqliteStore {
    /// Opens (creating it if missing) the database at `url` — `sqlite://path`, `sqlite:path` or
    /// a plain path — and applies this crate's migrations.
    pub async fn connect(
        url: &str,
        audit_key: conclave_core::audit::AuditKey,
    ) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(backend)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            .synchronous(SqliteSynchronous::Normal);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
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
        tracing::debug!(url, "sqlite store ready");
        Ok(Self {
            reader,
            writer,
            audit_key,
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

    /// Closes both pools, waiting for connections in use to come back.
    pub async fn close(&self) {
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
