//! Movers, leavers and rehires: a person event and the person's links in the ledger become update, suspend, restore, delete or create jobs.
//!
//! A hire needs nothing but the mapping; the other events act on the accounts the person
//! holds, which only the ledger knows. Every derivation is all or nothing, as a hire's is:
//! one job that cannot be valid refuses the whole event, with every reason.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::event::{EmployeeField, Hire, Leave, Update};
use super::mapping::{typed, DerivedJob, Mapper, Rule, Target};
use super::template::Var;
use crate::config::OnLeave;
use crate::contract::{FieldError, JobKind, VendorKey};
use crate::job::{self, Rejection};
use crate::ledger::{Link, LinkState};

/// What a lifecycle event derived: its jobs, and what it found but did not act on, each
/// said in a sentence (recorded in the event's history, never silently dropped).
#[derive(Debug, Default)]
pub struct Derived {
    pub jobs: Vec<DerivedJob>,
    pub notes: Vec<String>,
}

/// The `user` members and domain that name a linked user in a job: the identity the ledger
/// holds, split back into the vendor's fields (NetSapiens keys its users `user@domain`).
fn naming(vendor: VendorKey, identity: &str) -> (Map<String, Value>, Option<String>) {
    let mut user = Map::new();
    match vendor {
        VendorKey::Netsapiens => {
            let (ext, domain) = identity.rsplit_once('@').unwrap_or((identity, ""));
            user.insert("user".into(), json!(ext));
            return (user, (!domain.is_empty()).then(|| domain.to_owned()));
        }
        VendorKey::Glance | VendorKey::Clienttoolbox => {
            user.insert(vendor.identity_field().into(), json!(identity));
        }
    }
    (user, None)
}

/// The context every job of one event shares.
struct Event<'a> {
    event_id: &'a str,
    tenant: &'a str,
    employee_id: &'a str,
    requested_at: DateTime<Utc>,
    targets: Option<&'a [VendorKey]>,
}

impl Event<'_> {
    fn wants(&self, vendor: VendorKey) -> bool {
        self.targets.is_none_or(|t| t.contains(&vendor))
    }
}

/// Job ids are `{event_id}:{vendor}:{account}`, as a hire's are, so an event seen twice
/// yields the same jobs; a second identity in the same account gets `:2`, `:3`, ...
fn job_ids(event_id: &str, links: &[&Link]) -> Vec<String> {
    let mut seen: BTreeMap<(VendorKey, &str), usize> = BTreeMap::new();
    links
        .iter()
        .map(|l| {
            let n = seen.entry((l.vendor, l.account.as_str())).or_default();
            *n += 1;
            match *n {
                1 => format!("{event_id}:{}:{}", l.vendor, l.account),
                n => format!("{event_id}:{}:{}:{n}", l.vendor, l.account),
            }
        })
        .collect()
}

impl Mapper {
    /// Builds and decodes one job for a linked user, under its account's rules and policy.
    fn link_job(
        &self,
        ev: &Event<'_>,
        job_id: String,
        kind: JobKind,
        link: &Link,
        changes: Map<String, Value>,
    ) -> Result<DerivedJob, Vec<FieldError>> {
        let (mut user, domain) = naming(link.vendor, &link.identity);
        user.extend(changes);
        let mut body = json!({
            "job_id": job_id,
            "kind": kind,
            "vendor": link.vendor,
            "account": link.account,
            "correlation_id": ev.event_id,
            "person": {"tenant": ev.tenant, "employee_id": ev.employee_id},
            "requested_at": ev.requested_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "user": user,
        });
        if let Some(d) = domain {
            body["domain"] = json!(d);
        }
        let Value::Object(obj) = &body else { unreachable!("built as an object") };
        let prefix = format!("{}.{}", link.vendor, link.account);
        let job = match job::decode::decode_object_with(obj, &self.rules) {
            Ok(job) => job,
            Err(Rejection::Invalid(inv)) => {
                return Err(inv
                    .errors
                    .into_iter()
                    .map(|e| FieldError::new(format!("{prefix}.{}", e.field), e.message))
                    .collect())
            }
            Err(Rejection::Undecodable(m)) => return Err(vec![FieldError::new(prefix, m)]),
        };
        // The mapping's policy is the account's: a job it refuses would only be dead-lettered.
        if let Some(target) = self.target_of(ev.tenant, link) {
            let refused = target.policy.check(&job);
            if !refused.is_empty() {
                return Err(refused
                    .into_iter()
                    .map(|e| FieldError::new(format!("{prefix}.{}", e.field), e.message))
                    .collect());
            }
        }
        Ok(DerivedJob { job, body })
    }

