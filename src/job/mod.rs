//! The create-user job: typed domain values that can only exist once they are valid.

pub mod decode;
mod schema;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use decode::{decode, FieldError, InvalidJob, Rejection};
pub use schema::job_schema;

use crate::vendors::VendorKey;

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

/// One value of a vendor user field, in the shape the vendor documents.
#[derive(Clone, PartialEq, Eq)]
pub enum FieldValue {
    Text(String),
    Integer(i64),
}

impl FieldValue {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            FieldValue::Text(s) => serde_json::Value::String(s.clone()),
            FieldValue::Integer(i) => serde_json::Value::from(*i),
        }
    }

    pub fn to_wire(&self) -> String {
        match self {
            FieldValue::Text(s) => s.clone(),
            FieldValue::Integer(i) => i.to_string(),
        }
    }
}

/// The `user` object of a job: only documented wire names of the job's vendor.
///
/// Keys are `&'static str` taken from the vendor catalog, so an unknown field cannot be
/// represented at all. `Debug` redacts secret fields so a stray `{:?}` cannot leak them.
#[derive(Clone, PartialEq, Eq)]
pub struct UserFields {
    vendor: VendorKey,
    fields: BTreeMap<&'static str, FieldValue>,
}

pub const REDACTED: &str = "***";

impl UserFields {
    pub(crate) fn new(vendor: VendorKey, fields: BTreeMap<&'static str, FieldValue>) -> Self {
        Self { vendor, fields }
    }

    pub fn get(&self, name: &str) -> Option<&FieldValue> {
        self.fields.get(name)
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        match self.fields.get(name) {
            Some(FieldValue::Text(s)) => Some(s),
            _ => None,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &FieldValue)> {
        self.fields.iter().map(|(k, v)| (*k, v))
    }

    /// The fields as JSON with every secret replaced by `***`: the only form fit for logs,
    /// events and CLI output.
    pub fn redacted(&self) -> serde_json::Value {
        let map = self
            .fields
            .iter()
            .map(|(k, v)| {
                let secret = self.vendor.field(k).is_some_and(|f| f.secret);
                let value = if secret { serde_json::Value::String(REDACTED.into()) } else { v.to_json() };
                ((*k).to_owned(), value)
            })
            .collect();
        serde_json::Value::Object(map)
    }
}

impl fmt::Debug for UserFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.redacted())
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
    /// The routing key a job for this vendor is published with.
    pub fn routing_key(vendor: VendorKey) -> String {
        format!("create_user.{vendor}")
    }

    /// The value that identifies the user at the vendor, for idempotency checks.
    pub fn identity(&self) -> Option<&str> {
        self.user.text(self.vendor.identity_field())
    }
}
