//! DATA-4, DATA-5, DATA-6: the audit log — every security event and mutation written with its
//! request context and never a secret; filters, cursor pages and access (server admins, org
//! owners and admins, nobody else; no route changes a row); `verify` over the API and the CLI
//! catching rows altered, inserted or removed directly in the database; retention pruning
//! behind a signed checkpoint; a user's own security events.

use crate::both_backends;
use crate::helpers::*;
use crate::keys::make_key;
use conclave_server::config::{Config, OnOff};
use reqwest::Method;
use serde_json::{json, Value};

both_backends!(
    security_events_and_mutations_are_logged_with_their_context,
    listings_filter_and_page,
    only_admins_and_org_owners_read_the_log,
    no_route_changes_the_log,
    verify_catches_rows_altered_inserted_or_removed,
    retention_prunes_and_the_rest_still_verifies,
    pruning_refuses_a_backdated_row_and_raises_the_alarm,
    users_see_the_security_events_about_their_account,
);

/// The app (rate limits off; the retention job every second of its clock) and its configuration.
async fn app_and_config(app: TestApp) -> (TestApp, Config) {
    let mut config = None;
    let app = spawn_app_with(app.backend, |c| {
        c.rate_limits = OnOff::Off;
        c.retention.interval_secs = 1;
        config = Some(c.clone());
    })
    .await
    .expect("the app starts");
    (app, config.unwrap())
}

/// Raw statements against the app's database, as an attacker with write access would run them.
enum Db {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Db {
    async fn open(config: &Config) -> Self {
        let url = config.database_url();
        if url.starts_with("sqlite:") {
            Self::Sqlite(sqlx::SqlitePool::connect(&url).await.unwrap())
        } else {
            Self::Pg(sqlx::PgPool::connect(&url).await.unwrap())
        }
    }

    async fn exec(&self, sql: &str) -> u64 {
        match self {
            Self::Sqlite(p) => sqlx::query(sql).execute(p).await.unwrap().rows_affected(),
            Self::Pg(p) => sqlx::query(sql).execute(p).await.unwrap().rows_affected(),
        }
    }

    /// An expression for a fresh random id in this database.
    fn new_id(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "randomblob(16)",
            Self::Pg(_) => "gen_random_uuid()",
        }
    }
}

