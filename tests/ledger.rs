//! The ledger on real SQLite and PostgreSQL: claims, the projection's idempotence, the
//! dead-letter index, corrupt rows, and the namesake story through the real pipeline.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::ledger::{fresh, Kind, Proxy, BOTH};
use common::TestVendors;
use provisioner::config::{LedgerSettings, Settings};
use provisioner::contract::{JobKind, Person, VendorKey};
use provisioner::event::{Event, JobRef};
use provisioner::ledger::{
    HistoryKind, IdentityKey, Intent, Ledger, LedgerError, LetterQuery, LetterState, LinkState, Owner, Write,
};
use provisioner::metrics::Metrics;
use provisioner::outcome::{ErrorClass, Failure, Outcome};
use provisioner::pipeline::{sample_job, Pipeline};
use provisioner::projection::{interpret, Interpreted};
use provisioner::sandbox::Faults;
use provisioner::transport::headers as h;
use provisioner::transport::{Disposition, Inbound, OutboundKind, Parked, Report};
use provisioner::vendors::{build_adapters, Receipt};
use serde_json::json;
use sqlx::Connection as _;
use tokio_util::sync::CancellationToken;

fn person(id: &str) -> Person {
    Person { tenant: "acme".into(), employee_id: id.into() }
}

fn key(identity: &str) -> IdentityKey {
    IdentityKey { vendor: VendorKey::Clienttoolbox, account: "acme-ctb".into(), identity: identity.into() }
}

#[tokio::test]
async fn a_claim_tells_this_job_this_person_and_someone_else_apart() {
    for kind in BOTH {
        let (ledger, _) = fresh(kind).await;
        let k = key("jane_smith");
        let (p1, p2) = (person("000731"), person("000999"));
        let intent =
            |job_id, person| Intent { key: &k, identity_extra: None, person, job_id, correlation_id: Some("hire-1") };
        let first = ledger.claim(&intent("job-1", Some(&p1))).await.unwrap();
        assert_eq!(first.owner, Owner::Nobody, "{kind:?}");
        assert_eq!(first.link.state, LinkState::Intent);
        assert_eq!(ledger.claim(&intent("job-1", Some(&p1))).await.unwrap().owner, Owner::ThisJob, "{kind:?}");
        assert_eq!(ledger.claim(&intent("job-2", Some(&p1))).await.unwrap().owner, Owner::ThisPerson, "{kind:?}");
        assert_eq!(ledger.claim(&intent("job-3", Some(&p2))).await.unwrap().owner, Owner::SomeoneElse, "{kind:?}");
        assert_eq!(ledger.claim(&intent("job-4", None)).await.unwrap().owner, Owner::Unknown, "{kind:?}");
        // Nothing moved the owner: the first claim still holds.
        let link = ledger.link(&k).await.unwrap().unwrap();
        assert_eq!((link.job_id.as_str(), link.person), ("job-1", Some(p1)), "{kind:?}");
    }
}

/// An outcome event as the pipeline publishes it, delivered from the ledger queue.
fn outcome_event(job_id: &str, identity: &str, who: Option<&Person>, outcome: &Outcome) -> Inbound {
    kind_event(None, job_id, identity, who, outcome)
}

/// As [`outcome_event`], for a job that names its kind.
fn kind_event(kind: Option<JobKind>, job_id: &str, identity: &str, who: Option<&Person>, outcome: &Outcome) -> Inbound {
    kind_event_at(kind, job_id, identity, who, outcome, Utc::now())
}

/// As [`kind_event`], reached at `at`.
fn kind_event_at(
    kind: Option<JobKind>,
    job_id: &str,
    identity: &str,
    who: Option<&Person>,
    outcome: &Outcome,
    at: chrono::DateTime<Utc>,
) -> Inbound {
    let job = JobRef {
        job_id,
        vendor: Some(VendorKey::Clienttoolbox),
        account: Some("acme-ctb"),
        correlation_id: Some("hire-1"),
        traceparent: None,
        identity: Some(identity),
        identity_extra: None,
        person: who,
        kind,
    };
    let event = Event::new("urn:test", &job, outcome, 1, at);
    Inbound { body: event.to_vec(), exchange: "provisioning.events".into(), ..Default::default() }
}

fn writes_of(msg: &Inbound) -> Vec<Write> {
    match interpret(msg, &Settings::default().topology, Utc::now()) {
        Interpreted::Writes { writes, .. } => writes,
        Interpreted::Ignored(why) => panic!("ignored: {why}"),
    }
}

