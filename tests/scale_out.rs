//! Three worker processes (the real binary) share one sandbox account limited to 20 calls a
//! second through Redis: the sandbox sees the account's rate, not three times it; a SIGKILLed
//! replica's concurrency slots come back within the lease TTL; a 429 on one replica pauses
//! them all; a breaker opened by one is open on all. Then the same fleet on the local backend,
//! for the comparison (each replica keeps the whole rate).
//!
//! The windows are shortened to what proves each point (10 s of rate, not 30 s): the suite's
//! CI budget.

mod common;

use std::time::Duration;

use common::{http_get, settings_with, wait_until, Probe, TestVendors, WorkerProcess};
use provisioner::config::Settings;
use provisioner::contract::{Job, VendorKey};
use provisioner::pipeline::sample_job;
use provisioner::rate_limit::Backend;
use provisioner::sandbox::Faults;
use provisioner::transport::{Headers, Outbound, OutboundKind};
use tokio::time::Instant;

const REDIS: &str = "redis://127.0.0.1:6379/0";
const VENDOR: VendorKey = VendorKey::Netsapiens;
const ACCOUNT: &str = "fleet";
const RATE: u64 = 20;
const CAP: u64 = 4;
const LEASE_TTL: Duration = Duration::from_secs(2);
const WAIT: Duration = Duration::from_secs(30);

fn redis() -> redis::Connection {
    let hint = "this test needs a real Redis at 127.0.0.1:6379: start one with `redis-server --daemonize yes` \
                (./scripts/test does)";
    let client = redis::Client::open(REDIS).unwrap();
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(2)).expect(hint);
    let pong: String = redis::cmd("PING").query(&mut conn).expect(hint);
    assert_eq!(pong, "PONG", "{hint}");
    conn
}

async fn fleet_settings(backend: Backend) -> (Settings, TestVendors) {
    let (mut s, vendors) = settings_with(&[(ACCOUNT, VENDOR)], Faults::default()).await;
    let account = s.accounts.get_mut(ACCOUNT).unwrap();
    account.rate = Some(format!("{RATE}/s").parse().unwrap());
    account.concurrency = Some(CAP as u16);
    s.rate_limit.backend = backend;
    s.rate_limit.redis_url = Some(REDIS.into());
    s.rate_limit.redis_key_prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    s.rate_limit.lease_ttl = LEASE_TTL;
    // One failed call opens the breaker, so the test decides which replica opens it.
    s.circuit_breaker.consecutive_failures = 1;
    s.circuit_breaker.open_for = Duration::from_secs(5);
    s.circuit_breaker.max_open_for = Duration::from_secs(5);
    (s, vendors)
}

async fn publish_backlog(probe: &Probe, n: usize) {
    let msgs = (0..n)
        .map(|i| {
            let job = sample_job(&format!("fleet-{i}"), VENDOR, ACCOUNT, &format!("{}", 100_000 + i));
            Outbound {
                kind: OutboundKind::Job,
                exchange: probe.settings.topology.jobs_exchange.clone(),
                routing_key: Job::routing_key(VENDOR),
                body: job.to_string().into_bytes(),
                message_id: job["job_id"].as_str().map(str::to_owned),
                content_type: Some("application/json".into()),
                timestamp: None,
                headers: Headers::new(),
            }
        })
        .collect();
    probe.publish_many(msgs).await;
}

/// Users the sandbox created in a window of `window` that starts once creation is under way.
async fn users_per_second(vendors: &TestVendors, window: Duration) -> f64 {
    let users = || vendors.sandboxes.user_count(VENDOR) as u64;
    wait_until(WAIT, "the fleet creates users", || users() > RATE * 2).await;
    let (start, before) = (Instant::now(), users());
    // Measuring a rate takes a window of time; nothing here waits on a condition.
    tokio::time::sleep(window).await;
    (users() - before) as f64 / start.elapsed().as_secs_f64()
}

