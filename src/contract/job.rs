//! The job (what to do to which user, at which vendor account) and its identifiers, as the rest of the service receives it once decoded.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{UserFields, VendorKey};

/// The idempotency key of a job: 1–128 printable ASCII characters, no surrounding spaces.
///
/// Printable ASCII because it travels as the AMQP `message_id`, in headers and in URLs,
/// and every one of those mangles control characters or multi-byte text differently.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct JobId(String);

impl JobId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.len() > Self::MAX_LEN {
            return Err(format!("must be at most {} characters, got {}", Self::MAX_LEN, raw.chars().count()));
        }
        if let Some(c) = raw.chars().find(|c| !(' '..='~').contains(c)) {
            return Err(format!("must be printable ASCII, found {c:?}"));
        }
        if raw.trim() != raw {
            return Err("must not start or end with a space".into());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of a configured vendor account: 1–64 of `[A-Za-z0-9_.-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct AccountName(String);

impl AccountName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > 64 {
            return Err("must be 1 to 64 characters".into());
        }
        if let Some(c) = raw.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
            return Err(format!("may only contain letters, digits, '_', '.' and '-', found {c:?}"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The person a job is for, when its producer says: `{"tenant": "acme", "employee_id": "000731"}`.
///
/// Optional in the contract, and always set on jobs derived from hire events. It is what
/// lets the ledger prove that two jobs are for the same person, and refuse an identity that
/// belongs to someone else.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Person {
    // In name order: events serialise their members sorted.
    pub employee_id: String,
    /// `""` when the producer named no tenant.
    pub tenant: String,
}

impl Person {
    /// The longest employee id, in characters: as long as a hire event's `employee.id`.
    pub const MAX_EMPLOYEE_ID: usize = 256;
    pub const MAX_TENANT: usize = 64;

    /// An employee id is 1–256 characters without control characters or surrounding
    /// spaces, as a hire event's `employee.id`; a tenant is empty or 1–64 of
    /// `[A-Za-z0-9_.-]`, as tenant names in the config are.
    pub fn parse(tenant: &str, employee_id: &str) -> Result<Self, (&'static str, String)> {
        let n = employee_id.chars().count();
        if n == 0
            || n > Self::MAX_EMPLOYEE_ID
            || employee_id.chars().any(char::is_control)
            || employee_id.trim() != employee_id
        {
            return Err((
                "person.employee_id",
                format!(
                    "must be 1 to {} characters without control characters or surrounding spaces",
                    Self::MAX_EMPLOYEE_ID
                ),
            ));
        }
        if tenant.len() > Self::MAX_TENANT
            || !tenant.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err((
                "person.tenant",
                format!("must be up to {} of A-Z, a-z, 0-9, '_', '.' and '-'", Self::MAX_TENANT),
            ));
        }
        Ok(Self { tenant: tenant.to_owned(), employee_id: employee_id.to_owned() })
    }
}

/// What a job asks the vendor to do: its `kind` in the contract and the first word of its
/// routing key. A closed set, so a metric label and a match can name every one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Create the user (the only kind before lifecycle jobs; the default when a job names none).
    #[default]
    CreateUser,
    /// Change the fields the job names, and only those.
    UpdateUser,
    /// Take the user's access away, reversibly.
    SuspendUser,
    /// Give a suspended user access again.
    RestoreUser,
    /// Delete the user, in the least destructive way the account allows.
    DeleteUser,
}

impl JobKind {
    pub const ALL: [JobKind; 5] =
        [JobKind::CreateUser, JobKind::UpdateUser, JobKind::SuspendUser, JobKind::RestoreUser, JobKind::DeleteUser];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::CreateUser => "create_user",
            JobKind::UpdateUser => "update_user",
            JobKind::SuspendUser => "suspend_user",
            JobKind::RestoreUser => "restore_user",
            JobKind::DeleteUser => "delete_user",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The routing key a job of this kind for `vendor` is published with: `<kind>.<vendor>`.
    pub fn routing_key(self, vendor: VendorKey) -> String {
        format!("{}.{vendor}", self.as_str())
    }

    /// Whether the job's `user` names only the user (its identity) and no other field.
    pub fn names_user_only(self) -> bool {
        matches!(self, JobKind::SuspendUser | JobKind::RestoreUser | JobKind::DeleteUser)
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoded, valid job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: JobId,
    /// What to do; `create_user` when the producer named no kind.
    pub kind: JobKind,
    pub vendor: VendorKey,
    pub account: AccountName,
    pub correlation_id: Option<String>,
    /// When the business event (the hire) happened; feeds the end-to-end latency.
    pub requested_at: Option<DateTime<Utc>>,
    /// NetSapiens only: overrides the account's configured domain.
    pub domain: Option<String>,
    /// Who the account is for, when the producer says (hire-derived jobs always do).
    pub person: Option<Person>,
    /// For a create, the whole user; for an update, its identity and the fields to change;
    /// for a suspend, restore or delete, its identity only.
    pub user: UserFields,
}

impl Job {
    /// The routing key a create-user job for this vendor is published with.
    pub fn routing_key(vendor: VendorKey) -> String {
        JobKind::CreateUser.routing_key(vendor)
    }

    /// The kind and vendor a job's routing key names, if it is `<kind>.<vendor>` of a known
    /// kind and vendor.
    pub fn parse_routing_key(key: &str) -> Option<(JobKind, VendorKey)> {
        let (kind, vendor) = key.split_once('.')?;
        Some((JobKind::parse(kind)?, VendorKey::parse(vendor)?))
    }

    /// The vendor a job's routing key names, if it is a job key of a known kind and vendor.
    pub fn vendor_of_routing_key(key: &str) -> Option<VendorKey> {
        Self::parse_routing_key(key).map(|(_, vendor)| vendor)
    }

    /// The value that identifies the user at the vendor, for idempotency checks.
    pub fn identity(&self) -> Option<&str> {
        self.user.text(self.vendor.identity_field())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_routing_key() {
        for kind in JobKind::ALL {
            for vendor in VendorKey::ALL {
                let key = kind.routing_key(vendor);
                assert_eq!(Job::parse_routing_key(&key), Some((kind, vendor)), "{key}");
            }
        }
        assert_eq!(Job::routing_key(VendorKey::Glance), "create_user.glance");
        for key in ["create_user", "create_user.", "rename_user.glance", "create_user.glance.x", "user.created.glance"]
        {
            assert_eq!(Job::parse_routing_key(key), None, "{key}");
        }
    }
}
