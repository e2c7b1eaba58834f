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
    /// Worker processes (0 for the ceiling's bare loop).
    pub(crate) replicas: usize,
    /// The jobs whose events arrived within the measured window (all of them, unless a
    /// replica that started first did some before the last one was consuming).
    pub(crate) jobs_in_window: usize,
    pub(crate) seconds: f64,
    /// `jobs_in_window` / `seconds`.
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
    /// Under an account limit: users created per second at the sandbox once the fleet's burst
    /// is spent (see `steady_window`); `None` without a limit or when the jobs did not
    /// outlast the burst.
    pub(crate) sandbox_users_per_s: Option<f64>,
    /// The most the account's limits allow over that window (see `rate_bound`).
    pub(crate) sandbox_bound_per_s: Option<f64>,
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
    /// With --redis: e2e-redis / ceiling of every round, in the order they ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    e2e_redis_ratio_rounds: Vec<f64>,
    /// With --redis: the median over rounds of (e2e / ceiling) − (e2e-redis / ceiling), each
    /// round against its own ceiling; the goal is at most 0.05.
    #[serde(skip_serializing_if = "Option::is_none")]
    e2e_redis_drop: Option<f64>,
    /// The same backlog consumed by 1, 2, 3… worker processes with local limits.
    replicas: Vec<ReplicaRow>,
    /// The rate-limited path (not the e2e path): one account held to a rate, by backend and
    /// number of replicas, with the rate the sandbox saw.
    rate_limited: Vec<LimitedRow>,
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

/// One replica count of the replicas scenario.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ReplicaRow {
    replicas: usize,
    jobs_per_s: f64,
    /// jobs/s over that of 1 replica (`None` when 1 replica did not run).
    ratio: Option<f64>,
    /// The fleet's CPU per job, summed over its processes.
    cpu_us_per_job: Option<f64>,
    /// The most jobs in flight over the fleet at one scrape.
    max_in_flight: Option<u64>,
}

/// One rate-limited scenario.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct LimitedRow {
    backend: &'static str,
    replicas: usize,
    account_rate: u32,
    /// What the backend promises the vendor: the rate once with Redis, once per replica with
    /// local limits.
    allowed_per_s: u32,
    /// Jobs/s from their events (burst and tail included).
    jobs_per_s: f64,
    /// Users/s at the sandbox after the burst (see `Measured::sandbox_users_per_s`).
    sandbox_users_per_s: Option<f64>,
    /// The most the limits allow over the same window (see `Measured::sandbox_bound_per_s`).
    sandbox_bound_per_s: Option<f64>,
}

/// Which replica scenarios ran, so `summarise` can find them by name.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReplicaPlans {
    /// The replica counts of the replicas scenario, in the order they ran.
    pub(crate) counts: Vec<usize>,
    /// The account rate of the rate-limited scenarios, and the replicas of their fleet
    /// variant (`None`: only one replica per backend); `None` without --redis.
    pub(crate) limited: Option<(u32, Option<usize>)>,
}

/// The scenario name of the replicas scenario with `n` workers.
pub(crate) fn replicas_name(n: usize) -> String {
    format!("replicas {n}")
}

/// The scenario name of the rate-limited scenario on the Redis or the local backend, with
/// `n` workers.
pub(crate) fn limited_name(redis: bool, n: usize) -> String {
    let backend = if redis { "redis" } else { "local" };
    if n == 1 {
        format!("rate-limited {backend}")
    } else {
        format!("rate-limited {backend}, {n} replicas")
    }
}

/// The middle value (the lower middle one for an even count); NaN for none.
fn lower_median(v: &[f64]) -> f64 {
    let mut sorted = v.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len().saturating_sub(1) / 2).copied().unwrap_or(f64::NAN)
}

/// The replicas scenario's rows: each count's jobs/s and its ratio to 1 replica.
fn replica_rows(counts: &[usize], get: impl Fn(&str) -> Option<Measured>) -> Vec<ReplicaRow> {
    let one = get(&replicas_name(1)).map(|m| m.jobs_per_s);
    counts
        .iter()
        .filter_map(|n| {
            let m = get(&replicas_name(*n))?;
            Some(ReplicaRow {
                replicas: *n,
                jobs_per_s: round(m.jobs_per_s, 1),
                ratio: one.filter(|j| *j > 0.0).map(|j| round(m.jobs_per_s / j, 3)),
                cpu_us_per_job: m.cpu_us_per_job,
                max_in_flight: m.max_in_flight,
            })
        })
        .collect()
}

