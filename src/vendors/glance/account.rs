//! One Glance account's typed configuration: the admin login, the credentials, the group and
//! a switch, with a documented default, for every behaviour the vendor docs leave unconfirmed.

use std::time::Duration;

use secrecy::SecretString;

use super::fields::{
    GlanceAddress, Rules, DEFAULT_ADDRESS_SUFFIX, USER_PW_MAX, USER_ROLE_MAX_NEWER_DOCS, USER_ROLE_MAX_SAFE,
};
use super::response::Markers;
use crate::config::{AccountSettings, ConfigError};

pub const DEFAULT_BASE_URL: &str = "https://www.glance.net";
/// Glance refuses Login Keys that expire more than about a day ahead.
pub const LOGIN_KEY_MAX_TTL: Duration = Duration::from_secs(24 * 3600);
pub const LOGIN_KEY_DEFAULT_TTL: Duration = Duration::from_secs(600);

/// Every settings key this adapter reads; any other key is a typo and refused.
pub const SETTINGS_KEYS: &[&str] = &[
    "PartnerLogin",
    "PartnerID",
    "allow_http",
    "login_key_user",
    "admin_partner_user_id",
    "login_key_ttl",
    "address_suffixes",
    "user_role_max_length",
    "user_pw_min_length",
    "failure_elements",
    "failure_status_names",
    "failure_status_values",
    "failure_message_names",
    "failure_code_names",
    "success_markers",
    "lookup_user_element",
    "login_key_error_patterns",
    "auth_error_patterns",
    "role_error_patterns",
    "duplicate_error_patterns",
    "audio_error_patterns",
    "audio_secret_patterns",
    "audio_failure",
    "hard_delete",
    "lookup_suspended_elements",
    "lookup_active_elements",
    "not_found_error_patterns",
];
pub const CREDENTIAL_KEYS: &[&str] = &["PartnerPW", "api_key"];

/// Which `partneruserid` goes into the Login Key message (unconfirmed in the docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginKeySubject {
    /// The PartnerUserID the admin account itself carries (the docs' best guess; default).
    Admin(String),
    /// The PartnerUserID of the user being created or looked up.
    NewUser,
    /// An empty string.
    Empty,
}

/// How calls authenticate. Both secrets are redacted by `SecretString`'s `Debug`.
#[derive(Clone, Debug)]
pub enum Auth {
    /// `PartnerPW`: the admin's password.
    Password(SecretString),
    /// `PartnerAuth`: a Login Key signed with the group's API key, minted per call.
    LoginKey { api_key: SecretString, subject: LoginKeySubject, ttl: Duration },
}

/// What to do when a create that asked for audio fails for an audio reason (unconfirmed
/// whether the user was still created).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioFailure {
    /// Look the user up: present → created without audio data; absent → rejected. Default.
    Lookup,
    /// Always rejected.
    Reject,
}

#[derive(Clone, Debug)]
pub struct Account {
    pub(super) base_url: String,
    pub(super) login: GlanceAddress,
    pub(super) partner_id: Option<u64>,
    pub(super) auth: Auth,
    pub(super) rules: Rules,
    pub(super) markers: Markers,
    pub(super) audio_failure: AudioFailure,
    /// `DeleteUser` is permanent: a delete_user job is refused unless the account allows it.
    pub(super) hard_delete: bool,
}

impl Account {
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    pub fn markers(&self) -> &Markers {
        &self.markers
    }

    pub fn allows_hard_delete(&self) -> bool {
        self.hard_delete
    }

    pub fn uses_login_key(&self) -> bool {
        matches!(self.auth, Auth::LoginKey { .. })
    }
}

fn invalid(key: String, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, message: message.into() }
}

fn list(raw: &str) -> Vec<String> {
    raw.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect()
}

