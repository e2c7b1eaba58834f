//! The NetSapiens API v2 adapter: field rules, account config, pure request building and response reading, the HTTP adapter and a built-in simulator.

pub mod account;
pub mod adapter;
pub mod fields;
pub mod request;
pub mod response;
pub mod sandbox;

pub use fields::{validate, Domain, EmailField, Extension, NewUser, UserScope};
