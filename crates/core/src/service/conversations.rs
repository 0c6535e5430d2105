//! Conversations and their participants.

use super::credentials::ConversationList;
use super::ConversationView;
use super::{Actor, Result, Services};
use crate::audit::AuditEntry;
use crate::cache::ConversationFacts;
use crate::error::ServiceError;
use crate::event::{Cached, Control, Event};
use crate::ids::*;
use crate::model::*;
use crate::policy::{self, CallerLimits, ConversationAccess, ConversationAction, OrgAction};
use crate::store::widget::WidgetConversation;
use crate::store::{Conflict, ConversationPatch, ConversationUpdate, Joining, Page, StoreError};
use crate::types::*;
use crate::widget::ConversationSource;

/// What creating a conversation needs (already parsed).
#[derive(Debug, Clone)]
pub struct NewConversation {
    pub kind: ConversationKind,
    pub name: Option<Name>,
    pub visibility: Visibility,
    pub participant_ids: Vec<UserId>,
}

impl Services {
    /// An audit entry for what `actor` does in (or to) conversation `conv`.
    fn conversation_audit(&self, actor: &Actor, event: &str, conv: &Conversation) -> AuditEntry {
        self.audit(actor, event)
            .resource("conversation", conv.id)
            .org(conv.org_id)
    }
}

/// What the request's credential and session take away from the actor's rights.
pub(super) fn limits(actor: &Actor) -> CallerLimits<'_> {
    CallerLimits {
        credential: &actor.credential,
        impersonated: actor.session.impersonator.is_some(),
    }
}

impl Services {
    /// `conv` with what the caller may do in it (nothing, outside the credential's reach). Only
    /// reads answer it: what a create or an update answers is also an event's `d`, shared by
    /// every recipient, so it carries no one's permissions (GATEWAY: `d` is the object exactly
    /// as REST returns it).
    async fn view(
        &self,
        actor: &Actor,
        conv: Conversation,
        widget: Option<&WidgetConversation>,
    ) -> Result<ConversationView> {
        let limits = limits(actor);
        let permissions = if limits.reach(conv.org_id, conv.id) {
            let access = self.user_access(actor.user.id, &(&conv).into()).await?;
            policy::conversation_permissions(&access, limits)
        } else {
            Vec::new()
        };
        Ok(ConversationView {
            conversation: conv,
            source: widget.map(|_| ConversationSource::Widget),
            status: widget.map(|w| w.status),
            permissions,
        })
    }

    /// A page of the `which` list (the caller's conversations, or those it may join), each
    /// conversation with what the caller may do in it.
    pub async fn conversation_list(
        &self,
        actor: &Actor,
        which: ConversationList,
        page: Page<ConversationId>,
    ) -> Result<Vec<ConversationView>> {
        let convs = self.conversation_page(actor, which, page).await?;
        let ids: Vec<ConversationId> = convs.iter().map(|c| c.id).collect();
        let widgets = self.store.widget_conversations(&ids).await?;
        let mut views = Vec::with_capacity(convs.len());
        for conv in convs {
            let widget = widgets.iter().find(|w| w.conversation_id == conv.id);
            views.push(self.view(actor, conv, widget).await?);
        }
        Ok(views)
    }

    /// Everything policy needs to decide about `actor` and `conv`. A bot or key outside its
    /// limits gets 403 `insufficient_scope` (404 when its user could not see `conv` either); a
    /// member of an org that requires 2FA without it gets 403 `mfa_setup_required`.
    pub(super) async fn access(
        &self,
        actor: &Actor,
        conv: &ConversationFacts,
    ) -> Result<ConversationAccess> {
        let access = self.user_access(actor.user.id, conv).await?;
        Self::check_conversation_credential(actor, conv, &access)?;
        self.check_conversation_2fa(actor, conv, &access).await?;
        Ok(access)
    }