/// Parses an account's settings; every error names the key to change.
pub fn from_settings(name: &str, a: &AccountSettings) -> Result<Account, ConfigError> {
    let key = |k: &str| format!("accounts.{name}.settings.{k}");
    let cred_key = |k: &str| format!("accounts.{name}.credentials.{k}");
    let get = |k: &str| a.settings.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());

    if let Some(unknown) = a.settings.keys().find(|k| !SETTINGS_KEYS.contains(&k.as_str())) {
        return Err(invalid(key(unknown), format!("unknown Glance setting; known: {}", SETTINGS_KEYS.join(", "))));
    }
    if let Some(unknown) = a.credentials.keys().find(|k| !CREDENTIAL_KEYS.contains(&k.as_str())) {
        return Err(invalid(cred_key(unknown), "unknown Glance credential; expected PartnerPW or api_key"));
    }

    let flag = |k: &str| match get(k) {
        None => Ok(false),
        Some(v) => parse_bool(v).ok_or_else(|| invalid(key(k), "must be true or false")),
    };
    let allow_http = flag("allow_http")?;
    let hard_delete = flag("hard_delete")?;
    let base_url = parse_base_url(a.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL), allow_http)
        .map_err(|m| invalid(format!("accounts.{name}.base_url"), m))?;

    let rules = rules_from_settings(name, a)?;

    let login_raw = get("PartnerLogin").ok_or_else(|| {
        invalid(key("PartnerLogin"), "is required: the Glance Address of an active admin user of the group")
    })?;
    let login = GlanceAddress::parse(login_raw, &rules.address_suffixes)
        .map_err(|m| invalid(key("PartnerLogin"), format!("{m} (a Glance Address, not an e-mail address)")))?;
    let partner_id = match get("PartnerID") {
        None => None,
        Some(v) => {
            Some(v.parse::<u64>().map_err(|_| invalid(key("PartnerID"), "must be the numeric Glance group id"))?)
        }
    };

    let auth = match (a.credentials.get("PartnerPW"), a.credentials.get("api_key")) {
        (Some(_), Some(_)) => {
            return Err(invalid(cred_key("api_key"), "set either PartnerPW or api_key (for PartnerAuth), not both"))
        }
        (None, None) => {
            return Err(invalid(
                cred_key("PartnerPW"),
                "is required (or api_key, to sign PartnerAuth Login Keys instead of sending a password)",
            ))
        }
        (Some(pw), None) => Auth::Password(pw.resolve(&cred_key("PartnerPW"))?),
        (None, Some(k)) => {
            let api_key = k.resolve(&cred_key("api_key"))?;
            if partner_id.is_none() {
                return Err(invalid(key("PartnerID"), "is required with api_key: the Login Key signs the group id"));
            }
            let subject = match get("login_key_user").unwrap_or("admin") {
                "admin" => Auth::admin_subject(get("admin_partner_user_id")).ok_or_else(|| {
                    invalid(
                        key("admin_partner_user_id"),
                        "is required when login_key_user is admin: the PartnerUserID of the PartnerLogin account",
                    )
                })?,
                "new_user" => LoginKeySubject::NewUser,
                "none" => LoginKeySubject::Empty,
                other => {
                    return Err(invalid(
                        key("login_key_user"),
                        format!("unknown value {other:?}; expected admin, new_user or none"),
                    ))
                }
            };
            let ttl = match get("login_key_ttl") {
                None => LOGIN_KEY_DEFAULT_TTL,
                Some(v) => humantime::parse_duration(v).map_err(|e| invalid(key("login_key_ttl"), e.to_string()))?,
            };
            if ttl.is_zero() || ttl > LOGIN_KEY_MAX_TTL {
                return Err(invalid(key("login_key_ttl"), "must be longer than 0s and at most 24h"));
            }
            Auth::LoginKey { api_key, subject, ttl }
        }
    };

    let mut markers = Markers::default();
    for (k, slot, may_be_empty) in [
        ("failure_elements", &mut markers.failure_elements, false),
        ("failure_status_names", &mut markers.status_names, false),
        ("failure_status_values", &mut markers.status_failure_values, false),
        ("failure_message_names", &mut markers.message_names, false),
        ("failure_code_names", &mut markers.code_names, false),
        ("success_markers", &mut markers.success_markers, true),
        ("login_key_error_patterns", &mut markers.login_key_patterns, false),
        ("auth_error_patterns", &mut markers.auth_patterns, false),
        ("role_error_patterns", &mut markers.role_patterns, false),
        ("duplicate_error_patterns", &mut markers.duplicate_patterns, false),
        ("audio_error_patterns", &mut markers.audio_patterns, false),
        ("audio_secret_patterns", &mut markers.audio_secret_patterns, false),
        ("not_found_error_patterns", &mut markers.not_found_patterns, false),
        // Empty: records are not read for the state, so every suspend and restore is sent.
        ("lookup_suspended_elements", &mut markers.suspended_names, true),
        ("lookup_active_elements", &mut markers.active_names, true),
    ] {
        if let Some(raw) = a.settings.get(k) {
            let values = list(raw);
            if values.is_empty() && !may_be_empty {
                return Err(invalid(key(k), "must list at least one comma-separated value"));
            }
            *slot = values;
        }
    }
    if let Some(v) = get("lookup_user_element") {
        markers.lookup_user_element = v.to_ascii_lowercase();
    }
    let audio_failure = match get("audio_failure").unwrap_or("lookup") {
        "lookup" => AudioFailure::Lookup,
        "reject" => AudioFailure::Reject,
        other => {
            return Err(invalid(key("audio_failure"), format!("unknown value {other:?}; expected lookup or reject")))
        }
    };

    Ok(Account { base_url, login, partner_id, auth, rules, markers, audio_failure, hard_delete })
}

