//! One delivery in, one [`Disposition`](crate::transport::Disposition) out: decode → adapter (with inline retry) → outcome.
//!
//! Nothing here touches a broker. The transport carries the disposition out through
//! [`crate::transport::settle`], the only place that acks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::accounts::{Account, CallError};
use crate::circuit_breaker::CircuitBoard;
use crate::config::{Settings, TopologySettings};
use crate::contract::{FieldError, Job, JobId, JobKind, VendorKey};
use crate::event::{self, JobRef};
use crate::job::{self, InvalidJob, Rejection};
use crate::ledger::{HistoryKind, IdentityKey, Intent, Ledger, LedgerError, LinkState, Owner};
use crate::metrics::Metrics;
use crate::outcome::{ErrorClass, Failure, Outcome};
use crate::retry::{tier_name, Attempt, DurableSchedule, InlineRetry};
use crate::transport::headers as h;
use crate::transport::{After, DeadLetterCause, Disposition, Headers, Inbound, Outbound, OutboundKind, Parked, Report};
use crate::vendors::{AnyAdapter, CallContext, LedgerProof, VendorError, VendorIdentity};

/// What earlier deliveries of the same job left in its headers.
#[derive(Clone, Debug, Default)]
struct History {
    attempts: u32,
    durable_retries: u32,
    first_failed_at: Option<String>,
    /// Replayed from the DLQ: its budget is fresh, but an earlier attempt (say, one that
    /// timed out) may have created the user.
    replayed: bool,
}

impl History {
    fn read(headers: &Headers) -> Self {
        let n = |name| h::int(headers, name).and_then(|i| u32::try_from(i).ok()).unwrap_or(0);
        Self {
            attempts: n(h::ATTEMPTS),
            durable_retries: n(h::DURABLE_RETRIES),
            first_failed_at: h::text(headers, h::FIRST_FAILED_AT).map(str::to_owned),
            replayed: h::int(headers, h::REPLAY_COUNT).is_some_and(|n| n > 0),
        }
    }
}

pub struct Pipeline {
    topology: TopologySettings,
    event_source: String,
    inline: InlineRetry,
    durable: HashMap<VendorKey, DurableSchedule>,
    accounts: HashMap<String, Account>,
    /// Each account's own field rules, which decoding applies to its jobs.
    rules: crate::vendors::Rulebook,
    circuits: CircuitBoard,
    /// Decides identities before creates; `None` when `ledger.enabled` is off.
    ledger: Option<Ledger>,
    /// Holds mass suspends and deletes for an operator.
    safeguard: std::sync::Arc<crate::safeguard::Safeguard>,
}

/// The refusal of a job whose vendor identity the ledger links to another person; `then`
/// says what became of the job and what to do.
fn held_by_another(job: &Job, identity: &VendorIdentity, link: &crate::ledger::Link, then: String) -> Refused {
    Refused::Conflict(Failure::new(
        ErrorClass::Conflict,
        "identity_held_by_another_person",
        format!(
            "{} {} in account {} is linked to another person (job {}, state {}); {then}",
            job.vendor.identity_field(),
            identity.key,
            job.account,
            link.job_id,
            link.state.as_str(),
        ),
    ))
}

/// Why a job stops before its vendor call, on the ledger's word.
enum Refused {
    /// The identity is linked to another person.
    Conflict(Failure),
    /// The ledger did not answer; the job waits for it.
    LedgerDown(String),
}

impl Pipeline {
    /// Each adapter is wrapped in its account's rate limiter and circuit breaker, which
    /// report to `metrics`.
    pub fn new(
        settings: &Settings,
        adapters: HashMap<String, AnyAdapter>,
        metrics: &Metrics,
        ledger: Option<Ledger>,
    ) -> Self {
        Self::with_shared_limits(settings, adapters, metrics, None, ledger)
    }

