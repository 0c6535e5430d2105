//! AUTH-6, AZ-5: bots — created by org owners and admins, `Authorization: Bot <token>`, shown
//! as bots, limited to the conversations they participate in (and to a list when one is set),
//! token rotation with a grace period, the gateway, and credentials in the wrong place.

use crate::both_backends;
use crate::cases::{get, post, Caller};
use crate::fixtures::{Rivals, Team};
use crate::helpers::*;
use crate::ws::Ws;
use chrono::Duration;
use reqwest::Method;
use serde_json::{json, Value};

both_backends!(
    bots_are_made_by_admins_and_shown_as_bots,
    bot_credentials_in_the_wrong_place_are_refused,
    bots_act_only_where_they_participate_and_are_listed,
    bot_tokens_rotate_with_a_grace_period,
    bots_on_the_gateway,
    bots_stay_in_their_org,
);

/// A bot made by `by` in `org`: its id, account id and token.
pub(crate) struct Made {
    pub(crate) id: String,
    pub(crate) user_id: String,
    pub(crate) token: String,
}

pub(crate) async fn make_bot(app: &TestApp, org: &str, by: &User, body: Value) -> Made {
    let res = app
        .post(&org_path(org, "/bots"), &by.token, body)
        .await
        .expect(201);
    Made {
        id: res.id(),
        user_id: res.string("user_id"),
        token: res.string("token"),
    }
}

