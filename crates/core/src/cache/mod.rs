//! The in-memory cache of identities and conversation access (issue 13): the rows
//! `Services::identify` and `Services::access` read on every request — a credential's records
//! by token hash, a user's 2FA, org standings, conversation settings, participations, team
//! memberships — kept so that a warm request reads none of them. It holds data exactly as the
//! store returned it, never a decision: every check still runs on each request, on the copy.
//!
//! A copy is served only while all of these hold, so revocation stays immediate:
//! - **Nothing it depends on was invalidated since its load began.** Each entry depends on a
//!   few [`Cached`] scopes (its user, credential, conversation, org). Every control event
//!   ([`Control::stale`]) marks its scopes with a new generation — on the node that made the
//!   change synchronously, before the response (`Services::emit`), and on every node when the
//!   event arrives, before the hub applies it to sockets. An entry remembers the generation at
//!   which its load *began* ([`Ticket`]), so a load that raced an invalidation is never served.
//! - **It is younger than the TTL** ([`CacheSettings::ttl`]), on a monotonic clock and on the
//!   services' clock (so tests move it), which bounds staleness when an event is lost.
//! - **It fits**: each kind holds at most [`CacheSettings::max_entries`]; at the cap the stale
//!   entries go first, then an arbitrary quarter. The marks are pruned once older than the TTL
//!   (every entry they could void has expired); should they still outgrow the cap, everything
//!   is forgotten at once.

use crate::event::{Cached, Control};
use crate::ids::{ConversationId, OrgId, TeamId, UserId};
use crate::mfa::OrgStanding;
use crate::model::{ApiKey, Bot, Conversation, Session, User};
use crate::store::agents::Agent;
use crate::store::SecretSlot;
use crate::types::{ConversationKind, ConversationRole, Visibility};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a copy may be served and how many of each kind are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// The most a copy can lag the database when an invalidation is lost; zero turns the
    /// cache off.
    pub ttl: Duration,
    /// Entries of each kind (credentials, standings, participations, …) at most.
    pub max_entries: usize,
}

impl CacheSettings {
    pub const DEFAULT_TTL: Duration = Duration::from_secs(5);
    pub const DEFAULT_MAX_ENTRIES: usize = 50_000;
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            ttl: Self::DEFAULT_TTL,
            max_entries: Self::DEFAULT_MAX_ENTRIES,
        }
    }
}

/// A credential's records as its lookup by token hash found them, with its account.
#[derive(Debug, Clone)]
pub enum Identity {
    Session {
        session: Session,
        user: User,
    },
    ApiKey {
        key: ApiKey,
        slot: SecretSlot,
        user: User,
    },
    /// `member`: whether the bot still belongs to its org.
    Bot {
        bot: Bot,
        slot: SecretSlot,
        user: User,
        member: bool,
    },
}

/// What policy reads of a conversation: not its name or `last_seq`, which change without an
/// invalidation (every message moves `last_seq`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationFacts {
    pub id: ConversationId,
    pub org_id: OrgId,
    pub kind: ConversationKind,
    pub visibility: Visibility,
    pub archived: bool,
}

impl From<&Conversation> for ConversationFacts {
    fn from(c: &Conversation) -> Self {
        Self {
            id: c.id,
            org_id: c.org_id,
            kind: c.kind,
            visibility: c.visibility.clone(),
            archived: c.archived,
        }
    }
}

/// The scopes an entry depends on (at most four).
type Deps = [Option<Cached>; 4];

/// An entry that depends on `a` and `b`.
fn both(a: Cached, b: Cached) -> Deps {
    [Some(a), Some(b), None, None]
}

/// One kind of entry: its key, its value and what the value depends on.
pub trait Kind {
    type Key: Hash + Eq + Copy;
    type Value: Clone;
    fn deps(key: &Self::Key, value: &Self::Value) -> Deps;
    fn table(tables: &mut Tables) -> &mut Table<Self::Key, Self::Value>;
}

/// A credential by its keyed token hash (never the token).
pub struct Credentials;
/// Whether a user has 2FA on.
pub struct SecondFactor;
/// A user's standing in an org (`None`: no member).
pub struct Standings;
/// A conversation's settings.
pub struct Conversations;
/// A user's role in a conversation (`None`: no participant).
pub struct Participants;
/// The teams of an org a user is in.
pub struct Teams;
/// An org's AI agents (AGENT-2: which agents might answer a message of the org).
pub struct OrgAgents;
/// An org's enabled content guards, compiled (RATE-6); empty when it has none, so a send in
/// an org without guards reads nothing more.
pub struct Guards;