#[tokio::test]
async fn the_projection_is_idempotent_and_settles_links_and_intents() {
    for kind in BOTH {
        let (ledger, _) = fresh(kind).await;
        let p1 = person("000731");
        let created = Outcome::Created(Receipt {
            existing: false,
            vendor_user_id: Some("jane_smith".into()),
            ..Default::default()
        });
        let msg = outcome_event("job-1", "jane_smith", Some(&p1), &created);
        // The same delivery three times, as redeliveries after crashes would bring it.
        for _ in 0..3 {
            ledger.apply(&writes_of(&msg)).await.unwrap();
        }
        let timeline = ledger.timeline("job-1").await.unwrap();
        assert_eq!(timeline.len(), 1, "{kind:?}: one entry per event, however often delivered");
        assert_eq!(timeline[0].kind, HistoryKind::Created);
        assert_eq!(ledger.timeline("hire-1").await.unwrap().len(), 1, "{kind:?}: found by the hire's id too");
        let link = ledger.link(&key("jane_smith")).await.unwrap().unwrap();
        assert_eq!((link.state, link.vendor_user_id.as_deref()), (LinkState::Active, Some("jane_smith")), "{kind:?}");
        assert_eq!(ledger.links_of_employee("000731").await.unwrap().len(), 1);

        // A job that failed for good gives its intent up; one that ran out of retries keeps
        // it, since its create may have gone through.
        for (job, class, kept) in [("job-r", ErrorClass::Rejected, false), ("job-u", ErrorClass::Unavailable, true)] {
            let k = key(&format!("user_{job}"));
            let intent = Intent { key: &k, identity_extra: None, person: None, job_id: job, correlation_id: None };
            ledger.claim(&intent).await.unwrap();
            let failed = Outcome::Failed(Failure::new(class, "x", "y"));
            ledger.apply(&writes_of(&outcome_event(job, &k.identity, None, &failed))).await.unwrap();
            assert_eq!(ledger.link(&k).await.unwrap().is_some(), kept, "{kind:?} {class:?}");
        }
    }
}

#[tokio::test]
async fn suspends_restores_and_deletes_move_the_link_in_event_order() {
    for kind in BOTH {
        let (ledger, _) = fresh(kind).await;
        let p1 = person("000731");
        let t0 = Utc::now();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        let ok = |existing| Receipt { existing, ..Default::default() };
        let state = || async { ledger.link(&key("jane_smith")).await.unwrap().map(|l| l.state) };
        let apply = |job_kind, job: &str, outcome: Outcome, t| {
            let msg = kind_event_at(Some(job_kind), job, "jane_smith", Some(&p1), &outcome, t);
            let writes = writes_of(&msg);
            let ledger = &ledger;
            async move { ledger.apply(&writes).await.unwrap() }
        };
        apply(JobKind::CreateUser, "c", Outcome::Created(ok(false)), at(0)).await;
        assert_eq!(state().await, Some(LinkState::Active), "{kind:?}");
        apply(JobKind::UpdateUser, "u", Outcome::Updated(ok(false)), at(1)).await;
        assert_eq!(state().await, Some(LinkState::Active), "{kind:?}: an update leaves the state");
        apply(JobKind::SuspendUser, "s", Outcome::Suspended(ok(false)), at(2)).await;
        assert_eq!(state().await, Some(LinkState::Suspended), "{kind:?}");
        // A redelivered suspend the vendor already reflected: unchanged, still suspended.
        apply(JobKind::SuspendUser, "s", Outcome::Unchanged(ok(true)), at(3)).await;
        assert_eq!(state().await, Some(LinkState::Suspended), "{kind:?}");
        apply(JobKind::RestoreUser, "r", Outcome::Restored(ok(false)), at(5)).await;
        assert_eq!(state().await, Some(LinkState::Active), "{kind:?}");
        // An older suspend projected late (another replica's event) does not undo the restore.
        apply(JobKind::SuspendUser, "s-old", Outcome::Suspended(ok(false)), at(4)).await;
        assert_eq!(state().await, Some(LinkState::Active), "{kind:?}: an older move is not applied");
        apply(JobKind::DeleteUser, "d", Outcome::Deleted(ok(false)), at(6)).await;
        assert_eq!(state().await, Some(LinkState::Deleted), "{kind:?}");
        let mut kinds = Vec::new();
        for job in ["u", "s", "r", "d"] {
            kinds.extend(ledger.timeline(job).await.unwrap().into_iter().map(|e| e.kind));
        }
        assert_eq!(
            kinds,
            [
                HistoryKind::Updated,
                HistoryKind::Suspended,
                HistoryKind::Unchanged,
                HistoryKind::Restored,
                HistoryKind::Deleted
            ],
            "{kind:?}"
        );

        // A user the ledger never saw (made by hand, or before the ledger) is recorded for
        // the person the suspend named, so a later leave finds it.
        let p2 = person("000999");
        let msg = kind_event(Some(JobKind::SuspendUser), "s2", "old_hand", Some(&p2), &Outcome::Suspended(ok(false)));
        ledger.apply(&writes_of(&msg)).await.unwrap();
        let links = ledger.links_of_employee("000999").await.unwrap();
        assert_eq!(
            links.iter().map(|l| (l.identity.as_str(), l.state)).collect::<Vec<_>>(),
            [("old_hand", LinkState::Suspended)]
        );
    }
}

