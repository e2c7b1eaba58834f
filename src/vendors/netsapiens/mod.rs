//! The NetSapiens API v2 adapter: field rules, account config, pure request building and response reading, the HTTP adapter and a built-in simulator.
//!
//! Layout, as for every vendor: `fields` (the job's values as types), `account` (config),
//! `request` and `response` (pure), `adapter` (I/O and idempotency), `sandbox` (simulator).

pub mod account;
pub mod adapter;
pub mod fields;
pub mod request;
pub mod response;
pub mod sandbox;

pub use account::{from_settings, Account};
pub use adapter::{build, Adapter};
pub use fields::{validate, Domain, EmailField, Extension, NewUser, UserScope};
pub use sandbox::{router, Sandbox};
