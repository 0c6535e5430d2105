//! Typed, layered configuration: defaults → TOML file (`--config`) → `CONCLAVE_*` environment
//! variables (env wins; `__` nests; `*_FILE` reads a secret from a file). Unknown keys are an
//! error. `validate` refuses unsafe settings in production (CORE-3).

use conclave_core::types::RegistrationMode;
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnOff {
    On,
    Off,
}

/// Session lifetimes (`[session]`, `CONCLAVE_SESSION__IDLE_HOURS`, …).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// A session unused this many hours expires.
    #[serde(deserialize_with = "flex::u64")]
    pub idle_hours: u64,
    /// A session expires this many days after login.
    #[serde(deserialize_with = "flex::u64")]
    pub absolute_days: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle_hours: 24 * 7,
            absolute_days: 30,
        }
    }
}

/// Gateway limits and timings (`[gateway]`, `CONCLAVE_GATEWAY__…`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySettings {
    #[serde(deserialize_with = "flex::u64")]
    pub heartbeat_interval_ms: u64,
    /// How long a dropped session can be resumed (on any node).
    #[serde(deserialize_with = "flex::u64")]
    pub resume_window_secs: u64,
    #[serde(deserialize_with = "flex::u64")]
    pub max_connections_per_user: u64,
    #[serde(deserialize_with = "flex::u64")]
    pub max_connections_per_ip: u64,
    #[serde(deserialize_with = "flex::u64")]
    pub frames_per_minute: u64,
    #[serde(deserialize_with = "flex::u64")]
    pub frame_max_bytes: u64,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 30_000,
            resume_window_secs: 300,
            max_connections_per_user: 10,
            max_connections_per_ip: 200,
            frames_per_minute: 120,
            frame_max_bytes: 64 * 1024,
        }
    }
}

/// Request limits and slow-client protection (`[rate_limit]`, `CONCLAVE_RATE_LIMIT__…`).
/// Every limit is a GCRA: `*_per_min`/`*_per_sec` is the sustained rate, `*_burst` how many
/// requests a full bucket allows at once. A rate of 0 disables that layer. `rate_limits = off`
/// lifts all of them (the timeouts and the connection cap stay).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// All requests of the node (or of the cluster, with Redis) per second; burst is the same.
    #[serde(deserialize_with = "flex::u64")]
    pub global_per_sec: u64,
    /// Any request from one client IP.
    #[serde(deserialize_with = "flex::u64")]
    pub ip_per_min: u64,
    #[serde(deserialize_with = "flex::u64")]
    pub ip_burst: u64,
    /// Sign-in routes (login, MFA, register, bootstrap) from one client IP.
    #[serde(deserialize_with = "flex::u64")]
    pub auth_per_min: u64,
    #[serde(deserialize_with = "flex::u64")]
    pub auth_burst: u64,
    /// GET/HEAD requests of one signed-in user.
    #[serde(deserialize_with = "flex::u64")]
    pub user_reads_per_min: u64,
    #[serde(deserialize_with = "flex::u64")]
    pub user_reads_burst: u64,
    /// Other requests of one signed-in user.
    #[serde(deserialize_with = "flex::u64")]
    pub user_writes_per_min: u64,
    #[serde(deserialize_with = "flex::u64")]
    pub user_writes_burst: u64,
    /// Uploads (`/api/v1/files`) of one signed-in user.
    #[serde(deserialize_with = "flex::u64")]
    pub user_uploads_per_min: u64,
    #[serde(deserialize_with = "flex::u64")]
    pub user_uploads_burst: u64,
    /// All requests made on behalf of one org.
    #[serde(deserialize_with = "flex::u64")]
    pub org_per_min: u64,
    #[serde(deserialize_with = "flex::u64")]
    pub org_burst: u64,
    /// API-key tiers above `free`, requests per second (burst: one second's worth), one bucket
    /// per (key owner, tier) instead of the owner's per-user limits. 0 = unlimited. A `free`
    /// key shares its owner's per-user buckets (AUTH-7), so it has no setting of its own.
    #[serde(deserialize_with = "flex::u64")]
    pub tier_pro_per_sec: u64,
    #[serde(deserialize_with = "flex::u64")]
    pub tier_team_per_sec: u64,
    #[serde(deserialize_with = "flex::u64")]
    pub tier_enterprise_per_sec: u64,
    /// Once a request's first byte arrives, its headers must be complete within this time
    /// (the first request of a connection: from the accept).
    #[serde(deserialize_with = "flex::u64")]
    pub header_read_timeout_secs: u64,
    /// Once a request's head has arrived, its whole body must arrive within this time; past
    /// it the request is answered 408 and the connection closed (a trickled body cannot hold
    /// a connection).
    #[serde(deserialize_with = "flex::u64")]
    pub body_timeout_secs: u64,
    /// A keep-alive connection waiting this long for its next request is closed.
    #[serde(deserialize_with = "flex::u64")]
    pub idle_timeout_secs: u64,
    /// Open connections (WebSockets included); further clients wait in the accept backlog.
    #[serde(deserialize_with = "flex::u64")]
    pub max_connections: u64,
    /// Open connections from one client address (an IPv6 client: its /64); a further one is
    /// answered 429 and closed. Trusted proxies are exempt (they carry many clients).
    #[serde(deserialize_with = "flex::u64")]
    pub max_connections_per_ip: u64,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            global_per_sec: 5_000,
            ip_per_min: 1_200,
            ip_burst: 300,
            auth_per_min: 20,
            auth_burst: 20,
            user_reads_per_min: 300,
            user_reads_burst: 100,
            user_writes_per_min: 60,
            user_writes_burst: 20,
            user_uploads_per_min: 20,
            user_uploads_burst: 5,
            org_per_min: 6_000,
            org_burst: 1_000,
            tier_pro_per_sec: 100,
            tier_team_per_sec: 1_000,
            tier_enterprise_per_sec: 0,
            header_read_timeout_secs: 10,
            body_timeout_secs: 30,
            idle_timeout_secs: 60,
            max_connections: 50_000,
            max_connections_per_ip: 256,
        }
    }
}

