//! The embeddable support widget (WEB-4, AGENT-6).
//!
//! **Keys** are managed by org owners and admins (`OrgAction::ManageWidgetKeys`, scope
//! `org:admin`; AZ-5a refuses a conversation-limited credential). A key is publishable; its
//! identity secret is shown once, sealed at rest (`SealedColumn::WidgetIdentitySecret`) and
//! opened only to check a visitor's signature. Each key has two bot accounts of its org that
//! no credential opens (like an agent's): visitors' messages are written as its *visitor* bot
//! (`visitor-…`), notices as its *system* bot (`widget-…`).
//!
//! **Visitors** never hold a Conclave credential: a visitor session (`Visitor`, from
//! `Services::identify_visitor`) lets them act only through these functions, each of which
//! reaches nothing but the visitor's own widget conversation. A send goes through
//! `send_message` as the key's visitor bot, with a credential limited to that one
//! conversation, so guards, fan-out and webhooks apply as to any message.
//!
//! **Conversations** are org group conversations visible to the key's team, with the visitor
//! bot (owner), the system bot and the key's agent as participants, and a
//! `widget_conversations` row holding the status: `bot` while the agent answers, `open` after
//! a handoff, `resolved`. Every status change is one conditional UPDATE, audited
//! (`widget.handoff` for each handoff, AGENT-6; `widget.status_changed` otherwise) and
//! announced as `CONVERSATION_UPDATE` with `source` and `status`.

use super::{Actor, ClientMeta, Result, SendMessage, Services};
use crate::error::ServiceError;
use crate::event::{Control, Event};
use crate::files::AttachmentIds;
use crate::ids::*;
use crate::keyring::SecretRef;
use crate::model::{Conversation, Message, Session, UserSummary};
use crate::policy::OrgAction;
use crate::secretbox::SealedColumn;
use crate::store::widget::*;
use crate::store::NewBot;
use crate::types::*;
use crate::widget::*;
use chrono::{DateTime, Utc};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// What a visitor bot's username starts with: such an author's messages are a visitor's.
pub const VISITOR_USERNAME_PREFIX: &str = "visitor-";
/// What a widget key's system bot's username starts with.
pub const WIDGET_USERNAME_PREFIX: &str = "widget-";
/// The notice posted when a conversation is handed to people.
pub const HANDOFF_NOTICE: &str =
    "This conversation was handed to the support team. Someone will answer here soon.";
/// What an agent's answer that was only a handoff marker becomes.
pub const HANDOFF_ONLY_ANSWER: &str = "Let me connect you with a person from our team.";
/// The field of the visitor bot's `CONVERSATION_CREATE` that names the visitor (see
/// `visitor_conversation`).
pub const WIDGET_VISITOR_FIELD: &str = "widget_visitor_id";
/// Messages a visitor's history holds at most (the newest).
pub const HISTORY_MAX: usize = 200;

fn secret_ref(key: Uuid) -> SecretRef {
    SecretRef {
        column: SealedColumn::WidgetIdentitySecret,
        row: key,
    }
}

/// A key's settings at creation, parsed at the edge.
#[derive(Debug)]
pub struct NewWidgetKeySettings {
    pub name: DisplayName,
    pub allowed_origins: Vec<WidgetOrigin>,
    pub team_id: TeamId,
    pub agent_id: Option<Uuid>,
    pub identity: IdentityMode,
    pub prechat_form: bool,
}

/// A change to a key; `None` leaves a field, `agent_id: Some(None)` removes the agent.
#[derive(Debug, Default)]
pub struct WidgetKeyChanges {
    pub name: Option<DisplayName>,
    pub allowed_origins: Option<Vec<WidgetOrigin>>,
    pub team_id: Option<TeamId>,
    pub agent_id: Option<Option<Uuid>>,
    pub identity: Option<IdentityMode>,
    pub prechat_form: Option<bool>,
}

/// A key just made, with its identity secret (shown this once).
pub struct CreatedWidgetKey {
    pub key: WidgetKey,
    pub identity_secret: SecretString,
}

/// A visitor, as `Services::identify_visitor` found them: the live key, the session whose
/// secret was shown, and the person.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub key: WidgetKey,
    pub session: WidgetSession,
    pub visitor: WidgetVisitor,
    pub meta: ClientMeta,
}

