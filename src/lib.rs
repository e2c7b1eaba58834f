//! provisioner: creates, from jobs and hire events, user accounts in SaaS products.
//!
//! # Data flow
//!
//! A delivery flows one way, and each stage only returns values:
//!
//! ```text
//! broker ─► worker ─► pipeline::handle ─► job::decode ─► accounts (limiter, breaker)
//!                                                          │
//!            transport::settle ◄─ Disposition ◄─ outcome ◄─ vendors::<vendor>::Adapter
//!            (publish, then ack: the one place that acks)
//! ```
//!
//! Hire events take a side entrance: `hire` (the `provisioning.hr` queue or the HTTP
//! intake) maps one hire to one job per vendor and publishes them as a producer would.
//!
//! # Layout, from the ground up
//!
//! A module imports only modules on its own floor or below; nothing imports upwards, so a
//! newcomer can read the crate bottom to top.
//!
//! 1. [`contract`]: the job contract's vocabulary (vendor keys, the field catalog, ids,
//!    field values). [`rate_limit`], [`circuit_breaker`] and [`shutdown`] are
//!    self-contained mechanisms on the same floor; [`shared_limits`] keeps an account's
//!    limits in Redis for every replica, on top of [`rate_limit`].
//! 2. [`config`]: settings, files and secrets; it knows the contract and the mechanisms'
//!    settings, nothing that uses it.
//! 3. [`retry`] (how long to wait), [`telemetry`] (logging), then [`vendors`]: everything
//!    that knows a vendor, one folder per vendor with the same files in each.
//! 4. [`job`] (bytes to a valid job, using each vendor's field rules), [`ledger`] (who
//!    holds which vendor identity, and every job's history, in SQLite or PostgreSQL),
//!    [`outcome`] (what a call came to), [`sandbox`] (the vendors' simulators served together).
//! 5. [`transport`] (messages, dispositions and the one place that settles them; RabbitMQ
//!    and in-memory brokers), [`event`] (result CloudEvents).
//! 6. [`metrics`] above what it measures; [`hire`] (hire events to jobs).
//! 7. [`accounts`] (each vendor call through its account's limiter and breaker), [`admin`]
//!    (the health and metrics port), then [`pipeline`] (one delivery to one disposition)
//!    and [`projection`] (events and dead letters to ledger rows).
//! 8. [`worker`] (consumers, settling, draining), [`commands`] (each subcommand as a
//!    function), [`cli`] (argument parsing); `main.rs` only calls [`cli::main`].

#![warn(unreachable_pub)]

// The ground floor.
pub mod circuit_breaker;
pub mod contract;
pub mod http_server;
pub mod rate_limit;
pub mod shared_limits;
pub mod shutdown;

pub mod config;

pub mod retry;
pub mod telemetry;
pub mod vendors;

pub mod job;
pub mod ledger;
pub mod outcome;
pub mod sandbox;

pub mod event;
pub mod transport;

pub mod hire;
pub mod metrics;

pub mod accounts;
pub mod admin;
pub mod pipeline;
pub mod projection;
pub mod safeguard;

// The top floor.
pub mod cli;
pub mod commands;
pub mod worker;
