//! The worker against a real RabbitMQ: flow, retries, dead-lettering, reconnects and
//! unroutable events. Each test has its own topology names.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{settings_with, test_settings, wait_until, Probe};
use provisioner::admin::{self, Health};
use provisioner::config::Settings;
use provisioner::contract::VendorKey;
use provisioner::metrics::Metrics;
use provisioner::pipeline::{sample_job, Pipeline};
use provisioner::sandbox::Faults;
use provisioner::transport::headers as h;
use provisioner::transport::{Outbound, OutboundKind};
use provisioner::vendors::build_adapters;
use provisioner::worker::Worker;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

/// A worker running in this process.
struct App {
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), provisioner::transport::rabbitmq::BrokerError>>,
    metrics: Metrics,
    health: Health,
}

impl App {
    fn spawn(settings: &Settings) -> Self {
        let (metrics, health, shutdown) = (Metrics::new(), Health::default(), CancellationToken::new());
        let pipeline = Arc::new(Pipeline::new(settings, build_adapters(settings).unwrap(), &metrics, None));
        health.watch_circuits(pipeline.circuits());
        let worker = Worker::new(Arc::new(settings.clone()), pipeline, metrics.clone(), health.clone());
        let handle = tokio::spawn(worker.run(shutdown.clone()));
        Self { shutdown, handle, metrics, health }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.handle).await.expect("worker stops").unwrap().unwrap();
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_value(&self.metrics.render(), name, labels)
    }
}

/// Reads one sample from Prometheus text, 0 when absent.
fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_job_flows_to_a_confirmed_created_event_and_is_acked() {
    let (settings, vendors) = settings_with(&[("acme", VendorKey::Glance)], Faults::default()).await;
    let probe = Probe::new(&settings).await;
    let mut events = probe.observe_events().await;
    let app = App::spawn(&settings);

    let job = sample_job("flow-1", VendorKey::Glance, "acme", "EMP-1");
    probe.publish_job(VendorKey::Glance, &job).await;
    let event = events.next_json(WAIT, "the created event").await;

    assert_eq!(event["type"], "provisioning.user.created");
    assert_eq!(event["subject"], "flow-1");
    assert_eq!(event["data"]["correlation_id"], "corr-flow-1");
    assert_eq!(event["data"]["attempts"], 1);
    // Acked: nothing is left ready or unacked, so a restart would not see the job again.
    let queue = settings.topology.job_queue(VendorKey::Glance);
    wait_until(WAIT, "the job is acked", || {
        app.counter("provisioner_jobs_completed_total", &[("outcome", "created")]) == 1.0
    })
    .await;
    assert_eq!(vendors.creations(VendorKey::Glance, "EMP-1"), 1);
    app.stop().await;
    assert_eq!(probe.ready_count(&queue).await, 0, "an acked job must not come back after the consumer closed");
    probe.teardown().await;
}

#[tokio::test]
async fn readyz_is_200_only_while_connected_and_consuming() {
    let (settings, _vendors) = settings_with(&[("acme", VendorKey::Glance)], Faults::default()).await;
    let probe = Probe::new(&settings).await;
    let app = App::spawn(&settings);
    let stop = CancellationToken::new();
    let (addr, server) = admin::serve(
        "127.0.0.1:0".parse().unwrap(),
        Default::default(),
        app.metrics.clone(),
        app.health.clone(),
        stop.clone(),
    )
    .await
    .unwrap();
    let get = |path: &'static str| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    wait_until(WAIT, "the worker is ready", || app.health.is_ready()).await;
    let ready = get("/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(ready.contains("circuit glance/acme: closed"), "each account's breaker is shown: {ready}");
    assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
    let metrics = get("/metrics").await;
    assert!(metrics.contains("provisioner_broker_connected 1"), "{metrics}");
    assert!(metrics.contains("provisioner_build_info{version="), "{metrics}");
    app.stop().await;
    assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));
    stop.cancel();
    server.await.unwrap();
    probe.teardown().await;
}

