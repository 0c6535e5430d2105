//! Command-line interface.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Run it against a server started with rate limits off, or the per-user / per-IP connection caps
and request limits will refuse most of the load, e.g.:

  CONCLAVE_DATA_DIR=$(mktemp -d) CONCLAVE_LISTEN=127.0.0.1:18181 \\
  CONCLAVE_ADMIN_TOKEN=<32+ chars> CONCLAVE_RATE_LIMITS=off conclave serve

  conclave-bench idle --url http://127.0.0.1:18181 --admin-token <same> \\
      --server-pid $(pgrep -nx conclave) --connections 1000 --hold-secs 10

The bench only talks to the given URL, which must resolve to a loopback address. It creates
users named bn<run>-<i> (and bn<run>-owner), one organization and its conversations on every
run; use a throw-away data directory. Many connections need many file descriptors on both
sides (the bench raises its own soft limit to the hard limit; start the server with a large
`ulimit -n`) and, from one source address, one ephemeral port each
(/proc/sys/net/ipv4/ip_local_port_range): --source-addrs spreads the connections over
127.0.0.1..127.0.0.K.

The last line printed on stdout is the result as one JSON object.";

/// Load generator for a running Conclave server: REST setup, WebSocket gateway clients,
/// measured scenarios.
#[derive(Parser, Debug)]
#[command(name = "conclave-bench", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Subcommand, Debug)]
pub enum Scenario {
    /// Hold N idle gateway connections; report server memory per connection.
    Idle(IdleArgs),
    /// N clients in one conversation; REST senders post; every client counts MESSAGE_CREATE.
    Fanout(FanoutArgs),
    /// C conversations × K clients each; REST senders per conversation post as fast as
    /// possible (or at --rate); report messages persisted/s and deliveries/s.
    Throughput(ThroughputArgs),
    /// N support-widget visitors each hold their Server-Sent Events stream open; report
    /// streams held and server memory per idle visitor stream.
    WidgetIdle(WidgetIdleArgs),
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Base URL of the server (must resolve to a loopback address).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,

    /// Management token of the server (CONCLAVE_ADMIN_TOKEN), used on /api/v1/admin/users.
    #[arg(long, env = "CONCLAVE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,

    /// Number of users the connections are spread over, round-robin
    /// [default: min(connections, 200)].
    #[arg(long)]
    pub users: Option<usize>,

    /// PID of the server process (same machine): enables RSS and CPU measurements.
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Gateway connections being opened (handshake + IDENTIFY + READY) at once.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,

    /// Time allowed for one connection to reach READY.
    #[arg(long, default_value_t = 30)]
    pub connect_timeout_secs: u64,

    /// Concurrent setup requests (user creation and login hash passwords: Argon2id is slow).
    #[arg(long, default_value_t = 8)]
    pub setup_concurrency: usize,

    /// Spread connections over 127.0.0.1..127.0.0.K as source addresses (beats the ephemeral
    /// port range for very large N) [default: chosen from N and the port range].
    #[arg(long)]
    pub source_addrs: Option<u8>,

    /// Write the JSON result to this file too (it is always printed as the last stdout line).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: Common,
    /// Connections to open and hold.
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub connections: usize,
    /// How long to hold them once all are connected.
    #[arg(long, default_value_t = 10)]
    pub hold_secs: u64,
    /// Pause after the last connection is ready before RSS is read.
    #[arg(long, default_value_t = 2)]
    pub settle_secs: u64,
    /// Pause after the setup before the baseline RSS is read. The setup's sign-ins run
    /// Argon2 (19 MiB each) on the server's blocking threads, which exit 10 s after their last
    /// job; an allocator that returns memory (mimalloc) gives it back only then, so a baseline
    /// read earlier is too high and the per-connection figure too low (it even went negative).
    #[arg(long, default_value_t = 12)]
    pub baseline_after_secs: u64,
}

#[derive(Args, Debug, Clone)]
pub struct WidgetIdleArgs {
    #[command(flatten)]
    pub common: Common,
    /// Visitor streams to open and hold.
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub streams: usize,
    /// How long to hold them once all are open.
    #[arg(long, default_value_t = 10)]
    pub hold_secs: u64,
    /// Pause after the last stream is open before RSS is read.
    #[arg(long, default_value_t = 2)]
    pub settle_secs: u64,
}

