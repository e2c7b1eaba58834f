//! Pure builders of the ClientToolbox calls (`user_new`, `user_update`, `user_delete` and the user lookups) as small request values.
//!
//! Everything rides in an `application/x-www-form-urlencoded` POST body, credentials
//! included: the docs warn that GET puts them in server logs.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use super::account::{Account, Auth, LookupMethod};
use super::fields::{Changes, NewUser};

pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
/// The header that carries the caller's user API key (July-2025 docs).
pub const API_KEY_HEADER: &str = "api_access_key";

/// One form field or header value; secret ones are kept out of `Debug`.
#[derive(Clone)]
pub enum Value {
    Plain(String),
    Secret(SecretString),
}

impl Value {
    fn expose(&self) -> &str {
        match self {
            Value::Plain(s) => s,
            Value::Secret(s) => s.expose_secret(),
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Plain(s) => write!(f, "{s:?}"),
            Value::Secret(_) => f.write_str("\"***\""),
        }
    }
}

/// A request ready to send: always a form POST to `path` under the account's base URL.
#[derive(Clone, Debug)]
pub struct ApiRequest {
    pub path: String,
    pub headers: Vec<(&'static str, Value)>,
    pub form: Vec<(&'static str, Value)>,
}

impl ApiRequest {
    pub const METHOD: &'static str = "POST";

    /// The encoded body, secrets included: only for the wire.
    pub fn body(&self) -> String {
        let pairs: Vec<(&str, &str)> = self.form.iter().map(|(k, v)| (*k, v.expose())).collect();
        serde_urlencoded::to_string(pairs).expect("string pairs always encode")
    }

    /// Header values, secrets included: only for the wire.
    pub fn header_values(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.headers.iter().map(|(k, v)| (*k, v.expose()))
    }

    /// A form field's value, secret or not (tests and the adapter's scrubbing).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| *k == name).map(|(_, v)| v.expose())
    }

    /// Every secret value in the request, so answers that echo one can be scrubbed.
    pub fn secrets(&self) -> Vec<&str> {
        self.form
            .iter()
            .chain(&self.headers)
            .filter(|(_, v)| matches!(v, Value::Secret(_)))
            .map(|(_, v)| v.expose())
            .collect()
    }
}

fn plain(s: impl Into<String>) -> Value {
    Value::Plain(s.into())
}

/// `type`, the caller's credentials and the target account, in the order public clients send them.
fn base(account: &Account, kind: &str) -> ApiRequest {
    let mut form = vec![("type", plain(kind)), ("user_id", plain(&account.user_id))];
    let mut headers = Vec::new();
    match &account.auth {
        Auth::Password(secret) => form.push(("user_password", Value::Secret(secret.clone()))),
        Auth::Header(secret) => headers.push((API_KEY_HEADER, Value::Secret(secret.clone()))),
    }
    form.push(("account_id", plain(&account.account_id)));
    ApiRequest { path: account.path.clone(), headers, form }
}

fn finish(account: &Account, mut request: ApiRequest) -> ApiRequest {
    request.form.push(("output", plain(account.output.wire())));
    if let Some(v) = &account.api_version {
        request.form.push(("API", plain(v)));
    }
    request
}

/// `type=user_new`. Optional fields are left out rather than sent empty, so the vendor's own
/// defaults (account language and time zone) apply.
pub fn create(account: &Account, user: &NewUser) -> ApiRequest {
    let mut r = base(account, "user_new");
    r.form.push(("user_name", plain(account.wire_user_name(user))));
    r.form.push(("user_new_password", Value::Secret(SecretString::from(user.password.expose().to_owned()))));
    let optional = [
        ("user_first_name", user.first_name.clone()),
        ("user_last_name", user.last_name.clone()),
        ("user_custom1", user.custom1.clone()),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            r.form.push((k, plain(v)));
        }
    }
    if let Some(pin) = &user.pin {
        r.form.push(("user_PIN", Value::Secret(SecretString::from(pin.expose().to_owned()))));
    }
    if let Some(lang) = &user.language {
        r.form.push(("language_selector", plain(lang.as_str())));
    }
    if let Some(tz) = user.timezone {
        r.form.push(("timezone_selector", plain(tz.code().to_string())));
    }
    r.form.push(("user_role", plain(user.role.to_string())));
    r.form.push(("allowed_campaigns", plain(user.allowed_campaigns.to_wire())));
    finish(account, r)
}