impl RateLimitSettings {
    /// Settings that cannot work: a limited layer with no burst, a zero timeout or cap.
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (rate, burst, name) in [
            (self.ip_per_min, self.ip_burst, "ip"),
            (self.auth_per_min, self.auth_burst, "auth"),
            (self.user_reads_per_min, self.user_reads_burst, "user_reads"),
            (
                self.user_writes_per_min,
                self.user_writes_burst,
                "user_writes",
            ),
            (
                self.user_uploads_per_min,
                self.user_uploads_burst,
                "user_uploads",
            ),
            (self.org_per_min, self.org_burst, "org"),
        ] {
            if rate > 0 && burst == 0 {
                out.push(format!(
                    "rate_limit.{name}_burst must be at least 1 while {name}_per_min is set"
                ));
            }
        }
        for (value, name) in [
            (self.header_read_timeout_secs, "header_read_timeout_secs"),
            (self.body_timeout_secs, "body_timeout_secs"),
            (self.idle_timeout_secs, "idle_timeout_secs"),
            (self.max_connections, "max_connections"),
            (self.max_connections_per_ip, "max_connections_per_ip"),
        ] {
            if value == 0 {
                out.push(format!("rate_limit.{name} must be at least 1"));
            }
        }
        out
    }
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
    /// Separate bind for Prometheus metrics.
    pub metrics_listen: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// TLS is terminated by a trusted reverse proxy.
    #[serde(deserialize_with = "flex::bool")]
    pub trust_proxy_tls: bool,
    pub session: SessionConfig,
    pub gateway: GatewaySettings,
    pub rate_limit: RateLimitSettings,
    pub retention: RetentionSettings,
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
}

