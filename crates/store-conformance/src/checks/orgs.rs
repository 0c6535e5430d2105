//! Orgs, members, invites and teams.

use super::*;

/// The invite with this code hash, which must exist.
async fn stored_invite(store: &dyn Store, code_hash: &[u8]) -> Invite {
    let invite = store.invite_by_code(code_hash).await.unwrap();
    invite.expect("an invite")
}

/// `user` redeems the invite with `code_hash`, `secs` into the test.
async fn redeem(
    store: &dyn Store,
    code_hash: &[u8],
    user: UserId,
    secs: i64,
) -> StoreResult<(Invite, Member)> {
    store
        .redeem_invite(code_hash, used_by(user, secs), &[])
        .await
}

/// `user` using an invite, `secs` into the test.
fn used_by(user: UserId, secs: i64) -> InviteUse {
    InviteUse { user, at: at(secs) }
}

async fn org_create_update_delete(store: Arc<dyn Store>) {
    let (alice, org) = owned_org(&*store, "alice", "Acme").await;
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
    let team = make_team(&*store, org.id, "ops", vec![bob.id]).await;
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
    let [alice, bob, carol] = make_users(&*store, ["alice", "bob", "carol"]).await;
    let org = make_org(&*store, "acme", alice.id).await;

    let added = store
        .add_member(membership(org.id, bob.id, OrgRole::Admin), at(5), &[])
        .await
        .unwrap();
    assert_conflict(
        store
            .add_member(membership(org.id, bob.id, OrgRole::Member), at(6), &[])
            .await,
        Conflict::AlreadyMember,
    );
    assert_not_found(
        store
            .add_member(
                membership(org.id, UserId::new(), OrgRole::Member),
                at(6),
                &[],
            )
            .await,
    );
    store
        .add_member(membership(org.id, carol.id, OrgRole::Viewer), at(7), &[])
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
    assert_eq!(added, bob_member, "adding answers the membership");
    assert_not_found(store.member(org.id, UserId::new()).await);

    let mut ids = vec![alice.id, bob.id, carol.id];
    ids.sort();
    assert_pages(
        |p| store.members(org.id, p),
        |m| m.user.id,
        &[
            (Cursor::After(UserId(uuid::Uuid::nil())), 100, ids.clone()),
            (Cursor::Latest, 2, vec![ids[2], ids[1]]),
            (Cursor::Before(ids[1]), 5, vec![ids[0]]),
        ],
    )
    .await;

    let set_role = |user, role| store.set_member_role(membership(org.id, user, role), None, &[]);
    // The only owner cannot step down.
    assert_conflict(
        set_role(alice.id, OrgRole::Admin).await,
        Conflict::LastOrgOwner,
    );
    assert_conflict(
        store.remove_member(org.id, alice.id, None, &[]).await,
        Conflict::LastOrgOwner,
    );
    let (same, changed) = set_role(alice.id, OrgRole::Owner)
        .await
        .expect("an owner staying owner is fine");
    assert_eq!((same.role, changed), (OrgRole::Owner, false));
    let (promoted, changed) = set_role(bob.id, OrgRole::Owner).await.unwrap();
    assert_eq!(
        (promoted.user.id, promoted.role, promoted.joined_at, changed),
        (bob.id, OrgRole::Owner, at(5), true)
    );
    set_role(alice.id, OrgRole::Member).await.unwrap();
    assert_eq!(
        store.membership(org.id, alice.id).await.unwrap(),
        Some(OrgRole::Member)
    );
    assert_conflict(
        set_role(bob.id, OrgRole::Viewer).await,
        Conflict::LastOrgOwner,
    );
    assert_not_found(set_role(UserId::new(), OrgRole::Member).await);

    let gone = store
        .remove_member(org.id, carol.id, None, &[])
        .await
        .unwrap();
    assert_eq!(
        gone.member,
        Member {
            org_id: org.id,
            user: carol.summary(),
            role: OrgRole::Viewer,
            joined_at: at(7),
        },
        "the membership as the removal found it"
    );
    assert!(gone.participations.is_empty());
    assert_eq!(store.membership(org.id, carol.id).await.unwrap(), None);
    assert_not_found(store.remove_member(org.id, carol.id, None, &[]).await);
}
check!(members_and_roles);

