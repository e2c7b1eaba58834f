//! The RabbitMQ worker: supervises the connection, runs one consumer per vendor and drains
//! on shutdown.
//!
//! With `hire.consume` on, a hire consumer ([`crate::hire::consumer`]) shares the session:
//! its own channel, the same publisher and task tracker.
//!
//! Concurrency model: one connection; one channel per vendor consumer (its prefetch is the
//! broker-side buffer) and one confirm-mode channel shared by every publish. Each delivery
//! becomes a task on one [`TaskTracker`]; a per-vendor semaphore caps the tasks, and a
//! consumer takes a permit *before* pulling the next delivery, so a slow vendor fills only
//! its own prefetch. Shutdown is a [`CancellationToken`] passed down: consumers stop
//! pulling, tasks in flight finish within the drain deadline, and whatever is left unacked
//! is redelivered by the broker when the connection closes.

use std::sync::Arc;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::{FutureExt, StreamExt};
use lapin::options::BasicCancelOptions;
use lapin::{Connection, Event};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::Health;
use crate::config::{Settings, StartAt};
use crate::contract::{Job, VendorKey};
use crate::metrics::Metered;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::transport::memory::MemoryBroker;
use crate::transport::rabbitmq::stall::{Pulse, Watched};
use crate::transport::rabbitmq::{self, BrokerError, ConfirmPublisher, DeliveryAcker};
use crate::transport::{settle, Disposition, Report, Settled};

pub struct Worker {
    settings: Arc<Settings>,
    pipeline: Arc<Pipeline>,
    metrics: Metrics,
    health: Health,
    tasks: TaskTracker,
    /// Fed by the projection consumer when set.
    ledger: Option<crate::ledger::Ledger>,
}

/// What one connection's session runs: the confirm channel, a consumer per vendor (with what
/// the stall watchdog watches of it), and the hire and ledger consumers when on.
struct Session {
    publisher: ConfirmPublisher,
    consumers: Vec<(VendorKey, lapin::Channel, String)>,
    others: Vec<OtherConsumer>,
    watched: Vec<Watched>,
    /// The stall watchdog's own channel, for its passive declares.
    watchdog: lapin::Channel,
}

/// A consumer beside the vendor ones, cancelled with them at the session's end.
struct OtherConsumer {
    label: &'static str,
    channel: lapin::Channel,
    tag: String,
}

/// The address index a worker starts at: spread at random over the nodes unless the operator
/// wants the listed order.
fn first_address(start_at: StartAt, addresses: usize) -> usize {
    match start_at {
        StartAt::First => 0,
        StartAt::Random => rand::random_range(0..addresses.max(1)),
    }
}

/// Why one connection's session ended.
enum SessionEnd {
    Shutdown,
    Lost(String),
}

impl Worker {
    pub fn new(settings: Arc<Settings>, pipeline: Arc<Pipeline>, metrics: Metrics, health: Health) -> Self {
        Self { settings, pipeline, metrics, health, tasks: TaskTracker::new(), ledger: None }
    }

    /// Also runs the ledger's projection on `topology.ledger_queue`.
    pub fn with_ledger(mut self, ledger: Option<crate::ledger::Ledger>) -> Self {
        self.ledger = ledger;
        self
    }

