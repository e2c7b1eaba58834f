//! NetSapiens (API v2, `/domains/{domain}/users`): field rules, account config, request building, answer reading, the adapter and its sandbox.
//!
//! Layout, as for every vendor: `fields` (the job's values as types), `account` (config),
//! `request` and `response` (pure), `adapter` (I/O and idempotency), `sandbox` (simulator).

pub mod account;
pub mod adapter;
pub mod fields;
pub mod request;
pub mod response;
pub mod sandbox;
pub mod schema;

pub use account::{from_settings, Account};
pub use adapter::{build, Adapter};
pub use fields::{validate, Changes, Domain, EmailField, Extension, NewUser, UserChange, UserRef, UserScope};
pub use sandbox::{router, Sandbox};

/// Catalog fields `PUT /domains/{domain}/users/{user}` does not take: none, it takes the
/// create's field names (the extension itself, `user`, is the address and never changes).
pub const NOT_UPDATABLE: &[&str] = &[];
