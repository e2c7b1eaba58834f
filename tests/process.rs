//! The `provisioner` binary as an operator runs it: schema, validate, config errors, and
//! the worker process under SIGTERM and SIGKILL against a real RabbitMQ.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{jobs_in_flight, settings_with, wait_until, Probe, WorkerProcess};
use provisioner::config::SecretSource;
use provisioner::contract::VendorKey;
use provisioner::pipeline::sample_job;
use provisioner::sandbox::Faults;

const BIN: &str = env!("CARGO_BIN_EXE_provisioner");
const WAIT: Duration = Duration::from_secs(20);

fn provisioner(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).env_remove("PROVISIONER_ENV").output().expect("binary runs")
}

#[test]
fn schema_prints_the_job_schema() {
    let out = provisioner(&["schema"]);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("schema is JSON");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["allOf"].as_array().map(Vec::len), Some(15), "one branch per vendor and kind");
    assert_eq!(schema["$defs"]["GlanceUser"]["properties"]["UserPW"]["maxLength"], 49);
    // An update may change what the vendor's update takes; a suspend names the user only.
    assert_eq!(schema["$defs"]["GlanceUserUpdate"]["required"], serde_json::json!(["PartnerUserID"]));
    assert!(schema["$defs"]["GlanceUserUpdate"]["properties"].get("AudioProvider").is_none());
    assert_eq!(schema["$defs"]["NetsapiensUserRef"]["required"], serde_json::json!(["user"]));
    assert!(schema["$defs"]["NetsapiensUserRef"]["properties"].get("name-first-name").is_none());
}

#[test]
fn validate_exit_codes_and_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let good = sample_job("ok-1", VendorKey::Glance, "acme", "EMP-1");
    let mut bad = sample_job("bad-1", VendorKey::Netsapiens, "acme", "1000");
    bad["user"]["user_password"] = serde_json::json!("pw");
    bad["user"].as_object_mut().unwrap().remove("name-last-name");
    let all_good = dir.path().join("good.ndjson");
    std::fs::write(&all_good, format!("{good}\n{good}\n")).unwrap();
    let mixed = dir.path().join("mixed.json");
    std::fs::write(&mixed, serde_json::to_string(&vec![good.clone(), bad]).unwrap()).unwrap();

    let out = provisioner(&["validate", all_good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));

    let out = provisioner(&["validate", "--json", mixed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], serde_json::json!({"index": 0, "job_id": "ok-1", "valid": true, "errors": []}));
    assert_eq!(lines[1]["valid"], false);
    let fields: Vec<&str> =
        lines[1]["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["user.user_password", "user.name-last-name"]);

    let out = provisioner(&["validate", dir.path().join("missing.json").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn validate_with_config_checks_that_the_account_exists() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("default.toml"), "[accounts.acme]\nvendor = \"glance\"\n").unwrap();
    let jobs = dir.path().join("jobs.ndjson");
    let known = sample_job("a", VendorKey::Glance, "acme", "EMP-1");
    let unknown = sample_job("b", VendorKey::Glance, "nobody", "EMP-2");
    let wrong_vendor = sample_job("c", VendorKey::Netsapiens, "acme", "1000");
    std::fs::write(&jobs, format!("{known}\n{unknown}\n{wrong_vendor}\n")).unwrap();
    let out = provisioner(&["validate", "--json", "--config", dir.path().to_str().unwrap(), jobs.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["valid"], true);
    assert!(lines[1]["errors"][0]["message"].as_str().unwrap().contains("no account named \"nobody\""));
    assert!(lines[2]["errors"][0]["message"].as_str().unwrap().contains("is a glance account"));
}

#[test]
fn bad_config_is_refused_with_a_message_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("default.toml"), "[worker]\ndrain_deadline = \"soon\"\n").unwrap();
    let out = provisioner(&["run", "--config", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("worker.drain_deadline"), "{err}");

    std::fs::write(
        dir.path().join("default.toml"),
        "[accounts.acme]\nvendor = \"glance\"\nsettings = { PartnerLogin = \"admin.acme.glance.net\" }\n\
         credentials = { PartnerPW = \"env:PROVISIONER_TEST_UNSET_SECRET\" }\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["run", "--config", dir.path().to_str().unwrap()])
        .env_remove("PROVISIONER_TEST_UNSET_SECRET")
        .env_remove("PROVISIONER_ENV")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("accounts.acme.credentials.PartnerPW") && err.contains("PROVISIONER_TEST_UNSET_SECRET"),
        "{err}"
    );

    let out = Command::new(BIN)
        .args(["run", "--config", dir.path().to_str().unwrap()])
        .env("PROVISIONER__VENDORS__GLANCE__CONCURRENCY", "0")
        .env_remove("PROVISIONER_ENV")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("vendors.glance.concurrency"));
}