/// `[retention]`: how often the retention job runs (DATA-5). What it keeps is set per org
/// (`message_retention_days`, `audit_retention_days`), the audit log never shorter than
/// `audit_retention_floor_days` (`CONCLAVE_RETENTION__AUDIT_RETENTION_FLOOR_DAYS`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// Seconds between runs of the job (each run also logs every audit chain's signed head).
    #[serde(deserialize_with = "flex::u64")]
    pub interval_secs: u64,
    /// The shortest `audit_retention_days` an org owner may set (DATA-5): 30 or more.
    #[serde(deserialize_with = "flex::u64")]
    pub audit_retention_floor_days: u64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            interval_secs: 3600,
            audit_retention_floor_days: 30,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./conclave-data"),
            database_url: None,
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
            metrics_listen: None,
            tls_cert: None,
            tls_key: None,
            trust_proxy_tls: false,
            session: SessionConfig::default(),
            gateway: GatewaySettings::default(),
            rate_limit: RateLimitSettings::default(),
            retention: RetentionSettings::default(),
            webhook_allow_cidrs: vec![],
            webhook_allow_cidrs_acknowledged: false,
            webhook_allow_ports: vec![],
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

/// The shortest preset bootstrap token accepted (CORE-3a).
pub const BOOTSTRAP_TOKEN_MIN_CHARS: usize = 32;

/// Environment variables with this prefix are reserved for the test suite and not read here.
const TEST_PREFIX: &str = "CONCLAVE_TEST_";

impl Config {
    /// Loads defaults, then the TOML file, then `vars` (the process environment in `main`).
    pub fn load(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?
            }
            None => toml::Table::new(),
        };
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix("CONCLAVE_") else {
                continue;
            };
            if name.starts_with(TEST_PREFIX) {
                continue;
            }
            let (rest, value) = match rest.strip_suffix("_FILE") {
                Some(base) => {
                    let text =
                        std::fs::read_to_string(&value).map_err(|source| ConfigError::Read {
                            path: value.clone(),
                            source,
                        })?;
                    (base, text.trim_end_matches(['\n', '\r']).to_owned())
                }
                None => (rest, value),
            };
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            insert(&mut table, &path, value, &name)?;
        }
        toml::Value::Table(table)
            .try_into::<Config>()
            .map_err(|e| ConfigError::Invalid(e.to_string()))
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

    /// CORE-3a, in every mode: a secret that is set is never empty or blank (an empty token
    /// would match an empty header), and a preset bootstrap token is long enough to be one.
    fn secret_problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (secret, name) in [
            (&self.admin_token, "admin_token (CONCLAVE_ADMIN_TOKEN)"),
            (&self.access_token, "access_token (CONCLAVE_ACCESS_TOKEN)"),
            (
                &self.bootstrap_token,
                "bootstrap_token (CONCLAVE_BOOTSTRAP_TOKEN)",
            ),
            (&self.master_key, "master_key (CONCLAVE_MASTER_KEY)"),
        ] {
            if secret
                .as_ref()
                .is_some_and(|s| s.expose_secret().trim().is_empty())
            {
                out.push(format!(
                    "{name} is set but empty: give it a value or leave it unset"
                ));
            }
        }
        if let Some(t) = &self.bootstrap_token {
            let t = t.expose_secret();
            if !t.trim().is_empty() && t.chars().count() < BOOTSTRAP_TOKEN_MIN_CHARS {
                out.push(format!(
                    "bootstrap_token (CONCLAVE_BOOTSTRAP_TOKEN) must have at least {BOOTSTRAP_TOKEN_MIN_CHARS} characters"
                ));
            }
        }
        out
    }

    /// Refuses settings that cannot work, and in production settings that are unsafe (CORE-3).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.tls_cert.is_some() || self.tls_key.is_some() {
            problems.push(
                "native TLS (tls_cert/tls_key) is not available in this build: terminate TLS at a reverse proxy and set trust_proxy_tls"
                    .to_owned(),
            );
        }
        if let Some(v) = &self.min_client_version {
            if semver::Version::parse(v).is_err() {
                problems.push(format!(
                    "min_client_version must be a semantic version like 1.2.0, got {v:?}"
                ));
            }
        }
        problems.extend(self.rate_limit.problems());
        if self.retention.audit_retention_floor_days < 30 {
            problems.push(
                "retention.audit_retention_floor_days can only raise the 30-day floor".to_owned(),
            );
        }
        problems.extend(self.secret_problems());
        let public = self.public_url();
        if !(public.starts_with("http://") || public.starts_with("https://")) {
            problems.push("public_url must start with http:// or https://".to_owned());
        }
        let nats_authenticated = self
            .nats_url
            .as_deref()
            .map(crate::fanout::nats::url_has_credentials);
        if let Some(Err(e)) = &nats_authenticated {
            problems.push(e.clone());
        }
        if self.env == Environment::Production {
            if nats_authenticated == Some(Ok(false)) && !self.nats_allow_unauthenticated {
                problems.push(
                    "production refuses a NATS URL without credentials: use nats://user:password@host or nats://token@host, or set nats_allow_unauthenticated = true"
                        .to_owned(),
                );
            }
            if !self.webhook_allow_cidrs.is_empty() && !self.webhook_allow_cidrs_acknowledged {
                problems.push(
                    "production refuses webhook_allow_cidrs (outbound requests to private ranges) unless webhook_allow_cidrs_acknowledged = true"
                        .to_owned(),
                );
            }
            if self.cors_origins.iter().any(|o| o == "*") {
                problems.push(
                    "production refuses a wildcard CORS origin (cors_origins = \"*\")".to_owned(),
                );
            }
            if self
                .admin_token
                .as_ref()
                .is_some_and(|t| t.expose_secret().chars().count() < 32)
            {
                problems.push(
                    "production requires an admin token of at least 32 characters".to_owned(),
                );
            }
            if self.master_key.is_none() {
                problems.push("production requires CONCLAVE_MASTER_KEY (a generated key is for development only)".to_owned());
            }
            if !public.starts_with("https://") || !self.trust_proxy_tls {
                problems.push(
                    "production refuses plain HTTP: set an https:// public_url with trust_proxy_tls = true behind a TLS proxy"
                        .to_owned(),
                );
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems.join("; ")))
        }
    }
}

