//! Search (MSG-6): the index follows every write of a message in its transaction, and the
//! query itself keeps to the conversations the caller takes part in.

use super::*;
use conclave_core::audit::{AuditActor, AuditEntry};
use conclave_core::search::SearchText;

/// Who searches, where, and how.
struct Ask<'a> {
    user: UserId,
    org: OrgId,
    within: Option<&'a [ConversationId]>,
}

impl Ask<'_> {
    /// The hits of `q`, best first, as (id, score).
    async fn hits(
        &self,
        store: &dyn Store,
        q: &str,
        from: SearchFrom,
        limit: i64,
    ) -> Vec<SearchHit> {
        let text = SearchText::parse(q).unwrap();
        let req = SearchRequest {
            user: self.user,
            org: self.org,
            within: self.within,
            text: &text,
            from,
            limit: Limit::parse(Some(limit)).unwrap(),
        };
        store.search_messages(&req).await.unwrap()
    }

    /// The ids `q` finds (first page of 100, best first).
    async fn ids(&self, store: &dyn Store, q: &str) -> Vec<MessageId> {
        let hits = self.hits(store, q, SearchFrom::Relevance(None), 100).await;
        hits.into_iter().map(|h| h.message.id).collect()
    }
}

fn ask(user: UserId, org: OrgId) -> Ask<'static> {
    Ask {
        user,
        org,
        within: None,
    }
}

async fn sends_are_indexed_in_their_transaction(store: Arc<dyn Store>) {
    let (alice, bob, conv) = super::messages::room(&*store).await;
    let a = ask(alice.id, conv.org_id);
    assert!(a.ids(&*store, "zebra").await.is_empty());
    // Sent together: one batch, its rows and index entries in one transaction.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let msg = new_message(conv.id, bob.id, &format!("zebra number{i}"));
            send(&*store, &msg).await.id
        }));
    }
    // One refused among them (a file that is nobody's): its batch is rolled back and written
    // again message by message, its savepoint taking back its row and its index entry.
    let mut refused = new_message(conv.id, alice.id, "zebra refusedword");
    refused.attachments = vec![FileId::new()];
    let answer = store.insert_message(&refused, &[]).await.unwrap();
    assert!(matches!(answer, Inserted::AttachmentsRefused), "{answer:?}");
    let mut sent = Vec::new();
    for t in tasks {
        sent.push(t.await.unwrap());
    }
    let mut found = a.ids(&*store, "zebra").await;
    found.sort_unstable();
    sent.sort_unstable();
    assert_eq!(found, sent);
    assert!(a.ids(&*store, "refusedword").await.is_empty());
    assert_eq!(a.ids(&*store, "number3").await.len(), 1);
    // Case and punctuation do not matter; every word is needed.
    assert_eq!(a.ids(&*store, "ZEBRA, number4!").await.len(), 1);
    assert!(a.ids(&*store, "zebra giraffe").await.is_empty());
    let hit = &a
        .hits(&*store, "number5", SearchFrom::Newest(None), 5)
        .await[0];
    assert_eq!(hit.message, store.message(hit.message.id).await.unwrap());
}
check!(sends_are_indexed_in_their_transaction);

