//! How long to wait before trying again: inline backoff within a delivery, and the durable
//! retry tiers beyond it. Whether to retry at all is the adapter's classification.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder, Retryable as _};
use rand::Rng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::InlineRetrySettings;

/// Exponential backoff with *full* jitter: each delay is drawn uniformly from `[0, d]`.
///
/// backon's own jitter only adds on top of `d`; full jitter spreads a thundering herd of
/// workers retrying the same vendor far better (AWS Architecture Blog, "Exponential
/// Backoff and Jitter").
pub struct FullJitter(ExponentialBackoff);

impl Iterator for FullJitter {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let ceiling = self.0.next()?;
        Some(Duration::from_secs_f64(rand::rng().random_range(0.0..=ceiling.as_secs_f64())))
    }
}

/// The inline retry policy for transient vendor errors within one delivery.
#[derive(Clone, Debug)]
pub struct InlineRetry {
    settings: InlineRetrySettings,
}

/// What the inline retry needs to know about a failure. The classifier decides it; the
/// policy here only decides how long to wait.
pub trait Retryable {
    /// Worth another call within this delivery.
    fn retry_inline(&self) -> bool;
    /// How long the vendor asked us to wait, if it said.
    fn retry_after(&self) -> Option<Duration>;
}

/// The result of a call with inline retries, and how many calls it took.
#[derive(Debug)]
pub struct Attempted<T, E> {
    pub result: Result<T, E>,
    pub calls: u32,
    /// Calls whose request was sent; a call refused before sending (an open circuit, say)
    /// is not an attempt at the vendor.
    pub sent: u32,
    /// From the first request sent to the last one: what the budget bounds.
    pub span: Duration,
}

/// When requests actually went out. Admission (rate limits, concurrency caps) may hold a
/// call before it is sent; the budget runs from the first *send*, so a job that queued for
/// its account still gets its retries.
#[derive(Debug, Default)]
struct Sends {
    count: u32,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// One call of [`InlineRetry::run`].
#[derive(Clone, Debug)]
pub struct Attempt {
    /// 1-based.
    pub number: u32,
    sends: Arc<Mutex<Sends>>,
    budget: Duration,
}

/// A retry whose moment to go out came after the inline budget ended: not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PastBudget;

impl Attempt {
    /// Marks the moment the request goes out, after any admission wait, or refuses a retry
    /// whose moment is past the budget. Admission checks the budget too, but the task can be
    /// held between admission and the send (a breaker's fleet probe, a loaded machine); the
    /// moment compared is the moment recorded, so no retry is ever sent late.
    pub fn sending(&self) -> Result<(), PastBudget> {
        let mut sends = self.sends.lock().expect("never poisoned");
        let now = Instant::now();
        if self.send_by_in(&sends).is_some_and(|by| now > by) {
            return Err(PastBudget);
        }
        sends.first.get_or_insert(now);
        sends.last = Some(now);
        sends.count += 1;
        Ok(())
    }

    /// A retry must be sent by then, or not at all: an admission wait must not stretch it
    /// past the budget. `None` for the first call.
    pub fn send_by(&self) -> Option<Instant> {
        self.send_by_in(&self.sends.lock().expect("never poisoned"))
    }

    /// [`Attempt::send_by`] from sends already locked: the one place the rule is written.
    fn send_by_in(&self, sends: &Sends) -> Option<Instant> {
        sends.first.filter(|_| self.number > 1).map(|first| first + self.budget)
    }
}

impl InlineRetry {
    pub fn new(settings: InlineRetrySettings) -> Self {
        Self { settings }
    }

    /// No retry is sent later than this after the first request.
    pub fn budget(&self) -> Duration {
        self.settings.budget
    }

    /// The un-jittered ceilings, one per retry.
    pub fn ceilings(&self) -> ExponentialBackoff {
        ExponentialBuilder::default()
            .with_min_delay(self.settings.initial_delay)
            .with_max_delay(self.settings.max_delay)
            .with_factor(2.0)
            .with_max_times(self.settings.max_attempts.saturating_sub(1) as usize)
            .build()
    }

