//! MSG-1, AZ-3, AZ-4: conversations, visibility, joining, participants.

use crate::both_backends;
use crate::fixtures::Team;
use crate::helpers::*;
use serde_json::json;

both_backends!(
    direct_conversations_are_unique_per_pair,
    visibility_decides_who_sees_and_joins,
    participants_and_roles,
    viewers_cannot_write,
    conversation_lists_paginate,
    rename_archive_delete,
);

async fn direct_conversations_are_unique_per_pair(app: TestApp) {
    let Team {
        owner: alice,
        members: [bob, carol],
        org,
    } = app
        .team("alice", "Acme", [("bob", "member"), ("carol", "member")])
        .await;
    let path = format!("/api/v1/orgs/{org}/conversations");
    let first = app
        .post(
            &path,
            &alice.token,
            json!({"kind": "direct", "participant_ids": [bob.id]}),
        )
        .await
        .expect(201);
    assert_eq!(first.body["visibility"], "private");
    assert!(first.body["name"].is_null());
    // Either side asking again gets the same conversation, with 200.
    let again = app
        .post(
            &path,
            &bob.token,
            json!({"kind": "direct", "participant_ids": [alice.id]}),
        )
        .await
        .expect(200);
    assert_eq!(again.id(), first.id());
    app.post(
        &path,
        &alice.token,
        json!({"kind": "direct", "participant_ids": [bob.id, carol.id]}),
    )
    .await
    .expect_error(422, "invalid_length");
    app.post(
        &path,
        &alice.token,
        json!({"kind": "direct", "participant_ids": [bob.id], "name": "x"}),
    )
    .await
    .expect_error(422, "not_allowed");
    app.post(
        &path,
        &alice.token,
        json!({"kind": "direct", "participant_ids": [bob.id], "visibility": "org"}),
    )
    .await
    .expect_error(422, "not_allowed");
    // Nobody can be added to a direct conversation.
    let conv = first.id();
    app.post(
        &format!("/api/v1/conversations/{conv}/participants"),
        &alice.token,
        json!({"user_id": carol.id}),
    )
    .await
    .expect_error(403, "forbidden");
    // Carol cannot see it at all.
    app.get(&format!("/api/v1/conversations/{conv}"), &carol.token)
        .await
        .expect_error(404, "not_found");
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
}

async fn visibility_decides_who_sees_and_joins(app: TestApp) {
    let owner = app.user("owner").await;
    let eng = app.user("engineer").await;
    let sales = app.user("salesperson").await;
    let outsider = app.user("outsider").await;
    let org = app.org(&owner, "Acme").await;
    app.org(&outsider, "Elsewhere").await;
    app.add_member(&org, &owner, &eng, "member").await;
    app.add_member(&org, &owner, &sales, "member").await;
    let team = app
        .post(
            &format!("/api/v1/orgs/{org}/teams"),
            &owner.token,
            json!({"name": "Eng"}),
        )
        .await
        .expect(201)
        .id();
    app.post(
        &format!("/api/v1/orgs/{org}/teams/{team}/members/{}", eng.id),
        &owner.token,
        json!({}),
    )
    .await
    .expect(200);
    let private = app.group(&org, &owner, &[], json!("private")).await;
    let everyone = app.group(&org, &owner, &[], json!("org")).await;
    let team_only = app.group(&org, &owner, &[], json!({"teams": [team]})).await;
    let mut expect_eng = vec![everyone.clone(), team_only.clone()];
    expect_eng.sort();
    assert_eq!(available(&app, &eng).await, expect_eng);
    assert_eq!(available(&app, &sales).await, vec![everyone.clone()]);
    assert!(available(&app, &outsider).await.is_empty());
    // Non-participants: 403 on what they may see, 404 on what they may not.
    app.get(
        &format!("/api/v1/conversations/{everyone}/messages"),
        &sales.token,
    )
    .await
    .expect_error(403, "forbidden");
    app.get(
        &format!("/api/v1/conversations/{everyone}/participants"),
        &sales.token,
    )
    .await
    .expect_error(403, "forbidden");
    app.send_message(&everyone, &sales, "hi")
        .await
        .expect_error(403, "forbidden");
    app.get(
        &format!("/api/v1/conversations/{team_only}/messages"),
        &sales.token,
    )
    .await
    .expect_error(404, "not_found");
    app.get(
        &format!("/api/v1/conversations/{private}/messages"),
        &eng.token,
    )
    .await
    .expect_error(404, "not_found");
    app.get(
        &format!("/api/v1/conversations/{everyone}"),
        &outsider.token,
    )
    .await
    .expect_error(404, "not_found");
    // Joining requires visibility.
    join(&app, &private, &eng)
        .await
        .expect_error(404, "not_found");
    join(&app, &team_only, &sales)
        .await
        .expect_error(404, "not_found");
    join(&app, &everyone, &outsider)
        .await
        .expect_error(404, "not_found");
    join(&app, &team_only, &eng).await.expect(200);
    join(&app, &team_only, &eng)
        .await
        .expect_error(409, "already_participant");
    join(&app, &everyone, &sales).await.expect(200);
    app.send_message(&everyone, &sales, "now I can")
        .await
        .expect(201);
    assert_eq!(available(&app, &sales).await, Vec::<String>::new());
    // Leaving works; the last owner cannot leave while others remain.
    app.post_empty(
        &format!("/api/v1/conversations/{everyone}/leave"),
        &sales.token,
    )
    .await
    .expect(204);
    app.get(
        &format!("/api/v1/conversations/{everyone}/messages"),
        &sales.token,
    )
    .await
    .expect(403);
    app.post_empty(
        &format!("/api/v1/conversations/{team_only}/leave"),
        &owner.token,
    )
    .await
    .expect_error(409, "last_owner");
    app.post_empty(
        &format!("/api/v1/conversations/{private}/leave"),
        &outsider.token,
    )
    .await
    .expect_error(404, "not_found");
}

