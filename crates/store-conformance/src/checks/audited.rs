//! Audit rows written by the change they record, in its transaction: the message writes, read
//! markers, key retirement and failed sign-ins each take their rows, write exactly those rows
//! into the right chain when they change something, and none when they fail or change nothing.

use super::*;
use conclave_core::audit::{chain_of, AuditActor, AuditEntry, SERVER_CHAIN};
use conclave_core::keyring::{RetireOutcome, SecretKeyRecord};
use conclave_core::mfa::{ThrottleGate, ThrottleKey};

fn row(event: &str, secs: i64, org: Option<OrgId>) -> AuditEntry {
    let e = AuditEntry::new(event, AuditActor::system(), at(secs));
    match org {
        Some(org) => e.org(org),
        None => e,
    }
}

/// Every row of `chain`, asserting its sequence numbers run 1, 2, 3… without gaps.
async fn chain(store: &dyn Store, chain: &str) -> Vec<AuditEntry> {
    let rows = store.audit_rows(chain, 0, 1000).await.unwrap();
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.seq, i as i64 + 1, "{chain} has no gaps");
    }
    rows.into_iter().map(|r| r.entry).collect()
}

async fn message_writes_are_audited_with_their_change(store: Arc<dyn Store>) {
    let (alice, org) = owned_org(&*store, "alice", "acme").await;
    let conv = make_group(&*store, org.id, alice.id, &[], Visibility::ORG).await;
    let org_chain = chain_of(Some(org.id));
    let o = Some(org.id);

    // Failures write nothing: an unknown conversation, message, or a replayed key.
    let nowhere = new_message(ConversationId::new(), alice.id, "lost");
    assert!(store
        .insert_message(&nowhere, &[row("message.sent", 1, o)])
        .await
        .is_err());
    let sent = row("message.sent", 2, o);
    let first = NewMessage {
        idempotency: Some((IdempotencyKey::parse("k1").unwrap(), "p".to_owned())),
        ..new_message(conv.id, alice.id, "hello")
    };
    let msg = created(
        store
            .insert_message(&first, std::slice::from_ref(&sent))
            .await
            .unwrap(),
    );
    let again = NewMessage {
        id: MessageId::new(),
        ..first.clone()
    };
    assert!(matches!(
        store
            .insert_message(&again, &[row("message.sent", 3, o)])
            .await
            .unwrap(),
        Inserted::Replayed(..)
    ));
    assert_not_found(
        store
            .edit_message(
                &text_edit(MessageId::new(), "x", 4),
                &[row("message.edited", 4, o)],
            )
            .await,
    );
    assert_not_found(
        store
            .delete_message(MessageId::new(), at(5), &[row("message.deleted", 5, o)])
            .await,
    );
    assert_eq!(chain(&*store, &org_chain).await, vec![sent.clone()]);

    // Each success writes exactly its rows, after the ones before.
    let edited = row("message.edited", 6, o);
    store
        .edit_message(
            &text_edit(msg.id, "hello again", 6),
            std::slice::from_ref(&edited),
        )
        .await
        .unwrap();
    let deleted = [row("message.deleted", 7, o), row("message.moderated", 7, o)];
    store.delete_message(msg.id, at(7), &deleted).await.unwrap();
    let [d1, d2] = deleted;
    assert_eq!(chain(&*store, &org_chain).await, vec![sent, edited, d1, d2]);
    assert!(chain(&*store, SERVER_CHAIN).await.is_empty());
}
check!(message_writes_are_audited_with_their_change);

async fn read_marker_moves_are_audited_with_their_change(store: Arc<dyn Store>) {
    let [alice, bob] = make_users(&*store, ["alice", "bob"]).await;
    let org = make_org(&*store, "acme", alice.id).await;
    join(&*store, org.id, bob.id).await;
    let conv = make_group(&*store, org.id, alice.id, &[], Visibility::ORG).await;
    let msg = post_message(&*store, conv.id, alice.id, "hi").await;
    let org_chain = chain_of(Some(org.id));
    let o = Some(org.id);
    let marker = |user, message| ReadMarker {
        conv: conv.id,
        user,
        message,
    };

    // Not a participant, or no such message: nothing changes and nothing is written.
    assert_not_found(
        store
            .set_read_marker(marker(bob.id, msg.id), &[row("read_marker.moved", 1, o)])
            .await,
    );
    assert_not_found(
        store
            .set_read_marker(
                marker(alice.id, MessageId::new()),
                &[row("read_marker.moved", 2, o)],
            )
            .await,
    );
    assert!(chain(&*store, &org_chain).await.is_empty());

    let moved = row("read_marker.moved", 3, o);
    store
        .set_read_marker(marker(alice.id, msg.id), std::slice::from_ref(&moved))
        .await
        .unwrap();
    assert_eq!(chain(&*store, &org_chain).await, vec![moved]);
    assert_eq!(
        store.conversation_states(alice.id).await.unwrap()[0].last_read_message_id,
        Some(msg.id)
    );
}
check!(read_marker_moves_are_audited_with_their_change);

