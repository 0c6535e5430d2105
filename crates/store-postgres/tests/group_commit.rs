//! Group commit on PostgreSQL: a batch held back (another connection holds the conversation's
//! row lock) and made to fail at `COMMIT` (a trigger breaks a deferred foreign key) answers
//! every sender with an error (`conclave_store_conformance::a_failed_commit_answers_every_sender`).

mod support;

use conclave_store_conformance::{a_failed_commit_answers_every_sender, test_audit_key, DOOMED};
use conclave_store_postgres::PgStore;
use sqlx::Connection;
use std::sync::Arc;
use support::FreshDatabase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_answers_every_sender_of_the_batch() {
    let Some(db) = FreshDatabase::create("group_commit").await else {
        return;
    };
    let store = Arc::new(PgStore::connect(&db.url, test_audit_key()).await.unwrap());
    let side = sqlx::PgConnection::connect(&db.url).await.unwrap();
    a_failed_commit_answers_every_sender(store.clone(), side, |conv| {
        vec![
            format!(
                "CREATE TABLE doom_parent (id INTEGER PRIMARY KEY); \
                 CREATE TABLE doom (parent INTEGER REFERENCES doom_parent (id) \
                     DEFERRABLE INITIALLY DEFERRED); \
                 CREATE FUNCTION doom_row() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN INSERT INTO doom (parent) VALUES (1); RETURN NEW; END $$; \
                 CREATE TRIGGER doom_on_send AFTER INSERT ON messages FOR EACH ROW \
                     WHEN (NEW.content = '{DOOMED}') EXECUTE FUNCTION doom_row();"
            ),
            // The conversation's row, held: the first send waits for it inside its batch.
            "BEGIN".to_owned(),
            format!(
                "SELECT last_seq FROM conversations WHERE id = '{}' FOR UPDATE",
                conv.0
            ),
        ]
    })
    .await;

    store.close().await;
    db.drop_database().await;
}
