//! The chaos suite: over 2,000 create jobs and a few hundred update, suspend, restore and
//! delete jobs through the real worker process, RabbitMQ and the vendor sandboxes while
//! injected faults, SIGKILLs, a forced disconnect, a SIGTERM and a vendor outage hit them;
//! proves nothing is lost, nothing is created twice, no change is made twice, every user ends
//! as its last job intended and retries keep their budget, and prints a summary table (also
//! written to `target/chaos-summary.md`).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{
    force_close_connections, jobs_in_flight, messages_in, test_settings, EventRecorder, Probe, Seen, TestVendors,
    WorkerProcess,
};
use lapin::options::BasicGetOptions;
use provisioner::config::Settings;
use provisioner::contract::{JobKind, VendorKey};
use provisioner::pipeline::sample_job;
use provisioner::retry::tier_name;
use provisioner::sandbox::Faults;
use provisioner::transport::headers as h;
use provisioner::transport::rabbitmq::{self, ConfirmPublisher};
use provisioner::transport::{Headers, Outbound, OutboundKind, Publisher};
use provisioner::vendors::{build_adapters, CallContext};
use serde_json::{json, Value};
use tokio::time::Instant;

/// Distinct job ids; every 20th is invalid and another every 20th is published twice.
const DISTINCT_JOBS: usize = 2_100;
/// Lifecycle jobs per vendor and kind, each for a user of its own that the sandboxes hold
/// before the storm. One job per user: a redelivered or parked copy of a suspend can then
/// never run after that user's restore, so what each user should end as is well defined.
const CHANGES_PER_KIND: usize = 20;
const CHANGE_KINDS: [JobKind; 4] =
    [JobKind::UpdateUser, JobKind::SuspendUser, JobKind::RestoreUser, JobKind::DeleteUser];
/// What every `update_user` job of the storm sets (the users are created as "Jane").
const NEW_FIRST_NAME: &str = "Janet";
/// Messages per second the producer publishes, so the chaos below meets jobs in flight.
const PUBLISH_RATE: f64 = 45.0;
const PUBLISH_BATCH: usize = 15;
/// The one vendor that goes fully down, served by sandboxes of its own.
const OUTAGE_VENDOR: VendorKey = VendorKey::Netsapiens;
const OUTAGE: Duration = Duration::from_secs(34);
/// Shorter than the sandboxes' `hang`, so a hang is a client-side timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// How long an event published just before a crash may take to reach the observer.
const CRASH_SLACK: Duration = Duration::from_secs(2);
const WAIT: Duration = Duration::from_secs(30);
/// Once publishing is over: the outage's jobs still climb the retry tiers.
const SETTLE_WAIT: Duration = Duration::from_secs(180);

/// 10% 5xx, 5% 429 with Retry-After, 2% hangs past the request timeout; a little latency and
/// a delayed answer, so a kill often lands after the vendor created the user but before the
/// worker heard of it.
fn base_faults() -> Faults {
    Faults {
        latency: Duration::from_millis(50),
        response_delay: Duration::from_millis(50),
        error_rate: 0.10,
        throttle_rate: 0.05,
        retry_after: Duration::from_secs(1),
        hang_rate: 0.02,
        hang: Duration::from_secs(3),
        ..Faults::default()
    }
}

fn account_name(vendor: VendorKey) -> String {
    format!("acme-{vendor}")
}

fn chaos_settings(main: &TestVendors, down: &TestVendors) -> Settings {
    let mut s = test_settings();
    for vendor in VendorKey::ALL {
        let sandboxes = if vendor == OUTAGE_VENDOR { down } else { main };
        let mut account = sandboxes.account(vendor);
        // Every lifecycle kind allowed: Glance's and NetSapiens' only delete is permanent,
        // ClientToolbox keeps its default (it marks the user deleted).
        if vendor != VendorKey::Clienttoolbox {
            account.settings.insert("hard_delete".into(), "true".into());
        }
        if let Some((field, on, off)) = suspension(vendor) {
            account.settings.insert("suspend".into(), json!({ field: on }).to_string());
            account.settings.insert("restore".into(), json!({ field: off }).to_string());
        }
        s.accounts.insert(account_name(vendor), account);
        s.vendors.get_mut(vendor).request_timeout = REQUEST_TIMEOUT;
    }
    // The storm's 120 removals are all meant, and most of its users are not in the ledger
    // (they were made before the storm): the safeguard, which has its own suite
    // (tests/safeguard.rs), would hold them for an operator.
    s.safeguard.enabled = false;
    // 79 s of tiers: a job that meets the first second of the outage has used six of them
    // when it ends and still gets three more tries, so no valid job runs out of tiers.
    s.retry.tiers = [1, 2, 4, 8, 16, 16, 16, 16].map(Duration::from_secs).to_vec();
    s.retry.inline.max_attempts = 4;
    s.retry.inline.initial_delay = Duration::from_millis(50);
    s.retry.inline.max_delay = Duration::from_millis(500);
    // Long enough to honour one Retry-After of 1 s; a second one goes to the tiers.
    s.retry.inline.budget = Duration::from_millis(2_500);
    // The injected 429s are random, not a limit the worker could stay under: with the
    // shipped pace (Glance one call at a time, 10/s, each 429 pausing the account for its
    // Retry-After) the suite would measure the pause, not the worker. The slow-down still
    // runs on every 429, from a rate the load never reaches, and briefer pauses.
    for vendor in VendorKey::ALL {
        let v = s.vendors.get_mut(vendor);
        v.account_rate = "200/s".parse().unwrap();
        v.account_concurrency = 8;
    }
    s.rate_limit.recovery_interval = Duration::from_secs(1);
    s.rate_limit.recovery_step = 0.2;
    s.rate_limit.min_share = 0.1;
    s.rate_limit.max_pause = Duration::from_millis(200);
    s
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Valid,
    Invalid,
    /// Valid, and published twice.
    Twice,
}

