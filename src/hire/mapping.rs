//! Per-tenant mappings: turn one hire into one valid create-user job per target, or into
//! every field error, all or nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{json, Map, Value};

use super::event::Hire;
use super::template::Template;
use crate::config::{ConfigError, FieldRuleSettings, Generate, OnLeave, Settings, TopologySettings};
use crate::contract::{all_auth_fields, FieldError, FieldKind, FieldValue, Job, VendorKey};
use crate::job::{self, Rejection};
use crate::transport::headers as h;
use crate::transport::{Headers, Outbound, OutboundKind};
use crate::vendors::{FieldRules, Policy, Rulebook};

#[derive(Clone, Debug)]
pub(super) enum Rule {
    Template { template: Template, optional: bool },
    Generate(Generate),
}

#[derive(Clone, Debug)]
pub(super) struct Target {
    pub(super) account: String,
    pub(super) domain: Option<String>,
    pub(super) fields: Vec<(&'static str, FieldKind, Rule)>,
    /// The account's policy, which every derived job must keep to.
    pub(super) policy: Policy,
    /// What a leave does here.
    pub(super) on_leave: OnLeave,
}

#[derive(Clone, Debug)]
pub(super) struct Tenant {
    pub(super) default_targets: Vec<VendorKey>,
    pub(super) targets: BTreeMap<VendorKey, Target>,
}

/// A mapping configuration error, naming the key to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: key `{key}`: {message}")]
pub struct MappingError {
    pub key: String,
    pub message: String,
}

/// The compiled tenant mappings.
#[derive(Clone, Debug, Default)]
pub struct Mapper {
    pub(super) tenants: BTreeMap<String, Tenant>,
    /// The CloudEvents `source` of the `published` step events.
    event_source: String,
    /// The field rules of every account a tenant maps to: each derived job is decoded under
    /// its account's rules, as the worker will decode it.
    pub(super) rules: Rulebook,
}

/// One derived job: its decoded form (proof it is valid) and the body to publish.
#[derive(Clone, Debug)]
pub struct DerivedJob {
    pub job: Job,
    pub(super) body: Value,
}

impl DerivedJob {
    pub fn job_id(&self) -> &str {
        self.job.id.as_str()
    }

    /// The job with secret fields redacted, for previews and logs.
    pub fn redacted(&self) -> Value {
        let mut v = self.body.clone();
        v["user"] = self.job.user.redacted();
        v
    }

    /// The job message, persistent, `message_id` = job_id, carrying the hire's traceparent.
    pub fn outbound(&self, topology: &TopologySettings, traceparent: Option<&str>) -> Outbound {
        let mut headers = Headers::new();
        if let Some(tp) = traceparent {
            h::set_text(&mut headers, h::TRACEPARENT, tp);
        }
        Outbound {
            kind: OutboundKind::Job,
            exchange: topology.jobs_exchange.clone(),
            routing_key: self.job.kind.routing_key(self.job.vendor),
            body: serde_json::to_vec(&self.body).expect("a JSON value serialises"),
            message_id: Some(self.job.id.to_string()),
            content_type: Some("application/json".into()),
            timestamp: Some(Utc::now().timestamp().max(0) as u64),
            headers,
        }
    }
}

impl Mapper {
    pub fn event_source(&self) -> &str {
        &self.event_source
    }

