//! Clients: registered by org owners and admins only (public, or confidential with a secret
//! shown once), authenticated at the token endpoint; Client ID Metadata Documents fetched
//! through the SSRF guard (`documents` has the allowlisted case); RFC 7009 revocation.

use super::*;
use crate::both_backends;
use base64::Engine;

both_backends!(with crate::helpers::spawn_app_unlimited;
    only_owners_and_admins_register_clients,
    confidential_clients_authenticate_with_their_secret,
    deleting_a_client_ends_its_grants,
    revocation_ends_tokens,
    a_metadata_document_on_a_private_address_is_refused,
);

async fn only_owners_and_admins_register_clients(app: TestApp) {
    let w = world(&app).await;
    let ada = app.user("ada").await;
    let mo = app.user("mona").await;
    let vic = app.user("vic").await;
    app.add_member(&w.org, &w.owner, &ada, "admin").await;
    app.add_member(&w.org, &w.owner, &mo, "member").await;
    app.add_member(&w.org, &w.owner, &vic, "viewer").await;
    let outsider = app.user("outsider").await;
    register(&app, &ada, &w.org, true).await.expect(201);
    register(&app, &mo, &w.org, true)
        .await
        .expect_error(403, "forbidden");
    register(&app, &vic, &w.org, true)
        .await
        .expect_error(403, "forbidden");
    register(&app, &outsider, &w.org, true).await.expect(404);
    app.get(&org_path(&w.org, "/oauth-clients"), &mo.token)
        .await
        .expect(403);
    app.get(&org_path(&w.org, "/oauth-clients"), &outsider.token)
        .await
        .expect(404);
    // Keys need org:admin; a bot has no such right.
    let reader = crate::keys::make_key(
        &app,
        &w.owner,
        json!({"name": "r", "org_id": w.org, "scopes": ["org:read"]}),
    )
    .await
    .1;
    app.get(&org_path(&w.org, "/oauth-clients"), &reader)
        .await
        .expect_error(403, "insufficient_scope");
    let listed = crate::keys::make_key(
        &app,
        &w.owner,
        json!({"name": "l", "org_id": w.org, "scopes": ["org:admin"],
               "conversation_ids": [app.group(&w.org, &w.owner, &[], json!("private")).await]}),
    )
    .await
    .1;
    // AZ-5a: a key limited to conversations never manages the org's clients.
    register(&app, &w.owner.with_token(&listed), &w.org, true)
        .await
        .expect_error(403, "insufficient_scope");
    // Bad redirect URIs are named.
    let body = json!({"name": "x", "redirect_uris": ["https://ok.example/cb", "http://evil.example/cb"], "public": true});
    let res = app
        .post(&org_path(&w.org, "/oauth-clients"), &w.owner.token, body)
        .await
        .expect(422);
    assert_eq!(res.field(), Some("/redirect_uris/1"));
    let body = json!({"name": "x", "redirect_uris": [], "public": true});
    app.post(&org_path(&w.org, "/oauth-clients"), &w.owner.token, body)
        .await
        .expect(422);
    let list = app
        .items(&org_path(&w.org, "/oauth-clients"), &w.owner.token)
        .await;
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|c| c.get("client_secret").is_none()));
}

async fn confidential_clients_authenticate_with_their_secret(app: TestApp) {
    let w = world(&app).await;
    let created = register(&app, &w.owner, &w.org, false).await.expect(201);
    let (id, secret) = (created.string("client_id"), created.string("client_secret"));
    assert!(secret.starts_with("cnv_ocs_"));
    let list = app
        .items(&org_path(&w.org, "/oauth-clients"), &w.owner.token)
        .await;
    let shown = list.iter().find(|c| c["client_id"] == id.as_str()).unwrap();
    assert!(shown.get("client_secret").is_none(), "shown once");
    assert!(!shown.to_string().contains(&secret));
    assert!(shown["secret_hint"]
        .as_str()
        .unwrap()
        .starts_with("cnv_ocs_****"));

    let resource = app.resource();
    let form = |code: &str| {
        vec![
            ("grant_type".to_owned(), "authorization_code".to_owned()),
            ("code".to_owned(), code.to_owned()),
            ("code_verifier".to_owned(), VERIFIER.to_owned()),
            ("redirect_uri".to_owned(), REDIRECT.to_owned()),
            ("resource".to_owned(), resource.clone()),
        ]
    };
    let post = |form: Vec<(String, String)>, basic: Option<(&str, &str)>| {
        let mut rb = app.client.post(app.url("/oauth/token")).form(&form);
        if let Some((u, p)) = basic {
            let raw = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            rb = rb.header("authorization", format!("Basic {raw}"));
        }
        app.send(rb)
    };
    // No secret, a wrong one: 401 invalid_client (and the code is not spent).
    let code = code_for(&app, &w, &id, &w.org).await;
    let mut no_secret = form(&code);
    no_secret.push(("client_id".into(), id.clone()));
    oauth_error(&post(no_secret.clone(), None).await, 401, "invalid_client");
    let wrong = format!("{}x", &secret[..secret.len() - 1]);
    oauth_error(
        &post(form(&code), Some((id.as_str(), wrong.as_str()))).await,
        401,
        "invalid_client",
    );
    // client_secret_basic.
    post(form(&code), Some((id.as_str(), secret.as_str())))
        .await
        .expect(200);
    // client_secret_post.
    let code = code_for(&app, &w, &id, &w.org).await;
    let mut with_post = form(&code);
    with_post.push(("client_id".into(), id.clone()));
    with_post.push(("client_secret".into(), secret.clone()));
    post(with_post, None).await.expect(200);
    // A public client sending a secret is refused.
    let code = code_for(&app, &w, &w.client_id, &w.org).await;
    oauth_error(
        &post(form(&code), Some((w.client_id.as_str(), secret.as_str()))).await,
        401,
        "invalid_client",
    );
}

