//! The hub: one task per node that owns every open gateway connection's routing state and
//! turns the fan-out stream into frames. Events are applied in stream order, so a socket's view
//! of who may read what follows the database exactly: a removal takes effect right after the
//! removal event, for every socket at once, with no per-recipient database query.
//!
//! Each frame a connection is sent is a pure function of (the conversations it receives, the
//! event stream), so a session can be re-created anywhere from a checkpoint — the last frame
//! the client acknowledged, its stream position and the conversation set at that point — by
//! replaying the stream from there (RESUME).

use super::protocol;
use crate::fanout::{Delivered, WireEvent};
use conclave_core::credential::{Credential, Scope};
use conclave_core::event::{scope_to_read, Audience, Control, PresenceStatus};
use conclave_core::{ConversationId, OrgId, SessionId, UserId};
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

pub type ConnId = u64;

/// What a connection task is told.
#[derive(Debug)]
pub enum Outbound {
    Frame(String),
    /// Close the socket with this code; nothing follows.
    Close(u16, &'static str),
}

/// Where a session can be rebuilt from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last `s` the client acknowledged (0 before the first).
    pub s: u64,
    /// The stream position that frame came from.
    pub position: u64,
    /// The conversations the session received events for after that frame.
    pub conversations: HashSet<ConversationId>,
}

/// What a connection authenticated with a bot or API key may receive beyond its user's
/// conversations (AZ-5, AZ-5a): only conversations of `org`, and of `conversations` when
/// listed; for a key, only the event types its scopes read over REST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnLimit {
    pub org: OrgId,
    pub conversations: Option<HashSet<ConversationId>>,
    /// A key's scopes; `None` for a bot (its account's rights are its whole limit).
    pub scopes: Option<HashSet<Scope>>,
}

impl ConnLimit {
    /// The limit of a bot or key; `None` for a login session.
    #[must_use]
    pub fn of(credential: &Credential) -> Option<Self> {
        let org = credential.org()?;
        Some(Self {
            org,
            conversations: credential
                .conversations()
                .map(|l| l.iter().copied().collect()),
            scopes: match credential {
                Credential::ApiKey { scopes, .. } => Some(scopes.iter().copied().collect()),
                Credential::Session | Credential::Bot { .. } => None,
            },
        })
    }

    /// Whether a subscription to `conv` of `org` may be taken.
    fn admits(&self, conv: ConversationId, org: OrgId) -> bool {
        org == self.org
            && self
                .conversations
                .as_ref()
                .is_none_or(|list| list.contains(&conv))
    }

    /// Whether an event named `t` may be sent: a key needs the scope that reads it (AZ-5a).
    fn permits(&self, t: &str) -> bool {
        match (&self.scopes, scope_to_read(t)) {
            (Some(scopes), Some(needed)) => scopes.contains(&needed),
            _ => true,
        }
    }
}

/// Replay instructions for a resumed session.
pub struct Replay {
    pub events: Vec<Delivered>,
    /// Frames numbered up to here are not sent again: the client has them.
    pub client_seq: u64,
}

pub enum Command {
    /// Starts routing for a connection (buffering until `Activate`); answers the current
    /// position, or `Err` when the user has too many connections.
    Register {
        conn: ConnId,
        user: UserId,
        session: SessionId,
        tx: mpsc::Sender<Outbound>,
        reply: oneshot::Sender<Result<u64, ()>>,
    },
    /// Sets where the connection starts and goes live: `marker` (READY), or the replayed
    /// events and RESUMED, then what was buffered. Answers how many replayed frames were sent, or
    /// `None` when the client's sequence cannot be honoured.
    Activate {
        conn: ConnId,
        start: Checkpoint,
        replay: Option<Replay>,
        marker: Option<String>,
        reply: oneshot::Sender<Option<usize>>,
    },
    /// Limits a registered connection to what its bot or API key reaches; sent before
    /// `Activate`.
    Restrict { conn: ConnId, limit: ConnLimit },
    /// The orgs of the conversations the connection starts with, and the orgs its user may
    /// not read now (AUTH-4a), whose conversations it holds back; sent before `Activate`.
    Standing {
        conn: ConnId,
        orgs: HashMap<ConversationId, OrgId>,
        locked: HashSet<OrgId>,
    },
    /// The client acknowledged frames up to `s` (heartbeat).
    Ack { conn: ConnId, s: u64 },
    /// The connection's own presence (online or idle).
    Presence {
        conn: ConnId,
        status: PresenceStatus,
    },
    /// Answers the last stream position this hub has dispatched.
    Position { reply: oneshot::Sender<u64> },
    /// Ends routing; answers the checkpoint to save (also after the hub dropped a slow client).
    Unregister {
        conn: ConnId,
        reply: oneshot::Sender<Option<Checkpoint>>,
    },
}

