//! Abuse protection for the REST surface (RATE-1, RATE-2, RATE-4, RATE-5).
//!
//! Every request is charged to layered GCRA buckets (`gcra.rs`): the global bucket, its client
//! IP and, on sign-in routes, the IP's auth bucket (`http::limits::limit_requests`, before any
//! handler); once the caller is known, its user bucket for the route class — or its API key's
//! tier bucket instead — and its org bucket (`http::limits::check_caller`, called by the `Caller`
//! extractor). The buckets of one check are charged all-or-nothing. The answer carries
//! `RateLimit-*` headers for the most constrained layer; a denial is 429 `rate_limited` with
//! `Retry-After`.
//!
//! Buckets live in this process, or in Redis when `redis_url` is set so a cluster enforces one
//! limit. A Redis failure at run time fails OPEN for that request (logged as a warning): the
//! chat stays available, and sign-in stays protected by the database-backed AUTH-5 back-off.
//! Time comes from the server's `Clock`, so tests move it. `connections.rs` holds the accept
//! loop with the connection cap and the header-read and idle timeouts (RATE-5). The HTTP glue
//! (the layers, their 429 and 408 answers) is `http::limits`: this module answers in `Outcome`s.

pub mod connections;
mod gcra;
mod local;
mod redis;

pub use gcra::Quota;

use crate::config::RateLimitSettings;
use axum::http::Method;
use conclave_core::{Clock, OrgId, UserId};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// An API key's tier (AUTH-7): `free` keys share their owner's per-user buckets; a higher tier
/// gives the owner's requests through such keys one bucket per (owner, tier) instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Free,
    Pro,
    Team,
    Enterprise,
}

impl Tier {
    fn name(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Pro => "pro",
            Self::Team => "team",
            Self::Enterprise => "enterprise",
        }
    }
}

/// Who an authenticated request is charged to.
#[derive(Debug, Clone, Copy)]
pub struct Subject {
    pub user: UserId,
    /// The org the request acts for, when there is one.
    pub org: Option<OrgId>,
    /// The API key the request was made with, and its tier. Buckets follow the tier and the
    /// owner (`user`), never the key, so minting keys never adds budget.
    pub api_key: Option<(uuid::Uuid, Tier)>,
}

/// The kind of route, which picks the buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Sign-in routes: charged per client IP on top of the other limits.
    Auth,
    Read,
    Write,
    Upload,
    /// Signing out, revoking sessions and turning 2FA on: never refused by a per-user limit
    /// (RATE-1), so a user who burnt their write budget can still secure their account.
    Securing,
}

/// The routes of `RouteClass::Securing` (`{}` is one path segment).
const SECURING_ROUTES: [(Method, &str); 5] = [
    (Method::POST, "/api/v1/auth/logout"),
    (Method::POST, "/api/v1/auth/sessions/revoke-others"),
    (Method::DELETE, "/api/v1/auth/sessions/{}"),
    (Method::POST, "/api/v1/auth/totp/setup"),
    (Method::POST, "/api/v1/auth/totp/enable"),
];

fn path_matches(pattern: &str, path: &str) -> bool {
    let mut want = pattern.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some("{}"), Some(seg)) if !seg.is_empty() => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// The routes that create a session or an account, or set a password with a reset link.
const AUTH_ROUTES: [&str; 6] = [
    "/api/v1/auth/login",
    "/api/v1/auth/jwt",
    "/api/v1/auth/login/mfa",
    "/api/v1/auth/register",
    "/api/v1/auth/bootstrap",
    "/api/v1/auth/password-reset",
];

