//! Pipeline decisions and the settle rule, on the in-memory transport: fast and broker-free.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestVendors;
use provisioner::config::{SecretSource, Settings};
use provisioner::contract::VendorKey;
use provisioner::metrics::Metrics;
use provisioner::outcome::ErrorClass;
use provisioner::pipeline::{sample_job, Pipeline};
use provisioner::sandbox::Faults;
use provisioner::transport::headers as h;
use provisioner::transport::{settle, Acknowledge, Inbound, Outbound, OutboundKind, PublishError, Publisher, Settled};
use provisioner::transport::{After, Disposition, Parked, Report};
use provisioner::vendors::build_adapters;
use tokio_util::sync::CancellationToken;

/// A pipeline with one Glance account "acme" on a fresh sandbox with `faults` (kept alive by
/// the returned value), after `tweak` had its say on the settings.
async fn pipeline_with(faults: Faults, tweak: impl FnOnce(&mut Settings)) -> (Pipeline, TestVendors, Metrics) {
    let vendors = TestVendors::start(faults).await;
    let mut settings = Settings::default();
    settings.accounts.insert("acme".to_owned(), vendors.account(VendorKey::Glance));
    tweak(&mut settings);
    let metrics = Metrics::new();
    (Pipeline::new(&settings, build_adapters(&settings).unwrap(), &metrics, None), vendors, metrics)
}

