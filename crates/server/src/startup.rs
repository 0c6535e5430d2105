//! `Application::build` opens the store chosen by the database URL, derives keys, binds the
//! listener (port 0 in tests) and assembles the router; `run_until` serves until shutdown.

use crate::config::Config;
use crate::fanout::local::LocalFanOut;
use crate::fanout::{FanOut, FanOutSink};
use crate::gateway::{ClientPolicy, Gateway, GatewayConfig};
use crate::http;
use crate::ratelimit::connections::{self, ConnectionLimits};
use crate::ratelimit::RateLimiter;
use crate::state::{AppState, StateInner};
use conclave_core::keys::{MasterKey, ServerKeys};
use conclave_core::password::PasswordHasherPool;
use conclave_core::service::{AuthSettings, Services};
use conclave_core::store::Store;
use conclave_core::Clock;
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
}

/// In-process fan-out by default; NATS JetStream when `nats_url` is set (cluster).
async fn open_fanout(config: &Config, window: Duration) -> Result<Arc<dyn FanOut>, StartError> {
    match &config.nats_url {
        None => Ok(Arc::new(LocalFanOut::new(window, 200_000))),
        Some(url) => {
            let f = crate::fanout::nats::NatsFanOut::connect(url, &config.cluster_name, window)
                .await
                .map_err(|e| StartError::FanOut(e.to_string()))?;
            Ok(Arc::new(f))
        }
    }
}

/// Buckets in Redis when `redis_url` is set (and limits are on), else in this process.
async fn open_limiter(config: &Config, clock: Arc<dyn Clock>) -> Result<RateLimiter, StartError> {
    let enabled = config.rate_limits == crate::config::OnOff::On;
    match &config.redis_url {
        Some(url) if enabled => {
            RateLimiter::shared(url, &config.cluster_name, &config.rate_limit, clock)
                .await
                .map_err(|e| StartError::RateLimits(e.to_string()))
        }
        _ => Ok(RateLimiter::local(&config.rate_limit, enabled, clock)),
    }
}

/// Opens the store the URL names: `sqlite://…` or `postgres://…`.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>, StartError> {
    if url.starts_with("sqlite:") {
        let store = conclave_store_sqlite::SqliteStore::connect(url)
            .await
            .map_err(|e| StartError::Database(e.to_string()))?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = conclave_store_postgres::PgStore::connect(url)
            .await
            .map_err(|e| StartError::Database(e.to_string()))?;
        Ok(Arc::new(store))
    } else {
        Err(StartError::Config(
            "database_url must start with sqlite:// or postgres://".into(),
        ))
    }
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

/// The configured master key, or one generated into the data dir (0600) on first start.
fn master_key(config: &Config) -> Result<MasterKey, StartError> {
    load_master_key(config, true)
}

/// The configured master key, or the one in the data dir; when there is neither, a new one
/// (if `generate`) or an error. Tools other than `serve` never generate one: a key they made
/// up would seal nothing the server could open.
pub(crate) fn load_master_key(config: &Config, generate: bool) -> Result<MasterKey, StartError> {
    if let Some(k) = &config.master_key {
        return MasterKey::from_base64(k.expose_secret()).map_err(|e| StartError::Config(e.into()));
    }
    let path = config.data_dir.join("master.key");
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
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> Result<Self, StartError> {
        config
            .validate()
            .map_err(|e| StartError::Config(e.to_string()))?;
        ensure_private_dir(&config.data_dir)?;
        let keys = Arc::new(ServerKeys::derive(&master_key(&config)?));
        let store = open_store(&config.database_url()).await?;
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let g = &config.gateway;
        let gateway_config = GatewayConfig {
            heartbeat_interval: Duration::from_millis(g.heartbeat_interval_ms.max(1000)),
            identify_timeout: Duration::from_secs(10),
            resume_window: Duration::from_secs(g.resume_window_secs.max(1)),
            frame_max_bytes: g.frame_max_bytes as usize,
            frames_per_minute: g.frames_per_minute as u32,
            max_connections_per_user: g.max_connections_per_user as usize,
            max_connections_per_ip: g.max_connections_per_ip as usize,
            queue_frames: 1024,
            limits_on: config.rate_limits == crate::config::OnOff::On,
        };
        let fanout = open_fanout(&config, gateway_config.resume_window).await?;
        let limiter = Arc::new(open_limiter(&config, clock.clone()).await?);
        let services = Services::new(
            store,
            clock,
            keys,
            PasswordHasherPool::new(cores, Duration::from_secs(2)),
            AuthSettings {
                session_idle: chrono::Duration::hours(config.session.idle_hours as i64),
                session_absolute: chrono::Duration::days(config.session.absolute_days as i64),
                registration: config.registration,
            },
            Arc::new(FanOutSink(fanout.clone())),
        );
        let bootstrap = services
            .prepare_bootstrap(config.bootstrap_token.as_ref().map(|t| t.expose_secret()))
            .await
            .map_err(|e| StartError::Database(e.to_string()))?;
        if config.rate_limits == crate::config::OnOff::Off {
            tracing::warn!(
                "RATE LIMITS ARE OFF: every request, frame and connection limit is lifted"
            );
        }
        let listener =
            TcpListener::bind(&config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen.clone(),
                    source,
                })?;
        let bound = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen.clone(),
            source,
        })?;
        let port = bound.port();
        // Without a configured public URL, the one users reach is the address actually bound
        // (which matters when the configured port is 0).
        let public_url = match &config.public_url {
            Some(_) => config.public_url(),
            None => format!("http://{bound}"),
        };
        let bootstrap_link = bootstrap
            .map(|t| SecretString::from(format!("{public_url}/#bootstrap={}", t.expose_secret())));
        let node = format!("node-{}", uuid::Uuid::now_v7());
        let min_client_version = config
            .min_client_version
            .as_deref()
            .and_then(|v| semver::Version::parse(v).ok());
        let gateway = Gateway::start(
            gateway_config,
            services.clone(),
            fanout.clone(),
            node,
            ClientPolicy {
                allowed_origins: config.cors_origins.clone(),
                public_url: public_url.clone(),
                min_client_version: min_client_version.clone(),
                access_token: config.access_token.clone(),
            },
        );
        let state = AppState::new(StateInner {
            services,
            admin_token: config.admin_token.clone(),
            access_token: config.access_token.clone(),
            secure_cookies: public_url.starts_with("https://"),
            public_url,
            trusted_proxies: config.trusted_proxies.clone(),
            min_client_version: config
                .min_client_version
                .as_deref()
                .and_then(|v| semver::Version::parse(v).ok()),
            registration: config.registration,
            server_version: env!("CARGO_PKG_VERSION"),
            gateway: gateway.clone(),
            limiter,
        });
        let router = http::router(state.clone(), &config.cors_origins);
        Ok(Self {
            listener,
            router,
            port,
            bootstrap_link,
            state,
            gateway,
            fanout,
            connection_limits: ConnectionLimits::from_settings(&config.rate_limit),
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
        let signal = async move {
            shutdown.await;
            gateway.shutdown(Duration::from_secs(10)).await;
        };
        let served =
            connections::serve(self.listener, self.router, self.connection_limits, signal).await;
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
