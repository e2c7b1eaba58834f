//! ClientToolbox (`type=user_new` on `api.php`): field rules, account config, request building, answer reading, the adapter and its sandbox.
//!
//! Layout, as for every vendor: `fields` (the job's values as types), `account` (config),
//! `request` and `response` (pure), `adapter` (I/O and idempotency), `sandbox` (simulator).
//! The facts come from `vendors/clienttoolbox.md`; every behaviour that file marks
//! unconfirmed is an account setting (see [`account`]).

pub mod account;
pub mod adapter;
pub mod fields;
pub mod request;
pub mod response;
pub mod sandbox;
pub mod schema;

pub use account::{from_settings, Account};
pub use adapter::{build, Adapter};
pub use fields::{validate, AllowedCampaigns, ClientToolboxUserName, NewUser};
pub use sandbox::{router, Sandbox};

/// Catalog fields `type=user_update` does not take: none besides `user_name`, which names
/// the user and cannot be renamed.
pub const NOT_UPDATABLE: &[&str] = &[];

/// Account fixtures shared by this module's tests: secrets come from files in a temp dir,
/// since changing the environment races with other tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::BTreeMap;

    use crate::config::{AccountSettings, SecretSource};
    use crate::contract::VendorKey;

    pub(crate) const PASSWORD: &str = super::sandbox::SANDBOX_PASSWORD;
    pub(crate) const API_KEY: &str = super::sandbox::SANDBOX_API_KEY;

    pub(crate) struct Fixture {
        pub settings: AccountSettings,
        _dir: tempfile::TempDir,
    }

    /// An account for the sandbox caller, authenticating with `user_password` unless
    /// `settings` says otherwise; `settings` are added or override.
    pub(crate) fn account(base_url: Option<&str>, settings: &[(&str, &str)]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut credentials = BTreeMap::new();
        for (name, value) in [("user_password", PASSWORD), ("api_access_key", API_KEY)] {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("{value}\n")).unwrap();
            credentials.insert(name.to_owned(), SecretSource::File(path));
        }
        let mut map: BTreeMap<String, String> =
            [("account_id", super::sandbox::SANDBOX_ACCOUNT_ID), ("user_id", super::sandbox::SANDBOX_USER_ID)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        for (k, v) in settings {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        Fixture {
            settings: AccountSettings {
                vendor: VendorKey::Clienttoolbox,
                base_url: base_url.map(str::to_owned),
                settings: map,
                credentials,
                rate: None,
                concurrency: None,
                policy: Default::default(),
            },
            _dir: dir,
        }
    }

    /// A decoded job with the documented example user, `overrides` replacing fields.
    pub(crate) fn job(user_name: &str, overrides: serde_json::Value) -> crate::contract::Job {
        let mut user = serde_json::json!({"user_name": user_name, "user_new_password": "S3cure!pass",
            "user_first_name": "Jane", "user_last_name": "Doe", "user_custom1": "Downtown Store",
            "user_PIN": "4321", "language_selector": "EN", "timezone_selector": 68, "user_role": "K",
            "allowed_campaigns": "all"});
        for (k, v) in overrides.as_object().unwrap() {
            if v.is_null() {
                user.as_object_mut().unwrap().remove(k);
            } else {
                user[k] = v.clone();
            }
        }
        let body = serde_json::json!({"job_id": format!("job-{user_name}"), "vendor": "clienttoolbox",
            "account": "acme-ctb", "user": user});
        crate::job::decode(body.to_string().as_bytes()).unwrap()
    }

    /// A decoded job of `kind` (`update_user`, `suspend_user`, …) for `user_name` with the
    /// other `fields` of its `user`.
    pub(crate) fn job_of(kind: &str, user_name: &str, fields: serde_json::Value) -> crate::contract::Job {
        let mut user = fields;
        user["user_name"] = user_name.into();
        let body = serde_json::json!({"job_id": format!("{kind}-{user_name}"), "kind": kind,
            "vendor": "clienttoolbox", "account": "acme-ctb", "user": user});
        crate::job::decode(body.to_string().as_bytes()).unwrap()
    }
}
