//! Account limits kept in a real Redis (`rate_limit.backend = "redis"`): GCRA burst and rate,
//! lease expiry, the shared 429 slow-down, the fleet's breaker and its one probe, and the
//! fallback to the local share while Redis is unreachable, then back.
//!
//! Each "replica" here is a limiter with a link of its own; every test has its own key prefix
//! so the tests run in parallel on one Redis.

use std::num::NonZeroU32;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use provisioner::rate_limit::{AdaptiveSettings, Backend, Feedback, Rate, Refusal};
use provisioner::shared_limits::{AccountLimits, Probe, RedisLink, SharedLimiter};
use secrecy::SecretString;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const REDIS: &str = "redis://127.0.0.1:6379/0";

fn settings(lease_ttl: Duration) -> AdaptiveSettings {
    AdaptiveSettings {
        backend: Backend::Redis,
        redis_url: Some(REDIS.into()),
        redis_key_prefix: format!("test-{}", uuid::Uuid::new_v4().simple()),
        lease_ttl,
        redis_timeout: Duration::from_millis(250),
        ..AdaptiveSettings::default()
    }
}

/// A replica's link, up; fails with how to start Redis when there is none.
async fn link(url: &str, s: &AdaptiveSettings) -> Arc<RedisLink> {
    let link = RedisLink::start(&SecretString::from(url.to_owned()), s).unwrap();
    assert!(
        link.wait_up(Duration::from_secs(5)).await,
        "these tests need a real Redis at {url}: start one with `redis-server --daemonize yes` (./scripts/test does)"
    );
    link
}

fn limiter(link: &Arc<RedisLink>, s: &AdaptiveSettings, rate: &str, concurrency: u32) -> AccountLimits {
    let rate: Rate = rate.parse().unwrap();
    let cap = NonZeroU32::new(concurrency).unwrap();
    let shared = SharedLimiter::new(link.clone(), "netsapiens", "acme", rate, cap, s.clone(), Duration::from_secs(5));
    AccountLimits::Shared(shared)
}

fn go() -> CancellationToken {
    CancellationToken::new()
}

#[tokio::test]
async fn two_replicas_share_one_burst_then_one_rate() {
    let s = settings(Duration::from_secs(5));
    let (a, b) = (link(REDIS, &s).await, link(REDIS, &s).await);
    let (a, b) = (limiter(&a, &s, "20/s", 100), limiter(&b, &s, "20/s", 100));
    // GCRA admits at most the burst (20) plus 20 per second since the first call, whoever
    // asks and however slow this machine is: 30 calls take at least (30 - 20) / 20 s. Two
    // limiters of their own would let all 30 through at once.
    let start = Instant::now();
    for i in 0..30 {
        let l = if i % 2 == 0 { &a } else { &b };
        drop(l.admit(&go(), None).await.unwrap());
    }
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(450), "30 calls at 20/s with a burst of 20 took only {took:?}");
    assert!(took < Duration::from_secs(3), "30 calls at 20/s took {took:?}");
}

#[tokio::test]
async fn a_live_holders_slot_is_kept_and_a_dead_ones_returns_within_the_ttl() {
    let ttl = Duration::from_millis(900);
    let s = settings(ttl);
    // The "dead" replica runs on a runtime of its own, which is then shut down with its
    // slots still held: no release is ever sent, and nothing renews them.
    let s2 = s.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let l = link(REDIS, &s2).await;
            let dead = limiter(&l, &s2, "1000/s", 2);
            let slots = [dead.admit(&go(), None).await.unwrap(), dead.admit(&go(), None).await.unwrap()];
            std::mem::forget(slots);
        });
        rt.shutdown_background();
    })
    .join()
    .unwrap();

    let live = link(REDIS, &s).await;
    let l = limiter(&live, &s, "1000/s", 2);
    let start = Instant::now();
    let first = l.admit(&go(), None).await.unwrap();
    let waited = start.elapsed();
    assert!(waited <= ttl + Duration::from_millis(600), "the dead replica's slot came back after {waited:?}");
    let _second = l.admit(&go(), None).await.unwrap();

    // Both slots now held and renewed: a third caller gets none for three TTLs.
    let other = limiter(&link(REDIS, &s).await, &s, "1000/s", 2);
    let deadline = Instant::now() + ttl * 3;
    assert_eq!(other.admit(&go(), Some(deadline)).await.err(), Some(Refusal::PastDeadline));
    drop(first);
    let freed = Instant::now();
    other.admit(&go(), Some(Instant::now() + ttl)).await.expect("a released slot is free at once");
    assert!(freed.elapsed() < ttl * 2 / 3, "release took {:?}", freed.elapsed());
}

#[tokio::test]
async fn a_429_on_one_replica_pauses_and_slows_the_other() {
    let s = settings(Duration::from_secs(5));
    let (a, b) = (link(REDIS, &s).await, link(REDIS, &s).await);
    let (a, b) = (limiter(&a, &s, "10/s", 100), limiter(&b, &s, "10/s", 100));
    let ticket = a.admit(&go(), None).await.unwrap().ticket();
    let share = a.feedback(ticket, Feedback::Throttled { retry_after: Some(Duration::from_millis(700)) }).await;
    assert_eq!(share, Some(0.5));
    assert_eq!(
        a.feedback(ticket, Feedback::Throttled { retry_after: None }).await,
        None,
        "a 429 to a call admitted before the cut answers the old pace: no second cut"
    );
    let start = Instant::now();
    let _ = b.admit(&go(), None).await.unwrap();
    let paused = start.elapsed();
    assert!(paused >= Duration::from_millis(300) && paused < Duration::from_secs(2), "paused {paused:?}");
    // Half the rate and no burst: 5/s, 200 ms apart.
    let start = Instant::now();
    for _ in 0..3 {
        let _ = b.admit(&go(), None).await.unwrap();
    }
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(500) && took < Duration::from_secs(2), "3 at 5/s took {took:?}");
}

