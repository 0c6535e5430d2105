//! DATA-3: the secrets key ring through `conclave keys list|rotate|retire`
//! (`conclave_server::keyring::run_keys_command`) against a running server — rotation
//! re-encrypts every stored secret and 2FA keeps working, sealed values are bound to their row
//! and tamper-evident, retiring is refused while a key is used and a retired key opens nothing,
//! a 2FA setup during a rotation is never lost, no key material is printed, and production
//! refuses a generated master key.

use crate::both_backends;
use crate::db::Db;
use crate::helpers::*;
use crate::mfa::{code_at, enable_2fa, mfa_token, next_step, second_step, send_code};
use crate::with_pool;
use conclave_core::totp::TotpSecret;
use conclave_server::config::{Config, Environment, OnOff};
use conclave_server::keyring::{run_keys_command, KeysCommand, KeysError};
use secrecy::SecretString;
use serde_json::json;

both_backends!(
    rotation_re_encrypts_every_secret_and_totp_login_still_works,
    a_ciphertext_copied_to_another_row_or_tampered_does_not_open,
    retire_is_refused_while_in_use_and_retired_keys_open_nothing,
    a_2fa_setup_during_rotation_is_never_lost,
);

/// The app (rate limits off: these tests sign in often), the configuration it runs with, and
/// its database opened beside it.
async fn app_config_and_db(app: TestApp) -> (TestApp, Config, Db) {
    let (app, config) = spawn_app_and_config(app.backend, |c| c.rate_limits = OnOff::Off).await;
    let db = Db::open(&config).await;
    (app, config, db)
}

async fn keys(app: &TestApp, config: &Config, command: KeysCommand) -> Result<String, KeysError> {
    use conclave_core::Clock;
    run_keys_command(config, command, app.clock.now()).await
}

/// The error of a `keys retire` that must be refused.
async fn retire_refused(app: &TestApp, config: &Config, id: i32) -> String {
    let refused = keys(app, config, KeysCommand::Retire { id }).await;
    refused.unwrap_err().to_string()
}

type TotpRow = (i32, Vec<u8>, Vec<u8>);

/// The TOTP columns this module reads and writes directly.
impl Db {
    /// Every stored TOTP secret's key id, by user.
    async fn totp_key_ids(&self) -> Vec<i32> {
        let sql = "SELECT secret_key_id FROM user_totp ORDER BY user_id";
        with_pool!(self, p => sqlx::query_scalar(sql).fetch_all(p).await.unwrap())
    }

    async fn wrapped_keys(&self) -> Vec<Vec<u8>> {
        let sql = "SELECT wrapped_key FROM secret_keys WHERE wrapped_key IS NOT NULL";
        with_pool!(self, p => sqlx::query_scalar(sql).fetch_all(p).await.unwrap())
    }

    async fn totp(&self, user: &User) -> TotpRow {
        let id = uuid::Uuid::parse_str(&user.id).unwrap();
        let sql = "SELECT secret_key_id, secret_nonce, secret_ciphertext FROM user_totp \
                   WHERE user_id = $1";
        with_pool!(self, p => sqlx::query_as(sql).bind(id).fetch_one(p).await.unwrap())
    }

    async fn set_totp(&self, user: &User, (key_id, nonce, ciphertext): &TotpRow) {
        let id = uuid::Uuid::parse_str(&user.id).unwrap();
        let sql = "UPDATE user_totp SET secret_key_id = $2, secret_nonce = $3, \
                   secret_ciphertext = $4 WHERE user_id = $1";
        let done = with_pool!(self, p => sqlx::query(sql)
            .bind(id)
            .bind(key_id)
            .bind(nonce)
            .bind(ciphertext)
            .execute(p)
            .await
            .unwrap()
            .rows_affected());
        assert_eq!(done, 1);
    }
}

/// The full 2FA sign-in with `code`.
async fn sign_in(app: &TestApp, username: &str, code: &str) -> Res {
    let token = mfa_token(app, username).await;
    second_step(app, &token, code).await
}

