//! Secrets at rest: the key ring's keys (add, list, retire and its refusals), paging through
//! every sealed secret, and the compare-and-swap that re-seals one — under concurrency too.

use super::*;
use conclave_core::keyring::*;
use conclave_core::secretbox::SealedColumn;

fn key(id: i32, secs: i64) -> SecretKeyRecord {
    SecretKeyRecord {
        id,
        wrapped_key: Some(vec![id as u8; 60]),
        created_at: at(secs),
        retired_at: None,
    }
}

fn totp_at(user: UserId) -> SecretRef {
    SecretRef {
        column: SealedColumn::UserTotpSecret,
        row: user.0,
    }
}

/// `n` users, the `i`-th with a pending TOTP secret sealed under key 1 from byte `i`.
async fn users_with_secrets(store: &dyn Store, n: u8) -> Vec<(UserId, u8)> {
    let mut users = Vec::new();
    for i in 0..n {
        let u = make_user(store, &format!("user{i}")).await;
        let saved = store
            .save_pending_totp(u.id, &sealed(1, i), at(0), &[])
            .await;
        assert!(saved.unwrap());
        users.push((u.id, i));
    }
    users
}

async fn secret_keys_are_added_listed_and_retired(store: Arc<dyn Store>) {
    // A fresh database has key 1, derived from the master key: no stored material.
    let keys = store.secret_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].id, 1);
    assert!(keys[0].wrapped_key.is_none() && keys[0].retired_at.is_none());
    assert_eq!(
        store.retire_secret_key(1, at(1), &[]).await.unwrap(),
        RetireOutcome::Current,
        "the only key is current"
    );

    let [alice, bob] = make_users(&*store, ["alice", "bob"]).await;
    assert!(store
        .save_pending_totp(alice.id, &sealed(1, 1), at(0), &[])
        .await
        .unwrap());
    assert!(store
        .save_pending_totp(bob.id, &sealed(1, 2), at(0), &[])
        .await
        .unwrap());
    assert_eq!(store.secret_key_usage().await.unwrap(), vec![(1, 2)]);

    assert!(store.add_secret_key(&key(2, 10)).await.unwrap());
    assert!(
        !store.add_secret_key(&key(2, 11)).await.unwrap(),
        "an id is added once"
    );
    let keys = store.secret_keys().await.unwrap();
    assert_eq!(keys.iter().map(|k| k.id).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(keys[1], key(2, 10), "what was added is read back unchanged");

    assert_eq!(
        store.retire_secret_key(2, at(12), &[]).await.unwrap(),
        RetireOutcome::Current
    );
    assert_eq!(
        store.retire_secret_key(1, at(12), &[]).await.unwrap(),
        RetireOutcome::InUse(2)
    );
    assert_not_found(store.retire_secret_key(9, at(12), &[]).await);
    assert!(store.secret_keys().await.unwrap()[0].retired_at.is_none());

    for (user, byte) in [(alice.id, 1), (bob.id, 2)] {
        assert!(store
            .replace_sealed_secret(&totp_at(user), &sealed(1, byte), &sealed(2, byte + 10))
            .await
            .unwrap());
    }
    assert_eq!(store.secret_key_usage().await.unwrap(), vec![(2, 2)]);
    assert_eq!(
        store.retire_secret_key(1, at(13), &[]).await.unwrap(),
        RetireOutcome::Retired
    );
    assert_eq!(
        store.retire_secret_key(1, at(14), &[]).await.unwrap(),
        RetireOutcome::AlreadyRetired
    );
    let keys = store.secret_keys().await.unwrap();
    assert_eq!(keys[0].retired_at, Some(at(13)));
    assert_eq!(
        store.retire_secret_key(2, at(15), &[]).await.unwrap(),
        RetireOutcome::Current,
        "the newest key not retired stays"
    );
}
check!(secret_keys_are_added_listed_and_retired);

