//! One gateway connection, in the mini-redis manner: a [`Connection`] owns the socket and reads
//! and writes typed frames (inbound frames become a `protocol::Command`, with the size and rate
//! limits applied; failures are a typed [`ReadError`]); `run` drives it through HELLO, then
//! IDENTIFY or RESUME within the timeout (phase one), then one `select!` loop over the socket,
//! the outbox's signals, the heartbeat deadline and shutdown (phase two).
//!
//! The task does not carry the hub's frames: the hub writes them into the connection's outbox
//! itself, so a delivery wakes no task. The task wakes for what the client sends, its heartbeat
//! deadline, shutdown, and the outbox (the hub dropped the connection, or the socket would
//! block and the task waits for it to drain). Phase one and the ending run in futures of their
//! own, boxed: the task a live connection keeps in memory holds phase two's state only.

use super::hub::{Command as HubCommand, ConnId};
use super::outbox::{Outbox, Signal};
use super::protocol::{self, CloseCode, Command};
use super::socket::{GatewayIo, Socket};
use super::start::{identify, resume, Start, Started};
use super::{Gateway, UpgradeContext};
use crate::config::GatewayConfig;
use conclave_core::event::PresenceStatus;
use conclave_core::model::GatewaySession;
use conclave_core::service::Actor;
use futures::stream::FusedStream;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::sync::{oneshot, watch};
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

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

/// Of what a client sends after the codec stopped reading (a frame past its limit), at most
/// this much is read and dropped while the socket closes.
const DRAIN_MAX_BYTES: usize = 4 * 1024 * 1024;

/// A gateway socket with typed frames: the codec that reads frames (and answers pings and the
/// close handshake), the outbox every frame leaves through, and the inbound limits.
pub struct Connection {
    ws: WebSocketStream<GatewayIo>,
    out: Arc<Outbox>,
    budget: FrameBudget,
    frame_max_bytes: usize,
    limits_on: bool,
}

impl Connection {
    #[must_use]
    pub fn new(socket: Box<Socket>, config: &GatewayConfig) -> Self {
        let socket = *socket;
        Self {
            ws: socket.ws,
            out: socket.out,
            budget: FrameBudget::new(config.frames_per_minute),
            frame_max_bytes: config.frame_max_bytes,
            limits_on: config.limits_on,
        }
    }