/// A dead letter as the projection receives it: the dead-letter exchange's copy.
fn dead(job_id: &str, reason: &str, at: &str) -> Inbound {
    let mut headers = provisioner::transport::Headers::new();
    h::set_text(&mut headers, h::REASON, reason);
    h::set_text(&mut headers, h::ERROR_CODE, "code");
    h::set_text(&mut headers, h::ERROR_MESSAGE, "it failed");
    h::set_int(&mut headers, h::ATTEMPTS, 2);
    h::set_text(&mut headers, h::LAST_FAILED_AT, at);
    h::set_text(&mut headers, h::JOB_ID, job_id);
    h::set_text(&mut headers, h::VENDOR, "glance");
    h::set_text(&mut headers, h::ACCOUNT, "acme");
    Inbound {
        body: json!({"job_id": job_id}).to_string().into_bytes(),
        exchange: Settings::default().topology.dead_exchange,
        routing_key: "create_user.glance".into(),
        headers,
        ..Default::default()
    }
}

#[tokio::test]
async fn dead_letters_are_indexed_once_and_leave_the_index_when_replayed() {
    for kind in BOTH {
        let (ledger, _) = fresh(kind).await;
        let letters = [
            dead("d-1", "conflict", "2026-11-20T10:00:00.000Z"),
            dead("d-2", "rejected", "2026-11-20T11:00:00.000Z"),
            dead("d-3", "rejected", "2026-11-20T12:00:00.000Z"),
        ];
        for _ in 0..2 {
            for l in &letters {
                ledger.apply(&writes_of(l)).await.unwrap();
            }
        }
        let all = ledger.dead_letters(&LetterQuery::default()).await.unwrap();
        assert_eq!(all.len(), 3, "{kind:?}");
        assert_eq!(all[0].job_id.as_deref(), Some("d-3"), "newest first");
        let rejected = LetterQuery { reason: Some("rejected".into()), ..Default::default() };
        assert_eq!(ledger.dead_letters(&rejected).await.unwrap().len(), 2);
        let counts = ledger.dead_letter_counts(&LetterQuery::default()).await.unwrap();
        assert_eq!(counts[&("rejected".into(), "glance".into(), "acme".into())].0, 2, "{kind:?}");

        let moved = Write::LetterMoved {
            job_id: "d-2".into(),
            state: LetterState::Replayed,
            at: Utc::now().timestamp_millis(),
        };
        ledger.apply(&[moved]).await.unwrap();
        let left: Vec<_> = ledger.dead_letters(&rejected).await.unwrap().into_iter().map(|r| r.job_id).collect();
        assert_eq!(left, [Some("d-3".to_owned())], "{kind:?}");
        let history = ledger.timeline("d-1").await.unwrap();
        assert_eq!(history.iter().map(|e| e.kind).collect::<Vec<_>>(), [HistoryKind::DeadLettered]);
    }
}