    /// As [`Pipeline::new`], with the accounts' limits kept in Redis through `link` when
    /// `rate_limit.backend = "redis"`.
    pub fn with_shared_limits(
        settings: &Settings,
        adapters: HashMap<String, AnyAdapter>,
        metrics: &Metrics,
        link: Option<&std::sync::Arc<crate::shared_limits::RedisLink>>,
        ledger: Option<Ledger>,
    ) -> Self {
        let mut rules = crate::vendors::Rulebook::default();
        for (name, adapter) in &adapters {
            rules.insert(name.clone(), adapter.field_rules());
        }
        let (accounts, circuits) = crate::accounts::guard(settings, adapters, metrics, link);
        Self {
            topology: settings.topology.clone(),
            event_source: settings.events.source.clone(),
            inline: InlineRetry::new(settings.retry.inline.clone()),
            durable: VendorKey::ALL
                .into_iter()
                .map(|v| (v, DurableSchedule::new(settings.retry_tiers(v).to_vec())))
                .collect(),
            accounts,
            rules,
            circuits,
            ledger,
            safeguard: std::sync::Arc::new(crate::safeguard::Safeguard::new(settings, link.cloned())),
        }
    }

    /// The safeguard of every account, for its refresher and `/readyz`.
    pub fn safeguard(&self) -> std::sync::Arc<crate::safeguard::Safeguard> {
        self.safeguard.clone()
    }

    /// Every account's circuit breaker, for `/readyz`.
    pub fn circuits(&self) -> CircuitBoard {
        self.circuits.clone()
    }

    pub fn topology(&self) -> &TopologySettings {
        &self.topology
    }

    /// Decides what to do with one delivery. Never panics on bad input; every input maps to
    /// a disposition.
    pub async fn handle(&self, msg: &Inbound, shutdown: &CancellationToken) -> Disposition {
        let cleaned;
        let msg = match h::without_producer_set(&msg.headers) {
            Some(headers) => {
                tracing::debug!(
                    message_id = msg.message_id.as_deref(),
                    "provisioner-* headers set by the producer dropped"
                );
                cleaned = Inbound { headers, ..msg.clone() };
                &cleaned
            }
            None => msg,
        };
        let history = History::read(&msg.headers);
        let job = match job::decode_with(&msg.body, &self.rules) {
            Ok(job) => job,
            Err(Rejection::Undecodable(reason)) => return self.undecodable(msg, &reason),
            Err(Rejection::Invalid(invalid)) => return self.invalid(msg, invalid, &history),
        };
        let (account, errors) = self.route(&job, msg);
        let Some(account) = account.filter(|_| errors.is_empty()) else {
            let invalid = InvalidJob {
                job_id: Some(job.id.clone()),
                kind: Some(job.kind),
                vendor: Some(job.vendor),
                account: Some(job.account.clone()),
                correlation_id: job.correlation_id.clone(),
                errors,
            };
            return self.invalid(msg, invalid, &history);
        };

        let span = tracing::info_span!("job", job_id = %job.id, vendor = %job.vendor, account = %job.account,
            attempt = history.attempts + 1);
        async {
            if shutdown.is_cancelled() {
                return self.deferred(&job);
            }
            let identity = account.identity(&job).ok();
            let proof = match self.ledger_check(&job, account, identity.as_ref()).await {
                Ok(proof) => proof,
                Err(Refused::Conflict(f)) => {
                    return self.terminal(msg, &job, identity.as_ref(), Outcome::Failed(f), history.attempts, &history)
                }
                Err(Refused::LedgerDown(why)) => {
                    let tier = self.durable[&job.vendor].at_least(Duration::ZERO).expect("every schedule has a tier");
                    let why = format!("waiting for the ledger to decide the identity: {why}");
                    return self.retry_later(msg, &job, &why, tier, Parked::LedgerDown, history.attempts, &history);
                }
            };
            if let Err(hold) = self.safeguard_check(&job, msg, &history).await {
                return self.held(msg, &job, &hold);
            }
            let seen_before = msg.redelivered || history.attempts > 0 || history.replayed;
            // The vendor's own words for the last failure, for when a later call is refused
            // before it is sent (budget, shutdown).
            let last_failure: Mutex<Option<VendorError>> = Mutex::new(None);
            let attempted = self
                .inline
                .run(shutdown, |attempt: Attempt| {
                    let ctx = CallContext {
                        maybe_seen_before: seen_before || attempt.number > 1,
                        inline_attempt: attempt.number,
                        ledger: proof,
                    };
                    let (job, last_failure) = (&job, &last_failure);
                    async move {
                        let result = account.call(job, ctx, &attempt, shutdown).await;
                        if let Err(CallError::Vendor(e)) = &result {
                            *last_failure.lock().expect("never poisoned") = Some(e.clone());
                        }
                        result
                    }
                })
                .await;
            let attempts = history.attempts + attempted.sent;
            let inline_retries = attempted.sent.saturating_sub(1);
            if inline_retries > 0 {
                tracing::info!(
                    calls = attempted.sent,
                    retry_span_ms = attempted.span.as_millis() as u64,
                    budget_ms = self.inline.budget().as_millis() as u64,
                    "inline retries finished"
                );
            }
            let last_failure = last_failure.into_inner().expect("never poisoned");
            let mut d = match attempted.result {
                Ok(receipt) => self.terminal(
                    msg,
                    &job,
                    identity.as_ref(),
                    Outcome::from_receipt(job.kind, receipt),
                    attempts,
                    &history,
                ),
                Err(CallError::Vendor(e)) if e.is_transient() => {
                    self.transient(msg, &job, identity.as_ref(), e, attempts, &history)
                }
                Err(CallError::Vendor(e)) => self.terminal(
                    msg,
                    &job,
                    identity.as_ref(),
                    Outcome::Failed(Failure::from_vendor(&e)),
                    attempts,
                    &history,
                ),
                Err(CallError::CircuitOpen { retry_in }) => {
                    let tier = self.durable[&job.vendor].at_least(retry_in).expect("every schedule has a tier");
                    let why = format!(
                        "circuit breaker of account {} is open; next probe in {retry_in:.0?}",
                        job.account.as_str()
                    );
                    self.retry_later(msg, &job, &why, tier, Parked::CircuitOpen, attempts, &history)
                }
                Err(CallError::AccountBusy) => {
                    let tier = self.durable[&job.vendor].at_least(Duration::ZERO).expect("every schedule has a tier");
                    let why = format!("account {} is saturated: {}", job.account.as_str(), CallError::AccountBusy);
                    self.retry_later(msg, &job, &why, tier, Parked::AccountBusy, attempts, &history)
                }
                Err(CallError::ShutDown) if attempted.sent == 0 => self.deferred(&job),
                Err(refused @ (CallError::OutOfBudget | CallError::ShutDown)) => {
                    // Only a retry is refused this way, so there is an earlier failure.
                    let mut e = last_failure
                        .unwrap_or_else(|| VendorError::new(crate::vendors::VendorFailure::Transient, "not_sent", ""));
                    e.message = format!("{}; then {refused}", e.message);
                    self.transient(msg, &job, identity.as_ref(), e, attempts, &history)
                }
            };
            d.inline_retries = inline_retries;
            d
        }
        .instrument(span)
        .await
    }

