//! The hire event: decoded from JSON into typed values, collecting every error at once.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use crate::contract::{FieldError, VendorKey};

pub const HIRE_FIELDS: &[&str] = &["event_id", "type", "tenant", "occurred_at", "employee", "targets"];
pub const EMPLOYEE_FIELDS: &[&str] =
    &["id", "first_name", "last_name", "email", "department", "location", "extension", "start_date"];

/// The longest event_id: the job ids `{event_id}:{vendor}:{account}` must stay within 128.
pub const EVENT_ID_MAX: usize = 48;

/// A valid hire event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hire {
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

pub fn decode(body: &[u8]) -> Result<Hire, HireRejection> {
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
    match text(&obj, "type", "", true, &mut errors).as_deref() {
        Some("hire") | None => {}
        Some(other) => errors.push(FieldError::new("type", format!("must be \"hire\", got {other:?}"))),
    }
    let tenant = text(&obj, "tenant", "", true, &mut errors)
        .and_then(|s| keep(crate::contract::AccountName::parse(&s).map(|_| s), "tenant", &mut errors));
    let occurred_at = text(&obj, "occurred_at", "", false, &mut errors).and_then(|s| {
        keep(
            DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("must be RFC 3339: {e}")),
            "occurred_at",
            &mut errors,
        )
    });
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
    let employee = match obj.get("employee") {
        Some(Value::Object(e)) => employee(e, &mut errors),
        None => {
            errors.push(FieldError::new("employee", "is required"));
            None
        }
        Some(_) => {
            errors.push(FieldError::new("employee", "must be an object"));
            None
        }
    };
    match (event_id.clone(), tenant, employee) {
        (Some(event_id), Some(tenant), Some(employee)) if errors.is_empty() => {
            Ok(Hire { event_id, tenant, occurred_at, employee, targets })
        }
        _ => {
            let mut errors = errors;
            FieldError::cap(&mut errors);
            Err(HireRejection::Invalid { event_id, errors })
        }
    }
}

fn employee(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<Employee> {
    let before = errors.len();
    unknown(obj, EMPLOYEE_FIELDS, "employee.", errors);
    let p = "employee.";
    let name = |key: &str, required: bool, errors: &mut Vec<FieldError>| {
        text(obj, key, p, required, errors).and_then(|s| {
            if s.trim().is_empty() || s.chars().any(char::is_control) || s.chars().count() > 256 {
                errors.push(FieldError::new(
                    format!("{p}{key}"),
                    "must be 1 to 256 characters without control characters",
                ));
                None
            } else {
                Some(s.trim().to_owned())
            }
        })
    };
    let id = name("id", true, errors);
    let first_name = name("first_name", true, errors);
    let last_name = name("last_name", true, errors);
    let email = name("email", false, errors);
    let department = name("department", false, errors);
    let location = name("location", false, errors);
    let extension = name("extension", false, errors);
    let start_date = text(obj, "start_date", p, false, errors).and_then(|s| {
        keep(
            NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|_| "must be a date like 2026-12-01".to_owned()),
            "employee.start_date",
            errors,
        )
    });
    if errors.len() > before {
        return None;
    }
    Some(Employee {
        id: id?,
        first_name: first_name?,
        last_name: last_name?,
        email,
        department,
        location,
        extension,
        start_date,
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
        let hire = decode(v.to_string().as_bytes()).unwrap();
        assert_eq!(hire.targets.unwrap(), VendorKey::ALL.to_vec());
        assert_eq!(hire.employee.start_date.unwrap().to_string(), "2026-12-01");
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