/// The host's signature of its signed-in user (HMAC-SHA256 of `user_id`, hex).
#[derive(Debug, Clone)]
pub struct SignedIdentity {
    pub user_id: ExternalUserId,
    pub name: Option<DisplayName>,
    pub email: Option<Email>,
    pub hash: String,
}

/// The host's signed-in user, once its proof verified.
#[derive(Debug, Clone)]
pub struct HostUser {
    pub user_id: ExternalUserId,
    pub name: Option<DisplayName>,
    pub email: Option<Email>,
}

/// Checks a host's visitor token with the key's identity secret (its text's bytes) at the
/// services' time: the user it names, or why not (403 `identity_invalid`). The server supplies
/// it (its JWT library); core opens the secret only for it.
pub type TokenCheck<'a> = dyn Fn(&[u8], DateTime<Utc>) -> Result<HostUser> + Send + Sync + 'a;

/// How the host vouches for a signed-in visitor (WEB-4).
pub enum HostIdentity<'a> {
    /// `user_id` with its HMAC-SHA256.
    Signed(SignedIdentity),
    /// A short-lived token (a JWT), checked by the server's check.
    Token(&'a TokenCheck<'a>),
}

/// What a visitor typed into the pre-chat form.
#[derive(Debug, Clone, Default)]
pub struct VisitorProfile {
    pub name: Option<DisplayName>,
    pub email: Option<Email>,
}

/// A session begun or resumed.
pub struct StartedSession {
    pub session_id: String,
    /// The secret the visitor sends as `X-Widget-Visitor` (a resumed session's is the one it
    /// showed: the server keeps only its hash).
    pub visitor_secret: SecretString,
    pub conversation: Option<WidgetConversation>,
    pub visitor: WidgetVisitor,
}

/// Who a widget message is from, as the visitor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WidgetRole {
    Visitor,
    Agent,
    Staff,
    System,
}

/// A message as the widget shows it: plain text only (HTML content reduced to its text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WidgetMessage {
    pub id: MessageId,
    pub role: WidgetRole,
    pub author_name: String,
    pub content: String,
    pub status: MessageStatus,
    pub created_at: DateTime<Utc>,
}

/// What a widget message is made from: a stored message, or a message event's REST object.
pub struct MessageFacts<'a> {
    pub id: MessageId,
    pub author: &'a UserSummary,
    pub content: Option<&'a str>,
    pub format: MessageFormat,
    pub status: MessageStatus,
    pub created_at: DateTime<Utc>,
    pub deleted: bool,
}

impl<'a> From<&'a Message> for MessageFacts<'a> {
    fn from(m: &'a Message) -> Self {
        Self {
            id: m.id,
            author: &m.author,
            content: m.content.as_deref(),
            format: m.format,
            status: m.status,
            created_at: m.created_at,
            deleted: m.deleted_at.is_some(),
        }
    }
}

/// The widget's view of a message of `visitor`'s conversation; `None` for a deleted one.
#[must_use]
pub fn widget_message(
    key: &WidgetKey,
    visitor: &WidgetVisitor,
    m: &MessageFacts<'_>,
) -> Option<WidgetMessage> {
    if m.deleted {
        return None;
    }
    let author = m.author;
    let shown = || (author.display_name.clone()).unwrap_or_else(|| author.username.clone());
    let (role, author_name) = if author.id == key.visitor_user_id {
        let name = (visitor.name.clone()).unwrap_or_else(|| "You".to_owned());
        (WidgetRole::Visitor, name)
    } else if author.id == key.system_user_id {
        (WidgetRole::System, key.name.clone())
    } else if author.kind == UserKind::Bot
        && author
            .username
            .starts_with(super::bots::AGENT_USERNAME_PREFIX)
    {
        (WidgetRole::Agent, shown())
    } else {
        (WidgetRole::Staff, shown())
    };
    let raw = m.content.unwrap_or_default();
    let content = match m.format {
        MessageFormat::Text => raw.to_owned(),
        MessageFormat::Html => crate::sanitize::html_text(raw),
    };
    Some(WidgetMessage {
        id: m.id,
        role,
        author_name,
        content,
        status: m.status,
        created_at: m.created_at,
    })
}

/// The REST conversation object of `conv` with its `source` and `status` (WEB-4), for events.
#[must_use]
pub fn sourced(conv: &Conversation, w: Option<&WidgetConversation>) -> serde_json::Value {
    serde_json::to_value(super::views::SourcedConversation::new(conv.clone(), w))
        .unwrap_or_default()
}

