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
/// The account whose safeguard held this job (on a held job).
pub const HELD_ACCOUNT: &str = "provisioner-held-account";
/// Why the safeguard held it: the limit that tripped, or `tripped` for a later one.
pub const HELD_REASON: &str = "provisioner-held-reason";
pub const HELD_AT: &str = "provisioner-held-at";
/// JSON record of the operator's `held approve` (who, when, why): the job passes the
/// safeguard without counting.
pub const APPROVED: &str = "provisioner-approved";
/// W3C trace context, carried through from the producer when present and well-formed
/// ([`checked_traceparent`]).
pub const TRACEPARENT: &str = "traceparent";

/// Every header this service writes starts with this.
pub const OWN_PREFIX: &str = "provisioner-";

/// The headers without the `provisioner-*` ones a producer set, or `None` when there is
/// nothing to remove. A message that came back from one of this service's retry tiers (it
/// carries `provisioner-retry-tier`) or from a `dlq replay` (`provisioner-replay-audit`)
/// keeps them: they are the service's own record of the job. Any other message is a
/// producer's, and a `provisioner-*` header on it (say, one copied from a dead letter it
/// consumed) must not count attempts, pose as a failure reason, or reach a dead letter.
/// A job released by `held approve` (`provisioner-approved`) is the service's own too.
pub fn without_producer_set(headers: &Headers) -> Option<Headers> {
    if headers.contains_key(RETRY_TIER) || headers.contains_key(REPLAY_AUDIT) || headers.contains_key(APPROVED) {
        return None;
    }
    if !headers.keys().any(|k| k.starts_with(OWN_PREFIX)) {
        return None;
    }
    Some(headers.iter().filter(|(k, _)| !k.starts_with(OWN_PREFIX)).map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// The length of a version-`00` `traceparent`: `00-<32 hex>-<16 hex>-<2 hex>`.
pub const TRACEPARENT_LEN: usize = 55;

/// The one gate for a `traceparent` that comes from outside (an HTTP request, a producer's
/// AMQP header): the value when it is a W3C Trace Context version-`00` `traceparent`, else
/// `None`, with a debug log, so that nothing else is carried into jobs and events.
///
/// Version `00` is the only one defined: exactly 55 characters, `00-<trace-id>-<parent-id>-<flags>`
/// of 32, 16 and 2 lower-case hex digits, where neither id is all zeros. Version `ff` is
/// invalid by definition, and later versions are not carried (a parent that sends one
/// starts a new trace here, as the spec allows).
pub fn checked_traceparent(value: &str) -> Option<&str> {
    if is_traceparent(value) {
        Some(value)
    } else {
        // Never the value itself: it came from outside and may be kilobytes of anything.
        tracing::debug!(length = value.len(), "traceparent dropped: not a W3C version-00 traceparent");
        None
    }
}

fn is_traceparent(value: &str) -> bool {
    let b = value.as_bytes();
    let hex = |r: std::ops::Range<usize>| b[r].iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    let nonzero = |r: std::ops::Range<usize>| b[r].iter().any(|&c| c != b'0');
    b.len() == TRACEPARENT_LEN
        && &b[..3] == b"00-"
        && b[35] == b'-'
        && b[52] == b'-'
        && hex(3..35)
        && hex(36..52)
        && hex(53..55)
        && nonzero(3..35)
        && nonzero(36..52)
}

/// The message's `traceparent` header, when it is one ([`checked_traceparent`]).
pub fn traceparent(headers: &Headers) -> Option<&str> {
    text(headers, TRACEPARENT).and_then(checked_traceparent)
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

        for own in [RETRY_TIER, REPLAY_AUDIT, APPROVED] {
            let mut ours = producer.clone();
            set_text(&mut ours, own, "x");
            assert!(without_producer_set(&ours).is_none(), "{own}");
        }
        let mut plain = Headers::new();
        set_text(&mut plain, TRACEPARENT, "00-x");
        assert!(without_producer_set(&plain).is_none(), "nothing to remove, nothing copied");
    }

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_w3c_version_00_traceparent_is_carried() {
        assert_eq!(checked_traceparent(VALID), Some(VALID));
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert_eq!(checked_traceparent(unsampled), Some(unsampled));
    }

    #[test]
    fn anything_else_is_dropped() {
        let (one_long, suffixed) = (format!("{VALID}0"), format!("{VALID}-extra"));
        let cases = [
            ("", "empty"),
            (&VALID[..54], "one short"),
            (one_long.as_str(), "one long"),
            (suffixed.as_str(), "a later version's suffix on version 00"),
            ("00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01", "2-31-17-2"),
            ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "upper-case trace id"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01", "upper-case parent id"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A", "upper-case flags"),
            ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "all-zero trace id"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "all-zero parent id"),
            ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "version ff"),
            ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "a version other than 00"),
            ("00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01", "wrong separators"),
            ("00-4bf92f3577b34da6a3ce929d0e0e47g6-00f067aa0ba902b7-01", "not hex"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ", "trailing space"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-é", "multi-byte tail of the right length"),
        ];
        for (value, why) in cases {
            assert_eq!(checked_traceparent(value), None, "{why}: {value:?}");
        }
        let junk = format!("00-{}", "a".repeat(8 * 1024));
        assert_eq!(checked_traceparent(&junk), None, "8 KB of junk");
    }

    #[test]
    fn a_header_is_read_through_the_same_check() {
        let mut headers = Headers::new();
        assert_eq!(traceparent(&headers), None);
        set_text(&mut headers, TRACEPARENT, VALID);
        assert_eq!(traceparent(&headers), Some(VALID));
        set_text(&mut headers, TRACEPARENT, "x".repeat(8 * 1024));
        assert_eq!(traceparent(&headers), None);
        set_int(&mut headers, TRACEPARENT, 7);
        assert_eq!(traceparent(&headers), None);
    }
}
