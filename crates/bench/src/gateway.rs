//! One gateway client: TCP connect (optionally from a chosen loopback source address),
//! WebSocket handshake, HELLO → IDENTIFY → READY, then heartbeats and counting of this run's
//! MESSAGE_CREATE dispatches until told to stop.

use crate::api::CLIENT_NAME;
use crate::stats::{Counters, Errors, Latency};
use conclave_core::opcodes as op;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::{sleep_until, timeout, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

/// Where and how to connect; shared by every client.
pub struct Target {
    pub addr: SocketAddr,
    /// `ws://host:port/gateway?v=1`
    pub url: String,
    pub connect_timeout: Duration,
    /// No client lives past this instant, whatever happens.
    pub deadline: tokio::time::Instant,
}

/// State shared by every client and the coordinator.
pub struct Shared {
    pub counters: Counters,
    pub latency: Latency,
    pub errors: Errors,
    /// The clock that send timestamps are taken on (one process: one monotonic clock).
    pub epoch: Instant,
    /// `bench:<run>:` — the content prefix of this run's messages.
    pub marker: String,
}

impl Shared {
    pub fn new(run: &str) -> Self {
        Self {
            counters: Counters::default(),
            latency: Latency::new(),
            errors: Errors::default(),
            epoch: Instant::now(),
            marker: format!("bench:{run}:"),
        }
    }

    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The content a sender posts: the marker and the send time.
    pub fn stamp(&self) -> String {
        format!("{}{}", self.marker, self.now_ns())
    }

    /// If `content` is one of this run's messages, the send→receive latency in µs.
    pub fn latency_us(&self, content: &str) -> Option<u64> {
        let sent: u64 = content.strip_prefix(&self.marker)?.parse().ok()?;
        Some(self.now_ns().saturating_sub(sent) / 1000)
    }
}

/// One client to open.
pub struct Spec {
    pub index: usize,
    pub token: String,
    /// The conversation group this client belongs to (for expected-delivery accounting).
    pub group: usize,
    pub source: Option<IpAddr>,
}

/// Reported once per client when it is READY (`Some(group)`) or has given up (`None`).
pub type ReadyTx = mpsc::UnboundedSender<Option<usize>>;

#[derive(Deserialize)]
struct Frame<'a> {
    op: u8,
    #[serde(default)]
    s: Option<u64>,
    #[serde(default, borrow)]
    t: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    d: Option<Payload<'a>>,
}

/// The few fields of `d` the bench looks at; everything else is skipped.
#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default)]
    heartbeat_interval_ms: Option<u64>,
}

/// What the bench needs of a frame: its strings borrowed from the frame's text unless they
/// hold escapes (every delivery is parsed: no allocation on that path).
#[derive(Debug, PartialEq)]
pub struct Parsed<'a> {
    pub op: u8,
    pub s: Option<u64>,
    pub t: Option<Cow<'a, str>>,
    pub content: Option<Cow<'a, str>>,
    pub heartbeat_interval_ms: Option<u64>,
}

impl Parsed<'_> {
    /// The same frame, owning its strings.
    pub fn into_owned(self) -> Parsed<'static> {
        let own = |c: Option<Cow<'_, str>>| c.map(|c| Cow::Owned(c.into_owned()));
        Parsed {
            op: self.op,
            s: self.s,
            t: own(self.t),
            content: own(self.content),
            heartbeat_interval_ms: self.heartbeat_interval_ms,
        }
    }
}

/// Parses a frame; `d` may be an object, null, or (for HEARTBEAT) a number.
pub fn parse_frame(text: &str) -> Option<Parsed<'_>> {
    match serde_json::from_str::<Frame<'_>>(text) {
        Ok(f) => {
            let (content, heartbeat_interval_ms) = match f.d {
                Some(d) => (d.content, d.heartbeat_interval_ms),
                None => (None, None),
            };
            Some(Parsed {
                op: f.op,
                s: f.s,
                t: f.t,
                content,
                heartbeat_interval_ms,
            })
        }
        Err(_) => {
            let v: Value = serde_json::from_str(text).ok()?;
            Some(Parsed {
                op: u8::try_from(v.get("op")?.as_u64()?).ok()?,
                s: v.get("s").and_then(Value::as_u64),
                t: v.get("t")
                    .and_then(Value::as_str)
                    .map(|t| Cow::Owned(t.to_owned())),
                content: None,
                heartbeat_interval_ms: None,
            })
        }
    }
}

