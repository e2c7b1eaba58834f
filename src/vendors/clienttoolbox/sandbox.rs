//! A simulator of the ClientToolbox API on its real path (`POST /api.php`, form-encoded) with a ledger of the users it holds.
//!
//! It answers like the vendor: HTTP 200 with `<response status="success|error">` (or the JSON
//! equivalent for `output=JSON`), free-text `<error>` messages, one merchant account, a caller
//! that may manage users and one that may not. `user_new`, `user_update` (only the fields sent
//! change) and `user_delete` (marks the user deleted; `action=permanent` removes it) follow the
//! docs. `user_info` and `users_list`, which only public client code mentions, are served so
//! the adapter's lookups can be exercised. A user marked deleted keeps its name (a `user_new`
//! of it is a duplicate) but is otherwise gone: the lookups do not show it, and an update or a
//! second plain delete of it is "User not found". Fault injection is left to the shared
//! sandbox layer.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::json;

/// The one merchant account the sandbox serves.
pub const SANDBOX_ACCOUNT_ID: &str = "acmerewards";
/// A caller with the Administrator role: may manage users.
pub const SANDBOX_USER_ID: &str = "provisioner";
/// A caller with the Clerk role: authenticates, but may not manage users.
pub const SANDBOX_CLERK_USER_ID: &str = "janeclerk";
/// Accepted as `user_password` for both callers.
pub const SANDBOX_PASSWORD: &str = "sandbox-password";
/// The callers' user API key: accepted as `user_password` or in the `api_access_key` header.
pub const SANDBOX_API_KEY: &str = "5f2b8e1c9d7a4036b1e2f3a4c5d6e7f8";
/// Role letters this sandbox knows: the two the docs confirm.
pub const SANDBOX_ROLES: &[char] = &['A', 'K'];
pub const SANDBOX_LANGUAGES: &[&str] = &["EN", "FR", "DE", "ES", "IT", "NL", "PT"];
/// Time-zone codes this sandbox knows (`1..=SANDBOX_MAX_TIMEZONE`, 68 among them).
pub const SANDBOX_MAX_TIMEZONE: u32 = 120;
/// Campaign ids that exist in the sandbox account (the docs' examples).
pub const SANDBOX_CAMPAIGNS: &[&str] = &["12971184024723", "0239471023412"];

#[derive(Clone, Debug, PartialEq, Eq)]
struct StoredUser {
    user_name: String,
    first_name: String,
    last_name: String,
    custom1: String,
    role: String,
    language: String,
    timezone: String,
    allowed_campaigns: String,
    pin: Option<String>,
    /// `user_delete` without `action=permanent`: kept, but no longer anyone's login.
    deleted: bool,
}

#[derive(Debug, Default)]
struct Ledger {
    /// Keyed by lower-case `user_name`: uniqueness is treated as case-insensitive.
    users: BTreeMap<String, StoredUser>,
    creations: HashMap<String, u32>,
    /// Lower-case `user_name` → `user_update` and `user_delete` calls taken: what proves a
    /// repeat sent nothing.
    updates: HashMap<String, u32>,
    deletions: HashMap<String, u32>,
}

/// The sandbox's state. Share it with `Arc`; the ledger outlives any one request.
#[derive(Debug, Default)]
pub struct Sandbox {
    ledger: Mutex<Ledger>,
}

impl Sandbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times `user_new` created this `user_name` (case-insensitive). Never above 1,
    /// unless a permanent delete freed the name in between.
    pub fn creations(&self, identity: &str) -> u32 {
        let ledger = self.ledger.lock().expect("sandbox lock");
        ledger.creations.get(&identity.to_ascii_lowercase()).copied().unwrap_or(0)
    }

    /// How many updates (`user_update`) this `user_name` took.
    pub fn updates(&self, identity: &str) -> u32 {
        let ledger = self.ledger.lock().expect("sandbox lock");
        ledger.updates.get(&identity.to_ascii_lowercase()).copied().unwrap_or(0)
    }

    /// How many deletes (`user_delete`, marking or permanent) this `user_name` took.
    pub fn deletions(&self, identity: &str) -> u32 {
        let ledger = self.ledger.lock().expect("sandbox lock");
        ledger.deletions.get(&identity.to_ascii_lowercase()).copied().unwrap_or(0)
    }

    /// The user as `user_info` shows it, under its wire names; `None` when the account does
    /// not hold it or marked it deleted.
    pub fn user(&self, identity: &str) -> Option<serde_json::Value> {
        let ledger = self.ledger.lock().expect("sandbox lock");
        let user = ledger.users.get(&identity.to_ascii_lowercase()).filter(|u| !u.deleted)?;
        Some(user_fields(user).into_iter().map(|(k, v)| (k.to_owned(), serde_json::Value::from(v))).collect())
    }

    /// Users the account holds and has not marked deleted.
    pub fn user_count(&self) -> usize {
        self.ledger.lock().expect("sandbox lock").users.values().filter(|u| !u.deleted).count()
    }

    /// Whether the account holds `user_name` marked deleted (kept for its old transactions).
    pub fn marked_deleted(&self, user_name: &str) -> bool {
        let ledger = self.ledger.lock().expect("sandbox lock");
        ledger.users.get(&user_name.to_ascii_lowercase()).is_some_and(|u| u.deleted)
    }

    /// Puts a user in place as if someone else had created it (not counted as a creation),
    /// so conflicts can be shown.
    pub fn seed_user(&self, user_name: &str, first_name: &str, last_name: &str, role: char) {
        let user = StoredUser {
            user_name: user_name.to_owned(),
            first_name: first_name.to_owned(),
            last_name: last_name.to_owned(),
            custom1: String::new(),
            role: role.to_string(),
            language: "EN".into(),
            timezone: "68".into(),
            allowed_campaigns: "all".into(),
            pin: None,
            deleted: false,
        };
        self.ledger.lock().expect("sandbox lock").users.insert(user_name.to_ascii_lowercase(), user);
    }
}

