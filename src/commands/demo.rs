//! `provisioner demo`: the whole pipeline on sample jobs, with zero setup.
//!
//! The vendors are the built-in sandboxes, served in-process over real HTTP. By default the
//! broker is the in-memory one; `--amqp URL` runs the real worker against a real broker, in a
//! topology of its own that it removes afterwards.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::admin::Health;
use crate::config::{Settings, TopologySettings};
use crate::contract::VendorKey;
use crate::metrics::Metrics;
use crate::pipeline::{sample_job, Pipeline};
use crate::sandbox::{self, Faults, Sandboxes};
use crate::transport::memory::MemoryBroker;
use crate::transport::rabbitmq::{self, ConfirmPublisher};
use crate::transport::{Outbound, OutboundKind, Publisher};
use crate::vendors::build_adapters;
use crate::worker::Worker;

/// One sample job: what it is meant to show.
pub struct Sample {
    pub label: &'static str,
    pub routing_key: String,
    pub body: Vec<u8>,
    pub job_id: Option<String>,
    /// Whether this sample must end in the dead-letter queue.
    pub dead_letter: bool,
}

/// The summary printed at the end; `--json` prints it as one object.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub jobs: usize,
    pub created: usize,
    pub existing: usize,
    pub failed: usize,
    pub dead_lettered: usize,
    #[serde(skip)]
    pub rows: Vec<super::demo_outcomes::Row>,
    /// What the ledger says of the hire and its namesake, at the end (the in-memory demo).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub whois: Vec<crate::commands::whois::Whois>,
    /// The lifecycle story in person events (the in-memory demo).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub story: Vec<super::demo_story::Act>,
}

/// The vendor sandboxes the demo runs against: a healthy one, one that fails its next
/// request (to show an inline retry), and one in a full outage (to show every retry tier
/// running out). They stop when this is dropped.
pub struct DemoVendors {
    pub healthy: Sandboxes,
    pub healthy_url: String,
    pub blip_url: String,
    pub down_url: String,
    _stop: tokio_util::sync::DropGuard,
}

impl DemoVendors {
    pub async fn start() -> std::io::Result<Self> {
        let stop = CancellationToken::new();
        let local = "127.0.0.1:0".parse().expect("valid literal");
        let serve = |faults: Faults| {
            let stop = stop.clone();
            async move {
                let sandboxes = Sandboxes::new(faults, 7);
                let (addr, _) = sandboxes.serve(local, stop).await?;
                Ok::<_, std::io::Error>((sandboxes, format!("http://{addr}")))
            }
        };
        let (healthy, healthy_url) = serve(Faults::default()).await?;
        let (_, blip_url) = serve(Faults { fail_next: 1, ..Faults::default() }).await?;
        let (_, down_url) = serve(Faults { outage: true, ..Faults::default() }).await?;
        Ok(Self { healthy, healthy_url, blip_url, down_url, _stop: stop.drop_guard() })
    }
}

/// Demo settings: five accounts on the vendor sandboxes, each showing one behaviour, and
/// retry tiers short enough to watch.
pub fn demo_settings(topology: TopologySettings, vendors: &DemoVendors) -> Settings {
    let mut s = Settings { topology, ..Settings::default() };
    s.retry.tiers = vec![Duration::from_millis(200), Duration::from_millis(400)];
    s.retry.inline.initial_delay = Duration::from_millis(20);
    s.retry.inline.max_delay = Duration::from_millis(100);
    s.retry.inline.budget = Duration::from_millis(500);
    s.worker.drain_deadline = Duration::from_secs(5);
    // With the shipped breaker, a job against a vendor that is down is parked until the
    // vendor is back (it never runs out of tiers); the demo has one such job and shows the
    // tiers running out instead, so only a long run of failures opens the breaker here.
    s.circuit_breaker.consecutive_failures = 100;
    s.circuit_breaker.min_calls = 100;
    let mut legacy = sandbox::account(VendorKey::Glance, &vendors.healthy_url);
    legacy.credentials.insert(
        "PartnerPW".into(),
        crate::config::SecretSource::Value(secrecy::SecretString::from("a-password-rotated-long-ago".to_owned())),
    );
    s.accounts = BTreeMap::from([
        ("acme-glance".into(), sandbox::account(VendorKey::Glance, &vendors.healthy_url)),
        ("acme-netsapiens".into(), sandbox::account(VendorKey::Netsapiens, &vendors.blip_url)),
        ("acme-clienttoolbox".into(), sandbox::account(VendorKey::Clienttoolbox, &vendors.healthy_url)),
        ("legacy-glance".into(), legacy),
        ("down-netsapiens".into(), sandbox::account(VendorKey::Netsapiens, &vendors.down_url)),
    ]);
    s
}

