//! `provisioner dlq` and `provisioner publish`, run as an operator runs them, against a real
//! RabbitMQ with a topology of their own.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{child_config, dead_letter, Probe};
use provisioner::config::Settings;
use provisioner::contract::VendorKey;
use provisioner::pipeline::sample_job;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_provisioner");

/// Settings without a ledger: these tests are about the walk of the queue itself
/// (`tests/ledger.rs` covers `dlq list` and `stats` answered from the ledger's index).
fn test_settings() -> Settings {
    let mut s = common::test_settings();
    s.ledger.enabled = false;
    s
}

/// A config directory for the CLI, pointing at the test's topology.
fn config_dir(settings: &Settings) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("default.toml"), child_config(settings).0).unwrap();
    dir
}

fn cli(dir: &tempfile::TempDir, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--config", dir.path().to_str().unwrap()])
        .env_remove("PROVISIONER_ENV")
        .env("USER", "test-operator")
        .output()
        .expect("binary runs")
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Seeds the DLQ: `(job_id, vendor, reason)` each.
async fn seed(probe: &Probe, settings: &Settings, items: &[(&str, VendorKey, &str)]) {
    let msgs: Vec<_> = items
        .iter()
        .map(|(id, vendor, reason)| dead_letter(settings, &sample_job(id, *vendor, "acme", &format!("ID{id}")), reason))
        .collect();
    // One by one keeps the queue order equal to `items`.
    for m in msgs {
        probe.publish_many(vec![m]).await;
    }
}

#[tokio::test]
async fn a_filtered_replay_moves_exactly_the_matching_messages_and_keeps_the_rest_in_order() {
    let settings = test_settings();
    let probe = Probe::new(&settings).await;
    seed(
        &probe,
        &settings,
        &[
            ("a1", VendorKey::Glance, "auth"),
            ("b1", VendorKey::Netsapiens, "auth"),
            ("a2", VendorKey::Glance, "rejected"),
            ("a3", VendorKey::Glance, "auth"),
            ("b2", VendorKey::Clienttoolbox, "unavailable"),
        ],
    )
    .await;
    let dir = config_dir(&settings);

    let out = cli(
        &dir,
        &["dlq", "replay", "--vendor", "glance", "--class", "auth", "--reason", "password rotated", "--json"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = lines(&out);
    assert_eq!(report.last().unwrap(), &json!({"moved": 2, "would_move": 0, "refused": 0}));

    let glance = settings.topology.job_queue(VendorKey::Glance);
    let replayed = {
        use lapin::options::BasicGetOptions;
        let m =
            probe.channel.basic_get(glance.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap().unwrap();
        provisioner::transport::rabbitmq::inbound(&m.delivery)
    };
    use provisioner::transport::headers as h;
    assert_eq!(h::int(&replayed.headers, "provisioner-replay-count"), Some(1));
    assert_eq!(h::int(&replayed.headers, h::ATTEMPTS), None, "a fresh retry budget");
    let audit: Value = serde_json::from_str(h::text(&replayed.headers, "provisioner-replay-audit").unwrap()).unwrap();
    assert_eq!((audit["by"].as_str(), audit["reason"].as_str()), (Some("test-operator"), Some("password rotated")));
    assert_eq!(replayed.message_id.as_deref(), Some("a1"));

    assert_eq!(probe.drain_ids(&glance).await, ["a3"]);
    assert_eq!(probe.drain_ids(&settings.topology.dead_queue).await, ["b1", "a2", "b2"], "the rest stay, in order");
    probe.teardown().await;
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let settings = test_settings();
    let probe = Probe::new(&settings).await;
    seed(&probe, &settings, &[("d1", VendorKey::Glance, "auth"), ("d2", VendorKey::Glance, "rejected")]).await;
    let dir = config_dir(&settings);
    let out = cli(&dir, &["dlq", "replay", "--dry-run"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("d1") && text.contains("would replay") && text.contains("2 would be replayed"), "{text}");
    assert_eq!(probe.ready_count(&settings.topology.job_queue(VendorKey::Glance)).await, 0);
    assert_eq!(probe.drain_ids(&settings.topology.dead_queue).await, ["d1", "d2"]);
    probe.teardown().await;
}

#[tokio::test]
async fn an_edited_replay_is_revalidated_and_an_invalid_patch_leaves_the_message_put() {
    let settings = test_settings();
    let probe = Probe::new(&settings).await;
    seed(&probe, &settings, &[("e1", VendorKey::Glance, "rejected")]).await;
    let dir = config_dir(&settings);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"user": {"UserAddress": null, "Nickname": "x"}}"#).unwrap();
    let out = cli(&dir, &["dlq", "replay", "--edit", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "a refused edit is reported as a failure");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("refused") && text.contains("user.Nickname"), "{text}");
    assert_eq!(probe.ready_count(&settings.topology.dead_queue).await, 1, "the message stays put");

    let good = dir.path().join("good.json");
    std::fs::write(&good, r#"{"user": {"UserFirst": "Janet"}}"#).unwrap();
    let out = cli(&dir, &["dlq", "replay", "--edit", good.to_str().unwrap(), "--reason", "fix first name"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let glance = settings.topology.job_queue(VendorKey::Glance);
    use lapin::options::BasicGetOptions;
    let m = probe.channel.basic_get(glance.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap().unwrap();
    let job: Value = serde_json::from_slice(&m.delivery.data).unwrap();
    assert_eq!(job["user"]["UserFirst"], "Janet");
    let audit = provisioner::transport::rabbitmq::inbound(&m.delivery);
    let audit: Value = serde_json::from_str(
        provisioner::transport::headers::text(&audit.headers, "provisioner-replay-audit").unwrap(),
    )
    .unwrap();
    assert_eq!(audit["patch"], json!({"user": {"UserFirst": "Janet"}}));
    probe.teardown().await;
}

#[tokio::test]
async fn an_edit_patch_can_come_from_standard_input() {
    let settings = test_settings();
    let probe = Probe::new(&settings).await;
    seed(&probe, &settings, &[("s1", VendorKey::Glance, "rejected"), ("s2", VendorKey::Glance, "auth")]).await;
    let dir = config_dir(&settings);
    let mut child = Command::new(BIN)
        .args([
            "dlq",
            "replay",
            "--class",
            "rejected",
            "--edit",
            "-",
            "--json",
            "--config",
            dir.path().to_str().unwrap(),
        ])
        .env_remove("PROVISIONER_ENV")
        .env("USER", "test-operator")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(br#"{"user": {"UserFirst": "Stdin"}}"#).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let glance = settings.topology.job_queue(VendorKey::Glance);
    use lapin::options::BasicGetOptions;
    let m = probe.channel.basic_get(glance.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap().unwrap();
    let job: Value = serde_json::from_slice(&m.delivery.data).unwrap();
    assert_eq!((job["job_id"].as_str(), job["user"]["UserFirst"].as_str()), (Some("s1"), Some("Stdin")));
    assert_eq!(probe.ready_count(&glance).await, 0, "only the --class rejected one moved");
    assert_eq!(probe.ready_count(&settings.topology.dead_queue).await, 1, "the auth one stays");

    // Standard input that is not JSON is refused before anything moves.
    let mut child = Command::new(BIN)
        .args(["dlq", "replay", "--edit", "-", "--config", dir.path().to_str().unwrap()])
        .env_remove("PROVISIONER_ENV")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"not json").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the patch - is not JSON"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(probe.ready_count(&settings.topology.dead_queue).await, 1);
    probe.teardown().await;
}

#[tokio::test]
async fn purge_refuses_without_yes_and_removes_only_the_matching_with_it() {
    let settings = test_settings();
    let probe = Probe::new(&settings).await;
    seed(&probe, &settings, &[("p1", VendorKey::Glance, "invalid"), ("p2", VendorKey::Glance, "auth")]).await;
    let dir = config_dir(&settings);
    let out = cli(&dir, &["dlq", "purge", "--class", "invalid"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert_eq!(probe.ready_count(&settings.topology.dead_queue).await, 2);

    let out = cli(&dir, &["dlq", "purge", "--class", "invalid", "--yes"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 1"));
    assert_eq!(probe.drain_ids(&settings.topology.dead_queue).await, ["p2"]);
    probe.teardown().await;
}

#[tokio::test]
async fn list_stats_and_show_redact_secrets() {
    let settings = test_settings();
    let probe = Probe::new(&settings).await;
    let mut job = sample_job("s1", VendorKey::Clienttoolbox, "acme", "jdoe");
    job["user"]["user_new_password"] = json!("Sup3r-secret!");
    job["user"]["user_PIN"] = json!("55443");
    probe.publish_many(vec![dead_letter(&settings, &job, "rejected")]).await;
    seed(&probe, &settings, &[("s2", VendorKey::Glance, "auth"), ("s3", VendorKey::Glance, "auth")]).await;
    let dir = config_dir(&settings);

    let list = cli(&dir, &["dlq", "list"]);
    let show = cli(&dir, &["dlq", "show", "s1"]);
    let listed = cli(&dir, &["dlq", "list", "--json", "--class", "auth"]);
    let stats = cli(&dir, &["dlq", "stats", "--json"]);
    for out in [&list, &show, &listed, &stats] {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!all.contains("Sup3r-secret!") && !all.contains("55443"), "a secret leaked:\n{all}");
    }
    let shown: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown["job"]["user"]["user_new_password"], "***");
    assert_eq!(shown["job"]["user"]["user_name"], "jdoe");
    assert_eq!(shown["dead_letter"]["reason"], "rejected");
    let ids: Vec<_> = lines(&listed).iter().map(|l| l["job_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["s2", "s3"]);
    let groups = lines(&stats);
    assert!(groups.contains(&json!({"vendor": "glance", "account": "acme", "class": "auth", "count": 2, "oldest": "2026-11-20T10:00:00Z"})), "{groups:?}");
    assert!(String::from_utf8_lossy(&list.stdout).contains("3 dead letter(s)"));
    // Looking is not taking: everything is still there, in order.
    assert_eq!(probe.drain_ids(&settings.topology.dead_queue).await, ["s1", "s2", "s3"]);
    probe.teardown().await;
}

#[tokio::test]
async fn a_replay_killed_halfway_loses_and_duplicates_nothing() {
    let settings = test_settings();
    let probe = Probe::new(&settings).await;
    let ids: Vec<String> = (0..60).map(|i| format!("k{i:02}")).collect();
    let msgs = ids
        .iter()
        .map(|id| dead_letter(&settings, &sample_job(id, VendorKey::Glance, "acme", id), "unavailable"))
        .collect();
    probe.publish_many(msgs).await;
    let dir = config_dir(&settings);
    let mut child = Command::new(BIN)
        .args(["dlq", "replay", "--rate", "40", "--config", dir.path().to_str().unwrap()])
        .env_remove("PROVISIONER_ENV")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let glance = settings.topology.job_queue(VendorKey::Glance);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while probe.ready_count(&glance).await < 10 {
        assert!(tokio::time::Instant::now() < deadline, "the replay never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let moved = probe.drain_ids(&glance).await;
    let stayed = probe.drain_ids(&settings.topology.dead_queue).await;
    assert!(moved.len() >= 10 && moved.len() < 60, "killed halfway: {} moved", moved.len());
    let mut all: Vec<String> = moved.iter().chain(stayed.iter()).cloned().collect();
    all.sort();
    assert_eq!(all, ids, "every job is in exactly one of the two queues");
    probe.teardown().await;
}

#[tokio::test]
async fn publish_validates_each_job_and_publishes_the_valid_ones_with_confirms() {
    let (settings, _vendors) =
        common::settings_with(&[("acme", VendorKey::Glance)], provisioner::sandbox::Faults::default()).await;
    let probe = Probe::new(&settings).await;
    let dir = config_dir(&settings);
    let good = sample_job("pub-1", VendorKey::Glance, "acme", "E1");
    let mut bad = sample_job("pub-2", VendorKey::Glance, "acme", "E2");
    bad["user"]["PartnerPW"] = json!("nope");
    let file = dir.path().join("jobs.ndjson");
    std::fs::write(&file, format!("{good}\n{bad}\n")).unwrap();
    let out = cli(&dir, &["publish", file.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "one job was invalid");
    let report = lines(&out);
    assert_eq!(report[0]["status"], "published");
    assert_eq!(report[1]["status"], "invalid");
    assert_eq!(report[1]["errors"][0]["field"], "user.PartnerPW");
    assert_eq!(probe.drain_ids(&settings.topology.job_queue(VendorKey::Glance)).await, ["pub-1"]);
    probe.teardown().await;
}

/// Runs `dlq list --json` with its output discarded and returns its peak RSS in KiB, read
/// from `/proc` while it runs (VmHWM only grows, so the last reading is the peak so far).
async fn peak_rss_of_list(dir: &tempfile::TempDir) -> u64 {
    let mut child = Command::new(BIN)
        .args(["dlq", "list", "--json", "--config", dir.path().to_str().unwrap()])
        .env_remove("PROVISIONER_ENV")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        assert!(tokio::time::Instant::now() < deadline, "dlq list did not finish in 120s");
        if let Ok(status) = std::fs::read_to_string(&status_file) {
            if let Some(kib) = status.lines().find_map(|l| l.strip_prefix("VmHWM:")) {
                peak = peak.max(kib.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0));
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(child.wait().unwrap().success());
    assert!(peak > 0, "no RSS reading was taken");
    peak
}

#[tokio::test]
async fn listing_a_large_dlq_runs_in_bounded_memory() {
    let settings = test_settings();
    let probe = Probe::new(&settings).await;
    let dir = config_dir(&settings);
    let seed = |from: usize, to: usize| {
        (from..to)
            .map(|i| {
                dead_letter(
                    &settings,
                    &sample_job(&format!("m{i:06}"), VendorKey::Netsapiens, "acme", "1000"),
                    "unavailable",
                )
            })
            .collect::<Vec<_>>()
    };
    probe.publish_many(seed(0, 1_000)).await;
    let small = peak_rss_of_list(&dir).await;
    probe.publish_many(seed(1_000, 8_000)).await;
    let large = peak_rss_of_list(&dir).await;
    println!("dlq list peak RSS: {small} KiB for 1,000 messages, {large} KiB for 8,000");
    // Eight times the messages (~10 MiB as read) must not mean more memory: allow noise only.
    assert!(large < small + 3 * 1024, "peak RSS grew from {small} KiB to {large} KiB");
    assert_eq!(probe.ready_count(&settings.topology.dead_queue).await, 8_000, "listing took nothing");
    probe.teardown().await;
}
