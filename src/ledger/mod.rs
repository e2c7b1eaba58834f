//! The ledger: what the service knows beyond the broker — who holds which vendor identity, and every job's story.
//!
//! RabbitMQ is the log of work; the ledger is the memory. It keeps three things:
//! - **links**: one row per vendor identity the service claimed, created or found, with
//!   the person it belongs to and its state;
//! - **intents**: a link in state `intent`, written before a create that the vendor cannot
//!   later prove was ours (ClientToolbox has no verified lookup), so an "already exists"
//!   after a crash is settled by the ledger instead of guessed;
//! - **history** and the **dead-letter index**, written by the projection
//!   ([`crate::projection`]) from the events the service publishes.
//!
//! Storage is SQLite (one file, or memory for the demo) or PostgreSQL when replicas share
//! it, through one `sqlx::Any` pool: every query is written once, in SQL both accept. Each
//! call is bounded by `ledger.timeout`; a ledger that does not answer is
//! [`LedgerError::Unavailable`], which callers treat as "decide later", never as a guess.

use std::str::FromStr;
use std::sync::{Arc, Once};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use tokio::sync::OnceCell;

use crate::config::{ConfigError, LedgerSettings};
use crate::contract::VendorKey;

mod dead_letters;
mod history;
mod links;
mod records;

pub use links::Intent;
pub use records::{
    ActiveLink, Claim, HistoryEntry, HistoryKind, IdentityKey, LetterQuery, LetterRow, LetterState, Link, LinkState,
    MovedLink, Owner, Person, Write,
};

/// The versioned schema, embedded in the binary and applied at start-up.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Why a ledger call failed, and what the caller must do.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The database did not answer in time or refused the connection: retry later; never
    /// decide an identity without it.
    #[error("the ledger is unavailable: {0}")]
    Unavailable(String),
    /// The database refused a write (a constraint, an encoding): retrying cannot help.
    #[error("the ledger refused a write: {0}")]
    Refused(String),
    /// A stored row cannot be read back; an operator must look at it. Names the row's key.
    #[error("ledger row {key} is corrupt: {message}")]
    Corrupt { key: String, message: String },
    /// The schema could not be brought up to date at start-up.
    #[error("ledger migration failed: {0}")]
    Migration(String),
}

impl From<sqlx::Error> for LedgerError {
    fn from(e: sqlx::Error) -> Self {
        LedgerError::Unavailable(e.to_string())
    }
}

impl Backend {
    /// Whether the database refused the statement for what it holds (bad data, a broken
    /// constraint) rather than for its own state (busy, starting, out of connections),
    /// which passes.
    fn refuses_for_good(self, e: &sqlx::Error) -> bool {
        let Some(code) = e.as_database_error().and_then(|d| d.code()) else { return false };
        match self {
            // SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation).
            Backend::Postgres => code.starts_with("22") || code.starts_with("23"),
            // SQLITE_CONSTRAINT (19) and SQLITE_MISMATCH (20), with their extended codes.
            Backend::Sqlite => code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 19 | 20)),
        }
    }
}

/// Which database the ledger is in; decided by the URL's scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A handle on the ledger. Cheap to clone: the pool is shared.
#[derive(Clone, Debug)]
pub struct Ledger {
    pool: AnyPool,
    backend: Backend,
    timeout: Duration,
    migrated: Arc<OnceCell<()>>,
}

/// The SQLite URL of an in-memory ledger, for the demo and tests: gone when the process ends.
pub const IN_MEMORY: &str = "sqlite::memory:";

