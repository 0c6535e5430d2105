//! MSG-1, AZ-3, AZ-4: conversations, visibility, joining, participants.

use crate::both_backends;
use crate::cases::Caller;
use crate::fixtures::Team;
use crate::helpers::*;
use serde_json::{json, Value};

both_backends!(
    direct_conversations_are_unique_per_pair,
    a_direct_conversation_stays_its_pairs,
    visibility_decides_who_sees_and_joins,
    participants_and_roles,
    viewers_cannot_write,
    conversation_lists_paginate,
    rename_archive_delete,
);

async fn direct_conversations_are_unique_per_pair(app: TestApp) {
    let Team(alice, [bob, carol], org) = app
        .team("alice", "Acme", [("bob", "member"), ("carol", "member")])
        .await;
    let path = format!("/api/v1/orgs/{org}/conversations");
    let first = start_direct(&app, &org, &alice, &bob).await.expect(201);
    assert_eq!(first.body["visibility"], "private");
    assert!(first.body["name"].is_null());
    // Either side asking again gets the same conversation, with 200.
    let again = start_direct(&app, &org, &bob, &alice).await.expect(200);
    assert_eq!(again.id(), first.id());
    let direct = |more: serde_json::Value| {
        let mut body = json!({"kind": "direct", "participant_ids": [bob.id]});
        body.as_object_mut()
            .unwrap()
            .extend(more.as_object().unwrap().clone());
        alice.post(&path, body)
    };
    let c = first.id();
    app.expect_all([
        direct(json!({"participant_ids": [bob.id, carol.id]})).err(422, "invalid_length"),
        direct(json!({"name": "x"})).err(422, "not_allowed"),
        direct(json!({"visibility": "org"})).err(422, "not_allowed"),
        // Nobody can be added to a direct conversation.
        alice
            .post(
                &conv_path(&c, "/participants"),
                json!({"user_id": carol.id}),
            )
            .err(403, "forbidden"),
        // Carol cannot see it at all.
        carol.get(&conv_path(&c, "")).err(404, "not_found"),
    ])
    .await;
    // Participants must be org members.
    let stranger = app.user("stranger").await;
    let bad = app
        .post(
            &path,
            &alice.token,
            json!({"kind": "group", "name": "g", "participant_ids": [stranger.id]}),
        )
        .await;
    assert_eq!(
        bad.expect_error(422, "not_a_member").field(),
        Some("/participant_ids/0")
    );
    // The entry named is the request's own (the caller listed first, then the stranger).
    let bad = app
        .post(
            &path,
            &alice.token,
            json!({"kind": "group", "name": "g", "participant_ids": [alice.id, bob.id, stranger.id]}),
        )
        .await;
    assert_eq!(
        bad.expect_error(422, "not_a_member").field(),
        Some("/participant_ids/2")
    );
}

/// MSG-1, AZ-3: a direct conversation has its two and no moderator among them: its starter
/// (its owner) neither takes the other out nor deletes their messages (an org admin still
/// moderates). Asked for again by either of the pair, it is handed back only with both in it:
/// who left it, or was removed from the org and came back, is taken back first.
async fn a_direct_conversation_stays_its_pairs(app: TestApp) {
    let Team(alice, [bob, dave], org) = app
        .team("alice", "Acme", [("bob", "member"), ("dave", "member")])
        .await;
    let c = start_direct(&app, &org, &bob, &dave).await.expect(201).id();
    let his = app.says(&c, &dave, "between us").await.id();
    app.expect_all([
        bob.delete(&conv_path(&c, &format!("/participants/{}", dave.id)))
            .err(403, "forbidden"),
        bob.delete(&format!("/api/v1/messages/{his}"))
            .err(403, "forbidden"),
    ])
    .await;
    assert_eq!(app.message_count(&c, &dave).await, 1, "nothing was deleted");
    let permissions = app.get(&conv_path(&c, ""), &bob.token).await.expect(200);
    let listed = permissions.body["permissions"].as_array().unwrap();
    assert!(
        !listed
            .iter()
            .any(|p| p == "remove_participants" || p == "delete_any_message"),
        "{listed:?}"
    );
    let in_it = |who: &User| {
        let (app, c, token) = (&app, c.clone(), bob.token.clone());
        let id = who.id.clone();
        async move {
            app.items(&conv_path(&c, "/participants"), &token)
                .await
                .iter()
                .any(|p| p["user"]["id"] == id.as_str())
        }
    };
    // Dave leaves; asking for the pair's conversation again brings him back to it.
    app.post(&conv_path(&c, "/leave"), &dave.token, json!({}))
        .await
        .expect(204);
    app.expect_all([dave.get(&conv_path(&c, "")).err(404, "not_found")])
        .await;
    assert_eq!(
        start_direct(&app, &org, &dave, &bob).await.expect(200).id(),
        c
    );
    assert!(in_it(&dave).await);
    assert_eq!(app.message_count(&c, &dave).await, 1);
    // So does Bob asking for it.
    app.post(&conv_path(&c, "/leave"), &dave.token, json!({}))
        .await
        .expect(204);
    assert_eq!(
        start_direct(&app, &org, &bob, &dave).await.expect(200).id(),
        c
    );
    assert!(in_it(&dave).await);
    // Removed from the org, Dave cannot have it; back in the org, he has it again.
    app.remove_member(&org, &alice, &dave.id).await;
    start_direct(&app, &org, &dave, &bob).await.expect(404);
    start_direct(&app, &org, &bob, &dave).await.expect(422);
    assert!(!in_it(&dave).await);
    app.add_member(&org, &alice, &dave, "member").await;
    assert_eq!(
        start_direct(&app, &org, &dave, &bob).await.expect(200).id(),
        c
    );
    assert!(in_it(&dave).await);
    app.says(&c, &dave, "back").await;
    // The org's owner, not in it, still moderates.
    app.delete(&format!("/api/v1/messages/{his}"), &alice.token)
        .await
        .expect(204);
}

