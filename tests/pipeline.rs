//! Pipeline decisions and the settle rule, on the in-memory transport: fast and broker-free.

mod common;

use std::sync::{Arc, Mutex};

use common::TestVendors;
use provisioner::config::Settings;
use provisioner::metrics::Metrics;
use provisioner::pipeline::{sample_job, After, Disposition, Pipeline, Report};
use provisioner::sandbox::Faults;
use provisioner::transport::headers as h;
use provisioner::transport::{settle, Acknowledge, Inbound, Outbound, OutboundKind, PublishError, Publisher, Settled};
use provisioner::vendors::{build_adapters, VendorKey};
use tokio_util::sync::CancellationToken;

/// A pipeline with one Glance account on a fresh sandbox (kept alive by the returned value).
async fn pipeline() -> (Pipeline, TestVendors) {
    let vendors = TestVendors::start(Faults::default()).await;
    let mut settings = Settings::default();
    settings.accounts.insert("acme".to_owned(), vendors.account(VendorKey::Glance));
    (Pipeline::new(&settings, build_adapters(&settings).unwrap(), &Metrics::new()), vendors)
}

/// A Glance job the vendor refuses (the role is not provisioned in the group), though it is
/// well-formed.
fn refused_job(id: &str) -> serde_json::Value {
    let mut job = sample_job(id, VendorKey::Glance, "acme", "EMP-R");
    job["user"]["UserRole"] = serde_json::json!("Astronaut");
    job
}

fn delivery(routing_key: &str, body: &serde_json::Value, message_id: Option<&str>) -> Inbound {
    Inbound {
        body: body.to_string().into_bytes(),
        routing_key: routing_key.into(),
        message_id: message_id.map(str::to_owned),
        ..Default::default()
    }
}

fn kinds(d: &Disposition) -> Vec<OutboundKind> {
    d.publish.iter().map(|m| m.kind).collect()
}

#[tokio::test]
async fn a_failure_publishes_the_event_before_the_dlq_copy() {
    let job = refused_job("j-1");
    let (p, _vendors) = pipeline().await;
    let d = p.handle(&delivery("create_user.glance", &job, None), &CancellationToken::new()).await;
    assert_eq!(kinds(&d), [OutboundKind::Event, OutboundKind::DeadLetter]);
    assert_eq!(d.publish[0].routing_key, "user.failed.glance");
    assert_eq!(h::text(&d.publish[1].headers, h::REASON), Some("rejected"));
}

#[tokio::test]
async fn an_invalid_job_without_job_id_is_named_by_its_message_id() {
    let mut job = sample_job("x", VendorKey::Glance, "acme", "E");
    job.as_object_mut().unwrap().remove("job_id");
    let (p, _vendors) = pipeline().await;
    let d = p.handle(&delivery("create_user.glance", &job, Some("msg-7")), &CancellationToken::new()).await;
    assert_eq!(kinds(&d), [OutboundKind::Event, OutboundKind::DeadLetter]);
    let event: serde_json::Value = serde_json::from_slice(&d.publish[0].body).unwrap();
    assert_eq!(event["subject"], "msg-7");
    assert!(event["data"]["error"]["message"].as_str().unwrap().contains("job_id: is required"));
}

#[tokio::test]
async fn a_job_that_cannot_be_named_only_goes_to_the_dlq() {
    let mut job = sample_job("x", VendorKey::Glance, "acme", "E");
    job.as_object_mut().unwrap().remove("job_id");
    let (p, _vendors) = pipeline().await;
    let d = p.handle(&delivery("create_user.glance", &job, None), &CancellationToken::new()).await;
    assert_eq!(kinds(&d), [OutboundKind::DeadLetter]);
    assert_eq!(h::text(&d.publish[0].headers, h::REASON), Some("invalid"));
}