/// Who handed a conversation to people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffBy {
    Visitor,
    Agent,
}

/// A display name of at most 64 characters from `text`.
fn display_name(text: &str) -> Result<DisplayName> {
    let cut: String = text.chars().take(64).collect();
    DisplayName::parse(&cut).map_err(|r| ServiceError::Internal(format!("display name: {r}")))
}

impl Services {
    async fn require_widget_keys(&self, actor: &Actor, org: OrgId, write: bool) -> Result<()> {
        if write {
            Self::require_not_impersonated(actor)?;
        }
        self.require_org(actor, org, OrgAction::ManageWidgetKeys)
            .await?;
        Self::require_unlisted(actor)
    }

    async fn org_widget_key(
        &self,
        actor: &Actor,
        org: OrgId,
        id: Uuid,
        write: bool,
    ) -> Result<WidgetKey> {
        self.require_widget_keys(actor, org, write).await?;
        match self.store.widget_key(id).await {
            Ok(k) if k.org_id == org => Ok(k),
            Ok(_) => Err(ServiceError::NotFound("widget key")),
            Err(e) => Err(ServiceError::missing("widget key")(e)),
        }
    }

    /// 404 unless `team` is a team of `org`.
    async fn check_widget_team(&self, org: OrgId, team: TeamId) -> Result<()> {
        match self.store.team(team).await {
            Ok(t) if t.org_id == org => Ok(()),
            // An id in the body that names nothing here: 404, like one in the path.
            Ok(_) | Err(crate::store::StoreError::NotFound) => Err(ServiceError::NotFound("team")),
            Err(e) => Err(e.into()),
        }
    }

    /// 404 unless `agent` is an agent of `org`.
    async fn check_widget_agent(&self, org: OrgId, agent: Uuid) -> Result<()> {
        match self.store.agent(agent).await {
            Ok(a) if a.org_id == org => Ok(()),
            Ok(_) | Err(crate::store::StoreError::NotFound) => Err(ServiceError::NotFound("agent")),
            Err(e) => Err(e.into()),
        }
    }

    fn check_origins(origins: &[WidgetOrigin]) -> Result<Vec<WidgetOrigin>> {
        let mut list = origins.to_vec();
        list.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        list.dedup();
        if list.is_empty() || list.len() > MAX_ORIGINS {
            return Err(ServiceError::invalid(
                "allowed_origins",
                "invalid_length",
                format!("must list 1 to {MAX_ORIGINS} origins"),
            ));
        }
        Ok(list)
    }

    /// Creates a widget key with its two bot accounts; its identity secret is answered once.
    pub async fn create_widget_key(
        &self,
        actor: &Actor,
        org: OrgId,
        s: NewWidgetKeySettings,
    ) -> Result<CreatedWidgetKey> {
        self.require_widget_keys(actor, org, true).await?;
        let origins = Self::check_origins(&s.allowed_origins)?;
        self.check_widget_team(org, s.team_id).await?;
        if let Some(a) = s.agent_id {
            self.check_widget_agent(org, a).await?;
        }
        if self.store.widget_keys(org).await?.len() >= MAX_KEYS_PER_ORG {
            return Err(ServiceError::conflict(
                "too_many_widget_keys",
                "this organization has the most widget keys allowed",
            ));
        }
        let visitor_name = display_name(&format!("Visitor ({})", s.name.as_str()))?;
        let (vbot, vaccount) =
            self.new_bot(actor, org, (visitor_name, VISITOR_USERNAME_PREFIX), None)?;
        let (sbot, saccount) =
            self.new_bot(actor, org, (s.name.clone(), WIDGET_USERNAME_PREFIX), None)?;
        // No token exists for these bots: where their hashes would be are random bytes.
        let mut unusable = [[0u8; 32]; 2];
        for u in &mut unusable {
            rand::rngs::OsRng.fill_bytes(u);
        }
        let id = Uuid::now_v7();
        let value = crate::token::generate(crate::token::TokenKind::WidgetKey);
        let secret = SecretString::from(new_identity_secret());
        let sealed = self
            .seal_secret(secret_ref(id).binding(), secret.expose_secret().as_bytes())
            .await?;
        let now = vbot.created_at;
        let key = WidgetKey {
            id,
            org_id: org,
            name: s.name.into_inner(),
            key: value.expose_secret().to_owned(),
            allowed_origins: origins,
            team_id: s.team_id,
            agent_id: s.agent_id,
            identity: s.identity,
            prechat_form: s.prechat_form,
            visitor_user_id: vbot.user_id,
            system_user_id: sbot.user_id,
            visitor_bot_id: vbot.id,
            system_bot_id: sbot.id,
            created_by: Some(actor.user.id),
            created_at: now,
            updated_at: now,
            revoked_at: None,
        };
        let record = WidgetSecretRecord {
            sealed,
            created_at: now,
        };
        let audit = self
            .audit(actor, "widget_key.created")
            .resource("widget_key", id)
            .org(org)
            .detail(serde_json::json!({
                "origins": key.allowed_origins, "team_id": key.team_id,
                "agent_id": key.agent_id, "identity": key.identity,
            }));
        let new = NewWidgetKey {
            visitor_bot: NewBot {
                bot: &vbot,
                account: &vaccount,
                token_hash: &unusable[0],
            },
            system_bot: NewBot {
                bot: &sbot,
                account: &saccount,
                token_hash: &unusable[1],
            },
            key: &key,
            secret: &record,
        };
        let members = self.store.create_widget_key(&new, &[audit]).await?;
        for m in &members {
            self.announce_member_added(m);
        }
        self.settle_sealed(
            secret_ref(id),
            record.sealed,
            secret.expose_secret().as_bytes(),
        )
        .await?;
        Ok(CreatedWidgetKey {
            key,
            identity_secret: secret,
        })
    }

