//! Worlds the tests start from: signed-in users in an org, and the sign-ins that take more than
//! one request (a cookie session).

use crate::helpers::{Res, TestApp, User, PASSWORD};
use serde_json::json;

/// Alice owns the org "Acme" and Bob is a member of it.
pub struct Acme {
    pub alice: User,
    pub bob: User,
    pub org: String,
}

impl TestApp {
    /// Alice (registered first) owns "Acme"; Bob (second) joined it as a member.
    pub async fn acme(&self) -> Acme {
        let alice = self.user("alice").await;
        let bob = self.user("bob").await;
        let org = self.org(&alice, "Acme").await;
        self.add_member(&org, &alice, &bob, "member").await;
        Acme { alice, bob, org }
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
