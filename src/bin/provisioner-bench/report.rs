//! The report: one scenario's measurements, the headline numbers of a run, and its table.

use serde::Serialize;

/// One scenario's measurements.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Measured {
    pub(crate) jobs: usize,
    pub(crate) seconds: f64,
    pub(crate) jobs_per_s: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// The worker child's CPU (utime + stime) per job.
    pub(crate) cpu_us_per_job: Option<f64>,
    /// This process's CPU per job over the same window: the sandboxes, the observer (and
    /// the publisher where jobs arrive live), or the bare loop of the ceiling.
    pub(crate) harness_cpu_us_per_job: Option<f64>,
    /// The local broker's (`beam.smp`) CPU per job over the same window; it includes
    /// whatever other clients of that broker did meanwhile.
    pub(crate) broker_cpu_us_per_job: Option<f64>,
    /// The share of the machine's CPU time left idle over the window (`/proc/stat`): near 0,
    /// the scenario was bound by CPU, not by the broker's or the vendor's latency.
    pub(crate) idle_pct: Option<f64>,
    /// The share the hypervisor gave to other guests (`steal`): a virtual machine's noisy
    /// neighbours, which slow every process here alike.
    pub(crate) steal_pct: Option<f64>,
    /// The worker child's context switches (voluntary and not) per job.
    pub(crate) worker_switches_per_job: Option<f64>,
    pub(crate) rss_idle_mib: Option<f64>,
    pub(crate) rss_peak_mib: Option<f64>,
    pub(crate) max_in_flight: Option<u64>,
}