fn ws_config() -> WebSocketConfig {
    // Small buffers: the bench holds thousands of mostly idle sockets; 8 KiB takes a server's
    // batch of a dozen frames in one read.
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

fn ws_error_kind(e: &WsError) -> String {
    match e {
        WsError::Http(r) => format!("HTTP {}", r.status().as_u16()),
        WsError::Io(io) => format!("io {:?}", io.kind()),
        WsError::ConnectionClosed | WsError::AlreadyClosed => "closed".to_owned(),
        WsError::Protocol(p) => format!("protocol: {p}"),
        other => other.to_string(),
    }
}

async fn send_json(ws: &mut Ws, v: &Value) -> Result<(), WsError> {
    ws.send(Message::text(v.to_string())).await
}

/// Waits for the next frame that parses; a close or error ends it with a description.
async fn next_frame(ws: &mut Ws) -> Result<Parsed<'static>, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                return parse_frame(t.as_str())
                    .map(Parsed::into_owned)
                    .ok_or_else(|| "undecodable frame".to_owned());
            }
            Some(Ok(Message::Close(c))) => {
                return Err(match c {
                    Some(c) if c.reason.is_empty() => format!("closed {}", u16::from(c.code)),
                    Some(c) => format!("closed {} ({})", u16::from(c.code), c.reason.as_str()),
                    None => "closed".to_owned(),
                })
            }
            Some(Ok(Message::Binary(_))) => return Err("binary frame".to_owned()),
            Some(Ok(_)) => {} // ping/pong: tungstenite answers pings itself
            Some(Err(e)) => return Err(ws_error_kind(&e)),
            None => return Err("eof".to_owned()),
        }
    }
}

/// Connects and identifies; returns the socket, the heartbeat interval and the last `s`.
async fn open(spec: &Spec, target: &Target) -> Result<(Ws, Duration, Option<u64>), String> {
    let socket = if target.addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| format!("connect: socket: {:?}", e.kind()))?;
    if let Some(src) = spec.source {
        socket
            .bind(SocketAddr::new(src, 0))
            .map_err(|e| format!("connect: bind {src}: {:?}", e.kind()))?;
    }
    let stream = socket
        .connect(target.addr)
        .await
        .map_err(|e| format!("connect: tcp: {:?}", e.kind()))?;
    let _ = stream.set_nodelay(true);
    let mut req = target
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("connect: request: {e}"))?;
    req.headers_mut()
        .insert("user-agent", HeaderValue::from_static(CLIENT_NAME));
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(req, stream, Some(ws_config()))
        .await
        .map_err(|e| format!("connect: upgrade: {}", ws_error_kind(&e)))?;

    let hello = next_frame(&mut ws)
        .await
        .map_err(|e| format!("hello: {e}"))?;
    if hello.op != op::HELLO {
        return Err(format!("hello: expected op 10, got op {}", hello.op));
    }
    let interval = hello
        .heartbeat_interval_ms
        .filter(|&ms| ms > 0)
        .ok_or_else(|| "hello: no heartbeat_interval_ms".to_owned())?;

    let identify = json!({"op": op::IDENTIFY, "d": {
        "token": format!("Bearer {}", spec.token),
        "client": CLIENT_NAME,
        "protocol_version": 1,
    }});
    send_json(&mut ws, &identify)
        .await
        .map_err(|e| format!("identify: send: {}", ws_error_kind(&e)))?;

    let mut last_s = None;
    loop {
        let f = next_frame(&mut ws)
            .await
            .map_err(|e| format!("identify: {e}"))?;
        if f.s.is_some() {
            last_s = f.s;
        }
        match f.op {
            op::DISPATCH if f.t.as_deref() == Some("READY") => break,
            op::DISPATCH | op::HEARTBEAT_ACK => {}
            op::HEARTBEAT => {
                send_json(&mut ws, &json!({"op": op::HEARTBEAT, "d": last_s}))
                    .await
                    .map_err(|e| format!("identify: send: {}", ws_error_kind(&e)))?;
            }
            op::INVALID_SESSION => return Err("identify: INVALID_SESSION".to_owned()),
            op => return Err(format!("identify: unexpected op {op}")),
        }
    }
    Ok((ws, Duration::from_millis(interval), last_s))
}

