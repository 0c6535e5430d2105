//! Files as attachments (DATA-1, MSG-2): a message claims its files in its insert transaction
//! (only the author's own unattached uploads to that conversation, all or none, one claim per
//! file under concurrency), every message read carries its files, and each way messages go —
//! deletion, retention, erasure, a conversation or org deleted — removes their files' rows,
//! answers their storage keys and gives their uploaders the bytes back.

use super::*;
use conclave_core::audit::{AuditActor, AuditEntry};

/// A roomy quota for the reservations these checks make.
const QUOTA: u64 = 1 << 30;

/// Records an upload of `size` bytes by `uploader` into `conv` at `secs`, its bytes reserved
/// as an upload reserves them.
pub(super) async fn upload(
    store: &dyn Store,
    conv: ConversationId,
    uploader: UserId,
    size: u64,
    secs: i64,
) -> StoredFile {
    let mut lease = UploadLease::new(uploader);
    granted(store, &mut lease, size, secs).await;
    let file = StoredFile {
        created_at: at(secs),
        ..unrecorded(conv, uploader, size)
    };
    store.insert_file(&file, lease.id, &[]).await.unwrap();
    file
}

/// A message by `author` in `conv` claiming `files`.
fn with_files(conv: ConversationId, author: UserId, files: &[&StoredFile]) -> NewMessage {
    NewMessage {
        attachments: files.iter().map(|f| f.info.id).collect(),
        ..new_message(conv, author, "see attached")
    }
}

/// Stores a message by `author` in `conv` with `files` attached, which must be accepted.
async fn send_with(
    store: &dyn Store,
    conv: ConversationId,
    author: UserId,
    files: &[&StoredFile],
) -> Message {
    send(store, &with_files(conv, author, files)).await
}

/// Their details, as a message lists them (by id).
fn infos(files: &[&StoredFile]) -> Vec<FileInfo> {
    let mut infos: Vec<FileInfo> = files.iter().map(|f| f.info.clone()).collect();
    infos.sort_by_key(|f| f.id);
    infos
}

/// Their storage keys, sorted.
fn keys(files: &[&StoredFile]) -> Vec<String> {
    let mut keys: Vec<String> = files.iter().map(|f| f.storage_key.clone()).collect();
    keys.sort();
    keys
}

fn sorted(freed: FreedBlobs) -> Vec<String> {
    let mut keys = freed.0;
    keys.sort();
    keys
}

/// Asserts each file's row is gone and its key no longer present.
async fn assert_removed(store: &dyn Store, files: &[&StoredFile]) {
    for f in files {
        assert_not_found(store.file(f.info.id).await);
    }
    let present = store.file_keys_present(&keys(files)).await.unwrap();
    assert!(present.is_empty(), "{present:?}");
}

/// An org with alice (owner) and bob, a conversation both are in and one only alice is in.
async fn rooms(store: &dyn Store) -> (User, User, Org, Conversation, Conversation) {
    let [alice, bob] = make_users(store, ["alice", "bob"]).await;
    let org = make_org(store, "acme", alice.id).await;
    join(store, org.id, bob.id).await;
    let conv = make_group(store, org.id, alice.id, &[bob.id], Visibility::ORG).await;
    let other = make_group(store, org.id, alice.id, &[], Visibility::ORG).await;
    (alice, bob, org, conv, other)
}

