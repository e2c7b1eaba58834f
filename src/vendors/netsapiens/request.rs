//! Pure builders of the NetSapiens calls (create, get, update and delete user, token grants) as plain values, so the exact wire format is testable without a network.

use std::fmt;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::account::{Account, OAuthClient, TokenEncoding};
use super::fields::{Changes, Domain, Extension, NewUser, YesNo};

/// Body keys whose values are secrets, replaced by `***` in `Debug`.
const SECRET_KEYS: &[&str] =
    &["voicemail-login-pin", "password", "client_secret", "client_id", "username", "refresh_token", "access_token"];

#[derive(Clone)]
pub enum Body {
    Empty,
    Json(Map<String, Value>),
    Form(Vec<(&'static str, SecretString)>),
}

/// One HTTP call, relative to the account's `base_url`. `Debug` redacts the bearer token and
/// every secret body value.
#[derive(Clone)]
pub struct Request {
    pub method: Method,
    /// Starts with `/`; appended to the base URL (`…/ns-api/v2`).
    pub path: String,
    /// Non-secret headers. `Authorization` is kept apart in `bearer`.
    pub headers: Vec<(&'static str, String)>,
    pub bearer: Option<SecretString>,
    pub body: Body,
}

impl Request {
    pub fn content_type(&self) -> Option<&'static str> {
        match self.body {
            Body::Empty => None,
            Body::Json(_) => Some("application/json"),
            Body::Form(_) => Some("application/x-www-form-urlencoded"),
        }
    }

    /// The exact body bytes. JSON keys come out sorted (serde_json's map), which is stable.
    pub fn body_bytes(&self) -> Vec<u8> {
        match &self.body {
            Body::Empty => Vec::new(),
            Body::Json(map) => serde_json::to_vec(map).expect("a JSON map always serialises"),
            Body::Form(pairs) => {
                let exposed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.expose_secret())).collect();
                serde_urlencoded::to_string(exposed).expect("string pairs always encode").into_bytes()
            }
        }
    }

    /// The `Authorization` header value, when the call is authorised.
    pub fn authorization(&self) -> Option<String> {
        self.bearer.as_ref().map(|t| format!("Bearer {}", t.expose_secret()))
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = match &self.body {
            Body::Empty => Value::Null,
            Body::Json(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let v = if SECRET_KEYS.contains(&k.as_str()) { Value::from("***") } else { v.clone() };
                        (k.clone(), v)
                    })
                    .collect(),
            ),
            Body::Form(pairs) => Value::Object(
                pairs
                    .iter()
                    .map(|(k, v)| {
                        let v = if SECRET_KEYS.contains(k) { "***" } else { v.expose_secret() };
                        ((*k).to_owned(), Value::from(v))
                    })
                    .collect(),
            ),
        };
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &self.headers)
            .field("bearer", &self.bearer.as_ref().map(|_| "***"))
            .field("body", &format_args!("{body}"))
            .finish()
    }
}

fn common_headers(account: &Account) -> Vec<(&'static str, String)> {
    let mut h = vec![("Accept", "application/json".to_owned())];
    if let Some(tag) = &account.log_tag {
        h.push(("X-NetSapiens-Log", tag.clone()));
    }
    h
}

/// `POST /domains/{domain}/users` with every field of the user, the e-mail under the
/// account's chosen name, and `synchronous` spelled out either way.
pub fn create_user(account: &Account, domain: &Domain, user: &NewUser, bearer: &SecretString) -> Request {
    let mut body = Map::new();
    let sync = if account.synchronous { YesNo::Yes } else { YesNo::No };
    body.insert("synchronous".into(), Value::from(sync.as_str()));
    body.insert("user".into(), Value::from(user.user().as_str()));
    body.insert("name-first-name".into(), Value::from(user.first_name().as_str()));
    body.insert("name-last-name".into(), Value::from(user.last_name().as_str()));
    body.insert(account.email_field.as_str().into(), Value::from(user.email().to_wire()));
    body.insert("user-scope".into(), Value::from(user.scope().as_str()));
    if let Some(login) = user.login_username() {
        body.insert("login-username".into(), Value::from(login.as_str()));
    }
    for (name, value) in user.others() {
        body.insert(name.into(), value.to_json());
    }
    Request {
        method: Method::POST,
        path: format!("/domains/{domain}/users"),
        headers: common_headers(account),
        bearer: Some(bearer.clone()),
        body: Body::Json(body),
    }
}

