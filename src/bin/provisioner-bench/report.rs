//! The report: one scenario's measurements, the headline numbers of a run, and its table.

use serde::Serialize;

use crate::decode::DecodeRun;
use crate::ledger_db::LedgerBackend;
use crate::ledger_queries::QueryRun;
use crate::numbers::round;

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
    /// The largest `provisioner_ledger_projection_lag_seconds` scraped while the jobs ran.
    pub(crate) ledger_lag_max_s: Option<f64>,
    /// The last one scraped before the last event arrived.
    pub(crate) ledger_lag_end_s: Option<f64>,
    /// From the last event's arrival to the ledger holding every job's outcome.
    pub(crate) ledger_catch_up_s: Option<f64>,
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
    /// Every scenario that ran, in order (`ceiling 1`, `e2e 1`, `e2e sqlite 1`, …,
    /// `latency`, `memory`).
    scenarios: Vec<Named>,
    /// e2e with the ledger on, per backend, against the same rounds' ledger-off e2e.
    ledger_e2e: Vec<LedgerE2e>,
    /// The ledger's queries at size, per backend.
    ledger_queries: Vec<QueryRun>,
    /// Decoding with each vendor's account rules against the defaults, in the harness.
    pub(crate) decode: Vec<DecodeRun>,
}

/// e2e with the ledger on one backend, compared within each round with the e2e without it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct LedgerE2e {
    backend: &'static str,
    /// e2e (ledger on) / ceiling, by round.
    ratio_rounds: Vec<f64>,
    /// (e2e off / ceiling) − (e2e on / ceiling), by round: how much the ratio falls.
    drop_rounds: Vec<f64>,
    /// The median of `drop_rounds`.
    drop: f64,
    /// The largest projection lag scraped in any round.
    lag_max_s: f64,
    /// The largest lag at the end of a round.
    lag_end_s: f64,
    /// The longest wait, over rounds, from the last event to every outcome in the ledger.
    catch_up_s: f64,
}

/// The scenario name of round `r`'s e2e on `backend` (`None`: without a ledger).
pub(crate) fn e2e_name(backend: Option<LedgerBackend>, r: usize) -> String {
    match backend {
        None => format!("e2e {r}"),
        Some(b) => format!("e2e {} {r}", b.as_str()),
    }
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Named {
    pub(crate) name: String,
    #[serde(flatten)]
    pub(crate) measured: Measured,
}

/// The headline numbers: ceiling and e2e from the round whose ratio is the median (the lower
/// middle one for an even count), latency and memory from their single runs.
pub(crate) fn summarise(
    results: Vec<Named>,
    rounds: usize,
    backends: &[LedgerBackend],
    ledger_queries: Vec<QueryRun>,
) -> Report {
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
    let ledger_e2e = backends
        .iter()
        .map(|b| {
            let on: Vec<Measured> = (1..=rounds).map(|r| get(&e2e_name(Some(*b), r))).collect();
            let ratio_rounds: Vec<f64> = on.iter().zip(&pairs).map(|(e, (c, _))| e.jobs_per_s / c.jobs_per_s).collect();
            let drop_rounds: Vec<f64> = ratio_rounds.iter().zip(&ratios).map(|(on, off)| off - on).collect();
            let mut sorted = drop_rounds.clone();
            sorted.sort_by(f64::total_cmp);
            let worst = |f: fn(&Measured) -> Option<f64>| on.iter().filter_map(f).fold(0.0, f64::max);
            LedgerE2e {
                backend: b.as_str(),
                ratio_rounds: ratio_rounds.iter().map(|r| round(*r, 3)).collect(),
                drop: round(sorted[(sorted.len() - 1) / 2], 3),
                drop_rounds: drop_rounds.iter().map(|r| round(*r, 3)).collect(),
                lag_max_s: worst(|m| m.ledger_lag_max_s),
                lag_end_s: worst(|m| m.ledger_lag_end_s),
                catch_up_s: worst(|m| m.ledger_catch_up_s),
            }
        })
        .collect();
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
        ledger_e2e,
        ledger_queries,
        decode: Vec::new(),
    }
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
    for l in &r.ledger_e2e {
        let b = l.backend;
        let rows = [
            (
                format!("e2e / ceiling drop, ledger on {b} (median round)"),
                format!("{:.3}", l.drop),
                "≤ 0.05",
                l.drop <= 0.05,
            ),
            (format!("projection lag, {b} (max scraped)"), format!("{:.2} s", l.lag_max_s), "< 1 s", l.lag_max_s < 1.0),
        ];
        for (what, got, goal, ok) in rows {
            out.push_str(&format!("| {what} | {got} | {goal} | {} |\n", check(ok)));
        }
    }
    for q in &r.ledger_queries {
        let b = q.backend;
        let rows = [
            (
                format!("dlq stats, {} dead letters, {b}", q.dead_letters),
                format!("{:.3} s", q.dlq_stats_s),
                "< 5 s",
                q.dlq_stats_max_s < 5.0,
            ),
            (
                format!("dlq list filtered, {} dead letters, {b}", q.dead_letters),
                format!("{:.3} s", q.dlq_list_s),
                "< 5 s",
                q.dlq_list_max_s < 5.0,
            ),
            (
                format!("whois employee, {} links, {b}", q.links),
                format!("{:.1} ms", q.whois_employee_ms),
                "< 50 ms",
                q.whois_employee_ms < 50.0,
            ),
            (
                format!("whois identity, {} links, {b}", q.links),
                format!("{:.1} ms", q.whois_identity_ms),
                "< 50 ms",
                q.whois_identity_ms < 50.0,
            ),
        ];
        for (what, got, goal, ok) in rows {
            out.push_str(&format!("| {what} | {got} | {goal} | {} |\n", check(ok)));
        }
    }
    out.push_str(&ledger_tables(r));
    if !r.decode.is_empty() {
        out.push_str(&crate::decode::table(&r.decode));
    }
    out
}

