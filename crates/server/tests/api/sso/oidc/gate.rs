//! The server's access gate on OpenID sign-in: a flow begins only through it, the callback
//! completes only a state begun through it, and the session it makes is behind it.

use super::forger::{Forge, Forger};
use super::node::{from_provider, node_app, node_op};
use super::*;

const ACCESS: &str = "the access code of this server";

/// Sends `request` with the access token.
async fn through_the_gate(request: reqwest::RequestBuilder) -> reqwest::Response {
    request
        .header("x-api-access-token", ACCESS)
        .send()
        .await
        .unwrap()
}

pub(super) async fn the_access_gate_holds_for_openid_sign_in(app: TestApp) {
    let Some(op) = node_op().await else {
        return;
    };
    let app = node_app(app.backend, &op, json!({}), |c| {
        c.access_token = Some(secrecy::SecretString::from(ACCESS));
    })
    .await;
    let start = app.url("/api/v1/auth/oidc/node/start");
    // Begun without the access token — a top-level navigation cannot send it, nor can a
    // script that does not know it — the flow never starts: no state, no cookie.
    let b = browser();
    let nav = b.get(&start).send().await.unwrap();
    assert_eq!(nav.status().as_u16(), 401);
    assert!(nav.headers().get("set-cookie").is_none());
    for token in [None, Some("wrong")] {
        let mut req = b.post(&start);
        if let Some(t) = token {
            req = req.header("x-api-access-token", t);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), 401, "{token:?}");
        assert!(res.headers().get("set-cookie").is_none());
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "access_token_required");
    }
    // The callback is reachable without the header, but completes only a state this server
    // stored for a flow begun through the gate: anything else is a refused sign-in.
    let made_up = format!(
        "{}?code=x&state=made-up",
        app.url("/api/v1/auth/oidc/node/callback")
    );
    assert_eq!(
        callback(&b, &made_up).await,
        "/#/signin?error=oidc_state_mismatch"
    );
    assert_eq!(
        callback_with_state(&app, &made_up, "made-up").await,
        "/#/signin?error=oidc_state_invalid"
    );
    // Begun with it (as the web client does: a POST that carries the header, then a
    // navigation to the provider), the sign-in completes against the real provider.
    let res = through_the_gate(b.post(&start)).await;
    assert_eq!(res.status().as_u16(), 200);
    let set_cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
    let url = res.json::<Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.starts_with(&op.issuer), "{url}");
    let back = from_provider(&app, &b, "op-alice", url).await;
    assert_eq!(callback(&b, &back).await, "/");
    // The session it made is behind the gate like every other.
    let session = app.url("/api/v1/auth/session");
    let res = b.get(&session).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let res = through_the_gate(b.get(&session)).await;
    assert_eq!(res.status().as_u16(), 200);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["user"]["username"], "opalice");
    // Failures on the callback are sign-in failures all the same: audited.
    let audit = app
        .send(
            app.client
                .get(app.url("/api/v1/admin/audit?event=auth.login&limit=100"))
                .bearer_auth(ADMIN_TOKEN)
                .header("x-api-access-token", ACCESS),
        )
        .await
        .expect(200);
    let reasons: Vec<Value> = audit
        .items()
        .into_iter()
        .filter(|e| e["outcome"] == "failure")
        .map(|e| e["detail"]["reason"].clone())
        .collect();
    assert!(
        reasons.contains(&json!("oidc_state_mismatch")),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&json!("oidc_state_invalid")),
        "{reasons:?}"
    );
}

pub(super) async fn a_state_begun_outside_the_gate_is_not_completed_through_it(app: TestApp) {
    let Some((forger, open)) = Forger::with_app(app.backend).await else {
        return;
    };
    // A second node on the same database and keys, with the gate on (as after turning it on).
    let openid = json!({ "scopes": ["openid"] });
    let gated = forger
        .app(open.backend, openid, |c| {
            c.access_token = Some(secrecy::SecretString::from(ACCESS));
            same_database(c, &open);
        })
        .await;
    let b = browser();
    let q = started(&b, &open.url("/api/v1/auth/oidc/forger/start")).await;
    forger.answer("g1", &q, Forge::Good);
    let path = format!(
        "/api/v1/auth/oidc/forger/callback?code=g1&state={}",
        q["state"]
    );
    // The browser holds the state's cookie (cookies ignore ports), but the state was begun
    // outside the gate: through the gated node it is not found.
    assert_eq!(
        callback(&b, &gated.url(&path)).await,
        "/#/signin?error=oidc_state_invalid"
    );
    // It was a good state all the same: on the node it was begun on, it completes.
    let done = callback_with_state(&open, &open.url(&path), &q["state"]).await;
    assert_eq!(done, "/");
}
