//! Issue 13: the identity and access cache never outlives a revocation. Each test warms the
//! cache with a request (so the next one is answered from memory), changes something, and
//! proves the very next request is refused: on the same node at once (the change invalidates
//! before its response), and on a node that never hears of it once the TTL has passed.

use crate::both_backends;
use crate::bots::make_bot;
use crate::fixtures::{Acme, Team};
use crate::helpers::*;
use crate::keys::make_key;
use chrono::Duration;
use conclave_server::config::OnOff;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

both_backends!(
    sessions_and_accounts_are_refused_at_once_when_warm,
    credentials_are_refused_at_once_when_warm,
    conversation_access_follows_every_change_when_warm,
    a_change_no_event_announces_is_refused_after_the_ttl,
    no_request_sent_after_a_revocation_is_let_in,
);

const ME: &str = "/api/v1/users/@me";

/// Logout, revoking a session, disabling the account, requiring 2FA, a profile change.
async fn sessions_and_accounts_are_refused_at_once_when_warm(app: TestApp) {
    let admin = app.bootstrap().await;
    let Acme { alice, bob, .. } = app.acme().await;
    // Logout.
    app.get(ME, &alice.token).await.expect(200);
    app.get(ME, &alice.token).await.expect(200);
    app.logout(&alice.token).await;
    app.assert_signed_out(&alice.token).await;
    // One session revoked by id from another.
    let alice = app.sign_in_again("alice", alice).await;
    let second = app
        .login("alice", PASSWORD)
        .await
        .expect(200)
        .string("token");
    let sid = app.get("/api/v1/auth/session", &second).await.body["session"]["id"]
        .as_str()
        .expect("a session id")
        .to_owned();
    app.get(ME, &second).await.expect(200);
    app.delete(&format!("/api/v1/auth/sessions/{sid}"), &alice.token)
        .await
        .expect(204);
    app.assert_signed_out(&second).await;
    app.get(ME, &alice.token).await.expect(200);
    // A profile change shows at once.
    app.patch(ME, &alice.token, json!({"display_name": "Alice A."}))
        .await
        .expect(200);
    let me = app.get(ME, &alice.token).await.expect(200);
    assert_eq!(me.body["display_name"], "Alice A.");
    // The account disabled by an admin.
    app.get(ME, &bob.token).await.expect(200);
    app.set_disabled(&admin.token, &bob, true).await;
    app.assert_signed_out(&bob.token).await;
    // 2FA required of the account (the gate reads the cached account).
    app.get("/api/v1/orgs", &alice.token).await.expect(200);
    app.update_user(&admin.token, &alice, json!({"require_2fa": true}))
        .await
        .expect(200);
    app.get("/api/v1/orgs", &alice.token)
        .await
        .expect_error(403, "mfa_setup_required");
    // And lifted again: let in at once too.
    app.update_user(&admin.token, &alice, json!({"require_2fa": false}))
        .await
        .expect(200);
    app.get("/api/v1/orgs", &alice.token).await.expect(200);
}

/// API keys revoked or rotated, bot tokens rotated, a bot removed from its org, all warm.
async fn credentials_are_refused_at_once_when_warm(app: TestApp) {
    let Acme { alice, org, .. } = app.acme().await;
    let spec = json!({"name": "ci", "org_id": org, "scopes": ["org:read"]});
    let (id, key) = make_key(&app, &alice, spec.clone()).await;
    app.get(ME, &key).await.expect(200);
    app.delete(&format!("/api/v1/api-keys/{id}"), &alice.token)
        .await
        .expect(204);
    app.get(ME, &key).await.expect_error(401, "invalid_token");
    // A rotation with a grace period: the old key's copy learns its end at once.
    let (id, key) = make_key(&app, &alice, spec).await;
    app.get(ME, &key).await.expect(200);
    let path = format!("/api/v1/api-keys/{id}/rotate");
    let rotated = (app
        .post(&path, &alice.token, json!({"grace_seconds": 2}))
        .await)
        .expect(200)
        .string("key");
    app.get(ME, &key).await.expect(200);
    app.clock.advance(Duration::seconds(3));
    app.get(ME, &key).await.expect_error(401, "invalid_token");
    app.get(ME, &rotated).await.expect(200);
    // A bot's token rotated without grace, and a bot removed from its org.
    let bot = make_bot(&app, &org, &alice, json!({"name": "Rotor"})).await;
    app.as_bot(Method::GET, ME, &bot.token, None)
        .await
        .expect(200);
    let rotate = format!("/api/v1/orgs/{org}/bots/{}/token", bot.id);
    let second = (app
        .post(&rotate, &alice.token, json!({"grace_seconds": 0}))
        .await)
        .expect(200)
        .string("token");
    app.as_bot(Method::GET, ME, &bot.token, None)
        .await
        .expect_error(401, "invalid_token");
    app.as_bot(Method::GET, ME, &second, None).await.expect(200);
    app.remove_member(&org, &alice, &bot.user_id).await;
    app.as_bot(Method::GET, ME, &second, None)
        .await
        .expect_error(401, "invalid_token");
}