/// `GET /domains/{domain}/users/{user}`: the reconcile lookup.
pub fn get_user(account: &Account, domain: &Domain, user: &Extension, bearer: &SecretString) -> Request {
    Request {
        method: Method::GET,
        path: format!("/domains/{domain}/users/{user}"),
        headers: common_headers(account),
        bearer: Some(bearer.clone()),
        body: Body::Empty,
    }
}

/// `PUT /domains/{domain}/users/{user}` with only the fields to change, the e-mail under the
/// account's chosen name. No `synchronous`: it is documented for creates, and the answer
/// to an update carries nothing the adapter needs.
pub fn update(
    account: &Account,
    domain: &Domain,
    user: &Extension,
    changes: &Changes,
    bearer: &SecretString,
) -> Request {
    let body = changes
        .iter()
        .map(|(name, value)| {
            let name = if name == "email" { account.email_field.as_str() } else { name };
            (name.to_owned(), value.to_json())
        })
        .collect();
    Request {
        method: Method::PUT,
        path: format!("/domains/{domain}/users/{user}"),
        headers: common_headers(account),
        bearer: Some(bearer.clone()),
        body: Body::Json(body),
    }
}

/// `DELETE /domains/{domain}/users/{user}`: permanent, so the adapter sends it only for an
/// account that allows hard deletes.
pub fn delete(account: &Account, domain: &Domain, user: &Extension, bearer: &SecretString) -> Request {
    Request {
        method: Method::DELETE,
        path: format!("/domains/{domain}/users/{user}"),
        headers: common_headers(account),
        bearer: Some(bearer.clone()),
        body: Body::Empty,
    }
}

/// `POST /tokens` with the OAuth password grant.
pub fn token_password(account: &Account, client: &OAuthClient) -> Request {
    token(
        account,
        vec![
            ("grant_type", SecretString::from("password")),
            ("client_id", client.client_id.clone()),
            ("client_secret", client.client_secret.clone()),
            ("username", client.username.clone()),
            ("password", client.password.clone()),
        ],
    )
}

/// `POST /tokens` with the refresh-token grant.
pub fn token_refresh(account: &Account, client: &OAuthClient, refresh_token: &SecretString) -> Request {
    token(
        account,
        vec![
            ("grant_type", SecretString::from("refresh_token")),
            ("client_id", client.client_id.clone()),
            ("client_secret", client.client_secret.clone()),
            ("refresh_token", refresh_token.clone()),
        ],
    )
}

