//! One gateway connection, in the mini-redis manner: a [`Connection`] owns the socket and reads
//! and writes typed frames (inbound frames become a `protocol::Command`, with the size and rate
//! limits applied; failures are a typed [`ReadError`]); `run` drives it through HELLO, then
//! IDENTIFY or RESUME within the timeout (`start`), then one `select!` loop over the socket, the
//! hub's frames, the heartbeat deadline and shutdown.

use super::hub::{Command as HubCommand, ConnId, Outbound};
use super::protocol::{self, CloseCode, Command};
use super::start::{identify, resume, Start, Started};
use super::{Gateway, UpgradeContext};
use crate::config::GatewayConfig;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use conclave_core::event::PresenceStatus;
use conclave_core::model::GatewaySession;
use conclave_core::service::Actor;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// Why the loop ended.
enum End {
    Close(CloseCode, &'static str),
    /// The hub asked to close with this code.
    Hub(u16, &'static str),
    /// The client went away.
    Gone,
    /// Node shutdown: RECONNECT was sent.
    Shutdown,
}

/// Why no command could be read.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The client closed the socket or it failed.
    Gone,
    /// The client broke a rule: close with this code.
    Refused(CloseCode, &'static str),
}

impl From<ReadError> for End {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Gone => Self::Gone,
            ReadError::Refused(code, why) => Self::Close(code, why),
        }
    }
}

/// A token bucket for inbound frames (RATE-3).
struct FrameBudget {
    tokens: f64,
    capacity: f64,
    per_sec: f64,
    last: Instant,
}

