//! The admin HTTP port: `/metrics`, `/healthz` (the process is alive) and `/readyz`
//! (connected to the broker and consuming).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Readiness shared between the worker and the admin port.
#[derive(Clone, Default)]
pub struct Health {
    connected: Arc<AtomicBool>,
}

impl Health {
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

async fn ready_handler(State(s): State<AdminState>) -> impl IntoResponse {
    if s.health.is_ready() {
        (StatusCode::OK, "ready: connected to the broker and consuming\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: not connected to the broker or not consuming\n")
    }
}

/// Binds the admin port now (so a taken port fails start-up) and serves it until `shutdown`.
pub async fn serve(
    listen: SocketAddr,
    metrics: Metrics,
    health: Health,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = router(metrics, health);
    let handle = tokio::spawn(async move {
        let result = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await;
        if let Err(e) = result {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    Ok((addr, handle))
}
