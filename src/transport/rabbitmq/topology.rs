//! Declares the broker topology of design.md §2, idempotently, at every (re)connect.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};

use super::BrokerError;
use crate::config::{Settings, TopologySettings};
use crate::contract::VendorKey;
use crate::retry::tier_name;
use crate::transport::headers;

fn text(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v.as_bytes()))
}

/// Quorum queue arguments. At-least-once dead-lettering (which needs `reject-publish`)
/// makes the broker keep a message until the dead-letter target confirmed it, so a
/// dead-lettered job cannot vanish between two queues.
fn quorum(dead_letter_exchange: &str) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-queue-type".into(), text("quorum"));
    t.insert("x-dead-letter-exchange".into(), text(dead_letter_exchange));
    t.insert("x-dead-letter-strategy".into(), text("at-least-once"));
    t.insert("x-overflow".into(), text("reject-publish"));
    t
}

/// Arguments of a vendor's job queue; exposed so tests can assert them.
pub fn declare_job_queue_args(settings: &Settings) -> FieldTable {
    let mut args = quorum(&settings.topology.dead_exchange);
    args.insert("x-delivery-limit".into(), AMQPValue::LongInt(settings.topology.delivery_limit as i32));
    args
}

async fn exchange(ch: &Channel, name: &str, kind: ExchangeKind) -> Result<(), BrokerError> {
    ch.exchange_declare(
        name.into(),
        kind,
        ExchangeDeclareOptions { durable: true, ..Default::default() },
        FieldTable::default(),
    )
    .await
    .map_err(|source| BrokerError::Setup { step: "declaring an exchange", source })
}

async fn queue(ch: &Channel, name: &str, args: FieldTable) -> Result<(), BrokerError> {
    ch.queue_declare(name.into(), QueueDeclareOptions { durable: true, ..Default::default() }, args)
        .await
        .map(|_| ())
        .map_err(|source| BrokerError::Setup {
            step: "declaring a queue (a queue of that name with other arguments already exists?)",
            source,
        })
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) -> Result<(), BrokerError> {
    ch.queue_bind(queue.into(), exchange.into(), key.into(), QueueBindOptions::default(), args)
        .await
        .map_err(|source| BrokerError::Setup { step: "binding a queue", source })
}

