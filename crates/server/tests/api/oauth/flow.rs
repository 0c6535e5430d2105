//! The protocol: metadata, code + PKCE, what is refused before and after the redirect URI is
//! trusted, single-use codes (100 parallel redemptions), expiry, refresh rotation and reuse.

use super::*;
use crate::both_backends;

both_backends!(with crate::helpers::spawn_app_unlimited;
    metadata_documents_describe_the_server,
    a_renewed_grant_keeps_only_its_live_tokens,
    the_code_flow_issues_tokens_that_only_mcp_accepts,
    pkce_is_required_and_must_be_s256,
    a_redirect_uri_off_by_one_character_is_never_redirected_to,
    the_resource_is_required_and_checked,
    a_code_works_once_and_its_replay_revokes_the_grant,
    of_a_hundred_parallel_redemptions_exactly_one_succeeds,
    a_hundred_parallel_refreshes_and_consents_succeed_once,
    codes_and_access_tokens_expire,
    refresh_tokens_rotate_and_reuse_revokes_the_family,
    disabled_users_tokens_stop,
);

async fn metadata_documents_describe_the_server(app: TestApp) {
    let prm = app
        .get_anon("/.well-known/oauth-protected-resource")
        .await
        .expect(200);
    assert_eq!(prm.body["resource"], app.resource().as_str());
    assert_eq!(prm.body["authorization_servers"], json!([app.base]));
    assert_eq!(prm.body["bearer_methods_supported"], json!(["header"]));
    let scopes = prm.strings("scopes_supported");
    assert_includes(
        &scopes.iter().map(String::as_str).collect::<Vec<_>>(),
        &[
            "messages:read",
            "messages:write",
            "conversations:read",
            "org:read",
        ],
    );
    // RFC 9728 §3.1: the same document where the resource's path puts it.
    let suffixed = app
        .get_anon("/.well-known/oauth-protected-resource/mcp")
        .await
        .expect(200);
    assert_eq!(suffixed.body, prm.body);

    let asm = app
        .get_anon("/.well-known/oauth-authorization-server")
        .await
        .expect(200);
    let b = &asm.body;
    assert_eq!(b["issuer"], app.base.as_str());
    assert_eq!(
        b["authorization_endpoint"],
        format!("{}/oauth/authorize", app.base)
    );
    assert_eq!(b["token_endpoint"], format!("{}/oauth/token", app.base));
    assert_eq!(
        b["revocation_endpoint"],
        format!("{}/oauth/revoke", app.base)
    );
    assert_eq!(b["response_types_supported"], json!(["code"]));
    assert_eq!(
        b["grant_types_supported"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(b["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        b["token_endpoint_auth_methods_supported"],
        json!(["none", "client_secret_post", "client_secret_basic"])
    );
    assert_eq!(b["client_id_metadata_document_supported"], true);
}

async fn the_code_flow_issues_tokens_that_only_mcp_accepts(app: TestApp) {
    let w = world(&app).await;
    let conv = app.group(&w.org, &w.owner, &[], json!("private")).await;
    // The consent page's view of the request.
    let id = request_id(&app.authorize_as(&w.client_id, &[]).await);
    let view = app
        .consent_api(&w.browser, Method::GET, &id, None)
        .await
        .expect(200);
    assert_eq!(view.body["client_name"], "Test Agent");
    assert_eq!(view.body["redirect_host"], "127.0.0.1");
    assert_eq!(view.body["registered"], true);
    assert_eq!(
        view.body["scopes"],
        json!([
            "messages:read",
            "messages:write",
            "conversations:read",
            "org:read"
        ])
    );
    assert_eq!(view.body["orgs"][0]["id"], w.org.as_str());
    // A bearer session (not the browser's) cannot give consent.
    app.post(
        &format!("/api/v1/oauth/requests/{id}"),
        &w.owner.token,
        json!({"approve": true, "org_id": w.org}),
    )
    .await
    .expect_error(403, "cookie_session_required");
    let code = approved_code(&app, &w, &id, &w.org).await;
    assert!(code.starts_with("cnv_oc_"));
    // Decided once: the request is gone.
    app.consent_api(&w.browser, Method::GET, &id, None)
        .await
        .expect(404);

    let res = redeem(&app, &w.client_id, &code).await.expect(200);
    assert_eq!(res.body["token_type"], "Bearer");
    assert_eq!(res.body["expires_in"], 3600);
    assert_eq!(
        res.body["scope"],
        "messages:read messages:write conversations:read org:read"
    );
    assert_eq!(res.headers["cache-control"], "no-store");
    let (access, refresh) = tokens(&res);
    assert!(access.starts_with("cnv_oa_") && refresh.starts_with("cnv_or_"));
    assert!(app.mcp_accepts(&access).await);
    // Bound to the MCP resource: REST refuses it (401), even on routes its scopes cover.
    for path in [
        "/api/v1/users/@me".to_owned(),
        conv_path(&conv, "/messages"),
    ] {
        app.get(&path, &access)
            .await
            .expect_error(401, "invalid_token");
    }
    // The gateway refuses it too (4004, as any invalid credential).
    let mut ws = crate::ws::Ws::connect(&app).await;
    ws.send(json!({"op": 2, "d": {"token": format!("Bearer {access}"), "client": "tests/1.0.0", "protocol_version": 1}}))
        .await;
    assert_eq!(ws.close_code().await, 4004);
    // Neither the refresh token nor the code is a credential anywhere.
    assert!(!app.mcp_accepts(&refresh).await);
    app.get("/api/v1/users/@me", &refresh).await.expect(401);
    // Session and bot tokens are no MCP credential.
    assert!(!app.mcp_accepts(&w.owner.token).await);
}

async fn pkce_is_required_and_must_be_s256(app: TestApp) {
    let w = world(&app).await;
    for (extra, why) in [
        (
            vec![("code_challenge_method", ""), ("code_challenge", "")],
            "PKCE missing",
        ),
        (vec![("code_challenge_method", "")], "method missing"),
        (vec![("code_challenge_method", "plain")], "plain"),
        (vec![("code_challenge", "")], "challenge missing"),
        (
            vec![("code_challenge", "too-short")],
            "not an S256 challenge",
        ),
    ] {
        let res = app.authorize_as(&w.client_id, &extra).await;
        let to = location(&res);
        assert!(
            to.starts_with(REDIRECT),
            "{why}: back to the verified redirect URI"
        );
        assert_eq!(
            query_param(&to, "error").as_deref(),
            Some("invalid_request"),
            "{why}"
        );
        assert_eq!(query_param(&to, "state").as_deref(), Some("st-1"), "{why}");
    }
    // A wrong verifier (and a missing one) gets no token.
    let code = code_for(&app, &w, &w.client_id, &w.org).await;
    let resource = app.resource();
    let wrong = "x".repeat(43);
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", w.client_id.as_str()),
        ("resource", resource.as_str()),
    ];
    oauth_error(&app.token(&form).await, 400, "invalid_request");
    form.push(("code_verifier", wrong.as_str()));
    oauth_error(&app.token(&form).await, 400, "invalid_grant");
}

async fn a_redirect_uri_off_by_one_character_is_never_redirected_to(app: TestApp) {
    let w = world(&app).await;
    for uri in [
        "http://127.0.0.1:9/callbacK",
        "http://127.0.0.1:9/callback/",
        "http://127.0.0.1:9/callbac",
        "http://127.0.0.1:8/callback",
        "http://127.0.0.1:9/callback?x=1",
    ] {
        let res = app
            .authorize_as(&w.client_id, &[("redirect_uri", uri)])
            .await;
        assert_eq!(res.status, 400, "{uri}: shown, not redirected");
        assert!(res.headers.get("location").is_none(), "{uri}");
        assert_eq!(res.body["error"], "invalid_request");
        // Even with every other parameter wrong, the answer is not a redirect.
        let res = app
            .authorize_as(
                &w.client_id,
                &[("redirect_uri", uri), ("code_challenge_method", "plain")],
            )
            .await;
        assert_eq!(res.status, 400, "{uri}");
    }
    let res = app.authorize_as("not-a-client", &[]).await;
    assert_eq!(
        (res.status.as_u16(), res.body["error"].as_str()),
        (400, Some("invalid_client"))
    );
    let res = app
        .authorize_as(&uuid::Uuid::now_v7().to_string(), &[])
        .await;
    assert_eq!(res.status, 400);
    assert!(res.headers.get("location").is_none());
    // The code is bound to the redirect URI it was issued for.
    let code = code_for(&app, &w, &w.client_id, &w.org).await;
    let resource = app.resource();
    let res = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", VERIFIER),
            ("redirect_uri", "http://127.0.0.1:9/callbacK"),
            ("client_id", &w.client_id),
            ("resource", &resource),
        ])
        .await;
    oauth_error(&res, 400, "invalid_grant");
}

