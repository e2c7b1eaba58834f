//! One NetSapiens account's typed configuration: where the API lives, how to authenticate, and the switches for every behaviour the vendor docs leave unconfirmed.

use std::time::Duration;

use secrecy::SecretString;

use super::fields::{Changes, Domain, EmailField};
use crate::config::{AccountSettings, ConfigError};
use crate::vendors::http;

/// Every `settings` key this adapter reads. Anything else is refused, so a typo in a switch
/// never silently falls back to its default.
pub const SETTINGS_KEYS: &[&str] = &[
    "domain",
    "synchronous",
    "email_field",
    "token_encoding",
    "token_refresh_margin",
    "domain_not_found",
    "log_tag",
    "allow_http",
    "hard_delete",
    "suspend",
    "restore",
];

/// Every `credentials` key this adapter reads.
pub const CREDENTIAL_KEYS: &[&str] = &["api_key", "client_id", "client_secret", "username", "password"];

const OAUTH_KEYS: [&str; 4] = ["client_id", "client_secret", "username", "password"];

/// How requests are authorised. Both end up as `Authorization: Bearer …`.
#[derive(Clone, Debug)]
pub enum Auth {
    /// A static API key (Admin UI "API Keys"): the key is the bearer token, no expiry.
    ApiKey(SecretString),
    /// An OAuth2 password grant at `POST /tokens`, refreshed before the token expires.
    OAuth(OAuthClient),
}

/// The password-grant credentials. All four are secrets: `client_id` is issued privately
/// by the platform operator, and `username` names an account with provisioning rights.
#[derive(Clone, Debug)]
pub struct OAuthClient {
    pub client_id: SecretString,
    pub client_secret: SecretString,
    pub username: SecretString,
    pub password: SecretString,
}

/// The body encoding of the token call. The spec shows JSON; a third-party note says form
/// encoding also works (unconfirmed), as it does for the v1 token endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenEncoding {
    #[default]
    Json,
    Form,
}

/// What a `404 Domain … does not exist` means for this account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DomainNotFound {
    /// The domain should exist: a configuration error, not retried.
    #[default]
    Auth,
    /// The domain is created by an earlier provisioning step and may not exist yet: retried.
    Transient,
}

/// A parsed NetSapiens account. `Debug` is safe: every secret is a [`SecretString`].
#[derive(Clone, Debug)]
pub struct Account {
    pub name: String,
    /// `https://{server}/ns-api/v2`, without a trailing slash; request paths are appended.
    pub base_url: String,
    /// The tenant users are created in, unless a job names its own `domain`.
    pub domain: Option<Domain>,
    pub auth: Auth,
    /// Send `"synchronous": "yes"` (200 with the created user) rather than `"no"` (202).
    pub synchronous: bool,
    /// The wire name the e-mail field is sent under.
    pub email_field: EmailField,
    pub token_encoding: TokenEncoding,
    /// A cached OAuth token is replaced this long before it expires.
    pub token_refresh_margin: Duration,
    pub domain_not_found: DomainNotFound,
    /// Sent as `X-NetSapiens-Log` to switch on the platform's on-demand request logging.
    pub log_tag: Option<String>,
    /// `DELETE /domains/{domain}/users/{user}` is permanent: sent only when this is set.
    pub hard_delete: bool,
    /// NetSapiens has no suspend: the fields a `suspend_user` job sets, when the account
    /// says (e.g. `{"user-scope": "No Portal"}`). Unset: such jobs are refused.
    pub suspend: Option<Changes>,
    /// The fields a `restore_user` job sets (e.g. `{"user-scope": "Basic User"}`).
    pub restore: Option<Changes>,
}

impl Account {
    pub const DEFAULT_TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(60);
}

