//! Pure reading of NetSapiens answers (status, headers, body) into receipts, lookup results, tokens or classified errors.

use std::time::Duration;

use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Map, Value};

use super::account::DomainNotFound;
use super::fields::{Changes, Domain, Extension, NewUser};
use crate::vendors::{http, Receipt, VendorError, VendorFailure};

/// The stable error codes this adapter emits.
pub mod code {
    /// 409 on create: the adapter looks the user up before deciding.
    pub const ALREADY_EXISTS: &str = "already_exists";
    pub const USER_DIFFERS: &str = "user_differs";
    pub const LOGIN_USERNAME_TAKEN: &str = "login_username_taken";
    pub const BAD_REQUEST: &str = "bad_request";
    /// 401: with OAuth the adapter refreshes the token and tries once more.
    pub const UNAUTHORIZED: &str = "unauthorized";
    pub const FORBIDDEN: &str = "forbidden";
    pub const DOMAIN_NOT_FOUND: &str = "domain_not_found";
    pub const NO_DOMAIN: &str = "no_domain";
    pub const WRONG_HOST: &str = "wrong_host";
    pub const REDIRECT: &str = "redirect";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const UNREADABLE_BODY: &str = "unreadable_body";
    pub const TOKEN_REFUSED: &str = "token_refused";
    /// An update, suspend or restore of an extension the domain does not hold.
    pub const NO_SUCH_USER: &str = "no_such_user";
    /// A suspend or restore for an account without `settings.suspend` / `settings.restore`:
    /// NetSapiens has no suspend of its own, so the account says which fields make one.
    pub const SUSPEND_NOT_CONFIGURED: &str = "suspend_not_configured";
    pub const RESTORE_NOT_CONFIGURED: &str = "restore_not_configured";
    /// A delete for an account without `settings.hard_delete = true`: NetSapiens deletes
    /// for good.
    pub const HARD_DELETE_NOT_ALLOWED: &str = "hard_delete_not_allowed";
}

/// What came back from one HTTP call.
#[derive(Clone, Copy, Debug)]
pub struct Answer<'a> {
    pub status: StatusCode,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// A user as `GET /domains/{domain}/users/{user}` (or a synchronous create) returns it.
///
/// Read leniently: the spec's 200 example uses v1 names (`first_name`, `scope`,
/// `subscriber_login`) while its schema uses the hyphenated v2 names, and snapshots disagree
/// on `email` vs `email-address`. Whichever is present is taken; unknown keys are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FoundUser {
    pub domain: Option<String>,
    pub user: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub scope: Option<String>,
    pub login_username: Option<String>,
    pub account_status: Option<String>,
    pub created_datetime: Option<String>,
    /// Every field the vendor returned with a text or number value, secrets left out: what
    /// an update compares its changes with.
    pub record: Map<String, Value>,
}

