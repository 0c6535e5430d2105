//! Group commit (issue 13): concurrent sends share transactions, and each must come out as if
//! it had been sent alone — its own message, every `seq` once, keys replayed, refusals taken
//! back on their own, audit chains intact.

use super::audit::verify;
use super::files::upload;
use super::messages::{keyed, room};
use super::*;
use conclave_core::audit::{chain_of, AuditActor, AuditEntry, SERVER_CHAIN};
use tokio::task::JoinHandle;

/// Sends every message at once, each from its own task, with its audit rows.
fn all_at_once(
    store: &Arc<dyn Store>,
    sends: Vec<(NewMessage, Vec<AuditEntry>)>,
) -> Vec<(NewMessage, JoinHandle<StoreResult<Inserted>>)> {
    sends
        .into_iter()
        .map(|(msg, audit)| {
            let store = store.clone();
            let task = {
                let msg = msg.clone();
                tokio::spawn(async move { store.insert_message(&msg, &audit).await })
            };
            (msg, task)
        })
        .collect()
}

/// Asserts `got` is `sent`, stored as a new message, and answers it.
#[track_caller]
fn is_own(sent: &NewMessage, got: Inserted) -> Message {
    let m = created(got);
    assert_eq!(m.id, sent.id, "each sender gets its own message");
    assert_eq!(m.conversation_id, sent.conversation_id);
    assert_eq!(m.author.id, sent.author_id);
    assert_eq!(m.content.as_deref(), Some(sent.content.as_str()));
    m
}

fn sorted(mut seqs: Vec<i64>) -> Vec<i64> {
    seqs.sort_unstable();
    seqs
}

async fn parallel_sends_take_every_seq_once(store: Arc<dyn Store>) {
    let (alice, bob, conv) = room(&*store).await;
    let other = make_group(&*store, conv.org_id, alice.id, &[bob.id], Visibility::ORG).await;
    let mut sends = Vec::new();
    for i in 0..130 {
        let (into, author) = match i % 4 {
            0 => (other.id, bob.id),
            1 => (conv.id, bob.id),
            _ => (conv.id, alice.id),
        };
        let into = if i >= 120 { other.id } else { into };
        sends.push((
            new_message(into, author, &format!("message {i}")),
            Vec::new(),
        ));
    }
    let mut stored = Vec::new();
    for (sent, task) in all_at_once(&store, sends) {
        stored.push(is_own(&sent, task.await.unwrap().unwrap()));
    }
    for (c, n) in [(conv.id, 90), (other.id, 40)] {
        let seqs = stored
            .iter()
            .filter(|m| m.conversation_id == c)
            .map(|m| m.seq)
            .collect();
        assert_eq!(
            sorted(seqs),
            (1..=n).collect::<Vec<i64>>(),
            "no gap, no twice"
        );
        assert_eq!(store.conversation(c).await.unwrap().last_seq, n);
    }
    for m in &stored {
        assert_eq!(&store.message(m.id).await.unwrap(), m, "answered as stored");
    }
}
check!(parallel_sends_take_every_seq_once);

async fn parallel_uses_of_one_key_store_one_message(store: Arc<dyn Store>) {
    let (alice, bob, conv) = room(&*store).await;
    let mut sends = Vec::new();
    for i in 0..40 {
        let msg = if i % 2 == 0 {
            keyed(conv.id, alice.id, "once", "same request")
        } else {
            new_message(conv.id, bob.id, &format!("plain {i}"))
        };
        sends.push((msg, Vec::new()));
    }
    let (mut created_ids, mut replays, mut seqs) = (Vec::new(), Vec::new(), Vec::new());
    for (sent, task) in all_at_once(&store, sends) {
        match task.await.unwrap().unwrap() {
            Inserted::Created(m) => {
                assert_eq!(m.id, sent.id);
                if sent.idempotency.is_some() {
                    created_ids.push(m.id);
                }
                seqs.push(m.seq);
            }
            Inserted::Replayed(m, print) => {
                assert_eq!(print, "same request", "the first request's fingerprint");
                replays.push(m.id);
            }
            Inserted::AttachmentsRefused => panic!("no attachments were named"),
        }
    }
    assert_eq!(created_ids.len(), 1, "one use of the key stores a message");
    assert_eq!(replays.len(), 19);
    assert!(replays.iter().all(|id| *id == created_ids[0]));
    assert_eq!(
        sorted(seqs),
        (1..=21).collect::<Vec<i64>>(),
        "replays take no seq"
    );
}
check!(parallel_uses_of_one_key_store_one_message);

