//! The real provider: `oidc-provider` (npm) started from `web/tests/oidc-provider.mjs` with two
//! accounts, an app it sends browsers back to, and a browser driven through its pages.

use super::*;

/// The real provider, killed when dropped.
pub(super) struct NodeOp {
    _child: tokio::process::Child,
    pub(super) issuer: String,
    /// The provider's port.
    port: u16,
    /// Where the app must listen: the provider knows its redirect URI before the app starts.
    app_port: u16,
    pub(super) redirect_uri: String,
}

/// Reads (and drops) what the provider prints after its first line: a closed pipe would end it
/// at its next write.
fn drain(mut lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>) {
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
}

/// Starts `web/tests/oidc-provider.mjs` with [`accounts`], for an app still to start on a free
/// port; `None` (after saying SKIPPED) when node or its packages are missing outside CI.
pub(super) async fn node_op() -> Option<NodeOp> {
    use tokio::io::AsyncBufReadExt;
    let app_port = free_port();
    let redirect_uri = format!("http://127.0.0.1:{app_port}/api/v1/auth/oidc/node/callback");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let config = json!({
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "redirect_uri": redirect_uri, "accounts": accounts(),
    });
    let spawned = tokio::process::Command::new("node")
        .arg(root.join("web/tests/oidc-provider.mjs"))
        .arg(config.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let skip = |why: String| {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "oidc-provider is required under CI=true (cd web/tests && npm ci): {why}"
        );
        eprintln!("SKIPPED an OpenID test: oidc-provider cannot start ({why})");
        None
    };
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return skip(e.to_string()),
    };
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line()).await;
    let issuer = match line {
        Ok(Ok(Some(l))) => serde_json::from_str::<Value>(&l).unwrap()["issuer"]
            .as_str()
            .unwrap()
            .to_owned(),
        other => return skip(format!("{other:?}")),
    };
    drain(lines);
    let port = url::Url::parse(&issuer).unwrap().port().unwrap();
    Some(NodeOp {
        _child: child,
        issuer,
        port,
        app_port,
        redirect_uri,
    })
}

fn location(res: &reqwest::Response, base: &reqwest::Url) -> String {
    let loc = res.headers()["location"].to_str().unwrap();
    base.join(loc).unwrap().to_string()
}

/// Signs in at `app` through oidc-provider's pages as `account`: follows redirects, fills the
/// login and consent forms, and stops at the URL the provider sends the browser back to.
pub(super) async fn through_provider(
    app: &TestApp,
    browser: &reqwest::Client,
    account: &str,
) -> String {
    let start = app.url("/api/v1/auth/oidc/node/start");
    from_provider(app, browser, account, start).await
}

/// As [`through_provider`], from `url` (the provider's authorization URL, or our start).
pub(super) async fn from_provider(
    app: &TestApp,
    browser: &reqwest::Client,
    account: &str,
    mut url: String,
) -> String {
    for _ in 0..20 {
        let res = browser.get(&url).send().await.unwrap();
        let here = res.url().clone();
        if res.status().is_redirection() {
            url = location(&res, &here);
            if url.starts_with(&app.base) && url.contains("/callback") {
                return url;
            }
            continue;
        }
        let html = res.text().await.unwrap();
        let action = html
            .split("action=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_else(|| panic!("a form at {here}: {html}"));
        let form: Vec<(&str, &str)> = if html.contains("value=\"login\"") {
            vec![("prompt", "login"), ("login", account), ("password", "any")]
        } else {
            vec![("prompt", "consent")]
        };
        let posted = browser
            .post(here.join(action).unwrap())
            .form(&form)
            .send()
            .await
            .unwrap();
        assert!(posted.status().is_redirection(), "{}", posted.status());
        url = location(&posted, &here);
    }
    panic!("the provider never sent the browser back");
}

/// The real provider and a fresh app using it; `None` as for [`node_op`].
pub(super) async fn node_with_app(backend: Backend) -> Option<(NodeOp, TestApp)> {
    let op = node_op().await?;
    let app = node_app(backend, &op, json!({}), |_| {}).await;
    Some((op, app))
}

/// An app with the `node` provider at `op` (`extra` adds to its configuration, `tweak` to the
/// app's), listening where the provider's redirect URI points.
pub(super) async fn node_app(
    backend: Backend,
    op: &NodeOp,
    extra: Value,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    let p = provider("node", &op.issuer, extra);
    let (port, op_port) = (op.app_port, op.port);
    spawn_app_with(backend, |c| {
        c.listen = format!("127.0.0.1:{port}");
        c.oidc.providers = vec![p];
        reach(c, vec![op_port]);
        tweak(c);
    })
    .await
    .expect("the app starts")
}

fn accounts() -> Value {
    json!({
        "op-alice": {"email": "alice@op.example", "email_verified": true, "name": "Alice Op",
                     "preferred_username": "opalice", "groups": ["chat-admins", "staff"]},
        "op-bob": {"email": "bob@op.example", "email_verified": false,
                   "preferred_username": "opbob", "groups": ["staff"]},
    })
}
