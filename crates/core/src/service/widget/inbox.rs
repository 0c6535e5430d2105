//! The support team's side: the inbox, handoffs to people and status changes, each announced
//! to the conversation, the inbox and the visitor's stream.

use super::{sourced, Visitor, HANDOFF_NOTICE};
use crate::error::ServiceError;
use crate::event::Event;
use crate::ids::*;
use crate::model::Conversation;
use crate::policy::OrgAction;
use crate::service::{Actor, Result, SendMessage, ServerAdmin, Services};
use crate::store::widget::*;
use crate::types::*;
use crate::widget::WidgetStatus;

impl Services {
    /// Announces a widget conversation's new status to its participants' sockets, webhooks and
    /// the visitor's stream: `CONVERSATION_UPDATE` with `source` and `status`.
    async fn announce_widget_status(&self, w: &WidgetConversation) -> Result<()> {
        let conv = self.store.conversation(w.conversation_id).await?;
        let d = sourced(&conv, Some(w));
        self.emit(
            Event::conversation("CONVERSATION_UPDATE", w.conversation_id, d).in_org(w.org_id),
        );
        self.announce_to_inbox(w).await
    }

    /// `INBOX_UPDATE` to everyone who works `w`'s inbox (its team's members and the org's
    /// owners and admins), whether or not they are in the conversation: the inbox is live.
    pub(super) async fn announce_to_inbox(&self, w: &WidgetConversation) -> Result<()> {
        let d = serde_json::json!({
            "conversation_id": w.conversation_id,
            "org_id": w.org_id,
            "status": w.status,
        });
        let requires_2fa = self.store.org(w.org_id).await?.require_2fa;
        for user in self
            .store
            .widget_inbox_audience(w.org_id, w.team_id)
            .await?
        {
            // AUTH-4a: one the org's 2FA rule shuts out hears nothing of it — also one who
            // joined after her sockets started, whose hub does not hold the org back yet.
            if requires_2fa && self.locked_out(user, w.org_id).await? {
                continue;
            }
            self.emit(
                Event::user("INBOX_UPDATE", user, &d)
                    .in_org(w.org_id)
                    .gateway_only(),
            );
        }
        Ok(())
    }

    /// Hands a `bot` conversation to people (AGENT-6: audited): `None` when it was not `bot`
    /// (already handed over, resolved). A notice is posted by the key's system bot.
    async fn hand_off(
        &self,
        actor: &Actor,
        w: &WidgetConversation,
        by: &'static str,
    ) -> Result<Option<WidgetConversation>> {
        let audit = self
            .audit(actor, "widget.handoff")
            .resource("conversation", w.conversation_id)
            .org(w.org_id)
            .detail(serde_json::json!({ "by": by, "widget_key": w.key_id }));
        let now = self.clock.now();
        let Some(changed) = self
            .store
            .set_widget_status(
                w.conversation_id,
                &[WidgetStatus::Bot],
                WidgetStatus::Open,
                now,
                &[audit],
            )
            .await?
        else {
            return Ok(None);
        };
        self.announce_widget_status(&changed).await?;
        let key = self.store.widget_key(w.key_id).await;
        if let Ok(key) = key {
            let system = self
                .widget_bot_actor(key.system_bot_id, Some(w.conversation_id), &actor.meta)
                .await?;
            let notice = MessageText::parse(HANDOFF_NOTICE).expect("the notice is valid");
            (self.send_message(&system, w.conversation_id, SendMessage::text(notice))).await?;
        }
        Ok(Some(changed))
    }

    /// The visitor asks for a person: their current conversation moves from `bot` to `open`.
    /// Answers the conversation as it is now (unchanged when it was not `bot`); 404 when the
    /// visitor has none.
    pub async fn widget_handoff(&self, v: &Visitor) -> Result<WidgetConversation> {
        let w = (self.store.latest_widget_conversation(v.visitor.id).await?)
            .ok_or(ServiceError::NotFound("conversation"))?;
        let actor = self
            .widget_bot_actor(v.key.visitor_bot_id, Some(w.conversation_id), &v.meta)
            .await?;
        match self.hand_off(&actor, &w, "visitor").await? {
            Some(changed) => Ok(changed),
            // Handed off (or resolved) meanwhile: answered as it is now.
            None => Ok(self
                .store
                .widget_conversation(w.conversation_id)
                .await?
                .unwrap_or(w)),
        }
    }

    /// The agent decided a person should take over (its answer ended with the handoff
    /// marker).
    pub async fn widget_agent_handoff(
        &self,
        agent: &Actor,
        conv: ConversationId,
    ) -> Result<Option<WidgetConversation>> {
        match self.store.widget_conversation(conv).await? {
            Some(w) => self.hand_off(agent, &w, "agent").await,
            None => Ok(None),
        }
    }

