//! The operations REST (and later the gateway) perform. Each one takes the authenticated actor,
//! asks `policy` whether it is allowed, lets the store persist it, and returns domain records.

pub mod agent_runs;
pub mod agents;
mod api_keys;
mod audit;
mod auth;
mod bots;
mod cached;
mod conversations;
mod credentials;
mod denied;
mod directory;
mod files;
mod guards;
pub mod identity;
mod invites;
mod members;
mod messages;
mod mfa;
mod oauth;
mod oauth_grants;
mod org_2fa;
mod orgs;
mod password_reset;
mod privacy;
mod search;
mod secrets;
pub mod sso;
mod streams;
mod system;
mod throttle;
mod users;
mod views;
pub mod webhooks;
pub mod widget;

pub use api_keys::{NewApiKey, GRACE_MAX_SECONDS};
pub use audit::{
    AccountEvent, AuditActorView, AuditEvent, AuditResourceView, RetentionReport, ShownActor,
    ShownActorView, VerifyReport, SECURITY_EVENTS,
};
pub use auth::{AuthSettings, ClientMeta, LoginOutcome, SignedIn};
pub use conversations::NewConversation;
pub use credentials::{ConversationList, GatewayStart, Lapsed, Resource};
pub use denied::DENIED_ROWS_PER_MINUTE;
pub use directory::{DirectoryRevoked, DirectoryVerdict, DIRECTORY_PROVIDER, DIRECTORY_REFUSED};
pub use files::{UploadGrant, Uploaded};
pub use guards::{blocked_error, screened_text, FlagItem, GuardPatch, NewGuard, POSITION_RANGE};
pub use invites::INVITE_DEFAULT_TTL;
pub use members::UserRef;
pub use messages::{SendMessage, Sent};
pub use mfa::{MfaPending, RecoveryCodes, TotpSetup, MFA_TOKEN_MAX_FAILURES, MFA_TOKEN_TTL};
pub use oauth::{
    AuthorizeClient, AuthorizeRefusal, AuthorizeRequest, ClientAuth, ConsentOrg, ConsentView,
    IssuedTokens, OAuthSettings, TokenFailure, TokenRequest,
};
pub use oauth_grants::NewOAuthClient;
pub use orgs::{MatrixEntry, MemberPermissions, PermissionsMatrix, AUDIT_RETENTION_FLOOR_DAYS};
pub use password_reset::{ResetLink, PASSWORD_RESET_TTL};
pub use privacy::{AccountExport, Erased, ExportedMembership};
pub use search::{Found, SearchQuery};
pub use secrets::SECRET_RING_TTL;
pub use sso::{ExternalIdentity, SsoFailure, SsoRefusal, SsoRules, SsoSignIn};
pub use streams::{
    AnswerStream, Flow, StreamEnd, INTERRUPTED, MAX_ANSWER_BYTES, STOPPED, STOPPED_BY_USER,
    STREAM_EVENT_INTERVAL, STREAM_PERSIST_INTERVAL,
};
pub use users::ServerAdmin;
pub use views::{ConversationView, OrgView, SourcedConversation};

use crate::audit::{AuditActor, AuditEntry};
use crate::cache::{Cache, CacheSettings};
use crate::clock::Clock;
use crate::error::ServiceError;
use crate::event::{Cached, Control, Event, EventSink};
use crate::files::{Blobs, FreedBlobs};
use crate::ids::OrgId;
use crate::keys::ServerKeys;
use crate::model::{Session, User};
use crate::password::PasswordHasherPool;
use crate::store::{Store, StoreError};
use std::sync::{Arc, Mutex};

/// An authenticated person or bot, with the session the request came through.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: User,
    /// For a bot or API key, a stand-in: its id is the id of the secret used (so revoking that
    /// secret closes its gateway sockets) and `expires_at` is when that secret stops working.
    pub session: Session,
    /// How the request authenticated; bots and keys are limited further than their user.
    pub credential: crate::credential::Credential,
    /// Where the request came from, for the audit log.
    pub meta: ClientMeta,
}

