//! What a visitor does: begins or resumes a session, sends into their conversation (made on
//! the first send), and reads its history; the key's bots act for them.

use super::{
    sourced, widget_message, HostIdentity, MessageFacts, StartedSession, Visitor, VisitorProfile,
    WidgetMessage, HISTORY_MAX, WIDGET_VISITOR_FIELD,
};
use crate::credential::Credential;
use crate::error::ServiceError;
use crate::event::Data;
use crate::ids::*;
use crate::model::{Conversation, Message};
use crate::service::{Actor, ClientMeta, Result, SendMessage, Services};
use crate::store::agents::Agent;
use crate::store::widget::*;
use crate::store::StoreError;
use crate::types::*;
use crate::widget::*;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

impl Services {
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
                        if !identity_verified(bytes, id.user.user_id.as_str(), &id.hash) {
                            return Err(ServiceError::forbidden(
                                "identity_invalid",
                                "the visitor's identity signature does not verify",
                            ));
                        }
                        id.user
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
    pub(super) async fn widget_bot_actor(
        &self,
        bot: BotId,
        conv: Option<ConversationId>,
        meta: &ClientMeta,
    ) -> Result<Actor> {
        let mut actor = self.acting_bot(bot, meta.clone()).await?;
        if let Credential::Bot { conversations, .. } = &mut actor.credential {
            *conversations = Some(conv.into_iter().collect());
        }
        Ok(actor)
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
        let agent = self.widget_agent(key).await?;
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
        let made = (self.store)
            .create_widget_conversation(&conv, &participants, &widget, &[audit])
            .await?;
        // Another first send of this visitor made one meanwhile: theirs is this one too.
        if let Some(existing) = made {
            return Ok((existing, false));
        }
        for (i, (user, _)) in participants.iter().enumerate() {
            let mut subscribe = self.subscribed(&conv, *user).await?;
            let mut d = sourced(&conv, Some(&widget));
            if *user == key.visitor_user_id {
                // The visitor bot has no sockets and this copy reaches no webhook: it tells the
                // visitor's event streams on every node that their conversation exists.
                if let Some(d) = d.as_object_mut() {
                    d.insert(WIDGET_VISITOR_FIELD.into(), v.visitor.id.to_string().into());
                }
            }
            subscribe.d = Data::of(d);
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
            .send_message(&actor, w.conversation_id, SendMessage::text(text))
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

    /// `key`'s AI agent, if it has one (and it is still one of the key's org's).
    async fn widget_agent(&self, key: &WidgetKey) -> Result<Option<Agent>> {
        let Some(id) = key.agent_id else {
            return Ok(None);
        };
        match self.store.agent(id).await {
            Ok(a) if a.org_id == key.org_id => Ok(Some(a)),
            Ok(_) | Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The name of `key`'s AI agent, if it has one.
    pub async fn widget_agent_name(&self, key: &WidgetKey) -> Result<Option<String>> {
        Ok(self.widget_agent(key).await?.map(|a| a.name))
    }

    /// The widget conversation `conv`, if it is one.
    pub async fn widget_conversation_of(
        &self,
        conv: ConversationId,
    ) -> Result<Option<WidgetConversation>> {
        Ok(self.store.widget_conversation(conv).await?)
    }
}
