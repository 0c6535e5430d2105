//! Bad input gets a clear error and leaves nothing behind (no row, no blob, no reserved
//! bytes): empty files, markup, executables, polyglots, pixel bombs, broken headers,
//! truncated multipart, fields out of order; and the size limit and the quota hold, the quota
//! under 100 parallel uploads.

use super::*;

pub(crate) async fn hostile_files_are_refused_and_leave_nothing(app: TestApp) {
    let (acme, conv) = app.acme_private().await;
    let me = As::Bearer(&acme.alice.token);
    let mut script_png = png(10, 10, 100);
    script_png.extend_from_slice(b"<ScRiPt>alert(document.cookie)</script>");
    let mut gifar = png(10, 10, 100);
    gifar.extend_from_slice(b"PK\x03\x04\x14\x00\x00\x00META-INF/MANIFEST.MF");
    let elf = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00".to_vec();
    let table: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("empty.png", vec![], 422, "file_empty"),
        (
            "logo.png",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>".to_vec(),
            415,
            "file_type_not_allowed",
        ),
        (
            "page.png",
            b"<!DOCTYPE html><html><script>alert(1)</script>".to_vec(),
            415,
            "file_type_not_allowed",
        ),
        (
            "feed.txt",
            b"<?xml version=\"1.0\"?><x/>".to_vec(),
            415,
            "file_type_not_allowed",
        ),
        ("tool.png", elf, 415, "file_type_not_allowed"),
        (
            "bin.txt",
            vec![0, 159, 146, 150, 0, 1, 2],
            415,
            "file_type_not_allowed",
        ),
        ("script.png", script_png, 415, "file_polyglot"),
        ("gifar.png", gifar, 415, "file_polyglot"),
        (
            "bomb.png",
            png(100_000, 100_000, 100),
            422,
            "image_too_large",
        ),
        (
            "cut.png",
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIH".to_vec(),
            422,
            "file_corrupt",
        ),
    ];
    for (name, content, status, code) in &table {
        let res = app.upload(me, &conv, name, content).await;
        res.expect_error(*status, code);
    }
    // A multipart body cut off inside the file, after storage has begun.
    let big = png(10, 10, 600_000);
    let mut cut = form(&[conv_part(&conv), file_part("big.png", &big)]);
    cut.truncate(cut.len() - 100_000);
    let res = app.upload_raw(me, cut).await;
    let res = res.expect_error(400, "multipart_invalid");
    assert_eq!(res.field(), Some("file"));
    // Fields out of order, missing, unknown, malformed; not multipart at all.
    app.upload_raw(me, form(&[file_part("a.txt", b"a\n"), conv_part(&conv)]))
        .await
        .expect_error(422, "required");
    let res = app.upload_raw(me, form(&[conv_part(&conv)])).await;
    let res = res.expect_error(422, "required");
    assert_eq!(res.field(), Some("file"));
    let res = app
        .upload_raw(
            me,
            form(&[
                Part {
                    name: "path",
                    file_name: None,
                    content: b"/etc",
                },
                conv_part(&conv),
            ]),
        )
        .await;
    let res = res.expect_error(422, "unknown_field");
    assert_eq!(res.field(), Some("path"));
    let res = app
        .upload_raw(
            me,
            form(&[conv_part("not-a-uuid"), file_part("a.txt", b"a\n")]),
        )
        .await;
    let res = res.expect_error(400, "invalid_id");
    assert_eq!(res.field(), Some("conversation_id"));
    app.post(
        "/api/v1/files",
        &acme.alice.token,
        json!({"conversation_id": conv}),
    )
    .await
    .expect_error(400, "multipart_invalid");
    // Every refusal left nothing: no blob, and the next good upload works.
    assert_eq!(app.blob_count(), 0);
    app.upload(me, &conv, "fine.txt", b"fine\n")
        .await
        .expect(201);
    assert_eq!(app.blob_count(), 1);
}

/// A server with small limits: 400 KiB per file, 1,024,000 bytes per user, no rate limits.
pub(crate) async fn limited_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |c| {
        c.files.max_upload_bytes = 400 * 1024;
        c.files.user_quota_bytes = 1_024_000;
        c.rate_limits = conclave_server::config::OnOff::Off;
    })
    .await
}

