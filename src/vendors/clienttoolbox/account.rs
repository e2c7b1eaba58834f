//! One ClientToolbox account's typed configuration, parsed from `accounts.<name>` with every unconfirmed behaviour's switch.
//!
//! Everything the vendor docs leave open (error wording, lookups, case sensitivity, the
//! reference tables) is a setting here with a documented default, so operators can adapt to
//! what the real API does without a release.

use std::collections::BTreeSet;

use secrecy::SecretString;

use super::fields::{Changes, ClientToolboxUserName, LanguageSelector, NewUser, Rules, TimezoneSelector, UserRole};
use crate::config::{AccountSettings, ConfigError};
use crate::contract::{FieldKind, FieldValue, UserFields, VendorKey};
use crate::vendors::http;

pub const DEFAULT_BASE_URL: &str = "https://api.clienttoolbox.com";
pub const DEFAULT_PATH: &str = "/api.php";

/// Default `duplicate_patterns`: the vendor only says the message is free text
/// ("User name already exists" is illustrative).
pub const DEFAULT_DUPLICATE_PATTERNS: &str =
    "already exists|already in use|already taken|already registered|duplicate|not unique|must be unique|is taken";
/// Default `pin_patterns`: a duplicate message that names the PIN is a PIN clash, not a
/// user-name clash.
pub const DEFAULT_PIN_PATTERNS: &str = "pin|user_pin";
pub const DEFAULT_AUTH_PATTERNS: &str = "authentication|authenticate|unauthorized|not authorized|permission|access denied|login failed|invalid login|user_id|user_password|api_access_key|api key|credentials|incorrect password|invalid password|wrong password";
pub const DEFAULT_ACCOUNT_PATTERNS: &str =
    "account_id|unknown account|invalid account|account not found|no such account|account does not exist";
pub const DEFAULT_RATE_LIMIT_PATTERNS: &str = "too many requests|rate limit|try again later";
pub const DEFAULT_NOT_FOUND_PATTERNS: &str =
    "not found|does not exist|no such user|unknown user|no user|invalid user_name";

/// How the caller authenticates. Both carry the caller's `user_id` in the form.
#[derive(Debug)]
pub enum Auth {
    /// `user_password` form field: the caller's password or user API key.
    Password(SecretString),
    /// `api_access_key` header (July-2025 docs); `user_password` is then left out.
    Header(SecretString),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Xml,
    Json,
}

impl Output {
    pub fn wire(self) -> &'static str {
        match self {
            Output::Xml => "XML",
            Output::Json => "JSON",
        }
    }
}

/// Which spelling of `user_name` goes on the wire (case sensitivity is unconfirmed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameCase {
    Lower,
    Preserve,
}

/// The existence check used before creating on a redelivery and after a duplicate answer.
/// Neither call is in the retrieved docs (both appear in public client code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupMethod {
    UserInfo,
    UsersList,
    None,
}

/// What a duplicate `user_name` answer means when no lookup can tell whose user it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnverifiedDuplicate {
    /// Fail as `conflict`: never claim a user we cannot prove is ours.
    Conflict,
    /// Treat as `existing`: only for accounts where nobody else creates users.
    Existing,
}

/// Case-insensitive phrases matched on word boundaries (`taken` does not match `mistaken`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patterns(Vec<String>);

impl Patterns {
    /// `|`-separated phrases; commas are common in vendor messages, bars are not.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let list: Vec<String> = raw.split('|').map(|p| p.trim().to_lowercase()).filter(|p| !p.is_empty()).collect();
        if list.is_empty() {
            return Err("must list at least one phrase, separated by `|`".into());
        }
        Ok(Self(list))
    }

    pub fn matches(&self, message: &str) -> bool {
        let hay = message.to_lowercase();
        self.0.iter().any(|p| contains_word(&hay, p))
    }
}

