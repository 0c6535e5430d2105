//! The hub: one task per node that owns every open gateway connection's routing state and
//! turns the fan-out stream into frames. Events are applied in stream order, so a socket's view
//! of who may read what follows the database exactly: a removal takes effect right after the
//! removal event, for every socket at once, with no per-recipient database query.
//!
//! Each frame a connection is sent is a pure function of (the conversations it receives, the
//! event stream), so a session can be re-created anywhere from a checkpoint — the last frame
//! the client acknowledged, its stream position and the conversation set at that point — by
//! replaying the stream from there (RESUME).
//!
//! The hub writes each connection's frames into its [`Outbox`] and, after a burst of events
//! (what waited in the stream, up to `BURST`), has every touched socket written once: a
//! connection that got several frames gets them in one write, and no connection task is woken
//! to deliver. The writes are shared among writer tasks (`writers`), one per runtime worker, so
//! the system calls of a burst run on every core while the hub routes the next; the hub stays
//! at most one burst ahead of them. A burst for a large audience (`COALESCE_SOCKETS`) is handed
//! over at most once per coalescing window (`[gateway] write_coalesce_us`): the first after a
//! quiet while at once, later ones at the window's end with whatever else arrived meanwhile, so
//! at moderate rates each socket still gets several frames per write. The payload of an event
//! is serialized once, when published; each frame is those bytes with the connection's own `s`
//! around them.
//!
//! The parts: `routing` (who gets which event: the delivery rules of `core::policy::delivery`
//! applied to the event's typed routing facts), `sessions` (a connection's start, resume
//! checkpoint and end), `presence` (this node's view of who is online, aggregated across nodes),
//! `ids` (the hashing of its id-keyed maps), `writers` (the tasks that write the sockets).

mod ids;
mod presence;
mod routing;
mod sessions;
#[cfg(test)]
mod tests;
mod writers;

use super::outbox::Outbox;
use crate::fanout::Delivered;
use conclave_core::credential::Credential;
use conclave_core::event::PresenceStatus;
use conclave_core::policy::delivery;
use conclave_core::{ConversationId, OrgId, SessionId, UserId};
use ids::{IdMap, IdSet};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use writers::Writers;

pub type ConnId = u64;

/// Events dispatched before the touched sockets are written: what waited in the stream when the
/// hub woke, up to this many.
const BURST: usize = 64;

/// A burst whose frames go to at least this many sockets is held for the coalescing window
/// (`HubLimits::coalesce`); smaller ones are written at once.
const COALESCE_SOCKETS: usize = 256;

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
        out: Arc<Outbox>,
        /// `FanOut::published` before the connection reads its snapshot: plain events at or
        /// below it are already in that snapshot and are not sent (controls still apply).
        after: u64,
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
    /// Limits a registered connection to what its bot or API key reaches (AZ-5, AZ-5a); sent
    /// before `Activate`.
    Restrict {
        conn: ConnId,
        credential: Credential,
    },
    /// The orgs of the conversations the connection starts with, and the orgs its user may
    /// not read now (AUTH-4a), whose conversations it holds back; sent before `Activate`.
    Standing {
        conn: ConnId,
        orgs: HashMap<ConversationId, OrgId>,
        locked: HashSet<OrgId>,
    },
    /// The client acknowledged frames up to `s` (heartbeat).
    Ack { conn: ConnId, s: u64 },
    /// The conversations the store lists for the connection's user now and the orgs they may
    /// not read now (AUTH-4a), read after the hub had dispatched up to `since`: a subscription
    /// outside them whose removal never arrived (an event lost, or a late subscription
    /// overtaking the removal's) ends, and each of those orgs is locked (its events held back,
    /// as `ORG_ACCESS_LOST` does) — unless a subscription or an org-access change came after
    /// `since`, which may be newer than the read (then the next one decides). Nothing is
    /// added or unlocked this way. Sent every few heartbeats, the bound on how long a lost event
    /// can matter.
    Reconcile {
        conn: ConnId,
        since: u64,
        conversations: Vec<ConversationId>,
        locked: HashSet<OrgId>,
    },
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
    /// The shortest time between two hand-overs of a burst for a large audience
    /// (`COALESCE_SOCKETS`): events routed meanwhile share their sockets' writes. Zero: every
    /// burst is written at once.
    pub coalesce: std::time::Duration,
}

