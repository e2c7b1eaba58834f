//! The person event (hire, update, leave, rehire): decoded from JSON into typed values, collecting every error at once.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use crate::contract::{FieldError, VendorKey};

pub const HIRE_FIELDS: &[&str] = &["event_id", "type", "tenant", "occurred_at", "effective_at", "employee", "targets"];

/// The person event types, in the contract's words.
pub const EVENT_TYPES: &[&str] = &["hire", "update", "leave", "rehire"];
pub const EMPLOYEE_FIELDS: &[&str] =
    &["id", "first_name", "last_name", "email", "department", "location", "extension", "start_date"];

/// The longest event_id: the job ids `{event_id}:{vendor}:{account}` must stay within 128.
pub const EVENT_ID_MAX: usize = 48;

/// A valid person event: what happened to one employee of one tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PersonEvent {
    /// A hire, or a rehire (`Hire::rehire`): the whole employee.
    Hire(Hire),
    /// Some of the employee's values changed.
    Update(Update),
    /// The employee leaves, now or at `effective_at`.
    Leave(Leave),
}

impl PersonEvent {
    pub fn event_id(&self) -> &str {
        match self {
            PersonEvent::Hire(h) => &h.event_id,
            PersonEvent::Update(u) => &u.event_id,
            PersonEvent::Leave(l) => &l.event_id,
        }
    }

    pub fn tenant(&self) -> &str {
        match self {
            PersonEvent::Hire(h) => &h.tenant,
            PersonEvent::Update(u) => &u.tenant,
            PersonEvent::Leave(l) => &l.tenant,
        }
    }

    /// `hire`, `rehire`, `update` or `leave`.
    pub fn type_name(&self) -> &'static str {
        match self {
            PersonEvent::Hire(h) if h.rehire => "rehire",
            PersonEvent::Hire(_) => "hire",
            PersonEvent::Update(_) => "update",
            PersonEvent::Leave(_) => "leave",
        }
    }
}

/// An `update`: the employee, by id, and only the values that changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    pub event_id: String,
    pub tenant: String,
    pub occurred_at: Option<DateTime<Utc>>,
    pub employee_id: String,
    /// Every value the event gives besides the id; at least one.
    pub changed: BTreeMap<EmployeeField, String>,
    pub targets: Option<Vec<VendorKey>>,
}

/// A `leave`: the employee, by id, and when access ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leave {
    pub event_id: String,
    pub tenant: String,
    pub occurred_at: Option<DateTime<Utc>>,
    pub employee_id: String,
    /// When access must end; `None` or a past time means now. A later one waits in the
    /// broker, never in memory.
    pub effective_at: Option<DateTime<Utc>>,
    pub targets: Option<Vec<VendorKey>>,
}

/// One value of the `employee` object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EmployeeField {
    Id,
    FirstName,
    LastName,
    Email,
    Department,
    Location,
    Extension,
    StartDate,
}

impl EmployeeField {
    pub const ALL: [EmployeeField; 8] = [
        EmployeeField::Id,
        EmployeeField::FirstName,
        EmployeeField::LastName,
        EmployeeField::Email,
        EmployeeField::Department,
        EmployeeField::Location,
        EmployeeField::Extension,
        EmployeeField::StartDate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EmployeeField::Id => "id",
            EmployeeField::FirstName => "first_name",
            EmployeeField::LastName => "last_name",
            EmployeeField::Email => "email",
            EmployeeField::Department => "department",
            EmployeeField::Location => "location",
            EmployeeField::Extension => "extension",
            EmployeeField::StartDate => "start_date",
        }
    }

    pub fn read(self, e: &Employee) -> Option<String> {
        match self {
            EmployeeField::Id => Some(e.id.clone()),
            EmployeeField::FirstName => Some(e.first_name.clone()),
            EmployeeField::LastName => Some(e.last_name.clone()),
            EmployeeField::Email => e.email.clone(),
            EmployeeField::Department => e.department.clone(),
            EmployeeField::Location => e.location.clone(),
            EmployeeField::Extension => e.extension.clone(),
            EmployeeField::StartDate => e.start_date.map(|d| d.to_string()),
        }
    }
}

/// A valid hire (or rehire) event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hire {
    /// A rehire: suspended accounts are restored, and accounts are created where none remain.
    pub rehire: bool,
    /// 1–48 of `[A-Za-z0-9._-]`: it becomes part of every derived job_id.
    pub event_id: String,
    pub tenant: String,
    /// When the hire happened; becomes the jobs' `requested_at`.
    pub occurred_at: Option<DateTime<Utc>>,
    pub employee: Employee,
    /// `None`: the tenant's configured default set.
    pub targets: Option<Vec<VendorKey>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Employee {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub department: Option<String>,
    pub location: Option<String>,
    pub extension: Option<String>,
    pub start_date: Option<NaiveDate>,
}

