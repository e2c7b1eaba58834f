//! A faithful in-process simulator of the NetSapiens API v2 user calls and token endpoint, with a ledger of the users it holds, for demos and tests.
//!
//! It answers on the vendor's real paths under `/ns-api/v2`, enforces the documented field
//! rules (the same ones the adapter checks, so a request it refuses is one the adapter should
//! never send), Bearer auth, per-domain extension and platform-wide login uniqueness, and
//! uses the vendor's `{"code": …, "message": …}` error shape. Fault injection is not here:
//! a shared layer wraps the router for that.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::fields::{Domain, NewUser, MAX_EXTENSION_LEN};
use crate::contract::{FieldKind, FieldValue, UserFields, VendorKey};

/// A Reseller-scope API key: may create and read users in every sandbox domain.
pub const SANDBOX_API_KEY: &str = "nsr_sandbox0000000000000000000000000";
/// A read-only API key (`readonly=yes`): GET works, POST is refused with 403.
pub const SANDBOX_READONLY_API_KEY: &str = "nsd_sandboxreadonly00000000000000000";
/// OAuth password-grant credentials accepted by `POST /ns-api/v2/tokens`.
pub const SANDBOX_CLIENT_ID: &str = "sandbox-client";
pub const SANDBOX_CLIENT_SECRET: &str = "sandbox-client-secret";
pub const SANDBOX_USERNAME: &str = "provisioner@sandbox.example";
pub const SANDBOX_PASSWORD: &str = "sandbox-password";
/// The domain every sandbox starts with.
pub const SANDBOX_DOMAIN: &str = "sandbox.example";
/// Lifetime of issued access tokens, as in the vendor's published examples.
pub const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// Properties a GET returns that a create must not send.
const READ_ONLY: &[&str] = &[
    "user-presence-status",
    "active-calls-total-current",
    "account-status",
    "created-datetime",
    "last-modified-datetime",
    "domain",
];

#[derive(Debug, Default)]
pub struct Sandbox {
    state: Mutex<SandboxState>,
}

#[derive(Debug, Default)]
struct SandboxState {
    domains: BTreeSet<String>,
    /// (domain, user) → the stored user, as GET returns it.
    users: BTreeMap<(String, String), Map<String, Value>>,
    /// login-username (lower-cased) → (domain, user): unique on the whole platform.
    logins: BTreeMap<String, (String, String)>,
    creations: BTreeMap<(String, String), u32>,
    access_tokens: BTreeMap<String, Instant>,
    refresh_tokens: BTreeSet<String>,
    issued: u64,
}

impl Sandbox {
    /// A sandbox holding the domain [`SANDBOX_DOMAIN`] and no users.
    pub fn new() -> Self {
        Self::with_domains([SANDBOX_DOMAIN])
    }

    pub fn with_domains<'a>(domains: impl IntoIterator<Item = &'a str>) -> Self {
        let s = Self::default();
        s.lock().domains.extend(domains.into_iter().map(str::to_owned));
        s
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SandboxState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many times an identity was created: `user@domain`, or a bare extension summed over
    /// all domains. Never more than 1 if the adapter is idempotent.
    pub fn creations(&self, identity: &str) -> u32 {
        let state = self.lock();
        match identity.split_once('@') {
            Some((user, domain)) => state.creations.get(&(domain.to_owned(), user.to_owned())).copied().unwrap_or(0),
            None => state.creations.iter().filter(|((_, u), _)| u == identity).map(|(_, n)| n).sum(),
        }
    }

    pub fn user_count(&self) -> usize {
        self.lock().users.len()
    }

    /// The stored user, as `GET /domains/{domain}/users/{user}` would return it.
    pub fn user(&self, domain: &str, user: &str) -> Option<Value> {
        self.lock().users.get(&(domain.to_owned(), user.to_owned())).cloned().map(Value::Object)
    }

    /// Identities created more than once: must always be empty.
    pub fn duplicates(&self) -> Vec<String> {
        let state = self.lock();
        state.creations.iter().filter(|(_, n)| **n > 1).map(|((d, u), _)| format!("{u}@{d}")).collect()
    }
}

