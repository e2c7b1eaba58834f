//! Serves an HTTP port with the bounds every port of this service needs against slow or greedy clients.
//!
//! `axum::serve` has no timeouts: a client that never finishes its headers, or drips a body
//! a byte at a time, holds a connection (and a task) for as long as it likes. Every port
//! (admin, hire intake, sandboxes) is served here instead, through hyper's connection
//! builder:
//! - the request headers must arrive within `header_read_timeout`, and the same deadline
//!   closes a kept-alive connection that sends no next request (hyper starts the timer
//!   whenever the connection waits for headers);
//! - reading the body and answering must finish within `request_timeout`, or the client
//!   gets `408 Request Timeout` and the connection is closed;
//! - at most `max_connections` are open at once; a connection beyond that is closed as soon
//!   as it is accepted, so a flood cannot starve the process of memory or file descriptors.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// `[http]`: the bounds of the admin port and the hire intake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerLimits {
    /// A request's headers must arrive within this; it also closes idle keep-alive connections.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Reading a request's body and answering it must finish within this (else 408).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Open connections at most; more are closed on accept.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 256,
        }
    }
}

impl ServerLimits {
    /// Rules serde cannot express, as `(key under [http], message)`.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if self.header_read_timeout.is_zero() {
            return Err(("header_read_timeout", "must be longer than 0s"));
        }
        if self.request_timeout.is_zero() {
            return Err(("request_timeout", "must be longer than 0s"));
        }
        if self.max_connections == 0 {
            return Err(("max_connections", "must be at least 1"));
        }
        Ok(())
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown`; then stops accepting and
/// gives the requests in flight up to `request_timeout` to finish.
pub async fn serve(listener: TcpListener, router: Router, limits: ServerLimits, shutdown: CancellationToken) {
    let router = router.layer(axum::middleware::from_fn_with_state(limits.request_timeout, deadline));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: back off instead of spinning on it.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max_connections = limits.max_connections, "connection closed: too many open connections");
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let (shutdown, header_read_timeout) = (shutdown.clone(), limits.header_read_timeout);
        connections.spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                // Timeouts and clients that hang up are routine on an open port.
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    connections.close();
    let _ = tokio::time::timeout(limits.request_timeout, connections.wait()).await;
}

/// Bounds reading the body and answering: a body dripped a byte at a time ends in 408.
async fn deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (StatusCode::REQUEST_TIMEOUT, "the request was not completed within the server's request timeout\n")
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::body::Bytes;
    use axum::routing::post;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    const LIMITS: ServerLimits = ServerLimits {
        header_read_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(400),
        max_connections: 3,
    };
    /// How long a test waits for the server to act before it fails.
    const PATIENCE: Duration = Duration::from_secs(10);

    async fn start(limits: ServerLimits) -> (std::net::SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/echo", post(|body: Bytes| async move { body.len().to_string() }));
        let stop = CancellationToken::new();
        (addr, stop.clone(), tokio::spawn(serve(listener, app, limits, stop)))
    }

    /// Everything the server sends until it closes the connection (or `PATIENCE` runs out,
    /// which fails the test).
    async fn read_until_closed(stream: &mut TcpStream) -> String {
        let mut out = Vec::new();
        tokio::time::timeout(PATIENCE, stream.read_to_end(&mut out))
            .await
            .expect("the server should have closed the connection")
            .unwrap_or_default();
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn headers_that_never_finish_are_cut_off() {
        let (addr, _stop, _server) = start(LIMITS).await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let started = Instant::now();
        read_until_closed(&mut slow).await;
        assert!(started.elapsed() >= Duration::from_millis(250), "closed before the header timeout");
    }

    #[tokio::test]
    async fn a_body_that_stalls_gets_408_and_the_connection_closes() {
        let (addr, _stop, _server) = start(LIMITS).await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\nabc").await.unwrap();
        let answer = read_until_closed(&mut slow).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }

    #[tokio::test]
    async fn an_idle_kept_alive_connection_is_closed() {
        let (addr, _stop, _server) = start(LIMITS).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi").await.unwrap();
        let answer = read_until_closed(&mut client).await;
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("\r\n\r\n2"), "{answer}");
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_are_closed_and_the_cap_frees_up() {
        let (addr, _stop, _server) = start(LIMITS).await;
        let mut held = Vec::new();
        for _ in 0..LIMITS.max_connections {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"POST /echo HTTP/1.1\r\n").await.unwrap();
            held.push(c);
        }
        // The server takes connections in order, so once the held ones are in, the next is refused.
        let mut refused = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        let answer = read_until_closed(&mut refused).await;
        assert!(answer.is_empty(), "{answer}");
        assert!(started.elapsed() < LIMITS.header_read_timeout, "refused only after a timeout");
        // Once the held ones time out, a well-behaved client is served again.
        for c in &mut held {
            read_until_closed(c).await;
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
                .await
                .unwrap();
            let answer = read_until_closed(&mut c).await;
            if answer.starts_with("HTTP/1.1 200") {
                break;
            }
            // A slot is released when the connection task ends, a moment after the close.
            assert!(Instant::now() < deadline, "the cap never freed up: {answer:?}");
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn shutdown_stops_the_server() {
        let (addr, stop, server) = start(LIMITS).await;
        let mut open = TcpStream::connect(addr).await.unwrap();
        open.write_all(b"POST /echo HTTP/1.1\r\n").await.unwrap();
        stop.cancel();
        tokio::time::timeout(PATIENCE, server).await.expect("serve returns after shutdown").unwrap();
        assert!(TcpStream::connect(addr).await.is_err(), "still accepting after shutdown");
    }

    #[test]
    fn zero_limits_are_refused_with_their_key() {
        let zero = ServerLimits { max_connections: 0, ..ServerLimits::default() };
        assert_eq!(zero.check().unwrap_err().0, "max_connections");
        let zero = ServerLimits { request_timeout: Duration::ZERO, ..ServerLimits::default() };
        assert_eq!(zero.check().unwrap_err().0, "request_timeout");
    }
}
