//! The runtime configuration: what the layered [`Config`] becomes once every field is parsed and
//! checked, by `TryFrom<Config> for RuntimeConfig` (CORE-3, CORE-3a). Nothing downstream —
//! startup, state, rate limits, the outbound guard — parses a configuration string or clamps a
//! number again: it reads these typed values.

use super::{
    Config, ConfigError, ConnectionLimits, Environment, GatewayConfig, OnOff, ProxyHeader,
    RateLimitSettings,
};
use crate::outbound::OutboundPolicy;
use conclave_core::cache::CacheSettings;
use conclave_core::keys::MasterKey;
use conclave_core::service::AuthSettings;
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The shortest preset bootstrap token accepted (CORE-3a).
pub const BOOTSTRAP_TOKEN_MIN_CHARS: usize = 32;

/// The shortest admin token production accepts (CORE-3).
const PRODUCTION_ADMIN_TOKEN_MIN_CHARS: usize = 32;

/// The shortest audit retention an org may set, which `audit_retention_floor_days` can only raise.
const AUDIT_RETENTION_FLOOR_DAYS: u32 = 30;

/// The store a database URL names; the URL itself may carry a password, so `Debug` shows only
/// the backend.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(String),
    Postgres(String),
}

impl DatabaseUrl {
    /// `sqlite:…`, `postgres://…` or `postgresql://…`.
    pub fn parse(url: &str) -> Result<Self, String> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(url.to_owned()))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(url.to_owned()))
        } else {
            Err("database_url must start with sqlite:// or postgres://".to_owned())
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite(_) => "DatabaseUrl::Sqlite(..)",
            Self::Postgres(_) => "DatabaseUrl::Postgres(..)",
        })
    }
}

/// The secrets of the configuration, each set and not blank; the master key decoded.
pub struct Secrets {
    /// Management token for `/api/v1/admin/*`.
    pub admin_token: Option<SecretString>,
    /// The access-token gate (AUTH-9).
    pub access_token: Option<SecretString>,
    /// A preset one-time bootstrap token, at least [`BOOTSTRAP_TOKEN_MIN_CHARS`] long.
    pub bootstrap_token: Option<SecretString>,
    /// `None`: the one in the data dir (generated there by `serve` on first start).
    pub master_key: Option<MasterKey>,
}

/// When the retention job runs and the audit floor it enforces (DATA-5).
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub interval: Duration,
    pub audit_retention_floor_days: u32,
}

/// Everything the server reads at start, parsed.
pub struct RuntimeConfig {
    pub env: Environment,
    /// `host:port` to bind (a host name is resolved by the bind).
    pub listen: String,
    pub data_dir: PathBuf,
    pub database: DatabaseUrl,
    /// When an SQLite commit reaches the disk.
    pub sqlite_synchronous: conclave_store_sqlite::Synchronous,
    /// NATS for cluster fan-out; its credentials were checked (production wants some).
    pub nats_url: Option<String>,
    pub redis_url: Option<String>,
    pub cluster_name: String,
    pub secrets: Secrets,
    pub cors_origins: Vec<String>,
    pub trusted_proxies: Vec<IpNet>,
    pub proxy_header: ProxyHeader,
    /// Session lifetimes and the registration mode.
    pub auth: AuthSettings,
    /// The identity and access cache's TTL and size.
    pub cache: CacheSettings,
    pub min_client_version: Option<semver::Version>,
    /// `rate_limits = on`.
    pub rate_limits_on: bool,
    /// The configured public URL without a trailing slash; `None`: the address bound.
    pub public_url: Option<String>,
    pub gateway: GatewayConfig,
    /// The GCRA rates and bursts (each layer with a rate has a burst).
    pub rate_limit: RateLimitSettings,
    /// Timeouts and connection caps of the accept loop (RATE-5).
    pub connections: ConnectionLimits,
    /// How long a request's body may take to arrive (RATE-5).
    pub body_timeout: Duration,
    pub retention: Retention,
    /// What the outbound SSRF guard lets through besides public addresses (HOOK-3).
    pub outbound: OutboundPolicy,
    /// Upload limits, signed URL lifetime and storage (DATA-1, DATA-2, SCALE-3).
    pub files: crate::files::FilesConfig,
    /// What model endpoints may be (their own allowlist) and how long answers may take.
    pub agents: crate::agents::AgentSettings,
    /// How often one user may call one agent per minute (AGENT-4); 0: no limit.
    pub agent_invocations_per_minute: u64,
    /// Host apps whose JWTs sign users in (AUTH-11), keys read and checked.
    pub host_jwt: Vec<crate::sso::host_jwt::HostJwt>,
    /// OpenID Connect providers (AUTH-10), checked.
    pub oidc: Vec<crate::sso::oidc::OidcSettings>,
    /// The LDAP directory (AUTH-10), checked.
    pub ldap: Option<crate::sso::ldap::LdapSettings>,
}