    /// Runs until `shutdown` is cancelled and the drain is over. Connection losses are
    /// retried forever with capped, jittered backoff: a broker outage must not kill the pod,
    /// only make it unready.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), BrokerError> {
        let reconnect = ExponentialBuilder::default()
            .with_min_delay(self.settings.amqp.reconnect_initial_delay)
            .with_max_delay(self.settings.amqp.reconnect_max_delay)
            .with_jitter()
            .without_max_times();
        let mut delays = reconnect.build();
        let mut connected_before = false;
        // Which of the broker addresses to try next: one step on after every failed attempt
        // and every lost connection, so a dead node is left for the next one at once.
        let mut address = first_address(self.settings.amqp.start_at, self.settings.amqp.addresses().len());
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            // Raced with shutdown: a connect to an unresponsive broker can take minutes,
            // longer than any pod's grace period.
            let setup_timeout = self.settings.amqp.setup_timeout;
            let opened = tokio::select! {
                _ = shutdown.cancelled() => break,
                opened = tokio::time::timeout(setup_timeout, self.open(address)) => opened
                    .unwrap_or(Err(BrokerError::Timeout { step: "connecting and declaring the topology", after: setup_timeout })),
            };
            let conn = match opened {
                Ok(conn) => conn,
                Err(e) if e.is_fatal() => {
                    tracing::error!(error = %e, "the broker refused the topology or the credentials; stopping");
                    return Err(e);
                }
                Err(e) => {
                    address += 1;
                    let wait = delays.next().unwrap_or(self.settings.amqp.reconnect_max_delay);
                    tracing::warn!(error = %e, retry_in = ?wait, "broker unavailable");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(wait) => continue,
                    }
                }
            };
            if connected_before {
                self.metrics.broker_reconnects.inc();
            }
            connected_before = true;
            delays = reconnect.build();
            let addresses = self.settings.amqp.addresses();
            let broker = crate::config::redact_url(addresses[address % addresses.len()].1);
            match self.serve(&conn, &shutdown, &broker).await {
                SessionEnd::Shutdown => {
                    let _ = tokio::time::timeout(setup_timeout, conn.close(200, "shutting down".into())).await;
                    break;
                }
                SessionEnd::Lost(why) => {
                    tracing::warn!(reason = %why, "broker connection lost; reconnecting");
                    // Bounded: closing a connection whose node is going away can wait for an
                    // answer that never comes.
                    let _ = tokio::time::timeout(setup_timeout, conn.close(200, "reconnecting".into())).await;
                    address += 1;
                }
            }
        }
        self.health.set_connected(false);
        self.metrics.broker_connected.set(0);
        Ok(())
    }

    async fn open(&self, address: usize) -> Result<Connection, BrokerError> {
        let conn = rabbitmq::connect_at(&self.settings, address).await?;
        let ch =
            conn.create_channel().await.map_err(|source| BrokerError::Setup { step: "opening a channel", source })?;
        rabbitmq::declare(&ch, &self.settings).await?;
        let _ = ch.close(200, "topology declared".into()).await;
        Ok(conn)
    }

    /// One connection's life: consume until shutdown or until the connection fails.
    async fn serve(&self, conn: &Connection, shutdown: &CancellationToken, broker: &str) -> SessionEnd {
        let lost = CancellationToken::new();
        let stop = CancellationToken::new();
        let mut events = conn.events_listener();
        let lost_on_error = lost.clone();
        let watcher = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                if let Event::Error(e) = event {
                    tracing::warn!(error = %e, "broker connection error");
                    lost_on_error.cancel();
                    break;
                }
            }
        });

        // Bounded as a whole: a node that accepts the connection but never answers a channel
        // or consumer request (it is booting, stopping or lost its quorum) must not hold the
        // worker; it moves on to the next address.
        let setup_timeout = self.settings.amqp.setup_timeout;
        let started = tokio::select! {
            started = tokio::time::timeout(setup_timeout, self.start_session(conn, &stop, &lost, shutdown)) => started
                .unwrap_or(Err(BrokerError::Timeout { step: "starting consumers", after: setup_timeout }))
                .map_err(|e| e.to_string()),
            _ = lost.cancelled() => Err("the connection failed while the consumers were starting".to_owned()),
        };
        let session = match started {
            Ok(session) => session,
            Err(why) => {
                stop.cancel();
                watcher.abort();
                return SessionEnd::Lost(why);
            }
        };
        let Session { publisher, consumers, others, watched, watchdog } = session;
        let stall = crate::transport::rabbitmq::stall::watch(
            watchdog,
            watched,
            self.settings.amqp.consumer_stall_timeout,
            setup_timeout,
            stop.clone(),
            lost.clone(),
        );
        let stall = tokio::spawn(stall);
        self.health.set_connected(true);
        self.metrics.broker_connected.set(1);
        tracing::info!(
            broker,
            consumers = consumers.len(),
            hires = others.iter().any(|o| o.label == "hr"),
            ledger = others.iter().any(|o| o.label == "ledger"),
            "connected and consuming"
        );

        let end = tokio::select! {
            _ = shutdown.cancelled() => SessionEnd::Shutdown,
            _ = lost.cancelled() => SessionEnd::Lost("a channel, a consumer or the connection failed".into()),
        };
        self.health.set_connected(false);
        self.metrics.broker_connected.set(0);
        stop.cancel();
        stall.abort();
        // Each broker call of the teardown is bounded: on a connection that is going away, an
        // answer may never come, and the worker must get on with reconnecting or draining.
        for (vendor, channel, tag) in &consumers {
            // Tell the broker to stop pushing; prefetched-but-unstarted deliveries stay
            // unacked and are redelivered once the channel closes.
            let _ = tokio::time::timeout(
                setup_timeout,
                channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()),
            )
            .await;
            self.metrics.consumers_active.with_label_values(&[vendor.as_str()]).set(0);
        }
        for other in &others {
            let _ = tokio::time::timeout(
                setup_timeout,
                other.channel.basic_cancel(other.tag.as_str().into(), BasicCancelOptions::default()),
            )
            .await;
        }
        if matches!(end, SessionEnd::Shutdown) {
            self.drain().await;
            // Close our channels before the connection, so a clean stop logs no channel errors.
            let others = others.iter().map(|o| &o.channel);
            for channel in consumers.iter().map(|(_, c, _)| c).chain(others) {
                let _ = tokio::time::timeout(setup_timeout, channel.close(200, "shutting down".into())).await;
            }
            let _ = tokio::time::timeout(setup_timeout, publisher.channel().close(200, "shutting down".into())).await;
        }
        watcher.abort();
        end
    }

    /// Opens the session's publisher and every consumer it runs.
    async fn start_session(
        &self,
        conn: &Connection,
        stop: &CancellationToken,
        lost: &CancellationToken,
        shutdown: &CancellationToken,
    ) -> Result<Session, BrokerError> {
        let publisher = rabbitmq::confirm_channel(conn).await?;
        let publisher = ConfirmPublisher::new(publisher).with_confirm_timeout(self.settings.amqp.confirm_timeout);
        let mut consumers = Vec::new();
        let mut watched = Vec::new();
        for vendor in VendorKey::ALL.into_iter().filter(|v| self.settings.vendors.get(*v).enabled) {
            let (channel, tag, pulse) =
                self.start_consumer(conn, vendor, publisher.clone(), stop, lost, shutdown).await?;
            watched.push(pulse);
            consumers.push((vendor, channel, tag));
        }
        let mut others = Vec::new();
        if self.settings.hire.consume {
            let (channel, tag) = crate::hire::consumer::start(
                conn,
                &self.settings,
                self.ledger.clone(),
                publisher.clone(),
                stop,
                lost,
                &self.tasks,
            )
            .await?;
            others.push(OtherConsumer { label: "hr", channel, tag });
        }
        if let Some(ledger) = &self.ledger {
            let started = crate::projection::consumer::start(
                conn,
                &self.settings,
                ledger.clone(),
                self.metrics.clone(),
                stop,
                lost,
            );
            let (channel, tag) = started.await?;
            others.push(OtherConsumer { label: "ledger", channel, tag });
        }
        let watchdog = conn
            .create_channel()
            .await
            .map_err(|source| BrokerError::Setup { step: "opening the watchdog's channel", source })?;
        Ok(Session { publisher, consumers, others, watched, watchdog })
    }

    /// Waits for the jobs in flight, up to the drain deadline.
    async fn drain(&self) {
        let deadline = self.settings.worker.drain_deadline;
        let in_flight = self.tasks.len();
        tracing::info!(in_flight, ?deadline, "draining jobs in flight");
        self.tasks.close();
        if tokio::time::timeout(deadline, self.tasks.wait()).await.is_err() {
            tracing::warn!(left = self.tasks.len(), "drain deadline passed; unfinished jobs will be redelivered");
        } else {
            tracing::info!("drained");
        }
    }

    async fn start_consumer(
        &self,
        conn: &Connection,
        vendor: VendorKey,
        publisher: ConfirmPublisher,
        stop: &CancellationToken,
        lost: &CancellationToken,
        shutdown: &CancellationToken,
    ) -> Result<(lapin::Channel, String, Watched), BrokerError> {
        let cfg = self.settings.vendors.get(vendor);
        let queue = self.settings.topology.job_queue(vendor);
        let (channel, mut consumer, tag) =
            rabbitmq::consume(conn, &self.settings, &queue, cfg.prefetch, vendor.as_str()).await?;
        self.metrics.consumers_active.with_label_values(&[vendor.as_str()]).set(1);
        let pulse = Arc::new(Pulse::default());
        let watched = Watched { label: vendor.to_string(), queue, prefetch: cfg.prefetch, pulse: pulse.clone() };

        let limit = Arc::new(Semaphore::new(cfg.concurrency.into()));
        let requeue_delay = self.settings.worker.publish_failure_delay;
        let handler_timeout = self.settings.worker.handler_timeout;
        let (stop, lost, shutdown) = (stop.clone(), lost.clone(), shutdown.clone());
        let (pipeline, metrics, tasks) = (self.pipeline.clone(), self.metrics.clone(), self.tasks.clone());
        let consuming = channel.clone();
        tokio::spawn(async move {
            let channel = consuming;
            loop {
                let permit = tokio::select! {
                    _ = stop.cancelled() => break,
                    p = limit.clone().acquire_owned() => p.expect("semaphore never closed"),
                };
                pulse.waiting();
                let next = rabbitmq::next_delivery(&channel, &mut consumer, &stop, &lost, vendor.as_str());
                let Some(delivery) = next.await else { break };
                let unsettled = pulse.delivered();
                let (pipeline, metrics, publisher, shutdown) =
                    (pipeline.clone(), metrics.clone(), publisher.clone(), shutdown.clone());
                // Boxed: the job's future is large, and the runtime moves a task's future a few
                // times on its way in and out; a box is moved as a pointer.
                tasks.spawn(Box::pin(async move {
                    let _permit = permit;
                    let _unsettled = unsettled;
                    let limits = Limits { requeue_delay, handler_timeout };
                    process(&pipeline, &metrics, &publisher, delivery, vendor, &shutdown, limits).await;
                }));
            }
        });
        Ok((channel, tag, watched))
    }
}