    /// Reads the next command, enforcing the frame size and rate limits (RATE-3).
    pub async fn read_command(&mut self) -> Result<Command, ReadError> {
        loop {
            let msg = match self.ws.next().await {
                Some(Ok(m)) => m,
                // A frame (or message) past the codec's own limit (`Gateway::socket_limits`):
                // refused as one past ours is, with 4010, not dropped without a word.
                Some(Err(WsError::Capacity(_))) => {
                    return Err(ReadError::Refused(
                        CloseCode::PayloadTooLarge,
                        "frame too large",
                    ))
                }
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
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
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

    /// Writes a non-DISPATCH frame with opcode `op`; `false` when the client is gone.
    pub fn write_control(&self, op: u8, d: &serde_json::Value) -> bool {
        let text = protocol::control(op, d);
        self.out.send(|b| protocol::put_text_frame(b, &[&text]))
    }

    /// The closing handshake: sends the close frame after everything queued, then keeps reading
    /// (and discarding) until the client answers with its own close frame, goes away, or
    /// `CLOSE_GRACE` passes; only then is the TCP connection dropped. Dropping it at once would
    /// reset it while the client is still sending, and the client would lose the close frame,
    /// so never learn why it was closed.
    pub async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = Message::Close(Some(CloseFrame {
            code: code.into(),
            reason: Utf8Bytes::from_static(reason),
        }));
        let ws = &mut self.ws;
        // Pongs owed for Pings already read go out first: the codec would otherwise queue the
        // last one after the close frame, which a client must treat as a protocol error.
        let sent = tokio::time::timeout(CLOSE_GRACE, async {
            ws.flush().await.is_ok() && ws.send(frame).await.is_ok()
        })
        .await
        .unwrap_or(false);
        if sent {
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                while let Some(Ok(msg)) = ws.next().await {
                    if matches!(msg, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
            // The codec reads no more once it has failed (a frame past its size limit, of
            // which it read the header only): the rest of that frame, and the client's close
            // frame, are read here and dropped, so that the connection is not reset with them
            // unread (the same reason as above).
            if ws.is_terminated() {
                let _ = tokio::time::timeout(CLOSE_GRACE, drain(ws.get_mut())).await;
            }
        }
        let _ = tokio::time::timeout(CLOSE_GRACE, self.ws.close(None)).await;
    }

    /// Drops a socket whose client is already gone.
    async fn hang_up(&mut self) {
        let _ = tokio::time::timeout(CLOSE_GRACE, self.ws.close(None)).await;
    }
}

/// Reads and drops what the client sends, under the codec, until it closes its side, the
/// socket fails or [`DRAIN_MAX_BYTES`] have come.
async fn drain(io: &mut GatewayIo) {
    let mut buf = vec![0u8; 8 * 1024];
    let mut left = DRAIN_MAX_BYTES;
    while left > 0 {
        match io.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

/// Runs one connection to its end.
pub async fn run(
    gw: Arc<Gateway>,
    socket: Box<Socket>,
    conn: ConnId,
    ctx: UpgradeContext,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connection = Connection::new(socket, &gw.config);
    // Bound before it is awaited: a temporary would keep its room in this future's state.
    let phase_one = Box::pin(start(&gw, &mut connection, conn, ctx, &mut shutdown));
    if let Some(started) = phase_one.await {
        live(&gw, &mut connection, conn, started, &mut shutdown).await;
    }
}

/// Phase one: HELLO, then IDENTIFY or RESUME within the timeout. `None` when the connection
/// ended instead (it is closed then). Boxed, so that it moves to phase two as a pointer.
async fn start(
    gw: &Gateway,
    connection: &mut Connection,
    conn: ConnId,
    ctx: UpgradeContext,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Box<Started>> {
    let hello = json!({"heartbeat_interval_ms": gw.config.heartbeat_interval.as_millis() as u64, "session_id_hint": null});
    if !connection.write_control(protocol::HELLO, &hello) {
        return None;
    }
    let deadline = tokio::time::sleep(gw.config.identify_timeout);
    tokio::pin!(deadline);
    loop {
        let cmd = tokio::select! {
            () = &mut deadline => Err(End::Close(CloseCode::SessionTimedOut, "identify in time")),
            _ = shutdown.changed() => Err(End::Shutdown),
            c = connection.read_command() => c.map_err(End::from),
        };
        let out = connection.out.clone();
        let result = match cmd {
            Ok(Command::Identify(id)) => identify(gw, &ctx, conn, &out, id).await,
            Ok(Command::Resume(r)) => match resume(gw, &ctx, conn, &out, r).await {
                Err(Start::Invalid) => {
                    let d = json!({"resumable": false});
                    let _ = connection.write_control(protocol::INVALID_SESSION, &d);
                    continue;
                }
                other => other,
            },
            Ok(Command::Heartbeat(_)) => {
                let _ = connection.write_control(protocol::HEARTBEAT_ACK, &serde_json::Value::Null);
                continue;
            }
            Ok(Command::Presence(_)) => {
                Err(Start::Refuse(CloseCode::NotAuthenticated, "identify first"))
            }
            Err(end) => {
                finish(gw, connection, None, end).await;
                return None;
            }
        };
        match result {
            Ok(s) => return Some(Box::new(s)),
            Err(Start::Refuse(code, why)) => {
                finish(gw, connection, None, End::Close(code, why)).await;
                return None;
            }
            Err(Start::Invalid) => unreachable!("handled above"),
        }
    }
}

/// Phase two: the live session, until the client, the hub, the heartbeat or shutdown ends it.
async fn live(
    gw: &Gateway,
    connection: &mut Connection,
    conn: ConnId,
    started: Box<Started>,
    shutdown: &mut watch::Receiver<bool>,
) {
    let actor = &started.actor;
    let out = connection.out.clone();
    let interval = gw.config.heartbeat_interval;
    let missed = tokio::time::sleep(interval.mul_f32(1.5));
    tokio::pin!(missed);
    let stopping = shutdown.changed();
    tokio::pin!(stopping);
    let mut beats: u8 = 0;
    let end = loop {
        tokio::select! {
            biased;
            _ = &mut stopping => break End::Shutdown,
            signal = std::future::poll_fn(|cx| out.poll_signal(cx)) => match signal {
                Signal::Close(code, why) => break End::Hub(code, why),
                Signal::Gone => break End::Gone,
            },
            cmd = connection.read_command() => match cmd {
                Ok(Command::Heartbeat(seq)) => {
                    missed.as_mut().reset((Instant::now() + interval.mul_f32(1.5)).into());
                    beats = (beats + 1) % RECONCILE_EVERY;
                    let beat = Box::pin(heartbeat(gw, conn, actor, seq, beats == 0));
                    if let Some(end) = beat.await {
                        break end;
                    }
                    if !connection.write_control(protocol::HEARTBEAT_ACK, &serde_json::Value::Null) {
                        break End::Gone;
                    }
                }
                Ok(Command::Presence(p)) => {
                    let status = match p.status {
                        protocol::ClientStatus::Online => PresenceStatus::Online,
                        protocol::ClientStatus::Idle => PresenceStatus::Idle,
                    };
                    let told = Box::pin(gw.hub.send(HubCommand::Presence { conn, status }));
                    let _ = told.await;
                }
                Ok(Command::Identify(_) | Command::Resume(_)) => break End::Close(CloseCode::AlreadyAuthenticated, "already authenticated"),
                Err(e) => break e.into(),
            },
            () = &mut missed => break End::Close(CloseCode::SessionTimedOut, "missed heartbeat"),
        }
    };
    let ending = Box::pin(finish(
        gw,
        connection,
        Some((conn, actor, started.gateway_session)),
        end,
    ));
    ending.await;
}

/// Every this many heartbeats (≈ 2 min at the default interval) a live session's
/// subscriptions are reconciled with the store (`HubCommand::Reconcile`).
const RECONCILE_EVERY: u8 = 3;

/// A heartbeat's work besides the answer: the acknowledgement moves the resume checkpoint, the
/// credential is checked again, and with `reconcile` the subscriptions are held against the
/// conversations the user takes part in now — the bound on how long a lost removal event (or a
/// subscription that overtook its removal's) keeps a conversation's events coming. `Some` when
/// the connection must end. (Boxed by the caller: a live connection's future does not keep room
/// for it between heartbeats.)
async fn heartbeat(
    gw: &Gateway,
    conn: ConnId,
    actor: &Actor,
    seq: Option<u64>,
    reconcile: bool,
) -> Option<End> {
    if let Some(s) = seq {
        let _ = gw.hub.send(HubCommand::Ack { conn, s }).await;
    }
    if reconcile {
        reconcile_subscriptions(gw, conn, actor).await;
    }
    if actor.session.expires_at <= gw.services.clock.now() {
        return Some(End::Close(
            CloseCode::AuthenticationFailed,
            "session expired",
        ));
    }
    let lapsed = gw.services.credential_still_valid(actor).await.err()?;
    let (code, why) = CloseCode::lapsed(lapsed);
    Some(End::Close(code, why))
}

/// Sends the hub the conversations the user takes part in now and the orgs they may not read
/// now, read after the position the hub had dispatched (so a subscription dispatched after it may be newer than the list, and the
/// hub then keeps everything until the next time). A failed read changes nothing.
async fn reconcile_subscriptions(gw: &Gateway, conn: ConnId, actor: &Actor) {
    let (reply, answer) = oneshot::channel();
    if gw.hub.send(HubCommand::Position { reply }).await.is_err() {
        return;
    }
    let Ok(since) = answer.await else {
        return;
    };
    match gw.services.gateway_standing_now(actor).await {
        Ok((conversations, locked)) => {
            let cmd = HubCommand::Reconcile {
                conn,
                since,
                conversations,
                locked,
            };
            let _ = gw.hub.send(cmd).await;
        }
        Err(e) => tracing::warn!(error = %e, "could not reconcile a gateway session"),
    }
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
            let _ = connection.write_control(protocol::RECONNECT, &serde_json::Value::Null);
            connection
                .close(1001, "server restarting: reconnect and resume")
                .await;
        }
        End::Gone => connection.hang_up().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future an async fn returns (its state), from the fn's type alone.
    fn state_size<A, B, C, D, E, R>(_: fn(A, B, C, D, E) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    #[test]
    fn a_live_connection_keeps_a_small_future() {
        // What an idle connection holds in memory is mostly its task's future: phase one
        // (IDENTIFY, READY: several KiB of state) and the ending are boxed and gone by then.
        type Shutdown = &'static mut watch::Receiver<bool>;
        let start: fn(
            &'static Gateway,
            &'static mut Connection,
            ConnId,
            UpgradeContext,
            Shutdown,
        ) -> _ = start;
        let live: fn(
            &'static Gateway,
            &'static mut Connection,
            ConnId,
            Box<Started>,
            Shutdown,
        ) -> _ = live;
        let run: fn(Arc<Gateway>, Box<Socket>, ConnId, UpgradeContext, watch::Receiver<bool>) -> _ =
            run;
        let (start, live, run) = (state_size(start), state_size(live), state_size(run));
        assert!(
            start > 2 * 1024,
            "phase one is the large one: {start} bytes"
        );
        assert!(live <= 1024, "phase two: {live} bytes");
        assert!(
            run <= live + std::mem::size_of::<Connection>() + 256,
            "the connection future is phase two, the socket and a few pointers: {run} bytes"
        );
    }
}
