//! The SQL both stores share, in plain Rust. SQLite and PostgreSQL run the same statements
//! (runtime queries with `$n` placeholders, which SQLite accepts too); only the migrations and
//! the connection setup differ.
//!
//! This directory is not a crate: each backend compiles it once as its own private module,
//!
//! ```text
//! type Db = sqlx::Sqlite; // the backend's sqlx database
//! type Backend = SqliteStore; // the backend's store type
//! #[path = "../../store-sql/src/mod.rs"]
//! mod sql;
//! ```
//!
//! so every file here is ordinary code over one concrete database type — rustfmt formats it,
//! IDEs read it, and each file implements the `conclave_core::store` area traits of its name
//! directly (no forwarder, no macro bodies). `Backend` must offer
//! `reader()`/`writer()` (`&sqlx::Pool<Db>`: plain reads; every write and transaction) and
//! `audit_key()`.
//!
//! Every time is stored cut to microseconds (PostgreSQL's precision), so both backends return
//! the same instants; SQLite keeps them as RFC 3339 text in UTC, which sorts and compares in
//! time order.

mod audit;
mod conversations;
mod credentials;
mod health;
mod invites;
mod keyring;
mod messages;
mod mfa;
mod orgs;
mod privacy;
mod realtime;
mod retention;
mod rows;
mod sessions;
mod teams;
mod throttle;
mod users;

use super::{Backend, Db};
use async_trait::async_trait;
use audit::commit_audited;
use chrono::{DateTime, Utc};
use conclave_core::audit::AuditEntry;
use conclave_core::ids::*;
use conclave_core::model::*;
use conclave_core::store::*;
use conclave_core::types::*;
use conversations::promote_longest_standing;
use orgs::{insert_member, remove_member_in};
use rows::*;
use users::insert_user;

/// A connection of the backend, inside or outside a transaction.
type Conn = <Db as sqlx::Database>::Connection;
/// A result row of the backend.
type Row = <Db as sqlx::Database>::Row;
