//! Orgs, members, invites and teams.

use super::*;

async fn org_create_update_delete(store: Arc<dyn Store>) {
    let alice = make_user(&*store, "alice").await;
    let org = make_org(&*store, "Acme", alice.id).await;
    assert_eq!(store.org(org.id).await.unwrap(), org);
    assert_eq!(
        store.membership(org.id, alice.id).await.unwrap(),
        Some(OrgRole::Owner)
    );
    assert_eq!(
        store.orgs_for_user(alice.id).await.unwrap(),
        vec![(org.clone(), OrgRole::Owner)]
    );

    let patch = OrgPatch {
        name: Some(Name::parse("Acme Inc").unwrap()),
        require_2fa: Some(true),
        message_retention_days: Some(Some(30)),
        audit_retention_days: Some(Some(90)),
        erasure: Some(ErasurePolicy::Anonymise),
    };
    let updated = store.update_org(org.id, &patch, &[]).await.unwrap();
    assert_eq!(updated.name, "Acme Inc");
    assert!(updated.require_2fa);
    assert_eq!(updated.message_retention_days, Some(30));
    assert_eq!(updated.audit_retention_days, Some(90));
    assert_eq!(updated.erasure, ErasurePolicy::Anonymise);
    assert_eq!(updated.created_at, org.created_at);

    let clear = OrgPatch {
        message_retention_days: Some(None),
        ..OrgPatch::default()
    };
    let cleared = store.update_org(org.id, &clear, &[]).await.unwrap();
    assert_eq!(cleared.message_retention_days, None, "Some(None) clears");
    assert_eq!(cleared.audit_retention_days, Some(90), "None keeps");
    assert_eq!(cleared.name, "Acme Inc");
    assert_eq!(store.org(org.id).await.unwrap(), cleared);
    assert_not_found(store.update_org(OrgId::new(), &clear, &[]).await);

    // Deleting the org takes everything in it along.
    let bob = make_user(&*store, "bob").await;
    join(&*store, org.id, bob.id).await;
    let team = Team {
        id: TeamId::new(),
        org_id: org.id,
        name: "ops".to_owned(),
        member_ids: vec![bob.id],
        created_at: at(1),
    };
    store.create_team(&team, &[]).await.unwrap();
    let conv = make_group(&*store, org.id, alice.id, &[bob.id], Visibility::ORG).await;
    let msg = post_message(&*store, conv.id, bob.id, "hi").await;
    store
        .create_invite(&invite(org.id, alice.id, None, None), b"code", &[])
        .await
        .unwrap();

    store.delete_org(org.id, &[]).await.unwrap();
    assert_not_found(store.org(org.id).await);
    assert_eq!(store.membership(org.id, bob.id).await.unwrap(), None);
    assert!(store.orgs_for_user(alice.id).await.unwrap().is_empty());
    assert_not_found(store.team(team.id).await);
    assert_not_found(store.conversation(conv.id).await);
    assert_not_found(store.message(msg.id).await);
    assert!(store.invite_by_code(b"code").await.unwrap().is_none());
    assert_not_found(store.delete_org(org.id, &[]).await);
    store.user(bob.id).await.expect("users stay");
}
check!(org_create_update_delete);

