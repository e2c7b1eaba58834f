//! The hire-event consumer: `provisioning.hr` → derived jobs, published with confirms to the
//! jobs exchange, then the hire is acked; an invalid hire is dead-lettered with its reasons.

use std::sync::Arc;

use lapin::{Channel, Connection};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{fan_out, FanOut, Mapper};
use crate::config::{ConfigError, Settings, TopologySettings};
use crate::outcome::ErrorClass;
use crate::transport::headers as h;
use crate::transport::rabbitmq::{self, BrokerError, ConfirmPublisher, DeliveryAcker};
use crate::transport::{settle, After, DeadLetterCause, Disposition, Inbound, Outbound, Report, Settled};

/// What to do with one hire delivery. Pure: [`settle`] carries it out.
///
/// The `report` is informational only; the job metrics are recorded by the jobs' own
/// consumers once they run.
pub fn disposition(mapper: &Mapper, topology: &TopologySettings, msg: &Inbound) -> Disposition {
    // A hire never comes back from the service's own machinery: every provisioner-* header
    // on it was set by its producer, and must not reach a dead letter as if it were ours.
    let cleaned;
    let msg = match h::without_producer_set(&msg.headers) {
        Some(headers) => {
            cleaned = Inbound { headers, ..msg.clone() };
            &cleaned
        }
        None => msg,
    };
    match fan_out(mapper, topology, &msg.body, h::traceparent(&msg.headers)) {
        FanOut::Jobs { event_id, jobs, publish } => {
            tracing::info!(event_id, jobs = jobs.len(), "hire fanned out");
            Disposition {
                publish,
                after: After::Ack,
                report: Report::Terminal { outcome: "fanned_out", class: None, dead_lettered: false },
                vendor: None,
                job_id: Some(event_id),
                inline_retries: 0,
                requested_at: None,
            }
        }
        FanOut::Rejected { event_id, undecodable, errors } => {
            let summary = super::event::summary(&errors);
            tracing::warn!(event_id = event_id.as_deref(), errors = %summary, "invalid hire dead-lettered");
            let reason = if undecodable { "undecodable" } else { "invalid" };
            Disposition {
                publish: vec![dead_letter(topology, msg, reason, &summary, event_id.as_deref())],
                after: After::Ack,
                report: Report::Terminal { outcome: "failed", class: Some(ErrorClass::Invalid), dead_lettered: true },
                vendor: None,
                job_id: event_id,
                inline_retries: 0,
                requested_at: None,
            }
        }
    }
}

/// The hire as it came, with the DLQ headers every dead letter carries.
fn dead_letter(
    topology: &TopologySettings,
    msg: &Inbound,
    reason: &str,
    summary: &str,
    event_id: Option<&str>,
) -> Outbound {
    let cause = DeadLetterCause {
        reason,
        code: "invalid_hire",
        message: summary.chars().take(1024).collect(),
        job_id: event_id,
        ..Default::default()
    };
    msg.dead_letter(topology.dead_exchange.clone(), cause)
}

/// Starts consuming `topology.hr_queue` on a channel of its own; returns the channel and
/// the consumer tag so the worker can cancel it like its vendor consumers. Each delivery is
/// a task on `tasks`, so the worker's drain waits for hires in flight too.
pub async fn start(
    conn: &Connection,
    settings: &Settings,
    publisher: ConfirmPublisher,
    stop: &CancellationToken,
    lost: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<(Channel, String), BrokerError> {
    let mapper = Arc::new(
        Mapper::new(settings)
            .map_err(|e| BrokerError::Config(ConfigError::Invalid { key: e.key, message: e.message }))?,
    );
    let (channel, mut consumer, tag) =
        rabbitmq::consume(conn, settings, &settings.topology.hr_queue, settings.hire.prefetch, "hr").await?;
    let (stop, lost, tasks) = (stop.clone(), lost.clone(), tasks.clone());
    let topology = settings.topology.clone();
    let requeue_delay = settings.worker.publish_failure_delay;
    let consuming = channel.clone();
    tokio::spawn(async move {
        loop {
            let Some(delivery) = rabbitmq::next_delivery(&consuming, &mut consumer, &stop, &lost, "hr").await else {
                break;
            };
            let (mapper, topology, publisher) = (mapper.clone(), topology.clone(), publisher.clone());
            // Prefetch bounds how many of these run at once.
            tasks.spawn(async move {
                let msg = rabbitmq::inbound(&delivery);
                let d = disposition(&mapper, &topology, &msg);
                match settle(&publisher, DeliveryAcker(delivery.acker), &d, requeue_delay).await {
                    Settled::Acked | Settled::Requeued => {}
                    Settled::PublishFailed(_, e) => {
                        tracing::warn!(event_id = d.job_id.as_deref(), error = %e, "a derived job was not confirmed; hire requeued");
                    }
                    Settled::AckFailed(e) => {
                        tracing::warn!(event_id = d.job_id.as_deref(), error = %e, "hire ack failed; the broker will redeliver");
                    }
                }
            });
        }
    });
    Ok((channel, tag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hire::mapping::testing::settings;
    use crate::transport::Headers;

    fn jobs_of(traceparent: &str) -> Vec<Outbound> {
        let settings = settings();
        let mapper = Mapper::new(&settings).unwrap();
        let mut headers = Headers::new();
        h::set_text(&mut headers, h::TRACEPARENT, traceparent);
        let body = serde_json::json!({"event_id": "evt-1", "type": "hire", "tenant": "acme",
            "employee": {"id": "1", "first_name": "Jane", "last_name": "Doe",
                         "email": "jane.doe@acme.example", "extension": "1731"}});
        let msg = Inbound { body: body.to_string().into_bytes(), headers, ..Default::default() };
        // The jobs, without the `published` step events that follow them.
        disposition(&mapper, &settings.topology, &msg)
            .publish
            .into_iter()
            .filter(|m| m.kind == crate::transport::OutboundKind::Job)
            .collect()
    }

    #[test]
    fn only_a_w3c_traceparent_is_carried_onto_the_derived_jobs() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let jobs = jobs_of(valid);
        assert_eq!(jobs.len(), 3);
        assert!(jobs.iter().all(|j| h::text(&j.headers, h::TRACEPARENT) == Some(valid)));
        let jobs = jobs_of(&"x".repeat(8 * 1024));
        assert_eq!(jobs.len(), 3);
        assert!(jobs.iter().all(|j| j.headers.is_empty()), "an 8 KB traceparent is dropped, not carried");
    }
}
