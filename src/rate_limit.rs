//! Per-account admission: a concurrency cap, a rate limit (governor) and an adaptive
//! slow-down when the vendor answers 429.
//!
//! None of the three vendors documents a rate limit, so the configured rate is a guess an
//! operator tunes; what the vendor *says* (429 and `Retry-After`) overrides it. The
//! slow-down is multiplicative (halve the rate on every 429) and the recovery additive (a
//! step back up per quiet interval), the AIMD rule TCP uses: it backs off fast enough to
//! stop a storm of 429s and climbs back without oscillating.

use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A request rate, written `<count>/<period>`: `10/s`, `600/min`, `1/2s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    count: NonZeroU32,
    per: Duration,
}

impl Rate {
    pub fn per_second(count: u32) -> Self {
        Self { count: NonZeroU32::new(count.max(1)).expect("at least 1"), per: Duration::from_secs(1) }
    }

    /// Requests per second, for logs and arithmetic.
    pub fn per_sec(self) -> f64 {
        f64::from(self.count.get()) / self.per.as_secs_f64()
    }

    /// The time between two requests at this rate.
    pub fn interval(self) -> Duration {
        self.per / self.count.get()
    }

    /// The burst (calls that may go out at once at full speed): one second's worth, at most
    /// the rate's count, at least 1.
    pub fn burst(self) -> NonZeroU32 {
        let per_second =
            NonZeroU32::new(self.per_sec().ceil().min(f64::from(u32::MAX)) as u32).unwrap_or(NonZeroU32::MIN);
        per_second.min(self.count)
    }

    /// This rate shared by `n` replicas: each gets `1/n` of it (the same count over `n` times
    /// the period), so `20/s` over 3 is `20/3s`.
    pub fn divided(self, n: NonZeroU32) -> Self {
        Self { count: self.count, per: self.per.saturating_mul(n.get()) }
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let usage = || format!("{s:?} is not a rate; write it as <count>/<period>, e.g. 10/s, 600/min or 1/2s");
        let (count, per) = s.split_once('/').ok_or_else(usage)?;
        let count: NonZeroU32 = count.trim().parse().map_err(|_| usage())?;
        let per = per.trim();
        // `10/s` reads better than `10/1s`; humantime needs the number.
        let per = if per.starts_with(|c: char| c.is_ascii_digit()) { per.to_owned() } else { format!("1{per}") };
        let per = humantime::parse_duration(&per).map_err(|_| usage())?;
        if per.is_zero() || (per / count.get()).is_zero() {
            return Err(format!("{s:?} is faster than one request per nanosecond"));
        }
        Ok(Self { count, per })
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.per {
            d if d == Duration::from_secs(1) => write!(f, "{}/s", self.count),
            d if d == Duration::from_secs(60) => write!(f, "{}/min", self.count),
            d => write!(f, "{}/{}", self.count, humantime::format_duration(d)),
        }
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Where an account's limits are kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// In each replica's memory: N replicas allow N times an account's rate.
    #[default]
    Local,
    /// In Redis, shared by every replica (`crate::shared_limits`).
    Redis,
}

/// `[rate_limit]`: where limits are kept, and how an account slows down on 429 and recovers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptiveSettings {
    /// `local` (per replica) or `redis` (shared by every replica).
    pub backend: Backend,
    /// With `backend = "redis"`: a `redis://` or `rediss://` URL without a password, or an
    /// `env:` or `file:` secret holding the whole URL when it carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Every Redis key starts with this, so several deployments can share one Redis.
    pub redis_key_prefix: String,
    /// The longest any one Redis call may take; past it the replica falls back to its local share.
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
    /// How many replicas to assume when Redis is unreachable: each then keeps
    /// `rate / replicas_hint` and `concurrency / replicas_hint` (rounded up) of every account.
    pub replicas_hint: u32,
    /// How long a replica's concurrency slot lives in Redis without being renewed: the slots
    /// of a replica that died come back within it. Renewed every third of it.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// The rate is multiplied by this on every 429 (0 < x < 1).
    pub slowdown: f64,
    /// The rate never drops below this share of the configured rate.
    pub min_share: f64,
    /// Share of the configured rate won back per `recovery_interval` without a 429.
    pub recovery_step: f64,
    #[serde(with = "humantime_serde")]
    pub recovery_interval: Duration,
    /// The longest `Retry-After` pause taken for one 429; a vendor asking for an hour is
    /// more likely wrong than serious, and the jobs are safer parked in a retry tier.
    #[serde(with = "humantime_serde")]
    pub max_pause: Duration,
    /// The longest a job's first call waits for its account (slot, pause, rate). Beyond
    /// it the job is parked in the shortest retry tier, without using it up, instead of
    /// being held in memory.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
}