/// Why a hire message is not a hire.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HireRejection {
    #[error("undecodable: {0}")]
    Undecodable(String),
    #[error("invalid hire: {}", summary(.errors))]
    Invalid { event_id: Option<String>, errors: Vec<FieldError> },
}

impl HireRejection {
    pub fn errors(&self) -> Vec<FieldError> {
        match self {
            HireRejection::Undecodable(m) => vec![FieldError::new("", m.clone())],
            HireRejection::Invalid { errors, .. } => errors.clone(),
        }
    }
}

/// All field errors in one line, for DLQ headers and logs.
pub fn summary(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
}

/// Decodes a person event of any type.
pub fn decode(body: &[u8]) -> Result<PersonEvent, HireRejection> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| HireRejection::Undecodable(format!("not JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(HireRejection::Undecodable("expected a JSON object".into()));
    };
    let mut errors = Vec::new();
    unknown(&obj, HIRE_FIELDS, "", &mut errors);
    let event_id = text(&obj, "event_id", "", true, &mut errors).and_then(|s| {
        let ok = !s.is_empty()
            && s.len() <= EVENT_ID_MAX
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            errors.push(FieldError::new(
                "event_id",
                format!("must be 1 to {EVENT_ID_MAX} of A-Z, a-z, 0-9, '.', '_' and '-'"),
            ));
        }
        ok.then_some(s)
    });
    let kind = match text(&obj, "type", "", true, &mut errors).as_deref() {
        None => None,
        Some(t) => {
            let known = EVENT_TYPES.iter().copied().find(|k| *k == t);
            if known.is_none() {
                errors.push(FieldError::new(
                    "type",
                    format!("must be one of \"hire\", \"update\", \"leave\", \"rehire\", got {:?}", clip(t)),
                ));
            }
            known
        }
    };
    let tenant = text(&obj, "tenant", "", true, &mut errors)
        .and_then(|s| keep(crate::contract::AccountName::parse(&s).map(|_| s), "tenant", &mut errors));
    let instant = |key: &str, errors: &mut Vec<FieldError>| {
        text(&obj, key, "", false, errors).and_then(|s| {
            keep(
                DateTime::parse_from_rfc3339(&s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| format!("must be RFC 3339: {e}")),
                key,
                errors,
            )
        })
    };
    let occurred_at = instant("occurred_at", &mut errors);
    let effective_at = instant("effective_at", &mut errors);
    if effective_at.is_some() && kind != Some("leave") {
        errors.push(FieldError::new("effective_at", "only a leave has an effective_at"));
    }
    let targets = match obj.get("targets") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str().and_then(VendorKey::parse) {
                    Some(v) if out.contains(&v) => errors.push(FieldError::new(format!("targets[{i}]"), "named twice")),
                    Some(v) => out.push(v),
                    None => errors.push(FieldError::new(
                        format!("targets[{i}]"),
                        "must be one of \"glance\", \"netsapiens\", \"clienttoolbox\"",
                    )),
                }
            }
            Some(out)
        }
        Some(_) => {
            errors.push(FieldError::new("targets", "must be a non-empty array of vendor names (or left out)"));
            None
        }
    };
    let employee_obj = match obj.get("employee") {
        Some(Value::Object(e)) => Some(e),
        None => {
            errors.push(FieldError::new("employee", "is required"));
            None
        }
        Some(_) => {
            errors.push(FieldError::new("employee", "must be an object"));
            None
        }
    };
    let done = |errors: Vec<FieldError>, event_id: Option<String>| {
        let mut errors = errors;
        FieldError::cap(&mut errors);
        Err(HireRejection::Invalid { event_id, errors })
    };
    let Some(e) = employee_obj else { return done(errors, event_id) };
    // An unknown type is already an error; its employee is still checked as a hire's, so
    // every error is reported at once.
    let kind = kind.unwrap_or("hire");
    let event = match kind {
        "hire" | "rehire" => employee(e, &mut errors).map(|employee| {
            PersonEvent::Hire(Hire {
                rehire: kind == "rehire",
                event_id: String::new(),
                tenant: String::new(),
                occurred_at,
                employee,
                targets: targets.clone(),
            })
        }),
        "update" => {
            let mut values = employee_values(e, &[EmployeeField::Id], &mut errors);
            let id = values.remove(&EmployeeField::Id);
            if values.is_empty() && errors.is_empty() {
                errors.push(FieldError::new("employee", "an update gives at least one changed value besides id"));
            }
            id.map(|employee_id| {
                PersonEvent::Update(Update {
                    event_id: String::new(),
                    tenant: String::new(),
                    occurred_at,
                    employee_id,
                    changed: values,
                    targets: targets.clone(),
                })
            })
        }
        _ => {
            for key in e.keys().filter(|k| *k != "id" && EMPLOYEE_FIELDS.contains(&k.as_str())) {
                errors.push(FieldError::new(format!("employee.{key}"), "a leave names the employee by id only"));
            }
            let mut values = employee_values(e, &[EmployeeField::Id], &mut errors);
            values.remove(&EmployeeField::Id).map(|employee_id| {
                PersonEvent::Leave(Leave {
                    event_id: String::new(),
                    tenant: String::new(),
                    occurred_at,
                    employee_id,
                    effective_at,
                    targets: targets.clone(),
                })
            })
        }
    };
    match (event_id, tenant, event) {
        (Some(id), Some(t), Some(mut event)) if errors.is_empty() => {
            match &mut event {
                PersonEvent::Hire(h) => (h.event_id, h.tenant) = (id, t),
                PersonEvent::Update(u) => (u.event_id, u.tenant) = (id, t),
                PersonEvent::Leave(l) => (l.event_id, l.tenant) = (id, t),
            }
            Ok(event)
        }
        (event_id, _, _) => done(errors, event_id),
    }
}

