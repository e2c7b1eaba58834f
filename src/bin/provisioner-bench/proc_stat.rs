//! CPU ticks and memory from `/proc`: a process's, the broker's and the whole machine's.

use std::process::Command;

use anyhow::Context as _;

use crate::numbers::round;

/// utime + stime of this process (the harness), in clock ticks.
pub(crate) fn own_cpu_ticks() -> anyhow::Result<u64> {
    parse_cpu_ticks(&std::fs::read_to_string("/proc/self/stat")?).context("unreadable /proc/self/stat")
}

/// utime + stime of every local `beam.smp` (the RabbitMQ node), in clock ticks; `None` when
/// the broker is not on this host.
pub(crate) fn broker_cpu_ticks() -> Option<u64> {
    let mut total = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let path = entry.path();
        if std::fs::read_to_string(path.join("comm")).is_ok_and(|c| c.trim() == "beam.smp") {
            let ticks = std::fs::read_to_string(path.join("stat")).ok().and_then(|s| parse_cpu_ticks(&s));
            total = Some(total.unwrap_or(0) + ticks?);
        }
    }
    total
}

/// Fields 14 and 15 of `/proc/<pid>/stat`, counted after the `)` that ends the command name.
pub(crate) fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so utime (14) and stime (15) are at 11 and 12.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The first number of a `/proc/<pid>/status` field (`VmRSS:   12288 kB` is in kB).
pub(crate) fn parse_status_field(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The machine's CPU time so far, from the `cpu` line of `/proc/stat`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct MachineTicks {
    /// idle + iowait
    pub(crate) idle: u64,
    pub(crate) steal: u64,
    total: u64,
}

pub(crate) fn machine_ticks() -> Option<MachineTicks> {
    parse_machine_ticks(&std::fs::read_to_string("/proc/stat").ok()?)
}

fn parse_machine_ticks(stat: &str) -> Option<MachineTicks> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let ticks: Vec<u64> = line.split_whitespace().skip(1).take(8).map(|t| t.parse().ok()).collect::<Option<_>>()?;
    Some(MachineTicks { idle: ticks.get(3)? + ticks.get(4)?, steal: *ticks.get(7)?, total: ticks.iter().sum() })
}

/// One part's share of the machine's time between two readings, in percent (one decimal).
pub(crate) fn share(before: MachineTicks, after: MachineTicks, part: impl Fn(&MachineTicks) -> u64) -> Option<f64> {
    let total = after.total.checked_sub(before.total).filter(|t| *t > 0)?;
    Some(round(part(&after).saturating_sub(part(&before)) as f64 * 100.0 / total as f64, 1))
}

pub(crate) fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_utime_plus_stime_even_with_spaces_in_the_name() {
        let stat = "4242 (my worker) S 1 4242 4242 0 -1 4194560 900 0 0 0 123 45 0 0 20 0 6 0 100 1000 500";
        assert_eq!(parse_cpu_ticks(stat), Some(168));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_fields_are_read_in_kib() {
        let status = "Name:\tprovisioner\nVmHWM:\t   40960 kB\nVmRSS:\t   12288 kB\n";
        assert_eq!(parse_status_field(status, "VmRSS"), Some(12288));
        assert_eq!(parse_status_field(status, "VmHWM"), Some(40960));
        assert_eq!(parse_status_field(status, "VmSwap"), None);
    }

    #[test]
    fn idle_share_counts_iowait_and_leaves_guest_time_out() {
        let before = parse_machine_ticks("cpu  100 0 50 800 50 0 0 0 40 0\ncpu0 1 2 3\n").unwrap();
        assert_eq!(before, MachineTicks { idle: 850, steal: 0, total: 1000 });
        let after = parse_machine_ticks("cpu  400 0 150 850 50 0 0 50 90 0\n").unwrap();
        assert_eq!(share(before, after, |t| t.idle), Some(10.0));
        assert_eq!(share(before, after, |t| t.steal), Some(10.0));
        assert_eq!(share(after, after, |t| t.idle), None);
        assert_eq!(parse_machine_ticks("intr 5\n"), None);
    }
}
