//! The audit log: rows written with their change and only with it, chained per org and for the
//! server, kept in one chain under concurrent writers, listed with filters, pruned behind a
//! signed checkpoint (DATA-4, DATA-5).

use super::*;
use conclave_core::audit::{
    chain_of, AuditActor, AuditEntry, AuditFilter, ChainVerifier, PruneOutcome, SERVER_CHAIN,
};

/// The row count of a pruning that must not have been refused.
trait Rows {
    fn rows(self) -> u64;
}

impl Rows for PruneOutcome {
    fn rows(self) -> u64 {
        match self {
            PruneOutcome::Pruned(n) => n,
            refused => panic!("pruning refused: {refused:?}"),
        }
    }
}

fn entry(event: &str, secs: i64) -> AuditEntry {
    AuditEntry::new(event, AuditActor::system(), at(secs))
}

/// Verifies one chain with the suite's key against the stored head and checkpoint.
pub(super) async fn verify(store: &dyn Store, chain: &str) -> conclave_core::audit::ChainReport {
    let key = crate::test_audit_key();
    let cp = store.audit_checkpoint(chain).await.unwrap();
    let mut v = ChainVerifier::new(&key, chain, cp.as_ref());
    loop {
        let rows = store.audit_rows(chain, v.next_seq(), 1000).await.unwrap();
        for r in &rows {
            v.feed(r);
        }
        if rows.len() < 1000 || v.failed() {
            break;
        }
    }
    let heads = store.audit_heads().await.unwrap();
    v.finish(heads.iter().find(|h| h.chain == chain))
}

async fn audit_rows_are_written_with_their_change_only(store: Arc<dyn Store>) {
    let alice = new_user("alice");
    let created = entry("user.registered", 1).resource("user", alice.id);
    store
        .create_user(&alice, std::slice::from_ref(&created))
        .await
        .unwrap();
    // A change that fails leaves no row behind.
    let mut again = new_user("ALICE");
    again.id = UserId::new();
    let refused = entry("user.registered", 2).resource("user", again.id);
    assert!(matches!(
        store
            .create_user(&again, std::slice::from_ref(&refused))
            .await,
        Err(StoreError::Conflict(Conflict::UsernameTaken))
    ));
    let org = make_org(&*store, "Acme", alice.id).await;
    let bob = make_user(&*store, "bob").await;
    let added = entry("member.added", 3)
        .resource("user", bob.id)
        .org(org.id);
    store
        .add_member(
            membership(org.id, bob.id, OrgRole::Member),
            at(3),
            std::slice::from_ref(&added),
        )
        .await
        .unwrap();
    // A no-op (recovery code that does not exist) writes nothing either.
    assert!(!store
        .use_recovery_code(
            recovery(bob.id, "nope"),
            at(4),
            &[entry("recovery_code.used", 4)]
        )
        .await
        .unwrap());

    let all = store
        .list_audit(&AuditFilter::default(), page(Cursor::Latest, 100))
        .await
        .unwrap();
    let ids: Vec<_> = all.iter().map(|r| r.entry.id).collect();
    assert_eq!(
        ids,
        vec![added.id, created.id],
        "newest first, nothing else"
    );
    let server = &all[1];
    assert_eq!(server.chain, SERVER_CHAIN);
    assert_eq!(server.seq, 1);
    assert_eq!(server.entry, created);
    let in_org = &all[0];
    assert_eq!(in_org.chain, chain_of(Some(org.id)));
    assert_eq!(in_org.seq, 1, "each org has its own chain");
    assert_eq!(
        in_org.entry.detail, added.detail,
        "details round-trip exactly"
    );
    for chain in [SERVER_CHAIN.to_owned(), chain_of(Some(org.id))] {
        let report = verify(&*store, &chain).await;
        assert!(report.ok, "{report:?}");
        assert_eq!(report.checked, 1);
    }
}
check!(audit_rows_are_written_with_their_change_only);

