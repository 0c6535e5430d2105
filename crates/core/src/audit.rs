//! The tamper-evident audit log (DATA-4).
//!
//! Services describe what happened as an [`AuditEntry`]; the store appends it inside the same
//! transaction as the change it records, so there is never a change without its row nor a row
//! without its change. Rows form chains — one per org and one for the server — and each row is
//! numbered (`seq`) and carries `HMAC-SHA256(audit key, previous row's hash ‖ canonical row)`.
//! Someone with write access to the database but without the master key can neither alter,
//! insert nor remove a row without [`ChainVerifier`] noticing: they cannot recompute the MACs.
//! A chain head (`seq`, `hash`) is also kept in its own table and logged, signed, by the
//! retention job, so a truncated tail shows against a head recorded elsewhere.
//!
//! Pruning (DATA-5) deletes a chain's oldest rows and leaves a [`Checkpoint`]: the last pruned
//! row's `seq` and hash, signed with the audit key, from which verification of the rest starts.
//!
//! Entries never hold message content or secrets: only ids, names of events and small details.

use crate::ids::{OrgId, UserId};
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use serde::Serialize;
use sha2::Sha256;
use std::fmt;
use std::sync::Arc;
use uuid::Uuid;

/// The chain of events that belong to no org.
pub const SERVER_CHAIN: &str = "server";

/// The hash a chain's first row links to.
pub const GENESIS: [u8; 32] = [0; 32];

/// The HMAC key of the audit chains, derived from the master key.
#[derive(Clone)]
pub struct AuditKey(Arc<SecretBox<[u8; 32]>>);

impl AuditKey {
    #[must_use]
    pub fn new(key: SecretBox<[u8; 32]>) -> Self {
        Self(Arc::new(key))
    }

    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self::new(SecretBox::new(Box::new(bytes)))
    }

    fn mac(&self, domain: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(domain);
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// The hash of a row: MAC over the previous row's hash and the row's canonical form.
    #[must_use]
    pub fn link(&self, prev: &[u8], canonical: &[u8]) -> [u8; 32] {
        self.mac(b"conclave-audit-row-v1", &[prev, canonical])
    }

    /// The signature of a pruning checkpoint.
    #[must_use]
    pub fn sign_checkpoint(&self, chain: &str, seq: i64, hash: &[u8]) -> [u8; 32] {
        self.mac(
            b"conclave-audit-checkpoint-v1",
            &[chain.as_bytes(), &seq.to_be_bytes(), hash],
        )
    }

    /// The signature of a chain head, as the server logs it.
    #[must_use]
    pub fn sign_head(&self, chain: &str, seq: i64, hash: &[u8]) -> [u8; 32] {
        self.mac(
            b"conclave-audit-head-v1",
            &[chain.as_bytes(), &seq.to_be_bytes(), hash],
        )
    }

    /// Constant-time check of a signature made by `sign_checkpoint`.
    #[must_use]
    pub fn checkpoint_valid(&self, cp: &Checkpoint) -> bool {
        bytes_equal(
            &self.sign_checkpoint(&cp.chain, cp.seq, &cp.hash),
            &cp.signature,
        )
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(<redacted>)")
    }
}

pub use crate::types::{ActorType, Outcome};

/// Who did it: the user, bot or key, and the server admin behind an impersonation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditActor {
    pub id: Option<Uuid>,
    pub kind: ActorType,
    pub impersonator: Option<UserId>,
}

impl AuditActor {
    /// An actor with no id of its own.
    const fn nobody(kind: ActorType) -> Self {
        Self {
            id: None,
            kind,
            impersonator: None,
        }
    }

    #[must_use]
    pub const fn system() -> Self {
        Self::nobody(ActorType::System)
    }

    #[must_use]
    pub const fn management() -> Self {
        Self::nobody(ActorType::Management)
    }

    #[must_use]
    pub const fn anonymous() -> Self {
        Self::nobody(ActorType::Anonymous)
    }

    #[must_use]
    pub fn user(id: UserId) -> Self {
        Self {
            id: Some(id.0),
            kind: ActorType::User,
            impersonator: None,
        }
    }
}

/// What a settings change made of each setting it touched, for its audit row's detail
/// (DATA-4): `{field: {"from", "to"}}` — values only, never secrets.
#[derive(Debug, Default)]
pub struct SettingChanges(serde_json::Map<String, serde_json::Value>);

impl SettingChanges {
    /// Records that `field` went from `from` to `to`.
    pub fn record(&mut self, field: &str, from: impl Serialize, to: impl Serialize) {
        self.0.insert(
            field.to_owned(),
            serde_json::json!({ "from": from, "to": to }),
        );
    }

