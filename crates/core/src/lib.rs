//! Conclave's domain: identifiers and validated values, the permission policy, the `Store`
//! trait every backend implements, credentials and the services that REST and the gateway share.
//! Nothing here knows about HTTP, SQL or sockets.

pub mod agent;
pub mod audit;
pub mod cache;
pub mod clock;
pub mod credential;
pub mod error;
pub mod event;
pub mod files;
pub mod guards;
pub mod ids;
pub mod keyring;
pub mod keys;
pub mod mfa;
pub mod model;
pub mod oauth;
pub mod opcodes;
pub mod password;
pub mod policy;
pub mod sanitize;
pub mod search;
pub mod search_cursor;
pub mod secretbox;
pub mod service;
pub mod slots;
pub mod store;
pub mod token;
pub mod totp;
pub mod types;
pub mod widget;

pub use clock::{Clock, ManualClock, SystemClock, Ticker};
pub use error::ServiceError;
pub use ids::*;
