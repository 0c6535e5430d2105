//! Webhooks: a (webhook, event) pair is queued once; concurrent claims never lease one row
//! twice nor two rows of one endpoint; only the lease holder records an attempt; an endpoint's
//! deliveries come in event-id order.

use super::*;
use conclave_core::audit::{AuditActor, AuditEntry};
use conclave_core::store::webhooks::*;
use uuid::Uuid;

/// A claim's lease for `owner` until `until`.
fn lease(owner: &str, until: DateTime<Utc>) -> Lease<'_> {
    Lease { owner, until }
}

async fn make_hook(store: &dyn Store, org: OrgId) -> Uuid {
    let (hook, secret) = new_hook(org);
    store.create_webhook(&hook, &secret, &[]).await.unwrap();
    hook.id
}

/// A webhook of `org` and its first secret.
fn new_hook(org: OrgId) -> (Webhook, WebhookSecretRecord) {
    let hook = Webhook {
        id: Uuid::now_v7(),
        org_id: org,
        conversation_id: None,
        url: "https://example.com/hook".into(),
        events: vec!["message.created".into()],
        enabled: true,
        disabled_reason: None,
        consecutive_failures: 0,
        created_by: None,
        created_at: at(0),
        updated_at: at(0),
        previous_secret_expires_at: None,
        secret_hint: "abcd".into(),
    };
    let secret = WebhookSecretRecord {
        id: Uuid::now_v7(),
        hint: "abcd".into(),
        sealed: sealed(1, 1),
        created_at: at(0),
        expires_at: None,
    };
    (hook, secret)
}

fn delivery(webhook: Uuid, event_id: Uuid) -> NewDelivery {
    NewDelivery {
        id: Uuid::now_v7(),
        webhook_id: webhook,
        event_id,
        event_type: "webhook.test".into(),
        payload: "{}".into(),
        created_at: at(0),
        message_id: None,
        user_id: None,
    }
}

/// A delivery of `event` about message `m` (by its author) to `webhook`.
fn about_message(webhook: Uuid, event: &str, m: &Message) -> NewDelivery {
    NewDelivery {
        event_type: event.into(),
        payload: format!("{{\"type\":\"{event}\",\"data\":{{\"content\":\"secret\"}}}}"),
        message_id: Some(m.id.0),
        user_id: Some(m.author.id.0),
        ..delivery(webhook, Uuid::now_v7())
    }
}

/// A `member.added` delivery about `user` (named `bob`) to `webhook`.
fn member_event(webhook: Uuid, user: UserId) -> NewDelivery {
    NewDelivery {
        event_type: "member.added".into(),
        payload: "{\"data\":{\"user\":{\"username\":\"bob\"}}}".into(),
        user_id: Some(user.0),
        ..delivery(webhook, Uuid::now_v7())
    }
}

/// Delivery `d` is as it was queued: not redacted, its body whole.
async fn kept_whole(store: &dyn Store, d: &WebhookDelivery) {
    let now = store.delivery(d.id).await.unwrap();
    assert!(now.redacted_at.is_none());
    assert_eq!(now.payload, d.payload);
}

/// Queues a delivery of `event` about `m`; the row, when it was queued.
async fn queued_about(
    store: &dyn Store,
    hook: Uuid,
    event: &str,
    m: &Message,
) -> Option<WebhookDelivery> {
    queued(store, &about_message(hook, event, m)).await
}

/// Queues `d` and answers whether it was queued, and the row as the log shows it.
async fn queued(store: &dyn Store, d: &NewDelivery) -> Option<WebhookDelivery> {
    let added = store
        .enqueue_deliveries(std::slice::from_ref(d))
        .await
        .unwrap();
    if added == 0 {
        return None;
    }
    Some(store.delivery(d.id).await.unwrap())
}

/// Delivery `id` is redacted: no body, and given up if it was still queued (`was`).
async fn redacted(store: &dyn Store, id: Uuid, was: DeliveryStatus) {
    let d = store.delivery(id).await.unwrap();
    assert!(d.redacted_at.is_some(), "{d:?}");
    assert_eq!(d.payload, "", "the body is gone");
    if was == DeliveryStatus::Pending {
        assert_eq!(d.status, DeliveryStatus::Failed, "a queued one is given up");
        assert_eq!(d.last_error.as_deref(), Some("redacted"));
    } else {
        assert_eq!(d.status, was);
    }
}

