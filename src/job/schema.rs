//! The JSON Schema of the job message, generated from the envelope type and the vendor catalogs.

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::contract::{FieldKind, VendorKey};

/// A create-user job, as producers publish it to `provisioning.jobs` with routing key
/// `create_user.<vendor>`. Credentials never travel in jobs.
#[allow(dead_code)] // exists only to generate the schema; decoding collects every error by hand
#[derive(JsonSchema)]
#[schemars(title = "provisioner create-user job", deny_unknown_fields)]
struct JobMessage {
    /// Idempotency key: 1–128 printable ASCII characters. Also the AMQP message_id.
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[ -~]{1,128}$"))]
    job_id: String,
    /// Which vendor to create the user in; must match the routing key.
    vendor: VendorKey,
    /// A vendor account configured in the service (base URL, credentials, vendor settings).
    #[schemars(regex(pattern = r"^[A-Za-z0-9_.-]{1,64}$"))]
    account: String,
    /// Ties the jobs of one business event (e.g. a hire) together; copied into the event.
    #[schemars(length(min = 1, max = 256))]
    correlation_id: Option<String>,
    /// When the business event happened (RFC 3339). Feeds the end-to-end latency metric.
    #[schemars(extend("format" = "date-time"))]
    requested_at: Option<String>,
    /// NetSapiens only: the domain to create the user in, overriding the account's default.
    domain: Option<String>,
    /// Who the account is for. Lets the service prove that two jobs are for the same person
    /// and refuse an identity that another person holds; jobs derived from hires always set it.
    person: Option<PersonMessage>,
    /// The user, in the vendor's own documented wire names. Unknown fields are invalid.
    #[schemars(schema_with = "user_schema")]
    user: Map<String, Value>,
}

/// The person a job is for.
#[allow(dead_code)] // exists only to generate the schema
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct PersonMessage {
    /// The tenant (HR system) the employee id belongs to; may be left out.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_.-]{0,64}$"))]
    tenant: Option<String>,
    /// The HR system's employee id: 1–256 characters, no control characters, no surrounding spaces.
    #[schemars(
        length(min = 1, max = 256),
        regex(pattern = r"^[^\x00-\x1f\x7f\s]([^\x00-\x1f\x7f]*[^\x00-\x1f\x7f\s])?$")
    )]
    employee_id: String,
}

fn user_schema(_: &mut SchemaGenerator) -> Schema {
    let variants: Vec<Value> = VendorKey::ALL
        .into_iter()
        .map(|vendor| {
            let properties: Map<String, Value> = vendor
                .user_fields()
                .iter()
                .map(|f| {
                    let ty = match f.kind {
                        FieldKind::Text => json!({"type": "string"}),
                        FieldKind::Integer => json!({"type": "integer"}),
                        FieldKind::TextOrInteger => json!({"type": ["string", "integer"]}),
                    };
                    let mut ty = ty;
                    if f.secret {
                        ty["writeOnly"] = json!(true);
                        ty["description"] = json!("secret: redacted in every log, event and CLI output");
                    }
                    (f.name.to_owned(), ty)
                })
                .collect();
            let required: Vec<&str> = vendor.user_fields().iter().filter(|f| f.required).map(|f| f.name).collect();
            json!({
                "title": format!("{vendor} user"),
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            })
        })
        .collect();
    json_schema!({ "oneOf": variants })
}

/// The JSON Schema (draft 2020-12) printed by `provisioner schema`.
pub fn job_schema() -> Value {
    schemars::schema_for!(JobMessage).to_value()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::decode::ENVELOPE_FIELDS;

    #[test]
    fn schema_lists_exactly_the_fields_the_decoder_accepts() {
        let schema = job_schema();
        let mut props: Vec<&str> = schema["properties"].as_object().unwrap().keys().map(String::as_str).collect();
        props.sort_unstable();
        let mut accepted = ENVELOPE_FIELDS.to_vec();
        accepted.sort_unstable();
        assert_eq!(props, accepted);
        assert_eq!(schema["additionalProperties"], json!(false));
        let required: Vec<&str> = schema["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(required, ["job_id", "vendor", "account", "user"]);
    }

    #[test]
    fn user_schema_has_one_variant_per_vendor_with_its_catalog() {
        let schema = job_schema();
        let variants = schema["properties"]["user"]["oneOf"].as_array().unwrap();
        assert_eq!(variants.len(), 3);
        assert!(variants[0]["properties"]["UserAddress"].is_object());
        assert_eq!(variants[2]["properties"]["user_new_password"]["writeOnly"], json!(true));
    }
}