/// The sample jobs: successes, a redelivered duplicate, and one failure of each kind.
pub fn samples() -> Vec<Sample> {
    let job = |label, id: &str, vendor, account, identity: &str, dead_letter| Sample {
        label,
        routing_key: crate::contract::Job::routing_key(vendor),
        body: sample_job(id, vendor, account, identity).to_string().into_bytes(),
        job_id: Some(id.to_owned()),
        dead_letter,
    };
    let mut conflicting = sample_job("demo-7-glance-conflict", VendorKey::Glance, "acme-glance", "EMP-0001");
    conflicting["user"]["UserFirst"] = json!("Someone");
    conflicting["user"]["UserLast"] = json!("Else");
    // Well-formed, so it passes local validation, but no such campaign exists at the vendor.
    let mut unknown_campaign =
        sample_job("demo-5-rejected", VendorKey::Clienttoolbox, "acme-clienttoolbox", "jdoe_0005");
    unknown_campaign["user"]["allowed_campaigns"] = json!("99999999");
    let mut with_credentials = sample_job("demo-8-invalid", VendorKey::Glance, "acme-glance", "EMP-0008");
    with_credentials["user"]["PartnerPW"] = json!("do-not-send-me");
    with_credentials["user"]["Nickname"] = json!("JD");
    vec![
        job("created", "demo-1-glance", VendorKey::Glance, "acme-glance", "EMP-0001", false),
        job(
            "created after an inline retry",
            "demo-2-netsapiens",
            VendorKey::Netsapiens,
            "acme-netsapiens",
            "1002",
            false,
        ),
        job("created", "demo-3-clienttoolbox", VendorKey::Clienttoolbox, "acme-clienttoolbox", "jdoe_0003", false),
        job("the same job again: existing", "demo-1-glance", VendorKey::Glance, "acme-glance", "EMP-0001", false),
        Sample {
            label: "vendor refuses the input",
            routing_key: crate::contract::Job::routing_key(VendorKey::Clienttoolbox),
            body: unknown_campaign.to_string().into_bytes(),
            job_id: Some("demo-5-rejected".into()),
            dead_letter: true,
        },
        job("wrong credentials", "demo-6-auth", VendorKey::Glance, "legacy-glance", "EMP-0006", true),
        Sample {
            label: "identity held by someone else",
            routing_key: crate::contract::Job::routing_key(VendorKey::Glance),
            body: conflicting.to_string().into_bytes(),
            job_id: Some("demo-7-glance-conflict".into()),
            dead_letter: true,
        },
        Sample {
            label: "credentials and an unknown field in the job",
            routing_key: crate::contract::Job::routing_key(VendorKey::Glance),
            body: with_credentials.to_string().into_bytes(),
            job_id: Some("demo-8-invalid".into()),
            dead_letter: true,
        },
        job(
            "vendor down through every retry tier",
            "demo-9-outage",
            VendorKey::Netsapiens,
            "down-netsapiens",
            "1009",
            true,
        ),
        Sample {
            label: "not JSON at all",
            routing_key: crate::contract::Job::routing_key(VendorKey::Clienttoolbox),
            body: b"<user>oops</user>".to_vec(),
            job_id: None,
            dead_letter: true,
        },
    ]
}

/// Two hires of two different people, both Jane Smith: the same ClientToolbox user name.
/// The ledger links the first to employee 000731; the second is refused as a conflict,
/// never told `existing`.
pub fn namesakes() -> [Sample; 2] {
    let jane = |event: &str, employee: &str| {
        let job_id = format!("{event}:clienttoolbox:acme-clienttoolbox");
        let mut job = sample_job(&job_id, VendorKey::Clienttoolbox, "acme-clienttoolbox", "jane_smith");
        job["user"]["user_last_name"] = json!("Smith");
        job["correlation_id"] = json!(event);
        job["person"] = json!({"tenant": "acme", "employee_id": employee});
        Sample {
            label: "a hire of Jane Smith",
            routing_key: crate::contract::Job::routing_key(VendorKey::Clienttoolbox),
            body: job.to_string().into_bytes(),
            job_id: Some(job_id),
            dead_letter: employee != NAMESAKE_OF,
        }
    };
    [jane("hire-000731", NAMESAKE_OF), jane("hire-000999", "000999")]
}

/// The employee whose account the demo's `whois` shows.
pub const NAMESAKE_OF: &str = "000731";

