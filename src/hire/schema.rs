//! The JSON Schema of the hire event, printed by `provisioner schema --hire`, with every rule the hire decoder enforces.

use serde_json::{json, Value};

use super::event::EVENT_ID_MAX;
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
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": HIRE_SCHEMA_ID,
        "title": "provisioner hire event",
        "description": "A hire event, published to provisioning.hr or POSTed to the intake's /v1/hires. Unknown \
            fields are invalid, not ignored. Regenerate with `provisioner schema --write schemas/`. Not expressible \
            here: the tenant must be configured, occurred_at and start_date must be real calendar dates, and the \
            jobs the tenant's mapping makes must each be valid (see job.schema.json).",
        "type": "object",
        "properties": {
            "event_id": {"type": "string", "pattern": format!("^[A-Za-z0-9._-]{{1,{EVENT_ID_MAX}}}$"),
                "description": "Unique per hire: every derived job_id is {event_id}:{vendor}:{account}, so sending the same hire again creates no one twice."},
            "type": {"const": "hire"},
            "tenant": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$", "description": "A tenant configured under [tenants.<name>]."},
            "occurred_at": {"type": ["string", "null"], "format": "date-time",
                "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$",
                "description": "When the hire happened (RFC 3339); the jobs' requested_at. Defaults to when it was received."},
            "employee": {"$ref": "#/$defs/Employee"},
            "targets": {"type": ["array", "null"], "minItems": 1, "uniqueItems": true,
                "items": {"enum": VendorKey::ALL.map(VendorKey::as_str)},
                "description": "Which vendors to create the user in; defaults to the tenant's configured set."},
        },
        "required": ["event_id", "type", "tenant", "employee"],
        "additionalProperties": false,
        "$defs": {
            "Employee": {
                "description": "The person; identifiers such as addresses and user names are folded by the tenant's mapping.",
                "type": "object",
                "properties": {
                    "id": text(true, "The HR system's employee id"),
                    "first_name": text(true, "Given name"),
                    "last_name": text(true, "Surname"),
                    "email": text(false, "E-mail address"),
                    "department": text(false, "Department"),
                    "location": text(false, "Location"),
                    "extension": text(false, "The phone extension, e.g. 1731"),
                    "start_date": {"type": ["string", "null"], "format": "date", "description": "YYYY-MM-DD."},
                },
                "required": ["id", "first_name", "last_name"],
                "additionalProperties": false,
            }
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