/// The problems found so far; the conversion reports all of them at once.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn when(&mut self, broken: bool, problem: impl Into<String>) {
        if broken {
            self.0.push(problem.into());
        }
    }

    /// The value of `parsed`, or `None` with its error recorded.
    fn take<T>(&mut self, parsed: Result<T, String>) -> Option<T> {
        parsed.map_err(|e| self.0.push(e)).ok()
    }
}

/// A whole number of seconds, at least one.
fn secs(n: u64) -> Duration {
    Duration::from_secs(n.max(1))
}

/// A count for a cap, at least one.
fn count(n: u64) -> usize {
    usize::try_from(n.max(1)).unwrap_or(usize::MAX)
}

/// `n` units of `unit_secs` seconds, as long as a `chrono` duration can be.
fn lifetime(n: u64, unit_secs: i64) -> chrono::Duration {
    i64::try_from(n)
        .ok()
        .and_then(|n| n.checked_mul(unit_secs))
        .and_then(chrono::Duration::try_seconds)
        .unwrap_or(chrono::Duration::MAX)
}

/// CORE-3a, in every mode: a secret that is set is never empty or blank (an empty token would
/// match an empty header).
fn secret(
    problems: &mut Problems,
    value: Option<SecretString>,
    name: &str,
) -> Option<SecretString> {
    let blank = value
        .as_ref()
        .is_some_and(|s| s.expose_secret().trim().is_empty());
    problems.when(
        blank,
        format!("{name} is set but empty: give it a value or leave it unset"),
    );
    value.filter(|_| !blank)
}

fn secrets(problems: &mut Problems, c: &Config) -> Secrets {
    let admin_token = secret(
        problems,
        c.admin_token.clone(),
        "admin_token (CONCLAVE_ADMIN_TOKEN)",
    );
    let access_token = secret(
        problems,
        c.access_token.clone(),
        "access_token (CONCLAVE_ACCESS_TOKEN)",
    );
    let bootstrap_token = secret(
        problems,
        c.bootstrap_token.clone(),
        "bootstrap_token (CONCLAVE_BOOTSTRAP_TOKEN)",
    );
    problems.when(
        bootstrap_token
            .as_ref()
            .is_some_and(|t| t.expose_secret().chars().count() < BOOTSTRAP_TOKEN_MIN_CHARS),
        format!("bootstrap_token (CONCLAVE_BOOTSTRAP_TOKEN) must have at least {BOOTSTRAP_TOKEN_MIN_CHARS} characters"),
    );
    let master_key = secret(
        problems,
        c.master_key.clone(),
        "master_key (CONCLAVE_MASTER_KEY)",
    )
    .and_then(|k| problems.take(MasterKey::from_base64(k.expose_secret()).map_err(Into::into)));
    Secrets {
        admin_token,
        access_token,
        bootstrap_token,
        master_key,
    }
}