    /// The tenant's mapping for a link's vendor, when it maps to the link's account.
    fn target_of(&self, tenant: &str, link: &Link) -> Option<&Target> {
        self.tenants.get(tenant)?.targets.get(&link.vendor).filter(|t| t.account == link.account)
    }

    /// What a leave does at a link's vendor: the tenant's `on_leave` there, else the vendor's
    /// least destructive documented action.
    fn on_leave(&self, tenant: &str, vendor: VendorKey) -> OnLeave {
        self.tenants
            .get(tenant)
            .and_then(|t| t.targets.get(&vendor))
            .map_or(OnLeave::default_for(vendor), |t| t.on_leave)
    }

    fn known_tenant(&self, tenant: &str) -> Result<(), Vec<FieldError>> {
        match self.tenants.contains_key(tenant) {
            true => Ok(()),
            false => Err(vec![FieldError::new("tenant", format!("no tenant named {tenant:?} is configured"))]),
        }
    }

    /// A leave: every account the person holds loses access as the tenant's `on_leave` says.
    /// A suspend acts on active links (and intents: a create in flight may have gone
    /// through); a delete on every link not deleted yet.
    pub fn derive_leave(&self, leave: &Leave, links: &[Link], now: DateTime<Utc>) -> Result<Derived, Vec<FieldError>> {
        self.known_tenant(&leave.tenant)?;
        let ev = Event {
            event_id: &leave.event_id,
            tenant: &leave.tenant,
            employee_id: &leave.employee_id,
            requested_at: leave.effective_at.or(leave.occurred_at).unwrap_or(now),
            targets: leave.targets.as_deref(),
        };
        let mut out = Derived::default();
        let mut acting = Vec::new();
        for link in links.iter().filter(|l| ev.wants(l.vendor)) {
            let policy = self.on_leave(&leave.tenant, link.vendor);
            let kind = match (policy, link.state) {
                (OnLeave::None, _) => {
                    out.notes.push(format!(
                        "{} {} in {} {}: on_leave is none, left as it is",
                        link.vendor.identity_field(),
                        link.identity,
                        link.vendor,
                        link.account
                    ));
                    continue;
                }
                (_, LinkState::Deleted) | (OnLeave::Suspend, LinkState::Suspended) => continue,
                (OnLeave::Suspend, _) => JobKind::SuspendUser,
                (OnLeave::Delete, _) => JobKind::DeleteUser,
            };
            acting.push((link, kind));
        }
        let ids = job_ids(&leave.event_id, &acting.iter().map(|(l, _)| *l).collect::<Vec<_>>());
        let mut errors = Vec::new();
        for ((link, kind), id) in acting.into_iter().zip(ids) {
            match self.link_job(&ev, id, kind, link, Map::new()) {
                Ok(job) => out.jobs.push(job),
                Err(e) => errors.extend(e),
            }
        }
        if out.jobs.is_empty() && out.notes.is_empty() && errors.is_empty() {
            out.notes.push(format!(
                "employee {} of tenant {} holds no account to act on (no active link in the ledger)",
                leave.employee_id, leave.tenant
            ));
        }
        finish(out, errors)
    }

    /// An update: each account the person holds (active or suspended) is sent the fields
    /// whose templates read a changed value, rendered from the event. A field whose template
    /// also needs a value the event does not give refuses the event (send that value too);
    /// an identity field is never renamed, and says so.
    pub fn derive_update(
        &self,
        update: &Update,
        links: &[Link],
        now: DateTime<Utc>,
    ) -> Result<Derived, Vec<FieldError>> {
        self.known_tenant(&update.tenant)?;
        let ev = Event {
            event_id: &update.event_id,
            tenant: &update.tenant,
            employee_id: &update.employee_id,
            requested_at: update.occurred_at.unwrap_or(now),
            targets: update.targets.as_deref(),
        };
        let mut out = Derived::default();
        let mut errors = Vec::new();
        let live: Vec<&Link> = links
            .iter()
            .filter(|l| ev.wants(l.vendor) && matches!(l.state, LinkState::Active | LinkState::Suspended))
            .collect();
        let ids = job_ids(&update.event_id, &live);
        for (link, id) in live.into_iter().zip(ids) {
            let Some(target) = self.target_of(&update.tenant, link) else {
                out.notes.push(format!(
                    "{} {} in {} {}: the tenant maps no fields to this account, not updated",
                    link.vendor.identity_field(),
                    link.identity,
                    link.vendor,
                    link.account
                ));
                continue;
            };
            let (changes, field_errors, notes) = changed_fields(update, link.vendor, target);
            errors.extend(field_errors);
            out.notes.extend(notes);
            if changes.is_empty() {
                continue;
            }
            match self.link_job(&ev, id, JobKind::UpdateUser, link, changes) {
                Ok(job) => out.jobs.push(job),
                Err(e) => errors.extend(e),
            }
        }
        if out.jobs.is_empty() && out.notes.is_empty() && errors.is_empty() {
            out.notes.push(format!(
                "employee {} of tenant {} holds no account whose mapped fields change",
                update.employee_id, update.tenant
            ));
        }
        finish(out, errors)
    }

