//! A job's `user` object as typed values, and the error that names one bad field.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::VendorKey;

/// One thing wrong with a job, addressed by its JSON path (`user.UserAddress`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
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
