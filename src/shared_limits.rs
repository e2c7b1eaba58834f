//! An account's limits shared by every replica through Redis (`rate_limit.backend = "redis"`):
//! the rate, the concurrency cap, the 429 slow-down and the circuit breaker's open state.
//!
//! Each account's state lives under `<prefix>:{<vendor>:<account>}:…` and every change is one
//! Lua script, so replicas never race on a read-modify-write. Times come from Redis' own
//! clock (`TIME`), so replicas with skewed clocks still agree.
//!
//! - **Rate**: GCRA (a virtual scheduling time, `tat`) with the burst of the local limiter:
//!   one second's worth until the first slow-down, then none.
//! - **Concurrency**: a sorted set of leases scored by expiry. A holder renews its lease every
//!   third of `rate_limit.lease_ttl`; a replica that dies stops renewing and its slots come
//!   back within the TTL.
//! - **Slow-down**: share, pause-until and generation in one hash, read by every admission.
//! - **Breaker**: a replica whose breaker opens writes until when; the others see it on
//!   their next admission and open theirs. When it is time to probe, one replica in the
//!   fleet wins a `SET NX PX` token and probes; the others stay open.
//!
//! Redis is never trusted to be there. Every call has `rate_limit.redis_timeout`; the first
//! failure marks the link down and each replica falls back to its local share
//! (`rate / replicas_hint`), while a monitor pings Redis every second and brings the shared
//! limits back when it answers.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::rate_limit::{AccountLimiter, AdaptiveSettings, Feedback, PaceTicket, Rate, Refusal, Slot};

/// How often the monitor pings Redis, and retries it while down.
const MONITOR_INTERVAL: Duration = Duration::from_secs(1);
/// How often a call waiting for a concurrency slot asks Redis again.
const LEASE_POLL: Duration = Duration::from_millis(20);
/// Account state untouched this long is forgotten (a fresh account at full speed).
const STATE_TTL_MS: u64 = 3_600_000;

/// The connection to Redis and whether the shared limits are in force.
pub struct RedisLink {
    client: redis::Client,
    conn: Mutex<Option<ConnectionManager>>,
    up: AtomicBool,
    changed: watch::Sender<bool>,
    timeout: Duration,
    prefix: String,
}

/// Redis did not answer in time, or answered with an error: use the local share.
#[derive(Debug)]
pub struct Down;

impl RedisLink {
    /// Parses the URL (never echoing it) and starts the monitor, which connects at once.
    /// Starts down: until Redis has answered, each replica keeps its local share.
    pub fn start(url: &SecretString, settings: &AdaptiveSettings) -> Result<Arc<Self>, String> {
        let client = redis::Client::open(url.expose_secret())
            .map_err(|e| format!("rate_limit.redis_url is not a valid Redis URL ({:?})", e.kind()))?;
        let (changed, _) = watch::channel(false);
        let link = Arc::new(Self {
            client,
            conn: Mutex::new(None),
            up: AtomicBool::new(false),
            changed,
            timeout: settings.redis_timeout,
            prefix: settings.redis_key_prefix.clone(),
        });
        let weak = Arc::downgrade(&link);
        tokio::spawn(monitor(weak));
        Ok(link)
    }

