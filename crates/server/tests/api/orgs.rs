//! AZ-1, AZ-2, AZ-6: orgs, roles, invites, teams, the matrix, and that nothing crosses orgs.

use crate::both_backends;
use crate::cases::Caller;
use crate::fixtures::{Rivals, Team};
use crate::helpers::*;
use serde_json::json;

both_backends!(
    orgs_are_isolated,
    roles_decide_who_manages_members,
    last_owner_is_protected_and_ownership_transfers,
    invites_join_and_expire,
    teams_belong_to_one_org,
    matrix_reflects_policy,
    removing_a_member_removes_their_participations,
    only_owners_relax_2fa_and_change_audit_retention,
    the_audit_retention_floor_can_be_raised,
    an_admins_change_never_lands_on_a_member_made_owner_meanwhile,
);

/// AUTH-4a: once the org requires 2FA only an owner turns it off. DATA-5: only owners change
/// `audit_retention_days`, never below 30 days, and the change is in the server's chain.
async fn only_owners_relax_2fa_and_change_audit_retention(app: TestApp) {
    let Team(owner, [admin], org) = app.team("owner", "Acme", [("admin1", "admin")]).await;
    crate::mfa::enable_2fa(&app, &owner).await;
    crate::mfa::enable_2fa(&app, &admin).await;
    let o = format!("/api/v1/orgs/{org}");
    app.expect_all([
        owner.patch(&o, json!({"require_2fa": true})).is(200),
        // The admin may rename the org, but not lift the requirement.
        admin.patch(&o, json!({"name": "Acme 2"})).is(200),
        admin
            .patch(&o, json!({"require_2fa": false}))
            .err(403, "owner_required"),
    ])
    .await;
    let now = app.get(&o, &owner.token).await.expect(200);
    assert_eq!(now.body["require_2fa"], true);
    // Audit retention: owners only, 30 days at least (null keeps everything).
    app.patch(&o, &admin.token, json!({"audit_retention_days": 365}))
        .await
        .expect_error(403, "owner_required");
    for days in [1, 29] {
        let r = app
            .patch(&o, &owner.token, json!({"audit_retention_days": days}))
            .await
            .expect_error(422, "below_floor");
        assert_eq!(r.field(), Some("/audit_retention_days"));
    }
    app.expect_all([
        owner.patch(&o, json!({"audit_retention_days": 30})).is(200),
        owner
            .patch(&o, json!({"audit_retention_days": null}))
            .is(200),
        // The admin may still send the unchanged value with other settings.
        admin
            .patch(&o, json!({"name": "Acme 3", "audit_retention_days": null}))
            .is(200),
    ])
    .await;
    let rows = app
        .items(
            "/api/v1/admin/audit?event=org.audit_retention_changed",
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter().all(|r| r["org_id"].is_null()),
        "the server chain"
    );
    assert_eq!(rows[0]["detail"]["org_id"], json!(org));
    assert_eq!(rows[1]["detail"]["to"], 30);
    // The owner lifts the requirement.
    app.patch(&o, &owner.token, json!({"require_2fa": false}))
        .await
        .expect(200);
    // DATA-4: the log says what each setting was and became — lifting the requirement reads
    // differently from setting it.
    let rows = app
        .items(
            &format!("{o}/audit?event=org.settings_changed"),
            &owner.token,
        )
        .await;
    let lifted = &rows[0]["detail"]["values"];
    assert_eq!(
        lifted["require_2fa"],
        json!({"from": true, "to": false}),
        "{rows:?}"
    );
    let renamed = rows
        .iter()
        .find(|r| r["detail"]["values"]["name"]["to"] == "Acme 3")
        .expect("the rename's row");
    assert_eq!(renamed["detail"]["values"]["name"]["from"], "Acme 2");
}

