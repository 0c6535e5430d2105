//! AZ-7: joining an org needs the invitee's consent — invites by code or by username, listed,
//! revoked, expiring by default; direct adds only by server admins and the management token;
//! the global profile only through sessions. AZ-5a: a bot or key limited to a conversation list
//! never acts org-wide, whatever its scopes.

use crate::both_backends;
use crate::cases::{delete, get, patch, post, Caller};
use crate::fixtures::{Acme, Team};
use crate::helpers::*;
use crate::keys::make_key;
use reqwest::Method;
use serde_json::{json, Value};

both_backends!(
    invited_users_consent_before_they_join,
    inviting_a_username_does_not_tell_whether_it_exists,
    invites_are_listed_revoked_and_expire_by_default,
    only_server_admins_add_members_directly,
    the_global_profile_is_for_sessions_only,
    conversation_limited_credentials_never_act_org_wide,
    concurrent_acceptances_join_once,
    an_invite_grants_no_more_than_its_maker_can_when_used,
);

/// The org ids `user` belongs to.
async fn org_ids(app: &TestApp, user: &User) -> Vec<String> {
    app.get("/api/v1/orgs", &user.token).await.expect(200).body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn pending(app: &TestApp, user: &User) -> Vec<Value> {
    app.items("/api/v1/users/@me/invites", &user.token).await
}

async fn org_events(app: &TestApp, org: &str, event: &str) -> Vec<Value> {
    app.items(
        &format!("/api/v1/admin/audit?org={org}&event={event}"),
        ADMIN_TOKEN,
    )
    .await
}

/// A request with `Authorization: Bot <token>`.
async fn as_bot(app: &TestApp, method: Method, path: &str, token: &str, body: Value) -> Res {
    app.send(
        app.client
            .request(method, app.url(path))
            .header("authorization", format!("Bot {token}"))
            .json(&body),
    )
    .await
}

async fn invited_users_consent_before_they_join(app: TestApp) {
    let owner = app.user("owner").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let org = app.org(&owner, "Acme").await;
    let inv = json!({"username": "Bob", "role": "admin"});
    let inv = app.invite(&org, &owner, inv).await.expect(201);
    let id = inv.id();
    assert!(inv.body["code"].as_str().unwrap().starts_with("cnv_inv_"));
    // Nothing happens to bob until he says yes.
    assert!(!org_ids(&app, &bob).await.contains(&org));
    let mine = pending(&app, &bob).await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["id"], json!(id));
    assert_eq!(mine[0]["org_name"], "Acme");
    assert_eq!(mine[0]["role"], "admin");
    assert!(
        pending(&app, &carol).await.is_empty(),
        "others do not see it"
    );
    // Nobody else takes it: not by id, not with its code.
    let accept = format!("/api/v1/orgs/invites/{id}/accept");
    app.post(&accept, &carol.token, json!({}))
        .await
        .expect_error(404, "not_found");
    let code = inv.body["code"].as_str().unwrap();
    let r = app.join(&carol, code).await;
    assert_ne!(r.status, 200, "{:?}", r.body);
    assert!(!org_ids(&app, &carol).await.contains(&org));
    // Bob accepts, once.
    let joined = app.post(&accept, &bob.token, json!({})).await.expect(200);
    assert_eq!(joined.body["id"], json!(org));
    assert_eq!(joined.body["role"], "admin");
    assert!(org_ids(&app, &bob).await.contains(&org));
    assert!(pending(&app, &bob).await.is_empty());
    app.post(&accept, &bob.token, json!({}))
        .await
        .expect_error(404, "not_found");
    for event in ["invite.created", "invite.accepted"] {
        let rows = org_events(&app, &org, event).await;
        assert_eq!(rows.len(), 1, "{event} is audited once");
    }
    let accepted = &org_events(&app, &org, "invite.accepted").await[0];
    assert_eq!(accepted["actor"]["id"], json!(bob.id));
}

