//! The vendor accounts at run time: each account's adapter behind its circuit breaker and
//! rate limiter, so every call to a vendor is admitted, paced and judged in one place.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::circuit_breaker::{Admission, CircuitBoard, CircuitBreaker, State, Transition, Verdict};
use crate::config::Settings;
use crate::contract::{Job, VendorKey};
use crate::metrics::Metrics;
use crate::rate_limit::{AccountLimiter, Backend, Feedback, Refusal};
use crate::retry::{Attempt, Retryable};
use crate::shared_limits::{AccountLimits, Probe, RedisLink, SharedLimiter};
use crate::vendors::{Adapter, AnyAdapter, CallContext, Receipt, VendorError, VendorFailure};

/// Why a guarded call did not produce a receipt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    Vendor(VendorError),
    /// The account's breaker is open: the vendor was not called. Park the job; never
    /// dead-letter it for this.
    #[error("the account's circuit breaker is open; next probe in {retry_in:?}")]
    CircuitOpen { retry_in: Duration },
    /// The account's rate limit or concurrency cap would hold this retry past the inline
    /// budget: leave it to the durable tiers.
    #[error("the account's rate limit would hold the retry past the inline budget")]
    OutOfBudget,
    /// Shutdown began before the request was sent.
    #[error("shutdown began before the request was sent")]
    ShutDown,
    /// The job's first call could not be admitted within `rate_limit.max_wait`: the
    /// account is saturated. Park the job without using up a tier rather than hold it.
    #[error("the account's rate limit and concurrency cap admitted no call within rate_limit.max_wait")]
    AccountBusy,
}

impl Retryable for CallError {
    fn retry_inline(&self) -> bool {
        matches!(self, CallError::Vendor(e) if e.is_transient())
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            CallError::Vendor(e) => e.retry_after,
            _ => None,
        }
    }
}

/// One configured account.
pub struct Account {
    name: String,
    max_wait: Duration,
    adapter: AnyAdapter,
    limiter: AccountLimits,
    breaker: Arc<CircuitBreaker>,
    metrics: Metrics,
    /// This vendor's series of the per-call metrics, looked up once rather than per call.
    admission_wait: prometheus::Histogram,
    throttled: prometheus::IntCounter,
}

impl Account {
    /// What `job` asks of this account that its policy does not allow.
    pub fn policy_errors(&self, job: &Job) -> Vec<crate::contract::FieldError> {
        self.adapter.policy_errors(job)
    }

    pub fn vendor(&self) -> VendorKey {
        self.adapter.vendor()
    }

    /// The vendor identity a job's user would have in this account.
    pub fn identity(&self, job: &Job) -> Result<crate::vendors::VendorIdentity, VendorError> {
        self.adapter.identity(job)
    }

    /// Whether the vendor's record can prove a create was this job's (else: intent first).
    pub fn proves_identity(&self) -> bool {
        self.adapter.proves_identity()
    }

    /// One vendor call, the one the job's kind asks for: through the limiter, then the
    /// breaker, then the adapter; the answer goes back to both.
    ///
    /// The limiter comes first so the breaker is asked at the last moment: a call that
    /// queued for its slot while the breaker opened must not go out.
    pub async fn call(
        &self,
        job: &Job,
        ctx: CallContext,
        attempt: &Attempt,
        shutdown: &CancellationToken,
    ) -> Result<Receipt, CallError> {
        let vendor = self.vendor().as_str();
        if attempt.number > 1 && shutdown.is_cancelled() {
            return Err(CallError::ShutDown);
        }
        // A first call waits at most `rate_limit.max_wait`; a retry must go out within the
        // inline budget.
        let deadline = attempt.send_by().unwrap_or_else(|| Instant::now() + self.max_wait);
        let slot = match self.limiter.admit(shutdown, Some(deadline)).await {
            Ok(slot) => slot,
            Err(Refusal::ShutDown) => return Err(CallError::ShutDown),
            Err(Refusal::PastDeadline) if attempt.number == 1 => return Err(CallError::AccountBusy),
            Err(Refusal::PastDeadline) => return Err(CallError::OutOfBudget),
        };
        let fleet = self.limiter.fleet_breaker();
        if let (Some(open_for), Some(_)) = (slot.fleet_breaker, fleet) {
            self.note(self.breaker.trip(open_for, "another replica opened the account's breaker"));
        }
        let (admission, transition) = self.breaker.admit();
        self.note(transition);
        let ticket = match admission {
            Admission::Call(ticket) => ticket,
            Admission::Refused { retry_in } => return Err(CallError::CircuitOpen { retry_in }),
        };
        // Half-open: one probe for the whole fleet, not one per replica.
        if let (true, Some(fleet)) = (ticket.is_probe(), fleet) {
            if fleet.probe().await == Probe::Taken {
                let retry_in = self.breaker.retry_in().unwrap_or_default();
                return Err(CallError::CircuitOpen { retry_in });
            }
        }
        self.admission_wait.observe(slot.waited.as_secs_f64());
        if attempt.sending().is_err() {
            // Held past the budget since admission: the ticket and the slot are given back
            // unused, and the durable tiers take the job.
            return Err(CallError::OutOfBudget);
        }
        let result = self.adapter.run(job, ctx).await;
        let pace = slot.ticket();
        drop(slot);

        let (verdict, feedback) = match &result {
            Ok(_) => (Verdict::Healthy, Feedback::Fine),
            Err(e) => match e.failure {
                VendorFailure::Rejected | VendorFailure::Conflict => (Verdict::Healthy, Feedback::Fine),
                VendorFailure::Auth => (Verdict::AuthFailed, Feedback::Fine),
                VendorFailure::Transient => (Verdict::Failed, Feedback::Fine),
                VendorFailure::Throttled => {
                    self.throttled.inc();
                    (Verdict::Neutral, Feedback::Throttled { retry_after: e.retry_after })
                }
            },
        };
        if let Some(share) = self.limiter.feedback(pace, feedback).await {
            let rate = self.limiter.rate().per_sec() * share;
            match feedback {
                Feedback::Throttled { .. } => {
                    tracing::warn!(account = %self.name, vendor, rate_per_sec = rate, share, "vendor throttled the account; slowing down")
                }
                Feedback::Fine => {
                    tracing::info!(account = %self.name, vendor, rate_per_sec = rate, share, "account rate recovering")
                }
            }
        }
        let transition = self.breaker.record(ticket, verdict);
        if let (Some(t), Some(fleet)) = (&transition, fleet) {
            match t.to {
                State::Open => fleet.opened(self.breaker.retry_in().unwrap_or_default(), &t.reason).await,
                State::Closed => fleet.closed().await,
                State::HalfOpen => {}
            }
        }
        self.note(transition);
        match result {
            // The vendor is failing and the breaker is (now) open: this job is parked like
            // the ones refused at the door, so even the probe's job or the one whose failure
            // opened the breaker does not use up a tier. An outage of any length never
            // dead-letters a job.
            Err(e) if e.is_transient() => match self.breaker.retry_in() {
                Some(retry_in) => Err(CallError::CircuitOpen { retry_in }),
                None => Err(CallError::Vendor(e)),
            },
            other => other.map_err(CallError::Vendor),
        }
    }

