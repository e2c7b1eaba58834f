//! Command-line interface: parses arguments and dispatches to [`crate::commands`].

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Settings, Sources};

#[derive(Debug, Parser)]
#[command(
    name = "provisioner",
    version,
    about = "Creates user accounts in SaaS products from create-user jobs on RabbitMQ"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the worker: consume jobs, call vendors, publish events; serve the admin port.
    Run {
        /// Directory holding default.toml and <PROVISIONER_ENV>.toml.
        #[arg(long, default_value = "config", env = "PROVISIONER_CONFIG_DIR")]
        config: PathBuf,
    },
    /// Run the whole pipeline on sample jobs with zero setup, and print a summary.
    Demo {
        /// Use this broker (e.g. amqp://guest:guest@127.0.0.1:5672/%2f) instead of the embedded one.
        #[arg(long)]
        amqp: Option<String>,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Check jobs offline (a JSON array or NDJSON). Exit 0 all valid, 1 some invalid, 2 on error.
    Validate {
        /// The file to check; `-` reads standard input.
        file: PathBuf,
        /// One JSON line per job: {"index","job_id","valid","errors":[{"field","message"}]}.
        #[arg(long)]
        json: bool,
        /// Also check that each job's account is configured in this config directory.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the JSON Schema of the job message (or, with --hire, of the hire event; with
    /// --result, of the result event), or write all three into a directory.
    Schema {
        /// The hire event's schema instead of the job's.
        #[arg(long, conflicts_with_all = ["result", "write"])]
        hire: bool,
        /// The result event's schema (CloudEvents envelope and data) instead of the job's.
        #[arg(long, conflicts_with = "write")]
        result: bool,
        /// Write job.schema.json, hire-event.schema.json and result-event.schema.json into
        /// this directory (the committed copies live in schemas/).
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
    },
    /// Preview the jobs a hire event (a JSON file) would produce, and their validation,
    /// without publishing anything. Exit 0 valid, 1 invalid, 2 on error.
    Map {
        /// The hire event; `-` reads standard input.
        file: PathBuf,
        /// Directory holding the config with the `[tenants.*]` mappings and accounts.
        #[arg(long, default_value = "config", env = "PROVISIONER_CONFIG_DIR")]
        config: PathBuf,
        /// Print the preview as one JSON object (secrets redacted).
        #[arg(long)]
        json: bool,
    },
    /// Serve faithful simulators of the three vendor APIs over HTTP, with fault injection
    /// (also adjustable live with PUT /_sandbox/faults). Runs until SIGTERM or Ctrl-C.
    Sandbox {
        #[arg(long, default_value = "127.0.0.1:8700")]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        faults: crate::sandbox::Faults,
        /// Seed of the fault dice, for repeatable runs.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Find, inspect, replay and purge dead-lettered jobs (AMQP only).
    Dlq {
        #[command(flatten)]
        broker: BrokerArgs,
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// List, approve (release) or reject (drop) the suspends and deletes the safeguard held
    /// (AMQP only). Nothing held is ever released without `held approve`. Exit 0 done, 1 some
    /// held message could not be released (it stays held), 2 on error.
    Held {
        #[command(flatten)]
        broker: BrokerArgs,
        #[command(subcommand)]
        command: HeldCommand,
    },
    /// Every account the ledger links to an employee id or a vendor identity (a ClientToolbox
    /// user name, a NetSapiens user@domain, a Glance PartnerUserID or address), with its state.
    /// Exit 0 found, 1 nothing linked, 2 on error.
    Whois {
        /// An employee id or a vendor identity.
        query: String,
        #[arg(long, default_value = "config", env = "PROVISIONER_CONFIG_DIR")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// The story of a job (by job id) or of every job of a hire (by its event id), from the
    /// ledger: published, parked, created/existing/failed, dead-lettered, replayed, purged.
    /// Exit 0 found, 1 nothing known, 2 on error.
    History {
        /// A job id or a hire event id.
        id: String,
        #[arg(long, default_value = "config", env = "PROVISIONER_CONFIG_DIR")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Validate the jobs of a file (NDJSON or a JSON array) and publish the valid ones with
    /// confirms, reporting each. Exit 0 all published, 1 some invalid or unconfirmed, 2 on error.
    Publish {
        /// The file; `-` reads standard input.
        file: PathBuf,
        #[command(flatten)]
        broker: BrokerArgs,
        /// One JSON line per job.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct BrokerArgs {
    /// Directory holding the service's config (broker URL, queue names).
    #[arg(long, global = true, default_value = "config", env = "PROVISIONER_CONFIG_DIR")]
    pub config: PathBuf,
    /// Broker URL, overriding the config's `amqp.url` and `amqp.urls`.
    #[arg(long, global = true)]
    pub amqp: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct FilterArgs {
    /// Only dead letters of this vendor.
    #[arg(long)]
    pub vendor: Option<crate::contract::VendorKey>,
    /// Only dead letters of this account (its name in the config).
    #[arg(long)]
    pub account: Option<String>,
    /// Only dead letters that failed for this reason.
    #[arg(long, value_enum)]
    pub class: Option<DeadLetterClass>,
    /// Only the dead letter(s) of this job id.
    #[arg(long)]
    pub job_id: Option<String>,
    /// Last failure at or after: an RFC 3339 time, or an age like 2h (two hours ago).
    #[arg(long, value_parser = parse_when)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Last failure before: an RFC 3339 time, or an age like 30m.
    #[arg(long, value_parser = parse_when)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Stop after this many matching messages.
    #[arg(long)]
    pub limit: Option<usize>,
}

impl FilterArgs {
    fn filter(&self) -> crate::commands::dlq::Filter {
        crate::commands::dlq::Filter {
            vendor: self.vendor,
            account: self.account.clone(),
            class: self.class.map(|c| c.as_str().to_owned()),
            job_id: self.job_id.clone(),
            since: self.since,
            until: self.until,
            limit: self.limit,
        }
    }
}

/// Why a message is in the dead-letter queue: its `provisioner-reason` header, or the
/// broker's own reason for one it dead-lettered itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum DeadLetterClass {
    /// Failed local validation and was never sent: fix the job (`replay --edit`).
    Invalid,
    /// The vendor refused the input: fix the job.
    Rejected,
    /// A different user already holds the identity: pick another one.
    Conflict,
    /// Credentials or account configuration were wrong: fix the config, then replay.
    Auth,
    /// Transient failures until the retries ran out: replay once the vendor is back.
    Unavailable,
    /// Not a JSON object: nothing to replay.
    Undecodable,
    /// Dead-lettered by the broker after too many deliveries (a crash loop or a stalled handler).
    DeliveryLimit,
}

impl DeadLetterClass {
    /// The value of the `provisioner-reason` header (or `x-first-death-reason`) it matches.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Rejected => "rejected",
            Self::Conflict => "conflict",
            Self::Auth => "auth",
            Self::Unavailable => "unavailable",
            Self::Undecodable => "undecodable",
            Self::DeliveryLimit => "delivery_limit",
        }
    }
}

fn parse_when(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let ago =
        humantime::parse_duration(s).map_err(|_| format!("{s:?} is neither an RFC 3339 time nor an age like 2h"))?;
    Ok(chrono::Utc::now() - chrono::TimeDelta::from_std(ago).map_err(|e| e.to_string())?)
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// A table of the matching dead letters (streamed; --json for NDJSON).
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Read the ledger's index (auto: when a ledger is configured) or walk the queue.
        #[arg(long, value_enum, default_value_t)]
        source: crate::commands::dlq::Source,
    },
    /// Counts by vendor, account and error class, with the oldest failure of each group.
    Stats {
        #[command(flatten)]
        filter: FilterArgs,
        /// One JSON object per group instead of a table.
        #[arg(long)]
        json: bool,
        /// Read the ledger's index (auto: when a ledger is configured) or walk the queue.
        #[arg(long, value_enum, default_value_t)]
        source: crate::commands::dlq::Source,
    },
    /// One dead letter in full: headers, the job with secrets redacted, its failure history.
    Show {
        /// The job id (the `provisioner-job-id` header, else the job's `job_id`).
        job_id: String,
    },
    /// Move matching dead letters back to the jobs exchange with a fresh retry budget.
    Replay {
        #[command(flatten)]
        filter: FilterArgs,
        /// List what would move and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// At most this many messages per second.
        #[arg(long)]
        rate: Option<f64>,
        /// Why, recorded in the audit header.
        #[arg(long)]
        reason: Option<String>,
        /// A file holding a JSON merge patch (RFC 7396), applied to each job, which is then
        /// re-validated; `-` reads the patch from standard input.
        #[arg(long)]
        edit: Option<PathBuf>,
        /// One JSON line per message instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove matching dead letters for good. Refuses without --yes.
    Purge {
        #[command(flatten)]
        filter: FilterArgs,
        /// Confirm: the matching dead letters are removed and cannot be replayed.
        #[arg(long)]
        yes: bool,
        /// Why, recorded in each job's history.
        #[arg(long)]
        reason: Option<String>,
        /// One JSON line per message instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct HeldFilterArgs {
    /// Only held jobs of this vendor.
    #[arg(long)]
    pub vendor: Option<crate::contract::VendorKey>,
    /// Only held jobs of this account (its name in the config).
    #[arg(long)]
    pub account: Option<String>,
    /// Only the held job(s) of this job id.
    #[arg(long)]
    pub job_id: Option<String>,
    /// Held at or after: an RFC 3339 time, or an age like 2h (two hours ago).
    #[arg(long, value_parser = parse_when)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Held before: an RFC 3339 time, or an age like 30m.
    #[arg(long, value_parser = parse_when)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Stop after this many matching jobs.
    #[arg(long)]
    pub limit: Option<usize>,
}

impl HeldFilterArgs {
    fn filter(&self) -> crate::commands::dlq::Filter {
        crate::commands::dlq::Filter {
            vendor: self.vendor,
            account: self.account.clone(),
            class: None,
            job_id: self.job_id.clone(),
            since: self.since,
            until: self.until,
            limit: self.limit,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum HeldCommand {
    /// A table of the matching held jobs, with why each was held (--json for NDJSON).
    List {
        #[command(flatten)]
        filter: HeldFilterArgs,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Release the matching held jobs to the jobs exchange; they run without counting
    /// against the safeguard. An account stays tripped while any of its jobs is held.
    Approve {
        #[command(flatten)]
        filter: HeldFilterArgs,
        /// Why, recorded in each job's history (required).
        #[arg(long)]
        reason: String,
        /// List what would be released and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// One JSON line per job instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Drop the matching held jobs: never sent, recorded as rejected (not failed) in each
    /// job's history.
    Reject {
        #[command(flatten)]
        filter: HeldFilterArgs,
        /// Why, recorded in each job's history (required).
        #[arg(long)]
        reason: String,
        /// List what would be dropped and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// One JSON line per job instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Exit code for usage, I/O and configuration errors.
const EXIT_USAGE: u8 = 2;

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(EXIT_USAGE) } else { ExitCode::SUCCESS };
        }
    };
    match cli.command {
        Command::Schema { write: Some(dir), .. } => match crate::commands::schema::write_all(&dir) {
            Ok(written) => {
                for path in written {
                    let _ = writeln!(std::io::stdout(), "wrote {}", path.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("provisioner schema: cannot write into {}: {e}", dir.display());
                ExitCode::from(EXIT_USAGE)
            }
        },
        Command::Schema { hire, result, write: None } => {
            let schema = if hire {
                crate::hire::hire_schema()
            } else if result {
                crate::event::result_event_schema()
            } else {
                crate::job::job_schema()
            };
            // `write`, not `println!`: a closed pipe (`schema | head`) is not a reason to panic.
            let _ = writeln!(std::io::stdout(), "{}", crate::commands::schema::render(&schema));
            ExitCode::SUCCESS
        }
        Command::Map { file, config, json } => map(file, config, json),
        Command::Validate { file, json, config } => validate(file, json, config),
        Command::Demo { amqp, json } => demo(amqp, json),
        Command::Run { config } => run(config),
        Command::Dlq { broker, command } => dlq(broker, command),
        Command::Held { broker, command } => held(broker, command),
        Command::Sandbox { listen, faults, seed } => sandbox(listen, faults, seed),
        Command::Publish { file, broker, json } => publish(file, broker, json),
        Command::Whois { query, config, json } => ledger_query(&config, |ledger, out| {
            Box::pin(async move {
                let w = crate::commands::whois::whois(&ledger, &query).await.map_err(|e| e.to_string())?;
                if json {
                    writeln!(out, "{}", crate::commands::terminal::json(&w, false)).map_err(|e| e.to_string())?;
                } else {
                    crate::commands::whois::print_whois(out, &w).map_err(|e| e.to_string())?;
                }
                Ok(!w.links.is_empty())
            })
        }),
        Command::History { id, config, json } => ledger_query(&config, |ledger, out| {
            Box::pin(async move {
                let h = crate::commands::whois::history(&ledger, &id).await.map_err(|e| e.to_string())?;
                if json {
                    writeln!(out, "{}", crate::commands::terminal::json(&h, false)).map_err(|e| e.to_string())?;
                } else {
                    crate::commands::whois::print_history(out, &h).map_err(|e| e.to_string())?;
                }
                Ok(!h.entries.is_empty())
            })
        }),
    }
}

type Query<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, String>> + 'a>>;

/// Opens the configured ledger and runs one query on it: exit 0 when it found something,
/// 1 when it found nothing, 2 when the ledger is off, unreachable or unreadable.
fn ledger_query(
    config: &std::path::Path,
    query: impl for<'a> FnOnce(crate::ledger::Ledger, &'a mut std::io::StdoutLock<'static>) -> Query<'a>,
) -> ExitCode {
    let settings = match load_settings(config) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let rt = runtime();
    // The pool needs the runtime to exist, even before it connects.
    let ledger = match rt.block_on(async { crate::ledger::from_settings(&settings.ledger) }) {
        Ok(Some(l)) => l,
        Ok(None) => return fail("the ledger is off (ledger.enabled = false); it has nothing to say"),
        Err(e) => return fail(e.to_string()),
    };
    let mut out = std::io::stdout().lock();
    match rt.block_on(query(ledger, &mut out)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => fail(e),
    }
}

fn sandbox(listen: std::net::SocketAddr, faults: crate::sandbox::Faults, seed: u64) -> ExitCode {
    crate::telemetry::init(&crate::config::LogSettings::default());
    let result = runtime().block_on(async move {
        let shutdown = crate::shutdown::on_signal();
        let sandboxes = crate::sandbox::Sandboxes::new(faults, seed);
        let (addr, server) = sandboxes.serve(listen, shutdown).await?;
        let _ = write!(std::io::stdout(), "{}", crate::sandbox::usage(addr));
        let _ = std::io::stdout().flush();
        server.await.map_err(std::io::Error::other)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(format!("sandbox: cannot serve on {listen}: {e}")),
    }
}

/// Loads the config as every command does: files, environment and secrets, then the tenant
/// mappings and account policies read once, so a mistake in either stops any command as it
/// would stop `run`.
fn load_settings(dir: &std::path::Path) -> Result<Settings, String> {
    let settings = Settings::load(&Sources::dir(dir)).map_err(|e| e.to_string())?;
    crate::hire::Mapper::new(&settings).map_err(|e| e.to_string())?;
    for (name, account) in &settings.accounts {
        crate::vendors::Policy::from_settings(name, account).map_err(|e| e.to_string())?;
    }
    Ok(settings)
}

fn broker_settings(args: &BrokerArgs) -> Result<Settings, String> {
    let mut settings = load_settings(&args.config)?;
    if let Some(url) = &args.amqp {
        settings.amqp.url.clone_from(url);
        settings.amqp.urls.clear();
        settings.check().map_err(|e| e.to_string())?;
    }
    Ok(settings)
}

fn read_input(file: &PathBuf) -> Result<String, String> {
    let input =
        if file.as_os_str() == "-" { std::io::read_to_string(std::io::stdin()) } else { std::fs::read_to_string(file) };
    input.map_err(|e| format!("cannot read {}: {e}", file.display()))
}

fn publish(file: PathBuf, broker: BrokerArgs, json: bool) -> ExitCode {
    let (settings, input) = match (broker_settings(&broker), read_input(&file)) {
        (Ok(s), Ok(i)) => (s, i),
        (Err(e), _) | (_, Err(e)) => return fail(e),
    };
    let mut out = std::io::stdout().lock();
    let result = runtime().block_on(crate::commands::publish::publish(&settings, &input, |p| {
        let _ = if json {
            writeln!(out, "{}", crate::commands::terminal::json(p, false))
        } else {
            let errors: Vec<String> = p.errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
            let shown = |s: &str| crate::commands::terminal::printable(s).into_owned();
            writeln!(
                out,
                "#{} {}: {} {}",
                p.index,
                shown(p.job_id.as_deref().unwrap_or("?")),
                p.status,
                shown(&errors.join("; "))
            )
        };
    }));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => fail(e),
    }
}

fn dlq(broker: BrokerArgs, command: DlqCommand) -> ExitCode {
    use crate::commands::dlq::{self, Action};
    let settings = match broker_settings(&broker) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let action = match command {
        DlqCommand::List { filter, json, source } => Action::List { filter: filter.filter(), json, source },
        DlqCommand::Stats { filter, json, source } => Action::Stats { filter: filter.filter(), json, source },
        DlqCommand::Show { job_id } => Action::Show { job_id },
        DlqCommand::Replay { filter, dry_run, rate, reason, edit, json } => {
            let patch = match edit.map(|path| {
                read_input(&path).and_then(|t| {
                    serde_json::from_str(&t).map_err(|e| format!("the patch {} is not JSON: {e}", path.display()))
                })
            }) {
                None => None,
                Some(Ok(p)) => Some(p),
                Some(Err(e)) => return fail(e),
            };
            let actor = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
            Action::Replay { filter: filter.filter(), opts: dlq::Replay { dry_run, rate, reason, actor, patch }, json }
        }
        DlqCommand::Purge { yes: false, .. } => {
            return fail("purge removes dead letters for good; add --yes to confirm (see `dlq list` for what matches)")
        }
        DlqCommand::Purge { filter, json, reason, .. } => Action::Purge {
            filter: filter.filter(),
            json,
            actor: std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
            reason,
        },
    };
    match runtime().block_on(dlq::execute(settings, action, std::io::stdout().lock())) {
        Ok(code) => code,
        Err(e) => fail(e),
    }
}

fn held(broker: BrokerArgs, command: HeldCommand) -> ExitCode {
    use crate::commands::held::{self, Action, Move};
    let settings = match broker_settings(&broker) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let actor = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let decide = |filter: HeldFilterArgs, what, reason: String, dry_run, json| {
        if reason.trim().is_empty() {
            return Err("--reason must say why; it goes into each job's history");
        }
        Ok(Action::Decide { filter: filter.filter(), what, dry_run, json, actor: actor.clone(), reason })
    };
    let action = match command {
        HeldCommand::List { filter, json } => Ok(Action::List { filter: filter.filter(), json }),
        HeldCommand::Approve { filter, reason, dry_run, json } => decide(filter, Move::Approve, reason, dry_run, json),
        HeldCommand::Reject { filter, reason, dry_run, json } => decide(filter, Move::Reject, reason, dry_run, json),
    };
    let action = match action {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    match runtime().block_on(held::execute(settings, action, std::io::stdout().lock())) {
        Ok(code) => code,
        Err(e) => fail(e),
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("provisioner: {message}");
    ExitCode::from(EXIT_USAGE)
}

fn validate(file: PathBuf, json: bool, config: Option<PathBuf>) -> ExitCode {
    let settings = match config.map(|dir| load_settings(&dir)).transpose() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let input = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(&file)
    };
    let input = match input {
        Ok(i) => i,
        Err(e) => return fail(format!("cannot read {}: {e}", file.display())),
    };
    let verdicts = crate::commands::validate::check(&input, settings.as_ref());
    let mut out = std::io::stdout().lock();
    match crate::commands::validate::print(&verdicts, json, &mut out) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => fail(e),
    }
}

fn map(file: PathBuf, config: PathBuf, json: bool) -> ExitCode {
    let settings = match load_settings(&config) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let input = match read_input(&file) {
        Ok(i) => i,
        Err(e) => return fail(e),
    };
    let preview = match crate::commands::map::preview(&settings, input.as_bytes()) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let mut out = std::io::stdout().lock();
    let written = if json {
        writeln!(out, "{}", crate::commands::terminal::json(&preview, false))
    } else {
        crate::commands::map::print(&preview, &mut out)
    };
    match written {
        Err(e) => fail(e),
        Ok(()) if preview.valid => ExitCode::SUCCESS,
        Ok(()) => ExitCode::from(1),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime starts")
}

fn demo(amqp: Option<String>, json: bool) -> ExitCode {
    // The summary is the output; logs stay off unless RUST_LOG asks for them.
    crate::telemetry::init(&crate::config::LogSettings { level: "off".into(), ..Default::default() });
    let result = runtime().block_on(async move {
        match amqp {
            Some(url) => crate::commands::demo::run_on_broker(&url).await,
            None => crate::commands::demo::run_in_memory().await,
        }
    });
    match result {
        Ok(summary) => {
            let text = if json { summary.json() + "\n" } else { summary.table() };
            let _ = std::io::stdout().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("demo failed: {e:#}")),
    }
}

fn run(config: PathBuf) -> ExitCode {
    let settings = match load_settings(&config) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    crate::telemetry::init(&settings.log);
    let result = runtime().block_on(async move {
        let shutdown = crate::shutdown::on_signal();
        crate::commands::run::run(settings, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "provisioner failed");
            fail(format!("{e:#}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn dlq_subcommands() -> Vec<clap::Command> {
        let cli = Cli::command();
        cli.find_subcommand("dlq").expect("dlq exists").get_subcommands().cloned().collect()
    }

    #[test]
    fn every_dlq_flag_and_argument_has_help_text() {
        let mut missing = Vec::new();
        for sub in dlq_subcommands() {
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none_or(|h| h.to_string().trim().is_empty()) {
                    missing.push(format!("dlq {} {id}", sub.get_name()));
                }
            }
        }
        assert!(missing.is_empty(), "without help text: {missing:?}");
    }

    #[test]
    fn dlq_class_lists_its_choices_and_refuses_others() {
        let mut list = Cli::command();
        let help =
            list.find_subcommand_mut("dlq").unwrap().find_subcommand_mut("list").unwrap().render_help().to_string();
        for class in ["invalid", "rejected", "conflict", "auth", "unavailable", "undecodable", "delivery_limit"] {
            assert!(help.contains(class), "`dlq list --help` names {class}:\n{help}");
        }

        let parsed = Cli::try_parse_from(["provisioner", "dlq", "list", "--class", "delivery_limit"]).unwrap();
        let Command::Dlq { command: DlqCommand::List { filter, .. }, .. } = parsed.command else { panic!("dlq list") };
        assert_eq!(filter.filter().class.as_deref(), Some("delivery_limit"));

        let err = Cli::try_parse_from(["provisioner", "dlq", "replay", "--class", "timeout"]).unwrap_err().to_string();
        assert!(err.contains("possible values") && err.contains("unavailable"), "{err}");
    }

    #[test]
    fn every_dead_letter_class_matches_the_reason_the_service_writes() {
        use clap::ValueEnum;
        // Each name on the command line is the header value it matches.
        for class in DeadLetterClass::value_variants() {
            assert_eq!(class.to_possible_value().unwrap().get_name(), class.as_str());
        }
        use crate::outcome::ErrorClass;
        for class in
            [ErrorClass::Invalid, ErrorClass::Rejected, ErrorClass::Conflict, ErrorClass::Auth, ErrorClass::Unavailable]
        {
            let name = serde_json::to_value(class).unwrap();
            assert!(DeadLetterClass::value_variants().iter().any(|c| c.as_str() == name), "{name} has a --class");
        }
    }
}
