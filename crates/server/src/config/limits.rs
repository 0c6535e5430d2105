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

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(30),
            identify_timeout: Duration::from_secs(10),
            resume_window: Duration::from_secs(300),
            frame_max_bytes: 64 * 1024,
            frames_per_minute: 120,
            max_connections_per_user: 10,
            max_connections_per_ip: 200,
            queue_frames: 1024,
            limits_on: true,
            write_coalesce: WRITE_COALESCE,
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