/// Declares every exchange and queue. Declaring is idempotent, so every replica does it at
/// every connect; a changed argument makes the broker refuse, which stops start-up loudly.
pub async fn declare(ch: &Channel, settings: &Settings) -> Result<(), BrokerError> {
    let t = &settings.topology;
    exchange(ch, &t.jobs_exchange, ExchangeKind::Topic).await?;
    exchange(ch, &t.events_exchange, ExchangeKind::Topic).await?;
    // Headers-routed so one exchange serves every tier while the original routing key
    // survives to the dead-letter hop back into the jobs exchange.
    exchange(ch, &t.retry_exchange, ExchangeKind::Headers).await?;
    exchange(ch, &t.dead_exchange, ExchangeKind::Fanout).await?;

    let mut dead_args = FieldTable::default();
    dead_args.insert("x-queue-type".into(), text("quorum"));
    // `dlq` commands hand every message they look at back to the queue, and each return
    // counts as a delivery. RabbitMQ 4 gives quorum queues a default limit of 20, after which
    // a DLQ with no DLX of its own would silently drop its oldest failures: set it out of reach.
    dead_args.insert("x-delivery-limit".into(), AMQPValue::LongInt(i32::MAX));
    queue(ch, &t.dead_queue, dead_args).await?;
    bind(ch, &t.dead_queue, &t.dead_exchange, "", FieldTable::default()).await?;

    for vendor in VendorKey::ALL {
        let name = t.job_queue(vendor);
        queue(ch, &name, declare_job_queue_args(settings)).await?;
        // One binding per kind, not `*.<vendor>`: a job of a kind this build does not know
        // stays unroutable and its publisher hears so, rather than being dead-lettered here.
        for kind in crate::contract::JobKind::ALL {
            bind(ch, &name, &t.jobs_exchange, &kind.routing_key(vendor), FieldTable::default()).await?;
        }
    }

    // The safeguard's held queues, one per account so that a replica reads whether an
    // account has held jobs from the queue's length alone. Like the DLQ: a `held` walk hands
    // back every message it looks at, so the delivery limit is out of reach, and nothing
    // leaves them but an operator's approve or reject.
    for account in settings.accounts.keys() {
        queue(ch, &t.held_queue(account), held_queue_args()).await?;
    }

    // Hire events: the same quorum and dead-letter arguments as the job queues.
    exchange(ch, &t.hr_exchange, ExchangeKind::Topic).await?;
    queue(ch, &t.hr_queue, declare_job_queue_args(settings)).await?;
    bind(ch, &t.hr_queue, &t.hr_exchange, "#", FieldTable::default()).await?;
    // A leave effective later waits in one of these; expired, it goes back through the
    // person-event exchange (routed by its wait queue's name, which `#` takes).
    for wait in TopologySettings::HR_WAITS {
        let mut args = quorum(&t.hr_exchange);
        args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(wait.as_millis() as i64));
        queue(ch, &t.hr_wait_queue(wait), args).await?;
    }

    for delay in settings.all_retry_tiers() {
        let tier = tier_name(delay);
        let name = retry_queue(settings, delay);
        let mut args = quorum(&t.jobs_exchange);
        args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(delay.as_millis().min(i64::MAX as u128) as i64));
        queue(ch, &name, args).await?;
        let mut match_args = FieldTable::default();
        match_args.insert("x-match".into(), text("all"));
        match_args.insert(headers::RETRY_TIER.into(), text(&tier));
        bind(ch, &name, &t.retry_exchange, "", match_args).await?;
    }

    if !t.audit_queue.is_empty() {
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), text("quorum"));
        args.insert("x-max-length".into(), AMQPValue::LongLongInt(t.audit_max_length.into()));
        args.insert("x-overflow".into(), text("drop-head"));
        queue(ch, &t.audit_queue, args).await?;
        bind(ch, &t.audit_queue, &t.events_exchange, "#", FieldTable::default()).await?;
    }

    // The ledger's projection sees every event and every dead letter (the dead-letter
    // exchange is a fanout, so the broker's own dead letters arrive too). Only with a ledger:
    // a queue nobody reads would grow until its length limit.
    if settings.ledger.enabled && !t.ledger_queue.is_empty() {
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), text("quorum"));
        args.insert("x-max-length".into(), AMQPValue::LongLongInt(t.ledger_max_length.into()));
        args.insert("x-overflow".into(), text("drop-head"));
        queue(ch, &t.ledger_queue, args).await?;
        bind(ch, &t.ledger_queue, &t.events_exchange, "#", FieldTable::default()).await?;
        bind(ch, &t.ledger_queue, &t.dead_exchange, "", FieldTable::default()).await?;
    }
    Ok(())
}

/// Arguments of a held queue.
fn held_queue_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), text("quorum"));
    args.insert("x-delivery-limit".into(), AMQPValue::LongInt(i32::MAX));
    args
}

fn retry_queue(settings: &Settings, delay: std::time::Duration) -> String {
    format!("{}.{}", settings.topology.retry_queue_prefix, tier_name(delay))
}

/// Deletes everything [`declare`] creates, best effort. For throw-away topologies only (the
/// demo on a real broker, tests): production queues hold jobs and are never deleted.
pub async fn delete_topology(ch: &Channel, settings: &Settings) {
    let t = &settings.topology;
    let mut queues = vec![t.dead_queue.clone(), t.hr_queue.clone()];
    queues.extend(TopologySettings::HR_WAITS.map(|w| t.hr_wait_queue(w)));
    queues.extend(VendorKey::ALL.map(|v| t.job_queue(v)));
    queues.extend(settings.accounts.keys().map(|a| t.held_queue(a)));
    queues.extend(settings.all_retry_tiers().into_iter().map(|d| retry_queue(settings, d)));
    if !t.audit_queue.is_empty() {
        queues.push(t.audit_queue.clone());
    }
    if !t.ledger_queue.is_empty() {
        queues.push(t.ledger_queue.clone());
    }
    for q in queues {
        let _ = ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await;
    }
    for x in [&t.jobs_exchange, &t.events_exchange, &t.retry_exchange, &t.dead_exchange, &t.hr_exchange] {
        let _ = ch.exchange_delete(x.as_str().into(), Default::default()).await;
    }
}
