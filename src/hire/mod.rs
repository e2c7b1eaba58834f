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
            let publish = jobs.iter().map(|j| j.outbound(topology, traceparent)).collect();
            FanOut::Jobs { event_id: hire.event_id, jobs, publish }
        }
        Err(errors) => FanOut::Rejected { event_id: Some(hire.event_id), undecodable: false, errors },
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