impl RouteClass {
    #[must_use]
    pub fn of(method: &Method, path: &str) -> Self {
        let path = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path);
        let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        // Every MCP message is a POST: the envelope is charged as a read; a tool call that
        // writes is charged to the writes on its own (`RateLimiter::tool_call_layers`).
        if path == "/mcp" {
            return Self::Read;
        }
        // Starting an OpenID sign-in stores a pending login for anyone who asks, by a link
        // (GET) or from the web client (POST): charged as a sign-in either way.
        let oidc = (*method == Method::GET && path.starts_with("/api/v1/auth/oidc/"))
            || (*method == Method::POST && path_matches("/api/v1/auth/oidc/{}/start", path));
        // The OAuth server's front doors make tokens, or (a metadata document's client) fetch
        // from the network and store a request, for callers with no credential at all: they
        // are charged as sign-ins are (MCP-2, RATE-1).
        let oauth = (*method == Method::GET && path == "/oauth/authorize")
            || (*method == Method::POST && path == "/oauth/token");
        if (*method == Method::POST && AUTH_ROUTES.contains(&path)) || oidc || oauth {
            Self::Auth
        } else if SECURING_ROUTES
            .iter()
            .any(|(m, p)| m == method && path_matches(p, path))
        {
            Self::Securing
        } else if safe {
            Self::Read
        } else if path == "/api/v1/files" || path.starts_with("/api/v1/files/") {
            Self::Upload
        } else {
            Self::Write
        }
    }
}

/// One bucket a request is charged to.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Names the limit in a 429 message ("the per-IP limit on sign-in routes").
    pub what: &'static str,
    pub key: String,
    pub quota: Quota,
}

/// What the most constrained layer says, for the `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Requests a full bucket allows at once.
    pub limit: u64,
    pub remaining: u64,
    /// Whole seconds until the bucket is full again.
    pub reset_secs: u64,
}

impl Status {
    /// The more constrained of two: fewer remaining, then the later reset.
    #[must_use]
    pub fn tighter(self, other: Self) -> Self {
        if (other.remaining, std::cmp::Reverse(other.reset_secs))
            < (self.remaining, std::cmp::Reverse(self.reset_secs))
        {
            other
        } else {
            self
        }
    }
}

/// The answer for one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Charged; `None` when nothing limited the request (no layer, or Redis failed open).
    Allowed(Option<Status>),
    Denied {
        what: &'static str,
        /// Whole seconds, at least 1.
        retry_after_secs: u64,
        status: Status,
    },
}

fn ceil_secs(us: i64) -> u64 {
    u64::try_from(us.max(0)).unwrap_or(0).div_ceil(1_000_000)
}

/// The quotas from configuration; `None` is an unlimited layer.
#[derive(Debug, Clone)]
struct Quotas {
    global: Option<Quota>,
    ip: Option<Quota>,
    auth: Option<Quota>,
    user_reads: Option<Quota>,
    user_writes: Option<Quota>,
    user_uploads: Option<Quota>,
    org: Option<Quota>,
    pro: Option<Quota>,
    team: Option<Quota>,
    enterprise: Option<Quota>,
    mcp_tool_calls: Option<Quota>,
    widget_key: Option<Quota>,
    widget_visitor: Option<Quota>,
    widget_ip: Option<Quota>,
}

impl Quotas {
    fn new(s: &RateLimitSettings) -> Self {
        let min = Duration::from_secs(60);
        let sec = Duration::from_secs(1);
        Self {
            global: Quota::new(s.global_per_sec, sec, s.global_per_sec),
            ip: Quota::new(s.ip_per_min, min, s.ip_burst),
            auth: Quota::new(s.auth_per_min, min, s.auth_burst),
            user_reads: Quota::new(s.user_reads_per_min, min, s.user_reads_burst),
            user_writes: Quota::new(s.user_writes_per_min, min, s.user_writes_burst),
            user_uploads: Quota::new(s.user_uploads_per_min, min, s.user_uploads_burst),
            org: Quota::new(s.org_per_min, min, s.org_burst),
            pro: Quota::new(s.tier_pro_per_sec, sec, s.tier_pro_per_sec),
            team: Quota::new(s.tier_team_per_sec, sec, s.tier_team_per_sec),
            enterprise: Quota::new(s.tier_enterprise_per_sec, sec, s.tier_enterprise_per_sec),
            mcp_tool_calls: Quota::new(s.mcp_tool_calls_per_min, min, s.mcp_tool_calls_burst),
            widget_key: Quota::new(s.widget_key_per_min, min, s.widget_key_burst),
            widget_visitor: Quota::new(s.widget_visitor_per_min, min, s.widget_visitor_burst),
            widget_ip: Quota::new(s.widget_ip_per_min, min, s.widget_ip_burst),
        }
    }

