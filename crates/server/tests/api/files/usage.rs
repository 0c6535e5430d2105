//! DATA-1: the server admin's users listing carries each account's `file_usage` (bytes counted
//! against the quota, the quota, files stored); refused uploads count nothing, and nobody but a
//! server admin (or the management token) reads it.

use super::*;
use crate::cases::{Caller, Token};
use crate::helpers::Res;

/// The `file_usage` of `id` in a users listing.
fn usage_of(list: &Res, id: &str) -> Value {
    let users = list.items();
    let user = users.iter().find(|u| u["id"] == id);
    user.unwrap_or_else(|| panic!("{id} is listed: {}", list.body))["file_usage"].clone()
}

pub(crate) async fn admins_see_each_users_file_usage(app: TestApp) {
    let admin = app.bootstrap().await;
    let (acme, conv) = app.acme_private().await;
    let quota = conclave_server::config::Config::default()
        .files
        .user_quota_bytes;
    app.alice_uploads(&acme, &conv, "a.txt", &[b'a'; 1000])
        .await;
    app.alice_uploads(&acme, &conv, "b.txt", &[b'b'; 234]).await;
    // A refused upload holds nothing.
    let page = b"<!DOCTYPE html><html><script>alert(1)</script>";
    app.upload(As::Bearer(&acme.alice.token), &conv, "x.png", page)
        .await
        .expect_error(415, "file_type_not_allowed");
    for token in [admin.token.as_str(), ADMIN_TOKEN] {
        let list = app.get("/api/v1/admin/users?limit=100", token).await;
        let list = list.expect(200);
        assert_eq!(
            usage_of(&list, &acme.alice.id),
            json!({"used_bytes": 1234, "quota_bytes": quota, "files": 2})
        );
        assert_eq!(
            usage_of(&list, &acme.bob.id),
            json!({"used_bytes": 0, "quota_bytes": quota, "files": 0})
        );
        // The user object keeps its fields beside it.
        let alice = list.items().into_iter().find(|u| u["id"] == acme.alice.id);
        let alice = alice.unwrap();
        assert_eq!(alice["username"], "alice");
        assert_eq!(alice["kind"], "user");
    }
    // Paged, every page carries it.
    let first = app.get("/api/v1/admin/users?limit=1", ADMIN_TOKEN).await;
    let first = first.expect(200);
    assert!(first.items()[0]["file_usage"]["quota_bytes"].is_u64());
    let next = app.next_page("/api/v1/admin/users?limit=1", &first, ADMIN_TOKEN);
    assert!(next.await.expect(200).items()[0]["file_usage"].is_object());

    // Nobody else reads it: an org owner, her key with every scope, a bot of her org, her
    // session as a server admin impersonates it, and a disabled server admin.
    let spec = json!({"name": "all", "org_id": acme.org, "scopes": crate::keys::ALL_SCOPES});
    let (_, key) = crate::keys::make_key(&app, &acme.alice, spec).await;
    let bot = crate::bots::make_bot(&app, &acme.org, &acme.alice, json!({"name": "b"})).await;
    let impersonated = app.impersonate(&admin, &acme.alice).await.expect(201);
    let impersonated = impersonated.string("token");
    let users = "/api/v1/admin/users";
    app.expect_all([
        acme.alice.get(users).err(403, "forbidden"),
        Token("alice's key", &key)
            .get(users)
            .err(403, "insufficient_scope"),
        Token("alice, impersonated", &impersonated)
            .get(users)
            .err(403, "forbidden"),
    ])
    .await;
    app.as_bot(Method::GET, users, &bot.token, None)
        .await
        .expect_error(403, "insufficient_scope");
    let second = app.user("second-admin").await;
    app.update_user(ADMIN_TOKEN, &second, json!({"server_admin": true}))
        .await
        .expect(200);
    let second = app.sign_in_again("second-admin", second).await;
    app.get(users, &second.token).await.expect(200);
    app.set_disabled(ADMIN_TOKEN, &second, true).await;
    app.get(users, &second.token).await.expect(401);
}
