//! The Redis bucket store (RATE-4): every node of a cluster charges the same buckets, so a
//! limit holds for the cluster, not per node. One Lua script evaluates all of a request's
//! buckets and charges them only if all allow — atomic, so concurrent requests on any number of
//! nodes cannot slip past a limit. It is the arithmetic of `gcra::evaluate`, line for line.
//!
//! Keys are `<cluster_name>:rl:<bucket>` holding the TAT (µs); a key lives at least the limit's
//! period, and never less than the time its bucket needs to refill. Times come from the node's
//! clock, passed to the script, so nodes should keep their clocks in sync (NTP); a skew of `s`
//! shifts a bucket by at most `s`. Redis Cluster is not supported (the keys of one request may
//! live in different slots): use one Redis primary.

use super::gcra::{Quota, Verdict};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

/// KEYS: the buckets. ARGV[1]: now (µs); then per bucket: interval (µs), burst, minimum TTL (ms).
/// Returns per bucket: allowed (0/1), remaining, retry-after (µs), reset (µs), new TAT (µs).
const GCRA_SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local out = {}
local tats = {}
local all = true
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[3 * i - 1])
  local burst = tonumber(ARGV[3 * i])
  local tat = now
  local stored = redis.call('GET', key)
  if stored then
    tat = math.max(tonumber(stored), now)
  end
  local new_tat = tat + interval
  local allow_at = new_tat - interval * burst
  if now < allow_at then
    all = false
    tats[i] = tat
    table.insert(out, 0)
    table.insert(out, 0)
    table.insert(out, allow_at - now)
    table.insert(out, tat - now)
  else
    tats[i] = new_tat
    table.insert(out, 1)
    table.insert(out, math.floor((interval * burst - (new_tat - now)) / interval))
    table.insert(out, 0)
    table.insert(out, new_tat - now)
  end
  table.insert(out, tats[i])
end
if all then
  for i, key in ipairs(KEYS) do
    local ttl = math.max(tonumber(ARGV[3 * i + 1]), math.ceil((tats[i] - now) / 1000))
    redis.call('SET', key, string.format('%.0f', tats[i]), 'PX', ttl)
  end
end
return out
";

/// Fields the script returns per bucket.
const FIELDS: usize = 5;

/// The longest one check may take, reconnecting included; past it the request goes on
/// unlimited (fail open) instead of waiting on Redis.
const CHECK_TIMEOUT: Duration = Duration::from_millis(500);

pub struct RedisStore {
    conn: ConnectionManager,
    script: redis::Script,
    prefix: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects and checks the server answers; an unreachable Redis is an error here, at start.
    pub async fn connect(url: &str, cluster_name: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        // One retry after about a second: an unreachable Redis fails the start within seconds.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(CHECK_TIMEOUT)
            .set_factor(2)
            .set_max_delay(2_000)
            .set_number_of_retries(1);
        let mut conn = client.get_connection_manager_with_config(config).await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        let script = redis::Script::new(GCRA_SCRIPT);
        let _sha: String = script.load_async(&mut conn).await?;
        Ok(Self {
            conn,
            script,
            prefix: format!("{cluster_name}:rl:"),
        })
    }

    /// Evaluates every bucket at `now`; only if all allow is each one charged.
    pub async fn check(
        &self,
        buckets: &[(String, Quota)],
        now: i64,
    ) -> redis::RedisResult<Vec<Verdict>> {
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(now);
        for (key, quota) in buckets {
            let ttl_ms = i64::try_from(quota.period.as_millis()).unwrap_or(i64::MAX);
            invocation
                .key(format!("{}{key}", self.prefix))
                .arg(quota.interval_us)
                .arg(quota.burst)
                .arg(ttl_ms.max(1));
        }
        let mut conn = self.conn.clone();
        let raw: Vec<i64> = tokio::time::timeout(CHECK_TIMEOUT, invocation.invoke_async(&mut conn))
            .await
            .map_err(|_| {
                redis::RedisError::from((redis::ErrorKind::IoError, "no answer in time"))
            })??;
        if raw.len() != buckets.len() * FIELDS {
            return Err(redis::RedisError::from((
                redis::ErrorKind::TypeError,
                "unexpected rate-limit script answer",
            )));
        }
        Ok(raw
            .chunks_exact(FIELDS)
            .map(|f| Verdict {
                allowed: f[0] == 1,
                remaining: u64::try_from(f[1]).unwrap_or(0),
                retry_after_us: f[2],
                reset_us: f[3],
                new_tat: f[4],
            })
            .collect())
    }
}
