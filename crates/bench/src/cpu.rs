//! CPU used during a measured window, by the server, the bench and the rest of the machine.

use crate::report::Report;
use crate::sys;
use std::time::Instant;

fn ticks_to_us(ticks: u64, clk: u64) -> f64 {
    ticks as f64 * 1_000_000.0 / clk as f64
}

pub struct CpuMark {
    pub at: Instant,
    server: Option<u64>,
    own: Option<u64>,
    machine: Option<u64>,
}

/// CPU used between two marks, in µs, and the wall time in s.
pub struct CpuUse {
    pub server: Option<f64>,
    own: Option<f64>,
    machine: Option<f64>,
    pub wall: f64,
}

impl CpuMark {
    pub fn now(pid: Option<u32>) -> Self {
        Self {
            at: Instant::now(),
            server: pid.and_then(|p| sys::cpu_ticks(Some(p))),
            own: sys::cpu_ticks(None),
            machine: sys::machine_busy_ticks(),
        }
    }

    pub fn since(&self, later: &Self, clk: u64) -> CpuUse {
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
    pub fn report(&self, report: &mut Report) {
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
