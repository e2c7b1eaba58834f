//! The ledger's vocabulary: who a job is for, which vendor identity it names, and the rows kept about them.

use serde::Serialize;

pub use crate::contract::Person;
use crate::contract::VendorKey;

/// One vendor identity, scoped by the configured account it lives in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct IdentityKey {
    pub vendor: VendorKey,
    pub account: String,
    /// The vendor's unique key for the user: Glance `PartnerUserID`, NetSapiens
    /// `user@domain`, ClientToolbox `user_name` as sent.
    pub identity: String,
}

/// A link's state. `Intent` is a create about to be sent; the rest follow the account's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    Intent,
    Active,
    Suspended,
    Deleted,
}

impl LinkState {
    pub const ALL: [LinkState; 4] = [LinkState::Intent, LinkState::Active, LinkState::Suspended, LinkState::Deleted];

    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Intent => "intent",
            LinkState::Active => "active",
            LinkState::Suspended => "suspended",
            LinkState::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One row of `links`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Link {
    pub vendor: VendorKey,
    pub account: String,
    pub identity: String,
    /// A second identifying value the vendor keeps unique (Glance `UserAddress`).
    pub identity_extra: Option<String>,
    pub person: Option<Person>,
    /// The job that claimed or created the identity.
    pub job_id: String,
    pub correlation_id: Option<String>,
    pub vendor_user_id: Option<String>,
    pub state: LinkState,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Link {
    /// Whose the identity is, as far as the ledger can prove, compared with a job.
    pub fn owner_relation(&self, job_id: &str, person: Option<&Person>) -> Owner {
        if self.job_id == job_id {
            return Owner::ThisJob;
        }
        match (&self.person, person) {
            (Some(mine), Some(theirs)) if mine == theirs => Owner::ThisPerson,
            (Some(_), Some(_)) => Owner::SomeoneElse,
            // A job without a person cannot be told apart from another one by the ledger;
            // the vendor's record decides, as it did before there was a ledger.
            _ => Owner::Unknown,
        }
    }
}

/// What the ledger says about an identity a job is about to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Nobody held it: this job's intent is now recorded.
    Nobody,
    /// This job claimed it before (a redelivery, a retry, a replay).
    ThisJob,
    /// Another job for the same person (the same tenant and employee id) holds it.
    ThisPerson,
    /// A different person holds it.
    SomeoneElse,
    /// Held by a job for which the ledger cannot tell (neither names a person).
    Unknown,
}

/// The outcome of claiming an identity before a create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub owner: Owner,
    /// The row as it stands after the claim.
    pub link: Link,
}

/// What one history entry records. A closed set, stored as its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    /// A hire became this job, published to the jobs exchange.
    Published,
    /// Parked in a retry tier (detail: tier, why, error).
    Parked,
    Created,
    Existing,
    Updated,
    Suspended,
    Restored,
    Deleted,
    Unchanged,
    Failed,
    DeadLettered,
    Replayed,
    Purged,
    /// A person event found something it did not act on (detail: notes), e.g. a leave of
    /// someone who holds no account.
    Noted,
    /// A removal the safeguard held for an operator (detail: account, reason, held_at).
    Held,
    /// Released from the held queue by an operator (detail: by, reason).
    Approved,
    /// Dropped from the held queue by an operator, never sent (detail: by, reason).
    Rejected,
}