async fn rotation_re_encrypts_every_secret_and_totp_login_still_works(app: TestApp) {
    let (app, config, db) = app_config_and_db(app).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let (secret, _) = enable_2fa(&app, &alice).await;
    // Bob's setup is pending (not confirmed yet) while the keys rotate.
    let setup = app
        .post("/api/v1/auth/totp/setup", &bob.token, json!({}))
        .await
        .expect(200);
    let bob_secret = TotpSecret::from_base32(setup.body["secret"].as_str().unwrap()).unwrap();
    assert_eq!(db.totp_key_ids().await, vec![1, 1]);

    let listed = keys(&app, &config, KeysCommand::List).await.unwrap();
    let rows: Vec<&str> = listed.lines().collect();
    assert_eq!(rows.len(), 2, "{listed}");
    assert!(rows[0].starts_with("ID"), "{listed}");
    let one: Vec<&str> = rows[1].split_whitespace().collect();
    assert_eq!(one[0], "1");
    assert_eq!(&one[one.len() - 3..], ["-", "yes", "2"], "{listed}");

    let out = keys(&app, &config, KeysCommand::Rotate).await.unwrap();
    assert!(
        out.contains("key 2 is current; re-encrypted 2 secret(s)"),
        "{out}"
    );
    assert_eq!(db.totp_key_ids().await, vec![2, 2], "every secret moved");

    let signed_in = sign_in(&app, "alice", &code_at(&app, &secret, 0))
        .await
        .expect(200);
    assert!(signed_in.body["token"].is_string());
    send_code(&app, &bob, "totp/enable", code_at(&app, &bob_secret, 0))
        .await
        .expect(200);

    // Safe to re-run: another key, everything moves again, sign-in still works.
    let out = keys(&app, &config, KeysCommand::Rotate).await.unwrap();
    assert!(
        out.contains("key 3 is current; re-encrypted 2 secret(s)"),
        "{out}"
    );
    assert_eq!(db.totp_key_ids().await, vec![3, 3]);
    next_step(&app);
    sign_in(&app, "alice", &code_at(&app, &secret, 0))
        .await
        .expect(200);

    // The listing shows state and use, and no key material in any form.
    let listed = keys(&app, &config, KeysCommand::List).await.unwrap();
    let last: Vec<&str> = listed.lines().last().unwrap().split_whitespace().collect();
    assert_eq!(last[0], "3");
    assert_eq!(&last[last.len() - 2..], ["yes", "2"], "{listed}");
    assert_eq!(
        listed.matches(" yes ").count(),
        1,
        "one current key: {listed}"
    );
    let master = std::fs::read_to_string(config.data_dir.join("master.key")).unwrap();
    assert!(!listed.contains(master.trim()));
    let wrapped = db.wrapped_keys().await;
    assert_eq!(wrapped.len(), 2);
    for w in wrapped {
        use base64::Engine;
        let hex: String = w.iter().map(|b| format!("{b:02x}")).collect();
        for text in [&listed, &out] {
            assert!(!text.contains(&hex[..16]));
            assert!(!text.contains(&base64::engine::general_purpose::STANDARD.encode(&w)[..16]));
        }
    }
}

async fn a_ciphertext_copied_to_another_row_or_tampered_does_not_open(app: TestApp) {
    let (app, config, db) = app_config_and_db(app).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let (alice_secret, _) = enable_2fa(&app, &alice).await;
    let (bob_secret, _) = enable_2fa(&app, &bob).await;
    for round in 0..2 {
        // Under key 1 (sealed by the server), then under a rotated data key.
        if round == 1 {
            keys(&app, &config, KeysCommand::Rotate).await.unwrap();
        }
        next_step(&app);
        let alice_row = db.totp(&alice).await;
        let bob_row = db.totp(&bob).await;
        db.set_totp(&bob, &alice_row).await;
        for secret in [&alice_secret, &bob_secret] {
            sign_in(&app, "bob", &code_at(&app, secret, 0))
                .await
                .expect_error(500, "internal_error");
        }
        db.set_totp(&bob, &bob_row).await;

        let mut tampered = alice_row.clone();
        tampered.2[3] ^= 0x01;
        db.set_totp(&alice, &tampered).await;
        sign_in(&app, "alice", &code_at(&app, &alice_secret, 0))
            .await
            .expect_error(500, "internal_error");
        let mut other_key = alice_row.clone();
        other_key.0 = if round == 0 { 2 } else { 1 };
        db.set_totp(&alice, &other_key).await;
        sign_in(&app, "alice", &code_at(&app, &alice_secret, 0))
            .await
            .expect_error(500, "internal_error");
        db.set_totp(&alice, &alice_row).await;

        // Put back, both open again.
        sign_in(&app, "alice", &code_at(&app, &alice_secret, 0))
            .await
            .expect(200);
        sign_in(&app, "bob", &code_at(&app, &bob_secret, 0))
            .await
            .expect(200);
    }
}