    /// What `user` alone (whatever credential they use) may do in `conv`: their org standing,
    /// participation and teams, each from the cache when it holds them.
    pub(super) async fn user_access(
        &self,
        user: UserId,
        conv: &ConversationFacts,
    ) -> Result<ConversationAccess> {
        let org_role = self.standing(conv.org_id, user).await?.map(|s| s.role);
        let participant = match org_role {
            Some(_) => self.participation(conv.id, user).await?,
            None => None,
        };
        let in_scope = match (&conv.visibility, org_role) {
            (_, None) => false,
            (Visibility::Scope(VisibilityScope::Org), _) => true,
            (Visibility::Scope(VisibilityScope::Private), _) => false,
            (Visibility::Teams { teams }, _) => {
                let mine = self.teams_of(conv.org_id, user).await?;
                teams.iter().any(|t| mine.contains(t))
            }
        };
        Ok(ConversationAccess {
            org_role,
            participant,
            in_scope,
            kind: conv.kind,
            archived: conv.archived,
        })
    }

    /// 403 when the caller may know the conversation, 404 otherwise.
    pub(super) fn denied(a: &ConversationAccess) -> ServiceError {
        if policy::conversation_allows(a, ConversationAction::See) {
            ServiceError::not_allowed("you are not allowed to do this in this conversation")
        } else {
            ServiceError::NotFound("conversation")
        }
    }

    /// Loads a conversation and checks `action`, answering 404/403 as policy says.
    pub(super) async fn conversation_for(
        &self,
        actor: &Actor,
        id: ConversationId,
        action: ConversationAction,
    ) -> Result<(Conversation, ConversationAccess)> {
        let conv = self
            .store
            .conversation(id)
            .await
            .map_err(ServiceError::missing("conversation"))?;
        let access = self.allowed(actor, &(&conv).into(), action).await?;
        Ok((conv, access))
    }

    /// [`Self::conversation_for`] for the message path, which needs only the conversation's
    /// settings (from the cache when it holds them), not its row.
    pub(super) async fn conversation_access(
        &self,
        actor: &Actor,
        id: ConversationId,
        action: ConversationAction,
    ) -> Result<(ConversationFacts, ConversationAccess)> {
        let conv = self.conversation_facts(id).await?;
        let access = self.allowed(actor, &conv, action).await?;
        Ok((conv, access))
    }

    /// The caller's access to `conv` when it allows `action`; 404/403 as policy says.
    async fn allowed(
        &self,
        actor: &Actor,
        conv: &ConversationFacts,
        action: ConversationAction,
    ) -> Result<ConversationAccess> {
        let access = self.access(actor, conv).await?;
        if !policy::conversation_allows(&access, action) {
            return Err(Self::denied(&access));
        }
        Ok(access)
    }

    /// A team visibility must list at least one team, all of this org.
    async fn check_visibility(&self, org: OrgId, visibility: &Visibility) -> Result<()> {
        let Visibility::Teams { teams } = visibility else {
            return Ok(());
        };
        if teams.is_empty() {
            return Err(ServiceError::invalid(
                "visibility/teams",
                "empty",
                "list at least one team",
            ));
        }
        let org_teams = self.store.teams(org).await?;
        for (i, t) in teams.iter().enumerate() {
            if !org_teams.iter().any(|ot| ot.id == *t) {
                return Err(ServiceError::invalid(
                    format!("/visibility/teams/{i}"),
                    "unknown_team",
                    "no such team in this organization",
                ));
            }
        }
        Ok(())
    }