    /// Calls `call` until it succeeds, fails for good, runs out of attempts or budget, or
    /// shutdown begins. A `Retry-After` longer than the backoff is honoured, but a wait that
    /// would end past the budget is not started: the durable tiers take over instead.
    pub async fn run<T, E, F, Fut>(&self, shutdown: &CancellationToken, mut call: F) -> Attempted<T, E>
    where
        E: Retryable,
        F: FnMut(Attempt) -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let budget = self.settings.budget;
        let sends = Arc::new(Mutex::new(Sends::default()));
        let calls = AtomicU32::new(0);
        let result = (|| {
            let number = calls.fetch_add(1, Ordering::Relaxed) + 1;
            call(Attempt { number, sends: sends.clone(), budget })
        })
        .retry(FullJitterBuilder(self.clone()))
        .sleep(tokio::time::sleep)
        .when(|e: &E| e.retry_inline() && !shutdown.is_cancelled())
        .adjust(|e: &E, next: Option<Duration>| {
            let wait = match (next, e.retry_after()) {
                (None, _) => return None,
                (Some(d), Some(ra)) => d.max(ra),
                (Some(d), None) => d,
            };
            let first = sends.lock().expect("never poisoned").first;
            let elapsed = first.map_or(Duration::ZERO, |f| f.elapsed());
            // Checked: a wait from outside must not be able to overflow the clock.
            elapsed.checked_add(wait).is_some_and(|end| end <= budget).then_some(wait)
        })
        .await;
        let sends = sends.lock().expect("never poisoned");
        let span = match (sends.first, sends.last) {
            (Some(first), Some(last)) => last - first,
            _ => Duration::ZERO,
        };
        Attempted { result, calls: calls.into_inner(), sent: sends.count, span }
    }
}

struct FullJitterBuilder(InlineRetry);

impl BackoffBuilder for FullJitterBuilder {
    type Backoff = FullJitter;

    fn build(self) -> FullJitter {
        FullJitter(self.0.ceilings())
    }
}

/// The durable retry tiers: parked in TTL queues on the broker, never in memory.
#[derive(Clone, Debug)]
pub struct DurableSchedule {
    tiers: Vec<Duration>,
}

impl DurableSchedule {
    pub fn new(tiers: Vec<Duration>) -> Self {
        Self { tiers }
    }

    /// The tier for the next durable retry, given how many were already used.
    pub fn next(&self, used: u32) -> Option<Duration> {
        self.tiers.get(used as usize).copied()
    }

    pub fn tiers(&self) -> &[Duration] {
        &self.tiers
    }

    /// Where to park a job for about `wait` without using up a tier: the shortest tier at
    /// least that long, else the longest.
    pub fn at_least(&self, wait: Duration) -> Option<Duration> {
        self.tiers.iter().copied().filter(|t| *t >= wait).min().or_else(|| self.tiers.iter().copied().max())
    }
}

