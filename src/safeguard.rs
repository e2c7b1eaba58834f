//! The mass-change safeguard: an account's suspends and deletes beyond a threshold are held for an operator.
//!
//! Each account counts the removals it let through in a sliding `safeguard.window`. When
//! letting one more through would exceed `max_removals`, or `max_share` of the account's
//! active links in the ledger, the account **trips**: that removal and every later one is
//! held (parked in the account's held queue, `<topology.held_queue_prefix>.<account>`) until
//! an operator runs `provisioner held approve` or `held reject`. Nothing is released on its
//! own.
//!
//! State lives where `rate_limit.backend` says: in this process (`local`), or in Redis
//! (`redis`, one window and one latch per account for every replica; when Redis does not
//! answer, each replica falls back to its local window with `rate_limit.replicas_hint`'s share
//! of the limit). The latch is kept honest by the held queues themselves: every
//! `safeguard.refresh` each replica reads each account's held queue, and an account is tripped
//! while its held queue holds anything. That is what keeps the trip across restarts and
//! replicas, and what clears it once an operator has emptied the queue. The `held` commands
//! put a marker message in a held queue for as long as they walk it (the walk takes every
//! message off the queue until it ends), so a walk never reads as "empty".

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use redis::Script;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{SafeguardSettings, Settings};
use crate::contract::VendorKey;
use crate::metrics::Metrics;
use crate::shared_limits::RedisLink;

/// Why a removal is held: the limit it would have exceeded, or an account already tripped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hold {
    /// This removal tripped the account: `count` removals already in the window, `limit` allowed.
    Tripped { count: u64, limit: u64, by: Limit },
    /// The account was tripped before; it stays so until an operator acts.
    AlreadyTripped,
}

/// Which setting a trip exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    MaxRemovals,
    MaxShare,
}

impl Hold {
    /// The `provisioner-held-reason` header and the `held` step's reason.
    pub fn reason(&self, window: Duration) -> String {
        let window = humantime::format_duration(window);
        match self {
            Hold::Tripped { count, limit, by: Limit::MaxRemovals } => {
                format!("{count} removals within {window} already; safeguard.max_removals allows {limit}")
            }
            Hold::Tripped { count, limit, by: Limit::MaxShare } => format!(
                "{count} removals within {window} already; safeguard.max_share of the account's active links allows {limit}"
            ),
            Hold::AlreadyTripped => "the account's safeguard is tripped; an operator must approve or reject".into(),
        }
    }
}

/// One account as the safeguard sees it, for `/readyz`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Tripped {
    pub account: String,
    pub vendor: VendorKey,
    /// Jobs in its held queue at the last refresh.
    pub held: u64,
}

/// One account's window and latch in this process.
#[derive(Default)]
struct Local {
    /// When each counted removal was let through, oldest first.
    sent: VecDeque<Instant>,
    /// When the latch was last set (a trip, a hold, a non-empty held queue).
    latched: Option<Instant>,
}

/// The safeguard of every account; one per process, shared by the pipeline and the refresher.
pub struct Safeguard {
    settings: SafeguardSettings,
    /// A latch is cleared only when it was last set longer ago than this: a job being held
    /// right now may not have reached its held queue yet (its publish waits for a confirm).
    grace: Duration,
    replicas_hint: u32,
    accounts: BTreeMap<String, VendorKey>,
    local: Mutex<HashMap<String, Local>>,
    link: Option<Arc<RedisLink>>,
    /// Each account's active links in the ledger, read by the refresher.
    active: Mutex<HashMap<String, u64>>,
    /// What the last refresh found, for `/readyz` and the gauge.
    tripped: Mutex<BTreeMap<String, Tripped>>,
}