    /// Logs and counts a breaker transition.
    fn note(&self, transition: Option<Transition>) {
        let Some(t) = transition else { return };
        let vendor = self.vendor().as_str();
        self.metrics.circuit_transitions.with_label_values(&[vendor, t.to.as_str()]).inc();
        let open = self.metrics.circuit_open_accounts.with_label_values(&[vendor]);
        match (t.from, t.to) {
            (State::Closed, _) => open.inc(),
            (_, State::Closed) => open.dec(),
            _ => {}
        }
        match t.to {
            State::Open => {
                tracing::warn!(account = %self.name, vendor, reason = %t.reason, "circuit opened: jobs for this account are parked in the retry tiers")
            }
            State::HalfOpen => tracing::info!(account = %self.name, vendor, "circuit half-open: probing the vendor"),
            State::Closed => {
                tracing::info!(account = %self.name, vendor, reason = %t.reason, "circuit closed: calls resume")
            }
        }
    }
}

/// Wraps every adapter in its account's limiter and breaker. With `rate_limit.backend =
/// "redis"`, `link` is the shared state every account's limits use.
pub fn guard(
    settings: &Settings,
    adapters: HashMap<String, AnyAdapter>,
    metrics: &Metrics,
    link: Option<&Arc<RedisLink>>,
) -> (HashMap<String, Account>, CircuitBoard) {
    let mut accounts = HashMap::new();
    let mut board = Vec::new();
    for (name, adapter) in adapters {
        let vendor = adapter.vendor();
        let defaults = settings.vendors.get(vendor);
        let configured = settings.accounts.get(&name);
        let rate = configured.and_then(|a| a.rate).unwrap_or(defaults.account_rate);
        let concurrency = configured.and_then(|a| a.concurrency).unwrap_or(defaults.account_concurrency);
        let concurrency = NonZeroU32::new(concurrency.into()).unwrap_or(NonZeroU32::MIN);
        let breaker = Arc::new(CircuitBreaker::new(settings.circuit_breaker.clone()));
        board.push((name.clone(), vendor, breaker.clone()));
        let limiter = match link.filter(|_| settings.rate_limit.backend == Backend::Redis) {
            None => AccountLimits::Local(AccountLimiter::new(rate, concurrency, settings.rate_limit.clone())),
            Some(link) => {
                // A probe token outlives the longest probe call.
                let probe_ttl = defaults.request_timeout.saturating_mul(2);
                let adaptive = settings.rate_limit.clone();
                let shared =
                    SharedLimiter::new(link.clone(), vendor.as_str(), &name, rate, concurrency, adaptive, probe_ttl);
                AccountLimits::Shared(shared)
            }
        };
        let max_wait = settings.rate_limit.max_wait;
        let label = [vendor.as_str()];
        let (admission_wait, throttled) =
            (metrics.admission_wait.with_label_values(&label), metrics.vendor_throttled.with_label_values(&label));
        let metrics = metrics.clone();
        let account =
            Account { name: name.clone(), max_wait, adapter, limiter, breaker, metrics, admission_wait, throttled };
        accounts.insert(name, account);
    }
    board.sort_by(|a, b| a.0.cmp(&b.0));
    (accounts, CircuitBoard::new(board))
}