#[derive(Args, Debug, Clone)]
pub struct Traffic {
    /// Total messages per second over all senders; 0 = as fast as possible (closed loop).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Length of the measured window.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// After the window, wait at most this long for outstanding deliveries.
    #[arg(long, default_value_t = 5)]
    pub drain_secs: u64,
}

/// AI agents streaming answers during the window, as background load (issue 14).
#[derive(Args, Debug, Clone)]
pub struct AgentLoad {
    /// Agents kept streaming answers at once, each in a direct conversation with one of the
    /// bench users (0: none). The server must allow the bench's model endpoint
    /// (scripts/bench.sh does: CONCLAVE_AGENT_ALLOW_CIDRS=127.0.0.1/32,
    /// CONCLAVE_AGENT_ALLOW_PORTS=<--model-port>).
    #[arg(long, default_value_t = 0)]
    pub streaming_agents: usize,
    /// Tokens (chunks) in each answer of the bench's model.
    #[arg(long, default_value_t = 200)]
    pub agent_tokens: usize,
    /// Time between two tokens of an answer.
    #[arg(long, default_value_t = 20)]
    pub agent_token_interval_ms: u64,
    /// Loopback port of the bench's OpenAI-compatible model endpoint.
    #[arg(long, default_value_t = 18190)]
    pub model_port: u16,
}

#[derive(Args, Debug, Clone)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub traffic: Traffic,
    #[command(flatten)]
    pub agents: AgentLoad,
    /// Clients (gateway connections) in the one conversation.
    #[arg(long, short = 'n', default_value_t = 200)]
    pub clients: usize,
    /// Concurrent REST senders.
    #[arg(long, default_value_t = 1)]
    pub senders: usize,
}

#[derive(Args, Debug, Clone)]
pub struct ThroughputArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub traffic: Traffic,
    /// Number of conversations (each with its own users).
    #[arg(long, default_value_t = 10)]
    pub conversations: usize,
    /// Gateway connections per conversation.
    #[arg(long, default_value_t = 10)]
    pub clients_per_conversation: usize,
    /// Concurrent REST senders per conversation.
    #[arg(long, default_value_t = 1)]
    pub senders_per_conversation: usize,
}

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Idle(_) => "idle",
            Self::Fanout(_) => "fanout",
            Self::Throughput(_) => "throughput",
            Self::WidgetIdle(_) => "widget-idle",
        }
    }

    pub fn common(&self) -> &Common {
        match self {
            Self::Idle(a) => &a.common,
            Self::Fanout(a) => &a.common,
            Self::Throughput(a) => &a.common,
            Self::WidgetIdle(a) => &a.common,
        }
    }

    /// Total gateway connections the scenario opens.
    pub fn connections(&self) -> usize {
        match self {
            Self::Idle(a) => a.connections,
            Self::Fanout(a) => a.clients,
            Self::Throughput(a) => a.conversations * a.clients_per_conversation,
            Self::WidgetIdle(a) => a.streams,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_streaming_agents() {
        let cli = Cli::try_parse_from([
            "conclave-bench",
            "fanout",
            "--admin-token",
            "x",
            "--streaming-agents",
            "50",
            "--agent-tokens",
            "100",
        ])
        .unwrap();
        match cli.scenario {
            Scenario::Fanout(f) => {
                assert_eq!(f.agents.streaming_agents, 50);
                assert_eq!(f.agents.agent_tokens, 100);
                assert_eq!(f.agents.agent_token_interval_ms, 20);
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn parses_throughput() {
        let cli = Cli::try_parse_from([
            "conclave-bench",
            "throughput",
            "--admin-token",
            "x",
            "--conversations",
            "3",
            "--clients-per-conversation",
            "4",
            "--rate",
            "50",
        ])
        .unwrap();
        assert_eq!(cli.scenario.name(), "throughput");
        assert_eq!(cli.scenario.connections(), 12);
        match cli.scenario {
            Scenario::Throughput(t) => {
                assert!((t.traffic.rate - 50.0).abs() < f64::EPSILON);
                assert_eq!(t.common.url, "http://127.0.0.1:8080");
            }
            _ => unreachable!(),
        }
    }
}