#[tokio::test]
async fn a_malformed_message_goes_to_the_dlq_with_a_reason() {
    let (settings, _vendors) = settings_with(&[("acme", VendorKey::Netsapiens)], Faults::default()).await;
    let probe = Probe::new(&settings).await;
    let mut dead = probe.observe_dead_letters().await;
    let app = App::spawn(&settings);

    probe.publish_raw("create_user.netsapiens", b"{\"job_id\": \"half".to_vec(), None).await;
    let msg = dead.next(WAIT, "the dead-lettered message").await;

    assert_eq!(msg.body, b"{\"job_id\": \"half", "the DLQ keeps the original bytes");
    assert_eq!(h::text(&msg.headers, h::REASON), Some("undecodable"));
    assert!(h::text(&msg.headers, h::ERROR_MESSAGE).unwrap().starts_with("not JSON"));
    assert_eq!(h::text(&msg.headers, h::ORIGINAL_ROUTING_KEY), Some("create_user.netsapiens"));
    assert!(h::text(&msg.headers, h::FIRST_FAILED_AT).is_some());
    app.stop().await;
    probe.teardown().await;
}

#[tokio::test]
async fn connections_agree_on_64k_frames_and_carry_bodies_and_headers_larger_than_16k() {
    use provisioner::transport::rabbitmq::{self, DEFAULT_FRAME_MAX};
    let (settings, _vendors) = settings_with(&[("acme", VendorKey::Netsapiens)], Faults::default()).await;
    let probe = Probe::new(&settings).await;
    assert_eq!(probe.conn.configuration().frame_max(), DEFAULT_FRAME_MAX);
    let mut named = settings.clone();
    named.amqp.url = format!("{}?frame_max=32768", settings.amqp.url);
    let conn = rabbitmq::connect(&named).await.unwrap();
    assert_eq!(conn.configuration().frame_max(), 32_768, "a frame_max in amqp.url wins");
    let _ = conn.close(200, "checked".into()).await;

    // Consumed and dead-lettered whole, over several frames each way.
    let mut dead = probe.observe_dead_letters().await;
    let app = App::spawn(&settings);
    let body: Vec<u8> = (0..5 * DEFAULT_FRAME_MAX as usize).map(|i| b'a' + (i % 26) as u8).collect();
    probe.publish_raw("create_user.netsapiens", body.clone(), None).await;
    let msg = dead.next(WAIT, "the dead-lettered message").await;
    assert_eq!(h::text(&msg.headers, h::REASON), Some("undecodable"));
    assert!(msg.body == body, "the DLQ copy has the original {} bytes, got {}", body.len(), msg.body.len());

    // Headers must fit one frame: a producer's (or a replay audit's) 40 KiB of headers
    // still travels in, and out to the DLQ with ours added.
    let mut headers = provisioner::transport::Headers::new();
    h::set_text(&mut headers, "x-producer-trace", "t".repeat(40 * 1024));
    let big = Outbound {
        kind: OutboundKind::Retry,
        exchange: settings.topology.jobs_exchange.clone(),
        routing_key: "create_user.netsapiens".into(),
        body: b"not json".to_vec(),
        message_id: None,
        content_type: None,
        timestamp: None,
        headers,
    };
    probe.publish_many(vec![big]).await;
    let msg = dead.next(WAIT, "the dead letter with big headers").await;
    assert_eq!(h::text(&msg.headers, "x-producer-trace").map(str::len), Some(40 * 1024));
    assert_eq!(h::text(&msg.headers, h::REASON), Some("undecodable"));
    app.stop().await;
    probe.teardown().await;
}