struct Planned {
    vendor: VendorKey,
    identity: String,
    kind: Kind,
}

/// A lifecycle job of the storm, for a user the sandboxes held before it began.
struct Change {
    vendor: VendorKey,
    identity: String,
    kind: JobKind,
}

impl Change {
    /// The outcome of the job that made the change itself (a repeat is `unchanged`).
    fn outcome(&self) -> &'static str {
        match self.kind {
            JobKind::UpdateUser => "updated",
            JobKind::SuspendUser => "suspended",
            JobKind::RestoreUser => "restored",
            JobKind::DeleteUser => "deleted",
            JobKind::CreateUser => unreachable!("the storm's changes are lifecycle jobs"),
        }
    }

    fn body(&self, job_id: &str) -> Value {
        let mut user = json!({ self.vendor.identity_field(): self.identity });
        if self.kind == JobKind::UpdateUser {
            user[first_name_field(self.vendor)] = NEW_FIRST_NAME.into();
        }
        json!({"job_id": job_id, "kind": self.kind.as_str(), "vendor": self.vendor,
               "account": account_name(self.vendor), "correlation_id": format!("corr-{job_id}"),
               "requested_at": "2026-11-22T09:30:00Z", "user": user})
    }

    /// Whether the user, as the sandbox shows it (`None`: gone), is what this job intended.
    fn intended(&self, user: Option<&Value>) -> bool {
        match (self.kind, user) {
            (JobKind::DeleteUser, gone) => gone.is_none(),
            (_, None) => false,
            (JobKind::UpdateUser, Some(u)) => {
                u[first_name_field(self.vendor)] == NEW_FIRST_NAME && !shows_suspended(self.vendor, u)
            }
            (JobKind::SuspendUser, Some(u)) => shows_suspended(self.vendor, u),
            (_, Some(u)) => !shows_suspended(self.vendor, u),
        }
    }
}

fn first_name_field(vendor: VendorKey) -> &'static str {
    match vendor {
        VendorKey::Glance => "UserFirst",
        VendorKey::Netsapiens => "name-first-name",
        VendorKey::Clienttoolbox => "user_first_name",
    }
}

/// For the vendors that document no suspend: the field the account's `suspend` and `restore`
/// settings set, and its suspended and active values. Glance has a suspended flag of its own.
fn suspension(vendor: VendorKey) -> Option<(&'static str, &'static str, &'static str)> {
    match vendor {
        VendorKey::Glance => None,
        VendorKey::Netsapiens => Some(("user-scope", "No Portal", "Basic User")),
        VendorKey::Clienttoolbox => Some(("allowed_campaigns", "none", "all")),
    }
}

/// Whether a sandbox user (under its wire names) is suspended.
fn shows_suspended(vendor: VendorKey, user: &Value) -> bool {
    match suspension(vendor) {
        None => user["UserSuspended"] == true,
        Some((field, on, _)) => user[field] == on,
    }
}

type Plan = (BTreeMap<String, Planned>, BTreeMap<String, Change>, Vec<(VendorKey, Value)>);

/// The create jobs, the lifecycle jobs, and the messages in publishing order: each duplicate
/// follows its original after 0 to 39 other jobs, so some are processed at the same time and
/// some after; the lifecycle jobs are spread evenly among the creates, so each disruption and
/// the outage meet some of every kind.
fn plan() -> Plan {
    let mut jobs = BTreeMap::new();
    let mut changes = BTreeMap::new();
    let mut lifecycle = (0..CHANGES_PER_KIND * CHANGE_KINDS.len() * 3).map(|j| {
        let vendor = VendorKey::ALL[j % 3];
        let kind = CHANGE_KINDS[(j / 3) % CHANGE_KINDS.len()];
        let identity = match vendor {
            VendorKey::Glance => format!("LC-{j:05}"),
            VendorKey::Netsapiens => format!("{}", 6_000_000 + j),
            VendorKey::Clienttoolbox => format!("chaos_lc_{j}"),
        };
        (format!("chaos-lc-{j:05}-{kind}-{vendor}"), Change { vendor, identity, kind })
    });
    let every = DISTINCT_JOBS / lifecycle.len();
    let mut messages = Vec::new();
    let mut pending: Vec<(usize, VendorKey, serde_json::Value)> = Vec::new();
    for i in 0..DISTINCT_JOBS {
        let vendor = VendorKey::ALL[i % 3];
        let identity = match vendor {
            VendorKey::Glance => format!("EMP-{i:05}"),
            VendorKey::Netsapiens => format!("{}", 5_000_000 + i),
            VendorKey::Clienttoolbox => format!("chaos_{i}"),
        };
        let kind = match i % 20 {
            3 => Kind::Invalid,
            11 => Kind::Twice,
            _ => Kind::Valid,
        };
        let job_id = format!("chaos-{i:05}-{vendor}");
        let mut body = sample_job(&job_id, vendor, &account_name(vendor), &identity);
        if kind == Kind::Invalid {
            // Two ways of breaking the contract: a field it does not know, a value it refuses.
            if i % 40 == 3 {
                body["user"]["nickname"] = "JD".into();
            } else {
                body["requested_at"] = "yesterday".into();
            }
        }
        if kind == Kind::Twice {
            pending.push((i + (i / 20) % 40, vendor, body.clone()));
        }
        messages.push((vendor, body));
        jobs.insert(job_id, Planned { vendor, identity, kind });
        if i % every == every / 2 {
            if let Some((id, change)) = lifecycle.next() {
                messages.push((change.vendor, change.body(&id)));
                changes.insert(id, change);
            }
        }
        let (due, later): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(at, _, _)| *at <= i);
        messages.extend(due.into_iter().map(|(_, v, b)| (v, b)));
        pending = later;
    }
    messages.extend(pending.into_iter().map(|(_, v, b)| (v, b)));
    for (id, change) in lifecycle {
        messages.push((change.vendor, change.body(&id)));
        changes.insert(id, change);
    }
    (jobs, changes, messages)
}

