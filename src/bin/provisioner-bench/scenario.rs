//! One scenario end to end: its topology, the jobs, the worker or the bare broker loop, the
//! observer of events, and the measurements.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures_util::stream::{self, StreamExt as _};
use lapin::options::{BasicAckOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use provisioner::config::Settings;
use provisioner::contract::VendorKey;
use provisioner::pipeline::sample_job;
use provisioner::sandbox::{Faults, Sandboxes};
use provisioner::transport::rabbitmq::{self, ConfirmPublisher};
use provisioner::transport::{Headers, Outbound, OutboundKind, Publisher};
use tokio_util::sync::CancellationToken;

use crate::ledger_db::{LedgerBackend, LedgerDb};
use crate::numbers::round;
use crate::proc_stat::{broker_cpu_ticks, clock_ticks, machine_ticks, own_cpu_ticks, share};
use crate::report::Measured;
use crate::worker_child::{free_port, AdminWatch, WorkerChild};
use crate::{account_name, bench_settings, WorkerArgs};

/// One scenario's plan.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) jobs: usize,
    /// Which vendors get jobs, round-robin.
    pub(crate) vendors: Vec<VendorKey>,
    pub(crate) latency: Duration,
    pub(crate) concurrency: u16,
    pub(crate) prefetch: u16,
    /// Publish the jobs before the worker starts (a backlog), or while it runs.
    pub(crate) backlog: bool,
    /// The bare lapin loop instead of the worker.
    pub(crate) ceiling: bool,
    /// The worker keeps the account limits in this Redis.
    pub(crate) redis: Option<String>,
    /// Each account's rate per second (unset: never reached).
    pub(crate) account_rate: Option<u32>,
    /// The worker's ledger (a fresh database, its projection in the worker), or none
    /// (`ledger.enabled = false`).
    pub(crate) ledger: Option<LedgerBackend>,
    /// Worker processes consuming the same queues (each with the whole settings: its own
    /// concurrency, and its own limits unless they are kept in Redis). 1 for the ceiling.
    pub(crate) replicas: usize,
}

/// Runs one scenario in a topology of its own and deletes it afterwards, whatever happened.
pub(crate) async fn run_scenario(amqp: &str, postgres_admin: &str, plan: &Plan) -> anyhow::Result<Measured> {
    let stop = CancellationToken::new();
    let _stop_sandboxes = stop.clone().drop_guard();
    let sandboxes = Sandboxes::new(Faults { latency: plan.latency, ..Faults::default() }, 7);
    let (addr, _) = sandboxes.serve("127.0.0.1:0".parse()?, stop.clone()).await?;
    let suffix = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let ledger = match plan.ledger {
        Some(backend) => Some(LedgerDb::create(backend, postgres_admin, &suffix).await?),
        None => None,
    };
    let args = WorkerArgs {
        amqp: amqp.to_owned(),
        suffix,
        sandbox: format!("http://{addr}"),
        concurrency: plan.concurrency,
        prefetch: plan.prefetch,
        admin_port: free_port()?,
        redis: plan.redis.clone(),
        account_rate: plan.account_rate,
        ledger_url: ledger.as_ref().map(|l| l.url.clone()),
    };
    let result = in_topology(&bench_settings(&args), &args, plan, ledger.as_ref(), &sandboxes).await;
    if let Some(l) = ledger {
        l.remove().await;
    }
    result
}

async fn in_topology(
    settings: &Settings,
    args: &WorkerArgs,
    plan: &Plan,
    ledger: Option<&LedgerDb>,
    sandboxes: &Sandboxes,
) -> anyhow::Result<Measured> {
    let conn =
        rabbitmq::connect(settings).await.context("the benchmark needs RabbitMQ (`rabbitmq-server -detached`)")?;
    let ch = rabbitmq::confirm_channel(&conn).await?;
    rabbitmq::declare(&ch, settings).await?;
    let result = measure(&conn, &ch, settings, args, plan, ledger, sandboxes).await;
    rabbitmq::delete_topology(&ch, settings).await;
    let _ = conn.close(200, "bench done".into()).await;
    result
}

