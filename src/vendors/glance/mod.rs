//! Glance (legacy Partner User API, `/PAPI/NewUser.asp`, `UpdateUser.asp`, `DeleteUser.asp` and `ShowUsers.asp`): field rules, account config, request building, answer reading, the adapter and its sandbox.
//!
//! Layout, as for every vendor: `fields` (the job's values as types), `account` (config),
//! `request` and `response` (pure), `adapter` (I/O and idempotency), `sandbox` (simulator).
//! `xml` is Glance's own reader for the answers.

pub mod account;
pub mod adapter;
pub mod fields;
pub mod request;
pub mod response;
pub mod sandbox;
pub mod schema;
mod xml;

pub use account::{from_settings, Account};
pub use adapter::{build, Adapter};
pub use fields::{validate, GlanceAddress, NewUser, PartnerUserId, Rules, UserChange, UserRef};
pub use sandbox::{router, Sandbox};

/// Catalog fields `UpdateUser.asp` does not take: the audio account is set up at creation
/// only.
pub const NOT_UPDATABLE: &[&str] = &["AudioProvider"];
