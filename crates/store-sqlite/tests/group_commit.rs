//! Group commit on SQLite: a batch held back (another connection holds the write lock) and
//! made to fail at `COMMIT` (a trigger breaks a deferred foreign key) answers every sender
//! with an error (`conclave_store_conformance::a_failed_commit_answers_every_sender`).

use conclave_store_conformance::{a_failed_commit_answers_every_sender, test_audit_key, DOOMED};
use conclave_store_sqlite::SqliteStore;
use sqlx::Connection;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_answers_every_sender_of_the_batch() {
    let path = std::env::temp_dir().join(format!("conclave-batch-{}.db", uuid::Uuid::now_v7()));
    let url = format!("sqlite://{}", path.display());
    let store = Arc::new(SqliteStore::connect(&url, test_audit_key()).await.unwrap());
    let side = sqlx::SqliteConnection::connect(&url).await.unwrap();
    a_failed_commit_answers_every_sender(store.clone(), side, |_| {
        vec![format!(
            "CREATE TABLE doom_parent (id INTEGER PRIMARY KEY); \
             CREATE TABLE doom (parent INTEGER REFERENCES doom_parent (id) \
                 DEFERRABLE INITIALLY DEFERRED); \
             CREATE TRIGGER doom_on_send AFTER INSERT ON messages WHEN NEW.content = '{DOOMED}' \
             BEGIN INSERT INTO doom (parent) VALUES (1); END; \
             BEGIN IMMEDIATE;"
        )]
    })
    .await;

    store.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}