/// One line per settled job with its outcome: failures at warn (an operator acts on them),
/// the rest at debug (the events are the record; a line per job at info would cost more than
/// the job at full speed).
fn log_settled(d: &Disposition) {
    let (job_id, vendor) = (d.job_id.as_deref(), d.vendor.map(VendorKey::as_str));
    match &d.report {
        // Invalid jobs are logged with their errors where they are judged.
        Report::Terminal { class: Some(crate::outcome::ErrorClass::Invalid), .. } => {}
        Report::Terminal { outcome, class: Some(class), .. } => {
            tracing::warn!(job_id, vendor, outcome, error_class = class.as_str(), "job failed; dead-lettered")
        }
        Report::Terminal { outcome, .. } => tracing::debug!(job_id, vendor, outcome, "job done"),
        Report::RetryScheduled { tier, why } => {
            tracing::debug!(job_id, vendor, outcome = "retry_scheduled", tier, kind = why.as_str(), "job parked")
        }
        Report::Deferred => tracing::debug!(job_id, vendor, outcome = "deferred", "job requeued untouched"),
        // Logged at warn, with its reason, where it is decided.
        Report::Held => tracing::debug!(job_id, vendor, outcome = "held", "job held"),
        Report::Undecodable => {}
    }
}

/// Timing rules of one delivery.
#[derive(Clone, Copy)]
struct Limits {
    requeue_delay: std::time::Duration,
    handler_timeout: std::time::Duration,
}