impl Safeguard {
    pub fn new(settings: &Settings, link: Option<Arc<RedisLink>>) -> Self {
        Self {
            settings: settings.safeguard.clone(),
            grace: settings.amqp.confirm_timeout + settings.safeguard.refresh,
            replicas_hint: settings.rate_limit.replicas_hint.max(1),
            accounts: settings.accounts.iter().map(|(name, a)| (name.clone(), a.vendor)).collect(),
            local: Mutex::default(),
            link,
            active: Mutex::default(),
            tripped: Mutex::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    pub fn window(&self) -> Duration {
        self.settings.window
    }

    /// How many removals the window allows the account, and which setting says so.
    fn limit(&self, account: &str) -> (u64, Limit) {
        let by_count = u64::from(self.settings.max_removals);
        let active = self.active.lock().expect("never poisoned").get(account).copied().unwrap_or(0);
        // An account the ledger knows no active link of (users made before the ledger, or no
        // ledger) has no share to speak of: only the count applies. At least one removal is
        // always allowed, or a small account could never remove anyone without an operator.
        if active > 0 {
            let by_share = ((self.settings.max_share * active as f64).ceil() as u64).max(1);
            if by_share < by_count {
                return (by_share, Limit::MaxShare);
            }
        }
        (by_count, Limit::MaxRemovals)
    }

    /// Decides one removal about to be sent. `counts` is false for one that passed the
    /// safeguard before (a retry): it is held while the account is tripped, but never counted
    /// twice. `Ok` means send it (and it was counted).
    pub async fn admit(&self, vendor: VendorKey, account: &str, counts: bool) -> Result<(), Hold> {
        let (limit, by) = self.limit(account);
        if let Some(link) = &self.link {
            let (window, latch) = keys(link, vendor, account);
            let member = uuid::Uuid::new_v4().simple().to_string();
            let mut call = SCRIPTS.admit.key(&window);
            call.key(&latch).arg(self.settings.window.as_millis() as u64).arg(limit).arg(member).arg(u8::from(counts));
            match link.run::<i64>(&call).await {
                Ok(-1) => return Err(Hold::AlreadyTripped),
                Ok(n) if n < -1 => return Err(Hold::Tripped { count: (-n - 2) as u64, limit, by }),
                Ok(_) => return Ok(()),
                // Redis is down: this replica's own window, with its share of the limit.
                Err(_) => {
                    let share = limit.div_ceil(u64::from(self.replicas_hint)).max(1);
                    return self.admit_local(account, share, by, counts);
                }
            }
        }
        self.admit_local(account, limit, by, counts)
    }

    fn admit_local(&self, account: &str, limit: u64, by: Limit, counts: bool) -> Result<(), Hold> {
        let now = Instant::now();
        let mut all = self.local.lock().expect("never poisoned");
        let state = all.entry(account.to_owned()).or_default();
        while state.sent.front().is_some_and(|t| now.duration_since(*t) >= self.settings.window) {
            state.sent.pop_front();
        }
        if state.latched.is_some() {
            state.latched = Some(now);
            return Err(Hold::AlreadyTripped);
        }
        if !counts {
            return Ok(());
        }
        let count = state.sent.len() as u64;
        if count + 1 > limit {
            state.latched = Some(now);
            return Err(Hold::Tripped { count, limit, by });
        }
        state.sent.push_back(now);
        Ok(())
    }

    /// What a refresh read of the account: `held` jobs in its held queue, `active` links in
    /// the ledger (`None`: unknown, the last figure stays). A non-empty held queue sets the
    /// latch; an empty one clears it (and starts a fresh window) once the grace is over.
    /// Returns whether the account is tripped now.
    pub async fn observe(&self, vendor: VendorKey, account: &str, held: u64, active: Option<u64>) -> bool {
        if let Some(active) = active {
            self.active.lock().expect("never poisoned").insert(account.to_owned(), active);
        }
        let tripped = match &self.link {
            Some(link) => {
                let (window, latch) = keys(link, vendor, account);
                let mut call = SCRIPTS.observe.key(&window);
                call.key(&latch).arg(u8::from(held > 0)).arg(self.grace.as_millis() as u64);
                match link.run::<i64>(&call).await {
                    Ok(n) => {
                        // Keep the local fallback in step with the fleet.
                        self.observe_local(account, held, n == 1);
                        n == 1
                    }
                    Err(_) => self.observe_local(account, held, false),
                }
            }
            None => self.observe_local(account, held, false),
        };
        let mut shown = self.tripped.lock().expect("never poisoned");
        if tripped {
            shown.insert(account.to_owned(), Tripped { account: account.to_owned(), vendor, held });
        } else {
            shown.remove(account);
        }
        tripped
    }

    fn observe_local(&self, account: &str, held: u64, fleet_tripped: bool) -> bool {
        let now = Instant::now();
        let mut all = self.local.lock().expect("never poisoned");
        let state = all.entry(account.to_owned()).or_default();
        if held > 0 || fleet_tripped {
            state.latched = Some(now);
        } else if state.latched.is_some_and(|at| now.duration_since(at) >= self.grace) {
            // The operator emptied the queue: the trip is over, and so is its window.
            *state = Local::default();
        }
        state.latched.is_some()
    }

    /// Every tripped account as of the last refresh, by name.
    pub fn tripped(&self) -> Vec<Tripped> {
        self.tripped.lock().expect("never poisoned").values().cloned().collect()
    }

    /// Sets `provisioner_safeguard_tripped` from the last refresh.
    fn publish_gauge(&self, metrics: &Metrics) {
        let mut per_vendor: HashMap<VendorKey, i64> = VendorKey::ALL.into_iter().map(|v| (v, 0)).collect();
        for t in self.tripped() {
            *per_vendor.entry(t.vendor).or_default() += 1;
        }
        for (vendor, n) in per_vendor {
            metrics.safeguard_tripped.with_label_values(&[vendor.as_str()]).set(n);
        }
    }
}

/// The account's window and latch in Redis, beside its rate-limit keys.
fn keys(link: &RedisLink, vendor: VendorKey, account: &str) -> (String, String) {
    (
        link.account_key(vendor.as_str(), account, "safeguard:window"),
        link.account_key(vendor.as_str(), account, "safeguard:latch"),
    )
}

/// Lets one removal through unless the account is tripped or it would exceed the limit.
/// KEYS: window (sorted set of removals by time), latch. ARGV: window ms, limit, a unique
/// member, counts (1/0). Returns the count after a counted removal, 0 for one let through
/// uncounted, -1 when already tripped, and -(count + 2) when this one trips the account.
const ADMIT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('SET', KEYS[2], now)
  return -1
end
if ARGV[4] ~= '1' then return 0 end
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n + 1 > tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], now)
  return -(n + 2)
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return n + 1
";

