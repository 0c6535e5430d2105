//! The shared conformance suite against PostgreSQL, each check in a database of its own.
//!
//! The server is `postgres://root@127.0.0.1:5432/test` unless `CONCLAVE_TEST_POSTGRES_URL`
//! says otherwise. When it cannot be reached the checks are skipped, except in CI
//! (`CI=true`), where that is a failure.
#![allow(
    clippy::disallowed_methods,
    reason = "test fixtures (CI, CONCLAVE_TEST_* service URLs) come from the environment"
)]

use conclave_store_postgres::PgStore;
use conclave_store_sql::conformance::TestDb;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection};
use std::str::FromStr;
use std::sync::Arc;

const DEFAULT_URL: &str = "postgres://root@127.0.0.1:5432/test";

fn admin_url() -> String {
    std::env::var("CONCLAVE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

async fn fresh() -> Option<TestDb> {
    let admin = admin_url();
    let mut conn = match PgConnection::connect(&admin).await {
        Ok(conn) => conn,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("SKIPPED postgres conformance: cannot connect to {admin}: {e}");
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
    let store = PgStore::connect(&url, conclave_store_sql::conformance::test_audit_key())
        .await
        .expect("connecting to the test database");
    Some(TestDb {
        store: Arc::new(store),
        cleanup: Box::pin(drop_database(admin, name)),
    })
}

async fn drop_database(admin: String, name: String) {
    if let Ok(mut conn) = PgConnection::connect(&admin).await {
        let _ = conn
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await;
        conn.close().await.ok();
    }
}

conclave_store_sql::conformance_tests!(fresh);