async fn inviting_a_username_does_not_tell_whether_it_exists(app: TestApp) {
    let owner = app.user("owner").await;
    app.user("bob").await;
    let org = app.org(&owner, "Acme").await;
    let invites = format!("/api/v1/orgs/{org}/invites");
    let real = app
        .post(&invites, &owner.token, json!({"username": "bob"}))
        .await;
    let ghost = app
        .post(&invites, &owner.token, json!({"username": "nobody-here"}))
        .await;
    assert_eq!(real.status, ghost.status);
    assert_eq!(real.status, 201);
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&real.body), keys(&ghost.body));
    for (body, name) in [(&real.body, "bob"), (&ghost.body, "nobody-here")] {
        assert_eq!(body["username"], name);
        assert_eq!(body["max_uses"], 1);
        assert_eq!(body["uses"], 0);
    }
    // A named invite is used once.
    app.post(
        &invites,
        &owner.token,
        json!({"username": "bob", "max_uses": 5}),
    )
    .await
    .expect_error(422, "out_of_range");
    // Someone who registers under the invited name later finds it waiting.
    let late = app.user("nobody-here").await;
    assert_eq!(pending(&app, &late).await.len(), 1);

    // A named invite's code registers only its invitee: anyone else is refused like an
    // unknown code, and no account is left behind.
    let named = app
        .post(&invites, &owner.token, json!({"username": "carol"}))
        .await
        .expect(201);
    let code = named.string("code");
    let register = |name: &'static str| {
        app.post_anon(
            "/api/v1/auth/register",
            json!({"username": name, "password": PASSWORD, "invite_code": code}),
        )
    };
    let refused = register("mallory")
        .await
        .expect_error(422, "invite_invalid");
    assert!(refused.field().is_some_and(|f| f.contains("invite_code")));
    app.login("mallory", PASSWORD).await.expect(401);
    register("Carol").await.expect(201);
    let carol = app.login("carol", PASSWORD).await.expect(200);
    let carol = User {
        name: "carol".into(),
        id: carol.body["user"]["id"].as_str().unwrap().to_owned(),
        token: carol.string("token"),
    };
    assert!(org_ids(&app, &carol).await.contains(&org));
}

