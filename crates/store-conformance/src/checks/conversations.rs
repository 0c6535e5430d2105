//! Conversations, visibility and participants.

use super::*;

fn ids(convs: Vec<Conversation>) -> Vec<ConversationId> {
    convs.into_iter().map(|c| c.id).collect()
}

async fn make_team(store: &dyn Store, org: OrgId, name: &str, members: Vec<UserId>) -> Team {
    let team = Team {
        id: TeamId::new(),
        org_id: org,
        name: name.to_owned(),
        member_ids: members,
        created_at: at(1),
    };
    store.create_team(&team, &[]).await.unwrap();
    team
}

async fn conversations_create_and_direct_pairs(store: Arc<dyn Store>) {
    let alice = make_user(&*store, "alice").await;
    let bob = make_user(&*store, "bob").await;
    let org = make_org(&*store, "acme", alice.id).await;
    let other = make_org(&*store, "other", alice.id).await;
    join(&*store, org.id, bob.id).await;
    let t1 = make_team(&*store, org.id, "one", vec![bob.id]).await;
    let t2 = make_team(&*store, org.id, "two", vec![]).await;

    let mut teams = vec![t2.id, t1.id];
    let conv = make_group(
        &*store,
        org.id,
        alice.id,
        &[bob.id],
        Visibility::Teams {
            teams: teams.clone(),
        },
    )
    .await;
    teams.sort();
    let stored = store.conversation(conv.id).await.unwrap();
    assert_eq!(
        stored,
        Conversation {
            visibility: Visibility::Teams { teams },
            ..conv.clone()
        },
        "teams come back sorted by id"
    );
    assert_eq!(
        store.participant_role(conv.id, alice.id).await.unwrap(),
        Some(ConversationRole::Owner)
    );
    assert_eq!(
        store.participant_role(conv.id, bob.id).await.unwrap(),
        Some(ConversationRole::Member)
    );
    assert_not_found(store.conversation(ConversationId::new()).await);

    let mut pair = [alice.id, bob.id];
    pair.sort();
    let key = format!("{}:{}", pair[0], pair[1]);
    let direct = Conversation {
        kind: ConversationKind::Direct,
        name: None,
        direct_key: Some(key.clone()),
        ..group(org.id, alice.id, Visibility::PRIVATE)
    };
    let both = [
        (alice.id, ConversationRole::Owner),
        (bob.id, ConversationRole::Member),
    ];
    store
        .create_conversation(&direct, &both, &[])
        .await
        .unwrap();
    assert_eq!(
        store.direct_conversation(org.id, &key).await.unwrap(),
        Some(direct.clone())
    );
    assert_eq!(
        store.direct_conversation(other.id, &key).await.unwrap(),
        None
    );

    let again = Conversation {
        id: ConversationId::new(),
        ..direct.clone()
    };
    assert_conflict(
        store.create_conversation(&again, &both, &[]).await,
        Conflict::DirectExists,
    );
    assert_not_found(store.conversation(again.id).await);
    let in_other_org = Conversation {
        id: ConversationId::new(),
        org_id: other.id,
        ..direct.clone()
    };
    store
        .create_conversation(&in_other_org, &both, &[])
        .await
        .expect("one direct conversation per pair and org");

    let doubled = group(org.id, alice.id, Visibility::ORG);
    assert_conflict(
        store
            .create_conversation(
                &doubled,
                &[
                    (alice.id, ConversationRole::Owner),
                    (alice.id, ConversationRole::Member),
                ],
                &[],
            )
            .await,
        Conflict::AlreadyParticipant,
    );
    assert_not_found(store.conversation(doubled.id).await);
}
check!(conversations_create_and_direct_pairs);

async fn conversations_for_user_pages(store: Arc<dyn Store>) {
    let alice = make_user(&*store, "alice").await;
    let bob = make_user(&*store, "bob").await;
    let org = make_org(&*store, "acme", alice.id).await;
    join(&*store, org.id, bob.id).await;
    let mut mine = Vec::new();
    for _ in 0..5 {
        mine.push(
            make_group(&*store, org.id, alice.id, &[], Visibility::ORG)
                .await
                .id,
        );
    }
    make_group(&*store, org.id, bob.id, &[], Visibility::ORG).await;
    mine.sort();

    let latest = store
        .conversations_for_user(alice.id, page(Cursor::Latest, 2))
        .await
        .unwrap();
    assert_eq!(ids(latest), vec![mine[4], mine[3]]);
    let before = store
        .conversations_for_user(alice.id, page(Cursor::Before(mine[3]), 2))
        .await
        .unwrap();
    assert_eq!(ids(before), vec![mine[2], mine[1]]);
    let after = store
        .conversations_for_user(alice.id, page(Cursor::After(mine[1]), 10))
        .await
        .unwrap();
    assert_eq!(ids(after), vec![mine[2], mine[3], mine[4]]);
    let first = store
        .conversations_for_user(alice.id, page(Cursor::Before(mine[0]), 10))
        .await
        .unwrap();
    assert!(first.is_empty());
}
check!(conversations_for_user_pages);

