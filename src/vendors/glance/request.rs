//! Pure builders of the Glance PAPI calls: form-encoded POSTs whose `Debug` hides secrets.

use std::fmt;

use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::account::{Account, Auth, LoginKeySubject};
use super::fields::{GlanceAddress, NewUser, PartnerUserId, UserChange, UserRef, NO_ROLE};

pub const NEW_USER_PATH: &str = "/PAPI/NewUser.asp";
pub const SHOW_USERS_PATH: &str = "/PAPI/ShowUsers.asp";
pub const UPDATE_USER_PATH: &str = "/PAPI/UpdateUser.asp";
pub const DELETE_USER_PATH: &str = "/PAPI/DeleteUser.asp";
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
/// An exact lookup matches one user; a few more show an ambiguity instead of hiding it.
pub const LOOKUP_PAGE_COUNT: u32 = 10;
pub const LOGIN_KEY_VERSION: u8 = 1;

/// A form value; secrets are only exposed when the body is encoded for sending.
#[derive(Clone)]
pub enum FormValue {
    Plain(String),
    Secret(SecretString),
}

impl FormValue {
    fn expose(&self) -> &str {
        match self {
            FormValue::Plain(s) => s,
            FormValue::Secret(s) => s.expose_secret(),
        }
    }
}

impl fmt::Debug for FormValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormValue::Plain(s) => write!(f, "{s:?}"),
            FormValue::Secret(_) => f.write_str("\"***\""),
        }
    }
}

/// One PAPI call: always `POST`, path relative to the account's base URL, form body.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: &'static str,
    pub form: Vec<(&'static str, FormValue)>,
}

impl Request {
    pub fn method(&self) -> &'static str {
        "POST"
    }

    pub fn content_type(&self) -> &'static str {
        FORM_CONTENT_TYPE
    }

    /// The encoded body, secrets included: for the wire only, never for logs.
    pub fn body(&self) -> String {
        let pairs: Vec<(&str, &str)> = self.form.iter().map(|(k, v)| (*k, v.expose())).collect();
        serde_urlencoded::to_string(pairs).expect("string pairs always encode")
    }

    /// The values that must never leave this process except on the wire.
    pub fn secrets(&self) -> Vec<&str> {
        self.form
            .iter()
            .filter_map(|(_, v)| match v {
                FormValue::Secret(s) => Some(s.expose_secret()),
                FormValue::Plain(_) => None,
            })
            .collect()
    }
}

