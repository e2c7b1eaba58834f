//! Result events: CloudEvents 1.0 JSON documents published to the events exchange.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Map;

use crate::contract::{JobKind, Person, VendorKey};
use crate::outcome::{Failure, Outcome};
use crate::transport::headers as h;
use crate::transport::{Headers, Outbound, OutboundKind};

/// What an event says about the job, including what could be read from an invalid one.
#[derive(Clone, Debug)]
pub struct JobRef<'a> {
    pub job_id: &'a str,
    pub vendor: Option<VendorKey>,
    pub account: Option<&'a str>,
    pub correlation_id: Option<&'a str>,
    pub traceparent: Option<&'a str>,
    /// The vendor identity the job asked for (see [`crate::vendors::VendorIdentity`]), when
    /// it could be read: what the ledger links to the person.
    pub identity: Option<&'a str>,
    pub identity_extra: Option<&'a str>,
    /// Who the job was for, when it said.
    pub person: Option<&'a Person>,
    /// What the job asked for, when it could be read.
    pub kind: Option<JobKind>,
}

pub const TYPE_PREFIX: &str = "provisioning.user.";

/// `user.<outcome>.<vendor>`; a job whose vendor could not be read routes as `unknown`.
pub fn routing_key(outcome: &Outcome, vendor: Option<VendorKey>) -> String {
    format!("user.{}.{}", outcome.name(), vendor.map_or("unknown", VendorKey::as_str))
}

/// One result event, the CloudEvents document, serialised straight to its bytes: building a
/// `serde_json::Value` first allocated every key and value on its own, about a tenth of a
/// job's instructions. The members come out sorted, as a `Value`'s map wrote them, so the
/// bytes are the same (see the tests).
#[derive(Debug, Serialize)]
pub struct Event<'a> {
    data: Data<'a>,
    datacontenttype: &'static str,
    pub id: String,
    source: &'a str,
    specversion: &'static str,
    subject: &'a str,
    time: String,
    /// The CloudEvents distributed-tracing extension carries W3C trace context as an attribute.
    #[serde(skip_serializing_if = "Option::is_none")]
    traceparent: Option<&'a str>,
    #[serde(rename = "type")]
    kind: String,
}

impl<'a> Event<'a> {
    /// `attempts` counts vendor calls across all deliveries.
    pub fn new(source: &'a str, job: &JobRef<'a>, outcome: &'a Outcome, attempts: u32, now: DateTime<Utc>) -> Self {
        Self {
            data: Data { job: job.clone(), outcome, attempts },
            datacontenttype: "application/json",
            id: uuid::Uuid::new_v4().to_string(),
            source,
            specversion: "1.0",
            subject: job.job_id,
            time: now.to_rfc3339_opts(SecondsFormat::Millis, true),
            traceparent: job.traceparent,
            kind: format!("{TYPE_PREFIX}{}", outcome.name()),
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an event serialises")
    }
}

/// The event's `data`: the job, the outcome and, for a success, whatever the vendor returned
/// that matters. A detail named like one of the fixed members replaces it, as inserting it
/// into the map after them did.
#[derive(Debug)]
struct Data<'a> {
    job: JobRef<'a>,
    outcome: &'a Outcome,
    attempts: u32,
}