/// DATA-5: the server may raise the floor (never lower it).
async fn the_audit_retention_floor_can_be_raised(app: TestApp) {
    let app = spawn_app_with(app.backend, |c| c.retention.audit_retention_floor_days = 90)
        .await
        .expect("the app starts");
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Acme").await;
    let o = format!("/api/v1/orgs/{org}");
    app.expect_all([
        owner
            .patch(&o, json!({"audit_retention_days": 60}))
            .err(422, "below_floor"),
        owner.patch(&o, json!({"audit_retention_days": 90})).is(200),
    ])
    .await;
    let mut config = conclave_server::config::Config::default();
    config.retention.audit_retention_floor_days = 7;
    assert!(
        config.validate().is_err(),
        "a floor below 30 days is refused"
    );
}

async fn orgs_are_isolated(app: TestApp) {
    let Rivals(alice, mallory, org, other) = app.rivals().await;
    let got = app.get(&org_path(&org, ""), &alice.token).await.expect(200);
    assert_eq!(got.body["role"], "owner");
    assert_eq!(got.body["name"], "Acme");
    // Every org route answers 404 to a non-member: existence is not leaked.
    for path in [
        format!("/api/v1/orgs/{org}"),
        format!("/api/v1/orgs/{org}/members"),
        format!("/api/v1/orgs/{org}/teams"),
        format!("/api/v1/orgs/{org}/permissions/matrix"),
    ] {
        app.get(&path, &mallory.token)
            .await
            .expect_error(404, "not_found");
    }
    app.expect_all([
        mallory
            .patch(&org_path(&org, ""), json!({"name": "Pwned"}))
            .err(404, "not_found"),
        mallory.delete(&org_path(&org, "")).err(404, "not_found"),
        mallory
            .post(
                &org_path(&org, "/members"),
                json!({"user_id": mallory.id, "role": "owner"}),
            )
            .err(404, "not_found"),
        mallory
            .post(&org_path(&org, "/invites"), json!({}))
            .err(404, "not_found"),
        mallory
            .post(
                &org_path(&org, "/conversations"),
                json!({"kind": "group", "name": "x"}),
            )
            .err(404, "not_found"),
    ])
    .await;
    // A random id is indistinguishable from another org's id.
    let random = uuid::Uuid::now_v7();
    let a = app
        .get(&org_path(&random.to_string(), ""), &mallory.token)
        .await
        .expect(404);
    let b = app
        .get(&org_path(&org, ""), &mallory.token)
        .await
        .expect(404);
    assert_eq!(a.body["error"]["message"], b.body["error"]["message"]);
    // Lists show only one's own orgs; a user outside both orgs can't see alice's profile.
    let list = app.get("/api/v1/orgs", &mallory.token).await.expect(200);
    let ids = list.ids();
    assert_eq!(ids, vec![other.as_str()]);
    app.get(&format!("/api/v1/users/{}", alice.id), &mallory.token)
        .await
        .expect_error(404, "not_found");
    app.add_member(&org, &alice, &mallory, "member").await;
    let profile = app
        .get(&format!("/api/v1/users/{}", alice.id), &mallory.token)
        .await
        .expect(200);
    assert_eq!(profile.body["username"], "alice");
    assert!(
        profile.body.get("email").is_none(),
        "other people's e-mail is private"
    );
}