#[tokio::test]
async fn a_corrupt_row_is_an_error_naming_its_key_not_a_panic() {
    for kind in BOTH {
        let (ledger, url) = fresh(kind).await;
        sqlx::any::install_default_drivers();
        let mut raw = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO links (vendor, account, identity, tenant, job_id, state, created_at, updated_at) \
             VALUES ('clienttoolbox', 'acme-ctb', 'broken', '', 'j', 'exploded', 1, 1)",
        )
        .execute(&mut raw)
        .await
        .unwrap();
        match ledger.link(&key("broken")).await {
            Err(LedgerError::Corrupt { key, message }) => {
                assert!(key.contains("broken"), "{kind:?}: {key}");
                assert!(message.contains("exploded"), "{kind:?}: {message}");
            }
            other => panic!("{kind:?}: expected a corrupt-row error, got {other:?}"),
        }
        // The pipeline parks a job that needs that row rather than guessing.
        let intent =
            Intent { key: &key("broken"), identity_extra: None, person: None, job_id: "j2", correlation_id: None };
        assert!(matches!(ledger.claim(&intent).await, Err(LedgerError::Corrupt { .. })), "{kind:?}");
    }
}

/// A pipeline with a ClientToolbox account `acme-ctb` on fresh sandboxes, with this ledger.
async fn ctb_pipeline(ledger: Option<Ledger>, tweak: impl FnOnce(&mut Settings)) -> (Pipeline, TestVendors) {
    let vendors = TestVendors::start(Faults::default()).await;
    let mut settings = Settings::default();
    settings.accounts.insert("acme-ctb".into(), vendors.account(VendorKey::Clienttoolbox));
    settings.accounts.insert("acme-glance".into(), vendors.account(VendorKey::Glance));
    tweak(&mut settings);
    (Pipeline::new(&settings, build_adapters(&settings).unwrap(), &Metrics::new(), ledger), vendors)
}

/// Jane Smith, with this employee id, as a hire-derived ClientToolbox job.
fn jane(job_id: &str, employee_id: &str) -> Inbound {
    let mut job = sample_job(job_id, VendorKey::Clienttoolbox, "acme-ctb", "jane_smith");
    job["user"]["user_first_name"] = json!("Jane");
    job["user"]["user_last_name"] = json!("Smith");
    job["person"] = json!({"tenant": "acme", "employee_id": employee_id});
    Inbound {
        body: job.to_string().into_bytes(),
        routing_key: "create_user.clienttoolbox".into(),
        message_id: Some(job_id.into()),
        ..Default::default()
    }
}

fn outcome(d: &Disposition) -> (&'static str, Option<ErrorClass>) {
    match &d.report {
        Report::Terminal { outcome, class, .. } => (outcome, *class),
        other => panic!("expected a terminal outcome, got {other:?}"),
    }
}

#[tokio::test]
async fn a_namesake_is_a_conflict_never_existing() {
    let stop = CancellationToken::new();
    // Without a ledger, the second Jane Smith is told she has the first one's account: the
    // ClientToolbox lookup compares names, and the names are the same.
    let (p, _vendors) = ctb_pipeline(None, |_| {}).await;
    assert_eq!(outcome(&p.handle(&jane("hire-1:ctb", "000731"), &stop).await), ("created", None));
    assert_eq!(outcome(&p.handle(&jane("hire-2:ctb", "000999"), &stop).await), ("existing", None));

    for kind in BOTH {
        let (ledger, _) = fresh(kind).await;
        let (p, vendors) = ctb_pipeline(Some(ledger.clone()), |_| {}).await;
        assert_eq!(outcome(&p.handle(&jane("hire-1:ctb", "000731"), &stop).await), ("created", None), "{kind:?}");
        let second = p.handle(&jane("hire-2:ctb", "000999"), &stop).await;
        assert_eq!(outcome(&second), ("failed", Some(ErrorClass::Conflict)), "{kind:?}");
        let event: serde_json::Value = serde_json::from_slice(&second.publish[0].body).unwrap();
        assert_eq!(event["data"]["error"]["code"], "identity_held_by_another_person", "{kind:?}");
        assert_eq!(vendors.creations(VendorKey::Clienttoolbox, "jane_smith"), 1, "{kind:?}");
        // The first Jane's own later job (a rehire, a re-sent hire) is still hers.
        assert_eq!(outcome(&p.handle(&jane("hire-3:ctb", "000731"), &stop).await), ("existing", None), "{kind:?}");
    }
}

