//! Lifecycle jobs and person events end to end, through a real worker and RabbitMQ, against
//! the vendor sandboxes, with the ledger on (SQLite and PostgreSQL): update, suspend, restore
//! and delete at each vendor with the ledger's links moving; redelivery that sends nothing
//! twice; and update, leave (now and later) and rehire events derived from the ledger's links.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::ledger::{fresh, Kind, BOTH};
use common::{Observer, Probe, TestVendors};
use provisioner::config::Settings;
use provisioner::contract::{JobKind, VendorKey};
use provisioner::ledger::{HistoryKind, IdentityKey, Ledger, LinkState};
use provisioner::metrics::Metrics;
use provisioner::pipeline::{sample_job, Pipeline};
use provisioner::sandbox::Faults;
use provisioner::transport::headers as h;
use provisioner::transport::{Headers, Outbound, OutboundKind, Publisher};
use provisioner::vendors::build_adapters;
use provisioner::worker::Worker;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);
const NS_DOMAIN: &str = provisioner::vendors::netsapiens::sandbox::SANDBOX_DOMAIN;

/// A worker in this process, with the ledger on (its pipeline and its projection), over a
/// topology of the test's own.
struct Env {
    settings: Settings,
    vendors: TestVendors,
    probe: Probe,
    ledger: Ledger,
    shutdown: CancellationToken,
    worker: tokio::task::JoinHandle<()>,
}