async fn roles_decide_who_manages_members(app: TestApp) {
    let owner = app.user("owner").await;
    let admin = app.user("admin1").await;
    let member = app.user("member1").await;
    let viewer = app.user("viewer1").await;
    let newbie = app.user("newbie").await;
    let org = app.org(&owner, "Acme").await;
    app.add_member(&org, &owner, &admin, "admin").await;
    app.add_member(&org, &owner, &member, "member").await;
    app.add_member(&org, &admin, &viewer, "viewer").await;
    let members = format!("/api/v1/orgs/{org}/members");
    // Members and viewers cannot invite; admins cannot grant owner (AZ-7).
    let invites = format!("/api/v1/orgs/{org}/invites");
    let role = |role: &str| json!({ "role": role });
    let add = json!({"user_id": newbie.id, "role": "member"});
    app.expect_all([
        member.post(&invites, role("member")).err(403, "forbidden"),
        viewer.post(&invites, role("member")).err(403, "forbidden"),
        admin.post(&invites, role("owner")).err(403, "forbidden"),
        admin.post(&invites, role("superuser")).is(422),
        // Nobody but a server admin adds an account without its consent, whatever their role.
        owner.post(&members, add.clone()).err(403, "forbidden"),
        admin.post(&members, add.clone()).err(403, "forbidden"),
        member.post(&members, add).err(403, "forbidden"),
    ])
    .await;
    let listed = app.items(&members, &owner.token).await;
    assert_eq!(listed.len(), 4, "nobody was added");
    let direct_path = format!("/api/v1/admin/orgs/{org}/members");
    let direct = |body: serde_json::Value| app.post(&direct_path, ADMIN_TOKEN, body);
    direct(json!({"username": "newbie", "role": "member"}))
        .await
        .expect(201);
    direct(json!({"username": "newbie", "role": "member"}))
        .await
        .expect_error(409, "already_member");
    direct(json!({"username": "ghost-user", "role": "member"}))
        .await
        .expect_error(404, "not_found");
    direct(json!({"role": "member"}))
        .await
        .expect_error(422, "missing_field");
    // Admins cannot touch owners; members cannot change roles.
    app.set_role(&org, &admin, &owner, "member")
        .await
        .expect_error(403, "forbidden");
    app.set_role(&org, &member, &viewer, "admin")
        .await
        .expect_error(403, "forbidden");
    let m = app
        .set_role(&org, &admin, &viewer, "member")
        .await
        .expect(200);
    assert_eq!(m.body["role"], "member");
    // Viewers cannot change org settings; admins can.
    app.update_org(&org, &member, json!({"name": "Nope"}))
        .await
        .expect_error(403, "forbidden");
    let o = app
        .update_org(
            &org,
            &admin,
            json!({"name": "Acme Inc", "message_retention_days": 30, "erasure": "anonymise"}),
        )
        .await
        .expect(200);
    assert_eq!(o.body["name"], "Acme Inc");
    assert_eq!(o.body["message_retention_days"], 30);
    app.update_org(&org, &admin, json!({"message_retention_days": 0}))
        .await
        .expect(422);
    let cleared = app
        .update_org(&org, &admin, json!({"message_retention_days": null}))
        .await
        .expect(200);
    assert!(cleared.body["message_retention_days"].is_null());
    // The owner has no 2FA, so they cannot require it (see `api::mfa::org_enforced_2fa`).
    app.expect_all([
        owner
            .patch(&org_path(&org, ""), json!({"require_2fa": true}))
            .err(409, "mfa_required_for_owner"),
        // Only owners delete.
        admin.delete(&org_path(&org, "")).err(403, "forbidden"),
        // Any member may leave.
        member.delete(&format!("{members}/{}", member.id)).is(204),
        member.get(&org_path(&org, "")).is(404),
        owner.delete(&org_path(&org, "")).is(204),
        owner.get(&org_path(&org, "")).is(404),
    ])
    .await;
}

async fn last_owner_is_protected_and_ownership_transfers(app: TestApp) {
    let Team(owner, [admin], org) = app.team("owner", "Acme", [("admin1", "admin")]).await;
    let members = format!("/api/v1/orgs/{org}/members");
    app.set_role(&org, &owner, &owner, "admin")
        .await
        .expect_error(409, "last_owner");
    app.expect_all([
        owner
            .delete(&format!("{members}/{}", owner.id))
            .err(409, "last_owner"),
        admin
            .post(&org_path(&org, "/transfer"), json!({"user_id": admin.id}))
            .err(403, "forbidden"),
    ])
    .await;
    let stranger = app.user("stranger").await;
    app.expect_all([
        owner
            .post(
                &org_path(&org, "/transfer"),
                json!({"user_id": stranger.id}),
            )
            .err(422, "not_a_member"),
        owner
            .post(&org_path(&org, "/transfer"), json!({"user_id": admin.id}))
            .is(204),
    ])
    .await;
    assert_eq!(
        app.get(&org_path(&org, ""), &admin.token).await.body["role"],
        "owner"
    );
    assert_eq!(
        app.get(&org_path(&org, ""), &owner.token).await.body["role"],
        "admin"
    );
    // Two owners: one may step down.
    app.set_role(&org, &admin, &owner, "owner")
        .await
        .expect(200);
    app.set_role(&org, &owner, &owner, "member")
        .await
        .expect(200);
}

