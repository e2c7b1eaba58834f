//! Turns the bytes of a job message into a [`Job`], or into every reason it is not one.
//!
//! All errors are collected rather than stopping at the first, so `provisioner validate`
//! and the `invalid` event can tell an HR integrator everything to fix in one round.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::contract::{
    all_auth_fields, AccountName, FieldError, FieldKind, FieldValue, Job, JobId, JobKind, Person, UserFields, VendorKey,
};
use crate::vendors::{FieldRules, Rulebook};

pub const ENVELOPE_FIELDS: &[&str] =
    &["job_id", "kind", "vendor", "account", "correlation_id", "requested_at", "domain", "person", "user"];

/// The members of a job's `person` object.
pub const PERSON_FIELDS: &[&str] = &["tenant", "employee_id"];

/// A job-shaped message that broke the contract. Whatever could be read is kept, so the
/// failure event can still name the job, vendor and account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidJob {
    pub job_id: Option<JobId>,
    /// The job's kind, when it could be read.
    pub kind: Option<JobKind>,
    pub vendor: Option<VendorKey>,
    pub account: Option<AccountName>,
    pub correlation_id: Option<String>,
    pub errors: Vec<FieldError>,
}

impl InvalidJob {
    /// All field errors in one line, for event messages and DLQ headers.
    pub fn summary(&self) -> String {
        self.errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Not a JSON object at all; nothing about it can be trusted.
    Undecodable(String),
    Invalid(InvalidJob),
}

/// Decodes and validates a job body under the documented default field rules, as for a job
/// whose account is not known (`provisioner validate` without a config).
pub fn decode(body: &[u8]) -> Result<Job, Rejection> {
    decode_with(body, &Rulebook::default())
}

/// Decodes and validates a job body. Vendor-independent contract rules are checked here;
/// the vendors' field catalogs decide which `user` fields exist, and the job's account's
/// own field rules from `rules` (the defaults when it has none) which values they accept.
pub fn decode_with(body: &[u8], rules: &Rulebook) -> Result<Job, Rejection> {
    let value: Value = serde_json::from_slice(body).map_err(|e| Rejection::Undecodable(format!("not JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(Rejection::Undecodable(format!("expected a JSON object, got {}", kind_of(&value))));
    };
    decode_object_with(&obj, rules)
}

/// [`decode_object_with`] under the default field rules.
pub fn decode_object(obj: &Map<String, Value>) -> Result<Job, Rejection> {
    decode_object_with(obj, &Rulebook::default())
}

pub fn decode_object_with(obj: &Map<String, Value>, rules: &Rulebook) -> Result<Job, Rejection> {
    let mut errors = Vec::new();

    for key in obj.keys() {
        if all_auth_fields().any(|a| a == key) {
            errors.push(FieldError::new(key, "credentials never travel in jobs; they come from the account config"));
        } else if !ENVELOPE_FIELDS.contains(&key.as_str()) {
            errors.push(FieldError::new(key, "unknown field"));
        }
    }

    let job_id = required_str(obj, "job_id", &mut errors).and_then(|s| keep(JobId::parse(s), "job_id", &mut errors));
    // Left out, a job is a create: the contract before lifecycle jobs had no kind.
    let kind = match optional_str(obj, "kind", &mut errors) {
        None if obj.get("kind").is_some_and(|k| !k.is_null()) => None,
        None => Some(JobKind::CreateUser),
        Some(s) => {
            let k = JobKind::parse(s);
            if k.is_none() {
                let known: Vec<&str> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
                errors.push(FieldError::new(
                    "kind",
                    format!(
                        "unknown kind {:?}; expected one of {}",
                        crate::contract::clip(s.to_owned(), 64),
                        known.join(", ")
                    ),
                ));
            }
            k
        }
    };
    let vendor = required_str(obj, "vendor", &mut errors).and_then(|s| {
        let v = VendorKey::parse(s);
        if v.is_none() {
            errors.push(FieldError::new(
                "vendor",
                format!("unknown vendor {s:?}; expected one of glance, netsapiens, clienttoolbox"),
            ));
        }
        v
    });
    let account =
        required_str(obj, "account", &mut errors).and_then(|s| keep(AccountName::parse(s), "account", &mut errors));
    let correlation_id = optional_str(obj, "correlation_id", &mut errors).and_then(|s| {
        if s.is_empty() || s.chars().count() > 256 || s.chars().any(char::is_control) {
            errors.push(FieldError::new("correlation_id", "must be 1 to 256 characters without control characters"));
            None
        } else {
            Some(s.to_owned())
        }
    });
    let requested_at = optional_str(obj, "requested_at", &mut errors).and_then(|s| {
        keep(
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("must be an RFC 3339 timestamp: {e}")),
            "requested_at",
            &mut errors,
        )
    });
    let domain = optional_str(obj, "domain", &mut errors).and_then(|s| {
        if vendor.is_some_and(|v| v != VendorKey::Netsapiens) {
            errors.push(FieldError::new("domain", "only NetSapiens jobs may name a domain"));
            None
        } else if s.is_empty() || s.len() > 255 || s.chars().any(|c| c.is_control() || c == '/') {
            errors.push(FieldError::new("domain", "must be 1 to 255 characters without '/' or control characters"));
            None
        } else if let Err(message) = crate::vendors::netsapiens::Domain::parse(s) {
            // Only NetSapiens jobs (or ones whose vendor is unreadable) get here; its path rule is stricter.
            errors.push(FieldError::new("domain", message));
            None
        } else {
            Some(s.to_owned())
        }
    });

    let person = match obj.get("person") {
        None | Some(Value::Null) => None,
        Some(Value::Object(p)) => decode_person(p, &mut errors),
        Some(other) => {
            errors.push(FieldError::new("person", format!("must be an object, got {}", kind_of(other))));
            None
        }
    };

    let user = match obj.get("user") {
        None => {
            errors.push(FieldError::new("user", "is required"));
            None
        }
        Some(Value::Object(user)) => vendor.and_then(|v| {
            let account_rules = account.as_ref().and_then(|a| rules.get(a.as_str(), v));
            decode_user(v, kind.unwrap_or_default(), user, account_rules, &mut errors)
        }),
        Some(other) => {
            errors.push(FieldError::new("user", format!("must be an object, got {}", kind_of(other))));
            None
        }
    };

    FieldError::cap(&mut errors);
    match (job_id, kind, vendor, account, user) {
        (Some(id), Some(kind), Some(vendor), Some(account), Some(user)) if errors.is_empty() => {
            Ok(Job { id, kind, vendor, account, correlation_id, requested_at, domain, person, user })
        }
        (job_id, kind, vendor, account, _) => {
            Err(Rejection::Invalid(InvalidJob { job_id, kind, vendor, account, correlation_id, errors }))
        }
    }
}

/// `{"tenant": "acme", "employee_id": "000731"}`; `tenant` may be left out.
fn decode_person(p: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<Person> {
    let before = errors.len();
    for key in p.keys() {
        if !PERSON_FIELDS.contains(&key.as_str()) {
            errors.push(FieldError::new(format!("person.{key}"), "unknown field"));
        }
    }
    let text = |key: &str, errors: &mut Vec<FieldError>| match p.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            errors.push(FieldError::new(format!("person.{key}"), format!("must be a string, got {}", kind_of(other))));
            None
        }
    };
    let tenant = text("tenant", errors).unwrap_or("");
    let Some(employee_id) = text("employee_id", errors) else {
        if errors.len() == before {
            errors.push(FieldError::new("person.employee_id", "is required when person is given"));
        }
        return None;
    };
    match Person::parse(tenant, employee_id) {
        Ok(person) if errors.len() == before => Some(person),
        Ok(_) => None,
        Err((field, message)) => {
            errors.push(FieldError::new(field, message));
            None
        }
    }
}

fn decode_user(
    vendor: VendorKey,
    kind: JobKind,
    user: &Map<String, Value>,
    rules: Option<&FieldRules>,
    errors: &mut Vec<FieldError>,
) -> Option<UserFields> {
    let before = errors.len();
    let mut fields = BTreeMap::new();
    for (key, value) in user {
        // Only an error needs the path: a valid job's fields are not formatted.
        let path = || format!("user.{key}");
        if all_auth_fields().any(|a| a == key) {
            errors.push(FieldError::new(path(), "credentials never travel in jobs; they come from the account config"));
            continue;
        }
        let Some(spec) = vendor.field(key) else {
            errors.push(FieldError::new(path(), format!("unknown field for {vendor}")));
            continue;
        };
        let parsed = match (spec.kind, value) {
            (FieldKind::Text | FieldKind::TextOrInteger, Value::String(s)) => Some(FieldValue::Text(s.clone())),
            (FieldKind::Integer | FieldKind::TextOrInteger, Value::Number(n)) => n.as_i64().map(FieldValue::Integer),
            _ => None,
        };
        match parsed {
            Some(v) => {
                fields.insert(spec.name, v);
            }
            None => {
                let expected = match spec.kind {
                    FieldKind::Text => "a string",
                    FieldKind::Integer => "an integer",
                    FieldKind::TextOrInteger => "a string or an integer",
                };
                errors.push(FieldError::new(path(), format!("must be {expected}, got {}", kind_of(value))));
            }
        }
    }
    // Only a create needs the whole user; the other kinds' shapes are the vendor rules' to check.
    for spec in vendor.user_fields().iter().filter(|f| f.required && kind == JobKind::CreateUser) {
        if !user.contains_key(spec.name) {
            errors.push(FieldError::new(format!("user.{}", spec.name), "is required"));
        }
    }
    if errors.len() > before {
        return None;
    }
    let user = UserFields::new(vendor, fields);
    errors.extend(crate::vendors::validate_user(vendor, kind, &user, rules));
    (errors.len() == before).then_some(user)
}

fn required_str<'a>(obj: &'a Map<String, Value>, key: &str, errors: &mut Vec<FieldError>) -> Option<&'a str> {
    match obj.get(key) {
        None => {
            errors.push(FieldError::new(key, "is required"));
            None
        }
        Some(_) => optional_str(obj, key, errors),
    }
}