/// A change decided on roles read before its transaction is made only while its rule allows
/// it on the roles held then: an admin's demotion or removal of a member promoted to owner
/// meanwhile, or any change by an admin demoted meanwhile, is refused and changes nothing
/// (AZ-2).
async fn membership_changes_hold_only_while_their_rule_allows_them(store: Arc<dyn Store>) {
    let [owner, admin, bob] = make_users(&*store, ["owner", "admin", "bob"]).await;
    let org = make_org(&*store, "acme", owner.id).await;
    for (user, role) in [(admin.id, OrgRole::Admin), (bob.id, OrgRole::Member)] {
        store
            .add_member(membership(org.id, user, role), at(1), &[])
            .await
            .unwrap();
    }
    // The rule of an admin's changes: neither to nor from owner, and only while an admin.
    let admins = |mine: Option<OrgRole>, target: OrgRole| {
        mine.is_some_and(|m| matches!(m, OrgRole::Owner | OrgRole::Admin))
            && target != OrgRole::Owner
    };
    let by_admin = Some(DecidedOn {
        by: admin.id,
        allows: &admins,
    });
    let role_of = |user| store.membership(org.id, user);
    // Bob was made an owner after the admin read him as a member.
    store
        .set_member_role(membership(org.id, bob.id, OrgRole::Owner), None, &[])
        .await
        .unwrap();
    let demote = membership(org.id, bob.id, OrgRole::Viewer);
    assert_conflict(
        store.set_member_role(demote, by_admin, &[]).await,
        Conflict::RolesChanged,
    );
    assert_conflict(
        store.remove_member(org.id, bob.id, by_admin, &[]).await,
        Conflict::RolesChanged,
    );
    assert_eq!(role_of(bob.id).await.unwrap(), Some(OrgRole::Owner));
    // Back to member: the admin's change is allowed again, and made.
    store
        .set_member_role(membership(org.id, bob.id, OrgRole::Member), None, &[])
        .await
        .unwrap();
    let (viewer, changed) = store.set_member_role(demote, by_admin, &[]).await.unwrap();
    assert_eq!((viewer.role, changed), (OrgRole::Viewer, true));
    // The admin was made a member after deciding: neither change nor removal lands.
    store
        .set_member_role(membership(org.id, admin.id, OrgRole::Member), None, &[])
        .await
        .unwrap();
    let restore = membership(org.id, bob.id, OrgRole::Member);
    assert_conflict(
        store.set_member_role(restore, by_admin, &[]).await,
        Conflict::RolesChanged,
    );
    assert_conflict(
        store.remove_member(org.id, bob.id, by_admin, &[]).await,
        Conflict::RolesChanged,
    );
    assert_eq!(role_of(bob.id).await.unwrap(), Some(OrgRole::Viewer));
    // Nor by someone who has left the org since.
    store
        .remove_member(org.id, admin.id, None, &[])
        .await
        .unwrap();
    assert_conflict(
        store.remove_member(org.id, bob.id, by_admin, &[]).await,
        Conflict::RolesChanged,
    );
    // The owner's removal, allowed on what holds, is made.
    let owners = |mine: Option<OrgRole>, _: OrgRole| mine == Some(OrgRole::Owner);
    let by_owner = Some(DecidedOn {
        by: owner.id,
        allows: &owners,
    });
    store
        .remove_member(org.id, bob.id, by_owner, &[])
        .await
        .unwrap();
    assert_eq!(role_of(bob.id).await.unwrap(), None);
}
check!(membership_changes_hold_only_while_their_rule_allows_them);

