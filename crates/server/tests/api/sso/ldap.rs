//! AUTH-10 over HTTP, LDAP: `POST /auth/login` against a real OpenLDAP (Debian's `slapd`)
//! that each test starts from a temporary directory on free ports, serving `ldap://` (plain and
//! StartTLS) and `ldaps://` with a certificate signed by a CA made for the test. The directory:
//!
//! - `alice` (groups `chat-admins`, `staff`), `bob` (`staff`), `dave`, `admin`, `localuser`;
//! - `carol`, disabled: `employeeType: disabled`, which the test's `user_filter` leaves out
//!   (as Active Directory's `userAccountControl` bit is left out by the documented AD filter).
//!
//! At the check, an account gone from the directory loses its sessions, API keys and OAuth
//! grants (its `/mcp` tokens), and only those.
//!
//! Without slapd the tests say SKIPPED — except under CI=true, where they fail.

use super::slapd::*;
use crate::both_backends;
use crate::bruteforce::{at_once, count, login_from};
use crate::helpers::*;
use crate::keys::make_key;
use crate::{mcp, oauth};
use conclave_server::config::{Config, Environment, LdapConfig, RuntimeConfig};
use ldap3::Mod;
use serde_json::{json, Value};
use std::collections::HashSet;

both_backends!(
    directory_users_sign_in_over_starttls_and_ldaps,
    refusals_look_alike_and_injection_finds_no_one,
    local_accounts_win_and_disabled_links_stay_out,
    removed_and_disabled_entries_lose_sessions_at_the_check,
    groups_map_to_org_roles_and_follow_changes,
    directory_failures_count_toward_the_back_off,
    every_spelling_the_directory_binds_shares_the_back_off,
    a_missing_user_base_revokes_nothing,
);