    /// The detail's value.
    #[must_use]
    pub fn into_value(self) -> serde_json::Value {
        serde_json::Value::Object(self.0)
    }
}

/// One audited event, before it is chained.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub event: String,
    pub actor: AuditActor,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub org: Option<OrgId>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub outcome: Outcome,
    /// A small JSON object of non-secret details (roles, names of changed settings, counts).
    pub detail: Option<serde_json::Value>,
}

impl AuditEntry {
    /// A successful event by `actor` at `at`; set the rest with the builder methods.
    #[must_use]
    pub fn new(event: &str, actor: AuditActor, at: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            at,
            event: event.to_owned(),
            actor,
            resource_type: None,
            resource_id: None,
            org: None,
            ip: None,
            user_agent: None,
            request_id: None,
            outcome: Outcome::Success,
            detail: None,
        }
    }

    #[must_use]
    pub fn resource(mut self, kind: &str, id: impl ToString) -> Self {
        self.resource_type = Some(kind.to_owned());
        self.resource_id = Some(id.to_string());
        self
    }

    #[must_use]
    pub const fn org(mut self, org: OrgId) -> Self {
        self.org = Some(org);
        self
    }

    #[must_use]
    pub const fn failed(mut self) -> Self {
        self.outcome = Outcome::Failure;
        self
    }

    /// A refused attempt (AUTH-12): the caller was not allowed to do it.
    #[must_use]
    pub const fn denied(mut self) -> Self {
        self.outcome = Outcome::Denied;
        self
    }

    #[must_use]
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// The chain the entry belongs to: its org's, or the server's.
    #[must_use]
    pub fn chain(&self) -> String {
        chain_of(self.org)
    }

    /// The detail as stored (compact JSON text), if any.
    #[must_use]
    pub fn detail_text(&self) -> Option<String> {
        self.detail.as_ref().map(ToString::to_string)
    }
}

/// The chain name of an org (or of the server for `None`).
#[must_use]
pub fn chain_of(org: Option<OrgId>) -> String {
    org.map_or_else(|| SERVER_CHAIN.to_owned(), |o| o.0.to_string())
}

/// A stored audit row.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub chain: String,
    pub seq: i64,
    pub entry: AuditEntry,
    /// The detail exactly as stored (the MAC covers this text).
    pub detail_text: Option<String>,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// The canonical form of a row that its MAC covers: every field in a fixed order, as a JSON
/// array of strings and nulls (times in RFC 3339 UTC with microseconds).
#[must_use]
pub fn canonical(chain: &str, seq: i64, e: &AuditEntry, detail_text: Option<&str>) -> Vec<u8> {
    let s = |v: Option<String>| v.map_or(serde_json::Value::Null, serde_json::Value::String);
    let fields = serde_json::Value::Array(vec![
        chain.into(),
        seq.into(),
        e.id.to_string().into(),
        e.at.to_rfc3339_opts(SecondsFormat::Micros, true).into(),
        e.event.clone().into(),
        s(e.actor.id.map(|u| u.to_string())),
        e.actor.kind.as_str().into(),
        s(e.actor.impersonator.map(|u| u.0.to_string())),
        s(e.resource_type.clone()),
        s(e.resource_id.clone()),
        s(e.org.map(|o| o.0.to_string())),
        s(e.ip.clone()),
        s(e.user_agent.clone()),
        s(e.request_id.clone()),
        e.outcome.as_str().into(),
        s(detail_text.map(str::to_owned)),
    ]);
    fields.to_string().into_bytes()
}

/// A chain's newest row, as kept in the heads table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub chain: String,
    pub seq: i64,
    pub hash: Vec<u8>,
}

/// Where a pruned chain continues: the last pruned row's `seq` and hash, signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub chain: String,
    pub seq: i64,
    pub hash: Vec<u8>,
    pub signature: Vec<u8>,
    pub at: DateTime<Utc>,
}

/// Which rows a listing returns.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub event: Option<String>,
    pub actor: Option<Uuid>,
    pub org: Option<OrgId>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only events about this resource (type, id).
    pub resource: Option<(String, String)>,
    /// Only these events.
    pub events: Option<Vec<String>>,
}

/// What is wrong with a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// A row's MAC does not match its content: altered, or inserted without the key.
    Altered,
    /// A row does not link to the one before it.
    BrokenLink,
    /// Numbers are missing before this row: rows were removed.
    Gap,
    /// The checkpoint the chain starts from is not signed by the audit key.
    BadCheckpoint,
    /// The newest row is not the recorded head: the tail was removed or rows were added.
    HeadMismatch,
    /// The head the caller expected is not in the chain.
    ExpectedHeadMissing,
}