async fn invites_are_listed_revoked_and_expire_by_default(app: TestApp) {
    let roles = [("admin1", "admin"), ("member1", "member")];
    let Team(owner, [admin, member], org) = app.team("owner", "Acme", roles).await;
    let bob = app.user("bob").await;
    let other = app.org(&bob, "Other").await;
    let invites = format!("/api/v1/orgs/{org}/invites");
    let now = app.clock_now();
    let named = app
        .post(&invites, &admin.token, json!({"username": "bob"}))
        .await
        .expect(201);
    // Default expiry: 7 days.
    let expires: chrono::DateTime<chrono::Utc> =
        named.body["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires, now + chrono::Duration::days(7));
    let open = app
        .post(&invites, &owner.token, json!({"max_uses": 3}))
        .await
        .expect(201);
    // An expiry past the year 9999 (an offset can push one there) is refused on both backends
    // (SQLite would have sorted it before every time: listed, never usable).
    for late in ["9999-12-31T23:30:00-01:00", "+10000-01-01T00:00:00Z"] {
        let res = app
            .post(&invites, &owner.token, json!({"expires_at": late}))
            .await
            .expect(422);
        assert_eq!(res.field(), Some("/expires_at"), "{late}: {}", res.body);
    }
    // Owners and admins list them (codes are not shown again); members may not.
    for who in [&owner, &admin] {
        let listed = app.items(&invites, &who.token).await;
        let ids: Vec<&str> = listed.iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert!(ids.contains(&named.id().as_str()) && ids.contains(&open.id().as_str()));
        assert!(listed.iter().all(|i| i.get("code").is_none()));
    }
    app.expect_all([
        member.get(&invites).err(403, "forbidden"),
        bob.get(&invites).err(404, "not_found"),
        // Revoking: the code stops working; another org's admin cannot revoke it.
        bob.delete(&format!("/api/v1/orgs/{other}/invites/{}", open.id()))
            .err(404, "not_found"),
        member
            .delete(&format!("{invites}/{}", open.id()))
            .err(403, "forbidden"),
        admin.delete(&format!("{invites}/{}", open.id())).is(204),
        admin
            .delete(&format!("{invites}/{}", open.id()))
            .err(404, "not_found"),
        bob.post("/api/v1/orgs/join", json!({"code": open.body["code"]}))
            .err(422, "invite_invalid"),
    ])
    .await;
    assert_eq!(org_events(&app, &org, "invite.revoked").await.len(), 1);
    // Eight days on, the named invite is gone from bob's list and cannot be taken.
    assert_eq!(pending(&app, &bob).await.len(), 1);
    app.clock.advance(chrono::Duration::days(8));
    let bob = app.sign_in_again("bob", bob).await;
    assert!(pending(&app, &bob).await.is_empty());
    app.post(
        &format!("/api/v1/orgs/invites/{}/accept", named.id()),
        &bob.token,
        json!({}),
    )
    .await
    .expect_error(404, "not_found");
}

async fn only_server_admins_add_members_directly(app: TestApp) {
    let root = app.bootstrap().await;
    let owner = app.user("owner").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let org = app.org(&owner, "Acme").await;
    let members = format!("/api/v1/orgs/{org}/members");
    // The org's own owner may not add an account without its consent.
    app.post(
        &members,
        &owner.token,
        json!({"user_id": bob.id, "role": "member"}),
    )
    .await
    .expect_error(403, "forbidden");
    assert!(!org_ids(&app, &bob).await.contains(&org));
    assert_eq!(org_events(&app, &org, "member.add_denied").await.len(), 1);
    // A server admin's session may, even outside the org.
    let added = app
        .post(
            &members,
            &root.token,
            json!({"username": "bob", "role": "member"}),
        )
        .await
        .expect(201);
    assert_eq!(added.body["user"]["id"], json!(bob.id));
    // So may automation with the management token, on /admin only.
    app.post(
        &members,
        ADMIN_TOKEN,
        json!({"user_id": carol.id, "role": "viewer"}),
    )
    .await
    .expect(401);
    let r = app
        .admin_add_member(&org, &carol, "viewer")
        .await
        .expect(201);
    assert_eq!(r.body["role"], "viewer");
    let rows = org_events(&app, &org, "member.added").await;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().any(|r| r["actor"]["type"] == "management"));
    assert!(rows.iter().any(|r| r["actor"]["id"] == json!(root.id)));
    // Not for an unknown org, nor for ordinary users on /admin.
    let nowhere = uuid::Uuid::now_v7();
    app.post(
        &format!("/api/v1/admin/orgs/{nowhere}/members"),
        ADMIN_TOKEN,
        json!({"user_id": carol.id, "role": "member"}),
    )
    .await
    .expect_error(404, "not_found");
    app.post(
        &format!("/api/v1/admin/orgs/{org}/members"),
        &owner.token,
        json!({"user_id": owner.id, "role": "owner"}),
    )
    .await
    .expect_error(403, "forbidden");
}

async fn the_global_profile_is_for_sessions_only(app: TestApp) {
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let spec = json!({"name": "all", "org_id": org, "scopes": ["org:read", "org:admin"]});
    let (_, key) = make_key(&app, &alice, spec).await;
    app.patch("/api/v1/users/@me", &key, json!({"display_name": "Pwned"}))
        .await
        .expect_error(403, "insufficient_scope");
    let bot = crate::bots::make_bot(&app, &org, &alice, json!({"name": "Helper"})).await;
    let r = as_bot(
        &app,
        Method::PATCH,
        "/api/v1/users/@me",
        &bot.token,
        json!({"display_name": "Pwned"}),
    )
    .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let me = app.get("/api/v1/users/@me", &alice.token).await.expect(200);
    assert_ne!(me.body["display_name"], "Pwned");
    let me = app
        .patch(
            "/api/v1/users/@me",
            &alice.token,
            json!({"display_name": "Alice"}),
        )
        .await
        .expect(200);
    assert_eq!(me.body["display_name"], "Alice");
}

