//! Worlds the tests start from: signed-in users in an org, and the sign-ins that take more than
//! one request (a cookie session).

use crate::helpers::{conv_path, org_path, Res, TestApp, User, ADMIN_TOKEN, PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};

/// Alice owns the org "Acme" and Bob is a member of it.
pub struct Acme {
    pub alice: User,
    pub bob: User,
    pub org: String,
}

/// Two orgs that must stay apart, `Rivals(alice, mallory, acme, evil)`: Alice's "Acme" and
/// Mallory's "Evil".
pub struct Rivals(pub User, pub User, pub String, pub String);

/// An org and its people, `Team(owner, members, org)`: the owner created the org and each
/// member joined it with a role.
pub struct Team<const N: usize>(pub User, pub [User; N], pub String);

/// One org of each erasure policy, `ErasureOrgs(owner, alice, tombstones, anonymous)`: the
/// owner's "Tombstones" (the default policy) and "Anonymous" (set to anonymise), Alice a
/// member of both.
pub struct ErasureOrgs(pub User, pub User, pub String, pub String);

impl TestApp {
    /// Alice and Mallory (registered in that order) each create their org.
    pub async fn rivals(&self) -> Rivals {
        let alice = self.user("alice").await;
        let mallory = self.user("mallory").await;
        let org = self.org(&alice, "Acme").await;
        let evil = self.org(&mallory, "Evil").await;
        Rivals(alice, mallory, org, evil)
    }

    /// Mallory registers and creates her org "Evil": `(mallory, evil)`.
    pub async fn mallory(&self) -> (User, String) {
        let mallory = self.user("mallory").await;
        let evil = self.org(&mallory, "Evil").await;
        (mallory, evil)
    }

    /// Registers `owner` and then each member (in order), `owner` creates the org `name`, and
    /// each member joins it with their role.
    pub async fn team<const N: usize>(
        &self,
        owner: &str,
        name: &str,
        members: [(&str, &str); N],
    ) -> Team<N> {
        let owner = self.user(owner).await;
        let mut users = Vec::with_capacity(N);
        for (username, _) in members {
            users.push(self.user(username).await);
        }
        let org = self.org(&owner, name).await;
        for ((_, role), user) in members.iter().zip(&users) {
            self.add_member(&org, &owner, user, role).await;
        }
        let members = users
            .try_into()
            .unwrap_or_else(|_| unreachable!("N members"));
        Team(owner, members, org)
    }

    /// Alice's org Acme with one of each role that manages or does not: `Team(alice, [ann
    /// (admin), bob (member), vic (viewer), dee (admin)], acme)`.
    pub async fn acme_staff(&self) -> Team<4> {
        let staff = [
            ("ann", "admin"),
            ("bob", "member"),
            ("vic", "viewer"),
            ("dee", "admin"),
        ];
        self.team("alice", "Acme", staff).await
    }

    /// Owner and Alice (registered in that order) and an org of each erasure policy.
    pub async fn erasure_orgs(&self) -> ErasureOrgs {
        let owner = self.user("owner").await;
        let alice = self.user("alice").await;
        let tomb = self.org(&owner, "Tombstones").await;
        let anon = self.org(&owner, "Anonymous").await;
        self.update_org(&anon, &owner, json!({ "erasure": "anonymise" }))
            .await
            .expect(200);
        for org in [&tomb, &anon] {
            self.add_member(org, &owner, &alice, "member").await;
        }
        ErasureOrgs(owner, alice, tomb, anon)
    }

    /// Alice (registered first) owns "Acme"; Bob (second) joined it as a member.
    pub async fn acme(&self) -> Acme {
        let alice = self.user("alice").await;
        let bob = self.user("bob").await;
        let org = self.org(&alice, "Acme").await;
        self.add_member(&org, &alice, &bob, "member").await;
        Acme { alice, bob, org }
    }

    /// Alice (registered first) owns "Acme" and is alone in a private conversation of it:
    /// `(alice, org, conversation)`.
    pub async fn alice_private(&self) -> (User, String, String) {
        let alice = self.user("alice").await;
        let org = self.org(&alice, "Acme").await;
        let conv = self.group(&org, &alice, &[], json!("private")).await;
        (alice, org, conv)
    }

    /// Sends each request (method, path, body) with bearer `token`, in order, and expects every
    /// one refused with `status` and `code`.
    pub async fn refused_all(
        &self,
        token: &str,
        status: u16,
        code: &str,
        requests: impl IntoIterator<Item = (Method, String, Option<Value>)>,
    ) {
        for (method, path, body) in requests {
            let res = self.call(method.clone(), &path, Some(token), body).await;
            assert_eq!(res.status.as_u16(), status, "{method} {path}: {}", res.body);
            res.expect_error(status, code);
        }
    }

