//! `provisioner-bench`: throughput, latency, CPU and memory of the worker, measured against
//! the broker's own ceiling on the local RabbitMQ (see docs/performance.md).
//!
//! Every scenario gets a topology of its own (random suffix, production queue types and
//! arguments, deleted afterwards) and fresh in-process vendor sandboxes. The real worker runs
//! as a child process (this binary re-executed with the hidden `worker` subcommand, which
//! calls the same `commands::run::run` as `provisioner run`), so its CPU time and RSS are
//! read from `/proc/<pid>` for the worker alone. Jobs are observed as events on the
//! topology's own audit queue (bound to every event, as in production).
//!
//! Decoding: every run ends by timing `job::decode_with` (the accounts' own field rules)
//! against `job::decode` (the defaults) in this process; `--decode` runs only that.
//!
//! The ledger: each round also runs the e2e with the ledger on (a fresh SQLite file, a fresh
//! PostgreSQL database), and the ledger's queries run at size on both (`dlq stats`/`list`
//! over a seeded dead-letter index, `whois` over seeded links).
//!
//! Scale-out: the same backlog consumed by 1, 2, 3 worker processes (`replicas N`), and with
//! --redis the rate-limited scenario also as a fleet sharing one account, on both backends.

mod decode;
mod ledger_db;
mod ledger_queries;
mod numbers;
mod proc_stat;
mod report;
mod scenario;
mod worker_child;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use provisioner::config::{Settings, TopologySettings};
use provisioner::contract::VendorKey;
use provisioner::vendors::glance;

use ledger_db::LedgerBackend;
use report::{e2e_name, limited_name, replicas_name, summarise, table, Named, ReplicaPlans};
use scenario::{run_scenario, Plan};

/// The same allocator as the `provisioner` binary: the worker child runs in this process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Twice the concurrency, as the shipped defaults (16 / 32): the next delivery is already
/// here when a slot frees up, instead of one ack → deliver round trip later.
const LATENCY_PREFETCH: u16 = 512;

const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Parser)]
#[command(name = "provisioner-bench", about = "Benchmarks the worker against the broker's own ceiling")]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Tiny counts: a smoke run that only shows the harness works (numbers are meaningless).
    #[arg(long)]
    quick: bool,
    /// Jobs of the ceiling and e2e scenarios (pre-published backlog).
    #[arg(long, default_value_t = 50_000)]
    e2e_jobs: usize,
    /// Jobs of the 200 ms latency scenario.
    #[arg(long, default_value_t = 12_800)]
    latency_jobs: usize,
    /// `vendors.<vendor>.concurrency` of the worker in the e2e scenario (the shipped default
    /// is 16; with a zero-latency vendor the confirm round trip is the job, so more slots
    /// keep the broker busy).
    #[arg(long, default_value_t = 32)]
    e2e_concurrency: u16,
    /// `vendors.<vendor>.prefetch` of the e2e worker and of the ceiling loop's consumers
    /// (twice the concurrency, as the shipped defaults).
    #[arg(long, default_value_t = 64)]
    e2e_prefetch: u16,
    /// Ceiling and e2e run alternately this many times; the headline numbers are the round
    /// whose e2e / ceiling is the median (the machine's load drifts within a run, and a pair
    /// run back to back shares most of it).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    rounds: u16,
    /// Also run e2e with the account limits in this Redis (`rate_limit.backend = "redis"`)
    /// in every round, and the rate-limited scenario on both backends.
    #[arg(long, env = "PROVISIONER_BENCH_REDIS_URL")]
    redis: Option<String>,
    /// The account rate (per second) of the rate-limited scenario.
    #[arg(long, default_value_t = 500)]
    limited_rate: u32,
    /// Worker processes of the replicas scenario, run in this order on the same e2e backlog
    /// (`--e2e-jobs`) with local limits; `''` runs none. With --redis, the largest count also
    /// runs the rate-limited scenario as a fleet sharing one account, on both backends.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    replicas: Vec<ReplicaCount>,
    /// The broker (same as `amqp.url`).
    #[arg(long, env = "PROVISIONER_BENCH_AMQP_URL", default_value = DEFAULT_URL)]
    amqp: String,
    /// The ledger backends of the ledger scenarios (e2e with the ledger on, in every round,
    /// and the queries at size); `--ledger-backends ''` runs none.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    ledger_backends: Vec<LedgerBackendArg>,
    /// A PostgreSQL database the harness connects to to create (and drop) one fresh
    /// database per ledger scenario.
    #[arg(long, env = "PROVISIONER_BENCH_POSTGRES_URL", default_value = DEFAULT_POSTGRES)]
    postgres: String,
    /// Dead letters seeded into the ledger's index for `dlq stats` and `dlq list`.
    #[arg(long, default_value_t = 100_000)]
    dead_letters: usize,
    /// Links seeded into the ledger for `whois` (three per employee, one per vendor).
    #[arg(long, default_value_t = 1_000_000)]
    links: usize,
    /// Run only the decode measurement (no broker, no worker): ns per job of each vendor's
    /// jobs decoded with their account's rules and with the defaults.
    #[arg(long)]
    decode: bool,
    /// Jobs of each vendor decoded on each path (--quick: 2,000).
    #[arg(long, default_value_t = 200_000)]
    decode_jobs: usize,
}