/// Runs one client from connect to stop. Every error is counted in `shared.errors`.
pub async fn run(
    spec: Spec,
    target: Arc<Target>,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    ready: ReadyTx,
    mut stop: watch::Receiver<bool>,
) {
    let opened = {
        let Ok(_slot) = slots.acquire().await else {
            let _ = ready.send(None);
            return;
        };
        if *stop.borrow() {
            let _ = ready.send(None);
            return;
        }
        timeout(target.connect_timeout, open(&spec, &target)).await
    };
    let (mut ws, period, mut last_s) = match opened {
        Ok(Ok(v)) => v,
        Ok(Err(kind)) => {
            let sample = format!("client {}: {kind}", spec.index);
            // The close reason stays in the sample; the kind keeps only the code.
            let kind = match kind.find(" (") {
                Some(i) if kind.ends_with(')') => kind[..i].to_owned(),
                _ => kind,
            };
            shared.errors.add_with_sample(kind, || sample);
            let _ = ready.send(None);
            return;
        }
        Err(_) => {
            shared.errors.add("connect: timeout before READY");
            let _ = ready.send(None);
            return;
        }
    };
    let counters = &shared.counters;
    counters.alive.fetch_add(1, Ordering::Relaxed);
    let _ = ready.send(Some(spec.group));

    // First beat at a per-client offset inside the interval so that beats do not arrive in
    // bursts, then every interval.
    let offset = period.mul_f64((spec.index % 997) as f64 / 997.0);
    let mut beat = tokio::time::interval_at(
        tokio::time::Instant::now() + offset.max(period / 10),
        period,
    );
    beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut awaiting_ack = false;
    let shard = spec.index;
    // Made once, not per frame: re-arming a timer and a watch per delivery costs the bench more
    // than parsing the frame.
    let stopped = async { drop(stop.wait_for(|s| *s).await) };
    tokio::pin!(stopped);
    let deadline = sleep_until(target.deadline);
    tokio::pin!(deadline);

    let ended_by_us = loop {
        tokio::select! {
            biased;
            () = &mut stopped => break true,
            () = &mut deadline => break true,
            _ = beat.tick() => {
                if awaiting_ack {
                    shared.errors.add("heartbeat: no ACK within one interval");
                }
                if let Err(e) = send_json(&mut ws, &json!({"op": op::HEARTBEAT, "d": last_s})).await {
                    shared.errors.add(format!("disconnected: heartbeat send {}", ws_error_kind(&e)));
                    break false;
                }
                awaiting_ack = true;
            }
            msg = ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(c))) => {
                        let code = c.as_ref().map_or(0, |c| u16::from(c.code));
                        let reason = c.map(|c| c.reason.as_str().to_owned()).unwrap_or_default();
                        shared.errors.add_with_sample(
                            format!("disconnected: server closed {code}"),
                            || format!("client {}: server closed {code} {reason:?} after READY", spec.index),
                        );
                        break false;
                    }
                    Some(Ok(Message::Binary(_))) => {
                        shared.errors.add("unexpected binary frame");
                        continue;
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        shared.errors.add(format!("disconnected: {}", ws_error_kind(&e)));
                        break false;
                    }
                    None => {
                        shared.errors.add("disconnected: eof");
                        break false;
                    }
                };
                let Some(f) = parse_frame(text.as_str()) else {
                    shared.errors.add("undecodable frame");
                    continue;
                };
                match f.op {
                    op::DISPATCH => {
                        if f.s.is_some() {
                            last_s = f.s;
                        }
                        match f.t.as_deref() {
                            Some("MESSAGE_CREATE") => {
                                if let Some(us) = f.content.as_deref().and_then(|c| shared.latency_us(c)) {
                                    shared.latency.record_us(shard, us);
                                    counters.delivered(shard);
                                }
                            }
                            Some("MESSAGE_STREAM") => {
                                counters.stream_deltas.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {}
                        }
                    }
                    op::HEARTBEAT_ACK => awaiting_ack = false,
                    op::HEARTBEAT => {
                        if let Err(e) = send_json(&mut ws, &json!({"op": op::HEARTBEAT, "d": last_s})).await {
                            shared.errors.add(format!("disconnected: heartbeat send {}", ws_error_kind(&e)));
                            break false;
                        }
                    }
                    op::RECONNECT => {
                        shared.errors.add("server sent RECONNECT");
                        break false;
                    }
                    op::INVALID_SESSION => {
                        shared.errors.add("server sent INVALID_SESSION");
                        break false;
                    }
                    op => shared.errors.add(format!("unexpected op {op}")),
                }
            }
        }
    };
    counters.alive.fetch_sub(1, Ordering::Relaxed);
    if ended_by_us {
        let _ = timeout(Duration::from_secs(2), ws.close(None)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hello() {
        let f = parse_frame(
            r#"{"op":10,"d":{"heartbeat_interval_ms":41250,"session_id_hint":null},"s":null,"t":null}"#,
        )
        .unwrap();
        assert_eq!(f.op, op::HELLO);
        assert_eq!(f.heartbeat_interval_ms, Some(41250));
    }

    #[test]
    fn parses_message_create() {
        let f = parse_frame(
            r#"{"op":0,"s":7,"t":"MESSAGE_CREATE","d":{"id":"x","conversation_id":"c","seq":3,
            "author":{"id":"u","username":"a","display_name":null,"kind":"user"},
            "content":"bench:abc:12345","format":"text","reply_to":null,"attachments":[]}}"#,
        )
        .unwrap();
        assert_eq!(f.op, op::DISPATCH);
        assert_eq!(f.s, Some(7));
        assert_eq!(f.t.as_deref(), Some("MESSAGE_CREATE"));
        assert_eq!(f.content.as_deref(), Some("bench:abc:12345"));
    }

    #[test]
    fn parses_escaped_content_and_null_d() {
        let f =
            parse_frame(r#"{"op":0,"s":1,"t":"MESSAGE_CREATE","d":{"content":"a\"b"}}"#).unwrap();
        assert_eq!(f.content.as_deref(), Some("a\"b"));
        let f = parse_frame(r#"{"op":11,"d":null}"#).unwrap();
        assert_eq!(f.op, op::HEARTBEAT_ACK);
        let f = parse_frame(r#"{"op":1,"d":42}"#).unwrap();
        assert_eq!(f.op, op::HEARTBEAT);
        assert!(parse_frame("not json").is_none());
        assert!(parse_frame(r#"{"d":null}"#).is_none());
    }

    #[test]
    fn latency_from_stamp() {
        let s = Shared::new("run1");
        let stamp = s.stamp();
        assert!(stamp.starts_with("bench:run1:"));
        std::thread::sleep(Duration::from_millis(5));
        let us = s.latency_us(&stamp).unwrap();
        assert!((5_000..5_000_000).contains(&us), "{us}");
        assert_eq!(s.latency_us("bench:other:1"), None);
        assert_eq!(s.latency_us("hello"), None);
    }
}

#[cfg(test)]
mod mock_server {
    use super::*;
    use tokio::net::TcpListener;

    /// A tiny gateway: HELLO, expects IDENTIFY with the token, READY, answers heartbeats with
    /// ACK, sends two MESSAGE_CREATE (one of this run, one foreign) and waits for the close.
    async fn serve(listener: TcpListener, marker: String) -> Vec<Value> {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let mut seen = Vec::new();
        let hello = json!({"op":10,"d":{"heartbeat_interval_ms":100,"session_id_hint":null},"s":null,"t":null});
        ws.send(Message::text(hello.to_string())).await.unwrap();
        while let Some(Ok(m)) = ws.next().await {
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            seen.push(v.clone());
            match v["op"].as_u64().unwrap() {
                2 => {
                    let ready = json!({"op":0,"s":1,"t":"READY","d":{"session_id":"s","user":{},"conversations":[],"resume_window_s":60}});
                    ws.send(Message::text(ready.to_string())).await.unwrap();
                    for (s, content) in [(2, format!("{marker}1")), (3, "bench:zzz:1".to_owned())] {
                        let m = json!({"op":0,"s":s,"t":"MESSAGE_CREATE","d":{"content":content}});
                        ws.send(Message::text(m.to_string())).await.unwrap();
                    }
                }
                1 => {
                    ws.send(Message::text(r#"{"op":11,"d":null,"s":null,"t":null}"#))
                        .await
                        .unwrap();
                }
                _ => {}
            }
        }
        seen
    }

    /// One client (index 0, token `tok`, in `group`) of a gateway at `addr`, with generous
    /// timeouts.
    fn one_client(
        addr: SocketAddr,
        group: usize,
        shared: &Arc<Shared>,
        ready: ReadyTx,
        stop: watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = ()> {
        let target = Arc::new(Target {
            addr,
            url: format!("ws://{addr}/gateway?v=1"),
            connect_timeout: Duration::from_secs(5),
            deadline: tokio::time::Instant::now() + Duration::from_secs(20),
        });
        let spec = Spec {
            index: 0,
            token: "tok".into(),
            group,
            source: None,
        };
        let slots = Arc::new(Semaphore::new(1));
        run(spec, target, shared.clone(), slots, ready, stop)
    }

    #[tokio::test]
    async fn client_identifies_heartbeats_and_counts() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::new("t1"));
        let server = tokio::spawn(serve(listener, shared.marker.clone()));
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let client = tokio::spawn(one_client(addr, 3, &shared, ready_tx, stop_rx));
        assert_eq!(ready_rx.recv().await, Some(Some(3)));
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(shared.counters.alive(), 1);
        stop_tx.send(true).unwrap();
        client.await.unwrap();
        let seen = server.await.unwrap();
        assert_eq!(shared.counters.alive(), 0);
        assert_eq!(
            shared.counters.deliveries(),
            1,
            "only this run's message counts"
        );
        assert_eq!(shared.latency.merged().len(), 1);
        assert_eq!(seen[0]["op"], 2);
        assert_eq!(seen[0]["d"]["token"], "Bearer tok");
        assert_eq!(seen[0]["d"]["protocol_version"], 1);
        let beats: Vec<&Value> = seen.iter().filter(|v| v["op"] == 1).collect();
        assert!(beats.len() >= 3, "heartbeats every 100 ms: {seen:?}");
        assert_eq!(
            beats.last().unwrap()["d"],
            3,
            "heartbeat carries the last s"
        );
        assert!(
            shared.errors.counts().is_empty(),
            "{:?}",
            shared.errors.counts()
        );
    }

    #[tokio::test]
    async fn refused_upgrade_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let (mut tcp, _) = listener.accept().await.unwrap();
            let _ = tcp
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
        });
        let shared = Arc::new(Shared::new("t2"));
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
        let (_stop_tx, stop_rx) = watch::channel(false);
        one_client(addr, 0, &shared, ready_tx, stop_rx).await;
        assert_eq!(ready_rx.recv().await, Some(None));
        let counts = shared.errors.counts();
        assert_eq!(
            counts.get("connect: upgrade: HTTP 400"),
            Some(&1),
            "{counts:?}"
        );
    }
}