#[derive(Serialize)]
pub(crate) struct Report {
    ceiling_jobs_per_s: f64,
    e2e_jobs_per_s: f64,
    e2e_ratio: f64,
    latency_jobs_per_s: f64,
    latency_efficiency: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us_per_job: f64,
    rss_idle_mib: f64,
    rss_peak_mib: f64,
    /// e2e / ceiling of every round, in the order they ran; the headline is their median.
    e2e_ratio_rounds: Vec<f64>,
    /// With --redis: e2e with the limits in Redis / ceiling, of the same round as the headline.
    #[serde(skip_serializing_if = "Option::is_none")]
    e2e_redis_ratio: Option<f64>,
    /// Which round the headline ceiling and e2e numbers come from (1-based).
    median_round: usize,
    /// Every scenario that ran, in order (`ceiling 1`, `e2e 1`, …, `latency`, `memory`).
    scenarios: Vec<Named>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Named {
    pub(crate) name: String,
    #[serde(flatten)]
    pub(crate) measured: Measured,
}

/// The headline numbers: ceiling and e2e from the round whose ratio is the median (the lower
/// middle one for an even count), latency and memory from their single runs.
pub(crate) fn summarise(results: Vec<Named>, rounds: usize) -> Report {
    let get = |name: &str| results.iter().find(|n| n.name == name).map(|n| n.measured.clone()).unwrap_or_default();
    let pairs: Vec<(Measured, Measured)> =
        (1..=rounds).map(|r| (get(&format!("ceiling {r}")), get(&format!("e2e {r}")))).collect();
    let ratios: Vec<f64> = pairs.iter().map(|(c, e)| e.jobs_per_s / c.jobs_per_s).collect();
    let mut order: Vec<usize> = (0..ratios.len()).collect();
    order.sort_by(|a, b| ratios[*a].total_cmp(&ratios[*b]));
    let median = order[(order.len() - 1) / 2];
    let (ceiling, e2e) = pairs[median].clone();
    let (latency, memory) = (get("latency"), get("memory"));
    let redis = results.iter().find(|n| n.name == format!("e2e-redis {}", median + 1));
    let e2e_redis_ratio = redis.map(|n| round(n.measured.jobs_per_s / ceiling.jobs_per_s, 3));
    Report {
        ceiling_jobs_per_s: round(ceiling.jobs_per_s, 1),
        e2e_jobs_per_s: round(e2e.jobs_per_s, 1),
        e2e_ratio: round(ratios[median], 3),
        latency_jobs_per_s: round(latency.jobs_per_s, 1),
        latency_efficiency: round(latency.jobs_per_s / (256.0 / 0.2), 3),
        p50_ms: e2e.p50_ms,
        p99_ms: e2e.p99_ms,
        cpu_us_per_job: e2e.cpu_us_per_job.unwrap_or(f64::NAN),
        rss_idle_mib: memory.rss_idle_mib.unwrap_or(f64::NAN),
        rss_peak_mib: memory.rss_peak_mib.unwrap_or(f64::NAN),
        e2e_ratio_rounds: ratios.iter().map(|r| round(*r, 3)).collect(),
        median_round: median + 1,
        e2e_redis_ratio,
        scenarios: results,
    }
}

pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

pub(crate) fn table(r: &Report) -> String {
    let opt = |x: Option<f64>, d: usize| x.map_or("-".to_owned(), |v| format!("{v:.d$}"));
    let mut out = String::new();
    out.push_str(
        "| scenario | jobs | jobs/s | p50 ms | p99 ms | CPU µs/job | harness CPU µs/job | broker CPU µs/job | idle % | steal % | worker switches/job | RSS idle MiB | RSS peak MiB | max in flight |\n",
    );
    out.push_str(
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for Named { name, measured: m } in &r.scenarios {
        out.push_str(&format!(
            "| {name} | {} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            m.jobs,
            m.jobs_per_s,
            m.p50_ms,
            m.p99_ms,
            opt(m.cpu_us_per_job, 0),
            opt(m.harness_cpu_us_per_job, 0),
            opt(m.broker_cpu_us_per_job, 0),
            opt(m.idle_pct, 0),
            opt(m.steal_pct, 0),
            opt(m.worker_switches_per_job, 1),
            opt(m.rss_idle_mib, 1),
            opt(m.rss_peak_mib, 1),
            m.max_in_flight.map_or("-".to_owned(), |v| v.to_string()),
        ));
    }
    let rounds: Vec<String> = r.e2e_ratio_rounds.iter().map(|x| format!("{x:.2}")).collect();
    out.push_str(&format!(
        "\ne2e / ceiling by round: {} (the headline is round {}, the median)\n",
        rounds.join(", "),
        r.median_round
    ));
    let check = |ok: bool| if ok { "met" } else { "NOT met" };
    out.push_str("\n| target | measured | goal | |\n| --- | ---: | ---: | --- |\n");
    let rows = [
        ("e2e / ceiling (median round)", format!("{:.2}", r.e2e_ratio), "≥ 0.70", r.e2e_ratio >= 0.70),
        ("latency / (256 / 0.2 s)", format!("{:.2}", r.latency_efficiency), "≥ 0.90", r.latency_efficiency >= 0.90),
        ("CPU per job (e2e)", format!("{:.0} µs", r.cpu_us_per_job), "≤ 150 µs", r.cpu_us_per_job <= 150.0),
        ("idle RSS", format!("{:.1} MiB", r.rss_idle_mib), "≤ 20 MiB", r.rss_idle_mib <= 20.0),
        ("peak RSS, 1,000 in flight", format!("{:.1} MiB", r.rss_peak_mib), "≤ 64 MiB", r.rss_peak_mib <= 64.0),
    ];
    for (what, got, goal, ok) in rows {
        out.push_str(&format!("| {what} | {got} | {goal} | {} |\n", check(ok)));
    }
    if let Some(redis) = r.e2e_redis_ratio {
        let drop = r.e2e_ratio - redis;
        out.push_str(&format!(
            "| e2e / ceiling with the limits in Redis | {redis:.2} (−{drop:.2}) | ≥ e2e − 0.05 | {} |\n",
            check(drop <= 0.05)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_headline_is_the_median_round() {
        let m = |jobs_per_s: f64| Measured { jobs_per_s, ..Default::default() };
        let named = |name: &str, jobs_per_s: f64| Named { name: name.into(), measured: m(jobs_per_s) };
        // Ratios 0.5, 0.8, 0.6: the median is round 3.
        let results = vec![
            named("ceiling 1", 10_000.0),
            named("e2e 1", 5_000.0),
            named("ceiling 2", 10_000.0),
            named("e2e 2", 8_000.0),
            named("ceiling 3", 9_000.0),
            named("e2e 3", 5_400.0),
            named("latency", 1_200.0),
            named("memory", 400.0),
        ];
        let r = summarise(results, 3);
        assert_eq!(r.e2e_ratio_rounds, vec![0.5, 0.8, 0.6]);
        assert_eq!((r.median_round, r.e2e_ratio, r.ceiling_jobs_per_s, r.e2e_jobs_per_s), (3, 0.6, 9_000.0, 5_400.0));
        assert_eq!(r.latency_efficiency, 0.938);
        // Two rounds: the lower of the two.
        let two = vec![named("ceiling 1", 10.0), named("e2e 1", 8.0), named("ceiling 2", 10.0), named("e2e 2", 6.0)];
        assert_eq!(summarise(two, 2).median_round, 2);
    }
}
