//! Links and intents: claiming an identity before a create, settling it from outcomes, and `whois`.

use sqlx::any::AnyRow;

use crate::contract::VendorKey;

use super::{
    int, opt_text, person, text, vendor, ActiveLink, Claim, IdentityKey, Ledger, LedgerError, Link, LinkState,
    MovedLink, Person,
};

const LINK_COLUMNS: &str = "vendor, account, identity, identity_extra, tenant, employee_id, job_id, correlation_id, \
                            vendor_user_id, state, created_at, updated_at";

/// What a job asks of the ledger before its create is sent.
#[derive(Clone, Debug)]
pub struct Intent<'a> {
    pub key: &'a IdentityKey,
    pub identity_extra: Option<&'a str>,
    pub person: Option<&'a Person>,
    pub job_id: &'a str,
    pub correlation_id: Option<&'a str>,
}

impl Ledger {
    /// Records "this job is creating this identity" unless someone already holds it, and
    /// says whose it is. Written durably *before* the vendor is called, so an "already
    /// exists" after a crash can be traced back to this job.
    pub async fn claim(&self, intent: &Intent<'_>) -> Result<Claim, LedgerError> {
        let now = super::now_ms();
        let key = intent.key;
        let inserted = self
            .bounded(
                sqlx::query(
                    "INSERT INTO links (vendor, account, identity, identity_extra, tenant, employee_id, job_id, \
                     correlation_id, vendor_user_id, state, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, 'intent', $9, $9) \
                     ON CONFLICT (vendor, account, identity) DO NOTHING",
                )
                .bind(key.vendor.as_str())
                .bind(&key.account)
                .bind(&key.identity)
                .bind(intent.identity_extra)
                .bind(intent.person.map_or("", |p| p.tenant.as_str()))
                .bind(intent.person.map(|p| p.employee_id.as_str()))
                .bind(intent.job_id)
                .bind(intent.correlation_id)
                .bind(now)
                .execute(&self.pool),
            )
            .await?
            .rows_affected()
            == 1;
        let link = self.link(key).await?.ok_or_else(|| {
            LedgerError::Unavailable(format!("the link {} vanished while it was claimed; try again", describe(key)))
        })?;
        let owner = if inserted { super::Owner::Nobody } else { link.owner_relation(intent.job_id, intent.person) };
        Ok(Claim { owner, link })
    }

    /// One identity's link, if any.
    pub async fn link(&self, key: &IdentityKey) -> Result<Option<Link>, LedgerError> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM links WHERE vendor = $1 AND account = $2 AND identity = $3");
        let row = self
            .bounded(
                sqlx::query(&sql)
                    .bind(key.vendor.as_str())
                    .bind(&key.account)
                    .bind(&key.identity)
                    .fetch_optional(&self.pool),
            )
            .await?;
        row.map(|r| read_link(&r)).transpose()
    }

    /// Every link of a person with this employee id, in any tenant.
    pub async fn links_of_employee(&self, employee_id: &str) -> Result<Vec<Link>, LedgerError> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM links WHERE employee_id = $1 ORDER BY tenant, vendor, account");
        let rows = self.bounded(sqlx::query(&sql).bind(employee_id).fetch_all(&self.pool)).await?;
        rows.iter().map(read_link).collect()
    }

    /// Every link of one person (tenant and employee id), whatever its state.
    pub async fn links_of(&self, person: &Person) -> Result<Vec<Link>, LedgerError> {
        let sql = format!(
            "SELECT {LINK_COLUMNS} FROM links WHERE employee_id = $1 AND tenant = $2 ORDER BY vendor, account, identity"
        );
        let rows = self
            .bounded(sqlx::query(&sql).bind(&person.employee_id).bind(&person.tenant).fetch_all(&self.pool))
            .await?;
        rows.iter().map(read_link).collect()
    }

    /// Every link whose vendor identity (or second identifying value, such as a Glance
    /// address) is this text, in any vendor and account.
    pub async fn links_of_identity(&self, identity: &str) -> Result<Vec<Link>, LedgerError> {
        let sql = format!(
            "SELECT {LINK_COLUMNS} FROM links WHERE identity = $1 OR identity_extra = $1 ORDER BY vendor, account"
        );
        let rows = self.bounded(sqlx::query(&sql).bind(identity).fetch_all(&self.pool)).await?;
        rows.iter().map(read_link).collect()
    }

    /// How many of the account's links are active: what the safeguard's `max_share` is a
    /// share of.
    pub async fn count_active(&self, vendor: VendorKey, account: &str) -> Result<i64, LedgerError> {
        let sql = "SELECT COUNT(*) AS n FROM links WHERE vendor = $1 AND account = $2 AND state = 'active'";
        let row = self.bounded(sqlx::query(sql).bind(vendor.as_str()).bind(account).fetch_one(&self.pool)).await?;
        int(&row, "n", "links")
    }

    /// How many links are in each state; for the metrics and `stats`.
    pub async fn count_links(&self) -> Result<i64, LedgerError> {
        let row = self.bounded(sqlx::query("SELECT COUNT(*) AS n FROM links").fetch_one(&self.pool)).await?;
        int(&row, "n", "links")
    }
}

