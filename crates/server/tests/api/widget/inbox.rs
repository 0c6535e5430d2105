//! The support inbox and status changes: the key's team and org admins only — not a member of
//! another org, a member outside the team, a viewer, a bot, an API key outside its scopes or
//! limited to conversations — and server admins' list of every widget conversation.

use super::*;

crate::both_backends!(
    with crate::widget::widgeted;
    only_the_team_and_admins_work_the_inbox,
    server_admins_list_widget_conversations,
    the_inbox_is_live_for_those_who_work_it_only,
    a_member_the_orgs_2fa_rule_shuts_out_hears_nothing_of_its_inbox,
    one_visitors_parallel_first_sends_make_one_conversation,
);

/// Who must not work the inbox of `s`: `(member, viewer, outsider, other)` — a member of the
/// org outside the team, a viewer of the org in the team, and the owner of another org `other`.
async fn refused(app: &TestApp, s: &Site) -> (User, User, User, String) {
    let member = app.user("acme-member").await;
    app.add_member(&s.org, &s.owner, &member, "member").await;
    let viewer = app.user("acme-viewer").await;
    app.add_member(&s.org, &s.owner, &viewer, "viewer").await;
    app.add_to_team(&s.org, &s.owner, &s.team, &viewer).await;
    let outsider = app.user("outsider").await;
    let other = app.org(&outsider, "other").await;
    (member, viewer, outsider, other)
}

async fn only_the_team_and_admins_work_the_inbox(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", false).await;
    let v = app
        .visit(
            &s.key,
            json!({"profile": {"name": "Vera", "email": "vera@example.com"}}),
        )
        .await;
    app.visitor_says(&s.key, &v, "help").await;
    let inbox = org_path(&s.org, "/inbox");
    let items = app.items(&inbox, &s.staff.token).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["status"], "open");
    assert_eq!(items[0]["source"], "widget");
    assert_eq!(items[0]["visitor"]["name"], "Vera");
    assert_eq!(items[0]["visitor"]["email"], "vera@example.com");
    assert_eq!(items[0]["name"], "Vera");
    let conv = items[0]["conversation_id"].as_str().unwrap().to_owned();
    assert!(app
        .items(&format!("{inbox}?status=bot"), &s.staff.token)
        .await
        .is_empty());
    // The owner (an admin) sees it without being in the team.
    assert_eq!(app.items(&inbox, &s.owner.token).await.len(), 1);
    let status = |token: &str, to: &str| {
        let token = token.to_owned();
        let body = json!({"status": to});
        let path = format!("/api/v1/conversations/{conv}");
        async move { app.patch(&path, &token, body).await }
    };
    // Refused: a member outside the team, a viewer in the team, a user of another org.
    let (member, viewer, outsider, _) = refused(app, &s).await;
    app.get(&inbox, &member.token)
        .await
        .expect_error(403, "forbidden");
    app.get(&inbox, &viewer.token)
        .await
        .expect_error(403, "forbidden");
    app.get(&inbox, &outsider.token)
        .await
        .expect_error(404, "not_found");
    status(&member.token, "resolved").await.expect(404);
    status(&viewer.token, "resolved")
        .await
        .expect_error(403, "forbidden");
    status(&outsider.token, "resolved").await.expect(404);
    // A bot of the org, even one in the conversation, is refused.
    let bot = crate::bots::make_bot(app, &s.org, &s.owner, json!({"name": "b"})).await;
    let bot_get = app.as_bot(Method::GET, &inbox, &bot.token, None).await;
    assert_eq!(bot_get.status.as_u16(), 403, "{}", bot_get.body);
    // API keys: outside `conversations:read`, or limited to conversations, are refused.
    let wrong_scope = crate::keys::org_key(app, &s.staff, &s.org, &["messages:read"], &[]).await;
    app.get(&inbox, &wrong_scope)
        .await
        .expect_error(403, "insufficient_scope");
    let listed = crate::keys::org_key(
        app,
        &s.staff,
        &s.org,
        &["conversations:read"],
        &[conv.as_str()],
    )
    .await;
    app.get(&inbox, &listed)
        .await
        .expect_error(403, "insufficient_scope");
    let reader = crate::keys::org_key(app, &s.staff, &s.org, &["conversations:read"], &[]).await;
    assert_eq!(app.items(&inbox, &reader).await.len(), 1);
    // `bot` is no status a person sets; an ordinary conversation has none.
    status(&s.staff.token, "bot")
        .await
        .expect_error(422, "invalid_value");
    let plain = app.group(&s.org, &s.owner, &[], json!("private")).await;
    app.patch(
        &format!("/api/v1/conversations/{plain}"),
        &s.owner.token,
        json!({"status": "resolved"}),
    )
    .await
    .expect_error(422, "not_a_widget_conversation");
    // The team resolves it.
    let res = status(&s.staff.token, "resolved").await.expect(200);
    assert_eq!(res.body["id"], conv.as_str());
    let items = app
        .items(&format!("{inbox}?status=resolved"), &s.staff.token)
        .await;
    assert_eq!(items.len(), 1);
    // Another org's inbox shows none of it.
    let other = app.org(&s.staff, "staff-own").await;
    assert!(app
        .items(&org_path(&other, "/inbox"), &s.staff.token)
        .await
        .is_empty());
    // Taken out of the team, the staff member is refused at once; a disabled account too.
    let membership = org_path(&s.org, &format!("/teams/{}/members/{}", s.team, s.staff.id));
    app.delete(&membership, &s.owner.token).await.expect(204);
    app.get(&inbox, &s.staff.token)
        .await
        .expect_error(403, "forbidden");
    status(&s.staff.token, "open").await.expect(404);
    let admin = app.user("acme-admin").await;
    app.add_member(&s.org, &s.owner, &admin, "admin").await;
    assert_eq!(app.items(&inbox, &admin.token).await.len(), 1);
    app.set_disabled(ADMIN_TOKEN, &admin, true).await;
    app.get(&inbox, &admin.token).await.expect(401);
}