impl HistoryKind {
    pub const ALL: [HistoryKind; 17] = [
        HistoryKind::Published,
        HistoryKind::Parked,
        HistoryKind::Created,
        HistoryKind::Existing,
        HistoryKind::Updated,
        HistoryKind::Suspended,
        HistoryKind::Restored,
        HistoryKind::Deleted,
        HistoryKind::Unchanged,
        HistoryKind::Failed,
        HistoryKind::DeadLettered,
        HistoryKind::Replayed,
        HistoryKind::Purged,
        HistoryKind::Noted,
        HistoryKind::Held,
        HistoryKind::Approved,
        HistoryKind::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HistoryKind::Published => "published",
            HistoryKind::Parked => "parked",
            HistoryKind::Created => "created",
            HistoryKind::Existing => "existing",
            HistoryKind::Updated => "updated",
            HistoryKind::Suspended => "suspended",
            HistoryKind::Restored => "restored",
            HistoryKind::Deleted => "deleted",
            HistoryKind::Unchanged => "unchanged",
            HistoryKind::Failed => "failed",
            HistoryKind::DeadLettered => "dead_lettered",
            HistoryKind::Replayed => "replayed",
            HistoryKind::Purged => "purged",
            HistoryKind::Noted => "noted",
            HistoryKind::Held => "held",
            HistoryKind::Approved => "approved",
            HistoryKind::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One step in a job's story.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistoryEntry {
    /// The id of the event or action that reported the step: the key that makes a
    /// redelivered report a no-op.
    pub entry_id: String,
    /// Unix milliseconds.
    pub at: i64,
    pub kind: HistoryKind,
    pub job_id: Option<String>,
    pub correlation_id: Option<String>,
    pub person: Option<Person>,
    pub vendor: Option<VendorKey>,
    pub account: Option<String>,
    /// The step's particulars, a JSON object (tier and why; class, code and message; who,
    /// filter and reason).
    pub detail: serde_json::Value,
}

/// A dead letter's state in the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LetterState {
    Dead,
    Replayed,
    Purged,
}

impl LetterState {
    pub const ALL: [LetterState; 3] = [LetterState::Dead, LetterState::Replayed, LetterState::Purged];

    pub fn as_str(self) -> &'static str {
        match self {
            LetterState::Dead => "dead",
            LetterState::Replayed => "replayed",
            LetterState::Purged => "purged",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One dead-lettered message, as indexed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LetterRow {
    pub letter_id: String,
    pub job_id: Option<String>,
    pub vendor: Option<String>,
    pub account: Option<String>,
    /// An error class, `undecodable`, or the broker's reason (`delivery_limit`).
    pub reason: String,
    pub code: Option<String>,
    pub message: Option<String>,
    pub attempts: i64,
    pub routing_key: String,
    pub first_failed_at: Option<i64>,
    pub last_failed_at: i64,
    pub state: LetterState,
}

/// Which dead letters a query wants; every condition given must hold.
#[derive(Clone, Debug, Default)]
pub struct LetterQuery {
    pub vendor: Option<String>,
    pub account: Option<String>,
    pub reason: Option<String>,
    pub job_id: Option<String>,
    /// Unix ms, inclusive.
    pub since: Option<i64>,
    /// Unix ms, exclusive.
    pub until: Option<i64>,
    pub limit: Option<usize>,
}

/// A created or existing outcome: the identity is this job's person's, and active.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveLink {
    pub key: IdentityKey,
    pub identity_extra: Option<String>,
    pub person: Option<Person>,
    pub job_id: String,
    pub correlation_id: Option<String>,
    pub vendor_user_id: Option<String>,
    pub at: i64,
}

/// A suspend, restore or delete that reached the vendor (or found it already so): the
/// link moves to the state the vendor now holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MovedLink {
    pub key: IdentityKey,
    pub state: LinkState,
    pub person: Option<Person>,
    pub job_id: String,
    pub correlation_id: Option<String>,
    pub at: i64,
}

/// One write of the projection. A batch of them is applied in one transaction, and every
/// one is idempotent, so a batch redelivered after a crash changes nothing twice.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    History(HistoryEntry),
    Active(ActiveLink),
    Moved(MovedLink),
    /// A job that failed for good gives up the identity it claimed.
    ReleaseIntent {
        key: IdentityKey,
        job_id: String,
    },
    /// A newly dead-lettered message.
    Letter(LetterRow),
    /// Dead letters of this job moved (replayed or purged).
    LetterMoved {
        job_id: String,
        state: LetterState,
        at: i64,
    },
    /// The newest event time this writer has committed, for the lag.
    Progress {
        writer: String,
        event_at: i64,
    },
}
