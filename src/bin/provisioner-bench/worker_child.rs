//! The worker under test as a child process (one per replica), its admin port and its
//! in-flight gauge.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tokio_util::sync::CancellationToken;

use crate::proc_stat::{parse_cpu_ticks, parse_status_field};
use crate::WorkerArgs;

/// The worker under test, as a child process.
pub(crate) struct WorkerChild {
    child: Child,
    pid: u32,
    log: std::path::PathBuf,
}

impl WorkerChild {
    /// `PROVISIONER_BENCH_WORKER_WRAP` (e.g. `valgrind --tool=callgrind`) runs the worker
    /// under a profiler that keeps its pid; the numbers of such a run are the profiler's.
    /// `replica` numbers the workers of one scenario (they share its topology), so each
    /// keeps a log of its own.
    pub(crate) fn spawn(a: &WorkerArgs, replica: usize) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let log = std::env::temp_dir().join(format!("{}.worker-{replica}.log", a.suffix));
        let wrap = std::env::var("PROVISIONER_BENCH_WORKER_WRAP").unwrap_or_default();
        let mut command = match wrap.split_whitespace().collect::<Vec<_>>().split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let child = command
            .args(["worker", "--amqp", &a.amqp, "--suffix", &a.suffix, "--sandbox", &a.sandbox])
            .args(["--concurrency", &a.concurrency.to_string(), "--prefetch", &a.prefetch.to_string()])
            .args(["--admin-port", &a.admin_port.to_string()])
            .args(a.redis.iter().flat_map(|url| ["--redis", url.as_str()]))
            .args(a.account_rate.iter().flat_map(|r| ["--account-rate".to_owned(), r.to_string()]))
            .args(a.ledger_url.iter().flat_map(|u| ["--ledger-url", u.as_str()]))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(Self { pid: child.id(), child, log })
    }

    /// utime + stime of the whole process, in clock ticks.
    pub(crate) fn cpu_ticks(&self) -> anyhow::Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        parse_cpu_ticks(&stat).context("unreadable /proc/<pid>/stat")
    }

    /// Context switches, voluntary and not, summed over the process's threads (each thread's
    /// `status` counts its own).
    pub(crate) fn context_switches(&self) -> u64 {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid)) else { return 0 };
        tasks
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
            .map(|status| {
                ["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"]
                    .iter()
                    .filter_map(|f| parse_status_field(&status, f))
                    .sum::<u64>()
            })
            .sum()
    }

    pub(crate) fn status_kib(&self, field: &str) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        parse_status_field(&status, field).with_context(|| format!("no {field} in /proc/<pid>/status"))
    }

    /// SIGTERM, then wait for the drain to end; a worker that exits non-zero, or does not
    /// exit within the drain deadline and a margin, fails the run.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill").args(["-TERM", &self.pid.to_string()]).status()?;
        let deadline = Instant::now() + Duration::from_secs(40);
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                bail!("the worker did not exit within 40 s of SIGTERM; its log is {}", self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if !status.success() {
            bail!("the worker exited with {status}; its log is {}", self.log.display());
        }
        let _ = std::fs::remove_file(&self.log);
        Ok(())
    }
}

/// A scenario that fails half-way must not leave its worker running.
impl Drop for WorkerChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Scrapes the workers' `provisioner_jobs_in_flight` to show how many jobs were really in
/// flight at once (summed over the replicas of one scrape round, so it is the fleet's), and
/// `provisioner_ledger_projection_lag_seconds` (how far the ledger's projection is behind;
/// the largest of the round), every 100 ms.
pub(crate) struct AdminWatch {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Scraped>,
}

/// What the scrapes saw.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Scraped {
    pub(crate) max_in_flight: u64,
    /// The largest and the last projection lag, when the worker runs a projection.
    pub(crate) max_lag_s: Option<f64>,
    pub(crate) last_lag_s: Option<f64>,
}

impl AdminWatch {
    pub(crate) fn start(ports: &[u16]) -> Self {
        let stop = CancellationToken::new();
        let s = stop.clone();
        let urls: Vec<String> = ports.iter().map(|port| format!("http://127.0.0.1:{port}/metrics")).collect();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut seen = Scraped::default();
            while !s.is_cancelled() {
                let (mut fleet_in_flight, mut round_lag) = (0, None::<f64>);
                for url in &urls {
                    if let Ok(text) = async { http.get(url).send().await?.text().await }.await {
                        fleet_in_flight += in_flight(&text);
                        if let Some(lag) = projection_lag(&text) {
                            round_lag = Some(round_lag.map_or(lag, |m| m.max(lag)));
                        }
                    }
                }
                seen.max_in_flight = seen.max_in_flight.max(fleet_in_flight);
                if let Some(lag) = round_lag {
                    seen.max_lag_s = Some(seen.max_lag_s.map_or(lag, |m| m.max(lag)));
                    seen.last_lag_s = Some(lag);
                }
                tokio::select! { _ = s.cancelled() => {}, _ = tokio::time::sleep(Duration::from_millis(100)) => {} }
            }
            seen
        });
        Self { stop, task }
    }

    pub(crate) async fn stop(self) -> Scraped {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

/// The sum of `provisioner_jobs_in_flight` over vendors in a Prometheus text scrape.
fn in_flight(text: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with("provisioner_jobs_in_flight{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// `provisioner_ledger_projection_lag_seconds` in a scrape; absent without a ledger.
fn projection_lag(text: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix("provisioner_ledger_projection_lag_seconds ")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_sums_every_vendor() {
        let text = "# TYPE provisioner_jobs_in_flight gauge\nprovisioner_jobs_in_flight{vendor=\"glance\"} 334\n\
                    provisioner_jobs_in_flight{vendor=\"netsapiens\"} 300\nprovisioner_jobs_received_total{vendor=\"glance\"} 9\n";
        assert_eq!(in_flight(text), 634);
        assert_eq!(projection_lag(text), None);
        assert_eq!(projection_lag("provisioner_ledger_projection_lag_seconds 0.25\n"), Some(0.25));
    }
}
