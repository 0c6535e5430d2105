//! Real time: read markers, unread counts, id lists and gateway session resume state.

use super::*;

/// Posts `n` messages by `author`, returning them in seq order.
async fn post(store: &dyn Store, conv: ConversationId, author: UserId, n: usize) -> Vec<Message> {
    let mut posted = Vec::new();
    for i in 0..n {
        posted.push(post_message(store, conv, author, &format!("m{i}")).await);
    }
    posted
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn state(
    conv: ConversationId,
    last_seq: i64,
    read: Option<&Message>,
    unread_count: i64,
) -> ConversationState {
    ConversationState {
        id: conv,
        last_seq,
        last_read_message_id: read.map(|m| m.id),
        unread_count,
    }
}

async fn read_markers_are_set_per_participant(store: Arc<dyn Store>) {
    let [alice, bob, carol] = make_users(&*store, ["alice", "bob", "carol"]).await;
    let org = make_org(&*store, "acme", alice.id).await;
    for user in [bob.id, carol.id] {
        join(&*store, org.id, user).await;
    }
    let conv = make_group(&*store, org.id, alice.id, &[bob.id], Visibility::ORG).await;
    let msgs = post(&*store, conv.id, alice.id, 3).await;
    let marker = |conv, user, message| ReadMarker {
        conv,
        user,
        message,
    };

    // Bob's marker moves forward and back (it is set as given): each time his unread count
    // follows, and alice's (markers are per participant) stays at all three.
    for (read, unread) in [(1, 1), (2, 0), (0, 2)] {
        let set = store.set_read_marker(marker(conv.id, bob.id, msgs[read].id), &[]);
        set.await.unwrap();
        let states = store.conversation_states(bob.id).await.unwrap();
        assert_eq!(states, vec![state(conv.id, 3, Some(&msgs[read]), unread)]);
        let states = store.conversation_states(alice.id).await.unwrap();
        assert_eq!(states, vec![state(conv.id, 3, None, 3)]);
    }

    assert_not_found(
        store
            .set_read_marker(marker(conv.id, carol.id, msgs[0].id), &[])
            .await,
    );
    assert_not_found(
        store
            .set_read_marker(marker(ConversationId::new(), bob.id, msgs[0].id), &[])
            .await,
    );
    assert_not_found(
        store
            .set_read_marker(marker(conv.id, bob.id, MessageId::new()), &[])
            .await,
    );
    assert_eq!(
        store.conversation_states(bob.id).await.unwrap()[0].last_read_message_id,
        Some(msgs[0].id),
        "a failed update leaves the marker"
    );

    store
        .remove_participant(conv.id, bob.id, &[])
        .await
        .unwrap();
    assert_not_found(
        store
            .set_read_marker(marker(conv.id, bob.id, msgs[2].id), &[])
            .await,
    );
    assert!(store.conversation_states(bob.id).await.unwrap().is_empty());
}
check!(read_markers_are_set_per_participant);

async fn conversation_states_count_unread(store: Arc<dyn Store>) {
    let [alice, bob, loner] = make_users(&*store, ["alice", "bob", "loner"]).await;
    let org = make_org(&*store, "acme", alice.id).await;
    let other_org = make_org(&*store, "other", bob.id).await;
    join(&*store, org.id, bob.id).await;

    let empty = make_group(&*store, org.id, alice.id, &[bob.id], Visibility::ORG).await;
    let partly = make_group(&*store, org.id, alice.id, &[bob.id], Visibility::ORG).await;
    let caught_up = make_group(&*store, org.id, alice.id, &[bob.id], Visibility::ORG).await;
    let unread = make_group(&*store, org.id, alice.id, &[bob.id], Visibility::ORG).await;
    let elsewhere = make_group(&*store, other_org.id, bob.id, &[], Visibility::ORG).await;
    let not_bobs = make_group(&*store, org.id, alice.id, &[], Visibility::ORG).await;

    let partly_msgs = post(&*store, partly.id, alice.id, 5).await;
    let caught_up_msgs = post(&*store, caught_up.id, alice.id, 2).await;
    post(&*store, unread.id, alice.id, 4).await;
    let own = post(&*store, elsewhere.id, bob.id, 1).await;
    post(&*store, not_bobs.id, alice.id, 7).await;
    let marker = |conv, user, message| ReadMarker {
        conv,
        user,
        message,
    };

    store
        .set_read_marker(marker(partly.id, bob.id, partly_msgs[2].id), &[])
        .await
        .unwrap();
    store
        .set_read_marker(marker(caught_up.id, bob.id, caught_up_msgs[1].id), &[])
        .await
        .unwrap();
    // A tombstone keeps its seq, so a marker on it still counts.
    store
        .delete_message(partly_msgs[2].id, at(500), &[])
        .await
        .unwrap();

    let mut expected = vec![
        state(empty.id, 0, None, 0),
        state(partly.id, 5, Some(&partly_msgs[2]), 2),
        state(caught_up.id, 2, Some(&caught_up_msgs[1]), 0),
        state(unread.id, 4, None, 4),
        state(elsewhere.id, 1, None, 1),
    ];
    expected.sort_by_key(|s| s.id);
    assert_eq!(
        store.conversation_states(bob.id).await.unwrap(),
        expected,
        "every conversation bob is in, in id order, across orgs"
    );

    // Newer messages are unread again.
    post(&*store, caught_up.id, alice.id, 3).await;
    store
        .set_read_marker(marker(elsewhere.id, bob.id, own[0].id), &[])
        .await
        .unwrap();
    let states = store.conversation_states(bob.id).await.unwrap();
    let of = |id: ConversationId| states.iter().find(|s| s.id == id).unwrap().clone();
    assert_eq!(
        of(caught_up.id),
        state(caught_up.id, 5, Some(&caught_up_msgs[1]), 3)
    );
    assert_eq!(of(elsewhere.id), state(elsewhere.id, 1, Some(&own[0]), 0));

    store.delete_conversation(partly.id, &[]).await.unwrap();
    let states = store.conversation_states(bob.id).await.unwrap();
    assert_eq!(states.len(), 4);
    assert!(states.iter().all(|s| s.id != partly.id));

    let alices = store.conversation_states(alice.id).await.unwrap();
    assert_eq!(
        alices.len(),
        4,
        "alice is not in the other org's conversation"
    );
    assert!(alices.iter().all(|s| s.last_read_message_id.is_none()));
    assert!(alices.iter().all(|s| s.unread_count == s.last_seq));

    assert!(store
        .conversation_states(loner.id)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .conversation_states(UserId::new())
        .await
        .unwrap()
        .is_empty());
}
check!(conversation_states_count_unread);

async fn conversation_and_participant_ids(store: Arc<dyn Store>) {
    let [alice, bob, carol] = make_users(&*store, ["alice", "bob", "carol"]).await;
    let acme = make_org(&*store, "acme", alice.id).await;
    let other = make_org(&*store, "other", alice.id).await;
    for org in [acme.id, other.id] {
        for user in [bob.id, carol.id] {
            join(&*store, org, user).await;
        }
    }
    let a1 = make_group(
        &*store,
        acme.id,
        alice.id,
        &[bob.id, carol.id],
        Visibility::ORG,
    )
    .await;
    let a2 = make_group(&*store, acme.id, carol.id, &[], Visibility::ORG).await;
    let a3 = make_group(&*store, acme.id, bob.id, &[], Visibility::ORG).await;
    let o1 = make_group(&*store, other.id, carol.id, &[bob.id], Visibility::ORG).await;

    // Membership of an org alone (alice in `other`) is no participation.
    let cases = [
        (bob.id, None, sorted(vec![a1.id, a3.id, o1.id])),
        (bob.id, Some(acme.id), sorted(vec![a1.id, a3.id])),
        (bob.id, Some(other.id), vec![o1.id]),
        (alice.id, Some(other.id), vec![]),
        (carol.id, Some(OrgId::new()), vec![]),
        (UserId::new(), None, vec![]),
    ];
    for (user, org, expected) in cases {
        let ids = store.user_conversation_ids(user, org).await.unwrap();
        assert_eq!(ids, expected, "{user:?} in {org:?}");
    }

    assert_eq!(
        store.participant_ids(a1.id).await.unwrap(),
        sorted(vec![alice.id, bob.id, carol.id])
    );
    assert_eq!(store.participant_ids(a2.id).await.unwrap(), vec![carol.id]);
    assert_eq!(
        store.participant_ids(o1.id).await.unwrap(),
        sorted(vec![carol.id, bob.id])
    );
    assert!(store
        .participant_ids(ConversationId::new())
        .await
        .unwrap()
        .is_empty());

    store.remove_participant(a1.id, bob.id, &[]).await.unwrap();
    take_part(&*store, a2.id, bob.id, ConversationRole::Member, 20).await;
    assert_eq!(
        store
            .user_conversation_ids(bob.id, Some(acme.id))
            .await
            .unwrap(),
        sorted(vec![a2.id, a3.id])
    );
    assert_eq!(
        store.participant_ids(a1.id).await.unwrap(),
        sorted(vec![alice.id, carol.id])
    );
    store.delete_conversation(o1.id, &[]).await.unwrap();
    assert_eq!(
        store.user_conversation_ids(bob.id, None).await.unwrap(),
        sorted(vec![a2.id, a3.id])
    );
    assert!(store.participant_ids(o1.id).await.unwrap().is_empty());
}
check!(conversation_and_participant_ids);

fn gateway_session(user: UserId, saved_at: DateTime<Utc>) -> GatewaySession {
    GatewaySession {
        id: uuid::Uuid::now_v7(),
        user_id: user,
        auth_session_id: SessionId::new(),
        last_s: 42,
        position: 1 << 40,
        epoch: "node-a:0192f3".to_owned(),
        conversations: vec![ConversationId::new(), ConversationId::new()],
        saved_at,
    }
}

/// Takes `saved` as its owner would: its user with its login session.
async fn take(store: &dyn Store, saved: &GatewaySession) -> Option<GatewaySession> {
    store
        .take_gateway_session(saved.id, saved.user_id, saved.auth_session_id)
        .await
        .unwrap()
}

async fn gateway_sessions_save_take_prune(store: Arc<dyn Store>) {
    let [alice, bob] = make_users(&*store, ["alice", "bob"]).await;

    let first = gateway_session(alice.id, at(1000));
    store.save_gateway_session(&first).await.unwrap();
    let replaced = GatewaySession {
        last_s: 43,
        position: (1 << 40) + 7,
        epoch: "node-b:0192f4".to_owned(),
        conversations: vec![ConversationId::new()],
        saved_at: at(1001),
        ..first.clone()
    };
    store.save_gateway_session(&replaced).await.unwrap();
    assert_eq!(
        take(&*store, &first).await,
        Some(replaced),
        "saving again replaces"
    );
    assert_eq!(
        take(&*store, &first).await,
        None,
        "a saved session is taken once"
    );
    assert_eq!(
        store
            .take_gateway_session(uuid::Uuid::now_v7(), alice.id, first.auth_session_id)
            .await
            .unwrap(),
        None
    );

    let quiet = GatewaySession {
        conversations: Vec::new(),
        last_s: 0,
        position: 0,
        ..gateway_session(bob.id, at(1002))
    };
    store.save_gateway_session(&quiet).await.unwrap();
    assert_eq!(
        take(&*store, &quiet).await,
        Some(quiet),
        "an empty conversation list round-trips"
    );

    assert_not_found(
        store
            .save_gateway_session(&gateway_session(UserId::new(), at(1)))
            .await,
    );

    let old = gateway_session(alice.id, at(100));
    let older = gateway_session(bob.id, at(50));
    let edge = gateway_session(alice.id, at(200));
    let new = gateway_session(bob.id, at(300));
    for s in [&old, &older, &edge, &new] {
        store.save_gateway_session(s).await.unwrap();
    }
    assert_eq!(store.prune_gateway_sessions(at(200)).await.unwrap(), 2);
    assert_eq!(take(&*store, &old).await, None);
    assert_eq!(take(&*store, &older).await, None);
    assert_eq!(
        take(&*store, &edge).await,
        Some(edge),
        "saved exactly at the cut-off: kept"
    );
    assert_eq!(store.prune_gateway_sessions(at(200)).await.unwrap(), 0);
    assert_eq!(store.prune_gateway_sessions(at(10_000)).await.unwrap(), 1);
    assert_eq!(take(&*store, &new).await, None);
}
check!(gateway_sessions_save_take_prune);

async fn gateway_session_is_taken_once_concurrently(store: Arc<dyn Store>) {
    let alice = make_user(&*store, "alice").await;
    let saved = gateway_session(alice.id, at(1000));
    store.save_gateway_session(&saved).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let saved = saved.clone();
        let id = saved.id;
        tasks.push(tokio::spawn(async move {
            store
                .take_gateway_session(id, saved.user_id, saved.auth_session_id)
                .await
                .unwrap()
        }));
    }
    let mut taken = Vec::new();
    for task in tasks {
        taken.extend(task.await.unwrap());
    }
    assert_eq!(taken, vec![saved], "exactly one resume gets the session");
}
check!(gateway_session_is_taken_once_concurrently);