/// The account's field rules (`address_suffixes`, `user_role_max_length`,
/// `user_pw_min_length`), read without touching its credentials so `validate --config`
/// can apply them where the secrets are absent.
pub fn rules_from_settings(name: &str, a: &AccountSettings) -> Result<Rules, ConfigError> {
    let key = |k: &str| format!("accounts.{name}.settings.{k}");
    let get = |k: &str| a.settings.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let address_suffixes = match get("address_suffixes") {
        None => vec![DEFAULT_ADDRESS_SUFFIX.to_owned()],
        Some(v) => {
            let suffixes = list(v);
            if suffixes.is_empty() {
                return Err(invalid(key("address_suffixes"), "must list at least one suffix, e.g. .glance.net"));
            }
            for s in &suffixes {
                let ok = s.starts_with('.')
                    && s.len() > 1
                    && !s.contains("..")
                    && !s.ends_with(['.', '-'])
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
                if !ok {
                    return Err(invalid(
                        key("address_suffixes"),
                        format!("{s:?} is not a domain suffix like .glance.net (leading '.', letters, digits, '-')"),
                    ));
                }
            }
            suffixes
        }
    };
    // Tightening below the vendor's own limits is the operator's call; relaxing past the
    // newest documented limit is not allowed.
    let user_role_max = number(get("user_role_max_length"), USER_ROLE_MAX_SAFE, 1..=USER_ROLE_MAX_NEWER_DOCS)
        .map_err(|m| invalid(key("user_role_max_length"), m))?;
    let user_pw_min =
        number(get("user_pw_min_length"), 0, 0..=USER_PW_MAX).map_err(|m| invalid(key("user_pw_min_length"), m))?;
    Ok(Rules { address_suffixes, user_role_max, user_pw_min })
}

impl Auth {
    fn admin_subject(id: Option<&str>) -> Option<LoginKeySubject> {
        id.map(|s| LoginKeySubject::Admin(s.to_owned()))
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

fn number(raw: Option<&str>, default: usize, range: std::ops::RangeInclusive<usize>) -> Result<usize, String> {
    let Some(raw) = raw else { return Ok(default) };
    match raw.parse::<usize>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!("must be a whole number from {} to {}", range.start(), range.end())),
    }
}

