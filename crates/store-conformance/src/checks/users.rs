//! Accounts, bootstrap and sessions.

use super::*;

/// A claim of the bootstrap (by a would-be first admin) is refused.
/// Flags that only switch the account on or off.
fn disabled(on: bool) -> UserFlags {
    UserFlags {
        disabled: Some(on),
        ..UserFlags::default()
    }
}

/// A pending sign-in challenge of `user`, made at 1 s, lasting five minutes.
fn challenge_of(user: UserId) -> conclave_core::mfa::MfaChallenge {
    conclave_core::mfa::MfaChallenge {
        user_id: user,
        cookie: false,
        created_at: at(1),
        expires_at: at(300),
        failures: 0,
    }
}

/// Flags that only grant or take server admin.
fn admin(on: bool) -> UserFlags {
    UserFlags {
        server_admin: Some(on),
        ..UserFlags::default()
    }
}

async fn assert_bootstrap_refused(store: &dyn Store) {
    let mut first = new_user("first");
    first.server_admin = true;
    let claimed = store.claim_bootstrap(&first, &[]).await;
    assert_conflict(claimed, Conflict::BootstrapUsed);
}

async fn ping(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}
check!(ping);

async fn users_create_and_read(store: Arc<dyn Store>) {
    let mut new = new_user("Alice.Smith");
    new.display_name = Some(DisplayName::parse("Alice").unwrap());
    new.email = Some(Email::parse("alice@example.com").unwrap());
    new.kind = UserKind::Bot;
    let user = store.create_user(&new, &[]).await.unwrap();
    assert_eq!(user.id, new.id);
    assert_eq!(
        user.username, "Alice.Smith",
        "the username is kept as given"
    );
    assert_eq!(user.display_name.as_deref(), Some("Alice"));
    assert_eq!(user.email.as_deref(), Some("alice@example.com"));
    assert_eq!(user.kind, UserKind::Bot);
    assert!(!user.server_admin && !user.disabled);
    assert_eq!(user.created_at, at(0));
    assert_eq!(store.user(user.id).await.unwrap(), user);

    let (found, hash) = store
        .user_by_username("alice.smith")
        .await
        .unwrap()
        .expect("found by its key");
    assert_eq!(found, user);
    assert_eq!(hash, new.password_hash);
    assert!(store.user_by_username("bob").await.unwrap().is_none());

    assert_eq!(
        store.password_hash(user.id).await.unwrap(),
        new.password_hash
    );
    let change = |phc, replaces| PasswordChange {
        user: user.id,
        phc,
        replaces,
        keep: None,
    };
    store
        .set_password_hash(change("$new", None), &[])
        .await
        .unwrap();
    assert_eq!(
        store.password_hash(user.id).await.unwrap().as_deref(),
        Some("$new")
    );

    let renamed = store
        .set_display_name(user.id, Some(&DisplayName::parse("Al").unwrap()), &[])
        .await
        .unwrap();
    assert_eq!(renamed.display_name.as_deref(), Some("Al"));
    let cleared = store.set_display_name(user.id, None, &[]).await.unwrap();
    assert_eq!(cleared.display_name, None);

    let flagged = store
        .set_user_flags(user.id, disabled(true), &[])
        .await
        .unwrap();
    assert!(flagged.disabled && !flagged.server_admin);
    let flagged = store
        .set_user_flags(
            user.id,
            UserFlags {
                server_admin: Some(true),
                require_2fa: Some(true),
                ..UserFlags::default()
            },
            &[],
        )
        .await
        .unwrap();
    assert!(flagged.disabled && flagged.server_admin && flagged.require_2fa);
    assert!(store.user(user.id).await.unwrap().require_2fa);
    assert_eq!(store.user(user.id).await.unwrap(), flagged);

    let nobody = UserId::new();
    assert_not_found(store.user(nobody).await);
    assert_not_found(store.password_hash(nobody).await);
    let nobodys = PasswordChange {
        user: nobody,
        ..change("$x", None)
    };
    assert_not_found(store.set_password_hash(nobodys, &[]).await);
    assert_not_found(store.set_display_name(nobody, None, &[]).await);
    assert_not_found(store.set_user_flags(nobody, disabled(true), &[]).await);

    let mut passwordless = new_user("robot");
    passwordless.password_hash = None;
    let robot = store.create_user(&passwordless, &[]).await.unwrap();
    assert_eq!(store.password_hash(robot.id).await.unwrap(), None);
}
check!(users_create_and_read);

