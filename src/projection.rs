//! The ledger's projection: every event and dead letter, read from `topology.ledger_queue`, becomes ledger rows.
//!
//! The queue is bound to the events exchange (`#`) and to the dead-letter exchange (a
//! fanout), so the projection sees every outcome, every step event, and every dead letter,
//! including those the broker dead-letters by itself at the delivery limit.
//!
//! [`interpret`] is pure: one message in, the writes it implies out. Each write is
//! idempotent (history is keyed by event id, dead letters by a digest), so a batch that is
//! redelivered after a crash changes nothing twice. The worker applies a batch in one
//! transaction and acks its messages only after the commit.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::config::TopologySettings;
use crate::contract::{clip, JobKind, Person, VendorKey};
use crate::event::{STEP_TYPE_PREFIX, TYPE_PREFIX};
use crate::ledger::{
    ActiveLink, HistoryEntry, HistoryKind, IdentityKey, LetterRow, LetterState, LinkState, MovedLink, Write,
};
use crate::transport::{letter_id, DeadLetter, Inbound};

/// Events larger than this are not ours: the service's own are a few KiB.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// Text columns are clipped to this many bytes; an id longer than this is not one of ours.
const MAX_TEXT: usize = 1024;

/// What one message of the ledger queue comes to.
#[derive(Debug, PartialEq)]
pub enum Interpreted {
    /// Rows to write, and the event's time (Unix ms) for the lag.
    Writes { writes: Vec<Write>, event_at: i64 },
    /// Nothing to record, and why (a foreign or malformed message): acked and counted.
    Ignored(&'static str),
}

/// The writes one message implies. Never panics: anything unexpected is `Ignored`.
pub fn interpret(msg: &Inbound, topology: &TopologySettings, now: DateTime<Utc>) -> Interpreted {
    if msg.exchange == topology.dead_exchange {
        return dead_letter(msg, now);
    }
    if msg.body.len() > MAX_EVENT_BYTES {
        return Interpreted::Ignored("event too large");
    }
    let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(&msg.body) else {
        return Interpreted::Ignored("not a JSON object");
    };
    let (Some(id), Some(kind)) = (text(&doc, "id"), text(&doc, "type")) else {
        return Interpreted::Ignored("not a CloudEvent");
    };
    let at = text(&doc, "time")
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map_or(now.timestamp_millis(), |t| t.timestamp_millis());
    let empty = Map::new();
    let data = match doc.get("data") {
        Some(Value::Object(d)) => d,
        _ => &empty,
    };
    let about = About::read(data);
    let Some(job_id) = about.job_id.clone() else { return Interpreted::Ignored("event names no job") };
    let mut writes = Vec::new();
    let entry = |kind: HistoryKind, detail: Value| HistoryEntry {
        entry_id: id.clone(),
        at,
        kind,
        job_id: Some(job_id.clone()),
        correlation_id: about.correlation_id.clone(),
        person: about.person.clone(),
        vendor: about.vendor,
        account: about.account.clone(),
        detail,
    };
    if let Some(outcome) = kind.strip_prefix(TYPE_PREFIX) {
        let Some(kind) = HistoryKind::parse(outcome).filter(|k| {
            matches!(
                k,
                HistoryKind::Created
                    | HistoryKind::Existing
                    | HistoryKind::Updated
                    | HistoryKind::Suspended
                    | HistoryKind::Restored
                    | HistoryKind::Deleted
                    | HistoryKind::Unchanged
                    | HistoryKind::Failed
            )
        }) else {
            return Interpreted::Ignored("unknown outcome");
        };
        // Events from before lifecycle jobs name no kind: they were all creates.
        let job_kind = text(data, "kind").and_then(|k| JobKind::parse(&k)).unwrap_or_default();
        let mut detail = Map::new();
        for key in ["kind", "attempts", "vendor_user_id", "error", "identity", "identity_extra"] {
            if let Some(v) = data.get(key).filter(|v| !v.is_null()) {
                detail.insert(key.into(), bounded(v));
            }
        }
        writes.push(Write::History(entry(kind, Value::Object(detail))));
        if let Some(key) = about.identity_key() {
            if kind == HistoryKind::Failed {
                // A create that ran out of retries may have gone through: its intent stays
                // as the only proof. Every other failure surely created nothing.
                let class = data.get("error").and_then(|e| e.get("class")).and_then(Value::as_str);
                if class != Some("unavailable") {
                    writes.push(Write::ReleaseIntent { key, job_id: job_id.clone() });
                }
            } else if let Some(state) = moved_to(job_kind) {
                writes.push(Write::Moved(MovedLink {
                    key,
                    state,
                    person: about.person.clone(),
                    job_id: job_id.clone(),
                    correlation_id: about.correlation_id.clone(),
                    at,
                }));
            } else if job_kind == JobKind::CreateUser {
                writes.push(Write::Active(ActiveLink {
                    key,
                    identity_extra: about.identity_extra.clone(),
                    person: about.person.clone(),
                    job_id: job_id.clone(),
                    correlation_id: about.correlation_id.clone(),
                    vendor_user_id: text(data, "vendor_user_id"),
                    at,
                }));
            }
        }
    } else if let Some(step) = kind.strip_prefix(STEP_TYPE_PREFIX) {
        let Some(kind) = HistoryKind::parse(step).filter(|k| {
            matches!(
                k,
                HistoryKind::Parked
                    | HistoryKind::Published
                    | HistoryKind::Replayed
                    | HistoryKind::Purged
                    | HistoryKind::Noted
                    | HistoryKind::Held
                    | HistoryKind::Approved
                    | HistoryKind::Rejected
            )
        }) else {
            return Interpreted::Ignored("unknown step");
        };
        let mut detail = Map::new();
        for (k, v) in data {
            if !About::MEMBERS.contains(&k.as_str()) {
                detail.insert(k.clone(), bounded(v));
            }
        }
        writes.push(Write::History(entry(kind, Value::Object(detail))));
        let moved = match kind {
            HistoryKind::Replayed => Some(LetterState::Replayed),
            HistoryKind::Purged => Some(LetterState::Purged),
            _ => None,
        };
        if let Some(state) = moved {
            writes.push(Write::LetterMoved { job_id, state, at });
        }
    } else {
        return Interpreted::Ignored("not a provisioning event");
    }
    Interpreted::Writes { writes, event_at: at }
}

/// The link state a successful job of `kind` leaves at the vendor; `None` for a create (its
/// own write) and an update (the state does not change).
fn moved_to(kind: JobKind) -> Option<LinkState> {
    match kind {
        JobKind::SuspendUser => Some(LinkState::Suspended),
        JobKind::RestoreUser => Some(LinkState::Active),
        JobKind::DeleteUser => Some(LinkState::Deleted),
        JobKind::CreateUser | JobKind::UpdateUser => None,
    }
}

/// A dead-lettered message: indexed, and a step of its job's history.
fn dead_letter(msg: &Inbound, now: DateTime<Utc>) -> Interpreted {
    let d = DeadLetter::read(msg);
    let letter = letter_id(msg);
    let last = d.last_failed_at.map_or(now.timestamp_millis(), |t| t.timestamp_millis());
    let t = |s: Option<String>| s.map(|s| clean(&s));
    let row = LetterRow {
        letter_id: letter.clone(),
        job_id: t(d.job_id.clone()),
        vendor: t(d.vendor.clone()),
        account: t(d.account.clone()),
        reason: clean(&d.reason),
        code: t(d.code.clone()),
        message: t(d.message.clone()),
        attempts: d.attempts,
        routing_key: clean(&d.routing_key),
        first_failed_at: d.first_failed_at.map(|t| t.timestamp_millis()),
        last_failed_at: last,
        state: LetterState::Dead,
    };
    let entry = HistoryEntry {
        entry_id: format!("dead-letter:{letter}"),
        at: last,
        kind: HistoryKind::DeadLettered,
        job_id: row.job_id.clone(),
        correlation_id: None,
        person: None,
        vendor: row.vendor.as_deref().and_then(VendorKey::parse),
        account: row.account.clone(),
        detail: json!({"reason": row.reason, "code": row.code, "message": row.message, "attempts": row.attempts,
                       "letter_id": letter}),
    };
    Interpreted::Writes { writes: vec![Write::Letter(row), Write::History(entry)], event_at: last }
}

/// The job an event is about, from its `data`.
#[derive(Debug, Default)]
struct About {
    job_id: Option<String>,
    vendor: Option<VendorKey>,
    account: Option<String>,
    correlation_id: Option<String>,
    identity: Option<String>,
    identity_extra: Option<String>,
    person: Option<Person>,
}

impl About {
    /// `data` members that say which job; the rest of a step's data is its detail.
    const MEMBERS: &'static [&'static str] = &["job_id", "vendor", "account", "correlation_id", "person"];

