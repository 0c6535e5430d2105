//! `widget-idle`: N support-widget visitors each holding their Server-Sent Events stream
//! (`GET /api/v1/widget/chat/stream`, WEB-4) open and idle; reports streams held and the
//! server's memory per idle visitor stream. The stage: an owner, an org, a support team and a
//! widget key whose one allowed origin the bench sends as `Origin`; then N visitor sessions
//! (`POST /api/v1/widget/sessions`), each with its own server-issued visitor secret.

use crate::api::{Api, CLIENT_NAME};
use crate::cli::WidgetIdleArgs;
use crate::cpu::CpuMark;
use crate::report::Report;
use crate::stats::Errors;
use crate::sys;
use futures::stream::{self, StreamExt, TryStreamExt};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The origin of the page the bench's visitors pretend to be on.
const ORIGIN: &str = "http://bench.invalid";

struct Visitor {
    session_id: String,
    secret: String,
}

/// POSTs `body` as JSON with `headers`; the answer's body when the status is one of `ok`.
async fn post_json(
    http: &Client,
    url: reqwest::Url,
    headers: &[(&str, &str)],
    body: &Value,
    ok: &[StatusCode],
    what: &str,
) -> Result<Value, String> {
    let mut req = http
        .post(url)
        .header("x-client-version", CLIENT_NAME)
        .json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.map_err(|e| format!("{what}: {e}"))?;
    let status = res.status();
    let text = res.text().await.map_err(|e| format!("{what}: {e}"))?;
    if !ok.contains(&status) {
        let text: String = text.chars().take(300).collect();
        return Err(format!("{what}: HTTP {} {text}", status.as_u16()));
    }
    serde_json::from_str(&text).map_err(|e| format!("{what}: {e}"))
}

fn field(v: &Value, name: &str, what: &str) -> Result<String, String> {
    v.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("{what}: no {name} in the answer"))
}

/// Owner, org, team and widget key; answers the key.
async fn stage(api: &Api, http: &Client, admin_token: &str, run: &str) -> Result<String, String> {
    let password = format!("conclave-bench-{run}-not-a-common-passphrase");
    let owner = api
        .create_user(admin_token, &format!("bn{run}-owner"), &password)
        .await?;
    let org = api
        .create_org(&owner.token, &format!("bench {run}"))
        .await?;
    let auth = format!("Bearer {}", owner.token);
    let created = [StatusCode::CREATED];
    let team = post_json(
        http,
        api.url(&format!("/api/v1/orgs/{org}/teams")),
        &[("authorization", &auth)],
        &json!({"name": "support"}),
        &created,
        "create team",
    )
    .await?;
    let team = field(&team, "id", "create team")?;
    let key = post_json(
        http,
        api.url(&format!("/api/v1/orgs/{org}/widget-keys")),
        &[("authorization", &auth)],
        &json!({"name": "bench", "allowed_origins": [ORIGIN], "team_id": team}),
        &created,
        "create widget key",
    )
    .await?;
    field(&key, "key", "create widget key")
}

/// One visitor session.
async fn visit(api: &Api, http: &Client, key: &str) -> Result<Visitor, String> {
    let v = post_json(
        http,
        api.url("/api/v1/widget/sessions"),
        &[("x-widget-key", key), ("origin", ORIGIN)],
        &json!({}),
        &[StatusCode::OK, StatusCode::CREATED],
        "create visitor session",
    )
    .await?;
    Ok(Visitor {
        session_id: field(&v, "session_id", "create visitor session")?,
        secret: field(&v, "visitor_secret", "create visitor session")?,
    })
}