fn contains_word(hay: &str, needle: &str) -> bool {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    hay.match_indices(needle).any(|(i, _)| {
        let before = hay[..i].chars().next_back();
        let after = hay[i + needle.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// How `status="error"` messages are read. Checked in this order: auth, account, rate limit,
/// duplicate (PIN, then user name); anything else is a rejection of the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classifier {
    pub auth: Patterns,
    pub account: Patterns,
    pub rate_limit: Patterns,
    pub duplicate: Patterns,
    pub pin: Patterns,
    pub not_found: Patterns,
}

impl Default for Classifier {
    fn default() -> Self {
        let p = |s: &str| Patterns::parse(s).expect("default patterns are valid");
        Self {
            auth: p(DEFAULT_AUTH_PATTERNS),
            account: p(DEFAULT_ACCOUNT_PATTERNS),
            rate_limit: p(DEFAULT_RATE_LIMIT_PATTERNS),
            duplicate: p(DEFAULT_DUPLICATE_PATTERNS),
            pin: p(DEFAULT_PIN_PATTERNS),
            not_found: p(DEFAULT_NOT_FOUND_PATTERNS),
        }
    }
}

/// A ClientToolbox account. `Debug` is safe: secrets are `SecretString`.
#[derive(Debug)]
pub struct Account {
    pub name: String,
    /// Scheme and host, no trailing slash.
    pub base_url: String,
    pub path: String,
    pub account_id: String,
    pub user_id: String,
    pub auth: Auth,
    pub output: Output,
    /// Sent as `API=<v>` when set; whether it changes `user_new` is unconfirmed.
    pub api_version: Option<String>,
    pub user_name_case: NameCase,
    pub lookup: LookupMethod,
    pub on_unverified_duplicate: UnverifiedDuplicate,
    pub classifier: Classifier,
    /// The allow-lists and password length that narrow the job rules (decoding applies them).
    pub rules: Rules,
    /// What `suspend_user` sets with `user_update`: ClientToolbox documents no suspend, so an
    /// account says which fields take a user's access away. `None`: suspend jobs are refused.
    pub suspend: Option<Changes>,
    /// What `restore_user` sets with `user_update`; `None`: restore jobs are refused.
    pub restore: Option<Changes>,
    /// `delete_user` sends `action=permanent` (really deletes) instead of the default delete,
    /// which only marks the user deleted.
    pub hard_delete: bool,
}

/// Every key `settings` may hold; anything else is a typo worth stopping for.
pub const SETTINGS_KEYS: &[&str] = &[
    "allow_http",
    "account_id",
    "user_id",
    "auth",
    "path",
    "output",
    "api_version",
    "user_name_case",
    "lookup",
    "on_unverified_duplicate",
    "duplicate_patterns",
    "pin_patterns",
    "auth_patterns",
    "account_patterns",
    "rate_limit_patterns",
    "not_found_patterns",
    "roles",
    "languages",
    "timezones",
    "min_password_length",
    "suspend",
    "restore",
    "hard_delete",
];
pub const CREDENTIAL_KEYS: &[&str] = &["user_password", "api_access_key", "user_id"];

pub fn from_settings(name: &str, a: &AccountSettings) -> Result<Account, ConfigError> {
    let key = |k: &str| format!("accounts.{name}.settings.{k}");
    let invalid = |k: &str, message: String| ConfigError::Invalid { key: key(k), message };
    let get = |k: &str| a.settings.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());

    if let Some(unknown) = a.settings.keys().find(|k| !SETTINGS_KEYS.contains(&k.as_str())) {
        return Err(invalid(unknown, format!("unknown ClientToolbox setting; known: {}", SETTINGS_KEYS.join(", "))));
    }
    if let Some(unknown) = a.credentials.keys().find(|k| !CREDENTIAL_KEYS.contains(&k.as_str())) {
        return Err(ConfigError::Invalid {
            key: format!("accounts.{name}.credentials.{unknown}"),
            message: format!("unknown ClientToolbox credential; known: {}", CREDENTIAL_KEYS.join(", ")),
        });
    }

    let allow_http = http::allow_http(&a.settings).map_err(|m| invalid("allow_http", m))?;
    let base_url = match a.base_url.as_deref() {
        None => DEFAULT_BASE_URL.to_owned(),
        Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
            let parsed = reqwest::Url::parse(u).map_err(|e| format!("is not a URL: {e}"));
            parsed
                .and_then(|url| http::require_https(&url, allow_http))
                .map_err(|message| ConfigError::Invalid { key: format!("accounts.{name}.base_url"), message })?;
            u.trim_end_matches('/').to_owned()
        }
        Some(_) => {
            return Err(ConfigError::Invalid {
                key: format!("accounts.{name}.base_url"),
                message: "must be an http(s) URL such as https://api.clienttoolbox.com".into(),
            })
        }
    };
    let path = match get("path") {
        None => DEFAULT_PATH.to_owned(),
        Some(p) if p.starts_with('/') && !p.contains(['?', '#']) => p.to_owned(),
        Some(_) => return Err(invalid("path", "must start with `/` and carry no query, e.g. /api.php".into())),
    };

    let account_id =
        identifier(get("account_id"), "account_id", &invalid, "the merchant account to act on, e.g. greatwidgets")?;
    let cred = |k: &str| a.credentials.get(k).map(|s| s.resolve(&format!("accounts.{name}.credentials.{k}")));
    // The caller's login is not secret, but operators used to keeping it beside the password
    // may put it under credentials; both are accepted, settings first.
    let user_id = match (get("user_id"), cred("user_id")) {
        (Some(v), _) => identifier(Some(v), "user_id", &invalid, "")?,
        (None, Some(secret)) => {
            use secrecy::ExposeSecret;
            identifier(Some(secret?.expose_secret()), "user_id", &invalid, "")?
        }
        (None, None) => identifier(None, "user_id", &invalid, "the login of the calling user, e.g. john1970")?,
    };
    let auth = match get("auth").unwrap_or("user_password") {
        "user_password" => match cred("user_password") {
            Some(secret) => Auth::Password(secret?),
            None => return Err(missing_credential(name, "user_password", "auth = user_password")),
        },
        "api_access_key" => match cred("api_access_key") {
            Some(secret) => Auth::Header(secret?),
            None => return Err(missing_credential(name, "api_access_key", "auth = api_access_key")),
        },
        other => {
            return Err(invalid("auth", format!("unknown auth {other:?}; expected user_password or api_access_key")))
        }
    };

    let output = match get("output").unwrap_or("XML").to_ascii_uppercase().as_str() {
        "XML" => Output::Xml,
        "JSON" => Output::Json,
        _ => return Err(invalid("output", "must be XML or JSON".into())),
    };
    let api_version = match get("api_version") {
        None => None,
        Some(v) if !v.is_empty() && v.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) => {
            Some(v.to_owned())
        }
        Some(_) => return Err(invalid("api_version", "must be a version number such as 1.5 or 1.6".into())),
    };
    let user_name_case = match get("user_name_case").unwrap_or("lower") {
        "lower" => NameCase::Lower,
        "preserve" => NameCase::Preserve,
        _ => return Err(invalid("user_name_case", "must be lower or preserve".into())),
    };
    let lookup = match get("lookup").unwrap_or("user_info") {
        "user_info" => LookupMethod::UserInfo,
        "users_list" => LookupMethod::UsersList,
        "none" => LookupMethod::None,
        _ => return Err(invalid("lookup", "must be user_info, users_list or none".into())),
    };
    let on_unverified_duplicate = match get("on_unverified_duplicate").unwrap_or("conflict") {
        "conflict" => UnverifiedDuplicate::Conflict,
        "existing" => UnverifiedDuplicate::Existing,
        _ => return Err(invalid("on_unverified_duplicate", "must be conflict or existing".into())),
    };

    let patterns = |k: &str, default: &str| Patterns::parse(get(k).unwrap_or(default)).map_err(|m| invalid(k, m));
    let classifier = Classifier {
        auth: patterns("auth_patterns", DEFAULT_AUTH_PATTERNS)?,
        account: patterns("account_patterns", DEFAULT_ACCOUNT_PATTERNS)?,
        rate_limit: patterns("rate_limit_patterns", DEFAULT_RATE_LIMIT_PATTERNS)?,
        duplicate: patterns("duplicate_patterns", DEFAULT_DUPLICATE_PATTERNS)?,
        pin: patterns("pin_patterns", DEFAULT_PIN_PATTERNS)?,
        not_found: patterns("not_found_patterns", DEFAULT_NOT_FOUND_PATTERNS)?,
    };

    let rules = rules_from_settings(name, a)?;
    let changes = |k: &str| get(k).map(|raw| changes_setting(raw, &rules).map_err(|m| invalid(k, m))).transpose();
    let suspend = changes("suspend")?;
    let restore = changes("restore")?;
    let hard_delete = match get("hard_delete").map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "no" | "0") => false,
        Some("true" | "yes" | "1") => true,
        Some(_) => return Err(invalid("hard_delete", "must be true or false".into())),
    };

    Ok(Account {
        name: name.to_owned(),
        base_url,
        path,
        account_id,
        user_id,
        auth,
        output,
        api_version,
        user_name_case,
        lookup,
        on_unverified_duplicate,
        classifier,
        rules,
        suspend,
        restore,
        hard_delete,
    })
}