impl TestApp {
    /// A request with `Authorization: Bot <token>`.
    pub(crate) async fn as_bot(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Res {
        let mut rb = self
            .client
            .request(method, self.url(path))
            .header("authorization", format!("Bot {token}"));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        self.send(rb).await
    }

    async fn bot_says(&self, conv: &str, token: &str, content: &str) -> Res {
        self.as_bot(
            Method::POST,
            &conv_path(conv, "/messages"),
            token,
            Some(json!({"content": content})),
        )
        .await
    }

    /// `by` adds `user_id` (a person or a bot) to `conv` (201 expected).
    pub(crate) async fn add_participant(&self, conv: &str, by: &User, user_id: &str) {
        self.post(
            &conv_path(conv, "/participants"),
            &by.token,
            json!({"user_id": user_id}),
        )
        .await
        .expect(201);
    }
}

/// Identifies on the gateway with a bot token; answers READY's `d`.
pub(crate) async fn identify_bot(app: &TestApp, token: &str) -> (Ws, Value) {
    let mut ws = Ws::connect(app).await;
    ws.send(json!({"op": 2, "d": {"token": format!("Bot {token}"), "client": "bot/1.0.0", "protocol_version": 1}}))
        .await;
    let ready = ws.event().await;
    assert_eq!(ready["t"], "READY", "READY after IDENTIFY: {ready}");
    (ws, ready["d"].clone())
}

async fn bots_are_made_by_admins_and_shown_as_bots(app: TestApp) {
    let doc = crate::meta::openapi(&app).await;
    let roles = [("bob", "member"), ("carol", "admin")];
    let Team(alice, [bob, carol], org) = app.team("alice", "Acme", roles).await;
    let (mallory, _evil) = app.mallory().await;
    let path = format!("/api/v1/orgs/{org}/bots");

    let res = app
        .post(&path, &alice.token, json!({"name": "Deploy Bot"}))
        .await
        .expect(201);
    crate::meta::check(&doc, "post", "/api/v1/orgs/{org}/bots", 201, &res.body);
    let token = res.string("token");
    assert!(token.starts_with("cnv_b_") && token.len() == 6 + 43 + 8);
    assert_eq!(res.body["name"], "Deploy Bot");
    assert_eq!(res.body["org_id"], org.as_str());
    assert_eq!(res.body["created_by"], alice.id.as_str());
    let bot_user = res.string("user_id");

    // Owners and admins manage bots; members get 403, other orgs 404.
    let list = app.get(&path, &carol.token).await.expect(200);
    crate::meta::check(&doc, "get", "/api/v1/orgs/{org}/bots", 200, &list.body);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]["token"],
        format!("cnv_b_****{}", &token[token.len() - 4..])
    );
    assert!(!list.body.to_string().contains(&token[6..30]));
    // A member may not manage bots; an outsider does not see the org.
    for (who, status, code) in [(&bob, 403, "forbidden"), (&mallory, 404, "not_found")] {
        let requests = [
            get(path.clone()),
            post(path.clone(), json!({"name": "Sneaky"})),
            post(format!("{path}/{}/token", res.id()), json!({})),
        ];
        app.refused_all(&who.token, status, code, requests).await;
    }
    for (body, field) in [
        (json!({"name": ""}), "/name"),
        (json!({}), "/name"),
        (json!({"name": "x", "extra": 1}), "/extra"),
    ] {
        let r = app.post(&path, &alice.token, body).await.expect(422);
        assert_eq!(r.field(), Some(field));
    }
    assert_eq!(app.get(&path, &alice.token).await.items().len(), 1);

    // The bot is an org member of kind bot; it joins conversations like anyone.
    let members = app
        .get(&org_path(&org, "/members"), &bob.token)
        .await
        .expect(200);
    let member = members.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user"]["id"] == bot_user.as_str())
        .expect("the bot is a member")
        .clone();
    assert_eq!(member["user"]["kind"], "bot");
    assert_eq!(member["role"], "member");
    let conv = app.group(&org, &alice, &[&bob], json!("private")).await;
    app.add_participant(&conv, &alice, &bot_user).await;
    let sent = app.bot_says(&conv, &token, "deployed v2").await.expect(201);
    assert_eq!(sent.body["author"]["id"], bot_user.as_str());
    assert_eq!(sent.body["author"]["kind"], "bot");
    assert_eq!(sent.body["author"]["display_name"], "Deploy Bot");
    let seen = app
        .get(&conv_path(&conv, "/messages"), &bob.token)
        .await
        .expect(200);
    assert_eq!(seen.body["items"][0]["author"]["kind"], "bot");
    let me = app
        .as_bot(Method::GET, "/api/v1/users/@me", &token, None)
        .await
        .expect(200);
    assert_eq!(me.body["kind"], "bot");
    // A bot has no password: it cannot sign in.
    let username = me.body["username"].as_str().unwrap();
    assert!(username.starts_with("bot-"));
    app.login(username, PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");
    // AZ-1: nor does it own the org — not made one, not handed it (so the last person owning
    // it can never leave it to a program); as an admin it may serve.
    let bot_path = org_path(&org, &format!("/members/{bot_user}"));
    let res = app
        .patch(&bot_path, &alice.token, json!({"role": "owner"}))
        .await
        .expect_error(422, "bot_not_allowed");
    assert_eq!(res.field(), Some("/role"));
    let res = app
        .post(
            &org_path(&org, "/transfer"),
            &alice.token,
            json!({"user_id": bot_user}),
        )
        .await
        .expect_error(422, "bot_not_allowed");
    assert_eq!(res.field(), Some("/user_id"));
    app.patch(&bot_path, &alice.token, json!({"role": "admin"}))
        .await
        .expect(200);
}

async fn bot_credentials_in_the_wrong_place_are_refused(app: TestApp) {
    let (alice, org, conv) = app.alice_private().await;
    let bot = make_bot(&app, &org, &alice, json!({"name": "Helper"})).await;
    app.add_participant(&conv, &alice, &bot.user_id).await;
    app.bot_says(&conv, &bot.token, "hello").await.expect(201);
    let count = app.message_count(&conv, &alice).await;
    let messages = format!("/api/v1/conversations/{conv}/messages");

    // A bot token sent as Bearer, a session token sent as Bot, broken tokens.
    app.post(&messages, &bot.token, json!({"content": "no"}))
        .await
        .expect_error(401, "invalid_token");
    app.bot_says(&conv, &alice.token, "no")
        .await
        .expect_error(401, "invalid_token");
    let mut broken = bot.token.clone();
    broken.replace_range(10..11, if &broken[10..11] == "A" { "B" } else { "A" });
    app.bot_says(&conv, &broken, "no")
        .await
        .expect_error(401, "invalid_token");
    app.bot_says(&conv, "cnv_b_short", "no")
        .await
        .expect_error(401, "invalid_token");
    let spec = json!({"name": "k", "org_id": org, "scopes": ["messages:write"], "tier": "team"});
    let (_, key) = crate::keys::make_key(&app, &alice, spec).await;
    app.bot_says(&conv, &key, "no")
        .await
        .expect_error(401, "invalid_token");

    // Routes without a scope refuse bots.
    for (method, path) in [
        (Method::GET, "/api/v1/auth/sessions"),
        (Method::POST, "/api/v1/auth/logout"),
        (Method::POST, "/api/v1/auth/password"),
        (Method::GET, "/api/v1/api-keys"),
        (Method::POST, "/api/v1/api-keys"),
        (Method::GET, "/api/v1/admin/users"),
        // Bots neither create nor join orgs: a person's own acts (R69).
        (Method::POST, "/api/v1/orgs"),
        (Method::POST, "/api/v1/orgs/join"),
    ] {
        app.as_bot(method, path, &bot.token, Some(json!({"name": "Botland"})))
            .await
            .expect_error(403, "insufficient_scope");
    }
    assert_eq!(app.message_count(&conv, &alice).await, count);
    app.bot_says(&conv, &bot.token, "still here")
        .await
        .expect(201);
}

