//! Managing agents: the bot account each one is (with no credential), the key masked in every
//! answer and sealed at rest, validation naming the field, the endpoint through the agent SSRF
//! guard, the org budget, audit rows without the key, and every caller who must be refused.

use super::*;

crate::both_backends!(
    with crate::agents::agented;
    agents_are_bots_with_a_masked_key,
    agent_settings_are_validated_at_the_edge,
    only_owners_and_admins_manage_agents,
    the_org_budget_is_set_by_admins_and_audited,
    an_endpoint_moved_while_a_key_is_stored_never_keeps_it,
);

/// Cases on an app set up otherwise.
mod other_setup {
    use super::*;
    crate::both_backends!(a_private_endpoint_needs_the_agent_allowlist);
}

async fn agents_are_bots_with_a_masked_key(h: Agented) {
    let app = &h.app;
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let created = app
        .post(
            &agents(&org),
            &alice.token,
            json!({"name": "Helper", "endpoint": h.llm.url(), "model": "fake-1", "api_key": KEY,
                   "system_prompt": "Be brief.", "temperature": 0.5, "max_output_tokens": 256,
                   "context_messages": 5, "monthly_token_budget": 100000}),
        )
        .await
        .expect(201);
    let id = created.id();
    let tail = &KEY[KEY.len() - 4..];
    // Masked even in the answer that created it.
    assert_eq!(created.body["api_key"], format!("****{tail}"));
    assert_eq!(created.body["endpoint"], h.llm.url());
    assert_eq!(created.body["model"], "fake-1");
    assert_eq!(created.body["temperature"], 0.5);
    assert_eq!(created.body["max_output_tokens"], 256);
    assert_eq!(created.body["context_messages"], 5);
    assert_eq!(created.body["monthly_token_budget"], 100000);
    let user_id = created.string("user_id");

    // It is a bot member of the org, shown as a bot, with its name.
    let members = app.items(&org_path(&org, "/members"), &alice.token).await;
    let member = members
        .iter()
        .find(|m| m["user"]["id"] == user_id.as_str())
        .expect("the agent's bot is a member");
    assert_eq!(member["role"], "member");
    assert_eq!(member["user"]["kind"], "bot");
    assert_eq!(member["user"]["display_name"], "Helper");
    // Shown as an agent: a bot whose username starts with `agent-`.
    assert!(member["user"]["username"]
        .as_str()
        .unwrap()
        .starts_with("agent-"));
    // It holds no credential: it is not among the bots, and no token can be issued for it.
    assert!(app
        .items(&org_path(&org, "/bots"), &alice.token)
        .await
        .is_empty());
    let bot_id = bot_id_of(app, &user_id).await;
    app.post(
        &org_path(&org, &format!("/bots/{bot_id}/token")),
        &alice.token,
        json!({}),
    )
    .await
    .expect(404);

    // Defaults.
    let plain = make_agent(&h, &org, &alice, "Plain", json!({"api_key": null})).await;
    assert_eq!(plain["api_key"], Value::Null);
    assert_eq!(plain["context_messages"], 20);
    assert_eq!(plain["max_output_tokens"], 1024);
    assert_eq!(plain["temperature"], Value::Null);
    assert_eq!(plain["monthly_token_budget"], Value::Null);

    // Masked in the list and the one.
    let one = format!("{}/{id}", agents(&org));
    let listed = app.items(&agents(&org), &alice.token).await;
    assert_eq!(listed.len(), 2);
    let got = app.get(&one, &alice.token).await.expect(200);
    assert_eq!(got.body["api_key"], format!("****{tail}"));

    // PATCH changes settings, rotates the key (masked), clears it.
    const NEW_KEY: &str = "sk-test-rotated-9876543210-NEWTAIL";
    let patched = app
        .patch(
            &one,
            &alice.token,
            json!({"name": "Helper Two", "api_key": NEW_KEY, "temperature": null,
                   "system_prompt": null, "monthly_token_budget": 5}),
        )
        .await
        .expect(200);
    assert_eq!(patched.body["name"], "Helper Two");
    assert_eq!(patched.body["api_key"], "****TAIL");
    assert_eq!(patched.body["temperature"], Value::Null);
    assert_eq!(patched.body["system_prompt"], Value::Null);
    assert_eq!(patched.body["monthly_token_budget"], 5);
    let members = app.items(&org_path(&org, "/members"), &alice.token).await;
    assert!(members
        .iter()
        .any(|m| m["user"]["id"] == user_id.as_str() && m["user"]["display_name"] == "Helper Two"));
    // The stored key goes only to the host it was given for (DATA-3): moving the endpoint to
    // another origin needs `api_key` in the same change; a new path on the same origin does not.
    let elsewhere = h.llm.url().replacen("http://", "https://", 1);
    let refused = app
        .patch(&one, &alice.token, json!({"endpoint": elsewhere}))
        .await
        .expect_error(422, "api_key_required");
    assert_eq!(refused.field(), Some("/api_key"));
    let same_host = format!("{}/", h.llm.url());
    app.patch(&one, &alice.token, json!({"endpoint": same_host}))
        .await
        .expect(200);
    let moved = app
        .patch(
            &one,
            &alice.token,
            json!({"endpoint": elsewhere, "api_key": NEW_KEY}),
        )
        .await
        .expect(200);
    assert_eq!(moved.body["endpoint"], elsewhere.as_str());
    app.patch(
        &one,
        &alice.token,
        json!({"endpoint": h.llm.url(), "api_key": NEW_KEY}),
    )
    .await
    .expect(200);
    let cleared = app
        .patch(&one, &alice.token, json!({"api_key": null}))
        .await
        .expect(200);
    // Without a stored key, the endpoint moves freely.
    app.patch(&one, &alice.token, json!({"endpoint": elsewhere}))
        .await
        .expect(200);
    app.patch(&one, &alice.token, json!({"endpoint": h.llm.url()}))
        .await
        .expect(200);
    assert_eq!(cleared.body["api_key"], Value::Null);
    app.patch(&one, &alice.token, json!({"api_key": NEW_KEY}))
        .await
        .expect(200);

    // Sealed at rest: no stored byte sequence holds the key.
    let stored = stored_keys(app).await;
    assert_eq!(stored.len(), 1);
    for (nonce, ciphertext) in &stored {
        assert_eq!(nonce.len(), 12);
        assert!(!String::from_utf8_lossy(ciphertext).contains(&NEW_KEY[8..]));
    }

    // Deleting: it is gone, its account disabled (no member listing shows it active), its
    // messages stay.
    app.delete(&one, &alice.token).await.expect(204);
    app.get(&one, &alice.token).await.expect(404);
    app.delete(&one, &alice.token).await.expect(404);
    assert_eq!(app.items(&agents(&org), &alice.token).await.len(), 1);

    // Every change is in the org's audit log, and no key anywhere in it.
    let audit = app.items(&org_path(&org, "/audit"), &alice.token).await;
    let events: Vec<&str> = audit.iter().filter_map(|r| r["event"].as_str()).collect();
    assert_includes(
        &events,
        &[
            "agent.created",
            "agent.updated",
            "agent.key_rotated",
            "agent.budget_changed",
            "agent.deleted",
        ],
    );
    let text = Value::Array(audit).to_string();
    assert!(!text.contains(&KEY[8..]) && !text.contains(&NEW_KEY[8..]));
    assert!(!text.contains("Be brief."));
    // Nor in the creator's export.
    let export = app
        .get("/api/v1/users/@me/export", &alice.token)
        .await
        .expect(200);
    let text = export.body.to_string();
    assert!(!text.contains(&KEY[8..]) && !text.contains(&NEW_KEY[8..]));
}

