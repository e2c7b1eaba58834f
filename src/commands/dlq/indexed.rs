//! `dlq list` and `dlq stats` answered from the ledger's dead-letter index instead of a walk of the queue.

use std::io::Write;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::action::Action;
use super::{print_group, print_header, print_row, DeadLetter, DlqError, Filter, Group};
use crate::ledger::{Ledger, LetterQuery, LetterRow};

/// Runs a `list` or `stats` on the index; other actions never get here.
pub(super) async fn execute(ledger: &Ledger, action: Action, mut out: impl Write) -> Result<ExitCode, DlqError> {
    let now = Utc::now();
    let lag = match ledger.projected_until().await {
        Ok(Some(t)) => format!("the ledger has read events up to {}", time(t).format("%Y-%m-%d %H:%M:%S UTC")),
        Ok(None) => "the ledger has read no event yet".into(),
        Err(e) => return Err(DlqError::Usage(e.to_string())),
    };
    match action {
        Action::List { filter, json, .. } => {
            let rows = ledger.dead_letters(&query(&filter)).await.map_err(|e| DlqError::Usage(e.to_string()))?;
            if !json {
                print_header(&mut out)?;
            }
            for row in &rows {
                print_row(&mut out, &dead_letter(row), json, now)?;
            }
            if !json {
                writeln!(out, "{} dead letter(s), from the ledger's index ({lag})", rows.len())?;
            }
        }
        Action::Stats { filter, json, .. } => {
            let counts =
                ledger.dead_letter_counts(&query(&filter)).await.map_err(|e| DlqError::Usage(e.to_string()))?;
            for ((class, vendor, account), (count, oldest)) in counts {
                let g = Group {
                    vendor: if vendor.is_empty() { "-".into() } else { vendor },
                    account: if account.is_empty() { "-".into() } else { account },
                    class,
                    count: usize::try_from(count).unwrap_or(0),
                    oldest: Some(time(oldest)),
                };
                print_group(&mut out, &g, json)?;
            }
            if !json {
                writeln!(out, "(from the ledger's index; {lag})")?;
            }
        }
        _ => return Err(DlqError::Usage("only list and stats read the ledger".into())),
    }
    Ok(ExitCode::SUCCESS)
}

fn query(f: &Filter) -> LetterQuery {
    LetterQuery {
        vendor: f.vendor.map(|v| v.to_string()),
        account: f.account.clone(),
        reason: f.class.clone(),
        job_id: f.job_id.clone(),
        since: f.since.map(|t| t.timestamp_millis()),
        until: f.until.map(|t| t.timestamp_millis()),
        limit: f.limit,
    }
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn dead_letter(r: &LetterRow) -> DeadLetter {
    DeadLetter {
        job_id: r.job_id.clone(),
        vendor: r.vendor.clone(),
        account: r.account.clone(),
        reason: r.reason.clone(),
        code: r.code.clone(),
        message: r.message.clone(),
        attempts: r.attempts,
        first_failed_at: r.first_failed_at.map(time),
        last_failed_at: Some(time(r.last_failed_at)),
        routing_key: r.routing_key.clone(),
        replay_count: 0,
    }
}
