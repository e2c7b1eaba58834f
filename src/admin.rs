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
use crate::shared_limits::RedisLink;

/// Readiness shared between the worker and the admin port.
#[derive(Clone, Default)]
pub struct Health {
    connected: Arc<AtomicBool>,
    circuits: Arc<RwLock<CircuitBoard>>,
    limits: Arc<RwLock<Option<Arc<RedisLink>>>>,
}

impl Health {
    /// Shows on `/readyz` whether the accounts' limits are shared through Redis.
    pub fn watch_limits(&self, link: Arc<RedisLink>) {
        *self.limits.write().expect("never poisoned") = Some(link);
    }

    /// One line on where the accounts' limits are kept. Falling back to the local share does
    /// not make the replica unready: it keeps working, more slowly, and restarting it would
    /// not bring Redis back.
    pub fn limits_report(&self) -> &'static str {
        match self.limits.read().expect("never poisoned").as_ref() {
            None => "limits: local to this replica (rate_limit.backend = local)\n",
            Some(link) if link.is_up() => "limits: shared by every replica through Redis\n",
            Some(_) => "limits: local fallback, Redis unreachable: each replica keeps rate_limit.replicas_hint's share of every account\n",
        }
    }

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
/// curl tell the on-call engineer which accounts are parked.
async fn ready_handler(State(s): State<AdminState>) -> impl IntoResponse {
    let circuits = s.health.circuit_report();
    let limits = s.health.limits_report();
    if s.health.is_ready() {
        (StatusCode::OK, format!("ready: connected to the broker and consuming\n{limits}{circuits}"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: not connected to the broker or not consuming\n{limits}{circuits}"),
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
