//! A `dlq` subcommand as a value: what to do, to which dead letters, read from where.

use super::{Filter, Replay};

/// One `dlq` subcommand, already parsed.
#[derive(Debug)]
pub enum Action {
    List { filter: Filter, json: bool, source: Source },
    Stats { filter: Filter, json: bool, source: Source },
    Show { job_id: String },
    Replay { filter: Filter, opts: Replay, json: bool },
    Purge { filter: Filter, json: bool, actor: String, reason: Option<String> },
}

/// Where `list` and `stats` read the dead letters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// The ledger's index when a ledger is configured (seconds for 100,000 dead letters;
    /// as fresh as the projection, whose lag is printed), else the queue.
    #[default]
    Auto,
    /// The ledger's index; fails when there is no ledger or it does not answer.
    Ledger,
    /// A walk of the dead-letter queue itself (minutes for 100,000 dead letters).
    Queue,
}