/// Handles and settles one delivery, keeping the metrics.
async fn process(
    pipeline: &Pipeline,
    metrics: &Metrics,
    publisher: &ConfirmPublisher,
    delivery: lapin::message::Delivery,
    vendor: VendorKey,
    shutdown: &CancellationToken,
    limits: Limits,
) {
    let started = tokio::time::Instant::now();
    let label = [vendor.as_str()];
    metrics.jobs_received.with_label_values(&label).inc();
    let in_flight = metrics.jobs_in_flight.with_label_values(&label);
    in_flight.inc();
    let (msg, acker) = rabbitmq::into_inbound(delivery);
    let acker = DeliveryAcker(acker);
    // A panicking or stalled handler must not leave its delivery unacked forever on a live
    // channel: requeue it, and the quorum delivery limit dead-letters a message that keeps
    // doing it (a poison message), with `x-first-death-reason: delivery_limit`.
    let handled = std::panic::AssertUnwindSafe(pipeline.handle(&msg, shutdown)).catch_unwind();
    let handled = tokio::time::timeout(limits.handler_timeout, handled).await;
    match handled {
        Ok(Ok(disposition)) => {
            let settle_started = tokio::time::Instant::now();
            let publisher = Metered { inner: publisher, metrics };
            match settle(&publisher, acker, &disposition, limits.requeue_delay).await {
                Settled::Acked | Settled::Requeued => {
                    metrics.record_settled(&disposition);
                    log_settled(&disposition);
                }
                Settled::PublishFailed(_, e) => {
                    tracing::warn!(job_id = disposition.job_id.as_deref(), error = %e, "publish not confirmed; job requeued");
                }
                Settled::AckFailed(e) => {
                    tracing::warn!(job_id = disposition.job_id.as_deref(), error = %e, "ack failed; the broker will redeliver");
                }
            }
            metrics.settle_duration.observe(settle_started.elapsed().as_secs_f64());
        }
        Ok(Err(_)) => {
            tracing::error!(%vendor, "job handler panicked; message requeued");
            metrics.handler_failures.with_label_values(&[vendor.as_str(), "panic"]).inc();
            let _ = crate::transport::Acknowledge::requeue(acker).await;
        }
        Err(_) => {
            tracing::error!(%vendor, timeout = ?limits.handler_timeout, "job handler stalled past worker.handler_timeout; message requeued");
            metrics.handler_failures.with_label_values(&[vendor.as_str(), "timeout"]).inc();
            let _ = crate::transport::Acknowledge::requeue(acker).await;
        }
    }
    in_flight.dec();
    metrics.job_duration.with_label_values(&label).observe(started.elapsed().as_secs_f64());
}

