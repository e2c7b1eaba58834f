//! The JSON Schema of a Glance job's `user` object, built from the constants [`super::fields`] enforces.

use serde_json::{json, Map, Value};

use super::fields::{
    ADDRESS_MAX, DEFAULT_ADDRESS_SUFFIX, EMAIL_MAX, NAME_MAX, PARTNER_USER_ID_MAX, USER_PW_MAX, USER_ROLE_MAX_SAFE,
};
use crate::contract::SAFE_TEXT_PATTERN;

/// `[gG][lL]…`: the decoder lower-cases an address before checking its suffix.
fn any_case(literal: &str) -> String {
    literal
        .chars()
        .map(|c| match c {
            '.' => "\\.".to_owned(),
            c if c.is_ascii_alphabetic() => format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase()),
            c => c.to_string(),
        })
        .collect()
}

/// The user schema under the default rules (no account); each property describes its rule.
pub fn user_schema() -> Value {
    let address =
        format!("^(?![\\s\\S]*\\.\\.)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?{}$", any_case(DEFAULT_ADDRESS_SUFFIX));
    let properties: Map<String, Value> = [
        (
            "PartnerUserID",
            json!({
                "type": "string", "minLength": 1, "maxLength": PARTNER_USER_ID_MAX,
                "pattern": "^(?!\\*)(?![\\s\\S]*\\*$)(?!-[nN][oO][nN][eE]-$)[\\s\\S]*\\S[\\s\\S]*$",
                "description": "The caller's own id for the user, the idempotency key: 1-255 characters, not blank; \
                    no leading or trailing '*' (a ShowUsers wildcard) and not -none-.",
            }),
        ),
        (
            "UserAddress",
            json!({
                "type": "string", "minLength": 1, "maxLength": ADDRESS_MAX, "pattern": address,
                "description": format!("The Glance Address (login): DNS-name characters (ASCII letters, digits, '.', '-'), \
                    no leading or trailing '.' or '-', no '..', ending in {DEFAULT_ADDRESS_SUFFIX} (or a suffix the \
                    account lists in settings.address_suffixes), at most {ADDRESS_MAX} characters; case-insensitive."),
            }),
        ),
        (
            "UserPW",
            json!({
                "type": "string", "maxLength": USER_PW_MAX, "writeOnly": true,
                "description": format!("Secret, redacted everywhere. At most {USER_PW_MAX} characters; an account may \
                    demand a minimum (settings.user_pw_min_length). Leave it out for Login Key SSO users."),
            }),
        ),
        ("UserFirst", bounded_text(NAME_MAX, "Given name")),
        ("UserLast", bounded_text(NAME_MAX, "Surname")),
        ("UserEmail", bounded_text(EMAIL_MAX, "E-mail address (Glance checks no format)")),
        (
            "UserRole",
            json!({
                "type": "string", "maxLength": USER_ROLE_MAX_SAFE, "pattern": SAFE_TEXT_PATTERN,
                "description": format!("A role provisioned for the group; empty or -none- means no role. At most \
                    {USER_ROLE_MAX_SAFE} characters unless the account sets settings.user_role_max_length; \
                    the account's policy.roles may narrow the roles allowed."),
            }),
        ),
        (
            "AudioProvider",
            json!({"type": "integer", "enum": [1, 666], "description": "1 = Glance Free Conferencing, 666 = testing."}),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    json!({
        "title": "Glance user (NewUser)",
        "type": "object",
        "properties": properties,
        "required": ["PartnerUserID", "UserAddress"],
    })
}

fn bounded_text(max: usize, what: &str) -> Value {
    json!({
        "type": "string", "maxLength": max, "pattern": SAFE_TEXT_PATTERN,
        "description": format!("{what}: at most {max} characters, without control or bidirectional-override characters."),
    })
}