    /// True while the shared limits are in force.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    /// Follows [`RedisLink::is_up`].
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.changed.subscribe()
    }

    /// Waits until Redis has answered once, up to `within`: at start-up, so the first jobs
    /// are admitted under the shared limits rather than the fallback.
    pub async fn wait_up(&self, within: Duration) -> bool {
        let mut rx = self.subscribe();
        tokio::time::timeout(within, rx.wait_for(|up| *up)).await.is_ok_and(|r| r.is_ok())
    }

    fn set_up(&self, up: bool, why: &str) {
        if self.up.swap(up, Ordering::SeqCst) != up {
            if up {
                tracing::info!("Redis answers: account limits are shared by every replica again");
            } else {
                tracing::warn!(
                    reason = why,
                    "Redis unreachable: each replica falls back to its local share of every account's limits"
                );
            }
            self.changed.send_replace(up);
        }
    }

    /// One ping (connecting first when there is no connection), bounded by the timeout.
    async fn check(&self) {
        let conn = self.conn.lock().expect("never poisoned").clone();
        let conn = match conn {
            Some(c) => c,
            None => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1);
                let made = tokio::time::timeout(
                    self.timeout * 2,
                    ConnectionManager::new_with_config(self.client.clone(), config),
                )
                .await;
                match made {
                    Ok(Ok(c)) => {
                        *self.conn.lock().expect("never poisoned") = Some(c.clone());
                        c
                    }
                    Ok(Err(e)) => return self.set_up(false, &format!("connecting: {:?}", e.kind())),
                    Err(_) => return self.set_up(false, "connecting timed out"),
                }
            }
        };
        let mut conn = conn;
        let ping = tokio::time::timeout(self.timeout, redis::cmd("PING").query_async::<String>(&mut conn)).await;
        match ping {
            Ok(Ok(_)) => self.set_up(true, ""),
            Ok(Err(e)) => self.set_up(false, &format!("ping: {:?}", e.kind())),
            Err(_) => self.set_up(false, "ping timed out"),
        }
    }

    /// Runs one script, or says Redis is down. Never waits longer than the timeout, and never
    /// tries at all while the link is down (the monitor brings it back).
    pub(crate) async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, Down> {
        if !self.is_up() {
            return Err(Down);
        }
        let Some(mut conn) = self.conn.lock().expect("never poisoned").clone() else { return Err(Down) };
        match tokio::time::timeout(self.timeout, invocation.invoke_async(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.set_up(false, &format!("{:?}", e.kind()));
                Err(Down)
            }
            Err(_) => {
                self.set_up(false, "a call timed out (rate_limit.redis_timeout)");
                Err(Down)
            }
        }
    }

    /// A key of one account beside those of [`RedisLink::keys`], for another module's state
    /// (the safeguard's), in the same Redis Cluster slot.
    pub(crate) fn account_key(&self, vendor: &str, account: &str, name: &str) -> String {
        format!("{}:{{{vendor}:{account}}}:{name}", self.prefix)
    }

    /// The keys of one account. Names only: vendor and account names are configuration,
    /// never secrets. The braces keep an account's keys in one Redis Cluster slot.
    pub fn keys(&self, vendor: &str, account: &str) -> Keys {
        let base = format!("{}:{{{vendor}:{account}}}", self.prefix);
        Keys {
            pace: format!("{base}:pace"),
            tat: format!("{base}:tat"),
            leases: format!("{base}:leases"),
            breaker: format!("{base}:breaker"),
            probe: format!("{base}:probe"),
        }
    }
}

async fn monitor(link: Weak<RedisLink>) {
    loop {
        let Some(strong) = link.upgrade() else { return };
        strong.check().await;
        drop(strong);
        tokio::time::sleep(MONITOR_INTERVAL).await;
    }
}

/// One account's Redis keys.
#[derive(Clone, Debug)]
pub struct Keys {
    pace: String,
    tat: String,
    leases: String,
    breaker: String,
    probe: String,
}

/// Takes a lease when fewer than the cap are alive. Returns 0, or how long (µs) until the
/// oldest lease expires.
const ACQUIRE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function n(x) return string.format('%.0f', x) end
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', n(now))
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], n(now + ttl), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.floor(ttl / 1000) * 2 + 1000)
  return 0
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(first[2]) - now)
";