async fn measure(
    conn: &Connection,
    ch: &Channel,
    settings: &Settings,
    args: &WorkerArgs,
    plan: &Plan,
    ledger: Option<&LedgerDb>,
    sandboxes: &Sandboxes,
) -> anyhow::Result<Measured> {
    let jobs = jobs(settings, plan);
    let publisher = ConfirmPublisher::new(ch.clone());
    let mut published = Vec::new();
    if plan.backlog {
        published = publish_all(&publisher, &jobs).await?;
    }
    let observer = Observer::start(conn, settings, plan.jobs).await?;

    let ceiling_stop = CancellationToken::new();
    let _ceiling_guard = ceiling_stop.clone().drop_guard();
    // The replicas all start before any is waited for, so they come up together; each has
    // an admin port of its own.
    let mut children = Vec::new();
    let mut ports = Vec::new();
    if plan.ceiling {
        bare_loop(conn, settings, plan.prefetch, ceiling_stop.clone()).await?;
    } else {
        for i in 0..plan.replicas.max(1) {
            let replica =
                WorkerArgs { admin_port: if i == 0 { args.admin_port } else { free_port()? }, ..args.clone() };
            children.push(WorkerChild::spawn(&replica, i)?);
            ports.push(replica.admin_port);
        }
    }
    wait_consuming(ch, settings, plan).await?;
    let ready = Instant::now();
    let cpu_start = children.iter().map(|c| c.cpu_ticks()).sum::<anyhow::Result<u64>>()?;
    let switches_start: u64 = children.iter().map(|c| c.context_switches()).sum();
    let harness_start = own_cpu_ticks()?;
    let broker_start = broker_cpu_ticks();
    let machine_start = machine_ticks();
    let mut rss_idle = None;
    let watch = (!children.is_empty()).then(|| AdminWatch::start(&ports));
    // Under an account limit, what the vendor saw is the point: count its users as they grow.
    let counter = plan.account_rate.map(|_| SandboxCount::start(sandboxes.clone(), plan.vendors.clone(), ready));
    if !plan.backlog {
        // Idle: connected and consuming, nothing to do yet. Let start-up allocations settle.
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_idle = children.first().map(|c| c.status_kib("VmRSS")).transpose()?.map(kib_to_mib);
        published = publish_all(&publisher, &jobs).await?;
    }
    let deadline = Duration::from_secs(300);
    let seen = observer.finish(deadline).await?;
    let done = Instant::now();
    let sandbox_counts = match counter {
        Some(c) => c.stop().await,
        None => Vec::new(),
    };
    // The lag as the last event arrives: stop scraping here, before waiting for the ledger.
    let scraped = match watch {
        Some(w) => Some(w.stop().await),
        None => None,
    };
    // One reading of the machine for both shares, so they cover the same window.
    let machine = machine_start.zip(machine_ticks());
    // From consuming to the last event: start-up is not counted, ramp-up is. Only the jobs
    // done in that window count: a replica that came up first may have done some before the
    // last one was consuming.
    let since = if plan.backlog { ready } else { published.first().copied().unwrap_or(ready) };
    let in_window = done_since(&seen, since);
    let hz = clock_ticks() as f64;
    let per_job = |ticks: u64| round(ticks as f64 * 1e6 / hz / in_window.max(1) as f64, 1);
    let mut m = Measured {
        jobs: plan.jobs,
        jobs_in_window: in_window,
        replicas: children.len(),
        harness_cpu_us_per_job: Some(per_job(own_cpu_ticks()? - harness_start)),
        broker_cpu_us_per_job: broker_start.zip(broker_cpu_ticks()).map(|(a, b)| per_job(b.saturating_sub(a))),
        idle_pct: machine.and_then(|(a, b)| share(a, b, |t| t.idle)),
        steal_pct: machine.and_then(|(a, b)| share(a, b, |t| t.steal)),
        ..Default::default()
    };
    m.seconds = round(done.duration_since(since).as_secs_f64(), 3);
    m.jobs_per_s = in_window as f64 / done.duration_since(since).as_secs_f64();
    if let Some(rate) = plan.account_rate {
        let (lo, hi) = steady_window(plan, rate);
        if let Some((per_s, window_s)) = steady_rate(&sandbox_counts, lo, hi) {
            m.sandbox_users_per_s = Some(round(per_s, 1));
            m.sandbox_bound_per_s = Some(round(rate_bound(plan, rate, window_s), 1));
        }
    }
    let mut lat: Vec<f64> = seen
        .iter()
        .zip(&published)
        .map(|(event_at, published_at)| event_at.duration_since(*published_at).as_secs_f64() * 1000.0)
        .collect();
    lat.sort_by(f64::total_cmp);
    m.p50_ms = round(percentile(&lat, 0.50), 1);
    m.p99_ms = round(percentile(&lat, 0.99), 1);
    if !children.is_empty() {
        // The fleet's CPU and switches, summed; the peak RSS of the largest replica.
        let ticks = children.iter().map(|c| c.cpu_ticks()).sum::<anyhow::Result<u64>>()? - cpu_start;
        m.cpu_us_per_job = Some(per_job(ticks));
        let switches = children.iter().map(|c| c.context_switches()).sum::<u64>().saturating_sub(switches_start);
        m.worker_switches_per_job = Some(round(switches as f64 / in_window.max(1) as f64, 2));
        let peaks = children.iter().map(|c| c.status_kib("VmHWM")).collect::<anyhow::Result<Vec<u64>>>()?;
        m.rss_peak_mib = peaks.into_iter().max().map(|kib| round(kib_to_mib(kib), 1));
        m.rss_idle_mib = rss_idle.map(|v| round(v, 1));
    }
    m.max_in_flight = scraped.map(|s| s.max_in_flight);
    if let Some(db) = ledger {
        m.ledger_lag_max_s = scraped.and_then(|s| s.max_lag_s).map(|v| round(v, 3));
        m.ledger_lag_end_s = scraped.and_then(|s| s.last_lag_s).map(|v| round(v, 3));
        m.ledger_catch_up_s = Some(round(ledger_complete(db, plan.jobs, done).await?, 3));
    }
    // The replicas drain at once, as a fleet told to stop does.
    futures_util::future::try_join_all(children.into_iter().map(WorkerChild::stop)).await?;
    Ok(m)
}

