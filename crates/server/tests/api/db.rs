//! Raw access to a test app's database, as an operator (or an attacker with write access)
//! would have it: one `Db` for both backends, and `with_pool!` to run one statement on either.

use conclave_server::config::Config;

/// A pool on the database a test app uses.
pub enum Db {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

/// Evaluates `$body` with `$pool` bound to the `Db`'s pool, whichever backend it is.
#[macro_export]
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Pg($pool) => $body,
        }
    };
}

impl Db {
    /// Connects to the database at `url` (`sqlite:` or PostgreSQL).
    pub async fn connect(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            Self::Sqlite(sqlx::SqlitePool::connect(url).await.unwrap())
        } else {
            Self::Pg(sqlx::PgPool::connect(url).await.unwrap())
        }
    }

    /// Connects to the database of an app started with `config`.
    pub async fn open(config: &Config) -> Self {
        Self::connect(&config.database_url()).await
    }

    /// Connects to the database of a running test app.
    pub async fn of(app: &crate::helpers::TestApp) -> Self {
        let config = Config {
            data_dir: app.data_dir.clone(),
            database_url: app.database_url.clone(),
            ..Default::default()
        };
        Self::open(&config).await
    }

    /// Runs one statement; answers the rows it touched.
    pub async fn exec(&self, sql: &str) -> u64 {
        with_pool!(self, p => sqlx::query(sql).execute(p).await.unwrap().rows_affected())
    }

    /// The (nonce, ciphertext) pairs `sql` selects, binding `id` when given: sealed secrets as
    /// stored.
    pub async fn sealed(&self, sql: &str, id: Option<uuid::Uuid>) -> Vec<(Vec<u8>, Vec<u8>)> {
        use sqlx::Row;
        with_pool!(self, p => {
            let query = sqlx::query(sql);
            let query = match id {
                Some(id) => query.bind(id),
                None => query,
            };
            query
                .fetch_all(p)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        })
    }

    /// [`Self::sealed`] on the database of a running test app.
    pub async fn sealed_of(
        app: &crate::helpers::TestApp,
        sql: &str,
        id: Option<uuid::Uuid>,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let db = Self::of(app).await;
        let rows = db.sealed(sql, id).await;
        db.close().await;
        rows
    }

    pub async fn close(&self) {
        with_pool!(self, p => p.close().await)
    }
}
