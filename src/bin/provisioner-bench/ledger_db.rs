//! A fresh ledger database per scenario: an SQLite file in the temp directory, or a PostgreSQL database created and dropped.

use std::time::Duration;

use anyhow::Context as _;
use provisioner::config::LedgerSettings;
use provisioner::ledger::Ledger;
use sqlx::Connection as _;

/// Which database a ledger scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LedgerBackend {
    Sqlite,
    Postgres,
}

impl LedgerBackend {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LedgerBackend::Sqlite => "sqlite",
            LedgerBackend::Postgres => "postgres",
        }
    }
}

/// One scenario's ledger: migrated, empty, and removed by [`LedgerDb::remove`].
pub(crate) struct LedgerDb {
    pub(crate) backend: LedgerBackend,
    /// What the worker and the commands get as `ledger.url`.
    pub(crate) url: String,
    /// A pool of the harness's own, for seeding and counting with plain SQL.
    pub(crate) raw: sqlx::AnyPool,
    postgres_admin: Option<(String, String)>,
    sqlite_file: Option<std::path::PathBuf>,
}

impl LedgerDb {
    /// Creates the database (named after the scenario's suffix) and applies the ledger's
    /// migrations through the service's own code.
    pub(crate) async fn create(backend: LedgerBackend, postgres_admin: &str, name: &str) -> anyhow::Result<Self> {
        let name = name.replace('-', "_");
        let (url, postgres, sqlite_file) = match backend {
            LedgerBackend::Sqlite => {
                let file = std::env::temp_dir().join(format!("{name}.ledger.sqlite"));
                (format!("sqlite:{}?mode=rwc", file.display()), None, Some(file))
            }
            LedgerBackend::Postgres => {
                let mut admin = sqlx::PgConnection::connect(postgres_admin).await.with_context(|| {
                    "the ledger scenarios need PostgreSQL on --postgres (e.g. `pg_ctlcluster 15 main start`), \
                     or leave it out with --ledger-backends sqlite"
                        .to_owned()
                })?;
                sqlx::raw_sql(&format!("CREATE DATABASE {name}")).execute(&mut admin).await?;
                let _ = admin.close().await;
                let mut url = reqwest::Url::parse(postgres_admin).context("--postgres is not a URL")?;
                url.set_path(&name);
                (url.to_string(), Some((postgres_admin.to_owned(), name.clone())), None)
            }
        };
        // Opening the service's ledger installs the drivers of `sqlx::Any` and migrates.
        let settings =
            LedgerSettings { url: url.clone(), timeout: Duration::from_secs(60), ..LedgerSettings::default() };
        let ledger = Ledger::open(&settings, &url)?;
        ledger.ready().await.context("migrating the bench's ledger")?;
        let raw = sqlx::any::AnyPoolOptions::new().max_connections(2).connect(&url).await?;
        Ok(Self { backend, url, raw, postgres_admin: postgres, sqlite_file })
    }

    /// A handle on this ledger with the given per-call timeout.
    pub(crate) fn ledger(&self, timeout: Duration) -> anyhow::Result<Ledger> {
        let settings = LedgerSettings { url: self.url.clone(), timeout, ..LedgerSettings::default() };
        Ok(Ledger::open(&settings, &self.url)?)
    }

    pub(crate) async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        use sqlx::Row as _;
        let row = sqlx::query(sql).fetch_one(&self.raw).await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    /// Drops the database or deletes the file; a failure is only reported.
    pub(crate) async fn remove(self) {
        self.raw.close().await;
        if let Some((admin, name)) = self.postgres_admin {
            let dropped = async {
                let mut admin = sqlx::PgConnection::connect(&admin).await?;
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await?;
                admin.close().await
            };
            if let Err(e) = dropped.await {
                eprintln!("could not drop the bench database {name}: {e}");
            }
        }
        if let Some(file) = self.sqlite_file {
            for suffix in ["", "-wal", "-shm"] {
                let mut f = file.clone().into_os_string();
                f.push(suffix);
                let _ = std::fs::remove_file(f);
            }
        }
    }
}
