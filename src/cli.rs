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
    /// Print the JSON Schema of the job message.
    Schema,
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
        Command::Schema => {
            println!("{}", serde_json::to_string_pretty(&crate::job::job_schema()).expect("schema serialises"));
            ExitCode::SUCCESS
        }
        Command::Validate { file, json, config } => validate(file, json, config),
        Command::Demo { amqp, json } => demo(amqp, json),
        Command::Run { config } => run(config),
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("provisioner: {message}");
    ExitCode::from(EXIT_USAGE)
}

fn validate(file: PathBuf, json: bool, config: Option<PathBuf>) -> ExitCode {
    let settings = match config.map(|dir| Settings::load(&Sources::dir(dir))).transpose() {
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime starts")
}

fn demo(amqp: Option<String>, json: bool) -> ExitCode {
    // The summary is the output; logs stay off unless RUST_LOG asks for them.
    crate::telemetry::init(&crate::config::LogSettings { level: "off".into(), ..Default::default() });
    let result = runtime().block_on(async move {
        match amqp {
            Some(url) => crate::commands::demo::run_on_broker(&url).await,
            None => Ok(crate::commands::demo::run_in_memory().await),
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
    let settings = match Settings::load(&Sources::dir(config)) {
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