async fn edits_replace_and_removals_remove_entries(store: Arc<dyn Store>) {
    let (alice, bob, conv) = super::messages::room(&*store).await;
    let a = ask(alice.id, conv.org_id);
    let edited = post_message(&*store, conv.id, alice.id, "original wording").await;
    store
        .edit_message(&text_edit(edited.id, "revised wording", 200), &[])
        .await
        .unwrap();
    assert!(a.ids(&*store, "original").await.is_empty(), "edits replace");
    assert_eq!(a.ids(&*store, "revised").await, vec![edited.id]);
    assert_eq!(a.ids(&*store, "wording").await, vec![edited.id]);

    let deleted = post_message(&*store, conv.id, bob.id, "tombstoned words").await;
    store
        .delete_message(deleted.id, at(300), &[])
        .await
        .unwrap();
    assert!(
        a.ids(&*store, "tombstoned").await.is_empty(),
        "deletions remove"
    );

    // Retention deletes the rows: their entries go with them.
    let mut old = new_message(conv.id, bob.id, "ancient history");
    old.created_at = at(20);
    let old = send(&*store, &old).await;
    assert_eq!(a.ids(&*store, "ancient").await, vec![old.id]);
    let entry = AuditEntry::new("messages.pruned", AuditActor::system(), at(400)).org(conv.org_id);
    let (pruned, _) = store
        .prune_messages(conv.org_id, at(50), &entry)
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    assert!(
        a.ids(&*store, "ancient").await.is_empty(),
        "retention removes"
    );
    assert_eq!(a.ids(&*store, "revised").await, vec![edited.id]);

    // Erasure tombstones the user's messages in a tombstoning org.
    post_message(&*store, conv.id, bob.id, "erasable remark").await;
    erase(&*store, bob.id, "deleted-bob", 500).await;
    assert!(
        a.ids(&*store, "erasable").await.is_empty(),
        "erasure removes"
    );

    // Deleting the conversation takes its messages' entries along.
    store.delete_conversation(conv.id, &[]).await.unwrap();
    assert!(a.ids(&*store, "wording").await.is_empty());
}
check!(edits_replace_and_removals_remove_entries);

async fn only_conversations_taken_part_in_are_searched(store: Arc<dyn Store>) {
    let [owner, member, outsider] = make_users(&*store, ["owner", "member", "outsider"]).await;
    let org = make_org(&*store, "acme", owner.id).await;
    let other = make_org(&*store, "other", outsider.id).await;
    join(&*store, org.id, member.id).await;
    let private = make_group(&*store, org.id, owner.id, &[], Visibility::PRIVATE).await;
    let open = make_group(&*store, org.id, owner.id, &[], Visibility::ORG).await;
    let shared = make_group(&*store, org.id, owner.id, &[member.id], Visibility::ORG).await;
    let theirs = make_group(&*store, other.id, outsider.id, &[], Visibility::ORG).await;
    let in_private = post_message(&*store, private.id, owner.id, "secret plan").await;
    let in_open = post_message(&*store, open.id, owner.id, "open plan").await;
    let in_shared = post_message(&*store, shared.id, owner.id, "shared plan").await;
    let in_theirs = post_message(&*store, theirs.id, outsider.id, "foreign plan").await;

    let mut all = ask(owner.id, org.id).ids(&*store, "plan").await;
    all.sort_unstable();
    let mut expected = vec![in_private.id, in_open.id, in_shared.id];
    expected.sort_unstable();
    assert_eq!(
        all, expected,
        "the owner takes part in all three, not in the other org"
    );
    // Neither a private conversation nor an org-visible one not joined is searched.
    let m = ask(member.id, org.id);
    assert_eq!(m.ids(&*store, "plan").await, vec![in_shared.id]);
    // Another org's member finds nothing here, and only their own there.
    assert!(ask(outsider.id, org.id)
        .ids(&*store, "plan")
        .await
        .is_empty());
    assert_eq!(
        ask(outsider.id, other.id).ids(&*store, "plan").await,
        vec![in_theirs.id]
    );
    // A list limits the search, and never widens it.
    let within = [open.id, shared.id];
    let limited = Ask {
        within: Some(&within),
        ..ask(owner.id, org.id)
    };
    let mut found = limited.ids(&*store, "plan").await;
    found.sort_unstable();
    let mut expected = vec![in_open.id, in_shared.id];
    expected.sort_unstable();
    assert_eq!(found, expected);
    let member_within = Ask {
        within: Some(&within),
        ..ask(member.id, org.id)
    };
    assert_eq!(member_within.ids(&*store, "plan").await, vec![in_shared.id]);
    let nothing = Ask {
        within: Some(&[]),
        ..ask(owner.id, org.id)
    };
    assert!(nothing.ids(&*store, "plan").await.is_empty());

    // Removed from the conversation: nothing of it any more, old or new.
    store
        .remove_participant(shared.id, member.id, &[])
        .await
        .unwrap();
    post_message(&*store, shared.id, owner.id, "later plan").await;
    assert!(m.ids(&*store, "plan").await.is_empty());
    // Back in, then out of the org: nothing either.
    take_part(&*store, shared.id, member.id, ConversationRole::Member, 600).await;
    assert_eq!(m.ids(&*store, "later").await.len(), 1);
    store
        .remove_member(org.id, member.id, None, &[])
        .await
        .unwrap();
    assert!(m.ids(&*store, "plan").await.is_empty());
}
check!(only_conversations_taken_part_in_are_searched);

