//! The limits and timings the gateway and the accept loop run with, as the runtime
//! configuration holds them: `gateway` and `ratelimit::connections` consume these types, the
//! configuration owns them (so it depends on neither).

use ipnet::IpNet;
use std::sync::Arc;
use std::time::Duration;

/// Gateway limits and timings (reported in capabilities where clients need them).
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub heartbeat_interval: Duration,
    pub identify_timeout: Duration,
    pub resume_window: Duration,
    pub frame_max_bytes: usize,
    /// Frames a connection may send per minute (close 4008 beyond).
    pub frames_per_minute: u32,
    pub max_connections_per_user: usize,
    pub max_connections_per_ip: usize,
    /// Frames queued for a slow client before it is disconnected.
    pub queue_frames: usize,
    /// `false` when `CONCLAVE_RATE_LIMITS=off`: frame and connection caps are lifted.
    pub limits_on: bool,
    /// How long the hub may hold the frames of an event for a large audience, so that the
    /// events of that window reach each socket in one write (`gateway::hub`).
    pub write_coalesce: Duration,
}

/// The default `write_coalesce`: a few milliseconds at most added to a large fan-out, for
/// fewer system calls on both ends.
pub const WRITE_COALESCE: Duration = Duration::from_millis(4);
/// How long a new connection has to identify (not a setting).
pub const IDENTIFY_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames queued for a slow client before it is disconnected (not a setting).
pub const QUEUE_FRAMES: usize = 1024;

impl Default for GatewayConfig {
    /// What `[gateway]`'s defaults (`sections::GatewaySettings`, where they are written) give,
    /// with the rate limits on.
    fn default() -> Self {
        Self::from_settings(&super::GatewaySettings::default(), true)
    }
}

impl GatewayConfig {
    /// The runtime form of `[gateway]`; `limits_on` is `false` under `rate_limits = off`.
    #[must_use]
    pub fn from_settings(g: &super::GatewaySettings, limits_on: bool) -> Self {
        Self {
            heartbeat_interval: Duration::from_millis(g.heartbeat_interval_ms.max(1000)),
            identify_timeout: IDENTIFY_TIMEOUT,
            resume_window: Duration::from_secs(g.resume_window_secs.max(1)),
            frame_max_bytes: usize::try_from(g.frame_max_bytes).unwrap_or(usize::MAX),
            frames_per_minute: u32::try_from(g.frames_per_minute).unwrap_or(u32::MAX),
            max_connections_per_user: usize::try_from(g.max_connections_per_user)
                .unwrap_or(usize::MAX),
            max_connections_per_ip: usize::try_from(g.max_connections_per_ip).unwrap_or(usize::MAX),
            queue_frames: QUEUE_FRAMES,
            limits_on,
            write_coalesce: Duration::from_micros(g.write_coalesce_us),
        }
    }
}

/// The limits the accept loop applies.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Peers exempt from the per-IP cap.
    pub trusted_proxies: Arc<[IpNet]>,
}