impl FoundUser {
    pub fn from_json(value: &Value) -> Option<Self> {
        let obj = value.as_object()?;
        let pick = |names: &[&str]| names.iter().find_map(|n| scalar(obj, n));
        Some(Self {
            domain: pick(&["domain"]),
            user: pick(&["user"]),
            first_name: pick(&["name-first-name", "first_name"]),
            last_name: pick(&["name-last-name", "last_name"]),
            email: pick(&["email", "email-address", "email_address"]),
            scope: pick(&["user-scope", "scope"]),
            login_username: pick(&["login-username", "subscriber_login"]),
            account_status: pick(&["account-status", "account_status"]),
            created_datetime: pick(&["created-datetime", "created_datetime"]),
            record: obj
                .iter()
                .filter(|(k, v)| !is_secret_name(k) && (v.is_string() || v.is_number()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    /// What the record shows for a field, under its v2 wire name or, since the spec's own
    /// example answers with v1 names, under the v1 name of the fields that have one, or the
    /// v2 name with `_` for `-` (`time_zone`).
    fn shown(&self, name: &str) -> Option<&Value> {
        let aliases: &[&str] = match name {
            "name-first-name" => &["first_name"],
            "name-last-name" => &["last_name"],
            "email" => &["email-address", "email_address"],
            "user-scope" => &["scope"],
            "login-username" => &["subscriber_login"],
            _ => &[],
        };
        self.record
            .get(name)
            .or_else(|| aliases.iter().find_map(|a| self.record.get(*a)))
            .or_else(|| self.record.get(&name.replace('-', "_")))
    }

    /// The wire names of the changes this record does not show done: a field the record
    /// does not show, or shows with another value, and every secret (never shown). Empty:
    /// the user already is as the changes ask, and nothing needs sending.
    pub fn pending(&self, changes: &Changes) -> Vec<&'static str> {
        changes
            .iter()
            .filter(|(name, wire)| !self.shown(name).is_some_and(|v| wire.same_as(v)))
            .map(|(n, _)| n)
            .collect()
    }

    /// The wire names of the identity fields where this user differs from the wanted one.
    /// A field the vendor did not return cannot contradict the job, so it is not a difference.
    pub fn differences(&self, wanted: &NewUser) -> Vec<&'static str> {
        let mut out = Vec::new();
        let differs = |have: &Option<String>, want: &str| have.as_deref().is_some_and(|h| h.trim() != want.trim());
        if differs(&self.first_name, wanted.first_name().as_str()) {
            out.push("name-first-name");
        }
        if differs(&self.last_name, wanted.last_name().as_str()) {
            out.push("name-last-name");
        }
        if self.email.as_deref().is_some_and(|e| !wanted.email().same_as(e)) {
            out.push("email");
        }
        if differs(&self.scope, wanted.scope().as_str()) {
            out.push("user-scope");
        }
        if let (Some(have), Some(want)) = (&self.login_username, wanted.login_username()) {
            if !have.eq_ignore_ascii_case(want.as_str()) {
                out.push("login-username");
            }
        }
        out
    }
}

/// The user record of a 200 answer about `user`. An object that does not name the extension
/// it answers for (an error's JSON, a proxy's, any other JSON that parses) is no record: read
/// as one, it would announce a user nobody created, or call a stranger's user ours.
fn user_record(a: &Answer<'_>, user: &Extension) -> Option<FoundUser> {
    let found = json_body(a).as_ref().and_then(FoundUser::from_json)?;
    found.user.as_deref().is_some_and(|u| u.trim().eq_ignore_ascii_case(user.as_str())).then_some(found)
}

/// A field that holds a PIN or password: never kept from an answer, so it cannot reach a
/// receipt, an error or a debug line.
fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("pin") || n.contains("password") || n.contains("secret")
}

fn scalar(obj: &Map<String, Value>, name: &str) -> Option<String> {
    match obj.get(name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The receipt for a user at `(domain, user)`, with what the vendor told us about it.
pub fn receipt(domain: &Domain, user: &Extension, remote: Option<&FoundUser>, existing: bool) -> Receipt {
    let mut details = Map::new();
    details.insert("domain".into(), Value::from(domain.as_str()));
    details.insert("user".into(), Value::from(user.as_str()));
    if let Some(r) = remote {
        let extra = [
            ("login-username", &r.login_username),
            ("user-scope", &r.scope),
            ("account-status", &r.account_status),
            ("created-datetime", &r.created_datetime),
        ];
        for (k, v) in extra {
            if let Some(v) = v {
                details.insert(k.into(), Value::from(v.as_str()));
            }
        }
    }
    Receipt { existing, vendor_user_id: Some(format!("{user}@{domain}")), details }
}

/// Reads the answer to `POST /domains/{domain}/users`.
///
/// 200 (synchronous) and 202 (asynchronous) are success. 409 comes back as
/// [`code::ALREADY_EXISTS`]: only a lookup can tell a replay from a different user.
pub fn interpret_create(
    a: &Answer<'_>,
    domain: &Domain,
    user: &Extension,
    policy: DomainNotFound,
) -> Result<Receipt, VendorError> {
    match a.status {
        StatusCode::OK => {
            let remote = user_record(a, user).ok_or_else(|| unreadable(a))?;
            Ok(receipt(domain, user, Some(&remote), false))
        }
        // 202's body is a bare acknowledgement (`{"code":202,"message":"Accepted"}`, typed
        // `*/*`); other 2xx are not documented but still mean the write was taken.
        s if s.is_success() => Ok(receipt(domain, user, None, false)),
        StatusCode::CONFLICT => Err(VendorError::new(
            VendorFailure::Conflict,
            code::ALREADY_EXISTS,
            format!(
                "NetSapiens says the user already exists ({}); look it up to tell a replay from a different user",
                message_or(a, "no message")
            ),
        )),
        _ => Err(failure(a, domain, policy)),
    }
}

/// Decides what a user found at `(domain, user)` means for this job: the same person (a
/// replay or redelivery) is `existing`; anyone else holding the extension is a conflict.
pub fn reconcile(domain: &Domain, wanted: &NewUser, remote: &FoundUser) -> Result<Receipt, VendorError> {
    let differences = remote.differences(wanted);
    if differences.is_empty() {
        return Ok(receipt(domain, wanted.user(), Some(remote), true));
    }
    Err(VendorError::new(
        VendorFailure::Conflict,
        code::USER_DIFFERS,
        format!(
            "extension {} in domain {domain} already belongs to a different user ({} differ); pick another extension \
             or correct the job",
            wanted.user(),
            differences.join(", ")
        ),
    ))
}

/// A 409 whose user is not in this domain: the platform-wide `login-username` is taken.
pub fn login_username_taken(domain: &Domain, wanted: &NewUser) -> VendorError {
    let login =
        wanted.login_username().map_or_else(|| format!("{}@{domain}", wanted.user()), |l| l.as_str().to_owned());
    VendorError::new(
        VendorFailure::Conflict,
        code::LOGIN_USERNAME_TAKEN,
        format!(
            "NetSapiens reports a duplicate, but extension {} does not exist in domain {domain}: the login-username \
             {login:?} is taken elsewhere on the platform; choose another login-username",
            wanted.user()
        ),
    )
}

/// Reads the answer to `GET /domains/{domain}/users/{user}`: `Ok(None)` when the user does not
/// exist. The spec lists no 404 for this call (siblings answer `404 Record not found`), so a
/// 404 is "absent" unless its message says the domain itself is missing.
pub fn interpret_lookup(
    a: &Answer<'_>,
    domain: &Domain,
    user: &Extension,
    policy: DomainNotFound,
) -> Result<Option<FoundUser>, VendorError> {
    match a.status {
        StatusCode::OK => user_record(a, user).map(Some).ok_or_else(|| unreadable(a)),
        StatusCode::NOT_FOUND if user_missing(a) => Ok(None),
        _ => Err(failure(a, domain, policy)),
    }
}

/// The refusal of a change to an extension the domain does not hold.
pub fn no_such_user(domain: &Domain, user: &Extension) -> VendorError {
    VendorError::new(
        VendorFailure::Rejected,
        code::NO_SUCH_USER,
        format!(
            "extension {user} does not exist in domain {domain} at NetSapiens; correct the job's user or domain, or \
             send a create_user job first"
        ),
    )
}

/// A 404 that says the user, not the domain or the host, is missing: the vendor's JSON
/// error shape (`Record not found` for sibling reads; the exact words for users are
/// unconfirmed), without naming a missing domain or reseller.
fn user_missing(a: &Answer<'_>) -> bool {
    a.status == StatusCode::NOT_FOUND && json_body(a).is_some() && !names_missing_domain(a)
}

/// Reads the answer to `PUT /domains/{domain}/users/{user}` that sent `sent`.
///
/// 202 is documented; 200 and other 2xx mean the change was taken as well. A 404 about the
/// user (deleted since the lookup) is [`code::NO_SUCH_USER`]. A 409 can only be the one
/// platform-wide unique field an update may collide on, `login-username`.
pub fn interpret_update(
    a: &Answer<'_>,
    domain: &Domain,
    user: &Extension,
    sent: &Changes,
    policy: DomainNotFound,
) -> Result<Receipt, VendorError> {
    match a.status {
        s if s.is_success() => {
            let mut r = receipt(domain, user, None, false);
            let changed: Vec<Value> = sent.iter().map(|(name, _)| Value::from(name)).collect();
            r.details.insert("changed".into(), Value::Array(changed));
            Ok(r)
        }
        StatusCode::NOT_FOUND if user_missing(a) => Err(no_such_user(domain, user)),
        StatusCode::CONFLICT => Err(VendorError::new(
            VendorFailure::Conflict,
            code::LOGIN_USERNAME_TAKEN,
            format!(
                "NetSapiens refused the change to extension {user} in domain {domain} as a duplicate ({}): the \
                 login-username is unique on the whole platform and another user holds it; choose another \
                 login-username",
                message_or(a, "no message")
            ),
        )),
        _ => Err(failure(a, domain, policy)),
    }
}

/// Reads the answer to `DELETE /domains/{domain}/users/{user}`: 202 (documented) or any 2xx
/// is deleted; a 404 about the user means it is gone already (deleted since the lookup), so
/// `existing`, never an error.
pub fn interpret_delete(
    a: &Answer<'_>,
    domain: &Domain,
    user: &Extension,
    policy: DomainNotFound,
) -> Result<Receipt, VendorError> {
    match a.status {
        s if s.is_success() => Ok(receipt(domain, user, None, false)),
        StatusCode::NOT_FOUND if user_missing(a) => Ok(receipt(domain, user, None, true)),
        _ => Err(failure(a, domain, policy)),
    }
}

/// The longest token lifetime believed from `expires_in`.
pub const TOKEN_LIFETIME_CEILING: Duration = Duration::from_secs(24 * 3600);

/// An OAuth token from `POST /tokens`.
#[derive(Clone, Debug)]
pub struct Token {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    /// `None` when the vendor does not say: the token is then kept until a 401.
    pub expires_in: Option<Duration>,
}

/// Reads the answer to `POST /tokens`.
pub fn token(a: &Answer<'_>) -> Result<Token, VendorError> {
    if a.status == StatusCode::OK {
        let body = json_body(a).ok_or_else(|| unreadable(a))?;
        let obj = body.as_object().ok_or_else(|| unreadable(a))?;
        let access = scalar(obj, "access_token").ok_or_else(|| unreadable(a))?;
        if scalar(obj, "token_type").is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) {
            return Err(VendorError::new(
                VendorFailure::Auth,
                code::TOKEN_REFUSED,
                "the token endpoint issued a token that is not a Bearer token; check base_url",
            ));
        }
        // Clamped: a token claiming to live for centuries is treated as a day-long one, so
        // the cache's deadline arithmetic cannot overflow.
        let expires_in = scalar(obj, "expires_in")
            .and_then(|s| s.parse::<u64>().ok())
            .map(|secs| Duration::from_secs(secs).min(TOKEN_LIFETIME_CEILING));
        return Ok(Token {
            access_token: SecretString::from(access),
            refresh_token: scalar(obj, "refresh_token").map(SecretString::from),
            expires_in,
        });
    }
    match a.status.as_u16() {
        400 | 401 | 403 => Err(VendorError::new(
            VendorFailure::Auth,
            code::TOKEN_REFUSED,
            format!(
                "the token endpoint refused the OAuth grant ({}): check the account's client_id, client_secret, \
                 username and password (a login with MFA cannot be used unattended)",
                message_or(a, &format!("HTTP {}", a.status.as_u16()))
            ),
        )),
        _ => Err(generic(a)),
    }
}

/// The classification shared by every call for a status that is not its success.
fn failure(a: &Answer<'_>, domain: &Domain, policy: DomainNotFound) -> VendorError {
    let msg = |fallback: &str| message_or(a, fallback);
    match a.status.as_u16() {
        400 => VendorError::new(
            VendorFailure::Rejected,
            code::BAD_REQUEST,
            format!("NetSapiens refused the request ({}); fix the job's fields, it is not retried", msg("no message")),
        ),
        401 => VendorError::new(
            VendorFailure::Auth,
            code::UNAUTHORIZED,
            format!(
                "NetSapiens refused the credentials ({}); check the account's api_key or OAuth client",
                msg("Authentication Required")
            ),
        ),
        403 => VendorError::new(
            VendorFailure::Auth,
            code::FORBIDDEN,
            format!(
                "NetSapiens denied access to domain {domain} ({}); the key or login needs a scope that may manage \
                 users there (Reseller or Super User), write access and an allow-listed IP",
                msg("access denied")
            ),
        ),
        404 if json_body(a).is_none() => VendorError::new(
            VendorFailure::Auth,
            code::WRONG_HOST,
            "HTTP 404 without a NetSapiens JSON body: the account's base_url does not serve API v2 \
             (expected https://{server}/ns-api/v2)",
        ),
        404 => {
            let (failure, what) = match policy {
                DomainNotFound::Auth => (VendorFailure::Auth, "fix the account's or the job's domain"),
                DomainNotFound::Transient => (VendorFailure::Transient, "retried in case an earlier step creates it"),
            };
            VendorError::new(
                failure,
                code::DOMAIN_NOT_FOUND,
                format!("domain {domain} does not exist at NetSapiens ({}); {what}", msg("not found")),
            )
        }
        _ => generic(a),
    }
}

/// Statuses every call reads the same way: throttling, server errors, redirects, the rest.
fn generic(a: &Answer<'_>) -> VendorError {
    let status = a.status.as_u16();
    let mut err = match status {
        429 => VendorError::new(
            VendorFailure::Throttled,
            code::RATE_LIMITED,
            "NetSapiens is throttling requests (429); retry after the delay it asked for",
        ),
        408 | 500..=599 => VendorError::new(
            VendorFailure::Transient,
            format!("http_{status}"),
            format!("NetSapiens answered HTTP {status} ({}); retry later", message_or(a, "no message")),
        ),
        300..=399 => VendorError::new(
            VendorFailure::Auth,
            code::REDIRECT,
            format!("NetSapiens redirected the call (HTTP {status}); point the account's base_url at the final https address"),
        ),
        _ => VendorError::new(
            VendorFailure::Rejected,
            format!("http_{status}"),
            format!("NetSapiens refused the request with HTTP {status} ({}); it is not retried", message_or(a, "no message")),
        ),
    };
    err.retry_after = http::retry_after(a.headers);
    err
}

fn unreadable(a: &Answer<'_>) -> VendorError {
    let mut e = VendorError::new(
        VendorFailure::Transient,
        code::UNREADABLE_BODY,
        format!(
            "NetSapiens answered HTTP {} with a body that is not the documented JSON ({}); retried, and the user is \
             looked up first",
            a.status.as_u16(),
            excerpt(a.body)
        ),
    );
    e.retry_after = http::retry_after(a.headers);
    e
}

/// The body as JSON, if the vendor sent JSON. HTML error pages (wrong host, proxies) are not.
fn json_body(a: &Answer<'_>) -> Option<Value> {
    let ct = a.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    if ct.contains("html") {
        return None;
    }
    http::json_within_budget(a.body).ok()?;
    serde_json::from_slice::<Value>(a.body).ok().filter(Value::is_object)
}

/// The `message` of the vendor's `ErrorResponse` (`{"code":…, "message":…}`), made safe to log.
fn message_or(a: &Answer<'_>, fallback: &str) -> String {
    json_body(a)
        .and_then(|v| v.get("message").and_then(Value::as_str).map(clean))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| fallback.to_owned())
}

fn names_missing_domain(a: &Answer<'_>) -> bool {
    let m = message_or(a, "").to_ascii_lowercase();
    (m.contains("domain") || m.contains("reseller")) && (m.contains("does not exist") || m.contains("not found"))
}

/// At most 160 characters, without control characters.
fn clean(s: &str) -> String {
    let flat: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let words = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    match words.char_indices().nth(160) {
        Some((i, _)) => format!("{}…", &words[..i]),
        None => words,
    }
}

/// A short, flattened start of an unexpected body, for the operator to recognise it.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned();
    let shown = clean(&text);
    let shown: String = shown.chars().take(80).collect();
    if shown.is_empty() {
        "empty body".into()
    } else {
        format!("starts {shown:?}")
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderValue, RETRY_AFTER};
    use serde_json::json;

    use super::*;
    use crate::vendors::netsapiens::fields::tests::{fields, minimal};

    fn d() -> Domain {
        Domain::parse("acme.example").unwrap()
    }
    fn u() -> Extension {
        Extension::parse("1042").unwrap()
    }
    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h
    }