async fn the_resource_is_required_and_checked(app: TestApp) {
    let w = world(&app).await;
    for (resource, why) in [
        ("", "missing"),
        ("http://127.0.0.1:1/mcp", "another server"),
        ("https://evil.example/mcp", "elsewhere"),
    ] {
        let res = app
            .authorize_as(&w.client_id, &[("resource", resource)])
            .await;
        let to = location(&res);
        assert_eq!(
            query_param(&to, "error").as_deref(),
            Some("invalid_target"),
            "{why}"
        );
    }
    let wrong_path = format!("{}/api/v1", app.base);
    let res = app
        .authorize_as(&w.client_id, &[("resource", &wrong_path)])
        .await;
    assert_eq!(
        query_param(&location(&res), "error").as_deref(),
        Some("invalid_target")
    );
    // At the token endpoint a wrong resource is refused too.
    let code = code_for(&app, &w, &w.client_id, &w.org).await;
    let res = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", VERIFIER),
            ("redirect_uri", REDIRECT),
            ("client_id", &w.client_id),
            ("resource", "https://evil.example/mcp"),
        ])
        .await;
    oauth_error(&res, 400, "invalid_target");
}

async fn a_code_works_once_and_its_replay_revokes_the_grant(app: TestApp) {
    let w = world(&app).await;
    let code = code_for(&app, &w, &w.client_id, &w.org).await;
    let (access, refresh_token) = tokens(&redeem(&app, &w.client_id, &code).await.expect(200));
    assert!(app.mcp_accepts(&access).await);
    oauth_error(
        &redeem(&app, &w.client_id, &code).await,
        400,
        "invalid_grant",
    );
    // OAuth 2.1 §4.1.3: what the replayed code issued is revoked.
    assert!(!app.mcp_accepts(&access).await);
    refresh_refused(&app, &w.client_id, &refresh_token).await;
    assert!(grants_of(&app, &w.owner).await.is_empty());
    // A code for another client is refused, and used up.
    let other = register(&app, &w.owner, &w.org, true)
        .await
        .expect(201)
        .string("client_id");
    let code = code_for(&app, &w, &w.client_id, &w.org).await;
    oauth_error(&redeem(&app, &other, &code).await, 400, "invalid_grant");
    oauth_error(
        &redeem(&app, &w.client_id, &code).await,
        400,
        "invalid_grant",
    );
}

