//! The delivery worker (HOOK-2): takes committed events off this node's services, queues them
//! in the database (`Services::enqueue_webhook_event`), and sends what is due.
//!
//! Events reach the queue from the node that made the change only — [`WebhookTap`] sits in
//! that node's event sink, in front of the fan-out — so several nodes never queue one event
//! twice; the queue's unique (endpoint, event id) key makes a repeat a no-op besides. Every
//! node runs a worker on the server's `Clock`: at each tick it queues the events handed to it,
//! then claims due deliveries with a lease (only the oldest pending one per endpoint, so each
//! endpoint gets its events in order, from one node at a time) and sends them through the SSRF
//! guard, which checks the URL and the addresses it resolves to again, every time. A worker
//! that dies leaves its leases to run out; another node then takes the rows over.

use super::signing::{signature_headers, WebhookSecret};
use crate::fanout::FanOut;
use crate::outbound::{Limits, OutboundGuard, OutboundRequest};
use bytes::Bytes;
use conclave_core::event::{Event, EventSink};
use conclave_core::service::webhooks::{webhook_event_name, EndpointsSeen};
use conclave_core::service::Services;
use conclave_core::store::webhooks::WebhookDelivery;
use conclave_core::Ticker;
use http::{HeaderValue, StatusCode};
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often the worker looks for due deliveries.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long a claimed delivery stays this node's; longer than one attempt can take.
const LEASE: chrono::Duration = chrono::Duration::seconds(60);
/// Deliveries claimed (and sent concurrently) at once.
const BATCH: i64 = 64;
/// Events waiting to be queued; past this, events are dropped with an error log.
const TAP_CAPACITY: usize = 65_536;
/// One attempt: the whole exchange, and the most of the receiver's answer read.
const ATTEMPT_LIMITS: Limits = Limits {
    timeout: Duration::from_secs(10),
    max_response_bytes: 64 * 1024,
};

/// This node's event sink: every event a gateway needs goes to the fan-out, and those webhooks
/// carry are then handed to this node's worker (moved, not copied); a webhook-only one (a
/// member's) does not travel the fan-out.
pub struct WebhookTap {
    fanout: Arc<dyn FanOut>,
    /// Each event with a UUIDv7 taken as it is published: its place in every endpoint's order.
    queue: mpsc::Sender<(Event, uuid::Uuid)>,
}

impl EventSink for WebhookTap {
    fn publish(&self, event: Event) {
        if event.reaches_gateways() {
            self.fanout.publish(&event);
        }
        if webhook_event_name(event.kind).is_some()
            && event.hook_data().is_some()
            && self.queue.try_send((event, uuid::Uuid::now_v7())).is_err()
        {
            tracing::error!("webhook event queue full: an event was not queued for webhooks");
        }
    }
}

/// The worker of one node.
pub struct DeliveryWorker {
    ticker: Ticker,
    events: mpsc::Receiver<(Event, uuid::Uuid)>,
    guard: OutboundGuard,
    owner: String,
}

/// A tap in front of `fanout` and the worker it feeds, ticking on `ticker`.
#[must_use]
pub fn tap(
    fanout: Arc<dyn FanOut>,
    ticker: Ticker,
    guard: OutboundGuard,
    node: &str,
) -> (WebhookTap, DeliveryWorker) {
    let (queue, events) = mpsc::channel(TAP_CAPACITY);
    (
        WebhookTap { fanout, queue },
        DeliveryWorker {
            ticker,
            events,
            guard,
            owner: node.to_owned(),
        },
    )
}

impl DeliveryWorker {
    /// Runs until aborted.
    pub async fn run(mut self, services: Services) {
        loop {
            self.ticker.tick().await;
            self.turn(&services).await;
        }
    }

    /// Queues the events handed in, then sends due deliveries until none is left.
    async fn turn(&mut self, services: &Services) {
        loop {
            // Endpoints are read once per org for what is drained now, not once per event.
            let mut seen = EndpointsSeen::default();
            while let Ok((event, stamp)) = self.events.try_recv() {
                if let Err(e) = services
                    .enqueue_webhook_event(&event, stamp, &mut seen)
                    .await
                {
                    tracing::error!(error = %e, "queueing a webhook event failed");
                }
            }
            let batch = match services
                .claim_webhook_deliveries(&self.owner, LEASE, BATCH)
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "claiming webhook deliveries failed");
                    return;
                }
            };
            if batch.is_empty() {
                return;
            }
            let mut sends = tokio::task::JoinSet::new();
            for d in batch {
                let (services, guard, owner) =
                    (services.clone(), self.guard.clone(), self.owner.clone());
                sends.spawn(async move { attempt(&services, &guard, &owner, d).await });
            }
            while sends.join_next().await.is_some() {}
        }
    }
}

/// Sends one delivery and records the outcome.
async fn attempt(services: &Services, guard: &OutboundGuard, owner: &str, d: WebhookDelivery) {
    let (hook, secrets) = match services.webhook_target(d.webhook_id).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, delivery = %d.id, "loading a webhook for delivery failed");
            return;
        }
    };
    let secrets: Vec<WebhookSecret> = secrets
        .iter()
        .filter_map(|s| {
            let text = std::str::from_utf8(s.expose_secret()).ok()?;
            WebhookSecret::parse(text).ok()
        })
        .collect();
    let refs: Vec<&WebhookSecret> = secrets.iter().collect();
    let body = Bytes::from(d.payload.clone());
    let timestamp = services.clock.now().timestamp();
    let msg_id = format!("msg_{}", d.event_id.simple());
    let (status, error, latency) = match signature_headers(&refs, &msg_id, timestamp, &body) {
        Err(e) => (None, Some(format!("cannot sign: {e}")), 0),
        Ok(mut headers) => {
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            let mut req = OutboundRequest::post(hook.url.clone(), headers, body);
            req.limits = ATTEMPT_LIMITS;
            let started = Instant::now();
            let sent = guard.send(req).await;
            let latency = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
            match sent {
                Ok(f) if f.status.is_success() => (Some(f.status), None, latency),
                Ok(f) => (
                    Some(f.status),
                    Some(format!("answered {}", f.status)),
                    latency,
                ),
                Err(e) => (None, Some(e.to_string()), latency),
            }
        }
    };
    if let Some(e) = &error {
        tracing::info!(delivery = %d.id, webhook = %d.webhook_id, error = %e, "webhook attempt failed");
    }
    let code = status.map(|s: StatusCode| i32::from(s.as_u16()));
    if let Err(e) = services
        .finish_webhook_delivery(owner, &d, hook.org_id, code, error, latency)
        .await
    {
        tracing::error!(error = %e, delivery = %d.id, "recording a webhook attempt failed");
    }
}
