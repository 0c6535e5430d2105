//! How a connection starts: IDENTIFY (a new session: READY with the user's conversations) or
//! RESUME (a saved session rebuilt from its checkpoint and the retained events it missed), each
//! after the credential check of `identify`; both register with the hub, tell it where the
//! session stands, and activate it.

use super::hub::{Checkpoint, Command as HubCommand, ConnId, Replay};
use super::identify::{authenticate, Refusal};
use super::outbox::Outbox;
use super::protocol::{self, CloseCode, Identify, Resume};
use super::{Gateway, UpgradeContext};
use conclave_core::model::ConversationState;
use conclave_core::service::Actor;
use conclave_core::ConversationId;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

/// A session that started: who it is and its id for RESUME (the hub writes its frames into the
/// connection's outbox).
pub(super) struct Started {
    pub(super) actor: Actor,
    pub(super) gateway_session: uuid::Uuid,
}

/// Why a session did not start.
pub(super) enum Start {
    Refuse(CloseCode, &'static str),
    /// RESUME cannot be honoured: INVALID_SESSION, then the client may IDENTIFY.
    Invalid,
}

impl From<Refusal> for Start {
    fn from(Refusal(code, why): Refusal) -> Self {
        Self::Refuse(code, why)
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
    out: &Arc<Outbox>,
) -> Result<u64, Start> {
    let (reply, answer) = oneshot::channel();
    let cmd = HubCommand::Register {
        conn,
        user: actor.user.id,
        session: actor.session.id,
        out: out.clone(),
        after: gw.fanout.published(),
        reply,
    };
    gw.hub
        .send(cmd)
        .await
        .map_err(|_| Start::Refuse(CloseCode::UnknownError, "gateway unavailable"))?;
    if actor.credential.is_limited() {
        // A bot or key receives only its org's conversations, only listed ones if listed, and
        // only the events its scopes read; sent before activation, so it applies to every
        // event the connection gets.
        let credential = actor.credential.clone();
        gw.hub
            .send(HubCommand::Restrict { conn, credential })
            .await
            .map_err(|_| Start::Refuse(CloseCode::UnknownError, "gateway unavailable"))?;
    }
    match answer.await {
        Ok(Ok(position)) => Ok(position),
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

/// The credential checked again once the hub routes the connection's events (right after
/// `register`). `authenticate` may have read it — or served it from the cache — just before a
/// revocation (logout, a revoked session or key, a disabled account, a 2FA requirement) whose
/// event then reached the hub before the connection was registered there and so closed
/// nothing. Such a revocation was committed before its event went out, so this read sees it;
/// one whose event comes later finds the connection registered (a starting connection gets
/// every control at activation). Refused as the heartbeat's re-check refuses.
async fn still_valid(gw: &Gateway, conn: ConnId, actor: &Actor) -> Result<(), Start> {
    let Err(lapsed) = gw.services.credential_still_valid(actor).await else {
        return Ok(());
    };
    unregister(gw, conn).await;
    let (code, why) = CloseCode::lapsed(lapsed);
    Err(Start::Refuse(code, why))
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

pub(super) async fn identify(
    gw: &Gateway,
    ctx: &UpgradeContext,
    conn: ConnId,
    out: &Arc<Outbox>,
    id: Identify,
) -> Result<Started, Start> {
    check_client(gw, id.client.as_deref(), id.protocol_version)?;
    let actor = authenticate(gw, ctx, id.token.as_deref(), id.access_token.as_deref()).await?;
    let position = register(gw, conn, &actor, out).await?;
    still_valid(gw, conn, &actor).await?;
    let (states, conversations) = standing(gw, conn, &actor).await?;
    let gateway_session = uuid::Uuid::new_v4();
    // AZ-5: the account as `GET /users/@me` shows it to this credential — a key without
    // `org:read` (which that route needs) gets the public summary, not the owner's email and
    // account flags.
    let shown_whole = conclave_core::policy::credentials::scope_allows(
        &actor.credential,
        Some(conclave_core::credential::Scope::OrgRead),
    );
    let user = if shown_whole {
        json!(actor.user)
    } else {
        json!(actor.user.summary())
    };
    let ready = json!({
        "session_id": gateway_session,
        "user": user,
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
    })
}

pub(super) async fn resume(
    gw: &Gateway,
    ctx: &UpgradeContext,
    conn: ConnId,
    out: &Arc<Outbox>,
    r: Resume,
) -> Result<Started, Start> {
    let actor = authenticate(gw, ctx, r.token.as_deref(), r.access_token.as_deref()).await?;
    let Ok(id) = uuid::Uuid::try_parse(&r.session_id) else {
        return Err(Start::Invalid);
    };
    // Only the owner (same user, same login session) takes it, inside the store's query.
    let saved = gw
        .services
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
    let position = register(gw, conn, &actor, out).await?;
    still_valid(gw, conn, &actor).await?;
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
        }),
        None => {
            unregister(gw, conn).await;
            Err(Start::Refuse(CloseCode::InvalidSeq, "sequence never sent"))
        }
    }
}
