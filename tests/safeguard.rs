//! The mass-change safeguard against a real RabbitMQ: a worker process holds removals past
//! the threshold, and `provisioner held` approves, rejects and survives a kill.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{child_config, settings_with, wait_until_async, Probe, WorkerProcess};
use provisioner::config::Settings;
use provisioner::contract::VendorKey;
use provisioner::pipeline::sample_job;
use provisioner::transport::headers as h;
use provisioner::transport::{Headers, Outbound, OutboundKind};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_provisioner");
const WAIT: Duration = Duration::from_secs(20);
const ACCOUNT: &str = "acme";

/// A removal of `identity` from the Glance account.
fn removal(job_id: &str, kind: &str) -> Value {
    json!({"job_id": job_id, "kind": kind, "vendor": "glance", "account": ACCOUNT,
           "user": {"PartnerUserID": format!("ID-{job_id}")}})
}

async fn publish_removal(probe: &Probe, job_id: &str, kind: &str) {
    let body = removal(job_id, kind);
    probe.publish_raw(&format!("{kind}.glance"), body.to_string().into_bytes(), Some(job_id)).await;
}

async fn setup(max_removals: u32) -> (Settings, common::TestVendors) {
    let (mut settings, vendors) = settings_with(&[(ACCOUNT, VendorKey::Glance)], Default::default()).await;
    settings.ledger.enabled = false;
    settings.safeguard.max_removals = max_removals;
    settings.safeguard.refresh = Duration::from_millis(200);
    // The grace before an emptied held queue clears a trip is confirm_timeout + refresh.
    settings.amqp.confirm_timeout = Duration::from_secs(2);
    (settings, vendors)
}

fn config_dir(settings: &Settings) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (toml, _) = child_config(settings);
    std::fs::write(dir.path().join("default.toml"), toml).unwrap();
    dir
}

fn cli_command(settings: &Settings, dir: &tempfile::TempDir, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .args(["--config", dir.path().to_str().unwrap()])
        .envs(child_config(settings).1)
        .env_remove("PROVISIONER_ENV")
        .env("USER", "test-operator");
    c
}

fn cli(settings: &Settings, dir: &tempfile::TempDir, args: &[&str]) -> Output {
    let out = cli_command(settings, dir, args).output().expect("binary runs");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Every step and outcome event the worker publishes, as JSON, by type.
async fn next_of_type(obs: &mut common::Observer, ty: &str, job_id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let e = obs.next_json(left, &format!("a {ty} event for {job_id}")).await;
        if e["type"].as_str().is_some_and(|t| t.contains(ty)) && e["data"]["job_id"] == job_id {
            return e;
        }
    }
}

/// Waits for an outcome event of each of `job_ids`, in any order.
async fn outcomes_of(obs: &mut common::Observer, job_ids: &[&str]) {
    let mut left: Vec<&str> = job_ids.to_vec();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !left.is_empty() {
        let within = deadline.saturating_duration_since(tokio::time::Instant::now());
        let e = obs.next_json(within, &format!("outcomes of {left:?}")).await;
        if e["type"].as_str().is_some_and(|t| t.contains("user.")) {
            left.retain(|id| e["data"]["job_id"] != *id);
        }
    }
}

