//! One gateway connection: HELLO, then IDENTIFY or RESUME within the timeout, then one
//! `select!` loop over the socket, the hub's frames, the heartbeat deadline and shutdown.

use super::hub::{Checkpoint, Command as HubCommand, ConnId, ConnLimit, Outbound, Replay};
use super::protocol::{self, CloseCode, Command, Identify, Resume};
use super::{Gateway, UpgradeContext};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use conclave_core::credential::Scope;
use conclave_core::event::PresenceStatus;
use conclave_core::model::{ConversationState, GatewaySession};
use conclave_core::service::Actor;
use conclave_core::ConversationId;
use futures::{SinkExt, StreamExt};
use secrecy::ExposeSecret;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

type Sink = futures::stream::SplitSink<WebSocket, Message>;
type Stream = futures::stream::SplitStream<WebSocket>;

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

async fn send_text(sink: &mut Sink, text: String) -> bool {
    sink.send(Message::Text(Utf8Bytes::from(text)))
        .await
        .is_ok()
}

/// How long a closing socket waits for the client's close frame (RFC 6455 §7.1.1), and at most
/// for its own close frame to leave.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The closing handshake: sends the close frame, then keeps reading (and discarding) until the
/// client answers with its own close frame, goes away, or `CLOSE_GRACE` passes; only then is
/// the TCP connection dropped. Dropping it at once would reset it while the client is still
/// sending, and the client would lose the close frame, so never learn why it was closed.
async fn close(sink: &mut Sink, stream: &mut Stream, code: u16, reason: &'static str) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }));
    // Pongs owed for Pings already read go out first: tungstenite would otherwise queue the
    // last one after the close frame, which a client must treat as a protocol error.
    let sent = tokio::time::timeout(CLOSE_GRACE, async {
        sink.flush().await.is_ok() && sink.send(frame).await.is_ok()
    })
    .await
    .unwrap_or(false);
    if sent {
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(msg)) = stream.next().await {
                if matches!(msg, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
}

/// Reads the next text frame, enforcing size and rate limits.
async fn next_command(
    stream: &mut Stream,
    gw: &Gateway,
    budget: &mut FrameBudget,
) -> Result<Command, End> {
    loop {
        let msg = match stream.next().await {
            Some(Ok(m)) => m,
            Some(Err(_)) | None => return Err(End::Gone),
        };
        let text = match msg {
            Message::Close(_) => return Err(End::Gone),
            // Every other frame counts against the budget, control frames included: a Ping
            // flood costs the server an answer per frame.
            _ if gw.config.limits_on && !budget.take() => {
                return Err(End::Close(CloseCode::RateLimited, "too many frames"))
            }
            Message::Text(t) => t,
            Message::Binary(_) => {
                return Err(End::Close(CloseCode::DecodeError, "frames are JSON text"))
            }
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        if text.len() > gw.config.frame_max_bytes {
            return Err(End::Close(CloseCode::PayloadTooLarge, "frame too large"));
        }
        return protocol::parse(text.as_str()).map_err(|e| End::Close(e.close_code(), "bad frame"));
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
    let (mut sink, mut stream) = socket.split();
    let hello = json!({"heartbeat_interval_ms": gw.config.heartbeat_interval.as_millis() as u64, "session_id_hint": null});
    if !send_text(&mut sink, protocol::control(protocol::HELLO, &hello)).await {
        return;
    }
    let mut budget = FrameBudget::new(gw.config.frames_per_minute);
    let deadline = tokio::time::sleep(gw.config.identify_timeout);
    tokio::pin!(deadline);
    // Phase one: IDENTIFY or RESUME.
    let started = loop {
        let cmd = tokio::select! {
            () = &mut deadline => Err(End::Close(CloseCode::SessionTimedOut, "identify in time")),
            _ = shutdown.changed() => Err(End::Shutdown),
            c = next_command(&mut stream, &gw, &mut budget) => c,
        };
        let result = match cmd {
            Ok(Command::Identify(id)) => identify(&gw, &ctx, conn, id).await,
            Ok(Command::Resume(r)) => match resume(&gw, &ctx, conn, r).await {
                Err(Start::Invalid) => {
                    let _ = send_text(
                        &mut sink,
                        protocol::control(protocol::INVALID_SESSION, &json!({"resumable": false})),
                    )
                    .await;
                    continue;
                }
                other => other,
            },
            Ok(Command::Heartbeat(_)) => {
                let _ = send_text(
                    &mut sink,
                    protocol::control(protocol::HEARTBEAT_ACK, &serde_json::Value::Null),
                )
                .await;
                continue;
            }
            Ok(Command::Presence(_)) => {
                Err(Start::Refuse(CloseCode::NotAuthenticated, "identify first"))
            }
            Err(end) => {
                finish(&gw, &mut sink, &mut stream, None, end).await;
                return;
            }
        };
        match result {
            Ok(s) => break s,
            Err(Start::Refuse(code, why)) => {
                finish(&gw, &mut sink, &mut stream, None, End::Close(code, why)).await;
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
                    if !send_text(&mut sink, f).await {
                        break End::Gone;
                    }
                }
                Some(Outbound::Close(code, why)) => break End::Hub(code, why),
                None => break End::Hub(CloseCode::UnknownError.code(), "dropped by the server"),
            },
            cmd = next_command(&mut stream, &gw, &mut budget) => match cmd {
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
                    if !send_text(&mut sink, protocol::control(protocol::HEARTBEAT_ACK, &serde_json::Value::Null)).await {
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
                Err(end) => break end,
            },
            () = sleep => break End::Close(CloseCode::SessionTimedOut, "missed heartbeat"),
        }
    };
    finish(
        &gw,
        &mut sink,
        &mut stream,
        Some((conn, &actor, gateway_session)),
        end,
    )
    .await;
}

/// Unregisters, saves the session for RESUME (on any node), and closes the socket.
async fn finish(
    gw: &Gateway,
    sink: &mut Sink,
    stream: &mut Stream,
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
            if let Err(e) = gw.services.store.save_gateway_session(&saved).await {
                tracing::warn!(error = %e, "could not save a gateway session for resume");
            }
        }
    }
    match end {
        End::Close(code, why) => close(sink, stream, code.code(), why).await,
        End::Hub(code, why) => close(sink, stream, code, why).await,
        End::Shutdown => {
            let _ = send_text(
                sink,
                protocol::control(protocol::RECONNECT, &serde_json::Value::Null),
            )
            .await;
            close(
                sink,
                stream,
                1001,
                "server restarting: reconnect and resume",
            )
            .await;
        }
        End::Gone => {
            let _ = sink.close().await;
        }
    }
}

struct Started {
    actor: Actor,
    gateway_session: uuid::Uuid,
    rx: mpsc::Receiver<Outbound>,
}

enum Start {
    Refuse(CloseCode, &'static str),
    /// RESUME cannot be honoured: INVALID_SESSION, then the client may IDENTIFY.
    Invalid,
}

/// Authenticates the credential of IDENTIFY or RESUME: a bearer session token, a bot token
/// (`Bot …`), an API key holding `messages:read` (`Bearer cnv_k_…`; without it 4014), or for
/// browsers (no token) the session cookie of an allowed origin. A bot's or key's socket goes by
/// the id of the secret it used, so revoking that secret closes it (`RevokeSession`).
async fn authenticate(
    gw: &Gateway,
    ctx: &UpgradeContext,
    token: Option<&str>,
    access_token: Option<&str>,
) -> Result<Actor, Start> {
    if !access_granted(gw, ctx, access_token) {
        return Err(Start::Refuse(
            CloseCode::AuthenticationFailed,
            "access token missing or wrong",
        ));
    }
    let failed = Start::Refuse(CloseCode::AuthenticationFailed, "authentication failed");
    let ip = ctx.ip.map(|i| i.to_string());
    match token {
        Some(t) => {
            if let Some(bot) = t.strip_prefix("Bot ") {
                let actor = gw
                    .services
                    .authenticate_bot(bot.trim(), ip.as_deref())
                    .await
                    .map_err(|_| failed)?;
                return personal_2fa(gw, actor).await;
            }
            let t = t.strip_prefix("Bearer ").unwrap_or(t).trim();
            if t.starts_with("cnv_k_") {
                let actor = gw
                    .services
                    .authenticate_api_key(t, ip.as_deref())
                    .await
                    .map_err(|_| failed)?;
                if !actor.credential.allows(Scope::MessagesRead) {
                    return Err(Start::Refuse(
                        CloseCode::NotPermitted,
                        "the API key lacks messages:read",
                    ));
                }
                return personal_2fa(gw, actor).await;
            }
            let actor = gw
                .services
                .authenticate(t, ip.as_deref())
                .await
                .map_err(|_| failed)?;
            personal_2fa(gw, actor).await
        }
        None => {
            let cookie = ctx.cookie_token.as_deref().ok_or(Start::Refuse(
                CloseCode::AuthenticationFailed,
                "authentication failed",
            ))?;
            let actor = gw
                .services
                .authenticate(cookie, ip.as_deref())
                .await
                .map_err(|_| {
                    Start::Refuse(CloseCode::AuthenticationFailed, "authentication failed")
                })?;
            if actor.session.cookie {
                personal_2fa(gw, actor).await
            } else {
                Err(failed)
            }
        }
    }
}

/// The access-token gate (AUTH-9) covers every credential kind, the browser's cookie included:
/// IDENTIFY or RESUME carries `access_token` (what a browser can send), or the upgrade request
/// carried `X-API-Access-Token` (as every REST request does). A token given in the frame is the
/// one judged. Compared in constant time.
fn access_granted(gw: &Gateway, ctx: &UpgradeContext, given: Option<&str>) -> bool {
    let Some(gate) = &gw.access_token else {
        return true;
    };
    match given {
        Some(given) => conclave_core::token::secrets_equal(given, gate.expose_secret()),
        None => ctx.access_header_ok,
    }
}

/// A user a server admin requires to use 2FA gets no gateway session until they turn it on
/// (4014, as REST answers 403 `mfa_setup_required`).
async fn personal_2fa(gw: &Gateway, actor: Actor) -> Result<Actor, Start> {
    match gw.services.check_personal_2fa(&actor, false).await {
        Ok(()) => Ok(actor),
        Err(_) => Err(Start::Refuse(
            CloseCode::NotPermitted,
            "two-factor authentication is required: turn it on first",
        )),
    }
}

fn check_client(
    gw: &Gateway,
    client: Option<&str>,
    protocol_version: Option<u32>,
) -> Result<(), Start> {
    if protocol_version.is_some_and(|v| v != 1) {
        return Err(Start::Refuse(
            CloseCode::UnsupportedVersion,
            "unsupported protocol version",
        ));
    }
    if let Some(client) = client {
        let version = client
            .split_once('/')
            .and_then(|(_, v)| semver::Version::parse(v.trim()).ok());
        let Some(version) = version else {
            return Err(Start::Refuse(
                CloseCode::DecodeError,
                "client must look like name/1.2.3",
            ));
        };
        if gw
            .min_client_version
            .as_ref()
            .is_some_and(|min| &version < min)
        {
            return Err(Start::Refuse(
                CloseCode::UnsupportedVersion,
                "client version too old",
            ));
        }
    }
    Ok(())
}

/// Registers with the hub (which starts buffering) and answers its current position.
async fn register(
    gw: &Gateway,
    conn: ConnId,
    actor: &Actor,
) -> Result<(u64, mpsc::Receiver<Outbound>), Start> {
    let (tx, rx) = mpsc::channel(gw.config.queue_frames);
    let (reply, answer) = oneshot::channel();
    let cmd = HubCommand::Register {
        conn,
        user: actor.user.id,
        session: actor.session.id,
        tx,
        reply,
    };
    gw.hub
        .send(cmd)
        .await
        .map_err(|_| Start::Refuse(CloseCode::UnknownError, "gateway unavailable"))?;
    if let Some(limit) = ConnLimit::of(&actor.credential) {
        // A bot or key receives only its org's conversations, only listed ones if listed, and
        // only the events its scopes read; sent before activation, so it applies to every
        // event the connection gets.
        gw.hub
            .send(HubCommand::Restrict { conn, limit })
            .await
            .map_err(|_| Start::Refuse(CloseCode::UnknownError, "gateway unavailable"))?;
    }
    match answer.await {
        Ok(Ok(position)) => Ok((position, rx)),
        Ok(Err(())) => Err(Start::Refuse(
            CloseCode::RateLimited,
            "too many connections for this user",
        )),
        Err(_) => Err(Start::Refuse(
            CloseCode::UnknownError,
            "gateway unavailable",
        )),
    }
}

/// Waits up to 5 s for this node's hub to reach stream position `target`.
async fn caught_up(gw: &Gateway, target: u64) -> bool {
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (reply, answer) = oneshot::channel();
        if gw.hub.send(HubCommand::Position { reply }).await.is_err() {
            return false;
        }
        match answer.await {
            Ok(p) if p >= target => return true,
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await
            }
            _ => return false,
        }
    }
}

async fn unregister(gw: &Gateway, conn: ConnId) {
    let (reply, answer) = oneshot::channel();
    if gw
        .hub
        .send(HubCommand::Unregister { conn, reply })
        .await
        .is_ok()
    {
        let _ = answer.await;
    }
}

async fn activate(
    gw: &Gateway,
    conn: ConnId,
    start: Checkpoint,
    replay: Option<Replay>,
    marker: Option<String>,
) -> Option<usize> {
    let (reply, answer) = oneshot::channel();
    gw.hub
        .send(HubCommand::Activate {
            conn,
            start,
            replay,
            marker,
            reply,
        })
        .await
        .ok()?;
    answer.await.ok().flatten()
}

/// Loads where a registered session starts — READY's conversations and every conversation it
/// subscribes to, the held-back ones of orgs its user may not read now included (AUTH-4a) —
/// and tells the hub which orgs those are.
async fn standing(
    gw: &Gateway,
    conn: ConnId,
    actor: &Actor,
) -> Result<(Vec<ConversationState>, HashSet<ConversationId>), Start> {
    let start = match gw.services.gateway_start(actor).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "loading conversations for READY failed");
            unregister(gw, conn).await;
            return Err(Start::Refuse(CloseCode::UnknownError, "try again"));
        }
    };
    let subscribed = start.conversations.keys().copied().collect();
    let cmd = HubCommand::Standing {
        conn,
        orgs: start.conversations,
        locked: start.locked,
    };
    if gw.hub.send(cmd).await.is_err() {
        return Err(Start::Refuse(
            CloseCode::UnknownError,
            "gateway unavailable",
        ));
    }
    Ok((start.ready, subscribed))
}