async fn a_refused_send_takes_back_only_itself(store: Arc<dyn Store>) {
    let (alice, bob, conv) = room(&*store).await;
    let own = upload(&*store, conv.id, alice.id, 10, 1).await;
    let bobs = upload(&*store, conv.id, bob.id, 10, 2).await;
    let contested = upload(&*store, conv.id, alice.id, 10, 3).await;
    let earlier = send(&*store, &keyed(conv.id, alice.id, "early", "early")).await;
    let mut sends = Vec::new();
    for i in 0..40 {
        let mut msg = new_message(conv.id, alice.id, &format!("plain {i}"));
        match i {
            10 => msg.attachments = vec![bobs.info.id],
            20 => msg.attachments = vec![own.info.id],
            25 | 26 => msg.attachments = vec![contested.info.id],
            30 => msg = keyed(conv.id, alice.id, "early", "early"),
            _ => {}
        }
        sends.push((msg, Vec::new()));
    }
    let (mut seqs, mut refused, mut claims) = (Vec::new(), 0, Vec::new());
    for (sent, task) in all_at_once(&store, sends) {
        match task.await.unwrap().unwrap() {
            Inserted::AttachmentsRefused => refused += 1,
            Inserted::Replayed(m, _) => assert_eq!(m, earlier),
            got => {
                let m = is_own(&sent, got);
                seqs.push(m.seq);
                if !m.attachments.is_empty() {
                    claims.push(m.attachments[0].id);
                }
            }
        }
    }
    assert_eq!(refused, 2, "bob's file, and the second claim of one file");
    claims.sort_unstable();
    let mut expected = vec![own.info.id, contested.info.id];
    expected.sort_unstable();
    assert_eq!(claims, expected);
    assert_eq!(
        sorted(seqs),
        (2..=38).collect::<Vec<i64>>(),
        "refusals leave no gap"
    );
    assert_eq!(store.conversation(conv.id).await.unwrap().last_seq, 38);
    assert_eq!(store.file(bobs.info.id).await.unwrap().message_id, None);
}
check!(a_refused_send_takes_back_only_itself);

async fn audit_chains_verify_after_parallel_sends(store: Arc<dyn Store>) {
    let (alice, org) = owned_org(&*store, "alice", "acme").await;
    let conv = make_group(&*store, org.id, alice.id, &[], Visibility::ORG).await;
    let mut sends = Vec::new();
    for i in 0..60 {
        let msg = new_message(conv.id, alice.id, &format!("audited {i}"));
        let mut rows =
            vec![AuditEntry::new("message.sent", AuditActor::system(), at(i)).org(org.id)];
        if i % 3 == 0 {
            rows.push(AuditEntry::new("extra", AuditActor::system(), at(i)));
        }
        sends.push((msg, rows));
    }
    // One send that is refused writes none of its rows.
    let mut refused = new_message(conv.id, alice.id, "refused");
    refused.attachments = vec![FileId::new()];
    sends.push((
        refused,
        vec![AuditEntry::new("refused", AuditActor::system(), at(99)).org(org.id)],
    ));
    for (_, task) in all_at_once(&store, sends) {
        task.await.unwrap().unwrap();
    }
    for (chain, n) in [(chain_of(Some(org.id)), 60), (SERVER_CHAIN.to_owned(), 20)] {
        let report = verify(&*store, &chain).await;
        assert!(report.ok, "{chain}: {report:?}");
        let rows = store.audit_rows(&chain, 0, 1000).await.unwrap();
        let events: Vec<&str> = rows.iter().map(|r| r.entry.event.as_str()).collect();
        assert!(!events.contains(&"refused"));
        let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..=n).collect::<Vec<i64>>(), "{chain}");
    }
}
check!(audit_chains_verify_after_parallel_sends);
