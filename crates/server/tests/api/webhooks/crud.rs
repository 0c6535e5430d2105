//! Managing webhooks: secrets shown once and masked after, rotation, audit rows, hostile URLs,
//! and every caller who must be refused.

use super::*;

crate::both_backends!(
    with crate::webhooks::hooked;
    webhooks_are_managed_with_secrets_shown_once,
    hostile_urls_are_refused,
    only_owners_admins_and_webhook_keys_manage_webhooks,
    endpoint_urls_are_looked_up_only_for_who_may_manage_them,
);

async fn webhooks_are_managed_with_secrets_shown_once(h: Hooked) {
    let app = &h.app;
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let url = h.rx[0].url();
    let created = app
        .post(
            &hooks(&org),
            &alice.token,
            json!({"url": url, "events": ["message.created", "participant.added"]}),
        )
        .await
        .expect(201);
    let id = created.id();
    let secret = created.string("secret");
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{secret}"
    );
    assert_eq!(created.body["url"], url);
    assert_eq!(
        created.body["events"],
        json!(["message.created", "participant.added"])
    );
    assert_eq!(created.body["enabled"], true);

    // Masked everywhere after creation.
    let listed = app.items(&hooks(&org), &alice.token).await;
    assert_eq!(listed.len(), 1);
    let masked = listed[0]["secret"].as_str().unwrap();
    assert_eq!(masked, format!("whsec_****{}", &secret[secret.len() - 4..]));
    assert!(!listed[0].to_string().contains(&secret[6..]));

    // Sealed at rest: no stored byte sequence is the secret or its key.
    let stored = stored_secrets(app, &id).await;
    assert_eq!(stored.len(), 1);
    let key = base64_key(&secret);
    for (nonce, ciphertext) in &stored {
        assert_eq!(nonce.len(), 12);
        assert!(!ciphertext.windows(key.len()).any(|w| w == key.as_slice()));
        assert!(!String::from_utf8_lossy(ciphertext).contains(&secret[6..]));
    }

    // Unknown events and fields are refused, naming the field.
    app.post(
        &hooks(&org),
        &alice.token,
        json!({"url": url, "events": ["message.*"]}),
    )
    .await
    .expect_error(422, "invalid");
    app.post(
        &hooks(&org),
        &alice.token,
        json!({"url": url, "events": []}),
    )
    .await
    .expect_error(422, "invalid");
    let path = format!("{}/{id}", hooks(&org));
    let patched = app
        .patch(
            &path,
            &alice.token,
            json!({"events": ["message.deleted"], "enabled": false}),
        )
        .await
        .expect(200);
    assert_eq!(patched.body["events"], json!(["message.deleted"]));
    assert_eq!(patched.body["enabled"], false);
    assert!(patched.body["secret"]
        .as_str()
        .unwrap()
        .starts_with("whsec_****"));

    // Rotation: a new secret, shown once; the old one signs on for the overlap.
    let rotated = app
        .post_empty(&format!("{path}/secret"), &alice.token)
        .await
        .expect(200);
    let new_secret = rotated.string("secret");
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    assert!(rotated.body["previous_secret_expires_at"].is_string());

    // A conversation of another org is not a target.
    let (mallory, evil) = app.mallory().await;
    let theirs = app.group(&evil, &mallory, &[], json!("org")).await;
    app.post(
        &hooks(&org),
        &alice.token,
        json!({"url": url, "events": ["message.created"], "conversation_id": theirs}),
    )
    .await
    .expect_error(422, "not_found");

    app.delete(&path, &alice.token).await.expect(204);
    assert!(app.items(&hooks(&org), &alice.token).await.is_empty());
    app.delete(&path, &alice.token).await.expect(404);

    // Every change is in the org's audit log.
    let audit = app
        .items(&format!("/api/v1/orgs/{org}/audit"), &alice.token)
        .await;
    let events: Vec<&str> = audit.iter().filter_map(|r| r["event"].as_str()).collect();
    assert_includes(
        &events,
        &[
            "webhook.created",
            "webhook.updated",
            "webhook.secret_rotated",
            "webhook.deleted",
        ],
    );
    assert!(!audit.iter().any(|r| r.to_string().contains(&secret[6..])));
    assert!(!audit
        .iter()
        .any(|r| r.to_string().contains(&new_secret[6..])));
}

fn base64_key(secret: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(&secret["whsec_".len()..])
        .unwrap()
}

/// The endpoint's stored secrets, (nonce, ciphertext), read from the database directly.
async fn stored_secrets(app: &TestApp, hook: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let id = uuid::Uuid::parse_str(hook).unwrap();
    let sql = "SELECT secret_nonce, secret_ciphertext FROM webhook_secrets WHERE webhook_id = $1";
    crate::db::Db::sealed_of(app, sql, Some(id)).await
}