/// `type=user_update` for `wire_user_name`: only the fields `changes` sets, so the vendor
/// keeps every other one as it is. The name itself cannot be renamed and only addresses the
/// user.
pub fn update(account: &Account, wire_user_name: &str, changes: &Changes) -> ApiRequest {
    let mut r = base(account, "user_update");
    r.form.push(("user_name", plain(wire_user_name)));
    let secret = |s: &str| Value::Secret(SecretString::from(s.to_owned()));
    if let Some(p) = &changes.password {
        r.form.push(("user_new_password", secret(p.expose())));
    }
    let texts = [
        ("user_first_name", &changes.first_name),
        ("user_last_name", &changes.last_name),
        ("user_custom1", &changes.custom1),
    ];
    for (k, v) in texts {
        if let Some(v) = v {
            r.form.push((k, plain(v)));
        }
    }
    if let Some(pin) = &changes.pin {
        r.form.push(("user_PIN", secret(pin.expose())));
    }
    if let Some(lang) = &changes.language {
        r.form.push(("language_selector", plain(lang.as_str())));
    }
    if let Some(tz) = changes.timezone {
        r.form.push(("timezone_selector", plain(tz.code().to_string())));
    }
    if let Some(role) = changes.role {
        r.form.push(("user_role", plain(role.to_string())));
    }
    if let Some(c) = &changes.allowed_campaigns {
        r.form.push(("allowed_campaigns", plain(c.to_wire())));
    }
    finish(account, r)
}

/// `type=user_delete` for `wire_user_name`: without `action` the vendor only marks the user
/// deleted (its old transactions keep their person); `action=permanent`, sent only when the
/// account sets `hard_delete`, really deletes it.
pub fn delete(account: &Account, wire_user_name: &str) -> ApiRequest {
    let mut r = base(account, "user_delete");
    r.form.push(("user_name", plain(wire_user_name)));
    if account.hard_delete {
        r.form.push(("action", plain("permanent")));
    }
    finish(account, r)
}

