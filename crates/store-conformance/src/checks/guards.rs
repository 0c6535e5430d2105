//! Content guards (RATE-6): counters only ever move by `n = n + k` (concurrent writers lose no
//! count), guards list in position order, one open flag per (message, guard), a flag resolved
//! once (and, when removed, with its message's other open flags), the API key replaced and
//! removed, totals over the server.

use super::*;
use conclave_core::guards::{GuardMode, GuardRules};
use conclave_core::store::guards::*;

pub(crate) fn guard(org: OrgId, name: &str, position: i32) -> Guard {
    Guard {
        id: GuardId::new(),
        org_id: org,
        name: name.into(),
        mode: GuardMode::Flag,
        rules: GuardRules::Blocklist {
            terms: vec![name.into()],
        },
        position,
        enabled: true,
        has_api_key: false,
        counts: GuardCounts::default(),
        created_at: at(0),
        updated_at: at(0),
    }
}

pub(crate) fn flag(org: OrgId, g: &Guard, m: &Message) -> NewFlag {
    NewFlag {
        id: FlagId::new(),
        org_id: org,
        guard_id: g.id,
        guard_name: g.name.clone(),
        message_id: m.id,
        conversation_id: m.conversation_id,
        author_id: m.author.id,
        created_at: at(1),
    }
}

async fn guards_count_flag_and_resolve_atomically(store: Arc<dyn Store>) {
    let (alice, org) = owned_org(&*store, "alice", "Acme").await;
    let conv = make_group(&*store, org.id, alice.id, &[], Visibility::PRIVATE).await;
    let (_, other) = owned_org(&*store, "mallory", "Evil").await;
    let late = guard(org.id, "late", 5);
    let early = guard(org.id, "early", 1);
    for g in [&late, &early] {
        store.create_guard(g, None, &[]).await.unwrap();
    }
    store
        .create_guard(&guard(other.id, "theirs", 0), None, &[])
        .await
        .unwrap();
    let listed: Vec<String> = store
        .guards(org.id)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(
        listed,
        vec!["early", "late"],
        "position order, this org only"
    );

    // 50 writers at once, each adding one of each decision to both guards.
    let one = GuardCounts {
        allowed: 1,
        flagged: 1,
        blocked: 1,
        errors: 1,
    };
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            let ids = [early.id, late.id];
            tokio::spawn(async move {
                let counts: Vec<(GuardId, GuardCounts)> = ids.iter().map(|id| (*id, one)).collect();
                store.count_guard_decisions(&counts).await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let fifty = GuardCounts {
        allowed: 50,
        flagged: 50,
        blocked: 50,
        errors: 50,
    };
    assert_eq!(store.guard(early.id).await.unwrap().counts, fifty);
    assert_eq!(store.guard(late.id).await.unwrap().counts, fifty);
    // A guard deleted meanwhile is skipped.
    store
        .count_guard_decisions(&[(GuardId::new(), one)])
        .await
        .unwrap();

    // One open flag per (message, guard); another guard's is its own.
    let m = send(&*store, &new_message(conv.id, alice.id, "flag me")).await;
    store
        .add_flags(&[flag(org.id, &early, &m), flag(org.id, &late, &m)])
        .await
        .unwrap();
    store.add_flags(&[flag(org.id, &early, &m)]).await.unwrap();
    let open = store.flags(org.id, false, None, 50).await.unwrap();
    assert_eq!(open.len(), 2);
    assert!(store
        .flags(other.id, false, None, 50)
        .await
        .unwrap()
        .is_empty());

    // Resolved once: of ten reviewers at once, one decides; `removed` closes the sibling too.
    let first = open[0].id;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let resolution = FlagResolution {
                    id: first,
                    by: alice.id,
                    resolution: Resolution::Removed,
                    at: at(2),
                };
                store.resolve_flag(resolution, &[]).await.unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        if let Some(f) = t.await.unwrap() {
            won += 1;
            assert_eq!(f.resolution, Some(Resolution::Removed));
            assert_eq!(f.resolved_by, Some(alice.id));
        }
    }
    assert_eq!(won, 1);
    assert!(store
        .flags(org.id, false, None, 50)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.flags(org.id, true, None, 50).await.unwrap().len(), 2);
    // Once resolved, the same message and guard may be flagged again.
    store.add_flags(&[flag(org.id, &early, &m)]).await.unwrap();
    assert_eq!(store.flags(org.id, false, None, 50).await.unwrap().len(), 1);

    // The API key: set, replaced, removed; a deleted guard's flags stay, without their guard.
    let mut keyed = store.guard(late.id).await.unwrap();
    keyed.updated_at = at(3);
    let g = store
        .update_guard(&keyed, &KeyChange::Set(sealed(1, 1)), &[])
        .await
        .unwrap();
    assert!(g.has_api_key);
    store
        .update_guard(&keyed, &KeyChange::Set(sealed(1, 2)), &[])
        .await
        .unwrap();
    assert_eq!(
        store.guard_api_key(late.id).await.unwrap(),
        Some(sealed(1, 2))
    );
    let g = store
        .update_guard(&keyed, &KeyChange::Remove, &[])
        .await
        .unwrap();
    assert!(!g.has_api_key);
    assert_eq!(g.counts, fifty, "an update leaves the counters");
    store.delete_guard(late.id, &[]).await.unwrap();
    let kept = store.flags(org.id, true, None, 50).await.unwrap();
    assert!(kept
        .iter()
        .any(|f| f.guard_id.is_none() && f.guard_name == "late"));

    let totals = store.guard_totals().await.unwrap();
    assert_eq!(totals.guards, 2);
    assert_eq!(totals.orgs, 2);
    assert_eq!(totals.counts, fifty);
    assert_eq!(totals.open_flags, 1);
}
check!(guards_count_flag_and_resolve_atomically);

/// An org's guard cap holds when ~100 creations race; another org's count is its own.
async fn guard_cap_holds_under_concurrent_creation(store: Arc<dyn Store>) {
    let org = assert_capped(&store, OrgCapped::Guards, |store, org, i| async move {
        let g = guard(org, &format!("guard {i}"), 0);
        store.create_guard(&g, None, &[]).await
    })
    .await;
    let held = store.guards(org).await.unwrap();
    assert_eq!(held.len(), OrgCapped::Guards.most());
}
check!(guard_cap_holds_under_concurrent_creation);
