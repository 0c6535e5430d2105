//! `conclave keys list|rotate|retire` (DATA-3): the secrets key ring, operated from the command
//! line with the same configuration as `serve` (database URL and master key). Safe while
//! servers run: they read the ring from the database (see `conclave_core::keyring`).
//!
//! Output names keys by id with their dates, state and use — never key material, wrapped or not.

use crate::config::Config;
use crate::startup::{offline_services, StartError};
use chrono::{DateTime, Utc};
use conclave_core::keyring::{KeyInfo, KeyRingError};
use std::fmt::Write;

/// What to do with the key ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysCommand {
    /// Every key: id, created, retired, current, how many secrets it seals.
    List,
    /// Add a new current key and re-seal every stored secret under it.
    Rotate,
    /// Retire a key no secret uses any more (refused for the current key).
    Retire { id: i32 },
}

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    KeyRing(#[from] KeyRingError),
    #[error(
        "key {key_id} is current and {reencrypted} secret(s) were re-encrypted under it, but \
         {unreadable} stored secret(s) did not open (tampered, or sealed with a retired key) and \
         keep their old key; the log names their rows"
    )]
    Unreadable {
        key_id: i32,
        reencrypted: u64,
        unreadable: u64,
    },
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The `keys list` table.
#[must_use]
pub fn format_keys(keys: &[KeyInfo]) -> String {
    let mut out = format!(
        "{:<4} {:<23} {:<23} {:<7} {}\n",
        "ID", "CREATED", "RETIRED", "CURRENT", "SECRETS"
    );
    for k in keys {
        let _ = writeln!(
            out,
            "{:<4} {:<23} {:<23} {:<7} {}",
            k.id,
            when(k.created_at),
            k.retired_at.map_or_else(|| "-".to_owned(), when),
            if k.current { "yes" } else { "no" },
            k.secrets
        );
    }
    out
}

/// Runs a `conclave keys` command against the configured database at `now`; answers what to
/// print. Refuses what `serve` refuses (CORE-3), and never generates a master key.
pub async fn run_keys_command(
    config: &Config,
    command: KeysCommand,
    now: DateTime<Utc>,
) -> Result<String, KeysError> {
    // The same checks and opening as every command-line tool: never a generated master key.
    let services = offline_services(config).await?;
    match command {
        KeysCommand::List => Ok(format_keys(&services.list_secret_keys().await?)),
        KeysCommand::Rotate => {
            let done = services.rotate_secret_keys(now).await?;
            if done.unreadable > 0 {
                return Err(KeysError::Unreadable {
                    key_id: done.key_id,
                    reencrypted: done.reencrypted,
                    unreadable: done.unreadable,
                });
            }
            let mut out = format!(
                "key {} is current; re-encrypted {} secret(s) under it",
                done.key_id, done.reencrypted
            );
            if done.changed_meanwhile > 0 {
                let _ = write!(
                    out,
                    "; {} changed by their owner meanwhile and were sealed with the current key \
                     by the server that saved them",
                    done.changed_meanwhile
                );
            }
            out.push('\n');
            Ok(out)
        }
        KeysCommand::Retire { id } => {
            services.retire_secret_key(id, now).await?;
            Ok(format!(
                "key {id} is retired: nothing opens with it any more\n"
            ))
        }
    }
}
