//! Two-factor authentication and login throttling: enrolments, one-time steps and recovery
//! codes, org standing, sign-in challenges and failure counters — including under concurrency.

use super::*;
use conclave_core::mfa::*;

fn codes(prefix: &str) -> Vec<StoredRecoveryCode> {
    (0..10)
        .map(|i| StoredRecoveryCode {
            lookup: format!("{prefix}{i:02}"),
            hash: format!("$argon2id$fake${prefix}{i}"),
            used_at: None,
        })
        .collect()
}

/// Runs `n` copies of `f` at once and returns their results.
async fn concurrently<T, F, Fut>(n: usize, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(f(i))).collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.expect("task finished"));
    }
    out
}

/// The sign-in challenge stored under `token_hash`, if any.
async fn challenge_of(store: &dyn Store, token_hash: &[u8]) -> Option<MfaChallenge> {
    store.mfa_challenge(token_hash).await.unwrap()
}

/// The user's recovery code with this lookup, if stored.
async fn code_of(store: &dyn Store, user: UserId, lookup: &str) -> Option<StoredRecoveryCode> {
    store.recovery_code(recovery(user, lookup)).await.unwrap()
}

/// An enabled enrolment for `user` with its last step at `step` and codes `prefix00..09`.
async fn enrol(store: &dyn Store, user: UserId, step: i64, prefix: &str) {
    assert!(store
        .save_pending_totp(user, &sealed(1, 1), at(0), &[])
        .await
        .unwrap());
    assert!(store
        .enable_totp(user, &sealed(1, 1).nonce, step, &codes(prefix), at(1), &[])
        .await
        .unwrap());
}

async fn totp_enrolment_lifecycle(store: Arc<dyn Store>) {
    let alice = make_user(&*store, "alice").await;
    let (first, second) = (sealed(1, 1), sealed(1, 2));
    assert!(store.totp_enrolment(alice.id).await.unwrap().is_none());

    assert!(store
        .save_pending_totp(alice.id, &first, at(10), &[])
        .await
        .unwrap());
    let pending = enrolment(&*store, alice.id).await;
    assert_eq!(pending.user_id, alice.id);
    assert_eq!(pending.secret, first);
    assert!(!pending.enabled());
    assert_eq!(pending.last_step, None);
    assert_eq!(pending.created_at, at(10));

    // A new setup replaces the pending secret.
    assert!(store
        .save_pending_totp(alice.id, &second, at(20), &[])
        .await
        .unwrap());
    let pending = enrolment(&*store, alice.id).await;
    assert_eq!(pending.secret, second);

    // Enabling needs the pending secret's nonce: the replaced one does nothing.
    assert!(!store
        .enable_totp(alice.id, &first.nonce, 100, &codes("aa"), at(30), &[])
        .await
        .unwrap());
    assert!(code_of(&*store, alice.id, "aa00").await.is_none());
    assert!(store
        .enable_totp(alice.id, &second.nonce, 100, &codes("aa"), at(30), &[])
        .await
        .unwrap());
    let on = enrolment(&*store, alice.id).await;
    assert_eq!(on.enabled_at, Some(at(30)));
    assert_eq!(on.last_step, Some(100));
    let code = code_of(&*store, alice.id, "aa03").await.unwrap();
    assert_eq!(code.hash, "$argon2id$fake$aa3");
    assert_eq!(code.used_at, None);

    // Once on, neither a new setup nor a second enable changes anything.
    assert!(!store
        .save_pending_totp(alice.id, &sealed(1, 3), at(40), &[])
        .await
        .unwrap());
    assert!(!store
        .enable_totp(alice.id, &second.nonce, 200, &codes("bb"), at(40), &[])
        .await
        .unwrap());
    assert_eq!(enrolment(&*store, alice.id).await, on);
    assert!(code_of(&*store, alice.id, "bb00").await.is_none());

    // Disabling removes the secret and every recovery code.
    store.disable_totp(alice.id, &[]).await.unwrap();
    assert!(store.totp_enrolment(alice.id).await.unwrap().is_none());
    assert!(code_of(&*store, alice.id, "aa03").await.is_none());
    // Enrolments are per user.
    let bob = make_user(&*store, "bob").await;
    enrol(&*store, bob.id, 5, "cc").await;
    assert!(store.totp_enrolment(alice.id).await.unwrap().is_none());
    assert!(code_of(&*store, alice.id, "cc00").await.is_none());
}
check!(totp_enrolment_lifecycle);