async fn conversation_limited_credentials_never_act_org_wide(app: TestApp) {
    let Acme { alice, bob, org } = app.acme().await;
    let mallory = app.user("mallory").await;
    let conv = app.group(&org, &alice, &[&bob], json!("private")).await;
    let all = crate::keys::ALL_SCOPES;
    let spec = json!({"name": "support", "org_id": org, "scopes": all, "conversation_ids": [conv]});
    let (_, key) = make_key(&app, &alice, spec).await;
    let o = format!("/api/v1/orgs/{org}");
    let refused: Vec<(Method, String, Option<Value>)> = vec![
        post(format!("{o}/invites"), json!({"role": "owner"})),
        post(
            format!("{o}/invites"),
            json!({"username": "mallory", "role": "owner"}),
        ),
        get(format!("{o}/invites")),
        post(
            format!("{o}/members"),
            json!({"user_id": mallory.id, "role": "owner"}),
        ),
        patch(format!("{o}/members/{}", bob.id), json!({"role": "owner"})),
        delete(format!("{o}/members/{}", bob.id)),
        post(format!("{o}/teams"), json!({"name": "x"})),
        patch(o.clone(), json!({"name": "Pwned"})),
        post(format!("{o}/transfer"), json!({"user_id": bob.id})),
        post(format!("{o}/bots"), json!({"name": "b"})),
        get(format!("{o}/audit")),
        delete(o.clone()),
    ];
    for (method, path, body) in refused {
        // Past the key's per-second budget each time: the answer is the refusal, not 429.
        app.clock.advance(chrono::Duration::seconds(1));
        let r = app.call(method.clone(), &path, Some(&key), body).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (403, "insufficient_scope"),
            "{method} {path}: {:?}",
            r.body
        );
    }
    // Nothing changed: no new invite (only bob's, used), no new member, same name.
    let listed = app
        .get(&format!("{o}/invites"), &alice.token)
        .await
        .expect(200);
    let listed = listed.body["items"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["role"], "member");
    assert!(pending(&app, &mallory).await.is_empty());
    let members = app
        .get(&format!("{o}/members"), &alice.token)
        .await
        .expect(200);
    assert_eq!(members.items().len(), 2);
    assert_eq!(
        app.get(&o, &alice.token).await.expect(200).body["name"],
        "Acme"
    );
    // It still looks at the org and works in its conversation.
    app.get(&o, &key).await.expect(200);
    app.send_message(&conv, &alice.with_token(&key), "still works")
        .await
        .expect(201);
    // The refusals are audited as denied.
    let denied = org_events(&app, &org, "org.denied").await;
    assert!(!denied.is_empty());
    assert!(denied.iter().all(|r| r["outcome"] == "denied"));

    // A bot limited to a conversation, even promoted to admin, cannot invite either.
    let bot = app
        .post(
            &format!("{o}/bots"),
            &alice.token,
            json!({"name": "Helper", "conversation_ids": [conv]}),
        )
        .await
        .expect(201);
    let bot_user = bot.body["user_id"].as_str().unwrap();
    app.patch(
        &format!("{o}/members/{bot_user}"),
        &alice.token,
        json!({"role": "admin"}),
    )
    .await
    .expect(200);
    let token = bot.body["token"].as_str().unwrap();
    let r = as_bot(
        &app,
        Method::POST,
        &format!("{o}/invites"),
        token,
        json!({"role": "admin"}),
    )
    .await;
    r.expect_error(403, "insufficient_scope");
}

