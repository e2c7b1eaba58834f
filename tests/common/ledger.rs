//! Ledgers for tests: an SQLite file of its own, or a fresh PostgreSQL database; and a TCP
//! proxy in front of PostgreSQL that a test can cut, to take the ledger down and back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use provisioner::config::LedgerSettings;
use provisioner::ledger::Ledger;
use sqlx::Connection as _;
use tokio::net::{TcpListener, TcpStream};

pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The two backends every ledger test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

pub const BOTH: [Kind; 2] = [Kind::Sqlite, Kind::Postgres];

/// A URL for a new, empty ledger of this kind.
pub async fn fresh_url(kind: Kind) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    match kind {
        Kind::Sqlite => {
            format!("sqlite:{}", std::env::temp_dir().join(format!("provisioner-ledger-{id}.sqlite")).display())
        }
        Kind::Postgres => {
            let db = format!("ledger_test_{id}");
            let mut admin = sqlx::PgConnection::connect(PG_ADMIN_URL).await.unwrap_or_else(|e| {
                panic!(
                    "these tests need PostgreSQL at 127.0.0.1:5432 with trust auth ({e}).\n\
                     Start it with `service postgresql start` (./scripts/test does)."
                )
            });
            sqlx::query(&format!("CREATE DATABASE {db}")).execute(&mut admin).await.unwrap();
            format!("postgres://postgres@127.0.0.1:5432/{db}")
        }
    }
}

/// A new, migrated ledger of this kind, and its URL.
pub async fn fresh(kind: Kind) -> (Ledger, String) {
    let url = fresh_url(kind).await;
    let ledger = Ledger::open(&LedgerSettings::default(), &url).unwrap();
    ledger.ready().await.unwrap_or_else(|e| panic!("a fresh {kind:?} ledger must open: {e}"));
    (ledger, url)
}

/// Forwards 127.0.0.1:<port> to PostgreSQL while it is up; cut, it drops every connection
/// and refuses new ones, as a database that went away would.
pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { continue };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                conns2.lock().unwrap().push(task.abort_handle());
            }
        });
        Self { port, up, conns }
    }

    /// The URL of `url`'s database through this proxy.
    pub fn url_of(&self, url: &str) -> String {
        url.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", self.port))
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