async fn usernames_are_unique_ignoring_case(store: Arc<dyn Store>) {
    make_user(&*store, "Carol").await;
    assert_conflict(
        store.create_user(&new_user("carol"), &[]).await,
        Conflict::UsernameTaken,
    );
    assert_conflict(
        store.create_user(&new_user("CAROL"), &[]).await,
        Conflict::UsernameTaken,
    );
    make_user(&*store, "carol2").await;
}
check!(usernames_are_unique_ignoring_case);

/// Flags that only mark the account's email as its owner's (or not).
fn verified(on: bool) -> UserFlags {
    UserFlags {
        email_verified: Some(on),
        ..UserFlags::default()
    }
}

async fn only_a_verified_email_finds_its_account(store: Arc<dyn Store>) {
    let email = |e: &str| Some(Email::parse(e).unwrap());
    let found = |e: &'static str| {
        let store = Arc::clone(&store);
        async move {
            let user = store.user_by_verified_email(e).await.unwrap();
            user.map(|u| u.id)
        }
    };
    let mut typed = new_user("typed");
    typed.email = email("Dana@Example.com");
    let typed = store.create_user(&typed, &[]).await.unwrap();
    assert!(!typed.email_verified);
    // The owner's word alone finds nothing.
    assert_eq!(found("dana@example.com").await, None);
    let marked = store
        .set_user_flags(typed.id, verified(true), &[])
        .await
        .unwrap();
    assert!(marked.email_verified);
    assert_eq!(found("DANA@example.COM").await, Some(typed.id));
    // A second account with the address (verified or not) makes it nobody's.
    let mut other = new_user("other");
    other.email = email("dana@example.com");
    store.create_user(&other, &[]).await.unwrap();
    assert_eq!(found("dana@example.com").await, None);
    // Created verified; marking it unverified takes it back.
    let mut vouched = new_user("vouched");
    vouched.email = email("erin@example.com");
    vouched.email_verified = true;
    let vouched = store.create_user(&vouched, &[]).await.unwrap();
    assert!(vouched.email_verified);
    assert_eq!(found("erin@example.com").await, Some(vouched.id));
    store
        .set_user_flags(vouched.id, verified(false), &[])
        .await
        .unwrap();
    assert_eq!(found("erin@example.com").await, None);
    // No email, nothing to verify.
    let mut bare = new_user("bare");
    bare.email_verified = true;
    let bare = store.create_user(&bare, &[]).await.unwrap();
    assert!(!bare.email_verified);
    let still = store
        .set_user_flags(bare.id, verified(true), &[])
        .await
        .unwrap();
    assert!(!still.email_verified);
}
check!(only_a_verified_email_finds_its_account);

async fn bootstrap_is_claimed_once(store: Arc<dyn Store>) {
    assert!(!store.bootstrap_claimed().await.unwrap());
    let mut first = new_user("admin");
    first.server_admin = true;
    let admin = store.claim_bootstrap(&first, &[]).await.unwrap();
    assert!(admin.server_admin);
    assert!(store.bootstrap_claimed().await.unwrap());

    let mut second = new_user("admin2");
    second.server_admin = true;
    assert_conflict(
        store.claim_bootstrap(&second, &[]).await,
        Conflict::BootstrapUsed,
    );
    assert!(
        store.user_by_username("admin2").await.unwrap().is_none(),
        "a refused claim creates no user"
    );
    assert!(store.bootstrap_claimed().await.unwrap());
}
check!(bootstrap_is_claimed_once);