/// Extends a lease that is still held; 0 when it had already expired.
const RENEW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function n(x) return string.format('%.0f', x) end
local ttl = tonumber(ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', n(now + ttl), ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.floor(ttl / 1000) * 2 + 1000)
return 1
";

/// Reads the pace (recovering it step by step, as the local limiter does) and applies
/// the Retry-After pause and GCRA. Returns {admitted 0|1, wait µs, generation, breaker}:
/// breaker is -1 when the fleet's breaker is closed, else µs until its next probe (0: due).
const PACE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function n(x) return string.format('%.0f', x) end
local p = redis.call('HMGET', KEYS[1], 'share', 'since', 'paused', 'gen', 'slowed')
local share = tonumber(p[1]) or 1
local since = tonumber(p[2]) or now
local paused = tonumber(p[3]) or 0
local gen = tonumber(p[4]) or 0
local slowed = p[5] == '1'
local interval_us = tonumber(ARGV[4])
if share < 1 then
  local steps = math.floor((now - since) / interval_us)
  if steps >= 1 then
    share = math.min(1, share + steps * tonumber(ARGV[3]))
    since = since + steps * interval_us
    redis.call('HSET', KEYS[1], 'share', share, 'since', n(since))
    redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
    redis.call('DEL', KEYS[2])
  end
end
local breaker = -1
local b = redis.call('HGET', KEYS[3], 'until')
if b then breaker = math.max(0, tonumber(b) - now) end
if paused > now then return {0, paused - now, gen, breaker} end
local emission = tonumber(ARGV[1]) / share
local burst = tonumber(ARGV[2])
if slowed then burst = 1 end
local tat = tonumber(redis.call('GET', KEYS[2])) or now
if tat < now then tat = now end
local allow_at = tat - emission * (burst - 1)
if now < allow_at then return {0, math.max(1, math.ceil(allow_at - now)), gen, breaker} end
redis.call('SET', KEYS[2], n(tat + emission), 'PX', tonumber(ARGV[5]))
return {1, 0, gen, breaker}
";

/// A call's answer: ARGV[1] is 1 for a 429 (with ARGV[2] its Retry-After in µs, -1 for
/// none), 0 otherwise. Returns the new share in millionths when it changed, else -1.
const FEEDBACK: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function n(x) return string.format('%.0f', x) end
local p = redis.call('HMGET', KEYS[1], 'share', 'since', 'paused', 'gen')
local share = tonumber(p[1]) or 1
local since = tonumber(p[2]) or now
local paused = tonumber(p[3]) or 0
local gen = tonumber(p[4]) or 0
local before = share
local slowdown, min_share, step, interval_us, ttl = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
if share < 1 then
  local steps = math.floor((now - since) / interval_us)
  if steps >= 1 then
    share = math.min(1, share + steps * step)
    since = since + steps * interval_us
    redis.call('DEL', KEYS[2])
  end
end
if ARGV[1] == '1' then
  local retry_after = tonumber(ARGV[2])
  if retry_after >= 0 then
    local till = now + math.min(retry_after, tonumber(ARGV[3]))
    if till > paused then paused = till end
  end
  if tonumber(ARGV[4]) >= gen then
    gen = gen + 1
    share = math.max(share * slowdown, min_share)
    since = now
    redis.call('DEL', KEYS[2])
    redis.call('HSET', KEYS[1], 'slowed', '1')
  end
end
redis.call('HSET', KEYS[1], 'share', share, 'since', n(since), 'paused', n(paused), 'gen', n(gen))
redis.call('PEXPIRE', KEYS[1], ttl)
if share ~= before then return math.floor(share * 1000000 + 0.5) end
return -1
";

/// Asks to probe an account whose breaker is due: 'closed' (no fleet breaker: call as
/// usual), 'won' (this caller probes), or 'taken' (another replica is probing).
const PROBE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function n(x) return string.format('%.0f', x) end
local b = redis.call('HGET', KEYS[1], 'until')
if not b then return 'closed' end
if tonumber(b) > now then return 'taken' end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', tonumber(ARGV[2])) then return 'won' end
return 'taken'
";

/// Opens the fleet's breaker until ARGV[1] µs from now, and frees the probe token.
const OPEN: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function n(x) return string.format('%.0f', x) end
redis.call('HSET', KEYS[1], 'until', n(now + tonumber(ARGV[1])), 'reason', ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
redis.call('DEL', KEYS[2])
return 1
";

/// Closes the fleet's breaker.
const CLOSE: &str = r"
redis.call('DEL', KEYS[1], KEYS[2])
return 1
";

/// Each script once, with its SHA1 (sent as EVALSHA, loaded on first use).
static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    acquire: Script::new(ACQUIRE),
    renew: Script::new(RENEW),
    pace: Script::new(PACE),
    feedback: Script::new(FEEDBACK),
    probe: Script::new(PROBE),
    open: Script::new(OPEN),
    close: Script::new(CLOSE),
});