    /// A rehire: suspended accounts are restored; a vendor of the event's targets where the
    /// person holds no live account gets a create from the mapping, as a hire would.
    pub fn derive_rehire(&self, hire: &Hire, links: &[Link], now: DateTime<Utc>) -> Result<Derived, Vec<FieldError>> {
        self.known_tenant(&hire.tenant)?;
        let ev = Event {
            event_id: &hire.event_id,
            tenant: &hire.tenant,
            employee_id: &hire.employee.id,
            requested_at: hire.occurred_at.unwrap_or(now),
            targets: hire.targets.as_deref(),
        };
        let mut out = Derived::default();
        let mut errors = Vec::new();
        let suspended: Vec<&Link> =
            links.iter().filter(|l| ev.wants(l.vendor) && l.state == LinkState::Suspended).collect();
        let ids = job_ids(&hire.event_id, &suspended);
        for (link, id) in suspended.iter().zip(ids) {
            match self.link_job(&ev, id, JobKind::RestoreUser, link, Map::new()) {
                Ok(job) => out.jobs.push(job),
                Err(e) => errors.extend(e),
            }
        }
        // Where no live account is left, the mapping creates one, as for a hire.
        let creates = self.derive_where(hire, now, |vendor, target| {
            !links.iter().any(|l| {
                l.vendor == vendor
                    && l.account == target.account
                    && matches!(l.state, LinkState::Active | LinkState::Suspended | LinkState::Intent)
            })
        });
        match creates {
            Ok(jobs) => out.jobs.extend(jobs),
            Err(e) => errors.extend(e),
        }
        if out.jobs.is_empty() && errors.is_empty() {
            out.notes.push(format!(
                "employee {} of tenant {} already holds a live account at every target",
                hire.employee.id, hire.tenant
            ));
        }
        finish(out, errors)
    }
}

fn finish(out: Derived, mut errors: Vec<FieldError>) -> Result<Derived, Vec<FieldError>> {
    if errors.is_empty() {
        Ok(out)
    } else {
        FieldError::cap(&mut errors);
        Err(errors)
    }
}