/// The rate-limited rows: each backend with 1 replica, then with the fleet.
fn limited_rows(rate: u32, fleet: Option<usize>, get: impl Fn(&str) -> Option<Measured>) -> Vec<LimitedRow> {
    let mut rows = Vec::new();
    for n in std::iter::once(1).chain(fleet) {
        for redis in [false, true] {
            let Some(m) = get(&limited_name(redis, n)) else { continue };
            let holders = if redis { 1 } else { n as u32 };
            rows.push(LimitedRow {
                backend: if redis { "redis" } else { "local" },
                replicas: n,
                account_rate: rate,
                allowed_per_s: rate.saturating_mul(holders),
                jobs_per_s: round(m.jobs_per_s, 1),
                sandbox_users_per_s: m.sandbox_users_per_s,
                sandbox_bound_per_s: m.sandbox_bound_per_s,
            });
        }
    }
    rows
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
    replica_plans: &ReplicaPlans,
) -> Report {
    let find = |name: &str| results.iter().find(|n| n.name == name).map(|n| n.measured.clone());
    let get = |name: &str| find(name).unwrap_or_default();
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
    // Each round's e2e-redis against its own round's ceiling and e2e.
    let redis_rounds: Vec<(f64, f64)> = (1..=rounds)
        .zip(&pairs)
        .zip(&ratios)
        .filter_map(|((r, (c, _)), off)| find(&format!("e2e-redis {r}")).map(|m| (m.jobs_per_s / c.jobs_per_s, *off)))
        .collect();
    let redis_drops: Vec<f64> = redis_rounds.iter().map(|(on, off)| off - on).collect();
    let e2e_redis_drop = (!redis_drops.is_empty()).then(|| round(lower_median(&redis_drops), 3));
    let ledger_e2e = backends
        .iter()
        .map(|b| {
            let on: Vec<Measured> = (1..=rounds).map(|r| get(&e2e_name(Some(*b), r))).collect();
            let ratio_rounds: Vec<f64> = on.iter().zip(&pairs).map(|(e, (c, _))| e.jobs_per_s / c.jobs_per_s).collect();
            let drop_rounds: Vec<f64> = ratio_rounds.iter().zip(&ratios).map(|(on, off)| off - on).collect();
            let worst = |f: fn(&Measured) -> Option<f64>| on.iter().filter_map(f).fold(0.0, f64::max);
            LedgerE2e {
                backend: b.as_str(),
                ratio_rounds: ratio_rounds.iter().map(|r| round(*r, 3)).collect(),
                drop: round(lower_median(&drop_rounds), 3),
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
        e2e_redis_ratio_rounds: redis_rounds.iter().map(|(on, _)| round(*on, 3)).collect(),
        e2e_redis_drop,
        replicas: replica_rows(&replica_plans.counts, find),
        rate_limited: replica_plans.limited.map(|(rate, fleet)| limited_rows(rate, fleet, find)).unwrap_or_default(),
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
    if let Some(drop) = r.e2e_redis_drop {
        out.push_str(&format!(
            "| e2e / ceiling drop with the limits in Redis (median round) | {drop:.3} | ≤ 0.05 | {} |\n",
            check(drop <= 0.05)
        ));
    }
    for row in r.replicas.iter().filter(|row| row.replicas > 1) {
        if let Some(ratio) = row.ratio {
            out.push_str(&format!(
                "| {} replicas / 1, jobs/s (local limits) | {ratio:.2} | ≥ 0.90 | {} |\n",
                row.replicas,
                check(ratio >= 0.90)
            ));
        }
    }
    for l in &r.rate_limited {
        // The limit holds when the vendor saw no more than the limits allow over the window.
        if let Some((seen, goal)) = l.sandbox_users_per_s.zip(l.sandbox_bound_per_s) {
            out.push_str(&format!(
                "| sandbox users/s, limit {}/s, {} replica(s), {} | {seen:.0} | ≤ {goal:.0} | {} |\n",
                l.account_rate,
                l.replicas,
                l.backend,
                check(seen <= goal)
            ));
        }
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
    out.push_str(&replica_tables(r));
    out.push_str(&ledger_tables(r));
    if !r.decode.is_empty() {
        out.push_str(&crate::decode::table(&r.decode));
    }
    out
}

/// The replicas scenario and the rate-limited path, with e2e-redis by round.
fn replica_tables(r: &Report) -> String {
    let mut out = String::new();
    let list = |v: &[f64]| v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(", ");
    if !r.e2e_redis_ratio_rounds.is_empty() {
        out.push_str(&format!(
            "\ne2e / ceiling by round: {} without Redis, {} with the limits in Redis\n",
            list(&r.e2e_ratio_rounds),
            list(&r.e2e_redis_ratio_rounds)
        ));
    }
    if !r.replicas.is_empty() {
        out.push_str("\nReplicas: the same backlog, 1, 2, 3… worker processes, local limits never reached:\n\n");
        out.push_str("| replicas | jobs/s | / 1 replica | fleet CPU µs/job | fleet max in flight |\n");
        out.push_str("| ---: | ---: | ---: | ---: | ---: |\n");
        for row in &r.replicas {
            out.push_str(&format!(
                "| {} | {:.0} | {} | {} | {} |\n",
                row.replicas,
                row.jobs_per_s,
                row.ratio.map_or("-".to_owned(), |x| format!("{x:.2}")),
                row.cpu_us_per_job.map_or("-".to_owned(), |x| format!("{x:.0}")),
                row.max_in_flight.map_or("-".to_owned(), |x| x.to_string()),
            ));
        }
    }
    if !r.rate_limited.is_empty() {
        out.push_str(
            "\nRate-limited path (not the e2e path): NetSapiens jobs to one account held to a rate; \
             users/s at the sandbox once the burst is spent:\n\n",
        );
        out.push_str(
            "| backend | replicas | account rate /s | allowed /s | jobs/s (events) | sandbox users/s | bound over the window /s |\n",
        );
        out.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for l in &r.rate_limited {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {:.0} | {} | {} |\n",
                l.backend,
                l.replicas,
                l.account_rate,
                l.allowed_per_s,
                l.jobs_per_s,
                l.sandbox_users_per_s.map_or("-".to_owned(), |x| format!("{x:.0}")),
                l.sandbox_bound_per_s.map_or("-".to_owned(), |x| format!("{x:.0}")),
            ));
        }
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
        let r = summarise(results, 3, &[], Vec::new(), &ReplicaPlans::default());
        assert_eq!(r.e2e_ratio_rounds, vec![0.5, 0.8, 0.6]);
        assert_eq!((r.median_round, r.e2e_ratio, r.ceiling_jobs_per_s, r.e2e_jobs_per_s), (3, 0.6, 9_000.0, 5_400.0));
        assert_eq!(r.latency_efficiency, 0.938);
        // Two rounds: the lower of the two.
        let two = vec![named("ceiling 1", 10.0), named("e2e 1", 8.0), named("ceiling 2", 10.0), named("e2e 2", 6.0)];
        assert_eq!(summarise(two, 2, &[], Vec::new(), &ReplicaPlans::default()).median_round, 2);
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
        let r = summarise(results, 3, &[LedgerBackend::Sqlite], Vec::new(), &ReplicaPlans::default());
        let l = &r.ledger_e2e[0];
        assert_eq!(l.ratio_rounds, vec![0.45, 0.8, 0.5]);
        assert_eq!(l.drop_rounds, vec![0.05, 0.0, 0.1]);
        assert_eq!((l.drop, l.lag_max_s, l.catch_up_s), (0.05, 0.7, 0.7));
        assert!(table(&r).contains("| sqlite | 0.45, 0.80, 0.50 |"));
    }

    #[test]
    fn the_redis_drop_is_the_median_of_each_rounds_own() {
        let named = |name: &str, jobs_per_s: f64| Named {
            name: name.into(),
            measured: Measured { jobs_per_s, ..Default::default() },
        };
        // Off: 0.5, 0.8, 0.6. Redis: 0.5, 0.6, 0.5, so drops 0.0, 0.2, 0.1 (median 0.1);
        // the headline round (3, ratio 0.6) alone would say 0.1 too, round 2 alone 0.2.
        let results = vec![
            named("ceiling 1", 10_000.0),
            named("e2e 1", 5_000.0),
            named("e2e-redis 1", 5_000.0),
            named("ceiling 2", 10_000.0),
            named("e2e 2", 8_000.0),
            named("e2e-redis 2", 6_000.0),
            named("ceiling 3", 10_000.0),
            named("e2e 3", 6_000.0),
            named("e2e-redis 3", 5_000.0),
        ];
        let r = summarise(results, 3, &[], Vec::new(), &ReplicaPlans::default());
        assert_eq!(r.e2e_redis_ratio_rounds, vec![0.5, 0.6, 0.5]);
        assert_eq!(r.e2e_redis_drop, Some(0.1));
        assert!(table(&r)
            .contains("| e2e / ceiling drop with the limits in Redis (median round) | 0.100 | ≤ 0.05 | NOT met |"));
        // Without --redis there is no row and no key.
        let none = summarise(
            vec![named("ceiling 1", 10.0), named("e2e 1", 8.0)],
            1,
            &[],
            Vec::new(),
            &ReplicaPlans::default(),
        );
        assert_eq!(none.e2e_redis_drop, None);
        assert!(!serde_json::to_string(&none).unwrap().contains("e2e_redis"));
    }

    #[test]
    fn replicas_are_compared_with_one_replica() {
        let named = |name: &str, jobs_per_s: f64| Named {
            name: name.into(),
            measured: Measured { jobs_per_s, ..Default::default() },
        };
        let base = [named("ceiling 1", 10_000.0), named("e2e 1", 5_000.0)];
        let mut results = base.to_vec();
        results.extend([named("replicas 1", 5_000.0), named("replicas 2", 5_250.0), named("replicas 3", 4_400.0)]);
        let plans = ReplicaPlans { counts: vec![1, 2, 3], limited: None };
        let r = summarise(results, 1, &[], Vec::new(), &plans);
        let ratios: Vec<_> = r.replicas.iter().map(|row| (row.replicas, row.ratio)).collect();
        assert_eq!(ratios, vec![(1, Some(1.0)), (2, Some(1.05)), (3, Some(0.88))]);
        let t = table(&r);
        assert!(t.contains("| 2 replicas / 1, jobs/s (local limits) | 1.05 | ≥ 0.90 | met |"), "{t}");
        assert!(t.contains("| 3 replicas / 1, jobs/s (local limits) | 0.88 | ≥ 0.90 | NOT met |"), "{t}");
        // Without 1 replica there is nothing to compare with.
        let mut results = base.to_vec();
        results.push(named("replicas 3", 4_400.0));
        let r = summarise(results, 1, &[], Vec::new(), &ReplicaPlans { counts: vec![3], limited: None });
        assert_eq!(r.replicas[0].ratio, None);
        assert!(!table(&r).contains("replicas / 1"));
    }

    #[test]
    fn a_rate_limited_row_holds_the_limit_its_backend_promises() {
        let limited = |name: &str, seen: Option<f64>, bound: f64| Named {
            name: name.into(),
            measured: Measured {
                jobs_per_s: 400.0,
                sandbox_users_per_s: seen,
                sandbox_bound_per_s: seen.map(|_| bound),
                ..Default::default()
            },
        };
        let mut results = vec![
            Named { name: "ceiling 1".into(), measured: Measured { jobs_per_s: 10.0, ..Default::default() } },
            Named { name: "e2e 1".into(), measured: Measured { jobs_per_s: 8.0, ..Default::default() } },
        ];
        results.extend([
            limited(&limited_name(false, 1), Some(501.0), 600.0),
            limited(&limited_name(true, 1), None, 600.0),
            limited(&limited_name(false, 3), Some(1_390.0), 1_575.0),
            limited(&limited_name(true, 3), Some(560.0), 525.0),
        ]);
        let plans = ReplicaPlans { counts: Vec::new(), limited: Some((500, Some(3))) };
        let r = summarise(results, 1, &[], Vec::new(), &plans);
        let rows: Vec<_> = r.rate_limited.iter().map(|l| (l.backend, l.replicas, l.allowed_per_s)).collect();
        assert_eq!(rows, vec![("local", 1, 500), ("redis", 1, 500), ("local", 3, 1_500), ("redis", 3, 500)]);
        let t = table(&r);
        assert!(t.contains("| sandbox users/s, limit 500/s, 3 replica(s), local | 1390 | ≤ 1575 | met |"), "{t}");
        assert!(t.contains("| sandbox users/s, limit 500/s, 3 replica(s), redis | 560 | ≤ 525 | NOT met |"), "{t}");
        assert!(!t.contains("1 replica(s), redis"), "no row without a sandbox rate: {t}");
        assert_eq!(limited_name(true, 1), "rate-limited redis");
        assert_eq!(limited_name(false, 3), "rate-limited local, 3 replicas");
    }
}