/// A backend, or nothing (the empty value of `--ledger-backends ''`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LedgerBackendArg(Option<LedgerBackend>);

impl std::str::FromStr for LedgerBackendArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        use clap::ValueEnum as _;
        if s.is_empty() {
            return Ok(Self(None));
        }
        LedgerBackend::from_str(s, true).map(|b| Self(Some(b))).map_err(|_| format!("{s:?}: sqlite or postgres"))
    }
}

/// A number of worker processes, or nothing (the empty value of `--replicas ''`). At most 8:
/// each is a process on this machine, sharing its cores with the broker and the harness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ReplicaCount(Option<usize>);

impl std::str::FromStr for ReplicaCount {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Ok(Self(None));
        }
        match s.parse::<usize>() {
            Ok(n @ 1..=8) => Ok(Self(Some(n))),
            _ => Err(format!("{s:?}: a number of worker processes from 1 to 8")),
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Internal: the worker under test, started by the harness.
    #[command(hide = true)]
    Worker(WorkerArgs),
}

/// Everything the child needs to build the same settings as the harness.
#[derive(clap::Args, Clone, Debug)]
struct WorkerArgs {
    #[arg(long)]
    amqp: String,
    #[arg(long)]
    suffix: String,
    #[arg(long)]
    sandbox: String,
    #[arg(long)]
    concurrency: u16,
    #[arg(long)]
    prefetch: u16,
    #[arg(long)]
    admin_port: u16,
    /// Keep the account limits in this Redis (`rate_limit.backend = "redis"`).
    #[arg(long)]
    redis: Option<String>,
    /// Each account's rate per second; unset, one the scenarios never reach.
    #[arg(long)]
    account_rate: Option<u32>,
    /// `ledger.url` of the worker; without it, `ledger.enabled = false`.
    #[arg(long)]
    ledger_url: Option<String>,
}

/// The settings of one scenario: production defaults, a namespaced topology (audit queue
/// included), and one account per vendor on the sandboxes (the Glance one with the
/// sandbox's success marker).
fn bench_settings(a: &WorkerArgs) -> Settings {
    let mut s = Settings { topology: TopologySettings::namespaced(&a.suffix), ..Settings::default() };
    s.amqp.url = a.amqp.clone();
    s.amqp.connection_name = format!("provisioner-bench-{}", a.suffix);
    s.admin.listen = std::net::SocketAddr::from(([127, 0, 0, 1], a.admin_port));
    s.log.format = provisioner::config::LogFormat::Json;
    // Off unless the scenario gives a ledger: the shipped default (an SQLite file under the
    // working directory) would otherwise be shared by every scenario and run.
    match &a.ledger_url {
        Some(url) => s.ledger.url = url.clone(),
        None => s.ledger.enabled = false,
    }
    for v in VendorKey::ALL {
        let cfg = s.vendors.get_mut(v);
        cfg.concurrency = a.concurrency;
        cfg.prefetch = a.prefetch;
        // The worker is under test, not the vendors' politeness: the sandbox accounts get
        // a rate and a concurrency cap the scenarios never reach.
        cfg.account_rate = provisioner::rate_limit::Rate::per_second(a.account_rate.unwrap_or(1_000_000));
        cfg.account_concurrency = a.concurrency;
        let mut account = provisioner::sandbox::account(v, &a.sandbox);
        if v == VendorKey::Glance {
            // The sandbox's success document is known, so its account says how to recognise
            // it, as an operator does once Glance's is captured. Without it every Glance
            // create is confirmed with an extra ShowUsers call (docs/vendors.md, Glance).
            account.settings.insert("success_markers".into(), glance::sandbox::SANDBOX_SUCCESS_MARKER.into());
        }
        s.accounts.insert(account_name(v), account);
    }
    if let Some(url) = &a.redis {
        s.rate_limit.backend = provisioner::rate_limit::Backend::Redis;
        s.rate_limit.redis_url = Some(url.clone());
        s.rate_limit.redis_key_prefix = a.suffix.clone();
    }
    s
}

