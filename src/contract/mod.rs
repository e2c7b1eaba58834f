//! The job contract's vocabulary, the ground floor: vendor keys, the field catalog, ids and values.
//!
//! Everything above builds on these types and none of them imports anything of this crate,
//! so the job decoder, the vendor adapters, the config and the metrics can all name a vendor
//! or a field without depending on each other.

mod catalog;
mod fields;
mod job;
mod vendor;

pub use catalog::{FieldKind, FieldSpec};
pub use fields::{
    clip, unsafe_char, unsafe_char_message, FieldError, FieldValue, UserFields, MAX_FIELD_ERRORS, MAX_FIELD_MESSAGE,
    MAX_FIELD_PATH, REDACTED, SAFE_TEXT_PATTERN,
};
pub use job::{AccountName, Job, JobId, JobKind, Person};
pub use vendor::{all_auth_fields, VendorKey};