/// Limits the hub enforces.
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    pub max_connections_per_user: usize,
    /// Frames a slow client may have queued before it is disconnected.
    pub queue_frames: usize,
    /// Unacknowledged frames kept for resume before the checkpoint is moved forward anyway.
    pub max_unacked: usize,
    /// Events buffered while a connection starts.
    pub max_buffered: usize,
}

struct Conn {
    user: UserId,
    session: SessionId,
    tx: mpsc::Sender<Outbound>,
    s: u64,
    conversations: HashSet<ConversationId>,
    status: PresenceStatus,
    checkpoint: Checkpoint,
    /// Frames sent since the checkpoint: (s, position).
    unacked: VecDeque<(u64, u64)>,
    /// Conversation-set changes since the checkpoint: (position, conversation, added).
    changes: Vec<(u64, ConversationId, bool)>,
    /// Events that arrived before `Activate`.
    buffer: Option<Vec<Delivered>>,
    /// Frames numbered up to here are suppressed (resume).
    suppress_upto: u64,
    /// Set for bots and API keys: which conversations the connection may ever receive.
    limit: Option<ConnLimit>,
    /// The org of each conversation, where known (all but a resumed session's conversations
    /// the user has since left).
    orgs: HashMap<ConversationId, OrgId>,
    /// Orgs the user may not read now (AUTH-4a): their conversations stay subscribed, but no
    /// event of them is sent until `ORG_ACCESS_RESTORED`.
    locked: HashSet<OrgId>,
}

impl Conn {
    /// Whether the connection receives `conv`'s events now.
    fn reads(&self, conv: &ConversationId) -> bool {
        self.conversations.contains(conv)
            && self
                .orgs
                .get(conv)
                .is_none_or(|org| !self.locked.contains(org))
    }

    /// Whether the connection reaches `org` at all (a bot or key only its own).
    fn reaches(&self, org: OrgId) -> bool {
        self.limit.as_ref().is_none_or(|l| l.org == org)
    }
}

pub struct Hub {
    node: String,
    limits: HubLimits,
    conns: HashMap<ConnId, Conn>,
    by_user: HashMap<UserId, HashSet<ConnId>>,
    by_session: HashMap<SessionId, HashSet<ConnId>>,
    by_conv: HashMap<ConversationId, HashSet<ConnId>>,
    /// Connections dropped by the hub (slow, revoked) whose checkpoint is still to be collected.
    orphans: HashMap<ConnId, Checkpoint>,
    /// Last dispatched stream position.
    position: u64,
    /// Per user, the presence each node reported.
    presence: HashMap<UserId, HashMap<String, PresenceStatus>>,
    publish: Arc<dyn Fn(conclave_core::event::Event) + Send + Sync>,
}

enum Verdict {
    Keep,
    Close(u16, &'static str),
}

impl Hub {
    pub fn new(
        node: String,
        limits: HubLimits,
        publish: Arc<dyn Fn(conclave_core::event::Event) + Send + Sync>,
    ) -> Self {
        Self {
            node,
            limits,
            conns: HashMap::new(),
            by_user: HashMap::new(),
            by_session: HashMap::new(),
            by_conv: HashMap::new(),
            orphans: HashMap::new(),
            position: 0,
            presence: HashMap::new(),
            publish,
        }
    }

