//! A faithful in-process simulator of the NetSapiens API v2 user calls (create, get, update, delete) and token endpoint, with a ledger of the users it holds, for demos and tests.
//!
//! It answers on the vendor's real paths under `/ns-api/v2`, enforces the documented field
//! rules from its own table (not the adapter's validators, so the two can disagree and a test
//! then shows it), Bearer auth, per-domain extension and platform-wide login uniqueness, and
//! uses the vendor's `{"code": …, "message": …}` error shape. An update changes only the
//! properties it sends; a delete removes the user for good (NetSapiens has no soft delete
//! and no suspend: a suspend is whatever update the account configures). Fault injection
//! is not here: a shared layer wraps the router for that.

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
    /// (domain, user) → updates and deletes taken: what proves an `unchanged` sent nothing.
    updates: BTreeMap<(String, String), u32>,
    deletions: BTreeMap<(String, String), u32>,
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

    /// How many updates (`PUT`) the user at `user@domain` took.
    pub fn updates(&self, identity: &str) -> u32 {
        Self::count(&self.lock().updates, identity)
    }

    /// How many deletes (`DELETE`) the user at `user@domain` took.
    pub fn deletions(&self, identity: &str) -> u32 {
        Self::count(&self.lock().deletions, identity)
    }

    fn count(counts: &BTreeMap<(String, String), u32>, identity: &str) -> u32 {
        let Some((user, domain)) = identity.split_once('@') else { return 0 };
        counts.get(&(domain.to_owned(), user.to_owned())).copied().unwrap_or(0)
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
        .route("/ns-api/v2/domains/{domain}/users/{user}", get(get_user).put(update_user).delete(delete_user))
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
    // Only domains the sandbox holds exist; anything else, however spelled, is not found.
    if !sandbox.lock().domains.contains(domain) {
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
    let user = match read_user(&body) {
        Ok(v) => v,
        Err(message) => return answer(StatusCode::BAD_REQUEST, message),
    };

    let ext = user.text("user").to_owned();
    let key = (domain.clone(), ext.clone());
    let login = match user.text("login-username") {
        "" => format!("{ext}@{domain}"),
        given => given.to_owned(),
    };
    let mut state = sandbox.lock();
    if state.users.contains_key(&key) {
        return answer(StatusCode::CONFLICT, "UID already exists.");
    }
    if state.logins.contains_key(&login.to_ascii_lowercase()) {
        return answer(StatusCode::CONFLICT, "login-username already exists on this platform.");
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let synchronous = user.synchronous;
    let mut stored = user.fields;
    // GET never shows the PIN.
    stored.remove("voicemail-login-pin");
    stored.insert("domain".into(), Value::from(domain.as_str()));
    stored.insert("login-username".into(), Value::from(login.as_str()));
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

/// The checks every write makes before it looks at the body: a key that may write, a
/// domain the sandbox holds, a user addressable by path.
fn writable(sandbox: &Sandbox, headers: &HeaderMap, domain: &str, user: &str) -> Result<(), Refusal> {
    match authorize(sandbox, headers)? {
        Access::Write => {}
        Access::Read => {
            return Err((StatusCode::FORBIDDEN, "Read-only API key: only GET requests are allowed".to_owned()));
        }
    }
    check_domain(sandbox, domain)?;
    if user.len() > rule::USER_PATH_MAX {
        return Err((StatusCode::BAD_REQUEST, format!("user must be at most {} characters", rule::USER_PATH_MAX)));
    }
    Ok(())
}

/// `PUT /ns-api/v2/domains/{domain}/users/{user}`: changes the properties sent and only
/// those, by the create's rules, and answers 202 (200 with the user for `synchronous: yes`,
/// as a create does; unconfirmed for updates). A user that does not exist is `404 Record not
/// found`: the update never creates one.
async fn update_user(
    State(sandbox): State<Arc<Sandbox>>,
    Path((domain, user)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err((status, message)) = writable(&sandbox, &headers, &domain, &user) {
        return answer(status, message);
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return answer(StatusCode::BAD_REQUEST, "Request body must be a JSON object");
    };
    let change = match read_change(&body, &user) {
        Ok(c) => c,
        Err(message) => return answer(StatusCode::BAD_REQUEST, message),
    };
    let key = (domain.clone(), user.clone());
    let mut state = sandbox.lock();
    let Some(current) = state.users.get(&key) else {
        return answer(StatusCode::NOT_FOUND, "Record not found");
    };
    let old_login = current.get("login-username").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
    let new_login = change.fields.get("login-username").and_then(Value::as_str).map(str::to_ascii_lowercase);
    if let Some(login) = &new_login {
        if state.logins.get(login).is_some_and(|holder| *holder != key) {
            return answer(StatusCode::CONFLICT, "login-username already exists on this platform.");
        }
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let stored = state.users.get_mut(&key).expect("looked up above under the same lock");
    for (name, value) in change.fields {
        // GET never shows the PIN: it is taken, and not kept where a GET could show it.
        if name != "voicemail-login-pin" {
            stored.insert(name, value);
        }
    }
    stored.insert("last-modified-datetime".into(), Value::from(now));
    let stored = stored.clone();
    if let Some(login) = new_login {
        state.logins.remove(&old_login);
        state.logins.insert(login, key.clone());
    }
    *state.updates.entry(key).or_default() += 1;
    if change.synchronous {
        (StatusCode::OK, Json(Value::Object(stored))).into_response()
    } else {
        answer(StatusCode::ACCEPTED, "Accepted")
    }
}

/// `DELETE /ns-api/v2/domains/{domain}/users/{user}`: removes the user and frees its login
/// for good, 202. A user that does not exist is `404 Record not found` (the vendor's words
/// for sibling reads; unconfirmed for this call).
async fn delete_user(
    State(sandbox): State<Arc<Sandbox>>,
    Path((domain, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err((status, message)) = writable(&sandbox, &headers, &domain, &user) {
        return answer(status, message);
    }
    let key = (domain, user);
    let mut state = sandbox.lock();
    let Some(removed) = state.users.remove(&key) else {
        return answer(StatusCode::NOT_FOUND, "Record not found");
    };
    if let Some(login) = removed.get("login-username").and_then(Value::as_str) {
        state.logins.remove(&login.to_ascii_lowercase());
    }
    *state.deletions.entry(key).or_default() += 1;
    answer(StatusCode::ACCEPTED, "Accepted")
}

/// The documented create-user properties (vendors/netsapiens.md) as this simulator's own
/// table: it never calls the job validators, so a guess of theirs the vendor does not make
/// (a `language-token` shape, digits-only extensions) shows up as a failing test instead of
/// coming back as if the vendor had made it. Where the facts are unconfirmed, the table is
/// tolerant: it refuses only what the vendor documents.
mod rule {
    use serde_json::Value;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum Kind {
        /// A string that is not blank (names; objects that must already exist).
        Named,
        /// Any string.
        Text,
        /// A string of digits.
        Digits,
        /// The strings `yes` and `no`.
        YesNo,
        OneOf(&'static [&'static str]),
        /// One of the 221 documented time-zone names.
        TimeZone,
        /// A JSON integer within a range.
        Int(i64, i64),
        /// One e-mail address or several separated by `;`.
        Email,
        /// Extensions separated by commas.
        Extensions,
        /// A phone number as a string: digits with an optional `+`, or `[*]`.
        Phone,
        /// A phone number as a string or as a JSON integer.
        PhoneOrInteger,
    }

    pub(super) const SCOPES: &[&str] = &[
        "Basic User",
        "Simple User",
        "Advanced User",
        "Call Center Agent",
        "Site Manager",
        "Call Center Supervisor",
        "Office Manager",
        "Reseller",
        "Super User",
        "NDP",
        "No Portal",
    ];
    const VOICEMAIL_ALERT: &[&str] =
        &["no", "yes", "attnew", "attsave", "atttrash", "brief", "briefattnew", "briefattsave", "briefatttrash"];
    const TRANSCRIPTION: &[&str] = &["no", "Deepgram", "Google", "Mutare", "Voicebase"];
    const RECORDING: &[&str] = &["yes", "yes-with-transcription", "yes-with-transcription-and-sentiment", "no"];

    /// The path form of `user` is at most 16 characters; the body's `user` has no documented
    /// limit, so only a lookup is refused for length.
    pub(super) const USER_PATH_MAX: usize = 16;
    pub(super) const REQUIRED: &[&str] = &["user", "name-first-name", "name-last-name", "user-scope"];

    /// Every documented create property and its kind, in the facts' order.
    pub(super) const PROPERTIES: &[(&str, Kind)] = &[
        ("user", Kind::Named),
        ("name-first-name", Kind::Named),
        ("name-last-name", Kind::Named),
        ("login-username", Kind::Text),
        ("email", Kind::Email),
        ("email-address", Kind::Email),
        ("user-scope", Kind::OneOf(SCOPES)),
        ("department", Kind::Text),
        ("site", Kind::Text),
        ("time-zone", Kind::TimeZone),
        ("voicemail-login-pin", Kind::Digits),
        ("privacy", Kind::YesNo),
        ("dial-plan", Kind::Named),
        ("dial-policy", Kind::Named),
        ("status-message", Kind::Text),
        ("directory-name-number-dtmf-mapping", Kind::Int(100, 999)),
        ("voicemail-user-control-enabled", Kind::YesNo),
        ("phone-numbers-to-allow-enabled", Kind::YesNo),
        ("phone-numbers-to-reject-enabled", Kind::YesNo),
        ("call-screening-enabled", Kind::YesNo),
        ("ring-no-answer-timeout-seconds", Kind::Int(0, 3600)),
        // No list is published: any token.
        ("language-token", Kind::Text),
        ("limits-max-data-storage-kilobytes", Kind::Int(0, i64::MAX)),
        ("limits-max-active-calls-total", Kind::Int(0, 3600)),
        ("directory-announce-in-dial-by-name-enabled", Kind::YesNo),
        ("directory-override-order-duplicate-dtmf-mapping", Kind::Int(0, 100)),
        ("voicemail-greeting-index", Kind::Int(0, i64::MAX)),
        ("voicemail-enabled", Kind::YesNo),
        ("voicemail-receive-broadcast-enabled", Kind::YesNo),
        ("reject-anonymous-calls-enabled", Kind::YesNo),
        ("voicemail-playback-announce-datetime-received", Kind::YesNo),
        ("voicemail-playback-announce-caller-id", Kind::YesNo),
        ("voicemail-playback-sort-newest-to-oldest", Kind::YesNo),
        ("email-send-alert-new-voicemail-cc-list-csv", Kind::Extensions),
        ("email-send-alert-new-voicemail-behavior", Kind::OneOf(VOICEMAIL_ALERT)),
        ("email-send-alert-new-voicemail-enabled", Kind::YesNo),
        ("email-send-alert-new-missed-call-enabled", Kind::YesNo),
        ("email-send-alert-data-storage-limit-reached-enabled", Kind::YesNo),
        ("caller-id-number", Kind::Phone),
        // Providers may cut it at 15 characters (unconfirmed): a truncation, not a refusal.
        ("caller-id-name", Kind::Text),
        ("caller-id-number-emergency", Kind::PhoneOrInteger),
        ("area-code", Kind::Int(100, 999)),
        ("directory-name-visible-in-list-enabled", Kind::YesNo),
        ("service-code", Kind::Text),
        ("voicemail-transcription-enabled", Kind::OneOf(TRANSCRIPTION)),
        ("emergency-address-id", Kind::Named),
        ("call-recordings-hide-from-others-enabled", Kind::YesNo),
        ("music-on-hold-randomized-enabled", Kind::YesNo),
        ("music-on-hold-comfort-message-repeat-interval-seconds", Kind::Int(0, 3600)),
        ("recording-configuration", Kind::OneOf(RECORDING)),
    ];

    pub(super) fn kind(name: &str) -> Option<Kind> {
        PROPERTIES.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
    }

    fn digits(s: &str) -> bool {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
    }

    fn phone(s: &str) -> bool {
        s == "[*]" || digits(s.strip_prefix('+').unwrap_or(s))
    }

    pub(super) fn accepts(kind: Kind, value: &Value) -> bool {
        let text = value.as_str();
        match kind {
            Kind::Named => text.is_some_and(|s| !s.trim().is_empty()),
            Kind::Text => text.is_some(),
            Kind::Digits => text.is_some_and(digits),
            Kind::YesNo => matches!(text, Some("yes" | "no")),
            Kind::OneOf(values) => text.is_some_and(|s| values.contains(&s)),
            Kind::TimeZone => text.is_some_and(|s| TIME_ZONES.split_ascii_whitespace().any(|tz| tz == s)),
            // Integers are JSON numbers, never strings of digits.
            Kind::Int(min, max) => value.as_i64().is_some_and(|n| (min..=max).contains(&n)),
            Kind::Email => text.is_some_and(|s| {
                s.split(';').all(|a| a.trim().split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.')))
            }),
            Kind::Extensions => text.is_some_and(|s| s.split(',').all(|e| digits(e.trim()))),
            Kind::Phone => text.is_some_and(phone),
            Kind::PhoneOrInteger => value.as_u64().is_some() || text.is_some_and(phone),
        }
    }

    /// The documented time-zone enum (221 names), in the facts' order, spelled exactly:
    /// legacy aliases in (`Asia/Calcutta`), some canonical IANA names out (`Asia/Kolkata`).
    pub(super) const TIME_ZONES: &str =
        "US/Alaska US/Central US/Eastern US/Hawaii US/Mountain US/Pacific Africa/Addis_Ababa \
         Africa/Algiers Africa/Brazzaville Africa/Cairo Africa/Casablanca Africa/Dakar \
         Africa/Dar_es_Salaam Africa/Djibouti Africa/Johannesburg Africa/Khartoum Africa/Kigali \
         Africa/Kinshasa Africa/Lagos Africa/Nairobi Africa/Timbuktu Africa/Tripoli Africa/Tunis \
         America/Antigua America/Aruba America/Belize America/Bogota America/Buenos_Aires \
         America/Cancun America/Caracas America/Cayman America/Chihuahua America/Costa_Rica \
         America/Denver America/Detroit America/Edmonton America/El_Salvador America/Ensenada \
         America/Grenada America/Guadeloupe America/Guatemala America/Havana America/Indianapolis \
         America/Jamaica America/Juneau America/La_Paz America/Lima America/Los_Angeles \
         America/Louisville America/Martinique America/Mazatlan America/Mendoza America/Menominee \
         America/Merida America/Mexico_City America/Miquelon America/Moncton America/Monterrey \
         America/Montevideo America/Montreal America/Montserrat America/Nassau America/New_York \
         America/Panama America/Phoenix America/Port-au-Prince America/Port_of_Spain America/Regina \
         America/Santiago America/Santo_Domingo America/Sao_Paulo America/Thule America/Thunder_Bay \
         America/Tijuana America/Toronto America/Vancouver America/Winnipeg America/Yellowknife \
         Antarctica/South_Pole Arctic/Longyearbyen Asia/Amman Asia/Baghdad Asia/Bahrain Asia/Bangkok \
         Asia/Beirut Asia/Brunei Asia/Calcutta Asia/Colombo Asia/Dacca Asia/Damascus Asia/Dhaka \
         Asia/Dubai Asia/Gaza Asia/Hong_Kong Asia/Istanbul Asia/Jakarta Asia/Jerusalem Asia/Kabul \
         Asia/Katmandu Asia/Kuala_Lumpur Asia/Kuching Asia/Kuwait Asia/Macau Asia/Manila Asia/Muscat \
         Asia/Phnom_Penh Asia/Rangoon Asia/Riyadh Asia/Saigon Asia/Seoul Asia/Shanghai Asia/Singapore \
         Asia/Taipei Asia/Tehran Asia/Tel_Aviv Asia/Thimphu Asia/Tokyo Asia/Ulan_Bator Asia/Vientiane \
         Asia/Vladivostok Atlantic/Azores Atlantic/Bermuda Atlantic/Canary Atlantic/Cape_Verde \
         Atlantic/Faeroe Atlantic/Reykjavik Australia/ACT Australia/Adelaide Australia/Brisbane \
         Australia/Canberra Australia/Darwin Australia/LHI Australia/Melbourne Australia/North \
         Australia/NSW Australia/Perth Australia/Queensland Australia/South Australia/Sydney \
         Australia/Tasmania Australia/Victoria Australia/West Canada/Atlantic Canada/Central \
         Canada/Eastern Canada/Mountain Canada/Newfoundland Canada/Pacific Canada/Saskatchewan \
         Canada/Yukon Cuba Greenwich Etc/GMT Etc/GMT+1 Etc/GMT+10 Etc/GMT+11 Etc/GMT+12 Etc/GMT+2 \
         Etc/GMT+3 Etc/GMT+4 Etc/GMT+5 Etc/GMT+6 Etc/GMT+7 Etc/GMT+8 Etc/GMT+9 Etc/GMT-1 Etc/GMT-10 \
         Etc/GMT-11 Etc/GMT-12 Etc/GMT-13 Etc/GMT-14 Etc/GMT-2 Etc/GMT-3 Etc/GMT-4 Etc/GMT-5 \
         Etc/GMT-6 Etc/GMT-7 Etc/GMT-8 Etc/GMT-9 Etc/Greenwich Europe/Amsterdam Europe/Athens \
         Europe/Belfast Europe/Belgrade Europe/Berlin Europe/Brussels Europe/Bucharest \
         Europe/Budapest Europe/Copenhagen Europe/Dublin Europe/Helsinki Europe/Istanbul Europe/Kiev \
         Europe/Lisbon Europe/Ljubljana Europe/London Europe/Madrid Europe/Malta Europe/Monaco \
         Europe/Moscow Europe/Oslo Europe/Paris Europe/Prague Europe/Rome Europe/Sofia \
         Europe/Stockholm Europe/Vienna Europe/Warsaw Europe/Zurich Pacific/Auckland Pacific/Easter \
         Pacific/Fiji Pacific/Galapagos Pacific/Gambier Pacific/Guam Pacific/Honolulu \
         Pacific/Marquesas Pacific/Midway Pacific/Palau Pacific/Rarotonga Pacific/Tahiti";
}

/// A create body the sandbox accepted: the properties to store, and `synchronous`.
struct Created {
    fields: Map<String, Value>,
    synchronous: bool,
}

impl Created {
    fn text(&self, name: &str) -> &str {
        self.fields.get(name).and_then(Value::as_str).unwrap_or_default()
    }
}

/// Applies the documented rules to a create body, answering in the vendor's words.
fn read_user(body: &Map<String, Value>) -> Result<Created, String> {
    let mut fields = Map::new();
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
        // Whether an unknown property is ignored or refused is unconfirmed: it is ignored,
        // and not stored.
        let Some(kind) = rule::kind(name) else { continue };
        if !rule::accepts(kind, value) {
            return Err(format!("Invalid value for {name}"));
        }
        fields.insert(name.clone(), value.clone());
    }
    if let Some(missing) = rule::REQUIRED.iter().find(|f| !fields.contains_key(**f)) {
        return Err(format!("Missing required field {missing}"));
    }
    // The e-mail is required; which of its two names the server wants is unconfirmed
    // ("possibly both accepted"), so either is taken, and `email`, the current name, wins
    // when both come.
    match (fields.contains_key("email"), fields.remove("email-address")) {
        (false, None) => return Err("Missing required field email".into()),
        (false, Some(email)) => {
            fields.insert("email".into(), email);
        }
        (true, _) => {}
    }
    Ok(Created { fields, synchronous })
}

/// Applies the documented rules to an update body: the create's rules for each property
/// sent, nothing required. `user` may be repeated but not changed: it is the address.
fn read_change(body: &Map<String, Value>, path_user: &str) -> Result<Created, String> {
    let mut fields = Map::new();
    let mut synchronous = false;
    for (name, value) in body {
        match name.as_str() {
            "synchronous" => {
                synchronous = match value.as_str() {
                    Some("yes") => true,
                    Some("no") => false,
                    _ => return Err("synchronous must be \"yes\" or \"no\"".into()),
                };
                continue;
            }
            "user" if value.as_str() == Some(path_user) => continue,
            "user" => return Err("user cannot be changed".into()),
            n if READ_ONLY.contains(&n) => return Err(format!("{name} is read-only")),
            _ => {}
        }
        let Some(kind) = rule::kind(name) else { continue };
        if !rule::accepts(kind, value) {
            return Err(format!("Invalid value for {name}"));
        }
        // Stored under the current e-mail name, which wins when both come, as on a create.
        if name == "email-address" && body.contains_key("email") {
            continue;
        }
        let name = if name == "email-address" { "email" } else { name.as_str() };
        fields.insert(name.to_owned(), value.clone());
    }
    Ok(Created { fields, synchronous })
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
    if user.len() > rule::USER_PATH_MAX {
        return answer(StatusCode::BAD_REQUEST, format!("user must be at most {} characters", rule::USER_PATH_MAX));
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
    use crate::contract::{Job, VendorKey};
    use crate::vendors::netsapiens::account::tests::settings;
    use crate::vendors::netsapiens::adapter::{build, Adapter};
    use crate::vendors::netsapiens::response::code;
    use crate::vendors::testing::{FRESH, SEEN};
    use crate::vendors::{Adapter as _, VendorFailure};

    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
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
            let base = serve(router(sandbox.clone())).await;
            Self { sandbox, base, dir: tempfile::tempdir().unwrap() }
        }

        /// Behind the shared fault layer, whose settings the test changes while it runs.
        async fn start_with_faults() -> (Self, crate::sandbox::FaultState) {
            let sandbox = Arc::new(Sandbox::new());
            let faults = crate::sandbox::FaultState::new(crate::sandbox::Faults::default(), 7);
            let base = serve(crate::sandbox::with_faults(router(sandbox.clone()), faults.clone())).await;
            (Self { sandbox, base, dir: tempfile::tempdir().unwrap() }, faults)
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

    fn minimal(user: &str) -> Value {
        json!({"user": user, "name-first-name": "Jane", "name-last-name": "Doe",
               "email": "jane.doe@acme.example", "user-scope": "Basic User"})
    }

    /// The sandbox's own rule table, case by case, from vendors/netsapiens.md: every kind of
    /// rule refuses a value, in the vendor's error shape, and creates nothing.
    #[tokio::test]
    async fn follows_the_documented_rules_from_its_own_table() {
        let env = Env::start().await;
        let long_user = "12345678901234567";
        // (the property changed, its value, or Null to leave it out; the refusal if any)
        let cases: Vec<(&str, Value, Option<&str>)> = vec![
            // Required, each of them.
            ("user", Value::Null, Some("Missing required field user")),
            ("name-first-name", Value::Null, Some("Missing required field name-first-name")),
            ("name-last-name", Value::Null, Some("Missing required field name-last-name")),
            ("user-scope", Value::Null, Some("Missing required field user-scope")),
            ("email", Value::Null, Some("Missing required field email")),
            // Named: not blank.
            ("name-first-name", json!("  "), Some("Invalid value for name-first-name")),
            ("dial-plan", json!(""), Some("Invalid value for dial-plan")),
            // Text: a string, never a number.
            ("department", json!(5), Some("Invalid value for department")),
            // Enums, spelled exactly.
            ("user-scope", json!("No Portal "), Some("Invalid value for user-scope")),
            ("user-scope", json!("No Portal"), None),
            ("time-zone", json!("Asia/Kolkata"), Some("Invalid value for time-zone")),
            ("time-zone", json!("Asia/Calcutta"), None),
            ("email-send-alert-new-voicemail-behavior", json!("attach"), Some("Invalid value for email-send")),
            ("voicemail-transcription-enabled", json!("deepgram"), Some("Invalid value for voicemail-transcription")),
            ("recording-configuration", json!("yes-with-sentiment"), Some("Invalid value for recording-configuration")),
            // yes/no are strings, not JSON booleans.
            ("privacy", json!(true), Some("Invalid value for privacy")),
            ("music-on-hold-randomized-enabled", json!("Yes"), Some("Invalid value for music-on-hold-randomized")),
            // Digits.
            ("voicemail-login-pin", json!("48a9"), Some("Invalid value for voicemail-login-pin")),
            // Integers: JSON numbers within the documented range.
            ("area-code", json!(1000), Some("Invalid value for area-code")),
            ("area-code", json!("858"), Some("Invalid value for area-code")),
            ("ring-no-answer-timeout-seconds", json!(3601), Some("Invalid value for ring-no-answer")),
            ("directory-override-order-duplicate-dtmf-mapping", json!(101), Some("Invalid value for directory-o")),
            ("voicemail-greeting-index", json!(-1), Some("Invalid value for voicemail-greeting-index")),
            // E-mail lists, extension lists, phone numbers.
            ("email", json!("jane.acme.example"), Some("Invalid value for email")),
            ("email", json!("a@acme.example;b@acme.example"), None),
            ("email-send-alert-new-voicemail-cc-list-csv", json!("1001;1002"), Some("Invalid value for email-send")),
            ("caller-id-number", json!("858-555-1234"), Some("Invalid value for caller-id-number")),
            ("caller-id-number", json!(18585551234_i64), Some("Invalid value for caller-id-number")),
            ("caller-id-number", json!("[*]"), None),
            ("caller-id-number-emergency", json!(18585551234_i64), None),
            ("caller-id-number-emergency", json!(-1), Some("Invalid value for caller-id-number-emergency")),
            ("caller-id-number-emergency", json!("911x"), Some("Invalid value for caller-id-number-emergency")),
            // Read-only properties and the write-only switch.
            ("account-status", json!("new"), Some("account-status is read-only")),
            ("synchronous", json!("true"), Some("synchronous must be")),
            // What the facts leave open is taken: any language token (no list is published),
            // an unknown property (ignored), both e-mail names, a body `user` longer than the
            // path limit (only the path form is limited), an extension that is not digits.
            ("language-token", json!("english"), None),
            ("nickname", json!("JD"), None),
            ("email-address", json!("jane@acme.example"), None),
            ("user", json!(long_user), None),
            ("user", json!("front-desk"), None),
            ("caller-id-name", json!("A name longer than fifteen"), None),
        ];
        // The extension each accepted case created, by the property it changed.
        let mut created: BTreeMap<&str, String> = BTreeMap::new();
        let mut count = 0;
        for (n, (field, value, refused)) in cases.into_iter().enumerate() {
            let user = format!("{}", 2000 + n);
            let mut body = minimal(&user);
            if value.is_null() {
                body.as_object_mut().unwrap().remove(field);
            } else {
                body[field] = value.clone();
            }
            let (status, answer) = raw_post(&env.base, body.clone()).await;
            let user = body["user"].as_str().unwrap_or(&user).to_owned();
            match refused {
                None => {
                    assert_eq!((status, &answer), (202, &json!({"code": 202, "message": "Accepted"})), "{field}");
                    created.insert(field, user.clone());
                    count += 1;
                }
                Some(want) => {
                    assert_eq!((status, answer["code"].clone()), (400, json!(400)), "{field} = {value}: {answer}");
                    assert!(answer["message"].as_str().unwrap().starts_with(want), "{field} = {value}: {answer}");
                }
            }
            assert_eq!(env.sandbox.creations(&format!("{user}@{SANDBOX_DOMAIN}")), u32::from(refused.is_none()));
        }
        assert_eq!(env.sandbox.user_count(), count);
        let stored = |user: &str| env.sandbox.user(SANDBOX_DOMAIN, user);
        // An unknown property is not kept; with both e-mail names the current one is.
        let nickname = stored(&created["nickname"]).expect("created");
        assert!(nickname.get("nickname").is_none(), "{nickname}");
        let both = stored(&created["email-address"]).expect("created");
        assert_eq!((both["email"].clone(), both.get("email-address")), (json!("jane.doe@acme.example"), None));
        // The long extension exists, but is not addressable as /users/{user}.
        assert!(stored(long_user).is_some());
        let r = reqwest::Client::new()
            .get(format!("{}/domains/{SANDBOX_DOMAIN}/users/{long_user}", env.base))
            .bearer_auth(SANDBOX_API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
    }

    /// The e-mail given only as `email-address` is stored, and shown, as `email`.
    #[tokio::test]
    async fn the_email_address_name_alone_is_shown_as_email() {
        let env = Env::start().await;
        let mut body = minimal("1042");
        let email = body.as_object_mut().unwrap().remove("email").unwrap();
        body["email-address"] = email;
        body["synchronous"] = json!("yes");
        let (status, answer) = raw_post(&env.base, body).await;
        assert_eq!(
            (status, answer["email"].clone(), answer.get("email-address")),
            (200, json!("jane.doe@acme.example"), None)
        );
    }

    /// The sandbox's table and the job validators name the same properties and the same
    /// time zones, both taken from the vendor facts: a property or zone one of them lacks is
    /// a disagreement to settle in the facts' favour.
    #[test]
    fn the_table_names_the_same_properties_and_zones_as_the_validators() {
        let table: BTreeSet<&str> = rule::PROPERTIES.iter().map(|(n, _)| *n).collect();
        let catalog: BTreeSet<&str> = VendorKey::Netsapiens.user_fields().iter().map(|f| f.name).collect();
        assert_eq!(table, catalog);
        assert_eq!(rule::PROPERTIES.len(), table.len(), "a property listed twice");
        let zones: Vec<&str> = rule::TIME_ZONES.split_ascii_whitespace().collect();
        assert_eq!(zones, crate::vendors::netsapiens::fields::TIME_ZONES);
    }

    /// Where the validators refuse what the vendor takes, the difference is their own
    /// caution and is listed here; everywhere else the two give the same verdict. A change
    /// on either side that makes them disagree otherwise fails this test.
    #[test]
    fn the_validators_differ_from_the_sandbox_only_in_their_listed_cautions() {
        use crate::contract::{FieldValue, UserFields};
        use crate::vendors::netsapiens::fields::validate;
        // (property, value, the validator refuses it while the vendor takes it)
        let cases: &[(&str, Value, bool)] = &[
            ("language-token", json!("english"), true),
            ("language-token", json!("en_US"), false),
            ("user", json!("front-desk"), true),
            ("user", json!("12345678901234567"), true),
            ("user", json!("1234567890123456"), false),
            ("login-username", json!("jane doe"), true),
            ("caller-id-number", json!("1234567890123456"), true),
            ("caller-id-number", json!("+18585551234"), false),
            ("email", json!(format!("{}@acme.example", "a".repeat(65))), true),
            ("email-send-alert-new-voicemail-cc-list-csv", json!("12345678901234567"), true),
            ("department", json!("Sup\u{7}port"), true),
            ("time-zone", json!("Asia/Kolkata"), false),
            ("time-zone", json!("US/Eastern"), false),
            ("user-scope", json!("No Portal "), false),
            ("privacy", json!("true"), false),
            ("area-code", json!(99), false),
            ("voicemail-greeting-index", json!(0), false),
            ("voicemail-login-pin", json!("12a4"), false),
            ("caller-id-number-emergency", json!(18585551234_i64), false),
            ("email", json!("jane.acme.example"), false),
            ("dial-policy", json!(" "), false),
            ("recording-configuration", json!("no"), false),
            ("email-send-alert-new-voicemail-behavior", json!("brief"), false),
            ("voicemail-transcription-enabled", json!("Google"), false),
        ];
        for (field, value, cautious) in cases {
            let mut body = minimal("1042");
            body[*field] = value.clone();
            let map: Map<String, Value> = body.as_object().unwrap().clone();
            let sandbox_takes = read_user(&map).is_ok();
            let fields = map
                .iter()
                .map(|(k, v)| {
                    let name = VendorKey::Netsapiens.field(k).unwrap().name;
                    let v = match v {
                        Value::String(s) => FieldValue::Text(s.clone()),
                        n => FieldValue::Integer(n.as_i64().unwrap()),
                    };
                    (name, v)
                })
                .collect();
            let validator_takes = validate(&UserFields::new(VendorKey::Netsapiens, fields)).is_empty();
            if *cautious {
                assert!(sandbox_takes && !validator_takes, "{field} = {value}: the listed caution is gone");
            } else {
                assert_eq!(validator_takes, sandbox_takes, "{field} = {value}: validator and sandbox disagree");
            }
        }
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

    // ---- update, suspend, restore, delete ----

    const LIFECYCLE: &[(&str, &str)] = &[
        ("suspend", r#"{"user-scope": "No Portal", "directory-name-visible-in-list-enabled": "no"}"#),
        ("restore", r#"{"user-scope": "Basic User", "directory-name-visible-in-list-enabled": "yes"}"#),
        ("hard_delete", "true"),
    ];
    const JANE: &str = "1042@sandbox.example";

    fn kind_job(kind: &str, user: Value) -> Job {
        let v = json!({"job_id": format!("{kind}-1"), "kind": kind, "vendor": "netsapiens", "account": "sbx",
                       "user": user});
        crate::job::decode(v.to_string().as_bytes()).unwrap()
    }

    fn lifecycle_adapter(env: &Env) -> Adapter {
        let mut set = LIFECYCLE.to_vec();
        set.push(("email_field", "email-address"));
        env.adapter(&set, &[("api_key", SANDBOX_API_KEY)])
    }

    /// The real adapter against the simulator, through a user's whole life: every second
    /// call of a kind finds the work done and sends nothing.
    #[tokio::test]
    async fn a_users_whole_life_round_trips_and_repeats_change_nothing() {
        let env = Env::start().await;
        let a = lifecycle_adapter(&env);
        let stored = || env.sandbox.user(SANDBOX_DOMAIN, "1042");
        assert!(!a.create_user(&job("c", jane()), FRESH).await.unwrap().existing);

        let change = kind_job(
            "update_user",
            json!({"user": "1042", "department": "Support", "email": "jane@new.example", "area-code": 212}),
        );
        let r = a.update_user(&change, FRESH).await.unwrap();
        assert_eq!((r.existing, r.details["changed"].clone()), (false, json!(["area-code", "department", "email"])));
        let u = stored().unwrap();
        assert_eq!(
            (u["department"].clone(), u["email"].clone(), u["area-code"].clone()),
            (json!("Support"), json!("jane@new.example"), json!(212))
        );
        assert_eq!(
            (u["name-first-name"].clone(), u["time-zone"].clone()),
            (json!("Jane"), json!("America/New_York")),
            "fields the update did not name are as they were"
        );
        assert!(a.update_user(&change, SEEN).await.unwrap().existing, "the same update again is unchanged");
        assert_eq!(env.sandbox.updates(JANE), 1);

        assert!(!a.suspend_user(&kind_job("suspend_user", json!({"user": "1042"})), FRESH).await.unwrap().existing);
        assert_eq!(stored().unwrap()["user-scope"], "No Portal");
        assert!(a.suspend_user(&kind_job("suspend_user", json!({"user": "1042"})), FRESH).await.unwrap().existing);
        assert_eq!(env.sandbox.updates(JANE), 2);

        assert!(!a.restore_user(&kind_job("restore_user", json!({"user": "1042"})), FRESH).await.unwrap().existing);
        let u = stored().unwrap();
        assert_eq!(
            (u["user-scope"].clone(), u["directory-name-visible-in-list-enabled"].clone()),
            (json!("Basic User"), json!("yes"))
        );
        assert!(a.restore_user(&kind_job("restore_user", json!({"user": "1042"})), FRESH).await.unwrap().existing);
        assert_eq!(env.sandbox.updates(JANE), 3);

        let delete = kind_job("delete_user", json!({"user": "1042"}));
        let r = a.delete_user(&delete, FRESH).await.unwrap();
        assert_eq!((r.existing, r.vendor_user_id.as_deref()), (false, Some(JANE)));
        assert!(stored().is_none());
        assert!(a.delete_user(&delete, SEEN).await.unwrap().existing, "a user already gone is unchanged");
        assert_eq!((env.sandbox.deletions(JANE), env.sandbox.user_count()), (1, 0));

        // Gone for good: changes to it name the missing user.
        for e in [
            a.update_user(&change, FRESH).await.unwrap_err(),
            a.suspend_user(&kind_job("suspend_user", json!({"user": "1042"})), FRESH).await.unwrap_err(),
        ] {
            assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, code::NO_SUCH_USER));
        }
        // A new hire may take the extension and its login again.
        assert!(!a.create_user(&job("c2", jane()), FRESH).await.unwrap().existing);
    }

    #[tokio::test]
    async fn a_pin_change_is_always_sent_and_never_shown() {
        let env = Env::start().await;
        let a = env.key_adapter();
        a.create_user(&job("c", jane()), FRESH).await.unwrap();
        let pin = kind_job("update_user", json!({"user": "1042", "voicemail-login-pin": "482913"}));
        for _ in 0..2 {
            assert!(!a.update_user(&pin, FRESH).await.unwrap().existing, "a secret cannot be compared");
        }
        assert_eq!(env.sandbox.updates(JANE), 2);
        assert!(env.sandbox.user(SANDBOX_DOMAIN, "1042").unwrap().get("voicemail-login-pin").is_none());
    }

    #[tokio::test]
    async fn a_login_username_taken_elsewhere_is_a_conflict_on_update() {
        let env = Env::start().await;
        let a = env.key_adapter();
        a.create_user(&job("c", jane()), FRESH).await.unwrap();
        let mut john = jane();
        john["user"] = json!("1043");
        john["name-first-name"] = json!("John");
        a.create_user(&job("c2", john), FRESH).await.unwrap();
        let clash = kind_job("update_user", json!({"user": "1043", "login-username": "1042@sandbox.example"}));
        let e = a.update_user(&clash, FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Conflict, code::LOGIN_USERNAME_TAKEN));
        // Its own login is no clash, and a new one frees the old.
        let own = kind_job("update_user", json!({"user": "1043", "login-username": "john@sandbox.example"}));
        assert!(!a.update_user(&own, FRESH).await.unwrap().existing);
        let take_old = kind_job("update_user", json!({"user": "1042", "login-username": "1043@sandbox.example"}));
        assert!(!a.update_user(&take_old, FRESH).await.unwrap().existing);
    }

    /// A 503 the fault layer puts in front of the lookup, then of the write: each is
    /// transient, the job's next attempt succeeds, and nothing is done twice.
    #[tokio::test]
    async fn a_fault_is_transient_and_the_next_attempt_succeeds() {
        use crate::sandbox::Faults;
        let (env, faults) = Env::start_with_faults().await;
        let a = env.adapter(LIFECYCLE, &[("api_key", SANDBOX_API_KEY)]);
        a.create_user(&job("c", jane()), FRESH).await.unwrap();
        let suspend = kind_job("suspend_user", json!({"user": "1042"}));

        faults.set(Faults { fail_next: 1, ..Faults::default() });
        let e = a.suspend_user(&suspend, FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Transient, "http_503"));
        assert_eq!(env.sandbox.updates(JANE), 0);
        assert!(!a.suspend_user(&suspend, SEEN).await.unwrap().existing);

        faults.set(Faults { throttle_next: 1, retry_after: Duration::from_secs(2), ..Faults::default() });
        let e = a.delete_user(&kind_job("delete_user", json!({"user": "1042"})), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.retry_after), (VendorFailure::Throttled, Some(Duration::from_secs(2))));
        assert!(env.sandbox.user(SANDBOX_DOMAIN, "1042").is_some());
        assert!(!a.delete_user(&kind_job("delete_user", json!({"user": "1042"})), SEEN).await.unwrap().existing);
        assert_eq!((env.sandbox.updates(JANE), env.sandbox.deletions(JANE)), (1, 1));
    }

    #[tokio::test]
    async fn writes_need_a_writable_key_an_existing_user_and_valid_fields() {
        let env = Env::start().await;
        env.key_adapter().create_user(&job("c", jane()), FRESH).await.unwrap();
        let call = |verb: reqwest::Method, user: &'static str, key: &'static str, body: Option<Value>| {
            let url = format!("{}/domains/{SANDBOX_DOMAIN}/users/{user}", env.base);
            async move {
                let mut r = reqwest::Client::new().request(verb, url).bearer_auth(key);
                if let Some(b) = body {
                    r = r.json(&b);
                }
                let r = r.send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            }
        };
        use reqwest::Method;
        let site = || Some(json!({"site": "HQ"}));
        let cases = [
            (Method::PUT, "1042", SANDBOX_READONLY_API_KEY, site(), 403),
            (Method::DELETE, "1042", SANDBOX_READONLY_API_KEY, None, 403),
            (Method::PUT, "1042", "nope", site(), 401),
            (Method::PUT, "1043", SANDBOX_API_KEY, site(), 404),
            (Method::DELETE, "1043", SANDBOX_API_KEY, None, 404),
            (Method::PUT, "1042", SANDBOX_API_KEY, Some(json!({"user-scope": "Boss"})), 400),
            (Method::PUT, "1042", SANDBOX_API_KEY, Some(json!({"user": "1043"})), 400),
            (Method::PUT, "1042", SANDBOX_API_KEY, Some(json!({"account-status": "standard"})), 400),
            (Method::PUT, "1042", SANDBOX_API_KEY, Some(json!([1])), 400),
        ];
        for (verb, user, key, body, want) in cases {
            let (status, answer) = call(verb.clone(), user, key, body.clone()).await;
            assert_eq!((status, answer["code"].clone()), (want, json!(want)), "{verb} {user} {body:?}: {answer}");
        }
        let u = env.sandbox.user(SANDBOX_DOMAIN, "1042").unwrap();
        assert_eq!((u["user-scope"].clone(), u.get("site")), (json!("Basic User"), None), "nothing was changed");
        assert_eq!((env.sandbox.updates(JANE), env.sandbox.deletions(JANE)), (0, 0));
        let (status, answer) =
            call(Method::PUT, "1042", SANDBOX_API_KEY, Some(json!({"synchronous": "yes", "site": "HQ"}))).await;
        assert_eq!(
            (status, answer["site"].clone(), answer["name-first-name"].clone()),
            (200, json!("HQ"), json!("Jane"))
        );
    }
}