/// A fixed member of `data`, borrowed.
#[derive(Serialize)]
#[serde(untagged)]
enum Member<'a> {
    Text(Option<&'a str>),
    Number(u32),
    Vendor(Option<VendorKey>),
    Error(&'a Failure),
    Person(&'a Person),
}

impl Serialize for Data<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let empty = Map::new();
        let (receipt, failure) = match self.outcome {
            Outcome::Failed(f) => (None, Some(f)),
            success => (success.receipt(), None),
        };
        let details = receipt.map_or(&empty, |r| &r.details);
        // Sorted by name, like the map keys they merge with.
        let mut fixed: Vec<(&str, Member<'_>)> = vec![
            ("account", Member::Text(self.job.account)),
            ("attempts", Member::Number(self.attempts)),
            ("correlation_id", Member::Text(self.job.correlation_id)),
        ];
        if let Some(f) = failure {
            fixed.push(("error", Member::Error(f)));
        }
        // Added with the ledger; present only when known, so earlier consumers see no nulls.
        if let Some(i) = self.job.identity {
            fixed.push(("identity", Member::Text(Some(i))));
        }
        if let Some(i) = self.job.identity_extra {
            fixed.push(("identity_extra", Member::Text(Some(i))));
        }
        fixed.push(("job_id", Member::Text(Some(self.job.job_id))));
        // Added with lifecycle jobs; present only when the job's kind could be read.
        if let Some(k) = self.job.kind {
            fixed.push(("kind", Member::Text(Some(k.as_str()))));
        }
        fixed.push(("outcome", Member::Text(Some(self.outcome.name()))));
        if let Some(p) = self.job.person {
            fixed.push(("person", Member::Person(p)));
        }
        fixed.push(("vendor", Member::Vendor(self.job.vendor)));
        if let Some(r) = receipt {
            fixed.push(("vendor_user_id", Member::Text(r.vendor_user_id.as_deref())));
        }
        fixed.retain(|(name, _)| !details.contains_key(*name));
        let mut map = serializer.serialize_map(Some(fixed.len() + details.len()))?;
        let mut fixed = fixed.into_iter().peekable();
        let mut details = details.iter().peekable();
        loop {
            match (fixed.peek(), details.peek()) {
                (Some((f, _)), Some((d, _))) if *f < d.as_str() => {
                    let (name, value) = fixed.next().expect("peeked");
                    map.serialize_entry(name, &value)?;
                }
                (_, Some(_)) => {
                    let (name, value) = details.next().expect("peeked");
                    map.serialize_entry(name, value)?;
                }
                (Some(_), None) => {
                    let (name, value) = fixed.next().expect("peeked");
                    map.serialize_entry(name, &value)?;
                }
                (None, None) => break,
            }
        }
        map.end()
    }
}

/// The type prefix of events about a job's steps other than its outcome.
pub const STEP_TYPE_PREFIX: &str = "provisioning.job.";

/// `job.<step>.<vendor>`, beside the outcomes' `user.<outcome>.<vendor>`: consumers bound
/// to `user.#` never see them.
pub fn step_routing_key(step: &str, vendor: Option<VendorKey>) -> String {
    format!("job.{step}.{}", vendor.map_or("unknown", VendorKey::as_str))
}

/// The job a step event is about.
#[derive(Clone, Debug, Serialize)]
pub struct StepOf<'a> {
    pub job_id: &'a str,
    pub vendor: Option<VendorKey>,
    pub account: Option<&'a str>,
    pub correlation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<&'a Person>,
}

/// A `provisioning.job.<step>` CloudEvent (parked, published, replayed, purged): the job's
/// fields and the step's own `data` members, merged. Returns the event id and the bytes.
pub fn step(
    source: &str,
    step: &str,
    about: &StepOf<'_>,
    traceparent: Option<&str>,
    data: serde_json::Value,
    now: DateTime<Utc>,
) -> (String, Vec<u8>) {
    let mut merged = match serde_json::to_value(about) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => Map::new(),
    };
    if let serde_json::Value::Object(extra) = data {
        merged.extend(extra);
    }
    let id = uuid::Uuid::new_v4().to_string();
    let mut doc = serde_json::json!({
        "specversion": "1.0",
        "id": id,
        "source": source,
        "type": format!("{STEP_TYPE_PREFIX}{step}"),
        "subject": about.job_id,
        "time": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "datacontenttype": "application/json",
        "data": merged,
    });
    if let Some(tp) = traceparent {
        doc["traceparent"] = serde_json::json!(tp);
    }
    (id, serde_json::to_vec(&doc).expect("an event serialises"))
}