async fn query_syntax_is_searched_as_text(store: Arc<dyn Store>) {
    let (alice, _, conv) = super::messages::room(&*store).await;
    let a = ask(alice.id, conv.org_id);
    let msg = post_message(
        &*store,
        conv.id,
        alice.id,
        r#"say "hello" OR near(me) with -minus and a:b plus star*"#,
    )
    .await;
    for q in [
        r#""hello""#,
        r#"hello""#,
        "OR hello",
        "NEAR(me",
        "near(me)",
        "-minus",
        "a:b",
        "star*",
        "hello AND",
        "^hello",
        "{hello}",
        "hello)",
        "'hello'",
        "hello & | ! <->",
    ] {
        assert_eq!(a.ids(&*store, q).await, vec![msg.id], "{q}");
    }
    for q in ["\"", "*", "-", ":", "()", "* OR", "^", "!"] {
        // Words of punctuation alone match nothing (and are no syntax).
        let found = a.ids(&*store, q).await;
        assert!(found.is_empty() || found == vec![msg.id], "{q}: {found:?}");
    }
    assert!(a.ids(&*store, "NEAR(absent)").await.is_empty());
    assert!(
        a.ids(&*store, "hello OR absent").await.is_empty(),
        "OR is a word"
    );
}
check!(query_syntax_is_searched_as_text);

async fn pages_follow_either_order_without_repeats(store: Arc<dyn Store>) {
    let (alice, _, conv) = super::messages::room(&*store).await;
    let a = ask(alice.id, conv.org_id);
    let mut sent = Vec::new();
    for i in 0..12 {
        // More repetitions of the word score better.
        let text = format!("{} filler{i}", "apple ".repeat(1 + i % 4));
        sent.push(post_message(&*store, conv.id, alice.id, &text).await.id);
    }
    post_message(&*store, conv.id, alice.id, "no fruit here").await;
    // Newest first, by pages of 5.
    let mut newest = Vec::new();
    let mut from = SearchFrom::Newest(None);
    loop {
        let page = a.hits(&*store, "apple", from, 5).await;
        let Some(last) = page.last() else { break };
        from = SearchFrom::Newest(Some(last.message.id));
        newest.extend(page.iter().map(|h| h.message.id));
    }
    let mut expected = sent.clone();
    expected.reverse();
    assert_eq!(newest, expected);
    // Best first, by pages of 5: every hit once, scores never getting better.
    let all = a
        .hits(&*store, "apple", SearchFrom::Relevance(None), 100)
        .await;
    assert_eq!(all.len(), 12);
    let mut paged: Vec<SearchHit> = Vec::new();
    let mut from = SearchFrom::Relevance(None);
    loop {
        let page = a.hits(&*store, "apple", from, 5).await;
        let Some(last) = page.last() else { break };
        from = SearchFrom::Relevance(Some((last.score, last.message.id)));
        paged.extend(page);
    }
    let ids = |hits: &[SearchHit]| hits.iter().map(|h| h.message.id).collect::<Vec<_>>();
    assert_eq!(ids(&paged), ids(&all));
    assert!(paged.windows(2).all(|w| w[0].score <= w[1].score));
    let mut unique = ids(&paged);
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 12);
    // The best match repeats the word most.
    let best = &paged[0].message;
    assert!(best
        .content
        .as_deref()
        .unwrap()
        .starts_with("apple apple apple apple"));
}
check!(pages_follow_either_order_without_repeats);