async fn bots_act_only_where_they_participate_and_are_listed(app: TestApp) {
    let Rivals(alice, mallory, org, evil) = app.rivals().await;
    let listed = app.group(&org, &alice, &[], json!("private")).await;
    let unlisted = app.group(&org, &alice, &[], json!("private")).await;
    let listed_elsewhere = app.group(&org, &alice, &[], json!("private")).await;
    let foreign = app.group(&evil, &mallory, &[], json!("org")).await;
    let spec = json!({"name": "Scoped", "conversation_ids": [listed, listed_elsewhere]});
    let bot = make_bot(&app, &org, &alice, spec).await;
    app.add_participant(&listed, &alice, &bot.user_id).await;
    app.add_participant(&unlisted, &alice, &bot.user_id).await;
    let get = |conv: &str| {
        let app = &app;
        let path = format!("/api/v1/conversations/{conv}/messages");
        let token = bot.token.clone();
        async move { app.as_bot(Method::GET, &path, &token, None).await }
    };

    app.bot_says(&listed, &bot.token, "hi").await.expect(201);
    get(&listed).await.expect(200);
    // Participating but not listed: 403; listed but not participating (private): 404.
    app.bot_says(&unlisted, &bot.token, "hi")
        .await
        .expect_error(403, "insufficient_scope");
    get(&unlisted).await.expect_error(403, "insufficient_scope");
    get(&listed_elsewhere).await.expect_error(404, "not_found");
    app.bot_says(&foreign, &bot.token, "hi")
        .await
        .expect_error(404, "not_found");
    let mine = app
        .as_bot(Method::GET, "/api/v1/conversations", &bot.token, None)
        .await
        .expect(200);
    let ids = mine.ids();
    assert_eq!(ids, vec![listed.as_str()]);
    app.as_bot(
        Method::POST,
        &org_path(&org, "/conversations"),
        &bot.token,
        Some(json!({"kind": "group", "name": "bot room"})),
    )
    .await
    .expect_error(403, "insufficient_scope");
    assert_eq!(app.message_count(&unlisted, &alice).await, 0);

    // Without a list, a bot acts wherever it participates, and nowhere else.
    let free = make_bot(&app, &org, &alice, json!({"name": "Free"})).await;
    app.add_participant(&unlisted, &alice, &free.user_id).await;
    app.bot_says(&unlisted, &free.token, "hi").await.expect(201);
    app.bot_says(&listed, &free.token, "hi")
        .await
        .expect_error(404, "not_found");

    // The list holds conversations of the org only.
    let body = json!({"name": "Bad", "conversation_ids": [foreign]});
    let r = app
        .post(&org_path(&org, "/bots"), &alice.token, body)
        .await
        .expect_error(422, "unknown_conversation");
    assert_eq!(r.field(), Some("/conversation_ids/0"));
}

