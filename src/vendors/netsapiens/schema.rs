//! The JSON Schema of a NetSapiens job's `user` object, generated from the rule table [`super::fields`] enforces.

use serde_json::{json, Map, Value};

use super::fields::{
    rule, RecordingConfiguration, Rule, Transcription, UserScope, VoicemailAlertBehavior, YesNo, MAX_EXTENSION_LEN,
    TIME_ZONES,
};
use crate::contract::{FieldKind, VendorKey, SAFE_TEXT_PATTERN};

/// Characters no e-mail address part may hold (`is_email`): blanks, controls and separators.
const EMAIL_BAD: &str = "\\s\\u0000-\\u001f\\u007f-\\u009f@,;<>";

/// The user schema; every catalog field gets its rule's constraints and description.
pub fn user_schema() -> Value {
    let properties: Map<String, Value> = VendorKey::Netsapiens
        .user_fields()
        .iter()
        .map(|spec| {
            let mut schema = match spec.kind {
                FieldKind::Text => json!({"type": "string"}),
                FieldKind::Integer => json!({"type": "integer"}),
                FieldKind::TextOrInteger => json!({"type": ["string", "integer"]}),
            };
            let extra = rule(spec.name).map_or_else(|| json!({}), rule_schema);
            schema.as_object_mut().expect("an object").extend(extra.as_object().expect("an object").clone());
            if spec.secret {
                schema["writeOnly"] = json!(true);
            }
            (spec.name.to_owned(), schema)
        })
        .collect();
    let required: Vec<&str> =
        VendorKey::Netsapiens.user_fields().iter().filter(|f| f.required).map(|f| f.name).collect();
    json!({
        "title": "NetSapiens user (POST /domains/{domain}/users)",
        "type": "object",
        "properties": properties,
        "required": required,
        "oneOf": [{"required": ["email"]}, {"required": ["email-address"]}],
        "description": "The e-mail is required, given exactly once, as `email` or `email-address`; the account \
            decides which name is sent.",
    })
}

fn not_blank() -> String {
    format!("^(?=[\\s\\S]*\\S){}", &SAFE_TEXT_PATTERN[1..])
}

fn names<T: Copy>(all: &[T], as_str: impl Fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|v| as_str(*v)).collect()
}

fn rule_schema(rule: Rule) -> Value {
    let addr = format!("[^{EMAIL_BAD}]{{1,64}}@(?:[^{EMAIL_BAD}.]+\\.)+[^{EMAIL_BAD}.]+");
    match rule {
        Rule::Extension => json!({
            "pattern": format!("^[0-9]{{1,{MAX_EXTENSION_LEN}}}$"),
            "description": format!("The extension: 1 to {MAX_EXTENSION_LEN} digits, unique within the domain."),
        }),
        Rule::Name => {
            json!({"pattern": not_blank(), "description": "Not blank; no control or bidirectional-override characters."})
        }
        Rule::Login => json!({
            "pattern": "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]+$",
            "description": "A login name without spaces, unique on the platform (default <user>@<domain>).",
        }),
        Rule::Email => json!({
            "pattern": format!("^\\s*{addr}\\s*(?:;\\s*{addr}\\s*)*$"),
            "description": "One e-mail address or several separated by ';' (each at most 254 characters, its local \
                part at most 64 bytes).",
        }),
        Rule::Scope => json!({"enum": names(UserScope::ALL, UserScope::as_str),
            "description": "The user's permission level, spelled exactly; the account's policy.user_scopes narrows it \
                (by default every scope but Super User, Reseller and NDP)."}),
        Rule::Text => {
            json!({"pattern": SAFE_TEXT_PATTERN, "description": "Free text without control or bidirectional-override characters."})
        }
        Rule::Existing => {
            json!({"pattern": not_blank(), "description": "Names an object that already exists at the vendor: not blank."})
        }
        Rule::YesNo => json!({"enum": names(YesNo::ALL, YesNo::as_str)}),
        // An unbounded range still stops at the decoder's i64.
        Rule::Range(min, max) => json!({"minimum": min, "maximum": max}),
        Rule::TimeZone => json!({"enum": TIME_ZONES.as_slice(),
            "description": "One of the vendor's 221 time-zone names (legacy aliases such as Asia/Calcutta; not every IANA name)."}),
        Rule::Pin => json!({"pattern": "^[0-9]+$", "description": "Secret, redacted everywhere: digits only."}),
        Rule::Language => json!({"pattern": "^[a-z]{2,3}_[A-Z]{2}$", "description": "A locale token such as en_US."}),
        Rule::Extensions => json!({
            "pattern": format!("^\\s*[0-9]{{1,{MAX_EXTENSION_LEN}}}\\s*(?:,\\s*[0-9]{{1,{MAX_EXTENSION_LEN}}}\\s*)*$"),
            "description": "Extensions separated by commas, e.g. 1001,1002.",
        }),
        Rule::Behavior => json!({"enum": names(VoicemailAlertBehavior::ALL, VoicemailAlertBehavior::as_str)}),
        Rule::Transcription => json!({"enum": names(Transcription::ALL, Transcription::as_str)}),
        Rule::Recording => json!({"enum": names(RecordingConfiguration::ALL, RecordingConfiguration::as_str)}),
        Rule::Phone => json!({
            "pattern": "^(?:\\[\\*\\]|\\+?[0-9]{1,15})$", "minimum": 0, "maximum": 999_999_999_999_999_i64,
            "description": "A phone number of 1 to 15 digits, optionally with a leading '+', or [*].",
        }),
    }
}