    /// The quota of a tier above `free` (`free` has none: it is the per-user limits).
    fn tier(&self, tier: Tier) -> Option<Quota> {
        match tier {
            Tier::Free => None,
            Tier::Pro => self.pro,
            Tier::Team => self.team,
            Tier::Enterprise => self.enterprise,
        }
    }
}

/// How limits key a client address (RATE-2): an IPv4 address as is, an IPv6 address by its
/// /64 (one subscriber usually holds a whole /64). Rate-limit buckets, the per-IP connection
/// cap and the brute-force counters (through `ClientMeta::ip`) all use it.
#[must_use]
pub fn ip_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

enum Store {
    Local(local::LocalStore),
    Redis(redis::RedisStore),
}

/// The layered limiter; one per node, shared through `AppState`.
pub struct RateLimiter {
    enabled: bool,
    quotas: Quotas,
    clock: Arc<dyn Clock>,
    store: Store,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("enabled", &self.enabled)
            .field("shared", &self.is_shared())
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// Buckets in this process: limits are per node. `enabled = false` lifts every limit.
    #[must_use]
    pub fn local(settings: &RateLimitSettings, enabled: bool, clock: Arc<dyn Clock>) -> Self {
        Self {
            enabled,
            quotas: Quotas::new(settings),
            clock,
            store: Store::Local(local::LocalStore::default()),
        }
    }

