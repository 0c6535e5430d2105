//! Runs the registered checks as a `libtest-mimic` test binary: one trial per check, each on a
//! fresh database from the backend's `fresh` function, thrown away afterwards even when the
//! check fails.

use crate::{assert_every_check_is_registered, checks, Check};
use conclave_core::audit::AuditKey;
use conclave_core::store::Store;
use libtest_mimic::{Arguments, Failed, Trial};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The audit key the conformance stores chain with.
#[must_use]
pub fn test_audit_key() -> AuditKey {
    AuditKey::from_bytes([42; 32])
}

/// A store on a fresh database, and the work that throws the database away afterwards.
pub struct TestDb {
    pub store: Arc<dyn Store>,
    pub cleanup: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// The `main` of a backend's conformance test binary (`harness = false`): runs every
/// registered check, each on the database `fresh` makes (`None` skips the check, e.g. when no
/// server is reachable — `fresh` says so on stderr), and exits with libtest's status.
/// Takes the usual test arguments (a name filter, `--list`, `--test-threads` …).
pub fn run<F, Fut>(fresh: F) -> !
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Option<TestDb>> + Send + 'static,
{
    let args = Arguments::from_args();
    let mut trials = vec![Trial::test(
        "conformance::every_check_is_registered",
        || {
            assert_every_check_is_registered();
            Ok(())
        },
    )];
    for check in checks() {
        let fresh = fresh.clone();
        trials.push(Trial::test(check.trial_name(), move || {
            run_check(check, fresh)
        }));
    }
    libtest_mimic::run(&args, trials).exit()
}

fn run_check<F, Fut>(check: &'static Check, fresh: F) -> Result<(), Failed>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<TestDb>> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("starting a runtime: {e}"))?;
    runtime.block_on(async {
        let Some(TestDb { store, cleanup }) = fresh().await else {
            return Ok(());
        };
        let outcome = tokio::spawn((check.run)(store)).await;
        cleanup.await;
        outcome.map_err(|e| match e.try_into_panic() {
            Ok(panic) => Failed::from(panic_text(&panic)),
            Err(e) => Failed::from(format!("check {} did not finish: {e}", check.name)),
        })
    })
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "the check panicked".to_owned())
}