pub fn router(state: Arc<Sandbox>) -> Router {
    // Both the bare host and `/api.php` are in use by public clients.
    Router::new().route("/api.php", post(api)).route("/", post(api)).with_state(state)
}

enum Format {
    Xml,
    Json { callback: Option<String>, condensed: bool },
}

enum Reply {
    Success(Vec<StoredUser>, Listing),
    Error(String),
}

#[derive(Clone, Copy)]
enum Listing {
    Nothing,
    One,
    Many,
}

fn error(message: impl Into<String>) -> Reply {
    Reply::Error(message.into())
}

async fn api(State(sandbox): State<Arc<Sandbox>>, headers: HeaderMap, body: Bytes) -> Response {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    // Like a PHP endpoint, a body it cannot read simply carries no fields.
    let pairs: Vec<(String, String)> =
        if is_form { serde_urlencoded::from_bytes(&body).unwrap_or_default() } else { Vec::new() };
    let params: HashMap<String, String> = pairs.into_iter().collect();
    let format = match params.get("output").map(|s| s.to_ascii_uppercase()) {
        Some(o) if o == "JSON" => Format::Json {
            callback: params.get("callback").filter(|c| !c.is_empty()).cloned(),
            condensed: params.get("condensed").is_some_and(|c| c.eq_ignore_ascii_case("yes")),
        },
        _ => Format::Xml,
    };
    let api_key = headers.get("api_access_key").and_then(|v| v.to_str().ok());
    let reply = sandbox.handle(&params, api_key);
    render(reply, &format)
}

impl Sandbox {
    fn handle(&self, p: &HashMap<String, String>, header_key: Option<&str>) -> Reply {
        let get = |k: &str| p.get(k).map(String::as_str).filter(|s| !s.is_empty());
        let Some(kind) = get("type") else { return error("Missing required field: type") };
        let Some(user_id) = get("user_id") else { return error("Missing required field: user_id") };
        // The header wins when both carry a key (documented).
        let authenticated = match header_key {
            Some(key) => key == SANDBOX_API_KEY,
            None => matches!(get("user_password"), Some(SANDBOX_PASSWORD | SANDBOX_API_KEY)),
        };
        let known_caller = user_id == SANDBOX_USER_ID || user_id == SANDBOX_CLERK_USER_ID;
        if !known_caller || !authenticated {
            return if header_key.is_some() {
                error("Authentication failed: invalid user_id or api_access_key")
            } else {
                error("Authentication failed: invalid user_id or user_password")
            };
        }
        match get("account_id") {
            None => return error("Missing required field: account_id"),
            Some(SANDBOX_ACCOUNT_ID) => {}
            Some(_) => return error("Invalid account_id"),
        }
        if !matches!(kind, "user_new" | "user_update" | "user_delete" | "user_info" | "users_list") {
            return error(format!("Invalid type: {kind}"));
        }
        if user_id != SANDBOX_USER_ID {
            return error("Permission denied: this user may not manage users");
        }
        let mut ledger = self.ledger.lock().expect("sandbox lock");
        match kind {
            "user_info" => {
                let Some(name) = get("user_name") else { return error("Missing required field: user_name") };
                match ledger.users.get(&name.to_ascii_lowercase()).filter(|u| !u.deleted) {
                    Some(u) => Reply::Success(vec![u.clone()], Listing::One),
                    None => error("User not found"),
                }
            }
            "users_list" => {
                Reply::Success(ledger.users.values().filter(|u| !u.deleted).cloned().collect(), Listing::Many)
            }
            "user_update" => {
                let Some(name) = get("user_name") else { return error("Missing required field: user_name") };
                let key = name.to_ascii_lowercase();
                let Some(current) = ledger.users.get(&key).filter(|u| !u.deleted) else {
                    return error("User not found");
                };
                match updated_user(current, p) {
                    Err(message) => Reply::Error(message),
                    Ok(user) => {
                        let pin_taken = |(k, u): (&String, &StoredUser)| *k != key && !u.deleted && u.pin == user.pin;
                        if user.pin.is_some() && user.pin != current.pin && ledger.users.iter().any(pin_taken) {
                            return error("User PIN already exists");
                        }
                        *ledger.updates.entry(key.clone()).or_default() += 1;
                        ledger.users.insert(key, user);
                        Reply::Success(Vec::new(), Listing::Nothing)
                    }
                }
            }
            "user_delete" => {
                let Some(name) = get("user_name") else { return error("Missing required field: user_name") };
                let key = name.to_ascii_lowercase();
                match get("action") {
                    None => match ledger.users.get_mut(&key).filter(|u| !u.deleted) {
                        Some(u) => u.deleted = true,
                        None => return error("User not found"),
                    },
                    Some("permanent") => {
                        if ledger.users.remove(&key).is_none() {
                            return error("User not found");
                        }
                    }
                    Some(_) => return error("Invalid action: use permanent or leave it out"),
                }
                *ledger.deletions.entry(key).or_default() += 1;
                Reply::Success(Vec::new(), Listing::Nothing)
            }
            _ => match new_user(p) {
                Err(message) => Reply::Error(message),
                Ok(user) => {
                    let key = user.user_name.to_ascii_lowercase();
                    if ledger.users.contains_key(&key) {
                        return error("User name already exists");
                    }
                    if user.pin.is_some() && ledger.users.values().any(|u| !u.deleted && u.pin == user.pin) {
                        return error("User PIN already exists");
                    }
                    ledger.users.insert(key.clone(), user);
                    *ledger.creations.entry(key).or_default() += 1;
                    Reply::Success(Vec::new(), Listing::Nothing)
                }
            },
        }
    }
}