async fn hostile_urls_are_refused(h: Hooked) {
    let app = &h.app;
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let port = h.rx[0].port;
    let hostile = [
        format!("http://user:pass@127.0.0.1:{port}/hook"),
        format!("http://user@127.0.0.1:{port}/hook"),
        format!("http://127.0.0.1:{port}/hook#frag"),
        "file:///etc/passwd".to_owned(),
        "gopher://127.0.0.1:70/_stats".to_owned(),
        "ftp://example.com/x".to_owned(),
        "javascript:alert(1)".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://192.168.1.1/".to_owned(),
        "http://172.16.0.1/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://2852039166/".to_owned(),
        "http://0xa9fea9fe/".to_owned(),
        "http://127.0.0.2/".to_owned(),
        "http://0x7f000002/".to_owned(),
        "http://localhost/".to_owned(),
        "http://[::1]/".to_owned(),
        "http://[::ffff:10.0.0.1]/".to_owned(),
        "http://100.64.0.1/".to_owned(),
        "http://[fd00::1]/".to_owned(),
        "http://0.0.0.0/".to_owned(),
        "http://224.0.0.1/".to_owned(),
        "http://127.0.0.1:1/".to_owned(),
        "not a url".to_owned(),
    ];
    for url in &hostile {
        let res = app
            .post(
                &hooks(&org),
                &alice.token,
                json!({"url": url, "events": ["message.created"]}),
            )
            .await;
        assert_eq!(res.status.as_u16(), 422, "{url}: {:?}", res.body);
        assert_eq!(res.code(), "url_not_allowed", "{url}");
        assert_eq!(res.field(), Some("url"), "{url}");
    }
    // Nothing was stored, and a PATCH to a hostile URL is refused the same way.
    assert!(app.items(&hooks(&org), &alice.token).await.is_empty());
    let (id, _) = make_hook(app, &org, &alice, &h.rx[0].url(), &["message.created"]).await;
    app.patch(
        &format!("{}/{id}", hooks(&org)),
        &alice.token,
        json!({"url": "http://169.254.169.254/"}),
    )
    .await
    .expect_error(422, "url_not_allowed");
    assert_eq!(
        app.items(&hooks(&org), &alice.token).await[0]["url"],
        h.rx[0].url()
    );
}

async fn only_owners_admins_and_webhook_keys_manage_webhooks(h: Hooked) {
    let app = &h.app;
    let admin = app.bootstrap().await;
    let team = app.acme_staff().await;
    let crate::fixtures::Team(owner, [ann, bob, vic, dee], org) = &team;
    let url = h.rx[0].url();
    let body = json!({"url": url, "events": ["message.created"]});
    // The owner and an admin may.
    let (id, _) = make_hook(app, org, owner, &url, &["message.created"]).await;
    app.post(&hooks(org), &ann.token, body.clone())
        .await
        .expect(201);
    let one = format!("{}/{id}", hooks(org));

    // A member and a viewer may not, on any route.
    for who in [bob, vic] {
        app.post(&hooks(org), &who.token, body.clone())
            .await
            .expect(403);
        app.get(&hooks(org), &who.token).await.expect(403);
        app.patch(&one, &who.token, json!({"enabled": false}))
            .await
            .expect(403);
        app.post_empty(&format!("{one}/secret"), &who.token)
            .await
            .expect(403);
        app.post_empty(&format!("{one}/test"), &who.token)
            .await
            .expect(403);
        app.get(&format!("{one}/deliveries"), &who.token)
            .await
            .expect(403);
        app.delete(&one, &who.token).await.expect(403);
    }
    // Another org's owner does not even see it.
    let (mallory, evil) = app.mallory().await;
    app.get(&hooks(org), &mallory.token).await.expect(404);
    app.post(&hooks(org), &mallory.token, body.clone())
        .await
        .expect(404);
    app.delete(&one, &mallory.token).await.expect(404);
    // …nor through their own org's path.
    app.delete(&format!("{}/{id}", hooks(&evil)), &mallory.token)
        .await
        .expect(404);
    app.post_empty(&format!("{}/{id}/secret", hooks(&evil)), &mallory.token)
        .await
        .expect(404);

    // A key without `webhooks:admin` is refused even with every other scope; one with it may.
    let all_but = crate::keys::all_scopes_but("webhooks:admin");
    let weak = crate::keys::org_key(app, owner, org, &all_but, &[]).await;
    let res = app.post(&hooks(org), &weak, body.clone()).await;
    res.expect_error(403, "insufficient_scope");
    app.get(&hooks(org), &weak)
        .await
        .expect_error(403, "insufficient_scope");
    // AZ-5: with `webhooks:admin` alone a key manages endpoints but subscribes them to nothing
    // it could not read over REST (here: messages, without `messages:read`).
    let admin_only = crate::keys::org_key(app, owner, org, &["webhooks:admin"], &[]).await;
    app.get(&hooks(org), &admin_only).await.expect(200);
    app.post(&hooks(org), &admin_only, body.clone())
        .await
        .expect_error(403, "insufficient_scope");
    app.patch(&one, &admin_only, json!({"events": ["message.created"]}))
        .await
        .expect_error(403, "insufficient_scope");
    // Nor steers (or turns on) one that hears them: that too would send messages it may
    // not read to wherever the endpoint points.
    app.patch(&one, &admin_only, json!({"enabled": true}))
        .await
        .expect_error(403, "insufficient_scope");
    let strong =
        crate::keys::org_key(app, owner, org, &["webhooks:admin", "messages:read"], &[]).await;
    app.post(&hooks(org), &strong, body.clone())
        .await
        .expect(201);
    // A member's key with the scope is still capped by the member's role.
    let members_key = crate::keys::org_key(app, bob, org, &["webhooks:admin"], &[]).await;
    app.post(&hooks(org), &members_key, body.clone())
        .await
        .expect(403);

    // A bot of the org is refused.
    let bot = crate::bots::make_bot(app, org, owner, json!({"name": "b"})).await;
    let res = app
        .as_bot(
            reqwest::Method::POST,
            &hooks(org),
            &bot.token,
            Some(body.clone()),
        )
        .await;
    assert_eq!(res.status.as_u16(), 403, "{:?}", res.body);

    // A disabled admin's session is no credential.
    app.patch(
        &format!("/api/v1/admin/users/{}", dee.id),
        &admin.token,
        json!({"disabled": true}),
    )
    .await
    .expect(200);
    app.get(&hooks(org), &dee.token).await.expect(401);
    app.post(&hooks(org), &dee.token, body).await.expect(401);
    // Three were made: the owner's, the admin's and the key's.
    assert_eq!(app.items(&hooks(org), &owner.token).await.len(), 3);
}