async fn of_a_hundred_parallel_redemptions_exactly_one_succeeds(app: TestApp) {
    let w = world(&app).await;
    let code = code_for(&app, &w, &w.client_id, &w.org).await;
    let attempts = (0..100).map(|_| redeem(&app, &w.client_id, &code));
    let answers = futures::future::join_all(attempts).await;
    let won = the_one_success(&answers, "exactly one redemption wins");
    // The replays revoked what the winner got.
    assert!(!app.mcp_accepts(&won.string("access_token")).await);
}

async fn codes_and_access_tokens_expire(app: TestApp) {
    let w = world(&app).await;
    let code = code_for(&app, &w, &w.client_id, &w.org).await;
    app.clock.advance(chrono::Duration::seconds(61));
    oauth_error(
        &redeem(&app, &w.client_id, &code).await,
        400,
        "invalid_grant",
    );

    let w = w.as_user(&w.owner, app.browser("olivia").await);
    let code = code_for(&app, &w, &w.client_id, &w.org).await;
    let (access, refresh_token) = tokens(&redeem(&app, &w.client_id, &code).await.expect(200));
    app.clock.advance(chrono::Duration::seconds(3599));
    assert!(app.mcp_accepts(&access).await);
    app.clock.advance(chrono::Duration::seconds(1));
    assert!(!app.mcp_accepts(&access).await, "an hour old");
    // The refresh token still works and brings a fresh access token.
    let (fresh, _) = tokens(
        &refresh(&app, &w.client_id, &refresh_token)
            .await
            .expect(200),
    );
    assert!(app.mcp_accepts(&fresh).await);
    // A pending consent ends after 10 minutes.
    let id = request_id(&app.authorize_as(&w.client_id, &[]).await);
    app.clock.advance(chrono::Duration::minutes(10));
    let browser = app.browser("olivia").await;
    app.consent_api(&browser, Method::GET, &id, None)
        .await
        .expect(404);
}