async fn directory_users_sign_in_over_starttls_and_ldaps(first: TestApp) {
    let Some(slapd) = Slapd::start().await else {
        return;
    };
    // Plain ldap:// needs StartTLS unless allow_plain, which production refuses.
    let problems = |ldap: LdapConfig, env: Environment| {
        let c = Config {
            ldap: Some(ldap),
            env,
            ..Config::default()
        };
        RuntimeConfig::try_from(c)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let dev = Environment::Development;
    assert!(
        problems(slapd.config("plain", json!({"allow_plain": false})), dev)
            .contains("ldap: a plain ldap:// url needs starttls")
    );
    assert!(
        problems(slapd.config("plain", json!({})), Environment::Production)
            .contains("ldap: production refuses allow_plain")
    );
    assert!(!problems(slapd.config("starttls", json!({})), dev).contains("ldap:"));
    let roles =
        json!({"group_roles": [{"group": "staff", "org": uuid::Uuid::nil(), "role": "owner"}]});
    assert!(problems(slapd.config("starttls", roles), dev).contains("cannot make owners"));
    // Without the test's CA the certificate is not trusted: the directory cannot be asked.
    let untrusted = ldap_app(&first, slapd.config("ldaps", json!({"ca_file": null}))).await;
    login_from(&untrusted, "192.0.2.9", "alice", ALICE_PW)
        .await
        .expect_error(503, "directory_unavailable");
    drop(untrusted);

    for transport in ["starttls", "ldaps", "plain"] {
        let fresh = spawn_app(first.backend).await.unwrap();
        let app = ldap_app(&fresh, slapd.config(transport, json!({}))).await;
        let caps = app.get_anon("/api/v1/capabilities").await.expect(200);
        assert_eq!(caps.body["features"]["sso"], true);
        let res = login_from(&app, "192.0.2.1", "alice", ALICE_PW)
            .await
            .expect(200);
        assert_eq!(res.body["user"]["username"], "alice", "{transport}");
        assert_eq!(res.body["user"]["display_name"], "Alice L.", "{transport}");
        let id = res.body["user"]["id"].as_str().unwrap().to_owned();
        let token = res.body["token"].as_str().unwrap();
        assert_eq!(me(&app, token).await, 200);
        // The same entry is the same account; linked by the entry's entryUUID.
        let (again, _) = sign_in(&app, "ALICE", ALICE_PW).await;
        assert_eq!(again, id, "{transport}");
        let linked = identities(&app, &id).await;
        assert_eq!(linked.len(), 1);
        assert_eq!(linked[0]["kind"], "ldap");
        assert_eq!(linked[0]["provider"], slapd.url(transport));
        let subject = linked[0]["subject"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(subject).is_ok(), "{subject}");
        let logins = app.audit_of("auth.login&limit=100").await.items();
        let by_ldap = logins
            .iter()
            .filter(|e| e["outcome"] == "success" && e["detail"]["method"] == "ldap")
            .count();
        assert_eq!(by_ldap, 2, "{transport}");
    }
}

async fn refusals_look_alike_and_injection_finds_no_one(first: TestApp) {
    let Some(slapd) = Slapd::start().await else {
        return;
    };
    let app = ldap_app(&first, slapd.config("starttls", json!({}))).await;
    let cases: Vec<(&str, &str)> = vec![
        ("alice", "wrong password"),
        ("nobody", ALICE_PW),
        // An empty password would be an unauthenticated bind, which succeeds.
        ("alice", ""),
        // Disabled in the directory: the filter leaves carol out.
        ("carol", "carol's password"),
        // Injection: every name is escaped per RFC 4515, so none matches anyone, nor breaks
        // the filter (a broken filter would be a 503); unescaped, `alic*` would be alice.
        ("*)(uid=*", ALICE_PW),
        ("admin)(|(", "admin's password"),
        ("admin)(|(uid=*", "admin's password"),
        ("*", ALICE_PW),
        ("alic*", ALICE_PW),
        ("*lice", ALICE_PW),
        ("\\", ALICE_PW),
        ("\\2a", ALICE_PW),
        ("ali\0ce", ALICE_PW),
        ("alice\0", ALICE_PW),
        ("alice)", ALICE_PW),
    ];
    for (i, (name, password)) in cases.iter().enumerate() {
        // Each from its own address, so only the refusals answer, not the back-off.
        let ip = format!("198.51.100.{}", i + 1);
        login_from(&app, &ip, name, password).await.check(
            401,
            Some("invalid_credentials"),
            &format!("{name:?}: "),
        );
    }
    // Every refusal is audited as a failed directory sign-in.
    let failed = app.audit_of("auth.login&limit=100").await.items();
    let by_ldap: Vec<&Value> = failed
        .iter()
        .filter(|e| e["outcome"] == "failure" && e["detail"]["method"] == "ldap")
        .collect();
    assert_eq!(by_ldap.len(), cases.len(), "{failed:?}");
    assert!(by_ldap
        .iter()
        .all(|e| e["detail"]["reason"] == "invalid_credentials"));
    // No one signed in, so no account was made.
    let users = app
        .get("/api/v1/admin/users", ADMIN_TOKEN)
        .await
        .expect(200);
    assert!(users.items().is_empty(), "{}", users.body);
    // The right ones do sign in.
    sign_in(&app, "alice", ALICE_PW).await;
    sign_in(&app, "admin", "admin's password").await;
}

async fn local_accounts_win_and_disabled_links_stay_out(first: TestApp) {
    let Some(slapd) = Slapd::start().await else {
        return;
    };
    let local = first.user("localuser").await;
    let app = ldap_app(&first, slapd.config("starttls", json!({}))).await;
    // A local password account's name is checked against its password only.
    login_from(&app, "192.0.2.2", "localuser", "the directory's password")
        .await
        .expect_error(401, "invalid_credentials");
    let (id, _) = sign_in(&app, "localuser", PASSWORD).await;
    assert_eq!(id, local.id);
    assert!(identities(&app, &local.id).await.is_empty());
    let logins = app.audit_of("auth.login&limit=100").await.items();
    assert!(!logins.iter().any(|e| e["detail"]["method"] == "ldap"));
    // A disabled account linked to the directory cannot get in with its directory password.
    let (alice, token) = sign_in(&app, "alice", ALICE_PW).await;
    let alice = User::without_token("alice", &alice);
    app.set_disabled(ADMIN_TOKEN, &alice, true).await;
    assert_eq!(me(&app, &token).await, 401);
    login_from(&app, "192.0.2.3", "alice", ALICE_PW)
        .await
        .expect_error(403, "account_disabled");
    app.set_disabled(ADMIN_TOKEN, &alice, false).await;
    sign_in(&app, "alice", ALICE_PW).await;
}

async fn removed_and_disabled_entries_lose_sessions_at_the_check(first: TestApp) {
    let Some(mut slapd) = Slapd::start().await else {
        return;
    };
    let app = ldap_app(&first, slapd.config("ldaps", json!({}))).await;
    let (alice_id, alice) = sign_in(&app, "alice", ALICE_PW).await;
    let (bob_id, bob) = sign_in(&app, "bob", "bob's password").await;
    let (dave_id, dave) = sign_in(&app, "dave", "dave's password").await;
    let access = Programmatic::make(&app, &alice_id, &alice, &dave_id, &dave).await;
    check(&app).await;
    access.all_work(&app).await;
    for token in [&alice, &bob, &dave] {
        assert_eq!(
            me(&app, token).await,
            200,
            "a check with no change revokes nothing"
        );
    }
    // dave is removed from the directory, bob disabled there.
    let mut admin = slapd.admin().await;
    admin
        .delete(&people_dn("dave"))
        .await
        .unwrap()
        .success()
        .unwrap();
    slapd
        .modify(
            &people_dn("bob"),
            Mod::Add("employeeType", values("disabled")),
        )
        .await;
    // Until the check their sessions stand (the directory is not asked per request)...
    assert_eq!(me(&app, &dave).await, 200);
    check(&app).await;
    // ...after it they are gone with dave's API key and OAuth grant; alice's stay.
    assert_eq!(me(&app, &dave).await, 401);
    assert_eq!(me(&app, &bob).await, 401);
    assert_eq!(me(&app, &alice).await, 200);
    access.daves_are_refused(&app).await;
    login_from(&app, "192.0.2.4", "dave", "dave's password")
        .await
        .expect_error(401, "invalid_credentials");
    login_from(&app, "192.0.2.4", "bob", "bob's password")
        .await
        .expect_error(401, "invalid_credentials");
    let revoked = app
        .audit_of("sso.directory_revoked&limit=100")
        .await
        .items();
    let mut who: Vec<&str> = revoked
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap_or_default())
        .collect();
    who.sort_unstable();
    let mut expected = vec![bob_id.as_str(), dave_id.as_str()];
    expected.sort_unstable();
    assert_eq!(who, expected, "{revoked:?}");
    let counts = |id: &str| {
        let row = revoked.iter().find(|e| e["resource"]["id"] == id).unwrap();
        let d = &row["detail"];
        (
            d["sessions"].clone(),
            d["api_keys"].clone(),
            d["oauth_grants"].clone(),
        )
    };
    // dave: the bearer session, the browser's and the key; bob: his session.
    assert_eq!(counts(&dave_id), (json!(2), json!(1), json!(1)));
    assert_eq!(counts(&bob_id), (json!(1), json!(0), json!(0)));
    let keys = app.audit_of("api_key.revoked&limit=100").await.items();
    let grants = app.audit_of("oauth_grant.revoked&limit=100").await.items();
    for (rows, what) in [(&keys, "key"), (&grants, "grant")] {
        assert_eq!(rows.len(), 1, "dave's {what} only: {rows:?}");
        assert_eq!(rows[0]["detail"]["reason"], "sso.directory_revoked");
        assert_eq!(rows[0]["detail"]["user_id"], dave_id.as_str());
    }
    // Another check finds nothing more to take, and audits nothing.
    check(&app).await;
    let again = app.audit_of("sso.directory_revoked&limit=100").await;
    assert_eq!(again.items().len(), 2);
    // Re-enabled in the directory, bob signs in again.
    slapd
        .modify(
            &people_dn("bob"),
            Mod::Delete("employeeType", HashSet::new()),
        )
        .await;
    let (again, _) = sign_in(&app, "bob", "bob's password").await;
    assert_eq!(again, bob_id);
    admin.unbind().await.unwrap();
    // A directory that cannot be reached decides nothing: no session is revoked, and sign-ins
    // are 503, never let through.
    drop(slapd.child.take());
    check(&app).await;
    assert_eq!(me(&app, &alice).await, 200);
    login_from(&app, "192.0.2.5", "alice", ALICE_PW)
        .await
        .expect_error(503, "directory_unavailable");
}