async fn server_admins_list_widget_conversations(h: Widgeted) {
    let app = &h.app;
    let admin = app.bootstrap().await;
    let s = site(&h, "acme", "optional", false).await;
    let t = site(&h, "globex", "optional", false).await;
    for key in [&s.key, &t.key] {
        let v = app.visit(key, json!({})).await;
        app.visitor_says(key, &v, "hello").await;
    }
    let all = app
        .items("/api/v1/admin/conversations?source=widget", &admin.token)
        .await;
    assert_eq!(all.len(), 2);
    let by_token = app
        .items("/api/v1/admin/conversations?status=open", ADMIN_TOKEN)
        .await;
    assert_eq!(by_token.len(), 2);
    app.get("/api/v1/admin/conversations?source=email", ADMIN_TOKEN)
        .await
        .expect_error(422, "invalid_value");
    app.get("/api/v1/admin/conversations", &s.owner.token)
        .await
        .expect(403);
}

/// `INBOX_UPDATE` reaches the team's members and the org's admins on the gateway — who are
/// not participants until they take a conversation — and nobody else: not a member outside
/// the team, a viewer in it, another org, the org's bot, or keys without `conversations:read`
/// or limited to conversations.
async fn the_inbox_is_live_for_those_who_work_it_only(h: Widgeted) {
    use crate::ws::Ws;
    let app = &h.app;
    let s = site(&h, "acme", "optional", false).await;
    let (member, viewer, outsider, other) = refused(app, &s).await;
    let bot = crate::bots::make_bot(app, &s.org, &s.owner, json!({"name": "b"})).await;
    // Conversations for the barrier at the end, made before anyone connects.
    let barrier = (app.group(
        &s.org,
        &s.owner,
        &[&member, &viewer, &s.staff],
        json!("private"),
    ))
    .await;
    app.add_participant(&barrier, &s.owner, &bot.user_id).await;
    let evil = app.group(&other, &outsider, &[], json!("private")).await;
    let both = ["messages:read", "conversations:read"];
    let reader = crate::keys::org_key(app, &s.staff, &s.org, &both, &[]).await;
    let blind = crate::keys::org_key(app, &s.staff, &s.org, &["messages:read"], &[]).await;
    let (mut staff, _) = Ws::identify(app, &s.staff.token).await;
    let (mut owner, _) = Ws::identify(app, &s.owner.token).await;
    let (mut reader, _) = Ws::identify(app, &reader).await;
    let mut deaf = Vec::new();
    for token in [&member.token, &viewer.token, &outsider.token, &blind] {
        deaf.push(Ws::identify(app, token).await.0);
    }
    deaf.push(crate::bots::identify_bot(app, &bot.token).await.0);

    let v = app.visit(&s.key, json!({})).await;
    app.visitor_says(&s.key, &v, "help").await;
    let mut conv = String::new();
    for ws in [&mut staff, &mut owner, &mut reader] {
        let d = ws.expect("INBOX_UPDATE").await;
        assert_eq!(d["org_id"], s.org.as_str(), "{d}");
        assert_eq!(d["status"], "open", "{d}");
        conv = d["conversation_id"].as_str().expect("an id").to_owned();
    }
    let path = format!("/api/v1/conversations/{conv}");
    app.patch(&path, &s.staff.token, json!({"status": "resolved"}))
        .await
        .expect(200);
    for ws in [&mut staff, &mut owner, &mut reader] {
        let d = ws.expect("INBOX_UPDATE").await;
        assert_eq!(
            (d["conversation_id"].as_str(), d["status"].as_str()),
            (Some(conv.as_str()), Some("resolved"))
        );
    }
    // The others' next event is a barrier sent to each of them: nothing came before it.
    app.says(&barrier, &s.owner, "barrier").await;
    app.says(&evil, &outsider, "barrier").await;
    for ws in &mut deaf {
        assert_eq!(ws.expect("MESSAGE_CREATE").await["content"], "barrier");
    }
}