impl Default for AdaptiveSettings {
    fn default() -> Self {
        Self {
            backend: Backend::Local,
            redis_url: None,
            redis_key_prefix: "provisioner".into(),
            redis_timeout: Duration::from_millis(500),
            replicas_hint: 3,
            lease_ttl: Duration::from_secs(15),
            slowdown: 0.5,
            min_share: 0.05,
            recovery_step: 0.1,
            recovery_interval: Duration::from_secs(5),
            max_pause: Duration::from_secs(60),
            max_wait: Duration::from_secs(30),
        }
    }
}

impl AdaptiveSettings {
    /// The rules serde cannot express, as (key, message).
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if !(self.slowdown > 0.0 && self.slowdown < 1.0) {
            return Err(("rate_limit.slowdown", "must be between 0 and 1 (exclusive)"));
        }
        if !(self.min_share > 0.0 && self.min_share <= 1.0) {
            return Err(("rate_limit.min_share", "must be above 0 and at most 1"));
        }
        if !(self.recovery_step > 0.0 && self.recovery_step <= 1.0) {
            return Err(("rate_limit.recovery_step", "must be above 0 and at most 1"));
        }
        if self.max_wait.is_zero() {
            return Err(("rate_limit.max_wait", "must be longer than 0s"));
        }
        if self.recovery_interval.is_zero() {
            return Err(("rate_limit.recovery_interval", "must be longer than 0s"));
        }
        if self.replicas_hint == 0 {
            return Err(("rate_limit.replicas_hint", "must be at least 1"));
        }
        if self.lease_ttl < Duration::from_millis(300) {
            return Err(("rate_limit.lease_ttl", "must be at least 300ms"));
        }
        if self.redis_timeout.is_zero() || self.redis_timeout >= self.lease_ttl {
            return Err(("rate_limit.redis_timeout", "must be longer than 0s and shorter than rate_limit.lease_ttl"));
        }
        let prefix = &self.redis_key_prefix;
        if prefix.is_empty()
            || prefix.len() > 64
            || !prefix.chars().all(|c| c.is_ascii_graphic() && c != '{' && c != '}')
        {
            return Err(("rate_limit.redis_key_prefix", "must be 1 to 64 printable ASCII characters without braces"));
        }
        if self.backend == Backend::Redis && self.redis_url.is_none() {
            return Err(("rate_limit.redis_url", "must be set when rate_limit.backend is \"redis\""));
        }
        Ok(())
    }
}

/// governor's clock on tokio's time, so the limiter follows a paused test clock like every
/// other timer here.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = std::time::Instant;

    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<std::time::Instant>>;

/// The adaptive part: how far below the configured rate the account runs now.
struct Pace {
    share: f64,
    limiter: Arc<Limiter>,
    /// When the last 429 arrived or the last recovery step was taken.
    since: Instant,
    /// No call before this (the vendor's `Retry-After`).
    paused_until: Option<Instant>,
    /// Bumped at every slow-down. The 429s of calls admitted before it answer the old
    /// pace, which is already cut: one burst of 429s is one congestion event, one cut.
    generation: u64,
}

/// What the vendor said about the pace of the last call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feedback {
    /// 429: slow down, and wait `retry_after` when the vendor named it.
    Throttled { retry_after: Option<Duration> },
    /// Anything else: the pace is fine.
    Fine,
}