/// DATA-5, DATA-6: a delivery's body goes when its message is deleted or its person erased;
/// the delivery itself goes when its message is purged or its conversation deleted; a message
/// event whose message is gone is not queued at all; other deliveries keep theirs.
async fn webhook_bodies_go_with_what_they_are_about(store: Arc<dyn Store>) {
    let (alice, org) = owned_org(&*store, "alice", "Acme").await;
    let bob = make_user(&*store, "bob").await;
    join(&*store, org.id, bob.id).await;
    let hook = make_hook(&*store, org.id).await;
    let conv = make_group(&*store, org.id, alice.id, &[bob.id], Visibility::ORG).await;
    let gone = post_message(&*store, conv.id, alice.id, "gone").await;
    let kept = post_message(&*store, conv.id, alice.id, "kept").await;
    // One delivered, one still queued, of the message to delete; one of the message kept.
    let sent = queued_about(&*store, hook, "message.created", &gone)
        .await
        .unwrap();
    let claimed = store
        .claim_deliveries(lease("node-a", at(60)), at(1), 10)
        .await
        .unwrap();
    assert_eq!(claimed.iter().map(|d| d.id).collect::<Vec<_>>(), [sent.id]);
    assert!(
        store
            .finish_delivery(sent.id, "node-a", &delivered())
            .await
            .unwrap()
            .0
    );
    let waiting = queued_about(&*store, hook, "message.updated", &gone)
        .await
        .unwrap();
    let other = queued_about(&*store, hook, "message.created", &kept)
        .await
        .unwrap();
    store.delete_message(gone.id, at(200), &[]).await.unwrap();
    redacted(&*store, sent.id, DeliveryStatus::Delivered).await;
    redacted(&*store, waiting.id, DeliveryStatus::Pending).await;
    kept_whole(&*store, &other).await;
    // Too late for a deleted message's content; its tombstone is still announced.
    assert!(queued_about(&*store, hook, "message.created", &gone)
        .await
        .is_none());
    assert!(queued_about(&*store, hook, "message.updated", &gone)
        .await
        .is_none());
    let tombstone = queued_about(&*store, hook, "message.deleted", &gone).await;
    assert!(tombstone.is_some_and(|d| d.redacted_at.is_none()));
    // Bob's membership and message: his erasure takes both bodies, and a body queued late
    // naming him as his (moved) message's author is not queued.
    let his = post_message(&*store, conv.id, bob.id, "his").await;
    let member = queued(&*store, &member_event(hook, bob.id)).await.unwrap();
    let his_body = queued_about(&*store, hook, "message.created", &his)
        .await
        .unwrap();
    anonymising(&*store, org.id).await;
    erase(&*store, bob.id, "deleted-bob", 300).await;
    redacted(&*store, member.id, DeliveryStatus::Pending).await;
    redacted(&*store, his_body.id, DeliveryStatus::Pending).await;
    assert!(queued_about(&*store, hook, "message.created", &his)
        .await
        .is_none());
    // Nor is any event about him at all queued after (a member event still in the tap when
    // he was erased would carry his name).
    let late = NewDelivery {
        id: Uuid::now_v7(),
        ..member_event(hook, bob.id)
    };
    assert!(queued(&*store, &late).await.is_none());
    kept_whole(&*store, &other).await;
    // Retention: the purged message's deliveries leave the log.
    let mut old = new_message(conv.id, alice.id, "old");
    old.created_at = at(10);
    let old = send(&*store, &old).await;
    let old_body = queued_about(&*store, hook, "message.created", &old)
        .await
        .unwrap();
    let e = AuditEntry::new("messages.pruned", AuditActor::system(), at(400)).org(org.id);
    store.prune_messages(org.id, at(30), &e).await.unwrap();
    assert_not_found(store.delivery(old_body.id).await);
    kept_whole(&*store, &other).await;
    // Deleting the conversation takes the deliveries about its messages, bodies and all.
    store.delete_conversation(conv.id, &[]).await.unwrap();
    assert_not_found(store.delivery(other.id).await);
}
check!(webhook_bodies_go_with_what_they_are_about);