    /// Whether `actor` may work `w`'s key's inbox: a member of its team or an org admin,
    /// through a login session or an API key (not a bot), not limited to listed conversations.
    async fn require_inbox(
        &self,
        actor: &Actor,
        org: OrgId,
        team: Option<TeamId>,
    ) -> Result<Option<Vec<TeamId>>> {
        Self::require_unlisted(actor)?;
        let role = self.org_role(actor, org).await?;
        let teams = self.teams_of(org, actor.user.id).await?;
        let admin = crate::policy::org_allows(role, OrgAction::ManageWidgetKeys);
        let in_team = match team {
            Some(t) => teams.contains(&t),
            None => !teams.is_empty(),
        };
        if !crate::policy::widget_inbox_allows(&actor.credential, role, admin, in_team) {
            return Err(ServiceError::not_allowed(
                "only the support team and the organization's admins work the widget inbox",
            ));
        }
        Ok(if admin { None } else { Some(teams) })
    }

    /// The org's widget conversations the caller's teams answer (all of them for admins),
    /// newest first.
    pub async fn widget_inbox(
        &self,
        actor: &Actor,
        org: OrgId,
        status: Option<WidgetStatus>,
        before: Option<ConversationId>,
        limit: Limit,
    ) -> Result<Vec<InboxItem>> {
        let teams = self.require_inbox(actor, org, None).await?;
        let query = InboxQuery {
            org: Some(org),
            status,
            teams,
            before,
            limit: limit.get(),
        };
        Ok(self.store.widget_inbox(&query).await?)
    }

    /// Every widget conversation of the server, newest first (server admins).
    pub async fn admin_widget_conversations(
        &self,
        _admin: &ServerAdmin,
        status: Option<WidgetStatus>,
        before: Option<ConversationId>,
        limit: Limit,
    ) -> Result<Vec<InboxItem>> {
        let query = InboxQuery {
            org: None,
            status,
            teams: None,
            before,
            limit: limit.get(),
        };
        Ok(self.store.widget_inbox(&query).await?)
    }

    /// A person of the support team opens (`open`) or resolves (`resolved`) a widget
    /// conversation; from `bot` that is a handoff (audited as one).
    pub async fn set_widget_status(
        &self,
        actor: &Actor,
        conv: ConversationId,
        to: WidgetStatus,
    ) -> Result<(WidgetConversation, Conversation)> {
        let w = self.change_widget_status(actor, conv, to).await?;
        Ok((w, self.store.conversation(conv).await?))
    }

    async fn change_widget_status(
        &self,
        actor: &Actor,
        conv: ConversationId,
        to: WidgetStatus,
    ) -> Result<WidgetConversation> {
        // Someone who may not even see the conversation learns nothing of it.
        self.conversation_for(actor, conv, crate::policy::ConversationAction::See)
            .await?;
        let Some(w) = self.store.widget_conversation(conv).await? else {
            return Err(ServiceError::invalid(
                "status",
                "not_a_widget_conversation",
                "only widget conversations have a status",
            ));
        };
        Self::require_not_impersonated(actor)?;
        self.require_inbox(actor, w.org_id, Some(w.team_id)).await?;
        if to == WidgetStatus::Bot {
            return Err(ServiceError::invalid(
                "status",
                "invalid_value",
                "must be open or resolved",
            ));
        }
        if w.status == to {
            return Ok(w);
        }
        if w.status == WidgetStatus::Bot && to == WidgetStatus::Open {
            if let Some(changed) = self.hand_off(actor, &w, "staff").await? {
                return Ok(changed);
            }
            return Ok(self.store.widget_conversation(conv).await?.unwrap_or(w));
        }
        let audit = self
            .audit(actor, "widget.status_changed")
            .resource("conversation", conv)
            .org(w.org_id)
            .detail(serde_json::json!({ "from": w.status, "to": to }));
        let now = self.clock.now();
        let others: Vec<WidgetStatus> = (WidgetStatus::ALL.iter().copied())
            .filter(|s| *s != to)
            .collect();
        match self
            .store
            .set_widget_status(conv, &others, to, now, &[audit])
            .await?
        {
            Some(changed) => {
                self.announce_widget_status(&changed).await?;
                Ok(changed)
            }
            None => Ok(self.store.widget_conversation(conv).await?.unwrap_or(w)),
        }
    }

    /// The user ids of the org's widget bots (left out of the bot list, never given tokens).
    pub(in crate::service) async fn widget_bots(&self, org: OrgId) -> Result<Vec<UserId>> {
        Ok(self.store.widget_bot_users(org).await?)
    }
}
