//! Consent and grants: who may approve for which org, what a role caps, denial, and grants
//! listed and revoked by their user and by the org's admins — never another org's.

use super::*;
use crate::both_backends;

both_backends!(with crate::helpers::spawn_app_unlimited;
    consent_is_only_for_the_users_own_orgs,
    a_grant_never_holds_scopes_beyond_the_role,
    denying_sends_the_client_access_denied,
    users_and_org_admins_list_and_revoke_grants,
    another_orgs_admin_neither_sees_nor_revokes_a_grant,
    an_erased_account_leaves_no_grant,
);

async fn consent_is_only_for_the_users_own_orgs(app: TestApp) {
    let w = world(&app).await;
    // Mallory has her own org and the client is registered in Acme.
    let mallory = app.user("mallory").await;
    let other_org = app.org(&mallory, "Other").await;
    let browser = app.browser("mallory").await;
    let id = request_id(&app.authorize_as(&w.client_id, &[]).await);
    // She sees no org to grant: the client belongs to Acme, where she is not a member.
    let view = app
        .consent_api(&browser, Method::GET, &id, None)
        .await
        .expect(200);
    assert_eq!(view.body["orgs"], json!([]));
    // Approving for Acme (not hers): 404; for her own org: the client is Acme's (403).
    app.approve(&browser, &id, &w.org).await.expect(404);
    app.approve(&browser, &id, &other_org)
        .await
        .expect_error(403, "client_org");
    // Approving needs an org at all.
    let res = app
        .consent_api(&browser, Method::POST, &id, Some(json!({"approve": true})))
        .await
        .expect(422);
    assert_eq!(res.field(), Some("/org_id"));
    // Without the CSRF token the browser's decision is refused.
    let no_csrf = Browser {
        cookie: browser.cookie.clone(),
        csrf: String::new(),
    };
    app.approve(&no_csrf, &id, &other_org)
        .await
        .expect_error(403, "csrf_failed");
    // An API key of the owner is no consent either.
    let key = crate::keys::make_key(
        &app,
        &w.owner,
        json!({"name": "k", "org_id": w.org, "scopes": crate::keys::ALL_SCOPES}),
    )
    .await
    .1;
    app.get(&format!("/api/v1/oauth/requests/{id}"), &key)
        .await
        .expect_error(403, "insufficient_scope");
    // The request is still pending for the right user.
    let code = code_for(&app, &w, &w.client_id, &w.org).await;
    redeem(&app, &w.client_id, &code).await.expect(200);
}

async fn a_grant_never_holds_scopes_beyond_the_role(app: TestApp) {
    let w = world(&app).await;
    let vera = app.user("vera").await;
    app.add_member(&w.org, &w.owner, &vera, "viewer").await;
    let vw = w.as_user(&vera, app.browser("vera").await);
    let code = code_for(&app, &vw, &vw.client_id, &vw.org).await;
    let res = redeem(&app, &vw.client_id, &code).await.expect(200);
    assert_eq!(
        res.body["scope"],
        "messages:read conversations:read org:read"
    );
    // A request asking only for what a viewer cannot have is refused at consent.
    let id = request_id(
        &app.authorize_as(&vw.client_id, &[("scope", "org:admin messages:write")])
            .await,
    );
    app.approve(&vw.browser, &id, &vw.org)
        .await
        .expect_error(403, "no_scope");
    // Unknown scopes go back to the client as invalid_scope.
    let res = app
        .authorize_as(&vw.client_id, &[("scope", "messages:delete")])
        .await;
    assert_eq!(
        query_param(&location(&res), "error").as_deref(),
        Some("invalid_scope")
    );
}

async fn denying_sends_the_client_access_denied(app: TestApp) {
    let w = world(&app).await;
    let id = request_id(&app.authorize_as(&w.client_id, &[]).await);
    let res = app
        .consent_api(
            &w.browser,
            Method::POST,
            &id,
            Some(json!({"approve": false})),
        )
        .await
        .expect(200);
    let to = res.string("redirect_to");
    assert!(to.starts_with(REDIRECT));
    assert_eq!(query_param(&to, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&to, "code"), None);
    assert_eq!(query_param(&to, "state").as_deref(), Some("st-1"));
    app.approve(&w.browser, &id, &w.org).await.expect(404);
}

/// A grant of `w`'s owner: its access and refresh token and its id.
async fn granted(app: &TestApp, w: &World) -> (String, String, String) {
    let code = code_for(app, w, &w.client_id, &w.org).await;
    let (access, refresh) = tokens(&redeem(app, &w.client_id, &code).await.expect(200));
    let grants = grants_of(app, &w.owner).await;
    let id = grants.last().expect("a grant")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (access, refresh, id)
}