/// A refresh's reading of the held queue. KEYS: window, latch. ARGV: held (1/0), grace ms.
/// Returns 1 while tripped. An empty queue clears the latch (and the window) only once the
/// latch was last set longer ago than the grace.
const OBSERVE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] == '1' then
  redis.call('SET', KEYS[2], now)
  return 1
end
local at = redis.call('GET', KEYS[2])
if not at then return 0 end
if now - tonumber(at) >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 0
end
return 1
";

struct Scripts {
    admit: Script,
    observe: Script,
}

static SCRIPTS: LazyLock<Scripts> =
    LazyLock::new(|| Scripts { admit: Script::new(ADMIT), observe: Script::new(OBSERVE) });

/// Reads every account's held queue (and its active links) once.
pub async fn refresh(
    safeguard: &Safeguard,
    channel: &lapin::Channel,
    settings: &Settings,
    ledger: Option<&crate::ledger::Ledger>,
) -> Result<(), lapin::Error> {
    use lapin::options::QueueDeclareOptions;
    for (account, vendor) in &safeguard.accounts {
        let queue = settings.topology.held_queue(account);
        let opts = QueueDeclareOptions { passive: true, ..Default::default() };
        let held = channel.queue_declare(queue.as_str().into(), opts, Default::default()).await?.message_count();
        let active = match ledger {
            Some(l) if safeguard.enabled() => active_links(l, *vendor, account).await,
            _ => None,
        };
        safeguard.observe(*vendor, account, held.into(), active).await;
    }
    Ok(())
}

/// The account's active links in the ledger; `None` when the ledger does not answer (the
/// last figure stays).
async fn active_links(ledger: &crate::ledger::Ledger, vendor: VendorKey, account: &str) -> Option<u64> {
    match ledger.count_active(vendor, account).await {
        Ok(n) => Some(n.max(0) as u64),
        Err(e) => {
            tracing::debug!(error = %e, "the ledger did not say how many links are active; safeguard.max_share keeps its last figure");
            None
        }
    }
}

