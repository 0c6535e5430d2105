//! Outgoing webhooks (HOOK-1, HOOK-2): endpoints managed by org owners and admins (and keys with
//! `webhooks:admin`), their signing secrets, and the delivery queue the server's worker drains.
//!
//! A secret is `whsec_` + base64 of 32 random bytes, shown once, sealed at rest with the secrets
//! key ring (DATA-3, column `webhook_secrets.secret`) and masked after (`whsec_****abcd`).
//! Rotating keeps the replaced secret signing for [`SECRET_OVERLAP`], during which deliveries
//! carry both signatures. The URL is checked by the SSRF guard before these calls (the server
//! owns the guard) and again at every delivery.
//!
//! Events reach the queue from [`Services::enqueue_webhook_event`], called on the node that made
//! the change: one delivery row per matching enabled endpoint, unique per (endpoint, event id),
//! so an event handed in twice is queued once.

use super::{of_org, Actor, Result, Services};
use crate::error::ServiceError;
use crate::event::{Audience, Control, Data, Event, EventKind};
use crate::ids::*;
use crate::keyring::SecretRef;
use crate::policy::{self, ConversationAction, OrgAction};
use crate::secretbox::SealedColumn;
use crate::store::webhooks::*;
use crate::store::StoreError;
use crate::types::Visibility;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::{Rng, RngCore};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use uuid::Uuid;

/// The endpoints of each org read while the delivery worker queues one drained burst of events
/// (a new one for each burst: an endpoint created or changed since is seen from the next).
#[derive(Default)]
pub struct EndpointsSeen {
    endpoints: std::collections::HashMap<OrgId, Vec<Webhook>>,
    /// The org of each conversation an event without one named (a conversation never moves).
    orgs: std::collections::HashMap<ConversationId, OrgId>,
}

/// How long a replaced secret keeps signing after a rotation (both signatures are sent).
pub const SECRET_OVERLAP: Duration = Duration::hours(24);
/// Attempts of one delivery before it is marked failed.
pub const MAX_ATTEMPTS: i32 = 8;
/// Consecutive failed attempts (across deliveries) that disable an endpoint.
pub const DISABLE_AFTER_FAILURES: i32 = 20;
/// The first retry's delay; each later one doubles, up to [`MAX_BACKOFF`].
pub const BASE_BACKOFF: Duration = Duration::seconds(10);
pub const MAX_BACKOFF: Duration = Duration::hours(1);

/// The events an endpoint may subscribe to (API.md).
pub const WEBHOOK_EVENTS: &[&str] = &[
    "message.created",
    "message.updated",
    "message.deleted",
    "conversation.created",
    "conversation.updated",
    "conversation.deleted",
    "participant.added",
    "participant.removed",
    "member.added",
    "member.removed",
    "member.role_changed",
];

/// What a delivery's body is about, so that deleting, purging or erasing it reaches the
/// delivery log too (DATA-5, DATA-6): the message of a message event, and the person — a
/// message's author, a member or a participant.
#[derive(Debug, Clone, Copy, Default)]
struct About {
    message: Option<Uuid>,
    user: Option<Uuid>,
}

impl About {
    /// Read from the event's REST object (`data`) of webhook event `name`.
    fn of(name: &str, data: &Data) -> Self {
        #[derive(serde::Deserialize)]
        struct Who {
            id: Uuid,
        }
        #[derive(serde::Deserialize)]
        struct Shown {
            id: Option<Uuid>,
            author: Option<Who>,
            user: Option<Who>,
        }
        let Ok(shown) = serde_json::from_str::<Shown>(data.get()) else {
            return Self::default();
        };
        Self {
            message: shown.id.filter(|_| name.starts_with("message.")),
            user: shown.author.or(shown.user).map(|w| w.id),
        }
    }
}

/// 409: the delivery's body went with what it was about, or that is gone since.
fn redacted() -> ServiceError {
    ServiceError::conflict(
        "delivery_redacted",
        "what this delivery was about was deleted or erased; its body is gone",
    )
}

