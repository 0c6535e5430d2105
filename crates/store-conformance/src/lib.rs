//! The conformance suite every `conclave_core::store::Store` backend must pass, written once
//! against the traits and run by each backend's test binary on its own fresh databases.
//!
//! Checks register themselves: each one is followed by `check!(name);`, which submits it to an
//! [`inventory`] registry, and [`run`] turns every registered check into a [`libtest_mimic`]
//! trial. No list of checks is kept by hand. A check that is written but not registered cannot
//! slip by either: it is a private function nothing calls, which the workspace's
//! `clippy -D warnings` rejects as dead code, and the trial `conformance::every_check_is_registered`
//! (run by every backend binary, and the unit test of the same name here) compares the
//! registry against the check functions found in `src/checks/` and fails on any difference —
//! which also catches a linker that dropped a registration.

mod checks;
mod held;
mod runner;

pub use held::{a_failed_commit_answers_every_sender, DOOMED};

pub use runner::{run, test_audit_key, TestDb};

use conclave_core::store::Store;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What a check returns: the future that runs it on a store.
pub type CheckFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One registered check.
pub struct Check {
    /// The check function's name.
    pub name: &'static str,
    /// The module it is written in (`conclave_store_conformance::checks::users` …).
    pub module: &'static str,
    /// Runs it on a store on a fresh database; panics on a deviation.
    pub run: fn(Arc<dyn Store>) -> CheckFuture,
}

impl Check {
    /// The trial name: the store area and the check, `users::ping`.
    #[must_use]
    pub fn trial_name(&self) -> String {
        let area = self.module.rsplit("::").next().unwrap_or(self.module);
        format!("{area}::{}", self.name)
    }
}

inventory::collect!(Check);

/// Registers the check function `$name` (an `async fn(Arc<dyn Store>)` in scope).
#[macro_export]
#[doc(hidden)]
macro_rules! check {
    ($name:ident) => {
        ::inventory::submit! {
            $crate::Check {
                name: stringify!($name),
                module: module_path!(),
                run: |store| ::std::boxed::Box::pin($name(store)),
            }
        }
    };
}

/// A user who owns an org and a group conversation in it, on `store`: for the scenarios of a
/// backend's own tests (`(author, conversation)`).
pub(crate) async fn author_and_conversation(
    store: &dyn Store,
) -> (
    conclave_core::ids::UserId,
    conclave_core::ids::ConversationId,
) {
    let (owner, org) = checks::owned_org(store, "author", "org").await;
    let conv = checks::make_group(
        store,
        org.id,
        owner.id,
        &[],
        conclave_core::types::Visibility::ORG,
    )
    .await;
    (owner.id, conv.id)
}

/// A plain-text message by `author` in `conv`, as the checks send them.
#[must_use]
pub fn message(
    conv: conclave_core::ids::ConversationId,
    author: conclave_core::ids::UserId,
    content: &str,
) -> conclave_core::model::NewMessage {
    checks::new_message(conv, author, content)
}

/// Every registered check, by trial name.
#[must_use]
pub fn checks() -> Vec<&'static Check> {
    let mut all: Vec<&'static Check> = inventory::iter::<Check>.into_iter().collect();
    all.sort_by_key(|c| c.trial_name());
    all
}

/// The check functions written in `src/checks/` (found in the source text: every
/// `async fn name(store: Arc<dyn Store>)`), as trial names, sorted.
#[must_use]
pub fn written_checks() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/checks");
    let mut names = Vec::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {dir}: {e}"));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        let area = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if area == "mod" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a check file");
        for line in text.lines() {
            let Some(rest) = line.trim_start().strip_prefix("async fn ") else {
                continue;
            };
            if let Some((name, "store: Arc<dyn Store>) {")) = rest.split_once('(') {
                names.push(format!("{area}::{name}"));
            }
        }
    }
    names.sort();
    names
}

/// Fails unless the registry holds exactly the checks written in `src/checks/`.
pub fn assert_every_check_is_registered() {
    let registered: Vec<String> = checks().iter().map(|c| c.trial_name()).collect();
    let written = written_checks();
    assert!(!written.is_empty(), "no checks found in src/checks");
    assert_eq!(
        registered, written,
        "the registered checks differ from the check functions in src/checks: \
         a check without `check!(name);` after it, or a registration the linker dropped"
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_check_is_registered() {
        super::assert_every_check_is_registered();
    }
}