#[tokio::test]
async fn a_redelivered_create_that_went_through_is_existing_by_the_ledgers_intent() {
    let stop = CancellationToken::new();
    // ClientToolbox without a lookup: an "already exists" cannot be verified at the vendor.
    let no_lookup = |s: &mut Settings| {
        s.accounts.get_mut("acme-ctb").unwrap().settings.insert("lookup".into(), "none".into());
    };
    let mut redelivered = jane("job-1", "000731");
    redelivered.redelivered = true;
    let (p, _vendors) = ctb_pipeline(None, no_lookup).await;
    assert_eq!(outcome(&p.handle(&jane("job-1", "000731"), &stop).await).0, "created");
    assert_eq!(
        outcome(&p.handle(&redelivered, &stop).await),
        ("failed", Some(ErrorClass::Conflict)),
        "without a ledger"
    );

    for kind in BOTH {
        let (ledger, _) = fresh(kind).await;
        let (p, _vendors) = ctb_pipeline(Some(ledger), no_lookup).await;
        // The first delivery's create went through; its answer was lost to a crash.
        assert_eq!(outcome(&p.handle(&jane("job-1", "000731"), &stop).await).0, "created");
        assert_eq!(outcome(&p.handle(&redelivered, &stop).await), ("existing", None), "{kind:?}");
    }
}

#[tokio::test]
async fn with_the_ledger_down_identity_decisions_wait_and_the_rest_goes_on() {
    let proxy = Proxy::start().await;
    let url = common::ledger::fresh_url(Kind::Postgres).await;
    let settings = LedgerSettings { timeout: Duration::from_millis(500), ..LedgerSettings::default() };
    let ledger = Ledger::open(&settings, &proxy.url_of(&url)).unwrap();
    ledger.ready().await.unwrap();
    let (p, vendors) = ctb_pipeline(Some(ledger.clone()), |_| {}).await;
    let stop = CancellationToken::new();

    proxy.cut();
    let parked = p.handle(&jane("job-down", "000731"), &stop).await;
    assert!(
        matches!(&parked.report, Report::RetryScheduled { why: Parked::LedgerDown, .. }),
        "a job needing an identity decision is parked, not guessed: {:?}",
        parked.report
    );
    assert_eq!(parked.publish[0].kind, OutboundKind::Retry);
    assert_eq!(vendors.creations(VendorKey::Clienttoolbox, "jane_smith"), 0, "nothing was sent");
    // A Glance job that names no person needs no ledger decision.
    let glance = sample_job("g-1", VendorKey::Glance, "acme-glance", "EMP-G1");
    let msg = Inbound {
        body: glance.to_string().into_bytes(),
        routing_key: "create_user.glance".into(),
        ..Default::default()
    };
    assert_eq!(outcome(&p.handle(&msg, &stop).await), ("created", None));
    assert!(ledger.ping().await.is_err());

    proxy.restore();
    // The pool reconnects on its own; poll the real condition, with a deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while ledger.ping().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the ledger must answer within 10 s of the database's return");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let retried = p.handle(&jane("job-down", "000731"), &stop).await;
    assert_eq!(outcome(&retried), ("created", None));
}

// ---- Through the real broker and the real worker process.

const BIN: &str = env!("CARGO_BIN_EXE_provisioner");
const WAIT: Duration = Duration::from_secs(30);

/// Runs the CLI against the test's config; returns stdout and the exit code.
fn cli(settings: &Settings, args: &[&str]) -> (String, i32) {
    let dir = tempfile::tempdir().unwrap();
    let (toml, env) = common::child_config(settings);
    std::fs::write(dir.path().join("default.toml"), toml).unwrap();
    let out = std::process::Command::new(BIN)
        .args(args)
        .args(["--config", dir.path().to_str().unwrap()])
        .envs(env)
        .env_remove("PROVISIONER_ENV")
        .env("USER", "test-operator")
        .output()
        .expect("the binary runs");
    let code = out.status.code().unwrap_or(-1);
    if code != 0 {
        eprintln!("{args:?} exited {code}: {}", String::from_utf8_lossy(&out.stderr));
    }
    (String::from_utf8_lossy(&out.stdout).into_owned(), code)
}