/// What alice and dave reach without a session: an API key each in alice's org, and dave's
/// OAuth grant there (an access and a refresh token of a public client).
struct Programmatic {
    alice_key: String,
    dave_key: String,
    client_id: String,
    access: String,
    refresh: String,
}

impl Programmatic {
    async fn make(app: &TestApp, alice_id: &str, alice: &str, dave_id: &str, dave: &str) -> Self {
        let user = |name: &str, id: &str, token: &str| User {
            name: name.to_owned(),
            id: id.to_owned(),
            token: token.to_owned(),
        };
        let (alice, dave) = (user("alice", alice_id, alice), user("dave", dave_id, dave));
        let org = app.org(&alice, "Directory Co").await;
        app.add_member(&org, &alice, &dave, "member").await;
        let spec = json!({"name": "ci", "org_id": org, "scopes": ["org:read"]});
        let (_, alice_key) = make_key(app, &alice, spec.clone()).await;
        let (_, dave_key) = make_key(app, &dave, spec).await;
        let client_id = oauth::register(app, &alice, &org, true)
            .await
            .expect(201)
            .string("client_id");
        let res = app
            .send(
                (app.client.post(app.url("/api/v1/auth/login")))
                    .header("x-forwarded-for", "192.0.2.3")
                    .json(
                        &json!({"username": "dave", "password": "dave's password", "cookie": true}),
                    ),
            )
            .await
            .expect(200);
        let browser = oauth::Browser {
            cookie: res.session_cookie(),
            csrf: res.string("csrf_token"),
        };
        let w = oauth::World {
            owner: dave,
            org: org.clone(),
            browser,
            client_id: client_id.clone(),
            redirect: oauth::REDIRECT.to_owned(),
        };
        let code = oauth::code_for(app, &w, &client_id, &org).await;
        let (access, refresh) =
            oauth::tokens(&oauth::redeem(app, &client_id, &code).await.expect(200));
        Programmatic {
            alice_key,
            dave_key,
            client_id,
            access,
            refresh,
        }
    }

