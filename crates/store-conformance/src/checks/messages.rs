//! Messages: sequence numbers, idempotency, paging, edits and tombstones.

use super::*;

/// An org with alice (owner) and bob, and a conversation both are in.
pub(super) async fn room(store: &dyn Store) -> (User, User, Conversation) {
    let alice = make_user(store, "alice").await;
    let bob = make_user(store, "bob").await;
    let org = make_org(store, "acme", alice.id).await;
    join(store, org.id, bob.id).await;
    let conv = make_group(store, org.id, alice.id, &[bob.id], Visibility::ORG).await;
    (alice, bob, conv)
}

pub(super) fn keyed(conv: ConversationId, author: UserId, key: &str, print: &str) -> NewMessage {
    NewMessage {
        idempotency: Some((IdempotencyKey::parse(key).unwrap(), print.to_owned())),
        ..new_message(conv, author, print)
    }
}

async fn insert_message_sequences_concurrently(store: Arc<dyn Store>) {
    let (alice, bob, conv) = room(&*store).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let author = if i % 2 == 0 { alice.id } else { bob.id };
        tasks.push(tokio::spawn(async move {
            let msg = new_message(conv.id, author, &format!("message {i}"));
            send(&*store, &msg).await
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap().seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=20).collect::<Vec<i64>>());
    assert_eq!(store.conversation(conv.id).await.unwrap().last_seq, 20);

    let other = make_group(&*store, conv.org_id, alice.id, &[], Visibility::ORG).await;
    let first = post_message(&*store, other.id, alice.id, "own count").await;
    assert_eq!(first.seq, 1, "each conversation counts on its own");

    let mut reply = new_message(conv.id, bob.id, "re");
    reply.reply_to = Some(first.id);
    reply.format = MessageFormat::Html;
    let reply = send(&*store, &reply).await;
    assert_eq!(reply.seq, 21);
    assert_eq!(reply.reply_to, Some(first.id));
    assert_eq!(reply.format, MessageFormat::Html);
    assert_eq!(reply.author, bob.summary());
    assert_eq!(reply.content.as_deref(), Some("re"));
    assert_eq!(reply.created_at, at(100));
    assert!(reply.edited_at.is_none() && reply.deleted_at.is_none());
    assert!(reply.attachments.is_empty());
    assert_eq!(store.message(reply.id).await.unwrap(), reply);

    assert_not_found(
        store
            .insert_message(&new_message(ConversationId::new(), alice.id, "lost"), &[])
            .await,
    );
    assert_not_found(store.message(MessageId::new()).await);
}
check!(insert_message_sequences_concurrently);

async fn idempotent_inserts(store: Arc<dyn Store>) {
    let (alice, bob, conv) = room(&*store).await;
    let original = send(&*store, &keyed(conv.id, alice.id, "k-1", "first")).await;
    match store
        .insert_message(&keyed(conv.id, alice.id, "k-1", "second"), &[])
        .await
        .unwrap()
    {
        Inserted::Replayed(m, print) => {
            assert_eq!(m, original);
            assert_eq!(print, "first", "the fingerprint of the first request");
        }
        other => panic!("the key was reused, yet it answered {other:?}"),
    }
    assert_eq!(
        store.conversation(conv.id).await.unwrap().last_seq,
        1,
        "a replay takes no seq"
    );

    let bobs = send(&*store, &keyed(conv.id, bob.id, "k-1", "bob's")).await;
    assert_eq!(bobs.seq, 2);
    let other = make_group(&*store, conv.org_id, alice.id, &[], Visibility::ORG).await;
    send(&*store, &keyed(other.id, alice.id, "k-1", "elsewhere")).await;

    // Keys older than the window are forgotten.
    let mut later = keyed(conv.id, alice.id, "k-1", "much later");
    later.created_at = at(100_000);
    later.idempotency_since = at(101);
    let fresh = send(&*store, &later).await;
    assert_eq!(fresh.seq, 3);
    let mut again = keyed(conv.id, alice.id, "k-1", "again");
    again.created_at = at(100_001);
    again.idempotency_since = at(101);
    match store.insert_message(&again, &[]).await.unwrap() {
        Inserted::Replayed(m, print) => {
            assert_eq!(m.id, fresh.id);
            assert_eq!(print, "much later");
        }
        other => panic!("the renewed key should replay, not answer {other:?}"),
    }
    store
        .message(original.id)
        .await
        .expect("forgetting a key keeps its message");
}
check!(idempotent_inserts);

/// R82: the retention job's prune forgets the keys stored before the window's start, kept ones
/// are untouched, and their messages stay.
async fn stale_idempotency_keys_are_pruned(store: Arc<dyn Store>) {
    let (alice, _, conv) = room(&*store).await;
    let hour = 3_600;
    let mut old = keyed(conv.id, alice.id, "k-old", "old");
    old.created_at = at(0);
    let old = send(&*store, &old).await;
    let mut fresh = keyed(conv.id, alice.id, "k-fresh", "fresh");
    fresh.created_at = at(25 * hour);
    let fresh = send(&*store, &fresh).await;
    // 25 h later, a window of 24 h: the first key is past it.
    let pruned = store.prune_idempotency_keys(at(hour)).await.unwrap();
    assert_eq!(pruned, 1, "only the key past the window");
    // The old key is gone (a send that would still replay it creates a message); the fresh
    // one still replays; both messages stay.
    let mut reuse = keyed(conv.id, alice.id, "k-old", "reused");
    reuse.created_at = at(25 * hour);
    reuse.idempotency_since = at(0);
    match store.insert_message(&reuse, &[]).await.unwrap() {
        Inserted::Created(m) => assert_ne!(m.id, old.id),
        other => panic!("the pruned key should be forgotten, not answer {other:?}"),
    }
    let mut again = keyed(conv.id, alice.id, "k-fresh", "again");
    again.idempotency_since = at(hour);
    match store.insert_message(&again, &[]).await.unwrap() {
        Inserted::Replayed(m, _) => assert_eq!(m.id, fresh.id),
        other => panic!("the kept key should replay, not answer {other:?}"),
    }
    store.message(old.id).await.expect("its message stays");
    assert_eq!(store.prune_idempotency_keys(at(hour)).await.unwrap(), 0);
}
check!(stale_idempotency_keys_are_pruned);

async fn idempotent_inserts_race(store: Arc<dyn Store>) {
    let (alice, _, conv) = room(&*store).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let msg = keyed(conv.id, alice.id, "race", "same");
        tasks.push(tokio::spawn(async move {
            store.insert_message(&msg, &[]).await.unwrap()
        }));
    }
    let mut created_ids = Vec::new();
    let mut replayed_ids = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Inserted::Created(m) => created_ids.push(m.id),
            Inserted::Replayed(m, _) => replayed_ids.push(m.id),
            Inserted::AttachmentsRefused => panic!("no attachments were named"),
        }
    }
    assert_eq!(created_ids.len(), 1, "exactly one insert creates");
    assert!(replayed_ids.iter().all(|id| *id == created_ids[0]));
    assert_eq!(store.conversation(conv.id).await.unwrap().last_seq, 1);
}
check!(idempotent_inserts_race);

