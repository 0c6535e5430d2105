//! Bots and API keys as callers (AUTH-6, AUTH-7, AZ-5): turning a bot token or an API key into
//! an [`Actor`], and the limits such an actor carries. Checking a credential is a keyed-hash
//! lookup (no password hashing): from this node's cache while it holds a fresh copy (every
//! revocation invalidates it, on every node, before the hub closes the credential's sockets;
//! see `crate::cache`), from the database otherwise and at every gateway heartbeat.
//!
//! The limits apply in two places only: [`Services::check_org_credential`] (called by
//! `org_role`, so by every org route) and [`Services::check_conversation_credential`] (called by
//! `access`, so by every conversation and message route). Lists are filtered here too. Outside
//! its limits a credential gets 403 `insufficient_scope` when its user could see the resource,
//! and 404 otherwise.

use super::auth::INVALID_TOKEN;
use super::{Actor, Result, Services};
use crate::audit::AuditEntry;
use crate::cache::{ConversationFacts, Credentials, Identity};
use crate::credential::Credential;
use crate::error::ServiceError;
use crate::event::{Cached, Control, Event};
use crate::ids::*;
use crate::model::*;
use crate::policy::{self, ConversationAccess, ConversationAction};
use crate::store::{Cursor, NewSecret, Page, Rotation, SecretSlot, Seen, StoreError};
use crate::token::{self, TokenKind};
use crate::types::KeyTier;
use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;

/// Why an open socket's credential no longer holds (`Services::credential_still_valid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lapsed {
    /// The session, key or bot secret is gone or ended, or the account is disabled or gone.
    Revoked,
    /// A server admin requires 2FA of the user and it is off (AUTH-4a).
    SecondFactorRequired,
}

/// Where a gateway session starts (see [`Services::gateway_start`]).
#[derive(Debug, Clone, Default)]
pub struct GatewayStart {
    /// READY's `conversations`: what the session receives now.
    pub ready: Vec<ConversationState>,
    /// Every conversation the credential reaches, with its org (the held-back ones included).
    pub conversations: HashMap<ConversationId, OrgId>,
    /// Orgs the caller may not read now: their conversations are held back.
    pub locked: HashSet<OrgId>,
}

/// A request beyond what a bot's or key's limits allow (its user could see the resource).
pub(super) const INSUFFICIENT_SCOPE: ServiceError = ServiceError::forbidden(
    "insufficient_scope",
    "this credential's scopes do not cover this request",
);

const IP_NOT_ALLOWED: ServiceError = ServiceError::forbidden(
    "ip_not_allowed",
    "this API key may not be used from this address",
);

/// How often an API key's last use is written at most.
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// A resource a request names, to decide between 404 and 403 `insufficient_scope` when a key's
/// scopes do not cover the request: 404 when the key's owner could not see it either.
#[derive(Debug, Clone, Copy)]
pub enum Resource {
    Org(OrgId),
    Conversation(ConversationId),
    Message(MessageId),
    User(UserId),
}

/// Which conversation list a caller asks for: the ones it takes part in, or the ones it may
/// join.
#[derive(Debug, Clone, Copy)]
pub enum ConversationList {
    Mine,
    Available,
}

