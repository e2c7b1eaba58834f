//! The parse edge for jobs: bytes in, a [`Job`](crate::contract::Job) or every reason it is not one.
//!
//! Decoding sits above the vendor adapters because a job is valid only once its vendor's own
//! field rules accept it; the types it produces live in [`crate::contract`].

pub mod decode;
mod schema;

pub use decode::{decode, decode_with, InvalidJob, Rejection};
pub use schema::{job_schema, NOT_EXPRESSIBLE};
