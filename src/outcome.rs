//! The terminal result of a job: what the vendor now holds (created, existing, updated, suspended, restored, deleted, unchanged), or failed with a class that says who must act.

use serde::Serialize;

use crate::contract::JobKind;
use crate::vendors::{Receipt, VendorError, VendorFailure};

/// Why a job failed for good. A closed set: used as a metric label and in DLQ headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorClass {
    /// Failed local validation and was never sent. The producer must fix the job.
    Invalid,
    /// The vendor refused the input. The producer must fix the job.
    Rejected,
    /// A different user already holds the identity. A person must pick another identity.
    Conflict,
    /// Credentials or account configuration are wrong. An operator must fix config, then replay.
    Auth,
    /// Transient failures until the retries ran out. Replay once the vendor is back.
    Unavailable,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 5] =
        [ErrorClass::Invalid, ErrorClass::Rejected, ErrorClass::Conflict, ErrorClass::Auth, ErrorClass::Unavailable];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Invalid => "invalid",
            ErrorClass::Rejected => "rejected",
            ErrorClass::Conflict => "conflict",
            ErrorClass::Auth => "auth",
            ErrorClass::Unavailable => "unavailable",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A permanent failure, as it appears in the `failed` event's `error` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub class: ErrorClass,
    pub code: String,
    pub message: String,
}

impl Failure {
    /// The message is clipped to [`Failure::MAX_MESSAGE`] bytes: it goes into the event, the
    /// logs and the dead letter's headers, and may quote a vendor's or a producer's text.
    pub fn new(class: ErrorClass, code: impl Into<String>, message: impl Into<String>) -> Self {
        let message = crate::contract::clip(message.into(), Self::MAX_MESSAGE);
        Self { class, code: crate::contract::clip(code.into(), 128), message }
    }

    pub const MAX_MESSAGE: usize = 4096;

    /// A vendor error that will not be retried (any more). Transient errors that ran out of
    /// retries become `unavailable`.
    pub fn from_vendor(e: &VendorError) -> Self {
        let class = match e.failure {
            VendorFailure::Rejected => ErrorClass::Rejected,
            VendorFailure::Conflict => ErrorClass::Conflict,
            VendorFailure::Auth => ErrorClass::Auth,
            VendorFailure::Transient | VendorFailure::Throttled => ErrorClass::Unavailable,
        };
        Self::new(class, e.code.clone(), e.message.clone())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created(Receipt),
    /// A create whose user already existed with the same identity (a redelivery or replay).
    Existing(Receipt),
    Updated(Receipt),
    Suspended(Receipt),
    Restored(Receipt),
    Deleted(Receipt),
    /// An update, suspend, restore or delete the vendor already reflected: never an error.
    Unchanged(Receipt),
    Failed(Failure),
}

impl Outcome {
    /// Every outcome's name, successes first: the routing-key words and metric labels.
    pub const NAMES: [&'static str; 8] =
        ["created", "existing", "updated", "suspended", "restored", "deleted", "unchanged", "failed"];

    /// What a successful call of a `kind` job did.
    pub fn from_receipt(kind: JobKind, receipt: Receipt) -> Self {
        match (kind, receipt.existing) {
            (JobKind::CreateUser, false) => Outcome::Created(receipt),
            (JobKind::CreateUser, true) => Outcome::Existing(receipt),
            (_, true) => Outcome::Unchanged(receipt),
            (JobKind::UpdateUser, false) => Outcome::Updated(receipt),
            (JobKind::SuspendUser, false) => Outcome::Suspended(receipt),
            (JobKind::RestoreUser, false) => Outcome::Restored(receipt),
            (JobKind::DeleteUser, false) => Outcome::Deleted(receipt),
        }
    }

    /// The routing-key word and metric label: one of [`Outcome::NAMES`].
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Created(_) => "created",
            Outcome::Existing(_) => "existing",
            Outcome::Updated(_) => "updated",
            Outcome::Suspended(_) => "suspended",
            Outcome::Restored(_) => "restored",
            Outcome::Deleted(_) => "deleted",
            Outcome::Unchanged(_) => "unchanged",
            Outcome::Failed(_) => "failed",
        }
    }

    /// The vendor's receipt, for every outcome but `failed`.
    pub fn receipt(&self) -> Option<&Receipt> {
        match self {
            Outcome::Created(r)
            | Outcome::Existing(r)
            | Outcome::Updated(r)
            | Outcome::Suspended(r)
            | Outcome::Restored(r)
            | Outcome::Deleted(r)
            | Outcome::Unchanged(r) => Some(r),
            Outcome::Failed(_) => None,
        }
    }

    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Outcome::Failed(f) => Some(f),
            _ => None,
        }
    }
}
