//! The person-event consumer: `provisioning.hr` → derived jobs, published with confirms to
//! the jobs exchange, then the event is acked; an invalid event is dead-lettered with its
//! reasons, and one that must wait (a leave effective later, the ledger not answering)
//! waits in a `<hr_queue>.wait.<delay>` queue, in the broker.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use lapin::{Channel, Connection};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{fan_out, FanOut, Mapper};
use crate::config::{ConfigError, Settings, TopologySettings};
use crate::ledger::Ledger;
use crate::outcome::ErrorClass;
use crate::transport::headers as h;
use crate::transport::rabbitmq::{self, BrokerError, ConfirmPublisher, DeliveryAcker};
use crate::transport::{settle, After, DeadLetterCause, Disposition, Inbound, Outbound, OutboundKind, Report, Settled};

/// What to do with one person-event delivery, asking `ledger` for the person's links when
/// the event needs them. [`settle`] carries it out.
///
/// The `report` is informational only; the job metrics are recorded by the jobs' own
/// consumers once they run.
pub async fn disposition(
    mapper: &Mapper,
    topology: &TopologySettings,
    ledger: Option<&Ledger>,
    msg: &Inbound,
    now: DateTime<Utc>,
) -> Disposition {
    // An event never comes back from the service's own machinery with provisioner-* headers:
    // every one on it was set by its producer, and must not reach a dead letter as ours.
    let cleaned;
    let msg = match h::without_producer_set(&msg.headers) {
        Some(headers) => {
            cleaned = Inbound { headers, ..msg.clone() };
            &cleaned
        }
        None => msg,
    };
    let quiet = |publish, outcome, job_id| Disposition {
        publish,
        after: After::Ack,
        report: Report::Terminal { outcome, class: None, dead_lettered: false },
        vendor: None,
        job_id,
        inline_retries: 0,
        requested_at: None,
    };
    match fan_out(mapper, topology, ledger, &msg.body, h::traceparent(&msg.headers), now).await {
        FanOut::Jobs { event_id, jobs, publish } => {
            tracing::info!(event_id, jobs = jobs.len(), "person event fanned out");
            quiet(publish, "fanned_out", Some(event_id))
        }
        FanOut::Wait { event_id, until } => {
            let remaining = (until - now).to_std().unwrap_or_default();
            let wait = TopologySettings::hr_wait_for(remaining);
            tracing::info!(event_id, %until, wait = %humantime::format_duration(wait), "leave effective later; waiting in the broker");
            quiet(vec![wait_in(topology, msg, wait)], "waiting", Some(event_id))
        }
        FanOut::LedgerDown { event_id, why } => {
            let wait = TopologySettings::HR_WAITS[0];
            tracing::warn!(event_id, error = %why, "the ledger did not answer; the person event waits and comes back");
            quiet(vec![wait_in(topology, msg, wait)], "waiting", Some(event_id))
        }
        FanOut::Rejected { event_id, undecodable, errors } => {
            let summary = super::event::summary(&errors);
            tracing::warn!(event_id = event_id.as_deref(), errors = %summary, "invalid person event dead-lettered");
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

/// The event as it came, to wait `wait` in its queue (through the default exchange) and
/// come back to the person-event exchange when it expires.
fn wait_in(topology: &TopologySettings, msg: &Inbound, wait: std::time::Duration) -> Outbound {
    let mut out = msg.forward(OutboundKind::Retry, "", msg.headers.clone());
    out.routing_key = topology.hr_wait_queue(wait);
    out
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
    ledger: Option<Ledger>,
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
            let ledger = ledger.clone();
            // Prefetch bounds how many of these run at once.
            tasks.spawn(async move {
                let msg = rabbitmq::inbound(&delivery);
                let d = disposition(&mapper, &topology, ledger.as_ref(), &msg, Utc::now()).await;
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
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(jobs_of_async(traceparent))
    }

    async fn jobs_of_async(traceparent: &str) -> Vec<Outbound> {
        let settings = settings();
        let mapper = Mapper::new(&settings).unwrap();
        let mut headers = Headers::new();
        h::set_text(&mut headers, h::TRACEPARENT, traceparent);
        let body = serde_json::json!({"event_id": "evt-1", "type": "hire", "tenant": "acme",
            "employee": {"id": "1", "first_name": "Jane", "last_name": "Doe",
                         "email": "jane.doe@acme.example", "extension": "1731"}});
        let msg = Inbound { body: body.to_string().into_bytes(), headers, ..Default::default() };
        // The jobs, without the `published` step events that follow them.
        disposition(&mapper, &settings.topology, None, &msg, Utc::now())
            .await
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
