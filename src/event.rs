//! Result events: CloudEvents 1.0 JSON documents published to the events exchange.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::outcome::Outcome;
use crate::vendors::VendorKey;

/// What an event says about the job, including what could be read from an invalid one.
#[derive(Clone, Debug)]
pub struct JobRef<'a> {
    pub job_id: &'a str,
    pub vendor: Option<VendorKey>,
    pub account: Option<&'a str>,
    pub correlation_id: Option<&'a str>,
    pub traceparent: Option<&'a str>,
}

pub const TYPE_PREFIX: &str = "provisioning.user.";

/// `user.<outcome>.<vendor>`; a job whose vendor could not be read routes as `unknown`.
pub fn routing_key(outcome: &Outcome, vendor: Option<VendorKey>) -> String {
    format!("user.{}.{}", outcome.name(), vendor.map_or("unknown", VendorKey::as_str))
}

/// Builds the CloudEvents document. `attempts` counts vendor calls across all deliveries.
pub fn build(source: &str, job: &JobRef<'_>, outcome: &Outcome, attempts: u32, now: DateTime<Utc>) -> Value {
    let mut data = Map::new();
    data.insert("job_id".into(), json!(job.job_id));
    data.insert("correlation_id".into(), json!(job.correlation_id));
    data.insert("vendor".into(), json!(job.vendor));
    data.insert("account".into(), json!(job.account));
    data.insert("outcome".into(), json!(outcome.name()));
    data.insert("attempts".into(), json!(attempts));
    match outcome {
        Outcome::Created(r) | Outcome::Existing(r) => {
            data.insert("vendor_user_id".into(), json!(r.vendor_user_id));
            for (k, v) in &r.details {
                data.insert(k.clone(), v.clone());
            }
        }
        Outcome::Failed(f) => {
            data.insert("error".into(), json!({"class": f.class, "code": f.code, "message": f.message}));
        }
    }
    let mut event = json!({
        "specversion": "1.0",
        "id": uuid::Uuid::new_v4().to_string(),
        "source": source,
        "type": format!("{TYPE_PREFIX}{}", outcome.name()),
        "subject": job.job_id,
        "time": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "datacontenttype": "application/json",
        "data": Value::Object(data),
    });
    // The CloudEvents distributed-tracing extension carries W3C trace context as an attribute.
    if let Some(tp) = job.traceparent {
        event["traceparent"] = json!(tp);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{ErrorClass, Failure};
    use crate::vendors::Receipt;

    fn job() -> JobRef<'static> {
        JobRef {
            job_id: "hire-1-glance",
            vendor: Some(VendorKey::Glance),
            account: Some("acme"),
            correlation_id: Some("hire-1"),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        }
    }

    #[test]
    fn created_event_is_a_cloudevent_with_the_receipt() {
        let mut details = Map::new();
        details.insert("dialIn".into(), json!("1 (555) 010-2030"));
        let outcome = Outcome::Created(Receipt { existing: false, vendor_user_id: Some("u-9".into()), details });
        let e = build("urn:test", &job(), &outcome, 2, Utc::now());
        assert_eq!(e["specversion"], "1.0");
        assert_eq!(e["type"], "provisioning.user.created");
        assert_eq!(e["subject"], "hire-1-glance");
        assert_eq!(e["data"]["vendor_user_id"], "u-9");
        assert_eq!(e["data"]["dialIn"], "1 (555) 010-2030");
        assert_eq!(e["data"]["attempts"], 2);
        assert_eq!(e["traceparent"], job().traceparent.unwrap());
        assert_eq!(routing_key(&outcome, Some(VendorKey::Glance)), "user.created.glance");
    }

    #[test]
    fn failed_event_carries_the_error_object() {
        let outcome = Outcome::Failed(Failure::new(ErrorClass::Auth, "bad_login", "PartnerLogin is inactive"));
        let e = build("urn:test", &job(), &outcome, 1, Utc::now());
        assert_eq!(e["type"], "provisioning.user.failed");
        assert_eq!(
            e["data"]["error"],
            json!({"class": "auth", "code": "bad_login", "message": "PartnerLogin is inactive"})
        );
        assert_eq!(routing_key(&outcome, None), "user.failed.unknown");
    }
}
