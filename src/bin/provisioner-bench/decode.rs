//! The cost of account-aware decoding: `job::decode_with` under the configured accounts' field rules against `job::decode` under the defaults, per vendor, in this process.
//!
//! No broker and no worker: the same job bodies are decoded over and over on one thread, so
//! the numbers are the decoder's alone. Each pass is timed by that thread's own time on the
//! CPU (`/proc/thread-self/schedstat`, in ns), so other processes sharing the machine do not
//! count; where that file is missing, or a pass is too short for its tick, by the wall
//! clock. Both paths run in alternating passes, and each figure is the median pass, so a
//! drift in the machine's speed lands on both sides.

use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use provisioner::config::Settings;
use provisioner::contract::VendorKey;
use provisioner::job;
use provisioner::vendors::Rulebook;
use serde::Serialize;

use crate::numbers::round;

/// Passes of each path; the figure is the median one.
const PASSES: usize = 5;
/// Distinct bodies per vendor: enough that no branch predictor learns one body.
const BODIES: usize = 1_000;
/// The kernel adds a running thread's CPU time up at each scheduler tick (1 to 10 ms): a
/// pass shorter than this is timed by the wall clock instead.
const MIN_CPU_TIMED: Duration = Duration::from_millis(100);

/// One vendor's decode figures.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct DecodeRun {
    vendor: &'static str,
    /// Jobs decoded per path (over all passes).
    jobs: usize,
    /// `job::decode`: the documented default field rules.
    defaults_ns_per_job: f64,
    /// `job::decode_with` with the account's own rules (a `Rulebook` of the configured accounts).
    account_ns_per_job: f64,
    /// account / defaults.
    ratio: f64,
    /// `cpu`: the thread's time on the CPU; `wall`: the wall clock (no schedstat, or passes
    /// too short for it).
    clock: &'static str,
}

/// This thread's time on the CPU so far, in ns: the first field of its schedstat.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split_whitespace().next()?.parse().ok()
}

/// Decodes `jobs` bodies of each vendor on each path (split over the passes).
pub(crate) fn run(settings: &Settings, account_of: impl Fn(VendorKey) -> String, jobs: usize) -> Vec<DecodeRun> {
    let book = Rulebook::from_settings(settings).expect("the bench's accounts have valid rule settings");
    let per_pass = (jobs / PASSES).max(1);
    VendorKey::ALL
        .iter()
        .map(|&vendor| {
            let account = account_of(vendor);
            let bodies: Vec<Vec<u8>> = (0..BODIES.min(per_pass))
                .map(|i| {
                    let identity = match vendor {
                        VendorKey::Glance => format!("EMP-{i:05}"),
                        VendorKey::Netsapiens => format!("{}", 5_000_000 + i),
                        VendorKey::Clienttoolbox => format!("bench_{i}"),
                    };
                    let body = provisioner::pipeline::sample_job(&format!("decode-{i}"), vendor, &account, &identity);
                    body.to_string().into_bytes()
                })
                .collect();
            // Both paths must accept every body, or the figures would compare a refusal.
            for b in &bodies {
                job::decode(b).expect("the sample job decodes under the defaults");
                job::decode_with(b, &book).expect("the sample job decodes under its account's rules");
            }
            // Whether every pass so far was timed by the CPU clock.
            let all_cpu = Cell::new(true);
            let pass = |with_account: bool| {
                let (started, cpu) = (Instant::now(), thread_cpu_ns());
                for i in 0..per_pass {
                    let body = &bodies[i % bodies.len()];
                    let decoded = if with_account {
                        job::decode_with(black_box(body), &book)
                    } else {
                        job::decode(black_box(body))
                    };
                    black_box(decoded.is_ok());
                }
                let wall = started.elapsed();
                let spent = match (cpu, thread_cpu_ns()) {
                    (Some(from), Some(to)) if wall >= MIN_CPU_TIMED => to.saturating_sub(from) as f64,
                    _ => {
                        all_cpu.set(false);
                        wall.as_nanos() as f64
                    }
                };
                spent / per_pass as f64
            };
            // One pass of each to warm the caches and the allocator, not counted.
            pass(false);
            pass(true);
            let (mut defaults, mut account_aware) = (Vec::new(), Vec::new());
            for p in 0..PASSES {
                // Alternate which path goes first.
                if p % 2 == 0 {
                    defaults.push(pass(false));
                    account_aware.push(pass(true));
                } else {
                    account_aware.push(pass(true));
                    defaults.push(pass(false));
                }
            }
            let (d, a) = (median(&mut defaults), median(&mut account_aware));
            DecodeRun {
                vendor: vendor.as_str(),
                jobs: per_pass * PASSES,
                defaults_ns_per_job: round(d, 0),
                account_ns_per_job: round(a, 0),
                ratio: round(a / d, 3),
                clock: if all_cpu.get() { "cpu" } else { "wall" },
            }
        })
        .collect()
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[(xs.len() - 1) / 2]
}

/// The decode table, in the report's Markdown style.
pub(crate) fn table(runs: &[DecodeRun]) -> String {
    let clock = if runs.iter().all(|r| r.clock == "cpu") { "the thread's CPU time" } else { "wall clock" };
    let mut out = format!(
        "\n### Decoding: account rules vs defaults (ns per job, {clock}, median of 5 passes)\n\n\
         | vendor | jobs per path | `decode` (defaults) | `decode_with` (account) | ratio |\n\
         | --- | ---: | ---: | ---: | ---: |\n",
    );
    for r in runs {
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {:.3} |\n",
            r.vendor, r.jobs, r.defaults_ns_per_job, r.account_ns_per_job, r.ratio
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vendor_gets_a_row_with_both_paths() {
        let mut settings = Settings::default();
        for v in VendorKey::ALL {
            settings.accounts.insert(format!("a-{v}"), provisioner::sandbox::account(v, "http://127.0.0.1:9"));
        }
        let runs = run(&settings, |v| format!("a-{v}"), 50);
        assert_eq!(runs.iter().map(|r| r.vendor).collect::<Vec<_>>(), ["glance", "netsapiens", "clienttoolbox"]);
        assert!(runs.iter().all(|r| r.defaults_ns_per_job > 0.0 && r.account_ns_per_job > 0.0 && r.ratio > 0.0));
        assert!(table(&runs).contains("| netsapiens | 50 |"), "{}", table(&runs));
    }
}