/// HOOK-3, AZ-1: an endpoint URL goes through the SSRF guard (a DNS lookup whose verdict says
/// "a private address" or "does not resolve") only for a caller who may manage what it is for.
/// Anyone else gets the refusal they get for a public URL — 404 outside the org, 403 inside it
/// — on webhooks, moderation guards and agents, created or changed: no map of internal names,
/// and no lookups of names an outsider picks.
async fn endpoint_urls_are_looked_up_only_for_who_may_manage_them(h: Hooked) {
    let app = &h.app;
    let crate::fixtures::Team(owner, [_ann, bob, vic, _dee], org) = &app.acme_staff().await;
    let (mallory, _) = app.mallory().await;
    let (hook, _) = make_hook(app, org, owner, &h.rx[0].url(), &["message.created"]).await;
    let guard = app
        .post(
            &org_path(org, "/guards"),
            &owner.token,
            json!({"name": "Words", "kind": "blocklist", "mode": "block", "terms": ["nope"]}),
        )
        .await
        .expect(201)
        .id();
    let agent = uuid::Uuid::now_v7();
    for url in [
        h.rx[0].url(),
        "http://10.1.2.3/hook".to_owned(),
        "http://no-such-host.invalid/hook".to_owned(),
    ] {
        let requests = [
            (
                Method::POST,
                hooks(org),
                json!({"url": url, "events": ["message.created"]}),
            ),
            (
                Method::PATCH,
                format!("{}/{hook}", hooks(org)),
                json!({"url": url}),
            ),
            (
                Method::POST,
                org_path(org, "/guards"),
                json!({"name": "Remote", "kind": "moderation_endpoint", "mode": "block",
                       "url": url, "fail": "open"}),
            ),
            (
                Method::PATCH,
                org_path(org, &format!("/guards/{guard}")),
                json!({"url": url}),
            ),
            (
                Method::POST,
                org_path(org, "/agents"),
                json!({"name": "Helper", "endpoint": url, "model": "m"}),
            ),
            (
                Method::PATCH,
                org_path(org, &format!("/agents/{agent}")),
                json!({"endpoint": url}),
            ),
        ];
        for (who, status) in [(bob, 403), (vic, 403), (&mallory, 404)] {
            for (method, path, body) in &requests {
                let res = app
                    .call(method.clone(), path, Some(&who.token), Some(body.clone()))
                    .await;
                assert_eq!(
                    res.status.as_u16(),
                    status,
                    "{} {method} {path} with {url}: {}",
                    who.name,
                    res.body
                );
            }
        }
    }
}