    /// Buckets in Redis under `<cluster_name>:rl:`, shared by every node of the cluster.
    /// Fails when Redis does not answer now.
    pub async fn shared(
        url: &str,
        cluster_name: &str,
        settings: &RateLimitSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ::redis::RedisError> {
        Ok(Self {
            enabled: true,
            quotas: Quotas::new(settings),
            clock,
            store: Store::Redis(redis::RedisStore::connect(url, cluster_name).await?),
        })
    }

    #[must_use]
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether the buckets are shared through Redis.
    #[must_use]
    pub fn is_shared(&self) -> bool {
        matches!(self.store, Store::Redis(_))
    }

    /// The layers every request of `class` from `ip` is charged to, before authentication.
    #[must_use]
    pub fn request_layers(&self, class: RouteClass, ip: Option<IpAddr>) -> Vec<Layer> {
        let q = &self.quotas;
        let mut layers = Vec::with_capacity(3);
        let mut push = |what, key: String, quota: Option<Quota>| {
            if let Some(quota) = quota {
                layers.push(Layer { what, key, quota });
            }
        };
        push("the server-wide limit", "global".to_owned(), q.global);
        if let Some(ip) = ip.map(ip_key) {
            if class == RouteClass::Auth {
                push(
                    "the per-IP limit on sign-in routes",
                    format!("auth:{ip}"),
                    q.auth,
                );
            }
            push("the per-IP limit", format!("ip:{ip}"), q.ip);
        }
        layers
    }

    /// The layer every support widget request is charged to before anything is looked up
    /// (WEB-4, RATE-1): its client IP's widget bucket. Empty when limits are off.
    #[must_use]
    pub fn widget_ip_layers(&self, ip: Option<IpAddr>) -> Vec<Layer> {
        match (self.enabled, self.quotas.widget_ip, ip.map(ip_key)) {
            (true, Some(quota), Some(ip)) => vec![Layer {
                what: "the widget per-IP limit",
                key: format!("widget:ip:{ip}"),
                quota,
            }],
            _ => Vec::new(),
        }
    }

    /// The layers a support widget call is charged to once its key is known (WEB-4): the
    /// widget key, and its visitor session once there is one (its IP was charged at the gate,
    /// [`Self::widget_ip_layers`]). Empty when limits are off.
    #[must_use]
    pub fn widget_layers(&self, key: uuid::Uuid, visitor: Option<&str>) -> Vec<Layer> {
        if !self.enabled {
            return Vec::new();
        }
        let q = &self.quotas;
        let mut layers = Vec::with_capacity(3);
        let mut push = |what, key: String, quota: Option<Quota>| {
            if let Some(quota) = quota {
                layers.push(Layer { what, key, quota });
            }
        };
        push(
            "the widget key's limit",
            format!("widget:key:{key}"),
            q.widget_key,
        );
        if let Some(v) = visitor {
            push(
                "the widget visitor's limit",
                format!("widget:visitor:{key}:{v}"),
                q.widget_visitor,
            );
        }
        layers
    }

    /// The layers an authenticated `subject` is charged to: its user's bucket for the route
    /// class (sessions, bots and `free` API keys alike — every `free` key of a user shares
    /// them) or, for a key of a higher tier, that tier's bucket of the key's owner; and its
    /// org. `Securing` routes are charged to no per-user bucket.
    #[must_use]
    pub fn caller_layers(&self, class: RouteClass, subject: &Subject) -> Vec<Layer> {
        let q = &self.quotas;
        let mut layers = Vec::with_capacity(2);
        let mut push = |what, key: String, quota: Option<Quota>| {
            if let Some(quota) = quota {
                layers.push(Layer { what, key, quota });
            }
        };
        let user = subject.user;
        match subject.api_key {
            Some((_, tier)) if tier != Tier::Free => push(
                "the API key tier's limit",
                format!("tier:{user}:{}", tier.name()),
                q.tier(tier),
            ),
            _ => match class {
                RouteClass::Read => push(
                    "the per-user limit on reads",
                    format!("user:{user}:read"),
                    q.user_reads,
                ),
                RouteClass::Upload => push(
                    "the per-user limit on uploads",
                    format!("user:{user}:upload"),
                    q.user_uploads,
                ),
                RouteClass::Write | RouteClass::Auth => push(
                    "the per-user limit on writes",
                    format!("user:{user}:write"),
                    q.user_writes,
                ),
                RouteClass::Securing => {}
            },
        }
        if let Some(org) = subject.org {
            push("the per-org limit", format!("org:{org}"), q.org);
        }
        layers
    }

    /// The layers one MCP tool call is charged to (MCP-1): its credential's tool-call bucket
    /// (`credential` names the credential, say an API key's id) and, for a tool that writes,
    /// the writes of its subject as a REST write would be — so an agent never writes more
    /// than its user could, whichever way it comes in.
    #[must_use]
    pub fn tool_call_layers(
        &self,
        subject: &Subject,
        credential: &str,
        writes: bool,
    ) -> Vec<Layer> {
        let mut layers = Vec::with_capacity(2);
        if let Some(quota) = self.quotas.mcp_tool_calls {
            layers.push(Layer {
                what: "the credential's limit on MCP tool calls",
                key: format!("mcp:{credential}"),
                quota,
            });
        }
        if writes {
            let user = self.caller_layers(RouteClass::Write, subject);
            layers.extend(user.into_iter().filter(|l| !l.key.starts_with("org:")));
        }
        layers
    }

    /// Charges one request to `layers`, all or nothing.
    pub async fn check(&self, layers: &[Layer]) -> Outcome {
        if !self.enabled || layers.is_empty() {
            return Outcome::Allowed(None);
        }
        let now = self.clock.now().timestamp_micros();
        let buckets: Vec<(String, Quota)> =
            layers.iter().map(|l| (l.key.clone(), l.quota)).collect();
        let verdicts = match &self.store {
            Store::Local(store) => store.check(&buckets, now),
            Store::Redis(store) => match store.check(&buckets, now).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "rate limits unavailable (Redis); request allowed");
                    return Outcome::Allowed(None);
                }
            },
        };
        let status = |layer: &Layer, v: &gcra::Verdict| Status {
            limit: layer.quota.burst,
            remaining: v.remaining,
            reset_secs: ceil_secs(v.reset_us),
        };
        let denial = layers
            .iter()
            .zip(&verdicts)
            .filter(|(_, v)| !v.allowed)
            .max_by_key(|(_, v)| v.retry_after_us);
        if let Some((layer, v)) = denial {
            return Outcome::Denied {
                what: layer.what,
                retry_after_secs: ceil_secs(v.retry_after_us).max(1),
                status: status(layer, v),
            };
        }
        let tightest = layers
            .iter()
            .zip(&verdicts)
            .map(|(l, v)| status(l, v))
            .reduce(Status::tighter);
        Outcome::Allowed(tightest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_core::ManualClock;

    #[test]
    fn route_classes() {
        for (method, path, class) in [
            (Method::POST, "/api/v1/auth/login", RouteClass::Auth),
            (Method::POST, "/api/v1/auth/login/mfa/", RouteClass::Auth),
            (Method::GET, "/api/v1/auth/login", RouteClass::Read),
            (Method::HEAD, "/api/v1/users/@me", RouteClass::Read),
            (Method::POST, "/api/v1/files", RouteClass::Upload),
            (Method::GET, "/api/v1/files/x", RouteClass::Read),
            (Method::DELETE, "/api/v1/orgs/x", RouteClass::Write),
            (Method::POST, "/mcp", RouteClass::Read),
            (Method::GET, "/oauth/authorize", RouteClass::Auth),
            (Method::POST, "/oauth/token", RouteClass::Auth),
            (Method::POST, "/oauth/revoke", RouteClass::Write),
            (
                Method::POST,
                "/api/v1/auth/password-reset",
                RouteClass::Auth,
            ),
            (
                Method::GET,
                "/api/v1/auth/oidc/corp/start",
                RouteClass::Auth,
            ),
            (
                Method::POST,
                "/api/v1/auth/oidc/corp/start",
                RouteClass::Auth,
            ),
            (
                Method::POST,
                "/api/v1/auth/oidc/corp/start/",
                RouteClass::Auth,
            ),
            (
                Method::POST,
                "/api/v1/auth/oidc/corp/other",
                RouteClass::Write,
            ),
        ] {
            assert_eq!(RouteClass::of(&method, path), class, "{method} {path}");
        }
        // Securing a signed-in account (and nothing near it) is charged to no per-user bucket.
        for (method, path, securing) in [
            (Method::POST, "/api/v1/auth/logout", true),
            (Method::POST, "/api/v1/auth/sessions/revoke-others", true),
            (Method::DELETE, "/api/v1/auth/sessions/0190-abc", true),
            (Method::POST, "/api/v1/auth/totp/setup", true),
            (Method::POST, "/api/v1/auth/totp/enable/", true),
            (Method::POST, "/api/v1/auth/totp/disable", false),
            (Method::DELETE, "/api/v1/auth/sessions", false),
            (Method::DELETE, "/api/v1/auth/sessions/a/b", false),
            (Method::GET, "/api/v1/auth/sessions/x", false),
        ] {
            assert_eq!(
                RouteClass::of(&method, path) == RouteClass::Securing,
                securing,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        assert_eq!(ip_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1");
    }

    /// A node-local limiter with the default settings, on a clock that stands still.
    fn default_limiter() -> RateLimiter {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::default());
        RateLimiter::local(&RateLimitSettings::default(), true, clock)
    }

    #[test]
    fn tool_calls_have_a_bucket_per_credential_and_writes_the_users() {
        let limiter = default_limiter();
        let user = UserId::new();
        let subject = Subject {
            user,
            org: Some(OrgId::new()),
            api_key: Some((uuid::Uuid::now_v7(), Tier::Free)),
        };
        let keys = |writes| -> Vec<String> {
            (limiter
                .tool_call_layers(&subject, "key:k1", writes)
                .into_iter())
            .map(|l| l.key)
            .collect()
        };
        assert_eq!(keys(false), ["mcp:key:k1"]);
        assert_eq!(
            keys(true),
            ["mcp:key:k1".to_owned(), format!("user:{user}:write")],
            "the org was charged for the request already"
        );
    }

    #[test]
    fn free_keys_share_the_user_buckets_higher_tiers_one_per_owner() {
        let limiter = default_limiter();
        let user = UserId::new();
        let plain = Subject {
            user,
            org: None,
            api_key: None,
        };
        let layers = limiter.caller_layers(RouteClass::Read, &plain);
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0].key, format!("user:{user}:read"));
        assert_eq!(layers[0].quota.burst, 100);
        let key = uuid::Uuid::now_v7();
        for k in [key, uuid::Uuid::now_v7()] {
            let free = Subject {
                api_key: Some((k, Tier::Free)),
                ..plain
            };
            let layers = limiter.caller_layers(RouteClass::Write, &free);
            assert_eq!(layers.len(), 1);
            assert_eq!(layers[0].key, format!("user:{user}:write"), "any free key");
        }
        let pro = Subject {
            api_key: Some((key, Tier::Pro)),
            org: Some(OrgId::new()),
            ..plain
        };
        let layers = limiter.caller_layers(RouteClass::Write, &pro);
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0].key, format!("tier:{user}:pro"));
        assert_eq!(layers[0].quota.interval_us, 10_000, "100 per second");
        assert!(layers[1].key.starts_with("org:"));
        let other_pro_key = Subject {
            api_key: Some((uuid::Uuid::now_v7(), Tier::Pro)),
            ..pro
        };
        assert_eq!(
            limiter.caller_layers(RouteClass::Read, &other_pro_key)[0].key,
            layers[0].key,
            "one bucket per (owner, tier)"
        );
        assert!(limiter
            .caller_layers(RouteClass::Securing, &plain)
            .is_empty());
        let enterprise = Subject {
            api_key: Some((key, Tier::Enterprise)),
            ..plain
        };
        assert!(limiter
            .caller_layers(RouteClass::Write, &enterprise)
            .is_empty());
    }

    #[tokio::test]
    async fn the_most_constrained_layer_is_reported_and_denials_name_their_layer() {
        let clock = Arc::new(ManualClock::default());
        let settings = RateLimitSettings {
            auth_per_min: 2,
            auth_burst: 2,
            ..RateLimitSettings::default()
        };
        let limiter = RateLimiter::local(&settings, true, clock.clone());
        let layers = limiter.request_layers(RouteClass::Auth, Some([10, 0, 0, 1].into()));
        assert_eq!(
            limiter.check(&layers).await,
            Outcome::Allowed(Some(Status {
                limit: 2,
                remaining: 1,
                reset_secs: 30
            }))
        );
        limiter.check(&layers).await;
        let Outcome::Denied {
            what,
            retry_after_secs,
            status,
        } = limiter.check(&layers).await
        else {
            panic!("the third sign-in is denied");
        };
        assert_eq!(what, "the per-IP limit on sign-in routes");
        assert_eq!(retry_after_secs, 30);
        assert_eq!(status.remaining, 0);
        clock.advance(chrono::Duration::seconds(30));
        assert!(matches!(
            limiter.check(&layers).await,
            Outcome::Allowed(Some(_))
        ));
        let off = RateLimiter::local(&settings, false, clock);
        for _ in 0..5 {
            assert_eq!(off.check(&layers).await, Outcome::Allowed(None));
        }
    }
}