fn account_name(v: VendorKey) -> String {
    format!("bench-{v}")
}

fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    // The same runtime as `provisioner run`.
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command.take() {
        Some(Cmd::Worker(args)) => rt.block_on(worker_child(args)),
        None => rt.block_on(harness(cli)),
    }
}

/// The child: exactly `provisioner run`, with these settings, until SIGTERM.
async fn worker_child(args: WorkerArgs) -> anyhow::Result<()> {
    let settings = bench_settings(&args);
    settings.check()?;
    provisioner::telemetry::init(&settings.log);
    let shutdown = provisioner::shutdown::on_signal();
    provisioner::commands::run::run(settings, shutdown).await
}

/// The decode measurement, on accounts configured as the bench's worker has them.
fn measure_decode(cli: &Cli) -> Vec<decode::DecodeRun> {
    // The smoke run's debug build decodes ~20x slower: 2,000 keeps it well under a second.
    let jobs = if cli.quick { cli.decode_jobs.min(2_000) } else { cli.decode_jobs };
    if !cli.json {
        eprintln!("running decode ({jobs} jobs of each vendor on each path)…");
    }
    let args = WorkerArgs {
        amqp: cli.amqp.clone(),
        suffix: "decode".into(),
        sandbox: "http://127.0.0.1:9".into(),
        concurrency: cli.e2e_concurrency,
        prefetch: cli.e2e_prefetch,
        admin_port: 0,
        redis: None,
        account_rate: None,
        ledger_url: None,
    };
    decode::run(&bench_settings(&args), account_name, jobs)
}