/// A layer with a rate needs a burst; timeouts and caps are at least 1.
fn rate_limit_problems(problems: &mut Problems, s: &RateLimitSettings) {
    for (rate, burst, name) in [
        (s.ip_per_min, s.ip_burst, "ip"),
        (s.auth_per_min, s.auth_burst, "auth"),
        (s.user_reads_per_min, s.user_reads_burst, "user_reads"),
        (s.user_writes_per_min, s.user_writes_burst, "user_writes"),
        (s.user_uploads_per_min, s.user_uploads_burst, "user_uploads"),
        (s.org_per_min, s.org_burst, "org"),
        (
            s.mcp_tool_calls_per_min,
            s.mcp_tool_calls_burst,
            "mcp_tool_calls",
        ),
    ] {
        problems.when(
            rate > 0 && burst == 0,
            format!("rate_limit.{name}_burst must be at least 1 while {name}_per_min is set"),
        );
    }
    for (value, name) in [
        (s.header_read_timeout_secs, "header_read_timeout_secs"),
        (s.body_timeout_secs, "body_timeout_secs"),
        (s.idle_timeout_secs, "idle_timeout_secs"),
        (s.max_connections, "max_connections"),
        (s.max_connections_per_ip, "max_connections_per_ip"),
    ] {
        problems.when(value == 0, format!("rate_limit.{name} must be at least 1"));
    }
}

/// CORE-3: what production refuses on top of what never works.
fn production_problems(problems: &mut Problems, c: &Config, nats_authenticated: Option<bool>) {
    problems.when(
        nats_authenticated == Some(false) && !c.nats_allow_unauthenticated,
        "production refuses a NATS URL without credentials: use nats://user:password@host or nats://token@host, or set nats_allow_unauthenticated = true",
    );
    problems.when(
        !c.webhook_allow_cidrs.is_empty() && !c.webhook_allow_cidrs_acknowledged,
        "production refuses webhook_allow_cidrs (outbound requests to private ranges) unless webhook_allow_cidrs_acknowledged = true",
    );
    problems.when(
        c.cors_origins.iter().any(|o| o == "*"),
        "production refuses a wildcard CORS origin (cors_origins = \"*\")",
    );
    problems.when(
        c.admin_token
            .as_ref()
            .is_some_and(|t| t.expose_secret().chars().count() < PRODUCTION_ADMIN_TOKEN_MIN_CHARS),
        "production requires an admin token of at least 32 characters",
    );
    problems.when(
        c.master_key.is_none(),
        "production requires CONCLAVE_MASTER_KEY (a generated key is for development only)",
    );
    problems.when(
        !c.public_url().starts_with("https://") || !c.trust_proxy_tls,
        "production refuses plain HTTP: set an https:// public_url with trust_proxy_tls = true behind a TLS proxy",
    );
}

impl TryFrom<Config> for RuntimeConfig {
    type Error = ConfigError;