fn leases(conn: &mut redis::Connection, key: &str) -> Vec<String> {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(conn).unwrap();
    let now = secs * 1_000_000 + micros;
    redis::cmd("ZRANGEBYSCORE").arg(key).arg(now).arg("+inf").query(conn).unwrap()
}

/// How long the account's fleet-wide Retry-After pause has left, by Redis's clock.
fn paused_for(conn: &mut redis::Connection, key: &str) -> Option<Duration> {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(conn).unwrap();
    let now = secs * 1_000_000 + micros;
    let till: Option<u64> = redis::cmd("HGET").arg(key).arg("paused").query(conn).unwrap();
    till.filter(|&t| t > now).map(|t| Duration::from_micros(t - now))
}

async fn start_fleet(settings: &Settings) -> Vec<(WorkerProcess, std::net::SocketAddr)> {
    let mut fleet = Vec::new();
    for _ in 0..3 {
        let mut w = WorkerProcess::start(settings);
        let admin = w.admin_when_consuming().await;
        fleet.push((w, admin));
    }
    fleet
}

#[tokio::test]
async fn three_replicas_share_one_accounts_limits_through_redis_and_not_without() {
    let mut conn = redis();
    let (settings, vendors) = fleet_settings(Backend::Redis).await;
    let probe = Probe::new(&settings).await;
    // Events must be routable, or every job is requeued after its user was created.
    let _events = probe.observe_events().await;
    publish_backlog(&probe, 1500).await;
    let mut fleet = start_fleet(&settings).await;
    for (_, admin) in &fleet {
        let ready = http_get(*admin, "/readyz").await;
        assert!(ready.contains("limits: shared by every replica through Redis"), "{ready}");
        let metrics = http_get(*admin, "/metrics").await;
        assert!(metrics.contains("provisioner_limits_shared{backend=\"redis\"} 1"), "{metrics}");
    }

    // 1. The account's rate holds across the fleet.
    let window = Duration::from_secs(10);
    let rate = users_per_second(&vendors, window).await;
    eprintln!("scale-out: 3 replicas, redis backend: {rate:.1} users/s at the sandbox (account limit {RATE}/s)");
    // At most the rate, plus one burst and the calls in flight spread over the window.
    let ceiling = RATE as f64 + (RATE + CAP) as f64 / window.as_secs_f64();
    assert!(rate <= ceiling, "{rate:.1}/s exceeds the account's {RATE}/s across the fleet");
    assert!(rate >= RATE as f64 * 0.6, "{rate:.1}/s: the fleet should use most of the account's {RATE}/s");

    // 2. A SIGKILLed replica's slots come back within the lease TTL. Slow answers keep every
    // slot held.
    let key = format!("{}:{{{VENDOR}:{ACCOUNT}}}:leases", settings.rate_limit.redis_key_prefix);
    vendors.sandboxes.faults.set(Faults { latency: Duration::from_millis(700), ..Faults::default() });
    let (victim, _) = fleet.remove(0);
    let pid = format!("{}:", victim.pid());
    wait_until(WAIT, "the first replica holds a slot", || leases(&mut conn, &key).iter().any(|l| l.starts_with(&pid)))
        .await;
    victim.signal("-KILL");
    let killed = Instant::now();
    drop(victim);
    wait_until(LEASE_TTL + Duration::from_secs(3), "the live replicas hold every slot", || {
        let held = leases(&mut conn, &key);
        held.len() as u64 == CAP && !held.iter().any(|l| l.starts_with(&pid))
    })
    .await;
    let returned = killed.elapsed();
    eprintln!(
        "scale-out: a SIGKILLed replica's slots were all held by the others {returned:?} later (TTL {LEASE_TTL:?})"
    );
    assert!(returned <= LEASE_TTL + Duration::from_secs(1), "{returned:?}");
    vendors.sandboxes.faults.set(Faults::default());

    // 3. A 429 on one replica pauses every replica for its Retry-After. The pause counts from
    // when the throttled replica has written it to Redis: until then the others cannot know,
    // and how long the answer takes to get there depends on the machine's load, so it is
    // reported, and only bounded by the pause itself.
    let users = || vendors.sandboxes.user_count(VENDOR) as u64;
    let pace = format!("{}:{{{VENDOR}:{ACCOUNT}}}:pace", settings.rate_limit.redis_key_prefix);
    let going = users();
    wait_until(WAIT, "the fleet creates users at full speed", || users() >= going + RATE).await;
    assert_eq!(paused_for(&mut conn, &pace), None, "no pause before the 429");
    let pause = Duration::from_secs(3);
    vendors.sandboxes.faults.set(Faults { throttle_next: 1, retry_after: pause, ..Faults::default() });
    wait_until(WAIT, "one call was throttled", || vendors.sandboxes.faults.get().throttle_next == 0).await;
    let throttled_at = Instant::now();
    wait_until(pause, "the throttled replica wrote the pause for the fleet", || paused_for(&mut conn, &pace).is_some())
        .await;
    let (written, before) = (throttled_at.elapsed(), users());
    let left = paused_for(&mut conn, &pace).unwrap_or_default();
    eprintln!("scale-out: one 429 (Retry-After 3 s) was the fleet's pause {written:?} later, {left:?} of it left");
    let window = left.saturating_sub(Duration::from_millis(300));
    assert!(window >= Duration::from_secs(1), "only {left:?} of the 3 s pause was left once written");
    tokio::time::sleep(window).await;
    let during = users() - before;
    eprintln!("scale-out: users created in the {window:?} after the pause was written: {during}");
    // At most the calls already in flight when the pause was written: the fleet's slots.
    assert!(during <= CAP, "{during} users created while the account was paused: the others kept going");
    wait_until(pause * 3, "the fleet resumes after the pause", || users() > before + CAP).await;
    assert!(throttled_at.elapsed() >= pause - Duration::from_millis(500));

    // 4. A breaker opened by one replica is open on all: one failed call opens it where it
    // failed, and the other replica sees it on its next admission.
    vendors.sandboxes.faults.set(Faults { fail_next: 1, ..Faults::default() });
    let open = "circuit netsapiens/fleet: open";
    let deadline = Instant::now() + WAIT;
    loop {
        let mut all = true;
        for (_, admin) in &fleet {
            all &= http_get(*admin, "/readyz").await.contains(open);
        }
        if all {
            break;
        }
        assert!(Instant::now() < deadline, "the breaker did not open on every replica");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = users();
    // While open (5 s), no replica calls the vendor beyond the calls already in flight.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during = users() - before;
    assert!(during <= CAP, "{during} users created while the breaker was open on every replica");
    wait_until(WAIT, "one probe closes the breaker and the fleet resumes", || users() > before + RATE).await;

    let mut logs = String::new();
    for (w, _) in &fleet {
        logs.push_str(&w.all_logs());
    }
    assert!(logs.contains("another replica opened the account's breaker"), "{logs}");
    drop(fleet);
    probe.teardown().await;

    // The same fleet with each replica's limits its own, after the first (three fleets at
    // once would share the CPU and measure it instead).
    local_backend_keeps_the_whole_rate_on_each_replica().await;
}

async fn local_backend_keeps_the_whole_rate_on_each_replica() {
    let (settings, vendors) = fleet_settings(Backend::Local).await;
    let probe = Probe::new(&settings).await;
    let _events = probe.observe_events().await;
    publish_backlog(&probe, 1200).await;
    let fleet = start_fleet(&settings).await;
    let rate = users_per_second(&vendors, Duration::from_secs(5)).await;
    eprintln!("scale-out: 3 replicas, local backend: {rate:.1} users/s at the sandbox (account limit {RATE}/s each)");
    assert!(rate > RATE as f64 * 2.0, "{rate:.1}/s: three local limiters allow about three times the rate");
    drop(fleet);
    probe.teardown().await;
}
