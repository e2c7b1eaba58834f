//! The JSON Schema of a ClientToolbox job's `user` object, built from the rules [`super::fields`] enforces.

use serde_json::{json, Value};

use super::fields::ClientToolboxUserName;
use crate::contract::SAFE_TEXT_PATTERN;

/// The user schema under the default rules (no account); each property describes its rule.
pub fn user_schema() -> Value {
    let free = |what: &str| {
        json!({"type": "string", "pattern": SAFE_TEXT_PATTERN,
            "description": format!("{what}: free text without control or bidirectional-override characters.")})
    };
    json!({
        "title": "ClientToolbox user (type=user_new)",
        "type": "object",
        "properties": {
            "user_name": {
                "type": "string",
                "pattern": format!("^[A-Za-z0-9_]{{1,{}}}$", ClientToolboxUserName::MAX_LEN),
                "description": "The login: 1 to 20 of A-Z, a-z, 0-9 and _, unique within the account (compared \
                    case-insensitively).",
            },
            "user_new_password": {
                "type": "string", "minLength": 1, "writeOnly": true,
                "description": "Secret, redacted everywhere. Not empty; an account may demand a minimum length \
                    (settings.min_password_length).",
            },
            "user_first_name": free("Given name"),
            "user_last_name": free("Surname"),
            "user_custom1": free("Location"),
            "user_PIN": {"type": "string", "pattern": "^[0-9]+$", "writeOnly": true,
                "description": "Secret, redacted everywhere: digits only, unique within the account."},
            "language_selector": {"type": "string", "pattern": "^[A-Z]{2}$",
                "description": "A two-letter upper-case code from Available Languages, e.g. EN; an account may list \
                    the codes it knows (settings.languages)."},
            "timezone_selector": {
                "type": ["string", "integer"], "pattern": "^[0-9]*[1-9][0-9]*$",
                "minimum": 1, "maximum": u32::MAX,
                "description": "A positive time-zone code from the Timezones page (e.g. 68), as a number or a string \
                    of digits, at most 4294967295; not an IANA name. An account may list the codes it knows \
                    (settings.timezones).",
            },
            "user_role": {"type": "string", "pattern": "^[A-Z]$",
                "description": "One upper-case role letter, e.g. A (Administrator) or K. An account narrows it with \
                    settings.roles and policy.roles (by default every letter but A)."},
            "allowed_campaigns": {"type": "string", "pattern": "^(?:all|none|[0-9]+(?:,[0-9]+)*)$",
                "description": "all, none, or comma-separated numeric campaign ids (kept as strings: leading zeros \
                    matter)."},
        },
        "required": ["user_name", "user_new_password", "user_role", "allowed_campaigns"],
    })
}
