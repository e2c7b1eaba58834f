//! `provisioner map`: previews the jobs a hire event would produce, and their validation,
//! without publishing anything.

use serde::Serialize;
use serde_json::Value;

use super::terminal::{self, printable};
use crate::config::Settings;
use crate::contract::FieldError;
use crate::hire::{fan_out, FanOut, Mapper, MappingError};

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
    Ok(match fan_out(&mapper, &settings.topology, body, None) {
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
