//! The `[session]`, `[cache]`, `[gateway]`, `[rate_limit]` and `[retention]` sections of the layered
//! configuration, as written (numbers), with their defaults — the only place they are written.

use super::flex;
use serde::Deserialize;

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

/// The identity and access cache (`[cache]`, `CONCLAVE_CACHE__TTL_MS`, …; `core::cache`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// The most, in milliseconds, a cached session, key, membership, role or conversation
    /// setting can lag the database when the event that invalidates it is lost (events
    /// invalidate at once otherwise). 0 turns the cache off.
    #[serde(deserialize_with = "flex::u64")]
    pub ttl_ms: u64,
    /// Entries kept of each kind (credentials, 2FA, standings, conversations, participations,
    /// teams); past it the stale go first, then an arbitrary quarter.
    #[serde(deserialize_with = "flex::u64")]
    pub max_entries: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        let d = conclave_core::cache::CacheSettings::default();
        Self {
            ttl_ms: u64::try_from(d.ttl.as_millis()).unwrap_or(u64::MAX),
            max_entries: d.max_entries as u64,
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
    /// How long the frames of an event for a large audience (256 sockets or more on this node)
    /// may wait for the next events, so each socket gets them in one write; 0 writes at once.
    #[serde(deserialize_with = "flex::u64")]
    pub write_coalesce_us: u64,
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
            write_coalesce_us: u64::try_from(super::limits::WRITE_COALESCE.as_micros())
                .unwrap_or(u64::MAX),
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
    /// MCP tool calls of one credential (an API key), on top of the per-user limits (MCP-1).
    #[serde(deserialize_with = "flex::u64")]
    pub mcp_tool_calls_per_min: u64,
    #[serde(deserialize_with = "flex::u64")]
    pub mcp_tool_calls_burst: u64,
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
    /// Support widget calls (WEB-4) per widget key, whatever the visitor.
    #[serde(deserialize_with = "flex::u64")]
    pub widget_key_per_min: u64,
    #[serde(deserialize_with = "flex::u64")]
    pub widget_key_burst: u64,
    /// Support widget calls of one visitor session.
    #[serde(deserialize_with = "flex::u64")]
    pub widget_visitor_per_min: u64,
    #[serde(deserialize_with = "flex::u64")]
    pub widget_visitor_burst: u64,
    /// Support widget calls from one client IP (a session creation always counts here).
    #[serde(deserialize_with = "flex::u64")]
    pub widget_ip_per_min: u64,
    #[serde(deserialize_with = "flex::u64")]
    pub widget_ip_burst: u64,
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
            mcp_tool_calls_per_min: 120,
            mcp_tool_calls_burst: 30,
            header_read_timeout_secs: 10,
            body_timeout_secs: 30,
            idle_timeout_secs: 60,
            max_connections: 50_000,
            max_connections_per_ip: 256,
            widget_key_per_min: 3_000,
            widget_key_burst: 600,
            widget_visitor_per_min: 60,
            widget_visitor_burst: 20,
            widget_ip_per_min: 300,
            widget_ip_burst: 60,
        }
    }
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
