//! A scenario for a backend's own tests, which can do what the trait cannot: hold a batch of
//! sends back and make its `COMMIT` fail.

use conclave_core::ids::{ConversationId, UserId};
use conclave_core::search::SearchText;
use conclave_core::store::{Cursor, Inserted, Page, SearchFrom, SearchRequest, Store, StoreResult};
use conclave_core::types::Limit;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The content the backend's test makes fail at `COMMIT` (a trigger breaking a deferred
/// foreign key, say).
pub const DOOMED: &str = "doomed";

fn sending(
    store: &Arc<dyn Store>,
    msg: conclave_core::model::NewMessage,
) -> tokio::task::JoinHandle<StoreResult<Inserted>> {
    let store = store.clone();
    tokio::spawn(async move { store.insert_message(&msg, &[]).await })
}

fn seq(inserted: Inserted) -> i64 {
    match inserted {
        Inserted::Created(m) => m.seq,
        other => panic!("expected a new message, got {other:?}"),
    }
}

/// Runs the scenario below on a fresh author and conversation of `store`, its writer held
/// back by `side`, another connection to the same database: the statements `hold(conv)`
/// answers run there first, one by one, and must leave a [`DOOMED`] message failing at
/// `COMMIT` and an open transaction holding a lock the first send waits for; committing that
/// transaction lets the writer go. `side` is closed before this returns.
pub async fn a_failed_commit_answers_every_sender<C>(
    store: Arc<dyn Store>,
    mut side: C,
    hold: impl FnOnce(ConversationId) -> Vec<String>,
) where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
{
    let (author, conv) = crate::author_and_conversation(&*store).await;
    for statement in hold(conv) {
        sqlx::raw_sql(&statement).execute(&mut side).await.unwrap();
    }
    let release = async {
        sqlx::raw_sql("COMMIT").execute(&mut side).await.unwrap();
    };
    held_batch_fails_as_one(store, author, conv, release).await;
    side.close().await.unwrap();
}

/// With the writer held back (the caller holds a lock the first send waits for), sends one
/// message, then ten that queue into one batch, one of them [`DOOMED`]; `release` lets the
/// writer go. Asserts the first is stored, every sender of the failed batch gets an error,
/// nothing of it is stored — its search index entries neither (MSG-6: they are written in the
/// batch's transaction) —, and the next send takes the next `seq`.
async fn held_batch_fails_as_one(
    store: Arc<dyn Store>,
    author: UserId,
    conv: ConversationId,
    release: impl Future<Output = ()>,
) {
    let message = |content: &str| crate::message(conv, author, content);
    let first = sending(&store, message("first"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let batch: Vec<_> = (0..10)
        .map(|i| {
            let content = if i == 4 {
                DOOMED.to_owned()
            } else {
                format!("batched {i}")
            };
            sending(&store, message(&content))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    release.await;

    assert_eq!(seq(first.await.unwrap().unwrap()), 1);
    for task in batch {
        let answer = task.await.unwrap();
        assert!(
            answer.is_err(),
            "the batch did not commit, yet answered {answer:?}"
        );
    }
    let after = store.insert_message(&message("after"), &[]).await;
    assert_eq!(seq(after.unwrap()), 2, "the failed batch took no seq");
    let page = Page {
        cursor: Cursor::After(0),
        limit: Limit::parse(Some(100)).unwrap(),
    };
    let stored = store.messages(conv, page).await.unwrap();
    let contents: Vec<_> = stored.iter().filter_map(|m| m.content.clone()).collect();
    assert_eq!(contents, ["first", "after"]);
    // The index rolled back with the batch: its words find nothing, the stored ones do.
    let org = store.conversation(conv).await.unwrap().org_id;
    for (q, expected) in [("batched", 0), ("first", 1), ("after", 1)] {
        let text = SearchText::parse(q).unwrap();
        let req = SearchRequest {
            user: author,
            org,
            within: None,
            text: &text,
            from: SearchFrom::Newest(None),
            limit: Limit::parse(Some(10)).unwrap(),
        };
        let hits = store.search_messages(&req).await.unwrap();
        assert_eq!(hits.len(), expected, "{q}");
    }
}