async fn retire_is_refused_while_in_use_and_retired_keys_open_nothing(app: TestApp) {
    let (app, config, db) = app_config_and_db(app).await;
    let alice = app.user("alice").await;
    let (secret, _) = enable_2fa(&app, &alice).await;
    let old = db.totp(&alice).await;
    assert_eq!(old.0, 1);

    let err = retire_refused(&app, &config, 1).await;
    assert!(err.contains("key 1 is the current key"), "{err}");
    let err = retire_refused(&app, &config, 7).await;
    assert!(err.contains("no secrets key with id 7"), "{err}");

    keys(&app, &config, KeysCommand::Rotate).await.unwrap();
    // An old value comes back (say, from a backup): key 1 still opens it while not retired.
    db.set_totp(&alice, &old).await;
    sign_in(&app, "alice", &code_at(&app, &secret, 0))
        .await
        .expect(200);
    let err = retire_refused(&app, &config, 1).await;
    assert!(err.contains("key 1 still seals 1 stored secret"), "{err}");

    keys(&app, &config, KeysCommand::Rotate).await.unwrap();
    assert_eq!(db.totp_key_ids().await, vec![3]);
    let out = keys(&app, &config, KeysCommand::Retire { id: 1 })
        .await
        .unwrap();
    assert!(out.contains("key 1 is retired"), "{out}");
    keys(&app, &config, KeysCommand::Retire { id: 2 })
        .await
        .unwrap();
    let err = retire_refused(&app, &config, 1).await;
    assert!(err.contains("retired already"), "{err}");
    let err = retire_refused(&app, &config, 3).await;
    assert!(err.contains("current key"), "{err}");
    let listed = keys(&app, &config, KeysCommand::List).await.unwrap();
    let retired: Vec<&str> = listed
        .lines()
        .skip(1)
        .filter(|l| !l.contains(" - "))
        .collect();
    assert_eq!(
        retired.len(),
        2,
        "keys 1 and 2 show a retirement date: {listed}"
    );

    next_step(&app);
    sign_in(&app, "alice", &code_at(&app, &secret, 0))
        .await
        .expect(200);
    // The old value again: once the node's ring is reloaded (at most the TTL later), the
    // retired key opens nothing.
    db.set_totp(&alice, &old).await;
    app.clock
        .advance(conclave_core::service::SECRET_RING_TTL + chrono::Duration::seconds(1));
    sign_in(&app, "alice", &code_at(&app, &secret, 0))
        .await
        .expect_error(500, "internal_error");
}

async fn a_2fa_setup_during_rotation_is_never_lost(app: TestApp) {
    let (app, config, db) = app_config_and_db(app).await;
    let bob = app.user("bob").await;
    for name in ["carol", "dave", "erin", "frank"] {
        let u = app.user(name).await;
        app.post("/api/v1/auth/totp/setup", &u.token, json!({}))
            .await
            .expect(200);
    }
    let rotations = {
        let config = config.clone();
        let now = {
            use conclave_core::Clock;
            app.clock.now()
        };
        tokio::spawn(async move {
            for _ in 0..3 {
                run_keys_command(&config, KeysCommand::Rotate, now)
                    .await
                    .unwrap();
            }
        })
    };
    let mut last = None;
    for _ in 0..8 {
        let setup = app
            .post("/api/v1/auth/totp/setup", &bob.token, json!({}))
            .await
            .expect(200);
        last = Some(setup.string("secret"));
    }
    rotations.await.unwrap();
    // Bob's latest setup is the one stored, under the current key like every other secret.
    let ids = db.totp_key_ids().await;
    assert!(ids.iter().all(|id| *id == 4), "{ids:?}");
    let secret = TotpSecret::from_base32(&last.unwrap()).unwrap();
    let code = code_at(&app, &secret, 0);
    send_code(&app, &bob, "totp/enable", code).await.expect(200);
}

/// A production configuration that lacks only the master key.
fn production_without_master_key(dir: &std::path::Path) -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        env: Environment::Production,
        admin_token: Some(SecretString::from(ADMIN_TOKEN)),
        public_url: Some("https://chat.example".into()),
        trust_proxy_tls: true,
        ..Config::default()
    }
}

/// The error of a key command run on its own (no server, the system clock) that must fail.
async fn refused_without_a_server(config: &Config, command: KeysCommand) -> String {
    let now = conclave_core::Clock::now(&conclave_core::SystemClock);
    let refused = run_keys_command(config, command, now).await;
    refused.unwrap_err().to_string()
}

#[tokio::test]
async fn production_refuses_a_generated_master_key() {
    let dir = TempDir(std::env::temp_dir().join(format!("conclave-test-{}", uuid::Uuid::now_v7())));
    let config = production_without_master_key(&dir.0);
    let clock = std::sync::Arc::new(conclave_core::ManualClock::default());
    let err = match conclave_server::Application::build(config.clone(), clock).await {
        Ok(_) => panic!("production started without a master key"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("CONCLAVE_MASTER_KEY"), "{err}");
    assert!(!dir.0.join("master.key").exists(), "no key was generated");
    let err = refused_without_a_server(&config, KeysCommand::List).await;
    assert!(err.contains("CONCLAVE_MASTER_KEY"), "{err}");

    // Outside production, the key tools still never make a key up.
    let dev = Config {
        env: Environment::Development,
        ..config
    };
    let err = refused_without_a_server(&dev, KeysCommand::Rotate).await;
    assert!(err.contains("no master key"), "{err}");
    assert!(!dir.0.join("master.key").exists(), "no key was generated");
}
