//! `provisioner-bench`: throughput, latency, CPU and memory of the worker, measured against
//! the broker's own ceiling on the local RabbitMQ (see docs/performance.md).
//!
//! Every scenario gets a topology of its own (random suffix, production queue types and
//! arguments, deleted afterwards) and fresh in-process vendor sandboxes. The real worker runs
//! as a child process (this binary re-executed with the hidden `worker` subcommand, which
//! calls the same `commands::run::run` as `provisioner run`), so its CPU time and RSS are
//! read from `/proc/<pid>` for the worker alone. Jobs are observed as events on the
//! topology's own audit queue (bound to every event, as in production).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use futures_util::stream::{self, StreamExt as _};
use lapin::options::{BasicAckOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use provisioner::config::{Settings, TopologySettings};
use provisioner::contract::VendorKey;
use provisioner::pipeline::sample_job;
use provisioner::sandbox::{Faults, Sandboxes};
use provisioner::transport::rabbitmq::{self, ConfirmPublisher};
use provisioner::transport::{Headers, Outbound, OutboundKind, Publisher};
use provisioner::vendors::glance;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// The same allocator as the `provisioner` binary: the worker child runs in this process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Twice the concurrency, as the shipped defaults (16 / 32): the next delivery is already
/// here when a slot frees up, instead of one ack → deliver round trip later.
const LATENCY_PREFETCH: u16 = 512;

const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

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
    /// The broker (same as `amqp.url`).
    #[arg(long, env = "PROVISIONER_BENCH_AMQP_URL", default_value = DEFAULT_URL)]
    amqp: String,
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
    for v in VendorKey::ALL {
        let cfg = s.vendors.get_mut(v);
        cfg.concurrency = a.concurrency;
        cfg.prefetch = a.prefetch;
        // The worker is under test, not the vendors' politeness: the sandbox accounts get
        // a rate and a concurrency cap the scenarios never reach.
        cfg.account_rate = provisioner::rate_limit::Rate::per_second(1_000_000);
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

/// One scenario's plan.
#[derive(Clone, Debug)]
struct Plan {
    jobs: usize,
    /// Which vendors get jobs, round-robin.
    vendors: Vec<VendorKey>,
    latency: Duration,
    concurrency: u16,
    prefetch: u16,
    /// Publish the jobs before the worker starts (a backlog), or while it runs.
    backlog: bool,
    /// The bare lapin loop instead of the worker.
    ceiling: bool,
}

/// One scenario's measurements.
#[derive(Clone, Debug, Default, Serialize)]
struct Measured {
    jobs: usize,
    seconds: f64,
    jobs_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// The worker child's CPU (utime + stime) per job.
    cpu_us_per_job: Option<f64>,
    /// This process's CPU per job over the same window: the sandboxes, the observer (and
    /// the publisher where jobs arrive live), or the bare loop of the ceiling.
    harness_cpu_us_per_job: Option<f64>,
    /// The local broker's (`beam.smp`) CPU per job over the same window; it includes
    /// whatever other clients of that broker did meanwhile.
    broker_cpu_us_per_job: Option<f64>,
    /// The share of the machine's CPU time left idle over the window (`/proc/stat`): near 0,
    /// the scenario was bound by CPU, not by the broker's or the vendor's latency.
    idle_pct: Option<f64>,
    /// The share the hypervisor gave to other guests (`steal`): a virtual machine's noisy
    /// neighbours, which slow every process here alike.
    steal_pct: Option<f64>,
    /// The worker child's context switches (voluntary and not) per job.
    worker_switches_per_job: Option<f64>,
    rss_idle_mib: Option<f64>,
    rss_peak_mib: Option<f64>,
    max_in_flight: Option<u64>,
}

#[derive(Serialize)]
struct Report {
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
    /// Which round the headline ceiling and e2e numbers come from (1-based).
    median_round: usize,
    /// Every scenario that ran, in order (`ceiling 1`, `e2e 1`, …, `latency`, `memory`).
    scenarios: Vec<Named>,
}

#[derive(Clone, Debug, Serialize)]
struct Named {
    name: String,
    #[serde(flatten)]
    measured: Measured,
}

async fn harness(cli: Cli) -> anyhow::Result<()> {
    let started = Instant::now();
    let (e2e_jobs, latency_jobs, memory_jobs, rounds) =
        if cli.quick { (1_500, 600, 600, 1) } else { (cli.e2e_jobs, cli.latency_jobs, 3_000, cli.rounds) };
    let all = VendorKey::ALL.to_vec();
    // e2e and ceiling share the same consumer settings, so the ratio compares like with like.
    let (conc, prefetch) = (cli.e2e_concurrency, cli.e2e_prefetch);
    let pair = |ceiling: bool| Plan {
        jobs: e2e_jobs,
        vendors: all.clone(),
        latency: Duration::ZERO,
        concurrency: conc,
        prefetch,
        backlog: true,
        ceiling,
    };
    // Ceiling and e2e alternate, and swap places every other round (c e, e c, c e…), so a
    // drift in the machine's load lands on both sides of the ratio.
    let mut plans: Vec<(String, Plan)> = Vec::new();
    for r in 1..=rounds {
        let round = [(format!("ceiling {r}"), pair(true)), (format!("e2e {r}"), pair(false))];
        if r % 2 == 1 {
            plans.extend(round);
        } else {
            plans.extend(round.into_iter().rev());
        }
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
        },
    ));
    let mut results = Vec::new();
    for (label, plan) in plans {
        if !cli.json {
            eprintln!("running {label} ({} jobs)…", plan.jobs);
        }
        let m = run_scenario(&cli.amqp, &plan).await.with_context(|| format!("scenario {label}"))?;
        results.push(Named { name: label, measured: m });
    }
    let report = summarise(results, usize::from(rounds));
    if cli.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", table(&report));
        println!("(harness ran {:.0} s{})", started.elapsed().as_secs_f64(), if cli.quick { "; --quick" } else { "" });
    }
    Ok(())
}