/// CORE-3a: a server admin made any other way ends the bootstrap, and for good.
async fn any_server_admin_disarms_the_bootstrap(store: Arc<dyn Store>) {
    make_user(&*store, "plain").await;
    assert!(
        !store.bootstrap_claimed().await.unwrap(),
        "a plain user does not"
    );
    let mut made = new_user("made-admin");
    made.server_admin = true;
    store.create_user(&made, &[]).await.unwrap();
    assert!(store.bootstrap_claimed().await.unwrap());
    store
        .set_user_flags(made.id, admin(false), &[])
        .await
        .unwrap();
    assert!(
        store.bootstrap_claimed().await.unwrap(),
        "demoting the only admin does not re-arm it"
    );
    assert_bootstrap_refused(&*store).await;
}
check!(any_server_admin_disarms_the_bootstrap);

async fn promotion_disarms_the_bootstrap(store: Arc<dyn Store>) {
    let plain = make_user(&*store, "plain").await;
    store
        .set_user_flags(plain.id, admin(true), &[])
        .await
        .unwrap();
    store
        .set_user_flags(plain.id, admin(false), &[])
        .await
        .unwrap();
    assert!(store.bootstrap_claimed().await.unwrap());
    assert_bootstrap_refused(&*store).await;
}
check!(promotion_disarms_the_bootstrap);

/// The first start is recorded once; later starts read it back.
async fn first_start_is_recorded_once(store: Arc<dyn Store>) {
    assert_eq!(store.first_start(at(10)).await.unwrap(), at(10));
    assert_eq!(store.first_start(at(5_000)).await.unwrap(), at(10));
}
check!(first_start_is_recorded_once);

async fn list_users_pages_by_id(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(make_user(&*store, &format!("user{i}")).await.id);
    }
    ids.sort();
    let names = |users: Vec<User>| users.into_iter().map(|u| u.id).collect::<Vec<_>>();

    let latest = store.list_users(page(Cursor::Latest, 2)).await.unwrap();
    assert_eq!(names(latest), vec![ids[4], ids[3]]);
    let before = store
        .list_users(page(Cursor::Before(ids[3]), 2))
        .await
        .unwrap();
    assert_eq!(names(before), vec![ids[2], ids[1]]);
    let after = store
        .list_users(page(Cursor::After(ids[1]), 10))
        .await
        .unwrap();
    assert_eq!(names(after), vec![ids[2], ids[3], ids[4]]);
    let all = store.list_users(page(Cursor::Latest, 100)).await.unwrap();
    assert_eq!(all.len(), 5);
}
check!(list_users_pages_by_id);

fn session(user: UserId, created: i64) -> Session {
    Session {
        id: SessionId::new(),
        user_id: user,
        device: Some("test agent".to_owned()),
        ip: Some("192.0.2.1".to_owned()),
        created_at: at(created),
        last_seen_at: at(created),
        expires_at: at(created + 3600),
        cookie: created % 2 == 0,
        impersonator: None,
    }
}