async fn members_and_roles(store: Arc<dyn Store>) {
    let alice = make_user(&*store, "alice").await;
    let bob = make_user(&*store, "bob").await;
    let carol = make_user(&*store, "carol").await;
    let org = make_org(&*store, "acme", alice.id).await;

    store
        .add_member(org.id, bob.id, OrgRole::Admin, at(5), &[])
        .await
        .unwrap();
    assert_conflict(
        store
            .add_member(org.id, bob.id, OrgRole::Member, at(6), &[])
            .await,
        Conflict::AlreadyMember,
    );
    assert_not_found(
        store
            .add_member(org.id, UserId::new(), OrgRole::Member, at(6), &[])
            .await,
    );
    store
        .add_member(org.id, carol.id, OrgRole::Viewer, at(7), &[])
        .await
        .unwrap();

    let bob_member = store.member(org.id, bob.id).await.unwrap();
    assert_eq!(
        bob_member,
        Member {
            org_id: org.id,
            user: bob.summary(),
            role: OrgRole::Admin,
            joined_at: at(5),
        }
    );
    assert_not_found(store.member(org.id, UserId::new()).await);

    let mut ids = vec![alice.id, bob.id, carol.id];
    ids.sort();
    let of = |ms: Vec<Member>| ms.into_iter().map(|m| m.user.id).collect::<Vec<_>>();
    let all = store
        .members(org.id, page(Cursor::After(UserId(uuid::Uuid::nil())), 100))
        .await
        .unwrap();
    assert_eq!(of(all), ids);
    let latest = store
        .members(org.id, page(Cursor::Latest, 2))
        .await
        .unwrap();
    assert_eq!(of(latest), vec![ids[2], ids[1]]);
    let before = store
        .members(org.id, page(Cursor::Before(ids[1]), 5))
        .await
        .unwrap();
    assert_eq!(of(before), vec![ids[0]]);

    // The only owner cannot step down.
    assert_conflict(
        store
            .set_member_role(org.id, alice.id, OrgRole::Admin, &[])
            .await,
        Conflict::LastOrgOwner,
    );
    assert_conflict(
        store.remove_member(org.id, alice.id, &[]).await,
        Conflict::LastOrgOwner,
    );
    store
        .set_member_role(org.id, alice.id, OrgRole::Owner, &[])
        .await
        .expect("an owner staying owner is fine");
    store
        .set_member_role(org.id, bob.id, OrgRole::Owner, &[])
        .await
        .unwrap();
    store
        .set_member_role(org.id, alice.id, OrgRole::Member, &[])
        .await
        .unwrap();
    assert_eq!(
        store.membership(org.id, alice.id).await.unwrap(),
        Some(OrgRole::Member)
    );
    assert_conflict(
        store
            .set_member_role(org.id, bob.id, OrgRole::Viewer, &[])
            .await,
        Conflict::LastOrgOwner,
    );
    assert_not_found(
        store
            .set_member_role(org.id, UserId::new(), OrgRole::Member, &[])
            .await,
    );

    store.remove_member(org.id, carol.id, &[]).await.unwrap();
    assert_eq!(store.membership(org.id, carol.id).await.unwrap(), None);
    assert_not_found(store.remove_member(org.id, carol.id, &[]).await);
}
check!(members_and_roles);