async fn messages_page_by_seq(store: Arc<dyn Store>) {
    let (alice, _, conv) = room(&*store).await;
    for i in 1..=7 {
        post_message(&*store, conv.id, alice.id, &format!("m{i}")).await;
    }
    let seqs = |ms: Vec<Message>| ms.into_iter().map(|m| m.seq).collect::<Vec<_>>();
    let latest = store
        .messages(conv.id, page(Cursor::Latest, 3))
        .await
        .unwrap();
    assert_eq!(latest[0].content.as_deref(), Some("m7"));
    assert_eq!(seqs(latest), vec![7, 6, 5]);
    let before = store
        .messages(conv.id, page(Cursor::Before(5), 3))
        .await
        .unwrap();
    assert_eq!(seqs(before), vec![4, 3, 2]);
    let after = store
        .messages(conv.id, page(Cursor::After(2), 3))
        .await
        .unwrap();
    assert_eq!(seqs(after), vec![3, 4, 5]);
    let tail = store
        .messages(conv.id, page(Cursor::After(6), 3))
        .await
        .unwrap();
    assert_eq!(seqs(tail), vec![7]);
    let none = store
        .messages(ConversationId::new(), page(Cursor::Latest, 3))
        .await
        .unwrap();
    assert!(none.is_empty());
}
check!(messages_page_by_seq);

