//! The create-user job and its identifiers, as the rest of the service receives it once decoded.

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

/// A decoded, valid create-user job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: JobId,
    pub vendor: VendorKey,
    pub account: AccountName,
    pub correlation_id: Option<String>,
    /// When the business event (the hire) happened; feeds the end-to-end latency.
    pub requested_at: Option<DateTime<Utc>>,
    /// NetSapiens only: overrides the account's configured domain.
    pub domain: Option<String>,
    /// Who the account is for, when the producer says (hire-derived jobs always do).
    pub person: Option<Person>,
    pub user: UserFields,
}

impl Job {
    /// Every job's routing key is this prefix and the vendor key.
    pub const ROUTING_KEY_PREFIX: &'static str = "create_user.";

    /// The routing key a job for this vendor is published with.
    pub fn routing_key(vendor: VendorKey) -> String {
        format!("{}{vendor}", Self::ROUTING_KEY_PREFIX)
    }

    /// The vendor a job's routing key names, if it is a create-user key of a known vendor.
    pub fn vendor_of_routing_key(key: &str) -> Option<VendorKey> {
        key.strip_prefix(Self::ROUTING_KEY_PREFIX).and_then(VendorKey::parse)
    }

    /// The value that identifies the user at the vendor, for idempotency checks.
    pub fn identity(&self) -> Option<&str> {
        self.user.text(self.vendor.identity_field())
    }
}