async fn invites_join_and_expire(app: TestApp) {
    let Team(owner, [member], org) = app.team("owner", "Acme", [("member1", "member")]).await;
    let invites = format!("/api/v1/orgs/{org}/invites");
    app.expect_all([
        member.post(&invites, json!({})).err(403, "forbidden"),
        owner.post(&invites, json!({"max_uses": 0})).is(422),
        owner
            .post(&invites, json!({"expires_at": "2001-01-01T00:00:00Z"}))
            .is(422),
        owner
            .post(&invites, json!({"expires_at": "yesterday"}))
            .is(422),
    ])
    .await;
    let inv = app
        .post(
            &invites,
            &owner.token,
            json!({"role": "viewer", "max_uses": 2}),
        )
        .await
        .expect(201);
    let code = inv.string("code");
    assert!(code.starts_with("cnv_inv_"));
    assert_eq!(inv.body["role"], "viewer");
    let joiner = app.user("joiner").await;
    let joined = app.join(&joiner, &code).await.expect(200);
    assert_eq!(joined.body["role"], "viewer");
    app.join(&joiner, &code)
        .await
        .expect_error(409, "already_member");
    app.join(&joiner, "cnv_inv_nonsense")
        .await
        .expect_error(422, "invite_invalid");
    let second = app.user("second").await;
    app.join(&second, &code).await.expect(200);
    let third = app.user("third").await;
    app.join(&third, &code)
        .await
        .expect_error(422, "invite_invalid");
    // Expiry follows the clock.
    let soon = (app.clock_now() + chrono::Duration::hours(1)).to_rfc3339();
    let exp = app
        .post(&invites, &owner.token, json!({"expires_at": soon}))
        .await
        .expect(201)
        .string("code");
    app.clock.advance(chrono::Duration::hours(2));
    app.join(&third, &exp)
        .await
        .expect_error(422, "invite_invalid");
    app.get(&org_path(&org, ""), &third.token).await.expect(404);
}