/// Opens one visitor's stream and reads it until `stop`; `open` counts it while it is open.
async fn hold(
    api: Api,
    http: Client,
    key: Arc<str>,
    v: Visitor,
    open: Arc<AtomicU64>,
    errors: Arc<Errors>,
    mut stop: watch::Receiver<bool>,
) {
    let mut url = api.url("/api/v1/widget/chat/stream");
    url.query_pairs_mut()
        .append_pair("session_id", &v.session_id);
    let res = http
        .get(url)
        .header("x-widget-key", &*key)
        .header("x-widget-visitor", &v.secret)
        .header("origin", ORIGIN)
        .header("accept", "text/event-stream")
        .send()
        .await;
    let mut body = match res {
        Ok(r) if r.status() == StatusCode::OK => r,
        Ok(r) => return errors.add(format!("stream: HTTP {}", r.status().as_u16())),
        Err(e) => return errors.add_with_sample("stream: transport error", || e.to_string()),
    };
    open.fetch_add(1, Ordering::Relaxed);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            chunk = body.chunk() => match chunk {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    errors.add("stream: ended by the server");
                    break;
                }
            },
        }
    }
    open.fetch_sub(1, Ordering::Relaxed);
}

pub async fn run(
    api: &Api,
    a: &WidgetIdleArgs,
    run: &str,
    report: &mut Report,
) -> Result<(), String> {
    let pid = a.common.server_pid;
    let clk = sys::clock_ticks_per_sec();
    // One connection per stream: no pooling limits, no HTTP/2 multiplexing (a browser's
    // EventSource over HTTP/1.1 holds one connection too).
    let http = Client::builder()
        .http1_only()
        .pool_max_idle_per_host(usize::MAX)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    let key: Arc<str> = stage(api, &http, &a.common.admin_token, run).await?.into();
    let started = Instant::now();
    let visitors: Vec<Visitor> = stream::iter(0..a.streams)
        .map(|_| visit(api, &http, &key))
        .buffer_unordered(a.common.setup_concurrency.max(1) * 4)
        .try_collect()
        .await?;
    eprintln!(
        "  setup: widget key and {} visitor sessions in {:.1}s",
        visitors.len(),
        started.elapsed().as_secs_f64()
    );
    report.server_rss_before_kib = pid.and_then(sys::rss_kib);

    let open = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Errors::default());
    let (stop, stopped) = watch::channel(false);
    let mut streams = JoinSet::new();
    let t0 = Instant::now();
    for v in visitors {
        let (api, http, key, open, errors, stopped) = (
            api.clone(),
            http.clone(),
            key.clone(),
            open.clone(),
            errors.clone(),
            stopped.clone(),
        );
        streams.spawn(hold(api, http, key, v, open, errors, stopped));
    }
    let deadline = Instant::now() + Duration::from_secs(a.common.connect_timeout_secs.max(1));
    while open.load(Ordering::Relaxed) + errors.counts().values().sum::<u64>() < a.streams as u64
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let opened = open.load(Ordering::Relaxed);
    report.connections_ready = opened;
    report.connect_secs = t0.elapsed().as_secs_f64();
    report.connect_per_sec = opened as f64 / report.connect_secs.max(1e-9);
    tokio::time::sleep(Duration::from_secs(a.settle_secs)).await;
    report.server_rss_connected_kib = pid.and_then(sys::rss_kib);

    let before = CpuMark::now(pid);
    tokio::time::sleep(Duration::from_secs(a.hold_secs)).await;
    let after = CpuMark::now(pid);
    report.connections_held = open.load(Ordering::Relaxed);
    report.server_rss_end_kib = pid.and_then(sys::rss_kib);
    let used = before.since(&after, clk);
    used.report(report);
    report.window_secs = Some(used.wall);
    if let (Some(b), Some(c)) = (
        report.server_rss_before_kib,
        report.server_rss_connected_kib,
    ) {
        if opened > 0 {
            report.rss_per_idle_connection_kib = Some((c as f64 - b as f64) / opened as f64);
        }
    }
    let _ = stop.send(true);
    while streams.join_next().await.is_some() {}
    report.errors_by_kind = errors.counts();
    report.errors = report.errors_by_kind.values().sum();
    report.error_samples = errors.notes();
    Ok(())
}
