//! Outgoing webhooks (HOOK-1, HOOK-2): how a delivery is signed (`signing`) and the worker that
//! queues events and delivers them (`delivery`). The routes are `http::webhooks`; endpoints and
//! the queue's rules are `conclave_core::service::webhooks`. Deliveries go out through
//! `crate::outbound::OutboundGuard`.

pub mod delivery;
pub mod signing;

pub use delivery::{DeliveryWorker, WebhookTap};
pub use signing::{signature_headers, SigningError, WebhookSecret};