async fn sealed_secrets_page_through_every_row_once(store: Arc<dyn Store>) {
    assert!(store.sealed_secrets(None, 10).await.unwrap().is_empty());
    let users = users_with_secrets(&*store, 7).await;
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let batch = store.sealed_secrets(after.as_ref(), 3).await.unwrap();
        assert!(batch.len() <= 3);
        seen.extend(batch.iter().cloned());
        match batch.last() {
            Some(last) if batch.len() == 3 => after = Some(last.at),
            _ => break,
        }
    }
    assert_eq!(seen.len(), 7, "every sealed secret, once");
    let mut refs: Vec<SecretRef> = seen.iter().map(|s| s.at).collect();
    let in_order = refs.clone();
    refs.sort();
    assert_eq!(refs, in_order, "in (column, row) order");
    for (user, byte) in users {
        let found = seen.iter().find(|s| s.at == totp_at(user)).unwrap();
        assert_eq!(found.sealed, sealed(1, byte));
    }
}
check!(sealed_secrets_page_through_every_row_once);

async fn replacing_a_sealed_secret_is_compare_and_swap(store: Arc<dyn Store>) {
    let alice = make_user(&*store, "alice").await;
    let at_alice = totp_at(alice.id);
    assert!(
        !store
            .replace_sealed_secret(&at_alice, &sealed(1, 1), &sealed(2, 2))
            .await
            .unwrap(),
        "nothing stored: nothing replaced"
    );
    assert!(store
        .save_pending_totp(alice.id, &sealed(1, 1), at(0), &[])
        .await
        .unwrap());
    // The wrong nonce or the wrong key id: nothing changes.
    for stale in [sealed(1, 9), sealed(3, 1)] {
        assert!(!store
            .replace_sealed_secret(&at_alice, &stale, &sealed(2, 2))
            .await
            .unwrap());
    }
    assert_eq!(enrolment(&*store, alice.id).await.secret, sealed(1, 1));

    // A rotation read the value, then the user set up 2FA again: the user's secret stays.
    let read = store.sealed_secrets(None, 10).await.unwrap();
    assert!(store
        .save_pending_totp(alice.id, &sealed(1, 5), at(1), &[])
        .await
        .unwrap());
    assert!(!store
        .replace_sealed_secret(&at_alice, &read[0].sealed, &sealed(2, 6))
        .await
        .unwrap());
    let now = enrolment(&*store, alice.id).await;
    assert_eq!(now.secret, sealed(1, 5));
    assert!(now.enabled_at.is_none(), "the rest of the row is untouched");

    // Of many concurrent replacements of the same value, exactly one wins.
    let wins = futures_join(&store, at_alice).await;
    assert_eq!(wins, 1);
    let stored = enrolment(&*store, alice.id).await.secret;
    assert_eq!(stored.key_id, 2);
}
check!(replacing_a_sealed_secret_is_compare_and_swap);

async fn futures_join(store: &Arc<dyn Store>, at_alice: SecretRef) -> usize {
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .replace_sealed_secret(&at_alice, &sealed(1, 5), &sealed(2, 100 + i))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        if t.await.unwrap() {
            wins += 1;
        }
    }
    wins
}

async fn retire_and_reseal_race_never_retires_a_key_in_use(store: Arc<dyn Store>) {
    // While key 1 is being replaced row by row, concurrent retire attempts either are refused
    // or happen after the last row moved: never is a retired key left sealing a secret.
    let users = users_with_secrets(&*store, 6).await;
    assert!(store.add_secret_key(&key(2, 1)).await.unwrap());
    let mover = {
        let store = store.clone();
        tokio::spawn(async move {
            for (user, byte) in users {
                assert!(store
                    .replace_sealed_secret(&totp_at(user), &sealed(1, byte), &sealed(2, byte))
                    .await
                    .unwrap());
            }
        })
    };
    let mut retired = false;
    for i in 0..50 {
        match store.retire_secret_key(1, at(10 + i), &[]).await.unwrap() {
            RetireOutcome::Retired => {
                retired = true;
                break;
            }
            RetireOutcome::InUse(n) => assert!(n > 0),
            other => panic!("unexpected {other:?}"),
        }
        tokio::task::yield_now().await;
    }
    mover.await.unwrap();
    if !retired {
        assert_eq!(
            store.retire_secret_key(1, at(100), &[]).await.unwrap(),
            RetireOutcome::Retired
        );
    }
    assert_eq!(store.secret_key_usage().await.unwrap(), vec![(2, 6)]);
}
check!(retire_and_reseal_race_never_retires_a_key_in_use);
