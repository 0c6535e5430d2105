//! RATE-5 at the TCP level: header-read, body and idle timeouts, `Connection: close` on an early
//! answer, and the global and per-IP connection caps.

use super::*;
use conclave_server::config::RateLimitSettings;

/// Reads until the server closes the connection; `Err` with what was read if it stays open.
async fn closed_within(
    stream: &mut (impl AsyncReadExt + Unpin),
    limit: Duration,
) -> Result<String, String> {
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    let closed = tokio::time::timeout(limit, read).await.is_ok();
    let text = String::from_utf8_lossy(&seen).into_owned();
    if closed {
        Ok(text)
    } else {
        Err(text)
    }
}

/// Reads one response with a `Content-Length` body.
async fn read_response(stream: &mut TcpStream) -> String {
    let read = async {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "closed before a response: {:?}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    return text;
                }
            }
        }
    };
    tokio::time::timeout(WAIT, read).await.expect("a response")
}

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// `host:port` of the app, for raw TCP clients.
fn tcp_addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// A SQLite app with the connection limits `limits` sets, on top of a one-minute header-read
/// timeout (so only the limit under test cuts a connection); `None` when skipped.
async fn tcp_app(rate_limits: OnOff, limits: impl FnOnce(&mut RateLimitSettings)) -> TestApp {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.rate_limits = rate_limits;
        c.rate_limit.header_read_timeout_secs = 60;
        limits(&mut c.rate_limit);
    });
    app.await.expect("a SQLite app always starts")
}

/// The next response on `stream` is a 200.
async fn answered_ok(stream: &mut TcpStream) {
    let response = read_response(stream).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

/// Asks `/health` on `stream` and expects a 200.
async fn served(stream: &mut TcpStream) {
    stream.write_all(HEALTH).await.unwrap();
    answered_ok(stream).await;
}

/// RATE-5: a slow header is cut at the header-read timeout (a silent new connection too),
/// while an idle keep-alive connection lives until the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_timed_out() {
    let app = tcp_app(OnOff::On, |l| {
        l.header_read_timeout_secs = 1;
        l.idle_timeout_secs = 3;
    })
    .await;
    let addr = tcp_addr(&app);

    // Half a request head, then nothing: closed after about a second.
    let started = Instant::now();
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: loc")
        .await
        .unwrap();
    closed_within(&mut slow, WAIT)
        .await
        .expect("a slow header is cut");
    assert!(started.elapsed() >= Duration::from_millis(900));

    // Connecting and saying nothing is no way around it.
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    closed_within(&mut silent, WAIT)
        .await
        .expect("a silent connection is cut");

    // Keep-alive: idle longer than the header timeout is fine, longer than the idle timeout not.
    let mut kept = TcpStream::connect(&addr).await.unwrap();
    served(&mut kept).await;
    // Proving a non-event: the connection must still be open after the header timeout.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    served(&mut kept).await;
    let idle_from = Instant::now();
    closed_within(&mut kept, WAIT)
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(
        idle_from.elapsed() >= Duration::from_millis(2_500),
        "closed by the idle timeout (3 s), not the header timeout: {:?}",
        idle_from.elapsed()
    );
}

/// A response sent before the request body was read (here 413) closes the connection and
/// says so, so a client does not send its next request down a closing socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_answer_says_connection_close() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let addr = tcp_addr(&app);
    let (mut rx, mut tx) = TcpStream::connect(&addr).await.unwrap().into_split();
    let size = 3 * 1024 * 1024;
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    );
    // The server stops reading at its body limit; the rest of the upload may fail.
    let upload = tokio::spawn(async move {
        tx.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..size / chunk.len() {
            tx.write_all(&chunk).await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let read_head = async {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = rx.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before a response");
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&seen).to_ascii_lowercase()
    };
    let head = tokio::time::timeout(WAIT, read_head)
        .await
        .expect("a response");
    upload.abort();
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
}

/// Proves a non-event: nothing arrives on `stream` for a short while.
async fn stays_unanswered(stream: &mut TcpStream) {
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(400), stream.read(&mut buf)).await;
    assert!(
        read.is_err(),
        "answered while the server was at its connection cap"
    );
}