async fn edit_keeps_history(store: Arc<dyn Store>) {
    let (alice, _, conv) = room(&*store).await;
    let msg = post_message(&*store, conv.id, alice.id, "v1").await;
    assert!(store
        .message_history(msg.id, latest(10))
        .await
        .unwrap()
        .is_empty());

    let v2 = store
        .edit_message(
            &MessageEdit {
                id: msg.id,
                content: "<b>v2</b>",
                format: MessageFormat::Html,
                at: at(200),
            },
            &[],
        )
        .await
        .unwrap();
    assert_eq!(v2.content.as_deref(), Some("<b>v2</b>"));
    assert_eq!(v2.format, MessageFormat::Html);
    assert_eq!(v2.edited_at, Some(at(200)));
    assert_eq!(v2.seq, msg.seq);
    assert_eq!(v2.created_at, msg.created_at);
    let v3 = store
        .edit_message(&text_edit(msg.id, "v3", 300), &[])
        .await
        .unwrap();
    assert_eq!(store.message(msg.id).await.unwrap(), v3);

    let mut history = store.message_history(msg.id, latest(10)).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].content, "<b>v2</b>", "newest first");
    history.reverse();
    assert_eq!(history[0].message_id, msg.id);
    assert_eq!(history[0].content, "v1");
    assert_eq!(history[0].format, MessageFormat::Text);
    assert_eq!(history[0].written_at, msg.created_at);
    assert_eq!(history[0].replaced_at, at(200));
    assert_eq!(history[1].content, "<b>v2</b>");
    assert_eq!(history[1].format, MessageFormat::Html);
    assert_eq!(history[1].written_at, at(200));
    assert_eq!(history[1].replaced_at, at(300));
    assert_ne!(history[0].id, history[1].id);

    assert_not_found(
        store
            .edit_message(&text_edit(MessageId::new(), "x", 1), &[])
            .await,
    );
    assert_not_found(store.message_history(MessageId::new(), latest(10)).await);
}
check!(edit_keeps_history);

/// The first page of a message's history, `n` versions at most.
fn latest(n: i64) -> Page<MessageVersionId> {
    page(Cursor::Latest, n)
}

/// R81: a message keeps its newest `KEPT_VERSIONS` versions, whatever the number of edits
/// (each edit deletes the oldest beyond them in its transaction), and its history is paged by
/// version id both ways.
async fn history_is_capped_and_paged(store: Arc<dyn Store>) {
    let (alice, _, conv) = room(&*store).await;
    let msg = post_message(&*store, conv.id, alice.id, "v0").await;
    let edits = KEPT_VERSIONS + 5;
    for i in 1..=edits {
        let text = format!("v{i}");
        store
            .edit_message(&text_edit(msg.id, &text, i), &[])
            .await
            .unwrap();
    }
    // Newest first, page by page, to the end.
    let mut contents = Vec::new();
    let mut cursor = Cursor::Latest;
    loop {
        let versions = store
            .message_history(msg.id, page(cursor, 30))
            .await
            .unwrap();
        assert!(versions.len() <= 30);
        let Some(last) = versions.last() else { break };
        cursor = Cursor::Before(last.id);
        contents.extend(versions.iter().map(|v| v.content.clone()));
    }
    let kept: Vec<String> = (edits - KEPT_VERSIONS..edits)
        .rev()
        .map(|i| format!("v{i}"))
        .collect();
    assert_eq!(contents, kept, "the newest {KEPT_VERSIONS}, newest first");
    // `After` reads towards newer versions, oldest first.
    let oldest = store.message_history(msg.id, latest(100)).await.unwrap();
    let from = oldest.last().unwrap();
    assert_eq!(from.content, format!("v{}", edits - KEPT_VERSIONS));
    let newer = store
        .message_history(msg.id, page(Cursor::After(from.id), 2))
        .await
        .unwrap();
    let newer: Vec<&str> = newer.iter().map(|v| v.content.as_str()).collect();
    let want = [edits - KEPT_VERSIONS + 1, edits - KEPT_VERSIONS + 2].map(|i| format!("v{i}"));
    assert_eq!(newer, want);
}
check!(history_is_capped_and_paged);