/// The vendor's documented rules for `user_new` (vendors/clienttoolbox.md), as this simulator's
/// own table: it never calls the job validators, so a guess of theirs that the vendor does not
/// make shows up as a failing test instead of coming back as if the vendor had made it.
mod rule {
    /// `user_name`: at most 20 characters, only `A-Z a-z 0-9 _`.
    pub(super) const USER_NAME_MAX: usize = 20;
    /// Administrators always see all campaigns: `allowed_campaigns` is ignored for them.
    pub(super) const ADMINISTRATOR: &str = "A";

    pub(super) fn user_name(v: &str) -> bool {
        !v.is_empty() && v.len() <= USER_NAME_MAX && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }

    pub(super) fn digits(v: &str) -> bool {
        !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())
    }

    /// `all`, `none`, or comma-separated campaign ids.
    pub(super) fn campaign_ids(v: &str) -> Option<Vec<&str>> {
        match v {
            "all" | "none" => Some(Vec::new()),
            _ => v.split(',').map(|id| digits(id).then_some(id)).collect(),
        }
    }
}

/// The vendor's rules for `user_new`, in its own words.
fn new_user(p: &HashMap<String, String>) -> Result<StoredUser, String> {
    let get = |k: &str| p.get(k).map(String::as_str).filter(|s| !s.is_empty());
    let require = |k: &str| get(k).ok_or_else(|| format!("Missing required field: {k}"));
    let user_name = require("user_name")?;
    if !rule::user_name(user_name) {
        return Err("Invalid user_name: use at most 20 characters of A-Z, a-z, 0-9 and _".to_owned());
    }
    require("user_new_password")?;
    let role = require("user_role")?;
    if !SANDBOX_ROLES.iter().any(|r| role.len() == 1 && role.starts_with(*r)) {
        return Err("Invalid user_role".into());
    }
    role_rule(role)?;
    let campaigns = require("allowed_campaigns")?;
    campaigns_rule(role, campaigns)?;
    let language = get("language_selector").unwrap_or("EN");
    language_rule(language)?;
    let timezone = get("timezone_selector").unwrap_or("68");
    timezone_rule(timezone)?;
    let pin = get("user_PIN").map(str::to_owned);
    pin_rule(pin.as_deref())?;
    let text = |k: &str| get(k).unwrap_or_default().to_owned();
    Ok(StoredUser {
        user_name: user_name.to_owned(),
        first_name: text("user_first_name"),
        last_name: text("user_last_name"),
        custom1: text("user_custom1"),
        role: role.to_owned(),
        language: language.to_owned(),
        timezone: timezone.to_owned(),
        allowed_campaigns: campaigns.to_owned(),
        pin,
        deleted: false,
    })
}

