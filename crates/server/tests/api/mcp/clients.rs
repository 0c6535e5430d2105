//! MCP-1..3 with independent clients: the official MCP Python SDK (`scripts/mcp-check.py`)
//! and TypeScript SDK (`web/tests/mcp-check.mjs`) connect, list the tools, read, search and
//! send (twice, with one idempotency key) — once with an API key, once authorized through
//! each SDK's own OAuth client: discovery from the 401's challenge, the metadata documents,
//! a client an org admin registered, the consent page's calls with the user's cookie session,
//! the code redeemed with PKCE, and after the server's clock passes the access token's hour,
//! the SDK's own refresh. A missing SDK says SKIPPED, and fails under `CI=true`
//! (scripts/test.sh installs both).

use super::*;
use crate::oauth::{grants_of, register, Browser, REDIRECT};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// A conversation with a message to find, and a key of its participant: `(key, conv)`.
async fn sdk_world(app: &TestApp) -> (String, String) {
    let Acme { alice, bob, org } = app.acme().await;
    let conv = app.group(&org, &alice, &[&bob], json!("private")).await;
    app.says(&conv, &alice, "an interop check is running").await;
    (key(app, &bob, &org, TOOL_SCOPES, None).await, conv)
}

/// Runs `program` with `args`; its stdout, or a panic with both outputs.
async fn run(program: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// Each line of a check's output: `<version> tools=7 read=<n> found=1 sent=<id>` (the OAuth
/// summary line aside); answers the versions and the sent ids.
#[track_caller]
fn check_lines(out: &str) -> Vec<(String, String)> {
    (out.lines())
        .filter(|l| !l.trim().is_empty() && !l.starts_with("oauth "))
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 5, "{line}");
            assert_eq!(fields[1], "tools=7", "{line}");
            assert_eq!(fields[3], "found=1", "{line}");
            let sent = fields[4].strip_prefix("sent=").expect("sent=");
            (fields[0].to_owned(), sent.to_owned())
        })
        .collect()
}

/// Whether `package` is installed for the Node scripts in web/tests; SKIPPED (a failure under
/// CI=true) when it or Node is not.
fn node_package(package: &str) -> bool {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/tests/node_modules/");
    let node = std::process::Command::new("node").arg("--version").output();
    let found = node.is_ok_and(|o| o.status.success())
        && std::path::Path::new(&format!("{dir}{package}")).is_dir();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "node and {package} are required under CI=true (cd web/tests && npm ci)"
        );
        eprintln!("SKIPPED a check by {package}: node or the package is not installed");
    }
    found
}

pub(crate) async fn the_python_sdk_connects(app: TestApp) {
    if crate::python::python("mcp", "import mcp", "").is_none() {
        return;
    }
    let (key, conv) = sdk_world(&app).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/mcp-check.py");
    let url = app.url("/mcp");
    let out = run("python3", &[script, &url, &key, &conv]).await;
    let lines = check_lines(&out);
    let versions: Vec<&str> = lines.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(versions, ["2025-11-25", "2026-07-28"], "{out}");
    let rest = app
        .get(&conv_path(&conv, "/messages"), &key)
        .await
        .expect(200);
    for (_, id) in &lines {
        assert!(rest.ids().contains(id), "{id} is in the conversation");
    }
    assert_eq!(
        rest.items().len(),
        3,
        "each send once, the retries replayed"
    );
}

pub(crate) async fn the_typescript_sdk_connects(app: TestApp) {
    if !node_package("@modelcontextprotocol/sdk") {
        return;
    }
    let (key, conv) = sdk_world(&app).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/tests/mcp-check.mjs");
    let url = app.url("/mcp");
    let out = run("node", &[script, &url, &key, &conv]).await;
    let lines = check_lines(&out);
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0].0, "2025-11-25", "{out}");
    let rest = app
        .get(&conv_path(&conv, "/messages"), &key)
        .await
        .expect(200);
    assert!(rest.ids().contains(&lines[0].1));
    assert_eq!(rest.items().len(), 2, "the send once, the retry replayed");
}

/// Bob (a member of Acme) signed in in a browser, a public client Alice registered in Acme,
/// and a conversation of theirs with a message to find.
struct OAuthWorld {
    bob: User,
    org: String,
    conv: String,
    client_id: String,
    browser: Browser,
}

async fn oauth_world(app: &TestApp) -> OAuthWorld {
    let Acme { alice, bob, org } = app.acme().await;
    let conv = app.group(&org, &alice, &[&bob], json!("private")).await;
    app.says(&conv, &alice, "an interop check is running").await;
    let client_id = register(app, &alice, &org, true)
        .await
        .expect(201)
        .string("client_id");
    let browser = app.browser("bob").await;
    OAuthWorld {
        bob,
        org,
        conv,
        client_id,
        browser,
    }
}

