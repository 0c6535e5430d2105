//! A small gateway client for the tests: connect, identify, read events with a timeout.

use crate::helpers::TestApp;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Ws {
    pub socket: Socket,
    pub hello: Value,
    /// The last `s` seen.
    pub last_s: u64,
    /// Presence arrives whenever peers come and go; tests that are not about it skip it.
    pub skip_presence: bool,
}

const WAIT: Duration = Duration::from_secs(10);

/// The ids of the conversations a READY lists, in order.
#[track_caller]
pub fn ready_conversation_ids(ready: &Value) -> Vec<String> {
    let listed = ready["conversations"]
        .as_array()
        .expect("READY lists conversations");
    let ids = listed.iter().map(|c| c["id"].as_str().map(str::to_owned));
    ids.collect::<Option<_>>()
        .expect("an id on every conversation")
}

impl Ws {
    /// Opens `/gateway?v=1` and reads HELLO.
    pub async fn connect(app: &TestApp) -> Ws {
        Ws::connect_with(app, &[]).await
    }

    /// Opens `/gateway?v=1` with extra request headers (Origin, Cookie) and reads HELLO.
    pub async fn connect_with(app: &TestApp, headers: &[(&str, &str)]) -> Ws {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("{}/gateway?v=1", app.base.replacen("http", "ws", 1));
        let mut req = url.into_client_request().expect("request");
        for (k, v) in headers {
            req.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let (socket, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("gateway upgrade");
        let mut ws = Ws {
            socket,
            hello: Value::Null,
            last_s: 0,
            skip_presence: true,
        };
        let hello = ws.frame().await.expect("HELLO");
        assert_eq!(hello["op"], 10, "HELLO first: {hello}");
        ws.hello = hello;
        ws
    }

    /// Connects and identifies; answers READY's `d`.
    pub async fn identify(app: &TestApp, token: &str) -> (Ws, Value) {
        let mut ws = Ws::connect(app).await;
        ws.send(json!({"op": 2, "d": {"token": format!("Bearer {token}"), "client": "tests/1.0.0", "protocol_version": 1}})).await;
        let ready = ws.event().await;
        assert_eq!(ready["t"], "READY", "READY after IDENTIFY: {ready}");
        (ws, ready["d"].clone())
    }

    pub async fn send(&mut self, v: Value) {
        self.socket
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("send frame");
    }

    pub async fn send_raw(&mut self, text: String) {
        let _ = self.socket.send(Message::Text(text.into())).await;
    }

    /// The next frame; `None` when the socket closed.
    pub async fn frame(&mut self) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("a frame within the timeout")?;
            match msg.ok()? {
                Message::Text(t) => {
                    return Some(serde_json::from_str(t.as_str()).expect("JSON frame"))
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// The next DISPATCH (skipping heartbeat acks), recording its `s`.
    pub async fn event(&mut self) -> Value {
        loop {
            let f = self.frame().await.expect("an event, not a close");
            if f["op"] == 11 {
                continue;
            }
            if let Some(s) = f["s"].as_u64() {
                assert!(s > self.last_s, "s increases: {s} after {}", self.last_s);
                self.last_s = s;
            }
            if self.skip_presence && f["t"] == "PRESENCE_UPDATE" {
                continue;
            }
            return f;
        }
    }

    /// The next event named `t`, failing on any other event before it.
    pub async fn expect(&mut self, t: &str) -> Value {
        let e = self.event().await;
        assert_eq!(e["t"], t, "expected {t}, got {e}");
        e["d"].clone()
    }

    /// Reads until the socket closes; answers the close code (skipping other frames).
    pub async fn close_code(&mut self) -> u16 {
        loop {
            let msg = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("a close within the timeout");
            match msg {
                Some(Ok(Message::Close(Some(f)))) => return u16::from(f.code),
                Some(Ok(Message::Close(None))) | None => return u16::from(CloseCode::Abnormal),
                Some(Ok(_)) => continue,
                Some(Err(_)) => return u16::from(CloseCode::Abnormal),
            }
        }
    }

    /// The socket of a credential rotated with a 60-second grace period: it still answers a
    /// heartbeat, and once the app's clock is past the grace period it is closed with 4004.
    pub async fn outlives_the_grace_period_only(&mut self, app: &TestApp) {
        self.heartbeat().await;
        loop {
            let f = self
                .frame()
                .await
                .expect("still open within the grace period");
            if f["op"] == 11 {
                break;
            }
        }
        app.clock.advance(chrono::Duration::seconds(61));
        self.heartbeat().await;
        assert_eq!(self.close_code().await, 4004);
    }

    /// RESUMEs session `session_id` of `token` from `seq`, retrying while the server has not
    /// saved the old connection's state yet (INVALID_SESSION); answers the socket and the first
    /// frame after the RESUME.
    pub async fn resume(app: &TestApp, token: &str, session_id: &str, seq: u64) -> (Ws, Value) {
        for _ in 0..50 {
            let mut ws = Ws::connect(app).await;
            ws.send(json!({"op": 6, "d": {"token": format!("Bearer {token}"), "session_id": session_id, "seq": seq}})).await;
            let f = ws.frame().await.unwrap();
            if f["op"] == 9 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            return (ws, f);
        }
        panic!("the session does not resume");
    }

    pub async fn heartbeat(&mut self) {
        let s = self.last_s;
        self.send(json!({"op": 1, "d": s})).await;
    }
}
