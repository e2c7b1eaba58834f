//! `provisioner dlq`: find, understand, replay and purge dead-lettered jobs, over AMQP only.
//!
//! Every command walks the dead-letter queue once with `basic.get`, holding each message
//! unacked while it decides; everything it does not remove returns to the queue, in its
//! original order, when the channel closes. `basic.get` rather than a consumer keeps memory
//! flat: nothing is prefetched and each message is dropped once looked at, so a DLQ of
//! 100,000 messages is walked with the memory of one.
//!
//! The walk's channel is transactional. A replay publishes the copy to the jobs exchange
//! and acks the dead letter in ONE transaction, so a replay killed at any instant has
//! either moved a message (both applied) or not (neither): no message is lost, and none
//! ends up in both queues. Publisher confirms cannot give that: between the confirm and
//! the ack a crash leaves the message in both queues.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lapin::Connection;
use serde::Serialize;
use serde_json::Value;

use crate::commands::queue_walk::{self, QueueWalk};
use crate::commands::terminal::{self, printable};
use crate::config::Settings;
use crate::contract::{all_auth_fields, Job, VendorKey, REDACTED};
use crate::transport::headers as h;
use crate::transport::rabbitmq;
use crate::transport::{HeaderValue, Headers, Inbound, Outbound, OutboundKind};

pub use crate::transport::DeadLetter;

pub use crate::transport::headers::{REPLAY_AUDIT, REPLAY_COUNT};
pub use action::{Action, Source};
pub use execute::execute;

mod action;
mod execute;
mod indexed;

/// `basic.get`s a read-only walk keeps in flight.
const GET_WINDOW: usize = 64;

/// What a DLQ command failed on; exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error(transparent)]
    Broker(#[from] rabbitmq::BrokerError),
    #[error("broker operation failed: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("{0}")]
    Usage(String),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// Which dead letters a command applies to. All given conditions must hold.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub vendor: Option<VendorKey>,
    pub account: Option<String>,
    /// An error class, `undecodable`, or `delivery_limit` (dead-lettered by the broker).
    pub class: Option<String>,
    pub job_id: Option<String>,
    /// Last failure at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Last failure before this time.
    pub until: Option<DateTime<Utc>>,
    /// Stop after this many matches.
    pub limit: Option<usize>,
}

impl Filter {
    /// Whether `limit` is reached. A walk then goes on to the end without acting: a quorum
    /// queue puts returned messages behind the ones never taken, so only a walk over the
    /// whole queue hands every message back in its original order.
    pub fn full(&self, matched: usize) -> bool {
        self.limit.is_some_and(|l| matched >= l)
    }

    /// The conditions given, as `key=value` words, for the history of what an operator did.
    pub fn describe(&self) -> String {
        let mut words = Vec::new();
        let mut add = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                words.push(format!("{k}={v}"));
            }
        };
        add("vendor", self.vendor.map(|v| v.to_string()));
        add("account", self.account.clone());
        add("class", self.class.clone());
        add("job_id", self.job_id.clone());
        add("since", self.since.map(|t| t.to_rfc3339()));
        add("until", self.until.map(|t| t.to_rfc3339()));
        add("limit", self.limit.map(|l| l.to_string()));
        if words.is_empty() {
            "all".into()
        } else {
            words.join(" ")
        }
    }

    pub fn matches(&self, d: &DeadLetter) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| want.as_ref().is_none_or(|w| have.as_ref() == Some(w));
        self.vendor.is_none_or(|v| d.vendor.as_deref() == Some(v.as_str()))
            && eq(&self.account, &d.account)
            && self.class.as_ref().is_none_or(|c| *c == d.reason)
            && eq(&self.job_id, &d.job_id)
            && self.since.is_none_or(|s| d.last_failed_at.is_some_and(|t| t >= s))
            && self.until.is_none_or(|u| d.last_failed_at.is_some_and(|t| t < u))
    }
}