/// `settings.suspend` / `settings.restore`: a JSON object of the user fields to set, by their
/// wire names, exactly as in an `update_user` job's `user` (e.g.
/// `{"allowed_campaigns": "none"}`). Settings are strings, so the table is written as one.
/// Each value obeys its job rule and the account's allow-lists. The table names no user and
/// holds no secret: a password or PIN in a config file would be a literal secret.
fn changes_setting(raw: &str, rules: &Rules) -> Result<Changes, String> {
    const EXAMPLE: &str = r#"e.g. '{"allowed_campaigns": "none"}'"#;
    let object = match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Object(object)) => object,
        _ => return Err(format!("must be a JSON object of user fields by their wire names, {EXAMPLE}")),
    };
    let vendor = VendorKey::Clienttoolbox;
    let mut fields = std::collections::BTreeMap::new();
    for (name, value) in &object {
        let shown = crate::contract::clip(name.clone(), 40);
        let Some(spec) = vendor.field(name) else {
            let known: Vec<&str> = crate::vendors::updatable_fields(vendor)
                .filter(|n| vendor.field(n).is_some_and(|f| !f.secret))
                .collect();
            return Err(format!("{shown:?} is not a ClientToolbox user field; known: {}", known.join(", ")));
        };
        if spec.name == vendor.identity_field() {
            return Err("names no user: user_name comes from each job".into());
        }
        if spec.secret {
            return Err(format!("{} is a secret and cannot be a setting", spec.name));
        }
        let value = match (value, spec.kind) {
            (serde_json::Value::String(s), _) => FieldValue::Text(s.clone()),
            (serde_json::Value::Number(n), FieldKind::Integer | FieldKind::TextOrInteger) if n.is_i64() => {
                FieldValue::Integer(n.as_i64().expect("checked"))
            }
            _ => return Err(format!("{} must be a string", spec.name)),
        };
        fields.insert(spec.name, value);
    }
    let user = UserFields::new(vendor, fields);
    let changes = Changes::parse(&user).map_err(|errors| summary(&errors))?;
    if changes.is_empty() {
        return Err(format!("names no field to set, {EXAMPLE}"));
    }
    match rules.check_changes(&changes) {
        errors if errors.is_empty() => Ok(changes),
        errors => Err(summary(&errors)),
    }
}

