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

/// The longest field path an error names, in bytes: a path is built from the job's own keys.
pub const MAX_FIELD_PATH: usize = 256;
/// The longest message of one field error, in bytes: messages may quote the job's values.
pub const MAX_FIELD_MESSAGE: usize = 1024;
/// The most field errors listed for one job or hire; the rest are counted in a last entry.
pub const MAX_FIELD_ERRORS: usize = 50;

impl FieldError {
    /// Both parts are clipped ([`MAX_FIELD_PATH`], [`MAX_FIELD_MESSAGE`]), so a 50 MB key or
    /// value quoted back cannot become a 50 MB error line, event or header.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: clip(field.into(), MAX_FIELD_PATH), message: clip(message.into(), MAX_FIELD_MESSAGE) }
    }

    /// Keeps the first [`MAX_FIELD_ERRORS`] - 1 errors and says how many more there were.
    pub fn cap(errors: &mut Vec<FieldError>) {
        if errors.len() > MAX_FIELD_ERRORS {
            let more = errors.len() - (MAX_FIELD_ERRORS - 1);
            errors.truncate(MAX_FIELD_ERRORS - 1);
            errors.push(FieldError::new("", format!("… and {more} more errors, not listed")));
        }
    }
}

/// `text` cut to at most `max` bytes (on a character boundary), ending in `…` when cut.
pub fn clip(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
}

/// The first character that has no place in a free-text field: a control character (NUL,
/// CR, LF, ESC, ...) or a bidirectional override (U+202E and kin), which would let a name
/// rewrite a log line or a terminal, or show one text while meaning another.
pub fn unsafe_char(text: &str) -> Option<char> {
    text.chars().find(|&c| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    })
}

/// The JSON Schema `pattern` (ECMA-262) of text [`unsafe_char`] accepts: the same characters,
/// kept beside it so the published schema and the decoder cannot drift apart.
pub const SAFE_TEXT_PATTERN: &str =
    "^[^\\u0000-\\u001f\\u007f-\\u009f\\u200e\\u200f\\u061c\\u202a-\\u202e\\u2066-\\u2069]*$";

/// The field error for text that [`unsafe_char`] refuses.
pub fn unsafe_char_message(c: char) -> String {
    format!("must not contain control or bidirectional-override characters, found {c:?}")
}

#[cfg(test)]
mod bound_tests {
    use super::*;

    #[test]
    fn huge_keys_and_values_make_bounded_errors() {
        let huge = "k".repeat(50 * 1024 * 1024);
        let e = FieldError::new(huge.clone(), format!("unknown value {huge:?}"));
        assert!(e.field.len() <= MAX_FIELD_PATH && e.field.ends_with('…'));
        assert!(e.message.len() <= MAX_FIELD_MESSAGE && e.message.ends_with('…'));
        assert_eq!(clip("żółw".repeat(100), 7), "żó…", "cut on a character boundary");
        assert_eq!(clip("short".into(), 7), "short");
    }

    #[test]
    fn long_error_lists_are_capped_with_a_count() {
        let mut errors: Vec<_> = (0..500).map(|i| FieldError::new(format!("user.f{i}"), "unknown field")).collect();
        FieldError::cap(&mut errors);
        assert_eq!(errors.len(), MAX_FIELD_ERRORS);
        assert_eq!(errors.last().unwrap().message, "… and 451 more errors, not listed");
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