async fn concurrent_acceptances_join_once(app: TestApp) {
    let owner = app.user("owner").await;
    let bob = app.user("bob").await;
    let org = app.org(&owner, "Acme").await;
    let id = app.invite(&org, &owner, json!({"username": "bob"})).await;
    let id = id.expect(201).id();
    let accept = format!("/api/v1/orgs/invites/{id}/accept");
    let tries = (0..100).map(|_| app.post(&accept, &bob.token, json!({})));
    let results = futures::future::join_all(tries).await;
    let ok = results.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 1, "exactly one acceptance joins");
    assert!(results
        .iter()
        .all(|r| r.status == 200 || r.status == 404 || r.status == 409 || r.status == 429));
    let members = app
        .get(&org_path(&org, "/members"), &owner.token)
        .await
        .expect(200);
    assert_eq!(members.items().len(), 2);
}

/// AZ-7: an invite never grants more than its maker could at the time it is used. A demoted
/// admin's codes and username invites admit nobody until she is promoted again; a removed
/// admin's stop for good (a code she kept would otherwise bring her back in, as an admin, from
/// another account); a disabled maker's stop too; the owner's keep working. Refused as a
/// used-up code is (422 `invite_invalid`; 404 for a username invite), taking no use.
async fn an_invite_grants_no_more_than_its_maker_can_when_used(app: TestApp) {
    let Team(owner, [ann], org) = app.team("owner", "Acme", [("ann", "admin")]).await;
    let (erin, frank, outsider) = (
        app.user("erin").await,
        app.user("frank").await,
        app.user("outsider").await,
    );
    let code_of = |r: Res| r.expect(201).string("code");
    let admin_code = code_of(
        app.invite(&org, &ann, json!({"role": "admin", "max_uses": 1}))
            .await,
    );
    let member_code = code_of(app.invite(&org, &ann, json!({"max_uses": 5})).await);
    let named = app
        .invite(&org, &ann, json!({"username": "erin", "role": "member"}))
        .await
        .expect(201);
    let accept = format!("/api/v1/orgs/invites/{}/accept", named.id());
    let owners_code = code_of(app.invite(&org, &owner, json!({"max_uses": 5})).await);
    let ann_path = format!("/api/v1/orgs/{org}/members/{}", ann.id);
    let refused = |r: Res| {
        r.expect_error(422, "invite_invalid");
    };
    // Demoted to member: nothing she made admits anyone.
    app.patch(&ann_path, &owner.token, json!({"role": "member"}))
        .await
        .expect(200);
    refused(app.join(&outsider, &admin_code).await);
    refused(app.join(&outsider, &member_code).await);
    app.post(&accept, &erin.token, json!({}))
        .await
        .expect_error(404, "not_found");
    assert!(!org_ids(&app, &outsider).await.contains(&org));
    assert!(pending(&app, &erin).await.is_empty(), "not listed either");
    // Promoted again: they admit again, and the refusals took no use of the single-use code.
    app.patch(&ann_path, &owner.token, json!({"role": "admin"}))
        .await
        .expect(200);
    let joined = app.join(&outsider, &admin_code).await.expect(200);
    assert_eq!(joined.body["role"], "admin");
    assert_eq!(pending(&app, &erin).await.len(), 1, "listed again");
    // Removed: her codes and her username invite are dead, for any account of hers.
    app.delete(&ann_path, &owner.token).await.expect(204);
    refused(app.join(&frank, &member_code).await);
    app.post(&accept, &erin.token, json!({}))
        .await
        .expect_error(404, "not_found");
    assert!(pending(&app, &erin).await.is_empty());
    assert!(!org_ids(&app, &frank).await.contains(&org));
    assert!(!org_ids(&app, &erin).await.contains(&org));
    // The owner's code still admits.
    app.join(&frank, &owners_code).await.expect(200);
    // A disabled maker's codes stop too, and work again once she is enabled.
    app.add_member(&org, &owner, &ann, "admin").await;
    let ann = ann.with_token(&app.login("ann", PASSWORD).await.expect(200).string("token"));
    let again = code_of(app.invite(&org, &ann, json!({"max_uses": 5})).await);
    app.set_disabled(ADMIN_TOKEN, &ann, true).await;
    refused(app.join(&erin, &again).await);
    app.set_disabled(ADMIN_TOKEN, &ann, false).await;
    app.join(&erin, &again).await.expect(200);
}