#[tokio::test]
async fn an_invalid_job_gets_a_failed_event_and_a_dlq_copy() {
    let (settings, _vendors) = settings_with(&[("acme", VendorKey::Glance)], Faults::default()).await;
    let probe = Probe::new(&settings).await;
    let mut events = probe.observe_events().await;
    let mut dead = probe.observe_dead_letters().await;
    let app = App::spawn(&settings);

    let mut job = sample_job("invalid-1", VendorKey::Glance, "acme", "EMP-1");
    job["user"]["PartnerPW"] = serde_json::json!("hunter2");
    probe.publish_job(VendorKey::Glance, &job).await;

    let event = events.next_json(WAIT, "the failed event").await;
    assert_eq!(event["data"]["error"]["class"], "invalid");
    assert!(event["data"]["error"]["message"].as_str().unwrap().contains("user.PartnerPW"));
    assert!(!event.to_string().contains("hunter2"), "a credential leaked into the event: {event}");
    let copy = dead.next(WAIT, "the DLQ copy").await;
    assert_eq!(h::text(&copy.headers, h::REASON), Some("invalid"));
    assert_eq!(h::text(&copy.headers, h::JOB_ID), Some("invalid-1"));
    app.stop().await;
    probe.teardown().await;
}

#[tokio::test]
async fn a_transient_failure_goes_through_a_retry_tier_and_comes_back() {
    // The sandbox fails its next request with a 503. With one inline attempt, that first
    // failure must park the job in the 1s tier, which routes it back.
    let (mut settings, vendors) =
        settings_with(&[("acme", VendorKey::Clienttoolbox)], Faults { fail_next: 1, ..Faults::default() }).await;
    settings.retry.inline.max_attempts = 1;
    let probe = Probe::new(&settings).await;
    let mut events = probe.observe_events().await;
    let app = App::spawn(&settings);

    probe.publish_job(VendorKey::Clienttoolbox, &sample_job("retry-1", VendorKey::Clienttoolbox, "acme", "jdoe")).await;
    let event = events.next_json(WAIT, "the created event after a durable retry").await;

    assert_eq!(event["type"], "provisioning.user.created");
    assert_eq!(event["data"]["attempts"], 2, "one failed call before the tier, one after");
    assert_eq!(app.counter("provisioner_retries_total", &[("kind", "durable")]), 1.0);
    assert_eq!(vendors.creations(VendorKey::Clienttoolbox, "jdoe"), 1);
    app.stop().await;
    probe.teardown().await;
}

#[tokio::test]
async fn retries_run_out_into_an_unavailable_failure_in_the_dlq() {
    let (mut settings, _vendors) =
        settings_with(&[("acme", VendorKey::Glance)], Faults { outage: true, ..Faults::default() }).await;
    settings.retry.inline.max_attempts = 2;
    let probe = Probe::new(&settings).await;
    let mut events = probe.observe_events().await;
    let mut dead = probe.observe_dead_letters().await;
    let app = App::spawn(&settings);

    probe.publish_job(VendorKey::Glance, &sample_job("outage-1", VendorKey::Glance, "acme", "EMP-9")).await;
    let event = events.next_json(WAIT, "the unavailable event").await;
    assert_eq!(event["data"]["error"]["class"], "unavailable");
    assert_eq!(event["data"]["attempts"], 4, "2 inline calls, one tier, 2 more calls");
    let copy = dead.next(WAIT, "the DLQ copy").await;
    assert_eq!(h::int(&copy.headers, h::ATTEMPTS), Some(4));
    assert_eq!(h::text(&copy.headers, h::REASON), Some("unavailable"));
    assert!(h::text(&copy.headers, h::FIRST_FAILED_AT) < h::text(&copy.headers, h::LAST_FAILED_AT));
    app.stop().await;
    probe.teardown().await;
}

