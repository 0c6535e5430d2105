//! Who gets which event. Events are applied in stream order to every connection they concern:
//! membership before the frame (a subscription), the frame if `core::policy::delivery` lets
//! the connection receive it, membership and revocation after (so a removal is the removed
//! user's last event of the conversation). The same function serves live delivery and replay.

use super::ids::{unindex, IdSet};
use super::sessions::advance;
use super::{Conn, ConnId, Hub, HubLimits, Verdict};
use crate::fanout::{Delivered, WireEvent};
use crate::gateway::outbox::{Full, Outbox};
use crate::gateway::protocol;
use conclave_core::event::{Audience, Control, EventKind};
use conclave_core::policy::delivery;
use serde_json::value::RawValue;
use std::sync::Arc;

impl Hub {
    /// Delivers one event from the live stream to every connection it concerns: queues the
    /// frames; the hub writes them out after the burst.
    pub(super) fn dispatch(&mut self, ev: &Delivered) {
        self.position = ev.position;
        if let Some(tap) = &self.tap {
            tap(ev);
        }
        let e = &ev.event;
        if let Some(control) = &e.control {
            if let Some(invalidate) = &self.invalidate {
                invalidate(control);
            }
            self.note_presence(control);
        }
        let mut targets = std::mem::take(&mut self.targets);
        let mut sources = 0;
        let mut add = |set: Option<&IdSet<ConnId>>| {
            if let Some(set) = set {
                targets.extend(set.iter().copied());
                sources += 1;
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
            Some(Control::Presence { .. } | Control::Stale { .. } | Control::WidgetKey { .. })
            | None => {}
        }
        if sources > 1 {
            targets.sort_unstable();
            targets.dedup();
        }
        // Connections still starting see every event later, in order.
        if !self.starting.is_empty() {
            targets.retain(|id| !self.starting.contains(id));
            let starting: Vec<ConnId> = self.starting.iter().copied().collect();
            for id in starting {
                let overflow = self
                    .conns
                    .get_mut(&id)
                    .filter(|c| ev.position > c.starts_after || ev.event.control.is_some())
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
        }
        for &id in &targets {
            if let Verdict::Close(code, why) = self.process(id, ev) {
                self.kill(id, code, why);
            }
        }
        targets.clear();
        self.targets = targets;
    }

    /// Applies one event to one connection: membership before, the frame, membership and
    /// revocation after. The same function serves live delivery and replay.
    pub(super) fn process(&mut self, id: ConnId, ev: &Delivered) -> Verdict {
        let e: &WireEvent = &ev.event;
        if let Some(control) = &e.control {
            if !self.apply_before(id, ev.position, control) {
                return Verdict::Keep;
            }
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return Verdict::Keep;
        };
        let deliver = match &e.audience {
            Audience::Conversation(conv) => c.reads(conv, e.org),
            Audience::User(u) => {
                *u == c.user
                    && match &e.control {
                        Some(Control::Subscribe { conversation, .. }) => {
                            c.reads(conversation, e.org)
                        }
                        Some(Control::OrgAccess { org, .. }) => {
                            delivery::hears_of_org(&c.credential, *org)
                        }
                        _ if e.kind == EventKind::InboxUpdate => {
                            delivery::hears_of_inbox(&c.credential, e.org, &c.locked)
                        }
                        _ => true,
                    }
            }
            Audience::Reader { user, conversation } => {
                *user == c.user && c.reads(conversation, e.org)
            }
            // Presence spans conversations of several orgs: each is judged by its own.
            Audience::Peers {
                user,
                conversations,
            } => *user != c.user && conversations.iter().any(|conv| c.reads(conv, None)),
            Audience::Nobody => false,
        } && delivery::may_receive(&c.credential, e.kind)
            // Published before the snapshot READY was built from, or replayed already: a
            // conversation created then is in READY, and must not follow it again.
            && ev.position > c.covered;
        if deliver {
            if let Verdict::Close(code, why) = frame(
                c,
                ev.position,
                &e.t,
                e.d.raw(),
                self.limits,
                &mut self.dirty,
            ) {
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
            unindex(&mut self.by_conv, conversation, &id);
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
                    protocol::SECOND_FACTOR_REQUIRED,
                );
            }
            _ => {}
        }
        Verdict::Keep
    }

    /// What a control changes for connection `id` before its frame: a subscription (only
    /// within the connection's limit) or the user's access to an org. `false` when the event
    /// is not for this connection at all: a subscription outside its limit, whose
    /// announcement it must not get either.
    fn apply_before(&mut self, id: ConnId, position: u64, control: &Control) -> bool {
        let Some(c) = self.conns.get_mut(&id) else {
            return false;
        };
        match control {
            Control::Subscribe {
                user,
                conversation,
                org,
                locked,
            } if *user == c.user => {
                if !delivery::may_subscribe(&c.credential, *org, *conversation) {
                    return false;
                }
                // Held back while the user may not read the org (AUTH-4a).
                if *locked {
                    c.locked.insert(*org);
                }
                c.orgs.insert(*conversation, *org);
                c.last_standing_change = c.last_standing_change.max(position);
                if c.conversations.insert(*conversation) {
                    c.changes.push((position, *conversation, true));
                    self.by_conv.entry(*conversation).or_default().insert(id);
                }
            }
            Control::OrgAccess {
                user,
                org,
                restored,
            } if *user == c.user && delivery::hears_of_org(&c.credential, *org) => {
                c.last_standing_change = c.last_standing_change.max(position);
                if *restored {
                    c.locked.remove(org);
                } else {
                    c.locked.insert(*org);
                }
            }
            _ => {}
        }
        true
    }
}

/// Queues one DISPATCH frame built around the shared payload bytes; an outbox that had nothing
/// to write before joins `dirty`, to be written at the end of the burst.
pub(super) fn frame(
    c: &mut Conn,
    position: u64,
    t: &str,
    d: &RawValue,
    limits: HubLimits,
    dirty: &mut Vec<Arc<Outbox>>,
) -> Verdict {
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
    match c.out.queue(|b| protocol::put_dispatch(b, Some(c.s), t, d)) {
        Ok(true) => {
            dirty.push(c.out.clone());
            Verdict::Keep
        }
        Ok(false) => Verdict::Keep,
        Err(Full) => Verdict::Close(protocol::CloseCode::UnknownError.code(), "too slow"),
    }
}