async fn deleting_a_client_ends_its_grants(app: TestApp) {
    let w = world(&app).await;
    let code = code_for(&app, &w, &w.client_id, &w.org).await;
    let (access, refresh_token) = tokens(&redeem(&app, &w.client_id, &code).await.expect(200));
    let eve = app.user("eve").await;
    app.delete(
        &org_path(&w.org, &format!("/oauth-clients/{}", w.client_id)),
        &eve.token,
    )
    .await
    .expect(404);
    app.delete(
        &org_path(&w.org, &format!("/oauth-clients/{}", w.client_id)),
        &w.owner.token,
    )
    .await
    .expect(204);
    assert!(!app.mcp_accepts(&access).await);
    oauth_error(
        &refresh(&app, &w.client_id, &refresh_token).await,
        401,
        "invalid_client",
    );
    assert_eq!(app.authorize_as(&w.client_id, &[]).await.status, 400);
}

async fn revocation_ends_tokens(app: TestApp) {
    let w = world(&app).await;
    let revoke = |token: &str, client: &str| {
        let form = [
            ("token", token.to_owned()),
            ("client_id", client.to_owned()),
        ];
        app.send(app.client.post(app.url("/oauth/revoke")).form(&form))
    };
    let code = code_for(&app, &w, &w.client_id, &w.org).await;
    let (a1, r1) = tokens(&redeem(&app, &w.client_id, &code).await.expect(200));
    // Another client's revocation changes nothing (and answers the same).
    let other = register(&app, &w.owner, &w.org, true)
        .await
        .expect(201)
        .string("client_id");
    revoke(a1.as_str(), other.as_str()).await.expect(200);
    assert!(app.mcp_accepts(&a1).await);
    // Revoking the access token ends it alone.
    revoke(a1.as_str(), w.client_id.as_str()).await.expect(200);
    assert!(!app.mcp_accepts(&a1).await);
    let (a2, r2) = tokens(&refresh(&app, &w.client_id, &r1).await.expect(200));
    assert!(app.mcp_accepts(&a2).await);
    // Revoking the refresh token ends the grant.
    revoke(r2.as_str(), w.client_id.as_str()).await.expect(200);
    assert!(!app.mcp_accepts(&a2).await);
    refresh_refused(&app, &w.client_id, &r2).await;
    // Unknown tokens: 200, nothing to do.
    revoke("cnv_or_nonsense", w.client_id.as_str())
        .await
        .expect(200);
    let res = app
        .send(
            app.client
                .post(app.url("/oauth/revoke"))
                .form(&[("client_id", &w.client_id)]),
        )
        .await;
    oauth_error(&res, 400, "invalid_request");
}

async fn a_metadata_document_on_a_private_address_is_refused(app: TestApp) {
    let (_port, url, fetches) = super::documents::serve_document().await;
    let res = app.authorize_as(&url, &[]).await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert_eq!(res.body["error"], "invalid_client");
    assert!(res.headers.get("location").is_none());
    // Nor through https to a loopback name or address: the SSRF guard refuses them.
    for url in [
        "https://localhost/client.json",
        "https://127.0.0.1/client.json",
        "https://[::1]/c.json",
    ] {
        let res = app.authorize_as(url, &[]).await;
        assert_eq!(res.status, 400, "{url}");
        assert_eq!(
            res.body["error_description"], "the client metadata document could not be used",
            "{url}"
        );
    }
    // The guard refused before connecting: the document server was never asked. (A missing
    // document gets the very same words: anyone may ask, so no answer maps the network.)
    assert!(fetches.lock().unwrap().is_empty());
}
