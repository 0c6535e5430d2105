//! RATE-2 through a trusted proxy: only the configured header is read, all its lines, from the
//! right; what a client writes to the left of what the proxy appended changes no rate-limit
//! bucket, no failed-login counter and no API-key IP allowlist decision; IPv6 clients are keyed
//! by their /64. (The parser itself: `client_ip::tests` in the server crate.)

use crate::both_backends;
use crate::helpers::*;
use conclave_server::config::{Config, ProxyHeader};
use reqwest::Method;
use serde_json::json;

both_backends!(
    spoofed_entries_change_no_allowlist_decision,
    spoofed_lines_share_the_clients_rate_limit_bucket,
    ipv6_clients_share_their_64_in_the_login_back_off,
);

fn behind_proxy(c: &mut Config) {
    c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
}

/// A GET of `/users/@me` with `token` and the given forwarding header lines.
async fn me_via(app: &TestApp, token: &str, lines: &[(&str, &str)]) -> Res {
    let mut rb = app
        .client
        .get(app.url("/api/v1/users/@me"))
        .bearer_auth(token);
    for (name, value) in lines {
        rb = rb.header(*name, *value);
    }
    app.send(rb).await
}

/// Alice's key to her org "Acme", allowed from 10.0.0.0/8 only.
async fn office_key(app: &TestApp) -> String {
    let alice = app.user("alice").await;
    let org = app.org(&alice, "Acme").await;
    let body = json!({"name": "office", "org_id": org, "scopes": ["org:read"], "allowed_ips": ["10.0.0.0/8"]});
    crate::keys::make_key(app, &alice, body).await.1
}

async fn spoofed_entries_change_no_allowlist_decision(app: TestApp) {
    let backend = app.backend;
    let Some(app) = spawn_app_with(backend, behind_proxy).await else {
        return;
    };
    let key = office_key(&app).await;
    let xff = "x-forwarded-for";
    // What the proxy appended last is the client; trusted hops are skipped.
    me_via(&app, &key, &[(xff, "10.1.2.3")]).await.expect(200);
    me_via(&app, &key, &[(xff, "192.168.1.5, 10.1.2.3")])
        .await
        .expect(200);
    me_via(&app, &key, &[(xff, "10.1.2.3, 127.0.0.1")])
        .await
        .expect(200);
    // A client-written entry or line before the real client changes nothing.
    for lines in [
        vec![(xff, "10.1.2.3, 192.168.1.5")],
        vec![(xff, "10.1.2.3"), (xff, "192.168.1.5")],
        // Only the configured header counts: `Forwarded` is not read, so this is the proxy.
        vec![("forwarded", "for=10.1.2.3")],
        // Malformed where the client would be read: the proxy itself.
        vec![(xff, "10.1.2.3, not-an-address")],
    ] {
        me_via(&app, &key, &lines)
            .await
            .expect_error(403, "ip_not_allowed");
    }

    // `proxy_header = forwarded`: the other way round.
    let Some(fwd) = spawn_app_with(backend, |c| {
        behind_proxy(c);
        c.proxy_header = ProxyHeader::Forwarded;
    })
    .await
    else {
        return;
    };
    let key = office_key(&fwd).await;
    me_via(
        &fwd,
        &key,
        &[("forwarded", "for=\"10.1.2.3:4711\";proto=https")],
    )
    .await
    .expect(200);
    me_via(
        &fwd,
        &key,
        &[
            ("forwarded", "for=10.1.2.3"),
            ("forwarded", "for=192.168.1.5"),
        ],
    )
    .await
    .expect_error(403, "ip_not_allowed");
    me_via(&fwd, &key, &[(xff, "10.1.2.3")])
        .await
        .expect_error(403, "ip_not_allowed");
}

async fn spoofed_lines_share_the_clients_rate_limit_bucket(app: TestApp) {
    let Some(app) = spawn_app_with(app.backend, |c| {
        behind_proxy(c);
        c.rate_limit.auth_per_min = 2;
        c.rate_limit.auth_burst = 2;
    })
    .await
    else {
        return;
    };
    let attempt = |i: usize, spoof: &'static str, client: &'static str| {
        app.send(
            app.client
                .post(app.url("/api/v1/auth/login"))
                .header("x-forwarded-for", spoof)
                .header("x-forwarded-for", client)
                .json(&json!({"username": format!("nobody{i}"), "password": "wrong"})),
        )
    };
    attempt(0, "10.9.9.1", "203.0.113.7").await.expect(401);
    attempt(1, "10.9.9.2", "203.0.113.7").await.expect(401);
    attempt(2, "10.9.9.3", "203.0.113.7")
        .await
        .expect_error(429, "rate_limited");
    // IPv6: one bucket per /64.
    attempt(3, "10.9.9.4", "2001:db8:1:2::1").await.expect(401);
    attempt(4, "10.9.9.5", "2001:db8:1:2:ffff::9")
        .await
        .expect(401);
    attempt(5, "10.9.9.6", "2001:db8:1:2::abcd")
        .await
        .expect_error(429, "rate_limited");
    attempt(6, "10.9.9.7", "2001:db8:1:3::1").await.expect(401);
}

/// AUTH-5 with RATE-2: an attacker rotating through the addresses of one IPv6 /64 is one
/// client to the per-(account, IP) back-off.
async fn ipv6_clients_share_their_64_in_the_login_back_off(app: TestApp) {
    let (app, _) = crate::mfa::without_rate_limits(app, behind_proxy).await;
    app.user("alice").await;
    let login = |ip: String, password: &'static str| {
        app.send(
            app.client
                .request(Method::POST, app.url("/api/v1/auth/login"))
                .header("x-forwarded-for", ip)
                .json(&json!({"username": "alice", "password": password})),
        )
    };
    for i in 1..=5 {
        login(format!("2001:db8:1:2::{i:x}"), "not the right passphrase")
            .await
            .expect_error(401, "invalid_credentials");
    }
    login("2001:db8:1:2:aaaa::1".into(), PASSWORD)
        .await
        .expect_error(429, "too_many_attempts");
    // Another /64 is another client.
    login("2001:db8:1:3::1".into(), PASSWORD).await.expect(200);
}
