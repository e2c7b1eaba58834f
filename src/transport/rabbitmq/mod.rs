//! The RabbitMQ transport (lapin): connection, topology, confirmed publishing and acking.

pub mod stall;
mod topology;

pub use topology::{declare, declare_job_queue_args, delete_topology};

use futures_util::StreamExt as _;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::Confirmation;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use tokio_util::sync::CancellationToken;

use super::{Acknowledge, HeaderValue, Headers, Inbound, Outbound, PublishError, Publisher};
use crate::config::{ConfigError, Settings};

/// Connection failures, with what the operator should check.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot connect to the broker at {url}: {source} (is RabbitMQ running? `rabbitmq-server -detached` starts a local one)")]
    Connect { url: String, source: lapin::Error },
    #[error("broker setup failed while {step}: {source}")]
    Setup { step: &'static str, source: lapin::Error },
    #[error("the broker did not answer within {after:?} while {step} (amqp.setup_timeout); trying the next address")]
    Timeout { step: &'static str, after: std::time::Duration },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl BrokerError {
    /// A refusal that retrying cannot fix: a queue declared with other arguments
    /// (PRECONDITION_FAILED), a permission the user lacks (ACCESS_REFUSED), a bad setting.
    /// The worker stops on these instead of reconnecting forever with a misleading warning.
    pub fn is_fatal(&self) -> bool {
        use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
        match self {
            BrokerError::Config(_) => true,
            BrokerError::Setup { source, .. } => matches!(
                source.kind(),
                lapin::ErrorKind::ProtocolError(e)
                    if matches!(e.kind(), AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED | AMQPSoftError::ACCESSREFUSED))
            ),
            BrokerError::Connect { .. } | BrokerError::Timeout { .. } => false,
        }
    }
}

/// The largest frame this service asks for unless `amqp.url` names one (`?frame_max=`).
/// lapin keeps a read and a write buffer of 32 frames each; without a size in the URL it
/// starts them small and zero-fills them up to the size the broker agrees to, RabbitMQ's
/// default 128 KiB: 8 MiB of every idle worker's memory. A body simply travels in several
/// frames, but a message's properties and headers must fit in ONE frame, and dead letters
/// accumulate headers (error messages, `x-death`, replay audits with their patches): 64 KiB
/// halves the buffers and leaves headers a wide margin, where 16 KiB would make a
/// well-replayed dead letter unreadable.
pub const DEFAULT_FRAME_MAX: u32 = 64 * 1024;