/// `by` asks for the direct conversation with `with` in `org`.
async fn start_direct(app: &TestApp, org: &str, by: &User, with: &User) -> Res {
    let body = json!({"kind": "direct", "participant_ids": [with.id]});
    app.post(
        &format!("/api/v1/orgs/{org}/conversations"),
        &by.token,
        body,
    )
    .await
}

async fn visibility_decides_who_sees_and_joins(app: TestApp) {
    let roles = [("engineer", "member"), ("salesperson", "member")];
    let Team(owner, [eng, sales], org) = app.team("owner", "Acme", roles).await;
    let outsider = app.user("outsider").await;
    app.org(&outsider, "Elsewhere").await;
    let team = app.create_team(&org, &owner, "Eng").await;
    app.add_to_team(&org, &owner, &team, &eng).await;
    let private = app.group(&org, &owner, &[], json!("private")).await;
    let everyone = app.group(&org, &owner, &[], json!("org")).await;
    let team_only = app.group(&org, &owner, &[], json!({"teams": [team]})).await;
    let mut expect_eng = vec![everyone.clone(), team_only.clone()];
    expect_eng.sort();
    assert_eq!(available(&app, &eng).await, expect_eng);
    assert_eq!(available(&app, &sales).await, vec![everyone.clone()]);
    assert!(available(&app, &outsider).await.is_empty());
    let everyone_messages = conv_path(&everyone, "/messages");
    let join = |c: &str| conv_path(c, "/join");
    let leave = |c: &str| conv_path(c, "/leave");
    app.expect_all([
        // Non-participants: 403 on what they may see, 404 on what they may not.
        sales.get(&everyone_messages).err(403, "forbidden"),
        sales
            .get(&conv_path(&everyone, "/participants"))
            .err(403, "forbidden"),
        sales
            .post(&everyone_messages, json!({"content": "hi"}))
            .err(403, "forbidden"),
        sales
            .get(&conv_path(&team_only, "/messages"))
            .err(404, "not_found"),
        eng.get(&conv_path(&private, "/messages"))
            .err(404, "not_found"),
        outsider
            .get(&conv_path(&everyone, ""))
            .err(404, "not_found"),
        // Joining requires visibility.
        eng.post_empty(&join(&private)).err(404, "not_found"),
        sales.post_empty(&join(&team_only)).err(404, "not_found"),
        outsider.post_empty(&join(&everyone)).err(404, "not_found"),
        eng.post_empty(&join(&team_only)).is(200),
        eng.post_empty(&join(&team_only))
            .err(409, "already_participant"),
        sales.post_empty(&join(&everyone)).is(200),
        sales
            .post(&everyone_messages, json!({"content": "now I can"}))
            .is(201),
    ])
    .await;
    assert_eq!(available(&app, &sales).await, Vec::<String>::new());
    app.expect_all([
        // Leaving works; the last owner cannot leave while others remain.
        sales.post_empty(&leave(&everyone)).is(204),
        sales.get(&everyone_messages).is(403),
        owner.post_empty(&leave(&team_only)).err(409, "last_owner"),
        outsider.post_empty(&leave(&private)).err(404, "not_found"),
    ])
    .await;
}

async fn participants_and_roles(app: TestApp) {
    let roles = [
        ("moderator", "member"),
        ("member1", "member"),
        ("extra", "member"),
    ];
    let Team(owner, [moder, member, extra], org) = app.team("owner", "Acme", roles).await;
    let conv_id = app.group(&org, &owner, &[&member], json!("private")).await;
    let parts = conv_path(&conv_id, "/participants");
    let add = |u: &User, role: &str| json!({"user_id": u.id, "role": role});
    let one = |u: &User| format!("{parts}/{}", u.id);
    app.expect_all([
        owner.post(&parts, add(&moder, "moderator")).is(201),
        owner
            .post(&parts, json!({"user_id": moder.id}))
            .err(409, "already_participant"),
        owner.post(&parts, add(&extra, "boss")).is(422),
        // Plain members cannot add; moderators can, but cannot grant owner or remove the owner.
        member
            .post(&parts, json!({"user_id": extra.id}))
            .err(403, "forbidden"),
        moder
            .post(&parts, add(&extra, "owner"))
            .err(403, "forbidden"),
        moder.post(&parts, json!({"user_id": extra.id})).is(201),
        moder.delete(&one(&owner)).err(403, "forbidden"),
        member.delete(&one(&extra)).err(403, "forbidden"),
        moder.delete(&one(&extra)).is(204),
        moder.delete(&one(&extra)).err(404, "not_found"),
    ])
    .await;
    assert_eq!(app.items(&parts, &member.token).await.len(), 3);
    // Another org's user cannot be added.
    let outsider = app.user("outsider").await;
    app.expect_all([
        owner
            .post(&parts, json!({"user_id": outsider.id}))
            .err(422, "not_a_member"),
        outsider.get(&parts).err(404, "not_found"),
        outsider.delete(&one(&member)).err(404, "not_found"),
    ])
    .await;
}