async fn identify(
    gw: &Gateway,
    ctx: &UpgradeContext,
    conn: ConnId,
    id: Identify,
) -> Result<Started, Start> {
    check_client(gw, id.client.as_deref(), id.protocol_version)?;
    let actor = authenticate(gw, ctx, id.token.as_deref(), id.access_token.as_deref()).await?;
    let (position, rx) = register(gw, conn, &actor).await?;
    let (states, conversations) = standing(gw, conn, &actor).await?;
    let gateway_session = uuid::Uuid::new_v4();
    let ready = json!({
        "session_id": gateway_session,
        "user": actor.user,
        "conversations": states,
        "resume_window_s": gw.config.resume_window.as_secs(),
    });
    let ready = serde_json::value::to_raw_value(&ready)
        .map_err(|_| Start::Refuse(CloseCode::UnknownError, "try again"))?;
    let start = Checkpoint {
        s: 0,
        position,
        conversations,
    };
    activate(
        gw,
        conn,
        start,
        None,
        Some(protocol::dispatch(None, "READY", &ready)),
    )
    .await
    .ok_or(Start::Refuse(CloseCode::UnknownError, "try again"))?;
    Ok(Started {
        actor,
        gateway_session,
        rx,
    })
}

async fn resume(
    gw: &Gateway,
    ctx: &UpgradeContext,
    conn: ConnId,
    r: Resume,
) -> Result<Started, Start> {
    let actor = authenticate(gw, ctx, r.token.as_deref(), r.access_token.as_deref()).await?;
    let Ok(id) = uuid::Uuid::try_parse(&r.session_id) else {
        return Err(Start::Invalid);
    };
    let saved = gw
        .services
        .store
        .take_gateway_session(id, actor.user.id, actor.session.id)
        .await
        .map_err(|_| Start::Invalid)?
        .ok_or(Start::Invalid)?;
    let window = chrono::Duration::from_std(gw.config.resume_window).unwrap_or_default();
    let usable =
        saved.epoch == gw.fanout.epoch() && saved.saved_at + window > gw.services.clock.now();
    if !usable {
        return Err(Start::Invalid);
    }
    if r.seq < saved.last_s as u64 {
        return Err(Start::Refuse(
            CloseCode::InvalidSeq,
            "sequence older than acknowledged",
        ));
    }
    let after = saved.position as u64;
    // The session may come from a node that was ahead of this one: wait (briefly) until this
    // hub has seen everything the session had.
    if !caught_up(gw, after).await {
        return Err(Start::Invalid);
    }
    let (position, rx) = register(gw, conn, &actor).await?;
    standing(gw, conn, &actor).await?;
    let events = match gw.fanout.replay(after, position).await {
        Ok(Some(events)) => events,
        Ok(None) | Err(_) => {
            unregister(gw, conn).await;
            return Err(Start::Invalid);
        }
    };
    let start = Checkpoint {
        s: saved.last_s as u64,
        position: after,
        conversations: saved.conversations.iter().copied().collect(),
    };
    let replay = Replay {
        events,
        client_seq: r.seq,
    };
    match activate(gw, conn, start, Some(replay), None).await {
        Some(_) => Ok(Started {
            actor,
            gateway_session: id,
            rx,
        }),
        None => {
            unregister(gw, conn).await;
            Err(Start::Refuse(CloseCode::InvalidSeq, "sequence never sent"))
        }
    }
}