/// `user_update`: every field but `user_name` optional, each under its `user_new` rule; the
/// fields sent change and the others stay. The new role decides whether campaigns matter.
fn updated_user(current: &StoredUser, p: &HashMap<String, String>) -> Result<StoredUser, String> {
    let get = |k: &str| p.get(k).map(String::as_str).filter(|s| !s.is_empty());
    let mut user = current.clone();
    if let Some(role) = get("user_role") {
        role_rule(role)?;
        user.role = role.to_owned();
    }
    if let Some(campaigns) = get("allowed_campaigns") {
        campaigns_rule(&user.role, campaigns)?;
        user.allowed_campaigns = campaigns.to_owned();
    }
    if let Some(language) = get("language_selector") {
        language_rule(language)?;
        user.language = language.to_owned();
    }
    if let Some(timezone) = get("timezone_selector") {
        timezone_rule(timezone)?;
        user.timezone = timezone.to_owned();
    }
    if let Some(pin) = get("user_PIN") {
        pin_rule(Some(pin))?;
        user.pin = Some(pin.to_owned());
    }
    if let Some(language_custom) = get("language_custom") {
        if !matches!(language_custom, "Yes" | "No") {
            return Err("Invalid language_custom: use Yes or No".into());
        }
    }
    // Free text may be cleared: a field sent empty is set empty.
    for (k, field) in [
        ("user_first_name", &mut user.first_name),
        ("user_last_name", &mut user.last_name),
        ("user_custom1", &mut user.custom1),
    ] {
        if let Some(v) = p.get(k) {
            v.clone_into(field);
        }
    }
    Ok(user)
}

fn role_rule(role: &str) -> Result<(), String> {
    if SANDBOX_ROLES.iter().any(|r| role.len() == 1 && role.starts_with(*r)) {
        Ok(())
    } else {
        Err("Invalid user_role".into())
    }
}

fn campaigns_rule(role: &str, campaigns: &str) -> Result<(), String> {
    if role == rule::ADMINISTRATOR {
        return Ok(());
    }
    match rule::campaign_ids(campaigns) {
        None => Err("Invalid allowed_campaigns".into()),
        Some(ids) => match ids.iter().find(|id| !SANDBOX_CAMPAIGNS.contains(id)) {
            Some(bad) => Err(format!("Invalid campaign id: {bad}")),
            None => Ok(()),
        },
    }
}

fn language_rule(language: &str) -> Result<(), String> {
    if SANDBOX_LANGUAGES.contains(&language) {
        Ok(())
    } else {
        Err("Invalid language_selector".into())
    }
}

fn timezone_rule(timezone: &str) -> Result<(), String> {
    if rule::digits(timezone) && timezone.parse::<u32>().is_ok_and(|t| (1..=SANDBOX_MAX_TIMEZONE).contains(&t)) {
        Ok(())
    } else {
        Err("Invalid timezone_selector".into())
    }
}

/// Never echo the PIN itself.
fn pin_rule(pin: Option<&str>) -> Result<(), String> {
    if pin.is_some_and(|pin| !rule::digits(pin)) {
        Err("Invalid user_PIN: digits only".to_owned())
    } else {
        Ok(())
    }
}

/// What a lookup shows of a user: never the password or the PIN.
fn user_fields(u: &StoredUser) -> [(&'static str, &str); 8] {
    [
        ("user_name", &u.user_name),
        ("user_first_name", &u.first_name),
        ("user_last_name", &u.last_name),
        ("user_addtl_info", &u.custom1),
        ("user_role", &u.role),
        ("language_selector", &u.language),
        ("timezone_selector", &u.timezone),
        ("allowed_campaigns", &u.allowed_campaigns),
    ]
}

fn render(reply: Reply, format: &Format) -> Response {
    match format {
        Format::Xml => ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], render_xml(&reply)).into_response(),
        Format::Json { callback, condensed } => {
            let value = render_json(&reply);
            let text = if *condensed {
                value.to_string()
            } else {
                serde_json::to_string_pretty(&value).expect("JSON values serialise")
            };
            match callback {
                Some(cb) => {
                    ([(header::CONTENT_TYPE, "application/javascript")], format!("{cb}({text})")).into_response()
                }
                None => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
            }
        }
    }
}

fn render_xml(reply: &Reply) -> String {
    use quick_xml::escape::escape;
    let user_xml = |u: &StoredUser, indent: &str| {
        let mut s = format!("{indent}<user>\n");
        for (k, v) in user_fields(u) {
            s.push_str(&format!("{indent}  <{k}>{}</{k}>\n", escape(v)));
        }
        s.push_str(&format!("{indent}</user>\n"));
        s
    };
    match reply {
        Reply::Error(message) => {
            format!("<response status=\"error\">\n  <error>{}</error>\n</response>\n", escape(message.as_str()))
        }
        Reply::Success(_, Listing::Nothing) => "<response status=\"success\">\n</response>\n".into(),
        Reply::Success(users, Listing::One) => {
            let body: String = users.iter().map(|u| user_xml(u, "  ")).collect();
            format!("<response status=\"success\">\n{body}</response>\n")
        }
        Reply::Success(users, Listing::Many) => {
            let body: String = users.iter().map(|u| user_xml(u, "    ")).collect();
            format!("<response status=\"success\">\n  <users>\n{body}  </users>\n</response>\n")
        }
    }
}