async fn audit_listing_filters_and_pages(store: Arc<dyn Store>) {
    let (alice, org) = owned_org(&*store, "alice", "Acme").await;
    let mut entries = Vec::new();
    for i in 0..6 {
        let mut e = entry(
            if i % 2 == 0 {
                "auth.login"
            } else {
                "totp.enabled"
            },
            i,
        );
        e.actor = AuditActor::user(alice.id);
        e = e.resource("user", alice.id);
        if i >= 4 {
            e = e.org(org.id);
        }
        e.detail = Some(serde_json::json!({ "i": i }));
        entries.push(e);
    }
    store.append_audit(&entries).await.unwrap();
    let list = |f: AuditFilter| {
        let store = store.clone();
        async move {
            store
                .list_audit(&f, page(Cursor::Latest, 100))
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.entry.id)
                .collect::<Vec<_>>()
        }
    };
    let ids = |idx: &[usize]| idx.iter().map(|i| entries[*i].id).collect::<Vec<_>>();
    assert_eq!(
        list(AuditFilter {
            event: Some("auth.login".into()),
            ..AuditFilter::default()
        })
        .await,
        ids(&[4, 2, 0])
    );
    assert_eq!(
        list(AuditFilter {
            org: Some(org.id),
            ..AuditFilter::default()
        })
        .await,
        ids(&[5, 4])
    );
    assert_eq!(
        list(AuditFilter {
            since: Some(at(2)),
            until: Some(at(4)),
            ..AuditFilter::default()
        })
        .await,
        ids(&[3, 2])
    );
    assert_eq!(
        list(AuditFilter {
            actor: Some(alice.id.0),
            resource: Some(("user".into(), alice.id.0.to_string())),
            events: Some(vec!["totp.enabled".into()]),
            ..AuditFilter::default()
        })
        .await,
        ids(&[5, 3, 1])
    );
    assert!(list(AuditFilter {
        actor: Some(uuid::Uuid::now_v7()),
        ..AuditFilter::default()
    })
    .await
    .is_empty());
    // Keyset paging both ways.
    let unfiltered = AuditFilter::default();
    assert_pages(
        |p| store.list_audit(&unfiltered, p),
        |r| r.entry.id,
        &[
            (Cursor::Latest, 2, ids(&[5, 4])),
            (Cursor::Before(entries[4].id), 2, ids(&[3, 2])),
            (Cursor::After(entries[1].id), 2, ids(&[2, 3])),
        ],
    )
    .await;
}
check!(audit_listing_filters_and_pages);

async fn concurrent_appends_keep_one_valid_chain(store: Arc<dyn Store>) {
    let (_, org) = owned_org(&*store, "alice", "Acme").await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Some appends touch both chains at once, in either order.
            let mut batch = vec![entry("test.server", i)];
            if i % 3 == 0 {
                batch.insert(0, entry("test.org", i).org(org.id));
            }
            store.append_audit(&batch).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let server = verify(&*store, SERVER_CHAIN).await;
    assert!(server.ok, "{server:?}");
    assert_eq!(server.checked, 24);
    let in_org = verify(&*store, &chain_of(Some(org.id))).await;
    assert!(in_org.ok, "{in_org:?}");
    assert_eq!(in_org.checked, 8);
    let names = store.audit_chain_names().await.unwrap();
    assert_eq!(names.len(), 2);
}
check!(concurrent_appends_keep_one_valid_chain);

async fn pruning_leaves_a_signed_checkpoint(store: Arc<dyn Store>) {
    let (_, org) = owned_org(&*store, "alice", "Acme").await;
    let chain = chain_of(Some(org.id));
    // Prunes the org's chain before `secs`, its row written at `written`; answers the count.
    let prune = |secs, written| {
        let (store, chain) = (&store, &chain);
        async move {
            let row = entry("audit.pruned", written).org(org.id);
            store
                .prune_audit(chain, at(secs), &row)
                .await
                .unwrap()
                .rows()
        }
    };
    // Nothing to prune in a chain that does not exist yet.
    assert_eq!(prune(100, 100).await, 0);
    for i in 0..5 {
        store
            .append_audit(&[entry("test.event", i * 10).org(org.id)])
            .await
            .unwrap();
    }
    assert_eq!(prune(25, 100).await, 3, "rows at 0, 10 and 20 go");
    let cp = store.audit_checkpoint(&chain).await.unwrap().unwrap();
    assert_eq!(cp.seq, 3);
    assert!(crate::test_audit_key().checkpoint_valid(&cp));
    let rows = store.audit_rows(&chain, 0, 100).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![4, 5, 6]
    );
    assert_eq!(rows[2].entry.event, "audit.pruned");
    assert_eq!(
        rows[2].entry.detail,
        Some(serde_json::json!({ "rows": 3, "through_seq": 3 }))
    );
    let report = verify(&*store, &chain).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.checked, 3);
    // Pruning everything still keeps the newest row (the head) and a verifiable chain; a
    // second run right after finds nothing more.
    assert_eq!(
        prune(1000, 1000).await,
        2,
        "rows 4 and 5; row 6, the head, stays"
    );
    assert_eq!(
        prune(1000, 1000).await,
        1,
        "only the previous pruning row was older than the cutoff"
    );
    let report = verify(&*store, &chain).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.checked, 2, "the last two pruning rows");
    // Other chains are untouched.
    assert_eq!(store.audit_checkpoint(SERVER_CHAIN).await.unwrap(), None);
}
check!(pruning_leaves_a_signed_checkpoint);