#[tokio::test]
async fn a_job_that_keeps_stalling_its_handler_ends_in_the_dlq_through_the_delivery_limit() {
    // The vendor answers after 3 s but the handler may only take 300 ms: every delivery
    // stalls, is abandoned and requeued, until the quorum delivery limit dead-letters it.
    let slow = Faults { latency: Duration::from_secs(3), ..Faults::default() };
    let (mut settings, vendors) = settings_with(&[("acme", VendorKey::Glance)], slow).await;
    settings.worker.handler_timeout = Duration::from_millis(300);
    (settings.rate_limit.max_wait, settings.retry.inline.budget) =
        (Duration::from_millis(100), Duration::from_millis(100));
    settings.check().unwrap();
    settings.topology.delivery_limit = 2;
    let probe = Probe::new(&settings).await;
    let mut dead = probe.observe_dead_letters().await;
    let app = App::spawn(&settings);

    probe.publish_job(VendorKey::Glance, &sample_job("poison-1", VendorKey::Glance, "acme", "EMP-P")).await;
    let copy = dead.next(WAIT, "the stalled job in the DLQ").await;
    assert_eq!(h::text(&copy.headers, "x-first-death-reason"), Some("delivery_limit"), "{:?}", copy.headers);
    let body: serde_json::Value = serde_json::from_slice(&copy.body).unwrap();
    assert_eq!(body["job_id"], "poison-1", "the original job, untouched");
    assert!(app.counter("provisioner_handler_failures_total", &[("kind", "timeout")]) >= 3.0);
    assert_eq!(probe.ready_count(&settings.topology.job_queue(VendorKey::Glance)).await, 0, "it does not loop");
    assert_eq!(vendors.creations(VendorKey::Glance, "EMP-P"), 0, "no abandoned call created the user");
    app.stop().await;
    probe.teardown().await;
}

#[tokio::test]
async fn an_unroutable_event_publish_does_not_ack_the_job() {
    // No audit queue, no ledger queue and no observer yet: the events exchange routes nowhere
    // (with a ledger, its queue takes every event, so events are never unroutable). The hold
    // before the requeue leaves ample time to bind an observer before the next delivery.
    let (mut settings, vendors) = settings_with(&[("acme", VendorKey::Glance)], Faults::default()).await;
    settings.ledger.enabled = false;
    settings.worker.publish_failure_delay = Duration::from_secs(3);
    let probe = Probe::new(&settings).await;
    let app = App::spawn(&settings);

    probe.publish_job(VendorKey::Glance, &sample_job("unroutable-1", VendorKey::Glance, "acme", "EMP-5")).await;
    wait_until(WAIT, "an unroutable event publish was seen", || {
        app.counter("provisioner_publish_failures_total", &[("kind", "event"), ("reason", "unroutable")]) >= 1.0
    })
    .await;
    assert_eq!(app.counter("provisioner_jobs_completed_total", &[]), 0.0, "nothing may count as completed");

    // The job was requeued, not acked: once someone listens, its event arrives.
    let mut events = probe.observe_events().await;
    let event = events.next_json(WAIT, "the event once it is routable").await;
    assert_eq!(event["subject"], "unroutable-1");
    // The vendor created the user on the first pass; the redelivery must see it as existing.
    assert_eq!(event["type"], "provisioning.user.existing");
    assert_eq!(vendors.creations(VendorKey::Glance, "EMP-5"), 1);
    app.stop().await;
    probe.teardown().await;
}

#[tokio::test]
async fn a_forced_connection_close_is_survived_without_losing_a_job() {
    // The vendor answers slowly, so a job is in flight (user created, nothing acked yet)
    // when the broker closes the worker's connection. Slow enough that rabbitmqctl, which
    // takes a second or two, surely closes it before the answer comes.
    let slow_answer = Faults { response_delay: Duration::from_secs(10), ..Faults::default() };
    let (settings, vendors) = settings_with(&[("acme", VendorKey::Netsapiens)], slow_answer).await;
    let probe = Probe::new(&settings).await;
    let mut events = probe.observe_events().await;
    let app = App::spawn(&settings);
    wait_until(WAIT, "the worker is ready", || app.health.is_ready()).await;

    probe.publish_job(VendorKey::Netsapiens, &sample_job("in-flight", VendorKey::Netsapiens, "acme", "1001")).await;
    wait_until(WAIT, "the vendor created the user", || vendors.creations(VendorKey::Netsapiens, "1001") == 1).await;
    let closed = tokio::task::spawn_blocking({
        let name = settings.amqp.connection_name.clone();
        move || common::force_close_connections(&name)
    })
    .await
    .unwrap();
    assert_eq!(closed, 1, "the worker's connection should have been found and closed");
    vendors.sandboxes.faults.set(Faults::default());
    wait_until(WAIT, "the worker has reconnected", || {
        app.counter("provisioner_broker_reconnects_total", &[]) >= 1.0 && app.health.is_ready()
    })
    .await;

    // The job in flight was redelivered after the reconnect and found its user.
    let event = events.next_json(WAIT, "the in-flight job's event").await;
    assert_eq!(
        (event["subject"].as_str(), event["type"].as_str()),
        (Some("in-flight"), Some("provisioning.user.existing"))
    );
    for i in 0..5 {
        let job = sample_job(&format!("after-close-{i}"), VendorKey::Netsapiens, "acme", &format!("200{i}"));
        probe.publish_job(VendorKey::Netsapiens, &job).await;
    }
    let mut subjects: Vec<String> = Vec::new();
    for _ in 0..5 {
        subjects
            .push(events.next_json(WAIT, "an event after the reconnect").await["subject"].as_str().unwrap().to_owned());
    }
    subjects.sort();
    assert_eq!(subjects, (0..5).map(|i| format!("after-close-{i}")).collect::<Vec<_>>());
    assert_eq!(vendors.creations(VendorKey::Netsapiens, "1001"), 1, "created exactly once");
    app.stop().await;
    probe.teardown().await;
}

