//! Presence: this node's view of each user (online if any of their connections is, idle if
//! all are), published when it changes; every node aggregates the views of all nodes, so each
//! delivers the same `PRESENCE_UPDATE` to the users who share a conversation.

use super::ids::IdSet;
use super::Hub;
use conclave_core::event::{Audience, Control, Event, PresenceStatus};
use conclave_core::{ConversationId, UserId};
use std::collections::HashSet;

impl Hub {
    /// Takes note of another node's presence report for a user.
    pub(super) fn note_presence(&mut self, control: &Control) {
        if let Control::Presence {
            user, node, status, ..
        } = control
        {
            if node != &self.node {
                self.presence
                    .entry(*user)
                    .or_default()
                    .insert(node.clone(), *status);
            }
        }
    }

    /// This node's presence for a user: online if any connection is, idle if all are idle.
    pub(super) fn local_status(&self, user: UserId) -> PresenceStatus {
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
    pub(super) fn announce_presence(&mut self, user: UserId, leaving: &IdSet<ConversationId>) {
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
        let audience = Audience::Peers {
            user,
            conversations: conversations.clone(),
        };
        let d = serde_json::json!({"user_id": user, "status": after});
        let event = Event::new("PRESENCE_UPDATE", audience, d).with_control(Control::Presence {
            user,
            node: self.node.clone(),
            status: local,
            conversations,
        });
        (self.publish)(event);
    }
}
