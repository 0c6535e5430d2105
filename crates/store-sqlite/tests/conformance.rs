//! The shared conformance suite against SQLite, each check on a fresh database file.

use conclave_store_sql::conformance::TestDb;
use conclave_store_sqlite::SqliteStore;
use std::path::PathBuf;
use std::sync::Arc;

async fn fresh() -> Option<TestDb> {
    let path =
        std::env::temp_dir().join(format!("conclave-store-test-{}.db", uuid::Uuid::now_v7()));
    let store = SqliteStore::connect(
        &format!("sqlite://{}", path.display()),
        conclave_store_sql::conformance::test_audit_key(),
    )
    .await
    .expect("opening a fresh SQLite database");
    Some(TestDb {
        store: Arc::new(store),
        cleanup: Box::pin(remove(path)),
    })
}

async fn remove(path: PathBuf) {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

conclave_store_sql::conformance_tests!(fresh);
