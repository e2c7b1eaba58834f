//! Person events in (hire, update, leave, rehire): each becomes jobs for the accounts it
//! concerns, from the `provisioning.hr` queue or the HTTP intake.
//!
//! A hire (and a rehire's creates) needs only the tenant's mapping; an update, a leave and
//! a rehire's restores act on the accounts the person holds, which the ledger's links say.
//! Every derivation is all or nothing, and every job id is `{event_id}:{vendor}:{account}`,
//! so an event seen twice yields the same jobs, which the adapters' idempotency turns into
//! `existing` or `unchanged` rather than a second action.

pub mod consumer;
pub mod event;
pub mod intake;
pub mod lifecycle;
pub mod mapping;
mod schema;
pub mod template;

use chrono::{DateTime, Utc};

pub use event::{decode, Hire, HireRejection, Leave, PersonEvent, Update};
pub use mapping::{DerivedJob, Mapper, MappingError};
pub use schema::hire_schema;

use crate::config::TopologySettings;
use crate::contract::FieldError;
use crate::ledger::Ledger;
use crate::transport::Outbound;

/// What a person event turns into.
#[derive(Debug)]
pub enum FanOut {
    /// Publish every message (each confirmed) before acknowledging the event. `jobs` may be
    /// empty (a leave of someone who holds nothing): `publish` then carries the event that
    /// says so.
    Jobs { event_id: String, jobs: Vec<DerivedJob>, publish: Vec<Outbound> },
    /// Not a valid event, or one that cannot produce a valid job everywhere: nothing is published.
    Rejected { event_id: Option<String>, undecodable: bool, errors: Vec<FieldError> },
    /// A leave effective later: it waits in the broker until `until`.
    Wait { event_id: String, until: DateTime<Utc> },
    /// The event needs the person's links and the ledger did not answer: try again later.
    LedgerDown { event_id: String, why: String },
}

/// Decodes and maps one person event body, asking `ledger` for the person's links when the
/// event needs them.
pub async fn fan_out(
    mapper: &Mapper,
    topology: &TopologySettings,
    ledger: Option<&Ledger>,
    body: &[u8],
    traceparent: Option<&str>,
    now: DateTime<Utc>,
) -> FanOut {
    match decode(body) {
        Ok(event) => fan_out_event(mapper, topology, ledger, event, traceparent, now).await,
        Err(rejection) => rejection.into(),
    }
}

/// Maps one decoded person event.
pub async fn fan_out_event(
    mapper: &Mapper,
    topology: &TopologySettings,
    ledger: Option<&Ledger>,
    event: PersonEvent,
    traceparent: Option<&str>,
    now: DateTime<Utc>,
) -> FanOut {
    let event_id = event.event_id().to_owned();
    if let PersonEvent::Hire(hire) = &event {
        if !hire.rehire {
            return fan_out_hire(mapper, topology, hire.clone(), traceparent);
        }
    }
    if let PersonEvent::Leave(Leave { effective_at: Some(at), .. }) = &event {
        if *at > now {
            return FanOut::Wait { event_id, until: *at };
        }
    }
    let Some(ledger) = ledger else {
        let message = format!(
            "a {} acts on the accounts the person holds, which only the ledger knows: enable ledger.enabled",
            event.type_name()
        );
        return FanOut::Rejected {
            event_id: Some(event_id),
            undecodable: false,
            errors: vec![FieldError::new("type", message)],
        };
    };
    let (tenant, employee_id) = match &event {
        PersonEvent::Hire(h) => (&h.tenant, &h.employee.id),
        PersonEvent::Update(u) => (&u.tenant, &u.employee_id),
        PersonEvent::Leave(l) => (&l.tenant, &l.employee_id),
    };
    let person = crate::contract::Person { tenant: tenant.clone(), employee_id: employee_id.clone() };
    let links = match ledger.links_of(&person).await {
        Ok(links) => links,
        Err(e) => return FanOut::LedgerDown { event_id, why: e.to_string() },
    };
    let derived = match &event {
        PersonEvent::Hire(h) => mapper.derive_rehire(h, &links, now),
        PersonEvent::Update(u) => mapper.derive_update(u, &links, now),
        PersonEvent::Leave(l) => mapper.derive_leave(l, &links, now),
    };
    match derived {
        Ok(derived) => {
            let mut publish: Vec<_> = derived.jobs.iter().map(|j| j.outbound(topology, traceparent)).collect();
            publish.extend(derived.jobs.iter().map(|j| published(mapper, topology, &event_id, &j.job, traceparent)));
            if !derived.notes.is_empty() {
                publish.push(noted(mapper, topology, &event, &person, &derived, traceparent));
            }
            FanOut::Jobs { event_id, jobs: derived.jobs, publish }
        }
        Err(errors) => FanOut::Rejected { event_id: Some(event_id), undecodable: false, errors },
    }
}