fn delivered() -> AttemptOutcome {
    AttemptOutcome {
        status_code: Some(200),
        error: None,
        latency_ms: 1,
        at: at(1),
        retry_at: None,
        disable_after: 20,
        disable_audit: vec![],
    }
}

async fn webhook_deliveries_are_claimed_once_in_order(store: Arc<dyn Store>) {
    let alice = make_user(&*store, "alice").await;
    let org = make_org(&*store, "Acme", alice.id).await;
    let mut hooks = Vec::new();
    let mut events = Vec::new();
    for _ in 0..5 {
        hooks.push(make_hook(&*store, org.id).await);
    }
    for _ in 0..4 {
        events.push(Uuid::now_v7());
    }
    // Queued in reverse event order: the claim follows event ids, not insertion.
    let rows: Vec<NewDelivery> = hooks
        .iter()
        .flat_map(|h| events.iter().rev().map(|e| delivery(*h, *e)))
        .collect();
    assert_eq!(store.enqueue_deliveries(&rows).await.unwrap(), 20);
    let again: Vec<NewDelivery> = rows
        .iter()
        .map(|d| delivery(d.webhook_id, d.event_id))
        .collect();
    assert_eq!(
        store.enqueue_deliveries(&again).await.unwrap(),
        0,
        "queued once"
    );

    // Eight claimers at once: five rows leased in all, one per endpoint, each its first event.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .claim_deliveries(lease(&format!("node-{i}"), at(70)), at(10), 10)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut claimed: Vec<(String, WebhookDelivery)> = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        for d in t.await.unwrap() {
            claimed.push((format!("node-{i}"), d));
        }
    }
    assert_eq!(claimed.len(), 5, "one per endpoint, none twice");
    let mut by_hook: Vec<Uuid> = claimed.iter().map(|(_, d)| d.webhook_id).collect();
    by_hook.sort_unstable();
    by_hook.dedup();
    assert_eq!(by_hook.len(), 5);
    assert!(claimed.iter().all(|(_, d)| d.event_id == events[0]));
    // Nothing more while the leases last.
    assert!(store
        .claim_deliveries(lease("late", at(80)), at(20), 10)
        .await
        .unwrap()
        .is_empty());

    // Only the holder records an attempt; then the endpoint's next event is claimable.
    let (owner, first) = &claimed[0];
    let (recorded, _) = store
        .finish_delivery(first.id, "someone-else", &delivered())
        .await
        .unwrap();
    assert!(!recorded);
    let (recorded, disabled) = store
        .finish_delivery(first.id, owner, &delivered())
        .await
        .unwrap();
    assert!(recorded && !disabled);
    assert_eq!(
        store.delivery(first.id).await.unwrap().status,
        DeliveryStatus::Delivered
    );
    let next = store
        .claim_deliveries(lease("late", at(80)), at(20), 10)
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].webhook_id, first.webhook_id);
    assert_eq!(next[0].event_id, events[1]);
    // An expired lease is taken over.
    let taken = store
        .claim_deliveries(lease("rescuer", at(160)), at(100), 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 5);
}
check!(webhook_deliveries_are_claimed_once_in_order);

/// An org's webhook cap holds when ~100 creations race (each counts under the org's lock), and
/// another org's count is its own.
async fn webhook_cap_holds_under_concurrent_creation(store: Arc<dyn Store>) {
    let org = assert_capped(&store, OrgCapped::Webhooks, |store, org, _| async move {
        let (hook, secret) = new_hook(org);
        store.create_webhook(&hook, &secret, &[]).await
    })
    .await;
    let held = store.webhooks(org).await.unwrap();
    assert_eq!(held.len(), OrgCapped::Webhooks.most());
    // An unknown org has nothing to count against.
    let (hook, secret) = new_hook(OrgId::new());
    assert!(matches!(
        store.create_webhook(&hook, &secret, &[]).await,
        Err(StoreError::NotFound)
    ));
}
check!(webhook_cap_holds_under_concurrent_creation);