async fn totp_steps_are_used_once(store: Arc<dyn Store>) {
    let alice = make_user(&*store, "alice").await;
    // Not enabled: no step is accepted.
    assert!(!store.use_totp_step(alice.id, 1).await.unwrap());
    store
        .save_pending_totp(alice.id, &sealed(1, 1), at(0), &[])
        .await
        .unwrap();
    assert!(!store.use_totp_step(alice.id, 1).await.unwrap());
    store
        .enable_totp(alice.id, &sealed(1, 1).nonce, 100, &[], at(0), &[])
        .await
        .unwrap();
    // The enabling step and earlier ones are taken; later ones once each.
    assert!(!store.use_totp_step(alice.id, 100).await.unwrap());
    assert!(!store.use_totp_step(alice.id, 99).await.unwrap());
    assert!(store.use_totp_step(alice.id, 101).await.unwrap());
    assert!(!store.use_totp_step(alice.id, 101).await.unwrap());
    assert!(store.use_totp_step(alice.id, 103).await.unwrap());
    assert!(!store.use_totp_step(alice.id, 102).await.unwrap());
    // Twenty nodes racing with the same code: exactly one wins.
    let wins = concurrently(20, |_| {
        let store = store.clone();
        async move { store.use_totp_step(alice.id, 200).await.unwrap() }
    })
    .await;
    assert_eq!(wins.iter().filter(|w| **w).count(), 1);
    assert_eq!(enrolment(&*store, alice.id).await.last_step, Some(200));
}
check!(totp_steps_are_used_once);