/// Reads the held queues on a connection of its own, kept from one read to the next (so a
/// worker that lost its session still learns what operators did).
pub struct Refresher {
    safeguard: Arc<Safeguard>,
    /// The worker's settings, with a connection name of this reader's own.
    settings: Settings,
    ledger: Option<crate::ledger::Ledger>,
    metrics: Metrics,
    session: Option<(lapin::Connection, lapin::Channel)>,
}

/// Why a read of the held queues did not happen; the latches stay as they are.
#[derive(Debug, thiserror::Error)]
pub enum Missed {
    #[error("the broker could not be reached")]
    NoConnection,
    #[error("cannot read the held queues: {0}")]
    Broker(#[from] lapin::Error),
    #[error("reading the held queues timed out (amqp.setup_timeout)")]
    TimedOut,
}

impl Refresher {
    pub fn new(
        safeguard: Arc<Safeguard>,
        settings: &Settings,
        ledger: Option<crate::ledger::Ledger>,
        metrics: Metrics,
    ) -> Self {
        let mut own = settings.clone();
        own.amqp.connection_name = format!("{}-safeguard", settings.amqp.connection_name);
        Self { safeguard, settings: own, ledger, metrics, session: None }
    }

    /// One read of every held queue, connecting first when there is no connection, bounded
    /// by `amqp.setup_timeout`. A read that fails drops the connection: the next one opens a
    /// new one.
    pub async fn refresh(&mut self) -> Result<(), Missed> {
        let read = async {
            if self.session.is_none() {
                self.session = open(&self.settings).await;
            }
            let (_, channel) = self.session.as_ref().ok_or(Missed::NoConnection)?;
            refresh(&self.safeguard, channel, &self.settings, self.ledger.as_ref()).await.map_err(Missed::from)
        };
        let done = tokio::time::timeout(self.settings.amqp.setup_timeout, read).await.unwrap_or(Err(Missed::TimedOut));
        match &done {
            Ok(()) => self.safeguard.publish_gauge(&self.metrics),
            Err(_) => self.session = None,
        }
        done
    }

    /// Reads every `safeguard.refresh` until `stop`, the first one a `safeguard.refresh` from
    /// now (start-up has just read them).
    pub async fn watch(mut self, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(self.settings.safeguard.refresh) => {}
            }
            match self.refresh().await {
                Ok(()) | Err(Missed::NoConnection) => {}
                Err(e) => tracing::warn!(error = %e, "the safeguard keeps its latches"),
            }
        }
        if let Some((conn, _)) = self.session {
            let _ = conn.close(200, "done".into()).await;
        }
    }
}