/// The stable short name of a tier, used in queue names and headers: `10s`, `1m`, `2h`.
pub fn tier_name(delay: Duration) -> String {
    humantime::format_duration(delay).to_string().replace(' ', "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vendors::{VendorError, VendorFailure};

    fn policy(max_attempts: u32, budget_ms: u64) -> InlineRetry {
        InlineRetry::new(InlineRetrySettings {
            max_attempts,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(800),
            budget: Duration::from_millis(budget_ms),
        })
    }

    fn transient() -> VendorError {
        VendorError::new(VendorFailure::Transient, "http_503", "unavailable")
    }

    /// Records when each call happened, relative to the start, on the paused clock.
    async fn run_recording(
        p: &InlineRetry,
        shutdown: &CancellationToken,
        mut answer: impl FnMut(u32) -> Result<(), VendorError>,
    ) -> (Attempted<(), VendorError>, Vec<Duration>) {
        let start = Instant::now();
        let times = Mutex::new(Vec::new());
        let out = p
            .run(shutdown, |a: Attempt| {
                a.sending().expect("these calls go out at once");
                times.lock().unwrap().push(start.elapsed());
                let r = answer(a.number);
                async move { r }
            })
            .await;
        (out, times.into_inner().unwrap())
    }

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let c: Vec<_> = policy(6, 10_000).ceilings().map(|d| d.as_millis()).collect();
        assert_eq!(c, [100, 200, 400, 800, 800]);
    }

    #[test]
    fn full_jitter_stays_within_zero_and_the_ceiling() {
        let p = policy(6, 10_000);
        for _ in 0..200 {
            for (jittered, ceiling) in FullJitter(p.ceilings()).zip(p.ceilings()) {
                assert!(jittered <= ceiling, "{jittered:?} > {ceiling:?}");
            }
        }
        // Full jitter, not a fixed delay: over many draws the first delay takes many values.
        let firsts: std::collections::BTreeSet<_> =
            (0..50).map(|_| FullJitter(p.ceilings()).next().unwrap().as_micros()).collect();
        assert!(firsts.len() > 10);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_until_attempts_run_out_within_the_ceilings() {
        let p = policy(4, 10_000);
        let (out, times) = run_recording(&p, &CancellationToken::new(), |_| Err(transient())).await;
        assert_eq!((out.calls, out.sent), (4, 4));
        assert!(out.result.unwrap_err().is_transient());
        let gaps: Vec<_> = times.windows(2).map(|w| w[1] - w[0]).collect();
        for (gap, ceiling) in gaps.iter().zip([100, 200, 400]) {
            assert!(*gap <= Duration::from_millis(ceiling), "{gap:?} > {ceiling}ms");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let p = policy(4, 10_000);
        let (out, _) = run_recording(&p, &CancellationToken::new(), |_| {
            Err(VendorError::new(VendorFailure::Rejected, "bad", "no"))
        })
        .await;
        assert_eq!(out.calls, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn success_after_a_transient_error_returns_the_value() {
        let p = policy(4, 10_000);
        let (out, _) =
            run_recording(&p, &CancellationToken::new(), |n| if n < 3 { Err(transient()) } else { Ok(()) }).await;
        assert_eq!(out.calls, 3);
        assert!(out.result.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_but_never_beyond_the_budget() {
        let p = policy(10, 3_000);
        let mut e = transient();
        e.retry_after = Some(Duration::from_secs(1));
        let (out, times) = run_recording(&p, &CancellationToken::new(), |_| Err(e.clone())).await;
        // Waits of >= 1s each: calls at ~0, ~1s, ~2s, ~3s at the very most; never past 3s.
        assert!(out.calls >= 2, "{}", out.calls);
        for w in times.windows(2) {
            assert!(w[1] - w[0] >= Duration::from_secs(1));
        }
        assert!(*times.last().unwrap() <= Duration::from_secs(3), "{times:?}");
        assert_eq!(out.span, *times.last().unwrap(), "the span ends where the last call started");

        e.retry_after = Some(Duration::from_secs(60));
        let (out, times) = run_recording(&p, &CancellationToken::new(), |_| Err(e.clone())).await;
        assert_eq!(out.calls, 1, "a Retry-After past the budget must not be waited for: {times:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_at_the_end_of_time_gives_up_instead_of_overflowing() {
        let p = policy(10, 3_000);
        let mut e = transient();
        e.retry_after = Some(Duration::MAX);
        // The first call's wait is added to the time already spent, which must not panic.
        let (out, _) =
            run_recording(&p, &CancellationToken::new(), |n| if n == 1 { Err(e.clone()) } else { Ok(()) }).await;
        assert_eq!(out.calls, 1);
        assert!(out.result.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_starts_once_shutdown_has_begun() {
        let p = policy(10, 10_000);
        let shutdown = CancellationToken::new();
        let s = shutdown.clone();
        let (out, _) = run_recording(&p, &shutdown, move |_| {
            s.cancel();
            Err(transient())
        })
        .await;
        assert_eq!(out.calls, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_runs_from_the_first_send_and_bounds_when_a_retry_may_be_sent() {
        let p = policy(10, 1_000);
        let start = Instant::now();
        let deadlines = Mutex::new(Vec::new());
        let out = p
            .run(&CancellationToken::new(), |a: Attempt| {
                let deadline = a.send_by();
                deadlines.lock().unwrap().push(deadline.map(|d| d - start));
                async move {
                    // The first call queues 3 s for its account before it is sent.
                    if a.number == 1 {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                    }
                    a.sending().expect("a retry is admitted within the budget");
                    Err::<(), _>(transient())
                }
            })
            .await;
        assert!(out.calls > 1, "the admission wait must not eat the budget: {} calls", out.calls);
        assert!(out.span <= Duration::from_secs(1), "{:?}", out.span);
        let deadlines = deadlines.into_inner().unwrap();
        assert_eq!(deadlines[0], None, "the first call has no send-by");
        assert!(deadlines[1..].iter().all(|d| *d == Some(Duration::from_secs(4))), "{deadlines:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_held_past_the_budget_after_admission_is_not_sent() {
        let p = policy(10, 1_000);
        let refused = Mutex::new(Vec::new());
        let out = p
            .run(&CancellationToken::new(), |a: Attempt| {
                let refused = &refused;
                async move {
                    // Each retry is held (a loaded machine, a fleet probe) until past the
                    // budget, after admission said it was in time.
                    if a.number > 1 {
                        tokio::time::sleep(Duration::from_millis(1_001)).await;
                    }
                    if a.sending() == Err(PastBudget) {
                        refused.lock().unwrap().push(a.number);
                        return Err::<(), _>(transient());
                    }
                    Err(transient())
                }
            })
            .await;
        assert_eq!(out.sent, 1, "only the first request went out");
        assert_eq!(out.span, Duration::ZERO);
        assert_eq!(refused.into_inner().unwrap().first(), Some(&2), "the first retry was refused");
    }

    #[test]
    fn tier_names_are_short_and_stable() {
        let names: Vec<_> =
            [10, 60, 300, 1800, 7200, 90].into_iter().map(|s| tier_name(Duration::from_secs(s))).collect();
        assert_eq!(names, ["10s", "1m", "5m", "30m", "2h", "1m30s"]);
        let s = DurableSchedule::new(vec![Duration::from_secs(10), Duration::from_secs(60)]);
        assert_eq!(s.next(0), Some(Duration::from_secs(10)));
        assert_eq!(s.next(2), None);
        assert_eq!(s.at_least(Duration::from_secs(15)), Some(Duration::from_secs(60)));
        assert_eq!(s.at_least(Duration::from_secs(600)), Some(Duration::from_secs(60)), "the longest at most");
        assert_eq!(s.at_least(Duration::ZERO), Some(Duration::from_secs(10)));
    }
}