async fn bot_tokens_rotate_with_a_grace_period(app: TestApp) {
    let doc = crate::meta::openapi(&app).await;
    let Team(alice, [bob], org) = app.team("alice", "Acme", [("bob", "member")]).await;
    let (mallory, evil) = app.mallory().await;
    let bot = make_bot(&app, &org, &alice, json!({"name": "Rotor"})).await;
    let theirs = make_bot(&app, &evil, &mallory, json!({"name": "Theirs"})).await;
    let rotate_path = format!("/api/v1/orgs/{org}/bots/{}/token", bot.id);
    let me = "/api/v1/users/@me";

    let r = app
        .post(&rotate_path, &alice.token, json!({"grace_seconds": 30}))
        .await
        .expect(200);
    crate::meta::check(
        &doc,
        "post",
        "/api/v1/orgs/{org}/bots/{bot}/token",
        200,
        &r.body,
    );
    let second = r.string("token");
    assert_ne!(second, bot.token);
    assert_eq!(r.body["id"], bot.id.as_str());
    assert!(r.body["previous_token_expires_at"].is_string());
    app.as_bot(Method::GET, me, &bot.token, None)
        .await
        .expect(200);
    app.as_bot(Method::GET, me, &second, None).await.expect(200);
    app.clock.advance(Duration::seconds(31));
    app.as_bot(Method::GET, me, &bot.token, None)
        .await
        .expect_error(401, "invalid_token");
    app.as_bot(Method::GET, me, &second, None).await.expect(200);

    // Without a grace period (the default) the old token stops at once.
    let third = app
        .post(&rotate_path, &alice.token, json!({}))
        .await
        .expect(200)
        .string("token");
    app.as_bot(Method::GET, me, &second, None)
        .await
        .expect_error(401, "invalid_token");
    app.as_bot(Method::GET, me, &third, None).await.expect(200);

    let r = app
        .post(&rotate_path, &alice.token, json!({"grace_seconds": 86_401}))
        .await
        .expect_error(422, "out_of_range");
    assert_eq!(r.field(), Some("/grace_seconds"));
    app.expect_all([
        bob.post(&rotate_path, json!({})).err(403, "forbidden"),
        mallory.post(&rotate_path, json!({})).err(404, "not_found"),
    ])
    .await;
    // Another org's bot through this org's path, and an unknown bot: 404.
    for other in [&theirs.id, &uuid::Uuid::now_v7().to_string()] {
        app.post(
            &format!("/api/v1/orgs/{org}/bots/{other}/token"),
            &alice.token,
            json!({}),
        )
        .await
        .expect_error(404, "not_found");
    }
    app.as_bot(Method::GET, me, &theirs.token, None)
        .await
        .expect(200);
    // A bot cannot rotate tokens.
    app.as_bot(Method::POST, &rotate_path, &third, Some(json!({})))
        .await
        .expect_error(403, "insufficient_scope");
    app.as_bot(Method::GET, me, &third, None).await.expect(200);

    // AUTH-6, AZ-5: a bot token has none of a key's bounds (scopes, expiry, IP allowlist) and
    // outlives the key, so no key mints one — not even the owner's with every admin scope — and
    // no impersonated session either; the owner's own session does.
    let spec = json!({
        "name": "admin key", "org_id": org, "scopes": ["org:read", "org:admin"],
        "expires_at": (chrono::Utc::now() + Duration::hours(1)).to_rfc3339(),
        "allowed_ips": ["127.0.0.0/8", "::1/128"],
    });
    let (_, key) = crate::keys::make_key(&app, &alice, spec).await;
    let admin = app.bootstrap().await;
    let acting = app
        .impersonate(&admin, &alice)
        .await
        .expect(201)
        .string("token");
    let bots = format!("/api/v1/orgs/{org}/bots");
    for (token, code) in [
        (&key, "insufficient_scope"),
        (&acting, "impersonation_forbidden"),
    ] {
        app.post(&rotate_path, token, json!({"grace_seconds": 60}))
            .await
            .expect_error(403, code);
        app.post(&bots, token, json!({"name": "Minted"}))
            .await
            .expect_error(403, code);
    }
    app.get(&bots, &key)
        .await
        .expect_error(403, "insufficient_scope");
    app.as_bot(Method::GET, me, &third, None).await.expect(200);
    assert_eq!(
        app.get(&bots, &alice.token).await.expect(200).items().len(),
        1
    );
}