/// What a pruning run did to one chain (DATA-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneOutcome {
    /// This many rows went (0: nothing was old enough, or another node pruned first).
    Pruned(u64),
    /// The rows due to go did not verify against the chain: nothing was removed.
    Refused {
        first_bad: Option<Uuid>,
        first_bad_seq: Option<i64>,
        problem: Problem,
    },
}

/// The health alert a refused pruning raises, and its status.
pub const AUDIT_ALERT: &str = "audit";
pub const CHAIN_MISMATCH: &str = "chain_mismatch";

/// The result of verifying one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    pub chain: String,
    pub ok: bool,
    pub checked: u64,
    /// The first row found bad (its id), if a row can be named.
    pub first_bad: Option<Uuid>,
    pub first_bad_seq: Option<i64>,
    pub problem: Option<Problem>,
    /// The newest row's `seq` and hash (hex) as verified.
    pub head_seq: i64,
    pub head_hash: String,
    /// Whether the head the caller expected (`--expect-head`) is a row of this chain.
    #[serde(skip)]
    pub expected_found: bool,
}

/// Checks a chain row by row, in `seq` order.
pub struct ChainVerifier<'k> {
    key: &'k AuditKey,
    chain: String,
    expected_seq: i64,
    prev: Vec<u8>,
    checked: u64,
    bad: Option<(Option<Uuid>, Option<i64>, Problem)>,
    seen_expected: bool,
    expect: Option<Vec<u8>>,
}

impl<'k> ChainVerifier<'k> {
    /// Starts at the chain's checkpoint (after pruning) or at its genesis.
    #[must_use]
    pub fn new(key: &'k AuditKey, chain: &str, checkpoint: Option<&Checkpoint>) -> Self {
        let mut v = Self {
            key,
            chain: chain.to_owned(),
            expected_seq: 1,
            prev: GENESIS.to_vec(),
            checked: 0,
            bad: None,
            seen_expected: false,
            expect: None,
        };
        if let Some(cp) = checkpoint {
            if cp.chain == chain && key.checkpoint_valid(cp) {
                v.expected_seq = cp.seq + 1;
                v.prev.clone_from(&cp.hash);
            } else {
                v.bad = Some((None, None, Problem::BadCheckpoint));
            }
        }
        v
    }

    /// Also requires that a row (or the checkpoint) with this hash is part of the chain.
    #[must_use]
    pub fn expecting_head(mut self, hash: Vec<u8>) -> Self {
        if hash == self.prev {
            self.seen_expected = true;
        }
        self.expect = Some(hash);
        self
    }

    /// Whether a problem was found already (the rest need not be read).
    #[must_use]
    pub const fn failed(&self) -> bool {
        self.bad.is_some()
    }

    /// The `seq` the next row must have.
    #[must_use]
    pub const fn next_seq(&self) -> i64 {
        self.expected_seq
    }

    pub fn feed(&mut self, row: &AuditRow) {
        if self.bad.is_some() {
            return;
        }
        let problem = if row.seq != self.expected_seq {
            Some(Problem::Gap)
        } else if !bytes_equal(&row.prev_hash, &self.prev) {
            Some(Problem::BrokenLink)
        } else {
            let text = canonical(&self.chain, row.seq, &row.entry, row.detail_text.as_deref());
            let mac = self.key.link(&self.prev, &text);
            (!bytes_equal(&mac, &row.hash)).then_some(Problem::Altered)
        };
        if let Some(p) = problem {
            self.bad = Some((Some(row.entry.id), Some(row.seq), p));
            return;
        }
        self.checked += 1;
        self.expected_seq = row.seq + 1;
        self.prev.clone_from(&row.hash);
        if self.expect.as_deref() == Some(row.hash.as_slice()) {
            self.seen_expected = true;
        }
    }

    /// Ends the walk, comparing the last row with the recorded head.
    #[must_use]
    pub fn finish(self, head: Option<&ChainHead>) -> ChainReport {
        let last_seq = self.expected_seq - 1;
        let mut bad = self.bad;
        if bad.is_none() {
            let head_ok = match head {
                Some(h) => h.seq == last_seq && bytes_equal(&h.hash, &self.prev),
                None => self.checked == 0,
            };
            if !head_ok {
                bad = Some((None, None, Problem::HeadMismatch));
            }
        }
        ChainReport {
            chain: self.chain,
            ok: bad.is_none(),
            checked: self.checked,
            first_bad: bad.and_then(|b| b.0),
            first_bad_seq: bad.and_then(|b| b.1),
            problem: bad.map(|b| b.2),
            head_seq: last_seq,
            head_hash: hex(&self.prev),
            expected_found: self.seen_expected,
        }
    }
}