/// The writes the projection makes for one outcome, inside its batch's transaction.
pub(super) async fn settle_active(tx: &mut sqlx::AnyConnection, s: &ActiveLink) -> Result<(), sqlx::Error> {
    // An intent becomes this job's active link; a link someone else created keeps its
    // owner (the vendor proved this job's user is the same), and only learns what it lacked.
    sqlx::query(
        "INSERT INTO links (vendor, account, identity, identity_extra, tenant, employee_id, job_id, correlation_id, \
         vendor_user_id, state, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active', $10, $10) \
         ON CONFLICT (vendor, account, identity) DO UPDATE SET \
           state = CASE WHEN links.state = 'intent' THEN 'active' ELSE links.state END, \
           identity_extra = COALESCE(links.identity_extra, excluded.identity_extra), \
           tenant = CASE WHEN links.employee_id IS NULL THEN excluded.tenant ELSE links.tenant END, \
           employee_id = COALESCE(links.employee_id, excluded.employee_id), \
           vendor_user_id = COALESCE(excluded.vendor_user_id, links.vendor_user_id), \
           updated_at = excluded.updated_at",
    )
    .bind(s.key.vendor.as_str())
    .bind(&s.key.account)
    .bind(&s.key.identity)
    .bind(s.identity_extra.as_deref())
    .bind(s.person.as_ref().map_or("", |p| p.tenant.as_str()))
    .bind(s.person.as_ref().map(|p| p.employee_id.as_str()))
    .bind(&s.job_id)
    .bind(s.correlation_id.as_deref())
    .bind(s.vendor_user_id.as_deref())
    .bind(s.at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A suspend, restore or delete outcome moves the link to the vendor's state. A link the
/// ledger never saw (a user made before it, or by hand) is recorded with the job's person,
/// so a later leave finds it. Events can be projected out of order across replicas: a move
/// older than the link's last change is not applied, and a claim in flight keeps its intent.
pub(super) async fn moved(tx: &mut sqlx::AnyConnection, m: &MovedLink) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO links (vendor, account, identity, identity_extra, tenant, employee_id, job_id, correlation_id, \
         vendor_user_id, state, created_at, updated_at) \
         VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, NULL, $8, $9, $9) \
         ON CONFLICT (vendor, account, identity) DO UPDATE SET \
           state = CASE WHEN links.state <> 'intent' AND links.updated_at <= excluded.updated_at \
                        THEN excluded.state ELSE links.state END, \
           updated_at = CASE WHEN links.updated_at < excluded.updated_at THEN excluded.updated_at \
                             ELSE links.updated_at END",
    )
    .bind(m.key.vendor.as_str())
    .bind(&m.key.account)
    .bind(&m.key.identity)
    .bind(m.person.as_ref().map_or("", |p| p.tenant.as_str()))
    .bind(m.person.as_ref().map(|p| p.employee_id.as_str()))
    .bind(&m.job_id)
    .bind(m.correlation_id.as_deref())
    .bind(m.state.as_str())
    .bind(m.at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A job that failed for good no longer holds the identity it claimed.
pub(super) async fn release_intent(
    tx: &mut sqlx::AnyConnection,
    key: &IdentityKey,
    job_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM links WHERE vendor = $1 AND account = $2 AND identity = $3 AND job_id = $4 AND state = 'intent'",
    )
    .bind(key.vendor.as_str())
    .bind(&key.account)
    .bind(&key.identity)
    .bind(job_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

fn describe(key: &IdentityKey) -> String {
    format!("{}/{}/{}", key.vendor, key.account, key.identity)
}

fn read_link(row: &AnyRow) -> Result<Link, LedgerError> {
    // The key names the row in any error, before anything else is read.
    let key = format!(
        "links/{}/{}/{}",
        opt_text(row, "vendor", "links")?.unwrap_or_default(),
        opt_text(row, "account", "links")?.unwrap_or_default(),
        opt_text(row, "identity", "links")?.unwrap_or_default()
    );
    let state_raw = text(row, "state", &key)?;
    Ok(Link {
        vendor: vendor(row, "vendor", &key)?,
        account: text(row, "account", &key)?,
        identity: text(row, "identity", &key)?,
        identity_extra: opt_text(row, "identity_extra", &key)?,
        person: person(text(row, "tenant", &key)?, opt_text(row, "employee_id", &key)?),
        job_id: text(row, "job_id", &key)?,
        correlation_id: opt_text(row, "correlation_id", &key)?,
        vendor_user_id: opt_text(row, "vendor_user_id", &key)?,
        state: LinkState::parse(&state_raw)
            .ok_or_else(|| super::corrupt(&key, format!("unknown state {state_raw:?}")))?,
        created_at: int(row, "created_at", &key)?,
        updated_at: int(row, "updated_at", &key)?,
    })
}