/// MCP-2: renewing a grant keeps only the tokens that can still be used: each rotation deletes
/// the grant's expired ones (before, every access and refresh token stayed for good).
async fn a_renewed_grant_keeps_only_its_live_tokens(app: TestApp) {
    let w = world(&app).await;
    let code = code_for(&app, &w, &w.client_id, &w.org).await;
    let (_, mut refresh_token) = tokens(&redeem(&app, &w.client_id, &code).await.expect(200));
    for _ in 0..5 {
        app.clock.advance(chrono::Duration::hours(2));
        let renewed = refresh(&app, &w.client_id, &refresh_token)
            .await
            .expect(200);
        refresh_token = tokens(&renewed).1;
    }
    // Counting the rows as an update touches them, the same on both backends.
    let db = crate::db::Db::of(&app).await;
    let access = db
        .exec("UPDATE oauth_access_tokens SET created_at = created_at")
        .await;
    let refresh_rows = db
        .exec("UPDATE oauth_refresh_tokens SET created_at = created_at")
        .await;
    db.close().await;
    assert_eq!(access, 1, "only the live access token");
    assert_eq!(
        refresh_rows, 6,
        "refresh tokens live 30 days: used ones betray a replay"
    );
}

async fn refresh_tokens_rotate_and_reuse_revokes_the_family(app: TestApp) {
    let w = world(&app).await;
    let code = code_for(&app, &w, &w.client_id, &w.org).await;
    let (a1, r1) = tokens(&redeem(&app, &w.client_id, &code).await.expect(200));
    let (a2, r2) = tokens(&refresh(&app, &w.client_id, &r1).await.expect(200));
    assert_ne!(r1, r2, "rotated");
    assert!(app.mcp_accepts(&a1).await && app.mcp_accepts(&a2).await);
    // Another client cannot use it (and so burns it).
    let other = register(&app, &w.owner, &w.org, true)
        .await
        .expect(201)
        .string("client_id");
    let (a3, r3) = tokens(&refresh(&app, &w.client_id, &r2).await.expect(200));
    refresh_refused(&app, &other, &r3).await;
    // Reusing a rotated refresh token revokes the whole family, access tokens included.
    refresh_refused(&app, &w.client_id, &r1).await;
    for access in [&a1, &a2, &a3] {
        assert!(!app.mcp_accepts(access).await);
    }
    refresh_refused(&app, &w.client_id, &r3).await;
    assert!(grants_of(&app, &w.owner).await.is_empty());
    // The revocation is audited.
    let audit = app
        .items(
            &org_path(&w.org, "/audit?event=oauth_grant.revoked"),
            &w.owner.token,
        )
        .await;
    assert!(
        audit
            .iter()
            .any(|e| e["detail"]["reason"] == "refresh_token_reused"),
        "{audit:?}"
    );
}

async fn disabled_users_tokens_stop(app: TestApp) {
    let admin = app.bootstrap().await;
    let w = world(&app).await;
    let code = code_for(&app, &w, &w.client_id, &w.org).await;
    let (access, refresh_token) = tokens(&redeem(&app, &w.client_id, &code).await.expect(200));
    assert!(app.mcp_accepts(&access).await);
    let path = format!("/api/v1/admin/users/{}", w.owner.id);
    app.patch(&path, &admin.token, json!({"disabled": true}))
        .await
        .expect(200);
    assert!(!app.mcp_accepts(&access).await);
    // Its refresh token is refused too.
    refresh_refused(&app, &w.client_id, &refresh_token).await;
}

async fn a_hundred_parallel_refreshes_and_consents_succeed_once(app: TestApp) {
    let w = world(&app).await;
    // One pending request, approved 100 times at once: one code.
    let id = request_id(&app.authorize_as(&w.client_id, &[]).await);
    let approvals = (0..100).map(|_| app.approve(&w.browser, &id, &w.org));
    let answers = futures::future::join_all(approvals).await;
    let ok: Vec<&Res> = answers.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 1, "one decision");
    assert!(answers.iter().all(|r| r.status == 200 || r.status == 404));
    let code = query_param(&ok[0].string("redirect_to"), "code").unwrap();
    let (_, refresh_token) = tokens(&redeem(&app, &w.client_id, &code).await.expect(200));
    // One refresh token, rotated 100 times at once: one rotation; the rest are reuse, which
    // revokes the family (the winner's new tokens included).
    let rotations = (0..100).map(|_| refresh(&app, &w.client_id, &refresh_token));
    let answers = futures::future::join_all(rotations).await;
    let won = the_one_success(&answers, "one rotation");
    assert!(!app.mcp_accepts(&won.string("access_token")).await);
    refresh_refused(&app, &w.client_id, &won.string("refresh_token")).await;
}
