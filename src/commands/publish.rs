//! `provisioner publish FILE`: validates each job of an NDJSON (or JSON array) file and
//! publishes the valid ones with publisher confirms, reporting each.

use serde::Serialize;

use crate::commands::validate;
use crate::config::Settings;
use crate::contract::FieldError;
use crate::transport::rabbitmq::{self, BrokerError, ConfirmPublisher};
use crate::transport::{Outbound, OutboundKind, Publisher};

/// One job's fate; with `--json`, one output line.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Published {
    pub index: usize,
    pub job_id: Option<String>,
    /// `published` (confirmed by the broker), `invalid` (not sent) or `failed` (not confirmed).
    pub status: &'static str,
    pub errors: Vec<FieldError>,
}

/// Publishes every valid job; invalid ones are reported and not sent. Stops at the first
/// publish the broker does not confirm, since the ones after it would likely fail too.
pub async fn publish(
    settings: &Settings,
    input: &str,
    mut report: impl FnMut(&Published),
) -> Result<bool, BrokerError> {
    let verdicts = validate::check(input, Some(settings));
    let jobs = validate::split_jobs(input);
    let conn = rabbitmq::connect(settings).await?;
    let publisher = ConfirmPublisher::new(rabbitmq::confirm_channel(&conn).await?);
    let mut all_ok = true;
    for (verdict, job) in verdicts.into_iter().zip(jobs) {
        let line = match job {
            Ok(job) if verdict.valid => {
                let vendor = job["vendor"].as_str().unwrap_or_default();
                // A valid job's kind, when it names one, is a known kind.
                let kind = job["kind"].as_str().unwrap_or(crate::contract::JobKind::CreateUser.as_str());
                let msg = Outbound {
                    kind: OutboundKind::Job,
                    exchange: settings.topology.jobs_exchange.clone(),
                    routing_key: format!("{kind}.{vendor}"),
                    body: serde_json::to_vec(&job).expect("a JSON value serialises"),
                    message_id: verdict.job_id.clone(),
                    content_type: Some("application/json".into()),
                    timestamp: Some(chrono::Utc::now().timestamp().max(0) as u64),
                    headers: Default::default(),
                };
                match publisher.publish(&msg).await {
                    Ok(()) => {
                        Published { index: verdict.index, job_id: verdict.job_id, status: "published", errors: vec![] }
                    }
                    Err(e) => {
                        all_ok = false;
                        report(&Published {
                            index: verdict.index,
                            job_id: verdict.job_id,
                            status: "failed",
                            errors: vec![FieldError::new("", e.to_string())],
                        });
                        break;
                    }
                }
            }
            _ => {
                all_ok = false;
                Published { index: verdict.index, job_id: verdict.job_id, status: "invalid", errors: verdict.errors }
            }
        };
        report(&line);
    }
    let _ = publisher.channel().close(200, "done".into()).await;
    let _ = conn.close(200, "done".into()).await;
    Ok(all_ok)
}