/// The simulator's routes, on the vendor's own paths.
pub fn router(state: Arc<Sandbox>) -> Router {
    Router::new()
        .route("/ns-api/v2/version", get(version))
        .route("/ns-api/v2/tokens", post(tokens))
        .route("/ns-api/v2/domains/{domain}/users", post(create_user))
        .route("/ns-api/v2/domains/{domain}/users/{user}", get(get_user))
        .fallback(|| async { answer(StatusCode::NOT_FOUND, "Record not found") })
        .with_state(state)
}

fn answer(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"code": status.as_u16(), "message": message.into()}))).into_response()
}

async fn version() -> Response {
    Json(json!({"apiversion": "45.0", "product": "provisioner sandbox"})).into_response()
}

#[derive(PartialEq)]
enum Access {
    Write,
    Read,
}

/// A refusal, answered with [`answer`].
type Refusal = (StatusCode, String);

fn authorize(sandbox: &Sandbox, headers: &HeaderMap) -> Result<Access, Refusal> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or((StatusCode::UNAUTHORIZED, "Authentication Required".to_owned()))?;
    if token == SANDBOX_API_KEY {
        return Ok(Access::Write);
    }
    if token == SANDBOX_READONLY_API_KEY {
        return Ok(Access::Read);
    }
    match sandbox.lock().access_tokens.get(token) {
        Some(expires) if Instant::now() < *expires => Ok(Access::Write),
        Some(_) => Err((StatusCode::UNAUTHORIZED, "Access token expired".to_owned())),
        None => Err((StatusCode::UNAUTHORIZED, "Authentication Required".to_owned())),
    }
}

fn check_domain(sandbox: &Sandbox, domain: &str) -> Result<(), Refusal> {
    if Domain::parse(domain).is_err() || !sandbox.lock().domains.contains(domain) {
        return Err((StatusCode::NOT_FOUND, format!("Domain {domain} does not exist")));
    }
    Ok(())
}

/// `POST /ns-api/v2/tokens`: the password and refresh-token grants. The spec shows JSON;
/// form encoding is accepted too, as the v1 endpoint does.
async fn tokens(State(sandbox): State<Arc<Sandbox>>, headers: HeaderMap, body: Bytes) -> Response {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let params: BTreeMap<String, String> = if is_form {
        match serde_urlencoded::from_bytes(&body) {
            Ok(p) => p,
            Err(_) => return answer(StatusCode::BAD_REQUEST, "Malformed form body"),
        }
    } else {
        match serde_json::from_slice::<BTreeMap<String, Value>>(&body) {
            Ok(m) => m.into_iter().filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned()))).collect(),
            Err(_) => return answer(StatusCode::BAD_REQUEST, "Malformed JSON body"),
        }
    };
    let p = |k: &str| params.get(k).map(String::as_str);
    if p("client_id") != Some(SANDBOX_CLIENT_ID) || p("client_secret") != Some(SANDBOX_CLIENT_SECRET) {
        return answer(StatusCode::UNAUTHORIZED, "Invalid client credentials");
    }
    let mut state = sandbox.lock();
    match p("grant_type") {
        Some("password") => {
            if p("username") != Some(SANDBOX_USERNAME) || p("password") != Some(SANDBOX_PASSWORD) {
                return answer(StatusCode::UNAUTHORIZED, "Invalid username or password");
            }
        }
        Some("refresh_token") => {
            // A refresh token is good for one exchange.
            if !p("refresh_token").is_some_and(|rt| state.refresh_tokens.remove(rt)) {
                return answer(StatusCode::UNAUTHORIZED, "Invalid refresh token");
            }
        }
        _ => return answer(StatusCode::BAD_REQUEST, "grant_type must be password or refresh_token"),
    }
    state.issued += 1;
    let access = format!("nsa_sandbox_access_{:06}", state.issued);
    let refresh = format!("nsa_sandbox_refresh_{:06}", state.issued);
    state.access_tokens.insert(access.clone(), Instant::now() + TOKEN_TTL);
    state.refresh_tokens.insert(refresh.clone());
    Json(json!({
        "access_token": access, "token_type": "Bearer", "expires_in": TOKEN_TTL.as_secs(),
        "refresh_token": refresh, "scope": "Reseller", "domain": SANDBOX_DOMAIN, "user": "provisioner",
        "uid": format!("provisioner@{SANDBOX_DOMAIN}"), "territory": "sandbox", "apiversion": "45.0",
    }))
    .into_response()
}