/// Waits until the ledger has every job's terminal step; returns the seconds since `since`
/// (the last event's arrival at the observer).
async fn ledger_complete(db: &LedgerDb, jobs: usize, since: Instant) -> anyhow::Result<f64> {
    let deadline = since + Duration::from_secs(120);
    loop {
        let n = db.count("SELECT COUNT(*) FROM history WHERE kind IN ('created', 'existing', 'failed')").await?;
        if n >= jobs as i64 {
            return Ok(since.elapsed().as_secs_f64());
        }
        if Instant::now() > deadline {
            bail!("the ledger had {n} of {jobs} jobs' outcomes 120 s after the last event");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How many of the jobs' events arrived at or after `since`.
fn done_since(seen: &[Instant], since: Instant) -> usize {
    seen.iter().filter(|at| **at >= since).count()
}

/// The users at the sandbox between which a rate-limited plan's rate is read: from half the
/// jobs, and at least half again the fleet's burst (one second's worth at the rate, per
/// replica with local limits, once for the fleet with Redis), to nine tenths of the jobs, so
/// the tail of the last calls in flight is not in it. The burst is not spent the moment that
/// many users exist: a fleet only a little faster than its limit works it off slowly, and
/// until then the users grow faster than the rate. The window is empty when the jobs do not
/// outlast the burst (`--quick`).
fn steady_window(plan: &Plan, rate: u32) -> (usize, usize) {
    let holders = limit_holders(plan);
    let burst = rate as usize * holders;
    ((burst + burst / 2).max(plan.jobs / 2), plan.jobs * 9 / 10)
}

/// How many limiters an account has: one per replica with local limits, one with Redis.
fn limit_holders(plan: &Plan) -> usize {
    if plan.redis.is_some() {
        1
    } else {
        plan.replicas.max(1)
    }
}

/// The most users/s the account's limits allow over a window of `window_s`, as
/// tests/scale_out.rs counts it: the rate, plus one burst and the calls already in flight
/// (the concurrency cap) spread over the window, per limiter. A limiter that fell behind its
/// rate for a while (a replica starved of CPU) has its burst back and may spend it in the
/// window.
fn rate_bound(plan: &Plan, rate: u32, window_s: f64) -> f64 {
    let holders = limit_holders(plan) as f64;
    let (rate, cap) = (f64::from(rate), f64::from(plan.concurrency));
    holders * (rate + (rate + cap) / window_s)
}

/// Users per second at the sandbox between the first sample at or above `lo` users and the
/// first at or above `hi`, and the seconds between them; `None` when the samples do not span
/// both with time between. `samples` are (seconds, users), in time order.
fn steady_rate(samples: &[(f64, usize)], lo: usize, hi: usize) -> Option<(f64, f64)> {
    if lo >= hi {
        return None;
    }
    let first = |n: usize| samples.iter().find(|(_, users)| *users >= n);
    let ((t0, n0), (t1, n1)) = (first(lo)?, first(hi)?);
    (t1 > t0).then(|| ((n1 - n0) as f64 / (t1 - t0), t1 - t0))
}

/// Samples the users the sandboxes hold for the plan's vendors every 10 ms, until stopped.
struct SandboxCount {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Vec<(f64, usize)>>,
}

impl SandboxCount {
    fn start(sandboxes: Sandboxes, vendors: Vec<VendorKey>, origin: Instant) -> Self {
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !s.is_cancelled() {
                let users = vendors.iter().map(|v| sandboxes.user_count(*v)).sum();
                samples.push((origin.elapsed().as_secs_f64(), users));
                tokio::select! { _ = s.cancelled() => {}, _ = tick.tick() => {} }
            }
            samples
        });
        Self { stop, task }
    }

    async fn stop(self) -> Vec<(f64, usize)> {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
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
            // One consumer per vendor queue in each worker (and in the bare loop).
            all &= state.consumer_count() as usize >= plan.replicas.max(1);
        }
        if all {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the worker(s) did not all start consuming within 30 s");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.50), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn only_the_jobs_done_in_the_window_count() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        let seen = [at(0), at(5), at(10), at(20), at(30)];
        assert_eq!(done_since(&seen, at(10)), 3);
        assert_eq!(done_since(&seen, at(0)), 5);
        assert_eq!(done_since(&seen, at(31)), 0);
    }

    #[test]
    fn the_steady_rate_is_read_between_the_thresholds() {
        // A burst of 500 at once, then 100 users every 0.2 s (500/s).
        let mut samples = vec![(0.0, 0), (0.01, 500)];
        samples.extend((1..=20).map(|i| (0.01 + f64::from(i) * 0.2, 500 + 100 * i as usize)));
        let (rate, window) = steady_rate(&samples, 750, 2_000).expect("the samples span the window");
        assert!((rate - 500.0).abs() < 1e-6, "{rate}");
        assert!((window - 2.4).abs() < 1e-6, "{window}");
        // Counted from 0 the burst would be in it: the threshold is what keeps it out.
        assert!(steady_rate(&samples, 0, 2_000).unwrap().0 > 600.0);
        assert_eq!(steady_rate(&samples, 750, 9_000), None, "never reached");
        assert_eq!(steady_rate(&samples, 2_000, 750), None, "an empty window");
        assert_eq!(steady_rate(&[(0.0, 0), (0.0, 900)], 100, 800), None, "no time between");
    }

    #[test]
    fn the_window_starts_after_the_fleets_burst() {
        let plan = |replicas: usize, redis: Option<String>| Plan {
            jobs: 6_000,
            vendors: vec![VendorKey::Netsapiens],
            latency: Duration::ZERO,
            concurrency: 32,
            prefetch: 64,
            backlog: true,
            ceiling: false,
            redis,
            account_rate: Some(500),
            ledger: None,
            replicas,
        };
        // Local limits: each of 3 replicas has a burst of its own, 1,500 in all.
        assert_eq!(steady_window(&plan(3, None), 2_000), (9_000, 5_400), "empty: the jobs are all burst");
        assert_eq!(steady_window(&plan(3, None), 500), (3_000, 5_400));
        // Redis: one burst for the fleet.
        assert_eq!(steady_window(&plan(3, Some("redis://x".into())), 2_000), (3_000, 5_400));
        assert_eq!(steady_window(&plan(1, None), 500), (3_000, 5_400));
        // The bound: per limiter, the rate plus (burst + cap) over the window.
        assert_eq!(rate_bound(&plan(3, None), 500, 2.0), 3.0 * (500.0 + 532.0 / 2.0));
        assert_eq!(rate_bound(&plan(3, Some("redis://x".into())), 500, 4.0), 500.0 + 532.0 / 4.0);
    }

    #[test]
    fn job_ids_round_trip_to_their_index() {
        assert_eq!(job_index(&job_id(49_999)), Some(49_999));
        assert_eq!(job_index("hire-1"), None);
    }
}