#[tokio::test]
async fn a_breaker_opened_by_one_replica_is_open_on_all_and_one_probes() {
    let s = settings(Duration::from_secs(5));
    let (la, lb) = (link(REDIS, &s).await, link(REDIS, &s).await);
    let (a, b) = (limiter(&la, &s, "1000/s", 100), limiter(&lb, &s, "1000/s", 100));
    assert_eq!(b.admit(&go(), None).await.unwrap().fleet_breaker, None, "closed to begin with");
    a.fleet_breaker().unwrap().opened(Duration::from_millis(600), "the last 5 calls failed in a row").await;
    let open_for = b.admit(&go(), None).await.unwrap().fleet_breaker.expect("open on the other replica");
    assert!(open_for > Duration::ZERO && open_for <= Duration::from_millis(600), "{open_for:?}");
    assert_eq!(b.fleet_breaker().unwrap().probe().await, Probe::Taken, "not yet time to probe");

    let due = Instant::now() + open_for;
    tokio::time::sleep_until(due).await;
    let probes = [a.fleet_breaker().unwrap().probe().await, b.fleet_breaker().unwrap().probe().await];
    assert_eq!(probes.iter().filter(|p| **p == Probe::Won).count(), 1, "one probe in the fleet: {probes:?}");
    assert_eq!(probes.iter().filter(|p| **p == Probe::Taken).count(), 1, "{probes:?}");
    a.fleet_breaker().unwrap().closed().await;
    assert_eq!(b.fleet_breaker().unwrap().probe().await, Probe::Closed);
    assert_eq!(b.admit(&go(), None).await.unwrap().fleet_breaker, None);
}

/// A Redis of this test's own on a free port, so it can be stopped and started again.
struct OwnRedis {
    child: Child,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is on the PATH (Debian: apt-get install redis-server; ./scripts/test checks)");
        Self { child }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn without_redis_each_replica_keeps_its_local_share_and_shares_again_when_it_returns() {
    // Nothing listens on a port just freed: each replica falls back to 30/s / 3 = 10/s.
    let port = free_port();
    let s = settings(Duration::from_secs(2));
    let url = format!("redis://127.0.0.1:{port}/0");
    let down = RedisLink::start(&SecretString::from(url.clone()), &s).unwrap();
    assert!(!down.wait_up(Duration::from_millis(500)).await);
    let health = provisioner::admin::Health::default();
    health.watch_limits(down.clone());
    assert!(
        health.limits_report().starts_with("limits: local fallback, Redis unreachable"),
        "{}",
        health.limits_report()
    );
    let l = limiter(&down, &s, "30/s", 6);
    // A burst of 10 then 10/s: 15 calls take at least half a second (the full 30/s, burst 30,
    // would let them all through at once).
    let start = Instant::now();
    for _ in 0..15 {
        drop(l.admit(&go(), None).await.unwrap());
    }
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(450) && took < Duration::from_secs(2), "15 at 10/s took {took:?}");
    // The concurrency cap's share: 6 / 3 = 2 slots.
    let (_x, _y) = (l.admit(&go(), None).await.unwrap(), l.admit(&go(), None).await.unwrap());
    let soon = Instant::now() + Duration::from_millis(300);
    assert_eq!(l.admit(&go(), Some(soon)).await.err(), Some(Refusal::PastDeadline));
    drop((_x, _y));

    // Redis comes up on that port: the monitor finds it and the full burst is shared again.
    let redis = OwnRedis::start(port);
    assert!(down.wait_up(Duration::from_secs(10)).await, "the link came back up");
    assert_eq!(health.limits_report(), "limits: shared by every replica through Redis\n");
    let start = Instant::now();
    for _ in 0..30 {
        drop(l.admit(&go(), None).await.unwrap());
    }
    // The local share would take 2 s for these (a burst of 10, then 10/s).
    assert!(start.elapsed() < Duration::from_millis(1500), "shared again: the whole burst {:?}", start.elapsed());

    // Redis dies mid-run: the next call still goes out, on the local share, within the timeout.
    drop(redis);
    let start = Instant::now();
    let _ = l.admit(&go(), Some(Instant::now() + Duration::from_secs(2))).await.unwrap();
    assert!(start.elapsed() < s.redis_timeout * 2 + Duration::from_secs(1), "{:?}", start.elapsed());
    assert!(!down.is_up());
}

#[tokio::test]
async fn a_hung_redis_never_hangs_a_call() {
    // A listener that accepts and never answers: every call meets the timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let s = settings(Duration::from_secs(2));
    let link = RedisLink::start(&SecretString::from(format!("redis://127.0.0.1:{port}/0")), &s).unwrap();
    assert!(!link.wait_up(Duration::from_secs(1)).await, "a silent Redis is not up");
    let l = limiter(&link, &s, "10/s", 1);
    let start = Instant::now();
    let _ = l.admit(&go(), None).await.unwrap();
    // Had it asked Redis, the call would have waited out rate_limit.redis_timeout first.
    assert!(start.elapsed() < s.redis_timeout, "the local share answers at once: {:?}", start.elapsed());
    drop(silent);
}