/// The event sent by `POST …/test`.
pub const TEST_EVENT: &str = "webhook.test";

/// The webhook event name of a gateway event kind, if webhooks carry it.
#[must_use]
pub fn webhook_event_name(kind: EventKind) -> Option<&'static str> {
    Some(match kind {
        EventKind::MessageCreate => "message.created",
        EventKind::MessageUpdate => "message.updated",
        EventKind::MessageDelete => "message.deleted",
        EventKind::ConversationCreate => "conversation.created",
        EventKind::ConversationUpdate => "conversation.updated",
        EventKind::ConversationDelete => "conversation.deleted",
        EventKind::ParticipantAdd => "participant.added",
        EventKind::ParticipantRemove => "participant.removed",
        EventKind::MemberAdded => "member.added",
        EventKind::MemberRemoved => "member.removed",
        EventKind::MemberRoleChanged => "member.role_changed",
        _ => return None,
    })
}

/// The retry delay after the `attempts`-th failed attempt: exponential, capped, with "equal
/// jitter" (half fixed, half random) so endpoints that failed together do not retry together.
#[must_use]
pub fn backoff(attempts: i32, rng: &mut impl Rng) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    let full = BASE_BACKOFF
        .checked_mul(1 << exp.min(16))
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF);
    let half = full / 2;
    half + Duration::milliseconds(rng.gen_range(0..=half.num_milliseconds().max(0)))
}

/// A new signing secret: `whsec_` + base64 of 32 random bytes, and its hint.
fn new_whsec() -> (SecretString, String) {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let text = format!("whsec_{}", STANDARD.encode(key));
    let hint = text[text.len() - 4..].to_owned();
    (text.into(), hint)
}

/// `whsec_****abcd`.
#[must_use]
pub fn masked_secret(hint: &str) -> String {
    format!("whsec_****{hint}")
}

fn secret_ref(id: Uuid) -> SecretRef {
    SecretRef {
        column: SealedColumn::WebhookSecret,
        row: id,
    }
}

/// 403 `insufficient_scope` when the caller's credential lacks the scope that reads one of
/// `events` over REST (`policy::delivery::scope_to_hear`).
fn may_hear(actor: &Actor, events: &[String]) -> Result<()> {
    let lacking = events.iter().any(|e| {
        policy::delivery::scope_to_hear(e)
            .is_some_and(|s| !policy::credentials::scope_allows(&actor.credential, Some(s)))
    });
    if lacking {
        return Err(ServiceError::forbidden(
            "insufficient_scope",
            "this key lacks the scope that reads these events (messages:read, \
             conversations:read or org:read)",
        ));
    }
    Ok(())
}