/// `POST /ns-api/v2/domains/{domain}/users`.
async fn create_user(
    State(sandbox): State<Arc<Sandbox>>,
    Path(domain): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match authorize(&sandbox, &headers) {
        Ok(Access::Write) => {}
        Ok(Access::Read) => return answer(StatusCode::FORBIDDEN, "Read-only API key: only GET requests are allowed"),
        Err((status, message)) => return answer(status, message),
    }
    if let Err((status, message)) = check_domain(&sandbox, &domain) {
        return answer(status, message);
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return answer(StatusCode::BAD_REQUEST, "Request body must be a JSON object");
    };
    let (user, synchronous) = match read_user(&body) {
        Ok(v) => v,
        Err(message) => return answer(StatusCode::BAD_REQUEST, message),
    };

    let ext = user.user().as_str().to_owned();
    let key = (domain.clone(), ext.clone());
    let login = user.login_username().map_or_else(|| format!("{ext}@{domain}"), |l| l.as_str().to_owned());
    let mut state = sandbox.lock();
    if state.users.contains_key(&key) {
        return answer(StatusCode::CONFLICT, "UID already exists.");
    }
    if state.logins.contains_key(&login.to_ascii_lowercase()) {
        return answer(StatusCode::CONFLICT, "login-username already exists on this platform.");
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut stored = Map::new();
    stored.insert("domain".into(), Value::from(domain.as_str()));
    stored.insert("user".into(), Value::from(ext.as_str()));
    stored.insert("name-first-name".into(), Value::from(user.first_name().as_str()));
    stored.insert("name-last-name".into(), Value::from(user.last_name().as_str()));
    stored.insert("email".into(), Value::from(user.email().to_wire()));
    stored.insert("user-scope".into(), Value::from(user.scope().as_str()));
    stored.insert("login-username".into(), Value::from(login.as_str()));
    for (name, value) in user.others().filter(|(_, v)| !v.is_secret()) {
        stored.insert(name.into(), value.to_json());
    }
    stored.insert("account-status".into(), Value::from("new"));
    stored.insert("created-datetime".into(), Value::from(now.as_str()));
    stored.insert("last-modified-datetime".into(), Value::from(now));
    state.users.insert(key.clone(), stored.clone());
    state.logins.insert(login.to_ascii_lowercase(), key.clone());
    *state.creations.entry(key).or_default() += 1;
    if synchronous {
        (StatusCode::OK, Json(Value::Object(stored))).into_response()
    } else {
        answer(StatusCode::ACCEPTED, "Accepted")
    }
}

/// Applies the documented rules to a create body, answering in the vendor's words.
fn read_user(body: &Map<String, Value>) -> Result<(NewUser, bool), String> {
    let mut fields = BTreeMap::new();
    let mut synchronous = false;
    for (name, value) in body {
        if name == "synchronous" {
            synchronous = match value.as_str() {
                Some("yes") => true,
                Some("no") => false,
                _ => return Err("synchronous must be \"yes\" or \"no\"".into()),
            };
            continue;
        }
        if READ_ONLY.contains(&name.as_str()) {
            return Err(format!("{name} is read-only"));
        }
        let spec = VendorKey::Netsapiens.field(name).ok_or_else(|| format!("Unknown property {name}"))?;
        let v = match (spec.kind, value) {
            (FieldKind::Text | FieldKind::TextOrInteger, Value::String(s)) => FieldValue::Text(s.clone()),
            (FieldKind::Integer | FieldKind::TextOrInteger, Value::Number(n)) if n.is_i64() => {
                FieldValue::Integer(n.as_i64().expect("checked"))
            }
            (FieldKind::Integer, _) => return Err(format!("{name} must be an integer")),
            _ => return Err(format!("{name} must be a string")),
        };
        fields.insert(spec.name, v);
    }
    let user = NewUser::parse(&UserFields::new(VendorKey::Netsapiens, fields)).map_err(|errors| {
        let e = &errors[0];
        let field = e.field.trim_start_matches("user.");
        if e.message.starts_with("is required") {
            format!("Missing required field {field}")
        } else {
            format!("Invalid value for {field}: {}", e.message)
        }
    })?;
    Ok((user, synchronous))
}

/// `GET /ns-api/v2/domains/{domain}/users/{user}`.
async fn get_user(
    State(sandbox): State<Arc<Sandbox>>,
    Path((domain, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err((status, message)) = authorize(&sandbox, &headers).and_then(|_| check_domain(&sandbox, &domain)) {
        return answer(status, message);
    }
    if user.len() > MAX_EXTENSION_LEN {
        return answer(StatusCode::BAD_REQUEST, format!("user must be at most {MAX_EXTENSION_LEN} characters"));
    }
    match sandbox.user(&domain, &user) {
        Some(u) => Json(u).into_response(),
        None => answer(StatusCode::NOT_FOUND, "Record not found"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::VendorSettings;
    use crate::contract::Job;
    use crate::vendors::netsapiens::account::tests::settings;
    use crate::vendors::netsapiens::adapter::{build, Adapter};
    use crate::vendors::netsapiens::response::code;
    use crate::vendors::testing::{FRESH, SEEN};
    use crate::vendors::{Adapter as _, VendorFailure};

    async fn serve(sandbox: Arc<Sandbox>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router(sandbox)).await.unwrap() });
        format!("http://{addr}/ns-api/v2")
    }

    struct Env {
        sandbox: Arc<Sandbox>,
        base: String,
        dir: tempfile::TempDir,
    }

    impl Env {
        async fn start() -> Self {
            let sandbox = Arc::new(Sandbox::with_domains([SANDBOX_DOMAIN, "other.example"]));
            let base = serve(sandbox.clone()).await;
            Self { sandbox, base, dir: tempfile::tempdir().unwrap() }
        }

        fn adapter(&self, set: &[(&str, &str)], creds: &[(&str, &str)]) -> Adapter {
            let mut all = vec![("domain", SANDBOX_DOMAIN)];
            all.extend_from_slice(set);
            build("sbx", &settings(&self.dir, &self.base, &all, creds), &VendorSettings::default()).unwrap()
        }

        fn key_adapter(&self) -> Adapter {
            self.adapter(&[], &[("api_key", SANDBOX_API_KEY)])
        }
    }

    fn job(id: &str, user: Value) -> Job {
        let v = json!({"job_id": id, "vendor": "netsapiens", "account": "sbx", "user": user});
        crate::job::decode(v.to_string().as_bytes()).unwrap()
    }

    fn jane() -> Value {
        json!({"user": "1042", "name-first-name": "Jane", "name-last-name": "Doe", "email": "jane.doe@acme.example",
               "user-scope": "Basic User", "time-zone": "America/New_York", "voicemail-login-pin": "482913",
               "voicemail-enabled": "yes", "area-code": 858})
    }

    #[tokio::test]
    async fn round_trip_creates_the_user_with_its_fields() {
        let env = Env::start().await;
        let r = env.key_adapter().create_user(&job("j1", jane()), FRESH).await.unwrap();
        assert!(!r.existing);
        assert_eq!(r.vendor_user_id.as_deref(), Some("1042@sandbox.example"));
        assert_eq!(r.details["account-status"], "new");
        let stored = env.sandbox.user(SANDBOX_DOMAIN, "1042").unwrap();
        assert_eq!(stored["time-zone"], "America/New_York");
        assert_eq!(stored["area-code"], 858);
        assert_eq!(stored["login-username"], "1042@sandbox.example");
        assert!(stored.get("voicemail-login-pin").is_none(), "the PIN is never handed back");
        assert_eq!((env.sandbox.creations("1042@sandbox.example"), env.sandbox.user_count()), (1, 1));
    }

    #[tokio::test]
    async fn a_redelivery_creates_no_duplicate() {
        let env = Env::start().await;
        let a = env.key_adapter();
        assert!(!a.create_user(&job("j1", jane()), FRESH).await.unwrap().existing);
        let again = a.create_user(&job("j1", jane()), SEEN).await.unwrap();
        assert!(again.existing);
        assert_eq!(again.vendor_user_id.as_deref(), Some("1042@sandbox.example"));
        assert_eq!(env.sandbox.creations("1042"), 1);
        assert!(env.sandbox.duplicates().is_empty());
    }

    #[tokio::test]
    async fn already_exists_without_the_redelivery_flag_is_existing_too() {
        let env = Env::start().await;
        let a = env.key_adapter();
        a.create_user(&job("j1", jane()), FRESH).await.unwrap();
        // A replay the broker does not flag: the vendor's 409 leads to the lookup.
        assert!(a.create_user(&job("j1-replay", jane()), FRESH).await.unwrap().existing);
        assert_eq!(env.sandbox.creations("1042@sandbox.example"), 1);
    }

    #[tokio::test]
    async fn someone_else_on_the_extension_is_a_conflict() {
        let env = Env::start().await;
        let a = env.key_adapter();
        a.create_user(&job("j1", jane()), FRESH).await.unwrap();
        let mut john = jane();
        john["name-first-name"] = json!("John");
        for ctx in [FRESH, SEEN] {
            let e = a.create_user(&job("j2", john.clone()), ctx).await.unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Conflict, code::USER_DIFFERS));
        }
        assert_eq!(env.sandbox.user(SANDBOX_DOMAIN, "1042").unwrap()["name-first-name"], "Jane");
    }

    #[tokio::test]
    async fn a_login_username_taken_in_another_domain_is_a_conflict() {
        let env = Env::start().await;
        let a = env.key_adapter();
        let mut first = jane();
        first["login-username"] = json!("jane@acme.example");
        a.create_user(&job("j1", first.clone()), FRESH).await.unwrap();
        let other = json!({"job_id": "j2", "vendor": "netsapiens", "account": "sbx", "domain": "other.example",
                           "user": first});
        let other = crate::job::decode(other.to_string().as_bytes()).unwrap();
        let e = a.create_user(&other, FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Conflict, code::LOGIN_USERNAME_TAKEN));
        assert_eq!(env.sandbox.user_count(), 1);
    }

    #[tokio::test]
    async fn oauth_and_async_round_trip() {
        let env = Env::start().await;
        let oauth = [
            ("client_id", SANDBOX_CLIENT_ID),
            ("client_secret", SANDBOX_CLIENT_SECRET),
            ("username", SANDBOX_USERNAME),
            ("password", SANDBOX_PASSWORD),
        ];
        for (i, encoding) in ["json", "form"].into_iter().enumerate() {
            let a = env.adapter(&[("synchronous", "no"), ("token_encoding", encoding)], &oauth);
            let mut u = jane();
            u["user"] = json!(format!("20{i}"));
            let r = a.create_user(&job("j", u.clone()), FRESH).await.unwrap();
            assert!(!r.existing);
            assert!(a.create_user(&job("j", u), SEEN).await.unwrap().existing);
        }
        assert_eq!((env.sandbox.creations("200"), env.sandbox.creations("201")), (1, 1));
    }

    #[tokio::test]
    async fn the_email_address_spelling_is_accepted_as_well() {
        let env = Env::start().await;
        let a = env.adapter(&[("email_field", "email-address")], &[("api_key", SANDBOX_API_KEY)]);
        a.create_user(&job("j", jane()), FRESH).await.unwrap();
        assert_eq!(env.sandbox.user(SANDBOX_DOMAIN, "1042").unwrap()["email"], "jane.doe@acme.example");
    }

    #[tokio::test]
    async fn auth_and_domain_failures_are_classified() {
        let env = Env::start().await;
        let e = env.adapter(&[], &[("api_key", "nsd_wrong")]).create_user(&job("j", jane()), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Auth, code::UNAUTHORIZED));
        let e = env
            .adapter(&[], &[("api_key", SANDBOX_READONLY_API_KEY)])
            .create_user(&job("j", jane()), FRESH)
            .await
            .unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Auth, code::FORBIDDEN));
        let e = env
            .adapter(&[("domain", "nowhere.example")], &[("api_key", SANDBOX_API_KEY)])
            .create_user(&job("j", jane()), FRESH)
            .await
            .unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Auth, code::DOMAIN_NOT_FOUND));
        let bad_login = [
            ("client_id", SANDBOX_CLIENT_ID),
            ("client_secret", SANDBOX_CLIENT_SECRET),
            ("username", SANDBOX_USERNAME),
            ("password", "wrong"),
        ];
        let e = env.adapter(&[], &bad_login).create_user(&job("j", jane()), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Auth, code::TOKEN_REFUSED));
        assert_eq!(env.sandbox.user_count(), 0);
    }

    async fn raw_post(base: &str, body: Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{base}/domains/{SANDBOX_DOMAIN}/users"))
            .bearer_auth(SANDBOX_API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    #[tokio::test]
    async fn the_sandbox_enforces_the_documented_rules_in_the_vendors_error_shape() {
        let env = Env::start().await;
        let minimal = json!({"user": "1042", "name-first-name": "Jane", "name-last-name": "Doe",
                             "email": "jane.doe@acme.example", "user-scope": "Basic User"});
        let cases = [
            ("name-last-name", Value::Null, "Missing required field name-last-name"),
            ("time-zone", json!("Asia/Kolkata"), "Invalid value for time-zone"),
            ("privacy", json!(true), "privacy must be a string"),
            ("area-code", json!(1000), "Invalid value for area-code"),
            ("account-status", json!("new"), "account-status is read-only"),
            ("nickname", json!("JD"), "Unknown property nickname"),
            ("synchronous", json!("true"), "synchronous must be"),
        ];
        for (field, value, want) in cases {
            let mut body = minimal.clone();
            if value.is_null() {
                body.as_object_mut().unwrap().remove(field);
            } else {
                body[field] = value;
            }
            let (status, answer) = raw_post(&env.base, body).await;
            assert_eq!(status, 400, "{field}");
            assert_eq!(answer["code"], 400);
            assert!(answer["message"].as_str().unwrap().starts_with(want), "{field}: {answer}");
        }
        assert_eq!(env.sandbox.user_count(), 0);
        let (status, answer) = raw_post(&env.base, minimal).await;
        assert_eq!((status, answer), (202, json!({"code": 202, "message": "Accepted"})));
    }

    #[tokio::test]
    async fn lookups_answer_found_not_found_and_unauthorised() {
        let env = Env::start().await;
        env.key_adapter().create_user(&job("j", jane()), FRESH).await.unwrap();
        let get = |path: String, key: &'static str| {
            let url = format!("{}{path}", env.base);
            async move {
                let r = reqwest::Client::new().get(url).bearer_auth(key).send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            }
        };
        let (s, u) = get(format!("/domains/{SANDBOX_DOMAIN}/users/1042"), SANDBOX_READONLY_API_KEY).await;
        assert_eq!((s, u["user"].clone()), (200, json!("1042")));
        let (s, e) = get(format!("/domains/{SANDBOX_DOMAIN}/users/1043"), SANDBOX_API_KEY).await;
        assert_eq!((s, e), (404, json!({"code": 404, "message": "Record not found"})));
        let (s, e) = get("/domains/nowhere.example/users/1042".into(), SANDBOX_API_KEY).await;
        assert_eq!((s, e["message"].clone()), (404, json!("Domain nowhere.example does not exist")));
        let (s, _) = get(format!("/domains/{SANDBOX_DOMAIN}/users/1042"), "nope").await;
        assert_eq!(s, 401);
    }
}
