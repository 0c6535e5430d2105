//! A raw gateway client for the cluster tests: identify, resume, and read dispatches in order.

use super::*;

pub(super) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What the socket said next.
#[derive(Debug)]
pub(super) enum Frame {
    Json(Value),
    /// Closed, with the close code when there was a close frame.
    Closed(Option<u16>),
}

/// A gateway client.
pub(super) struct Gw {
    pub(super) socket: Socket,
    /// The last `s` received.
    pub(super) last_s: u64,
}

impl Gw {
    /// Opens the gateway and reads HELLO.
    pub(super) async fn connect(node: &Node) -> Gw {
        let (socket, _) = within(
            "gateway upgrade",
            tokio_tungstenite::connect_async(node.ws_url()),
        )
        .await
        .expect("gateway upgrade");
        let mut gw = Gw { socket, last_s: 0 };
        match gw.frame().await {
            Frame::Json(hello) => assert_eq!(hello["op"], 10, "HELLO first: {hello}"),
            other => panic!("HELLO first, got {other:?}"),
        }
        gw
    }

    /// Connects and identifies; answers READY's `d`.
    pub(super) async fn identify(node: &Node, token: &str) -> (Gw, Value) {
        let mut gw = Gw::connect(node).await;
        gw.send(json!({"op": 2, "d": {"token": format!("Bearer {token}"), "client": "test/1.0.0", "protocol_version": 1}}))
            .await;
        let ready = gw.dispatch().await;
        assert_eq!(
            ready["t"], "READY",
            "READY after IDENTIFY on {}: {ready}",
            node.name
        );
        (gw, ready["d"].clone())
    }

    /// RESUMEs on `node`; retries while the old session is still being saved (INVALID_SESSION),
    /// then answers the socket and its first frame after RESUME.
    pub(super) async fn resume(
        node: &Node,
        token: &str,
        session_id: &str,
        seq: u64,
    ) -> (Gw, Value) {
        let deadline = Instant::now() + WAIT;
        loop {
            let mut gw = Gw::connect(node).await;
            gw.last_s = seq;
            gw.send(json!({"op": 6, "d": {"token": format!("Bearer {token}"), "session_id": session_id, "seq": seq}}))
                .await;
            match gw.frame().await {
                Frame::Json(f) if f["op"] == 9 => {
                    assert!(
                        Instant::now() < deadline,
                        "RESUME on {} never accepted: {f}",
                        node.name
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Frame::Json(f) => return (gw, f),
                Frame::Closed(code) => {
                    panic!("RESUME on {}: socket closed with {code:?}", node.name)
                }
            }
        }
    }

    pub(super) async fn send(&mut self, v: Value) {
        within(
            "send a frame",
            self.socket.send(Message::Text(v.to_string().into())),
        )
        .await
        .expect("send a frame");
    }

    pub(super) async fn frame(&mut self) -> Frame {
        loop {
            match within("the next frame", self.socket.next()).await {
                Some(Ok(Message::Text(t))) => {
                    return Frame::Json(serde_json::from_str(t.as_str()).expect("a JSON frame"))
                }
                Some(Ok(Message::Close(c))) => return Frame::Closed(c.map(|c| u16::from(c.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Frame::Closed(None),
            }
        }
    }

    /// Checks a DISPATCH's `s` and records it.
    pub(super) fn track(&mut self, f: &Value) {
        if let Some(s) = f["s"].as_u64() {
            assert!(
                s > self.last_s,
                "s increases strictly: {s} after {} ({f})",
                self.last_s
            );
            self.last_s = s;
        }
    }

    /// The next DISPATCH other than presence and conversation set-up, skipping HEARTBEAT_ACKs.
    pub(super) async fn dispatch(&mut self) -> Value {
        loop {
            match self.frame().await {
                Frame::Json(f) if f["op"] == 11 => continue,
                Frame::Json(f) => {
                    assert_eq!(f["op"], 0, "a DISPATCH: {f}");
                    self.track(&f);
                    if f["t"] == "PRESENCE_UPDATE" {
                        continue;
                    }
                    // The conversation was created just before IDENTIFY: READY lists it (from
                    // the database), and its creation event may still be on its way through NATS
                    // to this node. Harmless, and not what these tests are about.
                    if f["t"] == "CONVERSATION_CREATE" || f["t"] == "PARTICIPANT_ADD" {
                        eprintln!("note: {} arrived after READY (s={})", f["t"], f["s"]);
                        continue;
                    }
                    return f;
                }
                Frame::Closed(code) => panic!("expected an event, the socket closed ({code:?})"),
            }
        }
    }

    /// The next MESSAGE_CREATE's `d`, failing on any other event.
    pub(super) async fn message(&mut self) -> Value {
        let f = self.dispatch().await;
        assert_eq!(f["t"], "MESSAGE_CREATE", "{f}");
        f["d"].clone()
    }

    /// Acknowledges everything received (HEARTBEAT with the last `s`) and waits for the ack.
    pub(super) async fn heartbeat(&mut self) {
        self.send(json!({"op": 1, "d": self.last_s})).await;
        match self.frame().await {
            Frame::Json(f) => assert_eq!(f["op"], 11, "HEARTBEAT_ACK: {f}"),
            Frame::Closed(code) => panic!("closed instead of HEARTBEAT_ACK ({code:?})"),
        }
    }
}