/// A [`step`] event as the message that carries it to the events exchange.
pub fn step_message(
    source: &str,
    exchange: &str,
    step: &str,
    about: &StepOf<'_>,
    traceparent: Option<&str>,
    data: serde_json::Value,
    now: DateTime<Utc>,
) -> Outbound {
    let (id, body) = self::step(source, step, about, traceparent, data, now);
    message(exchange, step_routing_key(step, about.vendor), id, body, traceparent, now)
}

/// An event (an outcome or a step) as the message that carries it: a CloudEvent in JSON,
/// its id the message id, with the trace context as a header when there is one.
pub fn message(
    exchange: &str,
    routing_key: String,
    id: String,
    body: Vec<u8>,
    traceparent: Option<&str>,
    now: DateTime<Utc>,
) -> Outbound {
    let mut headers = Headers::new();
    if let Some(tp) = traceparent {
        h::set_text(&mut headers, h::TRACEPARENT, tp);
    }
    Outbound {
        kind: OutboundKind::Event,
        exchange: exchange.to_owned(),
        routing_key,
        body,
        message_id: Some(id),
        content_type: Some("application/cloudevents+json".into()),
        timestamp: Some(now.timestamp().max(0) as u64),
        headers,
    }
}

pub const RESULT_EVENT_SCHEMA_ID: &str = "urn:provisioner:schema:result-event";

