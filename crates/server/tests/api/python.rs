//! Independent checks in Python: runs `python3` for the HTTP suite and, through `#[path]`, for
//! the webhook signing unit tests, so both verify Standard Webhooks signatures the same way.

use std::io::Write;

/// Runs `script` with `python3 -c`, `input` on its stdin, and returns its trimmed stdout.
/// `None` (after saying SKIPPED) when python3 or the `package` the script imports is missing
/// outside CI; under `CI=true` that is a failure (scripts/test.sh installs the packages).
#[allow(
    clippy::disallowed_methods,
    reason = "whether a missing package fails or skips depends on CI in the environment"
)]
pub fn python(package: &str, script: &str, input: &str) -> Option<String> {
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(input.as_bytes())?;
            c.wait_with_output()
        });
    match out {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).trim().to_owned()),
        other => {
            let why = match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{package} is required under CI=true (python3 -m pip install {package}): {why}"
            );
            eprintln!(
                "SKIPPED a check by {package}: python3 with {package} is not available ({why})"
            );
            None
        }
    }
}

/// Verifies `headers` for `body` with the independent `standardwebhooks` package (PyPI) once per
/// secret, checks a tampered body fails, and recomputes `X-Webhook-Signature` with Python's
/// hmac: per secret `ok|fail:<error>,refused|accepted,match|differ`, space-separated.
pub fn standardwebhooks_verdicts<'a>(
    secrets: &[String],
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: &[u8],
) -> Option<String> {
    const SCRIPT: &str = r#"
import base64, hashlib, hmac, json, sys
from standardwebhooks import Webhook
req = json.load(sys.stdin)
body = base64.b64decode(req["body"])
out = []
for secret in req["secrets"]:
    wh = Webhook(secret)
    try:
        wh.verify(body, req["headers"], json_parse=False)
        ok = "ok"
    except Exception as e:
        ok = "fail:" + type(e).__name__
    try:
        wh.verify(body + b" ", req["headers"], json_parse=False)
        tampered = "accepted"
    except Exception:
        tampered = "refused"
    key = base64.b64decode(secret[len("whsec_"):] + "==")
    hexsig = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    plain = "match" if hexsig == req["headers"]["x-webhook-signature"] else "differ"
    out.append(f"{ok},{tampered},{plain}")
print(" ".join(out))
"#;
    use base64::Engine as _;
    let headers: serde_json::Map<String, serde_json::Value> = headers
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into()))
        .collect();
    let input = serde_json::json!({
        "secrets": secrets,
        "headers": headers,
        "body": base64::engine::general_purpose::STANDARD.encode(body),
    });
    python("standardwebhooks", SCRIPT, &input.to_string())
}
