//! The shared conformance suite (`conclave-store-conformance`) against PostgreSQL, each check
//! in a database of its own (see `support` for the server used and when checks are skipped).

mod support;

use conclave_store_conformance::{test_audit_key, TestDb};
use conclave_store_postgres::PgStore;
use std::sync::Arc;
use support::FreshDatabase;

fn main() {
    conclave_store_conformance::run(fresh)
}

async fn fresh() -> Option<TestDb> {
    let db = FreshDatabase::create("conformance").await?;
    let store = PgStore::connect(&db.url, test_audit_key())
        .await
        .expect("connecting to the test database");
    Some(TestDb {
        store: Arc::new(store),
        cleanup: Box::pin(db.drop_database()),
    })
}