impl Actor {
    /// Who this is in an audit row: the user, bot or key, and an impersonating admin.
    #[must_use]
    pub fn audit_actor(&self) -> AuditActor {
        use crate::credential::Credential;
        let (id, kind) = match &self.credential {
            Credential::Session => (self.user.id.0, crate::types::ActorType::User),
            Credential::Bot { bot, .. } => (bot.0, crate::types::ActorType::Bot),
            Credential::ApiKey { key, .. } => (key.0, crate::types::ActorType::ApiKey),
            Credential::OAuth { grant, .. } => (grant.0, crate::types::ActorType::OAuthGrant),
        };
        AuditActor {
            id: Some(id),
            kind,
            impersonator: self.session.impersonator,
        }
    }
}

/// `found` if it is `org`'s (`org_of` says whose it is); 404 `what` if it is another org's or
/// missing, so another org's id answers like one that names nothing.
fn of_org<T>(
    found: std::result::Result<T, StoreError>,
    org: OrgId,
    org_of: impl FnOnce(&T) -> OrgId,
    what: &'static str,
) -> Result<T> {
    match found {
        Ok(x) if org_of(&x) == org => Ok(x),
        Ok(_) => Err(ServiceError::NotFound(what)),
        Err(e) => Err(ServiceError::missing(what)(e)),
    }
}

/// The services, sharing one store, clock and key set.
#[derive(Clone)]
pub struct Services {
    /// Only services reach the store: the server asks them (`alerts`, the gateway sessions,
    /// the key ring commands).
    pub(crate) store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub keys: Arc<ServerKeys>,
    pub hasher: PasswordHasherPool,
    pub settings: Arc<AuthSettings>,
    /// Where events go after commit (the gateway's fan-out).
    pub events: Arc<dyn EventSink>,
    /// Where file bytes live: removed after the commit that removed their rows.
    blobs: Arc<dyn Blobs>,
    /// This node's one-time bootstrap token while no admin exists.
    bootstrap: Arc<Mutex<Option<auth::ArmedBootstrap>>>,
    /// The secrets key ring this node loaded last (DATA-3; see `secrets`).
    secret_ring: Arc<secrets::RingCache>,
    /// The shortest audit retention an org may set, in days (DATA-5; never below 30).
    audit_retention_floor: u32,
    /// How many denied attempts each actor has had written this minute (AUTH-12).
    denied: Arc<denied::DeniedCounter>,
    /// The access and management tokens `identity` checks requests against.
    pub(crate) gates: Arc<identity::Gates>,
    /// Identities and conversation access, kept between requests (`crate::cache`).
    pub(crate) cache: Arc<Cache>,
    /// Searches running at once on this node (`search`): a query matching much of a large
    /// table costs seconds, and must not hold every database connection.
    searches: crate::slots::Slots,
    /// The agents' answers streaming on this node, so a stop here reaches them at once.
    open_streams: Arc<streams::OpenStreams>,
    /// The content guards' checks that ask another service (RATE-6): the server's, through its
    /// SSRF guard; without one every remote check fails and its fail mode applies.
    remote: Arc<dyn crate::guards::RemoteScreen>,
    /// Guard decisions counted on this node, not written yet (`guards::PendingCounts`).
    guard_counts: Arc<guards::PendingCounts>,
    /// The OAuth issuer and the MCP resource its tokens are bound to (MCP-2).
    oauth: Arc<OAuthSettings>,
}