    async fn mcp(&self, app: &TestApp) -> Res {
        let version = [("mcp-protocol-version", mcp::REVISION)];
        mcp::mcp_post(
            app,
            Some(&self.access),
            &version,
            mcp::request("tools/list", json!({})),
        )
        .await
    }

    async fn all_work(&self, app: &TestApp) {
        assert_eq!(me(app, &self.alice_key).await, 200);
        assert_eq!(me(app, &self.dave_key).await, 200);
        self.mcp(app).await.expect(200);
    }

    /// dave's key and tokens are refused, alice's key still works.
    async fn daves_are_refused(&self, app: &TestApp) {
        app.get("/api/v1/users/@me", &self.dave_key)
            .await
            .expect_error(401, "invalid_token");
        mcp::refused_401(app, self.mcp(app).await, "invalid_token", true);
        oauth::refresh_refused(app, &self.client_id, &self.refresh).await;
        assert_eq!(
            me(app, &self.alice_key).await,
            200,
            "another user's key stays"
        );
    }
}

async fn members(app: &TestApp, owner: &User, org: &str) -> Vec<(String, String)> {
    app.get(&format!("/api/v1/orgs/{org}/members"), &owner.token)
        .await
        .expect(200)
        .items()
        .iter()
        .map(|m| {
            (
                m["user"]["id"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn role_of(members: &[(String, String)], user: &str) -> Option<String> {
    members
        .iter()
        .find(|(id, _)| id == user)
        .map(|(_, r)| r.clone())
}

async fn groups_map_to_org_roles_and_follow_changes(first: TestApp) {
    let Some(slapd) = Slapd::start().await else {
        return;
    };
    let owner = first.user("owner").await;
    let org = first.org(&owner, "Acme").await;
    let other = first.org(&owner, "Other").await;
    let roles = json!({"group_roles": [
        {"group": group_dn("chat-admins").to_uppercase(), "org": org, "role": "admin"},
        {"group": "staff", "org": org, "role": "member"},
    ]});
    let app = ldap_app(&first, slapd.config("starttls", roles)).await;
    // alice (chat-admins and staff) gets the higher role; bob (staff) is a member.
    let (alice, _) = sign_in(&app, "alice", ALICE_PW).await;
    let (bob, _) = sign_in(&app, "bob", "bob's password").await;
    let now = members(&app, &owner, &org).await;
    assert_eq!(role_of(&now, &alice).as_deref(), Some("admin"));
    assert_eq!(role_of(&now, &bob).as_deref(), Some("member"));
    // Orgs no group maps are not touched.
    let other_members = members(&app, &owner, &other).await;
    assert_eq!(other_members.len(), 1);
    // alice leaves chat-admins: the next check makes her a member.
    slapd
        .modify(
            &group_dn("chat-admins"),
            Mod::Replace("member", values(&people_dn("admin"))),
        )
        .await;
    check(&app).await;
    let now = members(&app, &owner, &org).await;
    assert_eq!(role_of(&now, &alice).as_deref(), Some("member"));
    // bob joins chat-admins: his next sign-in makes him an admin.
    slapd
        .modify(
            &group_dn("chat-admins"),
            Mod::Add("member", values(&people_dn("bob"))),
        )
        .await;
    sign_in(&app, "bob", "bob's password").await;
    let now = members(&app, &owner, &org).await;
    assert_eq!(role_of(&now, &bob).as_deref(), Some("admin"));
    // alice leaves every mapped group: the check removes her from the org.
    slapd
        .modify(
            &group_dn("staff"),
            Mod::Replace("member", values(&people_dn("bob"))),
        )
        .await;
    check(&app).await;
    let now = members(&app, &owner, &org).await;
    assert_eq!(role_of(&now, &alice), None);
    assert_eq!(role_of(&now, &bob).as_deref(), Some("admin"));
    assert_eq!(role_of(&now, &owner.id).as_deref(), Some("owner"));
    let changed = app.audit_of("member.role_changed&limit=100").await.items();
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert!(changed.iter().all(|e| e["detail"]["via"] == "ldap"));
}

async fn directory_failures_count_toward_the_back_off(first: TestApp) {
    let Some(slapd) = Slapd::start().await else {
        return;
    };
    let app = std::sync::Arc::new(ldap_app(&first, slapd.config("starttls", json!({}))).await);
    let ip = "203.0.113.7";
    let answers = at_once(100, |_| {
        let app = app.clone();
        async move { login_from(&app, ip, "alice", "a wrong guess").await }
    })
    .await;
    // Sequential guesses are stopped after five: parallel ones too. Every other answer is the
    // back-off (or a busy hashing pool, which checks nothing).
    let failed = count(&answers, 401);
    let waits = count(&answers, 429);
    assert_eq!(failed + waits + count(&answers, 503), 100);
    assert!(failed <= 5, "{failed} guesses checked, at most 5");
    assert!(waits >= 95 - count(&answers, 503));
    // Even the right password waits now, from that address; alice elsewhere is not stopped.
    login_from(&app, ip, "alice", ALICE_PW)
        .await
        .expect_error(429, "too_many_attempts");
    sign_in(&app, "alice", ALICE_PW).await;
    let failures = app.audit_of("auth.login&limit=100").await.items();
    let audited = failures
        .iter()
        .filter(|e| e["outcome"] == "failure" && e["detail"]["method"] == "ldap")
        .count();
    assert_eq!(audited, failed);
}

async fn every_spelling_the_directory_binds_shares_the_back_off(first: TestApp) {
    let Some(slapd) = Slapd::start().await else {
        return;
    };
    let app = ldap_app(&first, slapd.config("starttls", json!({}))).await;
    // The directory ignores leading, trailing and repeated spaces and folds compatibility
    // characters (RFC 4518): each of these binds as alice, and reaches her one account.
    let spellings = [
        "alice ",
        " alice",
        "alice  ",
        " ALICE ",
        "\u{ff41}lice",
        "alice\u{a0}",
    ];
    let (alice, _) = sign_in(&app, "alice", ALICE_PW).await;
    for (i, name) in spellings.iter().enumerate() {
        let ip = format!("198.51.100.{}", i + 1);
        let res = login_from(&app, &ip, name, ALICE_PW).await;
        let res = res.check(200, None, &format!("{name:?}: "));
        assert_eq!(res.body["user"]["id"], alice.as_str(), "{name:?}");
    }
    // Five wrong passwords for alice from one address: every spelling of her name waits there
    // too, the right password included.
    let ip = "203.0.113.9";
    for _ in 0..5 {
        login_from(&app, ip, "alice", "a wrong guess")
            .await
            .expect_error(401, "invalid_credentials");
    }
    login_from(&app, ip, "alice", ALICE_PW)
        .await
        .expect_error(429, "too_many_attempts");
    for name in spellings {
        login_from(&app, ip, name, ALICE_PW).await.check(
            429,
            Some("too_many_attempts"),
            &format!("{name:?}: "),
        );
    }
    // A name with a control character is refused as a wrong password is, from elsewhere too.
    for name in ["alice\t", "alice\n", "\u{85}alice"] {
        login_from(&app, "198.51.100.50", name, ALICE_PW)
            .await
            .check(401, Some("invalid_credentials"), &format!("{name:?}: "));
    }
}

async fn a_missing_user_base_revokes_nothing(first: TestApp) {
    let Some(slapd) = Slapd::start().await else {
        return;
    };
    let app = ldap_app(&first, slapd.config("starttls", json!({}))).await;
    let (id, token) = sign_in(&app, "alice", ALICE_PW).await;
    let alice = User {
        name: "alice".to_owned(),
        id,
        token,
    };
    let org = app.org(&alice, "Directory Co").await;
    let spec = json!({"name": "ci", "org_id": org, "scopes": ["org:read"]});
    let (_, key) = make_key(&app, &alice, spec).await;
    // The same server with `user_base` naming an OU that is not there (renamed in the
    // directory): it cannot ask about anyone, so it takes no one for gone.
    let missing = json!({ "user_base": format!("ou=staff,{SUFFIX}") });
    let moved = ldap_app(&first, slapd.config("starttls", missing)).await;
    check(&moved).await;
    check(&moved).await;
    assert_eq!(me(&moved, &key).await, 200);
    assert_eq!(me(&moved, &alice.token).await, 200);
    let revoked = moved.audit_of("sso.directory_revoked&limit=100").await;
    assert!(revoked.items().is_empty(), "{}", revoked.body);
    // A sign-in there is the directory being unavailable, not a wrong password.
    login_from(&moved, "192.0.2.9", "alice", ALICE_PW)
        .await
        .expect_error(503, "directory_unavailable");
}
