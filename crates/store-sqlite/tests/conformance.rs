//! The shared conformance suite (`conclave-store-conformance`) against SQLite, each check on a
//! fresh database file.

use conclave_store_conformance::{test_audit_key, TestDb};
use conclave_store_sqlite::SqliteStore;
use std::path::PathBuf;
use std::sync::Arc;

fn main() {
    conclave_store_conformance::run(fresh)
}

async fn fresh() -> Option<TestDb> {
    let path =
        std::env::temp_dir().join(format!("conclave-store-test-{}.db", uuid::Uuid::now_v7()));
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()), test_audit_key())
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