#[tokio::test]
async fn a_worker_given_several_broker_addresses_moves_past_one_that_is_down() {
    let (mut settings, vendors) = settings_with(&[("acme", VendorKey::Glance)], Faults::default()).await;
    let probe = Probe::new(&settings).await;
    let mut events = probe.observe_events().await;
    // Nothing listens on port 1: the first address refuses, the second is the test broker.
    settings.amqp.urls = vec!["amqp://guest:guest@127.0.0.1:1/%2f".into(), common::broker_url()];
    settings.amqp.start_at = provisioner::config::StartAt::First;
    let app = App::spawn(&settings);
    wait_until(WAIT, "the worker is ready on the second address", || app.health.is_ready()).await;
    probe.publish_job(VendorKey::Glance, &sample_job("second-address", VendorKey::Glance, "acme", "EMP-2")).await;
    assert_eq!(events.next_json(WAIT, "the job's event").await["subject"], "second-address");
    assert_eq!(vendors.creations(VendorKey::Glance, "EMP-2"), 1);
    app.stop().await;
    probe.teardown().await;
}

#[tokio::test]
async fn a_job_queue_deleted_under_the_worker_is_declared_again_and_consumed() {
    // RabbitMQ 3.10 tells a quorum queue's consumer nothing when the queue is deleted: without
    // the stall watchdog the worker would wait on it forever, and jobs published after the
    // queue is declared again (by anyone) would never be consumed.
    let (mut settings, vendors) = settings_with(&[("acme", VendorKey::Glance)], Faults::default()).await;
    settings.amqp.consumer_stall_timeout = Duration::from_secs(1);
    let probe = Probe::new(&settings).await;
    let mut events = probe.observe_events().await;
    let app = App::spawn(&settings);
    wait_until(WAIT, "the worker is ready", || app.health.is_ready()).await;

    let queue = settings.topology.job_queue(VendorKey::Glance);
    let deleted = probe.channel.queue_delete(queue.as_str().into(), lapin::options::QueueDeleteOptions::default());
    deleted.await.expect("the job queue is deleted");
    wait_until(WAIT, "the worker has reconnected and declared its queue again", || {
        app.counter("provisioner_broker_reconnects_total", &[]) >= 1.0 && app.health.is_ready()
    })
    .await;
    probe.publish_job(VendorKey::Glance, &sample_job("after-delete", VendorKey::Glance, "acme", "EMP-7")).await;
    assert_eq!(events.next_json(WAIT, "the job's event after the queue came back").await["subject"], "after-delete");
    assert_eq!(vendors.creations(VendorKey::Glance, "EMP-7"), 1);
    app.stop().await;
    probe.teardown().await;
}

