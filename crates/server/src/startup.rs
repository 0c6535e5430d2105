//! `Application::build` opens the store chosen by the database URL, derives keys, binds the
//! listener (port 0 in tests) and assembles the router; `run_until` serves until shutdown.

use crate::config::ConnectionLimits;
use crate::config::{Config, DatabaseUrl, RuntimeConfig};
use crate::fanout::local::LocalFanOut;
use crate::fanout::FanOut;
use crate::gateway::{ClientPolicy, Gateway};
use crate::http;
use crate::ratelimit::connections;
use crate::ratelimit::RateLimiter;
use crate::state::{AppState, StateInner};
use conclave_core::keys::{MasterKey, ServerKeys};
use conclave_core::password::PasswordHasherPool;
use conclave_core::service::Services;
use conclave_core::store::Store;
use conclave_core::{Clock, Ticker};
use secrecy::{ExposeSecret, SecretString};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Database(String),
    #[error("fan-out: {0}")]
    FanOut(String),
    #[error("rate limits: cannot reach Redis: {0}")]
    RateLimits(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    port: u16,
    bootstrap_link: Option<SecretString>,
    state: AppState,
    gateway: Arc<Gateway>,
    fanout: Arc<dyn FanOut>,
    connection_limits: ConnectionLimits,
    retention: RetentionJob,
    /// Ticks the writing of content-guard counters (RATE-6).
    guard_counts: Ticker,
    /// Ticks the directory check of LDAP-linked accounts (AUTH-10), when `[ldap]` is set.
    directory_check: Option<Ticker>,
    webhooks: crate::webhooks::DeliveryWorker,
    /// People's new messages, for the agents' dispatcher (`agent_runner::dispatch`).
    agent_triggers: tokio::sync::mpsc::Receiver<crate::agent_runner::dispatch::Trigger>,
    /// How often one user may call one agent per minute (AGENT-4).
    agent_invocations_per_minute: u64,
}