/// A session on the DLQ: one connection and a transactional walk of the queue.
pub struct Dlq {
    conn: Connection,
    walk: QueueWalk,
    settings: Settings,
    /// Messages the DLQ should hold again once the unacked ones are back: ready at the
    /// start of the walk, less those removed.
    expect_back: std::sync::atomic::AtomicU32,
}

impl Dlq {
    pub async fn open(settings: Settings) -> Result<Self, DlqError> {
        let conn = queue_walk::connect(&settings).await?;
        let walk = QueueWalk::open(&conn, settings.topology.dead_queue.clone()).await?;
        Ok(Self { conn, walk, settings, expect_back: 0.into() })
    }

    /// Messages ready in the DLQ now: the walk stops there, so messages that arrive during
    /// it (or a replayed job that fails again) are not walked twice.
    async fn ready(&self) -> Result<u32, DlqError> {
        let ready = self.walk.ready().await?;
        self.expect_back.store(ready, std::sync::atomic::Ordering::SeqCst);
        Ok(ready)
    }

    /// Removes a message taken from the DLQ by committing its ack; in a replay the copy's
    /// publish commits in the same transaction.
    async fn remove(&self, d: &lapin::message::Delivery) -> Result<(), DlqError> {
        self.walk.remove(d).await?;
        self.expect_back.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    async fn next(&self) -> Result<Option<lapin::message::Delivery>, DlqError> {
        Ok(self.walk.next().await?)
    }

    /// Closes the session; every message not removed goes back to the DLQ, in order, before
    /// this returns (see [`QueueWalk::close`]).
    pub async fn close(self) {
        let want = self.expect_back.load(std::sync::atomic::Ordering::SeqCst);
        self.walk.close(&self.conn, want).await;
        let _ = self.conn.close(200, "done".into()).await;
    }

    /// Calls `visit` for every matching dead letter, in queue order. Nothing is removed.
    pub async fn each(
        &self,
        filter: &Filter,
        mut visit: impl FnMut(&Inbound, &DeadLetter) -> Result<(), DlqError>,
    ) -> Result<usize, DlqError> {
        use futures_util::StreamExt;
        let total = self.ready().await?;
        // A read-only walk keeps a window of `basic.get`s in flight: one at a time, each
        // waits a full round trip (a quorum queue answers a get after a Raft round), which
        // made 100,000 dead letters a ten-minute listing. Replies come back in order.
        let mut gets = futures_util::stream::iter(0..total).map(|_| self.next()).buffered(GET_WINDOW);
        let mut matched = 0;
        while let Some(got) = gets.next().await {
            let Some(d) = got? else { break };
            let msg = rabbitmq::inbound(&d);
            let dl = DeadLetter::read(&msg);
            if filter.full(matched) {
                continue;
            }
            if filter.matches(&dl) {
                visit(&msg, &dl)?;
                matched += 1;
            }
        }
        Ok(matched)
    }

    /// Publishes, in the walk's transaction, the `provisioning.job.<step>` event that puts
    /// an operator's move of a dead letter in the job's history (the ledger's projection
    /// reads it): it commits with the move, or not at all.
    async fn record(&self, msg: &Inbound, dl: &DeadLetter, step: &str, detail: Value) -> Result<(), DlqError> {
        let about = crate::event::StepOf {
            job_id: dl.job_id.as_deref().unwrap_or("unknown"),
            vendor: dl.vendor.as_deref().and_then(VendorKey::parse),
            account: dl.account.as_deref(),
            correlation_id: None,
            person: None,
        };
        let mut detail = detail;
        detail["letter_id"] = Value::String(crate::transport::letter_id(msg));
        let (source, exchange) = (&self.settings.events.source, &self.settings.topology.events_exchange);
        let event = crate::event::step_message(source, exchange, step, &about, None, detail, Utc::now());
        self.walk.publish(&event, false).await?;
        Ok(())
    }

    /// Removes every matching dead letter. Returns how many were removed. `actor` and
    /// `reason` go into each job's history.
    pub async fn purge(&self, filter: &Filter, actor: &str, reason: Option<&str>) -> Result<usize, DlqError> {
        let total = self.ready().await?;
        let mut removed = 0;
        for _ in 0..total {
            let Some(d) = self.next().await? else { break };
            let dl = DeadLetter::read(&rabbitmq::inbound(&d));
            if filter.full(removed) {
                continue;
            }
            if filter.matches(&dl) {
                let msg = rabbitmq::inbound(&d);
                let detail = serde_json::json!({"by": actor, "reason": reason, "filter": filter.describe()});
                self.record(&msg, &dl, "purged", detail).await?;
                self.remove(&d).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Moves every matching dead letter back to the jobs exchange: the copy's publish and the
    /// dead letter's ack commit in one transaction. See [`Replay`] for the options.
    pub async fn replay(
        &self,
        filter: &Filter,
        opts: &Replay,
        mut report: impl FnMut(&ReplayLine),
    ) -> Result<ReplaySummary, DlqError> {
        let total = self.ready().await?;
        let mut summary = ReplaySummary::default();
        let mut pace = opts.rate.map(|r| tokio::time::interval(Duration::from_secs_f64(1.0 / r.max(0.001))));
        let mut matched = 0;
        for _ in 0..total {
            let Some(d) = self.next().await? else { break };
            let msg = rabbitmq::inbound(&d);
            let dl = DeadLetter::read(&msg);
            if filter.full(matched) || !filter.matches(&dl) {
                continue;
            }
            matched += 1;
            let line = match replayed_copy(&msg, &dl, opts, &self.settings) {
                Err(errors) => {
                    summary.refused += 1;
                    ReplayLine { job_id: dl.job_id.clone(), action: "refused", detail: errors }
                }
                Ok(_) if opts.dry_run => {
                    summary.would_move += 1;
                    ReplayLine {
                        job_id: dl.job_id.clone(),
                        action: "would replay",
                        detail: format!("{} ({})", dl.routing_key, dl.reason),
                    }
                }
                Ok(copy) => {
                    if let Some(p) = pace.as_mut() {
                        p.tick().await;
                    }
                    self.walk.publish(&copy, true).await?;
                    let detail = serde_json::json!({"by": opts.actor, "reason": opts.reason, "filter": filter.describe(),
                        "edited": opts.patch.is_some()});
                    self.record(&msg, &dl, "replayed", detail).await?;
                    // Until this commits, a failure or a kill drops the copy and returns the
                    // dead letter: the move happens whole or not at all.
                    self.remove(&d).await?;
                    summary.moved += 1;
                    ReplayLine { job_id: dl.job_id.clone(), action: "replayed", detail: copy.routing_key.clone() }
                }
            };
            report(&line);
        }
        Ok(summary)
    }
}

/// Replay options.
#[derive(Clone, Debug, Default)]
pub struct Replay {
    pub dry_run: bool,
    /// Messages per second at most.
    pub rate: Option<f64>,
    /// Why, for the audit header.
    pub reason: Option<String>,
    /// Who, for the audit header.
    pub actor: String,
    /// A JSON merge patch (RFC 7396) applied to each job before it is re-validated.
    pub patch: Option<Value>,
}

#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReplaySummary {
    pub moved: usize,
    pub would_move: usize,
    /// Matching messages left in the DLQ because the patched job is invalid.
    pub refused: usize,
}

#[derive(Debug, Serialize)]
pub struct ReplayLine {
    pub job_id: Option<String>,
    pub action: &'static str,
    pub detail: String,
}

/// The message to publish for a replay: the (patched, re-validated) job with a fresh retry
/// budget and the audit trail. `Err` holds why the patched job is refused.
fn replayed_copy(msg: &Inbound, dl: &DeadLetter, opts: &Replay, settings: &Settings) -> Result<Outbound, String> {
    let mut body = msg.body.clone();
    if let Some(patch) = &opts.patch {
        let mut job: Value =
            serde_json::from_slice(&msg.body).map_err(|e| format!("the job is not JSON, cannot patch it: {e}"))?;
        json_patch::merge(&mut job, patch);
        body = serde_json::to_vec(&job).expect("a JSON value serialises");
    }
    if Job::vendor_of_routing_key(&dl.routing_key).is_none() {
        return Err(format!("routing key {:?} names no vendor; fix the job with --edit", dl.routing_key));
    }
    if opts.patch.is_some() || dl.reason != "undecodable" {
        // Replaying a job that would fail validation again only moves it in a circle.
        if let Err(rejection) = crate::job::decode(&body) {
            return Err(match rejection {
                crate::job::Rejection::Undecodable(m) => m,
                crate::job::Rejection::Invalid(inv) => inv.summary(),
            });
        }
    }
    let mut headers: Headers = msg
        .headers
        .iter()
        .filter(|(k, _)| !k.starts_with("provisioner-") && !k.starts_with("x-"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    h::set_int(&mut headers, REPLAY_COUNT, dl.replay_count + 1);
    let audit = serde_json::json!({
        "by": opts.actor,
        "at": h::timestamp(Utc::now()),
        "reason": opts.reason,
        "patch": opts.patch.as_ref().map(redact_json),
        "previous_failure": {"reason": dl.reason, "code": dl.code, "attempts": dl.attempts},
    });
    headers.insert(REPLAY_AUDIT.to_owned(), HeaderValue::Text(audit.to_string()));
    Ok(Outbound {
        kind: OutboundKind::Job,
        exchange: settings.topology.jobs_exchange.clone(),
        routing_key: dl.routing_key.clone(),
        body,
        message_id: msg.message_id.clone().or_else(|| dl.job_id.clone()),
        content_type: msg.content_type.clone().or_else(|| Some("application/json".into())),
        timestamp: msg.timestamp,
        headers,
    })
}

/// A job (or patch) with every secret and credential value replaced by `***`, for display.
pub fn redact_json(v: &Value) -> Value {
    let secret_names: Vec<&str> = VendorKey::ALL
        .into_iter()
        .flat_map(|v| v.user_fields().iter().filter(|f| f.secret).map(|f| f.name))
        .chain(all_auth_fields())
        .collect();
    fn walk(v: &Value, secret: &[&str]) -> Value {
        match v {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let shown =
                            if secret.contains(&k.as_str()) { Value::String(REDACTED.into()) } else { walk(v, secret) };
                        (k.clone(), shown)
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|i| walk(i, secret)).collect()),
            other => other.clone(),
        }
    }
    walk(v, &secret_names)
}

/// The body of a dead letter as it may be shown: JSON with secrets redacted, or a note for
/// a body that is not JSON (which is shown only as its length, since it cannot be redacted).
pub fn shown_body(body: &[u8]) -> Value {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => redact_json(&v),
        Err(_) => Value::String(format!("<{} bytes, not JSON; not shown because it cannot be redacted>", body.len())),
    }
}

/// `dlq list`: one row per matching dead letter, as it is read.
pub fn print_row(out: &mut impl Write, dl: &DeadLetter, json: bool, now: DateTime<Utc>) -> std::io::Result<()> {
    if json {
        return writeln!(out, "{}", terminal::json(dl, false));
    }
    let t = |t: Option<DateTime<Utc>>| t.map_or("-".to_owned(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string());
    let age = dl.first_failed_at.map_or("-".to_owned(), |t| human_age(now - t));
    let message: String = dl.message.as_deref().unwrap_or("").chars().take(60).collect();
    let message = printable(&message);
    writeln!(
        out,
        "{:<28} {:<13} {:<20} {:<14} {:>3}  {:<19}  {:<19}  {:>6}  {}",
        printable(dl.job_id.as_deref().unwrap_or("-")),
        printable(dl.vendor.as_deref().unwrap_or("-")),
        printable(dl.account.as_deref().unwrap_or("-")),
        printable(&dl.reason),
        dl.attempts,
        t(dl.first_failed_at),
        t(dl.last_failed_at),
        age,
        message
    )
}

/// One `dlq stats` group: a table row, or a JSON line. The queue walk and the ledger's
/// index print the same way.
pub fn print_group(out: &mut impl Write, g: &Group, json: bool) -> std::io::Result<()> {
    if json {
        return writeln!(out, "{}", terminal::json(g, false));
    }
    let oldest = g.oldest.map_or("-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string());
    writeln!(
        out,
        "{:<13} {:<20} {:<14} {:>7}  oldest {oldest}",
        printable(&g.vendor),
        printable(&g.account),
        printable(&g.class),
        g.count
    )
}

pub fn print_header(out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<28} {:<13} {:<20} {:<14} {:>3}  {:<19}  {:<19}  {:>6}  MESSAGE",
        "JOB_ID", "VENDOR", "ACCOUNT", "CLASS", "ATT", "FIRST_FAILED (UTC)", "LAST_FAILED (UTC)", "AGE"
    )
}

fn human_age(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// `dlq stats`: counts by vendor, account and class, with the oldest failure of each group.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Group {
    pub vendor: String,
    pub account: String,
    pub class: String,
    pub count: usize,
    pub oldest: Option<DateTime<Utc>>,
}

pub fn group(stats: &mut BTreeMap<(String, String, String), Group>, dl: &DeadLetter) {
    let key = (
        dl.vendor.clone().unwrap_or_else(|| "-".into()),
        dl.account.clone().unwrap_or_else(|| "-".into()),
        dl.reason.clone(),
    );
    let g = stats.entry(key.clone()).or_insert_with(|| Group {
        vendor: key.0,
        account: key.1,
        class: key.2,
        ..Default::default()
    });
    g.count += 1;
    g.oldest = match (g.oldest, dl.first_failed_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dead(headers: &[(&str, &str)], body: Value) -> Inbound {
        Inbound {
            body: body.to_string().into_bytes(),
            routing_key: "create_user.glance".into(),
            headers: headers.iter().map(|(k, v)| ((*k).to_owned(), HeaderValue::Text((*v).to_owned()))).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn dead_letters_from_outside_print_escaped() {
        let msg = dead(
            &[(h::REASON, "auth\u{1b}[2J"), (h::ERROR_MESSAGE, "bad \u{1b}]0;PWNED\u{7}"), (h::ACCOUNT, "a\u{202e}b")],
            serde_json::json!({"job_id": "j\u{1b}[31m"}),
        );
        let dl = DeadLetter::read(&msg);
        for json in [false, true] {
            let mut out = Vec::new();
            print_row(&mut out, &dl, json, Utc::now()).unwrap();
            let out = String::from_utf8(out).unwrap();
            assert!(!out.contains('\u{1b}') && !out.contains('\u{7}') && !out.contains('\u{202e}'), "{out}");
        }
    }

    #[test]
    fn filters_combine_and_read_headers_with_body_fallback() {
        let msg = dead(
            &[(h::REASON, "auth"), (h::VENDOR, "glance"), (h::LAST_FAILED_AT, "2026-11-20T10:00:00Z")],
            json!({"job_id": "j-1", "account": "acme"}),
        );
        let dl = DeadLetter::read(&msg);
        assert_eq!((dl.job_id.as_deref(), dl.account.as_deref()), (Some("j-1"), Some("acme")));
        let at = |s: &str| Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc));
        let yes = Filter {
            vendor: Some(VendorKey::Glance),
            class: Some("auth".into()),
            since: at("2026-11-20T00:00:00Z"),
            ..Default::default()
        };
        assert!(yes.matches(&dl));
        for no in [
            Filter { vendor: Some(VendorKey::Netsapiens), ..Default::default() },
            Filter { class: Some("rejected".into()), ..Default::default() },
            Filter { account: Some("other".into()), ..Default::default() },
            Filter { until: at("2026-11-20T10:00:00Z"), ..Default::default() },
            Filter { job_id: Some("j-2".into()), ..Default::default() },
        ] {
            assert!(!no.matches(&dl), "{no:?}");
        }
    }

    #[test]
    fn a_broker_dead_lettered_message_reports_the_brokers_reason() {
        let dl = DeadLetter::read(&dead(&[("x-first-death-reason", "delivery_limit")], json!({"job_id": "j"})));
        assert_eq!(dl.reason, "delivery_limit");
    }

    #[test]
    fn shown_bodies_redact_secrets_and_credentials_everywhere() {
        let body = json!({"job_id": "j", "user": {"user_new_password": "S3cret", "user_PIN": "1234", "user_name": "jdoe"},
                          "PartnerPW": "pw", "nested": [{"UserPW": "x"}]});
        let shown = shown_body(body.to_string().as_bytes()).to_string();
        for secret in ["S3cret", "1234", "\"pw\"", "\"x\""] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("jdoe"));
        assert!(shown_body(b"PartnerPW=pw").as_str().unwrap().contains("not shown"));
    }

    #[test]
    fn a_replay_copy_has_a_fresh_budget_and_an_audit_trail() {
        let settings = Settings::default();
        let job = crate::pipeline::sample_job("j-9", VendorKey::Glance, "acme", "EMP-9");
        let mut msg = dead(
            &[(h::REASON, "unavailable"), (h::ORIGINAL_ROUTING_KEY, "create_user.glance"), ("traceparent", "00-abc")],
            job,
        );
        h::set_int(&mut msg.headers, h::ATTEMPTS, 9);
        h::set_int(&mut msg.headers, h::DURABLE_RETRIES, 5);
        let dl = DeadLetter::read(&msg);
        let opts = Replay { actor: "ops".into(), reason: Some("vendor back".into()), ..Default::default() };
        let copy = replayed_copy(&msg, &dl, &opts, &settings).unwrap();
        assert_eq!(copy.exchange, "provisioning.jobs");
        assert_eq!(copy.routing_key, "create_user.glance");
        assert_eq!(h::int(&copy.headers, h::ATTEMPTS), None, "a fresh retry budget");
        assert_eq!(h::int(&copy.headers, h::DURABLE_RETRIES), None);
        assert_eq!(h::text(&copy.headers, "traceparent"), Some("00-abc"));
        assert_eq!(h::int(&copy.headers, REPLAY_COUNT), Some(1));
        let audit: Value = serde_json::from_str(h::text(&copy.headers, REPLAY_AUDIT).unwrap()).unwrap();
        assert_eq!((audit["by"].as_str(), audit["reason"].as_str()), (Some("ops"), Some("vendor back")));
    }

    #[test]
    fn an_edit_is_revalidated_and_an_invalid_one_refused() {
        let settings = Settings::default();
        let msg = dead(&[(h::REASON, "rejected")], crate::pipeline::sample_job("j", VendorKey::Glance, "acme", "E"));
        let dl = DeadLetter::read(&msg);
        let good = Replay { patch: Some(json!({"user": {"UserFirst": "Janet"}})), ..Default::default() };
        let copy = replayed_copy(&msg, &dl, &good, &settings).unwrap();
        let body: Value = serde_json::from_slice(&copy.body).unwrap();
        assert_eq!(body["user"]["UserFirst"], "Janet");
        let bad = Replay { patch: Some(json!({"user": {"UserAddress": null, "Bogus": 1}})), ..Default::default() };
        let err = replayed_copy(&msg, &dl, &bad, &settings).unwrap_err();
        assert!(err.contains("user.Bogus") && err.contains("user.UserAddress"), "{err}");
    }
}