    fn read(data: &Map<String, Value>) -> Self {
        let person = data.get("person").and_then(Value::as_object).and_then(|p| {
            let employee_id = p.get("employee_id").and_then(Value::as_str)?;
            let tenant = p.get("tenant").and_then(Value::as_str).unwrap_or("");
            Person::parse(tenant, employee_id).ok()
        });
        Self {
            job_id: text(data, "job_id"),
            vendor: data.get("vendor").and_then(Value::as_str).and_then(VendorKey::parse),
            account: text(data, "account"),
            correlation_id: text(data, "correlation_id"),
            identity: text(data, "identity"),
            identity_extra: text(data, "identity_extra"),
            person,
        }
    }

    fn identity_key(&self) -> Option<IdentityKey> {
        Some(IdentityKey { vendor: self.vendor?, account: self.account.clone()?, identity: self.identity.clone()? })
    }
}

/// A string member, without NUL characters (PostgreSQL refuses them in text) and clipped.
fn text(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key).and_then(Value::as_str).map(clean)
}

fn clean(s: &str) -> String {
    clip(s.replace('\0', ""), MAX_TEXT)
}

/// A detail value, with long strings clipped so one event cannot bloat the history.
fn bounded(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(clip(s.clone(), 4096)),
        Value::Object(m) => Value::Object(m.iter().take(32).map(|(k, v)| (clean(k), bounded(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().take(32).map(bounded).collect()),
        other => other.clone(),
    }
}

/// The projection's consumer on `topology.ledger_queue`, for one broker session.
pub mod consumer {
    use std::time::Duration;

    use backon::{BackoffBuilder, ExponentialBuilder};
    use lapin::{Channel, Connection};
    use tokio_util::sync::CancellationToken;

    use super::{interpret, Interpreted};
    use crate::config::Settings;
    use crate::ledger::{Ledger, LedgerError, Write};
    use crate::metrics::Metrics;
    use crate::transport::rabbitmq::{self, BrokerError};

    /// How long an empty queue takes to count as "caught up" (lag 0).
    const IDLE: Duration = Duration::from_secs(2);

    /// Starts consuming; batches are written and acked until `stop` or `lost` is cancelled.
    pub async fn start(
        conn: &Connection,
        settings: &Settings,
        ledger: Ledger,
        metrics: Metrics,
        stop: &CancellationToken,
        lost: &CancellationToken,
    ) -> Result<(Channel, String), BrokerError> {
        let size = usize::from(settings.ledger.batch_size);
        // Twice a batch in flight: the next batch arrives while one is written.
        let prefetch = settings.ledger.batch_size.saturating_mul(2);
        let (channel, mut consumer, tag) =
            rabbitmq::consume(conn, settings, &settings.topology.ledger_queue, prefetch, "ledger").await?;
        let (stop, lost) = (stop.clone(), lost.clone());
        let topology = settings.topology.clone();
        let linger = settings.ledger.batch_linger;
        let writer = format!("projection-{}", std::process::id());
        let consuming = channel.clone();
        tokio::spawn(async move {
            loop {
                // A queue that stays empty for a while means the ledger has caught up: the lag
                // gauge must not keep the age of the last batch.
                let first = match tokio::time::timeout(
                    IDLE,
                    rabbitmq::next_delivery(&consuming, &mut consumer, &stop, &lost, "ledger"),
                )
                .await
                {
                    Ok(Some(d)) => d,
                    Ok(None) => break,
                    Err(_) => {
                        metrics.ledger_projection_lag.set(0.0);
                        continue;
                    }
                };
                let mut batch = vec![first];
                let until = tokio::time::Instant::now() + linger;
                while batch.len() < size {
                    match tokio::time::timeout_at(
                        until,
                        rabbitmq::next_delivery(&consuming, &mut consumer, &stop, &lost, "ledger"),
                    )
                    .await
                    {
                        Ok(Some(d)) => batch.push(d),
                        Ok(None) | Err(_) => break,
                    }
                }
                let now = chrono::Utc::now();
                let mut groups: Vec<Vec<Write>> = Vec::with_capacity(batch.len());
                let (mut ignored, mut oldest) = (0u64, None::<i64>);
                for d in &batch {
                    match interpret(&rabbitmq::inbound(d), &topology, now) {
                        Interpreted::Writes { writes, event_at } => {
                            oldest = Some(oldest.map_or(event_at, |o| o.min(event_at)));
                            groups.push(writes);
                        }
                        Interpreted::Ignored(why) => {
                            tracing::debug!(why, "ledger queue message ignored");
                            ignored += 1;
                        }
                    }
                }
                if let Some(newest) = batch_newest(&groups) {
                    groups.push(vec![Write::Progress { writer: writer.clone(), event_at: newest }]);
                }
                let Some(refused) = write(&ledger, &metrics, &groups, &stop).await else {
                    // Shut down while the ledger was down: the batch stays unacked and is
                    // redelivered to whoever consumes next.
                    break;
                };
                let last = batch.last().expect("a batch has a first delivery");
                if let Err(e) = rabbitmq::ack_through(last).await {
                    tracing::warn!(error = %e, "ledger batch ack failed; the broker will redeliver it (rewriting it is harmless)");
                    lost.cancel();
                    break;
                }
                let written = batch.len() as u64 - ignored - refused;
                metrics.ledger_projected.with_label_values(&["written"]).inc_by(written);
                metrics.ledger_projected.with_label_values(&["ignored"]).inc_by(ignored);
                metrics.ledger_projected.with_label_values(&["refused"]).inc_by(refused);
                let lag = oldest.map_or(0.0, |t| (now.timestamp_millis() - t).max(0) as f64 / 1000.0);
                // An empty queue after this batch means the ledger has caught up.
                let caught_up = batch.len() < size;
                metrics.ledger_projection_lag.set(if caught_up && lag < 1.0 { 0.0 } else { lag });
            }
        });
        Ok((channel, tag))
    }

    fn batch_newest(groups: &[Vec<Write>]) -> Option<i64> {
        groups
            .iter()
            .flatten()
            .filter_map(|w| match w {
                Write::History(e) => Some(e.at),
                _ => None,
            })
            .max()
    }

    /// Writes a batch in one transaction, waiting out a ledger that is down. When the
    /// database refuses the batch, each message's writes go alone, and those it still
    /// refuses are logged and skipped (counted): one bad row must not stop the ledger.
    /// Returns how many were refused, or `None` on shutdown.
    async fn write(ledger: &Ledger, metrics: &Metrics, groups: &[Vec<Write>], stop: &CancellationToken) -> Option<u64> {
        let mut delays = backoff();
        loop {
            let all: Vec<Write> = groups.iter().flatten().cloned().collect();
            let result = match ledger.apply(&all).await {
                Err(LedgerError::Refused(why)) => {
                    tracing::warn!(error = %why, "the ledger refused a batch; writing its messages one by one");
                    one_by_one(ledger, groups).await
                }
                other => other.map(|()| 0),
            };
            match result {
                Ok(refused) => {
                    metrics.ledger_up.set(1);
                    return Some(refused);
                }
                Err(e) => {
                    metrics.ledger_up.set(0);
                    let wait = delays.next().unwrap_or(Duration::from_secs(30));
                    tracing::warn!(error = %e, retry_in = ?wait, "the ledger is down; the projection waits (its queue keeps every event)");
                    tokio::select! {
                        _ = stop.cancelled() => return None,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    async fn one_by_one(ledger: &Ledger, groups: &[Vec<Write>]) -> Result<u64, LedgerError> {
        let mut refused = 0;
        for writes in groups {
            match ledger.apply(writes).await {
                Ok(()) => {}
                Err(LedgerError::Refused(why)) => {
                    let key = writes.iter().find_map(|w| match w {
                        Write::History(e) => Some(e.entry_id.clone()),
                        Write::Letter(l) => Some(l.letter_id.clone()),
                        _ => None,
                    });
                    tracing::error!(entry = key.as_deref(), error = %why, "the ledger refused an entry; skipped");
                    refused += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(refused)
    }

    fn backoff() -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(250))
            .with_max_delay(Duration::from_secs(30))
            .with_jitter()
            .without_max_times()
            .build()
    }
}
