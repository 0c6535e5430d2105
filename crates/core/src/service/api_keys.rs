//! API keys (AUTH-7): a signed-in user makes one for an org they belong to, sees the key once,
//! lists their keys masked, revokes them, and rotates them with a grace period. What a key may
//! do at request time is `credentials`' business.

use super::credentials::new_secret;
use super::{Actor, Result, Services};
use crate::credential::{Cidr, Scope};
use crate::error::ServiceError;
use crate::event::Cached;
use crate::ids::*;
use crate::model::*;
use crate::policy::{self, OrgAction};
use crate::store::StoreError;
use crate::token::TokenKind;
use crate::types::*;
use chrono::{DateTime, Utc};
use secrecy::SecretString;

/// The longest grace period a rotation may give the replaced secret (24 h).
pub const GRACE_MAX_SECONDS: i64 = 86_400;

/// How many entries an IP allowlist may hold.
const MAX_ALLOWED_IPS: usize = 100;

/// What creating a key needs (already parsed).
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: Name,
    pub org_id: OrgId,
    pub scopes: Vec<Scope>,
    pub conversation_ids: Option<Vec<ConversationId>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub allowed_ips: Option<Vec<Cidr>>,
    pub tier: KeyTier,
}

impl Services {
    /// Creates a key acting as the caller in `org_id`; the key is returned once. Any member
    /// may make one (it never exceeds their rights); only owners and admins give it a tier
    /// above `free`.
    pub async fn create_api_key(
        &self,
        actor: &Actor,
        new: NewApiKey,
    ) -> Result<(ApiKey, SecretString)> {
        Self::require_own_session(actor)?;
        let role = self.org_role(actor, new.org_id).await?;
        if new.tier != KeyTier::Free && !policy::org_allows(role, OrgAction::SetKeyTier) {
            return Err(ServiceError::not_allowed(
                "only owners and admins of the organization set a tier other than free",
            ));
        }
        let mut scopes = new.scopes;
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() {
            return Err(ServiceError::invalid(
                "scopes",
                "empty",
                "list at least one scope",
            ));
        }
        let now = self.clock.now();
        super::invites::check_expiry(new.expires_at, now)?;
        let allowed_ips = match new.allowed_ips {
            Some(list) if list.is_empty() || list.len() > MAX_ALLOWED_IPS => {
                return Err(ServiceError::invalid(
                    "allowed_ips",
                    "invalid_length",
                    format!("list 1 to {MAX_ALLOWED_IPS} addresses or blocks, or leave it out"),
                ))
            }
            Some(list) => {
                let mut distinct: Vec<Cidr> = Vec::with_capacity(list.len());
                for c in list {
                    if !distinct.contains(&c) {
                        distinct.push(c);
                    }
                }
                Some(distinct)
            }
            None => None,
        };
        let conversation_ids = self
            .check_conversation_list(actor, new.org_id, new.conversation_ids)
            .await?;
        let (key_text, secret) = new_secret(TokenKind::ApiKey, &self.keys.token_pepper);
        let key = ApiKey {
            id: ApiKeyId::new(),
            user_id: actor.user.id,
            org_id: new.org_id,
            name: new.name.into_inner(),
            scopes,
            conversation_ids,
            expires_at: new.expires_at,
            allowed_ips,
            tier: new.tier,
            last_used_at: None,
            last_used_ip: None,
            created_at: now,
            previous_key_expires_at: None,
            secrets: SecretIds::first(secret.id, secret.hint),
        };
        let audit = self
            .audit(actor, "api_key.created")
            .resource("api_key", key.id)
            .org(key.org_id)
            // DATA-4: every bound of the key (none is secret) — one made with no expiry and no
            // allowlist is what a lasting foothold looks like.
            .detail(serde_json::json!({
                "scopes": key.scopes,
                "expires_at": key.expires_at,
                "allowed_ips": key.allowed_ips,
                "conversation_ids": key.conversation_ids,
                "tier": key.tier,
            }));
        self.store
            .create_api_key(&key, &secret.hash, &[audit])
            .await?;
        Ok((key, key_text))
    }

    /// The caller's keys, oldest first (never the keys themselves).
    pub async fn api_keys(&self, actor: &Actor) -> Result<Vec<ApiKey>> {
        Self::require_session(actor)?;
        Ok(self.store.api_keys(actor.user.id).await?)
    }

    /// Deletes one of the caller's keys: the next request with it, on any node, gets 401, and
    /// its open gateway sockets close with 4004.
    pub async fn revoke_api_key(&self, actor: &Actor, id: ApiKeyId) -> Result<()> {
        Self::require_own_session(actor)?;
        let mut audit = self.audit(actor, "api_key.revoked").resource("api_key", id);
        if let Ok(k) = self.store.api_key(id).await {
            audit = audit.org(k.org_id);
        }
        let key = self
            .store
            .delete_api_key(actor.user.id, id, &[audit])
            .await
            .map_err(ServiceError::missing("API key"))?;
        self.stale(vec![Cached::User(key.user_id)]);
        self.close_replaced(&key.secrets, None);
        Ok(())
    }

    /// Deletes every key `user` owns, as the system for `reason` (each audited as
    /// `api_key.revoked`), the way `revoke_api_key` does: caches go stale and the keys'
    /// sockets close. Answers how many went; a key deleted meanwhile is not an error.
    pub(super) async fn revoke_all_api_keys(&self, user: UserId, reason: &str) -> Result<u64> {
        let mut revoked = 0;
        for key in self.store.api_keys(user).await? {
            let audit = self
                .system_audit("api_key.revoked")
                .resource("api_key", key.id)
                .org(key.org_id)
                .detail(serde_json::json!({ "user_id": user, "reason": reason }));
            match self.store.delete_api_key(user, key.id, &[audit]).await {
                Ok(gone) => {
                    self.close_replaced(&gone.secrets, None);
                    revoked += 1;
                }
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if revoked > 0 {
            self.stale(vec![Cached::User(user)]);
        }
        Ok(revoked)
    }

    /// Issues a new secret for one of the caller's keys; the old one keeps working for
    /// `grace_seconds` (0: not at all). A secret kept from an earlier rotation goes now.
    pub async fn rotate_api_key(
        &self,
        actor: &Actor,
        id: ApiKeyId,
        grace_seconds: i64,
    ) -> Result<(ApiKey, SecretString)> {
        Self::require_own_session(actor)?;
        let grace = Self::grace(grace_seconds)?;
        let what = "API key";
        let key = match self.store.api_key(id).await {
            Ok(k) if k.user_id == actor.user.id => k,
            Ok(_) | Err(StoreError::NotFound) => return Err(ServiceError::NotFound(what)),
            Err(e) => return Err(e.into()),
        };
        let now = self.clock.now();
        if key.expires_at.is_some_and(|e| e <= now) {
            return Err(ServiceError::conflict(
                "key_expired",
                "an expired key cannot be rotated; create a new one",
            ));
        }
        let audit = self.audit(actor, "api_key.rotated");
        self.rotate_secret(
            (TokenKind::ApiKey, now, grace),
            audit.resource("api_key", id).org(key.org_id),
            |rotation, audit| async move {
                let rotated = self.store.rotate_api_key(id, &rotation, &[audit]).await;
                rotated.map_err(ServiceError::missing(what))
            },
            |k| (k.user_id, &k.secrets),
        )
        .await
    }
}
