//! The circuit breaker of one vendor account: stop calling a vendor that is failing, and
//! let one probe find out when it is back.
//!
//! Closed: calls go through and their results fill a sliding window. When the window holds
//! at least `min_calls` and the failure ratio reaches `failure_ratio`, or at once on an auth
//! failure, the breaker opens. Open: no call goes through for `open_for` (doubling on each
//! failed probe, up to `max_open_for`); the caller parks the job in a retry tier. Then the
//! first caller becomes the half-open probe, alone: success closes the breaker, failure
//! opens it again.
//!
//! Only the vendor's health counts. A rejected or conflicting user proves the vendor is up;
//! a 429 is the rate limiter's business.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::contract::VendorKey;

/// `[circuit_breaker]`: one set of rules for every account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSettings {
    /// Opens when at least this share of the calls in the window failed (0 < x ≤ 1).
    pub failure_ratio: f64,
    /// ...and the window holds at least this many calls, so two failures in a quiet hour
    /// do not open it.
    pub min_calls: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Also opens after this many failed calls in a row, however long they took: a slow
    /// account (one call at a time, long timeouts) may never fill the window.
    pub consecutive_failures: u32,
    /// How long it stays open before a probe; doubled after each failed probe.
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
    #[serde(with = "humantime_serde")]
    pub max_open_for: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_ratio: 0.5,
            min_calls: 10,
            window: Duration::from_secs(30),
            consecutive_failures: 5,
            open_for: Duration::from_secs(15),
            max_open_for: Duration::from_secs(300),
        }
    }
}

impl BreakerSettings {
    /// The rules serde cannot express, as (key, message).
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if !(self.failure_ratio > 0.0 && self.failure_ratio <= 1.0) {
            return Err(("circuit_breaker.failure_ratio", "must be above 0 and at most 1"));
        }
        if self.consecutive_failures == 0 {
            return Err(("circuit_breaker.consecutive_failures", "must be at least 1"));
        }
        if self.min_calls == 0 {
            return Err(("circuit_breaker.min_calls", "must be at least 1"));
        }
        if self.window < Duration::from_millis(BUCKETS as u64) {
            return Err(("circuit_breaker.window", "must be at least 10ms"));
        }
        if self.open_for.is_zero() || self.max_open_for < self.open_for {
            return Err(("circuit_breaker.open_for", "must be longer than 0s and at most max_open_for"));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

/// What one vendor call said about the vendor's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The vendor answered (success, rejection, conflict).
    Healthy,
    /// 5xx, timeout, reset, garbage.
    Failed,
    /// The credentials or the account configuration are wrong: no call can succeed.
    AuthFailed,
    /// Says nothing about health (429, or a call that never completed).
    Neutral,
}

/// A state change, for the caller to log and count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub reason: String,
}

/// Whether a call may go to the vendor now.
#[derive(Debug)]
pub enum Admission<'a> {
    Call(Ticket<'a>),
    /// Open (or a probe is already out): try again in about `retry_in`.
    Refused {
        retry_in: Duration,
    },
}

/// Permission for one call. Hand it back with [`CircuitBreaker::record`]; a ticket dropped
/// unrecorded (a panic, a cancelled future) frees the probe slot, so the breaker can never be
/// stuck half-open.
#[derive(Debug)]
pub struct Ticket<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    recorded: bool,
}

impl Ticket<'_> {
    /// True for the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.probe && !self.recorded {
            let mut inner = self.breaker.inner.lock().expect("never poisoned");
            if inner.state == State::HalfOpen {
                inner.probing = false;
            }
        }
    }
}

/// What `/readyz` shows about one breaker.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub state: State,
    /// Until the next probe may go out, while open.
    pub retry_in: Option<Duration>,
    /// Why it last opened.
    pub reason: Option<String>,
}

const BUCKETS: usize = 10;

/// Counts per tenth of the window; a fixed array keeps memory flat at any call rate.
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    epoch: u64,
    calls: u32,
    failures: u32,
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// When an open breaker lets a probe through.
    until: Instant,
    /// Opens since it was last closed, for the doubling.
    opens: u32,
    probing: bool,
    reason: Option<String>,
    buckets: [Bucket; BUCKETS],
    /// Failed calls since the last healthy one.
    consecutive: u32,
}

#[derive(Debug)]
pub struct CircuitBreaker {
    settings: BreakerSettings,
    origin: Instant,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    pub fn new(settings: BreakerSettings) -> Self {
        let now = Instant::now();
        Self {
            settings,
            origin: now,
            inner: Mutex::new(Inner {
                state: State::Closed,
                until: now,
                opens: 0,
                probing: false,
                reason: None,
                buckets: [Bucket::default(); BUCKETS],
                consecutive: 0,
            }),
        }
    }