/// The headline numbers: ceiling and e2e from the round whose ratio is the median (the lower
/// middle one for an even count), latency and memory from their single runs.
fn summarise(results: Vec<Named>, rounds: usize) -> Report {
    let get = |name: &str| results.iter().find(|n| n.name == name).map(|n| n.measured.clone()).unwrap_or_default();
    let pairs: Vec<(Measured, Measured)> =
        (1..=rounds).map(|r| (get(&format!("ceiling {r}")), get(&format!("e2e {r}")))).collect();
    let ratios: Vec<f64> = pairs.iter().map(|(c, e)| e.jobs_per_s / c.jobs_per_s).collect();
    let mut order: Vec<usize> = (0..ratios.len()).collect();
    order.sort_by(|a, b| ratios[*a].total_cmp(&ratios[*b]));
    let median = order[(order.len() - 1) / 2];
    let (ceiling, e2e) = pairs[median].clone();
    let (latency, memory) = (get("latency"), get("memory"));
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
        scenarios: results,
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn table(r: &Report) -> String {
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
    out
}

/// Runs one scenario in a topology of its own and deletes it afterwards, whatever happened.
async fn run_scenario(amqp: &str, plan: &Plan) -> anyhow::Result<Measured> {
    let stop = CancellationToken::new();
    let _stop_sandboxes = stop.clone().drop_guard();
    let sandboxes = Sandboxes::new(Faults { latency: plan.latency, ..Faults::default() }, 7);
    let (addr, _) = sandboxes.serve("127.0.0.1:0".parse()?, stop.clone()).await?;
    let args = WorkerArgs {
        amqp: amqp.to_owned(),
        suffix: format!("bench-{}", uuid::Uuid::new_v4().simple()),
        sandbox: format!("http://{addr}"),
        concurrency: plan.concurrency,
        prefetch: plan.prefetch,
        admin_port: free_port()?,
    };
    let settings = bench_settings(&args);
    let conn =
        rabbitmq::connect(&settings).await.context("the benchmark needs RabbitMQ (`rabbitmq-server -detached`)")?;
    let ch = rabbitmq::confirm_channel(&conn).await?;
    rabbitmq::declare(&ch, &settings).await?;
    let result = measure(&conn, &ch, &settings, &args, plan).await;
    rabbitmq::delete_topology(&ch, &settings).await;
    let _ = conn.close(200, "bench done".into()).await;
    result
}

async fn measure(
    conn: &Connection,
    ch: &Channel,
    settings: &Settings,
    args: &WorkerArgs,
    plan: &Plan,
) -> anyhow::Result<Measured> {
    let jobs = jobs(settings, plan);
    let publisher = ConfirmPublisher::new(ch.clone());
    let mut published = Vec::new();
    if plan.backlog {
        published = publish_all(&publisher, &jobs).await?;
    }
    let observer = Observer::start(conn, settings, plan.jobs).await?;

    let mut child = None;
    let ceiling_stop = CancellationToken::new();
    let _ceiling_guard = ceiling_stop.clone().drop_guard();
    if plan.ceiling {
        bare_loop(conn, settings, plan.prefetch, ceiling_stop.clone()).await?;
    } else {
        let c = WorkerChild::spawn(args)?;
        child = Some(c);
    }
    wait_consuming(ch, settings, plan).await?;
    let ready = Instant::now();
    let cpu_start = child.as_ref().map(|c| c.cpu_ticks()).transpose()?;
    let switches_start = child.as_ref().map(|c| c.context_switches());
    let harness_start = own_cpu_ticks()?;
    let broker_start = broker_cpu_ticks();
    let machine_start = machine_ticks();
    let mut rss_idle = None;
    let mut max_in_flight = None;
    let watch = child.as_ref().map(|_| InFlightWatch::start(args.admin_port));
    if !plan.backlog {
        // Idle: connected and consuming, nothing to do yet. Let start-up allocations settle.
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_idle = child.as_ref().map(|c| c.status_kib("VmRSS")).transpose()?.map(kib_to_mib);
        published = publish_all(&publisher, &jobs).await?;
    }
    let deadline = Duration::from_secs(300);
    let seen = observer.finish(deadline).await?;
    let done = Instant::now();
    // One reading of the machine for both shares, so they cover the same window.
    let machine = machine_start.zip(machine_ticks());
    let hz = clock_ticks() as f64;
    let per_job = |ticks: u64| round(ticks as f64 * 1e6 / hz / plan.jobs as f64, 1);
    let mut m = Measured {
        jobs: plan.jobs,
        harness_cpu_us_per_job: Some(per_job(own_cpu_ticks()? - harness_start)),
        broker_cpu_us_per_job: broker_start.zip(broker_cpu_ticks()).map(|(a, b)| per_job(b.saturating_sub(a))),
        idle_pct: machine.and_then(|(a, b)| share(a, b, |t| t.idle)),
        steal_pct: machine.and_then(|(a, b)| share(a, b, |t| t.steal)),
        ..Default::default()
    };
    // From consuming to the last event: start-up is not counted, ramp-up is.
    let since = if plan.backlog { ready } else { published.first().copied().unwrap_or(ready) };
    m.seconds = round(done.duration_since(since).as_secs_f64(), 3);
    m.jobs_per_s = plan.jobs as f64 / done.duration_since(since).as_secs_f64();
    let mut lat: Vec<f64> = seen
        .iter()
        .zip(&published)
        .map(|(event_at, published_at)| event_at.duration_since(*published_at).as_secs_f64() * 1000.0)
        .collect();
    lat.sort_by(f64::total_cmp);
    m.p50_ms = round(percentile(&lat, 0.50), 1);
    m.p99_ms = round(percentile(&lat, 0.99), 1);
    if let Some(c) = &child {
        let ticks = c.cpu_ticks()? - cpu_start.unwrap_or(0);
        m.cpu_us_per_job = Some(per_job(ticks));
        m.worker_switches_per_job =
            switches_start.map(|a| round(c.context_switches().saturating_sub(a) as f64 / plan.jobs as f64, 2));
        m.rss_peak_mib = Some(round(kib_to_mib(c.status_kib("VmHWM")?), 1));
        m.rss_idle_mib = rss_idle.map(|v| round(v, 1));
    }
    if let Some(w) = watch {
        max_in_flight = Some(w.stop().await);
    }
    m.max_in_flight = max_in_flight;
    if let Some(c) = child {
        c.stop().await?;
    }
    Ok(m)
}

fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The value at quantile `q` of sorted samples (nearest rank).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Round-robin jobs over the plan's vendors; identities are digits, valid for all three.
fn jobs(settings: &Settings, plan: &Plan) -> Vec<Outbound> {
    (0..plan.jobs)
        .map(|i| {
            let vendor = plan.vendors[i % plan.vendors.len()];
            let id = job_id(i);
            let body = sample_job(&id, vendor, &account_name(vendor), &format!("{}", 10_000_000 + i));
            Outbound {
                kind: OutboundKind::Job,
                exchange: settings.topology.jobs_exchange.clone(),
                routing_key: provisioner::contract::Job::routing_key(vendor),
                body: body.to_string().into_bytes(),
                message_id: Some(id),
                content_type: Some("application/json".into()),
                timestamp: Some(chrono::Utc::now().timestamp() as u64),
                headers: Headers::new(),
            }
        })
        .collect()
}

fn job_id(i: usize) -> String {
    format!("bench-{i}")
}

fn job_index(id: &str) -> Option<usize> {
    id.strip_prefix("bench-")?.parse().ok()
}

/// Publishes every job with pipelined confirms; returns when each was published, by index.
async fn publish_all(publisher: &ConfirmPublisher, jobs: &[Outbound]) -> anyhow::Result<Vec<Instant>> {
    let results: Vec<_> = stream::iter(jobs.iter().map(|m| async move {
        let at = Instant::now();
        publisher.publish(m).await.map(|()| at)
    }))
    .buffered(512)
    .collect()
    .await;
    results.into_iter().collect::<Result<Vec<_>, _>>().context("a job publish was not confirmed")
}

/// Collects the event of every job from the audit queue, with the instant each arrived.
struct Observer {
    task: tokio::task::JoinHandle<anyhow::Result<Vec<Instant>>>,
}

impl Observer {
    async fn start(conn: &Connection, settings: &Settings, expected: usize) -> anyhow::Result<Self> {
        let (ch, mut consumer, _) =
            rabbitmq::consume(conn, settings, &settings.topology.audit_queue, 2_000, "bench-observer").await?;
        let task = tokio::spawn(async move {
            let _ch = ch;
            let mut seen: Vec<Option<Instant>> = vec![None; expected];
            let mut left = expected;
            let mut not_created = 0usize;
            while left > 0 {
                let Some(d) = consumer.next().await else { bail!("the observer's consumer ended") };
                let d = d?;
                let at = Instant::now();
                #[derive(serde::Deserialize)]
                struct Event<'a> {
                    subject: &'a str,
                    #[serde(rename = "type")]
                    kind: &'a str,
                }
                let ev: Event = serde_json::from_slice(&d.data).context("an event that is not a CloudEvent")?;
                if ev.kind != "provisioning.user.created" {
                    not_created += 1;
                }
                if let Some(slot) = job_index(ev.subject).and_then(|i| seen.get_mut(i)) {
                    if slot.is_none() {
                        *slot = Some(at);
                        left -= 1;
                    }
                }
                if d.delivery_tag % 500 == 0 || left == 0 {
                    d.acker.ack(BasicAckOptions { multiple: true }).await?;
                }
            }
            if not_created > 0 {
                bail!("{not_created} events were not `created`: the benchmark setup is wrong");
            }
            Ok(seen.into_iter().map(|s| s.expect("every slot filled")).collect())
        });
        Ok(Self { task })
    }

    async fn finish(self, within: Duration) -> anyhow::Result<Vec<Instant>> {
        match tokio::time::timeout(within, self.task).await {
            Ok(joined) => joined?,
            Err(_) => bail!("not every event arrived within {within:?}"),
        }
    }
}