fn summary(errors: &[crate::contract::FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field.trim_start_matches("user."), e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The account's field rules (`roles`, `languages`, `timezones`, `min_password_length`),
/// read without touching its credentials so `validate --config` can apply them where the
/// secrets are absent.
pub fn rules_from_settings(name: &str, a: &AccountSettings) -> Result<Rules, ConfigError> {
    let invalid =
        |k: &str, message: String| ConfigError::Invalid { key: format!("accounts.{name}.settings.{k}"), message };
    let get = |k: &str| a.settings.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let roles = allow_list(get("roles"), UserRole::parse).map_err(|m| invalid("roles", m))?;
    let languages = allow_list(get("languages"), LanguageSelector::parse).map_err(|m| invalid("languages", m))?;
    let timezones = allow_list(get("timezones"), TimezoneSelector::parse).map_err(|m| invalid("timezones", m))?;
    let min_password_length = match get("min_password_length") {
        None => 0,
        Some(n) => n.parse().map_err(|_| invalid("min_password_length", "must be a whole number".into()))?,
    };
    Ok(Rules { account: name.to_owned(), roles, languages, timezones, min_password_length })
}

impl Account {
    /// The `user_name` as it goes on the wire.
    pub fn wire_user_name(&self, user: &NewUser) -> String {
        self.wire_name(&user.user_name)
    }

    /// A `user_name` as it goes on the wire, for every call that names a user.
    pub fn wire_name(&self, name: &ClientToolboxUserName) -> String {
        match self.user_name_case {
            NameCase::Lower => name.canonical(),
            NameCase::Preserve => name.as_given().to_owned(),
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The first thing this account's own narrowing of the job rules refuses (allow-lists,
    /// password length): decoding already refused such a job, so this is a second guard.
    pub fn check(&self, user: &NewUser) -> Result<(), (String, String)> {
        match self.rules.check(user).into_iter().next() {
            None => Ok(()),
            Some(e) => Err((e.field, e.message)),
        }
    }
}

fn identifier(
    value: Option<&str>,
    k: &str,
    invalid: &impl Fn(&str, String) -> ConfigError,
    what: &str,
) -> Result<String, ConfigError> {
    match value {
        None => Err(invalid(k, format!("is required: {what}"))),
        Some(v) if v.chars().any(|c| c.is_control() || c.is_whitespace()) => {
            Err(invalid(k, "must not contain spaces or control characters".into()))
        }
        Some(v) => Ok(v.to_owned()),
    }
}

fn missing_credential(name: &str, k: &str, because: &str) -> ConfigError {
    ConfigError::Invalid {
        key: format!("accounts.{name}.credentials.{k}"),
        message: format!("is required when {because}; set it to an env: or file: secret"),
    }
}

fn allow_list<T: Ord>(
    raw: Option<&str>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<BTreeSet<T>>, String> {
    let Some(raw) = raw else { return Ok(None) };
    let set = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| parse(s).map_err(|e| format!("{s:?} {e}")))
        .collect::<Result<BTreeSet<_>, _>>()?;
    Ok(Some(set).filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, API_KEY, PASSWORD};
    use super::*;
    use crate::config::SecretSource;

    fn parse(settings: &[(&str, &str)]) -> Result<Account, ConfigError> {
        let f = testing::account(None, settings);
        from_settings("acme", &f.settings)
    }

    fn err_key(e: ConfigError) -> String {
        match e {
            ConfigError::Invalid { key, .. } => key,
            other => panic!("unexpected {other}"),
        }
    }

    fn user(fields: serde_json::Value) -> NewUser {
        NewUser::parse(&testing::job("jdoe", fields).user).unwrap()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.base_url, DEFAULT_BASE_URL);
        assert_eq!(a.path, "/api.php");
        assert_eq!(a.account_id, "acmerewards");
        assert_eq!(a.user_id, "provisioner");
        assert!(matches!(a.auth, Auth::Password(_)));
        assert_eq!(a.output, Output::Xml);
        assert_eq!(a.api_version, None);
        assert_eq!(a.user_name_case, NameCase::Lower);
        assert_eq!(a.lookup, LookupMethod::UserInfo);
        assert_eq!(a.on_unverified_duplicate, UnverifiedDuplicate::Conflict);
        assert_eq!(a.classifier, Classifier::default());
        assert_eq!(a.rules, Rules { account: "acme".into(), ..Rules::default() });
        assert!(a.suspend.is_none() && a.restore.is_none() && !a.hard_delete);
    }

    #[test]
    fn suspend_restore_and_hard_delete() {
        let a = parse(&[
            ("suspend", r#"{"allowed_campaigns": "none", "user_custom1": "Suspended", "timezone_selector": 68}"#),
            ("restore", r#" {"allowed_campaigns": "all"} "#),
            ("hard_delete", "TRUE"),
        ])
        .unwrap();
        let suspend = a.suspend.unwrap();
        assert_eq!(suspend.names(), ["user_custom1", "timezone_selector", "allowed_campaigns"]);
        assert_eq!(a.restore.unwrap().names(), ["allowed_campaigns"]);
        assert!(a.hard_delete);
        assert!(!parse(&[("hard_delete", "no")]).unwrap().hard_delete);
    }

    #[test]
    fn a_bad_suspend_or_restore_table_names_the_setting_and_says_why() {
        let cases = [
            ("allowed_campaigns=none", "JSON object"),
            (r#"["allowed_campaigns"]"#, "JSON object"),
            ("{}", "names no field"),
            (r#"{"UserRole": "K"}"#, "not a ClientToolbox user field"),
            (r#"{"user_name": "x"}"#, "names no user"),
            (r#"{"user_new_password": "hunter2"}"#, "secret"),
            (r#"{"user_PIN": "1234"}"#, "secret"),
            (r#"{"user_role": "suspended"}"#, "user_role"),
            (r#"{"allowed_campaigns": 0}"#, "must be a string"),
            (r#"{"user_role": "A"}"#, "accounts.acme.settings.roles"),
        ];
        for setting in ["suspend", "restore"] {
            for (raw, why) in cases {
                let e = parse(&[(setting, raw), ("roles", "K,X")]).unwrap_err();
                let shown = e.to_string();
                assert_eq!(err_key(e), format!("accounts.acme.settings.{setting}"), "{raw}");
                assert!(shown.contains(why), "{raw}: {shown}");
                assert!(!shown.contains("hunter2") && !shown.contains("1234"), "{shown}");
            }
        }
        assert_eq!(err_key(parse(&[("hard_delete", "maybe")]).unwrap_err()), "accounts.acme.settings.hard_delete");
    }

    #[test]
    fn every_switch_can_be_set() {
        let a = parse(&[
            ("auth", "api_access_key"),
            ("output", "json"),
            ("api_version", "1.6"),
            ("user_name_case", "preserve"),
            ("lookup", "users_list"),
            ("on_unverified_duplicate", "existing"),
            ("duplicate_patterns", "schon vorhanden"),
            ("roles", "A, K,M"),
            ("languages", "EN,FR"),
            ("timezones", "68,70"),
            ("min_password_length", "8"),
            ("path", "/custom/api.php"),
        ])
        .unwrap();
        assert!(matches!(a.auth, Auth::Header(_)));
        assert_eq!(a.output, Output::Json);
        assert_eq!(a.api_version.as_deref(), Some("1.6"));
        assert_eq!(a.user_name_case, NameCase::Preserve);
        assert_eq!(a.lookup, LookupMethod::UsersList);
        assert_eq!(a.on_unverified_duplicate, UnverifiedDuplicate::Existing);
        assert!(a.classifier.duplicate.matches("Benutzer schon vorhanden"));
        assert!(!a.classifier.duplicate.matches("User name already exists"));
        assert_eq!(a.rules.roles.as_ref().unwrap().len(), 3);
        assert_eq!(a.rules.languages.as_ref().unwrap().len(), 2);
        assert_eq!(a.rules.timezones.as_ref().unwrap().len(), 2);
        assert_eq!(a.rules.min_password_length, 8);
        assert_eq!(a.path, "/custom/api.php");
        assert_eq!(parse(&[("lookup", "none")]).unwrap().lookup, LookupMethod::None);
    }

    #[test]
    fn errors_name_the_key() {
        let mut f = testing::account(None, &[]);
        f.settings.settings.remove("account_id");
        assert_eq!(err_key(from_settings("acme", &f.settings).unwrap_err()), "accounts.acme.settings.account_id");
        for (k, v) in [
            ("auth", "oauth"),
            ("output", "csv"),
            ("api_version", "v2"),
            ("user_name_case", "upper"),
            ("lookup", "search"),
            ("on_unverified_duplicate", "update"),
            ("duplicate_patterns", " | "),
            ("roles", "Admin"),
            ("languages", "english"),
            ("timezones", "Europe/Paris"),
            ("min_password_length", "eight"),
            ("path", "api.php"),
            ("account_id", "two words"),
            ("standin_mode", "normal"),
        ] {
            let key = err_key(parse(&[(k, v)]).unwrap_err());
            assert_eq!(key, format!("accounts.acme.settings.{k}"), "{k} = {v}");
        }
        let mut f = testing::account(Some("ftp://x"), &[]);
        assert_eq!(err_key(from_settings("acme", &f.settings).unwrap_err()), "accounts.acme.base_url");
        f.settings.base_url = None;
        f.settings.credentials.remove("user_password");
        assert_eq!(err_key(from_settings("acme", &f.settings).unwrap_err()), "accounts.acme.credentials.user_password");
        f.settings.credentials.insert("PartnerPW".into(), SecretSource::Env("X".into()));
        assert_eq!(err_key(from_settings("acme", &f.settings).unwrap_err()), "accounts.acme.credentials.PartnerPW");
    }

    #[test]
    fn plain_http_only_for_loopback_or_with_allow_http() {
        let f = testing::account(Some("http://api.clienttoolbox.com"), &[]);
        let e = from_settings("acme", &f.settings).unwrap_err();
        assert_eq!(err_key(e), "accounts.acme.base_url");
        assert!(from_settings("acme", &testing::account(Some("http://127.0.0.1:8700"), &[]).settings).is_ok());
        let allowed = testing::account(Some("http://sandbox:8700"), &[("allow_http", "true")]);
        assert!(from_settings("acme", &allowed.settings).is_ok());
    }

    #[test]
    fn header_auth_needs_its_own_credential() {
        let mut f = testing::account(None, &[("auth", "api_access_key")]);
        f.settings.credentials.remove("api_access_key");
        let key = err_key(from_settings("acme", &f.settings).unwrap_err());
        assert_eq!(key, "accounts.acme.credentials.api_access_key");
    }

    #[test]
    fn user_id_may_come_from_credentials() {
        let mut f = testing::account(None, &[]);
        f.settings.settings.remove("user_id");
        let path = f.settings.credentials["user_password"].clone();
        f.settings.credentials.insert("user_id".into(), path);
        assert_eq!(from_settings("acme", &f.settings).unwrap().user_id, PASSWORD);
    }

    #[test]
    fn debug_shows_no_secret() {
        for auth in ["user_password", "api_access_key"] {
            let shown = format!("{:?}", parse(&[("auth", auth)]).unwrap());
            assert!(!shown.contains(PASSWORD) && !shown.contains(API_KEY), "{shown}");
        }
    }

    #[test]
    fn patterns_match_whole_words_case_insensitively() {
        let p = Patterns::parse("taken|already exists|pin").unwrap();
        assert!(p.matches("User name is TAKEN."));
        assert!(p.matches("User name Already Exists"));
        assert!(!p.matches("mistaken identity"));
        assert!(p.matches("Duplicate PIN"));
        assert!(!p.matches("spinning"));
        assert!(!p.matches("user_pin_code"));
        assert!(Patterns::parse("").is_err());
    }

    #[test]
    fn allow_lists_narrow_the_job_rules_only_when_set() {
        let open = parse(&[]).unwrap();
        let tight =
            parse(&[("roles", "A"), ("languages", "FR"), ("timezones", "70"), ("min_password_length", "20")]).unwrap();
        let u = user(serde_json::json!({}));
        assert!(open.check(&u).is_ok());
        let (field, message) = tight.check(&u).unwrap_err();
        assert_eq!(field, "user.user_role");
        assert!(message.contains("accounts.acme.settings.roles"), "{message}");
        let u = user(serde_json::json!({"user_role": "A"}));
        assert_eq!(tight.check(&u).unwrap_err().0, "user.language_selector");
        let u = user(serde_json::json!({"user_role": "A", "language_selector": "FR"}));
        assert_eq!(tight.check(&u).unwrap_err().0, "user.timezone_selector");
        let u = user(serde_json::json!({"user_role": "A", "language_selector": "FR", "timezone_selector": "70"}));
        let (field, message) = tight.check(&u).unwrap_err();
        assert_eq!(field, "user.user_new_password");
        assert!(!message.contains("S3cure!pass"));
        let u = user(serde_json::json!({"user_role": "A", "language_selector": null, "timezone_selector": null,
            "user_new_password": "a-very-long-password-indeed"}));
        assert!(tight.check(&u).is_ok(), "absent optional fields are not checked against allow-lists");
    }

    #[test]
    fn user_name_case_is_configurable() {
        let u = user(serde_json::json!({"user_name": "JDoe_Front"}));
        assert_eq!(parse(&[]).unwrap().wire_user_name(&u), "jdoe_front");
        assert_eq!(parse(&[("user_name_case", "preserve")]).unwrap().wire_user_name(&u), "JDoe_Front");
    }
}
