//! Only participants reach files: another org, a non-participant, a removed participant, a
//! Viewer (downloads, never uploads), a disabled user, API keys without `files:write` or
//! outside their conversation list, and bots outside their conversations.

use super::*;

pub(crate) async fn only_participants_reach_files(app: TestApp) {
    let (t, mallory) = app.acme_and_mallory().await;
    let crate::fixtures::Team(owner, [bob, carol, vera, dan], org) = &t;
    // An org-visible conversation: Carol may see it, but she does not take part.
    let conv = app.group(org, owner, &[bob, vera, dan], json!("org")).await;
    let id = app
        .uploaded(
            As::Bearer(&bob.token),
            &conv,
            "a.txt",
            b"for participants\n",
        )
        .await;

    // Another org's user and a non-participant: as if nothing existed.
    for who in [&mallory, carol] {
        app.upload(As::Bearer(&who.token), &conv, "x.txt", b"x\n")
            .await
            .expect_error(404, "not_found");
        app.file_url(&who.token, &id)
            .await
            .expect_error(404, "not_found");
    }
    // An unknown file looks the same.
    app.file_url(&bob.token, &uuid::Uuid::now_v7().to_string())
        .await
        .expect_error(404, "not_found");
    app.file_url(&bob.token, "not-a-uuid")
        .await
        .expect_error(400, "invalid_id");
    // A Viewer takes part: downloads, but uploads are refused as sending is.
    app.upload(As::Bearer(&vera.token), &conv, "v.txt", b"v\n")
        .await
        .expect_error(403, "forbidden");
    app.file_url(&vera.token, &id).await.expect(200);
    // A removed participant loses both.
    app.file_url(&dan.token, &id).await.expect(200);
    app.delete(
        &format!("/api/v1/conversations/{conv}/participants/{}", dan.id),
        &owner.token,
    )
    .await
    .expect(204);
    app.file_url(&dan.token, &id)
        .await
        .expect_error(404, "not_found");
    app.upload(As::Bearer(&dan.token), &conv, "d.txt", b"d\n")
        .await
        .expect_error(404, "not_found");
    // A disabled user is signed out everywhere.
    app.set_disabled(ADMIN_TOKEN, bob, true).await;
    app.upload(As::Bearer(&bob.token), &conv, "b.txt", b"b\n")
        .await
        .expect(401);
    app.file_url(&bob.token, &id).await.expect(401);
    // Without a credential.
    app.get_anon(&format!("/api/v1/files/{id}/url"))
        .await
        .expect(401);
    // Refusals stored nothing: one blob, from Bob's upload.
    assert_eq!(app.blob_count(), 1);
}

pub(crate) async fn keys_and_bots_need_scope_and_reach(app: TestApp) {
    let acme = app.acme().await;
    let (alice, bob) = (&acme.alice, &acme.bob);
    let conv = app.group(&acme.org, alice, &[bob], json!("private")).await;
    let other = app.group(&acme.org, alice, &[], json!("private")).await;
    let (_, read_only) = crate::keys::make_key(
        &app,
        alice,
        json!({"name": "ro", "org_id": acme.org, "scopes": ["messages:read", "messages:write"]}),
    )
    .await;
    let (_, writer) = crate::keys::make_key(
        &app,
        alice,
        json!({"name": "w", "org_id": acme.org, "scopes": ["files:write", "messages:read"],
               "conversation_ids": [conv]}),
    )
    .await;
    // A key without files:write cannot upload.
    app.upload(As::Bearer(&read_only), &conv, "k.txt", b"k\n")
        .await
        .expect_error(403, "insufficient_scope");
    // A key with it uploads into its listed conversation only.
    let id = app
        .uploaded(As::Bearer(&writer), &conv, "k.txt", b"k\n")
        .await;
    app.upload(As::Bearer(&writer), &other, "k.txt", b"k\n")
        .await
        .expect_error(403, "insufficient_scope");
    app.file_url(&writer, &id).await.expect(200);
    let elsewhere = app
        .uploaded(As::Bearer(&alice.token), &other, "o.txt", b"o\n")
        .await;
    app.file_url(&writer, &elsewhere)
        .await
        .expect_error(404, "not_found");

    // A bot uploads only where it takes part.
    let bot = crate::bots::make_bot(&app, &acme.org, alice, json!({"name": "Filer"})).await;
    app.upload(As::Bot(&bot.token), &conv, "bot.txt", b"bot\n")
        .await
        .expect_error(404, "not_found");
    app.add_participant(&conv, alice, &bot.user_id).await;
    let from_bot = app
        .uploaded(As::Bot(&bot.token), &conv, "bot.txt", b"bot\n")
        .await;
    app.file_url(&bob.token, &from_bot).await.expect(200);
    assert_eq!(app.blob_count(), 3);
}