    /// Asks to call the vendor. An open breaker whose time is up turns half-open here and
    /// makes this caller the probe.
    pub fn admit(&self) -> (Admission<'_>, Option<Transition>) {
        let mut inner = self.inner.lock().expect("never poisoned");
        let now = Instant::now();
        match inner.state {
            State::Closed => (self.ticket(false), None),
            State::Open if now < inner.until => (Admission::Refused { retry_in: inner.until - now }, None),
            State::Open => {
                inner.state = State::HalfOpen;
                inner.probing = true;
                let t = Transition { from: State::Open, to: State::HalfOpen, reason: "probing the vendor".into() };
                (self.ticket(true), Some(t))
            }
            State::HalfOpen if inner.probing => (Admission::Refused { retry_in: self.settings.open_for }, None),
            State::HalfOpen => {
                inner.probing = true;
                (self.ticket(true), None)
            }
        }
    }

    fn ticket(&self, probe: bool) -> Admission<'_> {
        Admission::Call(Ticket { breaker: self, probe, recorded: false })
    }

    /// Records the result of an admitted call.
    pub fn record(&self, mut ticket: Ticket<'_>, verdict: Verdict) -> Option<Transition> {
        ticket.recorded = true;
        let mut inner = self.inner.lock().expect("never poisoned");
        let now = Instant::now();
        if ticket.probe && inner.state == State::HalfOpen {
            inner.probing = false;
            return match verdict {
                Verdict::Healthy => {
                    inner.state = State::Closed;
                    inner.opens = 0;
                    inner.consecutive = 0;
                    inner.buckets = [Bucket::default(); BUCKETS];
                    Some(Transition { from: State::HalfOpen, to: State::Closed, reason: "the probe succeeded".into() })
                }
                Verdict::Failed => Some(self.open(&mut inner, now, "the probe failed".into())),
                Verdict::AuthFailed => Some(self.open(&mut inner, now, "the probe failed authentication".into())),
                // Nothing learned; the next caller probes again.
                Verdict::Neutral => None,
            };
        }
        if inner.state != State::Closed {
            // A call admitted before the breaker opened; its result changes nothing now.
            return None;
        }
        match verdict {
            Verdict::Neutral => None,
            Verdict::AuthFailed => {
                Some(self.open(&mut inner, now, "the vendor refused the account's credentials".into()))
            }
            Verdict::Healthy | Verdict::Failed => {
                let failed = verdict == Verdict::Failed;
                let epoch = self.epoch(now);
                let bucket = &mut inner.buckets[(epoch % BUCKETS as u64) as usize];
                if bucket.epoch != epoch {
                    *bucket = Bucket { epoch, ..Bucket::default() };
                }
                bucket.calls += 1;
                bucket.failures += u32::from(failed);
                inner.consecutive = if failed { inner.consecutive + 1 } else { 0 };
                let (calls, failures) = Self::totals(&inner.buckets, epoch);
                let by_ratio = failed
                    && calls >= self.settings.min_calls
                    && f64::from(failures) >= self.settings.failure_ratio * f64::from(calls);
                if by_ratio {
                    let window = humantime::format_duration(self.settings.window);
                    Some(self.open(
                        &mut inner,
                        now,
                        format!("{failures} of the last {calls} calls failed within {window}"),
                    ))
                } else if inner.consecutive >= self.settings.consecutive_failures {
                    let n = inner.consecutive;
                    Some(self.open(&mut inner, now, format!("the last {n} calls failed in a row")))
                } else {
                    None
                }
            }
        }
    }

    /// Opens a closed breaker for `open_for` because another replica opened the account's
    /// breaker (`crate::shared_limits`); an open or half-open one is left alone.
    pub fn trip(&self, open_for: Duration, reason: &str) -> Option<Transition> {
        let mut inner = self.inner.lock().expect("never poisoned");
        if inner.state != State::Closed {
            return None;
        }
        let now = Instant::now();
        inner.state = State::Open;
        inner.until = now + open_for;
        inner.opens += 1;
        inner.probing = false;
        inner.consecutive = 0;
        inner.reason = Some(reason.to_owned());
        Some(Transition {
            from: State::Closed,
            to: State::Open,
            reason: format!("{reason}; next probe in {}", humantime::format_duration(open_for)),
        })
    }

    /// `None` while closed; otherwise about how long until calls go through again.
    pub fn retry_in(&self) -> Option<Duration> {
        let inner = self.inner.lock().expect("never poisoned");
        match inner.state {
            State::Closed => None,
            State::Open => Some(inner.until.saturating_duration_since(Instant::now())),
            State::HalfOpen => Some(self.settings.open_for),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let inner = self.inner.lock().expect("never poisoned");
        let now = Instant::now();
        Snapshot {
            state: inner.state,
            retry_in: (inner.state == State::Open).then(|| inner.until.saturating_duration_since(now)),
            reason: inner.reason.clone(),
        }
    }

    fn open(&self, inner: &mut Inner, now: Instant, reason: String) -> Transition {
        let from = inner.state;
        let doubling = 2u32.saturating_pow(inner.opens.min(16));
        let open_for = self.settings.open_for.saturating_mul(doubling).min(self.settings.max_open_for);
        inner.state = State::Open;
        inner.until = now + open_for;
        inner.opens += 1;
        inner.probing = false;
        inner.consecutive = 0;
        inner.reason = Some(reason.clone());
        Transition {
            from,
            to: State::Open,
            reason: format!("{reason}; next probe in {}", humantime::format_duration(open_for)),
        }
    }

    fn epoch(&self, now: Instant) -> u64 {
        let bucket = self.settings.window / BUCKETS as u32;
        ((now - self.origin).as_nanos() / bucket.as_nanos().max(1)) as u64
    }

    fn totals(buckets: &[Bucket; BUCKETS], epoch: u64) -> (u32, u32) {
        buckets
            .iter()
            .filter(|b| b.epoch + (BUCKETS as u64) > epoch)
            .fold((0, 0), |(c, f), b| (c + b.calls, f + b.failures))
    }
}