async fn attachments_are_claimed_once_with_the_message(store: Arc<dyn Store>) {
    let (alice, bob, _, conv, other) = rooms(&*store).await;
    let a1 = upload(&*store, conv.id, alice.id, 10, 1).await;
    let a2 = upload(&*store, conv.id, alice.id, 20, 2).await;
    let sent = send_with(&*store, conv.id, alice.id, &[&a2, &a1]).await;
    assert_eq!(sent.attachments, infos(&[&a1, &a2]), "ordered by id");
    assert_eq!(store.message(sent.id).await.unwrap(), sent);
    assert_eq!(
        store.file(a1.info.id).await.unwrap().message_id,
        Some(sent.id)
    );

    // Refused, with nothing stored or claimed: bob's file, another conversation's, one
    // attached already, one that does not exist, and a mix of a good one with a bad one.
    let b1 = upload(&*store, conv.id, bob.id, 5, 3).await;
    let elsewhere = upload(&*store, other.id, alice.id, 5, 4).await;
    let fresh = upload(&*store, conv.id, alice.id, 5, 5).await;
    let unknown = StoredFile {
        info: FileInfo {
            id: FileId::new(),
            ..fresh.info.clone()
        },
        ..fresh.clone()
    };
    for files in [
        vec![&b1],
        vec![&elsewhere],
        vec![&a1],
        vec![&unknown],
        vec![&fresh, &b1],
    ] {
        let refused = store
            .insert_message(&with_files(conv.id, alice.id, &files), &[])
            .await
            .unwrap();
        assert!(
            matches!(refused, Inserted::AttachmentsRefused),
            "{refused:?}"
        );
    }
    assert_eq!(store.conversation(conv.id).await.unwrap().last_seq, 1);
    assert_eq!(store.file(fresh.info.id).await.unwrap().message_id, None);
    // Bob may attach his own.
    let his = send_with(&*store, conv.id, bob.id, &[&b1]).await;
    assert_eq!(his.attachments, infos(&[&b1]));

    // A replay answers the original with its files, though they are attached now.
    let keyed = NewMessage {
        idempotency: Some((IdempotencyKey::parse("k-1").unwrap(), "p".to_owned())),
        ..with_files(conv.id, alice.id, &[&fresh])
    };
    let first = send(&*store, &keyed).await;
    let again = NewMessage {
        id: MessageId::new(),
        ..keyed.clone()
    };
    match store.insert_message(&again, &[]).await.unwrap() {
        Inserted::Replayed(m, _) => {
            assert_eq!(m, first);
            assert_eq!(m.attachments, infos(&[&fresh]));
        }
        other => panic!("expected a replay, got {other:?}"),
    }

    // Twenty messages claim one file at once: exactly one gets it, and only it takes a seq.
    let contested = upload(&*store, conv.id, alice.id, 5, 6).await;
    let before = store.conversation(conv.id).await.unwrap().last_seq;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        let msg = with_files(conv.id, alice.id, &[&contested]);
        tasks.push(tokio::spawn(async move {
            store.insert_message(&msg, &[]).await.unwrap()
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Inserted::Created(m) => winners.push(m),
            Inserted::AttachmentsRefused => {}
            Inserted::Replayed(m, _) => panic!("no key, yet a replay of {:?}", m.id),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins");
    assert_eq!(winners[0].attachments, infos(&[&contested]));
    let file = store.file(contested.info.id).await.unwrap();
    assert_eq!(file.message_id, Some(winners[0].id));
    let after = store.conversation(conv.id).await.unwrap().last_seq;
    assert_eq!(after, before + 1);
}
check!(attachments_are_claimed_once_with_the_message);

async fn every_message_read_carries_its_files(store: Arc<dyn Store>) {
    let (alice, bob, _, conv, _) = rooms(&*store).await;
    let a1 = upload(&*store, conv.id, alice.id, 10, 1).await;
    let a2 = upload(&*store, conv.id, alice.id, 10, 2).await;
    let b1 = upload(&*store, conv.id, bob.id, 10, 3).await;
    let m1 = send_with(&*store, conv.id, alice.id, &[&a1, &a2]).await;
    let plain = post_message(&*store, conv.id, alice.id, "no files").await;
    let m3 = send_with(&*store, conv.id, bob.id, &[&b1]).await;
    let listed = store
        .messages(conv.id, page(Cursor::Latest, 10))
        .await
        .unwrap();
    let files: Vec<(MessageId, Vec<FileInfo>)> =
        listed.into_iter().map(|m| (m.id, m.attachments)).collect();
    assert_eq!(
        files,
        vec![
            (m3.id, infos(&[&b1])),
            (plain.id, Vec::new()),
            (m1.id, infos(&[&a1, &a2])),
        ]
    );
    let edited = store
        .edit_message(&text_edit(m1.id, "edited", 200), &[])
        .await
        .unwrap();
    assert_eq!(edited.attachments, infos(&[&a1, &a2]), "an edit keeps them");
    let own = store.messages_by_author(alice.id, None, 10).await.unwrap();
    assert_eq!(own[0].attachments, infos(&[&a1, &a2]));
    assert!(own[1].attachments.is_empty());
}
check!(every_message_read_carries_its_files);

async fn a_deleted_message_takes_its_files(store: Arc<dyn Store>) {
    let (alice, _, _, conv, _) = rooms(&*store).await;
    let a1 = upload(&*store, conv.id, alice.id, 100, 1).await;
    let a2 = upload(&*store, conv.id, alice.id, 50, 2).await;
    let kept = upload(&*store, conv.id, alice.id, 7, 3).await;
    let msg = send_with(&*store, conv.id, alice.id, &[&a1, &a2]).await;
    assert_eq!(store.file_bytes_used(alice.id).await.unwrap(), 157);
    let (gone, freed) = store.delete_message(msg.id, at(200), &[]).await.unwrap();
    assert!(gone.attachments.is_empty() && gone.content.is_none());
    assert_eq!(sorted(freed), keys(&[&a1, &a2]));
    assert_removed(&*store, &[&a1, &a2]).await;
    assert_eq!(store.file_bytes_used(alice.id).await.unwrap(), 7);
    assert!(store.file(kept.info.id).await.is_ok());
    let listed = store
        .messages(conv.id, page(Cursor::Latest, 10))
        .await
        .unwrap();
    assert!(listed[0].attachments.is_empty());
    let (_, again) = store.delete_message(msg.id, at(300), &[]).await.unwrap();
    assert!(again.0.is_empty(), "nothing is freed twice");
}
check!(a_deleted_message_takes_its_files);

async fn retention_takes_old_messages_files_and_stale_uploads(store: Arc<dyn Store>) {
    let (alice, bob, org, conv, _) = rooms(&*store).await;
    let other = make_org(&*store, "other", alice.id).await;
    let elsewhere = make_group(&*store, other.id, alice.id, &[], Visibility::ORG).await;
    let old = upload(&*store, conv.id, alice.id, 10, 1).await;
    let stale = upload(&*store, conv.id, bob.id, 20, 2).await;
    let young = upload(&*store, conv.id, alice.id, 30, 50).await;
    let young_attached = upload(&*store, conv.id, alice.id, 40, 50).await;
    let other_org = upload(&*store, elsewhere.id, alice.id, 50, 1).await;
    let mut msg = with_files(conv.id, alice.id, &[&old]);
    msg.created_at = at(10);
    store.insert_message(&msg, &[]).await.unwrap();
    let mut recent = with_files(conv.id, alice.id, &[&young_attached]);
    recent.created_at = at(60);
    store.insert_message(&recent, &[]).await.unwrap();

    let e = || AuditEntry::new("messages.pruned", AuditActor::system(), at(100)).org(org.id);
    let (pruned, freed) = store.prune_messages(org.id, at(30), &e()).await.unwrap();
    assert_eq!(pruned, 1);
    assert_eq!(sorted(freed), keys(&[&old, &stale]));
    assert_removed(&*store, &[&old, &stale]).await;
    for kept in [&young, &young_attached, &other_org] {
        assert!(store.file(kept.info.id).await.is_ok());
    }
    assert_eq!(store.file_bytes_used(alice.id).await.unwrap(), 120);
    assert_eq!(store.file_bytes_used(bob.id).await.unwrap(), 0);
    // Stale uploads alone are a pruning too.
    let later = upload(&*store, conv.id, bob.id, 5, 70).await;
    let (pruned, freed) = store.prune_messages(org.id, at(80), &e()).await.unwrap();
    assert_eq!(
        (pruned, sorted(freed)),
        (1, keys(&[&young_attached, &later, &young]))
    );
}
check!(retention_takes_old_messages_files_and_stale_uploads);

async fn erasure_removes_or_hands_over_files_by_policy(store: Arc<dyn Store>) {
    let [owner, alice, bob] = make_users(&*store, ["owner", "alice", "bob"]).await;
    let tomb = make_org(&*store, "tomb", owner.id).await;
    let anon = make_org(&*store, "anon", owner.id).await;
    anonymising(&*store, anon.id).await;
    let mut convs = Vec::new();
    for org in [&tomb, &anon] {
        join(&*store, org.id, alice.id).await;
        join(&*store, org.id, bob.id).await;
        let members = [alice.id, bob.id];
        convs.push(make_group(&*store, org.id, owner.id, &members, Visibility::ORG).await);
    }
    let (in_tomb, in_anon) = (convs[0].id, convs[1].id);
    let tombstoned = upload(&*store, in_tomb, alice.id, 10, 1).await;
    let anonymised = upload(&*store, in_anon, alice.id, 20, 1).await;
    let unsent = upload(&*store, in_anon, alice.id, 40, 1).await;
    let bobs = upload(&*store, in_tomb, bob.id, 80, 1).await;
    for (conv, file) in [(in_tomb, &tombstoned), (in_anon, &anonymised)] {
        send_with(&*store, conv, alice.id, &[file]).await;
    }
    send_with(&*store, in_tomb, bob.id, &[&bobs]).await;
    let erased = erase(&*store, alice.id, "deleted-alice", 500).await;
    assert_eq!(erased.tombstoned, 1);
    assert_eq!(sorted(erased.freed), keys(&[&tombstoned, &unsent]));
    assert_removed(&*store, &[&tombstoned, &unsent]).await;
    // The anonymised message keeps its file, now the placeholder's (bytes included).
    let kept = store.file(anonymised.info.id).await.unwrap();
    let msg = store.message(kept.message_id.unwrap()).await.unwrap();
    assert_ne!(msg.author.id, alice.id);
    assert_eq!(
        kept.uploader_id, msg.author.id,
        "uploader follows the author"
    );
    assert_eq!(msg.attachments, infos(&[&anonymised]));
    assert_eq!(store.file_bytes_used(alice.id).await.unwrap(), 0);
    assert_eq!(store.file_bytes_used(msg.author.id).await.unwrap(), 20);
    // Bob's file is untouched.
    let his = store.file(bobs.info.id).await.unwrap();
    assert_eq!(
        (his.uploader_id, his.storage_key),
        (bob.id, bobs.storage_key)
    );
    assert_eq!(store.file_bytes_used(bob.id).await.unwrap(), 80);
}
check!(erasure_removes_or_hands_over_files_by_policy);

async fn deleting_a_conversation_or_org_frees_its_files(store: Arc<dyn Store>) {
    let (alice, bob, org, conv, other) = rooms(&*store).await;
    let a1 = upload(&*store, conv.id, alice.id, 10, 1).await;
    let b1 = upload(&*store, conv.id, bob.id, 20, 1).await;
    let a2 = upload(&*store, other.id, alice.id, 40, 1).await;
    send_with(&*store, conv.id, alice.id, &[&a1]).await;
    let freed = store.delete_conversation(conv.id, &[]).await.unwrap();
    assert_eq!(sorted(freed), keys(&[&a1, &b1]));
    assert_removed(&*store, &[&a1, &b1]).await;
    assert_eq!(store.file_bytes_used(alice.id).await.unwrap(), 40);
    assert_eq!(store.file_bytes_used(bob.id).await.unwrap(), 0);
    let freed = store.delete_org(org.id, &[]).await.unwrap();
    assert_eq!(sorted(freed), keys(&[&a2]));
    assert_removed(&*store, &[&a2]).await;
    assert_eq!(store.file_bytes_used(alice.id).await.unwrap(), 0);
}
check!(deleting_a_conversation_or_org_frees_its_files);

/// A file of `size` bytes by `uploader` in `conv`, not recorded yet.
fn unrecorded(conv: ConversationId, uploader: UserId, size: u64) -> StoredFile {
    let id = FileId::new();
    StoredFile {
        info: FileInfo {
            id,
            size,
            mime: "text/plain".to_owned(),
            name: FileName::sanitize(&format!("{id}.txt")),
        },
        conversation_id: conv,
        uploader_id: uploader,
        storage_key: format!("files/{}", uuid::Uuid::now_v7()),
        created_at: at(1),
        message_id: None,
    }
}

/// Reserves `bytes` more for `lease` at `secs`, as an upload does, counting them in it.
async fn reserve(store: &dyn Store, lease: &mut UploadLease, bytes: u64, secs: i64) -> Reservation {
    let answer = store
        .reserve_file_bytes(
            lease,
            QuotaRequest {
                bytes,
                quota: QUOTA,
            },
            at(secs),
        )
        .await
        .unwrap();
    if answer == Reservation::Granted {
        lease.reserved += bytes;
    }
    answer
}

/// [`reserve`], which must be granted.
async fn granted(store: &dyn Store, lease: &mut UploadLease, bytes: u64, secs: i64) {
    let answer = reserve(store, lease, bytes, secs).await;
    assert_eq!(answer, Reservation::Granted, "{bytes} bytes at {secs}");
}

/// Recording `file` under `lease` is refused as expired, and records nothing.
async fn refused_as_expired(store: &dyn Store, file: &StoredFile, lease: &UploadLease) {
    let recorded = store.insert_file(file, lease.id, &[]).await;
    assert_conflict(recorded, Conflict::UploadExpired);
    assert_not_found(store.file(file.info.id).await);
}

async fn upload_leases_give_back_what_dead_uploads_held(store: Arc<dyn Store>) {
    let (alice, _, _, conv, _) = rooms(&*store).await;
    let used = || async { store.file_bytes_used(alice.id).await.unwrap() };

    // A live upload: two reservations, then its file recorded; the lease ends with it.
    let mut live = UploadLease::new(alice.id);
    granted(&*store, &mut live, 10, 10).await;
    granted(&*store, &mut live, 5, 20).await;
    let file = unrecorded(conv.id, alice.id, 15);
    store.insert_file(&file, live.id, &[]).await.unwrap();
    assert_eq!(used().await, 15);
    assert_eq!(store.release_upload(live.id).await.unwrap(), 0, "ended");

    // Over the quota: nothing reserved and no lease made.
    let mut greedy = UploadLease::new(alice.id);
    let over = reserve(&*store, &mut greedy, QUOTA, 30).await;
    assert_eq!(over, Reservation::OverQuota);
    assert_eq!(store.release_upload(greedy.id).await.unwrap(), 0);
    assert_eq!(used().await, 15);

    // A node dies mid-upload at 100; another upload stalls but renews its lease at 200.
    let mut dead = UploadLease::new(alice.id);
    granted(&*store, &mut dead, 40, 100).await;
    let mut slow = UploadLease::new(alice.id);
    granted(&*store, &mut slow, 7, 100).await;
    granted(&*store, &mut slow, 3, 200).await;
    assert_eq!(used().await, 65);
    assert_eq!(store.expire_upload_leases(at(150)).await.unwrap(), 1);
    assert_eq!(used().await, 25, "the dead upload's 40 bytes came back");
    assert_eq!(store.expire_upload_leases(at(150)).await.unwrap(), 0);

    // The expired upload can neither go on nor be recorded, and gives nothing back twice.
    assert_eq!(
        reserve(&*store, &mut dead, 1, 300).await,
        Reservation::LeaseLost
    );
    refused_as_expired(&*store, &unrecorded(conv.id, alice.id, 40), &dead).await;
    assert_eq!(store.release_upload(dead.id).await.unwrap(), 0);
    assert_eq!(used().await, 25);

    // A lease is the file's only for exactly the file's size.
    refused_as_expired(&*store, &unrecorded(conv.id, alice.id, 11), &slow).await;
    assert_eq!(used().await, 25);

    // Failing, the slow upload gives its 10 bytes back once, however many ask at once.
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.release_upload(slow.id).await.unwrap() })
        })
        .collect();
    let mut given = 0;
    for task in tasks {
        given += task.await.unwrap();
    }
    assert_eq!(given, 10);
    assert_eq!(used().await, 15);
}
check!(upload_leases_give_back_what_dead_uploads_held);