    /// The org's live widget keys.
    pub async fn widget_keys(&self, actor: &Actor, org: OrgId) -> Result<Vec<WidgetKey>> {
        self.require_widget_keys(actor, org, false).await?;
        Ok(self.store.widget_keys(org).await?)
    }

    /// Changes a key; the audit row names the changed fields.
    pub async fn update_widget_key(
        &self,
        actor: &Actor,
        org: OrgId,
        id: Uuid,
        c: WidgetKeyChanges,
    ) -> Result<WidgetKey> {
        self.org_widget_key(actor, org, id, true).await?;
        let origins = c
            .allowed_origins
            .as_deref()
            .map(Self::check_origins)
            .transpose()?;
        if let Some(t) = c.team_id {
            self.check_widget_team(org, t).await?;
        }
        if let Some(Some(a)) = c.agent_id {
            self.check_widget_agent(org, a).await?;
        }
        let mut fields = Vec::new();
        for (set, name) in [
            (c.name.is_some(), "name"),
            (origins.is_some(), "allowed_origins"),
            (c.team_id.is_some(), "team_id"),
            (c.agent_id.is_some(), "agent_id"),
            (c.identity.is_some(), "identity"),
            (c.prechat_form.is_some(), "prechat_form"),
        ] {
            if set {
                fields.push(name);
            }
        }
        let audit = self
            .audit(actor, "widget_key.updated")
            .resource("widget_key", id)
            .org(org)
            .detail(serde_json::json!({ "fields": fields }));
        let patch = WidgetKeyPatch {
            name: c.name.map(DisplayName::into_inner),
            allowed_origins: origins,
            team_id: c.team_id,
            agent_id: c.agent_id,
            identity: c.identity,
            prechat_form: c.prechat_form,
        };
        let now = self.clock.now();
        let updated = (self
            .store
            .update_widget_key(id, &patch, now, &[audit])
            .await)
            .map_err(ServiceError::missing("widget key"))?;
        // Open visitor streams whose page the key no longer admits end, on every node.
        if patch.allowed_origins.is_some() || patch.identity.is_some() {
            self.emit(Event::control(Control::WidgetKey {
                key: id,
                revoked: false,
            }));
        }
        Ok(updated)
    }

    /// Revokes a key: every widget call with it is refused from now on; its conversations and
    /// their messages stay with the support team.
    pub async fn delete_widget_key(&self, actor: &Actor, org: OrgId, id: Uuid) -> Result<()> {
        self.org_widget_key(actor, org, id, true).await?;
        let audit = self
            .audit(actor, "widget_key.revoked")
            .resource("widget_key", id)
            .org(org);
        let now = self.clock.now();
        (self.store.revoke_widget_key(id, now, &[audit]).await)
            .map_err(ServiceError::missing("widget key"))?;
        // Its open visitor streams end, on every node.
        self.emit(Event::control(Control::WidgetKey {
            key: id,
            revoked: true,
        }));
        Ok(())
    }