    /// Compiles every tenant of `settings`, checking templates, vendor field names and that
    /// each named account exists and belongs to the vendor.
    pub fn new(settings: &Settings) -> Result<Self, MappingError> {
        let mut tenants = BTreeMap::new();
        let mut rules = Rulebook::default();
        for (name, t) in &settings.tenants {
            let err = |key: String, message: String| MappingError { key, message };
            if let Err(e) = crate::contract::AccountName::parse(name) {
                return Err(err(format!("tenants.{name}"), format!("tenant name {e}")));
            }
            let mut targets = BTreeMap::new();
            for vendor in VendorKey::ALL {
                let Some(target) = t.target(vendor) else { continue };
                let key = format!("tenants.{name}.{vendor}");
                match settings.accounts.get(&target.account) {
                    None => {
                        return Err(err(
                            format!("{key}.account"),
                            format!("no account named {:?} is configured", target.account),
                        ))
                    }
                    Some(a) if a.vendor != vendor => {
                        return Err(err(
                            format!("{key}.account"),
                            format!("account {:?} is a {} account", target.account, a.vendor),
                        ))
                    }
                    Some(_) => {}
                }
                if target.domain.is_some() && vendor != VendorKey::Netsapiens {
                    return Err(err(format!("{key}.domain"), "only NetSapiens targets take a domain".into()));
                }
                let mut fields = Vec::new();
                for (field, rule) in &target.fields {
                    let fkey = format!("{key}.fields.{field}");
                    if all_auth_fields().any(|a| a == field) {
                        return Err(err(fkey, "credentials come from the account, never from a mapping".into()));
                    }
                    let spec =
                        vendor.field(field).ok_or_else(|| err(fkey.clone(), format!("unknown field for {vendor}")))?;
                    let rule = match rule {
                        FieldRuleSettings::Template(src) => Rule::Template {
                            template: Template::parse(src, &[]).map_err(|m| err(fkey.clone(), m))?,
                            optional: false,
                        },
                        FieldRuleSettings::Table(t) => match (&t.template, t.generate) {
                            (Some(src), None) => Rule::Template {
                                template: Template::parse(src, &t.filters).map_err(|m| err(fkey.clone(), m))?,
                                optional: t.optional,
                            },
                            (None, Some(g)) if t.filters.is_empty() && !t.optional => Rule::Generate(g),
                            _ => {
                                return Err(err(
                                    fkey,
                                    "give either `template` (with optional `filters` and `optional`) or `generate`"
                                        .into(),
                                ))
                            }
                        },
                    };
                    fields.push((spec.name, spec.kind, rule));
                }
                for spec in vendor.user_fields().iter().filter(|f| f.required) {
                    if !target.fields.contains_key(spec.name) {
                        return Err(err(format!("{key}.fields.{}", spec.name), format!("{vendor} requires it")));
                    }
                }
                let account = &settings.accounts[&target.account];
                let config_error = |e: ConfigError| match e {
                    ConfigError::Invalid { key, message } => err(key, message),
                    other => err(format!("{key}.account"), other.to_string()),
                };
                let policy = Policy::from_settings(&target.account, account).map_err(config_error)?;
                rules.insert(
                    target.account.clone(),
                    FieldRules::from_settings(&target.account, account).map_err(config_error)?,
                );
                let on_leave = target.on_leave.unwrap_or(OnLeave::default_for(vendor));
                // A leave must not find out at 3 a.m. that its suspend cannot be carried out:
                // vendors without a suspend of their own need the account's update for it.
                if on_leave == OnLeave::Suspend
                    && vendor != VendorKey::Glance
                    && !account.settings.contains_key("suspend")
                {
                    return Err(err(
                        format!("{key}.on_leave"),
                        format!(
                            "{vendor} has no suspend of its own: set accounts.{}.settings.suspend (the update that \
                             takes access away, e.g. {}), or on_leave = \"delete\" or \"none\"",
                            target.account,
                            match vendor {
                                VendorKey::Netsapiens => r#"{ "user-scope" = "No Portal" }"#,
                                _ => r#"{ allowed_campaigns = "none" }"#,
                            }
                        ),
                    ));
                }
                targets.insert(
                    vendor,
                    Target { account: target.account.clone(), domain: target.domain.clone(), fields, policy, on_leave },
                );
            }
            let default_targets = match &t.default_targets {
                Some(list) => {
                    if let Some(v) = list.iter().find(|v| !targets.contains_key(v)) {
                        return Err(err(format!("tenants.{name}.default_targets"), format!("{v} has no mapping")));
                    }
                    list.clone()
                }
                None => targets.keys().copied().collect(),
            };
            if default_targets.is_empty() {
                return Err(err(format!("tenants.{name}"), "maps no vendor".into()));
            }
            tenants.insert(name.clone(), Tenant { default_targets, targets });
        }
        Ok(Self { tenants, rules, event_source: settings.events.source.clone() })
    }