struct Conn {
    user: UserId,
    session: SessionId,
    out: Arc<Outbox>,
    s: u64,
    conversations: IdSet<ConversationId>,
    status: PresenceStatus,
    checkpoint: Checkpoint,
    /// Frames sent since the checkpoint: (s, position).
    unacked: VecDeque<(u64, u64)>,
    /// Conversation-set changes since the checkpoint: (position, conversation, added).
    changes: Vec<(u64, ConversationId, bool)>,
    /// Events that arrived before `Activate`.
    buffer: Option<Vec<Delivered>>,
    /// Events up to this position were published before the connection's snapshot was read.
    starts_after: u64,
    /// Events up to this position are covered by how the connection started (READY's snapshot,
    /// or RESUME's replay): their effects on membership and revocation still apply when they
    /// reach it, but their frames are not sent again.
    covered: u64,
    /// Frames numbered up to here are suppressed (resume).
    suppress_upto: u64,
    /// How the connection authenticated: a bot or API key narrows what it may ever receive.
    credential: Credential,
    /// The org of each conversation, where known (all but a resumed session's conversations
    /// the user has since left).
    orgs: IdMap<ConversationId, OrgId>,
    /// Orgs the user may not read now (AUTH-4a): their conversations stay subscribed, but no
    /// event of them is sent until `ORG_ACCESS_RESTORED`.
    locked: HashSet<OrgId>,
    /// The conversations the store listed for the user while the connection started
    /// (`Standing`), until it is activated: a resumed session keeps no other.
    standing: Option<Vec<ConversationId>>,
    /// The position of the last subscription or org-access change this connection took
    /// (`Reconcile`).
    last_standing_change: u64,
}

impl Conn {
    /// Whether the connection receives `conv`'s events now; `org` is the event's org when it
    /// carries one, else the one the connection learned when it subscribed.
    fn reads(&self, conv: &ConversationId, org: Option<OrgId>) -> bool {
        delivery::reads_conversation(
            self.conversations.contains(conv),
            org.or_else(|| self.orgs.get(conv).copied()),
            &self.locked,
        )
    }
}

pub struct Hub {
    node: String,
    limits: HubLimits,
    /// Boxed: the table's spare room stays a pointer per slot, not a whole `Conn`.
    conns: IdMap<ConnId, Box<Conn>>,
    by_user: IdMap<UserId, IdSet<ConnId>>,
    by_session: IdMap<SessionId, IdSet<ConnId>>,
    by_conv: IdMap<ConversationId, IdSet<ConnId>>,
    /// Connections registered but not activated yet (they buffer every event).
    starting: IdSet<ConnId>,
    /// Connections dropped by the hub (slow, revoked) whose checkpoint is still to be collected.
    orphans: IdMap<ConnId, Checkpoint>,
    /// Outboxes with frames queued since the last write, written at the end of the burst.
    dirty: Vec<Arc<Outbox>>,
    /// The writer tasks the touched outboxes are shared among (none: the hub writes them).
    writers: Writers,
    /// The connections one event goes to (kept to spare an allocation per event).
    targets: Vec<ConnId>,
    /// Last dispatched stream position.
    position: u64,
    /// Per user, the presence each node reported.
    presence: HashMap<UserId, HashMap<String, PresenceStatus>>,
    publish: Arc<dyn Fn(conclave_core::event::Event) + Send + Sync>,
    /// Applies each control to this node's identity and access cache before the hub applies
    /// it to sockets (`Services::invalidate`).
    invalidate: Option<Invalidate>,
    /// Sees every event in stream order before it is routed (the support widget's streams,
    /// `crate::widget_streams`).
    tap: Option<Tap>,
    /// Told how far the hub has routed, so sends can wait for it (`gateway::pace`).
    pace: Option<Arc<super::pace::Pace>>,
}

/// What the hub hands each event to, in stream order, before routing it.
pub type Tap = Arc<dyn Fn(&Delivered) + Send + Sync>;