async fn audit(app: &TestApp, query: &str) -> Vec<Value> {
    app.get(&format!("/api/v1/admin/audit{query}"), ADMIN_TOKEN)
        .await
        .expect(200)
        .body["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn verify(app: &TestApp, query: &str) -> Value {
    app.get(&format!("/api/v1/admin/audit/verify{query}"), ADMIN_TOKEN)
        .await
        .expect(200)
        .body
}

fn events(rows: &[Value]) -> Vec<&str> {
    rows.iter().map(|r| r["event"].as_str().unwrap()).collect()
}

async fn security_events_and_mutations_are_logged_with_their_context(app: TestApp) {
    let (app, _) = app_and_config(app).await;
    let admin = app.bootstrap().await;
    let alice = app.user("alice").await;
    // A failed sign-in, of a known name and of an unknown one.
    app.login("alice", "not the password")
        .await
        .expect_error(401, "invalid_credentials");
    app.login("nobody-here", "not the password")
        .await
        .expect_error(401, "invalid_credentials");
    let signed_in = app
        .send(
            app.client
                .post(app.url("/api/v1/auth/login"))
                .header("user-agent", "audit-test/1.0")
                .json(&json!({ "username": "alice", "password": PASSWORD })),
        )
        .await
        .expect(200);
    let session = signed_in.body["session"]["id"].as_str().unwrap().to_owned();
    let org = app.org(&alice, "Acme").await;
    let bob = app.user("bob").await;
    app.add_member(&org, &alice, &bob, "member").await;
    app.patch(
        &format!("/api/v1/orgs/{org}/members/{}", bob.id),
        &alice.token,
        json!({ "role": "admin" }),
    )
    .await
    .expect(200);
    app.patch(
        &format!("/api/v1/orgs/{org}"),
        &alice.token,
        json!({ "message_retention_days": 30 }),
    )
    .await
    .expect(200);
    let (_, key) = make_key(
        &app,
        &alice,
        json!({ "name": "ci", "org_id": org, "scopes": ["messages:read"] }),
    )
    .await;
    let conv = app.group(&org, &alice, &[&bob], json!("org")).await;
    let sent = app.send_message(&conv, &bob, "delete me").await.expect(201);
    // A moderator's deletion is audited; an author's own send is not.
    app.delete(&format!("/api/v1/messages/{}", sent.id()), &alice.token)
        .await
        .expect(204);
    app.patch(
        &format!("/api/v1/admin/users/{}", bob.id),
        &admin.token,
        json!({ "disabled": true }),
    )
    .await
    .expect(200);

    let rows = audit(&app, "?limit=100").await;
    let names = events(&rows);
    for expected in [
        "user.bootstrapped",
        "auth.login",
        "user.registered",
        "org.created",
        "invite.created",
        "member.joined",
        "member.role_changed",
        "org.settings_changed",
        "api_key.created",
        "conversation.created",
        "message.moderated",
        "admin.user_updated",
    ] {
        assert!(names.contains(&expected), "{expected} is logged: {names:?}");
    }
    assert!(
        !names.contains(&"message.created"),
        "an author's own messages are not audit events"
    );
    // Every row has every key.
    for r in &rows {
        for k in [
            "id",
            "at",
            "event",
            "actor",
            "resource",
            "org_id",
            "ip",
            "user_agent",
            "request_id",
            "outcome",
        ] {
            assert!(r.get(k).is_some(), "{k} in {r}");
        }
        for k in ["id", "type", "impersonator"] {
            assert!(r["actor"].get(k).is_some(), "actor.{k} in {r}");
        }
    }
    let failures: Vec<_> = rows
        .iter()
        .filter(|r| r["event"] == "auth.login" && r["outcome"] == "failure")
        .collect();
    assert_eq!(failures.len(), 2, "both failed sign-ins");
    assert!(failures
        .iter()
        .any(|r| r["resource"]["id"] == json!(alice.id)));
    assert!(failures.iter().all(|r| r["actor"]["type"] == "anonymous"));
    let login = rows
        .iter()
        .find(|r| {
            r["event"] == "auth.login"
                && r["outcome"] == "success"
                && r["detail"]["session_id"] == json!(session)
        })
        .expect("the sign-in with a user agent");
    assert_eq!(login["actor"]["id"], json!(alice.id));
    assert_eq!(login["actor"]["type"], "user");
    assert_eq!(login["ip"], "127.0.0.1");
    assert_eq!(login["user_agent"], "audit-test/1.0");
    assert!(login["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    let role = rows
        .iter()
        .find(|r| r["event"] == "member.role_changed")
        .unwrap();
    assert_eq!(role["org_id"], json!(org));
    assert_eq!(role["resource"], json!({ "type": "user", "id": bob.id }));
    assert_eq!(role["detail"]["role"], "admin");
    let disabled = rows
        .iter()
        .find(|r| r["event"] == "admin.user_updated")
        .unwrap();
    assert_eq!(disabled["actor"]["id"], json!(admin.id));
    // Never a secret or message content.
    let text = serde_json::to_string(&rows).unwrap();
    for secret in [PASSWORD, key.as_str(), "delete me", alice.token.as_str()] {
        assert!(!text.contains(secret), "the log holds no secret or content");
    }
}

async fn listings_filter_and_page(app: TestApp) {
    let (app, _) = app_and_config(app).await;
    let alice = app.user("alice").await;
    let acme = app.org(&alice, "Acme").await;
    let other = app.org(&alice, "Other").await;
    for i in 0..4 {
        app.post(
            &format!("/api/v1/orgs/{acme}/teams"),
            &alice.token,
            json!({ "name": format!("team {i}") }),
        )
        .await
        .expect(201);
    }
    let teams = audit(&app, "?event=team.created").await;
    assert_eq!(teams.len(), 4);
    assert!(teams.iter().all(|r| r["event"] == "team.created"));
    let in_other = audit(&app, &format!("?org={other}")).await;
    assert_eq!(events(&in_other), vec!["org.created"]);
    let by_alice = audit(&app, &format!("?actor={}&event=org.created", alice.id)).await;
    assert_eq!(by_alice.len(), 2);
    // Time windows (the test clock stands still, so every row has the same instant).
    let at = teams[0]["at"].as_str().unwrap().to_owned();
    let since = |t: &str| format!("?event=team.created&since={}", urlencode(t));
    assert_eq!(audit(&app, &since(&at)).await.len(), 4);
    assert!(audit(&app, &since("2999-01-01T00:00:00Z")).await.is_empty());
    assert!(audit(&app, &format!("?until={}", urlencode(&at)))
        .await
        .is_empty());
    // Pages of two, newest first, continuing with `next`.
    let first = app
        .get(
            "/api/v1/admin/audit?event=team.created&limit=2",
            ADMIN_TOKEN,
        )
        .await
        .expect(200);
    let next = first.body["next"].as_str().expect("a next cursor");
    let second = app
        .get(
            &format!("/api/v1/admin/audit?event=team.created&limit=2&before={next}"),
            ADMIN_TOKEN,
        )
        .await
        .expect(200);
    let page_ids: Vec<_> = first.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second.body["items"].as_array().unwrap())
        .map(|r| r["id"].clone())
        .collect();
    let all_ids: Vec<_> = teams.iter().map(|r| r["id"].clone()).collect();
    assert_eq!(page_ids, all_ids);
    // Bad filters get a clear error naming the field.
    for (query, status, field) in [
        ("?actor=not-a-uuid", 422, "actor"),
        ("?org=42", 422, "org"),
        ("?since=yesterday", 422, "since"),
        (
            "?since=2030-01-02T00:00:00Z&until=2030-01-01T00:00:00Z",
            422,
            "until",
        ),
        ("?event=DROP%20TABLE", 422, "event"),
        ("?limit=0", 422, "limit"),
        ("?before=%%%", 400, "before"),
    ] {
        let res = app
            .get(&format!("/api/v1/admin/audit{query}"), ADMIN_TOKEN)
            .await;
        assert_eq!(res.status.as_u16(), status, "{query}: {}", res.body);
        assert_eq!(res.field(), Some(field), "{query}: {}", res.body);
    }
    let res = app
        .get("/api/v1/admin/audit?colour=blue", ADMIN_TOKEN)
        .await;
    assert_eq!(res.status.as_u16(), 400, "unknown parameters are refused");
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

async fn only_admins_and_org_owners_read_the_log(app: TestApp) {
    let (app, _) = app_and_config(app).await;
    let admin = app.bootstrap().await;
    let owner = app.user("owner").await;
    let helper = app.user("helper").await;
    let member = app.user("member").await;
    let outsider = app.user("outsider").await;
    let org = app.org(&owner, "Acme").await;
    let elsewhere = app.org(&outsider, "Elsewhere").await;
    app.add_member(&org, &owner, &helper, "admin").await;
    app.add_member(&org, &owner, &member, "member").await;
    let path = format!("/api/v1/orgs/{org}/audit");
    // Owners and admins of the org read its events, and only its events.
    for who in [&owner, &helper] {
        let rows = app.get(&path, &who.token).await.expect(200).body["items"]
            .as_array()
            .unwrap()
            .clone();
        assert!(rows.iter().all(|r| r["org_id"] == json!(org)));
        assert!(events(&rows).contains(&"member.joined"));
    }
    // Members may not; outsiders do not see that the org exists.
    app.get(&path, &member.token)
        .await
        .expect_error(403, "forbidden");
    app.get(&path, &outsider.token)
        .await
        .expect_error(404, "not_found");
    let res = app
        .get(&format!("{path}?org={elsewhere}"), &owner.token)
        .await
        .expect(422);
    assert_eq!(res.field(), Some("org"));
    // An API key of the owner with read scopes only cannot read the log.
    let (_, key) = make_key(
        &app,
        &owner,
        json!({ "name": "reader", "org_id": org, "scopes": ["org:read"] }),
    )
    .await;
    app.get(&path, &key)
        .await
        .expect_error(403, "insufficient_scope");
    // The server-wide log and verification: server admins and the management token only.
    for p in ["/api/v1/admin/audit", "/api/v1/admin/audit/verify"] {
        app.get(p, &admin.token).await.expect(200);
        app.get(p, ADMIN_TOKEN).await.expect(200);
        app.get(p, &owner.token)
            .await
            .expect_error(403, "forbidden");
        app.get(p, &key).await.expect(403);
        app.call(Method::GET, p, None, None)
            .await
            .expect_error(401, "unauthenticated");
        app.get(p, "not-the-token")
            .await
            .expect_error(401, "invalid_token");
    }
    app.call(Method::GET, &path, None, None)
        .await
        .expect_error(401, "unauthenticated");
}

async fn no_route_changes_the_log(app: TestApp) {
    let (app, _) = app_and_config(app).await;
    let _alice = app.user("alice").await;
    let rows = audit(&app, "").await;
    let id = rows[0]["id"].as_str().unwrap();
    for (method, path) in [
        (Method::DELETE, "/api/v1/admin/audit".to_owned()),
        (Method::POST, "/api/v1/admin/audit".to_owned()),
        (Method::PATCH, "/api/v1/admin/audit".to_owned()),
        (Method::PUT, "/api/v1/admin/audit".to_owned()),
        (Method::DELETE, format!("/api/v1/admin/audit/{id}")),
        (Method::PATCH, format!("/api/v1/admin/audit/{id}")),
        (Method::POST, "/api/v1/admin/audit/verify".to_owned()),
    ] {
        let res = app
            .call(method.clone(), &path, Some(ADMIN_TOKEN), Some(json!({})))
            .await;
        assert!(
            [404, 405].contains(&res.status.as_u16()),
            "{method} {path}: {}",
            res.status
        );
    }
    assert_eq!(audit(&app, "").await.len(), rows.len());
}

/// Runs `conclave audit verify` against the app's data; answers the exit code and the report.
async fn cli_verify(config: &Config, expect_head: Option<&str>) -> (i32, Value) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_conclave"));
    cmd.args(["audit", "verify"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CONCLAVE_DATA_DIR", &config.data_dir)
        .env("CONCLAVE_DATABASE_URL", config.database_url());
    if let Some(h) = expect_head {
        cmd.args(["--expect-head", h]);
    }
    let out = cmd.output().await.expect("conclave runs");
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), report)
}

async fn verify_catches_rows_altered_inserted_or_removed(app: TestApp) {
    let (app, config) = app_and_config(app).await;
    // An empty log verifies.
    let empty = verify(&app, "").await;
    assert_eq!(empty["ok"], true);
    assert_eq!(empty["checked"], 0);
    assert_eq!(empty["first_bad"], Value::Null);
    for name in ["alice", "bob", "carol", "dave", "erin", "frank"] {
        app.user(name).await;
    }
    let intact = verify(&app, "").await;
    assert_eq!(intact["ok"], true, "{intact}");
    // Each user: registered, then signed in.
    assert_eq!(intact["checked"], 12);
    let last = 12;
    let (code, report) = cli_verify(&config, None).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["ok"], true);
    // Rows of the server chain, by seq.
    let rows = audit(&app, "?limit=100").await;
    let by_seq = |seq: i64| {
        rows.iter()
            .find(|r| r["chain"] == "server" && r["seq"] == seq)
            .unwrap()
            .clone()
    };
    let db = Db::open(&config).await;

    // Altered: a row's event changed by hand.
    assert_eq!(
        db.exec("UPDATE audit_log SET event = 'user.nothing' WHERE chain = 'server' AND seq = 3")
            .await,
        1
    );
    let bad = verify(&app, "").await;
    assert_eq!(bad["ok"], false);
    assert_eq!(bad["first_bad"], by_seq(3)["id"]);
    assert_eq!(bad["problem"], "altered");
    let (code, report) = cli_verify(&config, None).await;
    assert_eq!(code, 1);
    assert_eq!(report["first_bad"], by_seq(3)["id"]);
    db.exec("UPDATE audit_log SET event = 'user.registered' WHERE chain = 'server' AND seq = 3")
        .await;
    assert_eq!(verify(&app, "").await["ok"], true, "restored, it verifies");

    // Removed: a row in the middle deleted.
    let saved = by_seq(4);
    db.exec(
        "CREATE TABLE audit_saved AS SELECT * FROM audit_log WHERE chain = 'server' AND seq = 4",
    )
    .await;
    db.exec("DELETE FROM audit_log WHERE chain = 'server' AND seq = 4")
        .await;
    let bad = verify(&app, "").await;
    assert_eq!(bad["ok"], false);
    assert_eq!(bad["first_bad"], by_seq(5)["id"], "the row after the gap");
    assert_eq!(bad["problem"], "gap");
    db.exec("INSERT INTO audit_log SELECT * FROM audit_saved")
        .await;
    assert_eq!(verify(&app, "").await["ok"], true);
    assert!(saved["id"].is_string());

    // Inserted: rows from 3 on moved up one, and a forged row put in at 3.
    db.exec("UPDATE audit_log SET seq = seq + 100000 WHERE chain = 'server' AND seq >= 3")
        .await;
    db.exec("UPDATE audit_log SET seq = seq - 99999 WHERE chain = 'server' AND seq >= 100000")
        .await;
    let forged = format!(
        "INSERT INTO audit_log (id, chain, seq, at, event, actor_id, actor_type, \
         impersonator_id, resource_type, resource_id, org_id, ip, user_agent, request_id, \
         outcome, detail, prev_hash, hash) SELECT {}, chain, 3, at, 'admin.user_created', \
         actor_id, 'management', NULL, resource_type, resource_id, org_id, ip, user_agent, \
         request_id, outcome, detail, prev_hash, hash FROM audit_log \
         WHERE chain = 'server' AND seq = 4",
        db.new_id()
    );
    assert_eq!(db.exec(&forged).await, 1);
    let bad = verify(&app, "").await;
    assert_eq!(bad["ok"], false);
    assert_ne!(bad["first_bad"], Value::Null);
    assert_ne!(bad["first_bad"], by_seq(3)["id"], "the forged row is named");
    assert_eq!(bad["problem"], "altered");
    db.exec("DELETE FROM audit_log WHERE chain = 'server' AND seq = 3")
        .await;
    db.exec("UPDATE audit_log SET seq = seq + 100000 WHERE chain = 'server' AND seq >= 4")
        .await;
    db.exec("UPDATE audit_log SET seq = seq - 100001 WHERE chain = 'server' AND seq >= 100000")
        .await;
    assert_eq!(
        verify(&app, "").await["ok"],
        true,
        "{}",
        verify(&app, "").await
    );

    // Truncated: the newest row removed. Against the head table it shows; with the head table
    // rewritten too, a head recorded elsewhere (`--expect-head`) still shows it.
    let head_hash = by_seq(last)["hash"].as_str().unwrap().to_owned();
    db.exec(&format!(
        "DELETE FROM audit_log WHERE chain = 'server' AND seq = {last}"
    ))
    .await;
    let bad = verify(&app, "").await;
    assert_eq!(bad["ok"], false);
    assert_eq!(bad["problem"], "head_mismatch");
    let prev_hash = by_seq(last - 1)["hash"].as_str().unwrap().to_owned();
    let set_head = match &db {
        Db::Sqlite(_) => format!("UPDATE audit_heads SET seq = {}, hash = X'{prev_hash}' WHERE chain = 'server'", last - 1),
        Db::Pg(_) => format!("UPDATE audit_heads SET seq = {}, hash = '\\x{prev_hash}'::bytea WHERE chain = 'server'", last - 1),
    };
    db.exec(&set_head).await;
    assert_eq!(verify(&app, "").await["ok"], true, "the cut is clean...");
    let bad = verify(&app, &format!("?expect_head={head_hash}")).await;
    assert_eq!(bad["ok"], false, "...but not against the recorded head");
    assert_eq!(bad["problem"], "expected_head_missing");
    let (code, _) = cli_verify(&config, Some(&head_hash)).await;
    assert_eq!(code, 1);
    assert_eq!(
        verify(&app, &format!("?expect_head={prev_hash}")).await["ok"],
        true
    );
    let res = app
        .get("/api/v1/admin/audit/verify?expect_head=xyz", ADMIN_TOKEN)
        .await
        .expect(422);
    assert_eq!(res.field(), Some("expect_head"));
}

async fn retention_prunes_and_the_rest_still_verifies(app: TestApp) {
    let (app, _) = app_and_config(app).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let org = app.org(&alice, "Acme").await;
    let kept = app.org(&alice, "Kept").await;
    app.add_member(&org, &alice, &bob, "member").await;
    let conv = app.group(&org, &alice, &[&bob], json!("org")).await;
    let kept_conv = app.group(&kept, &alice, &[], json!("org")).await;
    for i in 0..3 {
        app.send_message(&conv, &alice, &format!("old {i}"))
            .await
            .expect(201);
    }
    app.send_message(&kept_conv, &alice, "kept forever")
        .await
        .expect(201);
    // Bad settings are refused and change nothing.
    let res = app
        .patch(
            &format!("/api/v1/orgs/{org}"),
            &alice.token,
            json!({ "message_retention_days": -1 }),
        )
        .await
        .expect(422);
    assert_eq!(res.field(), Some("/message_retention_days"));
    app.patch(
        &format!("/api/v1/orgs/{org}"),
        &alice.token,
        json!({ "message_retention_days": 1, "audit_retention_days": 30 }),
    )
    .await
    .expect(200);
    // A month later the job (driven by the clock) prunes the org, and only that org.
    app.clock.advance(chrono::Duration::days(31));
    app.clock.settled().await;
    let alice = app.sign_in_again("alice", alice).await;
    app.send_message(&conv, &alice, "new").await.expect(201);
    let rows = app
        .get(
            &format!("/api/v1/orgs/{org}/audit?event=audit.pruned"),
            &alice.token,
        )
        .await
        .expect(200);
    let pruned = !rows.body["items"].as_array().unwrap().is_empty()
        && app.message_count(&conv, &alice).await == 1;
    assert!(pruned, "the retention job ran");
    assert_eq!(app.message_count(&kept_conv, &alice).await, 1);
    let org_rows = app
        .get(&format!("/api/v1/orgs/{org}/audit?limit=100"), &alice.token)
        .await
        .expect(200)
        .body["items"]
        .as_array()
        .unwrap()
        .clone();
    let names = events(&org_rows);
    assert!(names.contains(&"messages.pruned"));
    assert!(
        !names.contains(&"member.joined"),
        "rows older than the retention are gone: {names:?}"
    );
    let report = verify(&app, "").await;
    assert_eq!(
        report["ok"], true,
        "the pruned chain verifies from its checkpoint: {report}"
    );
    // Pruned to its newest rows, again and again: still verifiable, nothing else lost.
    app.clock.advance(chrono::Duration::days(31));
    app.clock.settled().await;
    let report = verify(&app, "").await;
    assert_eq!(report["ok"], true, "{report}");
    assert!(
        audit(&app, "?event=user.registered").await.len() >= 2,
        "other chains keep theirs"
    );
}

async fn users_see_the_security_events_about_their_account(app: TestApp) {
    let (app, _) = app_and_config(app).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.login("alice", "wrong password")
        .await
        .expect_error(401, "invalid_credentials");
    app.login("bob", "wrong password")
        .await
        .expect_error(401, "invalid_credentials");
    let org = app.org(&alice, "Acme").await;
    let rows = app
        .get("/api/v1/users/@me/security-events", &alice.token)
        .await
        .expect(200)
        .body["items"]
        .as_array()
        .unwrap()
        .clone();
    assert!(rows
        .iter()
        .all(|r| r["resource"] == json!({ "type": "user", "id": alice.id })));
    assert!(rows
        .iter()
        .any(|r| r["event"] == "auth.login" && r["outcome"] == "failure"));
    assert!(rows
        .iter()
        .any(|r| r["event"] == "auth.login" && r["outcome"] == "success"));
    assert!(
        !events(&rows).contains(&"org.created"),
        "security events, not everything"
    );
    let _ = bob;
    // Not for keys: a key of alice's cannot read her account's events.
    let (_, key) = make_key(
        &app,
        &alice,
        json!({ "name": "k", "org_id": org, "scopes": ["org:read"] }),
    )
    .await;
    app.get("/api/v1/users/@me/security-events", &key)
        .await
        .expect(403);
    app.call(Method::GET, "/api/v1/users/@me/security-events", None, None)
        .await
        .expect_error(401, "unauthenticated");
}

/// `GET /health/ready`: the status and the `audit` check.
async fn readiness(app: &TestApp) -> (u16, Value) {
    let res = app.call(Method::GET, "/health/ready", None, None).await;
    (res.status.as_u16(), res.body["checks"]["audit"].clone())
}

async fn pruning_refuses_a_backdated_row_and_raises_the_alarm(app: TestApp) {
    let (app, config) = app_and_config(app).await;
    app.bootstrap().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let org = app.org(&alice, "Acme").await;
    app.add_member(&org, &alice, &bob, "member").await;
    app.group(&org, &alice, &[&bob], json!("org")).await;
    app.patch(
        &format!("/api/v1/orgs/{org}"),
        &alice.token,
        json!({ "audit_retention_days": 30 }),
    )
    .await
    .expect(200);
    assert_eq!(readiness(&app).await, (200, json!("ok")));
    let org_rows = || async {
        app.get(&format!("/api/v1/orgs/{org}/audit?limit=100"), &alice.token)
            .await
            .expect(200)
            .body["items"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = org_rows().await;
    assert!(before >= 4, "{before} rows");
    // A database writer without the master key backdates a recent row so that the retention
    // job (every second of the clock here) would delete it — and every row before it.
    let db = Db::open(&config).await;
    db.exec(&format!(
        "CREATE TABLE audit_saved AS SELECT * FROM audit_log WHERE chain = '{org}' AND seq = 2"
    ))
    .await;
    let old = match &db {
        Db::Sqlite(_) => "'2001-01-01T00:00:00.000000Z'",
        Db::Pg(_) => "'2001-01-01T00:00:00Z'::timestamptz",
    };
    assert_eq!(
        db.exec(&format!(
            "UPDATE audit_log SET at = {old} WHERE chain = '{org}' AND seq = 2"
        ))
        .await,
        1
    );
    // The job verifies before it prunes: it removes nothing and raises the alarm.
    app.clock.advance(chrono::Duration::seconds(1));
    app.clock.settled().await;
    let alarm = readiness(&app).await == (503, json!("chain_mismatch"));
    assert!(alarm, "readiness reports the mismatch");
    let refused = audit(&app, "?event=audit.prune_refused").await;
    assert!(!refused.is_empty());
    assert_eq!(refused[0]["chain"], "server");
    assert_eq!(refused[0]["detail"]["chain"], json!(org));
    assert_eq!(refused[0]["detail"]["problem"], "altered");
    assert_eq!(org_rows().await, before, "nothing was removed");
    assert!(audit(&app, "?event=audit.pruned").await.is_empty());
    // Verification still shows the tampering, and a failed one leaves the alarm on.
    let report = verify(&app, "").await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["problem"], "altered");
    let (code, _) = cli_verify(&config, None).await;
    assert_eq!(code, 1);
    assert_eq!(readiness(&app).await, (503, json!("chain_mismatch")));
    // Once the row is put right, the alarm stays until an admin verifies (on every node: it is
    // kept in the database); a clean verification clears it.
    db.exec(&format!(
        "UPDATE audit_log SET at = (SELECT at FROM audit_saved) WHERE chain = '{org}' AND seq = 2"
    ))
    .await;
    assert_eq!(readiness(&app).await.0, 503);
    assert_eq!(verify(&app, "").await["ok"], true);
    assert_eq!(readiness(&app).await, (200, json!("ok")));
    assert_eq!(org_rows().await, before, "nothing was old enough to go");
}