/// A producer's text, cut short for an error message.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The employee's values, each checked; `required` ones must be there. Unknown members are
/// errors.
fn employee_values(
    obj: &Map<String, Value>,
    required: &[EmployeeField],
    errors: &mut Vec<FieldError>,
) -> BTreeMap<EmployeeField, String> {
    unknown(obj, EMPLOYEE_FIELDS, "employee.", errors);
    let p = "employee.";
    let mut out = BTreeMap::new();
    for field in EmployeeField::ALL {
        let key = field.name();
        let Some(s) = text(obj, key, p, required.contains(&field), errors) else { continue };
        if field == EmployeeField::StartDate {
            if let Some(d) = keep(
                NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|_| "must be a date like 2026-12-01".to_owned()),
                "employee.start_date",
                errors,
            ) {
                out.insert(field, d.to_string());
            }
        } else if s.trim().is_empty() || s.chars().any(char::is_control) || s.chars().count() > 256 {
            errors.push(FieldError::new(format!("{p}{key}"), "must be 1 to 256 characters without control characters"));
        } else {
            out.insert(field, s.trim().to_owned());
        }
    }
    out
}

/// A hire's whole employee: id, first and last name required.
fn employee(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<Employee> {
    let before = errors.len();
    let required = [EmployeeField::Id, EmployeeField::FirstName, EmployeeField::LastName];
    let mut v = employee_values(obj, &required, errors);
    if errors.len() > before {
        return None;
    }
    let mut take = |f| v.remove(&f);
    Some(Employee {
        id: take(EmployeeField::Id)?,
        first_name: take(EmployeeField::FirstName)?,
        last_name: take(EmployeeField::LastName)?,
        email: take(EmployeeField::Email),
        department: take(EmployeeField::Department),
        location: take(EmployeeField::Location),
        extension: take(EmployeeField::Extension),
        start_date: take(EmployeeField::StartDate).and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()),
    })
}

fn unknown(obj: &Map<String, Value>, known: &[&str], prefix: &str, errors: &mut Vec<FieldError>) {
    for key in obj.keys().filter(|k| !known.contains(&k.as_str())) {
        errors.push(FieldError::new(format!("{prefix}{key}"), "unknown field"));
    }
}

fn text(
    obj: &Map<String, Value>,
    key: &str,
    prefix: &str,
    required: bool,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match obj.get(key) {
        None | Some(Value::Null) if required => {
            errors.push(FieldError::new(format!("{prefix}{key}"), "is required"));
            None
        }
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::new(format!("{prefix}{key}"), "must be a string"));
            None
        }
    }
}