impl OAuthWorld {
    /// The arguments of a check's `--oauth` mode, after the script.
    fn args(&self, app: &TestApp) -> Vec<String> {
        let url = app.url("/mcp");
        let w = self;
        let args = [
            "--oauth",
            url.as_str(),
            w.client_id.as_str(),
            REDIRECT,
            w.conv.as_str(),
            w.org.as_str(),
        ];
        args.map(str::to_owned).to_vec()
    }
}

/// Runs an SDK check in `--oauth` mode: the browser's session in its environment; when it
/// prints `expire`, moves the server's clock past the access token's hour and answers `go`.
/// Its stdout without that line, or a panic with both outputs.
async fn run_oauth(app: &TestApp, program: &str, args: &[String], browser: &Browser) -> String {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env("CONCLAVE_COOKIE", &browser.cookie)
        .env("CONCLAVE_CSRF", &browser.csrf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stderr = child.stderr.take().expect("stderr");
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut out = String::new();
    while let Some(line) = lines.next_line().await.expect("stdout is text") {
        if line == "expire" {
            app.clock.advance(chrono::Duration::seconds(3601));
            stdin.write_all(b"go\n").await.expect("stdin");
        } else {
            out.push_str(&line);
            out.push('\n');
        }
    }
    let status = child.wait().await.expect("the check ends");
    let errors = errors.await.unwrap_or_default();
    assert!(status.success(), "{program} failed:\n{out}\n{errors}");
    out
}

/// Checks what an SDK did through OAuth: the summary line (one consent, a code and a refresh,
/// scopes within a member's role: no org or webhook administration), two sessions' sends in
/// the conversation as Bob, one grant.
async fn check_oauth_run(app: &TestApp, w: &OAuthWorld, out: &str) -> Vec<(String, String)> {
    let summary = (out.lines().find_map(|l| l.strip_prefix("oauth ")))
        .unwrap_or_else(|| panic!("a summary line: {out}"));
    let fields: Vec<&str> = summary.split(' ').collect();
    assert_eq!(fields[..2], ["consents=1", "tokens=2"], "{out}");
    let scopes: Vec<&str> = fields[2].trim_start_matches("scope=").split(',').collect();
    assert_includes(&scopes, TOOL_SCOPES);
    for admin in ["org:admin", "webhooks:admin"] {
        assert!(
            !scopes.contains(&admin),
            "the SDK asks for every scope; a member's grant holds no {admin}: {scopes:?}"
        );
    }
    let lines = check_lines(out);
    assert_eq!(lines.len(), 2, "{out}");
    let rest = (app
        .get(&conv_path(&w.conv, "/messages"), &w.bob.token)
        .await)
        .expect(200);
    for (_, id) in &lines {
        let sent = (rest.items().iter())
            .find(|m| m["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} is in the conversation"))
            .clone();
        assert_eq!(sent["author"]["id"], w.bob.id.as_str(), "sent as Bob");
    }
    assert_eq!(
        rest.items().len(),
        3,
        "each send once, the retries replayed"
    );
    let grants = grants_of(app, &w.bob).await;
    assert_eq!(grants.len(), 1, "one consent, one grant: {grants:?}");
    assert_eq!(grants[0]["client_id"], w.client_id.as_str());
    lines
}

/// Runs `script` of the checks with `program` in `--oauth` mode; its sessions spoke `versions`.
async fn through_oauth(app: &TestApp, program: &str, script: &str, versions: [&str; 2]) {
    let w = oauth_world(app).await;
    let mut args = vec![script.to_owned()];
    args.extend(w.args(app));
    let out = run_oauth(app, program, &args, &w.browser).await;
    let lines = check_oauth_run(app, &w, &out).await;
    let spoken: Vec<&str> = lines.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(spoken, versions, "{out}");
}

pub(crate) async fn the_python_sdk_authorizes_through_oauth(app: TestApp) {
    if crate::python::python("mcp", "import mcp", "").is_none() {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/mcp-check.py");
    through_oauth(&app, "python3", script, ["2025-11-25", "2026-07-28"]).await;
}

pub(crate) async fn the_typescript_sdk_authorizes_through_oauth(app: TestApp) {
    if !node_package("@modelcontextprotocol/sdk") {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/tests/mcp-check.mjs");
    through_oauth(&app, "node", script, ["2025-11-25", "2025-11-25"]).await;
}
