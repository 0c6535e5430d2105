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
//! `reader()`/`writer()` (`&sqlx::Pool<Db>`: plain reads; every write and transaction),
//! `audit_key()` and `writers()` (the group-commit writers of message sends, `batch`), and the
//! crate a `BEGIN_SENDS` statement that opens a batch's transaction and a `SEARCH`
//! ([`SearchSql`]) that says how its full-text index is asked.
//!
//! Every time is stored cut to microseconds (PostgreSQL's precision), so both backends return
//! the same instants; SQLite keeps them as RFC 3339 text in UTC, which sorts and compares in
//! time order.

mod agents;
mod audit;
mod batch;
mod conversations;
mod credentials;
mod files;
mod guards;
mod health;
mod invites;
mod keyring;
mod messages;
mod mfa;
mod oauth;
mod orgs;
mod privacy;
mod realtime;
mod retention;
mod roster;
mod rows;
mod search;
mod sessions;
mod sso;
mod teams;
mod throttle;
mod users;
mod webhooks;
mod widget;

pub(crate) use batch::Writers;
pub(crate) use search::SearchSql;

use super::{Backend, Db};
use async_trait::async_trait;
use audit::commit_audited;
use chrono::{DateTime, Utc};
use conclave_core::audit::AuditEntry;
use conclave_core::files::{
    FileInfo, FileName, FreedBlobs, QuotaRequest, Reservation, StoredFile, UploadLease,
};
use conclave_core::ids::*;
use conclave_core::model::*;
use conclave_core::store::*;
use conclave_core::types::*;
use conversations::promote_longest_standing;
use files::{
    claim_files, delete_with_files, hand_over_files, remove_files, with_attachments, REMOVED_FILE,
};
use orgs::remove_member_in;
use roster::{ORG_MEMBERS, PARTICIPANTS};
use rows::*;
use users::insert_user;

/// A connection of the backend, inside or outside a transaction.
type Conn = <Db as sqlx::Database>::Connection;
/// A result row of the backend.
type Row = <Db as sqlx::Database>::Row;

/// `clause` (a row-locking suffix such as `" FOR SHARE"`) on PostgreSQL, nothing on SQLite,
/// whose one writer already orders the transactions such a lock would.
fn postgres_only(clause: &'static str) -> &'static str {
    if <Db as sqlx::Database>::NAME == "PostgreSQL" {
        clause
    } else {
        ""
    }
}

/// The backend implements every area trait of this directory, so it is the whole [`Store`].
impl Store for Backend {}