    /// A transient failure: the next durable tier, or `unavailable` after the last one.
    fn transient(
        &self,
        msg: &Inbound,
        job: &Job,
        identity: Option<&VendorIdentity>,
        e: VendorError,
        attempts: u32,
        history: &History,
    ) -> Disposition {
        match self.durable[&job.vendor].next(history.durable_retries) {
            Some(tier) => self.retry_later(msg, job, &e.to_string(), tier, Parked::Failure, attempts, history),
            None => {
                let mut f = Failure::from_vendor(&e);
                f.message = format!("gave up after {attempts} attempts and every retry tier: {}", f.message);
                self.terminal(msg, job, identity, Outcome::Failed(f), attempts, history)
            }
        }
    }

    /// Asks the ledger about the job's vendor identity, when a decision needs it: before a
    /// create the vendor cannot prove afterwards (an intent is recorded), and for every job
    /// that names its person (the identity must not be someone else's). Jobs that need
    /// neither never wait for the ledger.
    async fn ledger_check(
        &self,
        job: &Job,
        account: &Account,
        identity: Option<&VendorIdentity>,
    ) -> Result<LedgerProof, Refused> {
        let (Some(ledger), Some(identity)) = (&self.ledger, identity) else { return Ok(LedgerProof::Nothing) };
        if job.kind != JobKind::CreateUser {
            return self.ledger_check_change(ledger, job, identity).await;
        }
        if account.proves_identity() && job.person.is_none() {
            return Ok(LedgerProof::Nothing);
        }
        let key = IdentityKey { vendor: job.vendor, account: job.account.to_string(), identity: identity.key.clone() };
        let intent = Intent {
            key: &key,
            identity_extra: identity.extra.as_deref(),
            person: job.person.as_ref(),
            job_id: job.id.as_str(),
            correlation_id: job.correlation_id.as_deref(),
        };
        let claim = ledger.claim(&intent).await.map_err(|e| match e {
            LedgerError::Corrupt { .. } => {
                // A row the ledger cannot read is no proof either way; an operator must look.
                tracing::error!(error = %e, "ledger row unreadable; the job waits");
                Refused::LedgerDown(e.to_string())
            }
            e => Refused::LedgerDown(e.to_string()),
        })?;
        match claim.owner {
            // Claimed just now: an "already exists" would be a user the ledger never saw.
            Owner::Nobody | Owner::Unknown => Ok(LedgerProof::Nothing),
            // This person's user was deleted: a vendor that keeps the name of a deleted user
            // (ClientToolbox marks them) says "already exists" of one nobody can log in as,
            // which must not pass for this person's account. The lookup decides instead.
            Owner::ThisJob | Owner::ThisPerson if claim.link.state == LinkState::Deleted => Ok(LedgerProof::Nothing),
            Owner::ThisJob | Owner::ThisPerson => Ok(LedgerProof::ThisPerson),
            Owner::SomeoneElse => Err(held_by_another(
                job,
                identity,
                &claim.link,
                format!("not sent. Give this person another identity, or see `provisioner whois {}`", identity.key),
            )),
        }
    }