async fn available_conversations_scope(store: Arc<dyn Store>) {
    let alice = make_user(&*store, "alice").await;
    let bob = make_user(&*store, "bob").await;
    let org = make_org(&*store, "acme", alice.id).await;
    let other = make_org(&*store, "other", alice.id).await;
    store
        .add_member(org.id, bob.id, OrgRole::Viewer, at(1), &[])
        .await
        .unwrap();
    let bobs = make_team(&*store, org.id, "bobs", vec![bob.id]).await;
    let others = make_team(&*store, org.id, "others", vec![alice.id]).await;

    let open = make_group(&*store, org.id, alice.id, &[], Visibility::ORG).await;
    let for_bobs = make_group(
        &*store,
        org.id,
        alice.id,
        &[],
        Visibility::Teams {
            teams: vec![others.id, bobs.id],
        },
    )
    .await;
    make_group(
        &*store,
        org.id,
        alice.id,
        &[],
        Visibility::Teams {
            teams: vec![others.id],
        },
    )
    .await;
    make_group(&*store, org.id, alice.id, &[], Visibility::PRIVATE).await;
    make_group(&*store, org.id, alice.id, &[bob.id], Visibility::ORG).await;
    make_group(&*store, other.id, alice.id, &[], Visibility::ORG).await;
    let archived = make_group(&*store, org.id, alice.id, &[], Visibility::ORG).await;
    store
        .update_conversation(
            archived.id,
            &ConversationPatch {
                archived: Some(true),
                ..ConversationPatch::default()
            },
            at(20),
            &[],
        )
        .await
        .unwrap();

    let mut expected = vec![open.id, for_bobs.id];
    expected.sort();
    let available = store
        .available_conversations(
            bob.id,
            page(Cursor::After(ConversationId(uuid::Uuid::nil())), 100),
        )
        .await
        .unwrap();
    let team_list = available
        .iter()
        .find(|c| c.id == for_bobs.id)
        .map(|c| c.visibility.clone());
    let mut team_ids = vec![others.id, bobs.id];
    team_ids.sort();
    assert_eq!(team_list, Some(Visibility::Teams { teams: team_ids }));
    assert_eq!(ids(available), expected);

    let latest = store
        .available_conversations(bob.id, page(Cursor::Latest, 1))
        .await
        .unwrap();
    assert_eq!(ids(latest), vec![expected[1]]);
    let before = store
        .available_conversations(bob.id, page(Cursor::Before(expected[1]), 5))
        .await
        .unwrap();
    assert_eq!(ids(before), vec![expected[0]]);

    store
        .add_participant(open.id, bob.id, ConversationRole::Member, at(30), &[])
        .await
        .unwrap();
    let available = store
        .available_conversations(bob.id, page(Cursor::Latest, 100))
        .await
        .unwrap();
    assert_eq!(ids(available), vec![for_bobs.id]);

    let stranger = make_user(&*store, "stranger").await;
    assert!(store
        .available_conversations(stranger.id, page(Cursor::Latest, 100))
        .await
        .unwrap()
        .is_empty());
}
check!(available_conversations_scope);