async fn open(settings: &Settings) -> Option<(lapin::Connection, lapin::Channel)> {
    let conn = crate::transport::rabbitmq::connect(settings).await.ok()?;
    let channel = conn.create_channel().await.ok()?;
    Some((conn, channel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_removals: u32, window: Duration) -> Settings {
        let mut s = Settings::default();
        s.safeguard.max_removals = max_removals;
        s.safeguard.window = window;
        s.accounts.insert("acme".into(), crate::sandbox::account(VendorKey::Glance, "http://127.0.0.1:1"));
        s
    }

    #[tokio::test(start_paused = true)]
    async fn the_removal_beyond_the_limit_trips_the_account_and_the_window_slides() {
        let guard = Safeguard::new(&settings(2, Duration::from_secs(600)), None);
        let g = VendorKey::Glance;
        assert_eq!(guard.admit(g, "acme", true).await, Ok(()));
        tokio::time::advance(Duration::from_secs(300)).await;
        assert_eq!(guard.admit(g, "acme", true).await, Ok(()));
        assert_eq!(guard.admit(g, "other", true).await, Ok(()), "each account has its own window");
        assert_eq!(
            guard.admit(g, "acme", true).await,
            Err(Hold::Tripped { count: 2, limit: 2, by: Limit::MaxRemovals })
        );
        // The first removal leaves the window, but the trip holds until an operator acts.
        tokio::time::advance(Duration::from_secs(301)).await;
        assert_eq!(guard.admit(g, "acme", true).await, Err(Hold::AlreadyTripped));
        assert_eq!(guard.admit(g, "acme", false).await, Err(Hold::AlreadyTripped), "a retry is held too");
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_trip_the_window_alone_decides() {
        let guard = Safeguard::new(&settings(1, Duration::from_secs(60)), None);
        let g = VendorKey::Glance;
        assert_eq!(guard.admit(g, "acme", true).await, Ok(()));
        assert_eq!(guard.admit(g, "acme", false).await, Ok(()), "an uncounted retry passes an untripped account");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(guard.admit(g, "acme", true).await, Ok(()), "the first one left the window");
    }

    #[tokio::test(start_paused = true)]
    async fn the_share_of_active_links_trips_first_when_it_is_lower() {
        let guard = Safeguard::new(&settings(20, Duration::from_secs(600)), None);
        let g = VendorKey::Glance;
        // 5 % of 40 active links: 2.
        guard.observe(g, "acme", 0, Some(40)).await;
        assert_eq!(guard.admit(g, "acme", true).await, Ok(()));
        assert_eq!(guard.admit(g, "acme", true).await, Ok(()));
        assert_eq!(guard.admit(g, "acme", true).await, Err(Hold::Tripped { count: 2, limit: 2, by: Limit::MaxShare }));
        // A tiny account still gets one removal; an unknown one only the count.
        assert_eq!(guard.limit("tiny").0, 20);
        guard.observe(g, "tiny", 0, Some(3)).await;
        assert_eq!(guard.limit("tiny"), (1, Limit::MaxShare));
    }

    #[tokio::test(start_paused = true)]
    async fn a_non_empty_held_queue_keeps_the_trip_and_an_emptied_one_clears_it_after_the_grace() {
        let s = settings(5, Duration::from_secs(600));
        let guard = Safeguard::new(&s, None);
        let g = VendorKey::Glance;
        // A restart: nothing counted, but the held queue still holds the account's jobs.
        assert!(guard.observe(g, "acme", 3, None).await);
        assert_eq!(guard.admit(g, "acme", true).await, Err(Hold::AlreadyTripped));
        assert_eq!(guard.tripped(), vec![Tripped { account: "acme".into(), vendor: g, held: 3 }]);
        // Emptied by an operator: still tripped within the grace (a hold may be in flight)...
        assert!(guard.observe(g, "acme", 0, None).await);
        tokio::time::advance(guard.grace).await;
        // ...then clear, with a fresh window.
        assert!(!guard.observe(g, "acme", 0, None).await);
        assert!(guard.tripped().is_empty());
        for _ in 0..5 {
            assert_eq!(guard.admit(g, "acme", true).await, Ok(()));
        }
    }

    #[tokio::test]
    async fn the_share_is_of_the_accounts_active_links_in_the_ledger() {
        use crate::ledger::{ActiveLink, IdentityKey, Ledger, Write};
        let ledger = Ledger::in_memory().await.unwrap();
        let link = |account: &str, identity: &str| {
            Write::Active(ActiveLink {
                key: IdentityKey { vendor: VendorKey::Glance, account: account.into(), identity: identity.into() },
                identity_extra: None,
                person: None,
                job_id: format!("job-{identity}"),
                correlation_id: None,
                vendor_user_id: None,
                at: 1,
            })
        };
        ledger.apply(&[link("acme", "a"), link("acme", "b"), link("acme", "c"), link("other", "d")]).await.unwrap();
        assert_eq!(active_links(&ledger, VendorKey::Glance, "acme").await, Some(3));
        assert_eq!(active_links(&ledger, VendorKey::Netsapiens, "acme").await, Some(0), "another vendor's account");
        assert_eq!(active_links(&ledger, VendorKey::Glance, "other").await, Some(1));
    }

    #[test]
    fn bad_settings_name_their_key() {
        type Edit = fn(&mut Settings);
        let cases: [(Edit, &str); 5] = [
            (|s| s.safeguard.max_removals = 0, "safeguard.max_removals"),
            (|s| s.safeguard.window = Duration::ZERO, "safeguard.window"),
            (|s| s.safeguard.max_share = 0.0, "safeguard.max_share"),
            (|s| s.safeguard.max_share = 1.5, "safeguard.max_share"),
            (|s| s.topology.held_queue_prefix = "p".repeat(200), "topology.held_queue_prefix"),
        ];
        for (edit, key) in cases {
            let mut s = settings(20, Duration::from_secs(600));
            s.accounts.insert("a".repeat(64), crate::sandbox::account(VendorKey::Glance, "http://127.0.0.1:1"));
            assert!(s.check().is_ok(), "the defaults pass");
            edit(&mut s);
            let e = s.check().unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn reasons_name_the_setting_to_look_at() {
        let w = Duration::from_secs(600);
        let r = Hold::Tripped { count: 20, limit: 20, by: Limit::MaxRemovals }.reason(w);
        assert!(r.contains("safeguard.max_removals") && r.contains("10m"), "{r}");
        assert!(Hold::Tripped { count: 2, limit: 2, by: Limit::MaxShare }.reason(w).contains("safeguard.max_share"));
    }

    /// Against a real Redis (`PROVISIONER_TEST_REDIS_URL`, else the local one).
    async fn redis_guard(max_removals: u32) -> (Safeguard, Safeguard) {
        let url = std::env::var("PROVISIONER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
        let mut s = settings(max_removals, Duration::from_secs(600));
        s.rate_limit.redis_key_prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
        s.amqp.confirm_timeout = Duration::from_millis(200);
        s.safeguard.refresh = Duration::from_millis(100);
        let link = RedisLink::start(&secrecy::SecretString::from(url), &s.rate_limit).unwrap();
        assert!(link.wait_up(Duration::from_secs(5)).await, "these tests need a Redis at 127.0.0.1:6379");
        // Two replicas sharing one Redis.
        (Safeguard::new(&s, Some(link.clone())), Safeguard::new(&s, Some(link)))
    }

    #[tokio::test]
    async fn with_redis_the_window_and_the_trip_are_shared_by_replicas() {
        let (a, b) = redis_guard(3).await;
        let g = VendorKey::Glance;
        assert_eq!(a.admit(g, "acme", true).await, Ok(()));
        assert_eq!(b.admit(g, "acme", true).await, Ok(()));
        assert_eq!(a.admit(g, "acme", true).await, Ok(()));
        assert_eq!(b.admit(g, "acme", true).await, Err(Hold::Tripped { count: 3, limit: 3, by: Limit::MaxRemovals }));
        assert_eq!(a.admit(g, "acme", true).await, Err(Hold::AlreadyTripped), "the other replica sees the trip");
        assert_eq!(a.admit(g, "other", true).await, Ok(()));
        // The held queue empty past the grace (0.3 s here): the fleet's trip and window clear.
        assert!(a.observe(g, "acme", 0, None).await, "within the grace");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while b.observe(g, "acme", 0, None).await {
            assert!(std::time::Instant::now() < deadline, "the trip never cleared");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!a.observe(g, "acme", 0, None).await);
        assert_eq!(a.admit(g, "acme", true).await, Ok(()), "a fresh window");
        // A non-empty held queue trips every replica again.
        assert!(b.observe(g, "acme", 1, None).await);
        assert_eq!(a.admit(g, "acme", true).await, Err(Hold::AlreadyTripped));
    }

    #[tokio::test]
    async fn without_redis_each_replica_keeps_its_share_of_the_limit() {
        // Nothing listens on port 1: the link never comes up.
        let mut s = settings(3, Duration::from_secs(600));
        s.rate_limit.replicas_hint = 3;
        let link =
            RedisLink::start(&secrecy::SecretString::from("redis://127.0.0.1:1/0".to_owned()), &s.rate_limit).unwrap();
        let guard = Safeguard::new(&s, Some(link));
        let g = VendorKey::Glance;
        assert_eq!(guard.admit(g, "acme", true).await, Ok(()));
        assert_eq!(
            guard.admit(g, "acme", true).await,
            Err(Hold::Tripped { count: 1, limit: 1, by: Limit::MaxRemovals }),
            "3 removals over a hint of 3 replicas: 1 each"
        );
    }
}