/// A member of the inbox's team the org's 2FA rule shuts out (AUTH-4a) hears nothing of the
/// inbox on the gateway — on a socket open before the rule came and on one opened after — as
/// the inbox itself refuses them on REST; a member with 2FA still hears it.
async fn a_member_the_orgs_2fa_rule_shuts_out_hears_nothing_of_its_inbox(h: Widgeted) {
    use crate::ws::Ws;
    let app = &h.app;
    let s = site(&h, "acme", "optional", false).await;
    // The barrier at the end: a conversation of another org the staff member owns.
    let elsewhere = app.org(&s.staff, "elsewhere").await;
    let barrier = app.group(&elsewhere, &s.staff, &[], json!("private")).await;
    let (mut before, _) = Ws::identify(app, &s.staff.token).await;
    crate::mfa::enable_2fa(app, &s.owner).await;
    app.update_org(&s.org, &s.owner, json!({"require_2fa": true}))
        .await
        .expect(200);
    let lost = before.expect("ORG_ACCESS_LOST").await;
    assert_eq!(lost["org_id"], s.org.as_str(), "{lost}");
    let (mut after, _) = Ws::identify(app, &s.staff.token).await;
    let (mut owner, _) = Ws::identify(app, &s.owner.token).await;
    app.get(&org_path(&s.org, "/inbox"), &s.staff.token)
        .await
        .expect_error(403, "mfa_setup_required");
    // An admin without 2FA who joins now, her socket opened before: her hub was never told
    // the org is closed to her, and she hears nothing of its inbox either.
    let newcomer = app.user("newcomer").await;
    let theirs = app.org(&newcomer, "theirs").await;
    let their_barrier = app.group(&theirs, &newcomer, &[], json!("private")).await;
    let (mut joined, _) = Ws::identify(app, &newcomer.token).await;
    app.add_member(&s.org, &s.owner, &newcomer, "admin").await;
    app.get(&org_path(&s.org, "/inbox"), &newcomer.token)
        .await
        .expect_error(403, "mfa_setup_required");

    let v = app.visit(&s.key, json!({})).await;
    app.visitor_says(&s.key, &v, "help").await;
    let heard = owner.expect("INBOX_UPDATE").await;
    assert_eq!(heard["org_id"], s.org.as_str(), "{heard}");
    app.says(&barrier, &s.staff, "barrier").await;
    for ws in [&mut before, &mut after] {
        assert_eq!(ws.expect("MESSAGE_CREATE").await["content"], "barrier");
    }
    app.says(&their_barrier, &newcomer, "barrier").await;
    assert_eq!(joined.expect("MESSAGE_CREATE").await["content"], "barrier");
}

/// WEB-4: a visitor's first sends made at once (a double click, a retrying client) share one
/// conversation — before, each made its own, each in the inbox and each with its own allowance
/// of the key's agent.
async fn one_visitors_parallel_first_sends_make_one_conversation(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", false).await;
    let v = app.visit(&s.key, json!({})).await;
    let sends = (0..20).map(|i| {
        let text = format!("hello {i}");
        let v = &v;
        let key = &s.key;
        async move { app.visitor_sends(key, v, &text).await }
    });
    let answers = futures::future::join_all(sends).await;
    let mut sent = 0;
    for a in &answers {
        match a.status.as_u16() {
            201 => sent += 1,
            429 => {}
            other => panic!("{other}: {}", a.body),
        }
    }
    assert!(sent > 1, "{sent} sent");
    let inbox = app.items(&org_path(&s.org, "/inbox"), &s.owner.token).await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    // Every message sent is in that one conversation, the visitor's history.
    let history = app.visitor_history(&s.key, &v).await;
    let texts = history["messages"].as_array().map_or(0, |m| {
        m.iter()
            .filter(|m| {
                m["content"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("hello "))
            })
            .count()
    });
    assert_eq!(texts, sent, "{history}");
}