/// Until when the secret in `slot` works: the current one until the credential's own expiry,
/// the previous one until its grace period ends as well. `Err` when it no longer works.
fn secret_end(
    slot: SecretSlot,
    grace_end: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>> {
    let end = match slot {
        SecretSlot::Current => expires_at,
        SecretSlot::Previous => {
            let grace = grace_end.ok_or(INVALID_TOKEN)?;
            Some(expires_at.map_or(grace, |e| e.min(grace)))
        }
    };
    if end.is_some_and(|e| now >= e) {
        return Err(INVALID_TOKEN);
    }
    Ok(end)
}

/// The id of the secret a bot or key presented, found in `slot`.
fn slot_secret(secrets: &SecretIds, slot: SecretSlot) -> Result<SessionId> {
    match slot {
        SecretSlot::Current => Ok(secrets.current),
        SecretSlot::Previous => secrets.previous.ok_or(INVALID_TOKEN),
    }
}

/// The actor of a bot or key request: `user` on the stand-in `session`.
pub(super) fn credential_actor(
    user: User,
    session: Session,
    ip: Option<&str>,
    credential: Credential,
) -> Actor {
    Actor {
        meta: super::ClientMeta::from_ip(ip),
        session,
        user,
        credential,
    }
}

/// The session a bot or key request stands on: its id is the secret's, so revoking that secret
/// closes its gateway sockets, and it ends when the secret does.
pub(super) fn stand_in(
    secret: SessionId,
    user: UserId,
    ip: Option<&str>,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
    ends: Option<DateTime<Utc>>,
) -> Session {
    Session {
        id: secret,
        user_id: user,
        device: None,
        ip: ip.map(str::to_owned),
        created_at,
        last_seen_at: now,
        expires_at: ends.unwrap_or(DateTime::<Utc>::MAX_UTC),
        cookie: false,
        impersonator: None,
    }
}

/// Whether the secret `id` is still one of `secrets` and (if it is the previous one) within its
/// grace period.
fn secret_live(
    secrets: &SecretIds,
    grace_end: Option<DateTime<Utc>>,
    id: SessionId,
    now: DateTime<Utc>,
) -> bool {
    secrets.current == id || (secrets.previous == Some(id) && grace_end.is_some_and(|g| now < g))
}

/// A fresh secret of `kind`: the text to show once, and what the store keeps.
pub(super) fn new_secret(
    kind: TokenKind,
    pepper: &secrecy::SecretBox<[u8; 32]>,
) -> (SecretString, NewSecret) {
    let text = token::generate(kind);
    let secret = NewSecret {
        id: SessionId::new(),
        hash: token::hash(pepper, text.expose_secret()),
        hint: token::hint(text.expose_secret()),
    };
    (text, secret)
}

/// A fresh secret of `kind` and the rotation that installs it: the secret it replaces keeps
/// working `grace` past `now` (not at all when `grace` is zero).
pub(super) fn new_rotation(
    kind: TokenKind,
    pepper: &secrecy::SecretBox<[u8; 32]>,
    now: DateTime<Utc>,
    grace: Duration,
) -> (SecretString, Rotation) {
    let (text, secret) = new_secret(kind, pepper);
    let rotation = Rotation {
        secret,
        keep_previous_until: (grace > Duration::zero()).then(|| now + grace),
    };
    (text, rotation)
}

impl Services {
    /// The records of the bot or API key whose secret `token_text` (a token of `kind`) is:
    /// this node's cached copy (`crate::cache`) while it is fresh, else what `load` reads by
    /// the token's hash (then kept); 401 `invalid_token` when the text is no such token or no
    /// secret matches. The caller checks the records, whichever their source.
    async fn identity<F>(
        &self,
        kind: TokenKind,
        token_text: &str,
        now: DateTime<Utc>,
        load: impl FnOnce([u8; 32]) -> F,
    ) -> Result<([u8; 32], Identity)>
    where
        F: Future<Output = Result<Option<Identity>>>,
    {
        let hash = self.presented_token_hash(kind, token_text, INVALID_TOKEN)?;
        if let Some(found) = self.cache.get::<Credentials>(&hash, now) {
            return Ok((hash, found));
        }
        let ticket = self.cache.ticket(now);
        let found = load(hash).await?.ok_or(INVALID_TOKEN)?;
        self.cache.put::<Credentials>(ticket, hash, found.clone());
        Ok((hash, found))
    }

    /// Resolves `Authorization: Bearer cnv_k_…`: checksum, revocation, expiry, grace period,
    /// IP allowlist (403 `ip_not_allowed`, checked on every request) and the owner's account.
    /// Records the last use (time and address) at most once a minute.
    pub async fn authenticate_api_key(&self, token_text: &str, ip: Option<&str>) -> Result<Actor> {
        let now = self.clock.now();
        let load = |hash: [u8; 32]| async move {
            let Some((key, slot)) = self.store.api_key_by_token_hash(&hash).await? else {
                return Ok(None);
            };
            let user = self.store.user(key.user_id).await?;
            Ok(Some(Identity::ApiKey { key, slot, user }))
        };
        let (hash, found) = self
            .identity(TokenKind::ApiKey, token_text, now, load)
            .await?;
        let Identity::ApiKey { key, slot, user } = found else {
            return Err(INVALID_TOKEN);
        };
        let ends = secret_end(slot, key.previous_key_expires_at, key.expires_at, now)?;
        if let Some(allowed) = &key.allowed_ips {
            let from = ip.and_then(|i| i.parse::<IpAddr>().ok());
            if !from.is_some_and(|a| allowed.iter().any(|c| c.contains(a))) {
                // AUTH-7, DATA-4: a working key used from elsewhere is the mark of a stolen
                // one — recorded in its org's log (within the denied-row budget).
                let actor = crate::audit::AuditActor {
                    id: Some(key.id.0),
                    kind: crate::types::ActorType::ApiKey,
                    impersonator: None,
                };
                let entry = self.audit_as(actor, &super::ClientMeta::from_ip(ip), "api_key.denied");
                let resource = Some(("api_key", key.id.to_string()));
                self.record_denied(entry, "ip_not_allowed", Some(key.org_id), resource)
                    .await;
                return Err(IP_NOT_ALLOWED);
            }
        }
        if user.disabled {
            return Err(INVALID_TOKEN);
        }
        if key.last_used_at.is_none_or(|t| now - t >= TOUCH_EVERY) {
            let seen = Seen { at: now, ip };
            self.store.touch_api_key(key.id, seen).await?;
            self.cache.update::<Credentials>(&hash, |cached| {
                if let Identity::ApiKey { key, .. } = cached {
                    key.last_used_at = Some(now);
                    key.last_used_ip = ip.map(str::to_owned);
                }
            });
        }
        let secret = slot_secret(&key.secrets, slot)?;
        let session = stand_in(secret, user.id, ip, key.created_at, now, ends);
        let mut credential = key.into_credential();
        if let Credential::ApiKey { org, tier, .. } = &mut credential {
            // RATE-1, AUTH-7: a tier above free is an owner's or admin's to give, and lasts
            // while its owner may give it (read through the membership cache, which a role
            // change or removal drops): a demoted admin's key is charged as a free one.
            if *tier != KeyTier::Free {
                let role = self.standing(*org, user.id).await?.map(|s| s.role);
                if !role.is_some_and(|r| policy::org_allows(r, policy::OrgAction::SetKeyTier)) {
                    *tier = KeyTier::Free;
                }
            }
        }
        Ok(credential_actor(user, session, ip, credential))
    }

    /// Resolves `Authorization: Bot cnv_b_…`: checksum, rotation grace period, the bot account
    /// and its membership in its org (a bot removed from its org is gone).
    pub async fn authenticate_bot(&self, token_text: &str, ip: Option<&str>) -> Result<Actor> {
        let now = self.clock.now();
        let load = |hash: [u8; 32]| async move {
            let Some((bot, slot)) = self.store.bot_by_token_hash(&hash).await? else {
                return Ok(None);
            };
            let user = self.store.user(bot.user_id).await?;
            let member = self.store.membership(bot.org_id, user.id).await?.is_some();
            Ok(Some(Identity::Bot {
                bot,
                slot,
                user,
                member,
            }))
        };
        let (_, found) = self.identity(TokenKind::Bot, token_text, now, load).await?;
        let Identity::Bot {
            bot,
            slot,
            user,
            member,
        } = found
        else {
            return Err(INVALID_TOKEN);
        };
        let ends = secret_end(slot, bot.previous_token_expires_at, None, now)?;
        if user.disabled || !member {
            return Err(INVALID_TOKEN);
        }
        let secret = slot_secret(&bot.secrets, slot)?;
        let session = stand_in(secret, user.id, ip, bot.created_at, now, ends);
        Ok(credential_actor(user, session, ip, bot.into_credential()))
    }

    /// Bot `id` acting on its own rather than for a request (an agent answering, a widget key's
    /// bots): its account and credential, on the stand-in session of its current secret, which
    /// no token opens and which does not end.
    pub(super) async fn acting_bot(&self, id: BotId, meta: super::ClientMeta) -> Result<Actor> {
        let bot = self.store.bot(id).await?;
        let user = self.store.user(bot.user_id).await?;
        let now = self.clock.now();
        let session = stand_in(
            bot.secrets.current,
            user.id,
            None,
            bot.created_at,
            now,
            None,
        );
        Ok(Actor {
            session,
            user,
            credential: bot.into_credential(),
            meta,
        })
    }

    /// Whether the credential an open gateway socket authenticated with still works: the login
    /// session still exists (not logged out, revoked or ended by a password change), or the bot
    /// or key secret is still current or in its grace period, and the account is not disabled
    /// (else `Lapsed::Revoked`); and its user still passes the personal 2FA gate (AUTH-4a; else
    /// `Lapsed::SecondFactorRequired`). Checked at every heartbeat, so a revocation or a
    /// requirement whose event never reached this node, was lost, or came while the socket was
    /// being set up still closes the socket. A database failure keeps the socket until the next
    /// heartbeat.
    pub async fn credential_still_valid(&self, actor: &Actor) -> std::result::Result<(), Lapsed> {
        let now = self.clock.now();
        let live = match &actor.credential {
            Credential::Session => self
                .store
                .list_sessions(actor.user.id)
                .await
                .map(|sessions| {
                    sessions
                        .iter()
                        .any(|s| s.id == actor.session.id && now < s.expires_at)
                }),
            Credential::ApiKey { key, .. } => self.store.api_key(*key).await.map(|k| {
                k.expires_at.is_none_or(|e| now < e)
                    && secret_live(&k.secrets, k.previous_key_expires_at, actor.session.id, now)
            }),
            // A bot removed from its org is gone, as `authenticate_bot` says.
            Credential::Bot { bot, org, .. } => match self.store.bot(*bot).await {
                Ok(b) => (self.store.membership(*org, b.user_id).await).map(|m| {
                    m.is_some()
                        && secret_live(
                            &b.secrets,
                            b.previous_token_expires_at,
                            actor.session.id,
                            now,
                        )
                }),
                Err(e) => Err(e),
            },
            // Never on a gateway socket (`policy::credentials::surface_accepts`); for any
            // other caller: the grant is live and the token has not ended.
            Credential::OAuth { grant, .. } => (self.store.oauth_grant(*grant).await)
                .map(|g| g.revoked_at.is_none() && now < actor.session.expires_at),
        };
        // A disabled account's keys and bots stop too (its sessions are deleted on disabling).
        let standing = match live {
            Ok(true) => match self.store.user(actor.user.id).await {
                Ok(u) if u.disabled => Ok(Err(Lapsed::Revoked)),
                Ok(u) => self.second_factor_kept(&u, actor).await.map(|kept| {
                    if kept {
                        Ok(())
                    } else {
                        Err(Lapsed::SecondFactorRequired)
                    }
                }),
                Err(e) => Err(e),
            },
            Ok(false) => Ok(Err(Lapsed::Revoked)),
            Err(e) => Err(e),
        };
        match standing {
            Ok(standing) => standing,
            Err(StoreError::NotFound) => Err(Lapsed::Revoked),
            Err(e) => {
                tracing::warn!(error = %e, "could not re-check a credential; keeping the socket");
                Ok(())
            }
        }
    }

    /// Whether `user` (read fresh) passes the personal 2FA gate on `actor`'s session: no
    /// requirement, a session exempt from it, or 2FA on — read from the store, since the
    /// re-check is the backstop for whatever the cache missed.
    async fn second_factor_kept(
        &self,
        user: &User,
        actor: &Actor,
    ) -> crate::store::StoreResult<bool> {
        if policy::credentials::second_factor_waived(user.require_2fa, false, &actor.session) {
            return Ok(true);
        }
        let enrolment = self.store.totp_enrolment(user.id).await?;
        Ok(enrolment.is_some_and(|e| e.enabled()))
    }

    /// Rotates the secret of a bot or API key (a token of `kind`), the old one kept `grace` past
    /// `now`: `commit` stores the rotation with `audit` (told the grace) and answers the
    /// credential before and after it, whose owner and secrets `parts` reads. The owner's
    /// cached identities go, and the sockets of a secret no longer kept close. Answers the
    /// credential after and its new secret (shown once).
    pub(super) async fn rotate_secret<T, Fut>(
        &self,
        (kind, now, grace): (TokenKind, DateTime<Utc>, Duration),
        audit: AuditEntry,
        commit: impl FnOnce(Rotation, AuditEntry) -> Fut,
        parts: fn(&T) -> (UserId, &SecretIds),
    ) -> Result<(T, SecretString)>
    where
        Fut: Future<Output = Result<(T, T)>>,
    {
        let (text, rotation) = new_rotation(kind, &self.keys.token_pepper, now, grace);
        let audit = audit.detail(serde_json::json!({ "grace_seconds": grace.num_seconds() }));
        let (before, after) = commit(rotation, audit).await?;
        // A secret kept for its grace period is now the previous one, with an end.
        let ((user, before), (_, kept)) = (parts(&before), parts(&after));
        self.stale(vec![Cached::User(user)]);
        self.close_replaced(before, Some(kept));
        Ok((after, text))
    }

    /// Closes the gateway sockets of every secret in `before` that `after` no longer has.
    /// Ends, on every node, the sessions a server admin had started as other users (AUTH-12):
    /// their rows went with hers (`delete_sessions`); their cached copies and open sockets go
    /// now.
    pub(super) fn end_impersonations(&self, sessions: &[SessionId]) {
        for &session in sessions {
            self.emit(Event::control(Control::RevokeSession { session }));
        }
    }

    pub(super) fn close_replaced(&self, before: &SecretIds, after: Option<&SecretIds>) {
        let kept = |id: SessionId| after.is_some_and(|a| a.current == id || a.previous == Some(id));
        for id in std::iter::once(before.current).chain(before.previous) {
            if !kept(id) {
                self.emit(Event::control(Control::RevokeSession { session: id }));
            }
        }
    }

    /// The org limit of bots and keys (called by `org_role` once membership is known).
    pub(super) fn check_org_credential(actor: &Actor, org: OrgId) -> Result<()> {
        if actor.credential.covers_org(org) {
            Ok(())
        } else {
            Err(INSUFFICIENT_SCOPE)
        }
    }

    /// The org and conversation limits of bots and keys (called by `access`, with what the
    /// user alone may do): 403 `insufficient_scope` outside them when the user could see the
    /// conversation, 404 otherwise.
    pub(super) fn check_conversation_credential(
        actor: &Actor,
        conv: &ConversationFacts,
        access: &ConversationAccess,
    ) -> Result<()> {
        if actor.credential.covers_conversation(conv.org_id, conv.id) {
            Ok(())
        } else if policy::conversation_allows(access, ConversationAction::See) {
            Err(INSUFFICIENT_SCOPE)
        } else {
            Err(ServiceError::NotFound("conversation"))
        }
    }

    /// Refuses everything but the user's own login session: bots, API keys and impersonated
    /// sessions (AUTH-12) may not change credentials or 2FA, export or erase the account.
    pub(super) fn require_own_session(actor: &Actor) -> Result<()> {
        Self::require_session(actor)?;
        Self::require_not_impersonated(actor)
    }

    /// Refuses an impersonated session (AUTH-12).
    pub(super) fn require_not_impersonated(actor: &Actor) -> Result<()> {
        if policy::credentials::is_own_session(&actor.session) {
            Ok(())
        } else {
            Err(ServiceError::forbidden(
                "impersonation_forbidden",
                "an impersonated session cannot do this",
            ))
        }
    }

    /// Refuses a bot or key: managing credentials, creating or joining orgs take a login session.
    pub(super) fn require_session(actor: &Actor) -> Result<()> {
        if policy::credentials::is_login_session(&actor.credential) {
            Ok(())
        } else {
            Err(INSUFFICIENT_SCOPE)
        }
    }

    /// Refuses a bot or key limited to listed conversations: what it would create (a
    /// conversation) would reach beyond the list.
    pub(super) fn require_unlisted(actor: &Actor) -> Result<()> {
        if policy::credentials::is_unlisted(&actor.credential) {
            Ok(())
        } else {
            Err(INSUFFICIENT_SCOPE)
        }
    }

    /// A page of the caller's conversations (`Mine`) or of those they may join (`Available`),
    /// holding only what the credential reaches; pages stay full while more exist.
    pub(super) async fn conversation_page(
        &self,
        actor: &Actor,
        which: ConversationList,
        page: Page<ConversationId>,
    ) -> Result<Vec<Conversation>> {
        let user = actor.user.id;
        let fetch = |page| async move {
            match which {
                ConversationList::Mine => self.store.conversations_for_user(user, page).await,
                ConversationList::Available => self.store.available_conversations(user, page).await,
            }
        };
        // AUTH-4a: nothing of an org the caller is locked out of is listed.
        let orgs = self.store.orgs_for_user(user).await?;
        let locked = self.locked_orgs(actor, orgs.iter().map(|(o, _)| o)).await?;
        if !actor.credential.is_limited() && locked.is_empty() {
            return Ok(fetch(page).await?);
        }
        let want = page.limit.get() as usize;
        let mut out = Vec::new();
        let mut cursor = page.cursor;
        loop {
            let batch = fetch(Page {
                cursor,
                limit: page.limit,
            })
            .await?;
            let more = batch.len() >= want;
            let Some(last) = batch.last() else { break };
            cursor = match page.cursor {
                Cursor::After(_) => Cursor::After(last.id),
                Cursor::Latest | Cursor::Before(_) => Cursor::Before(last.id),
            };
            out.extend(batch.into_iter().filter(|c| {
                actor.credential.covers_conversation(c.org_id, c.id) && !locked.contains(&c.org_id)
            }));
            if out.len() >= want || !more {
                break;
            }
        }
        out.truncate(want);
        Ok(out)
    }

    /// Whether the caller's user (the key's owner, the bot) could see `resource` at all,
    /// ignoring the credential's own limits.
    pub async fn owner_sees(&self, actor: &Actor, resource: Resource) -> Result<bool> {
        let user = actor.user.id;
        let conversation = match resource {
            Resource::Org(org) => return Ok(self.store.membership(org, user).await?.is_some()),
            Resource::User(id) => {
                return Ok(id == user || self.store.users_share_org(user, id).await?)
            }
            Resource::Conversation(id) => id,
            Resource::Message(id) => match self.store.message(id).await {
                Ok(m) => m.conversation_id,
                Err(StoreError::NotFound) => return Ok(false),
                Err(e) => return Err(e.into()),
            },
        };
        let conv = match self.store.conversation(conversation).await {
            Ok(c) => c,
            Err(StoreError::NotFound) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let access = self.user_access(user, &(&conv).into()).await?;
        Ok(policy::conversation_allows(
            &access,
            ConversationAction::See,
        ))
    }

    /// Where a gateway session starts: the conversations the credential reaches, each with its
    /// org, the orgs the caller is locked out of (AUTH-4a) and READY's list — the reachable
    /// conversations outside those orgs. The locked orgs' conversations are still subscribed
    /// (held back), so `ORG_ACCESS_RESTORED` brings them back without a reconnect.
    pub async fn gateway_start(&self, actor: &Actor) -> Result<GatewayStart> {
        let user = actor.user.id;
        let orgs: Vec<Org> = self
            .store
            .orgs_for_user(user)
            .await?
            .into_iter()
            .map(|(o, _)| o)
            .filter(|o| actor.credential.covers_org(o.id))
            .collect();
        let locked = self.locked_orgs(actor, &orgs).await?;
        let mut conversations = HashMap::new();
        for org in &orgs {
            for id in self.store.user_conversation_ids(user, Some(org.id)).await? {
                if actor.credential.covers_conversation(org.id, id) {
                    conversations.insert(id, org.id);
                }
            }
        }
        let ready = self
            .store
            .conversation_states(user)
            .await?
            .into_iter()
            .filter(|s| {
                conversations
                    .get(&s.id)
                    .is_some_and(|org| !locked.contains(org))
            })
            .collect();
        Ok(GatewayStart {
            ready,
            conversations,
            locked,
        })
    }

    /// What a live gateway session is reconciled with every few heartbeats: the conversations
    /// `actor`'s user takes part in now, in every org (a subscription outside them ends; none
    /// is added this way), and the orgs the credential may not read now (AUTH-4a: each is
    /// locked if it was not; none is unlocked this way).
    pub async fn gateway_standing_now(
        &self,
        actor: &Actor,
    ) -> Result<(Vec<ConversationId>, HashSet<OrgId>)> {
        let conversations = self
            .store
            .user_conversation_ids(actor.user.id, None)
            .await?;
        let orgs: Vec<Org> = (self.store.orgs_for_user(actor.user.id).await?)
            .into_iter()
            .map(|(o, _)| o)
            .collect();
        let locked = self.locked_orgs(actor, &orgs).await?;
        Ok((conversations, locked))
    }

    /// Checks a rotation's grace period: 0–86400 seconds.
    pub(super) fn grace(seconds: i64) -> Result<Duration> {
        if (0..=super::GRACE_MAX_SECONDS).contains(&seconds) {
            Ok(Duration::seconds(seconds))
        } else {
            Err(ServiceError::invalid(
                "grace_seconds",
                "out_of_range",
                format!("must be between 0 and {}", super::GRACE_MAX_SECONDS),
            ))
        }
    }

    /// Checks a credential's conversation list against the org: 1–100 distinct conversations of
    /// `org` that `actor` (and their own credential) may see; 422 naming the entry otherwise.
    pub(super) async fn check_conversation_list(
        &self,
        actor: &Actor,
        org: OrgId,
        list: Option<Vec<ConversationId>>,
    ) -> Result<Option<Vec<ConversationId>>> {
        let Some(list) = list else { return Ok(None) };
        if list.is_empty() || list.len() > 100 {
            return Err(ServiceError::invalid(
                "conversation_ids",
                "invalid_length",
                "list 1 to 100 conversations, or leave it out",
            ));
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (i, id) in list.into_iter().enumerate() {
            if !seen.insert(id) {
                continue;
            }
            let unknown = || {
                ServiceError::invalid(
                    format!("/conversation_ids/{i}"),
                    "unknown_conversation",
                    "no such conversation in this organization",
                )
            };
            let conv = match self.store.conversation(id).await {
                Ok(c) => c,
                Err(StoreError::NotFound) => return Err(unknown()),
                Err(e) => return Err(e.into()),
            };
            if conv.org_id != org || !actor.credential.covers_conversation(org, id) {
                return Err(unknown());
            }
            let access = self.user_access(actor.user.id, &(&conv).into()).await?;
            if !policy::conversation_allows(&access, ConversationAction::See) {
                return Err(unknown());
            }
            out.push(id);
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(secs)
    }

    #[test]
    fn secrets_end_with_their_grace_and_their_credential() {
        assert_eq!(
            secret_end(SecretSlot::Current, None, None, t(0)).unwrap(),
            None
        );
        assert_eq!(
            secret_end(SecretSlot::Current, None, Some(t(10)), t(0)).unwrap(),
            Some(t(10))
        );
        assert!(secret_end(SecretSlot::Current, None, Some(t(10)), t(10)).is_err());
        assert_eq!(
            secret_end(SecretSlot::Previous, Some(t(5)), Some(t(10)), t(0)).unwrap(),
            Some(t(5))
        );
        assert!(secret_end(SecretSlot::Previous, Some(t(5)), None, t(5)).is_err());
        assert!(secret_end(SecretSlot::Previous, None, None, t(0)).is_err());
    }

    #[test]
    fn only_current_or_graced_secrets_live() {
        let (cur, prev) = (SessionId::new(), SessionId::new());
        let s = SecretIds {
            current: cur,
            hint: "abcd".into(),
            previous: Some(prev),
        };
        assert!(secret_live(&s, None, cur, t(0)));
        assert!(secret_live(&s, Some(t(5)), prev, t(4)));
        assert!(!secret_live(&s, Some(t(5)), prev, t(5)));
        assert!(!secret_live(&s, Some(t(5)), SessionId::new(), t(0)));
    }
}