/// Runs the demo on the in-memory broker, with an in-memory ledger.
pub async fn run_in_memory() -> anyhow::Result<Summary> {
    let vendors = DemoVendors::start().await?;
    let settings = demo_settings(TopologySettings::default(), &vendors);
    let adapters = build_adapters(&settings)?;
    let ledger = crate::ledger::Ledger::in_memory().await?;
    let pipeline = Arc::new(Pipeline::new(&settings, adapters, &Metrics::new(), Some(ledger.clone())));
    let broker = MemoryBroker::new(settings.topology.clone());
    let samples = samples();
    // The duplicate must arrive after the original is settled, as a redelivery would.
    let (first, rest): (Vec<_>, Vec<_>) = samples.iter().enumerate().partition(|(i, _)| *i < 3);
    for (_, s) in &first {
        broker.publish_job(&s.routing_key, s.body.clone(), s.job_id.clone()).expect("routable");
    }
    crate::worker::run_until_idle(&broker, pipeline.clone(), Metrics::new(), 8, CancellationToken::new()).await;
    let [jane, namesake] = namesakes();
    for s in rest.iter().map(|(_, s)| *s).chain([&jane]) {
        broker.publish_job(&s.routing_key, s.body.clone(), s.job_id.clone()).expect("routable");
    }
    crate::worker::run_until_idle(&broker, pipeline.clone(), Metrics::new(), 8, CancellationToken::new()).await;
    // The namesake's hire arrives once the first Jane's account exists.
    broker.publish_job(&namesake.routing_key, namesake.body.clone(), namesake.job_id.clone()).expect("routable");
    crate::worker::run_until_idle(&broker, pipeline, Metrics::new(), 8, CancellationToken::new()).await;

    // What the RabbitMQ worker's projection does from its queue: every event and dead letter
    // into the ledger.
    let (events, dead) = (broker.events(), broker.dead_letters());
    super::demo_outcomes::project(&ledger, &settings.topology, events.iter().chain(&dead)).await?;
    let mut summary = summarise(samples.len() + 2, &events, &dead);
    for who in ["jane_smith", "000999"] {
        summary.whois.push(crate::commands::whois::whois(&ledger, who).await?);
    }
    summary.story = super::demo_story::run(&vendors.healthy_url).await?;
    Ok(summary)
}

/// Builds the summary from what was published to the events exchange and the DLQ.
pub fn summarise(jobs: usize, events: &[Outbound], dead: &[Outbound]) -> Summary {
    let t = super::demo_outcomes::tally(events, dead);
    Summary {
        jobs,
        created: t.created,
        existing: t.existing,
        failed: t.failed,
        dead_lettered: dead.len(),
        rows: t.rows,
        ..Default::default()
    }
}

impl Summary {
    /// A readable table, one row per terminal event, then the totals.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let w_id = self.rows.iter().map(|r| r.job_id.len()).max().unwrap_or(6).max(6);
        out.push_str(&format!("{:<w_id$}  {:<13}  {:<13}  {}\n", "JOB_ID", "VENDOR", "OUTCOME", "DETAIL"));
        for r in &self.rows {
            let detail: String = r.detail.chars().take(100).collect();
            out.push_str(&format!("{:<w_id$}  {:<13}  {:<13}  {}\n", r.job_id, r.vendor, r.outcome, detail));
        }
        out.push_str(&format!(
            "\n{} jobs: {} created, {} existing, {} failed, {} dead-lettered\n",
            self.jobs, self.created, self.existing, self.failed, self.dead_lettered
        ));
        for w in &self.whois {
            out.push_str(&format!("\n$ provisioner whois {}\n", w.query));
            let mut table = Vec::new();
            let _ = crate::commands::whois::print_whois(&mut table, w);
            out.push_str(&String::from_utf8_lossy(&table));
        }
        if !self.story.is_empty() {
            out.push_str("\nA person's story, in person events (hire, update, leave, rehire):\n");
        }
        for act in &self.story {
            out.push_str(&format!("\n== {}\n", act.title));
            let w = act.rows.iter().map(|r| r.job_id.len()).max().unwrap_or(6);
            let mut rows: Vec<&super::demo_outcomes::Row> = act.rows.iter().collect();
            rows.sort_by(|a, b| a.job_id.cmp(&b.job_id));
            for r in rows {
                let detail: String = r.detail.chars().take(90).collect();
                out.push_str(&format!("  {:<w$}  {:<10}  {}\n", r.job_id, r.outcome, detail));
            }
            for n in &act.notes {
                out.push_str(&format!("  note: {n}\n"));
            }
            if act.held > 0 {
                out.push_str(&format!(
                    "  {} removal(s) held by the safeguard for an operator: `provisioner held list`, then \
                     `held approve|reject --reason ...`\n",
                    act.held
                ));
            }
        }
        out
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("summary serialises")
    }
}