    /// Whether `key` (still live, as stored now) admits visitor `v` on a page of `origin`:
    /// what an open visitor stream asks when its key changed.
    pub async fn widget_key_admits(&self, v: &Visitor, origin: Option<&str>) -> Result<bool> {
        let key = match self.store.widget_key(v.key.id).await {
            Ok(k) => k,
            Err(crate::store::StoreError::NotFound) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let origin_ok = origin.is_some_and(|o| origin_listed(&key.allowed_origins, o));
        let identity_ok = key.identity == IdentityMode::Optional || v.session.verified;
        Ok(key.revoked_at.is_none() && origin_ok && identity_ok)
    }

    /// The opened identity secret of `key`.
    async fn widget_identity_secret(&self, key: &WidgetKey) -> Result<SecretString> {
        let record = (self.store.widget_key_secret(key.id).await?)
            .ok_or_else(|| ServiceError::Internal("a widget key has no identity secret".into()))?;
        let opened = self
            .open_sealed(secret_ref(key.id).binding(), &record.sealed)
            .await?;
        let text = String::from_utf8(opened.expose_secret().clone())
            .map_err(|_| ServiceError::Internal("an identity secret is not UTF-8".into()))?;
        Ok(SecretString::from(text))
    }

    /// Begins a visitor session of `key` (or resumes `resume` when its secret is right).
    /// With an identity, its signature must verify (403 `identity_invalid`); with
    /// `identity: required` an unsigned visitor gets no session at all (403
    /// `identity_required`), so no history and no chat.
    pub async fn start_widget_session(
        &self,
        key: &WidgetKey,
        resume: Option<Visitor>,
        identity: Option<HostIdentity<'_>>,
        profile: VisitorProfile,
    ) -> Result<(StartedSession, bool)> {
        let identity = match identity {
            Some(proof) => {
                let secret = self.widget_identity_secret(key).await?;
                let bytes = secret.expose_secret().as_bytes();
                Some(match proof {
                    HostIdentity::Signed(id) => {
                        if !identity_verified(bytes, id.user_id.as_str(), &id.hash) {
                            return Err(ServiceError::forbidden(
                                "identity_invalid",
                                "the visitor's identity signature does not verify",
                            ));
                        }
                        HostUser {
                            user_id: id.user_id,
                            name: id.name,
                            email: id.email,
                        }
                    }
                    HostIdentity::Token(check) => check(bytes, self.clock.now())?,
                })
            }
            None => None,
        };
        let verified = match &identity {
            Some(id) => Some(id.user_id.as_str().to_owned()),
            None if key.identity == IdentityMode::Required => {
                return Err(ServiceError::forbidden(
                    "identity_required",
                    "this widget requires a signed-in visitor",
                ));
            }
            None => None,
        };
        if let Some(v) = resume {
            // A resumed session keeps its visitor unless another signed user now shows up.
            let same = match &verified {
                None => true,
                Some(uid) => v.visitor.external_id.as_deref() == Some(uid.as_str()),
            };
            if same {
                let conversation = self.store.latest_widget_conversation(v.visitor.id).await?;
                return Ok((
                    StartedSession {
                        session_id: v.session.id.clone(),
                        visitor_secret: SecretString::from(String::new()),
                        conversation,
                        visitor: v.visitor,
                    },
                    true,
                ));
            }
        }
        let now = self.clock.now();
        let secret = crate::token::generate(crate::token::TokenKind::Visitor);
        let hash = crate::token::hash(&self.keys.token_pepper, secret.expose_secret());
        let session = WidgetSession {
            id: WidgetSessionId::generate().as_str().to_owned(),
            key_id: key.id,
            visitor_id: Uuid::now_v7(),
            secret_hash: hash.to_vec(),
            verified: verified.is_some(),
            created_at: now,
        };
        let (name, email) = match &identity {
            Some(i) => (i.name.clone(), i.email.clone()),
            None => (profile.name, profile.email),
        };
        let person = WidgetVisitor {
            id: session.visitor_id,
            key_id: key.id,
            external_id: verified.clone(),
            name: name.map(DisplayName::into_inner),
            email: email.map(|e| e.as_str().to_owned()),
            created_at: now,
        };
        let who = if verified.is_some() {
            VisitorFor::Verified(person)
        } else {
            VisitorFor::Anonymous(person)
        };
        let visitor = self.store.create_widget_session(&session, &who).await?;
        let conversation = if verified.is_some() {
            self.store.latest_widget_conversation(visitor.id).await?
        } else {
            None
        };
        Ok((
            StartedSession {
                session_id: session.id,
                visitor_secret: secret,
                conversation,
                visitor,
            },
            false,
        ))
    }

    /// A bot of a widget key acting in `conv` only (or nowhere), on a stand-in session no
    /// token opens.
    async fn widget_bot_actor(
        &self,
        bot: BotId,
        conv: Option<ConversationId>,
        meta: &ClientMeta,
    ) -> Result<Actor> {
        let bot = self.store.bot(bot).await?;
        let user = self.store.user(bot.user_id).await?;
        let now = self.clock.now();
        let mut credential = bot.clone().into_credential();
        if let crate::credential::Credential::Bot { conversations, .. } = &mut credential {
            *conversations = Some(conv.into_iter().collect());
        }
        Ok(Actor {
            session: Session {
                id: bot.secrets.current,
                user_id: user.id,
                device: None,
                ip: None,
                created_at: bot.created_at,
                last_seen_at: now,
                expires_at: DateTime::<Utc>::MAX_UTC,
                cookie: false,
                impersonator: None,
            },
            user,
            credential,
            meta: meta.clone(),
        })
    }

    /// The visitor's current conversation: the newest unless it is resolved, else a new one
    /// (`bot` when the key has an agent, else `open`).
    async fn visitor_conversation(&self, v: &Visitor) -> Result<(WidgetConversation, bool)> {
        if let Some(w) = self.store.latest_widget_conversation(v.visitor.id).await? {
            if w.status != WidgetStatus::Resolved {
                return Ok((w, false));
            }
        }
        let key = &v.key;
        let agent = match key.agent_id {
            Some(a) => match self.store.agent(a).await {
                Ok(agent) if agent.org_id == key.org_id => Some(agent),
                Ok(_) | Err(crate::store::StoreError::NotFound) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let now = self.clock.now();
        let shown = (v.visitor.name.clone())
            .or_else(|| v.visitor.email.clone())
            .or_else(|| v.visitor.external_id.clone())
            .unwrap_or_else(|| format!("Visitor {}", &v.visitor.id.simple().to_string()[24..]));
        let name: String = shown.chars().take(100).collect();
        let conv = Conversation {
            id: ConversationId::new(),
            org_id: key.org_id,
            kind: ConversationKind::Group,
            name: Some(name),
            visibility: Visibility::Teams {
                teams: vec![key.team_id],
            },
            archived: false,
            created_by: key.system_user_id,
            created_at: now,
            updated_at: now,
            last_seq: 0,
            direct_key: None,
        };
        let mut participants = vec![
            (key.system_user_id, ConversationRole::Owner),
            (key.visitor_user_id, ConversationRole::Member),
        ];
        if let Some(a) = &agent {
            participants.push((a.user_id, ConversationRole::Member));
        }
        let status = if agent.is_some() {
            WidgetStatus::Bot
        } else {
            WidgetStatus::Open
        };
        let widget = WidgetConversation {
            conversation_id: conv.id,
            org_id: key.org_id,
            key_id: key.id,
            visitor_id: v.visitor.id,
            team_id: key.team_id,
            status,
            created_at: now,
            updated_at: now,
        };
        let system = self
            .widget_bot_actor(key.system_bot_id, None, &v.meta)
            .await?;
        let audit = self
            .audit(&system, "conversation.created")
            .resource("conversation", conv.id)
            .org(key.org_id)
            .detail(serde_json::json!({
                "source": "widget", "widget_key": key.id, "status": status,
            }));
        (self.store)
            .create_widget_conversation(&conv, &participants, &widget, &[audit])
            .await?;
        for (i, (user, _)) in participants.iter().enumerate() {
            let mut subscribe = self.subscribed(&conv, *user).await?;
            subscribe.d = sourced(&conv, Some(&widget));
            if *user == key.visitor_user_id {
                // The visitor bot has no sockets and this copy reaches no webhook: it tells the
                // visitor's event streams on every node that their conversation exists.
                if let Some(d) = subscribe.d.as_object_mut() {
                    d.insert(WIDGET_VISITOR_FIELD.into(), v.visitor.id.to_string().into());
                }
            }
            self.emit(if i == 0 {
                subscribe
            } else {
                subscribe.gateway_only()
            });
        }
        self.announce_to_inbox(&widget).await?;
        Ok((widget, true))
    }

    /// A visitor's message: sent as the key's visitor bot into the visitor's conversation
    /// (made now if there is none open), through the ordinary send path.
    pub async fn widget_send(
        &self,
        v: &Visitor,
        text: MessageText,
    ) -> Result<(Message, WidgetConversation, bool)> {
        let (w, created) = self.visitor_conversation(v).await?;
        let actor = self
            .widget_bot_actor(v.key.visitor_bot_id, Some(w.conversation_id), &v.meta)
            .await?;
        let sent = self
            .send_message(
                &actor,
                w.conversation_id,
                SendMessage {
                    content: text,
                    format: MessageFormat::Text,
                    reply_to: None,
                    attachments: AttachmentIds::default(),
                    idempotency_key: None,
                },
            )
            .await?;
        if !created {
            // A new conversation was announced as it was made.
            self.announce_to_inbox(&w).await?;
        }
        Ok((sent.message, w, created))
    }

    /// The visitor's current conversation and its newest messages, oldest first.
    pub async fn widget_history(
        &self,
        v: &Visitor,
    ) -> Result<(Option<WidgetConversation>, Vec<WidgetMessage>)> {
        let Some(w) = self.store.latest_widget_conversation(v.visitor.id).await? else {
            return Ok((None, Vec::new()));
        };
        let messages = self.widget_messages(v, w.conversation_id).await?;
        Ok((Some(w), messages))
    }

    /// The newest messages of `conv` (the visitor's), oldest first, as the widget shows them.
    pub async fn widget_messages(
        &self,
        v: &Visitor,
        conv: ConversationId,
    ) -> Result<Vec<WidgetMessage>> {
        let limit = Limit::parse(Some(i64::from(Limit::MAX))).expect("the maximum is valid");
        let mut all: Vec<Message> = Vec::new();
        let mut cursor = crate::store::Cursor::Latest;
        while all.len() < HISTORY_MAX {
            let page = (self.store)
                .messages(conv, crate::store::Page { cursor, limit })
                .await?;
            let full = u32::try_from(page.len()).is_ok_and(|n| n == Limit::MAX);
            let last = page.last().map(|m| m.seq);
            all.extend(page);
            match last {
                Some(seq) if full => cursor = crate::store::Cursor::Before(seq),
                _ => break,
            }
        }
        all.truncate(HISTORY_MAX);
        all.reverse();
        Ok(all
            .iter()
            .filter_map(|m| widget_message(&v.key, &v.visitor, &MessageFacts::from(m)))
            .collect())
    }

    /// The visitor's newest conversation (what their widget shows).
    pub async fn widget_current(&self, v: &Visitor) -> Result<Option<WidgetConversation>> {
        Ok(self.store.latest_widget_conversation(v.visitor.id).await?)
    }

    /// The name of `key`'s AI agent, if it has one.
    pub async fn widget_agent_name(&self, key: &WidgetKey) -> Result<Option<String>> {
        let Some(id) = key.agent_id else {
            return Ok(None);
        };
        match self.store.agent(id).await {
            Ok(a) if a.org_id == key.org_id => Ok(Some(a.name)),
            Ok(_) | Err(crate::store::StoreError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The widget conversation `conv`, if it is one.
    pub async fn widget_conversation_of(
        &self,
        conv: ConversationId,
    ) -> Result<Option<WidgetConversation>> {
        Ok(self.store.widget_conversation(conv).await?)
    }

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
    async fn announce_to_inbox(&self, w: &WidgetConversation) -> Result<()> {
        let d = serde_json::json!({
            "conversation_id": w.conversation_id,
            "org_id": w.org_id,
            "status": w.status,
        });
        for user in self
            .store
            .widget_inbox_audience(w.org_id, w.team_id)
            .await?
        {
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
            self.send_message(
                &system,
                w.conversation_id,
                SendMessage {
                    content: notice,
                    format: MessageFormat::Text,
                    reply_to: None,
                    attachments: AttachmentIds::default(),
                    idempotency_key: None,
                },
            )
            .await?;
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
        _admin: &super::ServerAdmin,
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
    pub(super) async fn widget_bots(&self, org: OrgId) -> Result<Vec<UserId>> {
        Ok(self.store.widget_bot_users(org).await?)
    }
}