#[tokio::test]
async fn sigterm_drains_the_jobs_in_flight_and_exits_zero() {
    let slow = Faults { latency: Duration::from_millis(1500), ..Faults::default() };
    let (mut settings, _vendors) = settings_with(&[("acme", VendorKey::Glance)], slow).await;
    // Five calls at the vendor at once (Glance accounts default to one): a job still waiting
    // for its account at SIGTERM is requeued instead, which is not what this test is about.
    settings.accounts.get_mut("acme").unwrap().concurrency = Some(5);
    let probe = Probe::new(&settings).await;
    let mut events = probe.observe_events().await;
    let mut worker = WorkerProcess::start(&settings);
    let admin = worker.admin().await;
    wait_until(WAIT, "the worker is consuming", || worker.logged("connected and consuming")).await;

    for i in 0..5 {
        probe
            .publish_job(
                VendorKey::Glance,
                &sample_job(&format!("drain-{i}"), VendorKey::Glance, "acme", &format!("E{i}")),
            )
            .await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while jobs_in_flight(admin).await < 5 {
        assert!(tokio::time::Instant::now() < deadline, "jobs never went in flight:\n{}", worker.all_logs());
    }
    worker.signal("-TERM");
    let status = worker.wait_exit(WAIT).await;
    assert!(status.success(), "exit status {status:?}:\n{}", worker.all_logs());
    assert!(worker.logged("drained"), "{}", worker.all_logs());

    // Every job in flight at SIGTERM finished and was acked before the process left.
    let mut subjects: Vec<String> = Vec::new();
    for _ in 0..5 {
        let e = events.next_json(WAIT, "an event of a drained job").await;
        assert_eq!(e["type"], "provisioning.user.created");
        subjects.push(e["subject"].as_str().unwrap().to_owned());
    }
    subjects.sort();
    assert_eq!(subjects, (0..5).map(|i| format!("drain-{i}")).collect::<Vec<_>>());
    assert_eq!(probe.ready_count(&settings.topology.job_queue(VendorKey::Glance)).await, 0);
    probe.teardown().await;
}

#[tokio::test]
async fn a_worker_killed_after_the_vendor_created_the_user_yields_existing_not_a_duplicate() {
    // The vendor creates the user at once but answers only 30s later: the worker is killed
    // while it waits, the worst moment, since the user exists and nothing was acked.
    let slow_answer = Faults { response_delay: Duration::from_secs(30), ..Faults::default() };
    let (settings, vendors) = settings_with(&[("acme", VendorKey::Clienttoolbox)], slow_answer).await;
    let probe = Probe::new(&settings).await;
    let mut events = probe.observe_events().await;
    let mut first = WorkerProcess::start(&settings);
    wait_until(WAIT, "the worker is consuming", || first.logged("connected and consuming")).await;

    probe.publish_job(VendorKey::Clienttoolbox, &sample_job("crash-1", VendorKey::Clienttoolbox, "acme", "jdoe")).await;
    wait_until(WAIT, "the vendor created the user", || vendors.creations(VendorKey::Clienttoolbox, "jdoe") == 1).await;
    first.signal("-KILL");
    first.wait_exit(WAIT).await;
    vendors.sandboxes.faults.set(Faults::default());

    // Nothing was acked, so the broker hands the job to the next worker, which must find
    // the user instead of creating it again.
    let mut second = WorkerProcess::start(&settings);
    let event = events.next_json(Duration::from_secs(30), "the event after redelivery").await;
    assert_eq!(event["subject"], "crash-1");
    assert_eq!(event["type"], "provisioning.user.existing", "{event}");
    assert_eq!(vendors.creations(VendorKey::Clienttoolbox, "jdoe"), 1, "created exactly once");
    second.signal("-TERM");
    assert!(second.wait_exit(WAIT).await.success());
    events.assert_quiet(Duration::from_millis(300)).await;
    probe.teardown().await;
}

#[tokio::test]
async fn passwords_and_pins_never_reach_the_logs_even_at_debug_level() {
    let (mut settings, _vendors) = settings_with(&[("acme", VendorKey::Clienttoolbox)], Faults::default()).await;
    // An account whose password was rotated at the vendor: every call fails as `auth`.
    let mut down = settings.accounts["acme"].clone();
    down.credentials.insert("user_password".into(), SecretSource::Value("Rotated-away-pw-4477".to_owned().into()));
    settings.accounts.insert("down".into(), down);
    settings.log.level = "debug".into();
    let probe = Probe::new(&settings).await;
    let mut events = probe.observe_events().await;
    let mut worker = WorkerProcess::start(&settings);
    wait_until(WAIT, "the worker is consuming", || worker.logged("connected and consuming")).await;

    let mut ok = sample_job("secret-1", VendorKey::Clienttoolbox, "acme", "jdoe");
    ok["user"]["user_new_password"] = serde_json::json!("Pa55-very-secret");
    ok["user"]["user_PIN"] = serde_json::json!("918273");
    let mut failing = ok.clone();
    failing["job_id"] = serde_json::json!("secret-2");
    failing["account"] = serde_json::json!("down");
    let mut invalid = ok.clone();
    invalid["job_id"] = serde_json::json!("secret-3");
    invalid["user"]["user_password"] = serde_json::json!("Caller-pw-9911");
    for job in [&ok, &failing, &invalid] {
        probe.publish_job(VendorKey::Clienttoolbox, job).await;
    }
    let mut seen = String::new();
    for _ in 0..3 {
        seen.push_str(&events.next_json(WAIT, "an event").await.to_string());
    }
    worker.signal("-TERM");
    assert!(worker.wait_exit(WAIT).await.success());
    let logs = worker.all_logs();
    assert!(logs.contains("secret-3"), "the logs should mention the jobs at all:\n{logs}");
    let sandbox_password = provisioner::vendors::clienttoolbox::sandbox::SANDBOX_PASSWORD;
    for secret in ["Pa55-very-secret", "918273", "Caller-pw-9911", "Rotated-away-pw-4477", sandbox_password] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
        assert!(!seen.contains(secret), "{secret} leaked into an event");
    }
    probe.teardown().await;
}