async fn key_retirement_is_audited_with_its_change(store: Arc<dyn Store>) {
    // Each retirement attempt at `secs` carries its own row.
    let retire = |id, secs| {
        let store = &store;
        async move {
            let audit = [row("secrets.key_retired", secs, None)];
            store.retire_secret_key(id, at(secs), &audit).await
        }
    };
    // Refusals write nothing: the current key, a key that does not exist.
    assert_eq!(retire(1, 1).await.unwrap(), RetireOutcome::Current);
    assert_not_found(retire(9, 2).await);
    let newer = SecretKeyRecord {
        id: 2,
        wrapped_key: Some(vec![2; 60]),
        created_at: at(3),
        retired_at: None,
    };
    assert!(store.add_secret_key(&newer).await.unwrap());
    assert!(chain(&*store, SERVER_CHAIN).await.is_empty());

    let retired = row("secrets.key_retired", 4, None).resource("secret_key", 1);
    assert_eq!(
        store
            .retire_secret_key(1, at(4), std::slice::from_ref(&retired))
            .await
            .unwrap(),
        RetireOutcome::Retired
    );
    assert_eq!(retire(1, 5).await.unwrap(), RetireOutcome::AlreadyRetired);
    assert_eq!(chain(&*store, SERVER_CHAIN).await, vec![retired]);
}
check!(key_retirement_is_audited_with_its_change);

async fn failed_sign_ins_are_settled_with_their_row(store: Arc<dyn Store>) {
    let keys = [
        ThrottleKey {
            account: "acct".into(),
            ip: "10.0.0.1".into(),
        },
        ThrottleKey {
            account: "acct".into(),
            ip: String::new(),
        },
    ];
    let mut reserved = Vec::new();
    for key in &keys {
        let gate = ThrottleGate {
            key: key.clone(),
            free: 5,
            cutoffs: vec![at(70), at(40), at(-20)],
        };
        reserved.push(
            store
                .reserve_login_attempt(&gate, at(100), at(0))
                .await
                .unwrap()
                .expect("a fresh counter lets the attempt through"),
        );
    }
    assert_eq!(store.pending_login_attempts(&keys).await.unwrap(), 2);

    let failed = row("auth.login", 100, None).failed();
    store
        .settle_login_attempts(&reserved, std::slice::from_ref(&failed))
        .await
        .unwrap();
    assert_eq!(store.pending_login_attempts(&keys).await.unwrap(), 0);
    let counts = store.login_failures(&keys).await.unwrap();
    assert_eq!(counts.len(), 2);
    assert!(counts.iter().all(|c| c.failures == 1), "{counts:?}");
    assert_eq!(chain(&*store, SERVER_CHAIN).await, vec![failed]);
}
check!(failed_sign_ins_are_settled_with_their_row);

async fn role_changes_are_audited_once_when_they_change(store: Arc<dyn Store>) {
    let (_, org) = owned_org(&*store, "alice", "acme").await;
    let bob = make_user(&*store, "bob").await;
    store
        .add_member(membership(org.id, bob.id, OrgRole::Member), at(1), &[])
        .await
        .unwrap();
    // A hundred callers that all read "member" (sign-ins and directory checks racing) set the
    // same new role: one changes it and writes its row; the others change and write nothing.
    let calls: Vec<_> = (0..100)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let audit = [row("member.role_changed", 2 + i, Some(org.id))];
                let membership = membership(org.id, bob.id, OrgRole::Admin);
                store
                    .set_member_role(membership, None, &audit)
                    .await
                    .unwrap()
                    .1
            })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    assert_eq!(answers.iter().filter(|changed| **changed).count(), 1);
    let rows = chain(&*store, &chain_of(Some(org.id))).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].event, "member.role_changed");
}
check!(role_changes_are_audited_once_when_they_change);