/// Every account's breaker, for `/readyz`.
#[derive(Clone, Default)]
pub struct CircuitBoard(Arc<Vec<(String, VendorKey, Arc<CircuitBreaker>)>>);

impl CircuitBoard {
    pub fn new(breakers: Vec<(String, VendorKey, Arc<CircuitBreaker>)>) -> Self {
        Self(Arc::new(breakers))
    }

    /// One line per account: `circuit <vendor>/<account>: <state>[, detail]`.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for (account, vendor, breaker) in self.0.iter() {
            let s = breaker.snapshot();
            let _ = write!(out, "circuit {vendor}/{account}: {}", s.state.as_str());
            if let Some(wait) = s.retry_in {
                let wait = Duration::from_secs(wait.as_secs_f64().ceil() as u64);
                let _ = write!(out, ", next probe in {}", humantime::format_duration(wait));
            }
            if let (Some(reason), false) = (&s.reason, s.state == State::Closed) {
                let _ = write!(out, " ({reason})");
            }
            out.push('\n');
        }
        out
    }

    /// Each account's breaker as `(account, vendor, snapshot)`, for `/readyz` as JSON.
    pub fn snapshots(&self) -> Vec<(&str, VendorKey, Snapshot)> {
        self.0.iter().map(|(account, vendor, breaker)| (account.as_str(), *vendor, breaker.snapshot())).collect()
    }

    /// Accounts whose breaker is not closed.
    pub fn open_count(&self) -> usize {
        self.0.iter().filter(|(_, _, b)| b.snapshot().state != State::Closed).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerSettings {
            failure_ratio: 0.5,
            min_calls: 4,
            window: Duration::from_secs(10),
            consecutive_failures: 100,
            open_for: Duration::from_secs(5),
            max_open_for: Duration::from_secs(15),
        })
    }

    fn call(b: &CircuitBreaker, verdict: Verdict) -> Result<Option<Transition>, Duration> {
        match b.admit() {
            (Admission::Call(t), _) => Ok(b.record(t, verdict)),
            (Admission::Refused { retry_in }, _) => Err(retry_in),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_the_failure_ratio_only_with_enough_calls() {
        let b = breaker();
        assert_eq!(call(&b, Verdict::Failed), Ok(None));
        assert_eq!(call(&b, Verdict::Failed), Ok(None), "two calls are too few to judge");
        assert_eq!(call(&b, Verdict::Healthy), Ok(None));
        let t = call(&b, Verdict::Failed).unwrap().expect("3 of 4 failed: opens");
        assert_eq!((t.from, t.to), (State::Closed, State::Open));
        assert!(t.reason.contains("3 of the last 4 calls failed"), "{}", t.reason);
        assert_eq!(call(&b, Verdict::Healthy), Err(Duration::from_secs(5)));
        assert_eq!(b.snapshot().state, State::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn old_failures_slide_out_of_the_window() {
        let b = breaker();
        for _ in 0..3 {
            call(&b, Verdict::Failed).unwrap();
        }
        tokio::time::sleep(Duration::from_secs(11)).await;
        for _ in 0..3 {
            assert_eq!(call(&b, Verdict::Healthy), Ok(None));
        }
        assert_eq!(call(&b, Verdict::Failed), Ok(None), "1 of 4 in the window: stays closed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_of_failures_opens_it_even_when_too_slow_to_fill_the_window() {
        let b = CircuitBreaker::new(BreakerSettings {
            consecutive_failures: 3,
            min_calls: 100,
            ..BreakerSettings::default()
        });
        for _ in 0..2 {
            assert_eq!(call(&b, Verdict::Failed), Ok(None));
            tokio::time::sleep(Duration::from_secs(20)).await;
        }
        assert_eq!(call(&b, Verdict::Healthy), Ok(None), "a healthy call breaks the run");
        assert_eq!(call(&b, Verdict::Failed), Ok(None));
        assert_eq!(call(&b, Verdict::Neutral), Ok(None), "a 429 neither breaks nor extends it");
        assert_eq!(call(&b, Verdict::Failed), Ok(None));
        let t = call(&b, Verdict::Failed).unwrap().expect("three in a row");
        assert!(t.reason.contains("the last 3 calls failed in a row"), "{}", t.reason);
        assert_eq!(b.retry_in(), Some(BreakerSettings::default().open_for));
    }

    #[tokio::test(start_paused = true)]
    async fn an_auth_failure_opens_at_once() {
        let b = breaker();
        let t = call(&b, Verdict::AuthFailed).unwrap().unwrap();
        assert_eq!(t.to, State::Open);
        assert!(b.snapshot().reason.unwrap().contains("credentials"));
    }

    #[tokio::test(start_paused = true)]
    async fn one_probe_at_a_time_success_closes_failure_reopens_for_longer() {
        let b = breaker();
        call(&b, Verdict::AuthFailed).unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (probe, t) = b.admit();
        assert_eq!(t.unwrap().to, State::HalfOpen);
        let Admission::Call(probe) = probe else { panic!("the first caller after open_for probes") };
        assert!(matches!(b.admit().0, Admission::Refused { .. }), "only one probe at a time");
        let t = b.record(probe, Verdict::Failed).unwrap();
        assert_eq!((t.from, t.to), (State::HalfOpen, State::Open));
        assert_eq!(b.snapshot().retry_in, Some(Duration::from_secs(10)), "open_for doubles");

        tokio::time::sleep(Duration::from_secs(10)).await;
        call(&b, Verdict::Failed).unwrap();
        assert_eq!(b.snapshot().retry_in, Some(Duration::from_secs(15)), "capped at max_open_for");

        tokio::time::sleep(Duration::from_secs(15)).await;
        let t = call(&b, Verdict::Healthy).unwrap().unwrap();
        assert_eq!((t.from, t.to), (State::HalfOpen, State::Closed));
        assert_eq!(call(&b, Verdict::Failed), Ok(None), "closing starts a fresh window");
        call(&b, Verdict::AuthFailed).unwrap();
        assert_eq!(b.snapshot().retry_in, Some(Duration::from_secs(5)), "and a fresh doubling");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_probe_frees_the_probe_slot() {
        let b = breaker();
        call(&b, Verdict::AuthFailed).unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(b.admit());
        assert!(matches!(b.admit().0, Admission::Call(_)), "the next caller probes instead");
    }

    #[tokio::test(start_paused = true)]
    async fn the_board_reports_every_account_and_why_it_opened() {
        let (a, b) = (Arc::new(breaker()), Arc::new(breaker()));
        let board = CircuitBoard::new(vec![
            ("acme".into(), VendorKey::Glance, a.clone()),
            ("globex".into(), VendorKey::Netsapiens, b.clone()),
        ]);
        call(&b, Verdict::AuthFailed).unwrap();
        assert_eq!(board.open_count(), 1);
        assert_eq!(
            board.report(),
            "circuit glance/acme: closed\n\
             circuit netsapiens/globex: open, next probe in 5s (the vendor refused the account's credentials)\n"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn neutral_results_and_late_results_change_nothing() {
        let b = breaker();
        let (Admission::Call(early), _) = b.admit() else { panic!() };
        for _ in 0..10 {
            assert_eq!(call(&b, Verdict::Neutral), Ok(None));
        }
        call(&b, Verdict::AuthFailed).unwrap();
        assert_eq!(b.record(early, Verdict::Healthy), None, "admitted before it opened: ignored");
        assert_eq!(b.snapshot().state, State::Open);
    }
}
