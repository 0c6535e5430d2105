//! What the server's agent runner asks of the services (AGENT-2, AGENT-4): which agents answer
//! a new message, what the model may see, the agent acting as its bot account, the token budget
//! reservation and its settlement, and the call log.
//!
//! Who answers is decided off the message path, from this node's cache: the org of the
//! conversation (`conversation_facts`), the org's agents (`OrgAgents`, forgotten on every node
//! when an agent changes) and whether each is a participant (`participation`, forgotten when
//! the agent's bot is added or removed). An org without agents costs one cached lookup.
//!
//! The context is read as the agent: through `list_messages` with the agent's own actor (its
//! bot credential), so the same policy that decides what a participant reads decides what the
//! model sees — a conversation it is not in, or an org locked for its creator's missing 2FA,
//! gives nothing and no answer.

use super::{Actor, ClientMeta, Result, SendMessage, Services};
use crate::agent::{context_name, trigger, Incoming, Trigger};
use crate::cache::OrgAgents;
use crate::error::ServiceError;
use crate::ids::*;
use crate::model::Message;
use crate::store::agents::*;
use crate::store::{Cursor, Page};
use crate::types::{ConversationKind, Limit, MessageStatus, MessageText, UserKind};
use secrecy::SecretString;
use uuid::Uuid;

/// One answer to give: which agent, to which message, and why.
#[derive(Debug, Clone)]
pub struct AgentTask {
    pub agent: Agent,
    pub message: Message,
    pub trigger: Trigger,
    /// A support widget conversation (WEB-4): the agent is told how to hand off, and its
    /// answer's handoff marker hands the conversation to people.
    pub widget: bool,
}

/// Who wrote a line of the model's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextRole {
    System,
    User,
    Assistant,
}

/// One line of the model's context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextLine {
    pub role: ContextRole,
    /// A sanitized username for `user` lines.
    pub name: Option<String>,
    pub content: String,
}

/// What one call needs: the agent as read now, its actor, its opened key and its context.
/// The agent and the key come from one read (DATA-3): the call goes to this `agent`'s
/// endpoint, model and limits with this key — never a key stored for another endpoint.
pub struct Prepared {
    pub agent: Agent,
    pub actor: Actor,
    pub api_key: Option<SecretString>,
    /// The system prompt first, then the messages, newest last.
    pub context: Vec<ContextLine>,
}

/// Pages read at most while collecting a context (of 100 messages each).
const CONTEXT_PAGES: usize = 3;

/// A message the model may see: not deleted, with content, and not still streaming.
fn shown_to_model(m: &Message) -> bool {
    m.deleted_at.is_none() && m.content.is_some() && m.status != MessageStatus::Streaming
}

impl Services {
    /// The org's agents, from this node's cache.
    async fn org_agents(&self, org: OrgId) -> Result<Vec<Agent>> {
        let load = || self.store.agents(org);
        Ok(self.read_through::<OrgAgents, _>(org, load).await?)
    }

    /// The agents that answer message `id` of `conv` (AGENT-2), each with its reason.
    pub async fn agent_tasks(&self, conv: ConversationId, id: MessageId) -> Result<Vec<AgentTask>> {
        let facts = self.conversation_facts(conv).await?;
        let agents = self.org_agents(facts.org_id).await?;
        if agents.is_empty() {
            return Ok(Vec::new());
        }
        let message = self.store.message(id).await?;
        if message.conversation_id != conv {
            return Ok(Vec::new());
        }
        // WEB-4: in a widget conversation only the key's agent answers, only the visitor, and
        // only while the conversation is `bot` — as in a direct conversation, never after a
        // handoff.
        if facts.kind == ConversationKind::Group {
            if let Some(w) = self.store.widget_conversation(conv).await? {
                return self.widget_agent_tasks(&w, agents, message).await;
            }
        }
        if message.author.kind != UserKind::User {
            return Ok(Vec::new());
        }
        let replied_author = match message.reply_to {
            Some(r) => self.store.message(r).await.ok().map(|m| m.author.id),
            None => None,
        };
        let mut tasks = Vec::new();
        for agent in agents {
            if agent.user_id == message.author.id
                || self.participation(conv, agent.user_id).await?.is_none()
            {
                continue;
            }
            let incoming = Incoming {
                from_person: message.author.kind == UserKind::User,
                deleted: message.deleted_at.is_some(),
                direct: facts.kind == ConversationKind::Direct,
                text: message.content.as_deref().unwrap_or(""),
                replies_to_agent: replied_author == Some(agent.user_id),
            };
            if let Some(trigger) = trigger(incoming, &agent.name) {
                tasks.push(AgentTask {
                    agent,
                    message: message.clone(),
                    trigger,
                    widget: false,
                });
            }
        }
        Ok(tasks)
    }

