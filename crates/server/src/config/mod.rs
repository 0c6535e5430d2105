//! Configuration, layered and then parsed once. [`Config`] is what an operator writes: defaults
//! (written only here and in `sections`) → TOML file (`--config`) → `CONCLAVE_*` environment
//! variables (env wins; `__` nests; `*_FILE` reads a secret from a file; `layers`). Unknown keys
//! are an error. `TryFrom<Config> for RuntimeConfig` (`runtime`) turns it into typed values and
//! refuses what cannot work, and in production what is unsafe (CORE-3). This module is the only
//! reader of the process environment.

mod files;
mod layers;
mod ldap;
mod limits;
mod runtime;
mod sections;
mod sso;
#[cfg(test)]
mod tests;

pub use files::{FilesSettings, StorageKind};
pub use ldap::{GroupRoleConfig, LdapConfig};
pub use limits::{ConnectionLimits, GatewayConfig};
pub use runtime::{DatabaseUrl, Retention, RuntimeConfig, Secrets, BOOTSTRAP_TOKEN_MIN_CHARS};
pub use sections::{
    CacheConfig, GatewaySettings, RateLimitSettings, RetentionSettings, SessionConfig,
};
pub use sso::{
    HostJwtConfig, LinkExisting, OidcPreset, OidcProviderConfig, OidcSection, RoleMappingConfig,
};

use conclave_core::types::RegistrationMode;
use ipnet::IpNet;
use layers::flex;
use secrecy::SecretString;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The deployment environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    Development,
    Production,
}

/// The one forwarding header read from a trusted proxy (RATE-2); the other is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

/// SQLite's `PRAGMA synchronous` (WAL mode): `normal` keeps every acknowledged write across a
/// process crash or `kill -9` but may lose the last commits to a power loss or an OS crash;
/// `full` syncs the log at every commit (one fsync per group-committed batch of sends) and
/// keeps them across a power loss too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqliteSynchronous {
    #[default]
    Normal,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnOff {
    On,
    Off,
}

