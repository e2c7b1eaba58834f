//! The ledger's queries at size: `dlq stats` and a filtered `dlq list` over a dead-letter index, `whois` over the links.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use provisioner::commands::dlq::{self, Action, Filter, Source};
use provisioner::commands::whois;
use provisioner::config::Settings;
use provisioner::contract::VendorKey;
use provisioner::ledger::{LetterRow, LetterState, Write};
use serde::Serialize;

use crate::ledger_db::{LedgerBackend, LedgerDb};
use crate::numbers::round;

/// How many times each query runs; the median is the headline (the first run of a command
/// also connects, as the CLI does every time).
const REPEATS: usize = 7;
/// Rows per transaction while seeding the dead-letter index.
const LETTER_BATCH: usize = 2_000;
/// The error classes the seeded dead letters cycle through (plus the broker's own reason).
const REASONS: [&str; 5] = ["conflict", "rejected", "invalid", "unavailable", "delivery_limit"];

/// What one backend answered.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct QueryRun {
    pub(crate) backend: &'static str,
    pub(crate) dead_letters: usize,
    pub(crate) seed_dead_letters_s: f64,
    /// `dlq stats --source ledger`, the real command's code (connect, query, print).
    pub(crate) dlq_stats_s: f64,
    pub(crate) dlq_stats_max_s: f64,
    /// `dlq list --source ledger --vendor clienttoolbox --class conflict`, every row printed.
    pub(crate) dlq_list_s: f64,
    pub(crate) dlq_list_max_s: f64,
    pub(crate) dlq_list_rows: usize,
    pub(crate) links: usize,
    pub(crate) seed_links_s: f64,
    /// `whois <employee id>` (three links each), query and print.
    pub(crate) whois_employee_ms: f64,
    pub(crate) whois_employee_max_ms: f64,
    /// `whois <vendor identity>` (a ClientToolbox user name or a Glance address).
    pub(crate) whois_identity_ms: f64,
    pub(crate) whois_identity_max_ms: f64,
}

pub(crate) async fn run(
    backend: LedgerBackend,
    postgres_admin: &str,
    dead_letters: usize,
    links: usize,
) -> anyhow::Result<QueryRun> {
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let db = LedgerDb::create(backend, postgres_admin, &name).await?;
    let result = measure(&db, dead_letters, links).await;
    db.remove().await;
    result
}

async fn measure(db: &LedgerDb, dead_letters: usize, links: usize) -> anyhow::Result<QueryRun> {
    let seed_dead_letters_s = seed_dead_letters(db, dead_letters).await?;
    let seed_links_s = seed_links(db, links).await?;
    // The CLI's own settings: the shipped defaults (a 2 s `ledger.timeout`), this ledger.
    let mut settings = Settings::default();
    settings.ledger.url = db.url.clone();
    let stats = Filter::default();
    let (dlq_stats, _) = repeat(REPEATS, || {
        cli(&settings, Action::Stats { filter: stats.clone(), json: false, source: Source::Ledger })
    })
    .await?;
    let list = Filter { vendor: Some(VendorKey::Clienttoolbox), class: Some("conflict".into()), ..Filter::default() };
    let (dlq_list, lines) =
        repeat(REPEATS, || cli(&settings, Action::List { filter: list.clone(), json: false, source: Source::Ledger }))
            .await?;
    let ledger = db.ledger(settings.ledger.timeout)?;
    let employees = links.div_ceil(3).max(1);
    let pick = |k: usize| (k * 7_919 + 13) % employees;
    // The first call connects and checks the migrations: not what a lookup costs.
    who(&ledger, "E0".into()).await?;
    let mut n = 0;
    let (whois_employee, found) = repeat(REPEATS * 3, || {
        n += 1;
        who(&ledger, format!("E{}", pick(n)))
    })
    .await?;
    if found == 0 {
        bail!("whois found no link: the seeding is wrong");
    }
    let mut n = 0;
    let (whois_identity, _) = repeat(REPEATS * 3, || {
        n += 1;
        // Alternately a ClientToolbox user name and a Glance address (its second key).
        let e = pick(n + 1_000);
        who(&ledger, if n % 2 == 0 { format!("user_{e}") } else { format!("u{e}.acme.glance.net") })
    })
    .await?;
    let ms = |d: Duration| round(d.as_secs_f64() * 1000.0, 2);
    let s = |d: Duration| round(d.as_secs_f64(), 3);
    Ok(QueryRun {
        backend: db.backend.as_str(),
        dead_letters,
        seed_dead_letters_s,
        dlq_stats_s: s(median(&dlq_stats)),
        dlq_stats_max_s: s(max(&dlq_stats)),
        dlq_list_s: s(median(&dlq_list)),
        dlq_list_max_s: s(max(&dlq_list)),
        // The header and the closing line are not rows.
        dlq_list_rows: lines.saturating_sub(2),
        links,
        seed_links_s,
        whois_employee_ms: ms(median(&whois_employee)),
        whois_employee_max_ms: ms(max(&whois_employee)),
        whois_identity_ms: ms(median(&whois_identity)),
        whois_identity_max_ms: ms(max(&whois_identity)),
    })
}

