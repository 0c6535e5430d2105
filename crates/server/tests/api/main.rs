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
mod impersonation;
mod keyring;
mod keys;
mod messages;
mod meta;
mod mfa;
mod orgs;
mod privacy;
mod ratelimit;