/// Removed participant, demoted member, removed member, archived conversation, an org that
/// starts requiring 2FA, a team visibility — each warm, each refused on the next request.
async fn conversation_access_follows_every_change_when_warm(app: TestApp) {
    let Team(alice, [bob, carol], org) = app
        .team("alice", "Acme", [("bob", "member"), ("carol", "member")])
        .await;
    let conv = app
        .group(&org, &alice, &[&bob, &carol], json!("private"))
        .await;
    let messages = conv_path(&conv, "/messages");
    // Removed participant: can neither send nor read (private: 404).
    app.says(&conv, &bob, "warm").await;
    app.get(&messages, &bob.token).await.expect(200);
    app.delete(
        &conv_path(&conv, &format!("/participants/{}", bob.id)),
        &alice.token,
    )
    .await
    .expect(204);
    app.send_message(&conv, &bob, "after removal")
        .await
        .expect_error(404, "not_found");
    app.get(&messages, &bob.token)
        .await
        .expect_error(404, "not_found");
    // Added back: let in at once.
    app.add_participant(&conv, &alice, &bob.id).await;
    app.says(&conv, &bob, "back").await;
    // Demoted to viewer: reads, but may not send.
    app.says(&conv, &carol, "warm").await;
    app.set_role(&org, &alice, &carol, "viewer")
        .await
        .expect(200);
    app.send_message(&conv, &carol, "as viewer")
        .await
        .expect_error(403, "forbidden");
    app.get(&messages, &carol.token).await.expect(200);
    app.set_role(&org, &alice, &carol, "member")
        .await
        .expect(200);
    app.says(&conv, &carol, "member again").await;
    // Removed from the org.
    app.remove_member(&org, &alice, &carol.id).await;
    app.send_message(&conv, &carol, "gone")
        .await
        .expect_error(404, "not_found");
    // Archived: nobody sends.
    app.says(&conv, &bob, "before archival").await;
    app.update_conversation(&conv, &alice, json!({"archived": true}))
        .await
        .expect(200);
    app.send_message(&conv, &bob, "archived")
        .await
        .expect_error(403, "forbidden");
    app.update_conversation(&conv, &alice, json!({"archived": false}))
        .await
        .expect(200);
    app.says(&conv, &bob, "unarchived").await;
    // The org starts requiring 2FA, which Bob lacks; then stops.
    let open = app.group(&org, &alice, &[], json!("org")).await;
    // Bob sees it (org visibility) without taking part.
    let open_path = conv_path(&open, "");
    app.get(&open_path, &bob.token).await.expect(200);
    crate::mfa::enable_2fa(&app, &alice).await;
    app.update_org(&org, &alice, json!({"require_2fa": true}))
        .await
        .expect(200);
    app.get(&open_path, &bob.token)
        .await
        .expect_error(403, "mfa_setup_required");
    app.update_org(&org, &alice, json!({"require_2fa": false}))
        .await
        .expect(200);
    app.get(&open_path, &bob.token).await.expect(200);
    // A team visibility: Bob sees an org-visible conversation, then not once it is limited to
    // a team he is not in, then again once he joins the team, and not once he leaves it.
    let team = app.create_team(&org, &alice, "Core").await;
    let visibility = json!({"visibility": {"teams": [team]}});
    app.update_conversation(&open, &alice, visibility)
        .await
        .expect(200);
    app.get(&open_path, &bob.token)
        .await
        .expect_error(404, "not_found");
    let membership = org_path(&org, &format!("/teams/{team}/members/{}", bob.id));
    app.post(&membership, &alice.token, json!({}))
        .await
        .expect(200);
    app.get(&open_path, &bob.token).await.expect(200);
    app.delete(&membership, &alice.token).await.expect(204);
    app.get(&open_path, &bob.token)
        .await
        .expect_error(404, "not_found");
}