async fn users_and_org_admins_list_and_revoke_grants(app: TestApp) {
    let w = world(&app).await;
    let (access, refresh_token, id) = granted(&app, &w).await;
    let mine = grants_of(&app, &w.owner).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["client_id"], w.client_id.as_str());
    assert_eq!(mine[0]["client_name"], "Test Agent");
    assert_eq!(mine[0]["org_id"], w.org.as_str());
    assert_eq!(mine[0]["resource"], app.resource().as_str());
    // The user revokes it: its tokens stop at once.
    app.delete(&format!("/api/v1/users/@me/grants/{id}"), &w.owner.token)
        .await
        .expect(204);
    assert!(!app.mcp_accepts(&access).await);
    refresh_refused(&app, &w.client_id, &refresh_token).await;
    app.delete(&format!("/api/v1/users/@me/grants/{id}"), &w.owner.token)
        .await
        .expect(404);

    // A member's grant, listed and revoked by an org admin; the member cannot see the org's.
    let mia = app.user("mia").await;
    app.add_member(&w.org, &w.owner, &mia, "member").await;
    let mw = w.as_user(&mia, app.browser("mia").await);
    let (access, _, id) = granted(&app, &mw).await;
    app.get(&org_path(&mw.org, "/grants"), &mia.token)
        .await
        .expect(403);
    let owner = &w.owner;
    let admin_view = app.items(&org_path(&mw.org, "/grants"), &owner.token).await;
    assert!(admin_view
        .iter()
        .any(|g| g["id"] == id.as_str() && g["user_id"] == mia.id.as_str()));
    // Another user cannot revoke mia's grant as their own.
    app.delete(&format!("/api/v1/users/@me/grants/{id}"), &owner.token)
        .await
        .expect(404);
    app.delete(&org_path(&mw.org, &format!("/grants/{id}")), &owner.token)
        .await
        .expect(204);
    assert!(!app.mcp_accepts(&access).await);
    assert!(grants_of(&app, &mia).await.is_empty());
    let audit = app
        .items(
            &org_path(&mw.org, "/audit?event=oauth_grant.revoked"),
            &owner.token,
        )
        .await;
    assert_eq!(audit.len(), 2, "both revocations are audited: {audit:?}");
    let created = app
        .items(
            &org_path(&mw.org, "/audit?event=oauth_grant.created"),
            &owner.token,
        )
        .await;
    assert_eq!(created.len(), 2);
}

async fn another_orgs_admin_neither_sees_nor_revokes_a_grant(app: TestApp) {
    let w = world(&app).await;
    let (access, _, id) = granted(&app, &w).await;
    let eve = app.user("eve").await;
    let eves_org = app.org(&eve, "Eve Corp").await;
    app.get(&org_path(&w.org, "/grants"), &eve.token)
        .await
        .expect(404);
    app.delete(&org_path(&w.org, &format!("/grants/{id}")), &eve.token)
        .await
        .expect(404);
    // Through her own org the grant is not hers to reach either.
    assert!(app
        .items(&org_path(&eves_org, "/grants"), &eve.token)
        .await
        .is_empty());
    app.delete(&org_path(&eves_org, &format!("/grants/{id}")), &eve.token)
        .await
        .expect(404);
    app.delete(&format!("/api/v1/users/@me/grants/{id}"), &eve.token)
        .await
        .expect(404);
    assert!(app.mcp_accepts(&access).await, "still granted");
}

/// DATA-6: an erased account's OAuth grants go with it — not listed to the org's admins with
/// her id any more (the id the anonymised messages' audit rows were made by must lead nowhere),
/// and their tokens stop.
async fn an_erased_account_leaves_no_grant(app: TestApp) {
    let w = world(&app).await;
    let mia = app.user("mia").await;
    app.add_member(&w.org, &w.owner, &mia, "member").await;
    let mw = w.as_user(&mia, app.browser("mia").await);
    let (access, refresh_token, _) = granted(&app, &mw).await;
    let listed = app
        .items(&org_path(&w.org, "/grants"), &w.owner.token)
        .await;
    assert_eq!(listed.len(), 1);
    crate::privacy::erase(&app, &mia.token, json!({ "password": PASSWORD }))
        .await
        .expect(204);
    let listed = app
        .items(&org_path(&w.org, "/grants"), &w.owner.token)
        .await;
    assert!(listed.is_empty(), "{listed:?}");
    assert!(!app.mcp_accepts(&access).await);
    refresh_refused(&app, &w.client_id, &refresh_token).await;
}