    /// Before a change to an existing user (update, suspend, restore, delete): a job that
    /// names its person must not touch an identity the ledger links to someone else. Nothing
    /// is claimed, and an identity the ledger never saw may be changed: producers may act on
    /// users created before the ledger, or by hand.
    async fn ledger_check_change(
        &self,
        ledger: &Ledger,
        job: &Job,
        identity: &VendorIdentity,
    ) -> Result<LedgerProof, Refused> {
        let Some(person) = &job.person else { return Ok(LedgerProof::Nothing) };
        let key = IdentityKey { vendor: job.vendor, account: job.account.to_string(), identity: identity.key.clone() };
        let link = ledger.link(&key).await.map_err(|e| Refused::LedgerDown(e.to_string()))?;
        match link.map(|l| (l.owner_relation(job.id.as_str(), Some(person)), l)) {
            Some((Owner::SomeoneElse, link)) => Err(held_by_another(
                job,
                identity,
                &link,
                format!(
                    "this {} job for employee {} was not sent. See `provisioner whois {}`",
                    job.kind, person.employee_id, identity.key
                ),
            )),
            Some((Owner::ThisJob | Owner::ThisPerson, _)) => Ok(LedgerProof::ThisPerson),
            _ => Ok(LedgerProof::Nothing),
        }
    }

    /// Whether the safeguard lets this removal through (suspends and deletes only). A job an
    /// operator released with `held approve` passes without counting; one that passed before
    /// (it comes back from a retry tier) is held only while the account is tripped.
    async fn safeguard_check(&self, job: &Job, msg: &Inbound, history: &History) -> Result<(), crate::safeguard::Hold> {
        if !self.safeguard.enabled() || !matches!(job.kind, JobKind::SuspendUser | JobKind::DeleteUser) {
            return Ok(());
        }
        // The header only says where to look: the approval itself is the one `held approve`
        // wrote to the ledger. Without it (a producer set the header, the ledger is off or
        // does not answer) the job is judged like any other removal: held, if it must be.
        if msg.headers.contains_key(h::APPROVED) {
            if self.approval_recorded(job).await {
                return Ok(());
            }
            tracing::warn!(kind = %job.kind, "an approval header without an approval in the ledger: ignored");
        }
        let counts = history.attempts == 0 && !history.replayed;
        self.safeguard.admit(job.vendor, job.account.as_str(), counts).await
    }

    /// Whether the ledger records an operator's approval of this job.
    async fn approval_recorded(&self, job: &Job) -> bool {
        let Some(ledger) = &self.ledger else { return false };
        match ledger.timeline(job.id.as_str()).await {
            Ok(entries) => {
                entries.iter().any(|e| e.kind == HistoryKind::Approved && e.job_id.as_deref() == Some(job.id.as_str()))
            }
            Err(e) => {
                tracing::warn!(error = %e, "the ledger did not answer whether the job was approved");
                false
            }
        }
    }