#[tokio::test]
async fn the_watchdog_ends_the_session_of_a_consumer_fed_nothing_while_its_queue_has_messages() {
    use provisioner::transport::rabbitmq::stall::{watch, Pulse, Watched};
    // A consumer that says it waits, with room, on a queue holding messages that nobody
    // delivers to it: the stuck state a lost consumer registration leaves behind.
    let settings = test_settings();
    let probe = Probe::new(&settings).await;
    let queue = settings.topology.job_queue(VendorKey::Glance);
    for i in 0..3 {
        let job = sample_job(&format!("stuck-{i}"), VendorKey::Glance, "acme", "EMP-1");
        probe.publish_job(VendorKey::Glance, &job).await;
    }
    assert_eq!(probe.ready_count(&queue).await, 3);
    let pulse = std::sync::Arc::new(Pulse::default());
    pulse.waiting();
    let watched = vec![Watched { label: "glance".into(), queue, prefetch: 32, pulse }];
    let (stop, lost) = (CancellationToken::new(), CancellationToken::new());
    let channel = probe.conn.create_channel().await.unwrap();
    let stall = Duration::from_secs(1);
    let watchdog = tokio::spawn(watch(channel, watched, stall, WAIT, stop.clone(), lost.clone()));
    tokio::time::timeout(WAIT, lost.cancelled()).await.expect("the watchdog calls the session lost");
    tokio::time::timeout(WAIT, watchdog).await.expect("the watchdog ends with it").unwrap();
    stop.cancel();
    probe.teardown().await;
}

#[tokio::test]
async fn the_topology_uses_quorum_queues_with_a_dead_letter_exchange() {
    let settings = test_settings();
    let probe = Probe::new(&settings).await;
    let listing = tokio::task::spawn_blocking(|| {
        common::rabbitmqctl(&["list_queues", "name", "type", "arguments", "--no-table-headers", "--quiet"])
    })
    .await
    .unwrap();
    let t = &settings.topology;
    for vendor in VendorKey::ALL {
        let line = listing
            .lines()
            .find(|l| l.split_whitespace().next() == Some(&t.job_queue(vendor)))
            .unwrap_or_else(|| panic!("{} not declared:\n{listing}", t.job_queue(vendor)));
        assert!(line.contains("quorum"), "{line}");
        assert!(line.contains("x-dead-letter-exchange") && line.contains(&t.dead_exchange), "{line}");
        assert!(line.contains("x-delivery-limit"), "{line}");
    }
    let retry = format!("{}.1s", t.retry_queue_prefix);
    let line = listing.lines().find(|l| l.starts_with(&retry)).unwrap_or_else(|| panic!("{retry} missing:\n{listing}"));
    assert!(line.contains("x-message-ttl") && line.contains(&t.jobs_exchange), "{line}");
    assert!(listing.lines().any(|l| l.starts_with(&format!("{}\tquorum", t.dead_queue))), "{listing}");
    // Declaring twice is harmless: every replica does it at every connect.
    provisioner::transport::rabbitmq::declare(&probe.channel, &settings).await.unwrap();
    probe.teardown().await;
}

#[tokio::test]
async fn a_queue_declared_with_other_arguments_stops_the_worker_with_a_clear_error() {
    let settings = test_settings();
    // Someone declared the glance job queue by hand, as a classic queue.
    let probe = Probe::new(&test_settings()).await;
    let queue = settings.topology.job_queue(VendorKey::Glance);
    let opts = lapin::options::QueueDeclareOptions { durable: true, ..Default::default() };
    probe.channel.queue_declare(queue.as_str().into(), opts, lapin::types::FieldTable::default()).await.unwrap();

    let app = App::spawn(&settings);
    let result = tokio::time::timeout(WAIT, app.handle).await.expect("the worker gives up instead of retrying forever");
    let err = result.unwrap().expect_err("a topology mismatch is fatal");
    assert!(err.is_fatal());
    assert!(err.to_string().contains("declaring a queue"), "{err}");
    let _ = probe.channel.queue_delete(queue.as_str().into(), Default::default()).await;
    let cleanup = Probe::new(&settings).await;
    cleanup.teardown().await;
    probe.teardown().await;
}