async fn message_retention_prunes_one_org(store: Arc<dyn Store>) {
    let (alice, acme) = owned_org(&*store, "alice", "Acme").await;
    let other = make_org(&*store, "Other", alice.id).await;
    let a = make_group(&*store, acme.id, alice.id, &[], Visibility::ORG).await;
    let b = make_group(&*store, other.id, alice.id, &[], Visibility::ORG).await;
    for (conv, secs) in [(a.id, 10), (a.id, 50), (b.id, 10)] {
        let mut m = new_message(conv, alice.id, "hello");
        m.created_at = at(secs);
        store.insert_message(&m, &[]).await.unwrap();
    }
    let e = entry("messages.pruned", 100).org(acme.id);
    let pruned = store.prune_messages(acme.id, at(30), &e).await.unwrap();
    assert_eq!(pruned, (1, FreedBlobs::default()));
    let again = store.prune_messages(acme.id, at(30), &e).await.unwrap();
    assert_eq!(again, (0, FreedBlobs::default()));
    let left_a = store
        .messages(a.id, page(Cursor::Latest, 10))
        .await
        .unwrap();
    assert_eq!(left_a.len(), 1);
    assert_eq!(left_a[0].seq, 2, "numbering never repeats");
    let left_b = store
        .messages(b.id, page(Cursor::Latest, 10))
        .await
        .unwrap();
    assert_eq!(left_b.len(), 1, "other orgs keep theirs");
    let rows = store
        .list_audit(
            &AuditFilter {
                event: Some("messages.pruned".into()),
                ..AuditFilter::default()
            },
            page(Cursor::Latest, 10),
        )
        .await
        .unwrap();
    assert_eq!(
        rows.len(),
        1,
        "one row for the pruning that deleted something"
    );
    let patch = OrgPatch {
        message_retention_days: Some(Some(30)),
        ..OrgPatch::default()
    };
    store.update_org(acme.id, &patch, &[]).await.unwrap();
    let with = store.orgs_with_retention().await.unwrap();
    assert_eq!(with.iter().map(|o| o.id).collect::<Vec<_>>(), vec![acme.id]);
}
check!(message_retention_prunes_one_org);

async fn health_alerts_are_raised_and_cleared(store: Arc<dyn Store>) {
    assert!(store.alerts().await.unwrap().is_empty());
    store
        .raise_alert(
            &HealthAlert {
                name: "audit",
                status: "chain_mismatch",
                raised_at: at(100),
            },
            &[entry("audit.prune_refused", 100)],
        )
        .await
        .unwrap();
    assert_eq!(
        store.alerts().await.unwrap(),
        vec![("audit".to_owned(), "chain_mismatch".to_owned())]
    );
    // Recorded in the server chain with the alert.
    let rows = store.audit_rows(SERVER_CHAIN, 0, 10).await.unwrap();
    assert_eq!(rows.last().unwrap().entry.event, "audit.prune_refused");
    // A verification that began before the alert does not clear it; one after does.
    assert!(!store.clear_alert("audit", at(99)).await.unwrap());
    assert_eq!(store.alerts().await.unwrap().len(), 1);
    assert!(store.clear_alert("audit", at(100)).await.unwrap());
    assert!(store.alerts().await.unwrap().is_empty());
    assert!(!store.clear_alert("audit", at(200)).await.unwrap());
}
check!(health_alerts_are_raised_and_cleared);