async fn participants_and_roles(app: TestApp) {
    let owner = app.user("owner").await;
    let moder = app.user("moderator").await;
    let member = app.user("member1").await;
    let extra = app.user("extra").await;
    let org = app.org(&owner, "Acme").await;
    for u in [&moder, &member, &extra] {
        app.add_member(&org, &owner, u, "member").await;
    }
    let conv = app.group(&org, &owner, &[&member], json!("private")).await;
    let parts = format!("/api/v1/conversations/{conv}/participants");
    app.post(
        &parts,
        &owner.token,
        json!({"user_id": moder.id, "role": "moderator"}),
    )
    .await
    .expect(201);
    app.post(&parts, &owner.token, json!({"user_id": moder.id}))
        .await
        .expect_error(409, "already_participant");
    app.post(
        &parts,
        &owner.token,
        json!({"user_id": extra.id, "role": "boss"}),
    )
    .await
    .expect(422);
    // Plain members cannot add; moderators can, but cannot grant owner or remove the owner.
    app.post(&parts, &member.token, json!({"user_id": extra.id}))
        .await
        .expect_error(403, "forbidden");
    app.post(
        &parts,
        &moder.token,
        json!({"user_id": extra.id, "role": "owner"}),
    )
    .await
    .expect_error(403, "forbidden");
    app.post(&parts, &moder.token, json!({"user_id": extra.id}))
        .await
        .expect(201);
    app.delete(&format!("{parts}/{}", owner.id), &moder.token)
        .await
        .expect_error(403, "forbidden");
    app.delete(&format!("{parts}/{}", extra.id), &member.token)
        .await
        .expect_error(403, "forbidden");
    app.delete(&format!("{parts}/{}", extra.id), &moder.token)
        .await
        .expect(204);
    app.delete(&format!("{parts}/{}", extra.id), &moder.token)
        .await
        .expect_error(404, "not_found");
    let list = app.get(&parts, &member.token).await.expect(200);
    assert_eq!(list.items().len(), 3);
    // Another org's user cannot be added.
    let outsider = app.user("outsider").await;
    app.post(&parts, &owner.token, json!({"user_id": outsider.id}))
        .await
        .expect_error(422, "not_a_member");
    app.get(&parts, &outsider.token)
        .await
        .expect_error(404, "not_found");
    app.delete(&format!("{parts}/{}", member.id), &outsider.token)
        .await
        .expect_error(404, "not_found");
}