    /// Refuses settings that cannot work, and in production settings that are unsafe (CORE-3);
    /// every problem is named at once, no secret ever is.
    fn try_from(c: Config) -> Result<Self, ConfigError> {
        let mut problems = Problems::default();
        problems.when(
            c.tls_cert.is_some() || c.tls_key.is_some(),
            "native TLS (tls_cert/tls_key) is not available in this build: terminate TLS at a reverse proxy and set trust_proxy_tls",
        );
        let min_client_version = c.min_client_version.as_deref().and_then(|v| {
            problems.take(semver::Version::parse(v).map_err(|_| {
                format!("min_client_version must be a semantic version like 1.2.0, got {v:?}")
            }))
        });
        rate_limit_problems(&mut problems, &c.rate_limit);
        let floor = u32::try_from(c.retention.audit_retention_floor_days).unwrap_or(u32::MAX);
        problems.when(
            floor < AUDIT_RETENTION_FLOOR_DAYS,
            "retention.audit_retention_floor_days can only raise the 30-day floor",
        );
        let secrets = secrets(&mut problems, &c);
        let public = c.public_url();
        problems.when(
            !(public.starts_with("http://") || public.starts_with("https://")),
            "public_url must start with http:// or https://",
        );
        let nats_authenticated = c
            .nats_url
            .as_deref()
            .and_then(|url| problems.take(crate::fanout::nats::url_has_credentials(url)));
        if c.env == Environment::Production {
            production_problems(&mut problems, &c, nats_authenticated);
        }
        let database = problems.take(DatabaseUrl::parse(&c.database_url()));
        let files = problems.take(
            c.files
                .parse(&c.data_dir, c.env == Environment::Production)
                .map_err(|p| p.join("; ")),
        );
        let production = c.env == Environment::Production;
        let host_jwt =
            problems.take(super::sso::host_jwts(&c.host_jwt, production).map_err(|p| p.join("; ")));
        let oidc = problems
            .take(super::sso::oidc_providers(&c.oidc, production).map_err(|p| p.join("; ")));
        let ldap = match &c.ldap {
            Some(l) => problems
                .take(l.parse(production).map_err(|p| p.join("; ")))
                .map(Some),
            None => Some(None),
        };
        let (Some(database), Some(files), Some(host_jwt), Some(oidc), Some(ldap), []) =
            (database, files, host_jwt, oidc, ldap, problems.0.as_slice())
        else {
            return Err(ConfigError::Invalid(problems.0.join("; ")));
        };
        let rate_limits_on = c.rate_limits == OnOff::On;
        let (g, r) = (&c.gateway, &c.rate_limit);
        Ok(Self {
            gateway: GatewayConfig::from_settings(g, rate_limits_on),
            connections: ConnectionLimits {
                header_read_timeout: secs(r.header_read_timeout_secs),
                idle_timeout: secs(r.idle_timeout_secs),
                max_connections: count(r.max_connections).min(tokio::sync::Semaphore::MAX_PERMITS),
                // `rate_limits = off` lifts the per-IP cap (CORE-2), not the overall one.
                max_connections_per_ip: if rate_limits_on {
                    count(r.max_connections_per_ip)
                } else {
                    usize::MAX
                },
                trusted_proxies: c.trusted_proxies.clone().into(),
            },
            body_timeout: secs(r.body_timeout_secs),
            auth: AuthSettings {
                session_idle: lifetime(c.session.idle_hours, 3_600),
                session_absolute: lifetime(c.session.absolute_days, 86_400),
                registration: c.registration,
            },
            cache: CacheSettings {
                ttl: Duration::from_millis(c.cache.ttl_ms),
                max_entries: count(c.cache.max_entries),
            },
            retention: Retention {
                interval: secs(c.retention.interval_secs),
                audit_retention_floor_days: floor,
            },
            outbound: OutboundPolicy::allowing(
                c.webhook_allow_cidrs.clone(),
                c.webhook_allow_ports.clone(),
            ),
            files,
            agents: crate::agents::AgentSettings {
                outbound: OutboundPolicy::allowing(
                    c.agent_allow_cidrs.clone(),
                    c.agent_allow_ports.clone(),
                ),
                request_timeout: secs(c.agent_request_timeout_secs),
                max_answer: secs(c.agent_max_answer_secs),
                max_concurrent: count(c.agent_max_concurrent)
                    .min(tokio::sync::Semaphore::MAX_PERMITS),
            },
            public_url: c.public_url.as_ref().map(|_| public.clone()),
            env: c.env,
            listen: c.listen,
            data_dir: c.data_dir,
            database,
            sqlite_synchronous: match c.sqlite_synchronous {
                super::SqliteSynchronous::Normal => conclave_store_sqlite::Synchronous::Normal,
                super::SqliteSynchronous::Full => conclave_store_sqlite::Synchronous::Full,
            },
            nats_url: c.nats_url,
            redis_url: c.redis_url,
            cluster_name: c.cluster_name,
            secrets,
            cors_origins: c.cors_origins,
            trusted_proxies: c.trusted_proxies,
            proxy_header: c.proxy_header,
            min_client_version,
            rate_limits_on,
            rate_limit: c.rate_limit,
            agent_invocations_per_minute: c.agent_invocations_per_minute,
            host_jwt,
            oidc,
            ldap,
        })
    }
}