/// Runs the pipeline over an in-memory broker until every queue is empty and no retry is
/// parked, or shutdown: the worker of `demo`, with the same settle and metrics as [`Worker`].
pub async fn run_until_idle(
    broker: &MemoryBroker,
    pipeline: Arc<Pipeline>,
    metrics: Metrics,
    concurrency: usize,
    shutdown: CancellationToken,
) {
    let tasks = TaskTracker::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    loop {
        let permit = limit.clone().acquire_owned().await.expect("semaphore never closed");
        let Some((msg, delivery)) = broker.next_delivery(&shutdown).await else { break };
        let (broker, pipeline, metrics, shutdown) =
            (broker.clone(), pipeline.clone(), metrics.clone(), shutdown.clone());
        tasks.spawn(async move {
            let vendor = Job::vendor_of_routing_key(&msg.routing_key);
            metrics
                .jobs_received
                .with_label_values(&[vendor.map_or(crate::metrics::UNKNOWN_VENDOR, VendorKey::as_str)])
                .inc();
            let handled = std::panic::AssertUnwindSafe(pipeline.handle(&msg, &shutdown)).catch_unwind().await;
            match handled {
                Ok(disposition) => {
                    let publisher = Metered { inner: &broker, metrics: &metrics };
                    match settle(&publisher, delivery, &disposition, std::time::Duration::ZERO).await {
                        Settled::Acked | Settled::Requeued => metrics.record_settled(&disposition),
                        Settled::PublishFailed(..) | Settled::AckFailed(_) => {}
                    }
                }
                Err(_) => delivery.poison(),
            }
            drop(permit);
        });
    }
    tasks.close();
    tasks.wait().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_start_at_a_random_address_unless_told_the_first() {
        assert!((0..50).all(|_| first_address(StartAt::First, 3) == 0));
        let mut seen = [0u32; 3];
        for _ in 0..600 {
            seen[first_address(StartAt::Random, 3)] += 1;
        }
        // Each of three addresses gets about 200 of 600 draws; below 100 would be a bias.
        assert!(seen.iter().all(|n| *n > 100), "{seen:?}");
        assert_eq!(first_address(StartAt::Random, 1), 0);
    }
}
