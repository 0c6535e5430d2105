//! Outgoing webhooks (HOOK-1, HOOK-2). So far only how a delivery is signed (`signing`);
//! endpoints, the delivery queue and the routes are later work. Deliveries go out through
//! `crate::outbound::OutboundGuard`.

pub mod signing;

pub use signing::{signature_headers, SigningError, WebhookSecret};
