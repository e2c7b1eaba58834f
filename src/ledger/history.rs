//! History: every step of every job, appended by the projection, read back as a timeline.

use sqlx::any::AnyRow;

use super::{corrupt, int, opt_text, person, text, HistoryEntry, HistoryKind, Ledger, LedgerError, Write};
use crate::contract::VendorKey;

const COLUMNS: &str = "entry_id, at, kind, job_id, correlation_id, tenant, employee_id, vendor, account, detail";

/// The most entries one timeline returns; a job with more has been replayed in a loop.
pub(crate) const TIMELINE_LIMIT: i64 = 1000;

impl Ledger {
    /// Applies one batch of the projection's writes in one transaction: all or nothing, so
    /// the batch's messages are acked only once it is all there.
    pub async fn apply(&self, writes: &[Write]) -> Result<(), LedgerError> {
        if writes.is_empty() {
            return Ok(());
        }
        self.bounded(async {
            let mut tx = self.pool.begin().await?;
            for w in writes {
                match w {
                    Write::History(e) => insert_history(&mut tx, e).await?,
                    Write::Active(a) => super::links::settle_active(&mut tx, a).await?,
                    Write::Moved(m) => super::links::moved(&mut tx, m).await?,
                    Write::ReleaseIntent { key, job_id } => super::links::release_intent(&mut tx, key, job_id).await?,
                    Write::Letter(l) => super::dead_letters::insert(&mut tx, l).await?,
                    Write::LetterMoved { job_id, state, at } => {
                        super::dead_letters::moved(&mut tx, job_id, *state, *at).await?
                    }
                    Write::Progress { writer, event_at } => progress(&mut tx, writer, *event_at).await?,
                }
            }
            tx.commit().await
        })
        .await
    }

    /// The steps of a job (by job id) or of every job of a hire (by its event id, which is
    /// the jobs' correlation id), oldest first.
    pub async fn timeline(&self, id: &str) -> Result<Vec<HistoryEntry>, LedgerError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM history WHERE job_id = $1 OR correlation_id = $1 ORDER BY at, entry_id LIMIT {TIMELINE_LIMIT}"
        );
        let rows = self.bounded(sqlx::query(&sql).bind(id).fetch_all(&self.pool)).await?;
        rows.iter().map(read_entry).collect()
    }

    /// The newest event time the projection committed, over every writer: how far behind
    /// the ledger is.
    pub async fn projected_until(&self) -> Result<Option<i64>, LedgerError> {
        let row = self
            .bounded(sqlx::query("SELECT MAX(event_at) AS t FROM projection_progress").fetch_one(&self.pool))
            .await?;
        super::opt_int(&row, "t", "projection_progress")
    }
}

async fn insert_history(tx: &mut sqlx::AnyConnection, e: &HistoryEntry) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO history (entry_id, at, kind, job_id, correlation_id, tenant, employee_id, vendor, account, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (entry_id) DO NOTHING",
    )
    .bind(&e.entry_id)
    .bind(e.at)
    .bind(e.kind.as_str())
    .bind(e.job_id.as_deref())
    .bind(e.correlation_id.as_deref())
    .bind(e.person.as_ref().map(|p| p.tenant.as_str()))
    .bind(e.person.as_ref().map(|p| p.employee_id.as_str()))
    .bind(e.vendor.map(VendorKey::as_str))
    .bind(e.account.as_deref())
    .bind(e.detail.to_string())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn progress(tx: &mut sqlx::AnyConnection, writer: &str, event_at: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projection_progress (writer, event_at, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (writer) DO UPDATE SET \
           event_at = CASE WHEN excluded.event_at > projection_progress.event_at THEN excluded.event_at \
                      ELSE projection_progress.event_at END, \
           updated_at = excluded.updated_at",
    )
    .bind(writer)
    .bind(event_at)
    .bind(super::now_ms())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

fn read_entry(row: &AnyRow) -> Result<HistoryEntry, LedgerError> {
    let key = format!("history/{}", opt_text(row, "entry_id", "history")?.unwrap_or_default());
    let kind_raw = text(row, "kind", &key)?;
    let vendor = opt_text(row, "vendor", &key)?
        .map(|v| VendorKey::parse(&v).ok_or_else(|| corrupt(&key, format!("unknown vendor {v:?}"))))
        .transpose()?;
    let detail_raw = text(row, "detail", &key)?;
    Ok(HistoryEntry {
        entry_id: text(row, "entry_id", &key)?,
        at: int(row, "at", &key)?,
        kind: HistoryKind::parse(&kind_raw).ok_or_else(|| corrupt(&key, format!("unknown kind {kind_raw:?}")))?,
        job_id: opt_text(row, "job_id", &key)?,
        correlation_id: opt_text(row, "correlation_id", &key)?,
        person: person(opt_text(row, "tenant", &key)?.unwrap_or_default(), opt_text(row, "employee_id", &key)?),
        vendor,
        account: opt_text(row, "account", &key)?,
        detail: serde_json::from_str(&detail_raw).map_err(|e| corrupt(&key, format!("detail is not JSON: {e}")))?,
    })
}
