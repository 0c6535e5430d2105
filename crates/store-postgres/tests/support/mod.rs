//! Fresh PostgreSQL databases for the tests of this crate.
//!
//! The server is `postgres://root@127.0.0.1:5432/test` unless `CONCLAVE_TEST_POSTGRES_URL`
//! says otherwise. When it cannot be reached a test is skipped (said on stderr), except in CI
//! (`CI=true`), where that is a failure.
#![allow(
    clippy::disallowed_methods,
    reason = "test fixtures (CI, CONCLAVE_TEST_* service URLs) come from the environment"
)]

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection};
use std::str::FromStr;

const DEFAULT_URL: &str = "postgres://root@127.0.0.1:5432/test";

/// A database made for one test; [`FreshDatabase::drop_database`] throws it away.
pub struct FreshDatabase {
    /// Where to connect to it.
    pub url: String,
    admin: String,
    name: String,
}

impl FreshDatabase {
    /// Creates an empty database; `None` (after saying so) when the server cannot be reached
    /// outside CI.
    pub async fn create(what: &str) -> Option<Self> {
        let admin =
            std::env::var("CONCLAVE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let mut conn = match PgConnection::connect(&admin).await {
            Ok(conn) => conn,
            Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!("SKIPPED postgres {what}: cannot connect to {admin}: {e}");
                return None;
            }
            Err(e) => panic!("postgres is required in CI: cannot connect to {admin}: {e}"),
        };
        let name = format!("conclave_t_{}", uuid::Uuid::now_v7().simple());
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("creating the test database");
        conn.close().await.ok();
        let url = PgConnectOptions::from_str(&admin)
            .expect("a postgres url")
            .database(&name)
            .to_url_lossy()
            .to_string();
        Some(Self { url, admin, name })
    }

    /// Drops the database, disconnecting whoever is still connected.
    pub async fn drop_database(self) {
        if let Ok(mut conn) = PgConnection::connect(&self.admin).await {
            let _ = conn
                .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
                .await;
            conn.close().await.ok();
        }
    }
}