impl Kind for Credentials {
    type Key = [u8; 32];
    type Value = Identity;
    fn deps(_: &[u8; 32], value: &Identity) -> Deps {
        let credential = |id| Some(Cached::Credential(id));
        match value {
            Identity::Session { session, user } => {
                both(Cached::Credential(session.id), Cached::User(user.id))
            }
            Identity::ApiKey { key, user, .. } => [
                credential(key.secrets.current),
                key.secrets.previous.and_then(credential),
                Some(Cached::User(user.id)),
                Some(Cached::Org(key.org_id)),
            ],
            Identity::Bot { bot, user, .. } => [
                credential(bot.secrets.current),
                bot.secrets.previous.and_then(credential),
                Some(Cached::User(user.id)),
                Some(Cached::Org(bot.org_id)),
            ],
        }
    }
    fn table(tables: &mut Tables) -> &mut Table<[u8; 32], Identity> {
        &mut tables.credentials
    }
}

/// A [`Kind`] whose entries live in `Tables::$table`, depending on what `$deps` names.
macro_rules! kind {
    ($kind:ty, $table:ident: $key:ty => $value:ty, |$k:pat_param, $v:pat_param| $deps:expr) => {
        impl Kind for $kind {
            type Key = $key;
            type Value = $value;
            fn deps($k: &$key, $v: &$value) -> Deps {
                $deps
            }
            fn table(tables: &mut Tables) -> &mut Table<$key, $value> {
                &mut tables.$table
            }
        }
    };
}

kind!(SecondFactor, second_factor: UserId => bool, |user, _| {
    [Some(Cached::User(*user)), None, None, None]
});
kind!(Standings, standings: (OrgId, UserId) => Option<OrgStanding>, |(org, user), _| {
    both(Cached::Org(*org), Cached::User(*user))
});
kind!(Conversations, conversations: ConversationId => ConversationFacts, |id, facts| {
    both(Cached::Conversation(*id), Cached::Org(facts.org_id))
});
kind!(
    Participants,
    participants: (ConversationId, UserId) => Option<ConversationRole>,
    |(conv, user), _| both(Cached::Conversation(*conv), Cached::User(*user))
);
kind!(Teams, teams: (OrgId, UserId) => Vec<TeamId>, |(org, user), _| {
    both(Cached::Org(*org), Cached::User(*user))
});
kind!(OrgAgents, org_agents: OrgId => Vec<Agent>, |org, _| {
    [Some(Cached::Org(*org)), None, None, None]
});
kind!(Guards, guards: OrgId => std::sync::Arc<crate::guards::OrgGuards>, |org, _| {
    [Some(Cached::Org(*org)), None, None, None]
});

/// Taken before a load reads the store: the generation and the time it began.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    generation: u64,
    at: DateTime<Utc>,
    born: Instant,
}

struct Entry<V> {
    value: V,
    ticket: Ticket,
    deps: Deps,
}

/// The entries of one kind.
pub struct Table<K, V>(HashMap<K, Entry<V>>);

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

/// When a scope was last invalidated.
#[derive(Debug, Clone, Copy)]
struct Mark {
    generation: u64,
    born: Instant,
}

/// Marks are pruned once there are this many (those older than the TTL go).
const PRUNE_MARKS_AT: usize = 1024;

/// The entries, one table per kind.
#[derive(Default)]
pub struct Tables {
    credentials: Table<[u8; 32], Identity>,
    second_factor: Table<UserId, bool>,
    standings: Table<(OrgId, UserId), Option<OrgStanding>>,
    conversations: Table<ConversationId, ConversationFacts>,
    participants: Table<(ConversationId, UserId), Option<ConversationRole>>,
    teams: Table<(OrgId, UserId), Vec<TeamId>>,
    org_agents: Table<OrgId, Vec<Agent>>,
    guards: Table<OrgId, std::sync::Arc<crate::guards::OrgGuards>>,
}

impl Tables {
    fn clear(&mut self) {
        *self = Self::default();
    }

    fn len(&self) -> usize {
        self.credentials.0.len()
            + self.second_factor.0.len()
            + self.standings.0.len()
            + self.conversations.0.len()
            + self.participants.0.len()
            + self.teams.0.len()
            + self.org_agents.0.len()
            + self.guards.0.len()
    }
}

/// What entries are judged against: the generations and the invalidation marks.
#[derive(Default)]
struct Marks {
    /// The newest generation: every invalidation moves it on.
    generation: u64,
    /// Entries whose load began before this generation are void (a full flush).
    floor: u64,
    marks: HashMap<Cached, Mark>,
    /// The next prune happens at this many marks: twice what the last one left (at least
    /// [`PRUNE_MARKS_AT`]), so pruning costs O(1) per invalidation however busy the node.
    prune_at: usize,
}

impl Marks {
    /// Whether an entry loaded with `ticket`, depending on `deps`, may be served at `now`.
    fn fresh(
        &self,
        ttl: Duration,
        now: (DateTime<Utc>, Instant),
        ticket: &Ticket,
        deps: &Deps,
    ) -> bool {
        let (at, born) = now;
        let young = born.saturating_duration_since(ticket.born) < ttl
            && at >= ticket.at
            && (at - ticket.at).to_std().is_ok_and(|age| age < ttl);
        young
            && ticket.generation >= self.floor
            && deps.iter().flatten().all(|d| {
                self.marks
                    .get(d)
                    .is_none_or(|m| m.generation <= ticket.generation)
            })
    }
}