/// The configured existence check for `user_name`, or `None` when the account has none.
pub fn lookup(account: &Account, wire_user_name: &str) -> Option<ApiRequest> {
    match account.lookup {
        LookupMethod::UserInfo => {
            let mut r = base(account, "user_info");
            r.form.push(("user_name", plain(wire_user_name)));
            Some(finish(account, r))
        }
        LookupMethod::UsersList => Some(finish(account, base(account, "users_list"))),
        LookupMethod::None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::account::from_settings;
    use super::super::testing::{self, API_KEY, PASSWORD};
    use super::*;

    fn account(settings: &[(&str, &str)]) -> Account {
        from_settings("acme", &testing::account(None, settings).settings).unwrap()
    }

    fn example_user(overrides: serde_json::Value) -> NewUser {
        NewUser::parse(&testing::job("jdoe_front", overrides).user).unwrap()
    }

    #[test]
    fn create_golden_with_password_auth() {
        let r = create(&account(&[]), &example_user(serde_json::json!({})));
        assert_eq!(r.path, "/api.php");
        assert!(r.headers.is_empty());
        assert_eq!(
            r.body(),
            "type=user_new&user_id=provisioner&user_password=sandbox-password&account_id=acmerewards\
             &user_name=jdoe_front&user_new_password=S3cure%21pass&user_first_name=Jane&user_last_name=Doe\
             &user_custom1=Downtown+Store&user_PIN=4321&language_selector=EN&timezone_selector=68&user_role=K\
             &allowed_campaigns=all&output=XML"
        );
    }

    #[test]
    fn create_golden_with_header_auth_json_and_api_version() {
        let acc = account(&[("auth", "api_access_key"), ("output", "JSON"), ("api_version", "1.6")]);
        let user = example_user(serde_json::json!({"user_first_name": null, "user_last_name": null,
            "user_custom1": null, "user_PIN": null, "language_selector": null, "timezone_selector": null,
            "user_name": "JDoe_Front", "user_new_password": "p$ss w&rd=1", "user_role": "A",
            "allowed_campaigns": "12971184024723,0239471023412"}));
        let r = create(&acc, &user);
        assert_eq!(r.header_values().collect::<Vec<_>>(), vec![("api_access_key", API_KEY)]);
        assert_eq!(
            r.body(),
            "type=user_new&user_id=provisioner&account_id=acmerewards&user_name=jdoe_front\
             &user_new_password=p%24ss+w%26rd%3D1&user_role=A&allowed_campaigns=12971184024723%2C0239471023412\
             &output=JSON&API=1.6"
        );
        assert_eq!(r.field("user_password"), None, "the header replaces user_password");
    }

    #[test]
    fn preserve_keeps_the_user_name_spelling() {
        let acc = account(&[("user_name_case", "preserve")]);
        let r = create(&acc, &example_user(serde_json::json!({"user_name": "JDoe_Front"})));
        assert_eq!(r.field("user_name"), Some("JDoe_Front"));
    }

    #[test]
    fn lookup_golden() {
        let r = lookup(&account(&[]), "jdoe_front").unwrap();
        assert_eq!(
            r.body(),
            "type=user_info&user_id=provisioner&user_password=sandbox-password&account_id=acmerewards\
             &user_name=jdoe_front&output=XML"
        );
        let r = lookup(&account(&[("lookup", "users_list")]), "jdoe_front").unwrap();
        assert_eq!(
            r.body(),
            "type=users_list&user_id=provisioner&user_password=sandbox-password&account_id=acmerewards&output=XML"
        );
        assert!(lookup(&account(&[("lookup", "none")]), "jdoe_front").is_none());
    }

    #[test]
    fn debug_redacts_every_secret() {
        for auth in ["user_password", "api_access_key"] {
            let r = create(&account(&[("auth", auth)]), &example_user(serde_json::json!({})));
            let shown = format!("{r:?}");
            for secret in [PASSWORD, API_KEY, "S3cure!pass", "4321"] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
            assert!(shown.contains("jdoe_front") && shown.contains("***"));
            let secrets = r.secrets();
            assert!(secrets.contains(&"S3cure!pass") && secrets.contains(&"4321"), "{secrets:?}");
        }
    }

    fn changes(fields: serde_json::Value) -> Changes {
        Changes::parse(&testing::job_of("update_user", "JDoe", fields).user).unwrap()
    }

    #[test]
    fn update_golden_sends_only_the_given_fields() {
        let r = update(&account(&[]), "jdoe", &changes(serde_json::json!({"user_last_name": "Roe"})));
        assert_eq!(
            r.body(),
            "type=user_update&user_id=provisioner&user_password=sandbox-password&account_id=acmerewards\
             &user_name=jdoe&user_last_name=Roe&output=XML"
        );
        let all = changes(serde_json::json!({"user_new_password": "N3w pass", "user_first_name": "Jane",
            "user_last_name": "Doe", "user_custom1": "Back Office", "user_PIN": "0042", "language_selector": "FR",
            "timezone_selector": 70, "user_role": "A", "allowed_campaigns": "none"}));
        let acc = account(&[("auth", "api_access_key"), ("output", "JSON"), ("api_version", "1.6")]);
        let r = update(&acc, "jdoe", &all);
        assert_eq!(
            r.body(),
            "type=user_update&user_id=provisioner&account_id=acmerewards&user_name=jdoe&user_new_password=N3w+pass\
             &user_first_name=Jane&user_last_name=Doe&user_custom1=Back+Office&user_PIN=0042&language_selector=FR\
             &timezone_selector=70&user_role=A&allowed_campaigns=none&output=JSON&API=1.6"
        );
        let shown = format!("{r:?}");
        assert!(!shown.contains("N3w pass") && !shown.contains("0042") && !shown.contains(API_KEY), "{shown}");
        assert!(r.secrets().contains(&"N3w pass") && r.secrets().contains(&"0042"));
    }

    #[test]
    fn delete_golden_soft_by_default_and_permanent_when_allowed() {
        assert_eq!(
            delete(&account(&[]), "jdoe").body(),
            "type=user_delete&user_id=provisioner&user_password=sandbox-password&account_id=acmerewards\
             &user_name=jdoe&output=XML"
        );
        assert_eq!(
            delete(&account(&[("hard_delete", "true")]), "jdoe").body(),
            "type=user_delete&user_id=provisioner&user_password=sandbox-password&account_id=acmerewards\
             &user_name=jdoe&action=permanent&output=XML"
        );
    }
}
