//! Streaming answers (AGENT-3): every change of a streaming message is conditional on it still
//! streaming, so of a stop and the stream's own end exactly one wins; edits skip it and a
//! deletion stops it.

use super::*;

fn streaming(conv: ConversationId, author: UserId) -> NewMessage {
    NewMessage {
        status: MessageStatus::Streaming,
        ..new_message(conv, author, "")
    }
}

fn change(id: MessageId, content: Option<&str>, status: MessageStatus) -> StreamChange<'_> {
    let reason = match status {
        MessageStatus::Stopped => Some("stopped_by_user"),
        _ => None,
    };
    StreamChange {
        id,
        content,
        status,
        reason,
    }
}

async fn streaming_messages_change_only_while_streaming(store: Arc<dyn Store>) {
    let (alice, _, conv) = messages::room(&*store).await;
    let opened = send(&*store, &streaming(conv.id, alice.id)).await;
    assert_eq!(
        (opened.status, opened.content.as_deref()),
        (MessageStatus::Streaming, Some(""))
    );
    assert_eq!(store.message(opened.id).await.unwrap(), opened);
    // The text so far, then a stop that keeps it; after that nothing changes it.
    let so_far = change(opened.id, Some("Hello"), MessageStatus::Streaming);
    assert!(store.change_stream(&so_far, &[]).await.unwrap());
    let read = store.message(opened.id).await.unwrap();
    assert_eq!(
        (read.content.as_deref(), read.status, read.edited_at),
        (Some("Hello"), MessageStatus::Streaming, None)
    );
    let stop = change(opened.id, None, MessageStatus::Stopped);
    assert!(store.change_stream(&stop, &[]).await.unwrap());
    assert!(!store.change_stream(&stop, &[]).await.unwrap());
    let late = change(opened.id, Some("Hello, world"), MessageStatus::Complete);
    assert!(!store.change_stream(&late, &[]).await.unwrap());
    let stopped = store.message(opened.id).await.unwrap();
    assert_eq!(stopped.content.as_deref(), Some("Hello"));
    assert_eq!(stopped.status, MessageStatus::Stopped);
    assert_eq!(stopped.status_reason.as_deref(), Some("stopped_by_user"));
    // Of many ends at once, one wins.
    let raced = send(&*store, &streaming(conv.id, alice.id)).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let status = if i % 2 == 0 {
                MessageStatus::Stopped
            } else {
                MessageStatus::Complete
            };
            let end = change(raced.id, Some("final"), status);
            store.change_stream(&end, &[]).await.unwrap()
        }));
    }
    let mut won = 0;
    for task in tasks {
        won += usize::from(task.await.unwrap());
    }
    assert_eq!(won, 1);
    // A plain message, and a missing one, are never streaming.
    let plain = post_message(&*store, conv.id, alice.id, "plain").await;
    assert_eq!(
        (plain.status, plain.status_reason),
        (MessageStatus::Complete, None)
    );
    let end = change(plain.id, Some("x"), MessageStatus::Complete);
    assert!(!store.change_stream(&end, &[]).await.unwrap());
    let missing = change(MessageId::new(), Some("x"), MessageStatus::Complete);
    assert!(!store.change_stream(&missing, &[]).await.unwrap());
}
check!(streaming_messages_change_only_while_streaming);

async fn a_streaming_message_is_not_edited_and_deleting_it_stops_it(store: Arc<dyn Store>) {
    let (alice, _, conv) = messages::room(&*store).await;
    let opened = send(&*store, &streaming(conv.id, alice.id)).await;
    let edit = MessageEdit {
        id: opened.id,
        content: "edited",
        format: MessageFormat::Text,
        at: at(200),
    };
    assert_not_found(store.edit_message(&edit, &[]).await);
    let (deleted, _) = store.delete_message(opened.id, at(300), &[]).await.unwrap();
    assert_eq!(deleted.status, MessageStatus::Stopped);
    assert_eq!(deleted.status_reason.as_deref(), Some("deleted"));
    let so_far = change(opened.id, Some("late"), MessageStatus::Streaming);
    assert!(!store.change_stream(&so_far, &[]).await.unwrap());
    assert!(store.message(opened.id).await.unwrap().content.is_none());
    // A finished answer is edited like any message; deleting it keeps its status.
    let done = send(&*store, &streaming(conv.id, alice.id)).await;
    let end = change(done.id, Some("answer"), MessageStatus::Complete);
    assert!(store.change_stream(&end, &[]).await.unwrap());
    let edit = MessageEdit {
        id: done.id,
        ..edit
    };
    assert_eq!(
        store
            .edit_message(&edit, &[])
            .await
            .unwrap()
            .content
            .as_deref(),
        Some("edited")
    );
    let (deleted, _) = store.delete_message(done.id, at(400), &[]).await.unwrap();
    assert_eq!(
        (deleted.status, deleted.status_reason),
        (MessageStatus::Complete, None)
    );
}
check!(a_streaming_message_is_not_edited_and_deleting_it_stops_it);

async fn abandoned_streams_are_the_old_ones_still_streaming(store: Arc<dyn Store>) {
    let (alice, _, conv) = messages::room(&*store).await;
    let at_time = |secs, msg: NewMessage| NewMessage {
        created_at: at(secs),
        ..msg
    };
    let old = send(&*store, &at_time(10, streaming(conv.id, alice.id))).await;
    let older = send(&*store, &at_time(5, streaming(conv.id, alice.id))).await;
    let recent = send(&*store, &at_time(500, streaming(conv.id, alice.id))).await;
    let ended = send(&*store, &at_time(1, streaming(conv.id, alice.id))).await;
    let end = change(ended.id, Some("x"), MessageStatus::Complete);
    assert!(store.change_stream(&end, &[]).await.unwrap());
    post_message(&*store, conv.id, alice.id, "plain").await;
    let found = store.abandoned_streams(at(100), 10).await.unwrap();
    assert_eq!(found, vec![older.id, old.id], "oldest first");
    assert_eq!(
        store.abandoned_streams(at(100), 1).await.unwrap(),
        vec![older.id]
    );
    assert_eq!(
        store.abandoned_streams(at(1_000), 10).await.unwrap().len(),
        3
    );
    assert!(!found.contains(&recent.id));
}
check!(abandoned_streams_are_the_old_ones_still_streaming);