    /// The answer of a widget conversation's agent to a visitor's message while it is `bot`.
    async fn widget_agent_tasks(
        &self,
        w: &crate::store::widget::WidgetConversation,
        agents: Vec<Agent>,
        message: Message,
    ) -> Result<Vec<AgentTask>> {
        if w.status != crate::widget::WidgetStatus::Bot || message.deleted_at.is_some() {
            return Ok(Vec::new());
        }
        let key = match self.store.widget_key(w.key_id).await {
            Ok(k) => k,
            Err(crate::store::StoreError::NotFound) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        if message.author.id != key.visitor_user_id {
            return Ok(Vec::new());
        }
        let Some(agent) = agents.into_iter().find(|a| Some(a.id) == key.agent_id) else {
            return Ok(Vec::new());
        };
        if self
            .participation(w.conversation_id, agent.user_id)
            .await?
            .is_none()
        {
            return Ok(Vec::new());
        }
        Ok(vec![AgentTask {
            agent,
            message,
            trigger: Trigger::Direct,
            widget: true,
        }])
    }

    /// The agent acting as its bot account: the bot's credential (its org only), on a stand-in
    /// session that no token opens.
    pub async fn agent_actor(&self, agent: &Agent) -> Result<Actor> {
        let actor = self.acting_bot(agent.bot_id, ClientMeta::default()).await?;
        if actor.user.disabled {
            return Err(ServiceError::NotFound("agent"));
        }
        Ok(actor)
    }

    /// Everything one call needs, read as the agent; `None` when the agent may not read the
    /// conversation now (removed, the org locked) or is gone.
    pub async fn prepare_agent_call(&self, task: &AgentTask) -> Result<Option<Prepared>> {
        let Some((agent, api_key)) = self.agent_for_call(task.agent.id).await? else {
            return Ok(None);
        };
        let actor = match self.agent_actor(&agent).await {
            Ok(a) => a,
            Err(ServiceError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let conv = task.message.conversation_id;
        // An agent that may not post there (a Viewer, an archived conversation) is not asked:
        // its answer could not be posted (AZ-2), and its budget is not spent.
        match self
            .conversation_access(
                &actor,
                conv,
                crate::policy::ConversationAction::SendMessages,
            )
            .await
        {
            Ok(_) => {}
            Err(ServiceError::NotFound(_) | ServiceError::Forbidden { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        let wanted = usize::try_from(agent.context_messages).unwrap_or(1);
        let mut seen: Vec<Message> = Vec::new();
        let mut cursor = Cursor::Before(task.message.seq + 1);
        for _ in 0..CONTEXT_PAGES {
            let limit = Limit::parse(Some(i64::from(Limit::MAX))).expect("the maximum is valid");
            let page = match self
                .list_messages(&actor, conv, Page { cursor, limit })
                .await
            {
                Ok(p) => p,
                Err(ServiceError::NotFound(_) | ServiceError::Forbidden { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            let full = u32::try_from(page.len()).is_ok_and(|n| n == Limit::MAX);
            let last = page.last().map(|m| m.seq);
            seen.extend(page.into_iter().filter(shown_to_model));
            match last {
                Some(seq) if full && seen.len() < wanted => cursor = Cursor::Before(seq),
                _ => break,
            }
        }
        // The question itself, as it reads now: deleted meanwhile, nothing is asked (MSG-2,
        // DATA-6); edited, its current text is (the newest line of the context).
        if !seen.iter().any(|m| m.id == task.message.id) {
            return Ok(None);
        }
        seen.truncate(wanted);
        seen.reverse();
        let mut context = Vec::with_capacity(seen.len() + 1);
        let prompt = match (&agent.system_prompt, task.widget) {
            (Some(p), true) => Some(format!("{p}\n\n{}", crate::widget::HANDOFF_INSTRUCTION)),
            (None, true) => Some(crate::widget::HANDOFF_INSTRUCTION.to_owned()),
            (p, false) => p.clone(),
        };
        if let Some(prompt) = prompt {
            context.push(ContextLine {
                role: ContextRole::System,
                name: None,
                content: prompt,
            });
        }
        context.extend(seen.into_iter().map(|m| {
            let own = m.author.id == agent.user_id;
            ContextLine {
                role: if own {
                    ContextRole::Assistant
                } else {
                    ContextRole::User
                },
                name: (!own).then(|| context_name(&m.author.username)),
                content: m.content.unwrap_or_default(),
            }
        }));
        Ok(Some(Prepared {
            agent,
            actor,
            api_key,
            context,
        }))
    }

    /// Holds `tokens` against the agent's and the org's budgets for this month, in one atomic
    /// step; `Err` names the budget that would be passed (nothing is held then).
    pub async fn reserve_agent_tokens(
        &self,
        agent: &Agent,
        tokens: i64,
    ) -> Result<std::result::Result<TokenReservation, BudgetRefusal>> {
        let reservation = TokenReservation {
            agent: agent.id,
            org: agent.org_id,
            month: MonthKey::of(self.clock.now()),
            tokens,
        };
        Ok(match self.store.reserve_tokens(&reservation).await? {
            Ok(()) => Ok(reservation),
            Err(refusal) => Err(refusal),
        })
    }

    /// Releases a reservation, counting the tokens the provider reported instead.
    pub async fn settle_agent_tokens(&self, r: &TokenReservation, used: i64) -> Result<()> {
        Ok(self.store.settle_tokens(r, used).await?)
    }

    /// Logs one model call for the usage report (no content).
    pub async fn record_agent_call(
        &self,
        agent: Uuid,
        latency_ms: i64,
        tokens: (i64, i64),
        failed: bool,
    ) -> Result<()> {
        let call = AgentCall {
            id: Uuid::now_v7(),
            agent,
            day: self.clock.now().date_naive(),
            latency_ms,
            tokens_in: tokens.0,
            tokens_out: tokens.1,
            failed,
        };
        Ok(self.store.record_agent_call(&call).await?)
    }

    /// Posts `text` as the agent in the conversation, complete (a notice: a limit was hit).
    pub async fn post_agent_notice(
        &self,
        actor: &Actor,
        conv: ConversationId,
        reply_to: MessageId,
        text: &str,
    ) -> Result<Message> {
        let content = MessageText::parse(text)
            .map_err(|r| ServiceError::Internal(format!("agent notice: {r}")))?;
        let sent = self
            .send_message(
                actor,
                conv,
                SendMessage {
                    reply_to: Some(reply_to),
                    ..SendMessage::text(content)
                },
            )
            .await?;
        Ok(sent.message)
    }
}
