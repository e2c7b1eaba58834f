//! `provisioner held`: list, approve (release) and reject (drop) the removals the safeguard held.
//!
//! The walk is the `dlq` commands' [`QueueWalk`]: `basic.get` on a transactional channel,
//! each message held unacked while it is decided, everything not removed handed back in
//! order when the channel closes. An approve publishes the job to the jobs exchange,
//! its `approved` step and the held message's ack in ONE transaction, and a reject the
//! `rejected` step and the ack: a command killed at any instant has released (or dropped) a
//! job whole or not at all.
//!
//! A walk takes every message off the queue until it ends, which would make the queue read
//! as empty to the replicas, and empty means "not tripped". So each walk first publishes a
//! marker message to the queue and removes it last; a marker left by a killed command keeps
//! the account tripped until the next `held` command removes it.

use std::io::Write;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use lapin::Connection;
use serde::Serialize;
use serde_json::Value;

use crate::commands::dlq::{DlqError, Filter};
use crate::commands::queue_walk::{self, QueueWalk};
use crate::commands::terminal::{self, printable};
use crate::config::Settings;
use crate::contract::VendorKey;
use crate::transport::headers as h;
use crate::transport::rabbitmq;
use crate::transport::{HeaderValue, Headers, Inbound, Outbound, OutboundKind};

/// Marks the walk marker; never a job.
const MARKER: &str = "provisioner-held-marker";

/// Whether a held job meets the filter's conditions. Held jobs are filtered with the dlq
/// commands' [`Filter`]: its vendor and account pick the held queues to walk (and it has no
/// failure class to match), its job id and times are the held job's.
fn matches(filter: &Filter, j: &HeldJob) -> bool {
    filter.job_id.as_ref().is_none_or(|id| j.job_id.as_deref() == Some(id))
        && filter.since.is_none_or(|s| j.held_at.is_some_and(|t| t >= s))
        && filter.until.is_none_or(|u| j.held_at.is_some_and(|t| t < u))
}

/// A held job as it reads from its headers (and its body as a fallback).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HeldJob {
    pub job_id: Option<String>,
    pub vendor: Option<String>,
    pub account: String,
    pub kind: Option<String>,
    pub reason: Option<String>,
    pub held_at: Option<DateTime<Utc>>,
    /// Where `approve` publishes it.
    pub routing_key: String,
}

impl HeldJob {
    fn read(msg: &Inbound, account: &str) -> Self {
        let text = |name| h::text(&msg.headers, name).map(str::to_owned);
        let body: Option<Value> = serde_json::from_slice(&msg.body).ok();
        let from_body = |key: &str| body.as_ref().and_then(|b| b.get(key)).and_then(Value::as_str).map(str::to_owned);
        let routing_key = text(h::ORIGINAL_ROUTING_KEY).unwrap_or_else(|| msg.routing_key.clone());
        Self {
            job_id: text(h::JOB_ID).or_else(|| from_body("job_id")),
            vendor: text(h::VENDOR).or_else(|| from_body("vendor")),
            account: account.to_owned(),
            kind: crate::contract::Job::parse_routing_key(&routing_key).map(|(k, _)| k.to_string()),
            reason: text(h::HELD_REASON),
            held_at: text(h::HELD_AT)
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc)),
            routing_key,
        }
    }
}

/// What to do with the matching held jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Move {
    Approve,
    Reject,
}

impl Move {
    fn step(self) -> &'static str {
        match self {
            Move::Approve => "approved",
            Move::Reject => "rejected",
        }
    }
}

/// One `held` subcommand, already parsed.
#[derive(Debug)]
pub enum Action {
    List { filter: Filter, json: bool },
    Decide { filter: Filter, what: Move, dry_run: bool, json: bool, actor: String, reason: String },
}

/// One line of an approve or reject.
#[derive(Debug, Serialize)]
pub struct Line<'a> {
    pub job_id: Option<&'a str>,
    pub account: &'a str,
    pub action: &'static str,
}

/// A walk of one account's held queue, ended by a marker of its own.
struct Walk {
    queue: QueueWalk,
    /// The message id of this walk's marker.
    marker: String,
}

