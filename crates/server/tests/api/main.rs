//! The HTTP suite: every test runs against a real server, once on SQLite and once on
//! PostgreSQL.

mod helpers;
mod ws;

mod audit;
mod auth;
mod bad_input;
mod bots;
mod bruteforce;
mod client_ip;
mod cluster;
mod conversations;
mod gateway;
mod gateway_protocol;
mod impersonation;
mod invites;
mod keyring;
mod keys;
mod messages;
mod meta;
mod mfa;
mod org_2fa;
mod orgs;
mod permissions;
mod privacy;
mod ratelimit;