async fn remove_member_cleans_up_and_passes_ownership(store: Arc<dyn Store>) {
    let alice = make_user(&*store, "alice").await;
    let bob = make_user(&*store, "bob").await;
    let carol = make_user(&*store, "carol").await;
    let dave = make_user(&*store, "dave").await;
    let org = make_org(&*store, "acme", alice.id).await;
    let other = make_org(&*store, "other", alice.id).await;
    for (user, at_) in [(bob.id, 1), (carol.id, 2), (dave.id, 3)] {
        store
            .add_member(org.id, user, OrgRole::Member, at(at_), &[])
            .await
            .unwrap();
    }
    join(&*store, other.id, bob.id).await;

    let team = Team {
        id: TeamId::new(),
        org_id: org.id,
        name: "ops".to_owned(),
        member_ids: vec![bob.id, carol.id],
        created_at: at(1),
    };
    store.create_team(&team, &[]).await.unwrap();
    let other_team = Team {
        id: TeamId::new(),
        org_id: other.id,
        name: "ops".to_owned(),
        member_ids: vec![bob.id],
        created_at: at(1),
    };
    store.create_team(&other_team, &[]).await.unwrap();

    // Bob alone owns `owned`; dave joined it before carol.
    let owned = group(org.id, bob.id, Visibility::ORG);
    store
        .create_conversation(&owned, &[(bob.id, ConversationRole::Owner)], &[])
        .await
        .unwrap();
    store
        .add_participant(owned.id, carol.id, ConversationRole::Member, at(30), &[])
        .await
        .unwrap();
    store
        .add_participant(owned.id, dave.id, ConversationRole::Moderator, at(20), &[])
        .await
        .unwrap();
    // Bob co-owns `shared` with alice: nothing passes on.
    let shared = make_group(&*store, org.id, alice.id, &[carol.id], Visibility::ORG).await;
    store
        .add_participant(shared.id, bob.id, ConversationRole::Owner, at(20), &[])
        .await
        .unwrap();
    // Bob alone in `lonely`.
    let lonely = make_group(&*store, org.id, bob.id, &[], Visibility::PRIVATE).await;
    // In the other org nothing changes.
    let elsewhere = make_group(&*store, other.id, bob.id, &[alice.id], Visibility::ORG).await;

    let mut left = store.remove_member(org.id, bob.id, &[]).await.unwrap();
    left.sort_by_key(|c| c.0);
    let mut expected = vec![owned.id, shared.id, lonely.id];
    expected.sort_by_key(|c| c.0);
    assert_eq!(
        left, expected,
        "the conversations left in that org, and only those"
    );

    assert_eq!(store.membership(org.id, bob.id).await.unwrap(), None);
    assert_eq!(
        store.membership(other.id, bob.id).await.unwrap(),
        Some(OrgRole::Member)
    );
    assert_eq!(
        store.team(team.id).await.unwrap().member_ids,
        vec![carol.id]
    );
    assert_eq!(store.user_teams(org.id, bob.id).await.unwrap(), vec![]);
    assert_eq!(
        store.user_teams(other.id, bob.id).await.unwrap(),
        vec![other_team.id]
    );
    for conv in [owned.id, shared.id, lonely.id] {
        assert_eq!(store.participant_role(conv, bob.id).await.unwrap(), None);
    }
    assert_eq!(
        store.participant_role(owned.id, dave.id).await.unwrap(),
        Some(ConversationRole::Owner),
        "the longest-standing participant takes over"
    );
    assert_eq!(
        store.participant_role(owned.id, carol.id).await.unwrap(),
        Some(ConversationRole::Member)
    );
    assert_eq!(
        store.participant_role(shared.id, carol.id).await.unwrap(),
        Some(ConversationRole::Member)
    );
    assert_eq!(
        store.participant_role(shared.id, alice.id).await.unwrap(),
        Some(ConversationRole::Owner)
    );
    store.conversation(lonely.id).await.expect("kept");
    assert_eq!(
        store.participant_role(elsewhere.id, bob.id).await.unwrap(),
        Some(ConversationRole::Owner)
    );
    let mine: Vec<_> = store
        .conversations_for_user(bob.id, page(Cursor::Latest, 100))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(mine, vec![elsewhere.id]);
}
check!(remove_member_cleans_up_and_passes_ownership);

async fn transfer_org_swaps_roles(store: Arc<dyn Store>) {
    let alice = make_user(&*store, "alice").await;
    let bob = make_user(&*store, "bob").await;
    let org = make_org(&*store, "acme", alice.id).await;
    join(&*store, org.id, bob.id).await;
    store
        .transfer_org(org.id, alice.id, bob.id, &[])
        .await
        .unwrap();
    assert_eq!(
        store.membership(org.id, bob.id).await.unwrap(),
        Some(OrgRole::Owner)
    );
    assert_eq!(
        store.membership(org.id, alice.id).await.unwrap(),
        Some(OrgRole::Admin)
    );
    let stranger = make_user(&*store, "stranger").await;
    assert_not_found(store.transfer_org(org.id, bob.id, stranger.id, &[]).await);
    assert_eq!(
        store.membership(org.id, bob.id).await.unwrap(),
        Some(OrgRole::Owner),
        "a failed transfer changes nothing"
    );
    assert_eq!(store.membership(org.id, stranger.id).await.unwrap(), None);
}
check!(transfer_org_swaps_roles);

pub(crate) fn invite(
    org: OrgId,
    by: UserId,
    max_uses: Option<i32>,
    expires_at: Option<DateTime<Utc>>,
) -> Invite {
    Invite {
        id: InviteId::new(),
        org_id: org,
        role: OrgRole::Member,
        max_uses,
        uses: 0,
        expires_at,
        username: None,
        created_by: by,
        created_at: at(0),
    }
}