pub(crate) async fn size_and_quota_hold_under_parallel_uploads(app: TestApp) {
    let (acme, conv) = app.acme_private().await;
    let caps = app.get_anon("/api/v1/capabilities").await.expect(200);
    assert_eq!(caps.body["limits"]["upload_max_bytes"], 400 * 1024);
    // Over the size limit, found while streaming (after the first 256 KiB were stored).
    let res = app
        .upload(
            As::Bearer(&acme.alice.token),
            &conv,
            "big.txt",
            &vec![b'a'; 500 * 1024],
        )
        .await;
    let res = res.expect_error(413, "file_too_large");
    assert_eq!(res.field(), Some("file"));
    assert_eq!(app.blob_count(), 0);
    // 100 uploads of 102,400 bytes at once against a quota of 1,024,000: exactly ten fit —
    // the refused upload above gave back what it had reserved.
    let body = vec![b'q'; 102_400];
    let uploads = (0..100).map(|i| {
        let (app, token, conv, body) = (&app, acme.alice.token.clone(), conv.clone(), body.clone());
        async move {
            app.upload(As::Bearer(&token), &conv, &format!("q{i}.txt"), &body)
                .await
        }
    });
    let results = futures::future::join_all(uploads).await;
    let created = only(results, 201, (413, "quota_exceeded")).len();
    assert_eq!(created, 10, "the quota admits exactly ten");
    assert_eq!(app.blob_count(), 10);
    // Another user has a quota of their own.
    app.upload(As::Bearer(&acme.bob.token), &conv, "b.txt", &body)
        .await
        .expect(201);
}

/// Sends `POST /files` with a body that starts with `start` (after the head) and goes on with
/// `filler` bytes for as long as the server reads (at most 256 MiB of a declared 1 GiB); answers
/// the server's answer (its JSON error) and how much was sent before it came.
async fn endless_upload(app: &TestApp, token: &str, start: &str, filler: u8) -> (Value, usize) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = app.base.trim_start_matches("http://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connect");
    let (mut read, mut write) = tcp.into_split();
    let head = format!(
        "POST /api/v1/files HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n\
         {start}",
        1u64 << 30
    );
    let answered = std::sync::Arc::new(AtomicBool::new(false));
    let done = answered.clone();
    let sender = tokio::spawn(async move {
        // The write half is handed back, not dropped: the request stays unfinished.
        let mut sent = 0usize;
        if write.write_all(head.as_bytes()).await.is_err() {
            return (sent, write);
        }
        let chunk = vec![filler; 64 * 1024];
        while sent < 256 << 20 && !done.load(Ordering::Relaxed) {
            if write.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
        (sent, write)
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let complete = |a: &[u8]| {
        let text = String::from_utf8_lossy(a);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        let length = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().to_owned())
            })
            .and_then(|v| v.parse::<usize>().ok());
        length.is_some_and(|n| body.len() >= n)
    };
    while !complete(&answer) {
        let n = tokio::time::timeout(std::time::Duration::from_secs(20), read.read(&mut buf))
            .await
            .expect("an answer while the body is still being sent")
            .expect("the answer is readable");
        assert!(n > 0, "the connection ended without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    answered.store(true, Ordering::Relaxed);
    let (sent, _write) = sender.await.unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    let body: Value =
        serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).expect("a JSON error");
    (body, sent)
}

/// The upload's body has no overall cap (the file's limit is enforced while it streams), so the
/// `conversation_id` field is read only up to what an id can take: an endless one is refused
/// (400 naming it) while the client is still sending, not read whole into memory first. The
/// request declares 1 GiB; the client stops after 256 MiB, so a server that reads the field
/// whole never answers. CORE-6, RATE-5: the same holds for what comes before any field's
/// bytes — a body with no boundary at all, or a header line that never ends, which the
/// multipart reader would hold whole while it looked for their end.
pub(crate) async fn an_endless_id_field_is_refused_without_reading_it(app: TestApp) {
    let (acme, _conv) = app.acme_private().await;
    let token = &acme.alice.token;
    let id_field =
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"conversation_id\"\r\n\r\n");
    let (body, sent) = endless_upload(&app, token, &id_field, b'0').await;
    assert_eq!(body["error"]["code"], "invalid_id", "{body}");
    assert_eq!(body["error"]["field"], "conversation_id", "{body}");
    assert!(
        sent < 64 << 20,
        "the server read {sent} bytes of an id before refusing it"
    );
    let endless_header =
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"");
    for (start, what) in [
        ("", "no boundary"),
        (endless_header.as_str(), "a header line"),
    ] {
        let (body, sent) = endless_upload(&app, token, start, b'a').await;
        assert_eq!(body["error"]["code"], "multipart_invalid", "{what}: {body}");
        assert!(
            sent < 64 << 20,
            "{what}: the server read {sent} bytes before refusing"
        );
    }
    assert_eq!(app.blob_count(), 0);
}
