//! What the in-memory demo's broker published, read back: one row per outcome, the totals, and the ledger's projection of it all.

use crate::config::TopologySettings;
use crate::contract::Job;
use crate::ledger::Ledger;
use crate::transport::headers as h;
use crate::transport::{Inbound, Outbound, OutboundKind};

/// One terminal event (or an undecodable dead letter), as the demo's table shows it.
#[derive(Debug, PartialEq, Eq)]
pub struct Row {
    pub job_id: String,
    pub vendor: String,
    pub outcome: String,
    pub detail: String,
}

/// The outcomes of what was published to the events exchange and the DLQ, counted and one
/// row each.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub created: usize,
    pub existing: usize,
    pub failed: usize,
    pub rows: Vec<Row>,
}

/// Reads the outcome events and the undecodable dead letters back.
pub fn tally(events: &[Outbound], dead: &[Outbound]) -> Tally {
    let mut s = Tally::default();
    // Outcomes only: step events (`job.parked.*`) tell the history, not the result.
    for e in events.iter().filter(|e| e.routing_key.starts_with("user.")) {
        let body: serde_json::Value = serde_json::from_slice(&e.body).unwrap_or_default();
        let data = &body["data"];
        let outcome = data["outcome"].as_str().unwrap_or("?").to_owned();
        match outcome.as_str() {
            "created" => s.created += 1,
            "existing" => s.existing += 1,
            "failed" => s.failed += 1,
            _ => {}
        }
        let detail = match outcome.as_str() {
            "failed" => format!(
                "{}: {}",
                data["error"]["class"].as_str().unwrap_or("?"),
                data["error"]["message"].as_str().unwrap_or("")
            ),
            _ => {
                format!("vendor id {}, {} attempt(s)", data["vendor_user_id"].as_str().unwrap_or("-"), data["attempts"])
            }
        };
        s.rows.push(Row {
            job_id: data["job_id"].as_str().unwrap_or("?").to_owned(),
            vendor: data["vendor"].as_str().unwrap_or("?").to_owned(),
            outcome,
            detail,
        });
    }
    for d in dead.iter().filter(|d| h::text(&d.headers, h::REASON) == Some("undecodable")) {
        s.rows.push(Row {
            job_id: "(none)".into(),
            vendor: Job::vendor_of_routing_key(&d.routing_key).map_or("?", |v| v.as_str()).to_owned(),
            outcome: "dead-lettered".into(),
            detail: format!("undecodable: {}", h::text(&d.headers, h::ERROR_MESSAGE).unwrap_or("")),
        });
    }
    s
}

/// What the RabbitMQ worker's projection does from its queue: events and dead letters into
/// the ledger.
pub async fn project<'a>(
    ledger: &Ledger,
    topology: &TopologySettings,
    messages: impl Iterator<Item = &'a Outbound>,
) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    for out in messages {
        let msg = Inbound {
            body: out.body.clone(),
            exchange: if out.kind == OutboundKind::DeadLetter {
                topology.dead_exchange.clone()
            } else {
                out.exchange.clone()
            },
            routing_key: out.routing_key.clone(),
            message_id: out.message_id.clone(),
            timestamp: out.timestamp,
            headers: out.headers.clone(),
            ..Default::default()
        };
        if let crate::projection::Interpreted::Writes { writes, .. } = crate::projection::interpret(&msg, topology, now)
        {
            ledger.apply(&writes).await?;
        }
    }
    Ok(())
}