    /// Every job a hire turns into, each already through [`job::decode`] (the vendors' field
    /// rules); or, if any one cannot be made valid, every error and no job at all.
    pub fn derive(&self, hire: &Hire, now: DateTime<Utc>) -> Result<Vec<DerivedJob>, Vec<FieldError>> {
        self.derive_where(hire, now, |_, _| true)
    }

    /// [`Mapper::derive`] for the targets `wanted` keeps (a rehire skips those where the
    /// person still holds an account).
    pub(super) fn derive_where(
        &self,
        hire: &Hire,
        now: DateTime<Utc>,
        wanted: impl Fn(VendorKey, &Target) -> bool,
    ) -> Result<Vec<DerivedJob>, Vec<FieldError>> {
        let Some(tenant) = self.tenants.get(&hire.tenant) else {
            return Err(vec![FieldError::new("tenant", format!("no tenant named {:?} is configured", hire.tenant))]);
        };
        let targets = hire.targets.as_deref().unwrap_or(&tenant.default_targets);
        let mut errors = Vec::new();
        let mut jobs = Vec::new();
        for (i, vendor) in targets.iter().enumerate() {
            let Some(target) = tenant.targets.get(vendor) else {
                errors.push(FieldError::new(
                    format!("targets[{i}]"),
                    format!("tenant {:?} has no {vendor} mapping", hire.tenant),
                ));
                continue;
            };
            if !wanted(*vendor, target) {
                continue;
            }
            match derive_one(hire, *vendor, target, &self.rules, now) {
                // A job the account's policy refuses would only be dead-lettered by the
                // worker: refuse the hire now, all or nothing.
                Ok(derived) => {
                    let refused = target.policy.check(&derived.job);
                    errors.extend(
                        refused.into_iter().map(|e| FieldError::new(format!("{vendor}.{}", e.field), e.message)),
                    );
                    jobs.push(derived);
                }
                Err(e) => errors.extend(e),
            }
        }
        if errors.is_empty() {
            Ok(jobs)
        } else {
            FieldError::cap(&mut errors);
            Err(errors)
        }
    }
}

/// A rendered template as the field's value: an integer field needs the text of one.
pub(super) fn typed(kind: FieldKind, text: String, path: String) -> Result<FieldValue, FieldError> {
    match kind {
        FieldKind::Integer => text
            .parse::<i64>()
            .map(FieldValue::Integer)
            .map_err(|_| FieldError::new(path, format!("must be an integer, the mapping produced {text:?}"))),
        FieldKind::Text | FieldKind::TextOrInteger => Ok(FieldValue::Text(text)),
    }
}

fn derive_one(
    hire: &Hire,
    vendor: VendorKey,
    target: &Target,
    rules: &Rulebook,
    now: DateTime<Utc>,
) -> Result<DerivedJob, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut user = Map::new();
    for (name, kind, rule) in &target.fields {
        let path = format!("{vendor}.user.{name}");
        let text = match rule {
            Rule::Generate(Generate::Password) => Alphanumeric.sample_string(&mut rand::rng(), 20),
            Rule::Template { template, optional } => match template.render(hire) {
                Ok(t) => t,
                Err(_) if *optional => continue,
                Err(missing) => {
                    errors.push(FieldError::new(path, format!("{missing} (template {:?})", template.source())));
                    continue;
                }
            },
        };
        match typed(*kind, text, path) {
            Ok(value) => user.insert((*name).to_owned(), value.to_json()),
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut body = json!({
        "job_id": format!("{}:{vendor}:{}", hire.event_id, target.account),
        "vendor": vendor,
        "account": target.account,
        "correlation_id": hire.event_id,
        "person": {"tenant": hire.tenant, "employee_id": hire.employee.id},
        "requested_at": hire.occurred_at.unwrap_or(now).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "user": user,
    });
    if let Some(d) = &target.domain {
        body["domain"] = json!(d);
    }
    let Value::Object(obj) = &body else { unreachable!("built as an object") };
    match job::decode::decode_object_with(obj, rules) {
        Ok(job) => Ok(DerivedJob { job, body }),
        Err(Rejection::Invalid(inv)) => Err(inv
            .errors
            .into_iter()
            .map(|e| {
                let field = if e.field == "job_id" { "event_id".to_owned() } else { format!("{vendor}.{}", e.field) };
                FieldError::new(field, e.message)
            })
            .collect()),
        Err(Rejection::Undecodable(m)) => Err(vec![FieldError::new(vendor.as_str(), m)]),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// The example mapping of docs/hire-events.md for tenant `acme`, with accounts of the three vendors.
    pub(crate) fn settings() -> Settings {
        let toml = r#"
[accounts.acme-glance]
vendor = "glance"
[accounts.acme-ns]
vendor = "netsapiens"
settings = { domain = "acme.example", suspend = { "user-scope" = "No Portal" }, restore = { "user-scope" = "Basic User" } }
[accounts.acme-ctb]
vendor = "clienttoolbox"

[tenants.acme.glance]
account = "acme-glance"
fields.PartnerUserID = "EMP-{id}"
fields.UserAddress = "{first_name|slug}.{last_name|slug}.acme.glance.net"
fields.UserFirst = "{first_name}"
fields.UserLast = "{last_name}"
fields.UserEmail = { template = "{email}", optional = true }

[tenants.acme.netsapiens]
account = "acme-ns"
fields.user = "{extension|digits}"
fields.name-first-name = "{first_name}"
fields.name-last-name = "{last_name}"
fields.email = { template = "{email}", optional = true }
fields.department = { template = "{department}", optional = true }
fields.user-scope = "Basic User"

[tenants.acme.clienttoolbox]
account = "acme-ctb"
fields.user_name = { template = "{first_name|slug:_}_{last_name|slug:_}", filters = ["truncate:20"] }
fields.user_new_password = { generate = "password" }
fields.user_first_name = "{first_name}"
fields.user_last_name = "{last_name}"
fields.user_role = "K"
fields.allowed_campaigns = "all"
"#;
        use figment::providers::{Format, Serialized, Toml};
        figment::Figment::from(Serialized::defaults(Settings::default())).merge(Toml::string(toml)).extract().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::settings;
    use super::*;
    use crate::hire::event::testing::hire_of;

    fn derive(first: &str, last: &str) -> Result<Vec<DerivedJob>, Vec<FieldError>> {
        Mapper::new(&settings()).unwrap().derive(&hire_of(first, last), Utc::now())
    }

    fn user_of(jobs: &[DerivedJob], vendor: VendorKey) -> Value {
        jobs.iter().find(|j| j.job.vendor == vendor).unwrap().body["user"].clone()
    }

    #[test]
    fn one_hire_becomes_one_valid_job_per_target_with_deterministic_ids() {
        let jobs = derive("Jane", "Doe").unwrap();
        let ids: Vec<&str> = jobs.iter().map(DerivedJob::job_id).collect();
        assert_eq!(ids, ["evt-1:glance:acme-glance", "evt-1:netsapiens:acme-ns", "evt-1:clienttoolbox:acme-ctb"]);
        assert_eq!(user_of(&jobs, VendorKey::Glance)["UserAddress"], "jane.doe.acme.glance.net");
        assert_eq!(user_of(&jobs, VendorKey::Netsapiens)["user"], "1731");
        assert_eq!(user_of(&jobs, VendorKey::Clienttoolbox)["user_name"], "jane_doe");
        assert!(user_of(&jobs, VendorKey::Netsapiens).get("department").is_none(), "optional and absent: left out");
        let again = derive("Jane", "Doe").unwrap();
        assert_eq!(again.iter().map(DerivedJob::job_id).collect::<Vec<_>>(), ids);
    }

    #[test]
    fn unicode_names_come_out_valid_for_every_vendor() {
        for (first, last, address, user_name) in [
            ("José", "Núñez", "jose.nunez.acme.glance.net", "jose_nunez"),
            ("Zoë", "O'Brien-Smith", "zoe.obrien-smith.acme.glance.net", "zoe_obrien_smith"),
            ("伟", "王", "wei.wang.acme.glance.net", "wei_wang"),
            (
                "Bartholomew",
                "Featherstonehaugh",
                "bartholomew.featherstonehaugh.acme.glance.net",
                "bartholomew_feathers",
            ),
        ] {
            let jobs = derive(first, last).unwrap_or_else(|e| panic!("{first} {last}: {e:?}"));
            assert_eq!(user_of(&jobs, VendorKey::Glance)["UserAddress"], address);
            assert_eq!(user_of(&jobs, VendorKey::Clienttoolbox)["user_name"], user_name);
            // Display names keep their Unicode; only identifiers are folded.
            assert_eq!(user_of(&jobs, VendorKey::Netsapiens)["name-first-name"], first);
        }
    }

    #[test]
    fn a_hire_that_cannot_be_valid_everywhere_yields_no_job_and_every_reason() {
        let mut hire = hire_of("🙂", "Doe");
        hire.employee.extension = Some("ext. n/a".into());
        let errs = Mapper::new(&settings()).unwrap().derive(&hire, Utc::now()).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["glance.user.UserAddress", "netsapiens.user.user", "clienttoolbox.user.user_name"]);
        assert!(errs[0].message.contains("employee.first_name became empty"), "{}", errs[0].message);
    }

    #[test]
    fn vendor_rules_apply_to_derived_jobs() {
        let mut s = settings();
        let g = s.tenants.get_mut("acme").unwrap().glance.as_mut().unwrap();
        // Without slug the apostrophe and the space reach Glance's address rule.
        g.fields.insert(
            "UserAddress".into(),
            FieldRuleSettings::Template("{first_name}.{last_name}.acme.glance.net".into()),
        );
        let errs = Mapper::new(&s).unwrap().derive(&hire_of("Zoë", "O'Brien"), Utc::now()).unwrap_err();
        assert_eq!(errs[0].field, "glance.user.UserAddress");
        assert!(errs[0].message.contains("may only contain ASCII letters"), "{}", errs[0].message);
    }

    /// `map` and the hire consumer decode each derived job under its account's field rules,
    /// as the worker will: a setting that tightens a rule refuses the hire, one that relaxes it
    /// lets it through.
    #[test]
    fn derived_jobs_keep_to_the_accounts_field_rules() {
        let mut s = settings();
        s.accounts.get_mut("acme-ctb").unwrap().settings.insert("min_password_length".into(), "30".into());
        let errs = Mapper::new(&s).unwrap().derive(&hire_of("Jane", "Doe"), Utc::now()).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "clienttoolbox.user.user_new_password");

        let mut s = settings();
        let g = s.tenants.get_mut("acme").unwrap().glance.as_mut().unwrap();
        g.fields.insert("UserAddress".into(), FieldRuleSettings::Template("{first_name|slug}.acme.example".into()));
        assert!(Mapper::new(&s).unwrap().derive(&hire_of("Jane", "Doe"), Utc::now()).is_err(), "default suffix");
        s.accounts.get_mut("acme-glance").unwrap().settings.insert("address_suffixes".into(), ".acme.example".into());
        assert!(Mapper::new(&s).unwrap().derive(&hire_of("Jane", "Doe"), Utc::now()).is_ok());
    }

    /// A mapping that would make ClientToolbox Administrators: every hire of it is refused
    /// whole, rather than publishing a job the worker would only dead-letter.
    #[test]
    fn derived_jobs_keep_to_the_accounts_policy() {
        let mut s = settings();
        let ctb = s.tenants.get_mut("acme").unwrap().clienttoolbox.as_mut().unwrap();
        ctb.fields.insert("user_role".into(), FieldRuleSettings::Template("A".into()));
        let errs = Mapper::new(&s).unwrap().derive(&hire_of("Jane", "Doe"), Utc::now()).unwrap_err();
        assert_eq!(errs.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["clienttoolbox.user.user_role"]);
        assert!(errs[0].message.contains("accounts.acme-ctb.policy.roles"), "{}", errs[0].message);
        s.accounts.get_mut("acme-ctb").unwrap().policy.insert("roles".into(), vec!["A".into(), "K".into()]);
        assert!(Mapper::new(&s).unwrap().derive(&hire_of("Jane", "Doe"), Utc::now()).is_ok());
    }

    #[test]
    fn targets_unknown_to_the_tenant_and_unknown_tenants_are_errors() {
        let mapper = Mapper::new(&settings()).unwrap();
        let mut hire = hire_of("Jane", "Doe");
        hire.tenant = "globex".into();
        assert_eq!(mapper.derive(&hire, Utc::now()).unwrap_err()[0].field, "tenant");
        let mut s = settings();
        s.tenants.get_mut("acme").unwrap().glance = None;
        let mut hire = hire_of("Jane", "Doe");
        hire.targets = Some(vec![VendorKey::Glance]);
        assert_eq!(Mapper::new(&s).unwrap().derive(&hire, Utc::now()).unwrap_err()[0].field, "targets[0]");
    }

    #[test]
    fn generated_passwords_never_show_in_previews() {
        let jobs = derive("Jane", "Doe").unwrap();
        let ctb = jobs.iter().find(|j| j.job.vendor == VendorKey::Clienttoolbox).unwrap();
        let secret = ctb.body["user"]["user_new_password"].as_str().unwrap().to_owned();
        assert_eq!(secret.len(), 20);
        assert!(!ctb.redacted().to_string().contains(&secret));
    }

    #[test]
    fn a_suspending_leave_needs_the_accounts_suspend_where_the_vendor_has_none() {
        let mut s = settings();
        s.accounts.get_mut("acme-ns").unwrap().settings.remove("suspend");
        let e = Mapper::new(&s).unwrap_err();
        assert_eq!(e.key, "tenants.acme.netsapiens.on_leave");
        assert!(e.message.contains("accounts.acme-ns.settings.suspend"), "{}", e.message);
        // Glance suspends by itself; ClientToolbox's default is its soft delete.
        s.tenants.get_mut("acme").unwrap().netsapiens.as_mut().unwrap().on_leave = Some(OnLeave::None);
        assert!(Mapper::new(&s).is_ok());
        s.tenants.get_mut("acme").unwrap().clienttoolbox.as_mut().unwrap().on_leave = Some(OnLeave::Suspend);
        assert_eq!(Mapper::new(&s).unwrap_err().key, "tenants.acme.clienttoolbox.on_leave");
        // `update`, the configured update that takes access away, is the same policy.
        let parsed: crate::config::TargetSettings =
            serde_json::from_value(serde_json::json!({"account": "a", "fields": {}, "on_leave": "update"})).unwrap();
        assert_eq!(parsed.on_leave, Some(OnLeave::Suspend));
    }

    #[test]
    fn mapping_errors_name_the_key() {
        let mut s = settings();
        let t = s.tenants.get_mut("acme").unwrap();
        t.glance.as_mut().unwrap().fields.insert("PartnerPW".into(), FieldRuleSettings::Template("x".into()));
        assert_eq!(Mapper::new(&s).unwrap_err().key, "tenants.acme.glance.fields.PartnerPW");
        let mut s = settings();
        s.tenants.get_mut("acme").unwrap().glance.as_mut().unwrap().account = "acme-ns".into();
        assert!(Mapper::new(&s).unwrap_err().message.contains("is a netsapiens account"));
        let mut s = settings();
        s.tenants.get_mut("acme").unwrap().clienttoolbox.as_mut().unwrap().fields.remove("user_role");
        assert_eq!(Mapper::new(&s).unwrap_err().key, "tenants.acme.clienttoolbox.fields.user_role");
    }
}