/// Puts each lifecycle job's user in its sandbox as the vendor would hold it before the
/// storm: created as [`sample_job`] makes it, and suspended for a restore. Through the
/// worker's own adapters, with the sandboxes' faults off for the moment.
async fn seed_users(settings: &Settings, changes: &BTreeMap<String, Change>) {
    use futures_util::stream::{self, StreamExt as _};
    let adapters = build_adapters(settings).expect("the chaos accounts build");
    let run = |body: Value| {
        let adapters = &adapters;
        async move {
            let job = provisioner::job::decode(body.to_string().as_bytes())
                .unwrap_or_else(|e| panic!("a seeding job does not decode: {e:?}\n{body}"));
            let receipt = adapters[job.account.as_str()].run(&job, CallContext::default()).await;
            let receipt = receipt.unwrap_or_else(|e| panic!("seeding {}: {}: {}", job.id.as_str(), e.code, e.message));
            assert!(!receipt.existing, "{}: the sandbox already had the state being seeded", job.id.as_str());
        }
    };
    let seeds = |suspend: bool| {
        changes.iter().filter(move |(_, c)| !suspend || c.kind == JobKind::RestoreUser).map(move |(id, c)| {
            let seed_id = format!("seed-{id}");
            match suspend {
                false => sample_job(&seed_id, c.vendor, &account_name(c.vendor), &c.identity),
                true => Change { kind: JobKind::SuspendUser, identity: c.identity.clone(), ..*c }.body(&seed_id),
            }
        })
    };
    for suspend in [false, true] {
        stream::iter(seeds(suspend).map(run)).buffer_unordered(16).collect::<Vec<()>>().await;
    }
}

fn job_message(settings: &Settings, vendor: VendorKey, body: &Value) -> Outbound {
    let kind = body["kind"].as_str().and_then(JobKind::parse).unwrap_or(JobKind::CreateUser);
    Outbound {
        kind: OutboundKind::Job,
        exchange: settings.topology.jobs_exchange.clone(),
        routing_key: kind.routing_key(vendor),
        body: body.to_string().into_bytes(),
        message_id: body["job_id"].as_str().map(str::to_owned),
        content_type: Some("application/json".into()),
        timestamp: Some(chrono::Utc::now().timestamp() as u64),
        headers: Headers::new(),
    }
}

/// Publishes every message at `PUBLISH_RATE` with confirms; returns when each job id was
/// first published.
async fn produce(
    publisher: ConfirmPublisher,
    settings: Settings,
    messages: Vec<(VendorKey, serde_json::Value)>,
) -> HashMap<String, Instant> {
    let started = Instant::now();
    let mut first_published = HashMap::new();
    for (n, batch) in messages.chunks(PUBLISH_BATCH).enumerate() {
        tokio::time::sleep_until(started + Duration::from_secs_f64((n * PUBLISH_BATCH) as f64 / PUBLISH_RATE)).await;
        let now = Instant::now();
        let outs: Vec<Outbound> = batch.iter().map(|(v, b)| job_message(&settings, *v, b)).collect();
        let confirmed = futures_util::future::join_all(outs.iter().map(|m| publisher.publish(m))).await;
        for (m, r) in outs.iter().zip(confirmed) {
            let id = m.message_id.clone().unwrap();
            r.unwrap_or_else(|e| panic!("the broker did not confirm job {id}: {e}"));
            first_published.entry(id).or_insert(now);
        }
    }
    first_published
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Kill,
    ForcedClose,
    Term,
}

/// Seconds after publishing starts.
const SCRIPT: [(u64, Step); 4] = [(4, Step::Kill), (13, Step::ForcedClose), (20, Step::Kill), (28, Step::Term)];
const OUTAGE_AT: u64 = 8;

/// A SIGKILL, a forced close or a SIGTERM, from when it began to when the worker was whole
/// again.
#[derive(Debug)]
struct Disruption {
    what: Step,
    window: Window,
}

/// When a disruption lasted, on the test's clock (for the events it records) and on the wall
/// clock (for the worker's log lines).
#[derive(Clone, Copy, Debug)]
struct Window {
    from: Instant,
    to: Instant,
    wall_from: DateTime<Utc>,
    wall_to: DateTime<Utc>,
}

impl Window {
    /// Opens now; [`Window::close`] ends it.
    fn open() -> Self {
        let (now, wall) = (Instant::now(), Utc::now());
        Self { from: now, to: now, wall_from: wall, wall_to: wall }
    }

    fn close(self) -> Self {
        Self { to: Instant::now(), wall_to: Utc::now(), ..self }
    }

    /// Whether two endings of a job lie on either side of this window (give or take the
    /// time an event published just before it needs to arrive).
    fn between(&self, first: Instant, second: Instant) -> bool {
        first <= self.to + CRASH_SLACK && second >= self.from
    }

    /// Whether a delivery parked (logged) at `at` may still have been settling in it.
    fn caught_parking(&self, at: DateTime<Utc>) -> bool {
        let slack = chrono::Duration::from_std(CRASH_SLACK).expect("a small duration");
        at >= self.wall_from - slack && at <= self.wall_to + slack
    }
}

/// Why a job published once may end more than once: a disruption between two of its endings
/// (the kill fell between an event's confirm and its ack), or a disruption that caught one of
/// its deliveries being parked: once the tier copy is confirmed but before the ack, the job
/// lives on twice, as the copy and as the delivery handed back to the broker, and each copy
/// ends, possibly long after the disruption (the outage's jobs stay parked until it is over).
fn repeated_ending_explained(endings: &[Instant], parked: &[DateTime<Utc>], disruptions: &[Window]) -> bool {
    let across = endings.windows(2).all(|pair| disruptions.iter().any(|d| d.between(pair[0], pair[1])));
    across || split_while_parked(parked, disruptions)
}

fn split_while_parked(parked: &[DateTime<Utc>], disruptions: &[Window]) -> bool {
    parked.iter().any(|at| disruptions.iter().any(|d| d.caught_parking(*at)))
}