/// RATE-5: at `max_connections` a further client waits until a connection closes; an upgraded
/// WebSocket holds its place too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped() {
    let app = tcp_app(OnOff::On, |l| l.max_connections = 2).await;
    let addr = tcp_addr(&app);
    let first = TcpStream::connect(&addr).await.unwrap();
    let second = TcpStream::connect(&addr).await.unwrap();
    let mut third = TcpStream::connect(&addr).await.unwrap();
    third.write_all(HEALTH).await.unwrap();
    stays_unanswered(&mut third).await;
    drop(first);
    answered_ok(&mut third).await;

    // A WebSocket keeps its place after the upgrade: with it and one answered keep-alive
    // connection open, a further client waits until the socket closes.
    drop(second);
    drop(third);
    let ws = crate::ws::Ws::connect(&app).await;
    let mut kept = TcpStream::connect(&addr).await.unwrap();
    served(&mut kept).await;
    let mut fourth = TcpStream::connect(&addr).await.unwrap();
    fourth.write_all(HEALTH).await.unwrap();
    stays_unanswered(&mut fourth).await;
    drop(ws);
    answered_ok(&mut fourth).await;
}

/// RATE-5: a body that trickles in is answered 408 (the JSON error shape) once the body
/// timeout has passed, and the connection is closed; a body that arrives in time is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_cut_at_the_body_timeout() {
    let app = tcp_app(OnOff::On, |l| l.body_timeout_secs = 1).await;
    let addr = tcp_addr(&app);
    let body = br#"{"username": "nobody", "password": "not the password"}"#;
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    // One byte now and then, never the whole body (the test ends before it would).
    let started = Instant::now();
    let (mut rx, mut tx) = slow.into_split();
    let trickle = tokio::spawn(async move {
        for byte in body.iter().take(body.len() - 1) {
            if tx.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        std::future::pending::<()>().await;
    });
    let text = closed_within(&mut rx, WAIT)
        .await
        .expect("the connection is closed");
    trickle.abort();
    let text = text.to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 408"), "{text}");
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    assert!(text.contains("x-request-id"), "{text}");
    assert!(text.contains(r#""code":"request_timeout""#), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut near the timeout, not when the body ends: {:?}",
        started.elapsed()
    );
    // A whole body in time is served as usual.
    let res = login_from(&app, None, "nobody").await;
    res.expect_error(401, "invalid_credentials");
}

/// RATE-5: at `max_connections_per_ip` a further connection from that address is answered
/// 429 and closed; once one closes, the address may connect again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_ip_are_capped() {
    let app = tcp_app(OnOff::On, |l| l.max_connections_per_ip = 2).await;
    let addr = tcp_addr(&app);
    let mut first = TcpStream::connect(&addr).await.unwrap();
    served(&mut first).await;
    let _second = TcpStream::connect(&addr).await.unwrap();
    let mut third = TcpStream::connect(&addr).await.unwrap();
    let refused = closed_within(&mut third, WAIT)
        .await
        .expect("the third connection is closed");
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    assert!(
        refused.contains(r#""code":"too_many_connections""#),
        "{refused}"
    );
    // The headers of every other answer (WEB-2), though the middleware never saw this one.
    for header in [
        "\r\nx-content-type-options: nosniff\r\n",
        "\r\nx-frame-options: deny\r\n",
        "\r\nreferrer-policy: no-referrer\r\n",
        "\r\ncache-control: no-store\r\n",
        "\r\ncontent-security-policy: default-src 'self';",
    ] {
        assert!(
            refused.to_ascii_lowercase().contains(header),
            "{header} in {refused}"
        );
    }
    drop(first);
    // Wait until the server has seen the close: then a new connection is served.
    let freed = async {
        loop {
            let mut next = TcpStream::connect(&addr).await.unwrap();
            next.write_all(HEALTH).await.unwrap();
            let text = closed_within(&mut next, Duration::from_millis(300))
                .await
                .unwrap_or_else(|open| open);
            if text.starts_with("HTTP/1.1 200") {
                return;
            }
            assert!(
                text.is_empty() || text.starts_with("HTTP/1.1 429"),
                "{text}"
            );
        }
    };
    tokio::time::timeout(WAIT, freed)
        .await
        .expect("a slot frees up when a connection closes");

    // `rate_limits = off` lifts the per-IP cap (load tests run many clients from one address).
    let off = tcp_app(OnOff::Off, |l| l.max_connections_per_ip = 2).await;
    let addr = tcp_addr(&off);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    let mut last = TcpStream::connect(&addr).await.unwrap();
    served(&mut last).await;
}
