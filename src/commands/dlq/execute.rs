//! Runs one `dlq` action and writes what it found or did, as a table or as NDJSON.

use std::io::Write;
use std::process::ExitCode;

use super::action::{Action, Source};
use super::{group, print_group, print_header, print_row, shown_body, Dlq, DlqError, Filter};
use crate::commands::terminal::{self, printable};
use crate::config::Settings;
use crate::ledger::Ledger;
use crate::transport::HeaderValue;

/// A spinner on stderr for long walks, only when a person is watching.
fn progress(json: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    (!json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    })
}

/// Opens a walk of the dead-letter queue, runs `action` and closes it; the exit code says
/// whether everything matched went as asked (1: a dead letter not found, or refused).
pub async fn execute(settings: Settings, action: Action, mut out: impl Write) -> Result<ExitCode, DlqError> {
    if let Some(ledger) = ledger_for(&settings, &action).await? {
        return super::indexed::execute(&ledger, action, out).await;
    }
    let session = Dlq::open(settings).await?;
    let now = chrono::Utc::now();
    let code = match action {
        Action::List { filter, json, .. } => {
            if !json {
                print_header(&mut out)?;
            }
            let n = session.each(&filter, |_, d| Ok(print_row(&mut out, d, json, now)?)).await?;
            if !json {
                writeln!(out, "{n} dead letter(s)")?;
            }
            ExitCode::SUCCESS
        }
        Action::Stats { filter, json, .. } => {
            let mut groups = std::collections::BTreeMap::new();
            session
                .each(&filter, |_, d| {
                    group(&mut groups, d);
                    Ok(())
                })
                .await?;
            for g in groups.values() {
                print_group(&mut out, g, json)?;
            }
            ExitCode::SUCCESS
        }
        Action::Show { job_id } => {
            let filter = Filter { job_id: Some(job_id.clone()), limit: Some(1), ..Default::default() };
            let mut shown = None;
            session
                .each(&filter, |msg, d| {
                    let headers: serde_json::Map<String, serde_json::Value> = msg
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            let v = match v {
                                HeaderValue::Text(t) => serde_json::json!(t),
                                HeaderValue::Int(i) => serde_json::json!(i),
                            };
                            (k.clone(), v)
                        })
                        .collect();
                    shown = Some(serde_json::json!({
                        "dead_letter": d,
                        "routing_key": msg.routing_key,
                        "message_id": msg.message_id,
                        "headers": headers,
                        "job": shown_body(&msg.body),
                    }));
                    Ok(())
                })
                .await?;
            match shown {
                Some(v) => {
                    writeln!(out, "{}", terminal::json(&v, true))?;
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("provisioner: no dead letter with job_id {job_id:?}");
                    ExitCode::from(1)
                }
            }
        }
        Action::Replay { filter, opts, json } => {
            let dry_run = opts.dry_run;
            let bar = progress(json);
            let summary = session
                .replay(&filter, &opts, |line| {
                    if let Some(b) = &bar {
                        b.inc(1);
                    }
                    let _ = if json {
                        writeln!(out, "{}", terminal::json(line, false))
                    } else {
                        writeln!(
                            out,
                            "{:<28} {:<13} {}",
                            printable(line.job_id.as_deref().unwrap_or("-")),
                            line.action,
                            printable(&line.detail)
                        )
                    };
                })
                .await?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            if json {
                writeln!(out, "{}", serde_json::to_string(&summary).expect("serialises"))?;
            } else if dry_run {
                writeln!(
                    out,
                    "dry run: {} would be replayed, {} refused; nothing changed",
                    summary.would_move, summary.refused
                )?;
            } else {
                writeln!(out, "{} replayed, {} refused (left in the DLQ)", summary.moved, summary.refused)?;
            }
            if summary.refused > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Action::Purge { filter, json, actor, reason } => {
            let removed = session.purge(&filter, &actor, reason.as_deref()).await?;
            if json {
                writeln!(out, "{}", serde_json::json!({"removed": removed}))?;
            } else {
                writeln!(out, "removed {removed} dead letter(s)")?;
            }
            ExitCode::SUCCESS
        }
    };
    session.close().await;
    Ok(code)
}

/// The ledger that answers this action, if it is a `list` or `stats` that should read it.
async fn ledger_for(settings: &Settings, action: &Action) -> Result<Option<Ledger>, DlqError> {
    let source = match action {
        Action::List { source, .. } | Action::Stats { source, .. } => *source,
        _ => return Ok(None),
    };
    if source == Source::Queue {
        return Ok(None);
    }
    let ledger = match crate::ledger::from_settings(&settings.ledger) {
        Ok(Some(l)) => l,
        Ok(None) if source == Source::Auto => return Ok(None),
        Ok(None) => return Err(DlqError::Usage("--source ledger needs ledger.enabled".into())),
        Err(e) => return Err(DlqError::Usage(e.to_string())),
    };
    match ledger.ready().await {
        Ok(()) => Ok(Some(ledger)),
        Err(e) if source == Source::Auto => {
            eprintln!("provisioner: the ledger does not answer ({e}); walking the dead-letter queue instead");
            Ok(None)
        }
        Err(e) => Err(DlqError::Usage(e.to_string())),
    }
}
