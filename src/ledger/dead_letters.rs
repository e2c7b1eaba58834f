//! The dead-letter index: what the dead-letter queue holds, answered in milliseconds instead of a walk of the queue.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;

use super::{int, opt_int, opt_text, text, Ledger, LedgerError, LetterQuery, LetterRow, LetterState};

const COLUMNS: &str = "letter_id, job_id, vendor, account, reason, code, message, attempts, routing_key, \
                       first_failed_at, last_failed_at, state";

/// The most rows one `list` returns when no limit is given: a terminal cannot show more.
pub(crate) const LIST_LIMIT: usize = 10_000;

impl Ledger {
    /// Dead letters still in the queue (state `dead`) that match, newest first.
    pub async fn dead_letters(&self, q: &LetterQuery) -> Result<Vec<LetterRow>, LedgerError> {
        let (clause, binds) = where_clause(q);
        let limit = q.limit.unwrap_or(LIST_LIMIT).min(LIST_LIMIT);
        let sql =
            format!("SELECT {COLUMNS} FROM dead_letters WHERE {clause} ORDER BY last_failed_at DESC LIMIT {limit}");
        let mut query = sqlx::query(&sql);
        for b in &binds {
            query = b.bind(query);
        }
        let rows = self.bounded(query.fetch_all(&self.pool)).await?;
        rows.iter().map(read_row).collect()
    }

    /// How many matching dead letters are still in the queue, by (reason, vendor, account),
    /// with the oldest last failure (Unix ms) of each group.
    pub async fn dead_letter_counts(
        &self,
        q: &LetterQuery,
    ) -> Result<BTreeMap<(String, String, String), (i64, i64)>, LedgerError> {
        let (clause, binds) = where_clause(q);
        let sql = format!(
            "SELECT reason, COALESCE(vendor, '') AS vendor, COALESCE(account, '') AS account, COUNT(*) AS n, \
             MIN(last_failed_at) AS oldest \
             FROM dead_letters WHERE {clause} GROUP BY reason, COALESCE(vendor, ''), COALESCE(account, '')"
        );
        let mut query = sqlx::query(&sql);
        for b in &binds {
            query = b.bind(query);
        }
        let rows = self.bounded(query.fetch_all(&self.pool)).await?;
        let mut out = BTreeMap::new();
        for r in &rows {
            let key = "dead_letters/stats";
            out.insert(
                (text(r, "reason", key)?, text(r, "vendor", key)?, text(r, "account", key)?),
                (int(r, "n", key)?, int(r, "oldest", key)?),
            );
        }
        Ok(out)
    }
}

/// One bound value of a dynamic query.
enum Bind {
    Text(String),
    Int(i64),
}

impl Bind {
    fn bind<'q>(
        &'q self,
        q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        match self {
            Bind::Text(t) => q.bind(t.as_str()),
            Bind::Int(i) => q.bind(*i),
        }
    }
}

/// The SQL condition for a query, with numbered placeholders and what they bind.
fn where_clause(q: &LetterQuery) -> (String, Vec<Bind>) {
    let mut parts = vec!["state = 'dead'".to_owned()];
    let mut binds = Vec::new();
    let mut add = |cond: &str, b: Bind| {
        binds.push(b);
        parts.push(cond.replace('?', &format!("${}", binds.len())));
    };
    if let Some(v) = &q.vendor {
        add("vendor = ?", Bind::Text(v.clone()));
    }
    if let Some(a) = &q.account {
        add("account = ?", Bind::Text(a.clone()));
    }
    if let Some(r) = &q.reason {
        add("reason = ?", Bind::Text(r.clone()));
    }
    if let Some(j) = &q.job_id {
        add("job_id = ?", Bind::Text(j.clone()));
    }
    if let Some(s) = q.since {
        add("last_failed_at >= ?", Bind::Int(s));
    }
    if let Some(u) = q.until {
        add("last_failed_at < ?", Bind::Int(u));
    }
    (parts.join(" AND "), binds)
}

pub(super) async fn insert(tx: &mut sqlx::AnyConnection, l: &LetterRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dead_letters (letter_id, job_id, vendor, account, reason, code, message, attempts, routing_key, \
         first_failed_at, last_failed_at, state, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (letter_id) DO NOTHING",
    )
    .bind(&l.letter_id)
    .bind(l.job_id.as_deref())
    .bind(l.vendor.as_deref())
    .bind(l.account.as_deref())
    .bind(&l.reason)
    .bind(l.code.as_deref())
    .bind(l.message.as_deref())
    .bind(l.attempts)
    .bind(&l.routing_key)
    .bind(l.first_failed_at)
    .bind(l.last_failed_at)
    .bind(l.state.as_str())
    .bind(super::now_ms())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The job's dead letters left the queue. Only those dead-lettered before the move: a
/// replayed job that fails again is a new dead letter.
pub(super) async fn moved(
    tx: &mut sqlx::AnyConnection,
    job_id: &str,
    state: LetterState,
    at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE dead_letters SET state = $1, updated_at = $2 WHERE job_id = $3 AND state = 'dead' AND last_failed_at <= $2",
    )
    .bind(state.as_str())
    .bind(at)
    .bind(job_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

fn read_row(row: &AnyRow) -> Result<LetterRow, LedgerError> {
    let key = format!("dead_letters/{}", opt_text(row, "letter_id", "dead_letters")?.unwrap_or_default());
    let state_raw = text(row, "state", &key)?;
    Ok(LetterRow {
        letter_id: text(row, "letter_id", &key)?,
        job_id: opt_text(row, "job_id", &key)?,
        vendor: opt_text(row, "vendor", &key)?,
        account: opt_text(row, "account", &key)?,
        reason: text(row, "reason", &key)?,
        code: opt_text(row, "code", &key)?,
        message: opt_text(row, "message", &key)?,
        attempts: int(row, "attempts", &key)?,
        routing_key: text(row, "routing_key", &key)?,
        first_failed_at: opt_int(row, "first_failed_at", &key)?,
        last_failed_at: int(row, "last_failed_at", &key)?,
        state: LetterState::parse(&state_raw)
            .ok_or_else(|| super::corrupt(&key, format!("unknown state {state_raw:?}")))?,
    })
}
