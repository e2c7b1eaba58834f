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
    let result = in_topology(&bench_settings(&args), &args, plan, ledger.as_ref()).await;
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
) -> anyhow::Result<Measured> {
    let conn =
        rabbitmq::connect(settings).await.context("the benchmark needs RabbitMQ (`rabbitmq-server -detached`)")?;
    let ch = rabbitmq::confirm_channel(&conn).await?;
    rabbitmq::declare(&ch, settings).await?;
    let result = measure(&conn, &ch, settings, args, plan, ledger).await;
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
    let watch = child.as_ref().map(|_| AdminWatch::start(args.admin_port));
    if !plan.backlog {
        // Idle: connected and consuming, nothing to do yet. Let start-up allocations settle.
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_idle = child.as_ref().map(|c| c.status_kib("VmRSS")).transpose()?.map(kib_to_mib);
        published = publish_all(&publisher, &jobs).await?;
    }
    let deadline = Duration::from_secs(300);
    let seen = observer.finish(deadline).await?;
    let done = Instant::now();
    // The lag as the last event arrives: stop scraping here, before waiting for the ledger.
    let scraped = match watch {
        Some(w) => Some(w.stop().await),
        None => None,
    };
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
    m.max_in_flight = scraped.map(|s| s.max_in_flight);
    if let Some(db) = ledger {
        m.ledger_lag_max_s = scraped.and_then(|s| s.max_lag_s).map(|v| round(v, 3));
        m.ledger_lag_end_s = scraped.and_then(|s| s.last_lag_s).map(|v| round(v, 3));
        m.ledger_catch_up_s = Some(round(ledger_complete(db, plan.jobs, done).await?, 3));
    }
    if let Some(c) = child {
        c.stop().await?;
    }
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
    fn job_ids_round_trip_to_their_index() {
        assert_eq!(job_index(&job_id(49_999)), Some(49_999));
        assert_eq!(job_index("hire-1"), None);
    }
}