async fn gateway_sessions_are_taken_only_by_their_owner(store: Arc<dyn Store>) {
    let [alice, mallory] = make_users(&*store, ["alice", "mallory"]).await;
    let saved = gateway_session(alice.id, at(1000));
    store.save_gateway_session(&saved).await.unwrap();
    let other_login = SessionId::new();
    for (user, login) in [
        (mallory.id, saved.auth_session_id),
        (mallory.id, other_login),
        (alice.id, other_login),
    ] {
        assert_eq!(
            store
                .take_gateway_session(saved.id, user, login)
                .await
                .unwrap(),
            None,
            "a take by another user or another login session gets nothing"
        );
    }
    assert_eq!(
        take(&*store, &saved).await,
        Some(saved.clone()),
        "the row stayed for its owner"
    );

    // Concurrently: the owner's take never misses the row because of another's attempt.
    for round in 0..20 {
        let saved = gateway_session(alice.id, at(2000 + round));
        store.save_gateway_session(&saved).await.unwrap();
        let thief = {
            let store = store.clone();
            let id = saved.id;
            tokio::spawn(async move {
                store
                    .take_gateway_session(id, mallory.id, other_login)
                    .await
                    .unwrap()
            })
        };
        let owner = take(&*store, &saved).await;
        assert_eq!(thief.await.unwrap(), None, "round {round}");
        assert_eq!(owner, Some(saved), "round {round}: the owner's resume");
    }
}
check!(gateway_sessions_are_taken_only_by_their_owner);
