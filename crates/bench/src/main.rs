//! `conclave-bench`: a load generator for a running Conclave server.
//!
//! It sets the stage through the public REST API (users created with the management token and
//! signed in, one org, conversations), opens gateway clients, runs one scenario (`idle`,
//! `fanout`, `throughput`) and reports connections held, server memory per idle connection,
//! messages persisted per second, deliveries per second, server CPU per delivery and
//! send→receive latency, as a table and as one JSON line. Every phase is bounded in time.

mod api;
mod cli;
mod gateway;
mod report;
mod stats;
mod sys;

use api::{Api, World};
use clap::Parser;
use cli::{Cli, Common, Scenario, Traffic};
use gateway::{Shared, Spec, Target};
use report::Report;
use reqwest::Url;
use stats::{Latency, Percentiles};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_path = cli.scenario.common().json.clone();
    match run(cli.scenario).await {
        Ok(report) => {
            print!("{}", report.table());
            let json = report.json();
            if let Some(path) = json_path {
                if let Err(e) = std::fs::write(&path, format!("{json}\n")) {
                    eprintln!("conclave-bench: cannot write {}: {e}", path.display());
                }
            }
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("conclave-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Which user each connection signs in as, and the conversations (groups of users).
#[derive(Debug, PartialEq)]
struct Layout {
    users: usize,
    /// Per conversation, the indices of its users.
    groups: Vec<Vec<usize>>,
    /// Per connection, `(user, group)`.
    conns: Vec<(usize, usize)>,
}

/// N connections spread round-robin over `users` users, all in one conversation.
fn layout_single(n: usize, users: usize) -> Layout {
    let users = users.clamp(1, n.max(1));
    Layout {
        users,
        groups: vec![(0..users).collect()],
        conns: (0..n).map(|i| (i % users, 0)).collect(),
    }
}

/// C conversations with K connections each; every conversation has its own users (so that a
/// client receives only its conversation's messages), `users_total / C` of them (1 to K).
fn layout_multi(c: usize, k: usize, users_total: usize) -> Layout {
    let per = (users_total / c.max(1)).clamp(1, k.max(1));
    let groups: Vec<Vec<usize>> = (0..c).map(|g| (g * per..(g + 1) * per).collect()).collect();
    let conns = (0..c)
        .flat_map(|g| (0..k).map(move |j| (g * per + j % per, g)))
        .collect();
    Layout {
        users: c * per,
        groups,
        conns,
    }
}

fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut x = (nanos as u64) ^ (u64::from(std::process::id()) << 40);
    let mut s = String::new();
    for _ in 0..6 {
        let d = (x % 36) as u32;
        s.push(char::from_digit(d, 36).unwrap_or('0'));
        x /= 36;
    }
    s
}

/// The gateway URL to use: the path from capabilities, on the host and port of `--url` (the
/// bench talks to nothing else), with `?v=1`.
fn gateway_url(base: &Url, advertised: &str) -> Result<Url, String> {
    let adv = Url::parse(advertised).map_err(|e| format!("gateway url {advertised:?}: {e}"))?;
    let mut u = base.clone();
    u.set_scheme(if base.scheme() == "https" {
        "wss"
    } else {
        "ws"
    })
    .map_err(|()| "cannot build the ws URL".to_owned())?;
    u.set_path(adv.path());
    u.set_query(Some("v=1"));
    u.set_fragment(None);
    if adv.host_str() != base.host_str()
        || adv.port_or_known_default() != base.port_or_known_default()
    {
        eprintln!(
            "note: capabilities advertise the gateway at {advertised}; using {u} (the bench only \
             talks to --url)"
        );
    }
    Ok(u)
}

async fn resolve_loopback(base: &Url) -> Result<SocketAddr, String> {
    let host = base.host_str().ok_or("--url has no host")?;
    let port = base.port_or_known_default().ok_or("--url has no port")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut loopback: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| a.ip().is_loopback())
        .collect();
    loopback.sort_by_key(|a| !a.is_ipv4());
    loopback.first().copied().ok_or_else(|| {
        format!(
            "{host} resolves to {addrs:?}: the bench only drives a server on this machine \
             (a loopback address such as 127.0.0.1)"
        )
    })
}

/// Source addresses for the connections, if they are spread (IPv4 loopback only).
fn source_addrs(common: &Common, n: usize, target: SocketAddr) -> Result<Vec<IpAddr>, String> {
    let range = sys::local_port_range();
    let ports = range.map(|(lo, hi)| hi - lo + 1);
    let needed = ports.map_or(1, |p| sys::source_addrs_needed(n, p));
    let k = common.source_addrs.unwrap_or(needed).max(1);
    if let (Some((lo, hi)), Some(p)) = (range, ports) {
        if needed > k {
            eprintln!(
                "warning: {n} connections to one server address need one ephemeral port each; \
                 the range {lo}-{hi} (/proc/sys/net/ipv4/ip_local_port_range) gives {p} per \
                 source address (minus ports still in TIME_WAIT). Expect AddrNotAvailable \
                 errors; use --source-addrs {needed} or widen the range (as root: sysctl \
                 net.ipv4.ip_local_port_range=\"1024 65535\")."
            );
        } else if k > 1 && common.source_addrs.is_none() {
            eprintln!(
                "note: {n} connections exceed 80% of the ephemeral port range {lo}-{hi}; \
                 spreading them over {k} source addresses 127.0.0.1..127.0.0.{k}"
            );
        }
    }
    if k == 1 {
        return Ok(Vec::new());
    }
    if !matches!(target.ip(), IpAddr::V4(ip) if ip.is_loopback()) {
        return Err("--source-addrs needs the server on an IPv4 loopback address".to_owned());
    }
    Ok((1..=k)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
        .collect())
}

struct Connected {
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
    ready: u64,
    ready_per_group: Vec<u64>,
    secs: f64,
}

impl Connected {
    /// Tells every client to close and waits (bounded) for them.
    async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let waited = tokio::time::timeout(Duration::from_secs(20), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if waited.is_err() {
            eprintln!("note: some clients did not close within 20 s; aborting them");
            self.tasks.abort_all();
        }
    }
}

async fn connect_all(
    layout: &Layout,
    world: &World,
    target: &Arc<Target>,
    shared: &Arc<Shared>,
    sources: &[IpAddr],
    concurrency: usize,
) -> Connected {
    let n = layout.conns.len();
    let (stop, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    for (index, &(user, group)) in layout.conns.iter().enumerate() {
        let spec = Spec {
            index,
            token: world.users[user].token.clone(),
            group,
            source: (!sources.is_empty()).then(|| sources[index % sources.len()]),
        };
        tasks.spawn(gateway::run(
            spec,
            target.clone(),
            shared.clone(),
            slots.clone(),
            ready_tx.clone(),
            stop_rx.clone(),
        ));
    }
    drop(ready_tx);
    let mut ready = 0u64;
    let mut failed = 0u64;
    let mut ready_per_group = vec![0u64; layout.groups.len()];
    let mut progress = tokio::time::interval(Duration::from_secs(2));
    progress.tick().await;
    // Every client reports exactly once, within its bounded connect time.
    while ready + failed < n as u64 {
        tokio::select! {
            got = ready_rx.recv() => match got {
                Some(Some(g)) => { ready += 1; ready_per_group[g] += 1; }
                Some(None) => failed += 1,
                None => break,
            },
            _ = progress.tick() => eprintln!("  connecting: {ready} ready, {failed} failed of {n}"),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!("  connected: {ready} ready, {failed} failed of {n} in {secs:.1}s");
    Connected {
        tasks,
        stop,
        ready,
        ready_per_group,
        secs,
    }
}

fn ticks_to_us(ticks: u64, clk: u64) -> f64 {
    ticks as f64 * 1_000_000.0 / clk as f64
}

struct CpuMark {
    at: Instant,
    server: Option<u64>,
    own: Option<u64>,
    machine: Option<u64>,
}

/// CPU used between two marks, in µs, and the wall time in s.
struct CpuUse {
    server: Option<f64>,
    own: Option<f64>,
    machine: Option<f64>,
    wall: f64,
}

impl CpuMark {
    fn now(pid: Option<u32>) -> Self {
        Self {
            at: Instant::now(),
            server: pid.and_then(|p| sys::cpu_ticks(Some(p))),
            own: sys::cpu_ticks(None),
            machine: sys::machine_busy_ticks(),
        }
    }

    fn since(&self, later: &Self, clk: u64) -> CpuUse {
        let d = |a: Option<u64>, b: Option<u64>| Some(ticks_to_us(b?.saturating_sub(a?), clk));
        CpuUse {
            server: d(self.server, later.server),
            own: d(self.own, later.own),
            machine: d(self.machine, later.machine),
            wall: later.at.duration_since(self.at).as_secs_f64(),
        }
    }
}

fn percent(us: Option<f64>, wall: f64) -> Option<f64> {
    us.map(|u| u / (wall * 1_000_000.0) * 100.0)
}

impl CpuUse {
    /// Fills the CPU fields of the report; warns when other processes used much CPU (the
    /// figures then understate what the server can do).
    fn report(&self, report: &mut Report) {
        report.server_cpu_percent = percent(self.server, self.wall);
        report.bench_cpu_percent = percent(self.own, self.wall);
        let others = match (self.machine, self.own) {
            (Some(m), Some(o)) => Some((m - o - self.server.unwrap_or(0.0)).max(0.0)),
            _ => None,
        };
        report.other_processes_cpu_percent = percent(others, self.wall);
        if let Some(p) = report.other_processes_cpu_percent {
            if p > 20.0 && report.server_cpu_percent.is_some() {
                eprintln!(
                    "warning: other processes used {p:.0}% of a core during the measurement; \
                     the machine was not quiet"
                );
            }
        }
    }
}

async fn run(scenario: Scenario) -> Result<Report, String> {
    let common = scenario.common().clone();
    let n = scenario.connections();
    if n == 0 {
        return Err("nothing to do: 0 connections".to_owned());
    }

    let limit = sys::raise_nofile().map_err(|e| format!("cannot raise RLIMIT_NOFILE: {e}"))?;
    if n as u64 + sys::FD_SLACK > limit {
        return Err(sys::nofile_explanation(n, limit));
    }
    if let Some(pid) = common.server_pid {
        if sys::rss_kib(pid).is_none() {
            return Err(format!(
                "--server-pid {pid}: no readable /proc/{pid}/status"
            ));
        }
        if let Some(server_limit) = sys::process_nofile(pid) {
            if (n as u64) + 64 > server_limit {
                eprintln!(
                    "warning: the server's open-file limit is {server_limit}, below the {n} \
                     connections asked for; start it with a larger `ulimit -n`"
                );
            }
        }
    }

    let base = Url::parse(&common.url).map_err(|e| format!("--url: {e}"))?;
    if base.scheme() != "http" {
        return Err("--url must be http:// (the bench drives a local server without TLS)".into());
    }
    let addr = resolve_loopback(&base).await?;
    let api = Api::new(base.clone(), 64)?;
    let gw = gateway_url(&base, &api.gateway_url().await?)?;
    let sources = source_addrs(&common, n, addr)?;

    let run = run_id();
    let users_wanted = common.users.unwrap_or(n.min(200)).max(1);
    let layout = match &scenario {
        Scenario::Throughput(t) => {
            layout_multi(t.conversations, t.clients_per_conversation, users_wanted)
        }
        _ => layout_single(n, users_wanted),
    };
    eprintln!(
        "conclave-bench {}: run {run}, {n} connections over {} users in {} conversation(s), \
         gateway {gw}",
        scenario.name(),
        layout.users,
        layout.groups.len()
    );
    let world = api::setup(
        &api,
        &common.admin_token,
        &run,
        layout.users,
        layout.groups.clone(),
        common.setup_concurrency,
    )
    .await?;

    let budget = common.connect_timeout_secs
        * (n.div_ceil(common.connect_concurrency.max(1)) as u64 + 1)
        + match &scenario {
            Scenario::Idle(a) => a.hold_secs + a.settle_secs,
            Scenario::Fanout(a) => a.traffic.duration_secs + a.traffic.drain_secs,
            Scenario::Throughput(a) => a.traffic.duration_secs + a.traffic.drain_secs,
        }
        + 180;
    let target = Arc::new(Target {
        addr,
        url: gw.to_string(),
        connect_timeout: Duration::from_secs(common.connect_timeout_secs.max(1)),
        deadline: tokio::time::Instant::now() + Duration::from_secs(budget),
    });
    let shared = Arc::new(Shared::new(&run));

    let mut report = Report {
        scenario: scenario.name(),
        url: common.url.clone(),
        machine_cpus: std::thread::available_parallelism().map_or(0, usize::from),
        connections_requested: n,
        users: layout.users,
        conversations: layout.groups.len(),
        ..Report::default()
    };
    let clk = sys::clock_ticks_per_sec();
    let pid = common.server_pid;
    report.server_rss_before_kib = pid.and_then(sys::rss_kib);

    let conn = connect_all(
        &layout,
        &world,
        &target,
        &shared,
        &sources,
        common.connect_concurrency,
    )
    .await;
    if conn.ready < n as u64 {
        let kinds = shared.errors.counts();
        if kinds
            .keys()
            .any(|k| k.contains("4008") || k.contains("HTTP 429"))
        {
            eprintln!(
                "hint: the server refused connections as rate limited (4008/429); run it with \
                 CONCLAVE_RATE_LIMITS=off for load tests"
            );
        }
        if kinds.keys().any(|k| k.contains("AddrNotAvailable")) {
            eprintln!(
                "hint: out of ephemeral ports (AddrNotAvailable); use --source-addrs or widen \
                 /proc/sys/net/ipv4/ip_local_port_range"
            );
        }
    }
    report.connections_ready = conn.ready;
    report.connect_secs = conn.secs;
    report.connect_per_sec = conn.ready as f64 / conn.secs.max(1e-9);

    match &scenario {
        Scenario::Idle(a) => {
            tokio::time::sleep(Duration::from_secs(a.settle_secs)).await;
            report.server_rss_connected_kib = pid.and_then(sys::rss_kib);
            let held_at_start = shared.counters.alive();
            let before = CpuMark::now(pid);
            let end = Instant::now() + Duration::from_secs(a.hold_secs);
            while Instant::now() < end {
                let left = end.saturating_duration_since(Instant::now());
                tokio::time::sleep(left.min(Duration::from_secs(5))).await;
                if Instant::now() < end {
                    eprintln!("  holding: {} connections open", shared.counters.alive());
                }
            }
            let after = CpuMark::now(pid);
            report.connections_held = shared.counters.alive();
            report.server_rss_end_kib = pid.and_then(sys::rss_kib);
            let used = before.since(&after, clk);
            used.report(&mut report);
            if let (Some(b), Some(c)) = (
                report.server_rss_before_kib,
                report.server_rss_connected_kib,
            ) {
                if held_at_start > 0 {
                    report.rss_per_idle_connection_kib =
                        Some((c as f64 - b as f64) / held_at_start as f64);
                }
            }
            report.window_secs = Some(used.wall);
        }
        Scenario::Fanout(a) => {
            let senders: Vec<(String, usize)> = (0..a.senders.max(1))
                .map(|s| (world.users[s % world.users.len()].token.clone(), 0))
                .collect();
            traffic(
                &mut report,
                &a.traffic,
                &world,
                senders,
                &conn,
                &shared,
                &api,
                pid,
                clk,
            )
            .await;
        }
        Scenario::Throughput(t) => {
            let mut senders = Vec::new();
            for (g, members) in layout.groups.iter().enumerate() {
                for s in 0..t.senders_per_conversation.max(1) {
                    let user = members[s % members.len()];
                    senders.push((world.users[user].token.clone(), g));
                }
            }
            traffic(
                &mut report,
                &t.traffic,
                &world,
                senders,
                &conn,
                &shared,
                &api,
                pid,
                clk,
            )
            .await;
        }
    }

    conn.shutdown().await;
    report.errors_by_kind = shared.errors.counts();
    report.errors = report.errors_by_kind.values().sum();
    report.error_samples = shared.errors.notes();
    Ok(report)
}

/// The measured window of `fanout` and `throughput`: senders (token, group) post for the
/// duration, then outstanding deliveries are awaited for at most the drain time.
#[allow(clippy::too_many_arguments)]
async fn traffic(
    report: &mut Report,
    traffic: &Traffic,
    world: &World,
    senders: Vec<(String, usize)>,
    conn: &Connected,
    shared: &Arc<Shared>,
    api: &Api,
    pid: Option<u32>,
    clk: u64,
) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let groups = world.conversations.len();
    let persisted: Arc<Vec<AtomicU64>> = Arc::new((0..groups).map(|_| AtomicU64::new(0)).collect());
    let send_latency = Arc::new(Latency::new());
    let period =
        (traffic.rate > 0.0).then(|| Duration::from_secs_f64(senders.len() as f64 / traffic.rate));
    let counters = &shared.counters;

    let d0 = counters.deliveries();
    let before = CpuMark::now(pid);
    let end = tokio::time::Instant::now() + Duration::from_secs(traffic.duration_secs);
    let mut tasks = JoinSet::new();
    let nsenders = senders.len().max(1);
    for (i, (token, g)) in senders.into_iter().enumerate() {
        let (api, shared, persisted, send_latency) = (
            api.clone(),
            shared.clone(),
            persisted.clone(),
            send_latency.clone(),
        );
        let conv = world.conversations[g].0.clone();
        tasks.spawn(async move {
            let mut tick = period.map(|p| {
                // Stagger the senders across one period.
                let start = tokio::time::Instant::now() + p.mul_f64(i as f64 / nsenders as f64);
                let mut t = tokio::time::interval_at(start, p);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                t
            });
            loop {
                if let Some(t) = tick.as_mut() {
                    tokio::select! {
                        _ = t.tick() => {}
                        () = tokio::time::sleep_until(end) => break,
                    }
                }
                if tokio::time::Instant::now() >= end {
                    break;
                }
                let sent = Instant::now();
                let content = shared.stamp();
                if api
                    .send_message(&token, &conv, &content, &shared.errors)
                    .await
                {
                    persisted[g].fetch_add(1, Ordering::Relaxed);
                    let us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                    send_latency.record_us(i, us);
                }
            }
        });
    }
    let mut progress = tokio::time::interval(Duration::from_secs(5));
    progress.tick().await;
    loop {
        tokio::select! {
            done = tasks.join_next() => if done.is_none() { break },
            _ = progress.tick() => eprintln!(
                "  sending: {} persisted, {} delivered",
                persisted.iter().map(|p| p.load(Ordering::Relaxed)).sum::<u64>(),
                counters.deliveries() - d0
            ),
        }
    }
    let window = before.at.elapsed().as_secs_f64();
    let d1 = counters.deliveries();
    report.connections_held = counters.alive();
    let total_persisted: u64 = persisted.iter().map(|p| p.load(Ordering::Relaxed)).sum();
    let expected: u64 = persisted
        .iter()
        .zip(&conn.ready_per_group)
        .map(|(p, r)| p.load(Ordering::Relaxed) * r)
        .sum();

    let drain_end = Instant::now() + Duration::from_secs(traffic.drain_secs);
    while counters.deliveries() - d0 < expected && Instant::now() < drain_end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = CpuMark::now(pid);
    let total = counters.deliveries() - d0;
    let used = before.since(&after, clk);

    report.window_secs = Some(window);
    report.messages_persisted = Some(total_persisted);
    report.messages_persisted_per_sec = Some(total_persisted as f64 / window);
    report.deliveries = Some(d1 - d0);
    report.deliveries_per_sec = Some((d1 - d0) as f64 / window);
    report.deliveries_total = Some(total);
    report.deliveries_expected = Some(expected);
    report.deliveries_missing = Some(expected.saturating_sub(total));
    report.server_cpu_us_per_delivery = used
        .server
        .filter(|_| total > 0)
        .map(|us| us / total as f64);
    used.report(report);
    report.server_rss_end_kib = pid.and_then(sys::rss_kib);
    report.latency_ms = Percentiles::from_us(&shared.latency.merged());
    report.send_latency_ms = Percentiles::from_us(&send_latency.merged());
    if expected > total {
        shared.errors.note(format!(
            "{} deliveries missing after the drain",
            expected - total
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_layout_round_robin() {
        let l = layout_single(5, 2);
        assert_eq!(l.users, 2);
        assert_eq!(l.groups, vec![vec![0, 1]]);
        assert_eq!(l.conns, vec![(0, 0), (1, 0), (0, 0), (1, 0), (0, 0)]);
        // Never more users than connections.
        assert_eq!(layout_single(3, 200).users, 3);
    }

    #[test]
    fn multi_layout_disjoint_users() {
        let l = layout_multi(3, 4, 6);
        assert_eq!(l.users, 6);
        assert_eq!(l.groups, vec![vec![0, 1], vec![2, 3], vec![4, 5]]);
        assert_eq!(l.conns.len(), 12);
        assert_eq!(&l.conns[..4], &[(0, 0), (1, 0), (0, 0), (1, 0)]);
        assert_eq!(&l.conns[8..], &[(4, 2), (5, 2), (4, 2), (5, 2)]);
        // More conversations than users: one user each.
        let l = layout_multi(10, 3, 4);
        assert_eq!(l.users, 10);
        // Never more users per conversation than clients.
        let l = layout_multi(2, 3, 200);
        assert_eq!(l.users, 6);
    }

    #[test]
    fn gateway_url_keeps_the_given_host() {
        let base = Url::parse("http://127.0.0.1:18181").unwrap();
        let u = gateway_url(&base, "ws://127.0.0.1:18181/gateway").unwrap();
        assert_eq!(u.as_str(), "ws://127.0.0.1:18181/gateway?v=1");
        let u = gateway_url(&base, "wss://chat.example.com/gateway").unwrap();
        assert_eq!(u.as_str(), "ws://127.0.0.1:18181/gateway?v=1");
    }

    #[test]
    fn run_ids_are_valid_username_parts() {
        let id = run_id();
        assert_eq!(id.len(), 6);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(format!("bn{id}-owner").len() <= 32);
    }

    #[tokio::test]
    async fn refuses_non_loopback() {
        let base = Url::parse("http://192.0.2.1:80").unwrap();
        assert!(resolve_loopback(&base).await.is_err());
        let base = Url::parse("http://127.0.0.1:8080").unwrap();
        assert!(resolve_loopback(&base).await.unwrap().ip().is_loopback());
    }
}
