//! `provisioner map`: previews the jobs a hire event would produce, and their validation,
//! without publishing anything.

use serde::Serialize;
use serde_json::Value;

use super::terminal::{self, printable};
use crate::config::Settings;
use crate::contract::FieldError;
use crate::hire::{decode, fan_out_hire, FanOut, Mapper, MappingError, PersonEvent};

/// What a hire would do. Secrets in the jobs are redacted.
#[derive(Debug, Serialize)]
pub struct Preview {
    pub event_id: Option<String>,
    pub valid: bool,
    /// Each job as it would be published (secrets as `***`), with its routing key.
    pub jobs: Vec<PreviewJob>,
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Serialize)]
pub struct PreviewJob {
    pub routing_key: String,
    pub job: Value,
}

pub fn preview(settings: &Settings, body: &[u8]) -> Result<Preview, MappingError> {
    let mapper = Mapper::new(settings)?;
    // An update, leave or rehire acts on the accounts the person holds, which only the
    // running service's ledger knows: only a hire can be previewed from the config alone.
    let fan_out = match decode(body) {
        Ok(PersonEvent::Hire(hire)) if !hire.rehire => fan_out_hire(&mapper, &settings.topology, hire, None),
        Ok(other) => FanOut::Rejected {
            event_id: Some(other.event_id().to_owned()),
            undecodable: false,
            errors: vec![FieldError::new(
                "type",
                format!("map previews hires only; a {} depends on the accounts the ledger links", other.type_name()),
            )],
        },
        Err(rejection) => rejection.into(),
    };
    Ok(match fan_out {
        FanOut::Jobs { event_id, jobs, publish } => Preview {
            event_id: Some(event_id),
            valid: true,
            jobs: jobs
                .iter()
                .zip(&publish)
                .map(|(j, m)| PreviewJob { routing_key: m.routing_key.clone(), job: j.redacted() })
                .collect(),
            errors: Vec::new(),
        },
        FanOut::Rejected { event_id, errors, .. } => Preview { event_id, valid: false, jobs: Vec::new(), errors },
        FanOut::Wait { .. } | FanOut::LedgerDown { .. } => unreachable!("a hire neither waits nor asks the ledger"),
    })
}

/// Human-readable form: one block per job, or one line per error.
pub fn print(p: &Preview, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let id = printable(p.event_id.as_deref().unwrap_or("?"));
    if p.valid {
        writeln!(out, "hire {id}: valid; would publish {} job(s) (nothing was published)", p.jobs.len())?;
        for j in &p.jobs {
            writeln!(out, "\n{} {}", printable(&j.routing_key), printable(j.job["job_id"].as_str().unwrap_or("?")))?;
            writeln!(out, "{}", terminal::json(&j.job, true))?;
        }
    } else {
        writeln!(out, "hire {id}: invalid; no job would be published")?;
        for e in &p.errors {
            writeln!(
                out,
                "  {}: {}",
                if e.field.is_empty() { "(body)".into() } else { printable(&e.field) },
                printable(&e.message)
            )?;
        }
    }
    Ok(())
}