fn optional_str<'a>(obj: &'a Map<String, Value>, key: &str, errors: &mut Vec<FieldError>) -> Option<&'a str> {
    match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            errors.push(FieldError::new(key, format!("must be a string, got {}", kind_of(other))));
            None
        }
    }
}

fn keep<T>(result: Result<T, String>, field: &str, errors: &mut Vec<FieldError>) -> Option<T> {
    result.map_err(|message| errors.push(FieldError::new(field, message))).ok()
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn glance_job() -> Value {
        json!({
            "job_id": "hire-000731-glance", "vendor": "glance", "account": "acme",
            "correlation_id": "hire-000731", "requested_at": "2026-11-22T09:30:00Z",
            "user": {"PartnerUserID": "EMP-000731", "UserAddress": "jdoe.acme.glance.net",
                     "UserFirst": "Jane", "UserLast": "Doe", "UserEmail": "jane.doe@acme.example"}
        })
    }

    fn errors_of(v: Value) -> Vec<FieldError> {
        match decode(v.to_string().as_bytes()) {
            Err(Rejection::Invalid(inv)) => inv.errors,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn the_design_example_decodes() {
        let job = decode(glance_job().to_string().as_bytes()).unwrap();
        assert_eq!(job.id.as_str(), "hire-000731-glance");
        assert_eq!(job.vendor, VendorKey::Glance);
        assert_eq!(job.identity(), Some("EMP-000731"));
        assert_eq!(job.requested_at.unwrap().to_rfc3339(), "2026-11-22T09:30:00+00:00");
    }

    #[test]
    fn non_json_and_non_objects_are_undecodable() {
        assert!(matches!(decode(b"{not json"), Err(Rejection::Undecodable(_))));
        assert!(matches!(decode(b"[1,2]"), Err(Rejection::Undecodable(m)) if m.contains("array")));
    }

    #[test]
    fn unknown_fields_are_invalid_not_ignored() {
        let mut v = glance_job();
        v["priority"] = json!(1);
        v["user"]["UserNickname"] = json!("JD");
        let fields: Vec<_> = errors_of(v).into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["priority", "user.UserNickname"]);
    }

    #[test]
    fn credentials_in_a_job_are_refused_at_any_level() {
        let mut v = glance_job();
        v["user"]["PartnerPW"] = json!("hunter2");
        v["user_password"] = json!("x");
        let errs = errors_of(v);
        assert_eq!(errs.len(), 2);
        assert!(errs.iter().all(|e| e.message.starts_with("credentials never travel")));
        assert!(errs.iter().all(|e| !e.message.contains("hunter2")));
    }

    #[test]
    fn a_flood_of_bad_fields_makes_a_bounded_rejection() {
        let mut job = serde_json::Map::new();
        for i in 0..500 {
            job.insert(format!("extra{i}"), Value::from(1));
        }
        job.insert("k".repeat(1024 * 1024), Value::from("v".repeat(1024 * 1024)));
        let Err(Rejection::Invalid(inv)) = decode(Value::Object(job).to_string().as_bytes()) else { panic!() };
        assert_eq!(inv.errors.len(), crate::contract::MAX_FIELD_ERRORS);
        assert!(inv.summary().len() < 100 * 1024, "{}", inv.summary().len());
    }

    #[test]
    fn every_error_is_reported_with_what_could_be_read() {
        let v = json!({"job_id": "j-1", "vendor": "glance", "account": "bad account!", "user": {"UserFirst": 7}});
        let Err(Rejection::Invalid(inv)) = decode(v.to_string().as_bytes()) else { panic!() };
        assert_eq!(inv.job_id.unwrap().as_str(), "j-1");
        assert_eq!(inv.vendor, Some(VendorKey::Glance));
        let fields: Vec<_> = inv.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["account", "user.UserFirst", "user.PartnerUserID", "user.UserAddress"]);
    }

    #[test]
    fn job_id_rules() {
        assert!(JobId::parse("a").is_ok());
        assert!(JobId::parse(&"x".repeat(128)).is_ok());
        assert!(JobId::parse(&"x".repeat(129)).is_err());
        assert!(JobId::parse("").is_err());
        assert!(JobId::parse("tab\there").is_err());
        assert!(JobId::parse("é").is_err());
        assert!(JobId::parse(" padded").is_err());
    }

    #[test]
    fn domain_is_only_for_netsapiens() {
        let mut v = glance_job();
        v["domain"] = json!("acme.example");
        assert_eq!(errors_of(v)[0].field, "domain");
        let ns = json!({"job_id": "j", "vendor": "netsapiens", "account": "a", "domain": "acme",
            "user": {"user": "1000", "name-first-name": "J", "name-last-name": "D",
                     "email": "j.d@acme.example", "user-scope": "Basic User"}});
        assert_eq!(decode(ns.to_string().as_bytes()).unwrap().domain.as_deref(), Some("acme"));
    }

    #[test]
    fn field_kinds_are_enforced() {
        let ns = json!({"job_id": "j", "vendor": "netsapiens", "account": "a",
            "user": {"user": "1000", "name-first-name": "J", "name-last-name": "D", "area-code": "858"}});
        let errs = errors_of(ns);
        assert_eq!(errs[0].field, "user.area-code");
        assert!(errs[0].message.contains("integer"));
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let v = json!({"job_id": "j", "vendor": "clienttoolbox", "account": "a",
            "user": {"user_name": "jdoe", "user_new_password": "S3cure!pass", "user_PIN": "4321",
                     "user_role": "K", "allowed_campaigns": "all"}});
        let job = decode(v.to_string().as_bytes()).unwrap();
        let shown = format!("{job:?}");
        assert!(!shown.contains("S3cure!pass") && !shown.contains("4321"), "{shown}");
        assert!(shown.contains("jdoe"));
    }

    /// Decoding knows the account: each unconfirmed rule setting, relaxed and tightened.
    mod account_rules {
        use super::*;
        use crate::config::AccountSettings;

        fn book(vendor: VendorKey, settings: &[(&str, &str)]) -> Rulebook {
            let account = AccountSettings {
                vendor,
                base_url: None,
                settings: settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
                credentials: BTreeMap::new(),
                rate: None,
                concurrency: None,
                policy: BTreeMap::new(),
            };
            let mut book = Rulebook::default();
            book.insert("acme", FieldRules::from_settings("acme", &account).unwrap());
            book
        }

        /// The fields refused when `user` (merged into a valid job) is decoded under `rules`.
        fn refused(vendor: VendorKey, user: Value, rules: &Rulebook) -> Vec<String> {
            let mut job = match vendor {
                VendorKey::Glance => glance_job(),
                VendorKey::Clienttoolbox => json!({"job_id": "j", "vendor": "clienttoolbox", "account": "acme",
                    "user": {"user_name": "jdoe", "user_new_password": "pw", "user_role": "K", "allowed_campaigns": "all"}}),
                VendorKey::Netsapiens => unreachable!("NetSapiens has no rule settings"),
            };
            for (k, v) in user.as_object().unwrap() {
                job["user"][k] = v.clone();
            }
            match decode_with(job.to_string().as_bytes(), rules) {
                Ok(_) => Vec::new(),
                Err(Rejection::Invalid(inv)) => inv.errors.into_iter().map(|e| e.field).collect(),
                Err(other) => panic!("{other:?}"),
            }
        }

        fn both_ways(vendor: VendorKey, setting: (&str, &str), accepted: Value, refused_by_default: Option<Value>) {
            let rules = book(vendor, &[setting]);
            let none = Rulebook::default();
            assert_eq!(
                refused(vendor, accepted.clone(), &none),
                Vec::<String>::new(),
                "{setting:?}: default accepts {accepted}"
            );
            if let Some(v) = refused_by_default {
                // Relaxed: the account accepts what the default refuses.
                assert!(!refused(vendor, v.clone(), &none).is_empty(), "{setting:?}: default refuses {v}");
                assert_eq!(refused(vendor, v.clone(), &rules), Vec::<String>::new(), "{setting:?} accepts {v}");
            } else {
                // Tightened: the account refuses what the default accepts.
                assert_eq!(refused(vendor, accepted.clone(), &rules).len(), 1, "{setting:?} refuses {accepted}");
            }
        }

        #[test]
        fn glance_password_minimum_is_none_by_default_and_an_account_may_set_one() {
            both_ways(VendorKey::Glance, ("user_pw_min_length", "8"), json!({"UserPW": "abc"}), None);
            let lax = book(VendorKey::Glance, &[("user_pw_min_length", "0")]);
            assert_eq!(refused(VendorKey::Glance, json!({"UserPW": ""}), &lax), Vec::<String>::new());
            assert_eq!(refused(VendorKey::Glance, json!({"UserPW": "p".repeat(50)}), &lax), ["user.UserPW"]);
        }

        #[test]
        fn glance_role_length_relaxed_to_70_and_tightened_below_31() {
            let long = json!({"UserRole": "r".repeat(70)});
            both_ways(VendorKey::Glance, ("user_role_max_length", "70"), json!({"UserRole": "Sales"}), Some(long));
            both_ways(VendorKey::Glance, ("user_role_max_length", "20"), json!({"UserRole": "r".repeat(25)}), None);
        }

        #[test]
        fn glance_address_suffixes_relaxed_and_tightened() {
            let custom = json!({"UserAddress": "jdoe.partner.com"});
            both_ways(
                VendorKey::Glance,
                ("address_suffixes", ".glance.net, .partner.com"),
                json!({"UserAddress": "jdoe.acme.glance.net"}),
                Some(custom),
            );
            both_ways(
                VendorKey::Glance,
                ("address_suffixes", ".acme.glance.net"),
                json!({"UserAddress": "jdoe.other.glance.net"}),
                None,
            );
        }

        #[test]
        fn clienttoolbox_allow_lists_and_password_length_tighten() {
            both_ways(VendorKey::Clienttoolbox, ("roles", "A,K"), json!({"user_role": "Z"}), None);
            both_ways(VendorKey::Clienttoolbox, ("languages", "EN"), json!({"language_selector": "FR"}), None);
            both_ways(VendorKey::Clienttoolbox, ("timezones", "68"), json!({"timezone_selector": 70}), None);
            both_ways(
                VendorKey::Clienttoolbox,
                ("min_password_length", "12"),
                json!({"user_new_password": "short"}),
                None,
            );
            let listed = book(VendorKey::Clienttoolbox, &[("roles", "A,K")]);
            assert_eq!(refused(VendorKey::Clienttoolbox, json!({"user_role": "K"}), &listed), Vec::<String>::new());
        }

        #[test]
        fn rules_of_an_account_of_another_vendor_are_not_applied() {
            let rules = book(VendorKey::Clienttoolbox, &[("min_password_length", "12")]);
            assert!(rules.get("acme", VendorKey::Glance).is_none());
            assert_eq!(refused(VendorKey::Glance, json!({"UserPW": "abc"}), &rules), Vec::<String>::new());
        }
    }
}