async fn harness(cli: Cli) -> anyhow::Result<()> {
    let started = Instant::now();
    if cli.decode {
        let runs = measure_decode(&cli);
        if cli.json {
            println!("{}", serde_json::json!({ "decode": runs }));
        } else {
            print!("{}", decode::table(&runs));
            println!(
                "(harness ran {:.0} s{})",
                started.elapsed().as_secs_f64(),
                if cli.quick { "; --quick" } else { "" }
            );
        }
        return Ok(());
    }
    let (e2e_jobs, latency_jobs, memory_jobs, rounds) =
        if cli.quick { (1_500, 600, 600, 1) } else { (cli.e2e_jobs, cli.latency_jobs, 3_000, cli.rounds) };
    let (dead_letters, links) = if cli.quick { (2_000, 10_000) } else { (cli.dead_letters, cli.links) };
    let mut backends: Vec<LedgerBackend> = cli.ledger_backends.iter().filter_map(|b| b.0).collect();
    backends.dedup();
    let all = VendorKey::ALL.to_vec();
    // e2e and ceiling share the same consumer settings, so the ratio compares like with like.
    let (conc, prefetch) = (cli.e2e_concurrency, cli.e2e_prefetch);
    let pair = |ceiling: bool, ledger: Option<LedgerBackend>| Plan {
        jobs: e2e_jobs,
        vendors: all.clone(),
        latency: Duration::ZERO,
        concurrency: conc,
        prefetch,
        backlog: true,
        ceiling,
        redis: None,
        account_rate: None,
        ledger,
        replicas: 1,
    };
    // Ceiling and e2e (without, then with each ledger; with --redis, with the limits in Redis
    // too) alternate, and swap places every other round (c e…, …e c, c e…), so a drift in
    // the machine's load lands on both sides of the ratios.
    let mut plans: Vec<(String, Plan)> = Vec::new();
    for r in 1..=rounds {
        let r_ = usize::from(r);
        let mut round = vec![(format!("ceiling {r}"), pair(true, None)), (e2e_name(None, r_), pair(false, None))];
        round.extend(backends.iter().map(|b| (e2e_name(Some(*b), r_), pair(false, Some(*b)))));
        if let Some(url) = &cli.redis {
            round.push((format!("e2e-redis {r}"), Plan { redis: Some(url.clone()), ..pair(false, None) }));
        }
        if r % 2 == 0 {
            round.reverse();
        }
        plans.extend(round);
    }
    let counts: Vec<usize> = cli.replicas.iter().filter_map(|c| c.0).collect();
    let fleet = counts.iter().copied().max().filter(|n| *n > 1);
    // The rate-limited path: one vendor's account held to --limited-rate, on each backend;
    // jobs/s should come out at the rate on both. Then the same with a fleet of replicas
    // sharing the account: with Redis the sandbox should see the rate, with local limits
    // each replica keeps the whole rate.
    if let Some(url) = &cli.redis {
        let limited = |jobs: usize, redis: Option<String>, replicas: usize| Plan {
            jobs,
            vendors: vec![VendorKey::Netsapiens],
            account_rate: Some(cli.limited_rate),
            redis,
            replicas,
            ..pair(false, None)
        };
        let rate = cli.limited_rate as usize;
        let jobs = if cli.quick { 300 } else { rate * 10 };
        plans.push((limited_name(false, 1), limited(jobs, None, 1)));
        plans.push((limited_name(true, 1), limited(jobs, Some(url.clone()), 1)));
        if let Some(n) = fleet {
            // Longer: with local limits the fleet may go n times as fast, and its burst is
            // n times as large.
            let jobs = if cli.quick { 300 } else { rate * 12 };
            plans.push((limited_name(false, n), limited(jobs, None, n)));
            plans.push((limited_name(true, n), limited(jobs, Some(url.clone()), n)));
        }
    }
    // Scale-out on the e2e path: the same backlog, one replica count after the other.
    let replica_jobs = if cli.quick { 300 } else { e2e_jobs };
    for n in &counts {
        plans.push((replicas_name(*n), Plan { jobs: replica_jobs, replicas: *n, ..pair(false, None) }));
    }
    // 256 jobs at once in total: one vendor with concurrency 256, so 256 / 0.2 s holds.
    plans.push((
        "latency".into(),
        Plan {
            jobs: latency_jobs,
            vendors: vec![VendorKey::Glance],
            latency: Duration::from_millis(200),
            concurrency: 256,
            prefetch: LATENCY_PREFETCH,
            backlog: true,
            ceiling: false,
            redis: None,
            account_rate: None,
            ledger: None,
            replicas: 1,
        },
    ));
    // 1,002 slots over three vendors, a 2 s vendor so they all fill; jobs arrive live.
    plans.push((
        "memory".into(),
        Plan {
            jobs: memory_jobs,
            vendors: all.clone(),
            latency: Duration::from_secs(2),
            concurrency: 334,
            prefetch: 334,
            backlog: false,
            ceiling: false,
            redis: None,
            account_rate: None,
            ledger: None,
            replicas: 1,
        },
    ));
    let mut results = Vec::new();
    for (label, plan) in plans {
        if !cli.json {
            eprintln!("running {label} ({} jobs)…", plan.jobs);
        }
        let m = run_scenario(&cli.amqp, &cli.postgres, &plan).await.with_context(|| format!("scenario {label}"))?;
        results.push(Named { name: label, measured: m });
    }
    let mut queries = Vec::new();
    for b in &backends {
        if !cli.json {
            eprintln!("running ledger queries on {} ({dead_letters} dead letters, {links} links)…", b.as_str());
        }
        let q = ledger_queries::run(*b, &cli.postgres, dead_letters, links)
            .await
            .with_context(|| format!("ledger queries on {}", b.as_str()))?;
        queries.push(q);
    }
    let replica_plans = ReplicaPlans { counts, limited: cli.redis.as_ref().map(|_| (cli.limited_rate, fleet)) };
    let mut report = summarise(results, usize::from(rounds), &backends, queries, &replica_plans);
    report.decode = measure_decode(&cli);
    if cli.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", table(&report));
        println!("(harness ran {:.0} s{})", started.elapsed().as_secs_f64(), if cli.quick { "; --quick" } else { "" });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("provisioner-bench").chain(args.iter().copied()))
    }

    #[test]
    fn replicas_parse_as_a_list_of_counts() {
        let counts = |args: &[&str]| parse(args).map(|c| c.replicas.iter().filter_map(|r| r.0).collect::<Vec<_>>());
        assert_eq!(counts(&[]).unwrap(), vec![1, 2, 3]);
        assert_eq!(counts(&["--replicas", "1,4"]).unwrap(), vec![1, 4]);
        assert_eq!(counts(&["--replicas", ""]).unwrap(), Vec::<usize>::new());
        for bad in ["0", "9", "two", "-1", "1,,x"] {
            assert!(counts(&["--replicas", bad]).is_err(), "{bad:?} was accepted");
        }
    }
}
