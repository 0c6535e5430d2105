//! MCP-1..3 with independent clients: the official MCP Python SDK (`scripts/mcp-check.py`)
//! and TypeScript SDK (`web/tests/mcp-check.mjs`) connect with an API key, list the tools,
//! read, search and send (twice, with one idempotency key). A missing SDK says SKIPPED, and
//! fails under `CI=true` (scripts/test.sh installs both).

use super::*;

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

/// Each line of a check's output: `<version> tools=7 read=<n> found=1 sent=<id>`; answers
/// the versions and the sent ids.
#[track_caller]
fn check_lines(out: &str) -> Vec<(String, String)> {
    (out.lines().filter(|l| !l.trim().is_empty()))
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