/// Polls the ledger until `check` holds for the timeline of `id`, or fails after `WAIT`.
async fn wait_for_history(ledger: &Ledger, id: &str, what: &str, check: impl Fn(&[HistoryKind]) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let kinds: Vec<HistoryKind> =
            ledger.timeline(id).await.map(|t| t.iter().map(|e| e.kind).collect()).unwrap_or_default();
        if check(&kinds) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: the history of {id} is {kinds:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The next outcome event (`provisioning.user.*`) for `job_id`, skipping step events.
async fn next_outcome(events: &mut common::Observer, job_id: &str) -> String {
    loop {
        let e = events.next_json(WAIT, "an outcome event").await;
        let kind = e["type"].as_str().unwrap_or_default().to_owned();
        if e["subject"] == job_id && kind.starts_with("provisioning.user.") {
            return kind;
        }
    }
}

#[tokio::test]
async fn a_worker_killed_between_a_create_and_its_event_ends_existing_after_redelivery() {
    for kind in BOTH {
        // The sandbox creates the user, then holds its answer: a kill lands in between.
        let slow = Faults { response_delay: Duration::from_secs(60), ..Faults::default() };
        let (mut settings, vendors) = common::settings_with(&[("acme-ctb", VendorKey::Clienttoolbox)], slow).await;
        settings.accounts.get_mut("acme-ctb").unwrap().settings.insert("lookup".into(), "none".into());
        settings.ledger.url = common::ledger::fresh_url(kind).await;
        let probe = common::Probe::new(&settings).await;
        let mut events = probe.observe_events().await;
        let mut worker = common::WorkerProcess::start(&settings);
        worker.admin_when_consuming().await;
        let job = jane("hire-731:clienttoolbox:acme-ctb", "000731");
        let body: serde_json::Value = serde_json::from_slice(&job.body).unwrap();
        let mut body = body;
        body["account"] = json!("acme-ctb");
        probe.publish_job(VendorKey::Clienttoolbox, &body).await;
        common::wait_until(WAIT, "the sandbox created the user", || {
            vendors.creations(VendorKey::Clienttoolbox, "jane_smith") == 1
        })
        .await;
        worker.signal("-KILL");
        worker.wait_exit(WAIT).await;
        vendors.sandboxes.faults.set(Faults::default());

        let mut worker = common::WorkerProcess::start(&settings);
        worker.admin_when_consuming().await;
        let outcome = next_outcome(&mut events, "hire-731:clienttoolbox:acme-ctb").await;
        assert_eq!(outcome, "provisioning.user.existing", "{kind:?}:\n{}", worker.all_logs());
        assert_eq!(vendors.creations(VendorKey::Clienttoolbox, "jane_smith"), 1, "{kind:?}");

        // The projection records the story, and `whois` answers from the ledger.
        let ledger = Ledger::open(&settings.ledger, &settings.ledger.url).unwrap();
        wait_for_history(&ledger, "hire-731:clienttoolbox:acme-ctb", "the existing outcome is projected", |k| {
            k.contains(&HistoryKind::Existing)
        })
        .await;
        let (out, code) = cli(&settings, &["whois", "000731", "--json"]);
        assert_eq!(code, 0, "{out}");
        let whois: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(whois["links"][0]["identity"], "jane_smith", "{out}");
        assert_eq!(whois["links"][0]["state"], "active", "{out}");
        let (out, code) = cli(&settings, &["whois", "000999"]);
        assert_eq!(code, 1, "nothing is linked to another employee: {out}");
        drop(worker);
        probe.teardown().await;
    }
}

#[tokio::test]
async fn replays_and_purges_are_recorded_and_dlq_list_reads_the_index() {
    let (settings, _vendors) = common::settings_with(&[("acme", VendorKey::Glance)], Faults::default()).await;
    let probe = common::Probe::new(&settings).await;
    let replay_me = sample_job("dl-replay", VendorKey::Glance, "acme", "EMP-DLR");
    let purge_me = sample_job("dl-purge", VendorKey::Glance, "acme", "EMP-DLP");
    probe
        .publish_many(vec![
            common::dead_letter(&settings, &replay_me, "unavailable"),
            common::dead_letter(&settings, &purge_me, "conflict"),
        ])
        .await;
    let mut worker = common::WorkerProcess::start(&settings);
    worker.admin_when_consuming().await;
    let ledger = Ledger::open(&settings.ledger, &settings.ledger.url).unwrap();
    for id in ["dl-replay", "dl-purge"] {
        wait_for_history(&ledger, id, "the dead letter is indexed", |k| k == [HistoryKind::DeadLettered]).await;
    }
    let (out, code) = cli(&settings, &["dlq", "list", "--json", "--source", "ledger"]);
    assert_eq!((code, out.lines().count()), (0, 2), "{out}");

    let (out, code) = cli(&settings, &["dlq", "replay", "--job-id", "dl-replay", "--reason", "vendor is back"]);
    assert_eq!(code, 0, "{out}");
    let (out, code) = cli(&settings, &["dlq", "purge", "--job-id", "dl-purge", "--yes", "--reason", "a duplicate"]);
    assert_eq!(code, 0, "{out}");

    wait_for_history(&ledger, "dl-replay", "the replay and the new outcome are recorded", |k| {
        k == [HistoryKind::DeadLettered, HistoryKind::Replayed, HistoryKind::Created]
    })
    .await;
    wait_for_history(&ledger, "dl-purge", "the purge is recorded", |k| {
        k == [HistoryKind::DeadLettered, HistoryKind::Purged]
    })
    .await;
    let replayed = ledger.timeline("dl-replay").await.unwrap();
    assert_eq!(replayed[1].detail["by"], "test-operator");
    assert_eq!(replayed[1].detail["reason"], "vendor is back");
    assert_eq!(replayed[1].detail["filter"], "job_id=dl-replay");
    let (out, code) = cli(&settings, &["dlq", "stats", "--json"]);
    assert_eq!((code, out.trim()), (0, ""), "nothing is left in the index: {out}");
    let (out, code) = cli(&settings, &["history", "dl-replay"]);
    assert_eq!(code, 0);
    assert!(out.contains("replayed") && out.contains("vendor is back"), "{out}");
    drop(worker);
    probe.teardown().await;
}

#[tokio::test]
async fn readyz_says_the_ledger_is_down_and_the_projection_catches_up() {
    let proxy = Proxy::start().await;
    let (mut settings, vendors) = common::settings_with(
        &[("acme-ctb", VendorKey::Clienttoolbox), ("acme-glance", VendorKey::Glance)],
        Faults::default(),
    )
    .await;
    settings.ledger.url = proxy.url_of(&common::ledger::fresh_url(Kind::Postgres).await);
    settings.ledger.timeout = Duration::from_millis(500);
    let probe = common::Probe::new(&settings).await;
    let mut events = probe.observe_all_events().await;
    let mut worker = common::WorkerProcess::start(&settings);
    let admin = worker.admin_when_consuming().await;
    let readyz = || async move { common::http_get(admin, "/readyz").await };
    common::wait_until_async(WAIT, "readyz says the ledger is up", || async { readyz().await.contains("ledger: up") })
        .await;

    proxy.cut();
    common::wait_until_async(WAIT, "readyz says the ledger is down", || async {
        readyz().await.contains("ledger: DOWN")
    })
    .await;
    assert!(readyz().await.starts_with("HTTP/1.1 200"), "a shared ledger down does not make a replica unready");
    assert!(common::http_get(admin, "/metrics").await.contains("provisioner_ledger_up 0"));
    // A job that needs no identity decision goes on; one that does waits.
    probe.publish_job(VendorKey::Glance, &sample_job("g-down", VendorKey::Glance, "acme-glance", "EMP-GD")).await;
    assert_eq!(next_outcome(&mut events, "g-down").await, "provisioning.user.created");
    let mut ctb = sample_job("c-down", VendorKey::Clienttoolbox, "acme-ctb", "cdown");
    ctb["person"] = json!({"tenant": "acme", "employee_id": "000500"});
    probe.publish_job(VendorKey::Clienttoolbox, &ctb).await;
    loop {
        let e = events.next_json(WAIT, "the job parked for the ledger").await;
        if e["type"] == "provisioning.job.parked" && e["subject"] == "c-down" {
            assert_eq!(e["data"]["why"], "ledger_down", "{e}");
            break;
        }
        assert_ne!(e["subject"], "c-down", "no outcome while the ledger is down: {e}");
    }
    assert_eq!(vendors.creations(VendorKey::Clienttoolbox, "cdown"), 0);

    proxy.restore();
    assert_eq!(next_outcome(&mut events, "c-down").await, "provisioning.user.created");
    let ledger = Ledger::open(&settings.ledger, &settings.ledger.url).unwrap();
    wait_for_history(&ledger, "g-down", "the projection catches up on what happened while it was down", |k| {
        k.contains(&HistoryKind::Created)
    })
    .await;
    wait_for_history(&ledger, "c-down", "the parked job's story is complete", |k| {
        k.contains(&HistoryKind::Parked) && k.contains(&HistoryKind::Created)
    })
    .await;
    common::wait_until_async(WAIT, "readyz says the ledger is up again", || async {
        readyz().await.contains("ledger: up")
    })
    .await;
    drop(worker);
    probe.teardown().await;
}
