//! Prometheus metrics. Labels come only from closed sets: vendor, outcome, error class,
//! retry kind, publish kind and reason; never ids or names.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::contract::VendorKey;
use crate::outcome::ErrorClass;
use crate::transport::{Disposition, Outbound, OutboundKind, PublishError, Publisher, Report};

/// `unknown` stands for messages whose vendor could not be read.
pub const UNKNOWN_VENDOR: &str = "unknown";

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub jobs_received: IntCounterVec,
    pub jobs_completed: IntCounterVec,
    pub job_duration: HistogramVec,
    pub end_to_end_latency: HistogramVec,
    pub jobs_in_flight: IntGaugeVec,
    pub retries: IntCounterVec,
    pub dead_lettered: IntCounterVec,
    pub publish_failures: IntCounterVec,
    pub broker_reconnects: IntCounter,
    pub broker_connected: IntGauge,
    pub consumers_active: IntGaugeVec,
    pub settle_duration: Histogram,
    pub admission_wait: HistogramVec,
    pub vendor_throttled: IntCounterVec,
    pub circuit_transitions: IntCounterVec,
    pub circuit_open_accounts: IntGaugeVec,
    pub handler_failures: IntCounterVec,
    /// 1 while the ledger answers, 0 while it does not (and always 0 without a ledger: the
    /// chart renders the alert only with one).
    pub ledger_up: IntGauge,
    pub ledger_projection_lag: prometheus::Gauge,
    pub ledger_projected: IntCounterVec,
    pub limits_shared: IntGaugeVec,
    pub jobs_held: IntCounterVec,
    pub safeguard_tripped: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("provisioner".into()), None).expect("valid prefix");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let jobs_received = counter("jobs_received_total", "Job deliveries received, by vendor.", &["vendor"]);
        let jobs_completed = counter(
            "jobs_completed_total",
            "Jobs that reached a terminal event, by vendor, outcome and error class (none for successes).",
            &["vendor", "outcome", "error_class"],
        );
        let retries = counter(
            "retries_total",
            "Retries, by vendor and kind: inline, durable (a retry tier), circuit_open, account_busy or ledger_down (parked in a tier without using it up).",
            &["vendor", "kind"],
        );
        let handler_failures = counter(
            "handler_failures_total",
            "Deliveries whose handler panicked or stalled past worker.handler_timeout, by vendor and kind; each was requeued.",
            &["vendor", "kind"],
        );
        let vendor_throttled = counter(
            "vendor_throttled_total",
            "Vendor answers asking to slow down (429), by vendor; each halves the account's rate for a while.",
            &["vendor"],
        );
        let circuit_transitions = counter(
            "circuit_transitions_total",
            "Circuit breaker state changes of the vendor's accounts, by vendor and new state.",
            &["vendor", "to"],
        );
        let jobs_held = counter(
            "jobs_held_total",
            "Suspends and deletes the safeguard held for an operator (provisioner held), by vendor.",
            &["vendor"],
        );
        let dead_lettered = counter(
            "dead_lettered_total",
            "Messages put in the dead-letter queue, by vendor and reason (an error class, or undecodable).",
            &["vendor", "reason"],
        );
        let publish_failures = counter(
            "publish_failures_total",
            "Publishes the broker did not confirm, by kind and reason; the delivery was requeued.",
            &["kind", "reason"],
        );
        let job_duration = HistogramVec::new(
            HistogramOpts::new("job_duration_seconds", "Time from delivery to settled disposition, by vendor.")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["vendor"],
        )
        .expect("valid metric");
        let end_to_end_latency = HistogramVec::new(
            HistogramOpts::new(
                "end_to_end_latency_seconds",
                "Time from the business event (requested_at, else the AMQP timestamp) to the terminal event, by vendor.",
            )
            .buckets(vec![0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0]),
            &["vendor"],
        )
        .expect("valid metric");
        let admission_wait = HistogramVec::new(
            HistogramOpts::new(
                "admission_wait_seconds",
                "Time a vendor call waited for its account's concurrency cap and rate limit, by vendor.",
            )
            .buckets(vec![0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0]),
            &["vendor"],
        )
        .expect("valid metric");
        let circuit_open_accounts = IntGaugeVec::new(
            Opts::new(
                "circuit_open_accounts",
                "Accounts of the vendor whose circuit breaker is open or half-open in this replica.",
            ),
            &["vendor"],
        )
        .expect("valid metric");
        let limits_shared = IntGaugeVec::new(
            Opts::new(
                "limits_shared",
                "1 while the accounts' limits are shared by every replica through the backend, 0 while this replica falls back to its local share; only with rate_limit.backend = redis.",
            ),
            &["backend"],
        )
        .expect("valid metric");
        let safeguard_tripped = IntGaugeVec::new(
            Opts::new(
                "safeguard_tripped",
                "Accounts of the vendor whose safeguard is tripped, as this replica sees them: their removals are held until an operator approves or rejects them.",
            ),
            &["vendor"],
        )
        .expect("valid metric");
        let jobs_in_flight =
            IntGaugeVec::new(Opts::new("jobs_in_flight", "Jobs being processed now, by vendor."), &["vendor"])
                .expect("valid metric");
        let consumers_active = IntGaugeVec::new(
            Opts::new("consumers_active", "1 while this replica consumes the vendor's job queue."),
            &["vendor"],
        )
        .expect("valid metric");
        let broker_reconnects =
            IntCounter::new("broker_reconnects_total", "Broker connections re-established after a loss.")
                .expect("valid metric");
        let broker_connected =
            IntGauge::new("broker_connected", "1 while connected to the broker.").expect("valid metric");
        let settle_duration = Histogram::with_opts(
            HistogramOpts::new("settle_duration_seconds", "Time to publish a disposition with confirms and ack it.")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]),
        )
        .expect("valid metric");
        let ledger_projected = counter(
            "ledger_projected_total",
            "Messages of the ledger queue handled by the projection, by result: written, ignored (not the service's) or refused (the database refused the row; logged with its key).",
            &["result"],
        );
        let ledger_up = IntGauge::new("ledger_up", "1 while the ledger's database answers, 0 while it does not.")
            .expect("valid metric");
        let ledger_projection_lag = prometheus::Gauge::new(
            "ledger_projection_lag_seconds",
            "Age of the oldest event in the projection's last batch; 0 once its queue has been empty for 2 s.",
        )
        .expect("valid metric");
        registry.register(Box::new(ledger_up.clone())).expect("unique metric");
        registry.register(Box::new(ledger_projection_lag.clone())).expect("unique metric");
        let build_info =
            IntGaugeVec::new(Opts::new("build_info", "Always 1; the labels say which build is running."), &["version"])
                .expect("valid metric");
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for c in [&job_duration, &end_to_end_latency, &admission_wait] {
            registry.register(Box::new(c.clone())).expect("unique metric");
        }
        for g in [
            &jobs_in_flight,
            &consumers_active,
            &build_info,
            &circuit_open_accounts,
            &limits_shared,
            &safeguard_tripped,
        ] {
            registry.register(Box::new(g.clone())).expect("unique metric");
        }
        registry.register(Box::new(broker_reconnects.clone())).expect("unique metric");
        registry.register(Box::new(broker_connected.clone())).expect("unique metric");
        registry.register(Box::new(settle_duration.clone())).expect("unique metric");

        let m = Self {
            registry,
            jobs_received,
            jobs_completed,
            job_duration,
            end_to_end_latency,
            jobs_in_flight,
            retries,
            dead_lettered,
            publish_failures,
            broker_reconnects,
            broker_connected,
            consumers_active,
            settle_duration,
            admission_wait,
            vendor_throttled,
            circuit_transitions,
            circuit_open_accounts,
            handler_failures,
            ledger_up,
            ledger_projection_lag,
            ledger_projected,
            limits_shared,
            jobs_held,
            safeguard_tripped,
        };
        m.touch_series();
        m
    }

    /// Creates every labelled series at zero, so dashboards and alerts see them before the
    /// first job (a rate over a missing series is silently empty).
    fn touch_series(&self) {
        for vendor in VendorKey::ALL.map(VendorKey::as_str) {
            self.jobs_received.with_label_values(&[vendor]);
            self.jobs_in_flight.with_label_values(&[vendor]);
            self.consumers_active.with_label_values(&[vendor]);
            self.job_duration.with_label_values(&[vendor]);
            self.end_to_end_latency.with_label_values(&[vendor]);
            for outcome in crate::outcome::Outcome::NAMES.into_iter().filter(|o| *o != "failed") {
                self.jobs_completed.with_label_values(&[vendor, outcome, "none"]);
            }
            for class in ErrorClass::ALL {
                self.jobs_completed.with_label_values(&[vendor, "failed", class.as_str()]);
                self.dead_lettered.with_label_values(&[vendor, class.as_str()]);
            }
            for kind in ["inline", "durable", "circuit_open", "account_busy", "ledger_down"] {
                self.retries.with_label_values(&[vendor, kind]);
            }
            self.admission_wait.with_label_values(&[vendor]);
            self.vendor_throttled.with_label_values(&[vendor]);
            for kind in ["panic", "timeout"] {
                self.handler_failures.with_label_values(&[vendor, kind]);
            }
            self.circuit_open_accounts.with_label_values(&[vendor]);
            self.jobs_held.with_label_values(&[vendor]);
            self.safeguard_tripped.with_label_values(&[vendor]);
            for to in ["open", "half_open", "closed"] {
                self.circuit_transitions.with_label_values(&[vendor, to]);
            }
        }
        self.dead_lettered.with_label_values(&[UNKNOWN_VENDOR, "undecodable"]);
        for result in ["written", "ignored", "refused"] {
            self.ledger_projected.with_label_values(&[result]);
        }
        for kind in [OutboundKind::Event, OutboundKind::Retry, OutboundKind::DeadLetter, OutboundKind::Held] {
            for reason in ["nacked", "unroutable", "connection", "unconfirmed"] {
                self.publish_failures.with_label_values(&[kind.as_str(), reason]);
            }
        }
    }

    /// Records a disposition once it is settled, so a requeued delivery is never counted twice.
    pub fn record_settled(&self, d: &Disposition) {
        let vendor = d.vendor.map_or(UNKNOWN_VENDOR, VendorKey::as_str);
        if d.inline_retries > 0 {
            self.retries.with_label_values(&[vendor, "inline"]).inc_by(d.inline_retries.into());
        }
        match &d.report {
            Report::Terminal { outcome, class, dead_lettered } => {
                let class = class.map_or("none", ErrorClass::as_str);
                self.jobs_completed.with_label_values(&[vendor, outcome, class]).inc();
                if *dead_lettered {
                    self.dead_lettered.with_label_values(&[vendor, class]).inc();
                }
                if let Some(at) = d.requested_at {
                    let secs = (chrono::Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0;
                    self.end_to_end_latency.with_label_values(&[vendor]).observe(secs);
                }
            }
            Report::RetryScheduled { why, .. } => self.retries.with_label_values(&[vendor, why.as_str()]).inc(),
            Report::Undecodable => self.dead_lettered.with_label_values(&[vendor, "undecodable"]).inc(),
            Report::Deferred => {}
            Report::Held => self.jobs_held.with_label_values(&[vendor]).inc(),
        }
    }

    pub fn record_publish_failure(&self, kind: OutboundKind, e: &PublishError) {
        self.publish_failures.with_label_values(&[kind.as_str(), e.reason()]).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding cannot fail");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}

/// Counts every publish the broker refused, at the moment it is refused.
pub struct Metered<'a, P> {
    pub inner: &'a P,
    pub metrics: &'a Metrics,
}

impl<P: Publisher> Publisher for Metered<'_, P> {
    async fn publish(&self, msg: &Outbound) -> Result<(), PublishError> {
        let result = self.inner.publish(msg).await;
        if let Err(e) = &result {
            self.metrics.record_publish_failure(msg.kind, e);
        }
        result
    }
}