struct Scripts {
    acquire: Script,
    renew: Script,
    pace: Script,
    feedback: Script,
    probe: Script,
    open: Script,
    close: Script,
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX / 4)) as u64
}

/// A concurrency slot held in Redis, renewed while held and given back when dropped.
pub struct Lease {
    _renew: AbortOnDropHandle<()>,
    link: Arc<RedisLink>,
    key: String,
    id: String,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let (link, key, id) = (self.link.clone(), std::mem::take(&mut self.key), std::mem::take(&mut self.id));
        // Best effort: a release that never arrives is the TTL's business.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if !link.is_up() {
                    return;
                }
                let Some(mut conn) = link.conn.lock().expect("never poisoned").clone() else { return };
                let mut zrem = redis::cmd("ZREM");
                zrem.arg(&key).arg(&id);
                let _ = tokio::time::timeout(link.timeout, zrem.query_async::<i64>(&mut conn)).await;
            });
        }
    }
}

/// Which pace a call was admitted under, locally or in Redis.
#[derive(Clone, Copy, Debug)]
pub enum Ticket {
    Local(PaceTicket),
    Shared(u64),
}

enum Hold {
    Local(#[allow(dead_code)] Slot),
    Shared(#[allow(dead_code)] Lease, #[allow(dead_code)] OwnedSemaphorePermit),
}

/// Held for the length of one vendor call.
pub struct Admitted {
    /// How long the call waited to be admitted.
    pub waited: Duration,
    ticket: Ticket,
    /// Set when another replica has the account's breaker open: until its next probe.
    pub fleet_breaker: Option<Duration>,
    _hold: Hold,
}

impl Admitted {
    pub fn ticket(&self) -> Ticket {
        self.ticket
    }
}

/// One account's admission, local or shared.
// One per account, built once at start-up and never moved: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum AccountLimits {
    Local(AccountLimiter),
    Shared(SharedLimiter),
}

impl AccountLimits {
    pub async fn admit(&self, shutdown: &CancellationToken, deadline: Option<Instant>) -> Result<Admitted, Refusal> {
        match self {
            AccountLimits::Local(l) => local_admit(l, shutdown, deadline).await,
            AccountLimits::Shared(s) => s.admit(shutdown, deadline).await,
        }
    }

    /// Adjusts the pace after a call; the new share when it changed.
    pub async fn feedback(&self, ticket: Ticket, feedback: Feedback) -> Option<f64> {
        match (self, ticket) {
            (AccountLimits::Local(l), Ticket::Local(t)) => l.feedback(t, feedback),
            (AccountLimits::Shared(s), Ticket::Local(t)) => s.fallback.feedback(t, feedback),
            (AccountLimits::Shared(s), Ticket::Shared(generation)) => s.feedback(generation, feedback).await,
            (AccountLimits::Local(_), Ticket::Shared(_)) => None,
        }
    }

    pub fn rate(&self) -> Rate {
        match self {
            AccountLimits::Local(l) => l.rate(),
            AccountLimits::Shared(s) => s.rate,
        }
    }

