//! A handler's decision for one delivery: what to publish, then ack or requeue, and what it meant.
//!
//! The job pipeline and the hire consumer both return one; [`super::settle`] carries it out
//! and the metrics and logs read its [`Report`], so none of them depends on the others.

use chrono::{DateTime, Utc};

use super::Outbound;
use crate::contract::VendorKey;
use crate::outcome::ErrorClass;

/// What to do after publishing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    Ack,
    /// Give the delivery back untouched; nothing is published.
    Requeue,
}

/// What happened, for metrics and logs once the disposition is settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// A terminal event: created, existing or failed.
    Terminal { outcome: &'static str, class: Option<ErrorClass>, dead_lettered: bool },
    /// Parked in a durable retry tier.
    RetryScheduled { tier: String, why: Parked },
    /// Not a job at all; only dead-lettered.
    Undecodable,
    /// Shutdown began before the vendor was called.
    Deferred,
    /// A removal the safeguard held for an operator.
    Held,
}

/// Why a job was parked in a retry tier. Only a failure uses up a tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parked {
    /// A transient failure: the next tier of the vendor's schedule.
    Failure,
    /// The account's circuit breaker is open (or this job's failure opened it).
    CircuitOpen,
    /// The account's rate limit admitted no call within `rate_limit.max_wait`.
    AccountBusy,
    /// The job needs a ledger decision (an intent, an identity check) and the ledger did
    /// not answer: decided later, never guessed.
    LedgerDown,
}

impl Parked {
    /// The `kind` label of `provisioner_retries_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Parked::Failure => "durable",
            Parked::CircuitOpen => "circuit_open",
            Parked::AccountBusy => "account_busy",
            Parked::LedgerDown => "ledger_down",
        }
    }
}

/// The pipeline's decision for one delivery.
#[derive(Clone, Debug)]
pub struct Disposition {
    /// Published in order, each confirmed, before the ack.
    pub publish: Vec<Outbound>,
    pub after: After,
    pub report: Report,
    pub vendor: Option<VendorKey>,
    pub job_id: Option<String>,
    /// Inline retries made in this delivery (calls beyond the first).
    pub inline_retries: u32,
    /// When the business event happened, for the end-to-end latency of terminal outcomes.
    pub requested_at: Option<DateTime<Utc>>,
}