/// What the hub calls with each control it receives, before acting on it.
pub type Invalidate = Arc<dyn Fn(&conclave_core::event::Control) + Send + Sync>;

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
            conns: IdMap::default(),
            by_user: IdMap::default(),
            by_session: IdMap::default(),
            by_conv: IdMap::default(),
            starting: IdSet::default(),
            orphans: IdMap::default(),
            dirty: Vec::new(),
            writers: Writers::default(),
            targets: Vec::new(),
            position: 0,
            presence: HashMap::new(),
            publish,
            invalidate: None,
            tap: None,
            pace: None,
        }
    }

    /// Tells `pace` how far it has routed while it runs.
    #[must_use]
    pub fn pacing(mut self, pace: Arc<super::pace::Pace>) -> Self {
        self.pace = Some(pace);
        self
    }

    /// Hands every event to `tap` (in stream order) before routing it.
    #[must_use]
    pub fn tapping(mut self, tap: Tap) -> Self {
        self.tap = Some(tap);
        self
    }

    /// Has every control applied to the node's cache first (so a socket closed here implies
    /// the cache here no longer holds what closed it).
    #[must_use]
    pub fn invalidating(mut self, invalidate: Invalidate) -> Self {
        self.invalidate = Some(invalidate);
        self
    }

    /// Runs until both the command and the event channels close.
    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut events: mpsc::UnboundedReceiver<Delivered>,
    ) {
        /// Tells the pace the hub stopped, however `run` ends (its task aborted included).
        struct Stopped(Option<Arc<super::pace::Pace>>);
        impl Drop for Stopped {
            fn drop(&mut self) {
                if let Some(p) = &self.0 {
                    p.running(false);
                }
            }
        }
        self.writers = Writers::spawn(tokio::runtime::Handle::current().metrics().num_workers());
        let _stopped = Stopped(self.pace.clone());
        if let Some(p) = &self.pace {
            p.routed(self.position);
            p.running(true);
        }
        let mut handed_over = tokio::time::Instant::now();
        loop {
            if self.step(&mut commands, &mut events, None).await.is_none() {
                break;
            }
            // A burst for a large audience waits out the rest of the window in which the
            // previous one was handed over, routing what arrives meanwhile into the same
            // outboxes: each of those sockets is then written once for all of it.
            if self.dirty.len() >= COALESCE_SOCKETS && !self.limits.coalesce.is_zero() {
                let due = handed_over + self.limits.coalesce;
                loop {
                    match self.step(&mut commands, &mut events, Some(due)).await {
                        None => return,
                        Some(false) => break,
                        Some(true) => {}
                    }
                }
            }
            if !self.dirty.is_empty() {
                handed_over = tokio::time::Instant::now();
            }
            self.writers.hand_over(&mut self.dirty).await;
        }
    }

    /// Applies one command, or routes one burst of events (what waited in the stream, up to
    /// `BURST`), and reports how far it has routed. `None` once either channel has closed;
    /// `Some(false)` when `until` passed first.
    async fn step(
        &mut self,
        commands: &mut mpsc::Receiver<Command>,
        events: &mut mpsc::UnboundedReceiver<Delivered>,
        until: Option<tokio::time::Instant>,
    ) -> Option<bool> {
        let due = async {
            match until {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        // The deadline first: a stream that never runs dry must not hold the writes forever.
        tokio::select! {
            biased;
            () = due => return Some(false),
            cmd = commands.recv() => self.command(cmd?),
            ev = events.recv() => {
                self.dispatch(&ev?);
                for _ in 1..BURST {
                    match events.try_recv() {
                        Ok(ev) => self.dispatch(&ev),
                        Err(_) => break,
                    }
                }
            }
        }
        if let Some(p) = &self.pace {
            p.routed(self.position);
        }
        Some(true)
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Register {
                conn,
                user,
                session,
                out,
                after,
                reply,
            } => {
                let _ = reply.send(self.register(conn, user, session, out, after));
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
            Command::Restrict { conn, credential } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.credential = credential;
                }
            }
            Command::Standing { conn, orgs, locked } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.standing = Some(orgs.keys().copied().collect());
                    c.orgs = orgs.into_iter().collect();
                    c.locked = locked;
                }
            }
            Command::Ack { conn, s } => self.ack(conn, s),
            Command::Reconcile {
                conn,
                since,
                conversations,
                locked,
            } => {
                let settled = self
                    .conns
                    .get(&conn)
                    .is_some_and(|c| c.buffer.is_none() && c.last_standing_change <= since);
                if settled {
                    self.keep_only(conn, &conversations);
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.locked.extend(locked);
                    }
                }
            }
            Command::Position { reply } => {
                let _ = reply.send(self.position);
            }
            Command::Presence { conn, status } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                let user = c.user;
                c.status = status;
                self.announce_presence(user, &IdSet::default());
            }
            Command::Unregister { conn, reply } => {
                let checkpoint = self.remove(conn).or_else(|| self.orphans.remove(&conn));
                let _ = reply.send(checkpoint);
            }
        }
    }
}
