//! Password resets by a server admin (API `POST /admin/users/{id}/password-reset`, the
//! `conclave users reset-password` command): a one-time link of an hour that sets the password;
//! making it ends every session of the account, using it ends them again; a newer link
//! replaces an older one; every way in that is not a live link gets the same 410.

use crate::both_backends;
use crate::fixtures::Acme;
use crate::helpers::*;
use conclave_core::Clock;
use serde_json::{json, Value};

both_backends!(
    a_reset_link_sets_the_password_once,
    only_server_admins_reset_and_never_a_bots_password,
);
/// Without rate limits: many uses of a link from one address.
mod unlimited {
    use super::*;
    both_backends!(with crate::helpers::spawn_app_unlimited;
        a_reset_link_is_used_once_under_concurrency,
        the_command_line_prints_a_link,
    );
}

const NEW_PASSWORD: &str = "a brand new passphrase 7";

/// A reset link for `user` made with the management token: its token, and the whole answer.
async fn reset_link(app: &TestApp, user: &User) -> (String, Value) {
    let path = format!("/api/v1/admin/users/{}/password-reset", user.id);
    let res = app.post(&path, ADMIN_TOKEN, json!({})).await.expect(200);
    let url = res.string("url");
    let token = url
        .split_once("/#reset-password=")
        .map(|(_, t)| t.to_owned())
        .unwrap_or_else(|| panic!("a reset URL: {url}"));
    (token, res.body)
}

async fn use_link(app: &TestApp, token: &str, password: &str) -> Res {
    let body = json!({ "token": token, "new_password": password });
    app.post_anon("/api/v1/auth/password-reset", body).await
}