    /// Runs until both the command and the event channels close.
    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut events: mpsc::UnboundedReceiver<Delivered>,
    ) {
        loop {
            tokio::select! {
                biased;
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => break,
                },
                ev = events.recv() => match ev {
                    Some(ev) => self.dispatch(&ev),
                    None => break,
                },
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Register {
                conn,
                user,
                session,
                tx,
                reply,
            } => {
                let count = self.by_user.get(&user).map_or(0, HashSet::len);
                if count >= self.limits.max_connections_per_user {
                    let _ = reply.send(Err(()));
                    return;
                }
                self.conns.insert(
                    conn,
                    Conn {
                        user,
                        session,
                        tx,
                        s: 0,
                        conversations: HashSet::new(),
                        status: PresenceStatus::Online,
                        checkpoint: Checkpoint {
                            s: 0,
                            position: self.position,
                            conversations: HashSet::new(),
                        },
                        unacked: VecDeque::new(),
                        changes: Vec::new(),
                        buffer: Some(Vec::new()),
                        suppress_upto: 0,
                        limit: None,
                        orgs: HashMap::new(),
                        locked: HashSet::new(),
                    },
                );
                self.by_user.entry(user).or_default().insert(conn);
                self.by_session.entry(session).or_default().insert(conn);
                let _ = reply.send(Ok(self.position));
            }
            Command::Activate {
                conn,
                start,
                replay,
                marker,
                reply,
            } => {
                let answer = self.activate(conn, start, replay, marker);
                let _ = reply.send(answer);
            }
            Command::Restrict { conn, limit } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.limit = Some(limit);
                }
            }
            Command::Standing { conn, orgs, locked } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.orgs = orgs;
                    c.locked = locked;
                }
            }
            Command::Ack { conn, s } => self.ack(conn, s),
            Command::Position { reply } => {
                let _ = reply.send(self.position);
            }
            Command::Presence { conn, status } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                let user = c.user;
                c.status = status;
                self.announce_presence(user, &HashSet::new());
            }
            Command::Unregister { conn, reply } => {
                let checkpoint = self.remove(conn).or_else(|| self.orphans.remove(&conn));
                let _ = reply.send(checkpoint);
            }
        }
    }

    fn activate(
        &mut self,
        conn: ConnId,
        start: Checkpoint,
        replay: Option<Replay>,
        marker: Option<String>,
    ) -> Option<usize> {
        let buffered = {
            let c = self.conns.get_mut(&conn)?;
            c.s = start.s;
            c.conversations = start.conversations.clone();
            c.checkpoint = start;
            c.buffer.take().unwrap_or_default()
        };
        let convs: Vec<ConversationId> = self.conns[&conn].conversations.iter().copied().collect();
        for conv in convs {
            self.by_conv.entry(conv).or_default().insert(conn);
        }
        let mut replayed = 0;
        if let Some(r) = replay {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.suppress_upto = r.client_seq;
            }
            for ev in &r.events {
                let before = self.conns.get(&conn).map_or(0, |c| c.s);
                if let Verdict::Close(code, why) = self.process(conn, ev) {
                    self.kill(conn, code, why);
                    return Some(replayed);
                }
                let after = self.conns.get(&conn).map_or(0, |c| c.s);
                if after > before && after > r.client_seq {
                    replayed += 1;
                }
            }
            let c = self.conns.get_mut(&conn)?;
            if c.s < r.client_seq {
                // The client claims frames this session never produced.
                return None;
            }
            c.suppress_upto = 0;
            let d = RawValue::from_string(format!("{{\"replayed\":{replayed}}}")).ok()?;
            self.send(
                conn,
                Outbound::Frame(protocol::dispatch(None, "RESUMED", &d)),
            );
        }
        if let Some(frame) = marker {
            self.send(conn, Outbound::Frame(frame));
        }
        for ev in &buffered {
            if let Verdict::Close(code, why) = self.process(conn, ev) {
                self.kill(conn, code, why);
                break;
            }
        }
        if self.conns.contains_key(&conn) {
            let user = self.conns[&conn].user;
            self.announce_presence(user, &HashSet::new());
        }
        Some(replayed)
    }

    fn ack(&mut self, conn: ConnId, s: u64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let mut moved = None;
        while c.unacked.front().is_some_and(|(fs, _)| *fs <= s) {
            moved = c.unacked.pop_front();
        }
        if let Some((fs, pos)) = moved {
            advance(c, fs, pos);
        }
    }

    /// Delivers one event from the live stream to every connection it concerns.
    fn dispatch(&mut self, ev: &Delivered) {
        self.position = ev.position;
        let e = &ev.event;
        if let Some(Control::Presence {
            user, node, status, ..
        }) = &e.control
        {
            if node != &self.node {
                self.presence
                    .entry(*user)
                    .or_default()
                    .insert(node.clone(), *status);
            }
        }
        let mut targets: HashSet<ConnId> = HashSet::new();
        let mut add = |set: Option<&HashSet<ConnId>>| {
            if let Some(set) = set {
                targets.extend(set.iter().copied());
            }
        };
        match &e.audience {
            Audience::Conversation(c) => add(self.by_conv.get(c)),
            Audience::User(u) | Audience::Reader { user: u, .. } => add(self.by_user.get(u)),
            Audience::Peers { conversations, .. } => {
                for c in conversations {
                    add(self.by_conv.get(c));
                }
            }
            Audience::Nobody => {}
        }
        match &e.control {
            Some(
                Control::Subscribe { user, .. }
                | Control::Unsubscribe { user, .. }
                | Control::RevokeUser { user, .. }
                | Control::OrgAccess { user, .. }
                | Control::RequireSecondFactor { user },
            ) => {
                add(self.by_user.get(user));
            }
            Some(Control::Drop { conversation }) => add(self.by_conv.get(conversation)),
            Some(Control::RevokeSession { session }) => add(self.by_session.get(session)),
            Some(Control::Presence { .. }) | None => {}
        }
        // Connections still starting see every event later, in order.
        let starting: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.buffer.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in starting {
            targets.remove(&id);
            let overflow = self
                .conns
                .get_mut(&id)
                .and_then(|c| c.buffer.as_mut())
                .is_some_and(|b| {
                    b.push(ev.clone());
                    b.len() > self.limits.max_buffered
                });
            if overflow {
                self.kill(
                    id,
                    protocol::CloseCode::UnknownError.code(),
                    "too many events while starting",
                );
            }
        }
        for id in targets {
            if let Verdict::Close(code, why) = self.process(id, ev) {
                self.kill(id, code, why);
            }
        }
    }

    /// Applies one event to one connection: membership before, the frame, membership and
    /// revocation after. The same function serves live delivery and replay.
    fn process(&mut self, id: ConnId, ev: &Delivered) -> Verdict {
        let e: &WireEvent = &ev.event;
        let Some(c) = self.conns.get_mut(&id) else {
            return Verdict::Keep;
        };
        if let Some(Control::Subscribe {
            user,
            conversation,
            org,
            locked,
        }) = &e.control
        {
            if *user == c.user {
                // A limited connection takes no subscription outside its limit, and so never
                // gets that conversation's events, nor the event announcing it.
                if c.limit
                    .as_ref()
                    .is_some_and(|l| !l.admits(*conversation, *org))
                {
                    return Verdict::Keep;
                }
                // Held back while the user may not read the org (AUTH-4a).
                if *locked {
                    c.locked.insert(*org);
                }
                c.orgs.insert(*conversation, *org);
                if c.conversations.insert(*conversation) {
                    c.changes.push((ev.position, *conversation, true));
                    self.by_conv.entry(*conversation).or_default().insert(id);
                }
            }
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return Verdict::Keep;
        };
        if let Some(Control::OrgAccess {
            user,
            org,
            restored,
        }) = &e.control
        {
            if *user == c.user && c.reaches(*org) {
                if *restored {
                    c.locked.remove(org);
                } else {
                    c.locked.insert(*org);
                }
            }
        }
        let deliver = match &e.audience {
            Audience::Conversation(conv) => c.reads(conv),
            Audience::User(u) => {
                *u == c.user
                    && match &e.control {
                        Some(Control::Subscribe { conversation, .. }) => c.reads(conversation),
                        Some(Control::OrgAccess { org, .. }) => c.reaches(*org),
                        _ => true,
                    }
            }
            Audience::Reader { user, conversation } => *user == c.user && c.reads(conversation),
            Audience::Peers {
                user,
                conversations,
            } => *user != c.user && conversations.iter().any(|conv| c.reads(conv)),
            Audience::Nobody => false,
        } && c.limit.as_ref().is_none_or(|l| l.permits(&e.t));
        if deliver {
            if let Verdict::Close(code, why) = frame(c, ev.position, &e.t, &e.d, self.limits) {
                return Verdict::Close(code, why);
            }
        }
        let leaving = match &e.control {
            Some(Control::Unsubscribe { user, conversation }) if *user == c.user => {
                Some(conversation)
            }
            Some(Control::Drop { conversation }) => Some(conversation),
            _ => None,
        };
        if let Some(conversation) = leaving.filter(|conv| c.conversations.remove(conv)) {
            c.orgs.remove(conversation);
            c.changes.push((ev.position, *conversation, false));
            if let Some(set) = self.by_conv.get_mut(conversation) {
                set.remove(&id);
                if set.is_empty() {
                    self.by_conv.remove(conversation);
                }
            }
        }
        match &e.control {
            Some(Control::RevokeSession { session }) if *session == c.session => {
                return Verdict::Close(
                    protocol::CloseCode::AuthenticationFailed.code(),
                    "session revoked",
                );
            }
            Some(Control::RevokeUser { user, except })
                if *user == c.user && *except != Some(c.session) =>
            {
                return Verdict::Close(
                    protocol::CloseCode::AuthenticationFailed.code(),
                    "credential revoked",
                );
            }
            Some(Control::RequireSecondFactor { user }) if *user == c.user => {
                return Verdict::Close(
                    protocol::CloseCode::NotPermitted.code(),
                    "two-factor authentication is required: turn it on first",
                );
            }
            _ => {}
        }
        Verdict::Keep
    }

    fn send(&mut self, id: ConnId, out: Outbound) {
        let full = self
            .conns
            .get(&id)
            .is_some_and(|c| c.tx.try_send(out).is_err());
        if full {
            self.kill(id, protocol::CloseCode::UnknownError.code(), "too slow");
        }
    }

    /// Drops a connection from routing, keeping its checkpoint for the task to collect, and
    /// tells it to close (if its queue has room; otherwise the closed channel says it).
    fn kill(&mut self, id: ConnId, code: u16, why: &'static str) {
        if let Some(c) = self.conns.get(&id) {
            let _ = c.tx.try_send(Outbound::Close(code, why));
        }
        if let Some(cp) = self.remove(id) {
            self.orphans.insert(id, cp);
        }
    }

    fn remove(&mut self, id: ConnId) -> Option<Checkpoint> {
        let c = self.conns.remove(&id)?;
        if let Some(set) = self.by_user.get_mut(&c.user) {
            set.remove(&id);
            if set.is_empty() {
                self.by_user.remove(&c.user);
            }
        }
        if let Some(set) = self.by_session.get_mut(&c.session) {
            set.remove(&id);
            if set.is_empty() {
                self.by_session.remove(&c.session);
            }
        }
        for conv in &c.conversations {
            if let Some(set) = self.by_conv.get_mut(conv) {
                set.remove(&id);
                if set.is_empty() {
                    self.by_conv.remove(conv);
                }
            }
        }
        self.announce_presence(c.user, &c.conversations);
        Some(c.checkpoint)
    }

    /// This node's presence for a user: online if any connection is, idle if all are idle.
    fn local_status(&self, user: UserId) -> PresenceStatus {
        self.by_user
            .get(&user)
            .into_iter()
            .flatten()
            .filter_map(|id| self.conns.get(id))
            .filter(|c| c.buffer.is_none())
            .map(|c| c.status)
            .max()
            .unwrap_or(PresenceStatus::Offline)
    }

    /// Publishes this node's presence for `user` when it changed; the event carries the
    /// aggregate over all nodes, so every gateway delivers the same thing. `leaving` holds the
    /// conversations of a connection that just closed (no longer indexed).
    fn announce_presence(&mut self, user: UserId, leaving: &HashSet<ConversationId>) {
        let local = self.local_status(user);
        let nodes = self.presence.entry(user).or_default();
        let before_local = nodes
            .get(&self.node)
            .copied()
            .unwrap_or(PresenceStatus::Offline);
        if before_local == local {
            return;
        }
        let before = nodes
            .values()
            .copied()
            .max()
            .unwrap_or(PresenceStatus::Offline);
        if local == PresenceStatus::Offline {
            nodes.remove(&self.node);
        } else {
            nodes.insert(self.node.clone(), local);
        }
        let after = nodes
            .values()
            .copied()
            .max()
            .unwrap_or(PresenceStatus::Offline);
        if nodes.is_empty() {
            self.presence.remove(&user);
        }
        if before == after {
            return;
        }
        let conversations: Vec<ConversationId> = self
            .by_user
            .get(&user)
            .into_iter()
            .flatten()
            .filter_map(|id| self.conns.get(id))
            .flat_map(|c| c.conversations.iter().copied())
            .chain(leaving.iter().copied())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let event = conclave_core::event::Event {
            t: "PRESENCE_UPDATE".into(),
            audience: Audience::Peers {
                user,
                conversations: conversations.clone(),
            },
            d: serde_json::json!({"user_id": user, "status": after}),
            control: Some(Control::Presence {
                user,
                node: self.node.clone(),
                status: local,
                conversations,
            }),
        };
        (self.publish)(event);
    }
}