/// AZ-7: an invite naming a user is listed for them only, taken by them only (by id or by its
/// code), once, and can be revoked; many concurrent acceptances add one membership.
async fn named_invites_reach_only_their_invitee(store: Arc<dyn Store>) {
    let alice = make_user(&*store, "alice").await;
    let bob = make_user(&*store, "bob").await;
    let carol = make_user(&*store, "carol").await;
    let org = make_org(&*store, "acme", alice.id).await;
    let mut named = invite(org.id, alice.id, Some(1), Some(at(1000)));
    named.username = Some("bob".into());
    store.create_invite(&named, b"named", &[]).await.unwrap();
    assert_eq!(
        store.org_invites(org.id).await.unwrap(),
        vec![named.clone()]
    );
    assert!(store
        .pending_invites(carol.id, at(1))
        .await
        .unwrap()
        .is_empty());
    let pending = store.pending_invites(bob.id, at(1)).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].id, pending[0].org_name.as_str()),
        (named.id, "acme")
    );
    assert!(
        store
            .pending_invites(bob.id, at(1000))
            .await
            .unwrap()
            .is_empty(),
        "expired invites are not pending"
    );
    // Nobody else takes it, by id or by code.
    assert!(matches!(
        store.accept_invite(named.id, carol.id, at(2), &[]).await,
        Err(StoreError::NotFound)
    ));
    assert_conflict(
        store.redeem_invite(b"named", carol.id, at(2), &[]).await,
        Conflict::InviteExhausted,
    );
    assert!(matches!(
        store.accept_invite(named.id, bob.id, at(1000), &[]).await,
        Err(StoreError::NotFound)
    ));
    // Concurrent acceptances by the invitee: exactly one succeeds (the HTTP suite sends 100).
    let tries = (0..20).map(|_| {
        let store = store.clone();
        let id = named.id;
        let bob = bob.id;
        tokio::spawn(async move { store.accept_invite(id, bob, at(3), &[]).await })
    });
    let mut ok = 0;
    for t in tries {
        if t.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(
        store.member(org.id, bob.id).await.unwrap().role,
        OrgRole::Member
    );
    assert!(store
        .pending_invites(bob.id, at(4))
        .await
        .unwrap()
        .is_empty());
    // Revoking: only within its org.
    let other = make_org(&*store, "other", carol.id).await;
    assert!(matches!(
        store.revoke_invite(other.id, named.id, &[]).await,
        Err(StoreError::NotFound)
    ));
    store.revoke_invite(org.id, named.id, &[]).await.unwrap();
    assert!(store.org_invites(org.id).await.unwrap().is_empty());
}
check!(named_invites_reach_only_their_invitee);