async fn delete_tombstones(store: Arc<dyn Store>) {
    let (alice, _, conv) = room(&*store).await;
    let mut ids = Vec::new();
    for i in 1..=3 {
        ids.push(
            post_message(&*store, conv.id, alice.id, &format!("m{i}"))
                .await
                .id,
        );
    }
    store
        .edit_message(&text_edit(ids[1], "m2 edited", 150), &[])
        .await
        .unwrap();
    let (gone, freed) = store.delete_message(ids[1], at(200), &[]).await.unwrap();
    assert!(freed.0.is_empty(), "a message without files frees no blob");
    assert_eq!(gone.content, None);
    assert_eq!(gone.deleted_at, Some(at(200)));
    assert_eq!(gone.seq, 2);
    assert_eq!(gone.author, alice.summary());
    assert!(
        store
            .message_history(ids[1], latest(10))
            .await
            .unwrap()
            .is_empty(),
        "earlier versions go with the content"
    );

    let listed = store
        .messages(conv.id, page(Cursor::Latest, 10))
        .await
        .unwrap();
    assert_eq!(listed.len(), 3, "the tombstone keeps its place");
    assert_eq!(listed[1], gone);

    let (twice, _) = store.delete_message(ids[1], at(300), &[]).await.unwrap();
    assert_eq!(
        twice.deleted_at,
        Some(at(200)),
        "deleting again keeps the first time"
    );
    assert_not_found(
        store
            .edit_message(&text_edit(ids[1], "back", 400), &[])
            .await,
    );
    assert_not_found(store.delete_message(MessageId::new(), at(1), &[]).await);
    assert_eq!(
        store.conversation(conv.id).await.unwrap().last_seq,
        3,
        "deleting frees no seq"
    );
}
check!(delete_tombstones);

/// AZ-2, AZ-3: a message (or an edit) is stored only while its author writes in its
/// conversation — a participant, a member of its org who is no Viewer, the conversation not
/// archived — read in the write's own transaction, so a removal, demotion or archival made
/// while the send waited (for its guards, say) is never outrun; the others of a batch are
/// stored all the same, with `seq` numbers that leave no gap.
async fn only_those_who_still_write_there_are_stored(store: Arc<dyn Store>) {
    let (alice, org) = owned_org(&*store, "alice", "Acme").await;
    let [bob, vic, eve] = make_users(&*store, ["bob", "vic", "eve"]).await;
    for u in [bob.id, vic.id, eve.id] {
        join(&*store, org.id, u).await;
    }
    let others = [bob.id, vic.id];
    let conv = make_group(&*store, org.id, alice.id, &others, Visibility::ORG).await;
    let his = post_message(&*store, conv.id, bob.id, "before").await;
    let refused = |author: UserId| {
        let store = Arc::clone(&store);
        async move {
            let msg = new_message(conv.id, author, "after");
            assert_not_found(store.insert_message(&msg, &[]).await);
        }
    };
    // Not a participant (a member of the org all the same).
    refused(eve.id).await;
    // A Viewer of the org now.
    store
        .set_member_role(membership(org.id, vic.id, OrgRole::Viewer), None, &[])
        .await
        .unwrap();
    refused(vic.id).await;
    // Taken out of the conversation: no more messages, nor edits of the old ones.
    store
        .remove_participant(conv.id, bob.id, &[])
        .await
        .unwrap();
    refused(bob.id).await;
    assert_not_found(
        store
            .edit_message(&text_edit(his.id, "rewritten", 150), &[])
            .await,
    );
    assert_eq!(
        store.message(his.id).await.unwrap().content.as_deref(),
        Some("before")
    );
    // Many at once, one of them refused: the others are stored, in order, without a gap.
    let batch: Vec<_> = (0..20)
        .map(|i| {
            let store = Arc::clone(&store);
            let author = if i == 7 { bob.id } else { alice.id };
            tokio::spawn(async move {
                let msg = new_message(conv.id, author, &format!("m{i}"));
                (author, store.insert_message(&msg, &[]).await)
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for sent in batch {
        match sent.await.unwrap() {
            (author, Ok(inserted)) if author == alice.id => seqs.push(created(inserted).seq),
            (_, outcome) => assert_not_found(outcome),
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (2..=20).collect::<Vec<i64>>());
    // Archived: nobody writes.
    let archive = ConversationPatch {
        archived: Some(true),
        ..ConversationPatch::default()
    };
    store
        .update_conversation(
            &ConversationUpdate {
                id: conv.id,
                patch: archive,
                at: at(200),
            },
            &[],
        )
        .await
        .unwrap();
    refused(alice.id).await;
}
check!(only_those_who_still_write_there_are_stored);
