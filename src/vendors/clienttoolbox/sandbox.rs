//! A simulator of the ClientToolbox API on its real path (`POST /api.php`, form-encoded) with a ledger of the users it holds.
//!
//! It answers like the vendor: HTTP 200 with `<response status="success|error">` (or the JSON
//! equivalent for `output=JSON`), free-text `<error>` messages, one merchant account, a caller
//! that may manage users and one that may not. `user_info` and `users_list`, which only public
//! client code mentions, are served so the adapter's lookups can be exercised. Fault injection
//! is left to the shared sandbox layer.

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
}

#[derive(Debug, Default)]
struct Ledger {
    /// Keyed by lower-case `user_name`: uniqueness is treated as case-insensitive.
    users: BTreeMap<String, StoredUser>,
    creations: HashMap<String, u32>,
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

    /// How many times `user_new` created this `user_name` (case-insensitive). Never above 1.
    pub fn creations(&self, identity: &str) -> u32 {
        let ledger = self.ledger.lock().expect("sandbox lock");
        ledger.creations.get(&identity.to_ascii_lowercase()).copied().unwrap_or(0)
    }

    pub fn user_count(&self) -> usize {
        self.ledger.lock().expect("sandbox lock").users.len()
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
        if !matches!(kind, "user_new" | "user_info" | "users_list") {
            return error(format!("Invalid type: {kind}"));
        }
        if user_id != SANDBOX_USER_ID {
            return error("Permission denied: this user may not manage users");
        }
        let mut ledger = self.ledger.lock().expect("sandbox lock");
        match kind {
            "user_info" => {
                let Some(name) = get("user_name") else { return error("Missing required field: user_name") };
                match ledger.users.get(&name.to_ascii_lowercase()) {
                    Some(u) => Reply::Success(vec![u.clone()], Listing::One),
                    None => error("User not found"),
                }
            }
            "users_list" => Reply::Success(ledger.users.values().cloned().collect(), Listing::Many),
            _ => match new_user(p) {
                Err(message) => Reply::Error(message),
                Ok(user) => {
                    let key = user.user_name.to_ascii_lowercase();
                    if ledger.users.contains_key(&key) {
                        return error("User name already exists");
                    }
                    if user.pin.is_some() && ledger.users.values().any(|u| u.pin == user.pin) {
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
    let campaigns = require("allowed_campaigns")?;
    if role != rule::ADMINISTRATOR {
        match rule::campaign_ids(campaigns) {
            None => return Err("Invalid allowed_campaigns".into()),
            Some(ids) => {
                if let Some(bad) = ids.iter().find(|id| !SANDBOX_CAMPAIGNS.contains(id)) {
                    return Err(format!("Invalid campaign id: {bad}"));
                }
            }
        }
    }
    let language = get("language_selector").unwrap_or("EN");
    if !SANDBOX_LANGUAGES.contains(&language) {
        return Err("Invalid language_selector".into());
    }
    let timezone = get("timezone_selector").unwrap_or("68");
    if !(rule::digits(timezone) && timezone.parse::<u32>().is_ok_and(|t| (1..=SANDBOX_MAX_TIMEZONE).contains(&t))) {
        return Err("Invalid timezone_selector".into());
    }
    let pin = get("user_PIN").map(str::to_owned);
    // Never echo the PIN itself.
    if pin.as_deref().is_some_and(|pin| !rule::digits(pin)) {
        return Err("Invalid user_PIN: digits only".to_owned());
    }
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
    })
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
}