/// Reads an account's settings, naming the exact key for every problem.
pub fn from_settings(name: &str, a: &AccountSettings) -> Result<Account, ConfigError> {
    let setting_key = |k: &str| format!("accounts.{name}.settings.{k}");
    let credential_key = |k: &str| format!("accounts.{name}.credentials.{k}");
    let invalid = |key: String, message: String| ConfigError::Invalid { key, message };

    if let Some(k) = a.settings.keys().find(|k| !SETTINGS_KEYS.contains(&k.as_str())) {
        return Err(invalid(
            setting_key(k),
            format!("unknown NetSapiens setting; known: {}", SETTINGS_KEYS.join(", ")),
        ));
    }
    if let Some(k) = a.credentials.keys().find(|k| !CREDENTIAL_KEYS.contains(&k.as_str())) {
        return Err(invalid(
            credential_key(k),
            format!("unknown NetSapiens credential; known: {}", CREDENTIAL_KEYS.join(", ")),
        ));
    }

    let allow_http =
        http::allow_http(&a.settings).map_err(|m| invalid(format!("accounts.{name}.settings.allow_http"), m))?;
    let base_url = parse_base_url(a.base_url.as_deref(), allow_http)
        .map_err(|m| invalid(format!("accounts.{name}.base_url"), m))?;

    let get = |k: &str| a.settings.get(k).map(String::as_str);
    let domain = get("domain").map(Domain::parse).transpose().map_err(|m| invalid(setting_key("domain"), m))?;
    let synchronous = match get("synchronous") {
        None | Some("yes") => true,
        Some("no") => false,
        Some(_) => {
            return Err(invalid(setting_key("synchronous"), "must be \"yes\" or \"no\" (default \"yes\")".into()))
        }
    };
    let email_field = match get("email_field") {
        None => EmailField::default(),
        Some(v) => EmailField::parse(v).ok_or_else(|| {
            invalid(setting_key("email_field"), "must be \"email\" or \"email-address\" (default \"email\")".into())
        })?,
    };
    let token_encoding = match get("token_encoding") {
        None | Some("json") => TokenEncoding::Json,
        Some("form") => TokenEncoding::Form,
        Some(_) => {
            return Err(invalid(
                setting_key("token_encoding"),
                "must be \"json\" or \"form\" (default \"json\")".into(),
            ))
        }
    };
    let token_refresh_margin = match get("token_refresh_margin") {
        None => Account::DEFAULT_TOKEN_REFRESH_MARGIN,
        Some(v) => humantime::parse_duration(v).map_err(|e| {
            invalid(setting_key("token_refresh_margin"), format!("must be a duration like \"60s\": {e}"))
        })?,
    };
    let domain_not_found = match get("domain_not_found") {
        None | Some("auth") => DomainNotFound::Auth,
        Some("transient") => DomainNotFound::Transient,
        Some(_) => {
            return Err(invalid(
                setting_key("domain_not_found"),
                "must be \"auth\" (a config error) or \"transient\" (retry: an earlier step creates it)".into(),
            ))
        }
    };
    let log_tag = match get("log_tag") {
        None => None,
        Some(v) if !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()) => Some(v.to_owned()),
        Some(_) => {
            return Err(invalid(setting_key("log_tag"), "must be 1 to 64 visible ASCII characters".into()));
        }
    };

    // Spelled as `allow_http` is: true/yes/1 or false/no/0.
    let hard_delete = match get("hard_delete").map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "no" | "0") => false,
        Some("true" | "yes" | "1") => true,
        Some(_) => {
            return Err(invalid(
                setting_key("hard_delete"),
                "must be \"true\" (delete_user jobs delete for good) or \"false\" (they are refused; the default)"
                    .into(),
            ))
        }
    };
    let changes = |k: &str| get(k).map(Changes::from_setting).transpose().map_err(|m| invalid(setting_key(k), m));
    let suspend = changes("suspend")?;
    let restore = changes("restore")?;

    let resolve = |k: &str| a.credentials.get(k).map(|s| s.resolve(&credential_key(k))).transpose();
    let api_key = resolve("api_key")?;
    let present: Vec<&str> = OAUTH_KEYS.iter().copied().filter(|k| a.credentials.contains_key(*k)).collect();
    let auth = match (api_key, present.len()) {
        (Some(key), 0) => Auth::ApiKey(key),
        (Some(_), _) => {
            return Err(invalid(
                credential_key("api_key"),
                format!("give either api_key or the OAuth client ({}), not both", OAUTH_KEYS.join(", ")),
            ))
        }
        (None, 0) => {
            return Err(invalid(
                credential_key("api_key"),
                format!("is required, unless the OAuth client is configured ({})", OAUTH_KEYS.join(", ")),
            ))
        }
        (None, _) => {
            if let Some(missing) = OAUTH_KEYS.iter().find(|k| !present.contains(k)) {
                return Err(invalid(
                    credential_key(missing),
                    format!("is required for the OAuth password grant ({})", OAUTH_KEYS.join(", ")),
                ));
            }
            let need = |k: &str| resolve(k).map(|v| v.expect("checked present above"));
            Auth::OAuth(OAuthClient {
                client_id: need("client_id")?,
                client_secret: need("client_secret")?,
                username: need("username")?,
                password: need("password")?,
            })
        }
    };

    Ok(Account {
        name: name.to_owned(),
        base_url,
        domain,
        auth,
        synchronous,
        email_field,
        token_encoding,
        token_refresh_margin,
        domain_not_found,
        log_tag,
        hard_delete,
        suspend,
        restore,
    })
}