fn keep<T>(r: Result<T, String>, field: &str, errors: &mut Vec<FieldError>) -> Option<T> {
    r.map_err(|m| errors.push(FieldError::new(field, m))).ok()
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A valid hire of tenant `acme` with these names.
    pub(crate) fn hire_of(first: &str, last: &str) -> Hire {
        Hire {
            rehire: false,
            event_id: "evt-1".into(),
            tenant: "acme".into(),
            occurred_at: None,
            employee: Employee {
                id: "000731".into(),
                first_name: first.into(),
                last_name: last.into(),
                email: Some("jane.doe@acme.example".into()),
                department: None,
                location: None,
                extension: Some("1731".into()),
                start_date: None,
            },
            targets: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields_of(v: Value) -> Vec<String> {
        match decode(v.to_string().as_bytes()) {
            Err(HireRejection::Invalid { errors, .. }) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn the_issue_example_decodes() {
        let v = json!({"event_id":"hire-000731","type":"hire","tenant":"acme",
            "employee":{"id":"000731","first_name":"Jane","last_name":"Doe","email":"jane.doe@acme.example",
                        "department":"Sales","location":"HQ","extension":"1731","start_date":"2026-12-01"},
            "targets":["glance","netsapiens","clienttoolbox"]});
        let Ok(PersonEvent::Hire(hire)) = decode(v.to_string().as_bytes()) else { panic!("a hire") };
        assert!(!hire.rehire);
        assert_eq!(hire.targets.unwrap(), VendorKey::ALL.to_vec());
        assert_eq!(hire.employee.start_date.unwrap().to_string(), "2026-12-01");
    }

    #[test]
    fn an_update_gives_the_id_and_only_what_changed() {
        let v = json!({"event_id":"upd-1","type":"update","tenant":"acme",
            "employee":{"id":"000731","last_name":" Smith ","department":"Sales"}});
        let Ok(PersonEvent::Update(u)) = decode(v.to_string().as_bytes()) else { panic!("an update") };
        assert_eq!(u.employee_id, "000731");
        let changed: Vec<(&str, &str)> = u.changed.iter().map(|(k, v)| (k.name(), v.as_str())).collect();
        assert_eq!(changed, [("last_name", "Smith"), ("department", "Sales")]);
        let nothing = json!({"event_id":"upd-2","type":"update","tenant":"acme","employee":{"id":"000731"}});
        assert_eq!(fields_of(nothing), ["employee"]);
        let bad = json!({"event_id":"upd-3","type":"update","tenant":"acme","employee":{"last_name":"\u{7}"}});
        assert_eq!(fields_of(bad), ["employee.id", "employee.last_name"]);
    }

    #[test]
    fn a_leave_names_the_employee_by_id_and_may_be_effective_later() {
        let v = json!({"event_id":"lv-1","type":"leave","tenant":"acme","employee":{"id":"000731"},
            "effective_at":"2026-12-31T17:00:00Z"});
        let Ok(PersonEvent::Leave(l)) = decode(v.to_string().as_bytes()) else { panic!("a leave") };
        assert_eq!(
            (l.employee_id.as_str(), l.effective_at.unwrap().to_rfc3339()),
            ("000731", "2026-12-31T17:00:00+00:00".into())
        );
        let named = json!({"event_id":"lv-2","type":"leave","tenant":"acme","employee":{"id":"1","last_name":"Doe"}});
        assert_eq!(fields_of(named), ["employee.last_name"]);
        let hire_later = json!({"event_id":"h","type":"hire","tenant":"acme","effective_at":"2026-12-31T17:00:00Z",
            "employee":{"id":"1","first_name":"J","last_name":"D"}});
        assert_eq!(fields_of(hire_later), ["effective_at"]);
        let rehire = json!({"event_id":"rh","type":"rehire","tenant":"acme","employee":{"id":"1","first_name":"J","last_name":"D"}});
        assert!(matches!(decode(rehire.to_string().as_bytes()), Ok(PersonEvent::Hire(Hire { rehire: true, .. }))));
    }

    #[test]
    fn every_error_is_reported_by_field() {
        let v = json!({"event_id":"has space","type":"fire","tenant":"acme","salary":1,
            "employee":{"id":"1","first_name":"","nickname":"x","start_date":"12/01/2026"},
            "targets":["glance","slack"]});
        assert_eq!(
            fields_of(v),
            [
                "salary",
                "event_id",
                "type",
                "targets[1]",
                "employee.nickname",
                "employee.first_name",
                "employee.last_name",
                "employee.start_date"
            ]
        );
    }

    #[test]
    fn non_objects_are_undecodable() {
        assert!(matches!(decode(b"nope"), Err(HireRejection::Undecodable(_))));
        assert!(matches!(decode(b"[]"), Err(HireRejection::Undecodable(_))));
    }
}