fn token(account: &Account, pairs: Vec<(&'static str, SecretString)>) -> Request {
    let body = match account.token_encoding {
        TokenEncoding::Json => Body::Json(
            pairs.into_iter().map(|(k, v)| (k.to_owned(), Value::from(v.expose_secret().to_owned()))).collect(),
        ),
        TokenEncoding::Form => Body::Form(pairs),
    };
    Request { method: Method::POST, path: "/tokens".into(), headers: common_headers(account), bearer: None, body }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::vendors::netsapiens::account::{from_settings, tests::settings};
    use crate::vendors::netsapiens::fields::tests::{fields, minimal};

    fn account(set: &[(&str, &str)], creds: &[(&str, &str)]) -> (Account, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(&dir, "https://pbx.example.com/ns-api/v2", set, creds);
        (from_settings("acme", &s).unwrap(), dir)
    }

    fn user(v: Value) -> NewUser {
        NewUser::parse(&fields(v)).unwrap()
    }

    fn bearer() -> SecretString {
        SecretString::from("nsd_TESTKEY")
    }

    #[test]
    fn golden_create_user_with_the_documented_example() {
        let (acct, _d) = account(&[], &[("api_key", "nsd_TESTKEY")]);
        let u = user(json!({
            "user": "1042", "name-first-name": "Jane", "name-last-name": "Doe",
            "email": "jane.doe@acme.example", "user-scope": "Basic User", "login-username": "1042@acme.example",
            "department": "Support", "site": "Head Office", "time-zone": "America/New_York",
            "language-token": "en_US", "voicemail-login-pin": "482913", "privacy": "no", "area-code": 858,
            "caller-id-number-emergency": 18585551234_i64,
        }));
        let r = create_user(&acct, &Domain::parse("acme.example").unwrap(), &u, &bearer());
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.path, "/domains/acme.example/users");
        assert_eq!(r.headers, vec![("Accept", "application/json".to_owned())]);
        assert_eq!(r.content_type(), Some("application/json"));
        assert_eq!(r.authorization().as_deref(), Some("Bearer nsd_TESTKEY"));
        assert_eq!(
            String::from_utf8(r.body_bytes()).unwrap(),
            concat!(
                r#"{"area-code":858,"caller-id-number-emergency":"18585551234","department":"Support","#,
                r#""email":"jane.doe@acme.example","language-token":"en_US","login-username":"1042@acme.example","#,
                r#""name-first-name":"Jane","name-last-name":"Doe","privacy":"no","site":"Head Office","#,
                r#""synchronous":"yes","time-zone":"America/New_York","user":"1042","user-scope":"Basic User","#,
                r#""voicemail-login-pin":"482913"}"#
            )
        );
    }

    #[test]
    fn golden_create_user_with_the_unconfirmed_switches_flipped() {
        let (acct, _d) = account(
            &[("synchronous", "no"), ("email_field", "email-address"), ("log_tag", "hr-sync")],
            &[("api_key", "k")],
        );
        // The job may use either name; the account decides what is sent.
        let mut v = minimal();
        let email = v.as_object_mut().unwrap().remove("email").unwrap();
        v["email-address"] = email;
        let r = create_user(&acct, &Domain::parse("acme.example").unwrap(), &user(v), &bearer());
        assert_eq!(r.headers, vec![("Accept", "application/json".into()), ("X-NetSapiens-Log", "hr-sync".into())]);
        assert_eq!(
            String::from_utf8(r.body_bytes()).unwrap(),
            r#"{"email-address":"jane.doe@acme.example","name-first-name":"Jane","name-last-name":"Doe","synchronous":"no","user":"1042","user-scope":"Basic User"}"#
        );
        let (acct, _d) = account(&[], &[("api_key", "k")]);
        let mut v = minimal();
        let email = v.as_object_mut().unwrap().remove("email").unwrap();
        v["email-address"] = email;
        let body: Value =
            serde_json::from_slice(&create_user(&acct, &Domain::parse("d").unwrap(), &user(v), &bearer()).body_bytes())
                .unwrap();
        assert_eq!(body["email"], "jane.doe@acme.example");
        assert!(body.get("email-address").is_none());
    }

    #[test]
    fn yes_no_values_and_lists_are_strings_and_numbers_are_numbers() {
        let (acct, _d) = account(&[], &[("api_key", "k")]);
        let mut v = minimal();
        v["voicemail-enabled"] = json!("yes");
        v["ring-no-answer-timeout-seconds"] = json!(25);
        v["email-send-alert-new-voicemail-cc-list-csv"] = json!("1001, 1002");
        v["email"] = json!("a@acme.example ; b@acme.example");
        let body: Value =
            serde_json::from_slice(&create_user(&acct, &Domain::parse("d").unwrap(), &user(v), &bearer()).body_bytes())
                .unwrap();
        assert_eq!(body["voicemail-enabled"], json!("yes"));
        assert_eq!(body["ring-no-answer-timeout-seconds"], json!(25));
        assert_eq!(body["email-send-alert-new-voicemail-cc-list-csv"], json!("1001,1002"));
        assert_eq!(body["email"], json!("a@acme.example;b@acme.example"));
    }

    #[test]
    fn golden_get_user() {
        let (acct, _d) = account(&[], &[("api_key", "k")]);
        let r = get_user(&acct, &Domain::parse("acme.example").unwrap(), &Extension::parse("1042").unwrap(), &bearer());
        assert_eq!(r.method, Method::GET);
        assert_eq!(r.path, "/domains/acme.example/users/1042");
        assert!(r.body_bytes().is_empty());
        assert_eq!(r.content_type(), None);
        assert_eq!(r.authorization().as_deref(), Some("Bearer nsd_TESTKEY"));
    }

    fn changes(v: Value) -> Changes {
        let mut user = json!({"user": "1042"});
        user.as_object_mut().unwrap().extend(v.as_object().unwrap().clone());
        crate::vendors::netsapiens::fields::UserChange::parse(&fields(user)).unwrap().changes().clone()
    }

    #[test]
    fn golden_update_sends_only_the_changes() {
        let (acct, _d) = account(&[("log_tag", "hr-sync")], &[("api_key", "k")]);
        let c = changes(json!({"department": "Support", "area-code": 212, "email-address": "a@acme.example"}));
        let r =
            update(&acct, &Domain::parse("acme.example").unwrap(), &Extension::parse("1042").unwrap(), &c, &bearer());
        assert_eq!((r.method.clone(), r.path.as_str()), (Method::PUT, "/domains/acme.example/users/1042"));
        assert_eq!(r.headers, vec![("Accept", "application/json".into()), ("X-NetSapiens-Log", "hr-sync".into())]);
        assert_eq!(r.content_type(), Some("application/json"));
        assert_eq!(r.authorization().as_deref(), Some("Bearer nsd_TESTKEY"));
        assert_eq!(
            String::from_utf8(r.body_bytes()).unwrap(),
            r#"{"area-code":212,"department":"Support","email":"a@acme.example"}"#
        );
        let (acct, _d) = account(&[("email_field", "email-address")], &[("api_key", "k")]);
        let r = update(&acct, &Domain::parse("d").unwrap(), &Extension::parse("1").unwrap(), &c, &bearer());
        let body: Value = serde_json::from_slice(&r.body_bytes()).unwrap();
        assert_eq!((body["email-address"].clone(), body.get("email")), (json!("a@acme.example"), None));
    }

    #[test]
    fn golden_delete() {
        let (acct, _d) = account(&[], &[("api_key", "k")]);
        let r = delete(&acct, &Domain::parse("acme.example").unwrap(), &Extension::parse("1042").unwrap(), &bearer());
        assert_eq!((r.method.clone(), r.path.as_str()), (Method::DELETE, "/domains/acme.example/users/1042"));
        assert!(r.body_bytes().is_empty());
        assert_eq!(r.content_type(), None);
        assert_eq!(r.authorization().as_deref(), Some("Bearer nsd_TESTKEY"));
    }

    #[test]
    fn an_updates_debug_output_redacts_the_pin() {
        let (acct, _d) = account(&[], &[("api_key", "k")]);
        let c = changes(json!({"voicemail-login-pin": "918273", "site": "HQ"}));
        let r = update(&acct, &Domain::parse("d").unwrap(), &Extension::parse("1").unwrap(), &c, &bearer());
        let shown = format!("{r:?}");
        assert!(!shown.contains("918273") && !shown.contains("nsd_TESTKEY"), "{shown}");
        assert!(shown.contains("\"site\":\"HQ\""), "{shown}");
    }

    const OAUTH: &[(&str, &str)] =
        &[("client_id", "cid-1"), ("client_secret", "cs-2"), ("username", "admin@acme"), ("password", "pw 3&")];

    fn oauth_client(a: &Account) -> &OAuthClient {
        match &a.auth {
            crate::vendors::netsapiens::account::Auth::OAuth(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn golden_token_calls_in_json_and_form() {
        let (acct, _d) = account(&[], OAUTH);
        let r = token_password(&acct, oauth_client(&acct));
        assert_eq!(
            (r.method.clone(), r.path.as_str(), r.content_type()),
            (Method::POST, "/tokens", Some("application/json"))
        );
        assert!(r.bearer.is_none());
        assert_eq!(
            String::from_utf8(r.body_bytes()).unwrap(),
            r#"{"client_id":"cid-1","client_secret":"cs-2","grant_type":"password","password":"pw 3&","username":"admin@acme"}"#
        );
        let refresh = token_refresh(&acct, oauth_client(&acct), &SecretString::from("rt-9"));
        assert_eq!(
            String::from_utf8(refresh.body_bytes()).unwrap(),
            r#"{"client_id":"cid-1","client_secret":"cs-2","grant_type":"refresh_token","refresh_token":"rt-9"}"#
        );

        let (acct, _d) = account(&[("token_encoding", "form")], OAUTH);
        let r = token_password(&acct, oauth_client(&acct));
        assert_eq!(r.content_type(), Some("application/x-www-form-urlencoded"));
        assert_eq!(
            String::from_utf8(r.body_bytes()).unwrap(),
            "grant_type=password&client_id=cid-1&client_secret=cs-2&username=admin%40acme&password=pw+3%26"
        );
    }

    #[test]
    fn debug_output_redacts_every_secret() {
        let (acct, _d) = account(&[], OAUTH);
        let mut v = minimal();
        v["voicemail-login-pin"] = json!("918273");
        let shown = [
            format!("{:?}", create_user(&acct, &Domain::parse("d").unwrap(), &user(v), &bearer())),
            format!("{:?}", token_password(&acct, oauth_client(&acct))),
            format!("{:?}", token_refresh(&acct, oauth_client(&acct), &SecretString::from("rt-secret"))),
        ]
        .join("\n");
        for secret in ["918273", "nsd_TESTKEY", "cid-1", "cs-2", "admin@acme", "pw 3&", "rt-secret"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("\"user\":\"1042\""), "{shown}");
    }
}
