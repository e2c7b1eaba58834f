//! Broker-neutral messages and the one place that settles a delivery: publish, then ack.
//!
//! A handler decides a [`Disposition`]; [`settle`] carries it
//! out over any [`Publisher`] and [`Acknowledge`] pair, RabbitMQ or in-memory alike.

mod dead_letter;
mod disposition;
pub mod headers;
pub mod memory;
pub mod rabbitmq;

use std::collections::BTreeMap;
use std::future::Future;

pub use dead_letter::{letter_id, DeadLetter};
pub use disposition::{After, Disposition, Parked, Report};

/// A header value as this service reads and writes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderValue {
    Text(String),
    Int(i64),
}

pub type Headers = BTreeMap<String, HeaderValue>;

/// A message as delivered by a transport.
#[derive(Clone, Debug, Default)]
pub struct Inbound {
    pub body: Vec<u8>,
    pub exchange: String,
    pub routing_key: String,
    pub message_id: Option<String>,
    pub content_type: Option<String>,
    /// AMQP timestamp, seconds since the epoch.
    pub timestamp: Option<u64>,
    /// The broker delivered it before (a consumer died or requeued it).
    pub redelivered: bool,
    pub headers: Headers,
}

impl Inbound {
    /// This message, as it came, re-addressed: the retry, dead-letter and replay copies keep
    /// the body and properties and change only where it goes and the headers.
    pub fn forward(&self, kind: OutboundKind, exchange: impl Into<String>, headers: Headers) -> Outbound {
        Outbound {
            kind,
            exchange: exchange.into(),
            routing_key: self.routing_key.clone(),
            body: self.body.clone(),
            message_id: self.message_id.clone(),
            content_type: self.content_type.clone(),
            timestamp: self.timestamp,
            headers,
        }
    }
}

/// Why a message is dead-lettered: the headers every dead letter carries, so that
/// `dlq list` and an operator can tell what happened without the service's logs.
#[derive(Clone, Debug, Default)]
pub struct DeadLetterCause<'a> {
    /// An error class, or `undecodable` / `invalid_hire`.
    pub reason: &'a str,
    pub code: &'a str,
    /// Already cut to a size fit for a header.
    pub message: String,
    pub attempts: u32,
    /// When the first failure of this message happened; now when this is the first.
    pub first_failed_at: Option<String>,
    pub job_id: Option<&'a str>,
    pub vendor: Option<&'a str>,
    pub account: Option<&'a str>,
}

impl Inbound {
    /// This message, as it came, to the dead-letter exchange with its cause in the headers.
    pub fn dead_letter(&self, exchange: impl Into<String>, cause: DeadLetterCause<'_>) -> Outbound {
        let now = headers::timestamp(chrono::Utc::now());
        let mut h = self.headers.clone();
        h.remove(headers::RETRY_TIER);
        headers::set_text(&mut h, headers::REASON, cause.reason);
        headers::set_text(&mut h, headers::ERROR_CODE, cause.code);
        headers::set_text(&mut h, headers::ERROR_MESSAGE, cause.message);
        headers::set_int(&mut h, headers::ATTEMPTS, cause.attempts.into());
        headers::set_text(&mut h, headers::FIRST_FAILED_AT, cause.first_failed_at.unwrap_or_else(|| now.clone()));
        headers::set_text(&mut h, headers::LAST_FAILED_AT, now);
        headers::set_text(&mut h, headers::ORIGINAL_EXCHANGE, self.exchange.clone());
        headers::set_text(&mut h, headers::ORIGINAL_ROUTING_KEY, self.routing_key.clone());
        for (name, value) in
            [(headers::JOB_ID, cause.job_id), (headers::VENDOR, cause.vendor), (headers::ACCOUNT, cause.account)]
        {
            if let Some(value) = value {
                headers::set_text(&mut h, name, value);
            }
        }
        self.forward(OutboundKind::DeadLetter, exchange, h)
    }
}