/// In-process fan-out by default; NATS JetStream when `nats_url` is set (cluster).
async fn open_fanout(
    config: &RuntimeConfig,
    window: Duration,
    keys: &ServerKeys,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn FanOut>, StartError> {
    match &config.nats_url {
        None => Ok(Arc::new(LocalFanOut::with_clock(clock, window, 200_000))),
        Some(url) => {
            use crate::fanout::nats::{EventKey, NatsFanOut};
            let key = EventKey::new(secrecy::SecretBox::new(Box::new(
                *keys.fanout.expose_secret(),
            )));
            let f = NatsFanOut::connect_with_clock(url, &config.cluster_name, window, key, clock)
                .await
                .map_err(|e| StartError::FanOut(e.to_string()))?;
            Ok(Arc::new(f))
        }
    }
}

/// Buckets in Redis when `redis_url` is set (and limits are on), else in this process.
async fn open_limiter(
    config: &RuntimeConfig,
    clock: Arc<dyn Clock>,
) -> Result<RateLimiter, StartError> {
    let enabled = config.rate_limits_on;
    match &config.redis_url {
        Some(url) if enabled => {
            RateLimiter::shared(url, &config.cluster_name, &config.rate_limit, clock)
                .await
                .map_err(|e| StartError::RateLimits(e.to_string()))
        }
        _ => Ok(RateLimiter::local(&config.rate_limit, enabled, clock)),
    }
}

/// Opens the store the URL names (an SQLite one with the given `synchronous` setting).
pub async fn open_store(
    url: &DatabaseUrl,
    synchronous: conclave_store_sqlite::Synchronous,
    audit_key: conclave_core::audit::AuditKey,
) -> Result<Arc<dyn Store>, StartError> {
    let store: Arc<dyn Store> = match url {
        DatabaseUrl::Sqlite(url) => Arc::new(
            conclave_store_sqlite::SqliteStore::open(url, audit_key, synchronous)
                .await
                .map_err(|e| StartError::Database(e.to_string()))?,
        ),
        DatabaseUrl::Postgres(url) => Arc::new(
            conclave_store_postgres::PgStore::connect(url, audit_key)
                .await
                .map_err(|e| StartError::Database(e.to_string()))?,
        ),
    };
    Ok(store)
}

/// The configuration, parsed and checked (CORE-3).
fn runtime(config: Config) -> Result<RuntimeConfig, StartError> {
    RuntimeConfig::try_from(config).map_err(|e| StartError::Config(e.to_string()))
}

fn ensure_private_dir(path: &Path) -> Result<(), StartError> {
    let err = |source| StartError::DataDir {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(path).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
}

/// The services over the configured database and file storage, for the command-line tools
/// (`conclave audit …`, `conclave keys …`): no listener, no gateway, events dropped. The master
/// key must exist already (configured, or generated by an earlier `serve`): a tool never makes
/// one.
pub async fn offline_services(config: &Config) -> Result<Services, StartError> {
    let config = runtime(config.clone())?;
    let (keys, store) = keys_and_store(&config, false).await?;
    let files = open_files(&config)?;
    struct Dropped;
    impl conclave_core::event::EventSink for Dropped {
        fn publish(&self, _event: conclave_core::event::Event) {}
    }
    Ok(Services::new(
        store,
        Arc::new(conclave_core::SystemClock),
        keys,
        PasswordHasherPool::new(1, Duration::from_secs(2)),
        config.auth,
        Arc::new(Dropped),
        files,
    ))
}

/// The configured file storage.
fn open_files(config: &RuntimeConfig) -> Result<Arc<crate::files::Files>, StartError> {
    crate::files::Files::open(config.files.clone())
        .map(Arc::new)
        .map_err(|e| StartError::Config(e.to_string()))
}

/// The server's keys (from [`server_keys`], which may `generate` the master key) and the
/// configured store, whose audit chains they sign.
async fn keys_and_store(
    config: &RuntimeConfig,
    generate: bool,
) -> Result<(Arc<ServerKeys>, Arc<dyn Store>), StartError> {
    let keys = Arc::new(server_keys(config, generate)?);
    let store = open_store(
        &config.database,
        config.sqlite_synchronous,
        keys.audit_key(),
    )
    .await?;
    Ok((keys, store))
}

/// The keys derived from the configured master key, or from the one in the data dir; when there
/// is neither, from a new one (if `generate`) or an error. Tools other than `serve` never
/// generate one: a key they made up would seal nothing the server could open.
fn server_keys(config: &RuntimeConfig, generate: bool) -> Result<ServerKeys, StartError> {
    match &config.secrets.master_key {
        Some(key) => Ok(ServerKeys::derive(key)),
        None => stored_master_key(&config.data_dir, generate).map(|key| ServerKeys::derive(&key)),
    }
}

/// The master key in the data dir, or one generated into it (0600) if `generate`.
fn stored_master_key(data_dir: &Path, generate: bool) -> Result<MasterKey, StartError> {
    let path = data_dir.join("master.key");
    let err = |source| StartError::DataDir {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => MasterKey::from_base64(&text)
            .map_err(|e| StartError::Config(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !generate => {
            Err(StartError::Config(format!(
                "no master key: set CONCLAVE_MASTER_KEY (or start the server once to generate {} in development)",
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = MasterKey::generate();
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            use std::io::Write;
            let mut file = opts.open(&path).map_err(err)?;
            file.write_all(key.to_base64().as_bytes()).map_err(err)?;
            tracing::warn!("generated a master key in the data directory (development only; set CONCLAVE_MASTER_KEY in production)");
            Ok(key)
        }
        Err(e) => Err(err(e)),
    }
}

impl Application {
    /// Parses `config` (refusing what cannot work or is unsafe), opens the store and the
    /// fan-out, binds the listener and assembles the router.
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> Result<Self, StartError> {
        let config = runtime(config)?;
        ensure_private_dir(&config.data_dir)?;
        let (keys, store) = keys_and_store(&config, true).await?;
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let fanout =
            open_fanout(&config, config.gateway.resume_window, &keys, clock.clone()).await?;
        let limiter = Arc::new(open_limiter(&config, clock.clone()).await?);
        let files = open_files(&config)?;
        let outbound = crate::outbound::OutboundGuard::new(config.outbound.clone())
            .map_err(|e| StartError::Config(e.to_string()))?;
        let agent_outbound = crate::outbound::OutboundGuard::new(config.agents.outbound.clone())
            .map_err(|e| StartError::Config(e.to_string()))?;
        let node = format!("node-{}", uuid::Uuid::now_v7());
        let (webhook_tap, webhooks) = crate::webhooks::delivery::tap(
            fanout.clone(),
            clock.ticker(crate::webhooks::delivery::POLL_INTERVAL),
            outbound.clone(),
            &node,
        );
        let (agent_tap, agent_triggers) = crate::agent_runner::dispatch::tap(Arc::new(webhook_tap));
        let services = Services::new(
            store,
            clock.clone(),
            keys,
            PasswordHasherPool::new(cores, Duration::from_secs(2)),
            config.auth.clone(),
            Arc::new(agent_tap),
            files.clone(),
        )
        .with_audit_retention_floor(config.retention.audit_retention_floor_days)
        .with_cache(config.cache)
        .with_gates(conclave_core::service::identity::Gates {
            access_token: config.secrets.access_token.clone(),
            management_token: config.secrets.admin_token.clone(),
        })
        .with_remote_screen(Arc::new(crate::moderation::ModerationClient::new(
            outbound.clone(),
            agent_outbound.clone(),
            crate::agents::provider::ProviderLimits::of(&config.agents),
        )));
        let bootstrap = services
            .prepare_bootstrap(
                config
                    .secrets
                    .bootstrap_token
                    .as_ref()
                    .map(|t| t.expose_secret()),
            )
            .await
            .map_err(|e| StartError::Database(e.to_string()))?;
        if !config.rate_limits_on {
            tracing::warn!(
                "RATE LIMITS ARE OFF: every request, frame and connection limit is lifted"
            );
        }
        let bind_error = |source| StartError::Bind {
            addr: config.listen.clone(),
            source,
        };
        let listener = TcpListener::bind(&config.listen)
            .await
            .map_err(bind_error)?;
        let bound = listener.local_addr().map_err(bind_error)?;
        // Without a configured public URL, the one users reach is the address actually bound
        // (which matters when the configured port is 0).
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"));
        let sso = Arc::new(crate::sso::Sso {
            host_jwt: crate::sso::host_jwt::HostJwtVerifier::new(config.host_jwt, &outbound),
            oidc: crate::sso::oidc::Oidc::new(config.oidc, &public_url, &outbound)
                .map_err(StartError::Config)?,
            ldap: config.ldap.map(crate::sso::ldap::Directory::new),
        });
        let bootstrap_link = bootstrap
            .map(|t| SecretString::from(format!("{public_url}/#bootstrap={}", t.expose_secret())));
        // MCP-2: the OAuth issuer is the public URL; its tokens are for `<public URL>/mcp`.
        let issuer = public_url.trim_end_matches('/').to_owned();
        let services = services.with_oauth(conclave_core::service::OAuthSettings {
            resource: format!("{issuer}/mcp"),
            issuer,
        });
        let gateway = Gateway::start(
            config.gateway.clone(),
            services.clone(),
            fanout.clone(),
            node,
            ClientPolicy {
                allowed_origins: config.cors_origins.clone(),
                public_url: public_url.clone(),
                min_client_version: config.min_client_version.clone(),
            },
        );
        let state = AppState::new(StateInner {
            services,
            secure_cookies: public_url.starts_with("https://"),
            public_url,
            trusted_proxies: config.trusted_proxies,
            proxy_header: config.proxy_header,
            body_timeout: config.body_timeout,
            min_client_version: config.min_client_version,
            registration: config.auth.registration,
            server_version: env!("CARGO_PKG_VERSION"),
            gateway: gateway.clone(),
            limiter,
            outbound,
            agent_outbound,
            agent_slots: Arc::new(tokio::sync::Semaphore::new(config.agents.max_concurrent)),
            agents: config.agents.clone(),
            files,
            sso,
        });
        let router = http::router(state.clone(), &config.cors_origins);
        let directory_check = (state.sso.ldap.as_ref()).map(|d| clock.ticker(d.check_interval()));
        Ok(Self {
            listener,
            router,
            port: bound.port(),
            bootstrap_link,
            state,
            gateway,
            fanout,
            connection_limits: config.connections,
            retention: RetentionJob::every(
                config.retention.interval,
                clock.clone(),
                crate::agents::abandoned_after(&config.agents),
            ),
            guard_counts: clock.ticker(GUARD_COUNTS_INTERVAL),
            directory_check,
            webhooks,
            agent_triggers,
            agent_invocations_per_minute: config.agent_invocations_per_minute,
        })
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `<public_url>/#bootstrap=<token>` while the server has no admin; print it once, to stderr.
    #[must_use]
    pub fn bootstrap_link(&self) -> Option<&SecretString> {
        self.bootstrap_link.as_ref()
    }

    #[must_use]
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves; then (CORE-10) tells every gateway client to
    /// reconnect (their sessions saved for RESUME on any node), stops accepting, drains
    /// in-flight requests and flushes the events they published. Connections are capped and
    /// slow clients timed out (RATE-5, `ratelimit::connections`).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let gateway = self.gateway.clone();
        let retention = tokio::spawn(
            self.retention
                .run(self.state.services.clone(), self.state.files.clone()),
        );
        let webhooks = tokio::spawn(self.webhooks.run(self.state.services.clone()));
        let agents = tokio::spawn(crate::agent_runner::dispatch::run(
            self.agent_triggers,
            self.state.clone(),
            self.agent_invocations_per_minute,
        ));
        let guard_counts = tokio::spawn(write_guard_counts(
            self.guard_counts,
            self.state.services.clone(),
        ));
        let directory_check = self.directory_check.map(|ticker| {
            tokio::spawn(check_directory(
                ticker,
                self.state.sso.clone(),
                self.state.services.clone(),
            ))
        });
        let signal = async move {
            shutdown.await;
            gateway.shutdown(Duration::from_secs(10)).await;
        };
        let served =
            connections::serve(self.listener, self.router, self.connection_limits, signal).await;
        retention.abort();
        webhooks.abort();
        agents.abort();
        guard_counts.abort();
        if let Some(check) = directory_check {
            check.abort();
        }
        if let Err(e) = self.state.services.flush_guard_counts().await {
            tracing::error!(error = %e, "content guard counters could not be written before exit");
        }
        // Bounded: a fan-out that cannot be reached must not hold the process forever.
        if tokio::time::timeout(Duration::from_secs(15), self.fanout.flush())
            .await
            .is_err()
        {
            tracing::error!("events could not all be handed to the fan-out before exit");
        }
        served
    }
}

/// How often each node writes the content-guard decisions it counted (RATE-6).
const GUARD_COUNTS_INTERVAL: Duration = Duration::from_secs(1);

/// Writes the guard decisions this node counted, every tick, until aborted (reads of the
/// counters write them first too).
async fn write_guard_counts(mut ticker: Ticker, services: Services) {
    loop {
        ticker.tick().await;
        if let Err(e) = services.flush_guard_counts().await {
            tracing::error!(error = %e, "writing content guard counters failed");
        }
    }
}

/// Looks every LDAP-linked account up again each tick of the server's clock (so a test
/// advancing a manual clock drives it), until aborted (AUTH-10): removed or disabled entries
/// lose their sessions, API keys and OAuth grants, group changes move org roles. Every node runs it; revoking twice is
/// harmless.
async fn check_directory(mut ticker: Ticker, sso: Arc<crate::sso::Sso>, services: Services) {
    let Some(directory) = sso.ldap.as_ref() else {
        return;
    };
    loop {
        ticker.tick().await;
        match directory.check(&services).await {
            Ok(r) if r.unreachable => tracing::warn!(
                checked = r.checked,
                "the LDAP directory could not be asked: the accounts left are checked next time"
            ),
            Ok(r) if r.revoked.any() => tracing::info!(
                gone = r.gone,
                sessions = r.revoked.sessions,
                api_keys = r.revoked.api_keys,
                oauth_grants = r.revoked.oauth_grants,
                "revoked the sessions, API keys and OAuth grants of accounts the directory no \
                 longer lets in"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "the LDAP directory check failed"),
        }
    }
}

/// The retention job (DATA-5): runs now and then every `interval` of the server's clock, so a
/// test advancing a manual clock drives it (and waits for it with `ManualClock::settled`). Every
/// node runs it; the store makes concurrent runs safe.
struct RetentionJob {
    ticker: Ticker,
    /// Answers streaming longer than this were left by a node that stopped (AGENT-3).
    abandoned_after: chrono::Duration,
}

impl RetentionJob {
    fn every(interval: Duration, clock: Arc<dyn Clock>, abandoned_after: chrono::Duration) -> Self {
        Self {
            ticker: clock.ticker(interval),
            abandoned_after,
        }
    }

    /// Runs until aborted; each run also sweeps blobs whose file rows are gone.
    async fn run(mut self, services: Services, files: Arc<crate::files::Files>) {
        loop {
            self.ticker.tick().await;
            match services.run_retention().await {
                Ok(r)
                    if r.messages_deleted > 0
                        || r.files_deleted > 0
                        || r.audit_rows_deleted > 0 =>
                {
                    tracing::info!(
                        messages = r.messages_deleted,
                        files = r.files_deleted,
                        audit_rows = r.audit_rows_deleted,
                        audit_prunes_refused = r.audit_prunes_refused,
                        "retention job pruned old data"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "retention job failed"),
            }
            match services.forget_idempotency_keys().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(keys = n, "forgot idempotency keys past their window"),
                Err(e) => tracing::error!(error = %e, "forgetting old idempotency keys failed"),
            }
            match services.fail_abandoned_streams(self.abandoned_after).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(answers = n, "ended answers their node left streaming"),
                Err(e) => tracing::error!(error = %e, "ending abandoned answers failed"),
            }
            let now = services.clock.now();
            let grace = crate::files::sweep::SWEEP_GRACE;
            match services.expire_upload_leases(now - grace).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(uploads = n, "gave back the quota of abandoned uploads"),
                Err(e) => tracing::error!(error = %e, "expiring upload leases failed"),
            }
            if let Err(e) = crate::files::sweep::sweep(&files, &services, now, grace).await {
                tracing::error!(error = %e, "file sweep failed");
            }
        }
    }
}
