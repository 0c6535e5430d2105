//! Worlds the tests start from: signed-in users in an org, and the sign-ins that take more than
//! one request (a cookie session).

use crate::helpers::{Res, TestApp, User, ADMIN_TOKEN, PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};

/// Alice owns the org "Acme" and Bob is a member of it.
pub struct Acme {
    pub alice: User,
    pub bob: User,
    pub org: String,
}

/// Two orgs that must stay apart: Alice's "Acme" and Mallory's "Evil".
pub struct Rivals {
    pub alice: User,
    pub mallory: User,
    pub org: String,
    pub evil: String,
}

/// An org and its people: `owner` created it, each of `members` joined with a role.
pub struct Team<const N: usize> {
    pub owner: User,
    pub members: [User; N],
    pub org: String,
}

impl TestApp {
    /// Alice and Mallory (registered in that order) each create their org.
    pub async fn rivals(&self) -> Rivals {
        let alice = self.user("alice").await;
        let mallory = self.user("mallory").await;
        let org = self.org(&alice, "Acme").await;
        let evil = self.org(&mallory, "Evil").await;
        Rivals {
            alice,
            mallory,
            org,
            evil,
        }
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
        Team {
            owner,
            members,
            org,
        }
    }

    /// Alice (registered first) owns "Acme"; Bob (second) joined it as a member.
    pub async fn acme(&self) -> Acme {
        let alice = self.user("alice").await;
        let bob = self.user("bob").await;
        let org = self.org(&alice, "Acme").await;
        self.add_member(&org, &alice, &bob, "member").await;
        Acme { alice, bob, org }
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

    /// The server-wide audit rows of `event` (and more query, e.g. `&limit=2`), as the
    /// management token reads them (200 expected).
    pub async fn audit_of(&self, event_and_query: &str) -> Res {
        let path = format!("/api/v1/admin/audit?event={event_and_query}");
        self.get(&path, ADMIN_TOKEN).await.expect(200)
    }

    /// Sets `disabled` on `who`, as server admin `by` (200 expected).
    pub async fn set_disabled(&self, by: &str, who: &User, disabled: bool) -> Res {
        let path = format!("/api/v1/admin/users/{}", who.id);
        let body = json!({ "disabled": disabled });
        self.patch(&path, by, body).await.expect(200)
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
        self.get("/api/v1/users/@me", &user.token)
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
