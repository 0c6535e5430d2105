//! Requests the server itself makes to other hosts (HOOK-3). Everything that fetches a URL a
//! user or an admin supplied — webhook deliveries, and later OIDC discovery, JWKS, moderation
//! and model endpoints — goes through `OutboundGuard`, never through a client of its own.
//! `address` decides which IP addresses are reachable; `ssrf` owns URL rules, the single
//! lookup, redirects and the size and time caps.

pub mod address;
pub mod ssrf;

pub use address::AddressClass;
pub use ssrf::{
    Fetched, Limits, Lookup, OutboundError, OutboundGuard, OutboundPolicy, OutboundRequest,
    Refusal, StreamingResponse, SystemLookup,
};

#[cfg(test)]
mod tests;
