//! Widget limits under ~100 parallel requests: per visitor session, per key and per client IP
//! (GCRA buckets on the server's clock, which these tests hold still, so exactly the burst
//! passes).

use super::*;
use futures::future::join_all;

/// Bursts small enough to count: 10 calls per visitor, 30 per key, 120 per IP (every widget
/// request counts against its IP, refused ones too).
pub async fn limited(backend: Backend) -> Option<Widgeted> {
    widgeted_with(backend, |c| {
        c.rate_limits = conclave_server::config::OnOff::On;
        let r = &mut c.rate_limit;
        r.widget_visitor_per_min = 10;
        r.widget_visitor_burst = 10;
        r.widget_key_per_min = 30;
        r.widget_key_burst = 30;
        r.widget_ip_per_min = 120;
        r.widget_ip_burst = 120;
    })
    .await
}

crate::both_backends!(
    with crate::widget::limits::limited;
    a_visitor_gets_their_burst_and_no_more,
    a_key_gets_its_burst_and_no_more,
);

async fn a_visitor_gets_their_burst_and_no_more(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", false).await;
    let v = app.visit(&s.key, json!({})).await;
    let path = format!("/chat?session_id={}", v.id);
    let answers =
        join_all((0..100).map(|_| app.as_visitor(&s.key, &v.secret, Method::GET, &path, None)))
            .await;
    for res in &answers {
        if res.status.as_u16() == 429 {
            // The widget can read the refusal: it carries the page's origin.
            assert_eq!(res.headers["access-control-allow-origin"], ORIGIN);
        }
    }
    let passed = only(answers, 200, (429, "rate_limited"));
    // The session's creation counted against the key and IP, not the visitor.
    assert_eq!(passed.len(), 10, "the visitor's burst");
    // Another visitor of the same key is not held back by the first.
    let w = app.visit(&s.key, json!({})).await;
    app.visitor_history(&s.key, &w).await;
}

async fn a_key_gets_its_burst_and_no_more(h: Widgeted) {
    let app = &h.app;
    let s = site(&h, "acme", "optional", false).await;
    let t = site(&h, "globex", "optional", false).await;
    let answers = join_all((0..100).map(|_| app.start_session(&s.key, json!({})))).await;
    let passed = only(answers, 200, (429, "rate_limited"));
    assert_eq!(passed.len(), 30, "the key's burst");
    // The IP had 100 of its 120 — the 70 the key refused count too: another key gets 20 more
    // from this address, then none.
    let answers = join_all((0..40).map(|_| app.start_session(&t.key, json!({})))).await;
    let passed = only(answers, 200, (429, "rate_limited"));
    assert_eq!(passed.len(), 20, "the IP's burst");
    // Refused before any lookup: an unknown key, or a preflight from an unknown origin.
    let unknown = app.start_session("cnv_w_unknown", json!({})).await;
    unknown.expect_error(429, "rate_limited");
}
