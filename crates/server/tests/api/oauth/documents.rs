//! Client ID Metadata Documents through the SSRF guard, with the guard's allowlist letting a
//! local document server through (as a private deployment's would). Without the allowlist
//! the same document is refused (`clients::a_metadata_document_on_a_private_address_is_refused`).

use super::*;
use crate::both_backends;
use crate::webhooks::receiver::Received;
use axum::response::IntoResponse;
use std::sync::{Arc, Mutex};

both_backends!(with super::oauth_app_with_document;
    a_metadata_document_client_signs_in,
);

/// A Client ID Metadata Document server on 127.0.0.1 and an app whose SSRF guard lets it
/// through (as a deployment's allowlist would).
pub struct Documented {
    pub app: TestApp,
    pub url: String,
}

/// Every request a document server received.
pub type Fetches = Arc<Mutex<Vec<Received>>>;

/// Serves `/client.json` naming itself, recording every request (any path); answers its
/// port, its URL and the record. Beside it: `/moved.json` redirects to a document naming
/// `/moved.json`, and `/as-html.json` names itself but is sent as `text/html`.
pub async fn serve_document() -> (u16, String, Fetches) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/client.json");
    let doc = json!({
        "client_id": url,
        "client_name": "Document Agent",
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
    });
    let fetches = Fetches::default();
    let seen = fetches.clone();
    let router = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: String| {
            let (doc, seen) = (doc.clone(), seen.clone());
            async move {
                let path = uri.path().to_owned();
                let got = Received {
                    uri: uri.to_string(),
                    headers: header_pairs(&headers),
                    body,
                };
                seen.lock().unwrap_or_else(|e| e.into_inner()).push(got);
                let base = doc["client_id"].as_str().unwrap_or_default().to_owned();
                let naming = |name: &str| {
                    let mut d = doc.clone();
                    d["client_id"] = json!(base.replace("/client.json", name));
                    d
                };
                match path.as_str() {
                    "/client.json" => axum::Json(doc).into_response(),
                    "/moved.json" => {
                        axum::response::Redirect::to("/moved-target.json").into_response()
                    }
                    "/moved-target.json" => axum::Json(naming("/moved.json")).into_response(),
                    "/as-html.json" => (
                        [(axum::http::header::CONTENT_TYPE, "text/html")],
                        naming("/as-html.json").to_string(),
                    )
                        .into_response(),
                    _ => axum::http::StatusCode::NOT_FOUND.into_response(),
                }
            }
        },
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    (port, url, fetches)
}

pub async fn oauth_app_with_document(backend: Backend) -> Option<Documented> {
    let (port, url, _) = serve_document().await;
    let app = spawn_app_with(backend, |c| {
        c.rate_limits = OnOff::Off;
        c.webhook_allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
        c.webhook_allow_ports = vec![port];
    })
    .await?;
    Some(Documented { app, url })
}

async fn a_metadata_document_client_signs_in(d: Documented) {
    let app = &d.app;
    let w = world(app).await;
    let id = request_id(&app.authorize_as(&d.url, &[]).await);
    let view = app
        .consent_api(&w.browser, Method::GET, &id, None)
        .await
        .expect(200);
    assert_eq!(view.body["client_name"], "Document Agent");
    assert_eq!(view.body["client_id"], d.url.as_str());
    assert_eq!(view.body["registered"], false);
    let code = code_for(app, &w, &d.url, &w.org).await;
    let (access, _) = tokens(&redeem(app, &d.url, &code).await.expect(200));
    assert!(app.mcp_accepts(&access).await);
    let grants = grants_of(app, &w.owner).await;
    assert_eq!(grants[0]["client_id"], d.url.as_str());
    // A redirect URI the document does not list is never used.
    let res = app
        .authorize_as(&d.url, &[("redirect_uri", "http://127.0.0.1:9/other")])
        .await;
    assert_eq!(res.status, 400);
    // A document elsewhere naming another URL, or none at all: refused.
    let port = d.url.split(':').nth(2).unwrap().split('/').next().unwrap();
    let missing = format!("http://127.0.0.1:{port}/missing.json");
    let res = app.authorize_as(&missing, &[]).await;
    assert_eq!(
        (res.status.as_u16(), res.body["error"].as_str()),
        (400, Some("invalid_client"))
    );
    // Worded as a refused address is (`clients.rs`): anyone may ask, so no answer tells a
    // private address from a missing document or name.
    assert_eq!(
        res.body["error_description"],
        "the client metadata document could not be used"
    );
    // MCP-2 (the metadata-document draft): a document is taken from its own URL only — not
    // through a redirect (an open redirect on a reputable host would vouch for another's
    // client) — and only as JSON.
    for name in ["/moved.json", "/as-html.json"] {
        let url = d.url.replace("/client.json", name);
        let res = app.authorize_as(&url, &[]).await;
        assert_eq!(
            (res.status.as_u16(), res.body["error"].as_str()),
            (400, Some("invalid_client")),
            "{name}"
        );
    }
    // RFC 9700 §4.11.2: before the user has decided, a self-described client's errors are
    // shown, never redirected to the URI its own document names (an open redirect otherwise).
    for extra in [
        ("response_type", "token"),
        ("code_challenge_method", "plain"),
    ] {
        let res = app.authorize_as(&d.url, &[extra]).await;
        assert_eq!(res.status, 400, "{extra:?}");
        assert!(res.headers.get("location").is_none(), "{extra:?}");
    }
    // https is required of any host the allowlist does not name.
    let res = app
        .authorize_as("http://client.example/meta.json", &[])
        .await;
    assert_eq!(res.status, 400);
}
