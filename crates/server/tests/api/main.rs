//! The HTTP suite: every test runs against a real server, once on SQLite and once on
//! PostgreSQL.

mod helpers;

mod auth;
mod bad_input;
mod conversations;
mod messages;
mod meta;
mod orgs;
