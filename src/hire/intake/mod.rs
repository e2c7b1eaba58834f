//! The HTTP hire intake: `POST /v1/hires`, authenticated by a bearer token or a timestamped
//! HMAC-SHA256 signature of the body (`auth`, `signature`, `replay`), answering 202 only once
//! the broker confirmed every derived job.
//!
//! It has a broker connection of its own, opened on the first request and again after it
//! broke, so a broker outage turns into 503s, never into accepted-but-lost hires.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use lapin::Connection;
use serde_json::json;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use self::auth::{Caller, Gate, Refusal};
use super::{decode, fan_out_hire, FanOut, Mapper, PersonEvent};
use crate::config::{ConfigError, Settings};
use crate::transport::headers as h;
use crate::transport::rabbitmq::{self, ConfirmPublisher};
use crate::transport::{Outbound, Publisher};

mod auth;
mod replay;
mod signature;

pub use auth::{MIN_SECRET_BYTES, SIGNATURE_HEADER};

/// Why the intake cannot start.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on intake.listen = {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

/// The intake's own publisher connection.
struct Broker {
    settings: Arc<Settings>,
    session: Mutex<Option<(Connection, ConfirmPublisher)>>,
}

impl Broker {
    /// A publisher on a live connection, connecting (and declaring the topology, so the
    /// jobs are routable even before a worker ran) when there is none.
    async fn publisher(&self) -> Result<ConfirmPublisher, String> {
        let mut session = self.session.lock().await;
        if let Some((conn, publisher)) = session.as_ref() {
            if conn.status().connected() && publisher.channel().status().connected() {
                return Ok(publisher.clone());
            }
        }
        if let Some((conn, _)) = session.take() {
            let _ = conn.close(200, "reconnecting".into()).await;
        }
        let conn = rabbitmq::connect(&self.settings).await.map_err(|e| e.to_string())?;
        let ch = rabbitmq::confirm_channel(&conn).await.map_err(|e| e.to_string())?;
        rabbitmq::declare(&ch, &self.settings).await.map_err(|e| e.to_string())?;
        let publisher = ConfirmPublisher::new(ch);
        *session = Some((conn, publisher.clone()));
        Ok(publisher)
    }

    /// Publishes every message, each confirmed; any failure drops the connection so the next
    /// request starts on a fresh one.
    async fn publish_all(&self, msgs: &[Outbound]) -> Result<(), String> {
        let result = async {
            let publisher = self.publisher().await?;
            for m in msgs {
                publisher.publish(m).await.map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        };
        let result = match tokio::time::timeout(self.settings.intake.broker_timeout, result).await {
            Ok(r) => r,
            Err(_) => Err(format!("the broker did not answer within {:?}", self.settings.intake.broker_timeout)),
        };
        if result.is_err() {
            if let Some((conn, _)) = self.session.lock().await.take() {
                let _ = conn.close(200, "publish failed".into()).await;
            }
        }
        result
    }

    async fn close(&self) {
        if let Some((conn, _)) = self.session.lock().await.take() {
            let _ = conn.close(200, "intake stopped".into()).await;
        }
    }
}

struct Intake {
    settings: Arc<Settings>,
    mapper: Mapper,
    gate: Gate,
    broker: Broker,
}

/// The intake's routes. Secrets are resolved now, so a missing one stops start-up.
fn router(settings: Arc<Settings>) -> Result<(Router, Arc<Intake>), IntakeError> {
    let mapper = Mapper::new(&settings).map_err(|e| ConfigError::Invalid { key: e.key, message: e.message })?;
    let gate = Gate::new(&settings)?;
    let intake = Arc::new(Intake {
        broker: Broker { settings: settings.clone(), session: Mutex::new(None) },
        settings: settings.clone(),
        mapper,
        gate,
    });
    let app = Router::new()
        .route("/v1/hires", post(post_hire))
        .layer(DefaultBodyLimit::max(settings.intake.max_body_bytes))
        .with_state(intake.clone());
    Ok((app, intake))
}

fn problem(status: StatusCode, error: &str, body: serde_json::Value) -> Response {
    let mut body = body;
    body["error"] = json!(error);
    (status, Json(body)).into_response()
}

/// The server's clock, in unix seconds.
fn unix_now() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}