#[test]
fn the_demo_runs_with_zero_setup() {
    let out = provisioner(&["demo", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let counts: serde_json::Map<String, serde_json::Value> = summary
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "whois" && *k != "story")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        serde_json::Value::Object(counts),
        serde_json::json!({"jobs": 12, "created": 4, "existing": 1, "failed": 6, "dead_lettered": 7})
    );
    assert_eq!(summary["whois"][0]["links"][0]["person"]["employee_id"], "000731", "{summary}");
    // The story: a hire, a surname change, a leave and a rehire at all three vendors, then a
    // mass leave at Glance of which the safeguard lets 5 removals in 10 minutes through,
    // Zoë's leave among them.
    let acts: Vec<(serde_json::Value, u64)> = summary["story"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["outcomes"].clone(), a["held"].as_u64().unwrap()))
        .collect();
    use serde_json::json;
    assert_eq!(
        acts,
        [
            (json!({"created": 3}), 0),
            (json!({"updated": 3}), 0),
            (json!({"suspended": 3}), 0),
            (json!({"restored": 3}), 0),
            (json!({"created": 8}), 0),
            (json!({"suspended": 4}), 4),
        ],
        "{summary}"
    );
    assert!(summary["story"][1]["notes"][0].as_str().unwrap().contains("never renamed"), "{summary}");
}
