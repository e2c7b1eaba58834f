//! A three-node RabbitMQ cluster (`scripts/rabbitmq-cluster`) loses the node leading the job
//! queues under the running worker process, and gets it back: 5,000 jobs, none without a
//! terminal event, no user created twice, the worker never exits; prints how long
//! consumption paused (also written to `target/cluster-summary.md`).
//!
//! Its own test binary: it stops and starts cluster nodes, never the local broker on 5672.

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use common::{test_settings, EventRecorder, Probe, TestVendors, WorkerProcess};
use provisioner::config::Settings;
use provisioner::contract::{Job, VendorKey};
use provisioner::pipeline::sample_job;
use provisioner::sandbox::Faults;
use provisioner::transport::{Headers, Outbound, OutboundKind};
use tokio::time::Instant;

const JOBS: usize = 5_000;
/// The leader is stopped once this many jobs have ended, so the stop meets a running backlog.
const STOP_AFTER: usize = 500;
/// And started again once this many more have ended on the surviving nodes.
const RESTART_AFTER: usize = 500;
/// Each vendor account's pace: 60 jobs/s in all, so that the backlog lasts through the stop
/// and the restart (each a graceful node shutdown or boot of about 20 s) on a fast machine too.
const ACCOUNT_RATE: &str = "20/s";
/// How long the backlog may take to end after the restart.
const SETTLE_WAIT: Duration = Duration::from_secs(300);
/// How long the worker may take to move to another node and consume again.
const FAILOVER_WAIT: Duration = Duration::from_secs(90);
const CLUSTER_PORTS: [u16; 3] = [5681, 5682, 5683];

fn node_url(port: u16) -> String {
    format!("amqp://guest:guest@127.0.0.1:{port}/%2f")
}

/// Runs `scripts/rabbitmq-cluster ARGS` and returns its stdout; panics with its stderr.
fn cluster(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/rabbitmq-cluster");
    let out = Command::new(script).args(args).output().expect("scripts/rabbitmq-cluster runs");
    assert!(
        out.status.success(),
        "scripts/rabbitmq-cluster {args:?} failed: {}\n\
         This test needs the three-node RabbitMQ cluster of scripts/rabbitmq-cluster (Debian's \
         rabbitmq-server, run as root or as the rabbitmq user); ./scripts/test brings it up.",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn cluster_async(args: &'static [&'static str]) -> String {
    tokio::task::spawn_blocking(move || cluster(args)).await.unwrap()
}

/// The node leading a quorum queue, e.g. `prov1@localhost`.
async fn leader(queue: &str) -> String {
    let queue = queue.to_owned();
    tokio::task::spawn_blocking(move || cluster(&["leader", &queue])).await.unwrap()
}

fn node_number(node: &str) -> &'static str {
    ["1", "2", "3"]
        .into_iter()
        .find(|n| node == format!("prov{n}@localhost"))
        .unwrap_or_else(|| panic!("{node} is not a node of scripts/rabbitmq-cluster"))
}

/// Settings that try the nodes in the listed order, so the worker is on the first one.
fn settings_on(base: &Settings, ports: &[u16]) -> Settings {
    let mut s = base.clone();
    s.amqp.urls = ports.iter().map(|p| node_url(*p)).collect();
    s.amqp.start_at = provisioner::config::StartAt::First;
    s
}

fn job_message(settings: &Settings, vendor: VendorKey, body: &serde_json::Value) -> Outbound {
    Outbound {
        kind: OutboundKind::Job,
        exchange: settings.topology.jobs_exchange.clone(),
        routing_key: Job::routing_key(vendor),
        body: body.to_string().into_bytes(),
        message_id: body["job_id"].as_str().map(str::to_owned),
        content_type: Some("application/json".into()),
        timestamp: Some(chrono::Utc::now().timestamp() as u64),
        headers: Headers::new(),
    }
}

fn identity(i: usize, vendor: VendorKey) -> String {
    match vendor {
        VendorKey::Glance => format!("EMP-{i:05}"),
        VendorKey::Netsapiens => format!("{}", 6_000_000 + i),
        VendorKey::Clienttoolbox => format!("cluster_{i}"),
    }
}

