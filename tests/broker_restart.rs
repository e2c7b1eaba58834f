//! A broker restart under a running worker. Its own test binary, because it stops the shared
//! broker: cargo runs test binaries one after another, so no other test sees the outage.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{rabbitmqctl, settings_with, wait_until, Probe};
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use provisioner::admin::Health;
use provisioner::contract::VendorKey;
use provisioner::metrics::Metrics;
use provisioner::pipeline::{sample_job, Pipeline};
use provisioner::sandbox::Faults;
use provisioner::vendors::build_adapters;
use provisioner::worker::Worker;
use tokio_util::sync::CancellationToken;

/// Starts the broker again even if the test fails half-way.
struct RestartGuard;

impl Drop for RestartGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl").arg("start_app").output();
        let _ = std::process::Command::new("rabbitmqctl").args(["await_startup", "--timeout", "60"]).output();
    }
}

#[tokio::test]
async fn a_broker_restart_loses_no_job_in_flight() {
    let latency = Faults { latency: Duration::from_secs(2), ..Faults::default() };
    let (mut settings, _vendors) = settings_with(&[("acme", VendorKey::Glance)], latency).await;
    // A durable event queue, so events published right after the restart are kept for us.
    settings.topology.audit_queue = format!("{}.audit", settings.topology.events_exchange);
    let probe = Probe::new(&settings).await;
    let health = Health::default();
    let metrics = Metrics::new();
    let pipeline = Arc::new(Pipeline::new(&settings, build_adapters(&settings).unwrap(), &metrics, None));
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(
        Worker::new(Arc::new(settings.clone()), pipeline, metrics.clone(), health.clone()).run(shutdown.clone()),
    );
    wait_until(Duration::from_secs(20), "the worker is ready", || health.is_ready()).await;

    probe.publish_job(VendorKey::Glance, &sample_job("restart-1", VendorKey::Glance, "acme", "EMP-1")).await;
    wait_until(Duration::from_secs(20), "the job is in flight", || {
        metrics.jobs_in_flight.with_label_values(&["glance"]).get() == 1
    })
    .await;
    let guard = RestartGuard;
    tokio::task::spawn_blocking(|| rabbitmqctl(&["stop_app"])).await.unwrap();
    wait_until(Duration::from_secs(20), "the worker notices the outage", || !health.is_ready()).await;
    tokio::task::spawn_blocking(|| {
        rabbitmqctl(&["start_app"]);
        rabbitmqctl(&["await_startup", "--timeout", "60"]);
    })
    .await
    .unwrap();
    drop(guard);
    wait_until(Duration::from_secs(60), "the worker is ready again", || health.is_ready()).await;

    // The job in flight at the outage was never acked, so it is redelivered and finishes.
    let probe = Probe::new(&settings).await;
    let ch = probe.conn.create_channel().await.unwrap();
    let mut audit = ch
        .basic_consume(
            settings.topology.audit_queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let d = tokio::time::timeout(Duration::from_secs(30), audit.next())
        .await
        .expect("the event of the job in flight arrives after the restart")
        .unwrap()
        .unwrap();
    d.ack(BasicAckOptions::default()).await.unwrap();
    let event: serde_json::Value = serde_json::from_slice(&d.data).unwrap();
    assert_eq!(event["subject"], "restart-1");
    assert!(metrics.broker_reconnects.get() >= 1);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), worker).await.unwrap().unwrap().unwrap();
    probe.teardown().await;
}