/// Constant-time equality of two byte strings (lengths are not secret).
fn bytes_equal(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Lower-case hex.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Parses lower- or upper-case hex.
#[must_use]
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AuditKey {
        AuditKey::new(SecretBox::new(Box::new([9; 32])))
    }

    fn chain(key: &AuditKey, n: i64) -> Vec<AuditRow> {
        let mut prev = GENESIS.to_vec();
        (1..=n)
            .map(|seq| {
                let entry = AuditEntry::new(
                    "test.event",
                    AuditActor::system(),
                    crate::clock::Clock::now(&crate::clock::SystemClock),
                )
                .resource("user", seq);
                let hash = key
                    .link(&prev, &canonical("server", seq, &entry, None))
                    .to_vec();
                let row = AuditRow {
                    chain: "server".into(),
                    seq,
                    entry,
                    detail_text: None,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                row
            })
            .collect()
    }

    /// Feeds `rows` to `v` and finishes it against the head the store would report when `head`
    /// is the newest row.
    fn run(mut v: ChainVerifier<'_>, rows: &[AuditRow], head: Option<&AuditRow>) -> ChainReport {
        for r in rows {
            v.feed(r);
        }
        let head = head.map(|r| ChainHead {
            chain: r.chain.clone(),
            seq: r.seq,
            hash: r.hash.clone(),
        });
        v.finish(head.as_ref())
    }

    fn verify(key: &AuditKey, rows: &[AuditRow], cp: Option<&Checkpoint>) -> ChainReport {
        run(ChainVerifier::new(key, "server", cp), rows, rows.last())
    }

    #[test]
    fn an_intact_chain_verifies_and_each_tampering_is_caught() {
        let k = key();
        let rows = chain(&k, 5);
        assert!(verify(&k, &rows, None).ok);

        let mut altered = rows.clone();
        altered[2].entry.event = "other".into();
        let r = verify(&k, &altered, None);
        assert_eq!(r.problem, Some(Problem::Altered));
        assert_eq!(r.first_bad, Some(rows[2].entry.id));

        let mut removed = rows.clone();
        removed.remove(1);
        let r = verify(&k, &removed, None);
        assert_eq!(r.problem, Some(Problem::Gap));
        assert_eq!(r.first_bad, Some(rows[2].entry.id));

        // A row made with another key cannot be slipped in.
        let other = AuditKey::new(SecretBox::new(Box::new([1; 32])));
        let forged = chain(&other, 5);
        let mut inserted = rows.clone();
        inserted[3] = forged[3].clone();
        assert!(!verify(&k, &inserted, None).ok);
    }

    #[test]
    fn the_head_catches_a_truncated_tail() {
        let k = key();
        let rows = chain(&k, 4);
        let fresh = || ChainVerifier::new(&k, "server", None);
        let report = run(fresh(), &rows[..3], Some(&rows[3]));
        assert_eq!(report.problem, Some(Problem::HeadMismatch));

        let expecting_last = fresh().expecting_head(rows[3].hash.clone());
        let report = run(expecting_last, &rows[..3], Some(&rows[2]));
        assert!(report.ok && !report.expected_found);
        let expecting_second = fresh().expecting_head(rows[1].hash.clone());
        assert!(run(expecting_second, &rows, Some(&rows[3])).expected_found);
    }

    #[test]
    fn a_checkpoint_anchors_a_pruned_chain_only_when_signed() {
        let k = key();
        let rows = chain(&k, 6);
        let cp = Checkpoint {
            chain: "server".into(),
            seq: 3,
            hash: rows[2].hash.clone(),
            signature: k.sign_checkpoint("server", 3, &rows[2].hash).to_vec(),
            at: crate::clock::Clock::now(&crate::clock::SystemClock),
        };
        let r = verify(&k, &rows[3..], Some(&cp));
        assert!(r.ok, "{r:?}");
        assert_eq!(r.checked, 3);
        let mut forged = cp.clone();
        forged.seq = 2;
        assert_eq!(
            verify(&k, &rows[3..], Some(&forged)).problem,
            Some(Problem::BadCheckpoint)
        );
        // Pruned to nothing: the checkpoint alone, with the head at it.
        let v = ChainVerifier::new(&k, "server", Some(&cp));
        assert!(run(v, &[], Some(&rows[2])).ok);
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(
            hex(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]),
            "0123456789abcdef"
        );
        assert_eq!(hex(&[]), "");
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&all)), Some(all));
        assert_eq!(unhex(&hex(&[0, 255, 16])), Some(vec![0, 255, 16]));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("abc"), None);
    }
}