impl Env {
    async fn start(mut settings: Settings, vendors: TestVendors, kind: Kind) -> Self {
        let (ledger, url) = fresh(kind).await;
        settings.ledger.url = url;
        let probe = Probe::new(&settings).await;
        let pipeline =
            Pipeline::new(&settings, build_adapters(&settings).unwrap(), &Metrics::new(), Some(ledger.clone()));
        let worker = Worker::new(Arc::new(settings.clone()), Arc::new(pipeline), Metrics::new(), Default::default())
            .with_ledger(Some(ledger.clone()));
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let worker = tokio::spawn(async move { worker.run(stop).await.unwrap() });
        Self { settings, vendors, probe, ledger, shutdown, worker }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.worker).await.expect("the worker stops").unwrap();
        self.probe.teardown().await;
    }

    /// Publishes a job of `kind` as a producer would, on `<kind>.<vendor>`.
    async fn publish(&self, body: &Value) {
        let kind = JobKind::parse(body["kind"].as_str().unwrap_or("create_user")).unwrap();
        let vendor: VendorKey = serde_json::from_value(body["vendor"].clone()).unwrap();
        self.probe.publish_raw(&kind.routing_key(vendor), body.to_string().into_bytes(), body["job_id"].as_str()).await;
    }

    /// Publishes a person event to the person-event exchange.
    async fn publish_person_event(&self, body: &Value) {
        let msg = Outbound {
            kind: OutboundKind::Job,
            exchange: self.settings.topology.hr_exchange.clone(),
            routing_key: body["type"].as_str().unwrap().to_owned(),
            body: body.to_string().into_bytes(),
            message_id: body["event_id"].as_str().map(str::to_owned),
            content_type: Some("application/json".into()),
            timestamp: None,
            headers: Headers::new(),
        };
        self.probe.publisher.publish(&msg).await.expect("person event confirmed");
    }

    /// Waits until the ledger's link of `identity` at `account` is in `state`.
    async fn link_becomes(&self, vendor: VendorKey, account: &str, identity: &str, state: LinkState) {
        let key = IdentityKey { vendor, account: account.into(), identity: identity.into() };
        let mut last = None;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            last = self.ledger.link(&key).await.ok().flatten().map(|l| l.state).or(last);
            if last == Some(state) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "the link {key:?} is {last:?}, never {state:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the ledger's history of `id` passes `check`, and returns it.
    async fn history(&self, id: &str, what: &str, check: impl Fn(&[HistoryKind]) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let entries = self.ledger.timeline(id).await.unwrap_or_default();
            let kinds: Vec<HistoryKind> = entries.iter().map(|e| e.kind).collect();
            if check(&kinds) {
                return entries.into_iter().map(|e| json!({"kind": e.kind.as_str(), "detail": e.detail})).collect();
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}: the history of {id} is {kinds:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The next result event (`provisioning.user.*`) of `job_id`, skipping every other event.
async fn outcome_of(events: &mut Observer, job_id: &str) -> Value {
    loop {
        let e = events.next_json(WAIT, &format!("the outcome of {job_id}")).await;
        if e["subject"] == job_id && e["type"].as_str().is_some_and(|t| t.starts_with("provisioning.user.")) {
            return e["data"].clone();
        }
    }
}

fn outcome(data: &Value) -> (&str, Option<&str>) {
    (data["outcome"].as_str().unwrap_or_default(), data["error"]["code"].as_str())
}

// ---- Lifecycle jobs, vendor by vendor.

const EMPLOYEE: &str = "000731";

/// One vendor's user as the lifecycle test drives it: how a job names it, how the ledger
/// keys it, and what the sandbox shows of it.
struct Subject {
    vendor: VendorKey,
    /// The account that may delete for good (all of ClientToolbox's: its delete only marks).
    account: &'static str,
    /// A second account on the same sandbox without `hard_delete`.
    soft_account: Option<&'static str>,
    /// The identity field's value as a job gives it.
    name: &'static str,
    /// The identity as the ledger keys it.
    identity: String,
    /// The field an update changes, and its new value.
    last_name_field: &'static str,
}

impl Subject {
    fn of(vendor: VendorKey) -> Self {
        match vendor {
            VendorKey::Glance => Self {
                vendor,
                account: "acme-glance",
                soft_account: Some("acme-glance-soft"),
                name: "EMP-000731",
                identity: "EMP-000731".into(),
                last_name_field: "UserLast",
            },
            VendorKey::Netsapiens => Self {
                vendor,
                account: "acme-ns",
                soft_account: Some("acme-ns-soft"),
                name: "1731",
                identity: format!("1731@{NS_DOMAIN}"),
                last_name_field: "name-last-name",
            },
            VendorKey::Clienttoolbox => Self {
                vendor,
                account: "acme-ctb",
                soft_account: None,
                name: "jane_doe",
                identity: "jane_doe".into(),
                last_name_field: "user_last_name",
            },
        }
    }

    fn job(&self, kind: JobKind, job_id: &str, account: &str, changes: Value) -> Value {
        let mut user = json!({ self.vendor.identity_field(): self.name });
        if let Value::Object(changes) = changes {
            user.as_object_mut().unwrap().extend(changes);
        }
        json!({"job_id": job_id, "kind": kind, "vendor": self.vendor, "account": account,
               "person": {"tenant": "acme", "employee_id": EMPLOYEE}, "user": user})
    }

    fn create(&self, job_id: &str) -> Value {
        let mut job = sample_job(job_id, self.vendor, self.account, self.name);
        job["person"] = json!({"tenant": "acme", "employee_id": EMPLOYEE});
        job
    }

    /// The user as the sandbox holds it, in the vendor's field names.
    fn stored(&self, vendors: &TestVendors) -> Option<Value> {
        let s = &vendors.sandboxes;
        match self.vendor {
            VendorKey::Glance => s.glance.user(self.name),
            VendorKey::Netsapiens => s.netsapiens.user(NS_DOMAIN, self.name),
            VendorKey::Clienttoolbox => s.clienttoolbox.user(self.name),
        }
    }

    /// What the sandbox shows: `active`, `suspended`, `deleted` (kept, marked) or `absent`.
    fn state(&self, vendors: &TestVendors) -> &'static str {
        let Some(user) = self.stored(vendors) else { return "absent" };
        let suspended = match self.vendor {
            VendorKey::Glance => user["UserSuspended"] == true,
            VendorKey::Netsapiens => user["user-scope"] == "No Portal",
            VendorKey::Clienttoolbox if user["deleted"] == true => return "deleted",
            VendorKey::Clienttoolbox => user["allowed_campaigns"] == "none",
        };
        if suspended {
            "suspended"
        } else {
            "active"
        }
    }

    /// Every update (suspends and restores included) and delete the sandbox took for the user.
    fn writes(&self, vendors: &TestVendors) -> (u32, u32) {
        let s = &vendors.sandboxes;
        (s.updates(self.vendor, &self.identity), s.deletions(self.vendor, &self.identity))
    }
}

async fn lifecycle_settings(subject: &Subject) -> (Settings, TestVendors) {
    let mut accounts = vec![(subject.account, subject.vendor)];
    accounts.extend(subject.soft_account.map(|a| (a, subject.vendor)));
    let (mut settings, vendors) = common::settings_with(&accounts, Faults::default()).await;
    if subject.vendor != VendorKey::Clienttoolbox {
        // ClientToolbox's delete only marks the user: its default is what is wanted here.
        settings.accounts.get_mut(subject.account).unwrap().settings.insert("hard_delete".into(), "true".into());
    }
    (settings, vendors)
}

/// create → update → the same update redelivered → suspend → suspend again → restore →
/// (a delete refused without `hard_delete`) → delete → the same delete redelivered, checking
/// the outcome, what the sandbox holds and took, and the ledger's link after every step.
async fn lifecycle_round_trip(vendor: VendorKey) {
    for kind in BOTH {
        let subject = Subject::of(vendor);
        let (settings, vendors) = lifecycle_settings(&subject).await;
        let env = Env::start(settings, vendors, kind).await;
        let mut events = env.probe.observe_events().await;
        let mut dead = env.probe.observe_dead_letters().await;
        let (account, vendors) = (subject.account, &env.vendors);
        let step = |kind, id: &str, changes| subject.job(kind, id, account, changes);
        let at = format!("{vendor} on {kind:?}");

        env.publish(&subject.create("lc-create")).await;
        assert_eq!(outcome(&outcome_of(&mut events, "lc-create").await), ("created", None), "{at}");
        assert_eq!(subject.state(vendors), "active", "{at}");
        env.link_becomes(vendor, account, &subject.identity, LinkState::Active).await;

        let update = step(JobKind::UpdateUser, "lc-update", json!({ subject.last_name_field: "Smith" }));
        env.publish(&update).await;
        assert_eq!(outcome(&outcome_of(&mut events, "lc-update").await), ("updated", None), "{at}");
        assert_eq!(subject.stored(vendors).unwrap()[subject.last_name_field], "Smith", "{at}");
        assert_eq!(subject.writes(vendors), (1, 0), "{at}");
        // The same message again, as a redelivery brings it: the lookup shows it done.
        env.publish(&update).await;
        assert_eq!(outcome(&outcome_of(&mut events, "lc-update").await), ("unchanged", None), "{at}");
        assert_eq!(subject.writes(vendors), (1, 0), "{at}: nothing was sent the second time");
        env.link_becomes(vendor, account, &subject.identity, LinkState::Active).await;

        env.publish(&step(JobKind::SuspendUser, "lc-suspend", json!({}))).await;
        assert_eq!(outcome(&outcome_of(&mut events, "lc-suspend").await), ("suspended", None), "{at}");
        assert_eq!(subject.state(vendors), "suspended", "{at}");
        env.link_becomes(vendor, account, &subject.identity, LinkState::Suspended).await;
        env.publish(&step(JobKind::SuspendUser, "lc-suspend-again", json!({}))).await;
        assert_eq!(outcome(&outcome_of(&mut events, "lc-suspend-again").await), ("unchanged", None), "{at}");
        assert_eq!(subject.writes(vendors), (2, 0), "{at}");
        env.link_becomes(vendor, account, &subject.identity, LinkState::Suspended).await;

        env.publish(&step(JobKind::RestoreUser, "lc-restore", json!({}))).await;
        assert_eq!(outcome(&outcome_of(&mut events, "lc-restore").await), ("restored", None), "{at}");
        assert_eq!(subject.state(vendors), "active", "{at}");
        assert_eq!(subject.writes(vendors), (3, 0), "{at}");
        env.link_becomes(vendor, account, &subject.identity, LinkState::Active).await;

        if let Some(soft) = subject.soft_account {
            let requests = vendors.sandboxes.faults.requests();
            env.publish(&subject.job(JobKind::DeleteUser, "lc-delete-soft", soft, json!({}))).await;
            let refused = outcome_of(&mut events, "lc-delete-soft").await;
            assert_eq!(outcome(&refused), ("failed", Some("hard_delete_not_allowed")), "{at}: {refused}");
            assert_eq!(refused["error"]["class"], "rejected", "{at}");
            let letter = dead.next(WAIT, "the refused delete in the DLQ").await;
            assert_eq!(h::text(&letter.headers, h::JOB_ID), Some("lc-delete-soft"), "{at}");
            assert_eq!(h::text(&letter.headers, h::REASON), Some("rejected"), "{at}");
            assert_eq!(h::text(&letter.headers, h::ERROR_CODE), Some("hard_delete_not_allowed"), "{at}");
            assert_eq!(vendors.sandboxes.faults.requests(), requests, "{at}: nothing was sent");
            assert_eq!(subject.state(vendors), "active", "{at}");
        }

        let delete = step(JobKind::DeleteUser, "lc-delete", json!({}));
        env.publish(&delete).await;
        assert_eq!(outcome(&outcome_of(&mut events, "lc-delete").await), ("deleted", None), "{at}");
        let gone = if vendor == VendorKey::Clienttoolbox { "deleted" } else { "absent" };
        assert_eq!(subject.state(vendors), gone, "{at}");
        assert_eq!(subject.writes(vendors), (3, 1), "{at}");
        env.link_becomes(vendor, account, &subject.identity, LinkState::Deleted).await;
        env.publish(&delete).await;
        assert_eq!(outcome(&outcome_of(&mut events, "lc-delete").await), ("unchanged", None), "{at}");
        assert_eq!(subject.writes(vendors), (3, 1), "{at}: a user already gone is not deleted again");
        env.link_becomes(vendor, account, &subject.identity, LinkState::Deleted).await;

        dead.assert_quiet(Duration::from_millis(100)).await;
        env.stop().await;
    }
}

#[tokio::test]
async fn glance_updates_suspends_restores_and_deletes_once_each() {
    lifecycle_round_trip(VendorKey::Glance).await;
}

#[tokio::test]
async fn netsapiens_updates_suspends_restores_and_deletes_once_each() {
    lifecycle_round_trip(VendorKey::Netsapiens).await;
}

#[tokio::test]
async fn clienttoolbox_updates_suspends_restores_and_soft_deletes_once_each() {
    lifecycle_round_trip(VendorKey::Clienttoolbox).await;
}

/// The next result event of `job_id` from a recorder-less observer, for the process tests.
async fn next_type(events: &mut Observer, job_id: &str) -> String {
    loop {
        let e = events.next_json(WAIT, &format!("the outcome of {job_id}")).await;
        let kind = e["type"].as_str().unwrap_or_default().to_owned();
        if e["subject"] == job_id && kind.starts_with("provisioning.user.") {
            return kind;
        }
    }
}

#[tokio::test]
async fn a_worker_killed_after_the_vendor_suspended_ends_unchanged_after_redelivery_with_one_write() {
    let vendors = TestVendors::start(Faults::default()).await;
    // NetSapiens behind a relay that, once told, keeps the answer of every write: the suspend
    // reaches the vendor, and the worker is killed before it hears back.
    let relay = common::HoldingRelay::start(&vendors.url).await;
    let mut settings = common::test_settings();
    settings.accounts.insert("acme-ns".into(), provisioner::sandbox::account(VendorKey::Netsapiens, &relay.url));
    let probe = Probe::new(&settings).await;
    let mut events = probe.observe_events().await;
    let subject = Subject::of(VendorKey::Netsapiens);
    let mut worker = common::WorkerProcess::start(&settings);
    worker.admin_when_consuming().await;
    probe.publish_job(VendorKey::Netsapiens, &subject.create("kill-create")).await;
    assert_eq!(next_type(&mut events, "kill-create").await, "provisioning.user.created");

    relay.hold_writes(true);
    let suspend = subject.job(JobKind::SuspendUser, "kill-suspend", "acme-ns", json!({}));
    let key = JobKind::SuspendUser.routing_key(VendorKey::Netsapiens);
    probe.publish_raw(&key, suspend.to_string().into_bytes(), Some("kill-suspend")).await;
    common::wait_until(WAIT, "the vendor took the suspend", || subject.writes(&vendors) == (1, 0)).await;
    worker.signal("-KILL");
    worker.wait_exit(WAIT).await;
    relay.hold_writes(false);

    let mut worker = common::WorkerProcess::start(&settings);
    worker.admin_when_consuming().await;
    let outcome = next_type(&mut events, "kill-suspend").await;
    assert_eq!(outcome, "provisioning.user.unchanged", "{}", worker.all_logs());
    assert_eq!(subject.writes(&vendors), (1, 0), "the redelivered suspend sent nothing");
    assert_eq!(subject.state(&vendors), "suspended");
    // The projection moves the link on the redelivery's outcome, the first one never came.
    let ledger = Ledger::open(&settings.ledger, &settings.ledger.url).unwrap();
    let link = IdentityKey { vendor: VendorKey::Netsapiens, account: "acme-ns".into(), identity: subject.identity };
    common::wait_until_async(WAIT, "the link is suspended", || async {
        ledger.link(&link).await.ok().flatten().is_some_and(|l| l.state == LinkState::Suspended)
    })
    .await;
    drop(worker);
    probe.teardown().await;
}

// ---- Person events.

/// Sandbox accounts for the three vendors and tenant `acme` mapping an employee onto each,
/// with the tenant's default `on_leave` (suspend, suspend, ClientToolbox's soft delete); the
/// sandbox accounts suspend by scope and campaigns.
async fn person_settings() -> (Settings, TestVendors) {
    common::acme_settings().await
}

fn employee(id: &str, first: &str, last: &str, extension: &str) -> Value {
    json!({"id": id, "first_name": first, "last_name": last, "email": "jose@acme.example", "extension": extension})
}

fn person_event(event_id: &str, kind: &str, employee: Value) -> Value {
    json!({"event_id": event_id, "type": kind, "tenant": "acme", "employee": employee})
}

/// The next result events of the jobs `{event_id}:<vendor>:<account>`, one per vendor, as
/// `vendor → data`.
async fn outcomes_of(events: &mut Observer, event_id: &str, vendors: &[VendorKey]) -> BTreeMap<VendorKey, Value> {
    let mut out = BTreeMap::new();
    while out.len() < vendors.len() {
        let e = events.next_json(WAIT, &format!("the outcomes of {event_id}")).await;
        let subject = e["subject"].as_str().unwrap_or_default();
        if !subject.starts_with(&format!("{event_id}:"))
            || !e["type"].as_str().is_some_and(|t| t.starts_with("provisioning.user."))
        {
            continue;
        }
        let vendor: VendorKey = serde_json::from_value(e["data"]["vendor"].clone()).unwrap();
        assert!(out.insert(vendor, e["data"].clone()).is_none(), "two outcomes of {subject}");
    }
    let mut wanted = vendors.to_vec();
    wanted.sort();
    assert_eq!(out.keys().copied().collect::<Vec<_>>(), wanted, "{event_id}");
    out
}

/// The link states of one employee, as `(vendor, identity, state)`.
async fn links_of(ledger: &Ledger, employee_id: &str) -> Vec<(VendorKey, String, LinkState)> {
    let mut links: Vec<_> = ledger
        .links_of_employee(employee_id)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|l| (l.vendor, l.identity, l.state))
        .collect();
    links.sort_by_key(|l| (l.0, l.1.clone()));
    links
}

async fn links_become(env: &Env, employee_id: &str, expected: &[(VendorKey, &str, LinkState)]) {
    let expected: Vec<_> = expected.iter().map(|(v, i, s)| (*v, (*i).to_owned(), *s)).collect();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort_by_key(|l| (l.0, l.1.clone()));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let links = links_of(&env.ledger, employee_id).await;
        if links == expected_sorted {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the links of {employee_id} are {links:?}, not {expected_sorted:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const ALL: [VendorKey; 3] = VendorKey::ALL;

#[tokio::test]
async fn a_hire_an_update_a_leave_and_a_rehire_move_the_three_accounts_and_their_links() {
    for kind in BOTH {
        let (settings, vendors) = person_settings().await;
        let env = Env::start(settings, vendors, kind).await;
        let mut events = env.probe.observe_events().await;
        let s = &env.vendors.sandboxes;
        let ns_identity = format!("1731@{NS_DOMAIN}");
        let at = format!("{kind:?}");

        env.publish_person_event(&person_event("hire-731", "hire", employee(EMPLOYEE, "José", "Núñez", "1731"))).await;
        let hired = outcomes_of(&mut events, "hire-731", &ALL).await;
        assert!(hired.values().all(|d| d["outcome"] == "created"), "{at}: {hired:?}");
        links_become(
            &env,
            EMPLOYEE,
            &[
                (VendorKey::Glance, "EMP-000731", LinkState::Active),
                (VendorKey::Netsapiens, &ns_identity, LinkState::Active),
                (VendorKey::Clienttoolbox, "jose_nunez", LinkState::Active),
            ],
        )
        .await;

        // A new name: every mapped field that reads it is sent, the identities are kept.
        let update = json!({"event_id": "upd-731", "type": "update", "tenant": "acme",
                            "employee": {"id": EMPLOYEE, "first_name": "Josefa", "last_name": "Ortiz"}});
        env.publish_person_event(&update).await;
        let updated = outcomes_of(&mut events, "upd-731", &ALL).await;
        assert!(updated.values().all(|d| d["outcome"] == "updated"), "{at}: {updated:?}");
        let glance = s.glance.user("EMP-000731").unwrap();
        assert_eq!((&glance["UserFirst"], &glance["UserLast"]), (&json!("Josefa"), &json!("Ortiz")), "{at}");
        assert_eq!(glance["UserAddress"], "josefa.ortiz.acme.glance.net", "{at}");
        let ns = s.netsapiens.user(NS_DOMAIN, "1731").unwrap();
        assert_eq!((&ns["name-first-name"], &ns["name-last-name"]), (&json!("Josefa"), &json!("Ortiz")), "{at}");
        let ctb = s.clienttoolbox.user("jose_nunez").expect("ClientToolbox keeps the user_name");
        assert_eq!((&ctb["user_first_name"], &ctb["user_last_name"]), (&json!("Josefa"), &json!("Ortiz")), "{at}");
        assert!(s.clienttoolbox.user("josefa_ortiz").is_none(), "{at}: nobody was renamed");
        let history = env
            .history("upd-731", "the update's note is recorded", |k| {
                k.contains(&HistoryKind::Noted) && k.iter().filter(|k| **k == HistoryKind::Updated).count() == 3
            })
            .await;
        let noted = history.iter().find(|e| e["kind"] == "noted").unwrap();
        let notes = noted["detail"]["notes"].to_string();
        assert!(notes.contains("user_name") && notes.contains("never renamed"), "{at}: {noted}");

        // A leave: Glance and NetSapiens suspended, ClientToolbox marked deleted (its default).
        env.publish_person_event(&json!({"event_id": "lv-731", "type": "leave", "tenant": "acme",
                                         "employee": {"id": EMPLOYEE}}))
            .await;
        let left = outcomes_of(&mut events, "lv-731", &ALL).await;
        assert_eq!(left[&VendorKey::Glance]["outcome"], "suspended", "{at}: {left:?}");
        assert_eq!(left[&VendorKey::Netsapiens]["outcome"], "suspended", "{at}: {left:?}");
        assert_eq!(left[&VendorKey::Clienttoolbox]["outcome"], "deleted", "{at}: {left:?}");
        assert_eq!(s.glance.suspended("EMP-000731"), Some(true), "{at}");
        assert_eq!(s.netsapiens.user(NS_DOMAIN, "1731").unwrap()["user-scope"], "No Portal", "{at}");
        assert!(s.clienttoolbox.marked_deleted("jose_nunez"), "{at}");
        links_become(
            &env,
            EMPLOYEE,
            &[
                (VendorKey::Glance, "EMP-000731", LinkState::Suspended),
                (VendorKey::Netsapiens, &ns_identity, LinkState::Suspended),
                (VendorKey::Clienttoolbox, "jose_nunez", LinkState::Deleted),
            ],
        )
        .await;

        // A rehire restores what is suspended and creates where nothing lives. A ClientToolbox
        // user marked deleted keeps its name, so its create is a conflict that says so: the
        // operator chooses another user_name (or deletes the old one for good).
        env.publish_person_event(&person_event("rh-731", "rehire", employee(EMPLOYEE, "José", "Núñez", "1731"))).await;
        let rehired = outcomes_of(&mut events, "rh-731", &ALL).await;
        assert_eq!(rehired[&VendorKey::Glance]["outcome"], "restored", "{at}: {rehired:?}");
        assert_eq!(rehired[&VendorKey::Netsapiens]["outcome"], "restored", "{at}: {rehired:?}");
        let ctb = &rehired[&VendorKey::Clienttoolbox];
        assert_eq!(outcome(ctb), ("failed", Some("user_name_taken")), "{at}: {ctb}");
        assert_eq!(ctb["error"]["class"], "conflict", "{at}");
        let message = ctb["error"]["message"].as_str().unwrap();
        assert!(message.contains("marked deleted keeps its name"), "{at}: {message}");
        assert_eq!(s.glance.suspended("EMP-000731"), Some(false), "{at}");
        assert_eq!(s.netsapiens.user(NS_DOMAIN, "1731").unwrap()["user-scope"], "Basic User", "{at}");
        assert_eq!(s.clienttoolbox.creations("jose_nunez"), 1, "{at}");
        links_become(
            &env,
            EMPLOYEE,
            &[
                (VendorKey::Glance, "EMP-000731", LinkState::Active),
                (VendorKey::Netsapiens, &ns_identity, LinkState::Active),
                (VendorKey::Clienttoolbox, "jose_nunez", LinkState::Deleted),
            ],
        )
        .await;
        env.stop().await;
    }
}

#[tokio::test]
async fn a_leave_of_someone_who_holds_nothing_publishes_no_job_and_says_so() {
    let (settings, vendors) = person_settings().await;
    let env = Env::start(settings, vendors, Kind::Sqlite).await;
    let mut events = env.probe.observe_all_events().await;
    let requests = env.vendors.sandboxes.faults.requests();

    env.publish_person_event(&json!({"event_id": "lv-nobody", "type": "leave", "tenant": "acme",
                                     "employee": {"id": "000404"}}))
        .await;
    // The event's messages are published in order, jobs and their `published` steps first:
    // everything before the note is all there is.
    let noted = loop {
        let e = events.next_json(WAIT, "the leave's note").await;
        assert_ne!(e["type"], "provisioning.job.published", "no job: {e}");
        if e["type"] == "provisioning.job.noted" {
            break e;
        }
    };
    assert_eq!(noted["subject"], "lv-nobody");
    assert_eq!(noted["data"]["jobs"], 0, "{noted}");
    assert!(noted["data"]["notes"][0].as_str().unwrap().contains("holds no account"), "{noted}");
    let history = env.history("lv-nobody", "the note is recorded", |k| k == [HistoryKind::Noted]).await;
    assert_eq!(history[0]["detail"]["event"], "leave", "{history:?}");
    let queued: u32 = {
        let mut n = 0;
        for v in VendorKey::ALL {
            n += env.probe.ready_count(&env.settings.topology.job_queue(v)).await;
        }
        n
    };
    assert_eq!(queued, 0);
    assert_eq!(env.vendors.sandboxes.faults.requests(), requests, "no vendor was called");
    events.assert_quiet(Duration::from_millis(200)).await;
    env.stop().await;
}

#[tokio::test]
async fn a_leave_effective_later_waits_in_the_broker_and_acts_once_it_comes_back() {
    let (settings, vendors) = person_settings().await;
    let env = Env::start(settings, vendors, Kind::Sqlite).await;
    let mut events = env.probe.observe_events().await;
    let s = &env.vendors.sandboxes;
    env.publish_person_event(&person_event("hire-732", "hire", employee("000732", "Ana", "Lima", "1732"))).await;
    outcomes_of(&mut events, "hire-732", &ALL).await;
    links_become(
        &env,
        "000732",
        &[
            (VendorKey::Glance, "EMP-000732", LinkState::Active),
            (VendorKey::Netsapiens, &format!("1732@{NS_DOMAIN}"), LinkState::Active),
            (VendorKey::Clienttoolbox, "ana_lima", LinkState::Active),
        ],
    )
    .await;

    let effective = Utc::now() + chrono::Duration::seconds(2);
    let leave = json!({"event_id": "lv-732", "type": "leave", "tenant": "acme", "employee": {"id": "000732"},
                       "effective_at": effective.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                       "targets": ["glance"]});
    env.publish_person_event(&leave).await;
    let wait_queue = env.settings.topology.hr_wait_queue(Duration::from_secs(60));
    assert!(wait_queue.ends_with(".wait.1m"), "{wait_queue}");
    common::wait_until_async(WAIT, "the leave waits in the 1m queue", || async {
        env.probe.ready_count(&wait_queue).await == 1
    })
    .await;
    assert_eq!(env.probe.ready_count(&env.settings.topology.hr_queue).await, 0, "the leave is not held elsewhere");
    assert_eq!(s.glance.suspended("EMP-000732"), Some(false), "nothing is suspended yet");
    assert_eq!(s.glance.updates("EMP-000732"), 0);

    // The queue's TTL is a minute; its return is the broker's dead-lettering back to the
    // person-event exchange under the wait queue's name, done here by hand once the leave is
    // due (the next test lets the broker do it, under a shorter TTL).
    common::wait_until(WAIT, "the leave is due", || Utc::now() >= effective).await;
    let waited = env
        .probe
        .channel
        .basic_get(wait_queue.as_str().into(), lapin::options::BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the leave is still waiting");
    let waited = provisioner::transport::rabbitmq::inbound(&waited.delivery);
    let back = Outbound {
        kind: OutboundKind::Job,
        exchange: env.settings.topology.hr_exchange.clone(),
        routing_key: wait_queue.clone(),
        body: waited.body.clone(),
        message_id: waited.message_id.clone(),
        content_type: waited.content_type.clone(),
        timestamp: None,
        headers: waited.headers.clone(),
    };
    assert_eq!(serde_json::from_slice::<Value>(&waited.body).unwrap(), leave, "the leave waited as it came");
    env.probe.publisher.publish(&back).await.unwrap();
    let left = outcomes_of(&mut events, "lv-732", &[VendorKey::Glance]).await;
    assert_eq!(left[&VendorKey::Glance]["outcome"], "suspended", "{left:?}");
    assert_eq!(s.glance.suspended("EMP-000732"), Some(true));
    env.link_becomes(VendorKey::Glance, "acme-glance", "EMP-000732", LinkState::Suspended).await;
    env.link_becomes(VendorKey::Clienttoolbox, "acme-ctb", "ana_lima", LinkState::Active).await;
    assert_eq!(env.probe.ready_count(&wait_queue).await, 0);
    env.stop().await;
}

#[tokio::test]
async fn a_person_event_never_touches_an_identity_the_ledger_links_to_someone_else() {
    for kind in BOTH {
        let (settings, vendors) = person_settings().await;
        let env = Env::start(settings, vendors, kind).await;
        let mut events = env.probe.observe_events().await;
        let s = &env.vendors.sandboxes;
        let at = format!("{kind:?}");
        env.publish_person_event(&person_event("hire-731", "hire", employee(EMPLOYEE, "José", "Núñez", "1731"))).await;
        outcomes_of(&mut events, "hire-731", &ALL).await;
        env.link_becomes(VendorKey::Clienttoolbox, "acme-ctb", "jose_nunez", LinkState::Active).await;

        // A namesake, rehired with nothing of their own: their ClientToolbox user_name is the
        // first José's, which the ledger links to employee 000731, and so is their Glance
        // Address (Glance itself refuses that one).
        let namesake = employee("000999", "José", "Núñez", "1999");
        env.publish_person_event(&person_event("rh-999", "rehire", namesake)).await;
        let rehired = outcomes_of(&mut events, "rh-999", &ALL).await;
        let glance = &rehired[&VendorKey::Glance];
        assert_eq!(outcome(glance), ("failed", Some("user_address_taken")), "{at}: {glance}");
        assert_eq!(glance["error"]["class"], "conflict", "{at}");
        assert_eq!(s.glance.user("EMP-000731").unwrap()["UserFirst"], "José", "{at}");
        assert_eq!(rehired[&VendorKey::Netsapiens]["outcome"], "created", "{at}: {rehired:?}");
        let ctb = &rehired[&VendorKey::Clienttoolbox];
        assert_eq!(outcome(ctb), ("failed", Some("identity_held_by_another_person")), "{at}: {ctb}");
        assert_eq!(ctb["error"]["class"], "conflict", "{at}");
        assert_eq!(s.clienttoolbox.creations("jose_nunez"), 1, "{at}");
        assert_eq!(s.clienttoolbox.updates("jose_nunez"), 0, "{at}");
        env.link_becomes(VendorKey::Clienttoolbox, "acme-ctb", "jose_nunez", LinkState::Active).await;
        let link = env
            .ledger
            .link(&IdentityKey {
                vendor: VendorKey::Clienttoolbox,
                account: "acme-ctb".into(),
                identity: "jose_nunez".into(),
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(link.person.unwrap().employee_id, EMPLOYEE, "{at}: still the first José's");

        // The namesake's leave acts on their own account only.
        links_become(&env, "000999", &[(VendorKey::Netsapiens, &format!("1999@{NS_DOMAIN}"), LinkState::Active)]).await;
        env.publish_person_event(&json!({"event_id": "lv-999", "type": "leave", "tenant": "acme",
                                         "employee": {"id": "000999"}}))
            .await;
        let left = outcomes_of(&mut events, "lv-999", &[VendorKey::Netsapiens]).await;
        assert_eq!(left[&VendorKey::Netsapiens]["outcome"], "suspended", "{at}: {left:?}");
        assert_eq!(s.netsapiens.user(NS_DOMAIN, "1731").unwrap()["user-scope"], "Basic User", "{at}");
        assert_eq!(s.glance.suspended("EMP-000731"), Some(false), "{at}");
        assert!(!s.clienttoolbox.marked_deleted("jose_nunez"), "{at}");

        // And a job that names the namesake but the first José's Glance user is refused unsent.
        let requests = s.faults.requests();
        let suspend = json!({"job_id": "sus-999", "kind": "suspend_user", "vendor": "glance", "account": "acme-glance",
                             "person": {"tenant": "acme", "employee_id": "000999"},
                             "user": {"PartnerUserID": "EMP-000731"}});
        env.publish(&suspend).await;
        let refused = outcome_of(&mut events, "sus-999").await;
        assert_eq!(outcome(&refused), ("failed", Some("identity_held_by_another_person")), "{at}: {refused}");
        assert_eq!(s.faults.requests(), requests, "{at}: nothing was sent");
        assert_eq!(s.glance.suspended("EMP-000731"), Some(false), "{at}");
        env.link_becomes(VendorKey::Glance, "acme-glance", "EMP-000731", LinkState::Active).await;
        env.stop().await;
    }
}

/// A broker policy giving one queue a 300 ms message TTL, cleared when dropped.
struct ShortTtl(String);

impl ShortTtl {
    fn on(queue: &str) -> Self {
        let name = format!("lifecycle-test-{}", uuid::Uuid::new_v4().simple());
        let pattern = format!("^{}$", queue.replace('.', "\\."));
        let definition = r#"{"message-ttl": 300}"#;
        common::rabbitmqctl(&["set_policy", "--apply-to", "queues", "--priority", "1000", &name, &pattern, definition]);
        Self(name)
    }
}

impl Drop for ShortTtl {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl").args(["clear_policy", &self.0]).output();
    }
}

#[tokio::test]
async fn a_waiting_leave_comes_back_through_the_brokers_own_dead_lettering() {
    let (settings, vendors) = person_settings().await;
    let env = Env::start(settings, vendors, Kind::Sqlite).await;
    let mut events = env.probe.observe_events().await;
    let s = &env.vendors.sandboxes;
    env.publish_person_event(&person_event("hire-733", "hire", employee("000733", "Rui", "Costa", "1733"))).await;
    outcomes_of(&mut events, "hire-733", &ALL).await;
    env.link_becomes(VendorKey::Glance, "acme-glance", "EMP-000733", LinkState::Active).await;

    // A policy of this test's own shortens its 1m wait queue's TTL (the lower of the two
    // wins): the leave expires, the broker dead-letters it back to the person-event exchange,
    // and it waits again until it is due.
    let wait_queue = env.settings.topology.hr_wait_queue(Duration::from_secs(60));
    let policy = ShortTtl::on(&wait_queue);
    let effective = Utc::now() + chrono::Duration::seconds(1);
    env.publish_person_event(&json!({"event_id": "lv-733", "type": "leave", "tenant": "acme",
        "employee": {"id": "000733"}, "targets": ["glance"],
        "effective_at": effective.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}))
        .await;
    let left = outcomes_of(&mut events, "lv-733", &[VendorKey::Glance]).await;
    drop(policy);
    assert_eq!(left[&VendorKey::Glance]["outcome"], "suspended", "{left:?}");
    assert!(Utc::now() >= effective, "not before it was due");
    assert_eq!(s.glance.suspended("EMP-000733"), Some(true));
    env.link_becomes(VendorKey::Glance, "acme-glance", "EMP-000733", LinkState::Suspended).await;
    env.stop().await;
}