    /// The job, as it came, to its account's held queue (through the default exchange), with
    /// why and when; and a `held` step for its history. Acked once both are confirmed.
    fn held(&self, msg: &Inbound, job: &Job, hold: &crate::safeguard::Hold) -> Disposition {
        let reason = hold.reason(self.safeguard.window());
        let at = h::timestamp(Utc::now());
        let mut headers = msg.headers.clone();
        h::set_text(&mut headers, h::HELD_ACCOUNT, job.account.as_str());
        h::set_text(&mut headers, h::HELD_REASON, reason.clone());
        h::set_text(&mut headers, h::HELD_AT, at.clone());
        h::set_text(&mut headers, h::ORIGINAL_ROUTING_KEY, msg.routing_key.clone());
        h::set_text(&mut headers, h::JOB_ID, job.id.as_str());
        h::set_text(&mut headers, h::VENDOR, job.vendor.as_str());
        let mut copy = msg.forward(OutboundKind::Held, "", headers);
        copy.routing_key = self.topology.held_queue(job.account.as_str());
        tracing::warn!(kind = %job.kind, reason, "removal held by the safeguard; see `provisioner held list`");
        let step = json!({"kind": job.kind, "reason": reason, "held_at": at});
        let event = self.step_event(job, "held", h::traceparent(&msg.headers), step);
        Disposition {
            publish: vec![copy, event],
            after: After::Ack,
            report: Report::Held,
            vendor: Some(job.vendor),
            job_id: Some(job.id.to_string()),
            inline_retries: 0,
            requested_at: None,
        }
    }

    /// Finds the job's account, collecting the contract errors that need the config or the
    /// routing key to see.
    fn route(&self, job: &Job, msg: &Inbound) -> (Option<&Account>, Vec<FieldError>) {
        let mut errors = Vec::new();
        let expected_key = job.kind.routing_key(job.vendor);
        if msg.routing_key != expected_key {
            errors.push(FieldError::new(
                "vendor",
                format!(
                    "a {} {} job must be published with routing key {expected_key}, not {}",
                    job.vendor, job.kind, msg.routing_key
                ),
            ));
        }
        let account = self.accounts.get(job.account.as_str());
        match account {
            None => errors
                .push(FieldError::new("account", format!("no account named {:?} is configured", job.account.as_str()))),
            Some(a) if a.vendor() != job.vendor => errors.push(FieldError::new(
                "account",
                format!("account {:?} is a {} account, not {}", job.account.as_str(), a.vendor(), job.vendor),
            )),
            Some(a) => errors.extend(a.policy_errors(job)),
        }
        (account, errors)
    }

    fn terminal(
        &self,
        msg: &Inbound,
        job: &Job,
        identity: Option<&VendorIdentity>,
        outcome: Outcome,
        attempts: u32,
        history: &History,
    ) -> Disposition {
        let job_ref = JobRef {
            job_id: job.id.as_str(),
            vendor: Some(job.vendor),
            account: Some(job.account.as_str()),
            correlation_id: job.correlation_id.as_deref(),
            traceparent: h::traceparent(&msg.headers),
            identity: identity.map(|i| i.key.as_str()),
            identity_extra: identity.and_then(|i| i.extra.as_deref()),
            person: job.person.as_ref(),
            kind: Some(job.kind),
        };
        let mut publish = vec![self.event(&job_ref, &outcome, attempts)];
        if let Some(f) = outcome.failure() {
            publish.push(self.dead_letter(
                msg,
                f.class.as_str(),
                &f.code,
                &f.message,
                Some(&job_ref),
                attempts,
                history,
            ));
        }
        Disposition {
            publish,
            after: After::Ack,
            report: Report::Terminal {
                outcome: outcome.name(),
                class: outcome.failure().map(|f| f.class),
                dead_lettered: outcome.failure().is_some(),
            },
            vendor: Some(job.vendor),
            job_id: Some(job.id.to_string()),
            inline_retries: 0,
            requested_at: job.requested_at.or_else(|| amqp_time(msg)),
        }
    }