    /// `by` removes `user_id` from the org (204 expected).
    pub async fn remove_member(&self, org: &str, by: &User, user_id: &str) {
        let path = format!("/api/v1/orgs/{org}/members/{user_id}");
        self.delete(&path, &by.token).await.expect(204);
    }

    /// `by` changes the settings of `org` (name, retention, 2FA…) to `body`.
    pub async fn update_org(&self, org: &str, by: &User, body: Value) -> Res {
        self.patch(&org_path(org, ""), &by.token, body).await
    }

    /// `by` changes the settings of conversation `conv` (name, archival, visibility) to `body`.
    pub async fn update_conversation(&self, conv: &str, by: &User, body: Value) -> Res {
        self.patch(&conv_path(conv, ""), &by.token, body).await
    }

    /// `by` creates a team named `name` in `org` (201 expected); answers its id.
    pub async fn create_team(&self, org: &str, by: &User, name: &str) -> String {
        let body = json!({ "name": name });
        self.post(&org_path(org, "/teams"), &by.token, body)
            .await
            .expect(201)
            .id()
    }

    /// `by` puts member `who` in `team` of `org` (200 expected).
    pub async fn add_to_team(&self, org: &str, by: &User, team: &str, who: &User) {
        let path = org_path(org, &format!("/teams/{team}/members/{}", who.id));
        self.post(&path, &by.token, json!({})).await.expect(200);
    }

    /// `by` sets the org role of member `who`.
    pub async fn set_role(&self, org: &str, by: &User, who: &User, role: &str) -> Res {
        let path = format!("/api/v1/orgs/{org}/members/{}", who.id);
        self.patch(&path, &by.token, json!({ "role": role })).await
    }

    /// `who` joins an org with an invite `code`.
    pub async fn join(&self, who: &User, code: &str) -> Res {
        let body = json!({ "code": code });
        self.post("/api/v1/orgs/join", &who.token, body).await
    }

    /// `by` (a server admin) starts impersonating `target`.
    pub async fn impersonate(&self, by: &User, target: &User) -> Res {
        let path = format!("/api/v1/admin/users/{}/impersonate", target.id);
        self.post(&path, &by.token, json!({})).await
    }

    /// `by` (a server admin) impersonates `target` (201 expected); the impersonation's token.
    pub async fn impersonation(&self, by: &User, target: &User) -> String {
        self.impersonate(by, target)
            .await
            .expect(201)
            .string("token")
    }

    /// The server-wide audit rows of `event` (and more query, e.g. `&limit=2`), as the
    /// management token reads them (200 expected).
    pub async fn audit_of(&self, event_and_query: &str) -> Res {
        let path = format!("/api/v1/admin/audit?event={event_and_query}");
        self.get(&path, ADMIN_TOKEN).await.expect(200)
    }

    /// `by` (a server admin's or the management token) changes the account of `who`.
    pub async fn update_user(&self, by: &str, who: &User, body: Value) -> Res {
        let path = format!("/api/v1/admin/users/{}", who.id);
        self.patch(&path, by, body).await
    }

    /// Sets `disabled` on `who`, as server admin `by` (200 expected).
    pub async fn set_disabled(&self, by: &str, who: &User, disabled: bool) -> Res {
        let body = json!({ "disabled": disabled });
        self.update_user(by, who, body).await.expect(200)
    }

    /// Signs the session of `token` out (204 expected).
    pub async fn logout(&self, token: &str) {
        self.post_empty("/api/v1/auth/logout", token)
            .await
            .expect(204);
    }

    /// Signs `user` out, and proves the token is then refused.
    pub async fn logout_and_check(&self, user: &User) {
        self.logout(&user.token).await;
        self.assert_signed_out(&user.token).await;
    }

    /// Proves `token` signs nobody in any more (401 `invalid_token`).
    pub async fn assert_signed_out(&self, token: &str) {
        self.get("/api/v1/users/@me", token)
            .await
            .expect_error(401, "invalid_token");
    }

    /// A cookie sign-in of `username` with the test password (200 expected).
    pub async fn cookie_login(&self, username: &str) -> Res {
        self.post_anon(
            "/api/v1/auth/login",
            json!({"username": username, "password": PASSWORD, "cookie": true}),
        )
        .await
        .expect(200)
    }
}
