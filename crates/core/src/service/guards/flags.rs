//! The review queue: flags of delivered messages, listed and resolved by the org's
//! moderators, and the server's guard totals.

use super::FlagItem;
use crate::credential::Scope;
use crate::error::ServiceError;
use crate::ids::*;
use crate::model::Message;
use crate::policy::{self, OrgAction};
use crate::service::{Actor, Result, ServerAdmin, Services};
use crate::store::guards::*;
use crate::store::StoreError;

impl Services {
    /// Queues a delivered message for review by each of `guards` (an open flag of the same
    /// message by the same guard is not queued twice).
    pub async fn flag_message(
        &self,
        org: OrgId,
        message: &Message,
        guards: &[GuardId],
    ) -> Result<()> {
        if guards.is_empty() {
            return Ok(());
        }
        // One flag a guard, however often it judged the message (an answer's every delta).
        let mut guards = guards.to_vec();
        guards.sort_unstable();
        guards.dedup();
        let known = self.org_guards(org).await?;
        let now = self.clock.now();
        let mut flags = Vec::with_capacity(guards.len());
        for id in &guards {
            let name = match known.guards.iter().find(|g| g.id == *id) {
                Some(g) => g.name.clone(),
                None => {
                    self.store
                        .guard(*id)
                        .await
                        .map_err(ServiceError::missing("guard"))?
                        .name
                }
            };
            flags.push(NewFlag {
                id: FlagId::new(),
                org_id: org,
                guard_id: *id,
                guard_name: name,
                message_id: message.id,
                conversation_id: message.conversation_id,
                author_id: message.author.id,
                created_at: now,
            });
        }
        Ok(self.store.add_flags(&flags).await?)
    }

    /// [`Self::flag_message`] for a message just delivered: the message stands whatever
    /// happens here, so a failure to queue its flags is logged (never its content), not
    /// answered.
    pub(in crate::service) async fn queue_flags(
        &self,
        org: OrgId,
        message: &Message,
        guards: &[GuardId],
    ) {
        if let Err(e) = self.flag_message(org, message, guards).await {
            tracing::error!(error = %e, message = %message.id, "a flagged message could not be queued for review");
        }
    }

    /// The org's review queue: open (or resolved) flags, newest first, each with its message.
    pub async fn flags(
        &self,
        actor: &Actor,
        org: OrgId,
        resolved: bool,
        before: Option<FlagId>,
        limit: i64,
    ) -> Result<Vec<FlagItem>> {
        self.require_org_settings(actor, org, OrgAction::ManageGuards, false)
            .await?;
        reads_flagged(actor)?;
        let flags = self.store.flags(org, resolved, before, limit).await?;
        let mut items = Vec::with_capacity(flags.len());
        for flag in flags {
            let message = match self.store.message(flag.message_id).await {
                Ok(m) => Some(m),
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e.into()),
            };
            items.push(FlagItem { flag, message });
        }
        Ok(items)
    }

    /// Closes a flag: `dismissed` keeps the message; `removed` deletes it as a moderator
    /// deletion does (tombstone, `MESSAGE_DELETE`, audit `message.moderated`) and closes the
    /// message's other open flags too. 409 `flag_resolved` when someone resolved it first.
    pub async fn resolve_flag(
        &self,
        actor: &Actor,
        org: OrgId,
        id: FlagId,
        resolution: Resolution,
    ) -> Result<FlagItem> {
        self.require_org_settings(actor, org, OrgAction::ManageGuards, true)
            .await?;
        reads_flagged(actor)?;
        let flag = match self.store.flag(id).await {
            Ok(f) if f.org_id == org => f,
            Ok(_) | Err(StoreError::NotFound) => return Err(ServiceError::NotFound("flag")),
            Err(e) => return Err(e.into()),
        };
        let audit = self
            .audit(actor, "flag.resolved")
            .resource("flag", id)
            .org(org)
            .detail(serde_json::json!({
                "resolution": resolution.as_str(),
                "message_id": flag.message_id,
                "conversation_id": flag.conversation_id,
                "guard_id": flag.guard_id,
            }));
        let resolved = self
            .store
            .resolve_flag(
                FlagResolution {
                    id,
                    by: actor.user.id,
                    resolution,
                    at: self.clock.now(),
                },
                &[audit],
            )
            .await?
            .ok_or_else(|| {
                ServiceError::conflict("flag_resolved", "this flag was resolved already")
            })?;
        let message = match resolution {
            Resolution::Dismissed => self.store.message(flag.message_id).await.ok(),
            Resolution::Removed => Some(self.remove_flagged(actor, &flag).await?),
        };
        Ok(FlagItem {
            flag: resolved,
            message,
        })
    }

    /// Deletes a flagged message as a moderator would.
    async fn remove_flagged(&self, actor: &Actor, flag: &Flag) -> Result<Message> {
        let audit = self
            .audit(actor, "message.moderated")
            .org(flag.org_id)
            .resource("message", flag.message_id)
            .detail(serde_json::json!({
                "conversation_id": flag.conversation_id,
                "author_id": flag.author_id,
                "flag_id": flag.id,
            }));
        let (deleted, freed) = self
            .store
            .delete_message(flag.message_id, self.clock.now(), &[audit])
            .await
            .map_err(ServiceError::missing("message"))?;
        self.emit(crate::event::Event::conversation(
            "MESSAGE_DELETE",
            deleted.conversation_id,
            &deleted,
        ));
        self.free(freed).await;
        Ok(deleted)
    }

    /// Totals over every guard of the server (`GET /admin/stats`).
    pub async fn guard_totals(&self, _admin: &ServerAdmin) -> Result<GuardTotals> {
        self.flush_guard_counts().await?;
        Ok(self.store.guard_totals().await?)
    }
}

/// The review queue shows (and its answers carry) the flagged messages' text: a key needs
/// `messages:read` besides `org:admin` (AZ-5), as reading them over REST would.
fn reads_flagged(actor: &Actor) -> Result<()> {
    if policy::credentials::scope_allows(&actor.credential, Some(Scope::MessagesRead)) {
        Ok(())
    } else {
        Err(crate::service::credentials::INSUFFICIENT_SCOPE)
    }
}