/// Sends one DISPATCH frame built around the shared payload bytes.
fn frame(c: &mut Conn, position: u64, t: &str, d: &RawValue, limits: HubLimits) -> Verdict {
    c.s += 1;
    c.unacked.push_back((c.s, position));
    if c.unacked.len() > limits.max_unacked {
        if let Some((fs, pos)) = c.unacked.pop_front() {
            advance(c, fs, pos);
        }
    }
    if c.s <= c.suppress_upto {
        return Verdict::Keep;
    }
    match c
        .tx
        .try_send(Outbound::Frame(protocol::dispatch(Some(c.s), t, d)))
    {
        Ok(()) => Verdict::Keep,
        Err(_) => Verdict::Close(protocol::CloseCode::UnknownError.code(), "too slow"),
    }
}

/// Moves the checkpoint to frame `s` at `position`, folding in the membership changes up to it.
fn advance(c: &mut Conn, s: u64, position: u64) {
    c.checkpoint.s = s;
    c.checkpoint.position = position;
    let (done, rest): (Vec<_>, Vec<_>) = c.changes.drain(..).partition(|(p, _, _)| *p <= position);
    c.changes = rest;
    for (_, conv, added) in done {
        if added {
            c.checkpoint.conversations.insert(conv);
        } else {
            c.checkpoint.conversations.remove(&conv);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_core::event::Event;

    fn hub(queue: usize) -> (Hub, Arc<std::sync::Mutex<Vec<Event>>>) {
        let published = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = published.clone();
        let limits = HubLimits {
            max_connections_per_user: 10,
            queue_frames: queue,
            max_unacked: 1000,
            max_buffered: 1000,
        };
        let hub = Hub::new(
            "n1".into(),
            limits,
            Arc::new(move |e| sink.lock().unwrap().push(e)),
        );
        (hub, published)
    }

    fn delivered(position: u64, event: Event) -> Delivered {
        Delivered {
            position,
            event: Arc::new(WireEvent::from_event(&event)),
        }
    }

    fn connect(
        h: &mut Hub,
        id: ConnId,
        user: UserId,
        convs: &[ConversationId],
        queue: usize,
    ) -> mpsc::Receiver<Outbound> {
        let (tx, rx) = mpsc::channel(queue);
        let (reply, _) = oneshot::channel();
        h.command(Command::Register {
            conn: id,
            user,
            session: SessionId::new(),
            tx,
            reply,
        });
        let start = Checkpoint {
            s: 0,
            position: h.position,
            conversations: convs.iter().copied().collect(),
        };
        assert_eq!(h.activate(id, start, None, None), Some(0));
        rx
    }

    fn frames(rx: &mut mpsc::Receiver<Outbound>) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        while let Ok(o) = rx.try_recv() {
            match o {
                Outbound::Frame(f) => out.push(serde_json::from_str(&f).unwrap()),
                Outbound::Close(code, _) => out.push(serde_json::json!({"close": code})),
            }
        }
        out
    }

    #[test]
    fn a_slow_client_is_dropped_without_slowing_others() {
        let (mut h, _) = hub(4);
        let conv = ConversationId::new();
        let mut slow = connect(&mut h, 1, UserId::new(), &[conv], 4);
        let mut fast = connect(&mut h, 2, UserId::new(), &[conv], 64);
        for p in 1..=10 {
            h.dispatch(&delivered(
                p,
                Event::conversation("MESSAGE_CREATE", conv, p),
            ));
            frames(&mut fast);
        }
        assert!(!h.conns.contains_key(&1), "the slow client is gone");
        assert!(h.conns.contains_key(&2));
        assert!(
            h.orphans.contains_key(&1),
            "its checkpoint waits to be saved"
        );
        assert_eq!(frames(&mut slow).len(), 4, "its queue stayed bounded");
        h.dispatch(&delivered(
            11,
            Event::conversation("MESSAGE_CREATE", conv, 11),
        ));
        assert_eq!(frames(&mut fast)[0]["s"], 11);
    }

    #[test]
    fn removal_is_the_last_event_and_replay_from_a_checkpoint_is_identical() {
        let (mut h, _) = hub(64);
        let conv = ConversationId::new();
        let user = UserId::new();
        let mut rx = connect(&mut h, 1, user, &[conv], 64);
        let events = [
            delivered(1, Event::conversation("MESSAGE_CREATE", conv, 1)),
            delivered(2, Event::conversation("MESSAGE_CREATE", conv, 2)),
            delivered(
                3,
                Event::conversation("PARTICIPANT_REMOVE", conv, 3).with_control(
                    Control::Unsubscribe {
                        user,
                        conversation: conv,
                    },
                ),
            ),
            delivered(4, Event::conversation("MESSAGE_CREATE", conv, 4)),
        ];
        h.dispatch(&events[0]);
        h.command(Command::Ack { conn: 1, s: 1 });
        for e in &events[1..] {
            h.dispatch(e);
        }
        let live: Vec<String> = frames(&mut rx)
            .iter()
            .map(|f| f["t"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            live,
            vec!["MESSAGE_CREATE", "MESSAGE_CREATE", "PARTICIPANT_REMOVE"]
        );
        let (reply, mut answer) = oneshot::channel();
        h.command(Command::Unregister { conn: 1, reply });
        let cp = answer.try_recv().unwrap().unwrap();
        assert_eq!((cp.s, cp.position), (1, 1));
        assert!(cp.conversations.contains(&conv));
        // Rebuild from the checkpoint: the client saw s=2 already, so only the removal comes.
        let (tx, mut rx2) = mpsc::channel(64);
        let (reply, _) = oneshot::channel();
        h.command(Command::Register {
            conn: 2,
            user,
            session: SessionId::new(),
            tx,
            reply,
        });
        let replay = Replay {
            events: events[1..].to_vec(),
            client_seq: 2,
        };
        assert_eq!(h.activate(2, cp, Some(replay), None), Some(1));
        let again = frames(&mut rx2);
        assert_eq!(again[0]["t"], "PARTICIPANT_REMOVE");
        assert_eq!(again[0]["s"], 3);
        assert_eq!(again[1]["t"], "RESUMED");
        assert_eq!(again.len(), 2);
    }

    #[test]
    fn revocation_closes_only_the_named_sessions() {
        let (mut h, _) = hub(64);
        let user = UserId::new();
        let mut a = connect(&mut h, 1, user, &[], 64);
        let mut b = connect(&mut h, 2, user, &[], 64);
        let keep = h.conns[&2].session;
        h.dispatch(&delivered(
            1,
            Event::control(Control::RevokeUser {
                user,
                except: Some(keep),
            }),
        ));
        assert_eq!(frames(&mut a).last().unwrap()["close"], 4004);
        assert!(frames(&mut b).iter().all(|f| f.get("close").is_none()));
        assert!(h.conns.contains_key(&2) && !h.conns.contains_key(&1));
    }

    #[test]
    fn presence_is_published_on_change_only() {
        let (mut h, published) = hub(64);
        let user = UserId::new();
        let _a = connect(&mut h, 1, user, &[ConversationId::new()], 64);
        let _b = connect(&mut h, 2, user, &[], 64);
        assert_eq!(
            published.lock().unwrap().len(),
            1,
            "online once, not per connection"
        );
        h.command(Command::Presence {
            conn: 1,
            status: PresenceStatus::Idle,
        });
        assert_eq!(
            published.lock().unwrap().len(),
            1,
            "still online through the other connection"
        );
        let (reply, _) = oneshot::channel();
        h.command(Command::Unregister { conn: 2, reply });
        let last = published.lock().unwrap().last().unwrap().d.clone();
        assert_eq!(last["status"], "idle");
    }

    /// Registers a connection, optionally limited, with its start standing, and activates it.
    fn connect_as(
        h: &mut Hub,
        id: ConnId,
        user: UserId,
        limit: Option<ConnLimit>,
        convs: &[(ConversationId, OrgId)],
        locked: &[OrgId],
    ) -> mpsc::Receiver<Outbound> {
        let (tx, rx) = mpsc::channel(64);
        let (reply, _) = oneshot::channel();
        h.command(Command::Register {
            conn: id,
            user,
            session: SessionId::new(),
            tx,
            reply,
        });
        if let Some(limit) = limit {
            h.command(Command::Restrict { conn: id, limit });
        }
        h.command(Command::Standing {
            conn: id,
            orgs: convs.iter().copied().collect(),
            locked: locked.iter().copied().collect(),
        });
        let start = Checkpoint {
            s: 0,
            position: h.position,
            conversations: convs.iter().map(|(c, _)| *c).collect(),
        };
        assert_eq!(h.activate(id, start, None, None), Some(0));
        rx
    }

    fn names(rx: &mut mpsc::Receiver<Outbound>) -> Vec<String> {
        frames(rx)
            .iter()
            .map(|f| {
                f["t"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| f.to_string())
            })
            .collect()
    }

    fn created(
        p: u64,
        user: UserId,
        conversation: ConversationId,
        org: OrgId,
        locked: bool,
    ) -> Delivered {
        delivered(
            p,
            Event::user(
                "CONVERSATION_CREATE",
                user,
                serde_json::json!({"id": conversation, "org_id": org}),
            )
            .with_control(Control::Subscribe {
                user,
                conversation,
                org,
                locked,
            }),
        )
    }

    #[test]
    fn limited_connections_stay_within_their_org_and_list() {
        let (mut h, _) = hub(64);
        let user = UserId::new();
        let org = OrgId::new();
        let (listed, unlisted) = (ConversationId::new(), ConversationId::new());
        let limit = ConnLimit {
            org,
            conversations: Some([listed].into_iter().collect()),
            scopes: None,
        };
        let mut limited = connect_as(&mut h, 1, user, Some(limit), &[], &[]);
        // The same user's login session sees everything.
        let mut full = connect(&mut h, 2, user, &[], 64);
        h.dispatch(&created(1, user, unlisted, org, false));
        h.dispatch(&created(2, user, listed, OrgId::new(), false));
        h.dispatch(&created(3, user, listed, org, false));
        h.dispatch(&delivered(
            4,
            Event::conversation("MESSAGE_CREATE", unlisted, 4),
        ));
        h.dispatch(&delivered(
            5,
            Event::conversation("MESSAGE_CREATE", listed, 5),
        ));
        h.dispatch(&delivered(
            6,
            Event::reader(
                "READ_MARKER_UPDATE",
                user,
                unlisted,
                serde_json::json!({"conversation_id": unlisted}),
            ),
        ));
        assert_eq!(
            names(&mut limited),
            vec!["CONVERSATION_CREATE", "MESSAGE_CREATE"],
            "only the listed conversation of its org"
        );
        assert_eq!(names(&mut full).len(), 6);
    }

    #[test]
    fn a_key_receives_only_the_event_types_its_scopes_read() {
        let (mut h, _) = hub(64);
        let (user, peer) = (UserId::new(), UserId::new());
        let org = OrgId::new();
        let conv = ConversationId::new();
        let key = |scopes: &[Scope]| ConnLimit {
            org,
            conversations: None,
            scopes: Some(scopes.iter().copied().collect()),
        };
        let mut messages = connect_as(
            &mut h,
            1,
            user,
            Some(key(&[Scope::MessagesRead])),
            &[(conv, org)],
            &[],
        );
        let mut both = connect_as(
            &mut h,
            2,
            user,
            Some(key(&[Scope::MessagesRead, Scope::ConversationsRead])),
            &[(conv, org)],
            &[],
        );
        let _peer = connect_as(&mut h, 3, peer, None, &[(conv, org)], &[]);
        frames(&mut messages);
        frames(&mut both);
        let new = ConversationId::new();
        h.dispatch(&created(1, user, new, org, false));
        let d = |t: &str| serde_json::json!({"conversation_id": conv, "t": t});
        for (p, t) in [
            (2, "MESSAGE_CREATE"),
            (3, "TYPING_START"),
            (4, "PARTICIPANT_ADD"),
            (5, "CONVERSATION_UPDATE"),
            (6, "MESSAGE_STREAM"),
        ] {
            h.dispatch(&delivered(p, Event::conversation(t, conv, d(t))));
        }
        h.dispatch(&delivered(
            7,
            Event::reader("READ_MARKER_UPDATE", user, conv, d("READ_MARKER_UPDATE")),
        ));
        h.dispatch(&delivered(8, Event::conversation("MESSAGE_CREATE", new, 8)));
        // A peer's presence needs conversations:read as well.
        h.dispatch(&delivered(
            9,
            Event {
                t: "PRESENCE_UPDATE".into(),
                audience: Audience::Peers {
                    user: peer,
                    conversations: vec![conv],
                },
                d: serde_json::json!({"user_id": peer, "status": "idle"}),
                control: None,
            },
        ));
        assert_eq!(
            names(&mut messages),
            vec![
                "MESSAGE_CREATE",
                "TYPING_START",
                "MESSAGE_STREAM",
                "READ_MARKER_UPDATE",
                "MESSAGE_CREATE"
            ],
            "messages:read alone: no conversation, participant or presence events, but the \
             new conversation's messages"
        );
        assert_eq!(names(&mut both).len(), 9);
    }

    #[test]
    fn an_org_lockout_holds_back_that_org_only_until_restored() {
        let (mut h, _) = hub(64);
        let (user, peer) = (UserId::new(), UserId::new());
        let (locked_org, other_org) = (OrgId::new(), OrgId::new());
        let (a, b) = (ConversationId::new(), ConversationId::new());
        let mut session = connect_as(
            &mut h,
            1,
            user,
            None,
            &[(a, locked_org), (b, other_org)],
            &[],
        );
        let key = ConnLimit {
            org: locked_org,
            conversations: None,
            scopes: Some([Scope::MessagesRead].into_iter().collect()),
        };
        let mut keyed = connect_as(&mut h, 2, user, Some(key), &[(a, locked_org)], &[]);
        let other_key = ConnLimit {
            org: other_org,
            conversations: None,
            scopes: Some([Scope::MessagesRead].into_iter().collect()),
        };
        let mut elsewhere = connect_as(&mut h, 3, user, Some(other_key), &[(b, other_org)], &[]);
        let mut peer_rx = connect_as(&mut h, 4, peer, None, &[(a, locked_org)], &[]);
        for rx in [&mut session, &mut keyed, &mut elsewhere, &mut peer_rx] {
            frames(rx);
        }
        h.dispatch(&delivered(
            1,
            Event::org_access_lost(user, locked_org, "mfa_setup_required"),
        ));
        let c = ConversationId::new();
        h.dispatch(&created(2, user, c, locked_org, true));
        for (p, conv) in [(3, a), (4, b), (5, c)] {
            h.dispatch(&delivered(
                p,
                Event::conversation("MESSAGE_CREATE", conv, p),
            ));
        }
        h.dispatch(&delivered(
            6,
            Event::reader("READ_MARKER_UPDATE", user, a, serde_json::json!({})),
        ));
        assert_eq!(
            names(&mut session),
            vec!["ORG_ACCESS_LOST", "MESSAGE_CREATE"],
            "only the other org's message"
        );
        assert_eq!(names(&mut keyed), vec!["ORG_ACCESS_LOST"]);
        assert_eq!(
            names(&mut elsewhere),
            vec!["MESSAGE_CREATE"],
            "a key of the other org is not told"
        );
        assert_eq!(names(&mut peer_rx), vec!["MESSAGE_CREATE"]);
        assert!(
            h.conns.contains_key(&1) && h.conns.contains_key(&2),
            "sockets stay open"
        );
        h.dispatch(&delivered(7, Event::org_access_restored(user, locked_org)));
        for (p, conv) in [(8, a), (9, c)] {
            h.dispatch(&delivered(
                p,
                Event::conversation("MESSAGE_CREATE", conv, p),
            ));
        }
        assert_eq!(
            names(&mut session),
            vec!["ORG_ACCESS_RESTORED", "MESSAGE_CREATE", "MESSAGE_CREATE"],
            "the conversation set is back, the one created meanwhile included"
        );
        assert_eq!(
            names(&mut keyed),
            vec!["ORG_ACCESS_RESTORED", "MESSAGE_CREATE", "MESSAGE_CREATE"]
        );
        // A session that starts locked out holds the org back from the start.
        let mut late = connect_as(&mut h, 5, user, None, &[(a, locked_org)], &[locked_org]);
        h.dispatch(&delivered(10, Event::conversation("MESSAGE_CREATE", a, 10)));
        assert!(names(&mut late).is_empty());
        // The per-user requirement closes every socket of the user with 4014, no one else's.
        h.dispatch(&delivered(
            11,
            Event::control(Control::RequireSecondFactor { user }),
        ));
        for rx in [&mut session, &mut keyed, &mut elsewhere, &mut late] {
            assert_eq!(frames(rx).last().unwrap()["close"], 4014);
        }
        assert!(h.conns.contains_key(&4) && h.conns.len() == 1);
    }
}