/// Waits until every vendor queue that gets jobs has its consumer.
async fn wait_consuming(ch: &Channel, settings: &Settings, plan: &Plan) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut all = true;
        for v in &plan.vendors {
            let q = settings.topology.job_queue(*v);
            let opts = QueueDeclareOptions { passive: true, ..Default::default() };
            let state = ch.queue_declare(q.as_str().into(), opts, FieldTable::default()).await?;
            all &= state.consumer_count() > 0;
        }
        if all {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the worker did not start consuming within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The broker-bound limit: consume, publish an event with confirm, ack after the confirm.
/// Nothing else: no decoding, no vendor call, no metrics.
async fn bare_loop(
    conn: &Connection,
    settings: &Settings,
    prefetch: u16,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let publish = rabbitmq::confirm_channel(conn).await?;
    for v in VendorKey::ALL {
        let (ch, mut consumer, _) =
            rabbitmq::consume(conn, settings, &settings.topology.job_queue(v), prefetch, "bench-ceiling").await?;
        let (publish, stop, exchange) = (publish.clone(), stop.clone(), settings.topology.events_exchange.clone());
        let routing_key = format!("user.created.{v}");
        tokio::spawn(async move {
            let _ch = ch;
            loop {
                let d = tokio::select! {
                    _ = stop.cancelled() => break,
                    d = consumer.next() => match d { Some(Ok(d)) => d, _ => break },
                };
                let id = d.properties.message_id().as_ref().map(|s| s.as_str().to_owned()).unwrap_or_default();
                let body = format!(
                    r#"{{"specversion":"1.0","id":"{id}","source":"urn:provisioner","type":"provisioning.user.created","subject":"{id}","datacontenttype":"application/json","data":{{"job_id":"{id}","outcome":"created"}}}}"#
                );
                let opts = BasicPublishOptions { mandatory: true, ..Default::default() };
                let props = BasicProperties::default().with_delivery_mode(2);
                let Ok(confirm) = publish
                    .basic_publish(exchange.as_str().into(), routing_key.as_str().into(), opts, body.as_bytes(), props)
                    .await
                else {
                    break;
                };
                tokio::spawn(async move {
                    if let Ok(Confirmation::Ack(None)) = confirm.await {
                        let _ = d.acker.ack(BasicAckOptions::default()).await;
                    }
                });
            }
        });
    }
    Ok(())
}

/// The worker under test, as a child process.
struct WorkerChild {
    child: Child,
    pid: u32,
    log: std::path::PathBuf,
}

impl WorkerChild {
    /// `PROVISIONER_BENCH_WORKER_WRAP` (e.g. `valgrind --tool=callgrind`) runs the worker
    /// under a profiler that keeps its pid; the numbers of such a run are the profiler's.
    fn spawn(a: &WorkerArgs) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let log = std::env::temp_dir().join(format!("{}.worker.log", a.suffix));
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
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(Self { pid: child.id(), child, log })
    }

    /// utime + stime of the whole process, in clock ticks.
    fn cpu_ticks(&self) -> anyhow::Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        parse_cpu_ticks(&stat).context("unreadable /proc/<pid>/stat")
    }

    /// Context switches, voluntary and not, summed over the process's threads (each thread's
    /// `status` counts its own).
    fn context_switches(&self) -> u64 {
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

    fn status_kib(&self, field: &str) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        parse_status_field(&status, field).with_context(|| format!("no {field} in /proc/<pid>/status"))
    }

    /// SIGTERM, then wait for the drain to end; a worker that exits non-zero, or does not
    /// exit within the drain deadline and a margin, fails the run.
    async fn stop(mut self) -> anyhow::Result<()> {
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

/// utime + stime of this process (the harness), in clock ticks.
fn own_cpu_ticks() -> anyhow::Result<u64> {
    parse_cpu_ticks(&std::fs::read_to_string("/proc/self/stat")?).context("unreadable /proc/self/stat")
}

/// utime + stime of every local `beam.smp` (the RabbitMQ node), in clock ticks; `None` when
/// the broker is not on this host.
fn broker_cpu_ticks() -> Option<u64> {
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
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so utime (14) and stime (15) are at 11 and 12.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The first number of a `/proc/<pid>/status` field (`VmRSS:   12288 kB` is in kB).
fn parse_status_field(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The machine's CPU time so far, from the `cpu` line of `/proc/stat`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct MachineTicks {
    /// idle + iowait
    idle: u64,
    steal: u64,
    total: u64,
}

fn machine_ticks() -> Option<MachineTicks> {
    parse_machine_ticks(&std::fs::read_to_string("/proc/stat").ok()?)
}

fn parse_machine_ticks(stat: &str) -> Option<MachineTicks> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let ticks: Vec<u64> = line.split_whitespace().skip(1).take(8).map(|t| t.parse().ok()).collect::<Option<_>>()?;
    Some(MachineTicks { idle: ticks.get(3)? + ticks.get(4)?, steal: *ticks.get(7)?, total: ticks.iter().sum() })
}

/// One part's share of the machine's time between two readings, in percent (one decimal).
fn share(before: MachineTicks, after: MachineTicks, part: impl Fn(&MachineTicks) -> u64) -> Option<f64> {
    let total = after.total.checked_sub(before.total).filter(|t| *t > 0)?;
    Some(round(part(&after).saturating_sub(part(&before)) as f64 * 100.0 / total as f64, 1))
}

fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Scrapes the worker's `provisioner_jobs_in_flight` to show how many jobs were really in
/// flight at once.
struct InFlightWatch {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<u64>,
}

impl InFlightWatch {
    fn start(port: u16) -> Self {
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            let url = format!("http://127.0.0.1:{port}/metrics");
            let mut max = 0;
            while !s.is_cancelled() {
                if let Ok(text) = async { http.get(&url).send().await?.text().await }.await {
                    max = max.max(in_flight(&text));
                }
                tokio::select! { _ = s.cancelled() => {}, _ = tokio::time::sleep(Duration::from_millis(100)) => {} }
            }
            max
        });
        Self { stop, task }
    }

    async fn stop(self) -> u64 {
        self.stop.cancel();
        self.task.await.unwrap_or(0)
    }
}

/// The sum of `provisioner_jobs_in_flight` over vendors in a Prometheus text scrape.
fn in_flight(text: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with("provisioner_jobs_in_flight{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
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

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.50), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn in_flight_sums_every_vendor() {
        let text = "# TYPE provisioner_jobs_in_flight gauge\nprovisioner_jobs_in_flight{vendor=\"glance\"} 334\n\
                    provisioner_jobs_in_flight{vendor=\"netsapiens\"} 300\nprovisioner_jobs_received_total{vendor=\"glance\"} 9\n";
        assert_eq!(in_flight(text), 634);
    }

    #[test]
    fn job_ids_round_trip_to_their_index() {
        assert_eq!(job_index(&job_id(49_999)), Some(49_999));
        assert_eq!(job_index("hire-1"), None);
    }
}