async fn remove_member_cleans_up_and_passes_ownership(store: Arc<dyn Store>) {
    let [alice, bob, carol, dave] = make_users(&*store, ["alice", "bob", "carol", "dave"]).await;
    let org = make_org(&*store, "acme", alice.id).await;
    let other = make_org(&*store, "other", alice.id).await;
    for (user, at_) in [(bob.id, 1), (carol.id, 2), (dave.id, 3)] {
        store
            .add_member(membership(org.id, user, OrgRole::Member), at(at_), &[])
            .await
            .unwrap();
    }
    join(&*store, other.id, bob.id).await;

    let team = make_team(&*store, org.id, "ops", vec![bob.id, carol.id]).await;
    let other_team = make_team(&*store, other.id, "ops", vec![bob.id]).await;

    // Bob alone owns `owned`; dave joined it before carol.
    let owned = group(org.id, bob.id, Visibility::ORG);
    store
        .create_conversation(&owned, &[(bob.id, ConversationRole::Owner)], &[])
        .await
        .unwrap();
    take_part(&*store, owned.id, carol.id, ConversationRole::Member, 30).await;
    take_part(&*store, owned.id, dave.id, ConversationRole::Moderator, 20).await;
    // Bob co-owns `shared` with alice: nothing passes on.
    let shared = make_group(&*store, org.id, alice.id, &[carol.id], Visibility::ORG).await;
    take_part(&*store, shared.id, bob.id, ConversationRole::Owner, 20).await;
    // Bob alone in `lonely`.
    let lonely = make_group(&*store, org.id, bob.id, &[], Visibility::PRIVATE).await;
    // In the other org nothing changes.
    let elsewhere = make_group(&*store, other.id, bob.id, &[alice.id], Visibility::ORG).await;

    let removed = store
        .remove_member(org.id, bob.id, None, &[])
        .await
        .unwrap();
    assert_eq!(
        (removed.member.user.clone(), removed.member.role),
        (bob.summary(), OrgRole::Member)
    );
    // Each participation as it was: bob owned all three (dave took `owned` over after).
    for p in &removed.participations {
        assert_eq!((&p.user, p.role), (&bob.summary(), ConversationRole::Owner));
    }
    let joined = |c: ConversationId| {
        removed
            .participations
            .iter()
            .find(|p| p.conversation_id == c)
            .map(|p| p.joined_at)
    };
    assert_eq!(joined(shared.id), Some(at(20)));
    let mut left: Vec<ConversationId> = removed
        .participations
        .iter()
        .map(|p| p.conversation_id)
        .collect();
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
    // Bob is gone from every conversation; in `owned` the longest-standing participant
    // (dave) takes over.
    let roles = [
        (owned.id, bob.id, None),
        (shared.id, bob.id, None),
        (lonely.id, bob.id, None),
        (owned.id, dave.id, Some(ConversationRole::Owner)),
        (owned.id, carol.id, Some(ConversationRole::Member)),
        (shared.id, carol.id, Some(ConversationRole::Member)),
        (shared.id, alice.id, Some(ConversationRole::Owner)),
    ];
    assert_participant_roles(&*store, &roles).await;
    store.conversation(lonely.id).await.expect("kept");
    assert_eq!(
        store.participant_role(elsewhere.id, bob.id).await.unwrap(),
        Some(ConversationRole::Owner)
    );
    let mine = ids(store
        .conversations_for_user(bob.id, page(Cursor::Latest, 100))
        .await
        .unwrap());
    assert_eq!(mine, vec![elsewhere.id]);
}
check!(remove_member_cleans_up_and_passes_ownership);