async fn sessions_lifecycle(store: Arc<dyn Store>) {
    let [alice, bob] = make_users(&*store, ["alice", "bob"]).await;
    let a1 = session(alice.id, 1);
    let a2 = session(alice.id, 2);
    let a3 = session(alice.id, 3);
    let b1 = session(bob.id, 1);
    for (s, hash) in [(&a1, b"a1"), (&a2, b"a2"), (&a3, b"a3"), (&b1, b"b1")] {
        store.create_session(s, hash, None, &[]).await.unwrap();
    }
    assert_eq!(
        store.session_by_token_hash(b"a2").await.unwrap(),
        Some(a2.clone())
    );
    assert_eq!(store.session_by_token_hash(b"zz").await.unwrap(), None);

    store
        .touch_session(
            a2.id,
            Seen {
                at: at(50),
                ip: Some("198.51.100.7"),
            },
        )
        .await
        .unwrap();
    let touched = store.session_by_token_hash(b"a2").await.unwrap().unwrap();
    assert_eq!(touched.last_seen_at, at(50));
    assert_eq!(touched.ip.as_deref(), Some("198.51.100.7"));
    store
        .touch_session(
            a2.id,
            Seen {
                at: at(60),
                ip: None,
            },
        )
        .await
        .unwrap();
    let touched = store.session_by_token_hash(b"a2").await.unwrap().unwrap();
    assert_eq!(touched.last_seen_at, at(60));
    assert_eq!(
        touched.ip.as_deref(),
        Some("198.51.100.7"),
        "no ip keeps the old one"
    );
    assert_eq!(touched.created_at, a2.created_at);

    let listed = store.list_sessions(alice.id).await.unwrap();
    let mut listed_ids: Vec<_> = listed.iter().map(|s| s.id).collect();
    listed_ids.sort();
    let mut expected = vec![a1.id, a2.id, a3.id];
    expected.sort();
    assert_eq!(listed_ids, expected);
    assert!(listed.iter().all(|s| s.user_id == alice.id));

    assert_not_found(store.delete_session(alice.id, b1.id, &[]).await);
    assert!(store.session_by_token_hash(b"b1").await.unwrap().is_some());
    store.delete_session(alice.id, a1.id, &[]).await.unwrap();
    assert!(store.session_by_token_hash(b"a1").await.unwrap().is_none());
    assert_not_found(store.delete_session(alice.id, a1.id, &[]).await);

    assert_eq!(
        store
            .delete_sessions(alice.id, Some(a3.id), &[])
            .await
            .unwrap()
            .own,
        1
    );
    let left: Vec<_> = store
        .list_sessions(alice.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, vec![a3.id]);
    assert_eq!(
        store
            .delete_sessions(alice.id, None, &[])
            .await
            .unwrap()
            .own,
        1
    );
    assert!(store.list_sessions(alice.id).await.unwrap().is_empty());
    assert_eq!(store.list_sessions(bob.id).await.unwrap().len(), 1);
}
check!(sessions_lifecycle);

/// AUTH-2: a password change ends, in its own transaction, every other session and pending
/// sign-in challenge, and a sign-in that checked the old hash makes nothing afterwards; a
/// rehash never writes over a change. AUTH-12: sessions a server admin started as someone
/// else end with her sessions, and stand only while she is an enabled server admin.
async fn password_changes_and_impersonations_end_what_rests_on_them(store: Arc<dyn Store>) {
    let [alice, admin] = make_users(&*store, ["alice", "admin"]).await;
    let promote = |on: bool| UserFlags {
        server_admin: Some(on),
        ..UserFlags::default()
    };
    store
        .set_user_flags(admin.id, promote(true), &[])
        .await
        .unwrap();
    let old = store.password_hash(alice.id).await.unwrap().unwrap();
    let (kept, other) = (session(alice.id, 1), session(alice.id, 2));
    for (s, hash) in [(&kept, b"k"), (&other, b"o")] {
        store
            .create_session(s, hash, Some(&old), &[])
            .await
            .unwrap();
    }
    let acting = Session {
        impersonator: Some(admin.id),
        ..session(alice.id, 3)
    };
    store
        .create_session(&acting, b"i", None, &[])
        .await
        .unwrap();
    let challenge = challenge_of(alice.id);
    store
        .create_mfa_challenge(&challenge, b"c", Some(&old))
        .await
        .unwrap();
    // A rehash of a hash that is no longer hers changes nothing.
    let rehash = PasswordChange {
        user: alice.id,
        phc: "$rehashed",
        replaces: Some("$not-hers"),
        keep: None,
    };
    assert_conflict(
        store.set_password_hash(rehash, &[]).await,
        Conflict::PasswordChanged,
    );
    let change = PasswordChange {
        user: alice.id,
        phc: "$changed",
        replaces: Some(&old),
        keep: Some(kept.id),
    };
    let ended = store.set_password_hash(change, &[]).await.unwrap();
    // The other one and the admin's session as her: every session of her account but this.
    assert_eq!((ended.own, ended.impersonating), (2, vec![]));
    let left: Vec<SessionId> = (store.list_sessions(alice.id).await.unwrap())
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, vec![kept.id]);
    assert!(store.mfa_challenge(b"c").await.unwrap().is_none());
    let acting = Session {
        id: SessionId::new(),
        ..acting
    };
    store
        .create_session(&acting, b"i", None, &[])
        .await
        .unwrap();
    // A sign-in (or its first step) that checked the old hash makes nothing now.
    let late = session(alice.id, 4);
    assert_conflict(
        store.create_session(&late, b"late", Some(&old), &[]).await,
        Conflict::PasswordChanged,
    );
    assert!(store
        .session_by_token_hash(b"late")
        .await
        .unwrap()
        .is_none());
    assert_conflict(
        store
            .create_mfa_challenge(&challenge, b"c2", Some(&old))
            .await,
        Conflict::PasswordChanged,
    );
    store
        .create_session(&late, b"late", Some("$changed"), &[])
        .await
        .unwrap();
    // The impersonation stands while its admin does: not once she is demoted (even if its
    // deletion was missed) …
    assert!(store.session_by_token_hash(b"i").await.unwrap().is_some());
    store
        .set_user_flags(admin.id, promote(false), &[])
        .await
        .unwrap();
    assert!(store.session_by_token_hash(b"i").await.unwrap().is_none());
    let listed = store.list_sessions(alice.id).await.unwrap();
    assert!(listed.iter().all(|s| s.id != acting.id));
    store
        .set_user_flags(admin.id, promote(true), &[])
        .await
        .unwrap();
    assert!(store.session_by_token_hash(b"i").await.unwrap().is_some());
    // … and it ends with the admin's sessions.
    let ended = store.delete_sessions(admin.id, None, &[]).await.unwrap();
    assert_eq!((ended.own, ended.impersonating), (0, vec![acting.id]));
    assert!(store.session_by_token_hash(b"i").await.unwrap().is_none());
    assert!(store.session_by_token_hash(b"k").await.unwrap().is_some());
}
check!(password_changes_and_impersonations_end_what_rests_on_them);

