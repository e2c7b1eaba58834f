//! The JSON Schema of the person event (hire, update, leave, rehire), printed by `provisioner schema --hire`, with every rule the decoder enforces.

use serde_json::{json, Value};

use super::event::{EVENT_ID_MAX, EVENT_TYPES};
use crate::contract::VendorKey;

const HIRE_SCHEMA_ID: &str = "urn:provisioner:schema:hire-event";

/// A person's text: not blank, without control characters, at most 256 characters.
const PERSON_TEXT: &str = "^(?=[\\s\\S]*\\S)[^\\u0000-\\u001f\\u007f-\\u009f]*$";

fn text(required: bool, what: &str) -> Value {
    let (ty, absent) =
        if required { (json!("string"), "") } else { (json!(["string", "null"]), " null means absent.") };
    json!({
        "type": ty, "minLength": 1, "maxLength": 256, "pattern": PERSON_TEXT,
        "description": format!("{what}: 1-256 characters, not blank, without control characters; surrounding blanks are trimmed.{absent}"),
    })
}

pub fn hire_schema() -> Value {
    let instant = |what: &str| {
        json!({"type": ["string", "null"], "format": "date-time",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$",
            "description": what})
    };
    let employee_properties = json!({
        "id": text(true, "The HR system's employee id"),
        "first_name": text(true, "Given name"),
        "last_name": text(true, "Surname"),
        "email": text(false, "E-mail address"),
        "department": text(false, "Department"),
        "location": text(false, "Location"),
        "extension": text(false, "The phone extension, e.g. 1731"),
        "start_date": {"type": ["string", "null"], "format": "date", "description": "YYYY-MM-DD."},
    });
    let when = |ty: &str, employee: &str| {
        json!({"if": {"properties": {"type": {"const": ty}}, "required": ["type"]},
               "then": {"properties": {"employee": {"$ref": format!("#/$defs/{employee}")}}}})
    };
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": HIRE_SCHEMA_ID,
        "title": "provisioner person event",
        "description": "A person event (hire, update, leave or rehire), published to provisioning.hr or POSTed to the \
            intake's /v1/hires. Unknown fields are invalid, not ignored. Regenerate with `provisioner schema --write \
            schemas/`. Not expressible here: the tenant must be configured, occurred_at, effective_at and start_date \
            must be real calendar dates, an update, leave or rehire needs the ledger, and the jobs the tenant's \
            mapping makes must each be valid (see job.schema.json).",
        "type": "object",
        "properties": {
            "event_id": {"type": "string", "pattern": format!("^[A-Za-z0-9._-]{{1,{EVENT_ID_MAX}}}$"),
                "description": "Unique per event: every derived job_id is {event_id}:{vendor}:{account}, so sending the same event again does nothing twice."},
            "type": {"enum": EVENT_TYPES,
                "description": "hire: create the accounts the tenant maps. update: send the changed values to the accounts the person holds. leave: suspend or delete them, as the tenant's on_leave says. rehire: restore suspended accounts, and create where none remain."},
            "tenant": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$", "description": "A tenant configured under [tenants.<name>]."},
            "occurred_at": instant("When it happened (RFC 3339); the jobs' requested_at. Defaults to when it was received."),
            "effective_at": instant("A leave only: when access must end (RFC 3339). A later time waits in the broker and takes effect within a minute after it; absent or past means now."),
            "employee": {"type": "object", "description": "The person: the whole employee for a hire or rehire, the id and the changed values for an update, the id alone for a leave."},
            "targets": {"type": ["array", "null"], "minItems": 1, "uniqueItems": true,
                "items": {"enum": VendorKey::ALL.map(VendorKey::as_str)},
                "description": "Which vendors the event is for; defaults to the tenant's configured set (a leave or update: every vendor where the person holds an account)."},
        },
        "required": ["event_id", "type", "tenant", "employee"],
        "additionalProperties": false,
        "allOf": [
            when("hire", "Employee"),
            when("rehire", "Employee"),
            when("update", "EmployeeChange"),
            when("leave", "EmployeeRef"),
            {"if": {"properties": {"type": {"not": {"const": "leave"}}}, "required": ["type"]},
             "then": {"properties": {"effective_at": {"type": "null"}}}},
        ],
        "$defs": {
            "Employee": {
                "description": "The person; identifiers such as addresses and user names are folded by the tenant's mapping.",
                "type": "object",
                "properties": employee_properties.clone(),
                "required": ["id", "first_name", "last_name"],
                "additionalProperties": false,
            },
            "EmployeeChange": {
                "description": "The person, by id, and the values that changed: at least one. A mapped field whose template reads a changed value is sent; its template's other values must be given too.",
                "type": "object",
                "properties": employee_properties,
                "required": ["id"],
                "minProperties": 2,
                "additionalProperties": false,
            },
            "EmployeeRef": {
                "description": "The person, by id alone.",
                "type": "object",
                "properties": {"id": text(true, "The HR system's employee id")},
                "required": ["id"],
                "additionalProperties": false,
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hire::event::{EMPLOYEE_FIELDS, HIRE_FIELDS};

    fn keys(v: &Value) -> Vec<String> {
        let mut k: Vec<String> = v["properties"].as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    }

    #[test]
    fn schema_lists_exactly_the_fields_the_decoder_accepts() {
        let schema = hire_schema();
        let mut top: Vec<String> = HIRE_FIELDS.iter().map(|s| (*s).to_owned()).collect();
        top.sort();
        assert_eq!(keys(&schema), top);
        let mut emp: Vec<String> = EMPLOYEE_FIELDS.iter().map(|s| (*s).to_owned()).collect();
        emp.sort();
        assert_eq!(keys(&schema["$defs"]["Employee"]), emp);
        let required: Vec<&str> = schema["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(required, ["event_id", "type", "tenant", "employee"]);
    }
}
