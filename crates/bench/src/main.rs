//! `conclave-bench`: a load generator for a running Conclave server.
//!
//! It sets the stage through the public REST API (users created with the management token and
//! signed in, one org, conversations), opens gateway clients, runs one scenario (`idle`,
//! `fanout`, `throughput`) and reports connections held, server memory per idle connection,
//! messages persisted per second, deliveries per second, server CPU per delivery and
//! send→receive latency, as a table and as one JSON line. Every phase is bounded in time.

mod addr;
mod agents;
mod api;
mod cli;
mod connect;
mod cpu;
mod gateway;
mod layout;
mod report;
mod stats;
mod sys;
mod widget;
mod window;

use addr::{gateway_url, resolve_loopback, source_addrs};
use api::Api;
use clap::Parser;
use cli::{Cli, Scenario};
use connect::connect_all;
use gateway::{Shared, Target};
use layout::{layout_multi, layout_single};
use report::Report;
use reqwest::Url;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use window::Window;

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
    let run = run_id();
    if let Scenario::WidgetIdle(a) = &scenario {
        eprintln!("conclave-bench widget-idle: run {run}, {n} visitor streams");
        let mut report = Report {
            scenario: scenario.name(),
            url: common.url.clone(),
            machine_cpus: std::thread::available_parallelism().map_or(0, usize::from),
            connections_requested: n,
            ..Report::default()
        };
        widget::run(&api, a, &run, &mut report).await?;
        return Ok(report);
    }
    let gw = gateway_url(&base, &api.gateway_url().await?)?;
    let sources = source_addrs(&common, n, addr)?;

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
            Scenario::WidgetIdle(a) => a.hold_secs + a.settle_secs,
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
    if let (Scenario::Idle(a), Some(_)) = (&scenario, pid) {
        eprintln!(
            "  waiting {} s for the server's memory to settle before the baseline",
            a.baseline_after_secs
        );
        tokio::time::sleep(Duration::from_secs(a.baseline_after_secs)).await;
    }
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

    let window = Window {
        world: &world,
        conn: &conn,
        shared: &shared,
        api: &api,
        pid,
        clk,
    };
    match &scenario {
        Scenario::Idle(a) => window::idle(&window, &mut report, a).await,
        Scenario::Fanout(a) => {
            let senders: Vec<(String, usize)> = (0..a.senders.max(1))
                .map(|s| (world.users[s % world.users.len()].token.clone(), 0))
                .collect();
            let streaming = if a.agents.streaming_agents > 0 {
                let s = agents::start(&api, &world, &a.agents, &shared).await?;
                // Let every agent get its first answer going before the window opens.
                tokio::time::sleep(Duration::from_secs(2)).await;
                Some(s)
            } else {
                None
            };
            window::traffic(
                &window,
                &mut report,
                &a.traffic,
                senders,
                streaming.as_ref(),
            )
            .await;
            if let Some(s) = streaming {
                s.stop().await;
            }
        }
        Scenario::Throughput(t) => {
            let mut senders = Vec::new();
            for (g, members) in layout.groups.iter().enumerate() {
                for s in 0..t.senders_per_conversation.max(1) {
                    let user = members[s % members.len()];
                    senders.push((world.users[user].token.clone(), g));
                }
            }
            window::traffic(&window, &mut report, &t.traffic, senders, None).await;
        }
        Scenario::WidgetIdle(_) => unreachable!("answered before any gateway client"),
    }

    conn.shutdown().await;
    report.errors_by_kind = shared.errors.counts();
    report.errors = report.errors_by_kind.values().sum();
    report.error_samples = shared.errors.notes();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_valid_username_parts() {
        let id = run_id();
        assert_eq!(id.len(), 6);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(format!("bn{id}-owner").len() <= 32);
    }
}