async fn a_reset_link_sets_the_password_once(app: TestApp) {
    let app = &app;
    let doc = crate::meta::openapi(app).await;
    let admin = app.bootstrap().await;
    let Acme { alice, .. } = app.acme().await;
    let me = "/api/v1/users/@me";
    let (mut ws, _) = crate::ws::Ws::identify(app, &alice.token).await;
    let support = app.impersonation(&admin, &alice).await;

    let path = format!("/api/v1/admin/users/{}/password-reset", alice.id);
    let res = app.post(&path, ADMIN_TOKEN, json!({})).await.expect(200);
    crate::meta::check(
        &doc,
        "post",
        "/api/v1/admin/users/{id}/password-reset",
        200,
        &res.body,
    );
    let url = res.string("url");
    let (_, token) = url.split_once("/#reset-password=").expect("a reset URL");
    assert!(token.starts_with("cnv_pr_"), "{url}");
    let expires: chrono::DateTime<chrono::Utc> = res.string("expires_at").parse().unwrap();
    assert_eq!(expires, app.clock.now() + chrono::Duration::hours(1));
    // Every session of hers ended at once, the one an admin acts in as her too.
    app.get(me, &alice.token)
        .await
        .expect_error(401, "invalid_token");
    app.get(me, &support)
        .await
        .expect_error(401, "invalid_token");
    assert_eq!(ws.close_code().await, 4004);
    // Her password stands until the link is used; a session made meanwhile ends with its use.
    let meanwhile = app
        .login("alice", PASSWORD)
        .await
        .expect(200)
        .string("token");

    // A password the rules refuse names the field and leaves the link usable.
    let weak = use_link(app, token, "short").await;
    assert_eq!(
        (weak.status.as_u16(), weak.field()),
        (422, Some("/new_password"))
    );
    use_link(app, token, NEW_PASSWORD).await.expect(204);
    app.get(me, &meanwhile)
        .await
        .expect_error(401, "invalid_token");
    app.login("alice", PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");
    let alice = app.sign_in_again_with("alice", NEW_PASSWORD, alice).await;
    // Once only.
    use_link(app, token, "another new passphrase 8")
        .await
        .expect_error(410, "reset_link_invalid");

    // A newer link replaces an older one; a link expires after its hour; neither a token of
    // another kind nor text gets further — each with the same answer.
    let (first, _) = reset_link(app, &alice).await;
    let (second, _) = reset_link(app, &alice).await;
    use_link(app, &first, NEW_PASSWORD)
        .await
        .expect_error(410, "reset_link_invalid");
    app.clock.advance(chrono::Duration::minutes(61));
    use_link(app, &second, NEW_PASSWORD)
        .await
        .expect_error(410, "reset_link_invalid");
    let session = app.login("root-admin", PASSWORD).await.expect(200);
    for wrong in [session.string("token"), "nope".to_owned(), String::new()] {
        use_link(app, &wrong, NEW_PASSWORD)
            .await
            .expect_error(410, "reset_link_invalid");
    }
    // A password change of her own spends a pending link too.
    let (pending, _) = reset_link(app, &alice).await;
    let alice = app.sign_in_again_with("alice", NEW_PASSWORD, alice).await;
    let change = json!({"current_password": NEW_PASSWORD, "new_password": "changed by alice 9"});
    app.post("/api/v1/auth/password", &alice.token, change)
        .await
        .expect(204);
    use_link(app, &pending, NEW_PASSWORD)
        .await
        .expect_error(410, "reset_link_invalid");

    // The log: each link made (by the management token, about her), the password set through
    // one (by her); she sees both among her security events.
    let made = app
        .items(
            "/api/v1/admin/audit?event=password.reset&limit=100",
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(made.len(), 4);
    for r in &made {
        assert_eq!(r["actor"]["type"], "management");
        assert_eq!(r["resource"]["id"], json!(alice.id));
    }
    let set = app
        .items(
            "/api/v1/admin/audit?event=password.changed&limit=100",
            ADMIN_TOKEN,
        )
        .await;
    let via_link: Vec<&Value> = set
        .iter()
        .filter(|r| r["detail"]["via"] == "reset_link")
        .collect();
    assert_eq!(via_link.len(), 1, "{set:?}");
    assert_eq!(via_link[0]["actor"]["id"], json!(alice.id));
    let seen = app
        .items("/api/v1/users/@me/security-events", &alice.token)
        .await;
    assert!(seen.iter().any(|e| e["event"] == "password.reset"));
    // No answer, row or log line after creation carries the token.
    for rows in [&made, &set] {
        assert!(!serde_json::to_string(rows).unwrap().contains("cnv_pr_"));
    }
}

async fn only_server_admins_reset_and_never_a_bots_password(app: TestApp) {
    let admin = app.bootstrap().await;
    let Acme { alice, bob, org } = app.acme().await;
    let path = |id: &str| format!("/api/v1/admin/users/{id}/password-reset");
    // Not an org owner, not an impersonated session of anyone, not another user.
    app.post(&path(&bob.id), &alice.token, json!({}))
        .await
        .expect(403);
    let support = app.impersonation(&admin, &alice).await;
    app.post(&path(&bob.id), &support, json!({}))
        .await
        .expect(403);
    app.post_anon(&path(&bob.id), json!({})).await.expect(401);
    // Bob kept his session through all of it.
    app.get("/api/v1/users/@me", &bob.token).await.expect(200);
    // A bot has no password; an unknown account is 404.
    let bot = crate::bots::make_bot(&app, &org, &alice, json!({"name": "Deploy Bot"})).await;
    app.post(&path(&bot.user_id), &admin.token, json!({}))
        .await
        .expect_error(409, "cannot_reset_password");
    app.post(
        &path(&uuid::Uuid::now_v7().to_string()),
        &admin.token,
        json!({}),
    )
    .await
    .expect(404);
    // A signed-in server admin may, as the management token may.
    app.post(&path(&bob.id), &admin.token, json!({}))
        .await
        .expect(200);
    app.get("/api/v1/users/@me", &bob.token)
        .await
        .expect_error(401, "invalid_token");
}

/// 50 parallel uses of one link: exactly one sets the password, and the password that works
/// is the one that was accepted. The rest are 410, or 503 where the bounded hashing pool was
/// full (nothing used); the store's own check is raced a hundred times in the conformance
/// suite (`users::password_reset_links_are_single_use`).
async fn a_reset_link_is_used_once_under_concurrency(app: TestApp) {
    let alice = app.user("alice").await;
    let (token, _) = reset_link(&app, &alice).await;
    let tries = (0..50).map(|i| {
        let (app, token) = (&app, &token);
        async move {
            (
                i,
                use_link(app, token, &format!("{NEW_PASSWORD} {i:02}")).await,
            )
        }
    });
    let answers = futures::future::join_all(tries).await;
    let mut won = Vec::new();
    for (i, res) in answers {
        match res.status.as_u16() {
            204 => won.push(i),
            410 => assert_eq!(res.code(), "reset_link_invalid"),
            503 => assert_eq!(res.code(), "busy"),
            other => panic!("{other}: {}", res.body),
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    app.login("alice", &format!("{NEW_PASSWORD} {:02}", won[0]))
        .await
        .expect(200);
    let loser = (won[0] + 1) % 50;
    app.login("alice", &format!("{NEW_PASSWORD} {loser:02}"))
        .await
        .expect_error(401, "invalid_credentials");
}

/// `conclave users reset-password <username>` prints the link (nothing else on stdout); the
/// link works; an unknown name fails with a message and no link.
async fn the_command_line_prints_a_link(app: TestApp) {
    let (app, config) = spawn_app_and_config(app.backend, |c| {
        c.rate_limits = conclave_server::config::OnOff::Off;
    })
    .await;
    let alice = app.user("alice").await;
    let run = |name: &'static str| {
        let config = &config;
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_conclave"))
                .args(["users", "reset-password", name])
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("CONCLAVE_DATA_DIR", &config.data_dir)
                .env("CONCLAVE_DATABASE_URL", config.database_url())
                .output()
                .await
                .expect("conclave runs")
        }
    };
    let out = run("alice").await;
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let (_, token) = stdout
        .trim()
        .split_once("/#reset-password=")
        .unwrap_or_else(|| panic!("a link: {stdout}"));
    assert_eq!(stdout.lines().count(), 1);
    // Her session is gone from the store (this node's cache forgets it within its minute).
    app.clock.advance(chrono::Duration::minutes(2));
    app.get("/api/v1/users/@me", &alice.token)
        .await
        .expect_error(401, "invalid_token");
    use_link(&app, token, NEW_PASSWORD).await.expect(204);
    app.login("alice", NEW_PASSWORD).await.expect(200);
    let rows = app
        .items(
            "/api/v1/admin/audit?event=password.reset&limit=10",
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["actor"]["type"], "system");
    assert_eq!(rows[0]["user_agent"], "conclave users reset-password");
    let out = run("nobody").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}