/// Glance is HTTPS only. Plain HTTP is allowed for loopback (the sandbox in tests) or when
/// `allow_http` says so (a sandbox on another host in a compose file).
fn parse_base_url(raw: &str, allow_http: bool) -> Result<String, String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/PAPI").or_else(|| trimmed.strip_suffix("/papi")).unwrap_or(trimmed);
    let url = reqwest::Url::parse(trimmed).map_err(|e| format!("is not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; put them under credentials".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    crate::vendors::http::require_https(&url, allow_http)?;
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::SecretSource;
    use crate::contract::VendorKey;

    fn secret_file(dir: &tempfile::TempDir, name: &str, value: &str) -> SecretSource {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{value}\n")).unwrap();
        SecretSource::File(path)
    }

    fn settings(pairs: &[(&str, &str)], creds: &[(&str, SecretSource)]) -> AccountSettings {
        AccountSettings {
            vendor: VendorKey::Glance,
            base_url: None,
            settings: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
            credentials: creds.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
            rate: None,
            concurrency: None,
            policy: Default::default(),
        }
    }

    fn err(a: &AccountSettings) -> (String, String) {
        match from_settings("acme", a).unwrap_err() {
            ConfigError::Invalid { key, message } => (key, message),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_password_account_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let a = settings(
            &[("PartnerLogin", "Provisioner.Acme.glance.net"), ("PartnerID", "40123")],
            &[("PartnerPW", secret_file(&dir, "pw", "hunter2-pw"))],
        );
        let acc = from_settings("acme", &a).unwrap();
        assert_eq!(acc.base_url(), DEFAULT_BASE_URL);
        assert_eq!(acc.login.as_str(), "provisioner.acme.glance.net");
        assert_eq!(acc.partner_id, Some(40123));
        assert_eq!(acc.rules, Rules::default());
        assert_eq!(acc.audio_failure, AudioFailure::Lookup);
        assert!(!acc.uses_login_key());
        assert!(!acc.allows_hard_delete(), "DeleteUser is permanent: refused unless allowed");
        assert_eq!(acc.markers.suspended_names, ["usersuspended", "suspended"]);
        assert_eq!(acc.markers.active_names, ["useractive"]);
        let shown = format!("{acc:?}");
        assert!(!shown.contains("hunter2-pw"), "{shown}");
    }

    #[test]
    fn a_login_key_account_needs_the_group_and_the_admin_id() {
        let dir = tempfile::tempdir().unwrap();
        let key = secret_file(&dir, "k", "example-api-key");
        let a = settings(&[("PartnerLogin", "p.acme.glance.net")], &[("api_key", key.clone())]);
        assert_eq!(err(&a).0, "accounts.acme.settings.PartnerID");
        let a = settings(&[("PartnerLogin", "p.acme.glance.net"), ("PartnerID", "1")], &[("api_key", key.clone())]);
        assert_eq!(err(&a).0, "accounts.acme.settings.admin_partner_user_id");
        let a = settings(
            &[("PartnerLogin", "p.acme.glance.net"), ("PartnerID", "1"), ("login_key_user", "new_user")],
            &[("api_key", key.clone())],
        );
        let acc = from_settings("acme", &a).unwrap();
        assert!(acc.uses_login_key());
        assert!(!format!("{acc:?}").contains("example-api-key"));
        let a = settings(
            &[("PartnerLogin", "p.acme.glance.net"), ("PartnerID", "1"), ("login_key_user", "root")],
            &[("api_key", key.clone())],
        );
        assert_eq!(err(&a).0, "accounts.acme.settings.login_key_user");
        let a = settings(
            &[
                ("PartnerLogin", "p.acme.glance.net"),
                ("PartnerID", "1"),
                ("admin_partner_user_id", "ADMIN-1"),
                ("login_key_ttl", "2d"),
            ],
            &[("api_key", key)],
        );
        assert_eq!(err(&a).0, "accounts.acme.settings.login_key_ttl");
    }

    #[test]
    fn credentials_are_exactly_one_of_password_or_api_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = settings(&[("PartnerLogin", "p.acme.glance.net")], &[]);
        assert_eq!(err(&a).0, "accounts.acme.credentials.PartnerPW");
        let a = settings(
            &[("PartnerLogin", "p.acme.glance.net"), ("PartnerID", "1")],
            &[("PartnerPW", secret_file(&dir, "a", "x")), ("api_key", secret_file(&dir, "b", "y"))],
        );
        assert_eq!(err(&a).0, "accounts.acme.credentials.api_key");
        let a = settings(
            &[("PartnerLogin", "p.acme.glance.net")],
            &[("PartnerPW", SecretSource::Env("PROVISIONER_GLANCE_TEST_UNSET".into()))],
        );
        assert_eq!(err(&a).0, "accounts.acme.credentials.PartnerPW");
        let a = settings(&[("PartnerLogin", "p.acme.glance.net")], &[("password", secret_file(&dir, "c", "x"))]);
        assert_eq!(err(&a).0, "accounts.acme.credentials.password");
    }

    #[test]
    fn every_setting_error_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let pw = || [("PartnerPW", secret_file(&dir, "pw", "x"))];
        for (k, v) in [
            ("PartnerLogin", "admin@acme.example"),
            ("PartnerID", "acme"),
            ("address_suffixes", "glance.net"),
            ("address_suffixes", " , "),
            ("user_role_max_length", "0"),
            ("user_role_max_length", "71"),
            ("user_pw_min_length", "50"),
            ("failure_elements", ""),
            ("audio_failure", "ignore"),
            ("allow_http", "maybe"),
            ("hard_delete", "sometimes"),
            ("not_found_error_patterns", " "),
            ("no_such_setting", "1"),
        ] {
            let mut pairs = vec![("PartnerLogin", "p.acme.glance.net"), (k, v)];
            if k == "PartnerLogin" {
                pairs.remove(0);
            }
            let a = settings(&pairs, &pw());
            assert_eq!(err(&a).0, format!("accounts.acme.settings.{k}"), "{k}={v}");
        }
        let a = settings(&[], &pw());
        assert_eq!(err(&a).0, "accounts.acme.settings.PartnerLogin");
    }

    #[test]
    fn unconfirmed_switches_change_the_rules() {
        let dir = tempfile::tempdir().unwrap();
        let a = settings(
            &[
                ("PartnerLogin", "p.partner.com"),
                ("address_suffixes", ".glance.net, .Partner.com"),
                ("user_role_max_length", "70"),
                ("user_pw_min_length", "0"),
                ("success_markers", ""),
                ("audio_failure", "reject"),
                ("failure_elements", "Problem"),
                ("hard_delete", "true"),
                ("lookup_suspended_elements", "IsDisabled"),
                ("lookup_active_elements", ""),
                ("not_found_error_patterns", "Nobody by that id"),
            ],
            &[("PartnerPW", secret_file(&dir, "pw", "x"))],
        );
        let acc = from_settings("acme", &a).unwrap();
        assert_eq!(acc.rules.address_suffixes, [".glance.net", ".partner.com"]);
        assert_eq!((acc.rules.user_role_max, acc.rules.user_pw_min), (70, 0));
        assert_eq!(acc.audio_failure, AudioFailure::Reject);
        assert_eq!(acc.markers.failure_elements, ["problem"]);
        assert!(acc.allows_hard_delete());
        assert_eq!(acc.markers.suspended_names, ["isdisabled"]);
        assert!(acc.markers.active_names.is_empty());
        assert_eq!(acc.markers.not_found_patterns, ["nobody by that id"]);
    }

    #[test]
    fn base_url_is_https_unless_loopback_or_allowed() {
        assert_eq!(parse_base_url("https://www.glance.net/PAPI/", false).unwrap(), "https://www.glance.net");
        assert_eq!(parse_base_url("http://127.0.0.1:8080", false).unwrap(), "http://127.0.0.1:8080");
        assert!(parse_base_url("http://www.glance.net", false).unwrap_err().contains("https"));
        assert!(parse_base_url("http://sandbox:8080", true).is_ok());
        assert!(parse_base_url("https://u:p@www.glance.net", false).is_err());
        assert!(parse_base_url("ftp://x", true).is_err());
        let dir = tempfile::tempdir().unwrap();
        let mut a = settings(&[("PartnerLogin", "p.acme.glance.net")], &[("PartnerPW", secret_file(&dir, "pw", "x"))]);
        a.base_url = Some("http://glance.example".into());
        assert_eq!(err(&a).0, "accounts.acme.base_url");
    }
}
