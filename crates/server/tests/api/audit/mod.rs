//! DATA-4, DATA-5, DATA-6: the audit log — every security event and mutation written with its
//! request context and never a secret; filters, cursor pages and access (server admins, org
//! owners and admins, nobody else; no route changes a row); `verify` over the API and the CLI
//! catching rows altered, inserted or removed directly in the database; retention pruning
//! behind a signed checkpoint; a user's own security events.

use crate::both_backends;
use crate::db::Db;
use crate::fixtures::Acme;
use crate::helpers::*;
use crate::keys::make_key;
use conclave_server::config::{Config, OnOff};
use reqwest::Method;
use serde_json::{json, Value};

mod integrity;
mod log;

use integrity::*;
use log::*;

both_backends!(
    security_events_and_mutations_are_logged_with_their_context,
    listings_filter_and_page,
    only_admins_and_org_owners_read_the_log,
    no_route_changes_the_log,
    verify_catches_rows_altered_inserted_or_removed,
    retention_prunes_and_the_rest_still_verifies,
    pruning_refuses_a_backdated_row_and_raises_the_alarm,
    users_see_the_security_events_about_their_account,
);

/// The app (rate limits off; the retention job every second of its clock) and its configuration.
async fn app_and_config(app: TestApp) -> (TestApp, Config) {
    spawn_app_and_config(app.backend, |c| {
        c.rate_limits = OnOff::Off;
        c.retention.interval_secs = 1;
    })
    .await
}

/// What the audit tests add to raw database access.
impl Db {
    /// An expression for a fresh random id in this database.
    fn new_id(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "randomblob(16)",
            Self::Pg(_) => "gen_random_uuid()",
        }
    }
}

async fn audit(app: &TestApp, query: &str) -> Vec<Value> {
    app.items(&format!("/api/v1/admin/audit{query}"), ADMIN_TOKEN)
        .await
}

async fn verify(app: &TestApp, query: &str) -> Value {
    app.get(&format!("/api/v1/admin/audit/verify{query}"), ADMIN_TOKEN)
        .await
        .expect(200)
        .body
}

fn events(rows: &[Value]) -> Vec<&str> {
    rows.iter().map(|r| r["event"].as_str().unwrap()).collect()
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}
