//! The Conclave server: configuration, startup, the REST surface, and (later) the gateway,
//! fan-out and background jobs. `main` only loads config, builds `Application` and runs it.

pub mod agent_runner;
pub mod agents;
pub mod config;
pub mod fanout;
pub mod files;
pub mod gateway;
pub mod headers;
pub mod http;
pub mod keyring;
pub mod moderation;
pub mod outbound;
pub mod ratelimit;
pub mod sso;
pub mod startup;
pub mod state;
pub mod webhooks;
pub mod widget_streams;

pub use startup::Application;
