//! What a dead letter says about itself: why, for which job, since when — read from its headers.
//!
//! Read by `provisioner dlq` and by the ledger's projection, which indexes every dead letter.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::headers::{self as h, REPLAY_COUNT};
use super::Inbound;

/// What a dead letter says about itself, read from its headers (and its body as a fallback
/// for messages the broker dead-lettered on its own).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub job_id: Option<String>,
    pub vendor: Option<String>,
    pub account: Option<String>,
    /// An error class, `undecodable`, or the broker's reason (e.g. `delivery_limit`).
    pub reason: String,
    pub code: Option<String>,
    pub message: Option<String>,
    pub attempts: i64,
    pub first_failed_at: Option<DateTime<Utc>>,
    pub last_failed_at: Option<DateTime<Utc>>,
    pub routing_key: String,
    pub replay_count: i64,
}

impl DeadLetter {
    pub fn read(msg: &Inbound) -> Self {
        let hs = &msg.headers;
        let text = |name| h::text(hs, name).map(str::to_owned);
        let time =
            |name| h::text(hs, name).and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc));
        let body: Option<Value> = serde_json::from_slice(&msg.body).ok();
        let from_body = |key: &str| body.as_ref().and_then(|b| b.get(key)).and_then(Value::as_str).map(str::to_owned);
        let reason = text(h::REASON).or_else(|| text("x-first-death-reason")).unwrap_or_else(|| "unknown".to_owned());
        let broker_time = msg.timestamp.and_then(|t| DateTime::from_timestamp(t as i64, 0));
        Self {
            job_id: text(h::JOB_ID).or_else(|| from_body("job_id")).or_else(|| msg.message_id.clone()),
            vendor: text(h::VENDOR).or_else(|| from_body("vendor")),
            account: text(h::ACCOUNT).or_else(|| from_body("account")),
            code: text(h::ERROR_CODE),
            message: text(h::ERROR_MESSAGE),
            attempts: h::int(hs, h::ATTEMPTS).unwrap_or(0),
            first_failed_at: time(h::FIRST_FAILED_AT).or(broker_time),
            last_failed_at: time(h::LAST_FAILED_AT).or(broker_time),
            routing_key: text(h::ORIGINAL_ROUTING_KEY).unwrap_or_else(|| msg.routing_key.clone()),
            replay_count: h::int(hs, REPLAY_COUNT).unwrap_or(0),
            reason,
        }
    }
}

/// A dead letter's key in the ledger's index: a digest of the body and of the headers that
/// change each time a job is dead-lettered. Both copies of one dead-lettering (the one in the
/// dead-letter queue and the projection's) give the same key, and a job dead-lettered again
/// after a replay gives a new one.
pub fn letter_id(msg: &Inbound) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    digest.update((msg.body.len() as u64).to_be_bytes());
    digest.update(&msg.body);
    for name in [h::REASON, h::ATTEMPTS, h::LAST_FAILED_AT, REPLAY_COUNT, "x-first-death-reason", "x-first-death-queue"]
    {
        let value = match msg.headers.get(name) {
            Some(super::HeaderValue::Text(t)) => t.clone(),
            Some(super::HeaderValue::Int(i)) => i.to_string(),
            None => continue,
        };
        digest.update(format!("\n{name}={value}").as_bytes());
    }
    if let Some(id) = &msg.message_id {
        digest.update(format!("\nmessage_id={id}").as_bytes());
    }
    if let Some(t) = msg.timestamp {
        digest.update(format!("\ntimestamp={t}").as_bytes());
    }
    hex::encode(&digest.finalize()[..16])
}
