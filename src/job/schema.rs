//! The JSON Schemas (2020-12) of the job message, assembled from the envelope's rules and each vendor's user schema.
//!
//! Every rule here is one the decoder enforces, taken from the same constants; what JSON
//! Schema cannot say is listed in [`NOT_EXPRESSIBLE`] and in the schema's `description`.

use serde_json::{json, Map, Value};

use crate::contract::{all_auth_fields, JobId, JobKind, VendorKey};

const JOB_SCHEMA_ID: &str = "urn:provisioner:schema:job";

/// The decoder's rules that JSON Schema cannot express: a job may pass the schema and still
/// be `invalid`. Each is named, so the schema/decoder agreement test can list its exceptions.
pub const NOT_EXPRESSIBLE: &[(&str, &str)] = &[
    ("account-rules", "an account's settings and policy (allow-lists, settings.address_suffixes, settings.user_pw_min_length, settings.user_role_max_length, settings.roles, policy.user_scopes, policy.domains...) apply only once the account is known"),
    ("routing-key", "the routing key must be <kind>.<vendor> (create_user.<vendor> when kind is left out), and the account must be configured for that vendor"),
    ("integer-form", "a number with a fraction part or exponent (1.0, 1e3) is an integer to JSON Schema, not to the decoder; integers must fit in 64 bits"),
    ("calendar-date", "requested_at must be a real instant (no 30 February, no hour 24)"),
    ("email-lengths", "a NetSapiens e-mail address is at most 254 characters and its local part at most 64 bytes"),
    ("timezone-code-range", "a ClientToolbox timezone_selector given as a string must fit in 32 bits, as a number does"),
    ("error-cap", "a job with more than 50 errors lists the first 49 and counts the rest"),
];

fn credential() -> Value {
    json!({"not": {}, "description": "credentials never travel in jobs; they come from the account config"})
}

/// Forbidden credential fields, each as an always-failing schema, added to `properties`.
fn forbid_credentials(properties: &mut Map<String, Value>) {
    for name in all_auth_fields() {
        properties.insert(name.to_owned(), credential());
    }
}

fn def_name(vendor: VendorKey) -> String {
    let name = vendor.as_str();
    format!("{}{}User", name[..1].to_ascii_uppercase(), &name[1..])
}

/// The `$defs` name of a vendor's user for a job kind: `GlanceUser` for a create,
/// `GlanceUserUpdate` for an update, `GlanceUserRef` for the kinds that only name the user.
fn user_def_name(vendor: VendorKey, kind: JobKind) -> String {
    match kind {
        JobKind::CreateUser => def_name(vendor),
        JobKind::UpdateUser => format!("{}Update", def_name(vendor)),
        _ => format!("{}Ref", def_name(vendor)),
    }
}

/// The `user` of a job that is not a create, from the create's: an update names the
/// identity and at least one field the vendor can change; a suspend, restore or delete
/// names the identity only. The create's cross-field rules (NetSapiens' one e-mail field)
/// are a create's only.
fn change_user_schema(create: &Value, vendor: VendorKey, kind: JobKind) -> Value {
    let identity = vendor.identity_field();
    let mut properties = create["properties"].as_object().expect("user properties").clone();
    let updatable: Vec<&str> = crate::vendors::updatable_fields(vendor).collect();
    properties.retain(|name, schema| {
        name == identity
            || schema.get("not").is_some()
            || (!kind.names_user_only() && updatable.contains(&name.as_str()))
    });
    let mut user = json!({
        "type": "object",
        "properties": properties,
        "required": [identity],
        "additionalProperties": false,
    });
    if kind == JobKind::UpdateUser {
        user["minProperties"] = json!(2);
        user["description"] = json!(format!(
            "{identity} names the user; every other field given is changed, and only those. At least one."
        ));
    } else {
        user["description"] = json!(format!("{identity} names the user; nothing else may be given."));
    }
    user
}