fn insert(
    table: &mut toml::Table,
    path: &[String],
    value: String,
    env_name: &str,
) -> Result<(), ConfigError> {
    match path {
        [] => Ok(()),
        [leaf] => {
            table.insert(leaf.clone(), toml::Value::String(value));
            Ok(())
        }
        [head, rest @ ..] => {
            let entry = table
                .entry(head.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => insert(t, rest, value, env_name),
                _ => Err(ConfigError::Invalid(format!(
                    "{env_name}: `{head}` is not a section"
                ))),
            }
        }
    }
}

/// Deserializers that accept a value either natively (TOML) or as a string (environment).
mod flex {
    use super::*;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Or<T> {
        Native(T),
        Text(String),
    }

    pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        match Or::<bool>::deserialize(d)? {
            Or::Native(b) => Ok(b),
            Or::Text(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(serde::de::Error::custom(format!(
                    "expected true or false, got {s:?}"
                ))),
            },
        }
    }

    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Or::<u64>::deserialize(d)? {
            Or::Native(n) => Ok(n),
            Or::Text(s) => s
                .trim()
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("expected a number, got {s:?}"))),
        }
    }

    pub fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match Or::<Vec<String>>::deserialize(d)? {
            Or::Native(v) => v,
            Or::Text(s) => s
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }

    pub fn ports<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
        match Or::<Vec<u16>>::deserialize(d)? {
            Or::Native(v) => Ok(v),
            Or::Text(s) => s
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse()
                        .map_err(|_| serde::de::Error::custom(format!("not a port: {p:?}")))
                })
                .collect(),
        }
    }

    pub fn cidrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
        list(d)?
            .into_iter()
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| serde::de::Error::custom(format!("not a CIDR: {s:?}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    /// Validates a production configuration that is safe apart from `extra`.
    fn production(extra: &[(&str, &str)]) -> Result<(), ConfigError> {
        let mut v = vec![
            ("CONCLAVE_ENV", "production"),
            (
                "CONCLAVE_MASTER_KEY",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
            ("CONCLAVE_PUBLIC_URL", "https://chat.example"),
            ("CONCLAVE_TRUST_PROXY_TLS", "true"),
        ];
        v.extend_from_slice(extra);
        Config::load(None, vars(&v)).unwrap().validate()
    }

    #[test]
    fn defaults_are_embedded() {
        let c = Config::load(None, vec![]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert!(c.database_url().starts_with("sqlite://"));
        assert_eq!(c.public_url(), "http://127.0.0.1:8080");
        c.validate().unwrap();
    }

    #[test]
    fn env_wins_over_file_and_nests() {
        let dir = std::env::temp_dir().join(format!("conclave-cfg-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:1\"\nregistration = \"open\"\n[session]\nidle_hours = 5\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&file),
            vars(&[
                ("CONCLAVE_LISTEN", "127.0.0.1:9"),
                ("CONCLAVE_SESSION__ABSOLUTE_DAYS", "2"),
                (
                    "CONCLAVE_CORS_ORIGINS",
                    "https://a.example, https://b.example",
                ),
                ("CONCLAVE_TEST_POSTGRES_URL", "ignored"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:9");
        assert_eq!(c.registration, RegistrationMode::Open);
        assert_eq!(c.session.idle_hours, 5);
        assert_eq!(c.session.absolute_days, 2);
        assert_eq!(
            c.cors_origins,
            vec!["https://a.example", "https://b.example"]
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(Config::load(None, vars(&[("CONCLAVE_LISTN", "x")])).is_err());
        let dir = std::env::temp_dir().join(format!("conclave-cfg-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "colour = 1\n").unwrap();
        assert!(Config::load(Some(&file), vec![]).is_err());
    }

    #[test]
    fn secrets_from_files() {
        let dir = std::env::temp_dir().join(format!("conclave-cfg-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "s3cret-admin-token\n").unwrap();
        let c = Config::load(
            None,
            vars(&[("CONCLAVE_ADMIN_TOKEN_FILE", file.to_str().unwrap())]),
        )
        .unwrap();
        assert_eq!(c.admin_token.unwrap().expose_secret(), "s3cret-admin-token");
    }

    #[test]
    fn rate_limit_section_from_file_and_env() {
        let c = Config::load(None, vec![]).unwrap();
        assert_eq!(c.rate_limit.user_reads_per_min, 300);
        assert_eq!(c.rate_limit.user_reads_burst, 100);
        assert_eq!(c.rate_limit.user_writes_per_min, 60);
        assert_eq!(c.rate_limit.user_writes_burst, 20);
        assert_eq!(c.rate_limit.auth_per_min, 20);
        assert_eq!(c.rate_limit.tier_pro_per_sec, 100);
        assert_eq!(c.rate_limit.tier_team_per_sec, 1_000);
        assert_eq!(c.rate_limit.tier_enterprise_per_sec, 0);
        assert_eq!(c.rate_limit.header_read_timeout_secs, 10);
        assert_eq!(c.rate_limit.idle_timeout_secs, 60);
        assert_eq!(c.rate_limit.body_timeout_secs, 30);
        assert_eq!(c.rate_limit.max_connections_per_ip, 256);
        assert!(
            Config::load(
                None,
                vars(&[("CONCLAVE_RATE_LIMIT__TIER_FREE_PER_SEC", "10")])
            )
            .is_err(),
            "free keys have no rate of their own: they share their owner's per-user limits"
        );
        let dir = std::env::temp_dir().join(format!("conclave-cfg-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "rate_limits = \"off\"\n[rate_limit]\nuser_reads_per_min = 30\nmax_connections = 7\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&file),
            vars(&[
                ("CONCLAVE_RATE_LIMIT__USER_READS_PER_MIN", "42"),
                ("CONCLAVE_RATE_LIMIT__IDLE_TIMEOUT_SECS", "5"),
            ]),
        )
        .unwrap();
        assert_eq!(c.rate_limits, OnOff::Off);
        assert_eq!(c.rate_limit.user_reads_per_min, 42, "env wins");
        assert_eq!(c.rate_limit.idle_timeout_secs, 5);
        assert_eq!(c.rate_limit.max_connections, 7);
        assert_eq!(
            c.rate_limit.user_writes_per_min, 60,
            "the rest keeps defaults"
        );
        assert!(Config::load(None, vars(&[("CONCLAVE_RATE_LIMIT__READS", "1")])).is_err());
        let bad = Config::load(
            None,
            vars(&[
                ("CONCLAVE_RATE_LIMIT__AUTH_BURST", "0"),
                ("CONCLAVE_RATE_LIMIT__HEADER_READ_TIMEOUT_SECS", "0"),
                ("CONCLAVE_RATE_LIMIT__BODY_TIMEOUT_SECS", "0"),
                ("CONCLAVE_RATE_LIMIT__MAX_CONNECTIONS_PER_IP", "0"),
            ]),
        )
        .unwrap();
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("rate_limit.auth_burst"), "{err}");
        assert!(err.contains("rate_limit.header_read_timeout_secs"), "{err}");
        assert!(err.contains("rate_limit.body_timeout_secs"), "{err}");
        assert!(err.contains("rate_limit.max_connections_per_ip"), "{err}");
    }

    /// CORE-3a: in every mode an empty or blank secret is an error, never "no check".
    #[test]
    fn empty_secrets_are_errors_in_every_mode() {
        for env in ["development", "production"] {
            for name in [
                "CONCLAVE_ADMIN_TOKEN",
                "CONCLAVE_ACCESS_TOKEN",
                "CONCLAVE_BOOTSTRAP_TOKEN",
                "CONCLAVE_MASTER_KEY",
            ] {
                for value in ["", "   ", "\t"] {
                    let c =
                        Config::load(None, vars(&[("CONCLAVE_ENV", env), (name, value)])).unwrap();
                    let err = c.validate().unwrap_err().to_string();
                    assert!(
                        err.contains("set but empty"),
                        "{env} {name}={value:?}: {err}"
                    );
                }
            }
        }
        let dir = std::env::temp_dir().join(format!("conclave-cfg-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "\n").unwrap();
        let c = Config::load(
            None,
            vars(&[("CONCLAVE_ADMIN_TOKEN_FILE", file.to_str().unwrap())]),
        )
        .unwrap();
        assert!(c.validate().is_err(), "an empty secret file too");
    }

    /// CORE-3a: a preset bootstrap token has at least 32 characters.
    #[test]
    fn preset_bootstrap_tokens_are_long() {
        let short = Config::load(None, vars(&[("CONCLAVE_BOOTSTRAP_TOKEN", "12345")])).unwrap();
        let err = short.validate().unwrap_err().to_string();
        assert!(err.contains("at least 32 characters"), "{err}");
        assert!(!err.contains("12345"), "secrets never appear in errors");
        let almost = "x".repeat(31);
        let c = Config::load(None, vars(&[("CONCLAVE_BOOTSTRAP_TOKEN", &almost)])).unwrap();
        assert!(c.validate().is_err());
        let long = "x".repeat(32);
        let c = Config::load(None, vars(&[("CONCLAVE_BOOTSTRAP_TOKEN", &long)])).unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn one_proxy_header_is_configured() {
        let c = Config::load(None, vec![]).unwrap();
        assert_eq!(c.proxy_header, ProxyHeader::XForwardedFor);
        let c = Config::load(None, vars(&[("CONCLAVE_PROXY_HEADER", "forwarded")])).unwrap();
        assert_eq!(c.proxy_header, ProxyHeader::Forwarded);
        let c = Config::load(None, vars(&[("CONCLAVE_PROXY_HEADER", "x-forwarded-for")])).unwrap();
        assert_eq!(c.proxy_header, ProxyHeader::XForwardedFor);
        for bad in ["both", "x-real-ip", ""] {
            assert!(
                Config::load(None, vars(&[("CONCLAVE_PROXY_HEADER", bad)])).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn production_refuses_unsafe_settings() {
        let c = Config::load(
            None,
            vars(&[
                ("CONCLAVE_ENV", "production"),
                ("CONCLAVE_CORS_ORIGINS", "*"),
                ("CONCLAVE_ADMIN_TOKEN", "short"),
            ]),
        )
        .unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("wildcard CORS"));
        assert!(err.contains("32 characters"));
        assert!(err.contains("MASTER_KEY"));
        assert!(err.contains("plain HTTP"));
        assert!(!err.contains("short"), "secrets never appear in errors");
        production(&[]).unwrap();
    }

    #[test]
    fn production_refuses_an_unauthenticated_nats_url_unless_acknowledged() {
        let err = production(&[("CONCLAVE_NATS_URL", "nats://nats.internal:4222")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("NATS URL without credentials"), "{err}");
        production(&[
            ("CONCLAVE_NATS_URL", "nats://nats.internal:4222"),
            ("CONCLAVE_NATS_ALLOW_UNAUTHENTICATED", "true"),
        ])
        .unwrap();
        production(&[(
            "CONCLAVE_NATS_URL",
            "nats://conclave:s3cret@nats.internal:4222",
        )])
        .unwrap();
        production(&[("CONCLAVE_NATS_URL", "nats://s3cret-token@nats.internal")]).unwrap();
        // Development accepts it; a URL that is not a NATS URL is refused everywhere.
        let dev = Config::load(
            None,
            vars(&[("CONCLAVE_NATS_URL", "nats://127.0.0.1:4222")]),
        )
        .unwrap();
        dev.validate().unwrap();
        let err = production(&[("CONCLAVE_NATS_URL", "http://user:s3cret@nats.internal")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a NATS URL"), "{err}");
        assert!(
            !err.contains("s3cret"),
            "secrets never appear in errors: {err}"
        );
    }

    #[test]
    fn webhook_allowlist_loads_and_production_needs_it_acknowledged() {
        let allow = ("CONCLAVE_WEBHOOK_ALLOW_CIDRS", "10.0.0.0/8, 127.0.0.1");
        let err = production(&[allow]).unwrap_err().to_string();
        assert!(err.contains("webhook_allow_cidrs_acknowledged"), "{err}");
        production(&[allow, ("CONCLAVE_WEBHOOK_ALLOW_CIDRS_ACKNOWLEDGED", "true")]).unwrap();
        production(&[]).unwrap();
        let dev = Config::load(
            None,
            vars(&[allow, ("CONCLAVE_WEBHOOK_ALLOW_PORTS", "8080, 9443")]),
        )
        .unwrap();
        dev.validate().unwrap();
        assert_eq!(
            dev.webhook_allow_cidrs,
            vec![
                "10.0.0.0/8".parse::<IpNet>().unwrap(),
                "127.0.0.1/32".parse().unwrap()
            ]
        );
        assert_eq!(dev.webhook_allow_ports, vec![8080, 9443]);
        let dir = std::env::temp_dir().join(format!("conclave-cfg-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "webhook_allow_cidrs = [\"fd00::/8\"]\nwebhook_allow_cidrs_acknowledged = true\nwebhook_allow_ports = [8443]\n",
        )
        .unwrap();
        let from_file = Config::load(Some(&file), vec![]).unwrap();
        assert_eq!(
            from_file.webhook_allow_cidrs,
            vec!["fd00::/8".parse::<IpNet>().unwrap()]
        );
        assert!(from_file.webhook_allow_cidrs_acknowledged);
        assert_eq!(from_file.webhook_allow_ports, vec![8443]);
        for bad in [
            ("CONCLAVE_WEBHOOK_ALLOW_CIDRS", "10.0.0.0/33"),
            ("CONCLAVE_WEBHOOK_ALLOW_PORTS", "70000"),
        ] {
            assert!(Config::load(None, vars(&[bad])).is_err(), "{bad:?}");
        }
    }
}