async fn recovery_codes_are_used_once(store: Arc<dyn Store>) {
    let [alice, bob] = make_users(&*store, ["alice", "bob"]).await;
    // Replacing needs 2FA on.
    assert!(!store
        .replace_recovery_codes(alice.id, &codes("zz"), at(0), &[])
        .await
        .unwrap());
    assert!(code_of(&*store, alice.id, "zz00").await.is_none());
    enrol(&*store, alice.id, 1, "aa").await;
    enrol(&*store, bob.id, 1, "aa").await;

    // A code is used once (the first use's time stays); an unknown code never.
    for (lookup, secs, used) in [("aa01", 50, true), ("aa01", 60, false), ("nope", 60, false)] {
        let got = store
            .use_recovery_code(recovery(alice.id, lookup), at(secs), &[])
            .await;
        assert_eq!(got.unwrap(), used, "using {lookup} at {secs}s");
    }
    let used_at = |code: Option<StoredRecoveryCode>| code.expect("stored").used_at;
    assert_eq!(
        used_at(code_of(&*store, alice.id, "aa01").await),
        Some(at(50))
    );
    // Codes are per user: bob's code with the same prefix is untouched.
    assert_eq!(used_at(code_of(&*store, bob.id, "aa01").await), None);
    // Twenty concurrent uses of one code: exactly one succeeds.
    let wins = concurrently(20, |_| {
        let store = store.clone();
        async move {
            store
                .use_recovery_code(recovery(alice.id, "aa02"), at(70), &[])
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(wins.iter().filter(|w| **w).count(), 1);

    // Regenerating replaces every code, used or not.
    assert!(store
        .replace_recovery_codes(alice.id, &codes("bb"), at(80), &[])
        .await
        .unwrap());
    assert!(code_of(&*store, alice.id, "aa01").await.is_none());
    assert!(code_of(&*store, alice.id, "aa05").await.is_none());
    let fresh = code_of(&*store, alice.id, "bb01").await.unwrap();
    assert_eq!(fresh.used_at, None);
    assert!(code_of(&*store, bob.id, "aa05").await.is_some());
}
check!(recovery_codes_are_used_once);

async fn org_standing_reflects_requirement_and_enrolment(store: Arc<dyn Store>) {
    let [owner, member, stranger] = make_users(&*store, ["owner", "member", "stranger"]).await;
    let org = make_org(&*store, "acme", owner.id).await;
    join(&*store, org.id, member.id).await;
    assert_eq!(store.org_standing(org.id, stranger.id).await.unwrap(), None);
    let standing_of = |user| {
        let store = &store;
        async move {
            let standing = store.org_standing(org.id, user).await.unwrap();
            standing.expect("a member's standing")
        }
    };
    let standing = standing_of(member.id).await;
    assert_eq!(
        standing,
        OrgStanding {
            role: OrgRole::Member,
            org_requires_2fa: false,
            user_has_2fa: false,
        }
    );
    assert!(!standing.needs_2fa_setup());

    store
        .update_org(
            org.id,
            &OrgPatch {
                require_2fa: Some(true),
                ..OrgPatch::default()
            },
            &[],
        )
        .await
        .unwrap();
    let standing = standing_of(member.id).await;
    assert!(standing.org_requires_2fa && !standing.user_has_2fa);
    assert!(standing.needs_2fa_setup());

    // A pending (unconfirmed) secret is not 2FA.
    store
        .save_pending_totp(member.id, &sealed(1, 1), at(2), &[])
        .await
        .unwrap();
    assert!(standing_of(member.id).await.needs_2fa_setup());
    store
        .enable_totp(member.id, &sealed(1, 1).nonce, 7, &[], at(3), &[])
        .await
        .unwrap();
    let standing = standing_of(member.id).await;
    assert!(standing.user_has_2fa && !standing.needs_2fa_setup());
    let owner_standing = standing_of(owner.id).await;
    assert_eq!(owner_standing.role, OrgRole::Owner);
    assert!(owner_standing.needs_2fa_setup());
}
check!(org_standing_reflects_requirement_and_enrolment);

async fn mfa_challenges_expire_fail_and_are_taken_once(store: Arc<dyn Store>) {
    let alice = make_user(&*store, "alice").await;
    let challenge = MfaChallenge {
        user_id: alice.id,
        cookie: true,
        created_at: at(0),
        expires_at: at(300),
        failures: 0,
    };
    store
        .create_mfa_challenge(&challenge, b"hash-a", None)
        .await
        .unwrap();
    assert_eq!(
        challenge_of(&*store, b"hash-a").await,
        Some(challenge.clone())
    );
    assert_eq!(challenge_of(&*store, b"hash-x").await, None);

    // Two checks reserved: counted on the challenge.
    for n in 1..=2 {
        let got = store
            .reserve_mfa_attempt(b"hash-a", at(10), 5)
            .await
            .unwrap()
            .expect("reserved");
        assert_eq!(got.failures, n);
    }
    // Unknown, expired, or at the limit: no check reserved, nothing counted.
    let refused: [(&[u8], i64, i32); 3] =
        [(b"hash-x", 10, 5), (b"hash-a", 300, 5), (b"hash-a", 10, 2)];
    for (hash, secs, max_failures) in refused {
        let got = store
            .reserve_mfa_attempt(hash, at(secs), max_failures)
            .await;
        assert_eq!(
            got.unwrap(),
            None,
            "{hash:?} at {secs}s, limit {max_failures}"
        );
    }
    assert_eq!(challenge_of(&*store, b"hash-a").await.unwrap().failures, 2);
    // Expired: not taken (and still there).
    assert_eq!(
        store.take_mfa_challenge(b"hash-a", at(300)).await.unwrap(),
        None
    );
    // Taken once, even by racing requests.
    let taken = concurrently(10, |_| {
        let store = store.clone();
        async move { store.take_mfa_challenge(b"hash-a", at(10)).await.unwrap() }
    })
    .await;
    let winners: Vec<_> = taken.into_iter().flatten().collect();
    assert_eq!(winners.len(), 1);
    assert_eq!(winners[0].failures, 2);
    assert!(winners[0].cookie);
    assert_eq!(challenge_of(&*store, b"hash-a").await, None);

    // A hundred checks at once on one challenge: exactly five are reserved, then it is dead.
    store
        .create_mfa_challenge(&challenge, b"hash-b", None)
        .await
        .unwrap();
    let got = concurrently(100, |_| {
        let store = store.clone();
        async move {
            store
                .reserve_mfa_attempt(b"hash-b", at(10), 5)
                .await
                .unwrap()
                .map(|c| c.failures)
        }
    })
    .await;
    let mut counts: Vec<i32> = got.into_iter().flatten().collect();
    counts.sort_unstable();
    assert_eq!(counts, vec![1, 2, 3, 4, 5]);
    assert_eq!(
        store
            .reserve_mfa_attempt(b"hash-b", at(10), 5)
            .await
            .unwrap(),
        None
    );

    // Pruning drops only expired challenges.
    let later = MfaChallenge {
        expires_at: at(900),
        ..challenge.clone()
    };
    store
        .create_mfa_challenge(&later, b"hash-c", None)
        .await
        .unwrap();
    assert_eq!(store.prune_mfa_challenges(at(600)).await.unwrap(), 1);
    assert!(challenge_of(&*store, b"hash-b").await.is_none());
    assert!(challenge_of(&*store, b"hash-c").await.is_some());
}
check!(mfa_challenges_expire_fail_and_are_taken_once);

fn key(account: &str, ip: &str) -> ThrottleKey {
    ThrottleKey {
        account: account.into(),
        ip: ip.into(),
    }
}

/// A gate like AUTH-5's per (account, IP) rule at `now`: four free failures, then 30 s, 60 s
/// and (capped) 120 s.
fn gate(key: ThrottleKey, now: i64) -> ThrottleGate {
    ThrottleGate {
        key,
        free: 5,
        cutoffs: vec![at(now - 30), at(now - 60), at(now - 120)],
    }
}

async fn login_attempts_are_reserved_atomically(store: Arc<dyn Store>) {
    let keys = vec![
        key("acct", "10.0.0.1"),
        key("acct", ""),
        key("", "10.0.0.1"),
    ];
    assert!(store.login_failures(&keys).await.unwrap().is_empty());
    assert!(store.login_failures(&[]).await.unwrap().is_empty());

    // A hundred attempts at once on one counter (a pool of connections on PostgreSQL): five
    // pass — as many as one after the other would — and each is counted once.
    let passed = concurrently(100, |_| {
        let store = store.clone();
        async move {
            store
                .reserve_login_attempt(&gate(key("acct", "10.0.0.1"), 1000), at(1000), at(0))
                .await
                .unwrap()
        }
    })
    .await;
    let passed: Vec<ThrottleReservation> = passed.into_iter().flatten().collect();
    assert_eq!(passed.len(), 5);
    let counts = store.login_failures(&keys[..1]).await.unwrap();
    assert_eq!(counts[0].failures, 5);
    assert_eq!(counts[0].last_failure_at, at(1000));
    // All five are in flight until settled (checked and failed): then they stay counted.
    assert_eq!(store.pending_login_attempts(&keys).await.unwrap(), 5);
    for r in &passed {
        store
            .settle_login_attempts(std::slice::from_ref(r), &[])
            .await
            .unwrap();
    }
    assert_eq!(store.pending_login_attempts(&keys).await.unwrap(), 0);
    assert_eq!(
        store.login_failures(&keys[..1]).await.unwrap()[0].failures,
        5
    );
    // Refused until the back-off for five has passed; then one more, then 60 s.
    let try_at = |t: i64| {
        let store = store.clone();
        async move {
            store
                .reserve_login_attempt(&gate(key("acct", "10.0.0.1"), t), at(t), at(0))
                .await
                .unwrap()
        }
    };
    assert!(try_at(1029).await.is_none());
    let sixth = try_at(1030).await.expect("the back-off has passed");
    assert_eq!(sixth.previous, Some(at(1000)));
    assert!(try_at(1089).await.is_none());
    // Giving it back restores the count and the time of the failure before it.
    store.refund_login_attempt(&sixth).await.unwrap();
    let counts = store.login_failures(&keys[..1]).await.unwrap();
    assert_eq!(
        (counts[0].failures, counts[0].last_failure_at),
        (5, at(1000))
    );
    assert!(
        try_at(1030).await.is_some(),
        "the refund let the next one in"
    );

    // Counters are separate; a counter with only the given-back failure goes.
    let other = key("acct", "10.0.0.2");
    let first = store
        .reserve_login_attempt(&gate(other.clone(), 2000), at(2000), at(0))
        .await
        .unwrap()
        .expect("a new counter lets the attempt through");
    assert_eq!(first.previous, None);
    assert_eq!(
        store
            .login_failures(std::slice::from_ref(&other))
            .await
            .unwrap()[0]
            .failures,
        1
    );
    store.refund_login_attempt(&first).await.unwrap();
    assert!(store
        .login_failures(std::slice::from_ref(&other))
        .await
        .unwrap()
        .is_empty());

    // A counter whose last failure is older than `forget_before` starts again.
    let again = store
        .reserve_login_attempt(&gate(keys[0].clone(), 9000), at(9000), at(4000))
        .await
        .unwrap()
        .expect("forgotten");
    assert_eq!(again.previous, None);
    let counts = store.login_failures(&keys[..1]).await.unwrap();
    assert_eq!(
        (counts[0].failures, counts[0].last_failure_at),
        (1, at(9000))
    );

    // Many attempts under the threshold on the other counters: none lost.
    concurrently(20, |i| {
        let store = store.clone();
        let keys = keys.clone();
        async move {
            for k in &keys[1..] {
                let g = ThrottleGate {
                    key: k.clone(),
                    free: 50,
                    cutoffs: vec![at(0)],
                };
                store
                    .reserve_login_attempt(&g, at(100 + (i as i64 % 7)), at(0))
                    .await
                    .unwrap()
                    .expect("under the threshold");
            }
        }
    })
    .await;
    for c in store.login_failures(&keys[1..]).await.unwrap() {
        assert_eq!(c.failures, 20, "{:?}", c.key);
        assert_eq!(c.last_failure_at, at(106), "the latest failure is kept");
    }

    // Clearing removes exactly the given counters.
    store.clear_login_failures(&keys[..2]).await.unwrap();
    let left = store.login_failures(&keys).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].key, keys[2]);

    // Pruning removes counters whose last failure is old.
    assert_eq!(store.prune_login_failures(at(150)).await.unwrap(), 1);
    assert!(store.login_failures(&keys).await.unwrap().is_empty());
}
check!(login_attempts_are_reserved_atomically);