/// The JSON Schema (2020-12) of a result event, printed by `provisioner schema --result`:
/// the CloudEvents 1.0 envelope [`Event`] writes and the `data` [`Data`] writes.
pub fn result_event_schema() -> serde_json::Value {
    use serde_json::json;
    let outcomes = Outcome::NAMES;
    let text = |what: &str| json!({"type": "string", "description": what});
    let nullable = |what: &str| json!({"type": ["string", "null"], "description": what});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": RESULT_EVENT_SCHEMA_ID,
        "title": "provisioner result event",
        "description": "One per job that reached an end, published to provisioning.events with routing key \
            user.<outcome>.<vendor> (unknown when the vendor could not be read), content type \
            application/cloudevents+json. Consumers should ignore members they do not know. Regenerate with \
            `provisioner schema --write schemas/`.",
        "type": "object",
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "format": "uuid", "description": "A new UUID per event: a redelivered job may have two events with different ids and the same subject."},
            "source": {"type": "string", "format": "uri-reference", "description": "events.source in the config (default urn:provisioner)."},
            "type": {"enum": outcomes.map(|o| format!("{TYPE_PREFIX}{o}"))},
            "subject": {"type": "string", "minLength": 1, "maxLength": crate::contract::JobId::MAX_LEN, "description": "The job_id."},
            "time": {"type": "string", "format": "date-time", "description": "When the outcome was reached, UTC, milliseconds."},
            "datacontenttype": {"const": "application/json"},
            "traceparent": {"type": "string", "description": "W3C trace context of the job's message, when it carried one (CloudEvents distributed-tracing extension)."},
            "data": {"$ref": "#/$defs/Data"},
        },
        "required": ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"],
        "allOf": outcomes.map(|o| json!({
            "if": {"properties": {"type": {"const": format!("{TYPE_PREFIX}{o}")}}, "required": ["type"]},
            "then": {"properties": {"data": {"properties": {"outcome": {"const": o}}}}},
        })),
        "$defs": {
            "Data": {
                "type": "object",
                "properties": {
                    "job_id": text("The job's job_id (for an invalid job without one, its AMQP message_id)."),
                    "correlation_id": nullable("The job's correlation_id."),
                    "vendor": {"enum": ["glance", "netsapiens", "clienttoolbox", null], "description": "null when the job's vendor could not be read."},
                    "account": nullable("The job's account, when it could be read."),
                    "kind": {"enum": crate::contract::JobKind::ALL.map(crate::contract::JobKind::as_str),
                        "description": "What the job asked for, when it could be read: create_user (created, existing), update_user (updated, unchanged), suspend_user (suspended, unchanged), restore_user (restored, unchanged), delete_user (deleted, unchanged); any kind can fail."},
                    "outcome": {"enum": outcomes},
                    "attempts": {"type": "integer", "minimum": 0, "description": "Vendor calls made across all deliveries of the job (0 for an invalid job)."},
                    "error": {"$ref": "#/$defs/Error"},
                    "vendor_user_id": nullable("The vendor's own id or key for the user, when it returned one."),
                    "dialIn": text("Glance: the dial-in number the vendor returned, when it returned one."),
                    "audio": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Glance: the non-secret audio elements the vendor returned."},
                    "UserID": text("Glance: the vendor's user id."),
                    "PartnerUserID": text("Glance: the user's PartnerUserID."),
                    "UserAddress": text("Glance: the user's Glance Address."),
                    "domain": text("NetSapiens: the domain the user is in."),
                    "user": text("NetSapiens: the extension."),
                    "user_name": text("ClientToolbox: the user_name as sent."),
                    "identity": text("The vendor identity the job asked for, when it could be read: Glance PartnerUserID, NetSapiens user@domain, ClientToolbox user_name as sent. What the ledger links to the person."),
                    "identity_extra": text("A second identifying value the vendor keeps unique (Glance UserAddress), when there is one."),
                    "person": {"type": "object", "properties": {"tenant": {"type": "string"}, "employee_id": {"type": "string"}},
                        "required": ["tenant", "employee_id"], "additionalProperties": false,
                        "description": "The job's person (tenant \"\" when it named none), when it named one."},
                },
                "required": ["job_id", "correlation_id", "vendor", "account", "outcome", "attempts"],
                "if": {"properties": {"outcome": {"const": "failed"}}},
                "then": {"required": ["error"]},
                "else": {"required": ["vendor_user_id"]},
                "additionalProperties": true,
                "description": "A success carries vendor_user_id and whatever else the vendor returned that matters (per vendor below; more may be added). A failure carries error.",
            },
            "Error": {
                "type": "object",
                "properties": {
                    "class": {"enum": crate::outcome::ErrorClass::ALL.map(crate::outcome::ErrorClass::as_str),
                        "description": "Who acts: invalid and rejected the producer, conflict a person, auth the operator, unavailable a replay later."},
                    "code": {"type": "string", "maxLength": 128, "description": "A short stable code, e.g. invalid_job, http_503."},
                    "message": {"type": "string", "description": "What went wrong, never a secret; at most 4096 bytes."},
                },
                "required": ["class", "code", "message"],
                "additionalProperties": false,
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::outcome::ErrorClass;
    use crate::vendors::Receipt;

    /// The document as it was built before it was serialised directly: a `Value`.
    fn as_a_value(source: &str, job: &JobRef<'_>, outcome: &Outcome, attempts: u32, id: &str, time: &str) -> Value {
        let mut data = Map::new();
        data.insert("job_id".into(), json!(job.job_id));
        data.insert("correlation_id".into(), json!(job.correlation_id));
        data.insert("vendor".into(), json!(job.vendor));
        data.insert("account".into(), json!(job.account));
        data.insert("outcome".into(), json!(outcome.name()));
        data.insert("attempts".into(), json!(attempts));
        if let Some(i) = job.identity {
            data.insert("identity".into(), json!(i));
        }
        if let Some(i) = job.identity_extra {
            data.insert("identity_extra".into(), json!(i));
        }
        if let Some(p) = job.person {
            data.insert("person".into(), json!({"tenant": p.tenant, "employee_id": p.employee_id}));
        }
        if let Some(k) = job.kind {
            data.insert("kind".into(), json!(k.as_str()));
        }
        match outcome {
            Outcome::Failed(f) => {
                data.insert("error".into(), json!({"class": f.class, "code": f.code, "message": f.message}));
            }
            success => {
                let r = success.receipt().expect("a success has a receipt");
                data.insert("vendor_user_id".into(), json!(r.vendor_user_id));
                for (k, v) in &r.details {
                    data.insert(k.clone(), v.clone());
                }
            }
        }
        let mut event = json!({
            "specversion": "1.0", "id": id, "source": source,
            "type": format!("{TYPE_PREFIX}{}", outcome.name()), "subject": job.job_id, "time": time,
            "datacontenttype": "application/json", "data": Value::Object(data),
        });
        if let Some(tp) = job.traceparent {
            event["traceparent"] = json!(tp);
        }
        event
    }

    #[test]
    fn the_bytes_are_those_of_the_value_document() {
        let mut details = Map::new();
        details.insert("dialIn".into(), json!("1 (555) 010-2030"));
        details.insert("audio".into(), json!({"participantCode": 7}));
        details.insert("zone".into(), json!(["a", "b"]));
        // A detail named like a fixed member replaces it.
        details.insert("vendor".into(), json!("glance-eu"));
        let receipt = Receipt { existing: true, vendor_user_id: None, details };
        let bare = JobRef {
            job_id: "j\"1",
            vendor: None,
            account: None,
            correlation_id: None,
            traceparent: None,
            identity: None,
            identity_extra: None,
            person: None,
            kind: None,
        };
        let failed = Outcome::Failed(Failure::new(ErrorClass::Conflict, "taken", "held by \"someone\" else"));
        for (job, outcome) in [
            (job(), Outcome::Existing(receipt.clone())),
            (bare.clone(), Outcome::Created(Receipt { details: Map::new(), ..receipt })),
            (job(), failed.clone()),
            (JobRef { kind: Some(JobKind::SuspendUser), ..job() }, Outcome::Unchanged(Receipt::default())),
            (bare, failed),
        ] {
            let event = Event::new("urn:test", &job, &outcome, 3, Utc::now());
            let expected = as_a_value("urn:test", &job, &outcome, 3, &event.id, &event.time);
            assert_eq!(String::from_utf8(event.to_vec()).unwrap(), expected.to_string());
        }
    }

    fn job() -> JobRef<'static> {
        JobRef {
            job_id: "hire-1-glance",
            vendor: Some(VendorKey::Glance),
            account: Some("acme"),
            correlation_id: Some("hire-1"),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            identity: Some("EMP-1"),
            identity_extra: Some("jdoe.acme.glance.net"),
            person: Some(&PERSON),
            kind: Some(JobKind::CreateUser),
        }
    }

    static PERSON: std::sync::LazyLock<Person> =
        std::sync::LazyLock::new(|| Person { tenant: "acme".into(), employee_id: "000731".into() });

    fn build(source: &str, job: &JobRef<'_>, outcome: &Outcome, attempts: u32, now: DateTime<Utc>) -> Value {
        serde_json::to_value(Event::new(source, job, outcome, attempts, now)).unwrap()
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

    #[test]
    fn a_lifecycle_outcome_is_its_own_type_and_routing_key_and_names_the_kind() {
        let job = JobRef { kind: Some(JobKind::SuspendUser), ..job() };
        let outcome = Outcome::from_receipt(JobKind::SuspendUser, Receipt::default());
        let e = build("urn:test", &job, &outcome, 1, Utc::now());
        assert_eq!(e["type"], "provisioning.user.suspended");
        assert_eq!(e["data"]["outcome"], "suspended");
        assert_eq!(e["data"]["kind"], "suspend_user");
        assert_eq!(routing_key(&outcome, Some(VendorKey::Netsapiens)), "user.suspended.netsapiens");
        let again = Outcome::from_receipt(JobKind::SuspendUser, Receipt { existing: true, ..Receipt::default() });
        assert_eq!(routing_key(&again, Some(VendorKey::Netsapiens)), "user.unchanged.netsapiens");
    }
}