/// The answer to a request that is not admitted. Only an expired timestamp is named: any
/// other failure (no credential, a wrong one, a malformed signature) is the same 401.
fn refused(refusal: &Refusal, tolerance_secs: u64) -> Response {
    let tolerance = humantime::format_duration(std::time::Duration::from_secs(tolerance_secs));
    let mut r = match refusal {
        Refusal::Unauthorized => {
            tracing::info!("hire intake: request refused, bad or missing credentials");
            problem(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                json!({"message": "send `Authorization: Bearer <token>` or `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">`"}),
            )
        }
        Refusal::Expired => {
            tracing::info!("hire intake: request refused, signature timestamp outside the tolerance");
            problem(
                StatusCode::UNAUTHORIZED,
                "signature_expired",
                json!({"message": format!("the signature's timestamp is outside the tolerance of {tolerance} either side of the server's clock; sign the hire again with the current time")}),
            )
        }
        Refusal::Replayed => {
            tracing::info!("hire intake: request refused, signature already used");
            return problem(
                StatusCode::CONFLICT,
                "signature_replayed",
                json!({"message": "this signature was already used; sign the hire again with a new timestamp (sending the same hire again is safe)"}),
            );
        }
        Refusal::Busy { retry_after } => {
            tracing::warn!("hire intake: replay cache full of signatures in their window (intake.replay_cache_size); signed request refused");
            let mut r = problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "replay_cache_full",
                json!({"message": "too many signed requests within the tolerance; sign the hire again and send it later"}),
            );
            r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(*retry_after));
            return r;
        }
    };
    r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    r
}

/// A tenant's credential used for another tenant's hire. Both names are the caller's own to
/// know: the body named one, and the credential it holds the other.
fn forbidden(caller: Caller<'_>, event: &PersonEvent) -> Response {
    tracing::info!(event_id = event.event_id(), credential = %caller, tenant = event.tenant(), "hire intake: event refused, the credential is another tenant's");
    let message = format!(
        "the credential of {caller} admits only that tenant's events; the {} names tenant {:?}",
        event.type_name(),
        event.tenant()
    );
    problem(StatusCode::FORBIDDEN, "tenant_mismatch", json!({"event_id": event.event_id(), "message": message}))
}

/// An update, leave or rehire, as it came, for the person-event consumer: it acts on the
/// accounts the person holds, which the consumer asks the ledger for.
fn forwarded(
    intake: &Intake,
    event: &PersonEvent,
    body: &Bytes,
    traceparent: Option<&str>,
) -> crate::transport::Outbound {
    let mut headers = crate::transport::Headers::new();
    if let Some(tp) = traceparent {
        h::set_text(&mut headers, h::TRACEPARENT, tp);
    }
    crate::transport::Outbound {
        kind: crate::transport::OutboundKind::Job,
        exchange: intake.settings.topology.hr_exchange.clone(),
        routing_key: event.type_name().to_owned(),
        body: body.to_vec(),
        message_id: Some(event.event_id().to_owned()),
        content_type: Some("application/json".into()),
        timestamp: Some(chrono::Utc::now().timestamp().max(0) as u64),
        headers,
    }
}

async fn post_hire(State(intake): State<Arc<Intake>>, headers: HeaderMap, body: Bytes) -> Response {
    let caller = match intake.gate.admit(&headers, &body, unix_now()) {
        Ok(caller) => caller,
        Err(refusal) => return refused(&refusal, intake.gate.tolerance_secs()),
    };
    let traceparent = traceparent(&headers);
    // Whose hire it is, is read from the decoded hire, before any mapping runs: another
    // tenant's mapping errors are not this caller's to see.
    let fan_out = match decode(&body) {
        Ok(event) if !caller.admits(event.tenant()) => return forbidden(caller, &event),
        Ok(PersonEvent::Hire(hire)) if !hire.rehire => {
            fan_out_hire(&intake.mapper, &intake.settings.topology, hire, traceparent)
        }
        // Accepted once the broker holds it: the person-event consumer derives its jobs.
        Ok(event) => FanOut::Jobs {
            event_id: event.event_id().to_owned(),
            jobs: Vec::new(),
            publish: vec![forwarded(&intake, &event, &body, traceparent)],
        },
        Err(rejection) => rejection.into(),
    };
    match fan_out {
        FanOut::Rejected { event_id, undecodable, errors } => {
            tracing::info!(event_id = event_id.as_deref(), errors = %super::event::summary(&errors), "hire intake: invalid hire refused");
            let status = if undecodable { StatusCode::BAD_REQUEST } else { StatusCode::UNPROCESSABLE_ENTITY };
            problem(status, "invalid_hire", json!({"event_id": event_id, "errors": errors}))
        }
        FanOut::Wait { .. } | FanOut::LedgerDown { .. } => unreachable!("the intake forwards what must wait"),
        FanOut::Jobs { event_id, jobs, publish } => match intake.broker.publish_all(&publish).await {
            Ok(()) => {
                let job_ids: Vec<&str> = jobs.iter().map(|j| j.job_id()).collect();
                tracing::info!(event_id, jobs = job_ids.len(), credential = %caller, "hire intake: hire accepted, every job confirmed");
                (StatusCode::ACCEPTED, Json(json!({"event_id": event_id, "job_ids": job_ids}))).into_response()
            }
            Err(e) => {
                tracing::warn!(event_id, error = %e, "hire intake: broker unavailable; hire not accepted");
                let mut r = problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "broker_unavailable",
                    json!({"event_id": event_id, "message": "the hire was not accepted; send it again later, signed anew (it is safe to repeat)"}),
                );
                r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
                r
            }
        },
    }
}

/// The request's `traceparent`, when it sends exactly one and it is a W3C one
/// ([`h::checked_traceparent`]); nothing else of the request's headers reaches the jobs.
fn traceparent(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(h::TRACEPARENT).iter();
    match (values.next(), values.next()) {
        (Some(one), None) => one.to_str().ok().and_then(h::checked_traceparent),
        (None, _) => None,
        (Some(_), Some(_)) => {
            tracing::debug!("traceparent dropped: the request sent more than one");
            None
        }
    }
}

/// Binds `intake.listen` now and serves until `shutdown`; requests in flight finish first.
/// Returns `None` when the intake is off.
pub async fn serve(
    settings: Arc<Settings>,
    shutdown: CancellationToken,
) -> Result<Option<(SocketAddr, tokio::task::JoinHandle<()>)>, IntakeError> {
    let Some(listen) = settings.intake.listen else { return Ok(None) };
    let limits = settings.http.clone();
    let (app, intake) = router(settings)?;
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|source| IntakeError::Listen { addr: listen, source })?;
    let addr = listener.local_addr().map_err(|source| IntakeError::Listen { addr: listen, source })?;
    let handle = tokio::spawn(async move {
        crate::http_server::serve(listener, app, limits, shutdown).await;
        intake.broker.close().await;
    });
    Ok(Some((addr, handle)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    #[test]
    fn only_one_w3c_traceparent_is_taken_from_the_request() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(traceparent(&with("traceparent", valid)), Some(valid));
        assert_eq!(traceparent(&HeaderMap::new()), None);
        assert_eq!(traceparent(&with("traceparent", &"a".repeat(8 * 1024))), None, "8 KB of junk");
        assert_eq!(traceparent(&with("traceparent", &valid.to_uppercase())), None);
        let mut two = with("traceparent", valid);
        two.append("traceparent", valid.parse().unwrap());
        assert_eq!(traceparent(&two), None, "two of them");
    }
}