fn parse_base_url(raw: Option<&str>, allow_http: bool) -> Result<String, String> {
    let raw = raw.ok_or("is required: the provider's API v2 root, e.g. https://pbx.example.com/ns-api/v2")?;
    let url = reqwest::Url::parse(raw).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http(s) URL with a host, e.g. https://pbx.example.com/ns-api/v2".into());
    }
    http::require_https(&url, allow_http)?;
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        // Credentials belong in `credentials`, where they are read from secrets.
        return Err("must not carry a query, fragment or user info".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use secrecy::ExposeSecret;

    use super::*;
    use crate::config::SecretSource;
    use crate::contract::VendorKey;

    /// An account whose credentials come from files in a temp dir kept alive by the caller.
    pub(crate) fn settings(
        dir: &tempfile::TempDir,
        base_url: &str,
        settings: &[(&str, &str)],
        credentials: &[(&str, &str)],
    ) -> AccountSettings {
        let credentials = credentials
            .iter()
            .map(|(k, v)| {
                let path = dir.path().join(k);
                std::fs::write(&path, format!("{v}\n")).unwrap();
                ((*k).to_owned(), SecretSource::File(path))
            })
            .collect();
        AccountSettings {
            vendor: VendorKey::Netsapiens,
            base_url: Some(base_url.to_owned()),
            settings: settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            credentials,
            rate: None,
            concurrency: None,
            policy: Default::default(),
        }
    }

    fn key_of(err: ConfigError) -> String {
        match err {
            ConfigError::Invalid { key, .. } => key,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn defaults_with_an_api_key() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(&dir, "https://pbx.example.com/ns-api/v2/", &[], &[("api_key", "nsd_sekrit")]);
        let a = from_settings("acme", &s).unwrap();
        assert_eq!(a.base_url, "https://pbx.example.com/ns-api/v2");
        assert_eq!(a.domain, None);
        assert!(a.synchronous);
        assert_eq!(a.email_field, EmailField::Email);
        assert_eq!(a.token_encoding, TokenEncoding::Json);
        assert_eq!(a.token_refresh_margin, Duration::from_secs(60));
        assert_eq!(a.domain_not_found, DomainNotFound::Auth);
        assert_eq!(a.log_tag, None);
        assert!(!a.hard_delete, "a permanent delete is never the default");
        assert_eq!((a.suspend.as_ref(), a.restore.as_ref()), (None, None));
        match &a.auth {
            Auth::ApiKey(k) => assert_eq!(k.expose_secret(), "nsd_sekrit"),
            other => panic!("{other:?}"),
        }
        assert!(!format!("{a:?}").contains("nsd_sekrit"));
    }

    #[test]
    fn every_switch_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(
            &dir,
            "http://127.0.0.1:8080/ns-api/v2",
            &[
                ("domain", "acme.example"),
                ("synchronous", "no"),
                ("email_field", "email-address"),
                ("token_encoding", "form"),
                ("token_refresh_margin", "5m"),
                ("domain_not_found", "transient"),
                ("log_tag", "provisioner-debug"),
                ("hard_delete", "true"),
                ("suspend", r#"{"user-scope": "No Portal"}"#),
                ("restore", r#"{"user-scope": "Basic User", "directory-name-visible-in-list-enabled": "yes"}"#),
            ],
            &[("client_id", "cid"), ("client_secret", "csecret"), ("username", "admin@acme"), ("password", "pw-1")],
        );
        let a = from_settings("acme", &s).unwrap();
        assert_eq!(a.domain.as_ref().map(Domain::as_str), Some("acme.example"));
        assert!(!a.synchronous);
        assert_eq!(a.email_field, EmailField::EmailAddress);
        assert_eq!(a.token_encoding, TokenEncoding::Form);
        assert_eq!(a.token_refresh_margin, Duration::from_secs(300));
        assert_eq!(a.domain_not_found, DomainNotFound::Transient);
        assert_eq!(a.log_tag.as_deref(), Some("provisioner-debug"));
        assert!(a.hard_delete);
        let names = |c: &Option<Changes>| c.as_ref().unwrap().iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(names(&a.suspend), ["user-scope"]);
        assert_eq!(names(&a.restore), ["directory-name-visible-in-list-enabled", "user-scope"]);
        assert!(matches!(a.auth, Auth::OAuth(_)));
        let shown = format!("{a:?}");
        for secret in ["csecret", "pw-1", "admin@acme"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let base = "https://pbx.example.com/ns-api/v2";
        const KEY: &[(&str, &str)] = &[("api_key", "k")];
        let key = KEY;
        type Pairs = &'static [(&'static str, &'static str)];
        let cases: &[(Pairs, Pairs, &str)] = &[
            (&[("domian", "x")], key, "accounts.a.settings.domian"),
            (&[("domain", "~")], key, "accounts.a.settings.domain"),
            (&[("synchronous", "true")], key, "accounts.a.settings.synchronous"),
            (&[("email_field", "mail")], key, "accounts.a.settings.email_field"),
            (&[("token_encoding", "xml")], key, "accounts.a.settings.token_encoding"),
            (&[("token_refresh_margin", "soon")], key, "accounts.a.settings.token_refresh_margin"),
            (&[("domain_not_found", "retry")], key, "accounts.a.settings.domain_not_found"),
            (&[("log_tag", "has space")], key, "accounts.a.settings.log_tag"),
            (&[("hard_delete", "always")], key, "accounts.a.settings.hard_delete"),
            (&[("suspend", "user-scope=No Portal")], key, "accounts.a.settings.suspend"),
            (&[("suspend", r#"{"user-scope": "Nobody"}"#)], key, "accounts.a.settings.suspend"),
            (&[("restore", r#"{"voicemail-login-pin": "1234"}"#)], key, "accounts.a.settings.restore"),
            (&[("restore", "{}")], key, "accounts.a.settings.restore"),
            (&[], &[], "accounts.a.credentials.api_key"),
            (&[], &[("api_key", "k"), ("client_id", "c")], "accounts.a.credentials.api_key"),
            (&[], &[("client_id", "c"), ("client_secret", "s"), ("username", "u")], "accounts.a.credentials.password"),
            (&[], &[("token", "t")], "accounts.a.credentials.token"),
        ];
        for (set, creds, want) in cases {
            let s = settings(&dir, base, set, creds);
            assert_eq!(key_of(from_settings("a", &s).unwrap_err()), *want);
        }
        // Plain http would send the Bearer key in clear: only loopback, or an explicit allow_http.
        let clear = settings(&dir, "http://pbx.example.com/ns-api/v2", &[], key);
        let e = from_settings("a", &clear).unwrap_err();
        assert!(e.to_string().contains("must be https"), "{e}");
        for (base, set) in [
            ("http://127.0.0.1:8700/ns-api/v2", &[][..]),
            ("http://[::1]:8700/ns-api/v2", &[][..]),
            ("http://sandbox:8700/ns-api/v2", &[("allow_http", "true")][..]),
        ] {
            assert!(from_settings("a", &settings(&dir, base, set, key)).is_ok(), "{base}");
        }
        assert_eq!(
            key_of(
                from_settings("a", &settings(&dir, "http://sandbox/ns-api/v2", &[("allow_http", "maybe")], key))
                    .unwrap_err()
            ),
            "accounts.a.settings.allow_http"
        );
        for bad in ["ftp://x/ns-api/v2", "not a url", "https://u:p@pbx.example.com/ns-api/v2", "https://h/?k=v"] {
            let s = settings(&dir, bad, &[], key);
            assert_eq!(key_of(from_settings("a", &s).unwrap_err()), "accounts.a.base_url", "{bad}");
        }
        let mut s = settings(&dir, base, &[], key);
        s.base_url = None;
        assert_eq!(key_of(from_settings("a", &s).unwrap_err()), "accounts.a.base_url");
    }

    #[test]
    fn hard_delete_reads_like_allow_http() {
        let dir = tempfile::tempdir().unwrap();
        for (raw, want) in [("true", true), ("YES", true), ("1", true), ("false", false), ("no", false), ("0", false)] {
            let s = settings(&dir, "https://pbx.example.com/ns-api/v2", &[("hard_delete", raw)], &[("api_key", "k")]);
            assert_eq!(from_settings("a", &s).unwrap().hard_delete, want, "{raw}");
        }
    }

    #[test]
    fn a_bad_suspend_table_says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(
            &dir,
            "https://pbx.example.com/ns-api/v2",
            &[("suspend", r#"{"user-scope": "Nobody"}"#)],
            &[("api_key", "k")],
        );
        let e = from_settings("acme", &s).unwrap_err().to_string();
        assert!(e.contains("accounts.acme.settings.suspend") && e.contains("user-scope"), "{e}");
    }

    /// The development config shows the syntax operators copy: it must stay valid.
    #[test]
    fn the_development_configs_suspend_and_restore_tables_are_valid() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/development.toml");
        use figment::providers::{Format, Serialized, Toml};
        let config: crate::config::Settings =
            figment::Figment::from(Serialized::defaults(crate::config::Settings::default()))
                .merge(Toml::file(path))
                .extract()
                .unwrap();
        let settings = &config.accounts["acme-netsapiens"].settings;
        for key in ["suspend", "restore"] {
            let raw = settings.get(key).unwrap_or_else(|| panic!("{key} is set"));
            assert!(Changes::from_setting(raw).is_ok(), "{key}: {raw}");
        }
    }

    #[test]
    fn an_unset_secret_names_its_key_and_not_its_value() {
        let s = AccountSettings {
            vendor: VendorKey::Netsapiens,
            base_url: Some("https://pbx.example.com/ns-api/v2".into()),
            settings: BTreeMap::new(),
            credentials: [("api_key".to_owned(), SecretSource::Env("PROVISIONER_TEST_NS_UNSET_KEY".into()))].into(),
            rate: None,
            concurrency: None,
            policy: Default::default(),
        };
        let err = from_settings("a", &s).unwrap_err().to_string();
        assert!(err.contains("accounts.a.credentials.api_key"), "{err}");
    }
}