async fn viewers_cannot_write(app: TestApp) {
    let Team {
        owner,
        members: [viewer],
        org,
    } = app.team("owner", "Acme", [("viewer1", "viewer")]).await;
    let conv = app.group(&org, &owner, &[&viewer], json!("org")).await;
    app.send_message(&conv, &owner, "read this")
        .await
        .expect(201);
    assert_eq!(app.message_count(&conv, &viewer).await, 1);
    app.send_message(&conv, &viewer, "can I write?")
        .await
        .expect_error(403, "forbidden");
    assert_eq!(app.message_count(&conv, &owner).await, 1);
    app.post(
        &format!("/api/v1/orgs/{org}/conversations"),
        &viewer.token,
        json!({"kind": "group", "name": "mine"}),
    )
    .await
    .expect_error(403, "forbidden");
    app.patch(
        &format!("/api/v1/conversations/{conv}"),
        &viewer.token,
        json!({"name": "renamed"}),
    )
    .await
    .expect_error(403, "forbidden");
}

async fn conversation_lists_paginate(app: TestApp) {
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Acme").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.group(&org, &owner, &[], json!("private")).await);
    }
    let p1 = app
        .get("/api/v1/conversations?limit=2", &owner.token)
        .await
        .expect(200);
    let got = p1.ids();
    assert_eq!(got, vec![ids[4].as_str(), ids[3].as_str()], "newest first");
    let next = p1.string("next");
    let p2 = app
        .get(
            &format!("/api/v1/conversations?limit=2&before={next}"),
            &owner.token,
        )
        .await
        .expect(200);
    let got = p2.ids();
    assert_eq!(got, vec![ids[2].as_str(), ids[1].as_str()]);
    let p3 = app
        .get(
            &format!(
                "/api/v1/conversations?limit=2&before={}",
                p2.body["next"].as_str().unwrap()
            ),
            &owner.token,
        )
        .await
        .expect(200);
    assert_eq!(p3.items().len(), 1);
    assert!(p3.body["next"].is_null());
    app.get("/api/v1/conversations?limit=0", &owner.token)
        .await
        .expect_error(422, "out_of_range");
    app.get("/api/v1/conversations?limit=101", &owner.token)
        .await
        .expect(422);
    app.get("/api/v1/conversations?limit=ten", &owner.token)
        .await
        .expect_error(400, "invalid_query");
    app.get("/api/v1/conversations?before=%%%", &owner.token)
        .await
        .expect(400);
    app.get(
        &format!("/api/v1/conversations?before={next}&after={next}"),
        &owner.token,
    )
    .await
    .expect_error(422, "conflicting_parameters");
}

async fn rename_archive_delete(app: TestApp) {
    let Team {
        owner,
        members: [member, org_admin],
        org,
    } = app
        .team(
            "owner",
            "Acme",
            [("member1", "member"), ("orgadmin", "admin")],
        )
        .await;
    let conv = app.group(&org, &owner, &[&member], json!("private")).await;
    let path = format!("/api/v1/conversations/{conv}");
    app.patch(&path, &member.token, json!({"name": "mine now"}))
        .await
        .expect_error(403, "forbidden");
    let r = app
        .patch(&path, &owner.token, json!({"name": "Renamed"}))
        .await
        .expect(200);
    assert_eq!(r.body["name"], "Renamed");
    app.patch(&path, &owner.token, json!({"name": "x".repeat(101)}))
        .await
        .expect(422);
    app.patch(
        &path,
        &owner.token,
        json!({"visibility": {"teams": [uuid::Uuid::now_v7()]}}),
    )
    .await
    .expect_error(422, "unknown_team");
    let a = app
        .patch(&path, &owner.token, json!({"archived": true}))
        .await
        .expect(200);
    assert_eq!(a.body["archived"], true);
    app.send_message(&conv, &member, "archived?")
        .await
        .expect_error(403, "forbidden");
    app.patch(&path, &owner.token, json!({"archived": false}))
        .await
        .expect(200);
    app.delete(&path, &member.token)
        .await
        .expect_error(403, "forbidden");
    // An org admin administers conversations they are not in: they may delete but not read.
    app.get(&format!("{path}/messages"), &org_admin.token)
        .await
        .expect_error(403, "forbidden");
    app.delete(&path, &org_admin.token).await.expect(204);
    app.get(&path, &owner.token)
        .await
        .expect_error(404, "not_found");
    app.get(&format!("{path}/messages"), &member.token)
        .await
        .expect_error(404, "not_found");
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

async fn join(app: &TestApp, c: &str, u: &User) -> Res {
    app.post_empty(&format!("/api/v1/conversations/{c}/join"), &u.token)
        .await
}
