//! The HTTP suite: every test runs against a real server, once on SQLite and once on
//! PostgreSQL.
#![allow(
    clippy::disallowed_methods,
    reason = "test fixtures (CI, CONCLAVE_TEST_* service URLs) come from the environment"
)]

mod cases;
mod db;
mod fixtures;
mod helpers;
mod llm;
mod python;
mod ws;

mod agents;
mod audit;
mod auth;
mod bad_input;
mod bots;
mod bruteforce;
mod cache;
mod client_ip;
mod cluster;
mod conversations;
mod edge_input;
mod files;
mod gateway;
mod gateway_protocol;
mod group_commit;
mod guards;
mod identity;
mod impersonation;
mod invites;
mod keyring;
mod keys;
mod mcp;
mod messages;
mod meta;
mod mfa;
mod oauth;
mod org_2fa;
mod orgs;
mod password_reset;
mod permissions;
mod privacy;
mod provider;
mod ratelimit;
mod search;
mod sso;
mod streams;
mod tracing_span;
mod webhooks;
mod widget;