/// Why no slot was handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("shutdown began while waiting for the account's rate limit")]
    ShutDown,
    #[error("the account's rate limit would hold the call past its deadline")]
    PastDeadline,
}

/// One account's admission control. Cheap to share; every call of the account goes through it.
pub struct AccountLimiter {
    rate: Rate,
    slots: Arc<Semaphore>,
    adaptive: AdaptiveSettings,
    pace: Mutex<Pace>,
}

/// Held for the length of one vendor call.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    /// How long the call waited to be admitted.
    pub waited: Duration,
    /// The pace generation the call was admitted under.
    generation: u64,
}

impl Slot {
    /// What to hand to [`AccountLimiter::feedback`] once the call is answered; the slot
    /// itself can be released first.
    pub fn ticket(&self) -> PaceTicket {
        PaceTicket(self.generation)
    }
}

/// Which pace a call was admitted under.
#[derive(Clone, Copy, Debug)]
pub struct PaceTicket(u64);

impl AccountLimiter {
    pub fn new(rate: Rate, concurrency: NonZeroU32, adaptive: AdaptiveSettings) -> Self {
        let pace = Pace {
            share: 1.0,
            limiter: Arc::new(limiter(rate, 1.0, true)),
            since: Instant::now(),
            paused_until: None,
            generation: 0,
        };
        Self { rate, slots: Arc::new(Semaphore::new(concurrency.get() as usize)), adaptive, pace: Mutex::new(pace) }
    }