async fn transfer_org_swaps_roles(store: Arc<dyn Store>) {
    let [alice, bob] = make_users(&*store, ["alice", "bob"]).await;
    let org = make_org(&*store, "acme", alice.id).await;
    join(&*store, org.id, bob.id).await;
    let changed = store
        .transfer_org(transfer(org.id, alice.id, bob.id), &[])
        .await
        .unwrap();
    let roles: Vec<(UserId, OrgRole)> = changed.iter().map(|m| (m.user.id, m.role)).collect();
    assert_eq!(
        roles,
        vec![(bob.id, OrgRole::Owner), (alice.id, OrgRole::Admin)],
        "the new owner first"
    );
    assert_eq!(
        store.membership(org.id, bob.id).await.unwrap(),
        Some(OrgRole::Owner)
    );
    assert_eq!(
        store.membership(org.id, alice.id).await.unwrap(),
        Some(OrgRole::Admin)
    );
    let stranger = make_user(&*store, "stranger").await;
    assert_not_found(
        store
            .transfer_org(transfer(org.id, bob.id, stranger.id), &[])
            .await,
    );
    assert_eq!(
        store.membership(org.id, bob.id).await.unwrap(),
        Some(OrgRole::Owner),
        "a failed transfer changes nothing"
    );
    assert_eq!(store.membership(org.id, stranger.id).await.unwrap(), None);
    // To a co-owner, only the one handing over changes.
    store
        .set_member_role(membership(org.id, alice.id, OrgRole::Owner), None, &[])
        .await
        .unwrap();
    let changed = store
        .transfer_org(transfer(org.id, bob.id, alice.id), &[])
        .await
        .unwrap();
    let roles: Vec<(UserId, OrgRole)> = changed.iter().map(|m| (m.user.id, m.role)).collect();
    assert_eq!(roles, vec![(bob.id, OrgRole::Admin)]);
    let nothing = store
        .transfer_org(transfer(org.id, alice.id, alice.id), &[])
        .await;
    assert!(nothing.unwrap().is_empty(), "to oneself nothing changes");
    // Only an owner hands over: one demoted after deciding to (AZ-2) changes nothing.
    assert_conflict(
        store
            .transfer_org(transfer(org.id, bob.id, alice.id), &[])
            .await,
        Conflict::RolesChanged,
    );
    assert_eq!(
        store.membership(org.id, bob.id).await.unwrap(),
        Some(OrgRole::Admin)
    );
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
    let [alice, bob, carol] = make_users(&*store, ["alice", "bob", "carol"]).await;
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
        store
            .accept_invite(named.id, used_by(carol.id, 2), &[])
            .await,
        Err(StoreError::NotFound)
    ));
    assert_conflict(
        redeem(&*store, b"named", carol.id, 2).await,
        Conflict::InviteExhausted,
    );
    assert!(matches!(
        store
            .accept_invite(named.id, used_by(bob.id, 1000), &[])
            .await,
        Err(StoreError::NotFound)
    ));
    // Concurrent acceptances by the invitee: exactly one succeeds (the HTTP suite sends 100).
    let tries = (0..20).map(|_| {
        let store = store.clone();
        let id = named.id;
        let bob = bob.id;
        tokio::spawn(async move { store.accept_invite(id, used_by(bob, 3), &[]).await })
    });
    let mut taken = Vec::new();
    for t in tries {
        if let Ok(pair) = t.await.unwrap() {
            taken.push(pair);
        }
    }
    assert_eq!(taken.len(), 1);
    let member = store.member(org.id, bob.id).await.unwrap();
    assert_eq!(member.role, OrgRole::Member);
    assert_eq!((taken[0].0.id, &taken[0].1), (named.id, &member));
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
    let [alice, bob, carol, dave] = make_users(&*store, ["alice", "bob", "carol", "dave"]).await;
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

    let (used, member) = redeem(&*store, b"limited", bob.id, 10).await.unwrap();
    assert_eq!(used.uses, 1);
    assert_eq!(used.id, limited.id);
    assert_eq!(
        member,
        store.member(org.id, bob.id).await.unwrap(),
        "redeeming answers the new membership"
    );
    assert_eq!(
        store.member(org.id, bob.id).await.unwrap().role,
        OrgRole::Viewer
    );
    assert_eq!(
        store.member(org.id, bob.id).await.unwrap().joined_at,
        at(10)
    );

    assert_conflict(
        redeem(&*store, b"limited", bob.id, 11).await,
        Conflict::AlreadyMember,
    );
    assert_eq!(
        stored_invite(&*store, b"limited").await.uses,
        1,
        "a refused redemption uses nothing"
    );
    assert_conflict(
        redeem(&*store, b"limited", alice.id, 11).await,
        Conflict::AlreadyMember,
    );

    redeem(&*store, b"limited", carol.id, 12).await.unwrap();
    assert_conflict(
        redeem(&*store, b"limited", dave.id, 13).await,
        Conflict::InviteExhausted,
    );
    assert_eq!(store.membership(org.id, dave.id).await.unwrap(), None);
    assert_eq!(stored_invite(&*store, b"limited").await.uses, 2);

    let expiring = invite(org.id, alice.id, None, Some(at(100)));
    store
        .create_invite(&expiring, b"expiring", &[])
        .await
        .unwrap();
    assert_conflict(
        redeem(&*store, b"expiring", dave.id, 100).await,
        Conflict::InviteExhausted,
    );
    assert_conflict(
        redeem(&*store, b"unknown", dave.id, 1).await,
        Conflict::InviteExhausted,
    );
    let (redeemed, _) = redeem(&*store, b"expiring", dave.id, 99).await.unwrap();
    assert_eq!(redeemed.uses, 1);
    assert_eq!(redeemed.max_uses, None);

    let open = invite(org.id, alice.id, None, None);
    store.create_invite(&open, b"open", &[]).await.unwrap();
    let eve = make_user(&*store, "eve").await;
    redeem(&*store, b"open", eve.id, 1_000_000).await.unwrap();
}
check!(invites_are_redeemed_within_limits);