    /// The fleet's view of the account's breaker, when limits are shared.
    pub fn fleet_breaker(&self) -> Option<&FleetBreaker> {
        match self {
            AccountLimits::Local(_) => None,
            AccountLimits::Shared(s) => Some(&s.breaker),
        }
    }
}

async fn local_admit(
    l: &AccountLimiter,
    shutdown: &CancellationToken,
    deadline: Option<Instant>,
) -> Result<Admitted, Refusal> {
    let slot = l.admit(shutdown, deadline).await?;
    Ok(Admitted {
        waited: slot.waited,
        ticket: Ticket::Local(slot.ticket()),
        fleet_breaker: None,
        _hold: Hold::Local(slot),
    })
}

/// An account's limits in Redis, with the local share to fall back on.
pub struct SharedLimiter {
    link: Arc<RedisLink>,
    keys: Keys,
    rate: Rate,
    concurrency: NonZeroU32,
    adaptive: AdaptiveSettings,
    /// Bounds this replica's callers waiting on Redis to the account's cap.
    gate: Arc<Semaphore>,
    fallback: AccountLimiter,
    breaker: FleetBreaker,
}

impl SharedLimiter {
    /// `probe_ttl`: how long a probe token lasts, longer than a vendor call can take.
    pub fn new(
        link: Arc<RedisLink>,
        vendor: &str,
        account: &str,
        rate: Rate,
        concurrency: NonZeroU32,
        adaptive: AdaptiveSettings,
        probe_ttl: Duration,
    ) -> Self {
        let keys = link.keys(vendor, account);
        let hint = NonZeroU32::new(adaptive.replicas_hint).unwrap_or(NonZeroU32::MIN);
        let local_cap = NonZeroU32::new(concurrency.get().div_ceil(hint.get())).unwrap_or(NonZeroU32::MIN);
        let fallback = AccountLimiter::new(rate.divided(hint), local_cap, adaptive.clone());
        let breaker = FleetBreaker { link: link.clone(), keys: keys.clone(), probe_ttl };
        Self {
            link,
            keys,
            rate,
            concurrency,
            gate: Arc::new(Semaphore::new(concurrency.get() as usize)),
            adaptive,
            fallback,
            breaker,
        }
    }

    /// Waits for a slot, the end of a pause and the rate, in that order, as the local limiter
    /// does; from the fallback's local share whenever Redis is down.
    pub async fn admit(&self, shutdown: &CancellationToken, deadline: Option<Instant>) -> Result<Admitted, Refusal> {
        if !self.link.is_up() {
            return local_admit(&self.fallback, shutdown, deadline).await;
        }
        let started = Instant::now();
        let far = started + Duration::from_secs(86_400 * 365);
        let permit = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Err(Refusal::ShutDown),
            _ = tokio::time::sleep_until(deadline.unwrap_or(far)) => return Err(Refusal::PastDeadline),
            p = self.gate.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let ttl = self.adaptive.lease_ttl;
        // The process id tells an operator (and the tests) which replica holds a slot.
        let id = format!("{}:{}", std::process::id(), uuid::Uuid::new_v4().simple());
        loop {
            let mut inv = SCRIPTS.acquire.prepare_invoke();
            inv.key(&self.keys.leases).arg(self.concurrency.get()).arg(micros(ttl)).arg(&id);
            let wait = match self.link.run::<u64>(&inv).await {
                Ok(0) => break,
                Ok(us) => Duration::from_micros(us).min(LEASE_POLL),
                Err(Down) => return local_admit(&self.fallback, shutdown, deadline).await,
            };
            if deadline.is_some_and(|d| Instant::now() + wait > d) {
                return Err(Refusal::PastDeadline);
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Err(Refusal::ShutDown),
                _ = tokio::time::sleep(wait) => {}
            }
        }
        let lease = self.lease(id);
        loop {
            if shutdown.is_cancelled() {
                return Err(Refusal::ShutDown);
            }
            let mut inv = SCRIPTS.pace.prepare_invoke();
            inv.key(&self.keys.pace)
                .key(&self.keys.tat)
                .key(&self.keys.breaker)
                .arg(micros(self.rate.interval()))
                .arg(self.rate.burst().get())
                .arg(self.adaptive.recovery_step)
                .arg(micros(self.adaptive.recovery_interval))
                .arg(STATE_TTL_MS);
            let (admitted, wait_us, generation, breaker) = match self.link.run::<(u8, u64, u64, i64)>(&inv).await {
                Ok(r) => r,
                Err(Down) => {
                    drop(lease);
                    return local_admit(&self.fallback, shutdown, deadline).await;
                }
            };
            if admitted == 1 {
                let fleet_breaker = u64::try_from(breaker).ok().map(Duration::from_micros);
                return Ok(Admitted {
                    waited: started.elapsed(),
                    ticket: Ticket::Shared(generation),
                    fleet_breaker,
                    _hold: Hold::Shared(lease, permit),
                });
            }
            let wait = Duration::from_micros(wait_us);
            if deadline.is_some_and(|d| Instant::now().checked_add(wait).is_none_or(|ready| ready > d)) {
                return Err(Refusal::PastDeadline);
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Err(Refusal::ShutDown),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn lease(&self, id: String) -> Lease {
        let (link, key, lease_id) = (self.link.clone(), self.keys.leases.clone(), id.clone());
        let ttl = self.adaptive.lease_ttl;
        let renew = tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                let mut inv = SCRIPTS.renew.prepare_invoke();
                inv.key(&key).arg(micros(ttl)).arg(&lease_id);
                // A failed renewal changes nothing for the call in flight: it has been sent.
                let _ = link.run::<u8>(&inv).await;
            }
        });
        Lease { _renew: AbortOnDropHandle::new(renew), link: self.link.clone(), key: self.keys.leases.clone(), id }
    }