/// Waits until the worker has jobs in flight, so that a disruption hits work, not idleness.
async fn wait_busy(admin: std::net::SocketAddr, worker: &WorkerProcess) {
    let deadline = Instant::now() + WAIT;
    while jobs_in_flight(admin).await < 2 {
        assert!(Instant::now() < deadline, "the worker never had jobs in flight:\n{}", worker.all_logs());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn count_logged(worker: &WorkerProcess, needle: &str) -> usize {
    worker.all_logs().lines().filter(|l| l.contains(needle)).count()
}

/// Every dead letter, taken: its job id and `provisioner-reason`.
async fn drain_dead_letters(probe: &Probe) -> Vec<(String, String)> {
    let queue = probe.settings.topology.dead_queue.as_str();
    let mut out = Vec::new();
    while let Some(m) = probe.channel.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.unwrap() {
        let msg = rabbitmq::inbound(&m.delivery);
        let id = h::text(&msg.headers, h::JOB_ID).map(str::to_owned).or(msg.message_id.clone()).unwrap_or_default();
        out.push((id, h::text(&msg.headers, h::REASON).unwrap_or("(none)").to_owned()));
    }
    out
}

/// What the worker logged about retries, across every process of the run.
#[derive(Default)]
struct RetryLog {
    /// `(calls, retry_span_ms, budget_ms)` of each "inline retries finished".
    inline: Vec<(u64, u64, u64)>,
    /// Tier parkings by vendor.
    parked: BTreeMap<String, usize>,
    /// Parkings without using up a tier (open circuit, busy account) by vendor.
    parked_free: BTreeMap<String, usize>,
    /// `circuit opened` warnings by vendor.
    circuits_opened: BTreeMap<String, usize>,
    /// 429 slow-downs of an account.
    slowdowns: usize,
    /// Job ids with a failed vendor call: the call may have been served (a timeout), so the
    /// user may exist while no `created` was announced.
    failed_calls: std::collections::HashSet<String>,
    /// When each job was parked in a retry tier, by the worker's clock.
    parked_at: HashMap<String, Vec<DateTime<Utc>>>,
}

impl RetryLog {
    fn read(logs: &str) -> Self {
        let mut r = RetryLog::default();
        for v in logs.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
            let job = v["span"]["job_id"].as_str().map(str::to_owned);
            let message = v["message"].as_str().unwrap_or_default();
            if let (Some(job), true) = (&job, message.contains("; parked in a retry tier")) {
                let at = v["timestamp"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok());
                let at = at.unwrap_or_else(|| panic!("a log line without a readable timestamp: {v}"));
                r.parked_at.entry(job.clone()).or_default().push(at.with_timezone(&Utc));
            }
            match v["message"].as_str() {
                Some("inline retries finished") => {
                    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} missing in {v}"));
                    r.inline.push((n("calls"), n("retry_span_ms"), n("budget_ms")));
                }
                Some("transient failure; parked in a retry tier") => {
                    *r.parked.entry(v["span"]["vendor"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
                }
                // The job whose failure opened the breaker is parked this way too, so its
                // call counts as failed.
                Some(
                    "circuit open; parked in a retry tier without using it up"
                    | "account busy; parked in a retry tier without using it up",
                ) => {
                    *r.parked_free.entry(v["span"]["vendor"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
                }
                Some("circuit opened: jobs for this account are parked in the retry tiers") => {
                    *r.circuits_opened.entry(v["vendor"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
                    continue;
                }
                Some("vendor throttled the account; slowing down") => {
                    r.slowdowns += 1;
                    continue;
                }
                _ => continue,
            }
            r.failed_calls.extend(job);
        }
        r
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_jobs_survive_faults_kills_a_disconnect_a_sigterm_and_an_outage() {
    let run_started = Instant::now();
    let main = TestVendors::start(base_faults()).await;
    let down = TestVendors::start(base_faults()).await;
    let settings = chaos_settings(&main, &down);
    let sandboxes_of = |vendor| if vendor == OUTAGE_VENDOR { &down } else { &main };
    let probe = Probe::new(&settings).await;
    let recorder = EventRecorder::start(&probe).await;
    let (jobs, changes, messages) = plan();
    for sandboxes in [&main, &down] {
        sandboxes.sandboxes.faults.set(Faults::default());
    }
    seed_users(&settings, &changes).await;
    for sandboxes in [&main, &down] {
        sandboxes.sandboxes.faults.set(base_faults());
    }
    // What each user took before the storm (a restore's user, its seeding suspend): the
    // storm's writes are counted from here.
    let writes_of = |c: &Change| {
        let s = &sandboxes_of(c.vendor).sandboxes;
        (s.updates(c.vendor, &c.identity), s.deletions(c.vendor, &c.identity))
    };
    let seeded: HashMap<&str, (u32, u32)> = changes.iter().map(|(id, c)| (id.as_str(), writes_of(c))).collect();
    for (id, c) in &changes {
        let user = sandboxes_of(c.vendor).sandboxes.user(c.vendor, &c.identity);
        let user = user.unwrap_or_else(|| panic!("{id}: the user was not seeded"));
        assert_eq!(shows_suspended(c.vendor, &user), c.kind == JobKind::RestoreUser, "{id}: seeded as {user}");
        assert!(!c.intended(Some(&user)), "{id}: the seeded user already is as the job intends: {user}");
    }
    let mut published: HashMap<String, usize> = HashMap::new();
    for (_, body) in &messages {
        *published.entry(body["job_id"].as_str().unwrap().to_owned()).or_default() += 1;
    }

    let mut worker = WorkerProcess::start(&settings);
    let mut admin = worker.admin_when_consuming().await;
    let mut retired: Vec<WorkerProcess> = Vec::new();
    let mut disruptions: Vec<Disruption> = Vec::new();
    let t0 = Instant::now();
    let producer = tokio::spawn(produce(probe.publisher.clone(), settings.clone(), messages.clone()));
    let outage = {
        let faults = down.sandboxes.faults.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(t0 + Duration::from_secs(OUTAGE_AT)).await;
            faults.set(Faults { outage: true, ..base_faults() });
            let began = Instant::now();
            tokio::time::sleep(OUTAGE).await;
            faults.set(base_faults());
            began.elapsed()
        })
    };

    // The script. Each step waits for its moment and then for a condition (jobs in flight,
    // a clean exit, a reconnect); the invariants below never depend on its timing.
    for (moment, step) in SCRIPT {
        tokio::time::sleep_until(t0 + Duration::from_secs(moment)).await;
        wait_busy(admin, &worker).await;
        let window = Window::open();
        match step {
            Step::ForcedClose => {
                let consuming = count_logged(&worker, "connected and consuming");
                let closed = force_close_connections(&settings.amqp.connection_name);
                assert!(closed >= 1, "the worker's connection was not found to close");
                common::wait_until(WAIT, "the worker reconnects after the forced close", || {
                    count_logged(&worker, "connected and consuming") > consuming
                })
                .await;
            }
            Step::Kill => {
                worker.signal("-KILL");
                worker.wait_exit(WAIT).await;
            }
            Step::Term => {
                worker.signal("-TERM");
                let status = worker.wait_exit(WAIT).await;
                assert!(status.success(), "SIGTERM must drain and exit 0, got {status:?}:\n{}", worker.all_logs());
                assert!(worker.logged("drained"), "the drain did not finish in time:\n{}", worker.all_logs());
            }
        }
        disruptions.push(Disruption { what: step, window: window.close() });
        if matches!(step, Step::Kill | Step::Term) {
            retired.push(std::mem::replace(&mut worker, WorkerProcess::start(&settings)));
            admin = worker.admin_when_consuming().await;
        }
    }
    let outage = outage.await.unwrap();

    let first_published = producer.await.expect("every job published");
    let published_by = Instant::now();

    // Every published message must reach a terminal event. A miss is reported in the table
    // (as lost) before the assertions fail.
    let settle_deadline = Instant::now() + SETTLE_WAIT;
    let all_ended = || {
        let seen = recorder.seen();
        let mut ended: HashMap<&str, usize> = HashMap::new();
        for e in seen.iter() {
            *ended.entry(e.job_id.as_str()).or_default() += 1;
        }
        published.iter().all(|(id, n)| ended.get(id.as_str()).copied().unwrap_or(0) >= *n)
    };
    while !all_ended() && Instant::now() < settle_deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A job parked in a tier by a worker that was killed before its ack exists twice; wait
    // for the broker to hold nothing more for the worker.
    let mut queues: Vec<String> = VendorKey::ALL.iter().map(|v| settings.topology.job_queue(*v)).collect();
    queues.extend(
        settings.retry.tiers.iter().map(|t| format!("{}.{}", settings.topology.retry_queue_prefix, tier_name(*t))),
    );
    while messages_in(&queues) > 0 && Instant::now() < settle_deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let left_in_queues = messages_in(&queues);
    let settled_after = published_by.elapsed();

    worker.signal("-TERM");
    let status = worker.wait_exit(WAIT).await;
    assert!(status.success(), "the last worker must drain and exit 0, got {status:?}:\n{}", worker.all_logs());
    retired.push(worker);
    let seen = recorder.finish(&probe, WAIT).await;
    let dead = drain_dead_letters(&probe).await;
    let logs: String = retired.iter().map(|w| w.all_logs() + "\n").collect();
    let retries = RetryLog::read(&logs);
    let wall = run_started.elapsed();

    // ---- What happened, per job id.
    let mut events: HashMap<&str, Vec<&Seen>> = HashMap::new();
    for e in &seen {
        events.entry(e.job_id.as_str()).or_default().push(e);
    }
    let count = |outcome: &str| seen.iter().filter(|e| e.outcome == outcome).count();
    let mut failed_by_class: BTreeMap<String, usize> = BTreeMap::new();
    for e in seen.iter().filter(|e| e.outcome == "failed") {
        *failed_by_class.entry(e.class.clone().unwrap_or_default()).or_default() += 1;
    }
    let lost: Vec<&String> = published
        .iter()
        .filter(|(id, n)| events.get(id.as_str()).map_or(0, Vec::len) < **n)
        .map(|(id, _)| id)
        .collect();
    let duplicate_creations: u32 = jobs
        .values()
        .filter(|j| j.kind != Kind::Invalid)
        .map(|j| sandboxes_of(j.vendor).creations(j.vendor, &j.identity).saturating_sub(1))
        .sum();
    let windows: Vec<Window> = disruptions.iter().map(|d| d.window).collect();
    let in_a_disruption = |from: Instant, to: Instant| windows.iter().any(|d| d.between(from, to));
    let no_parking = Vec::new();
    let parked_at = |id: &str| retries.parked_at.get(id).unwrap_or(&no_parking);
    let crash_duplicates = published.iter().filter(|(id, n)| events.get(id.as_str()).map_or(0, Vec::len) > **n).count();
    let split_duplicates = published
        .iter()
        .filter(|(id, n)| events.get(id.as_str()).map_or(0, Vec::len) > **n)
        .filter(|(id, _)| split_while_parked(parked_at(id), &windows))
        .count();
    let unannounced: Vec<&String> = jobs
        .iter()
        .filter(|(id, j)| j.kind != Kind::Invalid && !events[id.as_str()].iter().any(|e| e.outcome == "created"))
        .map(|(id, _)| id)
        .collect();
    // The sandboxes, like the vendors, refuse a second user with the same identity, so a
    // worker that forgot a user it made would show it here, as a second `created`.
    let created_twice = events.values().filter(|evs| evs.iter().filter(|e| e.outcome == "created").count() > 1).count();
    // The lifecycle jobs: the writes each user took during the storm, and its state now.
    let storm_writes = |id: &str, c: &Change| {
        let (updates, deletions) = writes_of(c);
        let (seeded_updates, seeded_deletions) = seeded[id];
        (updates - seeded_updates, deletions - seeded_deletions)
    };
    // One write per job: each job's change differs from what its user held before.
    let double_actions: BTreeMap<&str, u32> = CHANGE_KINDS
        .iter()
        .map(|kind| {
            let extra = changes
                .iter()
                .filter(|(_, c)| c.kind == *kind)
                .map(|(id, c)| {
                    let (updates, deletions) = storm_writes(id, c);
                    (updates + deletions).saturating_sub(1)
                })
                .sum();
            (kind.as_str(), extra)
        })
        .collect();
    let double_actions_total: u32 = double_actions.values().sum();
    let not_as_intended: Vec<&String> = changes
        .iter()
        .filter(|(_, c)| !c.intended(sandboxes_of(c.vendor).sandboxes.user(c.vendor, &c.identity).as_ref()))
        .map(|(id, _)| id)
        .collect();
    // A lost job has no events: it is reported as lost, not here.
    let announced =
        |id: &str, c: &Change| events.get(id).map(|evs| evs.iter().filter(|e| e.outcome == c.outcome()).count());
    let only_unchanged: Vec<&String> =
        changes.iter().filter(|(id, c)| announced(id, c) == Some(0)).map(|(id, _)| id).collect();
    let changed_twice = changes.iter().filter(|(id, c)| announced(id, c) > Some(1)).count();
    let inline_retries: u64 = retries.inline.iter().map(|(calls, _, _)| calls - 1).sum();
    let widest_span = retries.inline.iter().map(|(_, span, _)| *span).max().unwrap_or(0);
    let budget_ms = settings.retry.inline.budget.as_millis();

    let valid = jobs.values().filter(|j| j.kind != Kind::Invalid).count();
    let twice = jobs.values().filter(|j| j.kind == Kind::Twice).count();
    let mut table = String::new();
    let mut row = |k: &str, v: String| writeln!(table, "| {k} | {v} |").unwrap();
    row("jobs published (messages)", messages.len().to_string());
    row(
        "distinct job ids",
        format!(
            "{} ({} create_user: {valid} valid, {} invalid, {twice} published twice; {} lifecycle)",
            jobs.len() + changes.len(),
            jobs.len(),
            jobs.len() - valid,
            changes.len()
        ),
    );
    row("terminal events", seen.len().to_string());
    row("created", count("created").to_string());
    row("existing", count("existing").to_string());
    for (class, n) in &failed_by_class {
        row(&format!("failed: {class}"), n.to_string());
    }
    for kind in CHANGE_KINDS {
        let ids: Vec<&String> = changes.iter().filter(|(_, c)| c.kind == kind).map(|(id, _)| id).collect();
        let mut by_outcome: BTreeMap<&str, usize> = BTreeMap::new();
        for e in ids.iter().flat_map(|id| events.get(id.as_str()).into_iter().flatten()) {
            *by_outcome.entry(e.outcome.as_str()).or_default() += 1;
        }
        let outcomes: Vec<String> = by_outcome.iter().map(|(o, n)| format!("{o} {n}")).collect();
        row(
            &format!("`{kind}` jobs (one per user held before the storm): events by outcome"),
            format!("{} jobs: {}", ids.len(), outcomes.join(", ")),
        );
    }
    row("retries: inline (calls beyond the first)", format!("{inline_retries} in {} deliveries", retries.inline.len()));
    row("retries: inline, widest span / budget", format!("{widest_span} ms / {budget_ms} ms"));
    let parked: usize = retries.parked.values().sum();
    let by_vendor: Vec<String> = retries.parked.iter().map(|(v, n)| format!("{v} {n}")).collect();
    row("retries: durable (tier parkings)", format!("{parked} ({})", by_vendor.join(", ")));
    let free: usize = retries.parked_free.values().sum();
    let by_vendor: Vec<String> = retries.parked_free.iter().map(|(v, n)| format!("{v} {n}")).collect();
    row("parked while a circuit was open (no tier used)", format!("{free} ({})", by_vendor.join(", ")));
    let opened: Vec<String> = retries.circuits_opened.iter().map(|(v, n)| format!("{v} {n}")).collect();
    row("circuit breaker openings", if opened.is_empty() { "0".to_owned() } else { opened.join(", ") });
    row("429 slow-downs of an account", retries.slowdowns.to_string());
    row("dead-lettered", dead.len().to_string());
    row("jobs with a repeated terminal event (crash windows)", crash_duplicates.to_string());
    row(
        "… of which a disruption caught being parked (the tier copy and the handed-back delivery both ran)",
        split_duplicates.to_string(),
    );
    let by_vendor: Vec<String> = VendorKey::ALL
        .iter()
        .map(|v| format!("{v} {}", unannounced.iter().filter(|id| jobs[id.as_str()].vendor == *v).count()))
        .collect();
    row(
        "valid jobs announced only as `existing` (the vendor acted, the worker did not hear it)",
        format!("{} ({})", unannounced.len(), by_vendor.join(", ")),
    );
    row("**lost**", lost.len().to_string());
    row("**duplicate creations** (sandbox ledgers)", duplicate_creations.to_string());
    row("**jobs announced `created` twice**", created_twice.to_string());
    let by_vendor: Vec<String> = VendorKey::ALL
        .iter()
        .map(|v| format!("{v} {}", only_unchanged.iter().filter(|id| changes[id.as_str()].vendor == *v).count()))
        .collect();
    row(
        "lifecycle jobs announced only as `unchanged` (the vendor acted, the worker did not hear it)",
        format!("{} ({})", only_unchanged.len(), by_vendor.join(", ")),
    );
    let by_kind: Vec<String> = double_actions.iter().map(|(k, n)| format!("{k} {n}")).collect();
    row(
        "**double actions** (sandbox writes beyond one per lifecycle job)",
        format!("{double_actions_total} ({})", by_kind.join(", ")),
    );
    row("**lifecycle jobs announced as acting twice**", changed_twice.to_string());
    row("**users not as their lifecycle job intended**", not_as_intended.len().to_string());
    row(
        "faults injected",
        "10% 5xx, 5% 429 (Retry-After 1 s), 2% hangs past the 1 s timeout, all three vendors".to_owned(),
    );
    row("outage", format!("{OUTAGE_VENDOR}, {:.1} s", outage.as_secs_f64()));
    let list: Vec<&str> = disruptions
        .iter()
        .map(|d| match d.what {
            Step::Kill => "SIGKILL",
            Step::ForcedClose => "forced close",
            Step::Term => "SIGTERM",
        })
        .collect();
    row("disruptions (in order)", list.join(", "));
    row("settled after the last publish", format!("{:.1} s", settled_after.as_secs_f64()));
    row("wall time", format!("{:.1} s", wall.as_secs_f64()));
    let summary = format!("## Chaos suite\n\n| measure | value |\n| --- | ---: |\n{table}");
    eprintln!("\n{summary}");
    let target = std::path::Path::new(env!("CARGO_BIN_EXE_provisioner")).parent().and_then(|p| p.parent());
    if let Some(target) = target {
        std::fs::write(target.join("chaos-summary.md"), &summary).expect("the summary is written under target/");
    }

    // ---- The invariants.
    assert!(
        lost.is_empty(),
        "{} published jobs never reached a terminal event, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert_eq!(left_in_queues, 0, "jobs were left in the job or retry queues");
    assert_eq!(duplicate_creations, 0, "a vendor created a user twice");
    assert_eq!(created_twice, 0, "jobs were announced `created` twice");
    for (id, j) in &jobs {
        let evs = &events[id.as_str()];
        let created = evs.iter().filter(|e| e.outcome == "created").count();
        assert!(created <= 1, "{id}: {created} `created` events");
        match j.kind {
            Kind::Invalid => {
                assert!(evs.iter().all(|e| e.class.as_deref() == Some("invalid")), "{id}: {evs:?}");
                assert_eq!(sandboxes_of(j.vendor).creations(j.vendor, &j.identity), 0, "{id} reached the vendor");
            }
            Kind::Valid | Kind::Twice => {
                assert_eq!(
                    sandboxes_of(j.vendor).creations(j.vendor, &j.identity),
                    1,
                    "{id}: not created exactly once"
                );
                assert!(
                    evs.iter().all(|e| e.outcome == "created" || e.outcome == "existing"),
                    "{id} did not end well: {evs:?}"
                );
                // For a job published once, `created` comes first when it comes: a
                // redelivery finds the user. The two copies of a duplicate may finish in
                // either order.
                if j.kind == Kind::Valid {
                    assert!(evs.iter().skip(1).all(|e| e.outcome == "existing"), "{id}: {evs:?}");
                }
            }
        }
        // A job published once ends once, unless a disruption cut the settling of a
        // delivery whose event was out already, or of one being parked.
        if evs.len() > published[id.as_str()] && j.kind != Kind::Twice {
            let endings: Vec<Instant> = evs.iter().map(|e| e.at).collect();
            assert!(
                repeated_ending_explained(&endings, parked_at(id), &windows),
                "{id} ended twice with no crash in between nor one that caught it being parked: {evs:?}; parked at \
                 {:?}; disruptions {disruptions:?}",
                parked_at(id)
            );
        }
    }
    // A user that exists with no `created` to say so was created by a delivery that did not
    // live to announce it: one cut by a disruption, or one whose call timed out after the
    // vendor had served it. Anything else would be an adapter answering `existing` wrongly.
    for id in &unannounced {
        let last = events[id.as_str()].iter().map(|e| e.at).max().unwrap();
        assert!(
            in_a_disruption(first_published[id.as_str()], last) || retries.failed_calls.contains(id.as_str()),
            "{id}: the user exists but no delivery announced `created`, with no crash or failed call to explain it"
        );
    }
    // The lifecycle jobs: each user written once, by the job's own kind, and left as the job
    // intended; each event the job's own outcome or, for a repeat, `unchanged`.
    assert_eq!(double_actions_total, 0, "a change was made twice: {double_actions:?}");
    assert!(not_as_intended.is_empty(), "users not as their job intended: {not_as_intended:?}");
    assert_eq!(changed_twice, 0, "lifecycle jobs were announced as acting twice");
    for (id, c) in &changes {
        let evs = &events[id.as_str()];
        let expected = if c.kind == JobKind::DeleteUser { (0, 1) } else { (1, 0) };
        assert_eq!(storm_writes(id, c), expected, "{id}: (updates, deletions) the sandbox took");
        assert!(evs.iter().all(|e| e.outcome == c.outcome() || e.outcome == "unchanged"), "{id}: {evs:?}");
        // A redelivery finds the change made: only the first ending may announce it.
        assert!(evs.iter().skip(1).all(|e| e.outcome == "unchanged"), "{id}: {evs:?}");
        if evs.len() > published[id.as_str()] {
            let endings: Vec<Instant> = evs.iter().map(|e| e.at).collect();
            assert!(
                repeated_ending_explained(&endings, parked_at(id), &windows),
                "{id} ended twice with no crash in between nor one that caught it being parked: {evs:?}; parked at \
                 {:?}; disruptions {disruptions:?}",
                parked_at(id)
            );
        }
    }
    // As for a create announced only as `existing`: the change was made by a delivery that
    // did not live to announce it, or whose call timed out after the vendor had served it.
    for id in &only_unchanged {
        let last = events[id.as_str()].iter().map(|e| e.at).max().unwrap();
        assert!(
            in_a_disruption(first_published[id.as_str()], last) || retries.failed_calls.contains(id.as_str()),
            "{id}: the change was made but no delivery announced it, with no crash or failed call to explain it"
        );
    }
    let twice_created = jobs
        .iter()
        .filter(|(id, j)| j.kind == Kind::Twice && events[id.as_str()].iter().any(|e| e.outcome == "created"))
        .count();
    assert!(twice_created > 0, "no job published twice was announced as created at all");

    // The DLQ holds exactly the failed jobs, each as often as it failed (a disruption between
    // the event and the dead letter of one delivery can only add an event).
    let mut dead_by_id: HashMap<&str, usize> = HashMap::new();
    for (id, reason) in &dead {
        *dead_by_id.entry(id.as_str()).or_default() += 1;
        let failed = events.get(id.as_str()).map(|e| e.iter().find(|e| e.outcome == "failed")).unwrap_or_default();
        let class = failed.and_then(|e| e.class.as_deref());
        assert_eq!(Some(reason.as_str()), class, "dead letter {id} has no matching failed event");
    }
    for (id, evs) in &events {
        let failed = evs.iter().filter(|e| e.outcome == "failed").count();
        let dead = dead_by_id.get(id).copied().unwrap_or(0);
        assert!(failed == 0 || dead >= 1, "{id} failed but is not in the DLQ");
        assert!(dead <= failed, "{id} is in the DLQ {dead} times for {failed} failures");
    }
    let mut dead_ids: Vec<&str> = dead_by_id.keys().copied().collect();
    let mut invalid_ids: Vec<&str> =
        jobs.iter().filter(|(_, j)| j.kind == Kind::Invalid).map(|(id, _)| id.as_str()).collect();
    dead_ids.sort_unstable();
    invalid_ids.sort_unstable();
    assert_eq!(dead_ids, invalid_ids, "the DLQ must hold exactly the invalid jobs");

    // No inline retry started past its budget, and there were some.
    assert!(!retries.inline.is_empty(), "no delivery retried inline: the faults did not bite");
    for (calls, span, budget) in &retries.inline {
        assert!(span <= budget, "an inline retry ran {span} ms into a {budget} ms budget ({calls} calls)");
    }
    assert!(
        retries.parked.contains_key(OUTAGE_VENDOR.as_str()) || retries.parked_free.contains_key(OUTAGE_VENDOR.as_str()),
        "nothing was parked in a retry tier: the outage did not bite"
    );
    assert!(
        retries.circuits_opened.contains_key(OUTAGE_VENDOR.as_str()),
        "the outage never opened {OUTAGE_VENDOR}'s circuit breaker: {:?}",
        retries.circuits_opened
    );
    assert!(outage >= Duration::from_secs(30), "the outage lasted only {outage:?}");

    probe.teardown().await;
}

/// The rule that excuses a job ending more than once, on made-up times.
#[test]
fn a_repeated_ending_needs_a_disruption_between_or_one_that_caught_it_being_parked() {
    let (base, wall) = (Instant::now(), Utc::now());
    let at = |s: f64| base + Duration::from_secs_f64(s);
    let wall_at = |s: f64| wall + chrono::Duration::milliseconds((s * 1000.0) as i64);
    // A SIGKILL from 20.5 s until the next worker consumed, at 20.6 s.
    let kill = [Window { from: at(20.5), to: at(20.6), wall_from: wall_at(20.5), wall_to: wall_at(20.6) }];
    // The kill fell between `created` and its ack: `existing` follows across it.
    assert!(repeated_ending_explained(&[at(20.4), at(21.5)], &[], &kill));
    // Both endings long after the kill, and no parking near it: unexplained.
    assert!(!repeated_ending_explained(&[at(75.2), at(91.4)], &[wall_at(9.0), wall_at(59.0)], &kill));
    // The same endings of a job the kill caught being parked during the outage: the tier
    // copy and the handed-back delivery were both parked until it ended, then each ended.
    assert!(repeated_ending_explained(&[at(75.2), at(91.4)], &[wall_at(9.0), wall_at(20.49)], &kill));
    // A parking that settled seconds before the kill split nothing.
    assert!(!repeated_ending_explained(&[at(75.2), at(91.4)], &[wall_at(17.0)], &kill));
}

/// What "as the job intended" means for each kind and vendor, on made-up sandbox users.
#[test]
fn a_user_is_as_intended_only_in_the_state_its_job_asked_for() {
    let change = |vendor, kind| Change { vendor, identity: "u".into(), kind };
    let users = |vendor| match vendor {
        VendorKey::Glance => (
            json!({"UserFirst": "Jane", "UserSuspended": false}),
            json!({"UserFirst": "Janet", "UserSuspended": false}),
            json!({"UserFirst": "Jane", "UserSuspended": true}),
        ),
        VendorKey::Netsapiens => (
            json!({"name-first-name": "Jane", "user-scope": "Basic User"}),
            json!({"name-first-name": "Janet", "user-scope": "Basic User"}),
            json!({"name-first-name": "Jane", "user-scope": "No Portal"}),
        ),
        VendorKey::Clienttoolbox => (
            json!({"user_first_name": "Jane", "allowed_campaigns": "all"}),
            json!({"user_first_name": "Janet", "allowed_campaigns": "all"}),
            json!({"user_first_name": "Jane", "allowed_campaigns": "none"}),
        ),
    };
    for vendor in VendorKey::ALL {
        let (active, renamed, suspended) = users(vendor);
        let intended = |kind, user: Option<&Value>| change(vendor, kind).intended(user);
        assert!(intended(JobKind::UpdateUser, Some(&renamed)) && !intended(JobKind::UpdateUser, Some(&active)));
        assert!(!intended(JobKind::UpdateUser, None), "{vendor}: an update of a user that is gone");
        assert!(intended(JobKind::SuspendUser, Some(&suspended)) && !intended(JobKind::SuspendUser, Some(&active)));
        assert!(intended(JobKind::RestoreUser, Some(&active)) && !intended(JobKind::RestoreUser, Some(&suspended)));
        assert!(!intended(JobKind::RestoreUser, None), "{vendor}: a restore of a user that is gone");
        assert!(intended(JobKind::DeleteUser, None) && !intended(JobKind::DeleteUser, Some(&suspended)));
    }
}
