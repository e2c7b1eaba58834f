//! The admin HTTP port: `/metrics`, `/healthz` (the process is alive) and `/readyz`
//! (connected to the broker and consuming, with each account's circuit breaker as detail).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::circuit_breaker::CircuitBoard;
use crate::http_server::ServerLimits;
use crate::metrics::Metrics;

/// Readiness shared between the worker and the admin port.
#[derive(Clone, Default)]
pub struct Health {
    connected: Arc<AtomicBool>,
    circuits: Arc<RwLock<CircuitBoard>>,
    ledger: Arc<RwLock<LedgerHealth>>,
}

/// What `/readyz` says about the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LedgerHealth {
    /// `ledger.enabled` is off.
    #[default]
    Off,
    Up,
    /// Not answering, with the last error: jobs that need an identity decision are parked.
    Down(String),
}

impl Health {
    /// Shows these breakers on `/readyz`.
    pub fn watch_circuits(&self, board: CircuitBoard) {
        *self.circuits.write().expect("never poisoned") = board;
    }

    /// One line per account's circuit breaker.
    pub fn circuit_report(&self) -> String {
        self.circuits.read().expect("never poisoned").report()
    }

    pub fn set_connected(&self, consuming: bool) {
        self.connected.store(consuming, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    pub fn set_ledger(&self, state: LedgerHealth) {
        *self.ledger.write().expect("never poisoned") = state;
    }

    /// One line about the ledger, or nothing when there is none.
    pub fn ledger_report(&self) -> String {
        match &*self.ledger.read().expect("never poisoned") {
            LedgerHealth::Off => String::new(),
            LedgerHealth::Up => "ledger: up\n".into(),
            LedgerHealth::Down(why) => format!(
                "ledger: DOWN ({}); jobs that need an identity decision are parked, the rest go on\n",
                crate::contract::clip(why.clone(), 200)
            ),
        }
    }
}

/// Pings the ledger every few seconds until `stop`, for `/readyz` and `provisioner_ledger_up`.
pub async fn watch_ledger(ledger: crate::ledger::Ledger, health: Health, metrics: Metrics, stop: CancellationToken) {
    loop {
        match ledger.ping().await {
            Ok(()) => {
                metrics.ledger_up.set(1);
                health.set_ledger(LedgerHealth::Up);
            }
            Err(e) => {
                metrics.ledger_up.set(0);
                health.set_ledger(LedgerHealth::Down(e.to_string()));
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
        }
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: Metrics,
    health: Health,
}

pub fn router(metrics: Metrics, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_handler))
        .with_state(AdminState { metrics, health })
}

async fn metrics_handler(State(s): State<AdminState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], s.metrics.render())
}

/// An open circuit does not make the replica unready: the vendor is down, not this pod, and
/// restarting or unrouting pods would not help. It is shown so `kubectl describe` and a
/// curl tell the on-call engineer which accounts are parked. A ledger that is down is shown
/// the same way, for the same reason: every replica shares it.
async fn ready_handler(State(s): State<AdminState>) -> impl IntoResponse {
    let circuits = format!("{}{}", s.health.ledger_report(), s.health.circuit_report());
    if s.health.is_ready() {
        (StatusCode::OK, format!("ready: connected to the broker and consuming\n{circuits}"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: not connected to the broker or not consuming\n{circuits}"),
        )
    }
}

/// Binds the admin port now (so a taken port fails start-up) and serves it until `shutdown`.
pub async fn serve(
    listen: SocketAddr,
    limits: ServerLimits,
    metrics: Metrics,
    health: Health,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = router(metrics, health);
    let handle = tokio::spawn(crate::http_server::serve(listener, app, limits, shutdown));
    Ok((addr, handle))
}