async fn teams_and_team_members(store: Arc<dyn Store>) {
    let [alice, bob] = make_users(&*store, ["alice", "bob"]).await;
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

    // AZ-2: only a member of the team's org has a place in it.
    assert_not_found(store.add_team_member(team.id, bob.id, &[]).await);
    let outsider_team = Team {
        id: TeamId::new(),
        name: "Outsiders".to_owned(),
        member_ids: vec![alice.id, bob.id],
        ..team.clone()
    };
    assert_not_found(store.create_team(&outsider_team, &[]).await);
    assert_not_found(store.team(outsider_team.id).await);
    join(&*store, org.id, bob.id).await;
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

/// AZ-2: ~100 team additions racing the removal of their user from the org never leave a team
/// place to someone who is no member.
async fn team_places_do_not_outlive_a_removal(store: Arc<dyn Store>) {
    let [alice] = make_users(&*store, ["alice"]).await;
    let org = make_org(&*store, "acme", alice.id).await;
    let team = Team {
        id: TeamId::new(),
        org_id: org.id,
        name: "Design".to_owned(),
        member_ids: vec![],
        created_at: at(3),
    };
    store.create_team(&team, &[]).await.unwrap();
    let users = racers(&*store, org.id, 100).await;
    let races: Vec<_> = users
        .iter()
        .map(|&user| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let removal = store.remove_member(org.id, user, None, &[]);
                let added = store.add_team_member(team.id, user, &[]);
                let (removed, added) = tokio::join!(removal, added);
                removed.unwrap();
                if added.is_err() {
                    assert_not_found(added);
                }
            })
        })
        .collect();
    for race in races {
        race.await.unwrap();
    }
    assert_eq!(store.team(team.id).await.unwrap().member_ids, vec![]);
    for user in users {
        assert_eq!(store.user_teams(org.id, user).await.unwrap(), vec![]);
    }
}
check!(team_places_do_not_outlive_a_removal);
