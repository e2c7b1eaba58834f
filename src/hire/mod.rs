//! Hire events in: one hire becomes one create-user job per target vendor, derived by the
//! tenant's mapping, from the `provisioning.hr` queue or the HTTP intake.
//!
//! Both entrances share [`fan_out`]: decode the hire, derive every job (all of them valid, or
//! none), and hand back what to publish. The intake takes the two steps apart
//! ([`decode`], then [`fan_out_hire`]) to check in between that the caller's credential
//! admits the hire's tenant. Job ids are `{event_id}:{vendor}:{account}`, so a
//! hire seen twice yields the same jobs, which the adapters' idempotency turns into
//! `existing` rather than a second user.

pub mod consumer;
pub mod event;
pub mod intake;
pub mod mapping;
mod schema;
pub mod template;

use chrono::Utc;

pub use event::{decode, Hire, HireRejection};
pub use mapping::{DerivedJob, Mapper, MappingError};
pub use schema::hire_schema;

use crate::config::TopologySettings;
use crate::contract::FieldError;
use crate::transport::Outbound;

/// What a hire turns into.
#[derive(Debug)]
pub enum FanOut {
    /// Publish every message (each confirmed) before acknowledging the hire.
    Jobs { event_id: String, jobs: Vec<DerivedJob>, publish: Vec<Outbound> },
    /// Not a valid hire, or one that cannot produce a valid job everywhere: nothing is published.
    Rejected { event_id: Option<String>, undecodable: bool, errors: Vec<FieldError> },
}

/// Decodes and maps one hire body.
pub fn fan_out(mapper: &Mapper, topology: &TopologySettings, body: &[u8], traceparent: Option<&str>) -> FanOut {
    match decode(body) {
        Ok(hire) => fan_out_hire(mapper, topology, hire, traceparent),
        Err(rejection) => rejection.into(),
    }
}

/// Maps one decoded hire; the intake decides whether the caller may post it in between.
pub fn fan_out_hire(mapper: &Mapper, topology: &TopologySettings, hire: Hire, traceparent: Option<&str>) -> FanOut {
    match mapper.derive(&hire, Utc::now()) {
        Ok(jobs) => {
            let mut publish: Vec<_> = jobs.iter().map(|j| j.outbound(topology, traceparent)).collect();
            // Each job's history starts here: a `published` step event per derived job,
            // confirmed with the jobs before the hire is acked.
            publish.extend(jobs.iter().map(|j| published(mapper, topology, &hire, &j.job, traceparent)));
            FanOut::Jobs { event_id: hire.event_id, jobs, publish }
        }
        Err(errors) => FanOut::Rejected { event_id: Some(hire.event_id), undecodable: false, errors },
    }
}

/// The `provisioning.job.published` event of one derived job.
fn published(
    mapper: &Mapper,
    topology: &TopologySettings,
    hire: &Hire,
    job: &crate::contract::Job,
    traceparent: Option<&str>,
) -> crate::transport::Outbound {
    let about = crate::event::StepOf {
        job_id: job.id.as_str(),
        vendor: Some(job.vendor),
        account: Some(job.account.as_str()),
        correlation_id: job.correlation_id.as_deref(),
        person: job.person.as_ref(),
    };
    let data = serde_json::json!({"hire": hire.event_id, "routing_key": crate::contract::Job::routing_key(job.vendor)});
    let now = Utc::now();
    let (id, body) = crate::event::step(mapper.event_source(), "published", &about, traceparent, data, now);
    let mut headers = crate::transport::Headers::new();
    if let Some(tp) = traceparent {
        crate::transport::headers::set_text(&mut headers, crate::transport::headers::TRACEPARENT, tp);
    }
    crate::transport::Outbound {
        kind: crate::transport::OutboundKind::Event,
        exchange: topology.events_exchange.clone(),
        routing_key: crate::event::step_routing_key("published", Some(job.vendor)),
        body,
        message_id: Some(id),
        content_type: Some("application/cloudevents+json".into()),
        timestamp: Some(now.timestamp().max(0) as u64),
        headers,
    }
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