/// DATA-6: an erasure ends the uploads its user has under way: the lease goes with the
/// account, so a file finished afterwards is refused and never recorded as hers.
async fn erasure_ends_uploads_under_way(store: Arc<dyn Store>) {
    let (_, bob, _, conv, _) = rooms(&*store).await;
    let mut lease = UploadLease::new(bob.id);
    granted(&*store, &mut lease, 10, 10).await;
    erase(&*store, bob.id, "deleted-bob", 20).await;
    let file = unrecorded(conv.id, bob.id, 10);
    refused_as_expired(&*store, &file, &lease).await;
}
check!(erasure_ends_uploads_under_way);
async fn files_held_counts_bytes_and_files(store: Arc<dyn Store>) {
    let (alice, bob, _, conv, _) = rooms(&*store).await;
    let a1 = upload(&*store, conv.id, alice.id, 100, 1).await;
    upload(&*store, conv.id, alice.id, 50, 2).await;
    // An upload in progress holds bytes against the quota, and is no file yet.
    granted(&*store, &mut UploadLease::new(alice.id), 9, 3).await;
    let stranger = UserId::new();
    let held = store
        .files_held(&[alice.id, bob.id, stranger])
        .await
        .unwrap();
    let of = |used_bytes, files| conclave_core::files::FilesHeld { used_bytes, files };
    assert_eq!(held.get(&alice.id), Some(&of(159, 2)));
    assert_eq!(held.get(&bob.id), Some(&of(0, 0)), "one who never uploaded");
    assert!(!held.contains_key(&stranger), "an unknown id is left out");
    // A file that goes with its message leaves the count and gives its bytes back.
    let msg = send_with(&*store, conv.id, alice.id, &[&a1]).await;
    store.delete_message(msg.id, at(200), &[]).await.unwrap();
    let held = store.files_held(&[alice.id]).await.unwrap();
    assert_eq!(held.get(&alice.id), Some(&of(59, 1)));
    assert!(store.files_held(&[]).await.unwrap().is_empty());
}
check!(files_held_counts_bytes_and_files);