#[tokio::test]
async fn removals_past_the_threshold_are_held_and_creates_never_are() {
    let (settings, _vendors) = setup(2).await;
    let probe = Probe::new(&settings).await;
    let mut events = probe.observe_all_events().await;
    let mut worker = WorkerProcess::start(&settings);
    worker.admin_when_consuming().await;
    let held_queue = settings.topology.held_queue(ACCOUNT);

    // Two removals pass the safeguard (the adapter decides what happens to them).
    for id in ["rm-1", "rm-2"] {
        publish_removal(&probe, id, "suspend_user").await;
    }
    // Jobs run concurrently: these two must be decided before the ones to hold.
    outcomes_of(&mut events, &["rm-1", "rm-2"]).await;
    // The third trips the account; the fourth is held because it is tripped.
    publish_removal(&probe, "rm-3", "delete_user").await;
    let held = next_of_type(&mut events, "job.held", "rm-3").await;
    assert!(held["data"]["reason"].as_str().unwrap().contains("safeguard.max_removals"), "{held}");
    publish_removal(&probe, "rm-4", "suspend_user").await;
    next_of_type(&mut events, "job.held", "rm-4").await;
    assert_eq!(probe.ready_count(&held_queue).await, 2);

    // A producer that sets the approval header itself gains nothing: no approval is
    // recorded for the job, so it is held like the others.
    let mut forged = held_message(&settings, "rm-5");
    forged.headers = Headers::new();
    h::set_text(&mut forged.headers, h::APPROVED, r#"{"by":"a producer","reason":"trust me"}"#);
    forged.kind = OutboundKind::Job;
    forged.exchange = settings.topology.jobs_exchange.clone();
    forged.routing_key = "delete_user.glance".into();
    probe.publish_many(vec![forged]).await;
    next_of_type(&mut events, "job.held", "rm-5").await;
    assert_eq!(probe.ready_count(&held_queue).await, 3);

    // A create for the tripped account still runs.
    probe.publish_job(VendorKey::Glance, &sample_job("cr-1", VendorKey::Glance, ACCOUNT, "NEW1")).await;
    next_of_type(&mut events, "user.created", "cr-1").await;
    assert_eq!(probe.ready_count(&held_queue).await, 3, "creates are never held");

    // The metric and /readyz say so, and the replica stays ready.
    let admin = worker.admin().await;
    wait_until_async(WAIT, "the trip is reported", || async {
        common::http_get(admin, "/readyz").await.contains("account acme (glance) TRIPPED")
    })
    .await;
    let ready = common::http_get(admin, "/readyz").await;
    assert!(
        ready.starts_with("HTTP/1.1 200") && ready.contains("ready: connected"),
        "a trip keeps the replica ready: {ready}"
    );
    wait_until_async(WAIT, "the metrics count the held jobs and the tripped account", || async {
        let metrics = common::http_get(admin, "/metrics").await;
        metrics.contains("provisioner_jobs_held_total{vendor=\"glance\"} 3")
            && metrics.contains("provisioner_safeguard_tripped{vendor=\"glance\"} 1")
    })
    .await;

    worker.signal("-TERM");
    worker.wait_exit(WAIT).await;
    probe.teardown().await;
}

#[tokio::test]
async fn approved_jobs_run_uncounted_and_rejected_ones_are_dropped_with_the_reason() {
    let (mut settings, _vendors) = setup(1).await;
    // With the ledger: the history must record the operator's reasons.
    settings.ledger.enabled = true;
    let probe = Probe::new(&settings).await;
    let mut events = probe.observe_all_events().await;
    let mut worker = WorkerProcess::start(&settings);
    worker.admin_when_consuming().await;
    let held_queue = settings.topology.held_queue(ACCOUNT);
    let dir = config_dir(&settings);

    publish_removal(&probe, "ok-1", "delete_user").await;
    // Jobs run concurrently: the one that passes must be decided before the ones to hold.
    next_of_type(&mut events, "user.", "ok-1").await;
    for id in ["h-1", "h-2", "h-3"] {
        publish_removal(&probe, id, "delete_user").await;
        next_of_type(&mut events, "job.held", id).await;
    }

    // A dry run changes nothing.
    let dry =
        cli(&settings, &dir, &["held", "approve", "--job-id", "h-1", "--reason", "checked", "--dry-run", "--json"]);
    assert_eq!(json_lines(&dry)[0]["action"], "would approve");
    assert_eq!(probe.ready_count(&held_queue).await, 3);
    let listed = cli(&settings, &dir, &["held", "list", "--json"]);
    let ids: Vec<_> = json_lines(&listed).iter().map(|l| l["job_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["h-1", "h-2", "h-3"], "listed in order, nothing removed");
    assert_eq!(probe.ready_count(&held_queue).await, 3);

    // --reason is required.
    let no_reason = cli_command(&settings, &dir, &["held", "approve", "--job-id", "h-1"]).output().unwrap();
    assert!(!no_reason.status.success());

    // Approve one: it runs (reaching the adapter, past the safeguard), uncounted, not held again.
    cli(&settings, &dir, &["held", "approve", "--job-id", "h-1", "--reason", "HR confirmed the layoff"]);
    let approved = next_of_type(&mut events, "job.approved", "h-1").await;
    assert_eq!(approved["data"]["reason"], "HR confirmed the layoff");
    assert_eq!(approved["data"]["by"], "test-operator");
    let outcome = next_of_type(&mut events, "user.", "h-1").await;
    assert!(!outcome["type"].as_str().unwrap().contains("held"), "{outcome}");
    assert_eq!(probe.ready_count(&held_queue).await, 2, "h-1 left and was not held again");

    // Reject the rest: dropped, recorded as rejected with the reason, never a failure.
    let out = cli(&settings, &dir, &["held", "reject", "--account", ACCOUNT, "--reason", "HR feed bug", "--json"]);
    assert_eq!(json_lines(&out).len(), 2);
    for id in ["h-2", "h-3"] {
        let e = next_of_type(&mut events, "job.rejected", id).await;
        assert_eq!(e["data"]["reason"], "HR feed bug");
    }
    assert_eq!(probe.ready_count(&held_queue).await, 0);

    // The ledger's history of each job tells what the operator did, and why.
    for (id, step, reason) in [("h-1", "approved", "HR confirmed the layoff"), ("h-2", "rejected", "HR feed bug")] {
        wait_until_async(WAIT, &format!("the history of {id} records {step}"), || async {
            let out = cli_command(&settings, &dir, &["history", id, "--json"]).output().unwrap();
            let Ok(h) = serde_json::from_slice::<Value>(&out.stdout) else { return false };
            let entries = h["entries"].as_array().cloned().unwrap_or_default();
            let has = |kind: &str| entries.iter().any(|e| e["kind"] == kind);
            has("held") && entries.iter().any(|e| e["kind"] == step && e["detail"]["reason"] == reason)
        })
        .await;
    }
    let out = cli_command(&settings, &dir, &["history", "h-2", "--json"]).output().unwrap();
    let h: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        h["entries"].as_array().unwrap().iter().all(|e| e["kind"] != "failed" && e["kind"] != "dead_lettered"),
        "a rejection is not a failure: {h}"
    );

    // The held queue is empty: the trip clears (after its grace) and a fresh window starts.
    let admin = worker.admin().await;
    wait_until_async(Duration::from_secs(60), "the trip clears", || async {
        !common::http_get(admin, "/readyz").await.contains("TRIPPED")
    })
    .await;
    publish_removal(&probe, "ok-2", "delete_user").await;
    next_of_type(&mut events, "user.", "ok-2").await;
    assert_eq!(probe.ready_count(&held_queue).await, 0);

    worker.signal("-TERM");
    worker.wait_exit(WAIT).await;
    probe.teardown().await;
}

/// A held job as the pipeline parks it.
fn held_message(settings: &Settings, job_id: &str) -> Outbound {
    let mut headers = Headers::new();
    h::set_text(&mut headers, h::HELD_ACCOUNT, ACCOUNT);
    h::set_text(&mut headers, h::HELD_REASON, "test");
    h::set_text(&mut headers, h::HELD_AT, h::timestamp(chrono::Utc::now()));
    h::set_text(&mut headers, h::ORIGINAL_ROUTING_KEY, "delete_user.glance");
    h::set_text(&mut headers, h::JOB_ID, job_id);
    Outbound {
        kind: OutboundKind::Held,
        exchange: String::new(),
        routing_key: settings.topology.held_queue(ACCOUNT),
        body: removal(job_id, "delete_user").to_string().into_bytes(),
        message_id: Some(job_id.to_owned()),
        content_type: Some("application/json".into()),
        timestamp: None,
        headers,
    }
}

#[tokio::test]
async fn an_approve_killed_while_releasing_loses_and_duplicates_nothing() {
    let (mut settings, _vendors) = setup(1).await;
    // Approvals are recorded in the ledger, where the worker checks them.
    settings.ledger.enabled = true;
    let probe = Probe::new(&settings).await;
    let n = 300;
    let ids: Vec<String> = (0..n).map(|i| format!("k-{i:03}")).collect();
    probe.publish_many(ids.iter().map(|id| held_message(&settings, id)).collect()).await;
    let held_queue = settings.topology.held_queue(ACCOUNT);
    let job_queue = settings.topology.job_queue(VendorKey::Glance);
    assert_eq!(probe.ready_count(&held_queue).await, n);

    let dir = config_dir(&settings);
    let mut child =
        cli_command(&settings, &dir, &["held", "approve", "--reason", "go"]).stdout(Stdio::null()).spawn().unwrap();
    // Kill it once some, not all, jobs were released.
    wait_until_async(WAIT, "the approve releases some jobs", || async { probe.ready_count(&job_queue).await >= 10 })
        .await;
    child.kill().unwrap();
    child.wait().unwrap();

    let released = probe.drain_ids(&job_queue).await;
    assert!(!released.is_empty() && released.len() < n as usize, "killed halfway: {} released", released.len());
    // The broker hands the killed walk's jobs back: every job not released is still held,
    // with the marker the killed command left.
    let left = n - released.len() as u32;
    wait_until_async(WAIT, "the rest is held again", || async { probe.ready_count(&held_queue).await == left + 1 })
        .await;

    // Someone's junk in the held queue (the default exchange is open to every client).
    let junk = held_message(&settings, "junk");
    probe.publish_many(vec![Outbound { headers: Headers::new(), body: b"not a job".to_vec(), ..junk }]).await;
    // Run to the end, an approve releases the rest, removes the dead marker and refuses the junk.
    let out = cli_command(&settings, &dir, &["held", "approve", "--reason", "go", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = json_lines(&out);
    assert_eq!(lines.iter().filter(|l| l["action"] == "approved").count(), left as usize);
    assert!(lines.iter().any(|l| l["action"].as_str().unwrap().starts_with("refused")), "{lines:?}");
    let rest = probe.drain_ids(&job_queue).await;
    let mut all: Vec<String> = released.iter().chain(&rest).cloned().collect();
    all.sort();
    assert_eq!(all, ids, "every job released exactly once");
    assert_eq!(probe.drain_ids(&held_queue).await, ["junk"], "only the junk stays held; no marker is left");
    probe.teardown().await;
}

#[tokio::test]
async fn a_restarted_worker_keeps_the_trip_while_jobs_are_held() {
    let (settings, _vendors) = setup(5).await;
    let probe = Probe::new(&settings).await;
    // Held by an earlier run of the worker.
    probe.publish_many(vec![held_message(&settings, "old-1")]).await;
    let mut events = probe.observe_all_events().await;
    let mut worker = WorkerProcess::start(&settings);
    worker.admin_when_consuming().await;

    // The first removal since the start, well under the threshold, is held all the same.
    publish_removal(&probe, "new-1", "suspend_user").await;
    let held = next_of_type(&mut events, "job.held", "new-1").await;
    assert!(held["data"]["reason"].as_str().unwrap().contains("tripped"), "{held}");
    assert_eq!(probe.ready_count(&settings.topology.held_queue(ACCOUNT)).await, 2);

    worker.signal("-TERM");
    worker.wait_exit(WAIT).await;
    probe.teardown().await;
}