    fn create_with(status: u16, headers: &HeaderMap, body: &str) -> Result<Receipt, VendorError> {
        let a = Answer { status: StatusCode::from_u16(status).unwrap(), headers, body: body.as_bytes() };
        interpret_create(&a, &d(), &u(), DomainNotFound::Auth)
    }

    fn class(r: Result<Receipt, VendorError>) -> (VendorFailure, String) {
        let e = r.unwrap_err();
        (e.failure, e.code)
    }

    const SYNC_USER: &str = r#"{"domain":"acme.example","user":"1042","name-first-name":"Jane","name-last-name":"Doe",
        "email":"jane.doe@acme.example","user-scope":"Basic User","login-username":"1042@acme.example",
        "account-status":"new","created-datetime":"2026-11-22T09:30:01Z","voicemail-login-pin":"482913"}"#;

    #[test]
    fn synchronous_200_is_created_with_what_the_vendor_returned() {
        let r = create_with(200, &json_headers(), SYNC_USER).unwrap();
        assert!(!r.existing);
        assert_eq!(r.vendor_user_id.as_deref(), Some("1042@acme.example"));
        assert_eq!(
            Value::Object(r.details.clone()),
            json!({"domain": "acme.example", "user": "1042", "login-username": "1042@acme.example",
                   "user-scope": "Basic User", "account-status": "new", "created-datetime": "2026-11-22T09:30:01Z"})
        );
        assert!(!format!("{r:?}").contains("482913"), "the PIN never reaches a receipt");
    }

    #[test]
    fn the_v1_names_of_the_spec_example_are_read_too() {
        let v1 = r#"{"user":"1042","first_name":"Jane","last_name":"Doe","subscriber_login":"1042@acme.example",
                     "scope":"Basic User","email":"jane.doe@acme.example","vmail_enabled":"yes"}"#;
        let r = create_with(200, &json_headers(), v1).unwrap();
        assert_eq!(r.details["user-scope"], "Basic User");
        assert_eq!(r.details["login-username"], "1042@acme.example");
    }

    /// Found by the hostile suite: a 200 whose JSON is not about the user (here a flat array
    /// under another key) was read as a user with no fields, so a create that never happened
    /// was announced `created`, and a lookup answered `existing`.
    #[test]
    fn a_200_that_does_not_name_the_user_is_no_user() {
        let h = json_headers();
        let stranger = SYNC_USER.replace(r#""user":"1042""#, r#""user":"1043""#);
        for body in [r#"{"a":[0,0,0]}"#, r#"{"code":200,"message":"OK"}"#, "{}", stranger.as_str()] {
            assert_eq!(class(create_with(200, &h, body)), (VendorFailure::Transient, code::UNREADABLE_BODY.into()));
            let a = Answer { status: StatusCode::OK, headers: &h, body: body.as_bytes() };
            let e = interpret_lookup(&a, &d(), &u(), DomainNotFound::Auth).unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Transient, code::UNREADABLE_BODY), "{body}");
        }
        let numeric = r#"{"user":1042,"name-first-name":"Jane"}"#;
        assert!(create_with(200, &h, numeric).is_ok(), "the extension may come back as a number");
    }

    #[test]
    fn asynchronous_202_is_created() {
        let r = create_with(202, &HeaderMap::new(), r#"{"code":202,"message":"Accepted"}"#).unwrap();
        assert_eq!(r.vendor_user_id.as_deref(), Some("1042@acme.example"));
        assert_eq!(Value::Object(r.details), json!({"domain": "acme.example", "user": "1042"}));
        assert!(create_with(202, &HeaderMap::new(), "").is_ok(), "202 typed */* may be empty");
    }

    #[test]
    fn every_error_status_is_classified() {
        let h = json_headers();
        let body = |code: u16, m: &str| json!({"code": code, "message": m}).to_string();
        let cases = [
            (409, body(409, "UID already exists."), VendorFailure::Conflict, code::ALREADY_EXISTS),
            (400, body(400, "Missing required field name-last-name"), VendorFailure::Rejected, code::BAD_REQUEST),
            (401, body(401, "Authentication Required"), VendorFailure::Auth, code::UNAUTHORIZED),
            (403, body(403, "Domain not found or access denied"), VendorFailure::Auth, code::FORBIDDEN),
            (404, body(404, "Domain acme.example does not exist"), VendorFailure::Auth, code::DOMAIN_NOT_FOUND),
            (429, body(429, "slow down"), VendorFailure::Throttled, code::RATE_LIMITED),
            (500, body(500, "oops"), VendorFailure::Transient, "http_500"),
            (503, "".into(), VendorFailure::Transient, "http_503"),
            (408, "".into(), VendorFailure::Transient, "http_408"),
            (422, body(422, "nope"), VendorFailure::Rejected, "http_422"),
            (301, "".into(), VendorFailure::Auth, code::REDIRECT),
        ];
        for (status, body, failure, code) in cases {
            assert_eq!(class(create_with(status, &h, &body)), (failure, code.to_owned()), "HTTP {status}");
        }
    }

    #[test]
    fn messages_carry_the_vendors_words_and_what_to_do() {
        let e = create_with(400, &json_headers(), r#"{"code":400,"message":"Missing required field name-last-name"}"#)
            .unwrap_err();
        assert!(e.message.contains("Missing required field name-last-name") && e.message.contains("fix the job"));
        let e = create_with(403, &json_headers(), r#"{"code":403,"message":"Domain not found or access denied"}"#)
            .unwrap_err();
        assert!(e.message.contains("acme.example") && e.message.contains("Reseller"), "{}", e.message);
    }

    #[test]
    fn a_missing_domain_is_a_config_error_or_retried_per_account() {
        let h = json_headers();
        let b = br#"{"code":404,"message":"Domain acme.example does not exist"}"#;
        let a = Answer { status: StatusCode::NOT_FOUND, headers: &h, body: b };
        assert_eq!(interpret_create(&a, &d(), &u(), DomainNotFound::Auth).unwrap_err().failure, VendorFailure::Auth);
        assert_eq!(
            interpret_create(&a, &d(), &u(), DomainNotFound::Transient).unwrap_err().failure,
            VendorFailure::Transient
        );
    }

    #[test]
    fn html_means_the_wrong_host() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
        assert_eq!(
            class(create_with(404, &h, "<html>Not Found</html>")),
            (VendorFailure::Auth, code::WRONG_HOST.into())
        );
        let e = create_with(200, &h, "<html><body>Welcome to nginx!</body></html>").unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Transient, code::UNREADABLE_BODY));
        assert!(e.message.contains("Welcome to nginx"), "{}", e.message);
    }

    #[test]
    fn garbage_is_transient_with_a_short_flat_excerpt() {
        let garbage = format!("\u{1b}[31m{}", "x".repeat(5000));
        let e = create_with(200, &HeaderMap::new(), &garbage).unwrap_err();
        assert_eq!(e.failure, VendorFailure::Transient);
        assert!(e.message.len() < 300 && !e.message.contains('\u{1b}'), "{}", e.message);
        assert_eq!(create_with(200, &json_headers(), "[1,2]").unwrap_err().code, code::UNREADABLE_BODY);
    }

    #[test]
    fn retry_after_is_kept() {
        let mut h = json_headers();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        for status in [429, 503] {
            assert_eq!(create_with(status, &h, "{}").unwrap_err().retry_after, Some(Duration::from_secs(7)));
        }
    }

    #[test]
    fn lookup_reads_present_absent_and_missing_domain() {
        let h = json_headers();
        let ans = |status: u16, body: &'static str| Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: &h,
            body: body.as_bytes(),
        };
        let found = interpret_lookup(&ans(200, SYNC_USER), &d(), &u(), DomainNotFound::Auth).unwrap().unwrap();
        assert_eq!(found.first_name.as_deref(), Some("Jane"));
        assert_eq!(
            interpret_lookup(
                &ans(404, r#"{"code":404,"message":"Record not found"}"#),
                &d(),
                &u(),
                DomainNotFound::Auth
            )
            .unwrap(),
            None
        );
        let e = interpret_lookup(
            &ans(404, r#"{"code":404,"message":"Domain acme.example does not exist"}"#),
            &d(),
            &u(),
            DomainNotFound::Auth,
        )
        .unwrap_err();
        assert_eq!(e.code, code::DOMAIN_NOT_FOUND);
        assert_eq!(
            interpret_lookup(&ans(404, "not json"), &d(), &u(), DomainNotFound::Auth).unwrap_err().code,
            code::WRONG_HOST
        );
        assert_eq!(
            interpret_lookup(&ans(401, "{}"), &d(), &u(), DomainNotFound::Auth).unwrap_err().code,
            code::UNAUTHORIZED
        );
        assert_eq!(
            interpret_lookup(&ans(502, "bad gateway"), &d(), &u(), DomainNotFound::Auth).unwrap_err().failure,
            VendorFailure::Transient
        );
        assert_eq!(
            interpret_lookup(&ans(200, "garbage"), &d(), &u(), DomainNotFound::Auth).unwrap_err().code,
            code::UNREADABLE_BODY
        );
    }

    #[test]
    fn differences_name_the_fields_and_tolerate_missing_ones() {
        let wanted = NewUser::parse(&fields(minimal())).unwrap();
        let same = FoundUser::from_json(&serde_json::from_str(SYNC_USER).unwrap()).unwrap();
        assert_eq!(same.differences(&wanted), Vec::<&str>::new());
        let sparse = FoundUser { user: Some("1042".into()), ..Default::default() };
        assert_eq!(sparse.differences(&wanted), Vec::<&str>::new());
        let other = FoundUser {
            first_name: Some("John".into()),
            email: Some("JANE.DOE@acme.example".into()),
            scope: Some("Office Manager".into()),
            ..Default::default()
        };
        assert_eq!(other.differences(&wanted), ["name-first-name", "user-scope"]);
        let mut v = minimal();
        v["login-username"] = json!("jane@acme.example");
        let wanted = NewUser::parse(&fields(v)).unwrap();
        assert_eq!(same.differences(&wanted), ["login-username"]);
    }

    fn changes(v: Value) -> Changes {
        let mut user = json!({"user": "1042"});
        user.as_object_mut().unwrap().extend(v.as_object().unwrap().clone());
        crate::vendors::netsapiens::fields::UserChange::parse(&fields(user)).unwrap().changes().clone()
    }

    fn answer<'a>(status: u16, h: &'a HeaderMap, body: &'a str) -> Answer<'a> {
        Answer { status: StatusCode::from_u16(status).unwrap(), headers: h, body: body.as_bytes() }
    }

    #[test]
    fn pending_names_what_the_record_does_not_show_done() {
        let found = FoundUser::from_json(&serde_json::from_str(SYNC_USER).unwrap()).unwrap();
        let c = changes(json!({"name-first-name": "Jane", "user-scope": "No Portal", "site": "HQ",
                               "email": "JANE.DOE@acme.example"}));
        assert_eq!(found.pending(&c), ["site", "user-scope"]);
        assert_eq!(found.pending(&c.only(&["name-first-name", "email"])), Vec::<&str>::new());
        // The PIN the vendor showed is not kept, and a PIN is never done.
        assert!(!format!("{found:?}").contains("482913"));
        assert_eq!(found.pending(&changes(json!({"voicemail-login-pin": "482913"}))), ["voicemail-login-pin"]);
        // v1 names, and `_` for `-`.
        let v1 = FoundUser::from_json(&json!({"user": "1042", "first_name": "Jane", "scope": "No Portal",
            "subscriber_login": "1042@acme.example", "time_zone": "US/Eastern", "area-code": {"n": 1}}))
        .unwrap();
        let c = changes(json!({"name-first-name": "Jane", "user-scope": "No Portal", "time-zone": "US/Eastern",
                               "login-username": "1042@ACME.example", "area-code": 212}));
        assert_eq!(v1.pending(&c), ["area-code"], "a value that is no scalar shows nothing");
    }

    #[test]
    fn update_answers_are_read_like_the_create() {
        let h = json_headers();
        let c = changes(json!({"site": "HQ", "department": "Support"}));
        let read =
            |status: u16, body: &str| interpret_update(&answer(status, &h, body), &d(), &u(), &c, DomainNotFound::Auth);
        for (status, body) in [(202, r#"{"code":202,"message":"Accepted"}"#), (200, SYNC_USER), (204, "")] {
            let r = read(status, body).unwrap();
            assert!(!r.existing);
            assert_eq!(
                Value::Object(r.details),
                json!({"domain": "acme.example", "user": "1042", "changed": ["department", "site"]})
            );
        }
        let cases = [
            (404, r#"{"code":404,"message":"Record not found"}"#, VendorFailure::Rejected, code::NO_SUCH_USER),
            (
                404,
                r#"{"code":404,"message":"Domain acme.example does not exist"}"#,
                VendorFailure::Auth,
                code::DOMAIN_NOT_FOUND,
            ),
            (404, "<html>nginx</html>", VendorFailure::Auth, code::WRONG_HOST),
            (409, r#"{"code":409,"message":"login taken"}"#, VendorFailure::Conflict, code::LOGIN_USERNAME_TAKEN),
            (400, r#"{"code":400,"message":"Invalid value"}"#, VendorFailure::Rejected, code::BAD_REQUEST),
            (401, "{}", VendorFailure::Auth, code::UNAUTHORIZED),
            (403, "{}", VendorFailure::Auth, code::FORBIDDEN),
            (429, "{}", VendorFailure::Throttled, code::RATE_LIMITED),
            (503, "", VendorFailure::Transient, "http_503"),
        ];
        for (status, body, failure, code) in cases {
            let e = read(status, body).unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (failure, code), "{status} {body}");
        }
        let e = read(404, r#"{"code":404,"message":"Record not found"}"#).unwrap_err();
        assert!(e.message.contains("1042") && e.message.contains("acme.example"), "{}", e.message);
    }

    #[test]
    fn delete_answers_treat_a_user_already_gone_as_existing() {
        let h = json_headers();
        let read =
            |status: u16, body: &str| interpret_delete(&answer(status, &h, body), &d(), &u(), DomainNotFound::Auth);
        let r = read(202, r#"{"code":202,"message":"Accepted"}"#).unwrap();
        assert_eq!((r.existing, Value::Object(r.details)), (false, json!({"domain": "acme.example", "user": "1042"})));
        assert!(read(200, "").is_ok_and(|r| !r.existing));
        assert!(read(404, r#"{"code":404,"message":"Record not found"}"#).unwrap().existing);
        let cases = [
            (
                404,
                r#"{"code":404,"message":"Domain acme.example does not exist"}"#,
                VendorFailure::Auth,
                code::DOMAIN_NOT_FOUND,
            ),
            (404, "", VendorFailure::Auth, code::WRONG_HOST),
            (403, "{}", VendorFailure::Auth, code::FORBIDDEN),
            (429, "{}", VendorFailure::Throttled, code::RATE_LIMITED),
            (500, "{}", VendorFailure::Transient, "http_500"),
            (409, "{}", VendorFailure::Rejected, "http_409"),
        ];
        for (status, body, failure, code) in cases {
            let e = read(status, body).unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (failure, code), "{status} {body}");
        }
        let e = interpret_delete(
            &answer(404, &h, r#"{"code":404,"message":"Domain acme.example does not exist"}"#),
            &d(),
            &u(),
            DomainNotFound::Transient,
        )
        .unwrap_err();
        assert_eq!(e.failure, VendorFailure::Transient);
    }

    #[test]
    fn a_token_that_claims_to_live_forever_is_clamped() {
        let h = json_headers();
        let forever = br#"{"access_token":"a","expires_in":18446744073709551615}"#;
        let t = token(&Answer { status: StatusCode::OK, headers: &h, body: forever }).unwrap();
        assert_eq!(t.expires_in, Some(TOKEN_LIFETIME_CEILING));
    }

    #[test]
    fn tokens_are_read_and_refusals_are_auth() {
        let h = json_headers();
        let ok = br#"{"access_token":"at-1","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-1","scope":"Reseller"}"#;
        let t = token(&Answer { status: StatusCode::OK, headers: &h, body: ok }).unwrap();
        assert_eq!(t.expires_in, Some(Duration::from_secs(3600)));
        assert!(t.refresh_token.is_some());
        assert!(!format!("{t:?}").contains("at-1"));
        let t =
            token(&Answer { status: StatusCode::OK, headers: &h, body: br#"{"access_token":"a","expires_in":"60"}"# })
                .unwrap();
        assert_eq!(t.expires_in, Some(Duration::from_secs(60)));
        for status in [400, 401, 403] {
            let e =
                token(&Answer { status: StatusCode::from_u16(status).unwrap(), headers: &h, body: b"{}" }).unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Auth, code::TOKEN_REFUSED));
        }
        let e = token(&Answer { status: StatusCode::BAD_GATEWAY, headers: &h, body: b"" }).unwrap_err();
        assert_eq!(e.failure, VendorFailure::Transient);
        let e =
            token(&Answer { status: StatusCode::OK, headers: &h, body: br#"{"token_type":"Bearer"}"# }).unwrap_err();
        assert_eq!(e.code, code::UNREADABLE_BODY);
    }
}
