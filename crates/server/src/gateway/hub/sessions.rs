//! A connection's life in the hub: registered (events buffered while it starts), activated
//! from a checkpoint (READY, or a replay and RESUMED), acknowledged frames moving its
//! checkpoint forward, and its end (unregistered, or dropped as slow or revoked, its checkpoint
//! kept for the connection task to save for RESUME).

use super::ids::{unindex, IdMap, IdSet};
use super::{Checkpoint, Conn, ConnId, Hub, Replay, Verdict};
use crate::gateway::outbox::{Full, Outbox};
use crate::gateway::protocol;
use conclave_core::credential::Credential;
use conclave_core::event::PresenceStatus;
use conclave_core::{ConversationId, SessionId, UserId};
use serde_json::value::RawValue;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

impl Hub {
    /// Starts routing for a connection, buffering its events until it is activated; answers
    /// the position its snapshot stands at, or `Err` when the user has too many connections.
    /// `after` is the newest position published before the snapshot is read: when the hub has
    /// not dispatched that far yet, the plain events up to it are skipped for this connection
    /// (they are in its snapshot), so none of them follows READY.
    pub(super) fn register(
        &mut self,
        conn: ConnId,
        user: UserId,
        session: SessionId,
        out: Arc<Outbox>,
        after: u64,
    ) -> Result<u64, ()> {
        let count = self.by_user.get(&user).map_or(0, IdSet::len);
        if count >= self.limits.max_connections_per_user {
            return Err(());
        }
        self.conns.insert(
            conn,
            Box::new(Conn {
                user,
                session,
                out,
                s: 0,
                conversations: IdSet::default(),
                status: PresenceStatus::Online,
                checkpoint: Checkpoint {
                    s: 0,
                    position: self.position.max(after),
                    conversations: HashSet::new(),
                },
                unacked: VecDeque::new(),
                changes: Vec::new(),
                buffer: Some(Vec::new()),
                starts_after: after,
                covered: self.position.max(after),
                suppress_upto: 0,
                credential: Credential::Session,
                orgs: IdMap::default(),
                locked: HashSet::new(),
                standing: None,
                last_standing_change: 0,
            }),
        );
        self.starting.insert(conn);
        self.by_user.entry(user).or_default().insert(conn);
        self.by_session.entry(session).or_default().insert(conn);
        Ok(self.position.max(after))
    }

    pub(super) fn activate(
        &mut self,
        conn: ConnId,
        start: Checkpoint,
        replay: Option<Replay>,
        marker: Option<String>,
    ) -> Option<usize> {
        let buffered = {
            let c = self.conns.get_mut(&conn)?;
            c.s = start.s;
            c.conversations = start.conversations.iter().copied().collect();
            c.checkpoint = start;
            c.buffer.take().unwrap_or_default()
        };
        self.starting.remove(&conn);
        let convs: Vec<ConversationId> = self.conns[&conn].conversations.iter().copied().collect();
        for conv in convs {
            self.by_conv.entry(conv).or_default().insert(conn);
        }
        // What the store said the user takes part in, read after this connection was
        // registered (`Standing`): it already reflects every replayed event. A resumed
        // conversation outside it (its removal's event lost, or skipped by a node that fell
        // too far behind) is dropped once the replay is through, instead of being carried from
        // one session to the next.
        let standing = self.conns.get_mut(&conn).and_then(|c| c.standing.take());
        let mut replayed = 0;
        if let Some(r) = replay {
            // The replay is what covers its positions: framed here, and only here.
            let covered = self.conns.get_mut(&conn).map_or(0, |c| {
                c.suppress_upto = r.client_seq;
                std::mem::take(&mut c.covered)
            });
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
            if let Some(standing) = standing {
                self.keep_only(conn, &standing);
            }
            let c = self.conns.get_mut(&conn)?;
            c.covered = covered;
            if c.s < r.client_seq {
                // The client claims frames this session never produced.
                return None;
            }
            c.suppress_upto = 0;
            let d = RawValue::from_string(format!("{{\"replayed\":{replayed}}}")).ok()?;
            self.send(conn, &protocol::dispatch(None, "RESUMED", &d));
        }
        if let Some(frame) = marker {
            self.send(conn, &frame);
        }
        for ev in &buffered {
            if let Verdict::Close(code, why) = self.process(conn, ev) {
                self.kill(conn, code, why);
                break;
            }
        }
        if self.conns.contains_key(&conn) {
            let user = self.conns[&conn].user;
            self.announce_presence(user, &IdSet::default());
        }
        Some(replayed)
    }

    /// Ends connection `conn`'s subscriptions to conversations not in `standing` (a replay's
    /// own changes made since are kept: a subscription it added is in `standing` too).
    pub(super) fn keep_only(&mut self, conn: ConnId, standing: &[ConversationId]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let stale: Vec<ConversationId> = c
            .conversations
            .iter()
            .copied()
            .filter(|conv| !standing.contains(conv))
            .collect();
        for conv in stale {
            // Gone from what the session would be resumed with too.
            c.conversations.remove(&conv);
            c.orgs.remove(&conv);
            c.checkpoint.conversations.remove(&conv);
            c.changes.retain(|(_, changed, _)| *changed != conv);
            unindex(&mut self.by_conv, &conv, &conn);
        }
    }

    pub(super) fn ack(&mut self, conn: ConnId, s: u64) {
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

    /// Queues one frame (already serialized) for connection `id`.
    pub(super) fn send(&mut self, id: ConnId, frame: &str) {
        let Some(c) = self.conns.get(&id) else {
            return;
        };
        match c.out.queue(|b| protocol::put_text_frame(b, &[frame])) {
            Ok(true) => self.dirty.push(c.out.clone()),
            Ok(false) => {}
            Err(Full) => self.kill(id, protocol::CloseCode::UnknownError.code(), "too slow"),
        }
    }

    /// Drops a connection from routing, keeping its checkpoint for the task to collect, and
    /// tells it to close.
    pub(super) fn kill(&mut self, id: ConnId, code: u16, why: &'static str) {
        if let Some(c) = self.conns.get(&id) {
            c.out.close(code, why);
        }
        if let Some(cp) = self.remove(id) {
            self.orphans.insert(id, cp);
        }
    }

    pub(super) fn remove(&mut self, id: ConnId) -> Option<Checkpoint> {
        let c = self.conns.remove(&id)?;
        self.starting.remove(&id);
        unindex(&mut self.by_user, &c.user, &id);
        unindex(&mut self.by_session, &c.session, &id);
        for conv in &c.conversations {
            unindex(&mut self.by_conv, conv, &id);
        }
        self.announce_presence(c.user, &c.conversations);
        Some(c.checkpoint)
    }
}

/// Moves the checkpoint to frame `s` at `position`, folding in the membership changes up to it.
pub(super) fn advance(c: &mut Conn, s: u64, position: u64) {
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