    /// Waits for a free slot, for the end of any `Retry-After` pause, and for the rate limit,
    /// in that order. Gives up when `shutdown` begins, or as soon as it is clear the call could
    /// not go out by `deadline`.
    pub async fn admit(&self, shutdown: &CancellationToken, deadline: Option<Instant>) -> Result<Slot, Refusal> {
        let started = Instant::now();
        let far = started + Duration::from_secs(86_400 * 365);
        // Biased, shutdown first: once it has begun no call may be admitted, even when a
        // slot is free at the same moment.
        let permit = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Err(Refusal::ShutDown),
            _ = tokio::time::sleep_until(deadline.unwrap_or(far)) => return Err(Refusal::PastDeadline),
            p = self.slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        loop {
            let (limiter, paused_until, generation) = {
                let mut pace = self.pace.lock().expect("never poisoned");
                self.recover(&mut pace);
                (pace.limiter.clone(), pace.paused_until, pace.generation)
            };
            if shutdown.is_cancelled() {
                return Err(Refusal::ShutDown);
            }
            let now = Instant::now();
            let wait = match paused_until.filter(|until| *until > now) {
                Some(until) => until - now,
                None => match limiter.check() {
                    Ok(()) => return Ok(Slot { _permit: permit, waited: started.elapsed(), generation }),
                    Err(not_until) => not_until.wait_time_from(TokioClock.now()),
                },
            };
            if deadline.is_some_and(|d| now.checked_add(wait).is_none_or(|ready| ready > d)) {
                return Err(Refusal::PastDeadline);
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Err(Refusal::ShutDown),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Adjusts the pace after a call. Returns the new share of the configured rate when it
    /// changed, for the log.
    pub fn feedback(&self, admitted: PaceTicket, feedback: Feedback) -> Option<f64> {
        let mut pace = self.pace.lock().expect("never poisoned");
        match feedback {
            Feedback::Fine => {
                let before = pace.share;
                self.recover(&mut pace);
                (pace.share != before).then_some(pace.share)
            }
            Feedback::Throttled { retry_after } => {
                let now = Instant::now();
                if let Some(wait) = retry_after {
                    let until = now.checked_add(wait.min(self.adaptive.max_pause)).unwrap_or(now);
                    pace.paused_until = Some(pace.paused_until.map_or(until, |u| u.max(until)));
                }
                if admitted.0 < pace.generation {
                    return None;
                }
                pace.generation += 1;
                let share = (pace.share * self.adaptive.slowdown).max(self.adaptive.min_share);
                self.set_share(&mut pace, share, now);
                Some(share)
            }
        }
    }

    /// The share of the configured rate the account runs at now (1 = full speed).
    pub fn share(&self) -> f64 {
        let mut pace = self.pace.lock().expect("never poisoned");
        self.recover(&mut pace);
        pace.share
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// One recovery step per quiet interval since the last change.
    fn recover(&self, pace: &mut Pace) {
        if pace.share >= 1.0 {
            return;
        }
        let now = Instant::now();
        let steps = (now - pace.since).as_secs_f64() / self.adaptive.recovery_interval.as_secs_f64();
        let steps = steps.floor();
        if steps >= 1.0 {
            let share = (pace.share + steps * self.adaptive.recovery_step).min(1.0);
            let since = pace.since + self.adaptive.recovery_interval.mul_f64(steps);
            self.set_share(pace, share, since);
        }
    }

    fn set_share(&self, pace: &mut Pace, share: f64, since: Instant) {
        pace.since = since;
        if share != pace.share {
            pace.share = share;
            // A fresh limiter forgets the old one's burst credit, which is what a slow-down
            // wants: no burst right after a 429.
            pace.limiter = Arc::new(limiter(self.rate, share, false));
        }
    }
}

/// The burst (calls that may go out at once) is one second's worth at the configured rate,
/// only until the first slow-down: `600/min` and `10/s` then behave alike, and recovering
/// to full speed does not hand out a burst that would bring the 429s straight back.
fn limiter(rate: Rate, share: f64, fresh: bool) -> Limiter {
    let interval = rate.interval().div_f64(share).max(Duration::from_nanos(1));
    let burst = if fresh { rate.burst() } else { NonZeroU32::MIN };
    let quota = Quota::with_period(interval).expect("interval is above zero").allow_burst(burst);
    RateLimiter::direct_with_clock(quota, TokioClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter_of(rate: &str, concurrency: u32) -> AccountLimiter {
        AccountLimiter::new(rate.parse().unwrap(), NonZeroU32::new(concurrency).unwrap(), AdaptiveSettings::default())
    }

    #[test]
    fn rates_parse_and_print_in_the_operators_words() {
        for (text, per_sec, shown) in
            [("10/s", 10.0, "10/s"), ("600/min", 10.0, "600/min"), ("1/2s", 0.5, "1/2s"), ("5/1s", 5.0, "5/s")]
        {
            let r: Rate = text.parse().unwrap();
            assert_eq!((r.per_sec(), r.to_string().as_str()), (per_sec, shown), "{text}");
        }
        for bad in ["10", "0/s", "ten/s", "10/soon", "10/0s"] {
            let err = bad.parse::<Rate>().unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn calls_are_spaced_at_the_configured_rate_after_the_burst() {
        let l = limiter_of("4/s", 100);
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..12 {
            let _slot = l.admit(&CancellationToken::new(), None).await.unwrap();
            times.push((Instant::now() - start).as_millis());
        }
        // A burst of 4, then one every 250 ms.
        assert_eq!(times, [0, 0, 0, 0, 250, 500, 750, 1000, 1250, 1500, 1750, 2000]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_concurrency_cap_holds_calls_until_a_slot_frees() {
        let l = Arc::new(limiter_of("1000/s", 2));
        let a = l.admit(&CancellationToken::new(), None).await.unwrap();
        let _b = l.admit(&CancellationToken::new(), None).await.unwrap();
        let l2 = l.clone();
        let third = tokio::spawn(async move { l2.admit(&CancellationToken::new(), None).await.map(|s| s.waited) });
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!third.is_finished(), "a third call must wait for a slot");
        drop(a);
        assert_eq!(third.await.unwrap().unwrap(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_halves_the_rate_honours_retry_after_and_recovers_step_by_step() {
        let l = limiter_of("10/s", 100);
        let slot = l.admit(&CancellationToken::new(), None).await.unwrap();
        let (before, _) = (slot.ticket(), drop(slot));
        assert_eq!(l.feedback(before, Feedback::Throttled { retry_after: Some(Duration::from_secs(2)) }), Some(0.5));
        assert_eq!(
            l.feedback(before, Feedback::Throttled { retry_after: None }),
            None,
            "a 429 to a call admitted before the cut answers the old pace: no second cut"
        );
        let start = Instant::now();
        let after = l.admit(&CancellationToken::new(), None).await.unwrap().ticket();
        assert_eq!(Instant::now() - start, Duration::from_secs(2), "the Retry-After pause comes first");
        // Now 5/s without burst: 200 ms apart.
        let before = Instant::now();
        l.admit(&CancellationToken::new(), None).await.unwrap();
        assert_eq!(Instant::now() - before, Duration::from_millis(200));

        assert_eq!(l.feedback(after, Feedback::Throttled { retry_after: None }), Some(0.25));
        assert_eq!(l.share(), 0.25);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!((l.share() - 0.35).abs() < 1e-9, "{}", l.share());
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(l.share(), 1.0, "recovers fully, and no further");
        assert_eq!(l.feedback(after, Feedback::Fine), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_slow_down_has_a_floor_and_retry_after_a_cap() {
        let l = limiter_of("10/s", 100);
        for _ in 0..20 {
            let t = l.admit(&CancellationToken::new(), None).await.unwrap().ticket();
            l.feedback(t, Feedback::Throttled { retry_after: None });
        }
        assert_eq!(l.share(), AdaptiveSettings::default().min_share);
        let t = l.admit(&CancellationToken::new(), None).await.unwrap().ticket();
        l.feedback(t, Feedback::Throttled { retry_after: Some(Duration::from_secs(3600)) });
        let start = Instant::now();
        l.admit(&CancellationToken::new(), None).await.unwrap();
        assert_eq!(Instant::now() - start, AdaptiveSettings::default().max_pause);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_cannot_go_out_by_its_deadline_is_refused_at_once() {
        let l = limiter_of("1/s", 1);
        l.admit(&CancellationToken::new(), None).await.unwrap();
        let start = Instant::now();
        let soon = Some(start + Duration::from_millis(500));
        assert_eq!(l.admit(&CancellationToken::new(), soon).await.err(), Some(Refusal::PastDeadline));
        assert_eq!(Instant::now(), start, "refused without waiting");
        let later = Some(start + Duration::from_secs(2));
        let slot = l.admit(&CancellationToken::new(), later).await.unwrap();
        assert_eq!(slot.waited, Duration::from_secs(1));
        // A full house: the deadline ends the wait for a slot too.
        let soon = Some(Instant::now() + Duration::from_millis(300));
        assert_eq!(l.admit(&CancellationToken::new(), soon).await.err(), Some(Refusal::PastDeadline));
    }

    #[tokio::test(start_paused = true)]
    async fn no_call_is_admitted_once_shutdown_has_begun_even_with_a_free_slot() {
        let l = limiter_of("1000/s", 10);
        let stop = CancellationToken::new();
        stop.cancel();
        for _ in 0..100 {
            assert_eq!(l.admit(&stop, None).await.err(), Some(Refusal::ShutDown));
        }
    }

    #[test]
    fn a_rate_divided_among_replicas_keeps_its_count_over_a_longer_period() {
        let third = "20/s".parse::<Rate>().unwrap().divided(NonZeroU32::new(3).unwrap());
        assert!((third.per_sec() - 20.0 / 3.0).abs() < 1e-9);
        assert_eq!((third.burst().get(), third.to_string().as_str()), (7, "20/3s"));
    }

    #[test]
    fn the_burst_is_one_seconds_worth_whatever_the_period() {
        for (rate, burst) in [("10/s", 10), ("600/min", 10), ("1/2s", 1), ("3/s", 3)] {
            let l = limiter(rate.parse().unwrap(), 1.0, true);
            let admitted = (0..100).take_while(|_| l.check().is_ok()).count();
            assert_eq!(admitted, burst, "{rate}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_the_wait() {
        let l = limiter_of("1/min", 1);
        let stop = CancellationToken::new();
        l.admit(&stop, None).await.unwrap();
        let s = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            s.cancel();
        });
        assert_eq!(l.admit(&stop, None).await.err(), Some(Refusal::ShutDown));
    }
}
