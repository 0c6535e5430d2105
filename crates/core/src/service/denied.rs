//! Refused attempts on security-sensitive operations, in the audit log (AUTH-12): what an
//! impersonated session may not do, scope refusals of bots and keys, admin routes for
//! non-admins. Each becomes a row with outcome `denied` — but at most [`DENIED_ROWS_PER_MINUTE`]
//! per actor (the user or credential, and the impersonating admin) per minute on each node, so a
//! flood of refused requests cannot flood the log. Further refusals in that minute are still
//! refused, only not written; the first row of the next minute says how many were left out.

use super::{Actor, Services};
use crate::ids::OrgId;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::Mutex;
use uuid::Uuid;

/// How many denied rows one actor writes per minute at most (on one node).
pub const DENIED_ROWS_PER_MINUTE: u32 = 10;

/// How many actors the counter remembers before it forgets the oldest windows.
const MAX_TRACKED: usize = 10_000;

/// Who is counted: the acting id and the impersonator, if any.
type ActorKey = (Option<Uuid>, Option<Uuid>);

/// One actor's minute: when it started, rows written and refusals left out in it.
type Window = (DateTime<Utc>, u32, u64);

/// Per actor, its current minute.
#[derive(Default)]
pub(super) struct DeniedCounter(Mutex<HashMap<ActorKey, Window>>);

impl DeniedCounter {
    /// Whether a row may be written now for `key`, and how many refusals went unwritten in
    /// the minute before (to note in the row). One atomic step under the lock.
    fn admit(&self, key: ActorKey, now: DateTime<Utc>) -> Option<u64> {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
            map.retain(|_, (start, ..)| now - *start < Duration::minutes(1));
        }
        let slot = map.entry(key).or_insert((now, 0, 0));
        let mut skipped_before = 0;
        if now - slot.0 >= Duration::minutes(1) {
            skipped_before = slot.2;
            *slot = (now, 0, 0);
        }
        if slot.1 < DENIED_ROWS_PER_MINUTE {
            slot.1 += 1;
            Some(skipped_before)
        } else {
            slot.2 += 1;
            None
        }
    }
}

impl Services {
    /// Records that `actor` was refused `event` (outcome `denied`), within the per-actor
    /// budget, in `org`'s chain when the attempt was on an org (else the server's). Writing the row never changes the answer: a failure to write is logged.
    pub async fn audit_denied(
        &self,
        actor: &Actor,
        event: &str,
        reason: &str,
        org: Option<OrgId>,
        resource: Option<(&str, String)>,
    ) {
        self.record_denied(self.audit(actor, event), reason, org, resource)
            .await;
    }

    /// [`Self::audit_denied`] for a refusal whose row is `entry` (its event and actor set: an
    /// admin's, a key's before it is an actor): marked denied, with `reason`, within the actor's
    /// budget.
    pub(super) async fn record_denied(
        &self,
        entry: crate::audit::AuditEntry,
        reason: &str,
        org: Option<OrgId>,
        resource: Option<(&str, String)>,
    ) {
        let who = &entry.actor;
        let key = (who.id, who.impersonator.map(|u| u.0));
        let Some(skipped) = self.denied.admit(key, self.clock.now()) else {
            return;
        };
        let event = entry.event.clone();
        let mut entry = entry.denied();
        if let Some(org) = org {
            entry = entry.org(org);
        }
        if let Some((kind, id)) = resource {
            entry = entry.resource(kind, id);
        }
        entry = entry.detail(serde_json::json!({
            "reason": reason,
            "unrecorded_before": skipped,
        }));
        if let Err(e) = self.store.append_audit(&[entry]).await {
            tracing::warn!(error = %e, event = %event, "could not record a denied attempt");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn at_most_n_rows_per_actor_per_minute() {
        let c = DeniedCounter::default();
        let t0 = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let a = (Some(Uuid::nil()), None);
        let b = (Some(Uuid::max()), None);
        for _ in 0..DENIED_ROWS_PER_MINUTE {
            assert_eq!(c.admit(a, t0), Some(0));
        }
        assert_eq!(c.admit(a, t0), None);
        assert_eq!(c.admit(a, t0 + Duration::seconds(59)), None);
        assert_eq!(c.admit(b, t0), Some(0), "another actor has its own budget");
        assert_eq!(c.admit(a, t0 + Duration::seconds(60)), Some(2));
    }
}