fn check_events(events: &[String]) -> Result<Vec<String>> {
    if events.is_empty() || events.len() > WEBHOOK_EVENTS.len() {
        return Err(ServiceError::invalid(
            "events",
            "invalid",
            "list 1 or more of the webhook event names",
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(events.len());
    for e in events {
        if !WEBHOOK_EVENTS.contains(&e.as_str()) {
            return Err(ServiceError::invalid(
                "events",
                "invalid",
                format!("unknown event; one of {}", WEBHOOK_EVENTS.join(", ")),
            ));
        }
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    Ok(out)
}

impl Services {
    /// The endpoint `id` of `org` (404 for another org's), once `actor` may manage the org's
    /// webhooks (`write`: as in `require_org_settings`).
    async fn org_webhook(
        &self,
        actor: &Actor,
        org: OrgId,
        id: Uuid,
        write: bool,
    ) -> Result<Webhook> {
        self.require_org_settings(actor, org, OrgAction::ManageWebhooks, write)
            .await?;
        of_org(self.store.webhook(id).await, org, |w| w.org_id, "webhook")
    }

    /// Whether `actor` may read conversation `c` of `org`, as an endpoint of it needs.
    async fn reads_for_endpoint(
        &self,
        actor: &Actor,
        org: OrgId,
        c: ConversationId,
    ) -> Result<bool> {
        match self
            .conversation_access(actor, c, ConversationAction::Read)
            .await
        {
            Ok((conv, _)) => Ok(conv.org_id == org),
            Err(ServiceError::NotFound(_) | ServiceError::Forbidden { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The endpoint `id` of `org`, once `actor` may manage the org's webhooks and could make
    /// this one now (AZ-3, AZ-5): the scope to hear each of its events and, for an endpoint of
    /// one conversation, read access to it. What steers or repeats its bodies — a new URL,
    /// enabling, a new secret, a test, a redelivery — asks this, so an admin who is no
    /// participant (or a key without `messages:read`) cannot point another's endpoint at
    /// herself and have its conversation's messages sent there.
    async fn controlled_webhook(&self, actor: &Actor, org: OrgId, id: Uuid) -> Result<Webhook> {
        let hook = self.org_webhook(actor, org, id, true).await?;
        may_hear(actor, &hook.events)?;
        if let Some(c) = hook.conversation_id {
            if !self.reads_for_endpoint(actor, org, c).await? {
                return Err(ServiceError::not_allowed(
                    "this endpoint belongs to a conversation you cannot read",
                ));
            }
        }
        Ok(hook)
    }

    /// Call after storing `secret` (sealed from `text`) for `hook`: settles its seal (see
    /// `settle_sealed`) and answers the endpoint with the secret's text, shown this once.
    async fn settle_webhook_secret(
        &self,
        hook: Webhook,
        secret: WebhookSecretRecord,
        text: SecretString,
    ) -> Result<(Webhook, SecretString)> {
        self.settle_sealed(
            secret_ref(secret.id),
            secret.sealed,
            text.expose_secret().as_bytes(),
        )
        .await?;
        Ok((hook, text))
    }

    /// Seals a new secret for storing under row `id`.
    async fn seal_webhook_secret(
        &self,
        id: Uuid,
        text: &SecretString,
        hint: String,
    ) -> Result<WebhookSecretRecord> {
        let sealed = self
            .seal_secret(secret_ref(id).binding(), text.expose_secret().as_bytes())
            .await?;
        Ok(WebhookSecretRecord {
            id,
            hint,
            sealed,
            created_at: self.clock.now(),
            expires_at: None,
        })
    }

    /// Creates an endpoint of `org` (optionally for one of its conversations) for `events`, at
    /// `url`, which the caller has put through the SSRF guard. The secret is returned once.
    pub async fn create_webhook(
        &self,
        actor: &Actor,
        org: OrgId,
        url: String,
        events: &[String],
        conversation_id: Option<ConversationId>,
    ) -> Result<(Webhook, SecretString)> {
        self.require_org_settings(actor, org, OrgAction::ManageWebhooks, true)
            .await?;
        let events = check_events(events)?;
        may_hear(actor, &events)?;
        if let Some(c) = conversation_id {
            // Only a conversation the caller may read (AZ-3): any other is unknown to them.
            if !self.reads_for_endpoint(actor, org, c).await? {
                return Err(ServiceError::invalid(
                    "conversation_id",
                    "not_found",
                    "no such conversation in this organization",
                ));
            }
        }
        let now = self.clock.now();
        let (text, hint) = new_whsec();
        let secret = self
            .seal_webhook_secret(Uuid::now_v7(), &text, hint.clone())
            .await?;
        let hook = Webhook {
            id: Uuid::now_v7(),
            org_id: org,
            conversation_id,
            url,
            events,
            enabled: true,
            disabled_reason: None,
            consecutive_failures: 0,
            created_by: Some(actor.user.id),
            created_at: now,
            updated_at: now,
            previous_secret_expires_at: None,
            secret_hint: hint,
        };
        let audit = self
            .audit(actor, "webhook.created")
            .resource("webhook", hook.id)
            .org(org)
            .detail(serde_json::json!({ "url": hook.url, "events": hook.events }));
        self.store.create_webhook(&hook, &secret, &[audit]).await?;
        self.settle_webhook_secret(hook, secret, text).await
    }

    /// The org's endpoints (secrets masked by the caller).
    pub async fn webhooks(&self, actor: &Actor, org: OrgId) -> Result<Vec<Webhook>> {
        self.require_org_settings(actor, org, OrgAction::ManageWebhooks, false)
            .await?;
        Ok(self.store.webhooks(org).await?)
    }

    /// Changes an endpoint's URL (checked by the caller), events or enabled state.
    pub async fn update_webhook(
        &self,
        actor: &Actor,
        org: OrgId,
        id: Uuid,
        mut patch: WebhookPatch,
    ) -> Result<Webhook> {
        self.controlled_webhook(actor, org, id).await?;
        if let Some(events) = &patch.events {
            let events = check_events(events)?;
            may_hear(actor, &events)?;
            patch.events = Some(events);
        }
        let audit = self
            .audit(actor, "webhook.updated")
            .resource("webhook", id)
            .org(org)
            .detail(serde_json::json!({
                "url": patch.url, "events": patch.events, "enabled": patch.enabled
            }));
        self.store
            .update_webhook(
                WebhookUpdate {
                    id,
                    patch: &patch,
                    at: self.clock.now(),
                },
                &[audit],
            )
            .await
            .map_err(ServiceError::missing("webhook"))
    }

    pub async fn delete_webhook(&self, actor: &Actor, org: OrgId, id: Uuid) -> Result<()> {
        self.org_webhook(actor, org, id, true).await?;
        let audit = self
            .audit(actor, "webhook.deleted")
            .resource("webhook", id)
            .org(org);
        self.store
            .delete_webhook(id, &[audit])
            .await
            .map_err(ServiceError::missing("webhook"))
    }

    /// A new secret for the endpoint, returned once; the replaced one signs on for
    /// [`SECRET_OVERLAP`] (one kept from an earlier rotation stops now).
    pub async fn rotate_webhook_secret(
        &self,
        actor: &Actor,
        org: OrgId,
        id: Uuid,
    ) -> Result<(Webhook, SecretString)> {
        self.controlled_webhook(actor, org, id).await?;
        let (text, hint) = new_whsec();
        let secret = self
            .seal_webhook_secret(Uuid::now_v7(), &text, hint)
            .await?;
        let audit = self
            .audit(actor, "webhook.secret_rotated")
            .resource("webhook", id)
            .org(org)
            .detail(serde_json::json!({ "overlap_seconds": SECRET_OVERLAP.num_seconds() }));
        let rotation = SecretRotation {
            overlap_until: secret.created_at + SECRET_OVERLAP,
            secret,
        };
        let hook = self
            .store
            .rotate_webhook_secret(id, &rotation, &[audit])
            .await
            .map_err(ServiceError::missing("webhook"))?;
        self.settle_webhook_secret(hook, rotation.secret, text)
            .await
    }

    /// The endpoint's deliveries, newest first.
    pub async fn webhook_deliveries(
        &self,
        actor: &Actor,
        org: OrgId,
        id: Uuid,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<WebhookDelivery>> {
        self.org_webhook(actor, org, id, false).await?;
        Ok(self.store.deliveries(id, before, limit).await?)
    }

    /// Queues one delivery of `event_type` with `data` to the endpoint, now.
    async fn enqueue_one(
        &self,
        webhook: Uuid,
        event_type: &str,
        data: &serde_json::Value,
    ) -> Result<WebhookDelivery> {
        let now = self.clock.now();
        let body = payload(event_type, now, data);
        self.enqueue_body(webhook, event_type.to_owned(), body, now, About::default())
            .await
    }

    /// Queues one delivery of `event_type` with the body `payload` (which is `about` that) to
    /// the endpoint, made at `now` (a new delivery and event id: receivers see a new message).
    async fn enqueue_body(
        &self,
        webhook: Uuid,
        event_type: String,
        payload: String,
        now: DateTime<Utc>,
        about: About,
    ) -> Result<WebhookDelivery> {
        let d = NewDelivery {
            id: Uuid::now_v7(),
            webhook_id: webhook,
            event_id: Uuid::now_v7(),
            event_type,
            payload,
            created_at: now,
            message_id: about.message,
            user_id: about.user,
        };
        let added = self
            .store
            .enqueue_deliveries(std::slice::from_ref(&d))
            .await?;
        if added == 0 {
            return Err(redacted());
        }
        Ok(self.store.delivery(d.id).await?)
    }

    /// Queues a `webhook.test` event for the endpoint (sent at the worker's next turn).
    pub async fn test_webhook(
        &self,
        actor: &Actor,
        org: OrgId,
        id: Uuid,
    ) -> Result<WebhookDelivery> {
        let hook = self.controlled_webhook(actor, org, id).await?;
        if !hook.enabled {
            return Err(ServiceError::conflict(
                "webhook_disabled",
                "the webhook is disabled; enable it first",
            ));
        }
        let data = serde_json::json!({ "webhook_id": id, "org_id": org });
        self.enqueue_one(id, TEST_EVENT, &data).await
    }

    /// Queues delivery `delivery` of the endpoint again, as a new delivery of the same body
    /// (a new `webhook-id`: receivers see a new message).
    pub async fn redeliver_webhook(
        &self,
        actor: &Actor,
        org: OrgId,
        id: Uuid,
        delivery: Uuid,
    ) -> Result<WebhookDelivery> {
        self.controlled_webhook(actor, org, id).await?;
        let old = match self.store.delivery(delivery).await {
            Ok(d) if d.webhook_id == id => d,
            Ok(_) | Err(StoreError::NotFound) => return Err(ServiceError::NotFound("delivery")),
            Err(e) => return Err(e.into()),
        };
        if old.redacted_at.is_some() {
            return Err(redacted());
        }
        let about = About {
            message: old.message_id,
            user: old.user_id,
        };
        self.enqueue_body(id, old.event_type, old.payload, self.clock.now(), about)
            .await
    }

    /// Queues `event` (committed on this node; `stamp` is a UUIDv7 taken when it was published,
    /// the time of the event, which orders each endpoint's deliveries) for every enabled endpoint
    /// of its org that subscribes to it, with what the event gives webhooks as `data`; answers
    /// how many deliveries were queued. An event about a conversation goes to the org's
    /// endpoints and those of that conversation; one about the org itself (a member's) to the
    /// org's endpoints only.
    ///
    /// `seen` holds the endpoints read for one drained burst, so a burst of messages in one org
    /// reads its endpoints once, not once per message.
    pub async fn enqueue_webhook_event(
        &self,
        event: &Event,
        stamp: Uuid,
        seen: &mut EndpointsSeen,
    ) -> Result<u64> {
        let (Some(name), Some(data)) = (webhook_event_name(event.kind), event.hook_data()) else {
            return Ok(0);
        };
        let conversation = match (&event.audience, &event.control) {
            (Audience::Conversation(c), _) => Some(*c),
            (_, Some(Control::Subscribe { conversation, .. })) => Some(*conversation),
            _ => None,
        };
        let org = match (event.org, conversation) {
            (Some(org), _) => org,
            (None, Some(c)) => match seen.orgs.get(&c) {
                Some(&org) => org,
                None => match self.store.conversation(c).await {
                    Ok(conv) => *seen.orgs.entry(c).or_insert(conv.org_id),
                    Err(StoreError::NotFound) => return Ok(0),
                    Err(e) => return Err(e.into()),
                },
            },
            (None, None) => return Ok(0),
        };
        let endpoints = match seen.endpoints.get(&org) {
            Some(known) => known,
            None => {
                let read = self.store.webhooks(org).await?;
                seen.endpoints.entry(org).or_insert(read)
            }
        };
        let subscribed = |h: &Webhook| h.enabled && h.events.iter().any(|e| e == name);
        // AZ-3: the org's own endpoints hear of a conversation only when every member may read
        // it (read only when one of them would hear the event); an endpoint of one
        // conversation hears of that one.
        let org_wide = match conversation {
            None => true,
            Some(c)
                if endpoints
                    .iter()
                    .any(|h| subscribed(h) && h.conversation_id.is_none()) =>
            {
                self.read_by_the_whole_org(c, data).await?
            }
            Some(_) => false,
        };
        let hooks: Vec<&Webhook> = endpoints
            .iter()
            .filter(|h| {
                subscribed(h)
                    && h.conversation_id
                        .map_or(org_wide, |c| Some(c) == conversation)
            })
            .collect();
        if hooks.is_empty() {
            return Ok(0);
        }
        let now = self.clock.now();
        let body = payload(name, now, data);
        let about = About::of(name, data);
        let rows: Vec<NewDelivery> = hooks
            .iter()
            .map(|h| NewDelivery {
                id: Uuid::now_v7(),
                webhook_id: h.id,
                event_id: stamp,
                event_type: name.to_owned(),
                payload: body.clone(),
                created_at: now,
                message_id: about.message,
                user_id: about.user,
            })
            .collect();
        Ok(self.store.enqueue_deliveries(&rows).await?)
    }

    /// Whether every member of its org may read conversation `c` (its visibility is `org`):
    /// from its settings (cached), or for a conversation deleted since, from the event's own
    /// copy of it (`conversation.deleted` carries the conversation).
    async fn read_by_the_whole_org(&self, c: ConversationId, data: &Data) -> Result<bool> {
        match self.conversation_facts(c).await {
            Ok(conv) => Ok(policy::delivery::org_endpoint_hears(&conv.visibility)),
            Err(ServiceError::NotFound(_)) => {
                #[derive(serde::Deserialize)]
                struct Shown {
                    visibility: Option<Visibility>,
                }
                let shown = serde_json::from_str::<Shown>(data.get()).ok();
                Ok(shown
                    .and_then(|s| s.visibility)
                    .is_some_and(|v| policy::delivery::org_endpoint_hears(&v)))
            }
            Err(e) => Err(e),
        }
    }

    /// Leases due deliveries to this node's worker `owner` for `lease`.
    pub async fn claim_webhook_deliveries(
        &self,
        owner: &str,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<WebhookDelivery>> {
        let now = self.clock.now();
        Ok(self
            .store
            .claim_deliveries(
                Lease {
                    owner,
                    until: now + lease,
                },
                now,
                limit,
            )
            .await?)
    }

    /// The endpoint's URL and its live secrets (`whsec_…`), newest first, for one attempt.
    pub async fn webhook_target(
        &self,
        webhook: Uuid,
    ) -> Result<(Webhook, Vec<SecretBox<Vec<u8>>>)> {
        let hook = self
            .store
            .webhook(webhook)
            .await
            .map_err(ServiceError::missing("webhook"))?;
        let mut secrets = Vec::new();
        for s in self
            .store
            .webhook_secrets(webhook, self.clock.now())
            .await?
        {
            secrets.push(
                self.open_sealed(secret_ref(s.id).binding(), &s.sealed)
                    .await?,
            );
        }
        Ok((hook, secrets))
    }

    /// Records an attempt of `delivery` (held by `owner`): delivered when `error` and
    /// `status_code` say so, else retried with back-off until [`MAX_ATTEMPTS`]. An endpoint
    /// failing [`DISABLE_AFTER_FAILURES`] times in a row is disabled, with an audit row.
    pub async fn finish_webhook_delivery(
        &self,
        owner: &str,
        delivery: &WebhookDelivery,
        org: OrgId,
        status_code: Option<i32>,
        error: Option<String>,
        latency_ms: i64,
    ) -> Result<bool> {
        let now = self.clock.now();
        let ok = error.is_none() && status_code.is_some_and(|c| (200..300).contains(&c));
        let attempts = delivery.attempts + 1;
        let retry_at = if ok {
            None
        } else if attempts >= MAX_ATTEMPTS {
            Some(None)
        } else {
            Some(Some(now + backoff(attempts, &mut rand::thread_rng())))
        };
        let disable_audit = vec![self
            .system_audit("webhook.disabled")
            .resource("webhook", delivery.webhook_id)
            .org(org)
            .failed()
            .detail(serde_json::json!({
                "reason": "failing",
                "consecutive_failures": DISABLE_AFTER_FAILURES,
            }))];
        let outcome = AttemptOutcome {
            status_code,
            error,
            latency_ms,
            at: now,
            retry_at,
            disable_after: DISABLE_AFTER_FAILURES,
            disable_audit,
        };
        let (recorded, disabled) = self
            .store
            .finish_delivery(delivery.id, owner, &outcome)
            .await?;
        if disabled {
            tracing::warn!(webhook = %delivery.webhook_id, "webhook disabled after sustained failure");
        }
        Ok(recorded)
    }
}

/// `{"type","timestamp","data"}`, the body of every delivery.
fn payload(event_type: &str, at: DateTime<Utc>, data: &impl serde::Serialize) -> String {
    /// A delivery's body (an event's `data` is embedded as it was serialized).
    #[derive(serde::Serialize)]
    struct Payload<'a, D> {
        r#type: &'a str,
        timestamp: String,
        data: &'a D,
    }
    serde_json::to_string(&Payload {
        r#type: event_type,
        timestamp: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        data,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let mut rng = rand::thread_rng();
        for attempts in 1..=12 {
            let full = (BASE_BACKOFF * (1 << (attempts - 1))).min(MAX_BACKOFF);
            let d = backoff(attempts, &mut rng);
            assert!(d >= full / 2 && d <= full, "attempt {attempts}: {d}");
        }
        let spread: std::collections::HashSet<i64> = (0..50)
            .map(|_| backoff(3, &mut rng).num_milliseconds())
            .collect();
        assert!(spread.len() > 1, "no jitter");
    }

    #[test]
    fn every_listed_event_is_made_by_exactly_one_kind() {
        for name in WEBHOOK_EVENTS {
            let makers = EventKind::named()
                .filter(|k| webhook_event_name(*k) == Some(name))
                .count();
            assert_eq!(makers, 1, "{name}");
        }
        let carried = EventKind::named().filter_map(webhook_event_name).count();
        assert_eq!(
            carried,
            WEBHOOK_EVENTS.len(),
            "no kind makes an unlisted name"
        );
        // An answer's deltas are for sockets only: webhooks hear of it as message.created,
        // then message.updated (AGENT-3).
        assert_eq!(webhook_event_name(EventKind::MessageStream), None);
    }

    #[test]
    fn events_are_checked_and_deduplicated() {
        let ok = check_events(&["message.created".into(), "message.created".into()]).unwrap();
        assert_eq!(ok, vec!["message.created".to_owned()]);
        assert!(check_events(&[]).is_err());
        assert!(check_events(&["webhook.test".into()]).is_err());
        assert!(check_events(&["message.*".into()]).is_err());
    }

    #[test]
    fn secrets_are_whsec_with_32_bytes() {
        let (text, hint) = new_whsec();
        let b64 = text.expose_secret().strip_prefix("whsec_").unwrap();
        assert_eq!(STANDARD.decode(b64).unwrap().len(), 32);
        assert!(text.expose_secret().ends_with(&hint));
        assert_eq!(masked_secret(&hint), format!("whsec_****{hint}"));
    }
}