/// The Login Key (`PartnerAuth`): `$1$<expires>$<sig>`, sig = base64url-without-padding of
/// HMAC-SHA256(key = group API key, message = partnerid + partneruserid + version + expires).
pub fn login_key(api_key: &str, partner_id: &str, partner_user_id: &str, expires: i64) -> SecretString {
    let mut mac = Hmac::<Sha256>::new_from_slice(api_key.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{partner_id}{partner_user_id}{LOGIN_KEY_VERSION}{expires}").as_bytes());
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    SecretString::from(format!("${LOGIN_KEY_VERSION}${expires}${sig}"))
}

fn auth_fields(account: &Account, subject_user: &PartnerUserId, now: i64) -> Vec<(&'static str, FormValue)> {
    let mut form = vec![("PartnerLogin", FormValue::Plain(account.login.as_str().to_owned()))];
    let partner_id = account.partner_id.map(|id| id.to_string());
    match &account.auth {
        Auth::Password(pw) => form.push(("PartnerPW", FormValue::Secret(pw.clone()))),
        Auth::LoginKey { api_key, subject, ttl } => {
            let who = match subject {
                LoginKeySubject::Admin(id) => id.as_str(),
                LoginKeySubject::NewUser => subject_user.as_str(),
                LoginKeySubject::Empty => "",
            };
            let expires = now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
            let key = login_key(api_key.expose_secret(), partner_id.as_deref().unwrap_or(""), who, expires);
            form.push(("PartnerAuth", FormValue::Secret(key)));
        }
    }
    if let Some(id) = partner_id {
        form.push(("PartnerID", FormValue::Plain(id)));
    }
    form
}

/// `NewUser`: auth, then the user's fields in documented order; absent fields are not sent.
pub fn new_user(account: &Account, user: &NewUser, now: i64) -> Request {
    let mut form = auth_fields(account, &user.partner_user_id, now);
    let plain = |s: &str| FormValue::Plain(s.to_owned());
    form.push(("PartnerUserID", plain(user.partner_user_id.as_str())));
    form.push(("UserAddress", plain(user.address.as_str())));
    if let Some(pw) = &user.password {
        form.push(("UserPW", FormValue::Secret(SecretString::from(pw.expose().to_owned()))));
    }
    if let Some(v) = &user.first {
        form.push(("UserFirst", plain(v.as_str())));
    }
    if let Some(v) = &user.last {
        form.push(("UserLast", plain(v.as_str())));
    }
    if let Some(v) = &user.email {
        form.push(("UserEmail", plain(v.as_str())));
    }
    if let Some(v) = &user.role {
        form.push(("UserRole", plain(v.as_str())));
    }
    if let Some(a) = user.audio {
        form.push(("AudioProvider", FormValue::Plain(a.code().to_string())));
    }
    Request { path: NEW_USER_PATH, form }
}

/// `UpdateUser`: auth, the PartnerUserID, then only the fields the change names, in
/// documented order (Glance changes only the fields it is given).
pub fn update(account: &Account, change: &UserChange, now: i64) -> Request {
    let mut form = auth_fields(account, &change.partner_user_id, now);
    let plain = |s: &str| FormValue::Plain(s.to_owned());
    form.push(("PartnerUserID", plain(change.partner_user_id.as_str())));
    if let Some(v) = &change.address {
        form.push(("UserAddress", plain(v.as_str())));
    }
    if let Some(pw) = &change.password {
        form.push(("UserPW", FormValue::Secret(SecretString::from(pw.expose().to_owned()))));
    }
    if let Some(v) = &change.first {
        form.push(("UserFirst", plain(v.as_str())));
    }
    if let Some(v) = &change.last {
        form.push(("UserLast", plain(v.as_str())));
    }
    if let Some(v) = &change.email {
        form.push(("UserEmail", plain(v.as_str())));
    }
    if let Some(v) = &change.role {
        // "No role" is sent as the documented `-none-`: an empty value may read as a field
        // not supplied, which UpdateUser leaves as it was.
        form.push(("UserRole", plain(if v.is_none() { NO_ROLE } else { v.as_str() })));
    }
    if let Some(suspended) = change.suspended {
        form.push(("UserSuspended", plain(if suspended { "1" } else { "0" })));
    }
    Request { path: UPDATE_USER_PATH, form }
}

/// `DeleteUser`: auth and the PartnerUserID; Glance deletes permanently.
pub fn delete(account: &Account, user: &UserRef, now: i64) -> Request {
    let mut form = auth_fields(account, &user.partner_user_id, now);
    form.push(("PartnerUserID", FormValue::Plain(user.partner_user_id.as_str().to_owned())));
    Request { path: DELETE_USER_PATH, form }
}

/// What a `ShowUsers` call looks for: one exact value, never a wildcard.
#[derive(Clone, Copy, Debug)]
pub enum LookupKey<'a> {
    PartnerUserId(&'a PartnerUserId),
    Address(&'a GlanceAddress),
}

/// `ShowUsers` for one user. `subject_user` is the user the job is about, for Login Keys
/// that sign the new user's id.
pub fn show_users(account: &Account, key: LookupKey<'_>, subject_user: &PartnerUserId, now: i64) -> Request {
    let mut form = auth_fields(account, subject_user, now);
    match key {
        LookupKey::PartnerUserId(id) => form.push(("PartnerUserID", FormValue::Plain(id.as_str().to_owned()))),
        LookupKey::Address(a) => form.push(("UserAddress", FormValue::Plain(a.as_str().to_owned()))),
    }
    form.push(("PageCount", FormValue::Plain(LOOKUP_PAGE_COUNT.to_string())));
    Request { path: SHOW_USERS_PATH, form }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::{AccountSettings, SecretSource};
    use crate::contract::FieldValue;
    use crate::contract::VendorKey;
    use crate::vendors::glance::account::from_settings;
    use crate::vendors::glance::fields::{tests::user, Rules};

    pub(crate) fn account(pairs: &[(&str, &str)], cred: (&str, &str)) -> (Account, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, cred.1).unwrap();
        let a = AccountSettings {
            vendor: VendorKey::Glance,
            base_url: None,
            settings: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
            credentials: [(cred.0.to_owned(), SecretSource::File(path))].into_iter().collect(),
            rate: None,
            concurrency: None,
            policy: Default::default(),
        };
        (from_settings("acme", &a).unwrap(), dir)
    }

    fn t(s: &str) -> FieldValue {
        FieldValue::Text(s.to_owned())
    }

    fn jane() -> NewUser {
        let u = user(&[
            ("PartnerUserID", t("EMP-000731")),
            ("UserAddress", t("JDoe.acme.glance.net")),
            ("UserFirst", t("Jane")),
            ("UserLast", t("Doe")),
            ("UserEmail", t("jane.doe@acme.example")),
            ("UserRole", t("Support Tier 1")),
        ]);
        NewUser::parse(&u, &Rules::default()).unwrap()
    }

    #[test]
    fn login_key_matches_the_test_vector() {
        let key = login_key("example-api-key", "40123", "EMP-000731", 1_767_225_600);
        assert_eq!(key.expose_secret(), "$1$1767225600$BXwgNM0rm-p6RiJZjzdZffjsyfu0zBZ9VF8Vvt039ew");
        assert_eq!(key.expose_secret().len(), 57);
    }

    #[test]
    fn golden_new_user_with_password() {
        let (acc, _d) =
            account(&[("PartnerLogin", "provisioner.acme.glance.net"), ("PartnerID", "40123")], ("PartnerPW", "pw&=1"));
        let req = new_user(&acc, &jane(), 0);
        assert_eq!((req.method(), req.path, req.content_type()), ("POST", "/PAPI/NewUser.asp", FORM_CONTENT_TYPE));
        assert_eq!(
            req.body(),
            "PartnerLogin=provisioner.acme.glance.net&PartnerPW=pw%26%3D1&PartnerID=40123&PartnerUserID=EMP-000731\
             &UserAddress=jdoe.acme.glance.net&UserFirst=Jane&UserLast=Doe&UserEmail=jane.doe%40acme.example\
             &UserRole=Support+Tier+1"
        );
    }

    #[test]
    fn golden_new_user_with_login_key_password_and_audio() {
        let (acc, _d) = account(
            &[
                ("PartnerLogin", "provisioner.acme.glance.net"),
                ("PartnerID", "40123"),
                ("login_key_user", "new_user"),
                ("login_key_ttl", "1h"),
            ],
            ("api_key", "example-api-key"),
        );
        let u = user(&[
            ("PartnerUserID", t("EMP-000731")),
            ("UserAddress", t("jdoe.acme.glance.net")),
            ("UserPW", t("Correct horse 1")),
            ("AudioProvider", FieldValue::Integer(666)),
        ]);
        let req = new_user(&acc, &NewUser::parse(&u, &Rules::default()).unwrap(), 1_767_225_600 - 3600);
        assert_eq!(
            req.body(),
            "PartnerLogin=provisioner.acme.glance.net\
             &PartnerAuth=%241%241767225600%24BXwgNM0rm-p6RiJZjzdZffjsyfu0zBZ9VF8Vvt039ew&PartnerID=40123\
             &PartnerUserID=EMP-000731&UserAddress=jdoe.acme.glance.net&UserPW=Correct+horse+1&AudioProvider=666"
        );
        let shown = format!("{req:?}");
        assert!(!shown.contains("BXwgNM0") && !shown.contains("Correct horse"), "{shown}");
        assert_eq!(req.secrets().len(), 2);
    }

    #[test]
    fn admin_subject_and_no_partner_id() {
        let (acc, _d) = account(
            &[("PartnerLogin", "p.acme.glance.net"), ("PartnerID", "40123"), ("admin_partner_user_id", "EMP-000731")],
            ("api_key", "example-api-key"),
        );
        let other = PartnerUserId::parse("someone-else").unwrap();
        let req = show_users(&acc, LookupKey::PartnerUserId(&other), &other, 1_767_225_600 - 600);
        assert!(req.body().contains("PartnerAuth=%241%241767225600%24BXwgNM0rm"), "{}", req.body());
        let (acc, _d) = account(&[("PartnerLogin", "p.acme.glance.net")], ("PartnerPW", "x"));
        assert!(!new_user(&acc, &jane(), 0).body().contains("PartnerID"));
    }

    #[test]
    fn golden_update_sends_only_the_named_fields() {
        let (acc, _d) = account(&[("PartnerLogin", "p.acme.glance.net"), ("PartnerID", "7")], ("PartnerPW", "pw"));
        let u = user(&[("PartnerUserID", t("EMP-1")), ("UserLast", t("Smith")), ("UserRole", t(""))]);
        let change = UserChange::parse(&u, &Rules::default()).unwrap();
        let req = update(&acc, &change, 0);
        assert_eq!((req.method(), req.path), ("POST", "/PAPI/UpdateUser.asp"));
        assert_eq!(
            req.body(),
            "PartnerLogin=p.acme.glance.net&PartnerPW=pw&PartnerID=7&PartnerUserID=EMP-1&UserLast=Smith\
             &UserRole=-none-"
        );
        let u = user(&[
            ("PartnerUserID", t("EMP-1")),
            ("UserAddress", t("New.acme.glance.net")),
            ("UserPW", t("n3w-secret-pw")),
            ("UserFirst", t("Jo")),
            ("UserEmail", t("jo@acme.example")),
            ("UserRole", t("Sales")),
        ]);
        let req = update(&acc, &UserChange::parse(&u, &Rules::default()).unwrap(), 0);
        assert_eq!(
            req.body(),
            "PartnerLogin=p.acme.glance.net&PartnerPW=pw&PartnerID=7&PartnerUserID=EMP-1\
             &UserAddress=new.acme.glance.net&UserPW=n3w-secret-pw&UserFirst=Jo&UserEmail=jo%40acme.example\
             &UserRole=Sales"
        );
        assert!(!format!("{req:?}").contains("n3w-secret-pw"));
        assert_eq!(req.secrets(), ["pw", "n3w-secret-pw"]);
    }

    #[test]
    fn golden_suspend_restore_and_delete() {
        let (acc, _d) = account(&[("PartnerLogin", "p.acme.glance.net")], ("PartnerPW", "pw"));
        let who = UserRef::parse(&user(&[("PartnerUserID", t("EMP-1"))])).unwrap();
        let auth = "PartnerLogin=p.acme.glance.net&PartnerPW=pw&PartnerUserID=EMP-1";
        let suspend = update(&acc, &UserChange::suspension(&who, true), 0);
        assert_eq!((suspend.path, suspend.body()), (UPDATE_USER_PATH, format!("{auth}&UserSuspended=1")));
        let restore = update(&acc, &UserChange::suspension(&who, false), 0);
        assert_eq!(restore.body(), format!("{auth}&UserSuspended=0"));
        let gone = delete(&acc, &who, 0);
        assert_eq!((gone.method(), gone.path, gone.body()), ("POST", "/PAPI/DeleteUser.asp", auth.to_owned()));
    }

    #[test]
    fn golden_show_users() {
        let (acc, _d) = account(&[("PartnerLogin", "p.acme.glance.net"), ("PartnerID", "7")], ("PartnerPW", "pw"));
        let u = jane();
        let by_id = show_users(&acc, LookupKey::PartnerUserId(&u.partner_user_id), &u.partner_user_id, 0);
        assert_eq!(by_id.path, "/PAPI/ShowUsers.asp");
        assert_eq!(
            by_id.body(),
            "PartnerLogin=p.acme.glance.net&PartnerPW=pw&PartnerID=7&PartnerUserID=EMP-000731&PageCount=10"
        );
        let by_address = show_users(&acc, LookupKey::Address(&u.address), &u.partner_user_id, 0);
        assert_eq!(
            by_address.body(),
            "PartnerLogin=p.acme.glance.net&PartnerPW=pw&PartnerID=7&UserAddress=jdoe.acme.glance.net&PageCount=10"
        );
    }
}