async fn invites_are_redeemed_within_limits(store: Arc<dyn Store>) {
    let alice = make_user(&*store, "alice").await;
    let bob = make_user(&*store, "bob").await;
    let carol = make_user(&*store, "carol").await;
    let dave = make_user(&*store, "dave").await;
    let org = make_org(&*store, "acme", alice.id).await;

    let mut limited = invite(org.id, alice.id, Some(2), Some(at(1000)));
    limited.role = OrgRole::Viewer;
    store
        .create_invite(&limited, b"limited", &[])
        .await
        .unwrap();
    assert_eq!(
        store.invite_by_code(b"limited").await.unwrap(),
        Some(limited.clone())
    );
    assert_eq!(store.invite_by_code(b"unknown").await.unwrap(), None);

    let used = store
        .redeem_invite(b"limited", bob.id, at(10), &[])
        .await
        .unwrap();
    assert_eq!(used.uses, 1);
    assert_eq!(used.id, limited.id);
    assert_eq!(
        store.member(org.id, bob.id).await.unwrap().role,
        OrgRole::Viewer
    );
    assert_eq!(
        store.member(org.id, bob.id).await.unwrap().joined_at,
        at(10)
    );

    assert_conflict(
        store.redeem_invite(b"limited", bob.id, at(11), &[]).await,
        Conflict::AlreadyMember,
    );
    assert_eq!(
        store
            .invite_by_code(b"limited")
            .await
            .unwrap()
            .unwrap()
            .uses,
        1,
        "a refused redemption uses nothing"
    );
    assert_conflict(
        store.redeem_invite(b"limited", alice.id, at(11), &[]).await,
        Conflict::AlreadyMember,
    );

    store
        .redeem_invite(b"limited", carol.id, at(12), &[])
        .await
        .unwrap();
    assert_conflict(
        store.redeem_invite(b"limited", dave.id, at(13), &[]).await,
        Conflict::InviteExhausted,
    );
    assert_eq!(store.membership(org.id, dave.id).await.unwrap(), None);
    assert_eq!(
        store
            .invite_by_code(b"limited")
            .await
            .unwrap()
            .unwrap()
            .uses,
        2
    );

    let expiring = invite(org.id, alice.id, None, Some(at(100)));
    store
        .create_invite(&expiring, b"expiring", &[])
        .await
        .unwrap();
    assert_conflict(
        store
            .redeem_invite(b"expiring", dave.id, at(100), &[])
            .await,
        Conflict::InviteExhausted,
    );
    assert_conflict(
        store.redeem_invite(b"unknown", dave.id, at(1), &[]).await,
        Conflict::InviteExhausted,
    );
    let redeemed = store
        .redeem_invite(b"expiring", dave.id, at(99), &[])
        .await
        .unwrap();
    assert_eq!(redeemed.uses, 1);
    assert_eq!(redeemed.max_uses, None);

    let open = invite(org.id, alice.id, None, None);
    store.create_invite(&open, b"open", &[]).await.unwrap();
    let eve = make_user(&*store, "eve").await;
    store
        .redeem_invite(b"open", eve.id, at(1_000_000), &[])
        .await
        .unwrap();
}
check!(invites_are_redeemed_within_limits);

async fn teams_and_team_members(store: Arc<dyn Store>) {
    let alice = make_user(&*store, "alice").await;
    let bob = make_user(&*store, "bob").await;
    let org = make_org(&*store, "acme", alice.id).await;
    let other = make_org(&*store, "other", alice.id).await;
    let team = Team {
        id: TeamId::new(),
        org_id: org.id,
        name: "Design".to_owned(),
        member_ids: vec![alice.id],
        created_at: at(3),
    };
    store.create_team(&team, &[]).await.unwrap();
    assert_eq!(store.team(team.id).await.unwrap(), team);

    let twin = Team {
        id: TeamId::new(),
        ..team.clone()
    };
    assert_conflict(store.create_team(&twin, &[]).await, Conflict::TeamNameTaken);
    let elsewhere = Team {
        id: TeamId::new(),
        org_id: other.id,
        ..team.clone()
    };
    store
        .create_team(&elsewhere, &[])
        .await
        .expect("the same name in another org is fine");
    let second = Team {
        id: TeamId::new(),
        name: "Ops".to_owned(),
        member_ids: vec![],
        ..team.clone()
    };
    store.create_team(&second, &[]).await.unwrap();

    store.add_team_member(team.id, bob.id, &[]).await.unwrap();
    store
        .add_team_member(team.id, bob.id, &[])
        .await
        .expect("adding twice is not an error");
    assert_not_found(store.add_team_member(TeamId::new(), bob.id, &[]).await);
    let mut members = vec![alice.id, bob.id];
    members.sort();
    assert_eq!(store.team(team.id).await.unwrap().member_ids, members);

    let teams = store.teams(org.id).await.unwrap();
    let mut expected = vec![
        Team {
            member_ids: members.clone(),
            ..team.clone()
        },
        second.clone(),
    ];
    expected.sort_by_key(|t| t.id);
    assert_eq!(teams, expected);
    assert_eq!(
        store.user_teams(org.id, bob.id).await.unwrap(),
        vec![team.id]
    );
    assert_eq!(store.user_teams(other.id, bob.id).await.unwrap(), vec![]);

    store
        .remove_team_member(team.id, bob.id, &[])
        .await
        .unwrap();
    assert_not_found(store.remove_team_member(team.id, bob.id, &[]).await);
    assert_eq!(
        store.team(team.id).await.unwrap().member_ids,
        vec![alice.id]
    );
    assert_not_found(store.team(TeamId::new()).await);
}
check!(teams_and_team_members);