impl FrameBudget {
    fn new(per_minute: u32) -> Self {
        let capacity = f64::from(per_minute);
        Self {
            tokens: capacity,
            capacity,
            per_sec: capacity / 60.0,
            last: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.per_sec)
            .min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// How long a closing socket waits for the client's close frame (RFC 6455 §7.1.1), and at most
/// for its own close frame to leave.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// A gateway socket with typed frames: the socket's two halves and the inbound limits.
pub struct Connection {
    sink: futures::stream::SplitSink<WebSocket, Message>,
    stream: futures::stream::SplitStream<WebSocket>,
    budget: FrameBudget,
    frame_max_bytes: usize,
    limits_on: bool,
}

impl Connection {
    #[must_use]
    pub fn new(socket: WebSocket, config: &GatewayConfig) -> Self {
        let (sink, stream) = socket.split();
        Self {
            sink,
            stream,
            budget: FrameBudget::new(config.frames_per_minute),
            frame_max_bytes: config.frame_max_bytes,
            limits_on: config.limits_on,
        }
    }

    /// Reads the next command, enforcing the frame size and rate limits (RATE-3).
    pub async fn read_command(&mut self) -> Result<Command, ReadError> {
        loop {
            let msg = match self.stream.next().await {
                Some(Ok(m)) => m,
                Some(Err(_)) | None => return Err(ReadError::Gone),
            };
            let text = match msg {
                Message::Close(_) => return Err(ReadError::Gone),
                // Every other frame counts against the budget, control frames included: a Ping
                // flood costs the server an answer per frame.
                _ if self.limits_on && !self.budget.take() => {
                    return Err(ReadError::Refused(
                        CloseCode::RateLimited,
                        "too many frames",
                    ))
                }
                Message::Text(t) => t,
                Message::Binary(_) => {
                    return Err(ReadError::Refused(
                        CloseCode::DecodeError,
                        "frames are JSON text",
                    ))
                }
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            if text.len() > self.frame_max_bytes {
                return Err(ReadError::Refused(
                    CloseCode::PayloadTooLarge,
                    "frame too large",
                ));
            }
            return protocol::parse(text.as_str())
                .map_err(|e| ReadError::Refused(e.close_code(), "bad frame"));
        }
    }

    /// Writes one text frame (already serialized); `false` when the client is gone.
    pub async fn write_frame(&mut self, text: String) -> bool {
        self.sink
            .send(Message::Text(Utf8Bytes::from(text)))
            .await
            .is_ok()
    }

    /// Writes a non-DISPATCH frame with opcode `op`.
    pub async fn write_control(&mut self, op: u8, d: &serde_json::Value) -> bool {
        self.write_frame(protocol::control(op, d)).await
    }

    /// The closing handshake: sends the close frame, then keeps reading (and discarding) until
    /// the client answers with its own close frame, goes away, or `CLOSE_GRACE` passes; only
    /// then is the TCP connection dropped. Dropping it at once would reset it while the client
    /// is still sending, and the client would lose the close frame, so never learn why it was
    /// closed.
    pub async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        }));
        let sink = &mut self.sink;
        // Pongs owed for Pings already read go out first: tungstenite would otherwise queue the
        // last one after the close frame, which a client must treat as a protocol error.
        let sent = tokio::time::timeout(CLOSE_GRACE, async {
            sink.flush().await.is_ok() && sink.send(frame).await.is_ok()
        })
        .await
        .unwrap_or(false);
        if sent {
            let stream = &mut self.stream;
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                while let Some(Ok(msg)) = stream.next().await {
                    if matches!(msg, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
        let _ = tokio::time::timeout(CLOSE_GRACE, self.sink.close()).await;
    }

    /// Drops a socket whose client is already gone.
    async fn hang_up(&mut self) {
        let _ = self.sink.close().await;
    }
}

/// Runs one connection to its end.
pub async fn run(
    gw: Arc<Gateway>,
    socket: WebSocket,
    conn: ConnId,
    ctx: UpgradeContext,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connection = Connection::new(socket, &gw.config);
    let hello = json!({"heartbeat_interval_ms": gw.config.heartbeat_interval.as_millis() as u64, "session_id_hint": null});
    if !connection.write_control(protocol::HELLO, &hello).await {
        return;
    }
    let deadline = tokio::time::sleep(gw.config.identify_timeout);
    tokio::pin!(deadline);
    // Phase one: IDENTIFY or RESUME.
    let started = loop {
        let cmd = tokio::select! {
            () = &mut deadline => Err(End::Close(CloseCode::SessionTimedOut, "identify in time")),
            _ = shutdown.changed() => Err(End::Shutdown),
            c = connection.read_command() => c.map_err(End::from),
        };
        let result = match cmd {
            Ok(Command::Identify(id)) => identify(&gw, &ctx, conn, id).await,
            Ok(Command::Resume(r)) => match resume(&gw, &ctx, conn, r).await {
                Err(Start::Invalid) => {
                    let d = json!({"resumable": false});
                    let _ = connection
                        .write_control(protocol::INVALID_SESSION, &d)
                        .await;
                    continue;
                }
                other => other,
            },
            Ok(Command::Heartbeat(_)) => {
                let _ = connection
                    .write_control(protocol::HEARTBEAT_ACK, &serde_json::Value::Null)
                    .await;
                continue;
            }
            Ok(Command::Presence(_)) => {
                Err(Start::Refuse(CloseCode::NotAuthenticated, "identify first"))
            }
            Err(end) => {
                finish(&gw, &mut connection, None, end).await;
                return;
            }
        };
        match result {
            Ok(s) => break s,
            Err(Start::Refuse(code, why)) => {
                finish(&gw, &mut connection, None, End::Close(code, why)).await;
                return;
            }
            Err(Start::Invalid) => unreachable!("handled above"),
        }
    };
    let Started {
        actor,
        gateway_session,
        mut rx,
    } = started;
    // Phase two: live.
    let interval = gw.config.heartbeat_interval;
    let mut heartbeat_deadline = Instant::now() + interval.mul_f32(1.5);
    let end = loop {
        let sleep = tokio::time::sleep_until(heartbeat_deadline.into());
        tokio::select! {
            biased;
            _ = shutdown.changed() => break End::Shutdown,
            out = rx.recv() => match out {
                Some(Outbound::Frame(f)) => {
                    if !connection.write_frame(f).await {
                        break End::Gone;
                    }
                }
                Some(Outbound::Close(code, why)) => break End::Hub(code, why),
                None => break End::Hub(CloseCode::UnknownError.code(), "dropped by the server"),
            },
            cmd = connection.read_command() => match cmd {
                Ok(Command::Heartbeat(seq)) => {
                    heartbeat_deadline = Instant::now() + interval.mul_f32(1.5);
                    if let Some(s) = seq {
                        let _ = gw.hub.send(HubCommand::Ack { conn, s }).await;
                    }
                    if actor.session.expires_at <= gw.services.clock.now() {
                        break End::Close(CloseCode::AuthenticationFailed, "session expired");
                    }
                    if !gw.services.credential_still_valid(&actor).await {
                        break End::Close(CloseCode::AuthenticationFailed, "credential revoked");
                    }
                    if !connection.write_control(protocol::HEARTBEAT_ACK, &serde_json::Value::Null).await {
                        break End::Gone;
                    }
                }
                Ok(Command::Presence(p)) => {
                    let status = match p.status {
                        protocol::ClientStatus::Online => PresenceStatus::Online,
                        protocol::ClientStatus::Idle => PresenceStatus::Idle,
                    };
                    let _ = gw.hub.send(HubCommand::Presence { conn, status }).await;
                }
                Ok(Command::Identify(_) | Command::Resume(_)) => break End::Close(CloseCode::AlreadyAuthenticated, "already authenticated"),
                Err(e) => break e.into(),
            },
            () = sleep => break End::Close(CloseCode::SessionTimedOut, "missed heartbeat"),
        }
    };
    finish(
        &gw,
        &mut connection,
        Some((conn, &actor, gateway_session)),
        end,
    )
    .await;
}

/// Unregisters, saves the session for RESUME (on any node), and closes the socket.
async fn finish(
    gw: &Gateway,
    connection: &mut Connection,
    registered: Option<(ConnId, &Actor, uuid::Uuid)>,
    end: End,
) {
    if let Some((conn, actor, id)) = registered {
        let (tx, rx) = oneshot::channel();
        let checkpoint = if gw
            .hub
            .send(HubCommand::Unregister { conn, reply: tx })
            .await
            .is_ok()
        {
            rx.await.ok().flatten()
        } else {
            None
        };
        // A revoked credential's session is not kept.
        let resumable = !matches!(
            end,
            End::Hub(4004, _) | End::Close(CloseCode::AuthenticationFailed, _)
        );
        if let (Some(cp), true) = (checkpoint, resumable) {
            let saved = GatewaySession {
                id,
                user_id: actor.user.id,
                auth_session_id: actor.session.id,
                last_s: cp.s as i64,
                position: cp.position as i64,
                epoch: gw.fanout.epoch(),
                conversations: cp.conversations.into_iter().collect(),
                saved_at: gw.services.clock.now(),
            };
            if let Err(e) = gw.services.save_gateway_session(&saved).await {
                tracing::warn!(error = %e, "could not save a gateway session for resume");
            }
        }
    }
    match end {
        End::Close(code, why) => connection.close(code.code(), why).await,
        End::Hub(code, why) => connection.close(code, why).await,
        End::Shutdown => {
            let _ = connection
                .write_control(protocol::RECONNECT, &serde_json::Value::Null)
                .await;
            connection
                .close(1001, "server restarting: reconnect and resume")
                .await;
        }
        End::Gone => connection.hang_up().await,
    }
}
