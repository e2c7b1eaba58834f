//! The admin HTTP port: `/metrics`, `/healthz` (the process is alive) and `/readyz`
//! (connected to the broker and consuming, with each account's circuit breaker and tripped
//! safeguard as detail;
//! text, or JSON when asked with `Accept: application/json`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
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
    ledger: Arc<RwLock<LedgerHealth>>,
    limits: Arc<RwLock<Option<Arc<RedisLink>>>>,
    safeguard: Arc<RwLock<Option<Arc<crate::safeguard::Safeguard>>>>,
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

    /// Shows the accounts whose safeguard is tripped on `/readyz`.
    pub fn watch_safeguard(&self, safeguard: Arc<crate::safeguard::Safeguard>) {
        *self.safeguard.write().expect("never poisoned") = Some(safeguard);
    }

    fn tripped(&self) -> Vec<crate::safeguard::Tripped> {
        self.safeguard.read().expect("never poisoned").as_ref().map(|s| s.tripped()).unwrap_or_default()
    }

    /// One line per tripped account, or nothing. A trip does not make the replica unready:
    /// only that account's removals wait, and every other job must go on.
    pub fn safeguard_report(&self) -> String {
        self.tripped()
            .iter()
            .map(|t| {
                format!(
                    "safeguard: account {} ({}) TRIPPED, {} removal(s) held; see `provisioner held list --account {}`\n",
                    t.account, t.vendor, t.held, t.account
                )
            })
            .collect()
    }

    /// Shows these breakers on `/readyz`.
    pub fn watch_circuits(&self, board: CircuitBoard) {
        *self.circuits.write().expect("never poisoned") = board;
    }

    /// One line per account's circuit breaker.
    pub fn circuit_report(&self) -> String {
        self.circuits.read().expect("never poisoned").report()
    }

    /// Each account's circuit breaker as a JSON object, for `/readyz` as JSON.
    fn circuit_json(&self) -> Vec<serde_json::Value> {
        let board = self.circuits.read().expect("never poisoned");
        board
            .snapshots()
            .into_iter()
            .map(|(account, vendor, s)| {
                let mut c = serde_json::json!({"vendor": vendor, "account": account, "state": s.state.as_str()});
                if let Some(wait) = s.retry_in {
                    // Whole seconds, rounded up, as the text says them.
                    c["next_probe_in_seconds"] = serde_json::json!(wait.as_secs_f64().ceil() as u64);
                }
                if let (Some(reason), false) = (&s.reason, s.state == crate::circuit_breaker::State::Closed) {
                    c["reason"] = serde_json::json!(reason);
                }
                c
            })
            .collect()
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

    /// The ledger's state for `/readyz` as JSON: `off`, `up`, or `down` with the error.
    pub fn ledger_json(&self) -> serde_json::Value {
        match &*self.ledger.read().expect("never poisoned") {
            LedgerHealth::Off => serde_json::json!({"state": "off"}),
            LedgerHealth::Up => serde_json::json!({"state": "up"}),
            LedgerHealth::Down(why) => {
                serde_json::json!({"state": "down", "error": crate::contract::clip(why.clone(), 200)})
            }
        }
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
/// curl tell the on-call engineer which accounts are parked. A ledger that is down, or
/// limits that fell back to each replica's local share, are shown the same way, for the same
/// reason: every replica shares them. So is an account whose safeguard tripped: only its
/// removals wait. Text by default (what probes and people read); JSON
/// for a client whose `Accept` names `application/json`.
async fn ready_handler(State(s): State<AdminState>, headers: HeaderMap) -> Response {
    let ready = s.health.is_ready();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    if wants_json(&headers) {
        let body = serde_json::json!({
            "ready": ready,
            "status": if ready { "ready" } else { "not_ready" },
            "detail": if ready {
                "connected to the broker and consuming"
            } else {
                "not connected to the broker or not consuming"
            },
            "ledger": s.health.ledger_json(),
            "limits": s.health.limits_report().trim_end(),
            "circuits": s.health.circuit_json(),
            "safeguard": {"tripped": s.health.tripped()},
        });
        return (status, axum::Json(body)).into_response();
    }
    let circuits = format!(
        "{}{}{}{}",
        s.health.ledger_report(),
        s.health.limits_report(),
        s.health.safeguard_report(),
        s.health.circuit_report()
    );
    if ready {
        (StatusCode::OK, format!("ready: connected to the broker and consuming\n{circuits}"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: not connected to the broker or not consuming\n{circuits}"),
        )
    }
    .into_response()
}

/// Whether the `Accept` header lists `application/json` (parameters and quality ignored;
/// `*/*` alone keeps the text).
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| item.split(';').next().is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json")))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::circuit_breaker::{Admission, BreakerSettings, CircuitBreaker, Verdict};
    use crate::contract::VendorKey;

    /// Serves the admin port with one closed and one open breaker; returns its address.
    async fn serve_with_breakers(stop: &CancellationToken) -> (SocketAddr, Health) {
        let health = Health::default();
        // An auth failure opens a breaker at once.
        let open = Arc::new(CircuitBreaker::new(BreakerSettings::default()));
        let (Admission::Call(ticket), _) = open.admit() else { panic!("a closed breaker admits") };
        open.record(ticket, Verdict::AuthFailed).expect("it opens");
        let closed = Arc::new(CircuitBreaker::new(BreakerSettings::default()));
        health.watch_circuits(CircuitBoard::new(vec![
            ("acme".into(), VendorKey::Glance, closed),
            ("beta".into(), VendorKey::Netsapiens, open),
        ]));
        let (addr, _) =
            serve("127.0.0.1:0".parse().unwrap(), Default::default(), Metrics::new(), health.clone(), stop.clone())
                .await
                .unwrap();
        (addr, health)
    }

    /// A raw HTTP/1.1 GET with the given extra header lines; the whole answer.
    async fn get(addr: SocketAddr, path: &str, extra: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\n{extra}connection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out)).await.unwrap().unwrap();
        out
    }

    fn body(answer: &str) -> &str {
        answer.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }

    #[tokio::test]
    async fn readyz_answers_json_when_asked_and_text_otherwise() {
        let stop = CancellationToken::new();
        let (addr, health) = serve_with_breakers(&stop).await;
        health.set_connected(true);

        let text = get(addr, "/readyz", "").await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.to_lowercase().contains("content-type: text/plain"), "{text}");
        assert!(body(&text).starts_with("ready: connected"), "{text}");
        assert!(body(&text).contains("circuit netsapiens/beta: open"), "{text}");
        // `*/*` and other types keep the text.
        let any = get(addr, "/readyz", "accept: text/html, */*;q=0.8\r\n").await;
        assert!(body(&any).starts_with("ready: connected"), "{any}");

        let json = get(addr, "/readyz", "accept: text/plain;q=0.5, Application/JSON;q=0.9\r\n").await;
        assert!(json.starts_with("HTTP/1.1 200"), "{json}");
        assert!(json.to_lowercase().contains("content-type: application/json"), "{json}");
        let v: serde_json::Value = serde_json::from_str(body(&json)).unwrap();
        assert_eq!(v["ready"], true);
        assert_eq!(v["status"], "ready");
        let circuits = v["circuits"].as_array().unwrap();
        assert_eq!(circuits.len(), 2);
        assert_eq!(circuits[0], serde_json::json!({"vendor": "glance", "account": "acme", "state": "closed"}));
        assert_eq!(circuits[1]["vendor"], "netsapiens");
        assert_eq!(circuits[1]["account"], "beta");
        assert_eq!(circuits[1]["state"], "open");
        assert!(circuits[1]["next_probe_in_seconds"].as_u64().unwrap() > 0, "{v}");
        assert!(!circuits[1]["reason"].as_str().unwrap().is_empty(), "{v}");

        health.set_connected(false);
        let json = get(addr, "/readyz", "accept: application/json\r\n").await;
        assert!(json.starts_with("HTTP/1.1 503"), "{json}");
        let v: serde_json::Value = serde_json::from_str(body(&json)).unwrap();
        assert_eq!(
            (v["ready"].clone(), v["status"].clone()),
            (serde_json::json!(false), serde_json::json!("not_ready"))
        );
        let text = get(addr, "/readyz", "").await;
        assert!(text.starts_with("HTTP/1.1 503") && body(&text).starts_with("not ready"), "{text}");
        stop.cancel();
    }

    #[test]
    fn only_an_accept_naming_application_json_asks_for_json() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, v.parse().unwrap());
            wants_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("text/plain, application/json; charset=utf-8"));
        assert!(!with("*/*"));
        assert!(!with("application/*"));
        assert!(!with("application/jsonx"));
        assert!(!wants_json(&HeaderMap::new()));
    }
}