/// The fields of one target an update changes, rendered from the changed values; the
/// errors of fields that need more than the event gives; notes for what is not sent.
fn changed_fields(
    update: &Update,
    vendor: VendorKey,
    target: &Target,
) -> (Map<String, Value>, Vec<FieldError>, Vec<String>) {
    let mut changes = Map::new();
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    let updatable: Vec<&str> = crate::vendors::updatable_fields(vendor).collect();
    for (name, kind, rule) in &target.fields {
        // A generated value (a password) is made once, at creation: never regenerated.
        let Rule::Template { template, optional } = rule else { continue };
        let reads: Vec<EmployeeField> = template.employee_fields().collect();
        if !reads.iter().any(|f| update.changed.contains_key(f)) {
            continue;
        }
        if *name == vendor.identity_field() {
            notes.push(format!(
                "{vendor} {name} (template {:?}) reads a changed value, but a vendor identity is never renamed: kept",
                template.source()
            ));
            continue;
        }
        if !updatable.contains(name) {
            notes.push(format!("{vendor} cannot change {name} of an existing user: not sent"));
            continue;
        }
        if let Some(missing) = reads.iter().find(|f| **f != EmployeeField::Id && !update.changed.contains_key(f)) {
            errors.push(FieldError::new(
                format!("{vendor}.user.{name}"),
                format!(
                    "template {:?} also reads employee.{}, which this update does not give: send it with the change",
                    template.source(),
                    missing.name()
                ),
            ));
            continue;
        }
        let rendered = template.render_with(|var| match var {
            Var::EventId => Some(update.event_id.clone()),
            Var::Tenant => Some(update.tenant.clone()),
            Var::Employee(EmployeeField::Id) => Some(update.employee_id.clone()),
            Var::Employee(f) => update.changed.get(&f).cloned(),
        });
        let text = match rendered {
            Ok(t) => t,
            Err(_) if *optional => continue,
            Err(missing) => {
                errors.push(FieldError::new(
                    format!("{vendor}.user.{name}"),
                    format!("{missing} (template {:?})", template.source()),
                ));
                continue;
            }
        };
        match typed(*kind, text, format!("{vendor}.user.{name}")) {
            Ok(value) => changes.insert((*name).to_owned(), value.to_json()),
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
    }
    (changes, errors, notes)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::contract::Person;
    use crate::hire::event::{decode, PersonEvent};
    use crate::hire::mapping::testing::settings;

    fn link(vendor: VendorKey, account: &str, identity: &str, state: LinkState) -> Link {
        Link {
            vendor,
            account: account.into(),
            identity: identity.into(),
            identity_extra: None,
            person: Some(Person { tenant: "acme".into(), employee_id: "000731".into() }),
            job_id: "hire-1".into(),
            correlation_id: None,
            vendor_user_id: None,
            state,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn held() -> Vec<Link> {
        vec![
            link(VendorKey::Glance, "acme-glance", "EMP-000731", LinkState::Active),
            link(VendorKey::Netsapiens, "acme-ns", "1731@acme.example", LinkState::Active),
            link(VendorKey::Clienttoolbox, "acme-ctb", "jane_doe", LinkState::Suspended),
            link(VendorKey::Clienttoolbox, "acme-ctb", "jane_doe_old", LinkState::Deleted),
        ]
    }

    fn event(v: serde_json::Value) -> PersonEvent {
        decode(v.to_string().as_bytes()).unwrap()
    }

    fn summary(jobs: &[DerivedJob]) -> Vec<(String, String, serde_json::Value)> {
        jobs.iter()
            .map(|j| (j.job.id.to_string(), j.job.kind.routing_key(j.job.vendor), j.body["user"].clone()))
            .collect()
    }

    #[test]
    fn a_leave_suspends_or_deletes_each_account_as_the_tenant_says() {
        let mapper = Mapper::new(&settings()).unwrap();
        let PersonEvent::Leave(leave) = event(json!({"event_id": "lv-1", "type": "leave", "tenant": "acme",
            "employee": {"id": "000731"}}))
        else {
            panic!()
        };
        let d = mapper.derive_leave(&leave, &held(), Utc::now()).unwrap();
        assert_eq!(
            summary(&d.jobs),
            [
                (
                    "lv-1:glance:acme-glance".into(),
                    "suspend_user.glance".into(),
                    json!({"PartnerUserID": "EMP-000731"})
                ),
                ("lv-1:netsapiens:acme-ns".into(), "suspend_user.netsapiens".into(), json!({"user": "1731"})),
                // ClientToolbox has no suspend: its default is its soft delete, of a suspended
                // account too; the deleted one is left alone.
                (
                    "lv-1:clienttoolbox:acme-ctb".into(),
                    "delete_user.clienttoolbox".into(),
                    json!({"user_name": "jane_doe"})
                ),
            ]
        );
        assert_eq!(d.jobs[1].body["domain"], "acme.example");
        assert!(d.jobs.iter().all(|j| j.job.person.as_ref().is_some_and(|p| p.employee_id == "000731")));
        assert!(d.notes.is_empty(), "{:?}", d.notes);

        let none = mapper.derive_leave(&leave, &[], Utc::now()).unwrap();
        assert!(none.jobs.is_empty());
        assert_eq!(none.notes.len(), 1, "a leave of someone who holds nothing says so");
        assert!(none.notes[0].contains("holds no account"), "{:?}", none.notes);
    }

    #[test]
    fn on_leave_none_and_delete_are_the_tenants_to_choose() {
        let mut s = settings();
        s.tenants.get_mut("acme").unwrap().glance.as_mut().unwrap().on_leave = Some(OnLeave::None);
        s.tenants.get_mut("acme").unwrap().netsapiens.as_mut().unwrap().on_leave = Some(OnLeave::Delete);
        let mapper = Mapper::new(&s).unwrap();
        let PersonEvent::Leave(leave) = event(json!({"event_id": "lv-2", "type": "leave", "tenant": "acme",
            "employee": {"id": "000731"}, "targets": ["glance", "netsapiens"]}))
        else {
            panic!()
        };
        let d = mapper.derive_leave(&leave, &held(), Utc::now()).unwrap();
        assert_eq!(d.jobs.iter().map(|j| j.job.kind).collect::<Vec<_>>(), [JobKind::DeleteUser]);
        assert!(d.notes[0].contains("on_leave is none"), "{:?}", d.notes);
    }

    #[test]
    fn an_update_sends_the_fields_whose_templates_read_a_changed_value() {
        let mapper = Mapper::new(&settings()).unwrap();
        let PersonEvent::Update(update) = event(json!({"event_id": "up-1", "type": "update", "tenant": "acme",
            "employee": {"id": "000731", "first_name": "Jane", "last_name": "Smith"}}))
        else {
            panic!()
        };
        let d = mapper.derive_update(&update, &held(), Utc::now()).unwrap();
        assert_eq!(
            summary(&d.jobs),
            [
                (
                    "up-1:glance:acme-glance".into(),
                    "update_user.glance".into(),
                    json!({"PartnerUserID": "EMP-000731", "UserAddress": "jane.smith.acme.glance.net", "UserFirst": "Jane", "UserLast": "Smith"})
                ),
                (
                    "up-1:netsapiens:acme-ns".into(),
                    "update_user.netsapiens".into(),
                    json!({"user": "1731", "name-first-name": "Jane", "name-last-name": "Smith"})
                ),
                // A suspended account is kept up to date too.
                (
                    "up-1:clienttoolbox:acme-ctb".into(),
                    "update_user.clienttoolbox".into(),
                    json!({"user_name": "jane_doe", "user_first_name": "Jane", "user_last_name": "Smith"})
                ),
            ]
        );
        // ClientToolbox's user_name reads the names, and is never renamed: said, not ignored.
        assert_eq!(d.notes.len(), 1, "{:?}", d.notes);
        assert!(d.notes[0].contains("user_name") && d.notes[0].contains("never renamed"), "{:?}", d.notes);
    }

    #[test]
    fn an_update_whose_template_needs_an_unsent_value_is_refused_naming_both() {
        let mapper = Mapper::new(&settings()).unwrap();
        let PersonEvent::Update(update) = event(json!({"event_id": "up-2", "type": "update", "tenant": "acme",
            "employee": {"id": "000731", "last_name": "Smith"}}))
        else {
            panic!()
        };
        let errors = mapper.derive_update(&update, &held(), Utc::now()).unwrap_err();
        assert_eq!(errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["glance.user.UserAddress"]);
        assert!(errors[0].message.contains("employee.first_name"), "{}", errors[0].message);
        // A change no mapped field reads sends nothing, and says so.
        let PersonEvent::Update(update) = event(json!({"event_id": "up-3", "type": "update", "tenant": "acme",
            "employee": {"id": "000731", "location": "HQ"}}))
        else {
            panic!()
        };
        let d = mapper.derive_update(&update, &held(), Utc::now()).unwrap();
        assert!(d.jobs.is_empty() && !d.notes.is_empty(), "{:?}", d.notes);
    }

    #[test]
    fn a_rehire_restores_what_is_suspended_and_creates_where_nothing_lives() {
        let mapper = Mapper::new(&settings()).unwrap();
        let PersonEvent::Hire(hire) = event(json!({"event_id": "rh-1", "type": "rehire", "tenant": "acme",
            "employee": {"id": "000731", "first_name": "Jane", "last_name": "Doe", "extension": "1731",
                         "email": "jane.doe@acme.example"}}))
        else {
            panic!()
        };
        let links = vec![
            link(VendorKey::Glance, "acme-glance", "EMP-000731", LinkState::Suspended),
            link(VendorKey::Netsapiens, "acme-ns", "1731@acme.example", LinkState::Deleted),
            link(VendorKey::Clienttoolbox, "acme-ctb", "jane_doe", LinkState::Active),
        ];
        let d = mapper.derive_rehire(&hire, &links, Utc::now()).unwrap();
        let kinds: Vec<(String, String)> = summary(&d.jobs).into_iter().map(|(id, key, _)| (id, key)).collect();
        assert_eq!(
            kinds,
            [
                ("rh-1:glance:acme-glance".into(), "restore_user.glance".into()),
                ("rh-1:netsapiens:acme-ns".into(), "create_user.netsapiens".into()),
            ]
        );
        // Nobody held anything: a rehire is a hire.
        let fresh = mapper.derive_rehire(&hire, &[], Utc::now()).unwrap();
        assert_eq!(fresh.jobs.iter().filter(|j| j.job.kind == JobKind::CreateUser).count(), 3);
    }
}