/// Opens a connection to the first broker address that accepts one, in the configured order
/// (`amqp.urls`, or `amqp.url` alone). lapin's auto-recovery is left off on purpose: it does
/// not survive a broker restart, so the worker's supervisor reconnects and re-declares instead.
pub async fn connect(settings: &Settings) -> Result<Connection, BrokerError> {
    let addresses = settings.amqp.addresses().len();
    let mut last = None;
    for index in 0..addresses {
        match connect_at(settings, index).await {
            Ok(conn) => return Ok(conn),
            Err(e @ BrokerError::Connect { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("there is always at least one broker address"))
}

/// Opens a connection to broker address `index` (modulo their number): the worker moves
/// round the addresses itself, one step per failed attempt or lost connection.
pub async fn connect_at(settings: &Settings, index: usize) -> Result<Connection, BrokerError> {
    let mut uris = settings.amqp_uris()?;
    let index = index % uris.len();
    let mut uri = uris.swap_remove(index);
    uri.query.frame_max.get_or_insert(DEFAULT_FRAME_MAX);
    let props = ConnectionProperties::default().with_connection_name(settings.amqp.connection_name.clone().into());
    Connection::connect_uri(uri, props).await.map_err(|source| BrokerError::Connect {
        url: crate::config::redact_url(settings.amqp.addresses()[index].1),
        source,
    })
}

/// Opens a channel in publisher-confirm mode.
pub async fn confirm_channel(conn: &Connection) -> Result<Channel, BrokerError> {
    let ch = conn.create_channel().await.map_err(|source| BrokerError::Setup { step: "opening a channel", source })?;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|source| BrokerError::Setup { step: "enabling publisher confirms", source })?;
    Ok(ch)
}

/// A consumer of `queue` on a channel of its own, so its `prefetch` is its own buffer.
/// Returns the channel and the consumer tag (`<connection name>-<label>-<random>`) for a
/// later `basic.cancel`.
pub async fn consume(
    conn: &Connection,
    settings: &Settings,
    queue: &str,
    prefetch: u16,
    label: &str,
) -> Result<(Channel, Consumer, String), BrokerError> {
    let setup = |step| move |source| BrokerError::Setup { step, source };
    let channel = conn.create_channel().await.map_err(setup("opening a consumer channel"))?;
    channel.basic_qos(prefetch, BasicQosOptions::default()).await.map_err(setup("setting prefetch"))?;
    let tag = format!("{}-{label}-{}", settings.amqp.connection_name, uuid::Uuid::new_v4().simple());
    let consumer = channel
        .basic_consume(queue.into(), tag.as_str().into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .map_err(setup("starting a consumer"))?;
    Ok((channel, consumer, tag))
}

/// Attempts to consume again after the broker cancelled a consumer, before giving up on the
/// channel; the waits between them double from [`RECONSUME_FIRST_WAIT`].
const RECONSUME_ATTEMPTS: u32 = 5;
const RECONSUME_FIRST_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// The next delivery, or `None` once `stop` is cancelled or the consumer fails for good.
///
/// The broker may cancel a consumer while its channel stays open (`basic.cancel`: the queue
/// was deleted, or its leader moved to another node). Then this consumes the queue again on
/// the same channel, under the same tag, so the deliveries still unacked on that channel can
/// be settled; only when that fails, or the consumer errs, is `lost` cancelled, and the
/// session reconnects and re-declares the topology.
pub async fn next_delivery(
    channel: &Channel,
    consumer: &mut Consumer,
    stop: &CancellationToken,
    lost: &CancellationToken,
    label: &str,
) -> Option<Delivery> {
    loop {
        let delivery = tokio::select! {
            _ = stop.cancelled() => return None,
            d = consumer.next() => d,
        };
        match delivery {
            Some(Ok(d)) => return Some(d),
            Some(Err(e)) => {
                tracing::warn!(consumer = label, error = %e, "consumer failed");
                lost.cancel();
                return None;
            }
            // Our own basic.cancel at the end of a session.
            None if stop.is_cancelled() => return None,
            None => {
                tracing::warn!(consumer = label, queue = %consumer.queue(), "the broker cancelled the consumer; consuming again");
                match reconsume(channel, consumer, stop).await {
                    Some(again) => *consumer = again,
                    None => {
                        tracing::warn!(consumer = label, "could not consume again on this channel; reconnecting");
                        lost.cancel();
                        return None;
                    }
                }
            }
        }
    }
}

async fn reconsume(channel: &Channel, cancelled: &Consumer, stop: &CancellationToken) -> Option<Consumer> {
    let mut wait = RECONSUME_FIRST_WAIT;
    for _ in 0..RECONSUME_ATTEMPTS {
        tokio::select! {
            _ = stop.cancelled() => return None,
            _ = tokio::time::sleep(wait) => {}
        }
        // A refusal (the queue is gone: 404) closes the channel; then only a new session helps.
        if !channel.status().connected() {
            return None;
        }
        let again = channel
            .basic_consume(cancelled.queue(), cancelled.tag(), BasicConsumeOptions::default(), FieldTable::default())
            .await;
        match again {
            Ok(consumer) => return Some(consumer),
            Err(e) => tracing::debug!(error = %e, "consuming again failed"),
        }
        wait *= 2;
    }
    None
}

/// Publishes with `mandatory` and waits for the broker's confirm, at most `confirm_timeout`.
#[derive(Clone)]
pub struct ConfirmPublisher {
    channel: Channel,
    confirm_timeout: std::time::Duration,
}

impl ConfirmPublisher {
    /// `channel` must be in confirm mode (see [`confirm_channel`]). Confirms are awaited for
    /// the default `amqp.confirm_timeout`.
    pub fn new(channel: Channel) -> Self {
        Self { channel, confirm_timeout: crate::config::AmqpSettings::default().confirm_timeout }
    }

    /// How long a publish waits for its confirm before it counts as failed.
    pub fn with_confirm_timeout(self, confirm_timeout: std::time::Duration) -> Self {
        Self { confirm_timeout, ..self }
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }
}

impl Publisher for ConfirmPublisher {
    /// A confirm can stall while a quorum queue elects a new leader, or for as long as it has
    /// no majority; past the timeout the publish is an error, so the delivery it belongs to is
    /// requeued rather than acked (if the broker did take the message, a repeat follows: at
    /// least once, never lost).
    async fn publish(&self, msg: &Outbound) -> Result<(), PublishError> {
        tokio::time::timeout(self.confirm_timeout, self.publish_confirmed(msg))
            .await
            .unwrap_or(Err(PublishError::Unconfirmed(self.confirm_timeout)))
    }
}

impl ConfirmPublisher {
    async fn publish_confirmed(&self, msg: &Outbound) -> Result<(), PublishError> {
        let conn_err = |e: lapin::Error| PublishError::Connection(e.to_string());
        let opts = BasicPublishOptions { mandatory: true, ..Default::default() };
        let confirm = self
            .channel
            .basic_publish(
                msg.exchange.as_str().into(),
                msg.routing_key.as_str().into(),
                opts,
                &msg.body,
                properties(msg),
            )
            .await
            .map_err(conn_err)?;
        match confirm.await.map_err(conn_err)? {
            Confirmation::Ack(None) => Ok(()),
            // An ack with a returned message: the broker accepted it but no queue was bound.
            Confirmation::Ack(Some(_)) => {
                Err(PublishError::Unroutable { exchange: msg.exchange.clone(), routing_key: msg.routing_key.clone() })
            }
            Confirmation::Nack(_) => Err(PublishError::Nacked),
            Confirmation::NotRequested => Err(PublishError::Connection("the channel is not in confirm mode".into())),
        }
    }
}

/// Publishes on a transactional channel (the operator commands' walks): nothing to wait
/// for, the broker applies it when the transaction commits, together with the rest of it.
pub async fn publish_in_transaction(channel: &Channel, msg: &Outbound, mandatory: bool) -> Result<(), lapin::Error> {
    let opts = BasicPublishOptions { mandatory, ..Default::default() };
    let (exchange, key) = (msg.exchange.as_str().into(), msg.routing_key.as_str().into());
    channel.basic_publish(exchange, key, opts, &msg.body, properties(msg)).await?;
    Ok(())
}

pub(crate) fn properties(msg: &Outbound) -> BasicProperties {
    let mut props = BasicProperties::default().with_delivery_mode(2).with_headers(to_field_table(&msg.headers));
    if let Some(id) = msg.message_id.as_deref().and_then(|m| ShortString::try_new(m).ok()) {
        props = props.with_message_id(id);
    }
    if let Some(ct) = msg.content_type.as_deref().and_then(|c| ShortString::try_new(c).ok()) {
        props = props.with_content_type(ct);
    }
    if let Some(ts) = msg.timestamp {
        props = props.with_timestamp(ts);
    }
    props
}

pub fn to_field_table(headers: &Headers) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in headers {
        let Ok(key) = ShortString::try_new(k.as_str()) else { continue };
        let value = match v {
            HeaderValue::Text(s) => AMQPValue::LongString(LongString::from(s.as_bytes())),
            HeaderValue::Int(i) => AMQPValue::LongLongInt(*i),
        };
        table.insert(key, value);
    }
    table
}

/// Headers this service understands; others (e.g. `x-death` arrays) are carried only as far
/// as they convert.
pub fn from_field_table(table: Option<&FieldTable>) -> Headers {
    let mut out = Headers::new();
    for (k, v) in table.map(|t| t.inner().iter()).into_iter().flatten() {
        let value = match v {
            AMQPValue::LongString(s) => HeaderValue::Text(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            AMQPValue::ShortString(s) => HeaderValue::Text(s.as_str().to_owned()),
            AMQPValue::ShortShortInt(i) => HeaderValue::Int((*i).into()),
            AMQPValue::ShortShortUInt(i) => HeaderValue::Int((*i).into()),
            AMQPValue::ShortInt(i) => HeaderValue::Int((*i).into()),
            AMQPValue::ShortUInt(i) => HeaderValue::Int((*i).into()),
            AMQPValue::LongInt(i) => HeaderValue::Int((*i).into()),
            AMQPValue::LongUInt(i) => HeaderValue::Int((*i).into()),
            AMQPValue::LongLongInt(i) => HeaderValue::Int(*i),
            AMQPValue::Timestamp(t) => HeaderValue::Int(i64::try_from(*t).unwrap_or(i64::MAX)),
            _ => continue,
        };
        out.insert(k.as_str().to_owned(), value);
    }
    out
}

/// A copy of the delivery as an [`Inbound`], for callers that keep the delivery.
pub fn inbound(d: &Delivery) -> Inbound {
    inbound_with_body(d, d.data.clone())
}

/// Takes the delivery apart without copying its body: the worker's hot path, which only
/// needs the message and the acker.
pub fn into_inbound(mut d: Delivery) -> (Inbound, lapin::Acker) {
    let body = std::mem::take(&mut d.data);
    (inbound_with_body(&d, body), d.acker)
}

fn inbound_with_body(d: &Delivery, body: Vec<u8>) -> Inbound {
    let p = &d.properties;
    Inbound {
        body,
        exchange: d.exchange.as_str().to_owned(),
        routing_key: d.routing_key.as_str().to_owned(),
        message_id: p.message_id().as_ref().map(|s| s.as_str().to_owned()),
        content_type: p.content_type().as_ref().map(|s| s.as_str().to_owned()),
        timestamp: *p.timestamp(),
        redelivered: d.redelivered,
        headers: from_field_table(p.headers().as_ref()),
    }
}

/// Acks or requeues one lapin delivery.
pub struct DeliveryAcker(pub lapin::Acker);

impl Acknowledge for DeliveryAcker {
    async fn ack(self) -> Result<(), String> {
        self.0.ack(BasicAckOptions::default()).await.map(|_| ()).map_err(|e| e.to_string())
    }

    /// `basic.reject`, not `basic.nack`: from RabbitMQ 4.3 a nack no longer counts towards a
    /// quorum queue's delivery limit, which is what stops a poison message from looping.
    async fn requeue(self) -> Result<(), String> {
        self.0.reject(BasicRejectOptions { requeue: true }).await.map(|_| ()).map_err(|e| e.to_string())
    }
}

/// Acks every delivery of a channel up to and including this one (`multiple`): how the
/// ledger's projection settles a batch once its transaction has committed. Beside
/// [`crate::transport::settle`], the only other place that acks.
pub async fn ack_through(last: &Delivery) -> Result<(), lapin::Error> {
    last.acker.ack(lapin::options::BasicAckOptions { multiple: true }).await.map(|_| ())
}