fn render_json(reply: &Reply) -> serde_json::Value {
    let user_json = |u: &StoredUser| {
        serde_json::Value::Object(user_fields(u).into_iter().map(|(k, v)| (k.to_owned(), v.into())).collect())
    };
    match reply {
        Reply::Error(message) => json!({"status": "error", "error": message}),
        Reply::Success(_, Listing::Nothing) => json!({"status": "success"}),
        Reply::Success(users, Listing::One) => json!({"status": "success", "user": users.first().map(user_json)}),
        Reply::Success(users, Listing::Many) => {
            json!({"status": "success", "users": users.iter().map(user_json).collect::<Vec<_>>()})
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::response::code;
    use super::super::testing;
    use super::*;
    use crate::config::VendorSettings;
    use crate::vendors::testing::{FRESH, SEEN};
    use crate::vendors::{Adapter as _, VendorFailure};

    async fn serve() -> (Arc<Sandbox>, String) {
        let sandbox = Arc::new(Sandbox::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = router(sandbox.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (sandbox, url)
    }

    fn adapter(url: &str, settings: &[(&str, &str)]) -> super::super::Adapter {
        let f = testing::account(Some(url), settings);
        super::super::build("acme", &f.settings, &VendorSettings::default()).unwrap()
    }

    async fn post(url: &str, form: &[(&str, &str)]) -> (u16, String) {
        let resp = reqwest::Client::new()
            .post(format!("{url}/api.php"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap())
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    const AUTH: [(&str, &str); 3] =
        [("user_id", SANDBOX_USER_ID), ("user_password", SANDBOX_PASSWORD), ("account_id", SANDBOX_ACCOUNT_ID)];

    #[tokio::test]
    async fn answers_in_the_documented_formats() {
        let (sandbox, url) = serve().await;
        let mut form = vec![("type", "user_new")];
        form.extend(AUTH);
        form.extend([
            ("user_name", "janeclerk"),
            ("user_new_password", "pw"),
            ("user_role", "K"),
            ("allowed_campaigns", "all"),
        ]);
        assert_eq!(post(&url, &form).await, (200, "<response status=\"success\">\n</response>\n".to_owned()));
        assert_eq!(
            post(&url, &form).await,
            (200, "<response status=\"error\">\n  <error>User name already exists</error>\n</response>\n".to_owned()),
            "errors come with HTTP 200"
        );
        form.push(("output", "JSON"));
        form.push(("condensed", "yes"));
        assert_eq!(
            post(&url, &form).await,
            (200, r#"{"error":"User name already exists","status":"error"}"#.to_owned())
        );
        form.push(("callback", "cb"));
        assert!(post(&url, &form).await.1.starts_with("cb({"));
        assert_eq!(sandbox.creations("JANECLERK"), 1);
        assert_eq!(sandbox.user_count(), 1);

        let mut info = vec![("type", "user_info"), ("user_name", "JaneClerk")];
        info.extend(AUTH);
        let (_, body) = post(&url, &info).await;
        assert!(
            body.contains("<user_name>janeclerk</user_name>") && body.contains("<user_role>K</user_role>"),
            "{body}"
        );
        assert!(!body.contains("pw<"), "the password is never shown");
    }

    #[tokio::test]
    async fn enforces_auth_account_and_permission() {
        let (_, url) = serve().await;
        let base = [("type", "users_list"), ("account_id", SANDBOX_ACCOUNT_ID)];
        let cases: [(&[(&str, &str)], &str); 5] = [
            (&[("user_id", SANDBOX_USER_ID), ("user_password", "wrong")], "Authentication failed"),
            (&[("user_id", "nobody"), ("user_password", SANDBOX_PASSWORD)], "Authentication failed"),
            (&[("user_password", SANDBOX_PASSWORD)], "Missing required field: user_id"),
            (&[("user_id", SANDBOX_CLERK_USER_ID), ("user_password", SANDBOX_PASSWORD)], "Permission denied"),
            (&[("user_id", SANDBOX_USER_ID), ("user_password", SANDBOX_API_KEY)], "status=\"success\""),
        ];
        for (extra, expected) in cases {
            let mut form = base.to_vec();
            form.extend_from_slice(extra);
            let (_, body) = post(&url, &form).await;
            assert!(body.contains(expected), "{extra:?}: {body}");
        }
        let (_, body) = post(
            &url,
            &[
                ("type", "users_list"),
                ("user_id", SANDBOX_USER_ID),
                ("user_password", SANDBOX_PASSWORD),
                ("account_id", "other"),
            ],
        )
        .await;
        assert!(body.contains("Invalid account_id"), "{body}");
        let (_, body) = post(
            &url,
            &[
                ("type", "user_fly"),
                ("user_id", SANDBOX_USER_ID),
                ("user_password", SANDBOX_PASSWORD),
                ("account_id", SANDBOX_ACCOUNT_ID),
            ],
        )
        .await;
        assert!(body.contains("Invalid type"), "{body}");
    }

    #[tokio::test]
    async fn round_trip_and_redelivery_create_once() {
        let (sandbox, url) = serve().await;
        let a = adapter(&url, &[]);
        let job = testing::job("JDoe_Front", json!({}));
        let r = a.create_user(&job, FRESH).await.unwrap();
        assert!(!r.existing);
        assert_eq!(r.vendor_user_id.as_deref(), Some("jdoe_front"));
        let again = a.create_user(&job, SEEN).await.unwrap();
        assert!(again.existing, "a redelivery finds the user first");
        let dup = a.create_user(&job, FRESH).await.unwrap();
        assert!(dup.existing, "\"already exists\" without the flag is settled by a lookup");
        assert_eq!(sandbox.creations("jdoe_front"), 1);
        assert_eq!(sandbox.user_count(), 1);
    }

    #[tokio::test]
    async fn round_trip_in_every_auth_lookup_and_output_mode() {
        let modes: [&[(&str, &str)]; 4] = [
            &[("auth", "api_access_key")],
            &[("output", "JSON")],
            &[("lookup", "users_list"), ("output", "JSON")],
            &[("user_name_case", "preserve"), ("api_version", "1.6")],
        ];
        for settings in modes {
            let (sandbox, url) = serve().await;
            let a = adapter(&url, settings);
            let job = testing::job("Jane_2", json!({"user_PIN": null}));
            assert!(!a.create_user(&job, FRESH).await.unwrap().existing, "{settings:?}");
            assert!(a.create_user(&job, SEEN).await.unwrap().existing, "{settings:?}");
            assert!(a.create_user(&job, FRESH).await.unwrap().existing, "{settings:?}");
            assert_eq!(sandbox.creations("jane_2"), 1, "{settings:?}");
        }
    }

    #[tokio::test]
    async fn round_trip_failures_of_each_class() {
        let (sandbox, url) = serve().await;
        let a = adapter(&url, &[]);
        sandbox.seed_user("taken", "Bob", "Other", 'A');
        let cases = [
            (testing::job("taken", json!({})), VendorFailure::Conflict, code::USER_NAME_TAKEN),
            (testing::job("bad_role", json!({"user_role": "Z"})), VendorFailure::Rejected, code::REJECTED),
            (
                testing::job("bad_campaign", json!({"allowed_campaigns": "999"})),
                VendorFailure::Rejected,
                code::REJECTED,
            ),
            (testing::job("bad_tz", json!({"timezone_selector": 999})), VendorFailure::Rejected, code::REJECTED),
        ];
        for (job, failure, code) in cases {
            let e = a.create_user(&job, FRESH).await.unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (failure, code), "{e}");
        }
        a.create_user(&testing::job("first", json!({"user_PIN": "7777"})), FRESH).await.unwrap();
        let e = a.create_user(&testing::job("second", json!({"user_PIN": "7777"})), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Conflict, code::DUPLICATE_PIN));
        assert!(!e.message.contains("7777"));
        assert_eq!(sandbox.creations("taken"), 0);

        let wrong_password = testing::account(Some(&url), &[]);
        if let crate::config::SecretSource::File(path) = &wrong_password.settings.credentials["user_password"] {
            std::fs::write(path, "not-the-password").unwrap();
        }
        let clerk = testing::account(Some(&url), &[("user_id", SANDBOX_CLERK_USER_ID)]);
        for f in [wrong_password, clerk] {
            let a = super::super::build("acme", &f.settings, &VendorSettings::default()).unwrap();
            let e = a.create_user(&testing::job("x", json!({})), FRESH).await.unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Auth, code::AUTH), "{e}");
            assert!(!e.message.contains("not-the-password"), "{}", e.message);
        }

        let wrong_account = adapter(&url, &[("account_id", "someoneelse")]);
        let e = wrong_account.create_user(&testing::job("x", json!({})), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Auth, code::UNKNOWN_ACCOUNT));
    }

    /// The sandbox's own rule table, case by case, from vendors/clienttoolbox.md.
    #[tokio::test]
    async fn follows_the_documented_rules_from_its_own_table() {
        let (sandbox, url) = serve().await;
        // (user_name, the other fields, the refusal if any)
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>);
        let cases: [Case<'_>; 9] = [
            // Administrators always see all campaigns: allowed_campaigns "is ignored" for them.
            ("admin1", &[("user_role", "A"), ("allowed_campaigns", "999")], None),
            ("admin2", &[("user_role", "A"), ("allowed_campaigns", "whatever")], None),
            ("clerk1", &[("user_role", "K"), ("allowed_campaigns", "999")], Some("Invalid campaign id: 999")),
            ("clerk2", &[("user_role", "K"), ("allowed_campaigns", "12971184024723,0239471023412")], None),
            ("clerk3", &[("user_role", "K"), ("allowed_campaigns", "1,x")], Some("Invalid allowed_campaigns")),
            ("clerk4", &[("user_role", "Z"), ("allowed_campaigns", "all")], Some("Invalid user_role")),
            ("a_21_characters_long_", &[("user_role", "K"), ("allowed_campaigns", "all")], Some("Invalid user_name")),
            (
                "clerk5",
                &[("user_role", "K"), ("allowed_campaigns", "all"), ("timezone_selector", "121")],
                Some("Invalid timezone_selector"),
            ),
            (
                "clerk6",
                &[("user_role", "K"), ("allowed_campaigns", "all"), ("language_selector", "XX")],
                Some("Invalid language_selector"),
            ),
        ];
        for (name, extra, refused) in cases {
            let mut form = vec![("type", "user_new"), ("user_name", name), ("user_new_password", "pw")];
            form.extend(AUTH);
            form.extend_from_slice(extra);
            let (_, body) = post(&url, &form).await;
            match refused {
                None => assert!(body.contains("status=\"success\""), "{name}: {body}"),
                Some(message) => assert!(body.contains(message), "{name}: {body}"),
            }
            assert_eq!(sandbox.creations(name), u32::from(refused.is_none()), "{name}");
        }
    }

    // ---- update, suspend, restore, delete ----

    const SUSPEND: (&str, &str) = ("suspend", r#"{"allowed_campaigns": "none"}"#);
    const RESTORE: (&str, &str) = ("restore", r#"{"allowed_campaigns": "all", "user_role": "K"}"#);

    fn stored(sandbox: &Sandbox, user_name: &str) -> StoredUser {
        sandbox.ledger.lock().unwrap().users[user_name].clone()
    }

    fn of(kind: &str, fields: serde_json::Value) -> crate::contract::Job {
        testing::job_of(kind, "JDoe", fields)
    }

    #[tokio::test]
    async fn lifecycle_round_trip_in_every_lookup_mode() {
        let modes: [(&[(&str, &str)], bool); 3] = [
            (&[], true),
            (&[("lookup", "users_list"), ("output", "JSON"), ("auth", "api_access_key")], true),
            (&[("lookup", "none")], false),
        ];
        for (settings, proves) in modes {
            let (sandbox, url) = serve().await;
            let mut all = settings.to_vec();
            all.extend([SUSPEND, RESTORE]);
            let a = adapter(&url, &all);
            assert!(!a.create_user(&testing::job("JDoe", json!({})), FRESH).await.unwrap().existing);

            let update = of("update_user", json!({"user_first_name": "Janet", "allowed_campaigns": "12971184024723"}));
            assert!(!a.update_user(&update, FRESH).await.unwrap().existing, "{settings:?}");
            let u = stored(&sandbox, "jdoe");
            assert_eq!((u.first_name.as_str(), u.last_name.as_str()), ("Janet", "Doe"), "only the named fields change");
            assert_eq!(a.update_user(&update, SEEN).await.unwrap().existing, proves, "{settings:?}: update again");

            assert!(!a.suspend_user(&of("suspend_user", json!({})), FRESH).await.unwrap().existing);
            assert_eq!(stored(&sandbox, "jdoe").allowed_campaigns, "none");
            let again = a.suspend_user(&of("suspend_user", json!({})), SEEN).await.unwrap();
            assert_eq!(again.existing, proves, "{settings:?}: suspend again");

            assert!(!a.restore_user(&of("restore_user", json!({})), FRESH).await.unwrap().existing);
            assert_eq!(stored(&sandbox, "jdoe").allowed_campaigns, "all");

            let r = a.delete_user(&of("delete_user", json!({})), FRESH).await.unwrap();
            assert_eq!((r.existing, &r.details["deletion"]), (false, &json!("marked_deleted")), "{settings:?}");
            assert!(sandbox.marked_deleted("jdoe"));
            assert_eq!(sandbox.user_count(), 0);
            assert!(a.delete_user(&of("delete_user", json!({})), SEEN).await.unwrap().existing, "delete again");

            // Marked deleted is gone for every call but a new user_new of its name.
            let e = a.update_user(&update, FRESH).await.unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, code::NO_SUCH_USER), "{settings:?}");
            let e = a.create_user(&testing::job("JDoe", json!({})), FRESH).await.unwrap_err();
            assert_eq!(e.failure, VendorFailure::Conflict, "{settings:?}: {e}");
        }
    }

    #[tokio::test]
    async fn hard_delete_really_deletes_even_a_user_marked_deleted() {
        let (sandbox, url) = serve().await;
        let soft = adapter(&url, &[]);
        let hard = adapter(&url, &[("hard_delete", "true")]);
        soft.create_user(&testing::job("JDoe", json!({})), FRESH).await.unwrap();
        assert!(!soft.delete_user(&of("delete_user", json!({})), FRESH).await.unwrap().existing);
        let r = hard.delete_user(&of("delete_user", json!({})), FRESH).await.unwrap();
        assert_eq!((r.existing, &r.details["deletion"]), (false, &json!("permanent")));
        assert!(!sandbox.marked_deleted("jdoe"));
        assert!(hard.delete_user(&of("delete_user", json!({})), SEEN).await.unwrap().existing, "delete again");
        // The name is free again.
        assert!(!soft.create_user(&testing::job("JDoe", json!({})), FRESH).await.unwrap().existing);
        assert_eq!(sandbox.creations("jdoe"), 2);
    }

    #[tokio::test]
    async fn lifecycle_refusals_come_back_classified() {
        let (sandbox, url) = serve().await;
        let a = adapter(&url, &[SUSPEND]);
        a.create_user(&testing::job("JDoe", json!({})), FRESH).await.unwrap();
        a.create_user(&testing::job("other", json!({"user_PIN": "7777"})), FRESH).await.unwrap();
        let e = a.update_user(&of("update_user", json!({"user_PIN": "7777"})), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Conflict, code::DUPLICATE_PIN));
        assert!(!e.message.contains("7777"));
        let e = a.update_user(&of("update_user", json!({"allowed_campaigns": "999"})), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, code::REJECTED));
        let e = a.restore_user(&of("restore_user", json!({})), FRESH).await.unwrap_err();
        assert_eq!(e.code, code::RESTORE_NOT_CONFIGURED);
        let e = a.suspend_user(&testing::job_of("suspend_user", "nobody", json!({})), FRESH).await.unwrap_err();
        assert_eq!(e.code, code::NO_SUCH_USER);
        let clerk = adapter(&url, &[("user_id", SANDBOX_CLERK_USER_ID), ("lookup", "none")]);
        let e = clerk.delete_user(&of("delete_user", json!({})), FRESH).await.unwrap_err();
        assert_eq!(
            (e.failure, e.code.as_str()),
            (VendorFailure::Auth, code::AUTH),
            "user_delete is Administrator-only"
        );
        assert_eq!(sandbox.user_count(), 2);
    }

    #[tokio::test]
    async fn a_fault_fails_the_call_and_the_next_one_goes_through() {
        let sandbox = Arc::new(Sandbox::new());
        let faults = crate::sandbox::FaultState::new(crate::sandbox::Faults::default(), 7);
        let app = crate::sandbox::with_faults(router(sandbox.clone()), faults.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let a = adapter(&url, &[SUSPEND]);
        a.create_user(&testing::job("JDoe", json!({})), FRESH).await.unwrap();

        faults.set(crate::sandbox::Faults { fail_next: 1, ..Default::default() });
        let update = of("update_user", json!({"user_last_name": "Roe"}));
        let e = a.update_user(&update, FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Transient, "http_503"));
        assert_eq!(stored(&sandbox, "jdoe").last_name, "Doe", "a faulted call changes nothing");
        assert!(!a.update_user(&update, SEEN).await.unwrap().existing);
        assert_eq!(stored(&sandbox, "jdoe").last_name, "Roe");

        faults.set(crate::sandbox::Faults {
            throttle_next: 1,
            retry_after: std::time::Duration::from_secs(2),
            ..Default::default()
        });
        let e = a.suspend_user(&of("suspend_user", json!({})), FRESH).await.unwrap_err();
        assert_eq!(e.failure, VendorFailure::Throttled);
        assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(2)));
        assert!(!a.suspend_user(&of("suspend_user", json!({})), SEEN).await.unwrap().existing);
        assert!(!a.delete_user(&of("delete_user", json!({})), FRESH).await.unwrap().existing);
    }

    #[tokio::test]
    async fn update_and_delete_follow_the_documented_rules() {
        let (sandbox, url) = serve().await;
        let mut new = vec![("type", "user_new"), ("user_name", "clerk"), ("user_new_password", "pw")];
        new.extend(AUTH);
        new.extend([("user_role", "K"), ("allowed_campaigns", "all"), ("user_custom1", "Front")]);
        post(&url, &new).await;
        let call = |extra: &[(&'static str, &'static str)], kind: &'static str| {
            let mut form = vec![("type", kind)];
            form.extend(AUTH);
            form.extend_from_slice(extra);
            form
        };
        // (type, the other fields, what the answer says)
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: [Case<'_>; 7] = [
            ("user_update", &[("user_first_name", "X")], "Missing required field: user_name"),
            ("user_update", &[("user_name", "ghost"), ("user_first_name", "X")], "User not found"),
            ("user_update", &[("user_name", "clerk"), ("user_role", "Z")], "Invalid user_role"),
            ("user_update", &[("user_name", "CLERK"), ("user_custom1", "")], "status=\"success\""),
            ("user_delete", &[("user_name", "clerk"), ("action", "forever")], "Invalid action"),
            ("user_delete", &[("user_name", "clerk")], "status=\"success\""),
            ("user_delete", &[("user_name", "clerk")], "User not found"),
        ];
        for (kind, extra, expected) in cases {
            let (_, body) = post(&url, &call(extra, kind)).await;
            assert!(body.contains(expected), "{kind} {extra:?}: {body}");
        }
        let u = stored(&sandbox, "clerk");
        assert_eq!((u.custom1.as_str(), u.deleted), ("", true), "an empty free-text field clears it");
        let mut info = vec![("type", "user_info"), ("user_name", "clerk")];
        info.extend(AUTH);
        assert!(post(&url, &info).await.1.contains("User not found"), "a user marked deleted is not shown");
        let (_, body) = post(&url, &new).await;
        assert!(body.contains("User name already exists"), "it keeps its name: {body}");
        let (_, body) = post(&url, &call(&[("user_name", "clerk"), ("action", "permanent")], "user_delete")).await;
        assert!(body.contains("status=\"success\""), "{body}");
        assert!(post(&url, &new).await.1.contains("status=\"success\""), "the name is free again");
    }
}