impl Services {
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        keys: Arc<ServerKeys>,
        hasher: PasswordHasherPool,
        settings: AuthSettings,
        events: Arc<dyn EventSink>,
        blobs: Arc<dyn Blobs>,
    ) -> Self {
        Self {
            store,
            clock,
            keys,
            hasher,
            settings: Arc::new(settings),
            events,
            blobs,
            bootstrap: Arc::new(Mutex::new(None)),
            secret_ring: Arc::default(),
            audit_retention_floor: orgs::AUDIT_RETENTION_FLOOR_DAYS,
            denied: Arc::default(),
            gates: Arc::default(),
            cache: Arc::new(Cache::new(CacheSettings::default())),
            searches: crate::slots::Slots::new(search::SLOTS, search::SLOT_WAIT),
            open_streams: Arc::default(),
            remote: Arc::new(crate::guards::NoRemoteScreen),
            guard_counts: Arc::default(),
            oauth: Arc::default(),
        }
    }

    /// Sets the OAuth issuer and MCP resource (MCP-2), from the public URL.
    #[must_use]
    pub fn with_oauth(mut self, settings: OAuthSettings) -> Self {
        self.oauth = Arc::new(settings);
        self
    }

    /// The OAuth issuer and MCP resource.
    #[must_use]
    pub fn oauth_settings(&self) -> &OAuthSettings {
        &self.oauth
    }

    /// Sets the cache's TTL and size (see `crate::cache`); a fresh, empty cache.
    #[must_use]
    pub fn with_cache(mut self, settings: CacheSettings) -> Self {
        self.cache = Arc::new(Cache::new(settings));
        self
    }

    /// Applies a control event that came from the fan-out to this node's cache: every node
    /// calls it for every event before its hub applies the event to sockets (the node that
    /// made the change has already, in [`Self::emit`]).
    pub fn invalidate(&self, control: &Control) {
        self.cache.invalidate(control);
    }

    /// How many entries this node's cache holds (tests, metrics).
    #[must_use]
    pub fn cached_entries(&self) -> usize {
        self.cache.len()
    }

    /// Sets the access-token gate (AUTH-9) and the management token (see `identity`).
    #[must_use]
    pub fn with_gates(mut self, gates: identity::Gates) -> Self {
        self.gates = Arc::new(gates);
        self
    }

    /// Raises the shortest audit retention an org may set (DATA-5); it never goes below 30 days.
    #[must_use]
    pub fn with_audit_retention_floor(mut self, days: u32) -> Self {
        self.audit_retention_floor = days.max(orgs::AUDIT_RETENTION_FLOOR_DAYS);
        self
    }

    /// The shortest audit retention an org may set, in days.
    #[must_use]
    pub const fn audit_retention_floor_days(&self) -> u32 {
        self.audit_retention_floor
    }

    /// An audit entry for what `actor` does now.
    fn audit(&self, actor: &Actor, event: &str) -> AuditEntry {
        self.audit_as(actor.audit_actor(), &actor.meta, event)
    }

    /// An audit entry for what `actor` does to their own account.
    fn own_audit(&self, actor: &Actor, event: &str) -> AuditEntry {
        self.audit(actor, event).resource("user", actor.user.id)
    }

    /// An audit entry for what the server does on its own, for no request.
    fn system_audit(&self, event: &str) -> AuditEntry {
        self.audit_as(AuditActor::system(), &ClientMeta::default(), event)
    }

    /// An audit entry for an event by `who`, from the request described by `meta`.
    fn audit_as(&self, who: AuditActor, meta: &ClientMeta, event: &str) -> AuditEntry {
        let mut e = AuditEntry::new(event, who, self.clock.now());
        e.ip.clone_from(&meta.ip);
        e.user_agent.clone_from(&meta.user_agent);
        e.request_id.clone_from(&meta.request_id);
        e
    }

    /// The keyed hash a presented token of `kind` is stored under; `invalid` when the text is
    /// not such a token at all (checked before any lookup).
    fn presented_token_hash(
        &self,
        kind: crate::token::TokenKind,
        text: &str,
        invalid: ServiceError,
    ) -> Result<[u8; 32]> {
        if crate::token::well_formed(kind, text) {
            Ok(crate::token::hash(&self.keys.token_pepper, text))
        } else {
            Err(invalid)
        }
    }

    /// Announces a committed change. What a control revokes or changes leaves this node's
    /// cache first, before the caller answers: the next request here reads the store.
    fn emit(&self, event: Event) {
        if let Some(control) = &event.control {
            self.cache.invalidate(control);
        }
        self.events.publish(event);
    }

    /// Cached data about `cached` changed with a mutation no other control announces: forgotten
    /// here now and, through the fan-out, on every node.
    fn stale(&self, cached: Vec<Cached>) {
        self.emit(Event::control(Control::Stale { cached }));
    }

    /// Removes the bytes of files whose rows a committed change removed.
    async fn free(&self, freed: FreedBlobs) {
        if !freed.0.is_empty() {
            self.blobs.remove(&freed.0).await;
        }
    }
}

type Result<T> = std::result::Result<T, ServiceError>;
