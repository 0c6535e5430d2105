//! Operating-system facts: file-descriptor limit, ephemeral port range, and /proc readings of
//! the server process (RSS, CPU time).

use std::fs;
use std::process::Command;

/// File descriptors the bench needs besides one per gateway connection (HTTP pool, stdio,
/// runtime).
pub const FD_SLACK: u64 = 128;

/// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the resulting soft limit.
pub fn raise_nofile() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// Explains why `needed` connections cannot be opened with a soft limit of `limit`.
pub fn nofile_explanation(connections: usize, limit: u64) -> String {
    format!(
        "{connections} connections need about {} open files in this process, but the \
         RLIMIT_NOFILE hard limit is {limit} (the bench already raised its soft limit to it).\n\
         Raise the hard limit before starting the bench, e.g. as root `ulimit -Hn 1048576; \
         ulimit -n 1048576` in the shell that runs it, `prlimit --nofile=1048576 --pid $$`, or \
         a `nofile` line in /etc/security/limits.conf (LimitNOFILE= for systemd units). The \
         server needs the same headroom.",
        connections as u64 + FD_SLACK
    )
}

/// The ephemeral port range `(low, high)` from /proc/sys/net/ipv4/ip_local_port_range.
pub fn local_port_range() -> Option<(u32, u32)> {
    parse_port_range(&fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?)
}

pub fn parse_port_range(text: &str) -> Option<(u32, u32)> {
    let mut it = text.split_whitespace().map(str::parse::<u32>);
    let low = it.next()?.ok()?;
    let high = it.next()?.ok()?;
    (low <= high).then_some((low, high))
}

/// How many source addresses are needed so that no address uses more than 80 % of the
/// ephemeral ports (ports still in TIME_WAIT from an earlier run also count against it).
pub fn source_addrs_needed(connections: usize, ports: u32) -> u8 {
    let usable = (u64::from(ports) * 8 / 10).max(1);
    let n = (connections as u64).div_ceil(usable).max(1);
    u8::try_from(n.min(250)).unwrap_or(250)
}

/// VmRSS of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    parse_vm_rss(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

pub fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    parse_stat_ticks(&fs::read_to_string(path).ok()?)
}

/// Fields 14 and 15 of /proc/<pid>/stat (utime, stime). The command name (field 2) may hold
/// spaces and parentheses, so counting starts after its last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // `after` starts at field 3 (state); utime is field 14, i.e. index 11 here.
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Busy time of the whole machine (all CPUs), in clock ticks, from the first line of
/// /proc/stat: everything but idle and iowait.
pub fn machine_busy_ticks() -> Option<u64> {
    parse_proc_stat_busy(&fs::read_to_string("/proc/stat").ok()?)
}

pub fn parse_proc_stat_busy(stat: &str) -> Option<u64> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice: already in user]
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some(total.saturating_sub(idle))
}

/// Clock ticks per second (sysconf(_SC_CLK_TCK)), asked of `getconf` so that no unsafe code
/// is needed; 100, the value on every common Linux, if that fails.
pub fn clock_ticks_per_sec() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t: &u64| t > 0)
        .unwrap_or(100)
}

/// The soft "Max open files" limit of another process, from /proc/<pid>/limits.
pub fn process_nofile(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    text.lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l["Max open files".len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_range() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_port_range("5 4"), None);
        assert_eq!(parse_port_range(""), None);
    }

    #[test]
    fn source_addrs() {
        assert_eq!(source_addrs_needed(1000, 28232), 1);
        assert_eq!(source_addrs_needed(28000, 28232), 2);
        assert_eq!(source_addrs_needed(100_000, 28232), 5);
    }

    #[test]
    fn vm_rss() {
        let s = "Name:\tconclave\nVmPeak:\t  200 kB\nVmRSS:\t   12345 kB\nThreads: 3\n";
        assert_eq!(parse_vm_rss(s), Some(12345));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn stat_ticks() {
        let s = "1234 (we ird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 5 0 \
                 100 1000 200 18446744073709551615";
        assert_eq!(parse_stat_ticks(s), Some(287));
    }

    #[test]
    fn proc_stat_busy() {
        let s = "cpu  100 5 50 1000 20 3 2 0 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        assert_eq!(parse_proc_stat_busy(s), Some(160));
        assert_eq!(parse_proc_stat_busy("intr 1 2"), None);
        assert!(machine_busy_ticks().is_some());
    }

    #[test]
    fn own_process_readings() {
        assert!(cpu_ticks(None).is_some());
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        assert!(process_nofile(std::process::id()).unwrap() > 0);
        assert!(clock_ticks_per_sec() > 0);
    }
}