/// Runs `call` `times` times; returns each run's time and the last run's count.
async fn repeat<F, Fut>(times: usize, mut call: F) -> anyhow::Result<(Vec<Duration>, usize)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<usize>>,
{
    let mut took = Vec::with_capacity(times);
    let mut last = 0;
    for _ in 0..times {
        let started = Instant::now();
        last = call().await?;
        took.push(started.elapsed());
    }
    Ok((took, last))
}

/// One `dlq` command as `provisioner dlq …` runs it (it opens the ledger from the settings
/// each time); returns how many lines it printed.
async fn cli(settings: &Settings, action: Action) -> anyhow::Result<usize> {
    let mut out = Vec::with_capacity(1 << 20);
    dlq::execute(settings.clone(), action, &mut out).await.map_err(|e| anyhow::anyhow!("dlq: {e}"))?;
    Ok(out.iter().filter(|b| **b == b'\n').count())
}

/// One `whois`, printed as the CLI prints it; returns how many links it found.
async fn who(ledger: &provisioner::ledger::Ledger, query: String) -> anyhow::Result<usize> {
    let w = whois::whois(ledger, &query).await.with_context(|| format!("whois {query}"))?;
    let mut out = Vec::new();
    whois::print_whois(&mut out, &w)?;
    Ok(w.links.len())
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or_default()
}

fn max(v: &[Duration]) -> Duration {
    v.iter().max().copied().unwrap_or_default()
}

/// Seeds the dead-letter index through the service's own write path, [`Ledger::apply`]
/// with `Write::Letter` batches, as the projection writes it; returns the seconds it took.
async fn seed_dead_letters(db: &LedgerDb, n: usize) -> anyhow::Result<f64> {
    let ledger = db.ledger(Duration::from_secs(120))?;
    let started = Instant::now();
    let now = provisioner::ledger::now_ms();
    let week_ms = 7 * 24 * 3_600_000;
    for chunk in (0..n).collect::<Vec<_>>().chunks(LETTER_BATCH) {
        let writes: Vec<Write> = chunk
            .iter()
            .map(|&i| {
                let vendor = VendorKey::ALL[i % 3];
                let reason = REASONS[(i / 3) % REASONS.len()];
                let last = now - (week_ms * (n - i) as i64) / n as i64;
                Write::Letter(LetterRow {
                    letter_id: format!("letter-{i:08}"),
                    job_id: Some(format!("job-{i:08}")),
                    vendor: Some(vendor.as_str().into()),
                    account: Some(format!("bench-{vendor}")),
                    reason: reason.into(),
                    code: Some(format!("{reason}_code")),
                    message: Some(format!("{vendor} said no to job-{i:08}: the identity is held by another user")),
                    attempts: 1 + (i % 5) as i64,
                    routing_key: format!("job.{vendor}"),
                    first_failed_at: Some(last - 60_000),
                    last_failed_at: last,
                    state: LetterState::Dead,
                })
            })
            .collect();
        ledger.apply(&writes).await.context("seeding dead letters")?;
    }
    let seeded = db.count("SELECT COUNT(*) FROM dead_letters").await?;
    if seeded != n as i64 {
        bail!("seeded {seeded} dead letters instead of {n}");
    }
    Ok(round(started.elapsed().as_secs_f64(), 2))
}

/// Seeds `n` active links, three per employee (one per vendor), in one statement of SQL
/// both backends accept; then `ANALYZE`, as a database that has lived a while has its
/// statistics. Returns the seconds it took.
async fn seed_links(db: &LedgerDb, n: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let now = provisioner::ledger::now_ms();
    let last = n.saturating_sub(1);
    let sql = format!(
        "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {last}) \
         INSERT INTO links (vendor, account, identity, identity_extra, tenant, employee_id, job_id, correlation_id, \
         vendor_user_id, state, created_at, updated_at) \
         SELECT CASE i % 3 WHEN 0 THEN 'glance' WHEN 1 THEN 'netsapiens' ELSE 'clienttoolbox' END, \
         CASE i % 3 WHEN 0 THEN 'bench-glance' WHEN 1 THEN 'bench-netsapiens' ELSE 'bench-clienttoolbox' END, \
         CASE i % 3 WHEN 0 THEN 'G' || (i / 3) WHEN 1 THEN 'u' || (i / 3) || '@bench.example' \
         ELSE 'user_' || (i / 3) END, \
         CASE i % 3 WHEN 0 THEN 'u' || (i / 3) || '.acme.glance.net' END, \
         'acme', 'E' || (i / 3), 'job-' || i, 'corr-' || i, 'v' || i, 'active', {now}, {now} FROM s"
    );
    if n > 0 {
        sqlx::raw_sql(&sql).execute(&db.raw).await.context("seeding links")?;
    }
    sqlx::raw_sql("ANALYZE").execute(&db.raw).await?;
    let seeded = db.count("SELECT COUNT(*) FROM links").await?;
    if seeded != n as i64 {
        bail!("seeded {seeded} links instead of {n}");
    }
    Ok(round(started.elapsed().as_secs_f64(), 2))
}