/// The ledger's own tables: e2e with it on, by backend, and its queries at size.
fn ledger_tables(r: &Report) -> String {
    let mut out = String::new();
    let list = |v: &[f64]| v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(", ");
    if !r.ledger_e2e.is_empty() {
        out.push_str(
            "\ne2e with the ledger on (its projection in the worker). The e2e jobs name no person, so only \
             ClientToolbox jobs make a ledger call in the hot path (the intent claimed before the create); \
             Glance and NetSapiens jobs verify by lookup and make none. Every job's events are projected.\n\n",
        );
        out.push_str("| ledger | e2e / ceiling by round | drop vs off by round | median drop | lag max s | lag at end s | all outcomes in the ledger, s after the last event |\n");
        out.push_str("| --- | --- | --- | ---: | ---: | ---: | ---: |\n");
        out.push_str(&format!("| off | {} | - | - | - | - | - |\n", list(&r.e2e_ratio_rounds)));
        for l in &r.ledger_e2e {
            out.push_str(&format!(
                "| {} | {} | {} | {:.3} | {:.2} | {:.2} | {:.2} |\n",
                l.backend,
                list(&l.ratio_rounds),
                list(&l.drop_rounds),
                l.drop,
                l.lag_max_s,
                l.lag_end_s,
                l.catch_up_s
            ));
        }
    }
    if !r.ledger_queries.is_empty() {
        out.push_str(
            "\nLedger queries (median of several runs, max in brackets; dlq through the command's own code, \
             which opens the ledger each time):\n\n",
        );
        out.push_str("| ledger | dead letters | seeded in s | dlq stats s | dlq list --vendor clienttoolbox --class conflict s | rows listed | links | seeded in s | whois employee ms | whois identity ms |\n");
        out.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for q in &r.ledger_queries {
            out.push_str(&format!(
                "| {} | {} | {:.1} | {:.3} ({:.3}) | {:.3} ({:.3}) | {} | {} | {:.1} | {:.2} ({:.2}) | {:.2} ({:.2}) |\n",
                q.backend,
                q.dead_letters,
                q.seed_dead_letters_s,
                q.dlq_stats_s,
                q.dlq_stats_max_s,
                q.dlq_list_s,
                q.dlq_list_max_s,
                q.dlq_list_rows,
                q.links,
                q.seed_links_s,
                q.whois_employee_ms,
                q.whois_employee_max_ms,
                q.whois_identity_ms,
                q.whois_identity_max_ms
            ));
        }
        out.push_str("(a walk of the dead-letter queue itself takes about 600 s for 100,000: docs/dead-letters.md)\n");
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
        let r = summarise(results, 3, &[], Vec::new());
        assert_eq!(r.e2e_ratio_rounds, vec![0.5, 0.8, 0.6]);
        assert_eq!((r.median_round, r.e2e_ratio, r.ceiling_jobs_per_s, r.e2e_jobs_per_s), (3, 0.6, 9_000.0, 5_400.0));
        assert_eq!(r.latency_efficiency, 0.938);
        // Two rounds: the lower of the two.
        let two = vec![named("ceiling 1", 10.0), named("e2e 1", 8.0), named("ceiling 2", 10.0), named("e2e 2", 6.0)];
        assert_eq!(summarise(two, 2, &[], Vec::new()).median_round, 2);
    }

    #[test]
    fn the_ledger_drop_compares_each_round_with_its_own_e2e() {
        let named = |name: &str, jobs_per_s: f64, lag: Option<f64>| Named {
            name: name.into(),
            measured: Measured { jobs_per_s, ledger_lag_max_s: lag, ledger_catch_up_s: lag, ..Default::default() },
        };
        // Off: 0.5, 0.8, 0.6. On SQLite: 0.45, 0.8, 0.5, so drops 0.05, 0.0, 0.1 (median 0.05).
        let results = vec![
            named("ceiling 1", 10_000.0, None),
            named("e2e 1", 5_000.0, None),
            named("e2e sqlite 1", 4_500.0, Some(0.2)),
            named("ceiling 2", 10_000.0, None),
            named("e2e 2", 8_000.0, None),
            named("e2e sqlite 2", 8_000.0, Some(0.7)),
            named("ceiling 3", 10_000.0, None),
            named("e2e 3", 6_000.0, None),
            named("e2e sqlite 3", 5_000.0, Some(0.1)),
        ];
        let r = summarise(results, 3, &[LedgerBackend::Sqlite], Vec::new());
        let l = &r.ledger_e2e[0];
        assert_eq!(l.ratio_rounds, vec![0.45, 0.8, 0.5]);
        assert_eq!(l.drop_rounds, vec![0.05, 0.0, 0.1]);
        assert_eq!((l.drop, l.lag_max_s, l.catch_up_s), (0.05, 0.7, 0.7));
        assert!(table(&r).contains("| sqlite | 0.45, 0.80, 0.50 |"));
    }
}