/// A reset link: one live link an account, made and used each in one transaction that ends
/// every session and challenge of hers; used once, even by a hundred at a time.
async fn password_reset_links_are_single_use(store: Arc<dyn Store>) {
    let [alice, bob] = make_users(&*store, ["alice", "bob"]).await;
    let old = store.password_hash(alice.id).await.unwrap().unwrap();
    store
        .create_session(&session(alice.id, 1), b"s1", Some(&old), &[])
        .await
        .unwrap();
    store
        .create_session(&session(bob.id, 2), b"b1", None, &[])
        .await
        .unwrap();
    let challenge = challenge_of(alice.id);
    store
        .create_mfa_challenge(&challenge, b"c", Some(&old))
        .await
        .unwrap();
    let link = |hash: &[u8], made: i64| PasswordReset {
        user: alice.id,
        token_hash: hash.to_vec(),
        created_at: at(made),
        expires_at: at(made + 3600),
    };
    let ended = store
        .start_password_reset(&link(b"r1", 10), &[])
        .await
        .unwrap();
    assert_eq!(ended.own, 1);
    assert!(store.session_by_token_hash(b"s1").await.unwrap().is_none());
    assert!(store.mfa_challenge(b"c").await.unwrap().is_none());
    assert!(store.session_by_token_hash(b"b1").await.unwrap().is_some());
    // Her password stands until the link is used.
    assert_eq!(
        store.password_hash(alice.id).await.unwrap(),
        Some(old.clone())
    );
    assert_eq!(
        store.password_reset_user(b"r1", at(20)).await.unwrap(),
        Some(alice.id)
    );
    // A newer link replaces it.
    store
        .start_password_reset(&link(b"r2", 30), &[])
        .await
        .unwrap();
    assert_eq!(
        store.password_reset_user(b"r1", at(40)).await.unwrap(),
        None
    );
    assert!(matches!(
        store
            .finish_password_reset(b"r1", alice.id, at(40), "$nope", &[])
            .await,
        Err(StoreError::NotFound)
    ));
    // Expired: found by neither the lookup nor the use.
    assert_eq!(
        store
            .password_reset_user(b"r2", at(30 + 3600))
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        store
            .finish_password_reset(b"r2", alice.id, at(30 + 3600), "$late", &[])
            .await,
        Err(StoreError::NotFound)
    ));
    // Another account's id never takes her link.
    assert!(matches!(
        store
            .finish_password_reset(b"r2", bob.id, at(50), "$bob", &[])
            .await,
        Err(StoreError::NotFound)
    ));
    // A hundred uses at once: one sets the password.
    store
        .create_session(&session(alice.id, 3), b"s3", Some(&old), &[])
        .await
        .unwrap();
    let tries: Vec<_> = (0..100)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let phc = format!("$new-{i}");
                let done = store
                    .finish_password_reset(b"r2", alice.id, at(60), &phc, &[])
                    .await;
                (phc, done)
            })
        })
        .collect();
    let mut won = Vec::new();
    for t in tries {
        let (phc, done) = t.await.unwrap();
        match done {
            Ok(ended) => won.push((phc, ended.own)),
            Err(StoreError::NotFound) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    assert_eq!(won[0].1, 1, "the session made meanwhile ends");
    assert_eq!(
        store.password_hash(alice.id).await.unwrap(),
        Some(won[0].0.clone())
    );
    // A password change spends a pending link; so does a prune once it expired.
    store
        .start_password_reset(&link(b"r3", 100), &[])
        .await
        .unwrap();
    let kept = session(alice.id, 4);
    store.create_session(&kept, b"s4", None, &[]).await.unwrap();
    let change = PasswordChange {
        user: alice.id,
        phc: "$changed",
        replaces: None,
        keep: Some(kept.id),
    };
    store.set_password_hash(change, &[]).await.unwrap();
    assert_eq!(
        store.password_reset_user(b"r3", at(110)).await.unwrap(),
        None
    );
    store
        .start_password_reset(&link(b"r4", 200), &[])
        .await
        .unwrap();
    assert_eq!(
        store.prune_password_resets(at(200 + 3599)).await.unwrap(),
        0
    );
    assert_eq!(
        store.prune_password_resets(at(200 + 3601)).await.unwrap(),
        1
    );
}
check!(password_reset_links_are_single_use);

async fn users_share_org_only_through_a_common_org(store: Arc<dyn Store>) {
    let [alice, bob, carol] = make_users(&*store, ["alice", "bob", "carol"]).await;
    let org = make_org(&*store, "acme", alice.id).await;
    make_org(&*store, "other", carol.id).await;
    assert!(!store.users_share_org(alice.id, bob.id).await.unwrap());
    join(&*store, org.id, bob.id).await;
    assert!(store.users_share_org(alice.id, bob.id).await.unwrap());
    assert!(store.users_share_org(bob.id, alice.id).await.unwrap());
    assert!(!store.users_share_org(alice.id, carol.id).await.unwrap());
}
check!(users_share_org_only_through_a_common_org);

async fn times_are_kept_to_the_microsecond(store: Arc<dyn Store>) {
    let mut new = new_user("precise");
    new.created_at = at(0) + Duration::nanoseconds(123_456_789);
    let user = store.create_user(&new, &[]).await.unwrap();
    let expected = at(0) + Duration::microseconds(123_456);
    assert_eq!(user.created_at, expected);
    assert_eq!(store.user(user.id).await.unwrap().created_at, expected);
}
check!(times_are_kept_to_the_microsecond);

async fn anonymised_erasure_moves_messages_to_the_org_placeholder(store: Arc<dyn Store>) {
    let [owner, alice, bob] = make_users(&*store, ["owner", "alice", "bob"]).await;
    let org = make_org(&*store, "Acme", owner.id).await;
    anonymising(&*store, org.id).await;
    for u in [alice.id, bob.id] {
        join(&*store, org.id, u).await;
    }
    let conv = make_group(
        &*store,
        org.id,
        owner.id,
        &[alice.id, bob.id],
        Visibility::Scope(VisibilityScope::Org),
    )
    .await;
    let hers = post_message(&*store, conv.id, alice.id, "hers").await;
    let his = post_message(&*store, conv.id, bob.id, "his").await;
    let erased = erase(&*store, alice.id, "deleted-alice", 500).await;
    // What left, as it was: her membership and her place in the conversation.
    assert_eq!(erased.tombstoned, 0);
    assert_eq!(erased.removed.len(), 1);
    let gone = &erased.removed[0];
    assert_eq!(
        (gone.member.org_id, &gone.member.user, gone.member.role),
        (org.id, &alice.summary(), OrgRole::Member)
    );
    let left: Vec<(ConversationId, ConversationRole)> = gone
        .participations
        .iter()
        .map(|p| (p.conversation_id, p.role))
        .collect();
    assert_eq!(left, vec![(conv.id, ConversationRole::Member)]);
    // The erased id leads to none of her messages; they keep their words under the placeholder.
    assert!(store
        .messages_by_author(alice.id, None, 10)
        .await
        .unwrap()
        .is_empty());
    let moved = store.message(hers.id).await.unwrap();
    assert_eq!(moved.content.as_deref(), Some("hers"));
    let placeholder = moved.author.id;
    assert_ne!(placeholder, alice.id);
    let account = store.user(placeholder).await.unwrap();
    assert!(account.disabled && !account.server_admin);
    assert_eq!(account.kind, UserKind::User);
    assert_eq!(store.password_hash(placeholder).await.unwrap(), None);
    assert_eq!(store.membership(org.id, placeholder).await.unwrap(), None);
    // One placeholder per org.
    erase(&*store, bob.id, "deleted-bob", 600).await;
    assert_eq!(store.message(his.id).await.unwrap().author.id, placeholder);
}
check!(anonymised_erasure_moves_messages_to_the_org_placeholder);

/// DATA-6: erasure follows the policy of every org the user wrote in, a member still or not:
/// an org they left tombstones their words too; flags name the placeholder (anonymise) or
/// nobody (tombstone); invites addressed to the name they free are gone with it.
async fn erasure_follows_each_orgs_policy_where_they_wrote(store: Arc<dyn Store>) {
    let [owner, alice] = make_users(&*store, ["owner", "alice"]).await;
    let tomb = make_org(&*store, "tomb", owner.id).await;
    let anon = make_org(&*store, "anon", owner.id).await;
    anonymising(&*store, anon.id).await;
    let mut written = Vec::new();
    for org in [&tomb, &anon] {
        join(&*store, org.id, alice.id).await;
        let conv = make_group(&*store, org.id, owner.id, &[alice.id], Visibility::ORG).await;
        let message = post_message(&*store, conv.id, alice.id, "her words").await;
        let g = super::guards::guard(org.id, "words", 0);
        store.create_guard(&g, None, &[]).await.unwrap();
        store
            .add_flags(&[super::guards::flag(org.id, &g, &message)])
            .await
            .unwrap();
        written.push(message);
    }
    // She leaves the tombstoning org before she erases her account.
    store
        .remove_member(tomb.id, alice.id, None, &[])
        .await
        .unwrap();
    let mut named = super::orgs::invite(tomb.id, owner.id, Some(1), None);
    named.username = Some("alice".into());
    store
        .create_invite(&named, b"for-alice", &[])
        .await
        .unwrap();
    let erased = erase(&*store, alice.id, "deleted-alice", 500).await;
    assert_eq!(erased.tombstoned, 1);
    let in_tomb = store.message(written[0].id).await.unwrap();
    assert_eq!(in_tomb.content, None, "the org she left tombstones too");
    let in_anon = store.message(written[1].id).await.unwrap();
    assert_eq!(in_anon.content.as_deref(), Some("her words"));
    let placeholder = in_anon.author.id;
    assert_ne!(placeholder, alice.id);
    for (org, author) in [(tomb.id, None), (anon.id, Some(placeholder))] {
        let flags = store.flags(org, false, None, 50).await.unwrap();
        let named: Vec<_> = flags.iter().map(|f| f.author_id).collect();
        assert_eq!(named, vec![author], "flags in {org:?} lead nowhere");
    }
    // Whoever takes the freed name finds no invite meant for her.
    let squatter = make_user(&*store, "alice").await;
    assert!(store
        .pending_invites(squatter.id, at(501))
        .await
        .unwrap()
        .is_empty());
    assert!(store.org_invites(tomb.id).await.unwrap().is_empty());
}
check!(erasure_follows_each_orgs_policy_where_they_wrote);