/// The `bots` row id of the agent whose bot account is `user_id` (read from the database).
async fn bot_id_of(app: &TestApp, user_id: &str) -> String {
    use sqlx::Row;
    let user = uuid::Uuid::parse_str(user_id).unwrap();
    let db = crate::db::Db::of(app).await;
    let id: uuid::Uuid = crate::with_pool!(&db, p => sqlx::query("SELECT id FROM bots WHERE user_id = $1")
        .bind(user)
        .fetch_one(p)
        .await
        .unwrap()
        .get(0));
    db.close().await;
    id.to_string()
}

/// Every stored agent key, (nonce, ciphertext).
async fn stored_keys(app: &TestApp) -> Vec<(Vec<u8>, Vec<u8>)> {
    let sql = "SELECT secret_nonce, secret_ciphertext FROM agent_keys";
    crate::db::Db::sealed_of(app, sql, None).await
}

async fn agent_settings_are_validated_at_the_edge(h: Agented) {
    let app = &h.app;
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let url = h.llm.url();
    let base = json!({"name": "A", "endpoint": url, "model": "m"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases = [
        (with("name", json!("  ")), "name"),
        (with("name", json!("x".repeat(65))), "name"),
        (with("model", json!("")), "model"),
        (with("model", json!("has space")), "model"),
        (with("model", json!("m".repeat(201))), "model"),
        (
            with("system_prompt", json!("p".repeat(8001))),
            "system_prompt",
        ),
        (with("temperature", json!(2.5)), "temperature"),
        (with("temperature", json!(-0.1)), "temperature"),
        (with("max_output_tokens", json!(0)), "max_output_tokens"),
        (with("max_output_tokens", json!(32769)), "max_output_tokens"),
        (with("context_messages", json!(0)), "context_messages"),
        (with("context_messages", json!(201)), "context_messages"),
        (
            with("monthly_token_budget", json!(-1)),
            "monthly_token_budget",
        ),
        (with("api_key", json!("")), "api_key"),
        (with("api_key", json!("with space")), "api_key"),
    ];
    for (body, field) in cases {
        let res = app.post(&agents(&org), &alice.token, body.clone()).await;
        assert_eq!(res.status.as_u16(), 422, "{body}: {}", res.body);
        assert!(
            res.field()
                .is_some_and(|f| f.trim_start_matches('/') == field),
            "{body}: {}",
            res.body
        );
        // The refused key is not echoed.
        assert!(!res.body.to_string().contains("with space"));
    }
    // Unknown fields and a missing endpoint are refused.
    app.post(&agents(&org), &alice.token, with("tools", json!([])))
        .await
        .expect(422);
    app.post(
        &agents(&org),
        &alice.token,
        json!({"name": "A", "model": "m"}),
    )
    .await
    .expect(422);
    // Hostile endpoints: 422 url_not_allowed naming `endpoint`, at creation and at update.
    for endpoint in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/v1",
        "http://[::1]/v1",
        "http://user:pass@127.0.0.1/v1",
        "file:///etc/passwd",
        "not a url",
    ] {
        let res = app
            .post(
                &agents(&org),
                &alice.token,
                with("endpoint", json!(endpoint)),
            )
            .await;
        assert_eq!(res.status.as_u16(), 422, "{endpoint}: {}", res.body);
        assert_eq!(res.code(), "url_not_allowed", "{endpoint}");
        assert_eq!(res.field(), Some("endpoint"), "{endpoint}");
    }
    assert!(app.items(&agents(&org), &alice.token).await.is_empty());
    let made = make_agent(&h, &org, &alice, "A", json!({})).await;
    let one = format!("{}/{}", agents(&org), made["id"].as_str().unwrap());
    app.patch(
        &one,
        &alice.token,
        json!({"endpoint": "http://169.254.169.254/"}),
    )
    .await
    .expect_error(422, "url_not_allowed");
    app.patch(&one, &alice.token, json!({"temperature": 3}))
        .await
        .expect(422);
    assert_eq!(
        app.get(&one, &alice.token).await.expect(200).body["endpoint"],
        url
    );
}

/// A new owner makes an agent from `body` in a new org of a fresh app on `backend`, configured
/// by `tweak`.
async fn make_agent_on(
    backend: Backend,
    tweak: impl FnOnce(&mut conclave_server::config::Config),
    body: Value,
) -> Res {
    let app = spawn_app_with(backend, tweak)
        .await
        .expect("the app starts");
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Acme").await;
    app.post(&agents(&org), &owner.token, body).await
}

async fn a_private_endpoint_needs_the_agent_allowlist(app: TestApp) {
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let body = json!({"name": "Local", "endpoint": "http://127.0.0.1:11434/v1", "model": "llama3"});
    app.post(&agents(&org), &alice.token, body.clone())
        .await
        .expect_error(422, "url_not_allowed");
    // The webhook allowlist does not open model endpoints.
    let hooks_only = |c: &mut conclave_server::config::Config| {
        c.webhook_allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
        c.webhook_allow_ports = vec![11434];
    };
    make_agent_on(app.backend, hooks_only, body.clone())
        .await
        .expect_error(422, "url_not_allowed");
    // With the agent allowlist (address and port) it is allowed.
    let agents_allowed = |c: &mut conclave_server::config::Config| {
        c.agent_allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
        c.agent_allow_ports = vec![11434];
    };
    make_agent_on(app.backend, agents_allowed, body)
        .await
        .expect(201);
}

async fn only_owners_and_admins_manage_agents(h: Agented) {
    let app = &h.app;
    let admin = app.bootstrap().await;
    let team = app
        .team(
            "alice",
            "Acme",
            [
                ("ann", "admin"),
                ("bob", "member"),
                ("vic", "viewer"),
                ("dee", "admin"),
            ],
        )
        .await;
    let crate::fixtures::Team(owner, [ann, bob, vic, dee], org) = &team;
    let body = json!({"name": "Helper", "endpoint": h.llm.url(), "model": "m", "api_key": KEY});
    let made = make_agent(&h, org, owner, "Helper", json!({})).await;
    let one = format!("{}/{}", agents(org), made["id"].as_str().unwrap());
    app.post(&agents(org), &ann.token, body.clone())
        .await
        .expect(201);
    let budget = org_path(org, "/agent-budget");

    // A member and a viewer may not, on any route.
    for who in [bob, vic] {
        app.post(&agents(org), &who.token, body.clone())
            .await
            .expect(403);
        app.get(&agents(org), &who.token).await.expect(403);
        app.get(&one, &who.token).await.expect(403);
        app.patch(&one, &who.token, json!({"model": "x"}))
            .await
            .expect(403);
        app.get(&format!("{one}/usage"), &who.token)
            .await
            .expect(403);
        app.delete(&one, &who.token).await.expect(403);
        app.get(&budget, &who.token).await.expect(403);
        app.put(&budget, &who.token, json!({"monthly_token_budget": 1}))
            .await
            .expect(403);
    }
    // Another org's owner does not even see it, on either path.
    let (mallory, evil) = app.mallory().await;
    app.get(&agents(org), &mallory.token).await.expect(404);
    app.get(&one, &mallory.token).await.expect(404);
    app.delete(&one, &mallory.token).await.expect(404);
    let theirs = format!("{}/{}", agents(&evil), made["id"].as_str().unwrap());
    app.get(&theirs, &mallory.token).await.expect(404);
    app.patch(&theirs, &mallory.token, json!({"model": "x"}))
        .await
        .expect(404);
    app.delete(&theirs, &mallory.token).await.expect(404);
    app.get(&format!("{theirs}/usage"), &mallory.token)
        .await
        .expect(404);

    // A key without `org:admin` is refused even with every other scope; one with it may.
    let all_but = crate::keys::all_scopes_but("org:admin");
    let weak = crate::keys::org_key(app, owner, org, &all_but, &[]).await;
    app.get(&agents(org), &weak)
        .await
        .expect_error(403, "insufficient_scope");
    app.post(&agents(org), &weak, body.clone())
        .await
        .expect_error(403, "insufficient_scope");
    let strong = crate::keys::org_key(app, owner, org, &["org:admin"], &[]).await;
    let listed = app.get(&agents(org), &strong).await.expect(200);
    assert!(!listed.body.to_string().contains(&KEY[8..]));
    app.post(&agents(org), &strong, body.clone())
        .await
        .expect(201);

    // A bot of the org is refused.
    let bot = crate::bots::make_bot(app, org, owner, json!({"name": "b"})).await;
    for (method, path) in [
        (reqwest::Method::GET, agents(org)),
        (reqwest::Method::POST, agents(org)),
        (reqwest::Method::DELETE, one.clone()),
    ] {
        let res = app
            .as_bot(method, &path, &bot.token, Some(body.clone()))
            .await;
        assert_eq!(res.status.as_u16(), 403, "{path}: {:?}", res.body);
    }

    // An impersonated owner's session reads but never writes agent configuration.
    let as_owner = app.impersonation(&admin, owner).await;
    app.get(&agents(org), &as_owner).await.expect(200);
    app.post(&agents(org), &as_owner, body.clone())
        .await
        .expect_error(403, "impersonation_forbidden");
    app.patch(
        &one,
        &as_owner,
        json!({"api_key": "sk-impersonated-key-123"}),
    )
    .await
    .expect_error(403, "impersonation_forbidden");
    app.delete(&one, &as_owner)
        .await
        .expect_error(403, "impersonation_forbidden");
    app.put(&budget, &as_owner, json!({"monthly_token_budget": 1}))
        .await
        .expect_error(403, "impersonation_forbidden");

    // A disabled admin's session is no credential.
    app.set_disabled(&admin.token, dee, true).await.expect(200);
    app.get(&agents(org), &dee.token).await.expect(401);
    app.post(&agents(org), &dee.token, body).await.expect(401);
    // Three were made: the owner's, the admin's and the key's.
    assert_eq!(app.items(&agents(org), &owner.token).await.len(), 3);
    app.get(&one, &owner.token).await.expect(200);
}

async fn the_org_budget_is_set_by_admins_and_audited(h: Agented) {
    let app = &h.app;
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let budget = org_path(&org, "/agent-budget");
    let none = app.get(&budget, &alice.token).await.expect(200);
    assert_eq!(
        none.body,
        json!({"monthly_token_budget": null, "used": 0, "reserved": 0})
    );
    let put = |b: Value| app.put(&budget, &alice.token, json!({ "monthly_token_budget": b }));
    assert_eq!(
        put(json!(5000)).await.expect(200).body["monthly_token_budget"],
        5000
    );
    assert_eq!(
        put(json!(7000)).await.expect(200).body["monthly_token_budget"],
        7000
    );
    let res = put(json!(-5)).await;
    res.expect(422);
    assert_eq!(
        put(Value::Null).await.expect(200).body["monthly_token_budget"],
        Value::Null
    );
    let rows = app
        .audit_of("agent.org_budget_changed")
        .await
        .expect(200)
        .items();
    assert_eq!(rows.len(), 3, "{rows:?}");
}

/// DATA-3 (R6 under concurrency): an endpoint moved to another origin without `api_key` is
/// allowed only while the agent has no key — and is made only while that still holds. Raced
/// against a key being stored, either the key is stored first and the move is refused (409
/// `agent_changed`, or 422 `api_key_required` when it read the key), or the move is made
/// first and the key is stored with the moved endpoint (its own answer shows it). Before, the
/// move was checked on a read made before its transaction and written unconditionally: a key
/// stored for the old endpoint — its answer showing the old endpoint — ended up with the new
/// one, where the next answer sent it.
async fn an_endpoint_moved_while_a_key_is_stored_never_keeps_it(h: Agented) {
    let app = &h.app;
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let agent = make_agent(&h, &org, &alice, "Helper", json!({})).await;
    let one = format!("{}/{}", agents(&org), agent["id"].as_str().unwrap());
    let home = h.llm.url();
    let away = home.replacen("http://", "https://", 1);
    let (mut refused, mut moved_first) = (0, 0);
    for round in 0..100 {
        let keyless = json!({"endpoint": home, "api_key": null});
        app.patch(&one, &alice.token, keyless).await.expect(200);
        let key = format!("sk-test-round-{round:04}-KEYTAIL");
        let (moved, keyed) = tokio::join!(
            app.patch(&one, &alice.token, json!({"endpoint": away})),
            app.patch(&one, &alice.token, json!({"api_key": key})),
        );
        let keyed = keyed.expect(200).body;
        match moved.status.as_u16() {
            200 => moved_first += 1,
            409 => {
                moved.expect_error(409, "agent_changed");
                refused += 1;
            }
            _ => {
                moved.expect_error(422, "api_key_required");
                refused += 1;
            }
        }
        let now = app.get(&one, &alice.token).await.expect(200).body;
        assert_eq!(now["api_key"], "****TAIL", "round {round}: {now}");
        // The key's own answer, read after it was stored, shows the endpoint it was stored
        // with: stored for `home`, it stays with `home`.
        if keyed["endpoint"] == home.as_str() {
            assert_eq!(
                now["endpoint"],
                home.as_str(),
                "round {round}: a key stored for {home} was left with {away}"
            );
        } else {
            assert_eq!(keyed["endpoint"], away.as_str(), "round {round}: {keyed}");
        }
    }
    assert_eq!(refused + moved_first, 100);
}