    /// A job that broke the contract. It gets a `failed` event when it can be named at all
    /// (its own job_id, else the AMQP message_id); either way a copy goes to the DLQ.
    fn invalid(&self, msg: &Inbound, invalid: InvalidJob, history: &History) -> Disposition {
        let failure = Failure::new(ErrorClass::Invalid, "invalid_job", invalid.summary());
        let job_id = invalid.job_id.clone().or_else(|| msg.message_id.as_deref().and_then(|m| JobId::parse(m).ok()));
        let vendor = invalid.vendor.or_else(|| Job::vendor_of_routing_key(&msg.routing_key));
        let mut publish = Vec::new();
        let job_ref = job_id.as_ref().map(|id| JobRef {
            job_id: id.as_str(),
            vendor,
            account: invalid.account.as_ref().map(|a| a.as_str()),
            correlation_id: invalid.correlation_id.as_deref(),
            traceparent: h::traceparent(&msg.headers),
            identity: None,
            identity_extra: None,
            person: None,
            kind: invalid.kind.or_else(|| Job::parse_routing_key(&msg.routing_key).map(|(kind, _)| kind)),
        });
        let outcome = Outcome::Failed(failure.clone());
        if let Some(job_ref) = &job_ref {
            publish.push(self.event(job_ref, &outcome, history.attempts));
        }
        publish.push(self.dead_letter(
            msg,
            "invalid",
            &failure.code,
            &failure.message,
            job_ref.as_ref(),
            history.attempts,
            history,
        ));
        tracing::warn!(job_id = job_id.as_ref().map(|j| j.as_str()), vendor = vendor.map(VendorKey::as_str), errors = %failure.message, "invalid job dead-lettered");
        Disposition {
            publish,
            after: After::Ack,
            report: Report::Terminal { outcome: "failed", class: Some(ErrorClass::Invalid), dead_lettered: true },
            vendor,
            job_id: job_id.map(|j| j.to_string()),
            inline_retries: 0,
            requested_at: amqp_time(msg),
        }
    }

    fn undecodable(&self, msg: &Inbound, reason: &str) -> Disposition {
        tracing::warn!(reason, routing_key = %msg.routing_key, "undecodable message dead-lettered");
        let history = History::read(&msg.headers);
        Disposition {
            publish: vec![self.dead_letter(
                msg,
                "undecodable",
                "undecodable",
                reason,
                None,
                history.attempts,
                &history,
            )],
            after: After::Ack,
            report: Report::Undecodable,
            vendor: Job::vendor_of_routing_key(&msg.routing_key),
            job_id: None,
            inline_retries: 0,
            requested_at: None,
        }
    }