/// Distinct job ids that have a terminal event.
fn ended(recorder: &EventRecorder) -> usize {
    recorder.seen().iter().map(|e| e.job_id.as_str()).collect::<std::collections::HashSet<_>>().len()
}

/// Waits until `count` distinct jobs have ended, checking that the worker is still alive.
async fn wait_ended(recorder: &EventRecorder, worker: &mut WorkerProcess, count: usize, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    loop {
        if ended(recorder) >= count {
            return;
        }
        if let Some(status) = worker.exited() {
            panic!("the worker exited ({status}) while waiting until {what}:\n{}", worker.all_logs());
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting until {what} ({} of {count} jobs ended):\n{}",
            ended(recorder),
            worker.all_logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The longest time between two consecutive terminal events in `[from, to]`, and when it began.
fn longest_gap(times: &[Instant], from: Instant, to: Instant) -> (Duration, Option<Instant>) {
    let inside: Vec<Instant> = times.iter().copied().filter(|t| *t >= from && *t <= to).collect();
    let mut edges = vec![from];
    edges.extend(inside);
    edges.push(to);
    edges.windows(2).map(|w| (w[1] - w[0], Some(w[0]))).max_by_key(|(gap, _)| *gap).unwrap_or((Duration::ZERO, None))
}

/// From the worker's first "broker connection lost" to its next "connected and consuming",
/// by the log lines' own timestamps.
fn reconnect_time(logs: &str) -> Option<Duration> {
    let at = |line: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(line["timestamp"].as_str()?).ok().map(|t| t.with_timezone(&chrono::Utc))
    };
    let lines: Vec<serde_json::Value> = logs.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let lost = lines.iter().position(|l| l["message"] == "broker connection lost; reconnecting")?;
    let back = lines[lost..].iter().find(|l| l["message"] == "connected and consuming")?;
    (at(back)? - at(&lines[lost])?).to_std().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_loses_the_leading_node_without_losing_a_job() {
    let run_started = Instant::now();
    let cluster_up = Instant::now();
    cluster_async(&["up"]).await;
    let cluster_up = cluster_up.elapsed();

    let vendors = TestVendors::start(Faults::default()).await;
    let mut base = test_settings();
    for vendor in VendorKey::ALL {
        base.accounts.insert(format!("acme-{vendor}"), vendors.account(vendor));
        let v = base.vendors.get_mut(vendor);
        v.account_rate = ACCOUNT_RATE.parse().unwrap();
        v.account_concurrency = 16;
    }
    // A stuck consumer or an unanswered broker call is given up on sooner than in production,
    // so that either would be survived well within FAILOVER_WAIT; the summary counts both.
    base.amqp.consumer_stall_timeout = Duration::from_secs(10);
    base.amqp.setup_timeout = Duration::from_secs(10);
    // The worker knows every node, first to last.
    let settings = settings_on(&base, &CLUSTER_PORTS);

    // Declared from node 1, so node 1 leads the job queues (quorum queues start their leader
    // on the node the declaring client is connected to); the test then asks the cluster.
    let declarer = Probe::new(&settings_on(&base, &CLUSTER_PORTS[..1])).await;
    let queues: Vec<String> = VendorKey::ALL.iter().map(|v| settings.topology.job_queue(*v)).collect();
    let victim = leader(&queues[0]).await;
    for q in &queues[1..] {
        assert_eq!(leader(q).await, victim, "the job queues were declared from one node and share its leadership");
    }
    let _ = declarer.conn.close(200, "declared".into()).await;
    let victim_number = node_number(&victim);
    let survivors: Vec<u16> =
        CLUSTER_PORTS.iter().copied().filter(|p| format!("prov{}@localhost", p - 5680) != victim).collect();
    // The test's own connection (publishing, recording events) stays on a surviving node.
    let probe = Probe::new(&settings_on(&base, &survivors)).await;
    let recorder = EventRecorder::start(&probe).await;

    let mut expected: HashMap<String, (VendorKey, String)> = HashMap::new();
    let mut messages = Vec::with_capacity(JOBS);
    for i in 0..JOBS {
        let vendor = VendorKey::ALL[i % 3];
        let job_id = format!("cluster-{i:05}-{vendor}");
        let who = identity(i, vendor);
        messages.push(job_message(&settings, vendor, &sample_job(&job_id, vendor, &format!("acme-{vendor}"), &who)));
        expected.insert(job_id, (vendor, who));
    }
    let published = Instant::now();
    probe.publish_many(messages).await;
    let publish_time = published.elapsed();

    let mut worker = WorkerProcess::start(&settings);
    worker.admin_when_consuming().await;
    let consuming_from = Instant::now();
    wait_ended(&recorder, &mut worker, STOP_AFTER, FAILOVER_WAIT, "the worker is well into the backlog").await;

    // Stop the node leading the job queues, while the worker consumes from it.
    let connected_before = worker.all_logs().matches("connected and consuming").count();
    let stopped_at = Instant::now();
    let ended_at_stop = ended(&recorder);
    let stop = tokio::task::spawn_blocking(move || cluster(&["stop-node", victim_number]));
    stop.await.unwrap();
    let stop_took = stopped_at.elapsed();
    let new_leader = leader(&queues[0]).await;
    assert_ne!(new_leader, victim, "the job queues have a new leader once their leader is down");

    wait_ended(
        &recorder,
        &mut worker,
        ended_at_stop + RESTART_AFTER,
        FAILOVER_WAIT,
        "the worker consumes again from the surviving nodes",
    )
    .await;
    let reconnects = worker.all_logs().matches("connected and consuming").count() - connected_before;

    // Start it again: it rejoins the cluster as a follower, under a running worker.
    let restarted_at = Instant::now();
    let start = tokio::task::spawn_blocking(move || cluster(&["start-node", victim_number]));
    start.await.unwrap();
    let restart_took = restarted_at.elapsed();

    wait_ended(&recorder, &mut worker, JOBS, SETTLE_WAIT, "every job has a terminal event").await;
    let consumed_by = Instant::now();
    assert!(worker.exited().is_none(), "the worker exited:\n{}", worker.all_logs());
    worker.signal("-TERM");
    let status = worker.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "the worker must drain and exit 0, got {status:?}:\n{}", worker.all_logs());
    let seen = recorder.finish(&probe, Duration::from_secs(30)).await;
    let logs = worker.all_logs();

    // ---- What happened.
    let mut events: HashMap<&str, Vec<&str>> = HashMap::new();
    for e in &seen {
        events.entry(e.job_id.as_str()).or_default().push(e.outcome.as_str());
    }
    let without_event: Vec<&String> = expected.keys().filter(|id| !events.contains_key(id.as_str())).collect();
    let duplicate_users: u32 =
        expected.values().map(|(vendor, who)| vendors.creations(*vendor, who).saturating_sub(1)).sum();
    let never_created: Vec<&String> =
        expected.iter().filter(|(_, (vendor, who))| vendors.creations(*vendor, who) == 0).map(|(id, _)| id).collect();
    let not_ok: Vec<(&str, &Vec<&str>)> = events
        .iter()
        .filter(|(_, outcomes)| outcomes.iter().any(|o| *o != "created" && *o != "existing"))
        .map(|(id, o)| (*id, o))
        .collect();
    let repeated = events.values().filter(|o| o.len() > 1).count();
    let times: Vec<Instant> = seen.iter().map(|e| e.at).collect();
    let (pause, pause_from) = longest_gap(&times, stopped_at, restarted_at);
    assert!(
        restarted_at < consumed_by,
        "the backlog ended before the node was restarted: the restart met no running backlog"
    );
    let (restart_pause, _) = longest_gap(&times, restarted_at, consumed_by);
    let (steady_gap, _) = longest_gap(&times, consuming_from, stopped_at);
    let pause_began = pause_from.map_or(0.0, |t| t.saturating_duration_since(stopped_at).as_secs_f64());
    let unconfirmed = logs.lines().filter(|l| l.contains("publish not confirmed")).count();
    let cancelled = logs.lines().filter(|l| l.contains("the broker cancelled the consumer")).count();
    let stuck =
        logs.lines().filter(|l| l.contains("the consumer receives nothing while its queue has messages")).count();
    let timed_out = logs.lines().filter(|l| l.contains("(amqp.setup_timeout)")).count();
    let rate = (JOBS as f64) / consumed_by.duration_since(consuming_from).as_secs_f64();
    let reconnected_in = reconnect_time(&logs);

    let mut table = String::new();
    let mut row = |k: &str, v: String| writeln!(table, "| {k} | {v} |").unwrap();
    row("jobs published (backlog, before the worker starts)", format!("{JOBS} in {:.1} s", publish_time.as_secs_f64()));
    row(
        "cluster start (`scripts/rabbitmq-cluster up`, as this test found it)",
        format!("{:.1} s", cluster_up.as_secs_f64()),
    );
    row("node stopped", format!("{victim}, leader of the job queues, after {ended_at_stop} jobs ended"));
    row("its graceful shutdown took", format!("{:.1} s", stop_took.as_secs_f64()));
    row("new leader of the job queues", new_leader.clone());
    row(
        "**consumption pause** (longest time without a terminal event while the node was down)",
        format!("{:.2} s, beginning {pause_began:.2} s after the stop began", pause.as_secs_f64()),
    );
    row("longest time without a terminal event before the stop", format!("{:.2} s", steady_gap.as_secs_f64()));
    row("node restarted; it took", format!("{:.1} s", restart_took.as_secs_f64()));
    row("longest time without a terminal event after the restart", format!("{:.2} s", restart_pause.as_secs_f64()));
    row("worker reconnects (to a surviving node)", reconnects.to_string());
    row(
        "from the lost connection to consuming again (worker log)",
        reconnected_in.map_or("-".to_owned(), |d| format!("{:.2} s", d.as_secs_f64())),
    );
    row("consumer cancellations from the broker (consumed again)", cancelled.to_string());
    row("consumers found stuck by the watchdog (reconnected)", stuck.to_string());
    row("broker calls that went unanswered past amqp.setup_timeout", timed_out.to_string());
    row("publishes not confirmed (delivery requeued)", unconfirmed.to_string());
    row("terminal events", seen.len().to_string());
    row("jobs with a repeated terminal event (redelivered)", repeated.to_string());
    row("**jobs without a terminal event**", without_event.len().to_string());
    row("**duplicate users at the sandbox**", duplicate_users.to_string());
    row("worker exited before its SIGTERM", "no".to_owned());
    row("jobs/s over the whole run", format!("{rate:.0}"));
    row("wall time", format!("{:.1} s", run_started.elapsed().as_secs_f64()));
    let summary = format!("## Broker cluster failover\n\n| measure | value |\n| --- | ---: |\n{table}");
    eprintln!("\n{summary}");
    // Terminal events per second, with the stop and the restart marked: where the pauses are.
    let mut timeline = String::new();
    let seconds = consumed_by.duration_since(consuming_from).as_secs() + 1;
    for s in 0..seconds {
        let from = consuming_from + Duration::from_secs(s);
        let n = times.iter().filter(|t| **t >= from && **t < from + Duration::from_secs(1)).count();
        let mark =
            |at: Instant, what: &'static str| if at >= from && at < from + Duration::from_secs(1) { what } else { "" };
        let _ =
            writeln!(timeline, "{s:>4} s {n:>5} {}{}", mark(stopped_at, " <- stop"), mark(restarted_at, " <- restart"));
    }
    let target = std::path::Path::new(env!("CARGO_BIN_EXE_provisioner")).parent().and_then(|p| p.parent());
    if let Some(target) = target {
        std::fs::write(target.join("cluster-summary.md"), &summary).expect("the summary is written under target/");
        let _ = std::fs::write(target.join("cluster-timeline.txt"), &timeline);
        let _ = std::fs::write(target.join("cluster-worker.log"), &logs);
    }

    // ---- The invariants.
    assert!(
        without_event.is_empty(),
        "{} jobs never reached a terminal event, e.g. {:?}",
        without_event.len(),
        &without_event[..without_event.len().min(5)]
    );
    assert_eq!(duplicate_users, 0, "a user was created twice at the sandbox");
    assert!(
        never_created.is_empty(),
        "jobs ended but their user was never created: {:?}",
        &never_created[..5.min(never_created.len())]
    );
    assert!(not_ok.is_empty(), "jobs ended other than created/existing: {:?}", &not_ok[..5.min(not_ok.len())]);
    assert!(reconnects >= 1, "the worker never reconnected after its node stopped:\n{logs}");

    probe.teardown().await;
}