async fn bots_on_the_gateway(app: TestApp) {
    let (alice, org, listed) = app.alice_private().await;
    let unlisted = app.group(&org, &alice, &[], json!("private")).await;
    let spec = json!({"name": "Watcher", "conversation_ids": [listed]});
    let bot = make_bot(&app, &org, &alice, spec).await;
    app.add_participant(&listed, &alice, &bot.user_id).await;
    app.add_participant(&unlisted, &alice, &bot.user_id).await;

    let (mut ws, ready) = identify_bot(&app, &bot.token).await;
    assert_eq!(ready["user"]["kind"], "bot");
    let ids = crate::ws::ready_conversation_ids(&ready);
    assert_eq!(ids, vec![listed.as_str()]);
    // Nothing from unlisted conversations, not even new ones it is added to.
    app.says(&unlisted, &alice, "not for the bot").await;
    let _later = app.group(&org, &alice, &[], json!("private")).await;
    app.add_participant(&_later, &alice, &bot.user_id).await;
    let m = app.says(&listed, &alice, "for the bot").await;
    let d = ws.expect("MESSAGE_CREATE").await;
    assert_eq!(d["id"], m.body["id"]);

    // A bot token sent as Bearer does not identify.
    let mut wrong = Ws::connect(&app).await;
    wrong
        .send(json!({"op": 2, "d": {"token": format!("Bearer {}", bot.token)}}))
        .await;
    assert_eq!(wrong.close_code().await, 4004);

    // Rotation without grace closes the socket at once.
    let rotate = format!("/api/v1/orgs/{org}/bots/{}/token", bot.id);
    let second = app
        .post(&rotate, &alice.token, json!({}))
        .await
        .expect(200)
        .string("token");
    assert_eq!(ws.close_code().await, 4004);
    // With grace, the old token's socket lives until the grace period ends.
    let (mut ws, _) = identify_bot(&app, &second).await;
    let third = app
        .post(&rotate, &alice.token, json!({"grace_seconds": 60}))
        .await
        .expect(200)
        .string("token");
    ws.outlives_the_grace_period_only(&app).await;
    let (mut ws, ready) = identify_bot(&app, &third).await;
    assert_eq!(ready["user"]["id"], bot.user_id.as_str());
    // Taken out of its org (its membership, the bot left as it is): its socket closes at once,
    // and its token identifies nothing any more (AZ-5).
    let member = org_path(&org, &format!("/members/{}", bot.user_id));
    app.delete(&member, &alice.token).await.expect(204);
    assert_eq!(ws.close_code().await, 4004);
    let mut again = Ws::connect(&app).await;
    again
        .send(json!({"op": 2, "d": {"token": format!("Bot {third}")}}))
        .await;
    assert_eq!(again.close_code().await, 4004);
}

async fn bots_stay_in_their_org(app: TestApp) {
    let Rivals(alice, mallory, org, evil) = app.rivals().await;
    let bot = make_bot(&app, &org, &alice, json!({"name": "Loyal"})).await;
    // Another org cannot take the bot in, not even by a direct add.
    let body = json!({"user_id": bot.user_id, "role": "member"});
    let r = app
        .post(
            &format!("/api/v1/admin/orgs/{evil}/members"),
            ADMIN_TOKEN,
            body,
        )
        .await
        .expect_error(422, "bot_not_allowed");
    assert_eq!(r.field(), Some("/user_id"));
    let orgs = app
        .as_bot(Method::GET, "/api/v1/orgs", &bot.token, None)
        .await
        .expect(200);
    assert_eq!(orgs.items().len(), 1);
    app.as_bot(Method::GET, &org_path(&evil, ""), &bot.token, None)
        .await
        .expect_error(404, "not_found");
    app.as_bot(
        Method::GET,
        &format!("/api/v1/users/{}", mallory.id),
        &bot.token,
        None,
    )
    .await
    .expect_error(404, "not_found");
    // Removed from its org, the bot is gone.
    app.remove_member(&org, &alice, &bot.user_id).await;
    app.as_bot(Method::GET, "/api/v1/users/@me", &bot.token, None)
        .await
        .expect_error(401, "invalid_token");
}