    /// Creates a conversation with the caller as owner. A direct conversation for a pair that
    /// already has one returns the existing one (`false`: not created).
    pub async fn create_conversation(
        &self,
        actor: &Actor,
        org: OrgId,
        new: NewConversation,
    ) -> Result<(Conversation, bool)> {
        self.require_org(actor, org, OrgAction::CreateConversation)
            .await?;
        Self::require_unlisted(actor)?;
        // Each checked where the request listed it, so the error names that entry.
        for (i, u) in new.participant_ids.iter().enumerate() {
            if *u != actor.user.id && self.store.membership(org, *u).await?.is_none() {
                return Err(ServiceError::invalid(
                    format!("/participant_ids/{i}"),
                    "not_a_member",
                    "every participant must be a member of the organization",
                ));
            }
        }
        let mut others: Vec<UserId> = new
            .participant_ids
            .iter()
            .copied()
            .filter(|u| *u != actor.user.id)
            .collect();
        others.sort();
        others.dedup();
        let direct_key = match new.kind {
            ConversationKind::Direct => {
                if others.len() != 1 {
                    return Err(ServiceError::invalid(
                        "participant_ids",
                        "invalid_length",
                        "a direct conversation has exactly one other participant",
                    ));
                }
                if new.name.is_some() {
                    return Err(ServiceError::invalid(
                        "name",
                        "not_allowed",
                        "a direct conversation has no name",
                    ));
                }
                if new.visibility != Visibility::PRIVATE {
                    return Err(ServiceError::invalid(
                        "visibility",
                        "not_allowed",
                        "a direct conversation is private",
                    ));
                }
                let mut pair = [actor.user.id, others[0]];
                pair.sort();
                let key = format!("{}:{}", pair[0], pair[1]);
                if let Some(existing) = self.store.direct_conversation(org, &key).await? {
                    return Ok((self.reopen_direct(actor, existing, pair).await?, false));
                }
                Some(key)
            }
            ConversationKind::Group => None,
        };
        self.check_visibility(org, &new.visibility).await?;
        let now = self.clock.now();
        let conv = Conversation {
            id: ConversationId::new(),
            org_id: org,
            kind: new.kind,
            name: new.name.map(Name::into_inner),
            visibility: new.visibility,
            archived: false,
            created_by: actor.user.id,
            created_at: now,
            updated_at: now,
            last_seq: 0,
            direct_key,
        };
        let mut participants = vec![(actor.user.id, ConversationRole::Owner)];
        participants.extend(others.iter().map(|u| (*u, ConversationRole::Member)));
        let audit = self
            .conversation_audit(actor, "conversation.created", &conv)
            .detail(serde_json::json!({ "kind": conv.kind, "participants": participants.len() }));
        match self
            .store
            .create_conversation(&conv, &participants, &[audit])
            .await
        {
            Ok(()) => {
                // Webhooks hear of the creation once, with the first announcement.
                for (i, (user, _)) in participants.iter().enumerate() {
                    let subscribe = self.subscribed(&conv, *user).await?;
                    self.emit(if i == 0 {
                        subscribe
                    } else {
                        subscribe.gateway_only()
                    });
                }
                Ok((conv, true))
            }
            Err(StoreError::Conflict(Conflict::DirectExists)) => {
                // Created concurrently by the other side: return theirs.
                let key = conv.direct_key.clone().unwrap_or_default();
                let existing = self
                    .store
                    .direct_conversation(org, &key)
                    .await?
                    .ok_or(ServiceError::NotFound("conversation"))?;
                let pair = [actor.user.id, others[0]];
                Ok((self.reopen_direct(actor, existing, pair).await?, false))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// MSG-1: a direct conversation is its pair's for good. Asked for again by one of them,
    /// it first takes back whichever of the two is no longer in it (who left it, or was taken
    /// out by a removal from the org and has come back), so it is never handed to someone
    /// outside it (AZ-3) and the pair can always write to each other again. Both are members
    /// of the org (checked by the caller, and again under the org's lock by the store).
    async fn reopen_direct(
        &self,
        actor: &Actor,
        conv: Conversation,
        pair: [UserId; 2],
    ) -> Result<Conversation> {
        for user in pair {
            if self.store.participant_role(conv.id, user).await?.is_some() {
                continue;
            }
            let joining = Joining {
                conv: conv.id,
                user,
                role: ConversationRole::Member,
                at: self.clock.now(),
            };
            let audit = self
                .conversation_audit(actor, "participant.added", &conv)
                .detail(serde_json::json!({ "user_id": user, "role": joining.role }));
            match self.store.add_participant(&joining, &[audit]).await {
                Ok(added) => self.announce_added(&conv, &added).await?,
                // Taken back by a concurrent request of the pair.
                Err(StoreError::Conflict(Conflict::AlreadyParticipant)) => {}
                // Removed from the org meanwhile.
                Err(StoreError::NotFound) => return Err(ServiceError::NotFound("conversation")),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(conv)
    }

    pub async fn get_conversation(
        &self,
        actor: &Actor,
        id: ConversationId,
    ) -> Result<ConversationView> {
        let (conv, _) = self
            .conversation_for(actor, id, ConversationAction::See)
            .await?;
        let widget = self.store.widget_conversation(id).await?;
        self.view(actor, conv, widget.as_ref()).await
    }

    pub async fn update_conversation(
        &self,
        actor: &Actor,
        id: ConversationId,
        patch: ConversationPatch,
    ) -> Result<Conversation> {
        let (conv, _) = self
            .conversation_for(actor, id, ConversationAction::Update)
            .await?;
        if let Some(v) = &patch.visibility {
            self.check_visibility(conv.org_id, v).await?;
        }
        // DATA-4: what each setting was and became (a private conversation opened to the org
        // reads as such).
        let mut values = crate::audit::SettingChanges::default();
        if let Some(name) = &patch.name {
            values.record("name", &conv.name, name.as_str());
        }
        if let Some(archived) = patch.archived {
            values.record("archived", conv.archived, archived);
        }
        if let Some(v) = &patch.visibility {
            values.record("visibility", &conv.visibility, v);
        }
        let audit = self
            .conversation_audit(actor, "conversation.updated", &conv)
            .detail(serde_json::json!({ "values": values.into_value() }));
        let updated = self
            .store
            .update_conversation(
                &ConversationUpdate {
                    id,
                    patch,
                    at: self.clock.now(),
                },
                &[audit],
            )
            .await?;
        // Its settings (visibility, archival) decide everyone's access: forgotten first.
        self.stale(vec![Cached::Conversation(id)]);
        let widget = self.store.widget_conversation(id).await?;
        let d = super::widget::sourced(&updated, widget.as_ref());
        self.emit(Event::conversation("CONVERSATION_UPDATE", id, d).in_org(conv.org_id));
        Ok(updated)
    }

    pub async fn delete_conversation(
        &self,
        actor: &Actor,
        id: ConversationId,
    ) -> Result<Conversation> {
        let (conv, _) = self
            .conversation_for(actor, id, ConversationAction::Delete)
            .await?;
        let audit = self.conversation_audit(actor, "conversation.deleted", &conv);
        // The object as `GET` showed it last (its widget row goes with it).
        let widget = self.store.widget_conversation(id).await?;
        let freed = self.store.delete_conversation(id, &[audit]).await?;
        self.emit(
            Event::conversation(
                "CONVERSATION_DELETE",
                id,
                super::widget::sourced(&conv, widget.as_ref()),
            )
            .in_org(conv.org_id)
            .with_control(Control::Drop { conversation: id }),
        );
        self.free(freed).await;
        Ok(conv)
    }

    pub async fn join_conversation(
        &self,
        actor: &Actor,
        id: ConversationId,
    ) -> Result<Participant> {
        let conv = self
            .store
            .conversation(id)
            .await
            .map_err(|_| ServiceError::NotFound("conversation"))?;
        let access = self.access(actor, &(&conv).into()).await?;
        if access.participant.is_some() && access.org_role.is_some() {
            return Err(StoreError::Conflict(Conflict::AlreadyParticipant).into());
        }
        if !policy::conversation_allows(&access, ConversationAction::Join) {
            return Err(Self::denied(&access));
        }
        let joining = Joining {
            conv: id,
            user: actor.user.id,
            role: ConversationRole::Member,
            at: self.clock.now(),
        };
        let audit = self.conversation_audit(actor, "participant.joined", &conv);
        let added = self.store.add_participant(&joining, &[audit]).await?;
        self.announce_added(&conv, &added).await?;
        Ok(added)
    }

    /// The added user first gets the conversation (and from then on its events), then every
    /// participant learns of the new one; webhooks get `participant.added` with the participant
    /// object (and no second `conversation.created`).
    async fn announce_added(&self, conv: &Conversation, p: &Participant) -> Result<()> {
        let user = p.user.id;
        let subscribe = self.subscribed(conv, user).await?;
        self.emit(subscribe.gateway_only());
        let d = serde_json::json!({"conversation_id": conv.id, "user_id": user, "role": p.role});
        self.emit(
            Event::conversation("PARTICIPANT_ADD", conv.id, d)
                .in_org(conv.org_id)
                .hook_with(p),
        );
        Ok(())
    }

    /// `CONVERSATION_CREATE` to a user who now participates, subscribing their sockets. A user
    /// locked out of the org (AUTH-4a) gets the subscription held back: nothing of it reaches
    /// them until `ORG_ACCESS_RESTORED`.
    pub(super) async fn subscribed(&self, conv: &Conversation, user: UserId) -> Result<Event> {
        let locked = self.locked_out(user, conv.org_id).await?;
        Ok(
            Event::user("CONVERSATION_CREATE", user, conv).with_control(Control::Subscribe {
                user,
                conversation: conv.id,
                org: conv.org_id,
                locked,
            }),
        )
    }

    /// Everyone (the removed user included, as their last event of it) learns of the removal;
    /// webhooks get `participant.removed` with the participant object as it was.
    pub(super) fn announce_removed(&self, p: &Participant) {
        let (conv, user) = (p.conversation_id, p.user.id);
        let d = serde_json::json!({"conversation_id": conv, "user_id": user, "role": p.role});
        self.emit(
            Event::conversation("PARTICIPANT_REMOVE", conv, d)
                .with_control(Control::Unsubscribe {
                    user,
                    conversation: conv,
                })
                .hook_with(p),
        );
    }

    pub async fn leave_conversation(&self, actor: &Actor, id: ConversationId) -> Result<()> {
        let (conv, _) = self
            .conversation_for(actor, id, ConversationAction::Leave)
            .await?;
        let audit = self.conversation_audit(actor, "participant.left", &conv);
        let left = self
            .store
            .remove_participant(id, actor.user.id, &[audit])
            .await?;
        self.announce_removed(&left);
        Ok(())
    }

    pub async fn participants(
        &self,
        actor: &Actor,
        id: ConversationId,
        page: Page<UserId>,
    ) -> Result<Vec<Participant>> {
        self.conversation_for(actor, id, ConversationAction::Read)
            .await?;
        Ok(self.store.participants(id, page).await?)
    }

    pub async fn add_participant(
        &self,
        actor: &Actor,
        id: ConversationId,
        user: UserId,
        role: ConversationRole,
    ) -> Result<Participant> {
        let (conv, access) = self
            .conversation_for(actor, id, ConversationAction::AddParticipants)
            .await?;
        if !policy::may_grant_participant_role(&access, role) {
            return Err(ServiceError::not_allowed("you cannot grant that role"));
        }
        if self.store.membership(conv.org_id, user).await?.is_none() {
            return Err(ServiceError::invalid(
                "user_id",
                "not_a_member",
                "the user is not a member of this organization",
            ));
        }
        let joining = Joining {
            conv: id,
            user,
            role,
            at: self.clock.now(),
        };
        let audit = self
            .conversation_audit(actor, "participant.added", &conv)
            .detail(serde_json::json!({ "user_id": user, "role": role }));
        let added = self.store.add_participant(&joining, &[audit]).await?;
        self.announce_added(&conv, &added).await?;
        Ok(added)
    }

    pub async fn remove_participant(
        &self,
        actor: &Actor,
        id: ConversationId,
        user: UserId,
    ) -> Result<()> {
        if user == actor.user.id {
            return self.leave_conversation(actor, id).await;
        }
        let (conv, access) = self
            .conversation_for(actor, id, ConversationAction::RemoveParticipants)
            .await?;
        let target = self
            .store
            .participant_role(id, user)
            .await?
            .ok_or(ServiceError::NotFound("participant"))?;
        if !policy::may_remove_participant_with_role(&access, target) {
            return Err(ServiceError::not_allowed(
                "you cannot remove this participant",
            ));
        }
        let audit = self
            .conversation_audit(actor, "participant.removed", &conv)
            .detail(serde_json::json!({ "user_id": user }));
        let removed = self.store.remove_participant(id, user, &[audit]).await?;
        self.announce_removed(&removed);
        Ok(())
    }
}
