//! `provisioner whois` and `provisioner history`: what the ledger knows about a person, an identity or a job.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::commands::terminal::{self, printable};
use crate::ledger::{HistoryEntry, Ledger, LedgerError, Link};

/// Every link of an employee id or of a vendor identity (or a Glance address), any vendor.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Whois {
    pub query: String,
    pub links: Vec<Link>,
}

pub async fn whois(ledger: &Ledger, query: &str) -> Result<Whois, LedgerError> {
    let mut links = ledger.links_of_employee(query).await?;
    for l in ledger.links_of_identity(query).await? {
        if !links.iter().any(|k| k.vendor == l.vendor && k.account == l.account && k.identity == l.identity) {
            links.push(l);
        }
    }
    Ok(Whois { query: query.to_owned(), links })
}

/// The timeline of a job id, or of every job of a hire event id.
#[derive(Debug, Serialize)]
pub struct History {
    pub query: String,
    pub entries: Vec<HistoryEntry>,
}

pub async fn history(ledger: &Ledger, query: &str) -> Result<History, LedgerError> {
    Ok(History { query: query.to_owned(), entries: ledger.timeline(query).await? })
}

fn when(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).map_or("-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// A table, one line per link; every value from outside goes through [`printable`].
pub fn print_whois(out: &mut impl Write, w: &Whois) -> std::io::Result<()> {
    if w.links.is_empty() {
        return writeln!(out, "nothing is linked to {}", printable(&w.query));
    }
    writeln!(
        out,
        "{:<10} {:<12} {:<13} {:<16} {:<28} {:<9} {:<19}  JOB",
        "TENANT", "EMPLOYEE", "VENDOR", "ACCOUNT", "IDENTITY", "STATE", "SINCE (UTC)"
    )?;
    for l in &w.links {
        let (tenant, employee) = l
            .person
            .as_ref()
            .map_or(("-", "-"), |p| (if p.tenant.is_empty() { "-" } else { &p.tenant }, &p.employee_id));
        let identity = match &l.identity_extra {
            Some(extra) => format!("{} ({extra})", l.identity),
            None => l.identity.clone(),
        };
        writeln!(
            out,
            "{:<10} {:<12} {:<13} {:<16} {:<28} {:<9} {:<19}  {}",
            printable(tenant),
            printable(employee),
            l.vendor.as_str(),
            printable(&l.account),
            printable(&identity),
            l.state.as_str(),
            when(l.created_at),
            printable(&l.job_id)
        )?;
    }
    Ok(())
}

pub fn print_history(out: &mut impl Write, h: &History) -> std::io::Result<()> {
    if h.entries.is_empty() {
        return writeln!(out, "the ledger has no history for {}", printable(&h.query));
    }
    writeln!(out, "{:<19}  {:<13} {:<13} {:<16} {:<36} DETAIL", "TIME (UTC)", "STEP", "VENDOR", "ACCOUNT", "JOB")?;
    for e in &h.entries {
        writeln!(
            out,
            "{:<19}  {:<13} {:<13} {:<16} {:<36} {}",
            when(e.at),
            e.kind.as_str(),
            e.vendor.map_or("-", |v| v.as_str()),
            printable(e.account.as_deref().unwrap_or("-")),
            printable(e.job_id.as_deref().unwrap_or("-")),
            printable(&terminal::json(&e.detail, false))
        )?;
    }
    Ok(())
}
