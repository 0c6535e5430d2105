//! Webhooks: a (webhook, event) pair is queued once; concurrent claims never lease one row
//! twice nor two rows of one endpoint; only the lease holder records an attempt; an endpoint's
//! deliveries come in event-id order.

use super::*;
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
        event_type: "message.created".into(),
        payload: "{}".into(),
        created_at: at(0),
    }
}

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