async fn update_and_delete_conversation(store: Arc<dyn Store>) {
    let alice = make_user(&*store, "alice").await;
    let bob = make_user(&*store, "bob").await;
    let org = make_org(&*store, "acme", alice.id).await;
    let team = make_team(&*store, org.id, "t", vec![alice.id]).await;
    let conv = make_group(&*store, org.id, alice.id, &[bob.id], Visibility::ORG).await;

    let renamed = store
        .update_conversation(
            conv.id,
            &ConversationPatch {
                name: Some(Name::parse("random").unwrap()),
                archived: Some(true),
                visibility: Some(Visibility::Teams {
                    teams: vec![team.id],
                }),
            },
            at(50),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(renamed.name.as_deref(), Some("random"));
    assert!(renamed.archived);
    assert_eq!(
        renamed.visibility,
        Visibility::Teams {
            teams: vec![team.id]
        }
    );
    assert_eq!(renamed.updated_at, at(50));
    assert_eq!(renamed.created_at, conv.created_at);
    assert_eq!(store.conversation(conv.id).await.unwrap(), renamed);

    let unchanged = store
        .update_conversation(conv.id, &ConversationPatch::default(), at(60), &[])
        .await
        .unwrap();
    assert_eq!(unchanged.name.as_deref(), Some("random"));
    assert_eq!(unchanged.visibility, renamed.visibility);
    assert_eq!(unchanged.updated_at, at(60));

    let private = store
        .update_conversation(
            conv.id,
            &ConversationPatch {
                visibility: Some(Visibility::PRIVATE),
                archived: Some(false),
                ..ConversationPatch::default()
            },
            at(70),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(private.visibility, Visibility::PRIVATE);
    assert!(!private.archived);
    assert_not_found(
        store
            .update_conversation(
                ConversationId::new(),
                &ConversationPatch::default(),
                at(1),
                &[],
            )
            .await,
    );

    let msg = post_message(&*store, conv.id, bob.id, "bye").await;
    store.delete_conversation(conv.id, &[]).await.unwrap();
    assert_not_found(store.conversation(conv.id).await);
    assert_not_found(store.message(msg.id).await);
    assert_eq!(store.participant_role(conv.id, bob.id).await.unwrap(), None);
    assert!(store
        .conversations_for_user(bob.id, page(Cursor::Latest, 10))
        .await
        .unwrap()
        .is_empty());
    assert_not_found(store.delete_conversation(conv.id, &[]).await);
}
check!(update_and_delete_conversation);

async fn participants_page_and_add(store: Arc<dyn Store>) {
    let alice = make_user(&*store, "alice").await;
    let org = make_org(&*store, "acme", alice.id).await;
    let conv = make_group(&*store, org.id, alice.id, &[], Visibility::ORG).await;
    let mut everyone = vec![alice.id];
    for i in 0..4 {
        let user = make_user(&*store, &format!("user{i}")).await;
        join(&*store, org.id, user.id).await;
        let p = store
            .add_participant(
                conv.id,
                user.id,
                ConversationRole::Moderator,
                at(40 + i),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(
            p,
            Participant {
                conversation_id: conv.id,
                user: user.summary(),
                role: ConversationRole::Moderator,
                joined_at: at(40 + i),
            }
        );
        everyone.push(user.id);
    }
    assert_conflict(
        store
            .add_participant(conv.id, alice.id, ConversationRole::Member, at(50), &[])
            .await,
        Conflict::AlreadyParticipant,
    );
    assert_not_found(
        store
            .add_participant(
                ConversationId::new(),
                alice.id,
                ConversationRole::Member,
                at(50),
                &[],
            )
            .await,
    );
    everyone.sort();
    let of = |ps: Vec<Participant>| ps.into_iter().map(|p| p.user.id).collect::<Vec<_>>();

    let latest = store
        .participants(conv.id, page(Cursor::Latest, 2))
        .await
        .unwrap();
    assert_eq!(of(latest), vec![everyone[4], everyone[3]]);
    let after = store
        .participants(conv.id, page(Cursor::After(everyone[1]), 2))
        .await
        .unwrap();
    assert_eq!(of(after), vec![everyone[2], everyone[3]]);
    let before = store
        .participants(conv.id, page(Cursor::Before(everyone[1]), 2))
        .await
        .unwrap();
    assert_eq!(of(before), vec![everyone[0]]);
    let all = store
        .participants(conv.id, page(Cursor::Latest, 100))
        .await
        .unwrap();
    let owner = all.iter().find(|p| p.user.id == alice.id).unwrap();
    assert_eq!(owner.role, ConversationRole::Owner);
    assert_eq!(owner.joined_at, conv.created_at);
}
check!(participants_page_and_add);

async fn remove_participant_keeps_an_owner(store: Arc<dyn Store>) {
    let alice = make_user(&*store, "alice").await;
    let bob = make_user(&*store, "bob").await;
    let org = make_org(&*store, "acme", alice.id).await;
    let conv = make_group(&*store, org.id, alice.id, &[bob.id], Visibility::ORG).await;

    assert_conflict(
        store.remove_participant(conv.id, alice.id, &[]).await,
        Conflict::LastConversationOwner,
    );
    assert_not_found(store.remove_participant(conv.id, UserId::new(), &[]).await);
    assert_not_found(
        store
            .remove_participant(ConversationId::new(), alice.id, &[])
            .await,
    );
    store
        .remove_participant(conv.id, bob.id, &[])
        .await
        .unwrap();
    store
        .remove_participant(conv.id, alice.id, &[])
        .await
        .expect("the last participant may leave");
    assert_eq!(
        store.participant_role(conv.id, alice.id).await.unwrap(),
        None
    );

    let conv = make_group(&*store, org.id, alice.id, &[bob.id], Visibility::ORG).await;
    let carol = make_user(&*store, "carol").await;
    store
        .add_participant(conv.id, carol.id, ConversationRole::Owner, at(20), &[])
        .await
        .unwrap();
    store
        .remove_participant(conv.id, alice.id, &[])
        .await
        .unwrap();
    assert_conflict(
        store.remove_participant(conv.id, carol.id, &[]).await,
        Conflict::LastConversationOwner,
    );
}
check!(remove_participant_keeps_an_owner);
