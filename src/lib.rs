//! provisioner: creates user accounts in SaaS products from create-user jobs on RabbitMQ.
//!
//! The data flows one way: consume → [`job::decode`] → vendor [`vendors::Adapter`] with
//! [`retry`] → [`outcome::Outcome`] → [`pipeline::Disposition`] → [`transport::settle`]
//! (publish the event, then ack, retry later or dead-letter).

pub mod accounts;
pub mod admin;
pub mod circuit_breaker;
pub mod cli;
pub mod commands;
pub mod config;
pub mod contract;
pub mod event;
pub mod hire;
pub mod job;
pub mod metrics;
pub mod outcome;
pub mod pipeline;
pub mod rate_limit;
pub mod retry;
pub mod sandbox;
pub mod shutdown;
pub mod telemetry;
pub mod transport;
pub mod vendors;
pub mod worker;
