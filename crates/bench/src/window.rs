//! The measured windows of the scenarios: `idle` holds its connections; `fanout` and
//! `throughput` post through REST senders and count what the gateway clients receive.

use crate::agents::Streaming;
use crate::api::{Api, World};
use crate::cli::{IdleArgs, Traffic};
use crate::connect::Connected;
use crate::cpu::CpuMark;
use crate::gateway::Shared;
use crate::report::Report;
use crate::stats::{Latency, Percentiles};
use crate::sys;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// What a measured window works with: the stage set up, the clients connected, and how to
/// read the server's CPU (`pid`, clock ticks per second).
#[derive(Clone, Copy)]
pub struct Window<'a> {
    pub world: &'a World,
    pub conn: &'a Connected,
    pub shared: &'a Arc<Shared>,
    pub api: &'a Api,
    pub pid: Option<u32>,
    pub clk: u64,
}

/// `idle`: lets the connections settle, then holds them for the hold time and reports memory
/// per idle connection and CPU.
pub async fn idle(w: &Window<'_>, report: &mut Report, a: &IdleArgs) {
    let (shared, pid) = (w.shared, w.pid);
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
    let used = before.since(&after, w.clk);
    used.report(report);
    if let (Some(b), Some(c)) = (
        report.server_rss_before_kib,
        report.server_rss_connected_kib,
    ) {
        if held_at_start > 0 {
            report.rss_per_idle_connection_kib = Some((c as f64 - b as f64) / held_at_start as f64);
        }
    }
    report.window_secs = Some(used.wall);
}

/// Agents' streaming counted over the window.
struct AgentMark {
    tokens: u64,
    answers: u64,
    deltas: u64,
}

impl AgentMark {
    fn now(agents: &Streaming, shared: &Shared) -> Self {
        Self {
            tokens: agents.tokens(),
            answers: agents.answers(),
            deltas: shared.counters.stream_deltas.load(Ordering::Relaxed),
        }
    }
}

/// The measured window of `fanout` and `throughput`: senders (token, group) post for the
/// duration, then outstanding deliveries are awaited for at most the drain time. With `agents`,
/// their streaming during the window is reported too.
pub async fn traffic(
    w: &Window<'_>,
    report: &mut Report,
    traffic: &Traffic,
    senders: Vec<(String, usize)>,
    agents: Option<&Streaming>,
) {
    let Window {
        world,
        conn,
        shared,
        api,
        pid,
        clk,
    } = *w;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let groups = world.conversations.len();
    let persisted: Arc<Vec<AtomicU64>> = Arc::new((0..groups).map(|_| AtomicU64::new(0)).collect());
    let send_latency = Arc::new(Latency::new());
    let period =
        (traffic.rate > 0.0).then(|| Duration::from_secs_f64(senders.len() as f64 / traffic.rate));
    let counters = &shared.counters;

    let d0 = counters.deliveries();
    let a0 = agents.map(|a| AgentMark::now(a, shared));
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
    let a1 = agents.map(|a| AgentMark::now(a, shared));
    let window_cpu = CpuMark::now(pid);
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
    if let (Some(a), Some(a0), Some(a1)) = (agents, a0, a1) {
        let tokens = a1.tokens - a0.tokens;
        report.streaming_agents = Some(a.agents);
        report.agent_tokens = Some(tokens);
        report.agent_tokens_per_sec = Some(tokens as f64 / window);
        report.agent_answers = Some(a1.answers - a0.answers);
        report.stream_deltas_delivered = Some(a1.deltas - a0.deltas);
        report.server_cpu_us_per_token = before
            .since(&window_cpu, clk)
            .server
            .filter(|_| tokens > 0)
            .map(|us| us / tokens as f64);
    }
    if expected > total {
        shared.errors.note(format!(
            "{} deliveries missing after the drain",
            expected - total
        ));
    }
}
