//! Bots (AUTH-6): accounts of kind `bot` that belong to one org, created by its owners and
//! admins, with a token shown once and rotated with a grace period. A bot is an org member with
//! role `member`; conversation managers add it to conversations like anyone else. An AI
//! agent's bot (`agents`) is not listed here and its token is never rotated: it has none.

use super::credentials::new_secret;
use super::{Actor, Result, Services};
use crate::error::ServiceError;
use crate::ids::*;
use crate::model::*;
use crate::policy::OrgAction;
use crate::store::{NewBot, StoreError};
use crate::token::TokenKind;
use crate::types::*;
use secrecy::SecretString;

/// What a bot account's username starts with; an AI agent's is [`AGENT_USERNAME_PREFIX`].
pub const BOT_USERNAME_PREFIX: &str = "bot-";
/// An AI agent's bot account's username starts with this: with `kind: "bot"` (which no person's
/// account has), clients show such an author or participant as an AI agent, at no cost.
pub const AGENT_USERNAME_PREFIX: &str = "agent-";

/// A bot account's username: `prefix` and 16 hex digits of the random part of its id. People
/// see its display name (the bot's name); the username only has to be unique.
fn bot_username(id: BotId, prefix: &str) -> Result<Username> {
    let hex = id.0.simple().to_string();
    Username::parse(&format!("{prefix}{}", &hex[hex.len() - 16..]))
        .map_err(|r| ServiceError::Internal(format!("bot username: {r}")))
}

/// What is stored where the token hash of a bot that no token opens would be (an agent's, a
/// widget key's): random bytes, which no token hashes to.
pub(super) fn unusable_token_hash() -> [u8; 32] {
    let mut hash = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut hash);
    hash
}

impl Services {
    /// A new bot of `org` made by `actor` and its account (kind bot, username starting with
    /// `prefix`); its first secret is the caller's to set (`secrets` holds a fresh id and no
    /// hint).
    pub(super) fn new_bot(
        &self,
        actor: &Actor,
        org: OrgId,
        (name, prefix): (DisplayName, &str),
        conversation_ids: Option<Vec<ConversationId>>,
    ) -> Result<(Bot, NewUser)> {
        let now = self.clock.now();
        let id = BotId::new();
        let user = NewUser {
            id: UserId::new(),
            username: bot_username(id, prefix)?,
            display_name: Some(name.clone()),
            email: None,
            email_verified: false,
            password_hash: None,
            kind: UserKind::Bot,
            server_admin: false,
            created_at: now,
        };
        let bot = Bot {
            id,
            org_id: org,
            user_id: user.id,
            name: name.into_inner(),
            conversation_ids,
            created_by: Some(actor.user.id),
            created_at: now,
            previous_token_expires_at: None,
            secrets: SecretIds::first(SessionId::new(), String::new()),
        };
        Ok((bot, user))
    }

    /// Creates a bot in `org`, optionally limited to `conversation_ids` (conversations of the
    /// org). The token is returned once.
    pub async fn create_bot(
        &self,
        actor: &Actor,
        org: OrgId,
        name: DisplayName,
        conversation_ids: Option<Vec<ConversationId>>,
    ) -> Result<(Bot, SecretString)> {
        // A bot's token is a credential: made and rotated by a person's own session (AUTH-6).
        Self::require_own_session(actor)?;
        self.require_org(actor, org, OrgAction::ManageBots).await?;
        let conversation_ids = self
            .check_conversation_list(actor, org, conversation_ids)
            .await?;
        let (token, secret) = new_secret(TokenKind::Bot, &self.keys.token_pepper);
        let named = (name, BOT_USERNAME_PREFIX);
        let (bot, user) = self.new_bot(actor, org, named, conversation_ids)?;
        let bot = Bot {
            secrets: SecretIds::first(secret.id, secret.hint),
            ..bot
        };
        let audit = self
            .audit(actor, "bot.created")
            .resource("bot", bot.id)
            .org(bot.org_id);
        let new = NewBot {
            bot: &bot,
            account: &user,
            token_hash: &secret.hash,
        };
        let member = self.store.create_bot(&new, &[audit]).await?;
        self.announce_member_added(&member);
        Ok((bot, token))
    }

    /// The org's bots (owners and admins; tokens are never shown again).
    pub async fn bots(&self, actor: &Actor, org: OrgId) -> Result<Vec<Bot>> {
        self.require_org(actor, org, OrgAction::ManageBots).await?;
        let agents: Vec<BotId> = self
            .store
            .agents(org)
            .await?
            .iter()
            .map(|a| a.bot_id)
            .collect();
        let widget_bots = self.widget_bots(org).await?;
        let mut bots = self.store.bots(org).await?;
        bots.retain(|b| !agents.contains(&b.id) && !widget_bots.contains(&b.user_id));
        Ok(bots)
    }

    /// Issues a new token for a bot of `org`; the old one keeps working for `grace_seconds`
    /// (0: not at all, and its gateway sockets close now). A token kept from an earlier rotation
    /// goes now.
    pub async fn rotate_bot_token(
        &self,
        actor: &Actor,
        org: OrgId,
        id: BotId,
        grace_seconds: i64,
    ) -> Result<(Bot, SecretString)> {
        // A bot's token is a credential: made and rotated by a person's own session (AUTH-6).
        Self::require_own_session(actor)?;
        self.require_org(actor, org, OrgAction::ManageBots).await?;
        let grace = Self::grace(grace_seconds)?;
        let what = "bot";
        match self.store.bot(id).await {
            // An agent's bot holds no token, and never gets one (AGENT-1): it is not found here.
            Ok(b)
                if b.org_id == org
                    && self.store.agent_of_user(b.user_id).await?.is_none()
                    && !self.widget_bots(org).await?.contains(&b.user_id) => {}
            Ok(_) | Err(StoreError::NotFound) => return Err(ServiceError::NotFound(what)),
            Err(e) => return Err(e.into()),
        }
        let now = self.clock.now();
        let audit = self.audit(actor, "bot.token_rotated");
        self.rotate_secret(
            (TokenKind::Bot, now, grace),
            audit.resource("bot", id).org(org),
            |rotation, audit| async move {
                let rotated = self.store.rotate_bot_token(id, &rotation, &[audit]).await;
                rotated.map_err(ServiceError::missing(what))
            },
            |b| (b.user_id, &b.secrets),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bot_usernames_are_valid_and_distinct() {
        let a = bot_username(BotId::new(), BOT_USERNAME_PREFIX).unwrap();
        let b = bot_username(BotId::new(), BOT_USERNAME_PREFIX).unwrap();
        assert!(a.as_str().starts_with("bot-") && a.as_str().len() == 20);
        assert_ne!(a, b);
        let agent = bot_username(BotId::new(), AGENT_USERNAME_PREFIX).unwrap();
        assert!(agent.as_str().starts_with("agent-") && agent.as_str().len() == 22);
    }
}