async fn viewers_cannot_write(app: TestApp) {
    let Team(owner, [viewer], org) = app.team("owner", "Acme", [("viewer1", "viewer")]).await;
    let c = app.group(&org, &owner, &[&viewer], json!("org")).await;
    app.says(&c, &owner, "read this").await;
    assert_eq!(app.message_count(&c, &viewer).await, 1);
    app.send_message(&c, &viewer, "can I write?")
        .await
        .expect_error(403, "forbidden");
    assert_eq!(app.message_count(&c, &owner).await, 1);
    let group = json!({"kind": "group", "name": "mine"});
    app.expect_all([
        viewer
            .post(&org_path(&org, "/conversations"), group)
            .err(403, "forbidden"),
        viewer
            .patch(&conv_path(&c, ""), json!({"name": "renamed"}))
            .err(403, "forbidden"),
    ])
    .await;
}

async fn conversation_lists_paginate(app: TestApp) {
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Acme").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.group(&org, &owner, &[], json!("private")).await);
    }
    let first = "/api/v1/conversations?limit=2";
    let p1 = app.get(first, &owner.token).await.expect(200);
    let got = p1.ids();
    assert_eq!(got, vec![ids[4].as_str(), ids[3].as_str()], "newest first");
    let next = p1.string("next");
    let p2 = app.next_page(first, &p1, &owner.token).await;
    let got = p2.ids();
    assert_eq!(got, vec![ids[2].as_str(), ids[1].as_str()]);
    let p3 = app.next_page(first, &p2, &owner.token).await;
    assert_eq!(p3.items().len(), 1);
    assert!(p3.body["next"].is_null());
    let list = |query: &str| format!("/api/v1/conversations?{query}");
    let both = format!("before={next}&after={next}");
    app.expect_all([
        owner.get(&list("limit=0")).err(422, "out_of_range"),
        owner.get(&list("limit=101")).is(422),
        owner.get(&list("limit=ten")).err(400, "invalid_query"),
        owner.get(&list("before=%%%")).is(400),
        owner.get(&list(&both)).err(422, "conflicting_parameters"),
    ])
    .await;
}

async fn rename_archive_delete(app: TestApp) {
    let Team(owner, [member, org_admin], org) = app
        .team(
            "owner",
            "Acme",
            [("member1", "member"), ("orgadmin", "admin")],
        )
        .await;
    let c = app.group(&org, &owner, &[&member], json!("private")).await;
    let (path, messages) = (conv_path(&c, ""), conv_path(&c, "/messages"));
    let unknown_team = json!({"visibility": {"teams": [uuid::Uuid::now_v7()]}});
    let answers = app
        .expect_all([
            member
                .patch(&path, json!({"name": "mine now"}))
                .err(403, "forbidden"),
            owner.patch(&path, json!({"name": "Renamed"})).is(200),
            owner.patch(&path, json!({"name": "x".repeat(101)})).is(422),
            owner.patch(&path, unknown_team).err(422, "unknown_team"),
            owner.patch(&path, json!({"archived": true})).is(200),
            member
                .post(&messages, json!({"content": "archived?"}))
                .err(403, "forbidden"),
            owner.patch(&path, json!({"archived": false})).is(200),
            member.delete(&path).err(403, "forbidden"),
            // An org admin administers conversations they are not in: they may delete but not
            // read.
            org_admin.get(&messages).err(403, "forbidden"),
            org_admin.delete(&path).is(204),
            owner.get(&path).err(404, "not_found"),
            member.get(&messages).err(404, "not_found"),
        ])
        .await;
    assert_eq!(answers[1].body["name"], "Renamed");
    assert_eq!(answers[4].body["archived"], true);
    // DATA-4: each change is in the org's log with what it was and became.
    let rows = app
        .items(
            &org_path(&org, "/audit?event=conversation.updated"),
            &owner.token,
        )
        .await;
    let values: Vec<&Value> = rows.iter().map(|r| &r["detail"]["values"]).collect();
    assert!(
        values.iter().any(|v| v["name"]["to"] == "Renamed"),
        "{values:?}"
    );
    assert!(
        values.contains(&&json!({"archived": {"from": true, "to": false}})),
        "{values:?}"
    );
}

async fn available(app: &TestApp, u: &User) -> Vec<String> {
    let res = app
        .get("/api/v1/conversations/available", &u.token)
        .await
        .expect(200);
    let mut ids = res.ids();
    ids.sort();
    ids
}
