//! The JSON Schema of the hire event, printed by `provisioner schema --hire`.

use schemars::JsonSchema;
use serde_json::Value;

use crate::contract::VendorKey;

/// A hire event, published to `provisioning.hr` or POSTed to the intake's `/v1/hires`.
/// Unknown fields are invalid, not ignored.
#[allow(dead_code)] // exists only to generate the schema; decoding collects every error by hand
#[derive(JsonSchema)]
#[schemars(title = "provisioner hire event", deny_unknown_fields)]
struct HireMessage {
    /// Unique per hire: 1–48 of A-Z, a-z, 0-9, '.', '_' and '-'. Every derived job_id is
    /// `{event_id}:{vendor}:{account}`, so sending the same hire again creates no one twice.
    #[schemars(regex(pattern = r"^[A-Za-z0-9._-]{1,48}$"))]
    event_id: String,
    /// Always `hire`.
    #[serde(rename = "type")]
    kind: Kind,
    /// A tenant configured under `[tenants.<name>]`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_.-]{1,64}$"))]
    tenant: String,
    /// When the hire happened (RFC 3339); the jobs' `requested_at`. Defaults to when it was received.
    #[schemars(extend("format" = "date-time"))]
    occurred_at: Option<String>,
    employee: Employee,
    /// Which vendors to create the user in; defaults to the tenant's configured set.
    #[schemars(length(min = 1))]
    targets: Option<Vec<VendorKey>>,
}

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Hire,
}

/// The person. Text fields are 1–256 characters without control characters; names may be any
/// Unicode (identifiers such as addresses and user names are folded by the mapping).
#[allow(dead_code)]
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Employee {
    /// The HR system's employee id.
    #[schemars(length(min = 1, max = 256))]
    id: String,
    #[schemars(length(min = 1, max = 256))]
    first_name: String,
    #[schemars(length(min = 1, max = 256))]
    last_name: String,
    email: Option<String>,
    department: Option<String>,
    location: Option<String>,
    /// The phone extension, e.g. "1731".
    extension: Option<String>,
    /// YYYY-MM-DD.
    #[schemars(extend("format" = "date"))]
    start_date: Option<String>,
}

pub fn hire_schema() -> Value {
    schemars::schema_for!(HireMessage).to_value()
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