#[tokio::test]
async fn routing_key_and_account_are_checked() {
    let (p, _vendors) = pipeline().await;
    let job = sample_job("j-2", VendorKey::Glance, "acme", "E");
    let d = p.handle(&delivery("create_user.netsapiens", &job, None), &CancellationToken::new()).await;
    let event: serde_json::Value = serde_json::from_slice(&d.publish[0].body).unwrap();
    assert!(event["data"]["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("vendor: a glance job must be published with"));

    let job = sample_job("j-3", VendorKey::Glance, "nobody", "E");
    let d = p.handle(&delivery("create_user.glance", &job, None), &CancellationToken::new()).await;
    let event: serde_json::Value = serde_json::from_slice(&d.publish[0].body).unwrap();
    assert_eq!(event["data"]["error"]["message"], "account: no account named \"nobody\" is configured");
}

#[tokio::test]
async fn once_shutdown_began_a_job_is_requeued_without_calling_the_vendor() {
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    let job = sample_job("j-4", VendorKey::Glance, "acme", "E");
    let (p, _vendors) = pipeline().await;
    let d = p.handle(&delivery("create_user.glance", &job, None), &shutdown).await;
    assert_eq!(d.after, After::Requeue);
    assert!(d.publish.is_empty());
    assert_eq!(d.report, Report::Deferred);
}

/// A publisher that confirms the first `ok` messages and then fails.
struct FailingAfter {
    ok: usize,
    seen: Mutex<Vec<OutboundKind>>,
}

impl Publisher for FailingAfter {
    async fn publish(&self, msg: &Outbound) -> Result<(), PublishError> {
        let mut seen = self.seen.lock().unwrap();
        seen.push(msg.kind);
        if seen.len() > self.ok {
            Err(PublishError::Nacked)
        } else {
            Ok(())
        }
    }
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<&'static str>>>);

impl Acknowledge for Recorder {
    async fn ack(self) -> Result<(), String> {
        self.0.lock().unwrap().push("ack");
        Ok(())
    }
    async fn requeue(self) -> Result<(), String> {
        self.0.lock().unwrap().push("requeue");
        Ok(())
    }
}

#[tokio::test]
async fn settle_acks_only_after_every_publish_is_confirmed() {
    let job = refused_job("j-5");
    let (p, _vendors) = pipeline().await;
    let d = p.handle(&delivery("create_user.glance", &job, None), &CancellationToken::new()).await;
    assert_eq!(d.publish.len(), 2);

    // The event is confirmed, the DLQ copy is not: the delivery must be requeued, not acked.
    let rec = Recorder::default();
    let publisher = FailingAfter { ok: 1, seen: Mutex::default() };
    let settled = settle(&publisher, rec.clone(), &d, std::time::Duration::ZERO).await;
    assert_eq!(settled, Settled::PublishFailed(OutboundKind::DeadLetter, PublishError::Nacked));
    assert_eq!(*rec.0.lock().unwrap(), ["requeue"]);

    let rec = Recorder::default();
    let publisher = FailingAfter { ok: 2, seen: Mutex::default() };
    assert_eq!(settle(&publisher, rec.clone(), &d, std::time::Duration::ZERO).await, Settled::Acked);
    assert_eq!(*rec.0.lock().unwrap(), ["ack"]);
    assert_eq!(*publisher.seen.lock().unwrap(), [OutboundKind::Event, OutboundKind::DeadLetter]);
}

#[tokio::test]
async fn the_memory_broker_runs_the_demo_to_the_documented_summary() {
    let summary = provisioner::commands::demo::run_in_memory().await.unwrap();
    assert_eq!(
        (summary.jobs, summary.created, summary.existing, summary.failed, summary.dead_lettered),
        (10, 3, 1, 5, 6)
    );
    let classes: std::collections::BTreeSet<&str> =
        summary.rows.iter().filter(|r| r.outcome == "failed").map(|r| r.detail.split(':').next().unwrap()).collect();
    assert_eq!(classes.into_iter().collect::<Vec<_>>(), ["auth", "conflict", "invalid", "rejected", "unavailable"]);
}
