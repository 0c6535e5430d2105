//! The PostgreSQL store: one pool for reads and writes; row locks and transactions keep the
//! invariants. Message sends are group-committed by a few writer tasks sharded by conversation
//! (`store-sql/src/batch.rs`). The SQL itself is shared with SQLite: `crates/store-sql/src` is compiled here as
//! the private module `sql`, over `sqlx::Postgres`.

use conclave_core::store::StoreError;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Pool, Postgres};
use std::time::Duration;

/// How a batch of sends begins (row locks are taken by its statements).
const BEGIN_SENDS: &str = "BEGIN";

/// How search asks PostgreSQL (MSG-6): the generated `messages.search` vector (`simple`
/// configuration, GIN-indexed) against `plainto_tsquery`, which reads its text as plain words
/// (no operators), ranked by `ts_rank` (negated: lower is better).
const SEARCH: sql::SearchSql = sql::SearchSql {
    from: "messages m",
    matches: "m.search @@ plainto_tsquery('simple', $1)",
    score: "(-ts_rank(m.search, plainto_tsquery('simple', $1)))::float8",
    score_in_window: false,
    query: plain_words,
    index: "messages m",
    newest_first: "m.id DESC",
    row_matches: "m.search @@ plainto_tsquery('simple', $1)",
    join_in_order: "JOIN",
};

/// The words, space-separated, for `plainto_tsquery`.
fn plain_words(words: &[&str]) -> String {
    words.join(" ")
}

/// Generated parameters are numbered (`$1`, …), as PostgreSQL wants them.
const ANONYMOUS_PARAMETERS: bool = false;

/// Connections per node.
const MAX_CONNECTIONS: u32 = 16;

/// Group-commit writers of message sends, each owning the conversations that hash to it and
/// holding one connection while it writes a batch.
const SEND_WRITERS: usize = 4;

/// A `Store` on a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Chains the audit rows this store appends (DATA-4).
    audit_key: conclave_core::audit::AuditKey,
    /// The group-commit writers of message sends.
    writers: sql::Writers,
}

impl PgStore {
    /// Connects to `url` (`postgres://…`) and applies this crate's migrations. Migrations hold an
    /// advisory lock, so several nodes may start at once.
    pub async fn connect(
        url: &str,
        audit_key: conclave_core::audit::AuditKey,
    ) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        sqlx::migrate!()
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migrating: {e}")))?;
        tracing::debug!("postgres store ready");
        Ok(Self {
            pool,
            audit_key,
            writers: sql::Writers::new(SEND_WRITERS),
        })
    }

    /// The key the audit chains are made with.
    #[must_use]
    pub fn audit_key(&self) -> &conclave_core::audit::AuditKey {
        &self.audit_key
    }

    /// The pool for reads outside transactions (the same pool as [`Self::writer`]).
    #[must_use]
    pub fn reader(&self) -> &Pool<Postgres> {
        &self.pool
    }

    /// The pool for writes and transactions.
    #[must_use]
    pub fn writer(&self) -> &Pool<Postgres> {
        &self.pool
    }

    /// The group-commit writers of message sends.
    fn writers(&self) -> &sql::Writers {
        &self.writers
    }

    /// Ends the send writers and closes the pool, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.writers.close();
        self.pool.close().await;
    }
}

/// The database the shared SQL runs on.
type Db = Postgres;
/// The type the shared SQL implements the store traits for.
type Backend = PgStore;

#[path = "../../store-sql/src/mod.rs"]
mod sql;