/// What a publish is for; a closed set used as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutboundKind {
    Event,
    Retry,
    DeadLetter,
    Job,
    /// A removal the safeguard parks in its account's held queue.
    Held,
}

impl OutboundKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboundKind::Event => "event",
            OutboundKind::Retry => "retry",
            OutboundKind::DeadLetter => "dead_letter",
            OutboundKind::Job => "job",
            OutboundKind::Held => "held",
        }
    }
}

/// A message to publish, persistent and mandatory, with publisher confirms.
#[derive(Clone, Debug)]
pub struct Outbound {
    pub kind: OutboundKind,
    pub exchange: String,
    pub routing_key: String,
    pub body: Vec<u8>,
    pub message_id: Option<String>,
    pub content_type: Option<String>,
    pub timestamp: Option<u64>,
    pub headers: Headers,
}

/// Why a publish did not land. Any of them means the delivery must not be acked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("the message was unroutable: no queue is bound for exchange {exchange:?} and routing key {routing_key:?}")]
    Unroutable { exchange: String, routing_key: String },
    #[error("the broker connection failed: {0}")]
    Connection(String),
    #[error("the broker did not confirm the message within {0:?} (amqp.confirm_timeout)")]
    Unconfirmed(std::time::Duration),
}

impl PublishError {
    /// A closed set for the publish-failure metric.
    pub fn reason(&self) -> &'static str {
        match self {
            PublishError::Nacked => "nacked",
            PublishError::Unroutable { .. } => "unroutable",
            PublishError::Connection(_) => "connection",
            PublishError::Unconfirmed(_) => "unconfirmed",
        }
    }
}

pub trait Publisher: Send + Sync {
    /// Resolves once the broker confirmed the message; a nack or a return is an error.
    fn publish(&self, msg: &Outbound) -> impl Future<Output = Result<(), PublishError>> + Send;
}

/// The acknowledgement handle of one delivery.
pub trait Acknowledge: Send {
    fn ack(self) -> impl Future<Output = Result<(), String>> + Send;
    /// Hand the message back to the broker for redelivery.
    fn requeue(self) -> impl Future<Output = Result<(), String>> + Send;
}

/// How settling a delivery ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Settled {
    /// Every publish was confirmed and the delivery acked.
    Acked,
    /// The disposition asked for a requeue, and it was requeued.
    Requeued,
    /// A publish failed, so the delivery was requeued instead of acked.
    PublishFailed(OutboundKind, PublishError),
    /// Everything was published but the ack or requeue itself failed (the channel died);
    /// the broker redelivers, and the adapters' idempotency absorbs the repeat.
    AckFailed(String),
}

/// The one place a delivery is acked: only after every message of the disposition was
/// confirmed, so a crash anywhere in between means redelivery, never loss.
///
/// After a failed publish the delivery is held for `requeue_delay` before it is requeued.
/// A failed publish is usually a broker-side problem (no queue bound, a full queue, an
/// alarm) that an instant requeue would turn into a hot loop, burning through the quorum
/// delivery limit in milliseconds.
pub async fn settle<P: Publisher, A: Acknowledge>(
    publisher: &P,
    delivery: A,
    disposition: &Disposition,
    requeue_delay: std::time::Duration,
) -> Settled {
    if disposition.after == After::Requeue {
        return match delivery.requeue().await {
            Ok(()) => Settled::Requeued,
            Err(e) => Settled::AckFailed(e),
        };
    }
    for msg in &disposition.publish {
        if let Err(e) = publisher.publish(msg).await {
            if !matches!(e, PublishError::Connection(_)) {
                tokio::time::sleep(requeue_delay).await;
            }
            // Best effort: if the channel is gone the broker requeues it anyway.
            let _ = delivery.requeue().await;
            return Settled::PublishFailed(msg.kind, e);
        }
    }
    match delivery.ack().await {
        Ok(()) => Settled::Acked,
        Err(e) => Settled::AckFailed(e),
    }
}