async fn teams_belong_to_one_org(app: TestApp) {
    let Team(owner, [member], org) = app.team("owner", "Acme", [("member1", "member")]).await;
    let outsider = app.user("outsider").await;
    let other = app.org(&outsider, "Other").await;
    let teams = format!("/api/v1/orgs/{org}/teams");
    app.post(&teams, &member.token, json!({"name": "Eng"}))
        .await
        .expect_error(403, "forbidden");
    let team = app
        .post(&teams, &owner.token, json!({"name": "Eng"}))
        .await
        .expect(201)
        .id();
    app.expect_all([
        owner
            .post(&teams, json!({"name": "Eng"}))
            .err(409, "team_name_taken"),
        owner.post(&teams, json!({"name": ""})).is(422),
    ])
    .await;
    let t = app
        .post(
            &format!("{teams}/{team}/members/{}", member.id),
            &owner.token,
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(t.body["member_ids"][0], member.id.as_str());
    // Not an org member: cannot be added to a team.
    app.expect_all([
        owner
            .post(
                &format!("{teams}/{team}/members/{}", outsider.id),
                json!({}),
            )
            .is(404),
        // The team is not reachable through another org's path.
        outsider
            .post(
                &format!("/api/v1/orgs/{other}/teams/{team}/members/{}", outsider.id),
                json!({}),
            )
            .is(404),
    ])
    .await;
    let list = app.get(&teams, &member.token).await.expect(200);
    assert_eq!(list.items().len(), 1);
    app.delete(
        &format!("{teams}/{team}/members/{}", member.id),
        &owner.token,
    )
    .await
    .expect(204);
    let list = app.get(&teams, &member.token).await.expect(200);
    assert_eq!(
        list.body["items"][0]["member_ids"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

async fn matrix_reflects_policy(app: TestApp) {
    let Team(_, [viewer], org) = app.team("owner", "Acme", [("viewer1", "viewer")]).await;
    let m = app
        .get(&org_path(&org, "/permissions/matrix"), &viewer.token)
        .await
        .expect(200);
    let row = |action: &str| {
        m.body["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["action"] == action)
            .unwrap()
            .clone()
    };
    assert_eq!(row("create_conversation")["viewer"], false);
    assert_eq!(row("create_conversation")["member"], true);
    assert_eq!(row("delete_org")["admin"], false);
    assert_eq!(row("delete_org")["owner"], true);
    assert_eq!(row("manage_members")["admin"], true);
    let members = m.body["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    let v = members
        .iter()
        .find(|x| x["user_id"] == viewer.id.as_str())
        .unwrap();
    assert!(!v["actions"]
        .as_array()
        .unwrap()
        .contains(&json!("create_conversation")));
    // And it is enforced: the viewer's write is refused.
    app.post(
        &org_path(&org, "/conversations"),
        &viewer.token,
        json!({"kind": "group", "name": "x"}),
    )
    .await
    .expect_error(403, "forbidden");
}

async fn removing_a_member_removes_their_participations(app: TestApp) {
    let Team(owner, [member], org) = app.team("owner", "Acme", [("member1", "member")]).await;
    let conv = app.group(&org, &member, &[&owner], json!("private")).await;
    app.says(&conv, &member, "hello").await;
    app.remove_member(&org, &owner, &member.id).await;
    app.get(&conv_path(&conv, "/messages"), &member.token)
        .await
        .expect(404);
    let convs = app
        .get("/api/v1/conversations", &member.token)
        .await
        .expect(200);
    assert_eq!(convs.items().len(), 0);
    // The conversation they owned passed to the remaining participant.
    let parts = app
        .get(&conv_path(&conv, "/participants"), &owner.token)
        .await
        .expect(200);
    let items = parts.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["role"], "owner");
}

impl TestApp {
    pub fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        conclave_core::Clock::now(self.clock.as_ref())
    }
}

/// AZ-2: an admin's demotion or removal is decided on the member's role read before its
/// transaction. Raced against the owner promoting that member to owner, it either lands first
/// (the promotion then follows, or finds nobody to promote) or is refused — an admin never
/// demotes or removes an owner. Before the store re-checked the roles under the org's lock,
/// some rounds ended with the new owner demoted or removed by the admin.
async fn an_admins_change_never_lands_on_a_member_made_owner_meanwhile(app: TestApp) {
    let app = unlimited(app).await;
    let Team(owner, [admin, bob], org) = app
        .team("owner", "Acme", [("admin1", "admin"), ("bob", "member")])
        .await;
    let members = format!("/api/v1/orgs/{org}/members");
    let bob_path = format!("{members}/{}", bob.id);
    let add_path = format!("/api/v1/admin/orgs/{org}/members");
    for round in 0..60 {
        let demotion = round % 2 == 0;
        let promote = app.set_role(&org, &owner, &bob, "owner");
        let (promoted, admins) = if demotion {
            tokio::join!(promote, app.set_role(&org, &admin, &bob, "viewer"))
        } else {
            tokio::join!(promote, app.delete(&bob_path, &admin.token))
        };
        let (promoted, admins) = (promoted.status.as_u16(), admins.status.as_u16());
        let listed = app.items(&members, &owner.token).await;
        let role = listed
            .iter()
            .find(|m| m["user"]["id"] == bob.id.as_str())
            .map(|m| m["role"].clone());
        if demotion {
            // The demotion first and the promotion after, or the demotion refused.
            assert_eq!(
                (promoted, role),
                (200, Some(json!("owner"))),
                "round {round}"
            );
            assert!([200, 403, 409].contains(&admins), "round {round}: {admins}");
        } else if admins == 204 {
            // The removal came first: there was nobody to promote.
            assert_eq!(
                (promoted, role),
                (404, None),
                "round {round}: an owner removed"
            );
            app.post(
                &add_path,
                ADMIN_TOKEN,
                json!({"username": "bob", "role": "member"}),
            )
            .await
            .expect(201);
            continue;
        } else {
            assert_eq!(
                (promoted, role),
                (200, Some(json!("owner"))),
                "round {round}"
            );
            assert!([403, 409].contains(&admins), "round {round}: {admins}");
        }
        app.set_role(&org, &owner, &bob, "member").await.expect(200);
    }
}
