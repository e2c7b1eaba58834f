//! Names of the message headers this service reads and writes on retry and dead-letter copies.
//!
//! They carry no `x-` prefix on purpose: a headers exchange ignores `x-` headers when it
//! matches, and the retry tier is routed on one of them.

use chrono::{DateTime, SecondsFormat, Utc};

use super::{HeaderValue, Headers};

/// Vendor calls made for this job so far, across all deliveries.
pub const ATTEMPTS: &str = "provisioner-attempts";
/// Durable retry tiers already used.
pub const DURABLE_RETRIES: &str = "provisioner-durable-retries";
/// Which retry tier queue the headers exchange routes a retry to.
pub const RETRY_TIER: &str = "provisioner-retry-tier";
/// Times the job was parked because its account's circuit breaker was open; these do not
/// count against the retry tiers.
pub const CIRCUIT_PARKED: &str = "provisioner-circuit-parked";
pub const FIRST_FAILED_AT: &str = "provisioner-first-failed-at";
pub const LAST_FAILED_AT: &str = "provisioner-last-failed-at";
pub const LAST_ERROR: &str = "provisioner-last-error";
/// Why a message is in the DLQ: an error class, or `undecodable`.
pub const REASON: &str = "provisioner-reason";
pub const ERROR_CODE: &str = "provisioner-error-code";
pub const ERROR_MESSAGE: &str = "provisioner-error-message";
pub const ORIGINAL_EXCHANGE: &str = "provisioner-original-exchange";
pub const ORIGINAL_ROUTING_KEY: &str = "provisioner-original-routing-key";
pub const JOB_ID: &str = "provisioner-job-id";
pub const VENDOR: &str = "provisioner-vendor";
pub const ACCOUNT: &str = "provisioner-account";
/// How many times a job was replayed from the DLQ (set by `provisioner dlq replay`).
pub const REPLAY_COUNT: &str = "provisioner-replay-count";
/// JSON audit record of the latest replay: who, when, why, and the patch applied.
pub const REPLAY_AUDIT: &str = "provisioner-replay-audit";
/// W3C trace context, carried through from the producer when present.
pub const TRACEPARENT: &str = "traceparent";

/// Every header this service writes starts with this.
pub const OWN_PREFIX: &str = "provisioner-";

/// The headers without the `provisioner-*` ones a producer set, or `None` when there is
/// nothing to remove. A message that came back from one of this service's retry tiers (it
/// carries `provisioner-retry-tier`) or from a `dlq replay` (`provisioner-replay-audit`)
/// keeps them: they are the service's own record of the job. Any other message is a
/// producer's, and a `provisioner-*` header on it (say, one copied from a dead letter it
/// consumed) must not count attempts, pose as a failure reason, or reach a dead letter.
pub fn without_producer_set(headers: &Headers) -> Option<Headers> {
    if headers.contains_key(RETRY_TIER) || headers.contains_key(REPLAY_AUDIT) {
        return None;
    }
    if !headers.keys().any(|k| k.starts_with(OWN_PREFIX)) {
        return None;
    }
    Some(headers.iter().filter(|(k, _)| !k.starts_with(OWN_PREFIX)).map(|(k, v)| (k.clone(), v.clone())).collect())
}

pub fn text<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    match headers.get(name) {
        Some(HeaderValue::Text(s)) => Some(s),
        _ => None,
    }
}

/// An integer header; tolerates the number arriving as text, as some clients send it.
pub fn int(headers: &Headers, name: &str) -> Option<i64> {
    match headers.get(name) {
        Some(HeaderValue::Int(i)) => Some(*i),
        Some(HeaderValue::Text(s)) => s.parse().ok(),
        None => None,
    }
}

pub fn set_text(headers: &mut Headers, name: &str, value: impl Into<String>) {
    headers.insert(name.to_owned(), HeaderValue::Text(value.into()));
}

pub fn set_int(headers: &mut Headers, name: &str, value: i64) {
    headers.insert(name.to_owned(), HeaderValue::Int(value));
}

pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_services_own_copies_keep_provisioner_headers() {
        let mut producer = Headers::new();
        set_int(&mut producer, ATTEMPTS, 7);
        set_text(&mut producer, TRACEPARENT, "00-x");
        let kept = without_producer_set(&producer).expect("a producer's provisioner-* header is removed");
        assert_eq!((int(&kept, ATTEMPTS), text(&kept, TRACEPARENT)), (None, Some("00-x")));

        for own in [RETRY_TIER, REPLAY_AUDIT] {
            let mut ours = producer.clone();
            set_text(&mut ours, own, "x");
            assert!(without_producer_set(&ours).is_none(), "{own}");
        }
        let mut plain = Headers::new();
        set_text(&mut plain, TRACEPARENT, "00-x");
        assert!(without_producer_set(&plain).is_none(), "nothing to remove, nothing copied");
    }
}