    fn deferred(&self, job: &Job) -> Disposition {
        Disposition {
            publish: Vec::new(),
            after: After::Requeue,
            report: Report::Deferred,
            vendor: Some(job.vendor),
            job_id: Some(job.id.to_string()),
            inline_retries: 0,
            requested_at: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn retry_later(
        &self,
        msg: &Inbound,
        job: &Job,
        error: &str,
        tier: Duration,
        why: Parked,
        attempts: u32,
        history: &History,
    ) -> Disposition {
        let now = h::timestamp(Utc::now());
        let tier = tier_name(tier);
        let mut headers = msg.headers.clone();
        h::set_int(&mut headers, h::ATTEMPTS, attempts.into());
        match why {
            Parked::Failure => h::set_int(&mut headers, h::DURABLE_RETRIES, (history.durable_retries + 1).into()),
            Parked::CircuitOpen => {
                let parked = h::int(&headers, h::CIRCUIT_PARKED).unwrap_or(0);
                h::set_int(&mut headers, h::CIRCUIT_PARKED, parked + 1);
            }
            Parked::AccountBusy | Parked::LedgerDown => {}
        }
        h::set_text(&mut headers, h::FIRST_FAILED_AT, history.first_failed_at.clone().unwrap_or_else(|| now.clone()));
        h::set_text(&mut headers, h::LAST_FAILED_AT, now);
        h::set_text(&mut headers, h::LAST_ERROR, error);
        h::set_text(&mut headers, h::RETRY_TIER, tier.clone());
        h::set_text(&mut headers, h::ORIGINAL_ROUTING_KEY, msg.routing_key.clone());
        match why {
            Parked::Failure => tracing::info!(tier, attempts, error, "transient failure; parked in a retry tier"),
            Parked::CircuitOpen => {
                tracing::info!(
                    tier,
                    attempts,
                    reason = error,
                    "circuit open; parked in a retry tier without using it up"
                )
            }
            Parked::AccountBusy => {
                tracing::info!(
                    tier,
                    attempts,
                    reason = error,
                    "account busy; parked in a retry tier without using it up"
                )
            }
            Parked::LedgerDown => {
                tracing::warn!(
                    tier,
                    attempts,
                    reason = error,
                    "ledger down; parked in a retry tier without using it up"
                )
            }
        }
        let step = serde_json::json!({"tier": tier, "why": why.as_str(), "error": crate::contract::clip(error.to_owned(), 1024), "attempts": attempts});
        let parked = self.step_event(job, "parked", h::traceparent(&msg.headers), step);
        Disposition {
            // The copy keeps the job's routing key: the tier queue dead-letters it back to
            // the jobs exchange under that key. The `parked` event feeds the job's history.
            publish: vec![msg.forward(OutboundKind::Retry, self.topology.retry_exchange.clone(), headers), parked],
            after: After::Ack,
            report: Report::RetryScheduled { tier, why },
            vendor: Some(job.vendor),
            job_id: Some(job.id.to_string()),
            inline_retries: 0,
            requested_at: None,
        }
    }

    fn event(&self, job: &JobRef<'_>, outcome: &Outcome, attempts: u32) -> Outbound {
        let now = Utc::now();
        let event = event::Event::new(&self.event_source, job, outcome, attempts, now);
        let key = event::routing_key(outcome, job.vendor);
        event::message(&self.topology.events_exchange, key, event.id.clone(), event.to_vec(), job.traceparent, now)
    }

    /// A `provisioning.job.<step>` event: a step of a job that is not its outcome.
    fn step_event(&self, job: &Job, step: &str, traceparent: Option<&str>, data: serde_json::Value) -> Outbound {
        let about = event::StepOf {
            job_id: job.id.as_str(),
            vendor: Some(job.vendor),
            account: Some(job.account.as_str()),
            correlation_id: job.correlation_id.as_deref(),
            person: job.person.as_ref(),
        };
        let exchange = &self.topology.events_exchange;
        event::step_message(&self.event_source, exchange, step, &about, traceparent, data, Utc::now())
    }

    #[allow(clippy::too_many_arguments)]
    fn dead_letter(
        &self,
        msg: &Inbound,
        reason: &str,
        code: &str,
        message: &str,
        job: Option<&JobRef<'_>>,
        attempts: u32,
        history: &History,
    ) -> Outbound {
        let cause = DeadLetterCause {
            reason,
            code,
            message: truncate(message, 1024),
            attempts,
            first_failed_at: history.first_failed_at.clone(),
            job_id: job.map(|j| j.job_id),
            vendor: job.and_then(|j| j.vendor).map(VendorKey::as_str),
            account: job.and_then(|j| j.account),
        };
        msg.dead_letter(self.topology.dead_exchange.clone(), cause)
    }
}

fn amqp_time(msg: &Inbound) -> Option<DateTime<Utc>> {
    msg.timestamp.and_then(|t| Utc.timestamp_opt(i64::try_from(t).ok()?, 0).single())
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A sample job body, for tests and the demo.
pub fn sample_job(job_id: &str, vendor: VendorKey, account: &str, identity: &str) -> serde_json::Value {
    let user = match vendor {
        VendorKey::Glance => {
            json!({"PartnerUserID": identity, "UserAddress": format!("{}.acme.glance.net", identity.to_lowercase()),
            "UserFirst": "Jane", "UserLast": "Doe", "UserEmail": "jane.doe@acme.example"})
        }
        VendorKey::Netsapiens => json!({"user": identity, "name-first-name": "Jane", "name-last-name": "Doe",
            "email": "jane.doe@acme.example", "user-scope": "Basic User"}),
        VendorKey::Clienttoolbox => json!({"user_name": identity, "user_new_password": "S3cure!pass",
            "user_first_name": "Jane", "user_last_name": "Doe", "user_role": "K", "allowed_campaigns": "all"}),
    };
    json!({"job_id": job_id, "vendor": vendor, "account": account, "correlation_id": format!("corr-{job_id}"),
           "requested_at": "2026-11-22T09:30:00Z", "user": user})
}