async fn pipeline() -> (Pipeline, TestVendors) {
    let (p, vendors, _) = pipeline_with(Faults::default(), |_| {}).await;
    (p, vendors)
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

/// A ClientToolbox key can make Administrators; jobs may not ask for one unless the
/// account's policy lists role A. Such a job is invalid and never reaches the vendor.
#[tokio::test]
async fn a_job_outside_its_accounts_policy_is_invalid_and_never_sent() {
    let vendors = TestVendors::start(Faults::default()).await;
    let mut settings = Settings::default();
    settings.accounts.insert("ctb".to_owned(), vendors.account(VendorKey::Clienttoolbox));
    let p = Pipeline::new(&settings, build_adapters(&settings).unwrap(), &Metrics::new(), None);
    let mut admin = sample_job("pol-1", VendorKey::Clienttoolbox, "ctb", "jadmin");
    admin["user"]["user_role"] = serde_json::json!("A");
    let d = p.handle(&delivery("create_user.clienttoolbox", &admin, None), &CancellationToken::new()).await;
    assert_eq!(kinds(&d), [OutboundKind::Event, OutboundKind::DeadLetter]);
    assert_eq!(h::text(&d.publish[1].headers, h::REASON), Some("invalid"));
    let event: serde_json::Value = serde_json::from_slice(&d.publish[0].body).unwrap();
    let message = event["data"]["error"]["message"].as_str().unwrap();
    assert!(message.contains("accounts.ctb.policy.roles"), "{message}");
    assert_eq!(vendors.sandboxes.faults.requests(), 0, "the vendor must not be called");

    // The same job with a role the policy allows goes through.
    let staff = sample_job("pol-2", VendorKey::Clienttoolbox, "ctb", "jstaff");
    let d = p.handle(&delivery("create_user.clienttoolbox", &staff, None), &CancellationToken::new()).await;
    assert_eq!(d.publish[0].routing_key, "user.created.clienttoolbox");
}

/// A producer that re-publishes a dead letter it consumed, headers and all: the job is
/// judged afresh, and its own dead letter tells this failure, not the copied one.
#[tokio::test]
async fn provisioner_headers_set_by_a_producer_are_dropped() {
    let (p, _vendors) = pipeline().await;
    let mut msg = delivery("create_user.glance", &refused_job("j-forged"), None);
    h::set_text(&mut msg.headers, h::REASON, "auth");
    h::set_text(&mut msg.headers, h::ERROR_MESSAGE, "rotate the credentials");
    h::set_text(&mut msg.headers, h::ACCOUNT, "someone-else");
    h::set_int(&mut msg.headers, h::ATTEMPTS, 9_999);
    h::set_text(&mut msg.headers, "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    let d = p.handle(&msg, &CancellationToken::new()).await;
    assert_eq!(kinds(&d), [OutboundKind::Event, OutboundKind::DeadLetter]);
    let dead = &d.publish[1].headers;
    assert_eq!(h::text(dead, h::REASON), Some("rejected"));
    assert_eq!(h::int(dead, h::ATTEMPTS), Some(1), "the forged attempt count is gone");
    assert_eq!(h::text(dead, h::ACCOUNT), Some("acme"));
    assert_ne!(h::text(dead, h::ERROR_MESSAGE), Some("rotate the credentials"));
    assert!(h::text(dead, "traceparent").is_some(), "headers that are not the service's are kept");
}

#[tokio::test]
async fn only_a_w3c_traceparent_is_carried_into_the_event() {
    let (p, _vendors) = pipeline().await;
    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for (traceparent, carried) in [(valid.to_owned(), true), (format!("00-{}", "f".repeat(8 * 1024)), false)] {
        let mut msg = delivery("create_user.glance", &refused_job("j-tp"), None);
        h::set_text(&mut msg.headers, h::TRACEPARENT, traceparent.clone());
        let d = p.handle(&msg, &CancellationToken::new()).await;
        assert_eq!(kinds(&d), [OutboundKind::Event, OutboundKind::DeadLetter]);
        let event: serde_json::Value = serde_json::from_slice(&d.publish[0].body).unwrap();
        let expected = carried.then_some(traceparent.as_str());
        assert_eq!(event["traceparent"].as_str(), expected, "the CloudEvents attribute");
        assert_eq!(h::text(&d.publish[0].headers, h::TRACEPARENT), expected, "the event's header");
        // The dead letter is the job as it came, headers included.
        assert_eq!(h::text(&d.publish[1].headers, h::TRACEPARENT), Some(traceparent.as_str()));
    }
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
        .starts_with("vendor: a glance create_user job must be published with routing key create_user.glance"));

    // A kind is routed by its own key: a suspend published as a create is refused, unsent.
    let mut job = sample_job("j-2s", VendorKey::Glance, "acme", "E");
    job["kind"] = serde_json::json!("suspend_user");
    job["user"] = serde_json::json!({"PartnerUserID": "E"});
    let d = p.handle(&delivery("create_user.glance", &job, None), &CancellationToken::new()).await;
    let event: serde_json::Value = serde_json::from_slice(&d.publish[0].body).unwrap();
    assert_eq!(event["data"]["kind"], "suspend_user");
    assert!(event["data"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("must be published with routing key suspend_user.glance"));

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
        (12, 4, 1, 6, 7)
    );
    // The ledger ends the demo: Jane Smith's account is linked to her, and her namesake,
    // refused as a conflict, has none.
    let who: Vec<(&str, usize)> = summary.whois.iter().map(|w| (w.query.as_str(), w.links.len())).collect();
    assert_eq!(who, [("jane_smith", 1), ("000999", 0)]);
    let jane = &summary.whois[0].links[0];
    assert_eq!(jane.person.as_ref().map(|p| p.employee_id.as_str()), Some("000731"));
    let classes: std::collections::BTreeSet<&str> =
        summary.rows.iter().filter(|r| r.outcome == "failed").map(|r| r.detail.split(':').next().unwrap()).collect();
    assert_eq!(classes.into_iter().collect::<Vec<_>>(), ["auth", "conflict", "invalid", "rejected", "unavailable"]);
}

/// A pipeline with one Glance account "acme" whose breaker trips after two failures of two
/// and probes again 1 s later; one vendor call per delivery, so every call is countable.
async fn guarded(faults: Faults, password: Option<&str>) -> (Pipeline, TestVendors, Metrics) {
    pipeline_with(faults, |s| {
        if let Some(pw) = password {
            let credentials = &mut s.accounts.get_mut("acme").unwrap().credentials;
            credentials.insert("PartnerPW".into(), SecretSource::Value(pw.to_owned().into()));
        }
        s.retry.inline.max_attempts = 1;
        s.circuit_breaker.min_calls = 2;
        s.circuit_breaker.open_for = Duration::from_secs(1);
    })
    .await
}

fn gauge(metrics: &Metrics, series: &str) -> f64 {
    let text = metrics.render();
    let line = text.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn glance_job(id: &str) -> Inbound {
    delivery("create_user.glance", &sample_job(id, VendorKey::Glance, "acme", &format!("E-{id}")), None)
}

#[tokio::test]
async fn an_outage_opens_the_circuit_parks_jobs_without_calling_the_vendor_and_a_probe_closes_it() {
    let outage = Faults { outage: true, ..Faults::default() };
    let (p, vendors, metrics) = guarded(outage, None).await;
    let stop = CancellationToken::new();
    let d = p.handle(&glance_job("o-1"), &stop).await;
    assert_eq!(d.report, Report::RetryScheduled { tier: "10s".into(), why: Parked::Failure });
    // The second failure opens the breaker; its own job is parked like the ones after it.
    let d = p.handle(&glance_job("o-2"), &stop).await;
    assert_eq!(d.report, Report::RetryScheduled { tier: "10s".into(), why: Parked::CircuitOpen });
    assert_eq!(gauge(&metrics, "provisioner_circuit_open_accounts{vendor=\"glance\"}"), 1.0);
    assert!(p.circuits().report().contains("circuit glance/acme: open"), "{}", p.circuits().report());

    // Open: parked in a tier, the vendor not called, no tier used up.
    let calls = vendors.sandboxes.faults.requests();
    let d = p.handle(&glance_job("o-3"), &stop).await;
    assert_eq!(d.report, Report::RetryScheduled { tier: "10s".into(), why: Parked::CircuitOpen });
    assert_eq!(vendors.sandboxes.faults.requests(), calls, "an open circuit must not call the vendor");
    let parked = &d.publish[0].headers;
    assert_eq!((h::int(parked, h::CIRCUIT_PARKED), h::int(parked, h::DURABLE_RETRIES)), (Some(1), None));

    // Even a job that has used up every tier is parked, not dead-lettered, while it is open.
    let mut spent = glance_job("o-4");
    h::set_int(&mut spent.headers, h::DURABLE_RETRIES, 5);
    let d = p.handle(&spent, &stop).await;
    assert!(matches!(d.report, Report::RetryScheduled { why: Parked::CircuitOpen, .. }), "{:?}", d.report);
    // The copy for the tier, then the `parked` step event for the job's history.
    assert_eq!(kinds(&d), [OutboundKind::Retry, OutboundKind::Event]);
    assert_eq!(d.publish[1].routing_key, "job.parked.glance");

    // The vendor is back; once open_for has passed, the next job is the probe and closes it.
    vendors.sandboxes.faults.set(Faults::default());
    let mut probe = None;
    // Polled: each refused job is parked at once, so this loop only spans open_for.
    for attempt in 0..50 {
        let d = p.handle(&glance_job(&format!("o-5-{attempt}")), &stop).await;
        if !matches!(d.report, Report::RetryScheduled { why: Parked::CircuitOpen, .. }) {
            probe = Some(d);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let probe = probe.expect("a probe within 5 s of open_for (1 s)");
    assert!(matches!(probe.report, Report::Terminal { outcome: "created", .. }), "{:?}", probe.report);
    assert!(p.circuits().report().contains("circuit glance/acme: closed"), "{}", p.circuits().report());
    assert_eq!(gauge(&metrics, "provisioner_circuit_open_accounts{vendor=\"glance\"}"), 0.0);
    assert_eq!(gauge(&metrics, "provisioner_circuit_transitions_total{to=\"closed\",vendor=\"glance\"}"), 1.0);
}

#[tokio::test]
async fn an_auth_failure_fails_its_job_and_opens_the_circuit_at_once() {
    let (p, vendors, metrics) = guarded(Faults::default(), Some("not-the-password")).await;
    let stop = CancellationToken::new();
    let d = p.handle(&glance_job("a-1"), &stop).await;
    assert_eq!(d.report, Report::Terminal { outcome: "failed", class: Some(ErrorClass::Auth), dead_lettered: true });
    let report = p.circuits().report();
    assert!(report.contains("open") && report.contains("credentials"), "{report}");
    let calls = vendors.sandboxes.faults.requests();
    let d = p.handle(&glance_job("a-2"), &stop).await;
    assert!(matches!(d.report, Report::RetryScheduled { why: Parked::CircuitOpen, .. }), "{:?}", d.report);
    assert_eq!(vendors.sandboxes.faults.requests(), calls);
    assert!(!report.contains("not-the-password") && !metrics.render().contains("not-the-password"));
}

#[tokio::test]
async fn a_429_is_counted_and_slows_the_account_down() {
    let throttled = Faults { throttle_rate: 1.0, retry_after: Duration::from_secs(1), ..Faults::default() };
    let (p, _vendors, metrics) = guarded(throttled, None).await;
    let d = p.handle(&glance_job("t-1"), &CancellationToken::new()).await;
    assert!(matches!(d.report, Report::RetryScheduled { why: Parked::Failure, .. }), "{:?}", d.report);
    assert_eq!(gauge(&metrics, "provisioner_vendor_throttled_total{vendor=\"glance\"}"), 1.0);
    assert!(p.circuits().report().contains("closed"), "a 429 says nothing about the vendor's health");
    // The vendor asked for 1 s: the next call waits for it.
    let started = std::time::Instant::now();
    p.handle(&glance_job("t-2"), &CancellationToken::new()).await;
    assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_transient_failure_uses_the_vendors_own_schedule_and_gives_up_after_its_last_tier() {
    let (p, _vendors, _) = pipeline_with(Faults { outage: true, ..Faults::default() }, |s| {
        s.retry.inline.max_attempts = 1;
        s.vendors.glance.retry_tiers = Some(vec![Duration::from_secs(3), Duration::from_secs(90)]);
    })
    .await;
    let stop = CancellationToken::new();
    let mut job = glance_job("s-1");
    for tier in ["3s", "1m30s"] {
        let d = p.handle(&job, &stop).await;
        assert_eq!(d.report, Report::RetryScheduled { tier: tier.into(), why: Parked::Failure });
        job.headers = d.publish[0].headers.clone();
    }
    let d = p.handle(&job, &stop).await;
    assert_eq!(
        d.report,
        Report::Terminal { outcome: "failed", class: Some(ErrorClass::Unavailable), dead_lettered: true }
    );
}

#[tokio::test]
async fn a_call_queued_while_the_breaker_opened_never_goes_out_and_neither_job_uses_a_tier() {
    // One call at a time; the vendor is down and slow. Job A's failure opens the breaker
    // while job B waits for the account's only slot.
    let slow_outage = Faults { outage: true, latency: Duration::from_millis(300), ..Faults::default() };
    let (p, vendors, _) = pipeline_with(slow_outage, |s| {
        s.accounts.get_mut("acme").unwrap().concurrency = Some(1);
        s.retry.inline.max_attempts = 1;
        s.circuit_breaker.consecutive_failures = 1;
    })
    .await;
    let stop = CancellationToken::new();
    let (job_a, job_b) = (glance_job("q-a"), glance_job("q-b"));
    let (a, b) = tokio::join!(p.handle(&job_a, &stop), p.handle(&job_b, &stop));
    assert_eq!(vendors.sandboxes.faults.requests(), 1, "only A reached the vendor");
    for d in [&a, &b] {
        assert!(matches!(d.report, Report::RetryScheduled { why: Parked::CircuitOpen, .. }), "{:?}", d.report);
        assert_eq!(h::int(&d.publish[0].headers, h::DURABLE_RETRIES), None, "no tier used up");
    }
}

#[tokio::test]
async fn a_job_that_cannot_get_its_account_within_max_wait_is_parked_without_using_a_tier() {
    let (p, vendors, _) = pipeline_with(Faults::default(), |s| {
        s.accounts.get_mut("acme").unwrap().rate = Some("1/min".parse().unwrap());
        s.rate_limit.max_wait = Duration::from_millis(200);
    })
    .await;
    let stop = CancellationToken::new();
    let first = p.handle(&glance_job("b-1"), &stop).await;
    assert!(matches!(first.report, Report::Terminal { outcome: "created", .. }), "{:?}", first.report);
    let started = std::time::Instant::now();
    let second = p.handle(&glance_job("b-2"), &stop).await;
    assert!(started.elapsed() < Duration::from_secs(5), "refused at once, not after the minute");
    assert_eq!(second.report, Report::RetryScheduled { tier: "10s".into(), why: Parked::AccountBusy });
    assert_eq!(h::int(&second.publish[0].headers, h::DURABLE_RETRIES), None);
    assert_eq!(vendors.creations(VendorKey::Glance, "E-b-2"), 0);
}

/// A crash after a parked delivery's tier copy was confirmed and before its ack leaves the job
/// as two copies: the delivery the broker hands back and the one in the tier. Each ends, the
/// second as `existing` (the chaos suite sees two endings long after the crash), and the
/// vendor holds one user.
#[tokio::test]
async fn a_job_split_by_a_crash_while_it_was_parked_ends_twice_with_one_user() {
    let vendors = TestVendors::start(Faults { outage: true, ..Faults::default() }).await;
    let mut settings = Settings::default();
    settings.accounts.insert("ns".to_owned(), vendors.account(VendorKey::Netsapiens));
    settings.retry.inline.max_attempts = 1;
    let p = Pipeline::new(&settings, build_adapters(&settings).unwrap(), &Metrics::new(), None);
    let stop = CancellationToken::new();
    let original = delivery(
        "create_user.netsapiens",
        &sample_job("split-1", VendorKey::Netsapiens, "ns", "1042"),
        Some("split-1"),
    );
    let parked = p.handle(&original, &stop).await;
    assert!(matches!(parked.report, Report::RetryScheduled { why: Parked::Failure, .. }), "{:?}", parked.report);
    let copy = &parked.publish[0];
    assert_eq!(copy.kind, OutboundKind::Retry);
    // The copy comes back from its tier; the unacked delivery comes back from the broker.
    let from_tier = Inbound {
        body: copy.body.clone(),
        routing_key: copy.routing_key.clone(),
        message_id: copy.message_id.clone(),
        headers: copy.headers.clone(),
        ..Default::default()
    };
    let handed_back = Inbound { redelivered: true, ..original.clone() };
    vendors.sandboxes.faults.set(Faults::default());
    let first = p.handle(&handed_back, &stop).await;
    let second = p.handle(&from_tier, &stop).await;
    assert!(matches!(first.report, Report::Terminal { outcome: "created", .. }), "{:?}", first.report);
    assert!(matches!(second.report, Report::Terminal { outcome: "existing", .. }), "{:?}", second.report);
    assert_eq!(vendors.creations(VendorKey::Netsapiens, "1042"), 1);
}