    async fn feedback(&self, generation: u64, feedback: Feedback) -> Option<f64> {
        let (throttled, retry_after) = match feedback {
            Feedback::Fine => (0, -1),
            Feedback::Throttled { retry_after } => {
                (1, retry_after.map_or(-1, |d| i64::try_from(micros(d)).unwrap_or(i64::MAX)))
            }
        };
        let a = &self.adaptive;
        let mut inv = SCRIPTS.feedback.prepare_invoke();
        inv.key(&self.keys.pace)
            .key(&self.keys.tat)
            .arg(throttled)
            .arg(retry_after)
            .arg(micros(a.max_pause))
            .arg(generation)
            .arg(a.slowdown)
            .arg(a.min_share)
            .arg(a.recovery_step)
            .arg(micros(a.recovery_interval))
            .arg(STATE_TTL_MS);
        match self.link.run::<i64>(&inv).await {
            Ok(millionths) if millionths >= 0 => Some(millionths as f64 / 1e6),
            _ => None,
        }
    }
}

/// What the fleet says about probing an account whose breaker is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// No replica has it open: call as usual.
    Closed,
    /// This caller is the fleet's one probe.
    Won,
    /// Another replica probes, or it is not yet time.
    Taken,
}

/// The account's circuit breaker state as every replica sees it.
pub struct FleetBreaker {
    link: Arc<RedisLink>,
    keys: Keys,
    probe_ttl: Duration,
}

impl FleetBreaker {
    /// While Redis is down each replica's breaker decides alone ([`Probe::Closed`]).
    pub async fn probe(&self) -> Probe {
        let mut inv = SCRIPTS.probe.prepare_invoke();
        inv.key(&self.keys.breaker).key(&self.keys.probe).arg(uuid::Uuid::new_v4().simple().to_string());
        inv.arg(self.probe_ttl.as_millis().max(1) as u64);
        match self.link.run::<String>(&inv).await.as_deref() {
            Ok("won") => Probe::Won,
            Ok("taken") => Probe::Taken,
            _ => Probe::Closed,
        }
    }

    /// This replica's breaker opened (or a probe failed): open it everywhere for `open_for`.
    pub async fn opened(&self, open_for: Duration, reason: &str) {
        let mut inv = SCRIPTS.open.prepare_invoke();
        inv.key(&self.keys.breaker).key(&self.keys.probe).arg(micros(open_for)).arg(reason).arg(STATE_TTL_MS);
        let _ = self.link.run::<u8>(&inv).await;
    }

    /// This replica's probe succeeded: close it everywhere.
    pub async fn closed(&self) {
        let mut inv = SCRIPTS.close.prepare_invoke();
        inv.key(&self.keys.breaker).key(&self.keys.probe);
        let _ = self.link.run::<u8>(&inv).await;
    }
}