impl Walk {
    /// A walk of the account's held queue, with this walk's marker at its end.
    async fn open(conn: &Connection, settings: &Settings, account: &str) -> Result<Self, DlqError> {
        let queue = settings.topology.held_queue(account);
        let walk = QueueWalk::open(conn, queue.clone()).await?;
        let marker = format!("marker-{}", uuid::Uuid::new_v4().simple());
        let mut headers = Headers::new();
        h::set_text(&mut headers, MARKER, "1");
        let m = Outbound {
            kind: OutboundKind::Held,
            exchange: String::new(),
            routing_key: queue,
            body: Vec::new(),
            message_id: Some(marker.clone()),
            content_type: None,
            timestamp: None,
            headers,
        };
        walk.publish(&m, false).await?;
        walk.commit().await?;
        Ok(Self { queue: walk, marker })
    }

    /// Whether this delivery is this walk's own marker: the end of the walk.
    fn is_own_marker(&self, d: &lapin::message::Delivery) -> bool {
        d.properties.message_id().as_ref().map(|m| m.as_str()) == Some(self.marker.as_str())
    }
}

/// Publishes, in the walk's transaction, the `approved` or `rejected` step of a held job. An
/// approval is first written to `ledger` under the step's id: the worker lets a released job
/// pass the safeguard only once it finds the approval there, so a producer who sets the
/// approval header on a job of its own gets nothing by it.
async fn record(
    walk: &Walk,
    settings: &Settings,
    ledger: Option<&crate::ledger::Ledger>,
    msg: &Inbound,
    job: &HeldJob,
    step: &str,
    detail: Value,
) -> Result<(), DlqError> {
    let body: Option<Value> = serde_json::from_slice(&msg.body).ok();
    let correlation_id = body.as_ref().and_then(|b| b.get("correlation_id")).and_then(Value::as_str);
    let about = crate::event::StepOf {
        job_id: job.job_id.as_deref().unwrap_or("unknown"),
        vendor: job.vendor.as_deref().and_then(VendorKey::parse),
        account: Some(&job.account),
        correlation_id,
        person: None,
    };
    let now = Utc::now();
    let (source, exchange) = (&settings.events.source, &settings.topology.events_exchange);
    let event = crate::event::step_message(source, exchange, step, &about, None, detail.clone(), now);
    if let (Some(ledger), "approved", Some(id)) = (ledger, step, &event.message_id) {
        let entry = crate::ledger::HistoryEntry {
            // The projected step event has the same id: the ledger keeps one entry.
            entry_id: id.clone(),
            at: now.timestamp_millis(),
            kind: crate::ledger::HistoryKind::Approved,
            job_id: job.job_id.clone(),
            correlation_id: correlation_id.map(str::to_owned),
            person: None,
            vendor: about.vendor,
            account: Some(job.account.clone()),
            detail,
        };
        ledger
            .apply(&[crate::ledger::Write::History(entry)])
            .await
            .map_err(|e| DlqError::Usage(format!("the approval could not be recorded in the ledger: {e}")))?;
    }
    walk.queue.publish(&event, false).await?;
    Ok(())
}