/// Everything the server reads at start. Field names are the TOML keys; env names are
/// `CONCLAVE_` + the key upper-cased.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `host:port` to bind.
    pub listen: String,
    /// Where the SQLite database, files and generated keys live.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default SQLite in the data dir.
    pub database_url: Option<String>,
    /// SQLite only: `normal` (default) or `full`, see [`SqliteSynchronous`].
    pub sqlite_synchronous: SqliteSynchronous,
    /// NATS for cluster fan-out (used by the gateway). Credentials go in the URL:
    /// `nats://user:password@host`, `nats://token@host` or `nats://<NKey seed>@host`.
    pub nats_url: Option<String>,
    /// Production refuses a `nats_url` without credentials unless this is set (SCALE-2).
    #[serde(deserialize_with = "flex::bool")]
    pub nats_allow_unauthenticated: bool,
    /// Redis for shared rate limits and presence (cluster).
    pub redis_url: Option<String>,
    pub env: Environment,
    /// Management token for `/api/v1/admin/*`. Never empty (CORE-3a).
    pub admin_token: Option<SecretString>,
    /// The access-token gate (AUTH-9): when set, every API request but the public documents
    /// (capabilities, OpenAPI) and every sign-in must carry it as `X-API-Access-Token`.
    pub access_token: Option<SecretString>,
    /// 32 bytes, base64; every server key is derived from it.
    pub master_key: Option<SecretString>,
    /// Presets the one-time bootstrap token (automation): at least 32 characters, valid for
    /// 24 hours after the server's first start and only while no server admin exists.
    pub bootstrap_token: Option<SecretString>,
    /// Allowed browser origins (comma-separated in env).
    #[serde(deserialize_with = "flex::list")]
    pub cors_origins: Vec<String>,
    /// Peers whose forwarding header (`proxy_header`) is believed.
    #[serde(deserialize_with = "flex::cidrs")]
    pub trusted_proxies: Vec<IpNet>,
    /// Which header a trusted proxy reports the client in: `x-forwarded-for` or `forwarded`.
    pub proxy_header: ProxyHeader,
    pub registration: RegistrationMode,
    /// Clients below this `X-Client-Version` get 426.
    pub min_client_version: Option<String>,
    pub rate_limits: OnOff,
    /// The URL users reach; default `http://<listen>`.
    pub public_url: Option<String>,
    /// Prefix of every Redis key and NATS subject.
    pub cluster_name: String,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// TLS is terminated by a trusted reverse proxy.
    #[serde(deserialize_with = "flex::bool")]
    pub trust_proxy_tls: bool,
    pub session: SessionConfig,
    /// The identity and access cache: its staleness bound and size.
    pub cache: CacheConfig,
    pub gateway: GatewaySettings,
    pub rate_limit: RateLimitSettings,
    pub retention: RetentionSettings,
    /// Uploads and downloads (DATA-1, DATA-2) and where the bytes live (SCALE-3).
    pub files: FilesSettings,
    /// Special ranges the outbound guard lets through (HOOK-3; comma-separated in env): tests
    /// and private deployments. Production refuses it unless acknowledged.
    #[serde(deserialize_with = "flex::cidrs")]
    pub webhook_allow_cidrs: Vec<IpNet>,
    /// Says `webhook_allow_cidrs` is meant in production (CORE-3).
    #[serde(deserialize_with = "flex::bool")]
    pub webhook_allow_cidrs_acknowledged: bool,
    /// Ports outbound requests may use besides 80 and 443 (comma-separated in env).
    #[serde(deserialize_with = "flex::ports")]
    pub webhook_allow_ports: Vec<u16>,
    /// Special ranges AI agents' model endpoints may be in (AGENT-1; comma-separated in env),
    /// e.g. a local Ollama. Only model endpoints: the webhook allowlist never applies to them,
    /// nor this one to webhooks.
    #[serde(deserialize_with = "flex::cidrs")]
    pub agent_allow_cidrs: Vec<IpNet>,
    /// Ports model endpoints may use besides 80 and 443 (comma-separated in env).
    #[serde(deserialize_with = "flex::ports")]
    pub agent_allow_ports: Vec<u16>,
    /// How long a model endpoint may take to answer with its response head (AGENT-4).
    #[serde(deserialize_with = "flex::u64")]
    pub agent_request_timeout_secs: u64,
    /// How long a whole answer may take (AGENT-4).
    #[serde(deserialize_with = "flex::u64")]
    pub agent_max_answer_secs: u64,
    /// Answers streaming at once on one node.
    #[serde(deserialize_with = "flex::u64")]
    pub agent_max_concurrent: u64,
    /// How often one user may call one agent per minute (AGENT-4; GCRA, shared through Redis
    /// in a cluster); 0: no limit.
    #[serde(deserialize_with = "flex::u64")]
    pub agent_invocations_per_minute: u64,
    /// Host apps that sign JWTs naming their users (AUTH-11; TOML only).
    pub host_jwt: Vec<HostJwtConfig>,
    /// OpenID Connect providers (AUTH-10; `[[oidc.providers]]`, TOML only).
    pub oidc: OidcSection,
    /// An LDAP / Active Directory directory for `POST /auth/login` (AUTH-10; `[ldap]`).
    pub ldap: Option<LdapConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./conclave-data"),
            database_url: None,
            sqlite_synchronous: SqliteSynchronous::Normal,
            nats_url: None,
            nats_allow_unauthenticated: false,
            redis_url: None,
            env: Environment::Development,
            admin_token: None,
            access_token: None,
            master_key: None,
            bootstrap_token: None,
            cors_origins: vec![],
            trusted_proxies: vec![],
            proxy_header: ProxyHeader::default(),
            registration: RegistrationMode::Closed,
            min_client_version: None,
            rate_limits: OnOff::On,
            public_url: None,
            cluster_name: "conclave".into(),
            tls_cert: None,
            tls_key: None,
            trust_proxy_tls: false,
            session: SessionConfig::default(),
            cache: CacheConfig::default(),
            gateway: GatewaySettings::default(),
            rate_limit: RateLimitSettings::default(),
            retention: RetentionSettings::default(),
            files: FilesSettings::default(),
            webhook_allow_cidrs: vec![],
            webhook_allow_cidrs_acknowledged: false,
            webhook_allow_ports: vec![],
            agent_allow_cidrs: vec![],
            agent_allow_ports: vec![],
            agent_request_timeout_secs: 30,
            agent_max_answer_secs: 120,
            agent_max_concurrent: 64,
            agent_invocations_per_minute: 10,
            host_jwt: vec![],
            oidc: OidcSection::default(),
            ldap: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Loads defaults, then the TOML file, then `vars` (`CONCLAVE_*`; others are ignored).
    pub fn load(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        toml::Value::Table(layers::layered_table(file, vars)?)
            .try_into::<Config>()
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// [`Config::load`] with the process environment: the one place the server reads it.
    pub fn load_from_env(file: Option<&Path>) -> Result<Self, ConfigError> {
        #[allow(
            clippy::disallowed_methods,
            reason = "configuration is the one reader of the process environment"
        )]
        let vars = std::env::vars();
        Self::load(file, vars)
    }

    /// The URL users reach, without a trailing slash.
    #[must_use]
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }

    #[must_use]
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("conclave.db").display()))
    }

    /// Whether [`RuntimeConfig::try_from`] accepts this configuration (every problem named).
    pub fn validate(&self) -> Result<(), ConfigError> {
        RuntimeConfig::try_from(self.clone()).map(drop)
    }
}

/// Whether the tests run under `CI=true`, where a missing test service is a failure rather
/// than a skip (the server's own unit tests ask here: the environment is read only in config).
#[cfg(test)]
pub(crate) fn under_ci() -> bool {
    #[allow(
        clippy::disallowed_methods,
        reason = "configuration is the one reader of the process environment"
    )]
    let ci = std::env::var("CI");
    ci.is_ok_and(|v| v == "true")
}