/// Maps one decoded hire; the intake decides whether the caller may post it in between.
pub fn fan_out_hire(mapper: &Mapper, topology: &TopologySettings, hire: Hire, traceparent: Option<&str>) -> FanOut {
    match mapper.derive(&hire, Utc::now()) {
        Ok(jobs) => {
            let mut publish: Vec<_> = jobs.iter().map(|j| j.outbound(topology, traceparent)).collect();
            // Each job's history starts here: a `published` step event per derived job,
            // confirmed with the jobs before the hire is acked.
            publish.extend(jobs.iter().map(|j| published(mapper, topology, &hire.event_id, &j.job, traceparent)));
            FanOut::Jobs { event_id: hire.event_id, jobs, publish }
        }
        Err(errors) => FanOut::Rejected { event_id: Some(hire.event_id), undecodable: false, errors },
    }
}

/// The `provisioning.job.noted` event of a person event that found something it did not
/// act on (a leave of someone who holds nothing, an identity that is never renamed): its
/// history says so, under the event's id.
fn noted(
    mapper: &Mapper,
    topology: &TopologySettings,
    event: &PersonEvent,
    person: &crate::contract::Person,
    derived: &lifecycle::Derived,
    traceparent: Option<&str>,
) -> Outbound {
    let about = crate::event::StepOf {
        job_id: event.event_id(),
        vendor: None,
        account: None,
        correlation_id: Some(event.event_id()),
        person: Some(person),
    };
    let data = serde_json::json!({"event": event.type_name(), "jobs": derived.jobs.len(), "notes": derived.notes});
    let (source, exchange) = (mapper.event_source(), &topology.events_exchange);
    crate::event::step_message(source, exchange, "noted", &about, traceparent, data, Utc::now())
}

/// The `provisioning.job.published` event of one derived job.
fn published(
    mapper: &Mapper,
    topology: &TopologySettings,
    event_id: &str,
    job: &crate::contract::Job,
    traceparent: Option<&str>,
) -> Outbound {
    let about = crate::event::StepOf {
        job_id: job.id.as_str(),
        vendor: Some(job.vendor),
        account: Some(job.account.as_str()),
        correlation_id: job.correlation_id.as_deref(),
        person: job.person.as_ref(),
    };
    let data = serde_json::json!({"hire": event_id, "routing_key": job.kind.routing_key(job.vendor)});
    let (source, exchange) = (mapper.event_source(), &topology.events_exchange);
    crate::event::step_message(source, exchange, "published", &about, traceparent, data, Utc::now())
}

impl From<HireRejection> for FanOut {
    fn from(rejection: HireRejection) -> Self {
        match rejection {
            HireRejection::Undecodable(m) => {
                FanOut::Rejected { event_id: None, undecodable: true, errors: vec![FieldError::new("", m)] }
            }
            HireRejection::Invalid { event_id, errors } => FanOut::Rejected { event_id, undecodable: false, errors },
        }
    }
}