/// A second node on the same database whose events never reach the first (no shared
/// fan-out): the first node's copies lag the database until the TTL, and not a moment longer.
async fn a_change_no_event_announces_is_refused_after_the_ttl(app: TestApp) {
    let ttl_ms = 60_000;
    let (data_dir, database_url) = (app.data_dir.clone(), app.database_url.clone());
    let b = spawn_app_with(app.backend, |c| {
        c.data_dir = data_dir.clone();
        c.database_url = database_url.clone();
        c.cache.ttl_ms = ttl_ms;
    })
    .await
    .expect("node B starts");
    let a = spawn_app_with(app.backend, move |c| {
        c.data_dir = data_dir;
        c.database_url = database_url;
    })
    .await
    .expect("node A starts");
    let admin = b.bootstrap().await;
    let Team(alice, [bob, carol, dave], org) = b
        .team(
            "alice",
            "Acme",
            [("bob", "member"), ("carol", "member"), ("dave", "member")],
        )
        .await;
    let conv = b
        .group(&org, &alice, &[&bob, &carol], json!("private"))
        .await;
    // Warm B: sessions, standings, participations, the conversation.
    for u in [&alice, &bob, &carol, &dave] {
        b.get(ME, &u.token).await.expect(200);
    }
    b.says(&conv, &bob, "warm").await;
    b.says(&conv, &carol, "warm").await;
    // Changed through A, which B never hears of: Alice's session ends, Bob leaves the
    // conversation, Carol becomes a viewer, Dave's account is disabled.
    let alice_on_a = alice_again(&a).await;
    a.logout(&alice.token).await;
    let bob_out = conv_path(&conv, &format!("/participants/{}", bob.id));
    a.delete(&bob_out, &alice_on_a.token).await.expect(204);
    a.set_role(&org, &alice_on_a, &carol, "viewer")
        .await
        .expect(200);
    a.set_disabled(&admin.token, &dave, true).await;
    // Within the TTL B still answers from its copies (this is the bound, not a wish) …
    b.clock
        .advance(Duration::milliseconds(ttl_ms as i64 - 1_000));
    b.get(ME, &alice.token).await.expect(200);
    // … and past it, B reads the database again and refuses every one of them.
    b.clock.advance(Duration::milliseconds(1_000));
    b.assert_signed_out(&alice.token).await;
    b.assert_signed_out(&dave.token).await;
    b.send_message(&conv, &bob, "removed")
        .await
        .expect_error(404, "not_found");
    b.send_message(&conv, &carol, "viewer")
        .await
        .expect_error(403, "forbidden");
}

/// Alice signed in again on `app` (her first session was signed out).
async fn alice_again(app: &TestApp) -> User {
    let token = app
        .login("alice", PASSWORD)
        .await
        .expect(200)
        .string("token");
    let id = app.get(ME, &token).await.expect(200).string("id");
    User {
        name: "alice".into(),
        id,
        token,
    }
}

/// ~100 requests in flight while the session is revoked: none sent after the revocation's
/// response was received is let in (those already in flight may be either).
async fn no_request_sent_after_a_revocation_is_let_in(app: TestApp) {
    let app = Arc::new(
        spawn_app_with(app.backend, |c| c.rate_limits = OnOff::Off)
            .await
            .expect("the app starts"),
    );
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let conv = app.group(&org, &alice, &[], json!("private")).await;
    let stop = Arc::new(AtomicBool::new(false));
    // (sent at, status) of every request.
    let seen: Arc<Mutex<Vec<(Instant, StatusCode)>>> = Arc::default();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (app, stop, seen) = (app.clone(), stop.clone(), seen.clone());
        let token = alice.token.clone();
        let path = if i % 2 == 0 {
            ME.to_owned()
        } else {
            conv_path(&conv, "/messages")
        };
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let res = app.get(&path, &token).await;
                seen.lock().unwrap().push((sent, res.status));
            }
        }));
    }
    // Let the cache warm and serve for a while, then revoke.
    while seen.lock().unwrap().len() < 300 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    app.logout(&alice.token).await;
    let revoked = Instant::now();
    let after = seen.lock().unwrap().len();
    while seen.lock().unwrap().len() < after + 300 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("a request task");
    }
    let seen = seen.lock().unwrap();
    let let_in_before = seen.iter().filter(|(_, s)| s.is_success()).count();
    assert!(let_in_before >= 300, "the requests before were let in");
    let late: Vec<_> = seen
        .iter()
        .filter(|(sent, status)| *sent > revoked && status.is_success())
        .collect();
    assert!(
        late.is_empty(),
        "{} requests sent after the revocation were let in",
        late.len()
    );
    let refused = seen
        .iter()
        .filter(|(sent, status)| *sent > revoked && *status == StatusCode::UNAUTHORIZED)
        .count();
    assert!(
        refused >= 300,
        "every later request was refused ({refused})"
    );
}