/// The job as `approve` releases it: body and headers kept, the held headers gone, and the
/// operator's approval in `provisioner-approved` so the safeguard lets it pass uncounted.
fn released(msg: &Inbound, job: &HeldJob, settings: &Settings, actor: &str, reason: &str) -> Outbound {
    let mut headers: Headers = msg
        .headers
        .iter()
        .filter(|(k, _)| !k.starts_with("provisioner-held-") && !k.starts_with("x-"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let audit = serde_json::json!({"by": actor, "at": h::timestamp(Utc::now()), "reason": reason});
    headers.insert(h::APPROVED.to_owned(), HeaderValue::Text(audit.to_string()));
    Outbound {
        kind: OutboundKind::Job,
        exchange: settings.topology.jobs_exchange.clone(),
        routing_key: job.routing_key.clone(),
        body: msg.body.clone(),
        message_id: msg.message_id.clone().or_else(|| job.job_id.clone()),
        content_type: msg.content_type.clone().or_else(|| Some("application/json".into())),
        timestamp: msg.timestamp,
        headers,
    }
}

/// The accounts whose held queues the filter reaches.
fn accounts(settings: &Settings, filter: &Filter) -> Result<Vec<String>, DlqError> {
    if let Some(a) = &filter.account {
        if !settings.accounts.contains_key(a) {
            return Err(DlqError::Usage(format!("no account named {a:?} is configured")));
        }
    }
    Ok(settings
        .accounts
        .iter()
        .filter(|(name, a)| {
            filter.account.as_ref().is_none_or(|want| want == *name) && filter.vendor.is_none_or(|v| v == a.vendor)
        })
        .map(|(name, _)| name.clone())
        .collect())
}

/// Runs one `held` action over every account's held queue the filter reaches.
pub async fn execute(settings: Settings, action: Action, mut out: impl Write) -> Result<ExitCode, DlqError> {
    let filter = match &action {
        Action::List { filter, .. } | Action::Decide { filter, .. } => filter.clone(),
    };
    let mut matched = 0usize;
    // Held jobs an approve left held because they could not be released.
    let mut refused = 0usize;
    if let Action::List { json: false, .. } = action {
        writeln!(
            out,
            "{:<28} {:<13} {:<20} {:<12} {:<19}  REASON",
            "JOB_ID", "VENDOR", "ACCOUNT", "KIND", "HELD_AT (UTC)"
        )?;
    }
    let accounts = accounts(&settings, &filter)?;
    // An approval is recorded in the ledger, where the worker checks it.
    let ledger = match &action {
        Action::Decide { what: Move::Approve, dry_run: false, .. } => {
            let ledger = crate::ledger::from_settings(&settings.ledger)
                .map_err(|e| DlqError::Usage(format!("the ledger could not be opened: {e}")))?;
            if ledger.is_none() {
                return Err(DlqError::Usage(
                    "approving needs the ledger (ledger.enabled): the worker releases a held job only once it finds \
                     the approval there. Without it, reject the jobs and send them again once the safeguard allows"
                        .into(),
                ));
            }
            ledger
        }
        _ => None,
    };
    let conn = queue_walk::connect(&settings).await?;
    for account in accounts {
        let walk = Walk::open(&conn, &settings, &account).await?;
        let mut result = Ok(());
        // Messages taken and not removed: they go back when the walk closes.
        let mut kept = 0u32;
        // The walk ends at its own marker: jobs held after it started are left for the next.
        loop {
            let d = match walk.queue.next().await {
                Ok(Some(d)) => d,
                // The marker is gone (another command took it): the queue is walked.
                Ok(None) => break,
                Err(e) => {
                    result = Err(e.into());
                    break;
                }
            };
            let msg = rabbitmq::inbound(&d);
            if walk.is_own_marker(&d) || msg.headers.contains_key(MARKER) {
                // Ours ends the walk; another is one a killed command left behind.
                let own = walk.is_own_marker(&d);
                if let Err(e) = walk.queue.remove(&d).await {
                    result = Err(e.into());
                    break;
                }
                if own {
                    break;
                }
                continue;
            }
            let job = HeldJob::read(&msg, &account);
            kept += 1;
            if filter.full(matched) || !matches(&filter, &job) {
                continue;
            }
            matched += 1;
            let step = match &action {
                Action::List { json, .. } => {
                    print_row(&mut out, &job, *json)?;
                    continue;
                }
                // Anyone who can publish to the default exchange can put a message in a held
                // queue: one that names no job kind and vendor would be unroutable once
                // released, so it stays where it is for a person to look at.
                Action::Decide { what: Move::Approve, json, .. } if job.kind.is_none() => {
                    refused += 1;
                    print_line(&mut out, &job, "refused: no <kind>.<vendor> routing key", *json)?;
                    continue;
                }
                Action::Decide { dry_run: true, what, json, .. } => {
                    let action = if *what == Move::Approve { "would approve" } else { "would reject" };
                    print_line(&mut out, &job, action, *json)?;
                    continue;
                }
                Action::Decide { what, json, actor, reason, .. } => (what, json, actor, reason),
            };
            let (what, json, actor, reason) = step;
            let decided = async {
                if *what == Move::Approve {
                    let copy = released(&msg, &job, &settings, actor, reason);
                    walk.queue.publish(&copy, true).await?;
                }
                let detail = serde_json::json!({"by": actor, "reason": reason, "filter": filter.describe()});
                record(&walk, &settings, ledger.as_ref(), &msg, &job, what.step(), detail).await?;
                // Until this commits, a failure or a kill drops the copy and the step and
                // returns the held job: the move happens whole or not at all.
                walk.queue.remove(&d).await.map_err(DlqError::from)
            };
            if let Err(e) = decided.await {
                result = Err(e);
                break;
            }
            kept -= 1;
            print_line(&mut out, &job, what.step(), *json)?;
        }
        walk.queue.close(&conn, kept).await;
        if let Err(e) = result {
            let _ = conn.close(200, "done".into()).await;
            return Err(e);
        }
    }
    let _ = conn.close(200, "done".into()).await;
    match action {
        Action::List { json: false, .. } => writeln!(out, "{matched} held job(s)")?,
        Action::Decide { json: false, dry_run, what, .. } => {
            let done = match (what, dry_run) {
                (Move::Approve, true) => "would be approved; dry run, nothing changed",
                (Move::Reject, true) => "would be rejected; dry run, nothing changed",
                (Move::Approve, false) => "approved and released",
                (Move::Reject, false) => "rejected and dropped",
            };
            writeln!(out, "{} {done}", matched - refused)?;
            if refused > 0 {
                writeln!(out, "{refused} refused (left held)")?;
            }
        }
        _ => {}
    }
    if refused > 0 {
        eprintln!("provisioner: {refused} held message(s) name no job kind and vendor and were left held");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_row(out: &mut impl Write, job: &HeldJob, json: bool) -> std::io::Result<()> {
    if json {
        return writeln!(out, "{}", terminal::json(job, false));
    }
    let at = job.held_at.map_or("-".to_owned(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string());
    let reason: String = job.reason.as_deref().unwrap_or("").chars().take(80).collect();
    writeln!(
        out,
        "{:<28} {:<13} {:<20} {:<12} {:<19}  {}",
        printable(job.job_id.as_deref().unwrap_or("-")),
        printable(job.vendor.as_deref().unwrap_or("-")),
        printable(&job.account),
        printable(job.kind.as_deref().unwrap_or("-")),
        at,
        printable(&reason)
    )
}

fn print_line(out: &mut impl Write, job: &HeldJob, action: &'static str, json: bool) -> std::io::Result<()> {
    let line = Line { job_id: job.job_id.as_deref(), account: &job.account, action };
    if json {
        writeln!(out, "{}", terminal::json(&line, false))
    } else {
        writeln!(
            out,
            "{:<28} {:<20} {action}",
            printable(job.job_id.as_deref().unwrap_or("-")),
            printable(&job.account)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_msg() -> Inbound {
        let mut headers = Headers::new();
        h::set_text(&mut headers, h::HELD_ACCOUNT, "acme");
        h::set_text(&mut headers, h::HELD_REASON, "20 removals within 10m already");
        h::set_text(&mut headers, h::HELD_AT, "2026-11-27T10:00:00.000Z");
        h::set_text(&mut headers, h::ORIGINAL_ROUTING_KEY, "delete_user.glance");
        h::set_text(&mut headers, h::JOB_ID, "j-1");
        h::set_int(&mut headers, h::ATTEMPTS, 0);
        h::set_text(&mut headers, "traceparent", "00-abc");
        Inbound {
            body: br#"{"job_id":"j-1","kind":"delete_user","vendor":"glance","account":"acme"}"#.to_vec(),
            routing_key: "provisioning.held.acme".into(),
            message_id: Some("j-1".into()),
            headers,
            ..Default::default()
        }
    }

    #[test]
    fn a_held_job_reads_from_its_headers_and_filters_on_them() {
        let job = HeldJob::read(&held_msg(), "acme");
        assert_eq!(job.job_id.as_deref(), Some("j-1"));
        assert_eq!((job.kind.as_deref(), job.routing_key.as_str()), (Some("delete_user"), "delete_user.glance"));
        assert!(matches(&Filter::default(), &job));
        assert!(!matches(&Filter { job_id: Some("j-2".into()), ..Default::default() }, &job));
        let at = |s: &str| Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc));
        assert!(matches(&Filter { since: at("2026-11-27T09:00:00Z"), ..Default::default() }, &job));
        assert!(!matches(&Filter { until: at("2026-11-27T10:00:00Z"), ..Default::default() }, &job));
    }

    #[test]
    fn a_released_job_keeps_its_routing_and_carries_the_approval_not_the_hold() {
        let msg = held_msg();
        let job = HeldJob::read(&msg, "acme");
        let copy = released(&msg, &job, &Settings::default(), "ops", "HR confirmed the layoff");
        assert_eq!((copy.exchange.as_str(), copy.routing_key.as_str()), ("provisioning.jobs", "delete_user.glance"));
        assert!(copy.headers.keys().all(|k| !k.starts_with("provisioner-held-")), "{:?}", copy.headers);
        assert_eq!(h::text(&copy.headers, "traceparent"), Some("00-abc"));
        let audit: Value = serde_json::from_str(h::text(&copy.headers, h::APPROVED).unwrap()).unwrap();
        assert_eq!((audit["by"].as_str(), audit["reason"].as_str()), (Some("ops"), Some("HR confirmed the layoff")));
        // The pipeline keeps the service's own headers on it.
        assert!(h::without_producer_set(&copy.headers).is_none());
    }
}
