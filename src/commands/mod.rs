//! The subcommands of the `provisioner` binary, each a function the tests can call.

pub mod demo;
pub mod demo_outcomes;
pub mod demo_story;
pub mod dlq;
pub mod held;
pub mod map;
pub mod publish;
pub mod queue_walk;
pub mod run;
pub mod schema;
pub mod terminal;
pub mod validate;
pub mod whois;