#[derive(Default)]
struct Inner {
    marks: Marks,
    tables: Tables,
}

/// The cache one node's services share.
pub struct Cache {
    settings: CacheSettings,
    inner: Mutex<Inner>,
}

impl Cache {
    #[must_use]
    pub fn new(settings: CacheSettings) -> Self {
        Self {
            settings,
            inner: Mutex::default(),
        }
    }

    #[must_use]
    pub fn settings(&self) -> CacheSettings {
        self.settings
    }

    fn on(&self) -> bool {
        !self.settings.ttl.is_zero()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Taken before reading the store for an entry to [`Self::put`].
    #[must_use]
    pub fn ticket(&self, now: DateTime<Utc>) -> Ticket {
        let generation = if self.on() {
            self.lock().marks.generation
        } else {
            0
        };
        Ticket {
            generation,
            at: now,
            born: Instant::now(),
        }
    }

    /// The copy under `key` if it may be served at `now` (one that may not is dropped).
    #[must_use]
    pub fn get<K: Kind>(&self, key: &K::Key, now: DateTime<Utc>) -> Option<K::Value> {
        if !self.on() {
            return None;
        }
        let instant = Instant::now();
        let mut inner = self.lock();
        let Inner { marks, tables } = &mut *inner;
        let table = &mut K::table(tables).0;
        let entry = table.get(key)?;
        if marks.fresh(
            self.settings.ttl,
            (now, instant),
            &entry.ticket,
            &entry.deps,
        ) {
            Some(entry.value.clone())
        } else {
            table.remove(key);
            None
        }
    }

    /// Keeps `value`, read from the store after `ticket` was taken; nothing when an
    /// invalidation of what it depends on came in meanwhile.
    pub fn put<K: Kind>(&self, ticket: Ticket, key: K::Key, value: K::Value) {
        if !self.on() {
            return;
        }
        let deps = K::deps(&key, &value);
        let now = (ticket.at, Instant::now());
        let ttl = self.settings.ttl;
        let cap = self.settings.max_entries.max(1);
        let mut inner = self.lock();
        let Inner { marks, tables } = &mut *inner;
        if !marks.fresh(ttl, (ticket.at, ticket.born), &ticket, &deps) {
            return;
        }
        let table = &mut K::table(tables).0;
        if table.len() >= cap && !table.contains_key(&key) {
            table.retain(|_, e| marks.fresh(ttl, now, &e.ticket, &e.deps));
            if table.len() >= cap {
                let mut surplus = table.len() - cap * 3 / 4;
                table.retain(|_, _| {
                    let keep = surplus == 0;
                    surplus = surplus.saturating_sub(1);
                    keep
                });
            }
        }
        table.insert(
            key,
            Entry {
                value,
                ticket,
                deps,
            },
        );
    }

    /// Changes the copy under `key` in place (what this node wrote itself, such as a
    /// credential's last use), keeping its ticket.
    pub fn update<K: Kind>(&self, key: &K::Key, change: impl FnOnce(&mut K::Value)) {
        if !self.on() {
            return;
        }
        if let Some(entry) = K::table(&mut self.lock().tables).0.get_mut(key) {
            change(&mut entry.value);
        }
    }

    /// Drops the copy under `key`.
    pub fn remove<K: Kind>(&self, key: &K::Key) {
        if self.on() {
            K::table(&mut self.lock().tables).0.remove(key);
        }
    }

    /// Applies a control event: what it revokes or changes is no longer served.
    pub fn invalidate(&self, control: &Control) {
        let stale = control.stale();
        if !stale.is_empty() {
            self.forget(&stale);
        }
    }

    /// Nothing depending on `cached` that was loaded before now is served again.
    pub fn forget(&self, cached: &[Cached]) {
        if !self.on() {
            return;
        }
        let born = Instant::now();
        let ttl = self.settings.ttl;
        let mut inner = self.lock();
        let marks = &mut inner.marks;
        marks.generation += 1;
        let generation = marks.generation;
        for c in cached {
            marks.marks.insert(*c, Mark { generation, born });
        }
        if marks.marks.len() >= marks.prune_at.max(PRUNE_MARKS_AT) {
            // A mark older than the TTL can only void entries loaded before it, all expired.
            marks
                .marks
                .retain(|_, m| born.saturating_duration_since(m.born) < ttl);
            marks.prune_at = (2 * marks.marks.len()).max(PRUNE_MARKS_AT);
        }
        if marks.marks.len() > self.settings.max_entries.max(PRUNE_MARKS_AT) {
            Self::flush_locked(&mut inner);
        }
    }

    /// Forgets everything.
    pub fn flush(&self) {
        Self::flush_locked(&mut self.lock());
    }

    fn flush_locked(inner: &mut Inner) {
        inner.marks.generation += 1;
        inner.marks.floor = inner.marks.generation;
        inner.marks.marks.clear();
        inner.marks.prune_at = PRUNE_MARKS_AT;
        inner.tables.clear();
    }

    /// How many entries are kept (all kinds).
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().tables.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
