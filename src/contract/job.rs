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