impl Ledger {
    /// Prepares the pool, creating an SQLite file's directory when missing. Nothing is
    /// connected yet: a database that is down at start-up must not stop the worker, which
    /// keeps processing what needs no ledger decision. The first call that needs the
    /// database connects and applies the migrations. `url` is the resolved URL, password
    /// included.
    pub fn open(settings: &LedgerSettings, url: &str) -> Result<Self, LedgerError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let backend = Backend::of_url(url)
            .ok_or_else(|| LedgerError::Unavailable("ledger.url must start with sqlite: or postgres://".into()))?;
        let memory = url == IN_MEMORY || url.contains("mode=memory");
        let mut url = url.to_owned();
        if backend == Backend::Sqlite && !memory {
            let path = sqlite_path(&url);
            if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    LedgerError::Unavailable(format!("cannot create the ledger's directory {}: {e}", dir.display()))
                })?;
            }
            if !url.contains('?') {
                url.push_str("?mode=rwc");
            }
        }
        let options = AnyConnectOptions::from_str(&url).map_err(|e| LedgerError::Unavailable(e.to_string()))?;
        let mut pool = AnyPoolOptions::new()
            .max_connections(if memory { 1 } else { settings.max_connections.max(1) })
            .acquire_timeout(settings.timeout);
        if memory {
            // One connection that never closes: each SQLite connection to `:memory:` is its
            // own database.
            pool = pool.min_connections(1).idle_timeout(None).max_lifetime(None);
        }
        if backend == Backend::Sqlite {
            pool = pool.after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets the projection write while the worker reads; NORMAL syncs at
                    // checkpoints, which WAL keeps safe against a crash of the process.
                    for pragma in
                        ["PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL", "PRAGMA busy_timeout = 5000"]
                    {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            });
        }
        let pool = pool.connect_lazy_with(options);
        Ok(Self { pool, backend, timeout: settings.timeout, migrated: Arc::new(OnceCell::new()) })
    }

    /// Connects and brings the schema up to date, once; later calls return at once. Every
    /// query goes through here, so a ledger that was down at start-up is migrated when it
    /// comes back.
    pub async fn ready(&self) -> Result<(), LedgerError> {
        self.migrated
            .get_or_try_init(|| async {
                let run = MIGRATOR.run(&self.pool);
                match tokio::time::timeout(self.timeout.max(Duration::from_secs(10)), run).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(sqlx::migrate::MigrateError::Execute(e))) => Err(LedgerError::from(e)),
                    Ok(Err(e)) => Err(LedgerError::Migration(e.to_string())),
                    Err(_) => Err(LedgerError::Unavailable("connecting and migrating timed out".into())),
                }
            })
            .await
            .map(|_| ())
    }

    /// An in-memory ledger with default settings: the demo's, and tests'.
    pub async fn in_memory() -> Result<Self, LedgerError> {
        let ledger = Self::open(&LedgerSettings::default(), IN_MEMORY)?;
        ledger.ready().await?;
        Ok(ledger)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Answers when the database does; for `/readyz`.
    pub async fn ping(&self) -> Result<(), LedgerError> {
        self.bounded(async { sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()) }).await
    }

    /// Runs one database call within `ledger.timeout`, after [`Ledger::ready`].
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, LedgerError> {
        self.ready().await?;
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if self.backend.refuses_for_good(&e) => Err(LedgerError::Refused(e.to_string())),
            Ok(Err(e)) => Err(LedgerError::Unavailable(e.to_string())),
            Err(_) => Err(LedgerError::Unavailable(format!("no answer within {:?}", self.timeout))),
        }
    }
}

/// The file path of an `sqlite:` URL (`sqlite:path`, `sqlite://path`, with or without options).
fn sqlite_path(url: &str) -> &str {
    let rest = url.strip_prefix("sqlite:").unwrap_or(url);
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    rest.split('?').next().unwrap_or(rest)
}

/// The current time in Unix milliseconds, the ledger's time column.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Reads a text column, naming the row when it is not there.
fn text(row: &AnyRow, col: &str, key: &str) -> Result<String, LedgerError> {
    row.try_get::<String, _>(col).map_err(|e| corrupt(key, format!("column {col}: {e}")))
}

fn opt_text(row: &AnyRow, col: &str, key: &str) -> Result<Option<String>, LedgerError> {
    row.try_get::<Option<String>, _>(col).map_err(|e| corrupt(key, format!("column {col}: {e}")))
}

fn int(row: &AnyRow, col: &str, key: &str) -> Result<i64, LedgerError> {
    row.try_get::<i64, _>(col).map_err(|e| corrupt(key, format!("column {col}: {e}")))
}

fn opt_int(row: &AnyRow, col: &str, key: &str) -> Result<Option<i64>, LedgerError> {
    row.try_get::<Option<i64>, _>(col).map_err(|e| corrupt(key, format!("column {col}: {e}")))
}

fn vendor(row: &AnyRow, col: &str, key: &str) -> Result<VendorKey, LedgerError> {
    let raw = text(row, col, key)?;
    VendorKey::parse(&raw).ok_or_else(|| corrupt(key, format!("unknown vendor {raw:?}")))
}

fn corrupt(key: &str, message: String) -> LedgerError {
    LedgerError::Corrupt { key: key.to_owned(), message }
}

/// A person from a row's `tenant` and `employee_id` columns.
fn person(tenant: String, employee_id: Option<String>) -> Option<Person> {
    employee_id.map(|employee_id| Person { tenant, employee_id })
}

/// The configured ledger, its password resolved (not yet connected: see [`Ledger::open`]); `None` when `ledger.enabled` is off.
pub fn from_settings(settings: &LedgerSettings) -> Result<Option<Ledger>, LedgerOpenError> {
    if !settings.enabled {
        return Ok(None);
    }
    let url = settings.resolved_url()?;
    Ok(Some(Ledger::open(settings, &url)?))
}

/// Why the ledger could not be opened at start-up.
#[derive(Debug, thiserror::Error)]
pub enum LedgerOpenError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}