/// Runs the demo through the real worker against the broker at `url`, in a throw-away
/// topology that is deleted afterwards.
pub async fn run_on_broker(url: &str) -> anyhow::Result<Summary> {
    let suffix = format!("demo-{}", uuid::Uuid::new_v4().simple());
    let vendors = DemoVendors::start().await?;
    let mut settings = demo_settings(TopologySettings::namespaced(&suffix), &vendors);
    settings.amqp.url = url.to_owned();
    settings.admin.listen = "127.0.0.1:0".parse()?;
    settings.topology.audit_queue = String::new();
    settings.check()?;
    let settings = Arc::new(settings);

    // Declare first, so the observer can bind before any job runs.
    let conn = rabbitmq::connect(&settings).await?;
    let ch = rabbitmq::confirm_channel(&conn).await?;
    rabbitmq::declare(&ch, &settings).await?;
    let observed = format!("provisioning.demo-events.{suffix}");
    ch.queue_declare(
        observed.as_str().into(),
        QueueDeclareOptions { exclusive: true, ..Default::default() },
        FieldTable::default(),
    )
    .await?;
    ch.queue_bind(
        observed.as_str().into(),
        settings.topology.events_exchange.as_str().into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;

    let metrics = Metrics::new();
    let pipeline = Arc::new(Pipeline::new(&settings, build_adapters(&settings)?, &metrics, None));
    let shutdown = CancellationToken::new();
    let worker =
        tokio::spawn(Worker::new(settings.clone(), pipeline, metrics, Health::default()).run(shutdown.clone()));

    let publisher = ConfirmPublisher::new(ch.clone());
    let samples = samples();
    let mut events = ch
        .basic_consume(
            observed.as_str().into(),
            "demo-observer".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut dead = ch
        .basic_consume(
            settings.topology.dead_queue.as_str().into(),
            "demo-dlq-observer".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let expected_events = samples.iter().filter(|s| s.job_id.is_some()).count();
    let mut seen_events = Vec::new();
    let mut seen_dead = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for (i, s) in samples.iter().enumerate() {
        let msg = Outbound {
            kind: OutboundKind::Job,
            exchange: settings.topology.jobs_exchange.clone(),
            routing_key: s.routing_key.clone(),
            body: s.body.clone(),
            message_id: s.job_id.clone(),
            content_type: Some("application/json".into()),
            timestamp: Some(chrono::Utc::now().timestamp() as u64),
            headers: Default::default(),
        };
        publisher.publish(&msg).await?;
        // The duplicate is sent after the original's event arrived, as a redelivery would be.
        if i == 2 {
            while seen_events.len() < 3 {
                let d = tokio::time::timeout_at(deadline, events.next())
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("events consumer ended"))??;
                d.ack(BasicAckOptions::default()).await?;
                seen_events.push(to_outbound(&d));
            }
        }
    }
    let failing = samples.iter().filter(|s| s.dead_letter).count();
    while seen_events.len() < expected_events || seen_dead.len() < failing {
        tokio::select! {
            d = events.next() => { let d = d.ok_or_else(|| anyhow::anyhow!("events consumer ended"))??; d.ack(BasicAckOptions::default()).await?; seen_events.push(to_outbound(&d)); }
            d = dead.next() => { let d = d.ok_or_else(|| anyhow::anyhow!("DLQ consumer ended"))??; d.ack(BasicAckOptions::default()).await?; seen_dead.push(to_outbound(&d)); }
            _ = tokio::time::sleep_until(deadline) => anyhow::bail!("the demo did not finish within 60s: {} events, {} dead letters", seen_events.len(), seen_dead.len()),
        }
    }
    shutdown.cancel();
    worker.await??;

    rabbitmq::delete_topology(&ch, &settings).await;
    let _ = conn.close(200, "demo done".into()).await;
    Ok(summarise(samples.len(), &seen_events, &seen_dead))
}

fn to_outbound(d: &lapin::message::Delivery) -> Outbound {
    let m = rabbitmq::inbound(d);
    Outbound {
        kind: OutboundKind::Event,
        exchange: m.exchange,
        routing_key: m.routing_key,
        body: m.body,
        message_id: m.message_id,
        content_type: m.content_type,
        timestamp: m.timestamp,
        headers: m.headers,
    }
}