/// The JSON Schema (draft 2020-12) printed by `provisioner schema`: a job of any kind, one
/// branch per vendor and kind.
pub fn job_schema() -> Value {
    let mut properties = Map::new();
    properties.insert(
        "job_id".into(),
        json!({
            "type": "string", "minLength": 1, "maxLength": JobId::MAX_LEN, "pattern": "^[!-~](?:[ -~]*[!-~])?$",
            "description": "Idempotency key: 1-128 printable ASCII characters, no leading or trailing space. Also the AMQP message_id.",
        }),
    );
    properties.insert(
        "kind".into(),
        json!({"type": "string", "enum": JobKind::ALL.map(JobKind::as_str), "default": "create_user",
            "description": "What to do: create_user (the default when left out), update_user (change the fields given), suspend_user, restore_user or delete_user (the least destructive delete the account allows). Must match the routing key <kind>.<vendor>."}),
    );
    properties.insert(
        "vendor".into(),
        json!({"type": "string", "enum": VendorKey::ALL.map(VendorKey::as_str),
            "description": "Which vendor the user is at; must match the routing key <kind>.<vendor>."}),
    );
    properties.insert(
        "account".into(),
        json!({"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$",
            "description": "A vendor account configured in the service (base URL, credentials, vendor settings, policy)."}),
    );
    properties.insert(
        "correlation_id".into(),
        json!({"type": ["string", "null"], "minLength": 1, "maxLength": 256, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
            "description": "Ties the jobs of one business event (e.g. a hire) together; copied into the event. 1-256 characters without control characters; null means absent."}),
    );
    properties.insert(
        "requested_at".into(),
        json!({"type": ["string", "null"], "format": "date-time",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$",
            "description": "When the business event happened (RFC 3339). Feeds the end-to-end latency metric; null means absent."}),
    );
    properties.insert(
        "domain".into(),
        json!({"type": ["string", "null"], "pattern": "^(?!\\.+$)[A-Za-z0-9._-]{1,64}$",
            "description": "NetSapiens only: the domain to create the user in (1-64 of letters, digits, '.', '_', '-'; not only dots), overriding the account's default; the account's policy.domains decides which are allowed. null means absent."}),
    );
    properties.insert(
        "person".into(),
        json!({"type": ["object", "null"], "additionalProperties": false,
            "properties": {
                "tenant": {"type": ["string", "null"], "pattern": "^[A-Za-z0-9_.-]{0,64}$",
                    "description": "The tenant (HR system) the employee id belongs to; may be left out."},
                "employee_id": {"type": "string", "minLength": 1, "maxLength": 256,
                    "pattern": "^[^\\s\\u0000-\\u001f\\u007f-\\u009f](?:[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f])?$",
                    "description": "The HR system's employee id: 1-256 characters, no control characters, no leading or trailing space."},
            },
            "required": ["employee_id"],
            "description": "Who the account is for. Lets the service prove that two jobs are for the same person and refuse an identity another person holds; jobs derived from hires always carry it. null means absent."}),
    );
    properties.insert(
        "user".into(),
        json!({"type": "object", "description": "The user, in the vendor's own documented wire names. Unknown fields are invalid."}),
    );
    forbid_credentials(&mut properties);

    let mut defs = Map::new();
    let mut branches: Vec<Value> = Vec::new();
    for vendor in VendorKey::ALL {
        let mut user = crate::vendors::user_schema(vendor);
        forbid_credentials(user["properties"].as_object_mut().expect("user properties"));
        user["additionalProperties"] = json!(false);
        for kind in JobKind::ALL {
            let def = user_def_name(vendor, kind);
            let schema = match kind {
                JobKind::CreateUser => user.clone(),
                kind => change_user_schema(&user, vendor, kind),
            };
            defs.entry(def.clone()).or_insert(schema);
            let mut then = json!({"properties": {"user": {"$ref": format!("#/$defs/{def}")}}});
            if vendor != VendorKey::Netsapiens {
                then["properties"]["domain"] =
                    json!({"type": "null", "description": "only NetSapiens jobs may name a domain"});
            }
            // A job without a kind is a create, so only the other kinds require the member.
            let required = if kind == JobKind::CreateUser { json!(["vendor"]) } else { json!(["vendor", "kind"]) };
            let test = json!({"properties": {"vendor": {"const": vendor.as_str()}, "kind": {"const": kind.as_str()}},
                "required": required});
            branches.push(json!({"if": test, "then": then}));
        }
    }

    let caveats: Vec<String> = NOT_EXPRESSIBLE.iter().map(|(name, rule)| format!("{name}: {rule}")).collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": JOB_SCHEMA_ID,
        "title": "provisioner job",
        "description": format!(
            "A job, as producers publish it to provisioning.jobs with routing key <kind>.<vendor>. \
             Credentials never travel in jobs. Regenerate with `provisioner schema --write schemas/`. \
             Rules the decoder also enforces that JSON Schema cannot express: {}.",
            caveats.join("; ")
        ),
        "type": "object",
        "properties": properties,
        "required": ["job_id", "vendor", "account", "user"],
        "additionalProperties": false,
        "allOf": branches,
        "$defs": defs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::decode::ENVELOPE_FIELDS;

    #[test]
    fn schema_lists_exactly_the_fields_the_decoder_accepts() {
        let schema = job_schema();
        let mut props: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| v.get("not").is_none())
            .map(|(k, _)| k.as_str())
            .collect();
        props.sort_unstable();
        let mut accepted = ENVELOPE_FIELDS.to_vec();
        accepted.sort_unstable();
        assert_eq!(props, accepted);
        assert_eq!(schema["additionalProperties"], json!(false));
        let required: Vec<&str> = schema["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(required, ["job_id", "vendor", "account", "user"]);
        assert_eq!(schema["properties"]["PartnerPW"]["not"], json!({}));
    }

    #[test]
    fn each_vendor_user_lists_exactly_its_catalog_and_forbids_credentials() {
        let schema = job_schema();
        for vendor in VendorKey::ALL {
            let user = &schema["$defs"][def_name(vendor)];
            assert_eq!(user["additionalProperties"], json!(false));
            let props = user["properties"].as_object().unwrap();
            let fields: Vec<&str> =
                props.iter().filter(|(_, v)| v.get("not").is_none()).map(|(k, _)| k.as_str()).collect();
            let mut catalog: Vec<&str> = vendor.user_fields().iter().map(|f| f.name).collect();
            catalog.sort_unstable();
            assert_eq!(fields, catalog, "{vendor}");
            for f in vendor.user_fields().iter().filter(|f| f.secret) {
                assert_eq!(props[f.name]["writeOnly"], json!(true), "{}", f.name);
            }
            assert!(all_auth_fields().all(|a| props[a]["not"] == json!({})));
        }
        let ns = &schema["$defs"]["NetsapiensUser"];
        assert_eq!(ns["oneOf"], json!([{"required": ["email"]}, {"required": ["email-address"]}]));
        assert_eq!(schema["$defs"]["GlanceUser"]["properties"]["UserPW"]["maxLength"], json!(49));
        assert!(schema["$defs"]["GlanceUser"]["properties"]["UserPW"].get("minLength").is_none());
    }
}
