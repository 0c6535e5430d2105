//! The result: a table for people, one JSON object for machines.

use crate::stats::Percentiles;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Serialize, Debug, Default)]
pub struct Report {
    pub scenario: &'static str,
    pub url: String,
    pub machine_cpus: usize,
    pub connections_requested: usize,
    pub connections_ready: u64,
    /// Still open at the end of the hold / measured window.
    pub connections_held: u64,
    pub users: usize,
    pub conversations: usize,
    pub connect_secs: f64,
    pub connect_per_sec: f64,
    pub server_rss_before_kib: Option<u64>,
    pub server_rss_connected_kib: Option<u64>,
    pub server_rss_end_kib: Option<u64>,
    pub rss_per_idle_connection_kib: Option<f64>,
    pub window_secs: Option<f64>,
    pub messages_persisted: Option<u64>,
    pub messages_persisted_per_sec: Option<f64>,
    /// Deliveries inside the window.
    pub deliveries: Option<u64>,
    pub deliveries_per_sec: Option<f64>,
    /// Deliveries including the drain after the window.
    pub deliveries_total: Option<u64>,
    /// Persisted messages × the READY connections of their conversation.
    pub deliveries_expected: Option<u64>,
    pub deliveries_missing: Option<u64>,
    pub server_cpu_us_per_delivery: Option<f64>,
    /// Server CPU over the measured period, in % of one core.
    pub server_cpu_percent: Option<f64>,
    /// This process's CPU over the measured period, in % of one core (it shares the machine).
    pub bench_cpu_percent: Option<f64>,
    /// Everything else on the machine over the same period, in % of one core (from
    /// /proc/stat): builds or other load here make the figures pessimistic.
    pub other_processes_cpu_percent: Option<f64>,
    /// Send (REST POST) → MESSAGE_CREATE received on a client.
    pub latency_ms: Option<Percentiles>,
    /// REST POST → 201 answer.
    pub send_latency_ms: Option<Percentiles>,
    /// AI agents kept streaming during the window (`--streaming-agents`).
    pub streaming_agents: Option<usize>,
    /// Tokens the bench's model streamed to the server inside the window.
    pub agent_tokens: Option<u64>,
    pub agent_tokens_per_sec: Option<f64>,
    /// Answers streamed to the end inside the window.
    pub agent_answers: Option<u64>,
    /// MESSAGE_STREAM deltas the clients received inside the window.
    pub stream_deltas_delivered: Option<u64>,
    /// Server CPU of the window divided by the tokens streamed (an upper bound: it includes the
    /// ordinary traffic; subtract a run without agents at the same rate for the agents' share).
    pub server_cpu_us_per_token: Option<f64>,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub error_samples: Vec<String>,
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn f1(v: Option<f64>) -> String {
    opt(v.map(|v| format!("{v:.1}")))
}

fn f2(v: Option<f64>) -> String {
    opt(v.map(|v| format!("{v:.2}")))
}

fn pct(p: Option<Percentiles>) -> String {
    p.map_or_else(
        || "-".to_owned(),
        |p| {
            format!(
                "p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}  (n={})",
                p.p50, p.p95, p.p99, p.max, p.samples
            )
        },
    )
}

impl Report {
    pub fn table(&self) -> String {
        let mut rows: Vec<(&str, String)> = vec![
            ("scenario", self.scenario.to_owned()),
            ("server", self.url.clone()),
            ("machine cpus", self.machine_cpus.to_string()),
            (
                "connections requested / ready / held",
                format!(
                    "{} / {} / {}",
                    self.connections_requested, self.connections_ready, self.connections_held
                ),
            ),
            (
                "users / conversations",
                format!("{} / {}", self.users, self.conversations),
            ),
            (
                "connect time",
                format!(
                    "{:.2} s ({:.0} conn/s)",
                    self.connect_secs, self.connect_per_sec
                ),
            ),
        ];
        if self.scenario == "idle" || self.scenario == "widget-idle" {
            rows.extend([
                (
                    "server RSS before / connected / end (KiB)",
                    format!(
                        "{} / {} / {}",
                        opt(self.server_rss_before_kib),
                        opt(self.server_rss_connected_kib),
                        opt(self.server_rss_end_kib)
                    ),
                ),
                (
                    "RSS per idle connection (KiB)",
                    f2(self.rss_per_idle_connection_kib),
                ),
                (
                    "server CPU while holding (% of a core)",
                    f1(self.server_cpu_percent),
                ),
            ]);
        } else {
            rows.extend([
                ("window (s)", f2(self.window_secs)),
                (
                    "messages persisted (201)",
                    format!(
                        "{}  ({}/s)",
                        opt(self.messages_persisted),
                        f1(self.messages_persisted_per_sec)
                    ),
                ),
                (
                    "deliveries in window",
                    format!(
                        "{}  ({}/s)",
                        opt(self.deliveries),
                        f1(self.deliveries_per_sec)
                    ),
                ),
                (
                    "deliveries total / expected / missing",
                    format!(
                        "{} / {} / {}",
                        opt(self.deliveries_total),
                        opt(self.deliveries_expected),
                        opt(self.deliveries_missing)
                    ),
                ),
                ("latency send→receive (ms)", pct(self.latency_ms)),
                ("REST send → 201 (ms)", pct(self.send_latency_ms)),
                (
                    "server CPU per delivery (µs)",
                    f2(self.server_cpu_us_per_delivery),
                ),
                ("server CPU (% of a core)", f1(self.server_cpu_percent)),
                ("server RSS at end (KiB)", opt(self.server_rss_end_kib)),
            ]);
            if let Some(n) = self.streaming_agents {
                rows.extend([
                    (
                        "agents streaming / answers completed",
                        format!("{n} / {}", opt(self.agent_answers)),
                    ),
                    (
                        "agent tokens streamed",
                        format!(
                            "{}  ({}/s)",
                            opt(self.agent_tokens),
                            f1(self.agent_tokens_per_sec)
                        ),
                    ),
                    ("stream deltas delivered", opt(self.stream_deltas_delivered)),
                    (
                        "server CPU per token, upper bound (µs)",
                        f2(self.server_cpu_us_per_token),
                    ),
                ]);
            }
        }
        rows.push(("bench CPU (% of a core)", f1(self.bench_cpu_percent)));
        rows.push((
            "other processes' CPU (% of a core)",
            f1(self.other_processes_cpu_percent),
        ));
        rows.push(("errors", self.errors.to_string()));
        for (k, v) in &self.errors_by_kind {
            rows.push(("  error", format!("{v} × {k}")));
        }
        let width = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        let rule = "-".repeat(width + 40);
        let _ = writeln!(out, "{rule}");
        for (k, v) in rows {
            let pad = width - k.chars().count();
            let _ = writeln!(out, "{k}{}  {v}", " ".repeat(pad));
        }
        let _ = writeln!(out, "{rule}");
        for s in &self.error_samples {
            let _ = writeln!(out, "error sample: {s}");
        }
        out
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_agreed_fields() {
        let mut r = Report {
            scenario: "fanout",
            deliveries_per_sec: Some(12.5),
            latency_ms: Some(Percentiles {
                p50: 1.0,
                p95: 2.0,
                p99: 3.0,
                max: 4.0,
                samples: 10,
            }),
            ..Report::default()
        };
        r.errors_by_kind.insert("x".into(), 2);
        r.errors = 2;
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        for key in [
            "scenario",
            "connections_held",
            "rss_per_idle_connection_kib",
            "messages_persisted_per_sec",
            "deliveries_per_sec",
            "server_cpu_us_per_delivery",
            "latency_ms",
            "errors",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["latency_ms"]["p99"], 3.0);
        assert!(v["rss_per_idle_connection_kib"].is_null());
        let t = r.table();
        assert!(t.contains("2 × x"), "{t}");
        assert!(t.contains("p50 1.00"), "{t}");
    }
}
