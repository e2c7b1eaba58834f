//! A faithful simulator of the Glance PAPI (`NewUser`, `UpdateUser`, `DeleteUser`, `ShowUsers`)
//! with a ledger of the users it holds, for the demo, the integration tests and the benchmarks.
//!
//! It answers like Glance: HTTP 200 and an XML document for success and failure alike. The
//! failure document is `<error><code>…</code><message>…</message></error>` (Glance's real
//! shape is unconfirmed; the adapter's default markers read it and several others).
//! `UpdateUser` changes only the fields it is given, `UserSuspended` included, which
//! `ShowUsers` shows as `<UserSuspended>0|1</UserSuspended>`; `DeleteUser` removes the user for
//! good, so its PartnerUserID and UserAddress may be used again. An unknown PartnerUserID is
//! `<error><code>UserNotFound</code><message>PartnerUserID … not found in this group</message>`
//! (Glance's own words are unconfirmed).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Form, Router};
use secrecy::ExposeSecret;

use super::fields::NO_ROLE;
use super::request::{login_key, DELETE_USER_PATH, NEW_USER_PATH, SHOW_USERS_PATH, UPDATE_USER_PATH};

/// The sandbox group's admin login (`PartnerLogin`).
pub const SANDBOX_PARTNER_LOGIN: &str = "provisioner.sandbox.glance.net";
/// Its password (`PartnerPW`).
pub const SANDBOX_PARTNER_PW: &str = "sandbox-partner-pw";
/// The sandbox group id (`PartnerID`).
pub const SANDBOX_PARTNER_ID: u64 = 40123;
/// The group's API key, which signs `PartnerAuth` Login Keys.
pub const SANDBOX_API_KEY: &str = "example-api-key";
/// The PartnerUserID of the admin account: the sandbox expects it in Login Key messages
/// (the adapter's default `login_key_user = admin`).
pub const SANDBOX_ADMIN_PARTNER_USER_ID: &str = "provisioner-admin";
/// An admin login that exists but is inactive: every call with it fails.
pub const SANDBOX_INACTIVE_LOGIN: &str = "former.sandbox.glance.net";
/// The root element of the sandbox's NewUser success document (`<NewUser>`). An account
/// pointed at the sandbox may list it in `success_markers`, which spares the ShowUsers that
/// confirms an unrecognised answer; Glance's own success document is unconfirmed.
pub const SANDBOX_SUCCESS_MARKER: &str = "NewUser";
/// The root elements of every sandbox success document, as a `success_markers` value.
pub const SANDBOX_SUCCESS_MARKERS: &str = "NewUser, UpdateUser, DeleteUser";
/// The roles provisioned for the sandbox group.
pub const SANDBOX_ROLES: &[&str] = &["Support Tier 1", "Support Tier 2", "Sales"];
/// Login Keys further ahead than this (plus a little clock skew) are refused.
const MAX_KEY_AHEAD: i64 = 24 * 3600 + 300;

#[derive(Clone, Debug)]
struct StoredUser {
    user_id: u64,
    partner_user_id: String,
    address: String,
    first: String,
    last: String,
    email: String,
    role: String,
    suspended: bool,
}

#[derive(Debug, Default)]
struct Ledger {
    /// In creation order, which ShowUsers pages through; a deleted user leaves a `None`, so
    /// the indexes below stay valid.
    users: Vec<Option<StoredUser>>,
    /// Indexes into `users`: a create or an exact lookup must not walk every user (a
    /// benchmark run holds tens of thousands, under the one lock).
    by_partner_user_id: HashMap<String, usize>,
    addresses: HashSet<String>,
    creations: HashMap<String, u32>,
    /// PartnerUserID → UpdateUser and DeleteUser calls taken: what proves a repeat sent nothing.
    updates: HashMap<String, u32>,
    deletions: HashMap<String, u32>,
    foreign_addresses: HashSet<String>,
    next_id: u64,
}

impl Ledger {
    fn user(&self, partner_user_id: &str) -> Option<&StoredUser> {
        self.by_partner_user_id.get(partner_user_id).and_then(|&i| self.users[i].as_ref())
    }
}

/// The simulated Glance group.
#[derive(Debug, Default)]
pub struct Sandbox {
    ledger: Mutex<Ledger>,
}

impl Sandbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times the user with this PartnerUserID was created: never more than 1, unless
    /// it was deleted in between.
    pub fn creations(&self, identity: &str) -> u32 {
        self.ledger.lock().expect("sandbox lock").creations.get(identity).copied().unwrap_or(0)
    }

    pub fn user_count(&self) -> usize {
        self.ledger.lock().expect("sandbox lock").by_partner_user_id.len()
    }

    /// How many updates (`UpdateUser`) the user with this PartnerUserID took.
    pub fn updates(&self, identity: &str) -> u32 {
        self.ledger.lock().expect("sandbox lock").updates.get(identity).copied().unwrap_or(0)
    }

    /// How many deletes (`DeleteUser`) the user with this PartnerUserID took.
    pub fn deletions(&self, identity: &str) -> u32 {
        self.ledger.lock().expect("sandbox lock").deletions.get(identity).copied().unwrap_or(0)
    }

    /// The stored user under its wire names, as ShowUsers shows it; `None` when there is none.
    pub fn user(&self, identity: &str) -> Option<serde_json::Value> {
        let ledger = self.ledger.lock().expect("sandbox lock");
        ledger.user(identity).map(|u| {
            serde_json::json!({"PartnerUserID": u.partner_user_id, "UserAddress": u.address, "UserFirst": u.first,
                "UserLast": u.last, "UserEmail": u.email, "UserRole": u.role, "UserSuspended": u.suspended})
        })
    }

    /// Whether the user with this PartnerUserID is suspended; `None` when there is none.
    pub fn suspended(&self, identity: &str) -> Option<bool> {
        let ledger = self.ledger.lock().expect("sandbox lock");
        ledger.user(identity).map(|u| u.suspended)
    }

    /// Marks a Glance Address as held by some other Glance group: invisible to ShowUsers,
    /// refused by NewUser.
    pub fn reserve_foreign_address(&self, address: &str) {
        self.ledger.lock().expect("sandbox lock").foreign_addresses.insert(address.to_ascii_lowercase());
    }
}

pub fn router(state: Arc<Sandbox>) -> Router {
    Router::new()
        .route(NEW_USER_PATH, post(new_user).get(new_user_by_get))
        .route(SHOW_USERS_PATH, post(show_users).get(show_users_by_get))
        .route(UPDATE_USER_PATH, post(update_user).get(update_user_by_get))
        .route(DELETE_USER_PATH, post(delete_user).get(delete_user_by_get))
        .with_state(state)
}

const PROLOG: &str = r#"<?xml version="1.0" standalone="yes"?>"#;

fn esc(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

fn xml(body: String) -> axum::response::Response {
    ([(CONTENT_TYPE, "text/xml; charset=utf-8")], format!("{PROLOG}\n{body}")).into_response()
}

/// A failure document, HTTP 200 like every Glance answer.
struct Fail(String);

impl IntoResponse for Fail {
    fn into_response(self) -> axum::response::Response {
        xml(self.0)
    }
}

fn failure(code: &str, message: &str) -> Fail {
    Fail(format!("<error><code>{}</code><message>{}</message></error>", esc(code), esc(message)))
}

type Fields = Vec<(String, String)>;

fn get<'a>(form: &'a Fields, name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn authenticate(form: &Fields) -> Result<(), Fail> {
    let login = get(form, "PartnerLogin").unwrap_or_default();
    if !login.eq_ignore_ascii_case(SANDBOX_PARTNER_LOGIN) {
        return Err(failure("InvalidLogin", "Unknown or inactive PartnerLogin"));
    }
    let partner_id = get(form, "PartnerID");
    if let Some(id) = partner_id {
        if id != SANDBOX_PARTNER_ID.to_string() {
            return Err(failure(
                "InvalidPartnerID",
                &format!("PartnerLogin is not an administrator of PartnerID {id}"),
            ));
        }
    }
    match (get(form, "PartnerPW"), get(form, "PartnerAuth")) {
        (Some(pw), _) if pw == SANDBOX_PARTNER_PW => Ok(()),
        (Some(_), _) => Err(failure("InvalidLogin", "Wrong PartnerPW for PartnerLogin")),
        (None, Some(key)) if login_key_ok(key, partner_id.unwrap_or_default()) => Ok(()),
        (None, Some(_)) => Err(failure(
            "InvalidLoginKey",
            "PartnerAuth Login Key is expired, too far ahead, or its signature does not match",
        )),
        (None, None) => Err(failure("InvalidLogin", "No password given for PartnerLogin")),
    }
}

fn login_key_ok(key: &str, partner_id: &str) -> bool {
    let mut parts = key.split('$');
    let (Some(""), Some("1"), Some(expires), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(expires) = expires.parse::<i64>() else { return false };
    let now = chrono::Utc::now().timestamp();
    if expires <= now || expires > now + MAX_KEY_AHEAD {
        return false;
    }
    let expected = login_key(SANDBOX_API_KEY, partner_id, SANDBOX_ADMIN_PARTNER_USER_ID, expires);
    expected.expose_secret() == key
}

/// Glance's documented `NewUser` rules (vendors/glance.md), as this simulator's own table: it
/// never calls the job validators, so a guess of theirs that Glance does not make shows up as
/// a failing test instead of coming back as if Glance had made it.
mod rule {
    pub(super) const PARTNER_USER_ID_MAX: usize = 255;
    pub(super) const ADDRESS_MAX: usize = 127;
    pub(super) const ADDRESS_SUFFIX: &str = ".glance.net";
    /// "≤ 49 chars"; only an older page asks for at least 8, so no minimum.
    pub(super) const USER_PW_MAX: usize = 49;
    pub(super) const NAME_MAX: usize = 49;
    pub(super) const EMAIL_MAX: usize = 127;
    /// 31 on help.glance.net, 70 on help.glance.cx and the newer mirror: the sandbox plays the newer.
    pub(super) const USER_ROLE_MAX: usize = 70;
    pub(super) const AUDIO_PROVIDERS: &[&str] = &["1", "666"];

    /// The Glance Address rules: ASCII letters, digits, '.', '-'; no leading or trailing '.'
    /// or '-'; no '..'; ending in .glance.net; at most 127 characters; case-insensitive.
    pub(super) fn address(v: &str) -> bool {
        let lower = v.to_ascii_lowercase();
        let Some(name) = lower.strip_suffix(ADDRESS_SUFFIX) else { return false };
        v.len() <= ADDRESS_MAX
            && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            && !name.is_empty()
            && !name.starts_with(['.', '-'])
            && !name.ends_with(['.', '-'])
            && !lower.contains("..")
    }

    pub(super) fn at_most(v: &str, max: usize) -> bool {
        v.chars().count() <= max
    }
}

/// The new user as this simulated Glance reads the form, or its refusal.
struct Wanted<'a> {
    partner_user_id: &'a str,
    address: String,
    first: &'a str,
    last: &'a str,
    email: &'a str,
    role: &'a str,
    audio: bool,
}

fn wanted(form: &Fields) -> Result<Wanted<'_>, Fail> {
    let invalid = |m: &str| failure("InvalidInput", m);
    let partner_user_id =
        get(form, "PartnerUserID").filter(|v| !v.is_empty()).ok_or_else(|| invalid("PartnerUserID is required"))?;
    if !rule::at_most(partner_user_id, rule::PARTNER_USER_ID_MAX) {
        return Err(invalid("PartnerUserID must be at most 255 characters"));
    }
    let address =
        get(form, "UserAddress").filter(|v| !v.is_empty()).ok_or_else(|| invalid("UserAddress is required"))?;
    if !rule::address(address) {
        return Err(invalid("UserAddress is not a valid Glance Address"));
    }
    for (name, max) in [
        ("UserPW", rule::USER_PW_MAX),
        ("UserFirst", rule::NAME_MAX),
        ("UserLast", rule::NAME_MAX),
        ("UserEmail", rule::EMAIL_MAX),
        ("UserRole", rule::USER_ROLE_MAX),
    ] {
        if !get(form, name).is_none_or(|v| rule::at_most(v, max)) {
            return Err(invalid(&format!("{name} must be at most {max} characters")));
        }
    }
    let audio = match get(form, "AudioProvider") {
        None => false,
        Some(v) if rule::AUDIO_PROVIDERS.contains(&v.trim()) => true,
        Some(_) => return Err(invalid("AudioProvider must be 1 (Glance Free Conferencing) or 666")),
    };
    let role = get(form, "UserRole").unwrap_or_default();
    let no_role = role.trim().is_empty() || role.trim().eq_ignore_ascii_case(NO_ROLE);
    if !no_role && !SANDBOX_ROLES.iter().any(|r| r.eq_ignore_ascii_case(role.trim())) {
        return Err(failure("RoleNotProvisioned", &format!("UserRole {role} is not provisioned for this group")));
    }
    Ok(Wanted {
        partner_user_id,
        address: address.to_ascii_lowercase(),
        first: get(form, "UserFirst").unwrap_or_default(),
        last: get(form, "UserLast").unwrap_or_default(),
        email: get(form, "UserEmail").unwrap_or_default(),
        role: if no_role { "" } else { role },
        audio,
    })
}

async fn new_user(
    State(sandbox): State<Arc<Sandbox>>,
    Form(form): Form<Fields>,
) -> Result<axum::response::Response, Fail> {
    create(&sandbox, &form)
}

/// Glance "technically accepts" GET with the fields in the query string (and advises
/// against it: passwords land in web-server logs); the worker always posts.
async fn new_user_by_get(
    State(sandbox): State<Arc<Sandbox>>,
    Query(form): Query<Fields>,
) -> Result<axum::response::Response, Fail> {
    create(&sandbox, &form)
}

fn create(sandbox: &Sandbox, form: &Fields) -> Result<axum::response::Response, Fail> {
    authenticate(form)?;
    let user = wanted(form)?;
    let mut ledger = sandbox.ledger.lock().expect("sandbox lock");
    if ledger.by_partner_user_id.contains_key(user.partner_user_id) {
        return Err(failure(
            "DuplicatePartnerUserID",
            &format!("PartnerUserID {} is already used in this group", user.partner_user_id),
        ));
    }
    let address = user.address.as_str();
    if ledger.foreign_addresses.contains(address) || ledger.addresses.contains(address) {
        return Err(failure("DuplicateUserAddress", &format!("UserAddress {address} is already taken")));
    }
    ledger.next_id += 1;
    let user_id = 100_000 + ledger.next_id;
    let stored = StoredUser {
        user_id,
        partner_user_id: user.partner_user_id.to_owned(),
        address: address.to_owned(),
        first: user.first.to_owned(),
        last: user.last.to_owned(),
        email: user.email.to_owned(),
        role: user.role.to_owned(),
        suspended: false,
    };
    *ledger.creations.entry(stored.partner_user_id.clone()).or_default() += 1;
    let index = ledger.users.len();
    ledger.by_partner_user_id.insert(stored.partner_user_id.clone(), index);
    ledger.addresses.insert(stored.address.clone());
    ledger.users.push(Some(stored.clone()));
    drop(ledger);
    // Only `<dialIn>` is documented of the audio account data; no other element is invented.
    let audio =
        if user.audio { format!("<dialIn>1 (555) 010-{:04}</dialIn>", user_id % 10_000) } else { String::new() };
    Ok(xml(format!(
        "<NewUser><result>OK</result><user><UserID>{user_id}</UserID><PartnerUserID>{}</PartnerUserID>\
         <UserAddress>{}</UserAddress></user>{audio}</NewUser>",
        esc(&stored.partner_user_id),
        esc(&stored.address)
    )))
}

/// Glance's documented boolean spellings: `1|0|yes|no|true|false`.
fn flag(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" => Some(true),
        "0" | "no" | "false" => Some(false),
        _ => None,
    }
}

/// The user a call addresses by its PartnerUserID, or the sandbox's "not found".
fn addressed<'a>(ledger: &Ledger, form: &'a Fields) -> Result<(&'a str, usize), Fail> {
    let id = get(form, "PartnerUserID")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| failure("InvalidInput", "PartnerUserID is required"))?;
    within(form, "PartnerUserID", rule::PARTNER_USER_ID_MAX)?;
    match ledger.by_partner_user_id.get(id) {
        Some(&i) if ledger.users[i].is_some() => Ok((id, i)),
        _ => Err(failure("UserNotFound", &format!("PartnerUserID {id} not found in this group"))),
    }
}

async fn update_user(
    State(sandbox): State<Arc<Sandbox>>,
    Form(form): Form<Fields>,
) -> Result<axum::response::Response, Fail> {
    update(&sandbox, &form)
}

async fn update_user_by_get(
    State(sandbox): State<Arc<Sandbox>>,
    Query(form): Query<Fields>,
) -> Result<axum::response::Response, Fail> {
    update(&sandbox, &form)
}

/// `UpdateUser`: only the supplied fields change; `UserSuspended` wins over the deprecated
/// `UserActive` when both are given.
fn update(sandbox: &Sandbox, form: &Fields) -> Result<axum::response::Response, Fail> {
    authenticate(form)?;
    let invalid = |m: &str| failure("InvalidInput", m);
    let mut ledger = sandbox.ledger.lock().expect("sandbox lock");
    let (id, index) = addressed(&ledger, form)?;
    for (name, max) in [
        ("UserPW", rule::USER_PW_MAX),
        ("UserFirst", rule::NAME_MAX),
        ("UserLast", rule::NAME_MAX),
        ("UserEmail", rule::EMAIL_MAX),
        ("UserRole", rule::USER_ROLE_MAX),
    ] {
        if !get(form, name).is_none_or(|v| rule::at_most(v, max)) {
            return Err(invalid(&format!("{name} must be at most {max} characters")));
        }
    }
    let address = match get(form, "UserAddress") {
        None => None,
        Some(a) if rule::address(a) => Some(a.to_ascii_lowercase()),
        Some(_) => return Err(invalid("UserAddress is not a valid Glance Address")),
    };
    let current = ledger.users[index].as_ref().map(|u| u.address.clone()).unwrap_or_default();
    if let Some(a) = address.as_deref().filter(|a| *a != current) {
        if ledger.foreign_addresses.contains(a) || ledger.addresses.contains(a) {
            return Err(failure("DuplicateUserAddress", &format!("UserAddress {a} is already taken")));
        }
    }
    let role = match get(form, "UserRole") {
        None => None,
        Some(r) if r.trim().is_empty() || r.trim().eq_ignore_ascii_case(NO_ROLE) => Some(String::new()),
        Some(r) if SANDBOX_ROLES.iter().any(|known| known.eq_ignore_ascii_case(r.trim())) => Some(r.to_owned()),
        Some(r) => {
            return Err(failure("RoleNotProvisioned", &format!("UserRole {r} is not provisioned for this group")))
        }
    };
    let boolean = |name: &str| match get(form, name) {
        None => Ok(None),
        Some(v) => flag(v).map(Some).ok_or_else(|| invalid(&format!("{name} must be 1, 0, yes, no, true or false"))),
    };
    let suspended = match (boolean("UserSuspended")?, boolean("UserActive")?) {
        (Some(s), _) => Some(s),
        (None, active) => active.map(|a| !a),
    };
    *ledger.updates.entry(id.to_owned()).or_default() += 1;
    if let Some(a) = &address {
        ledger.addresses.remove(&current);
        ledger.addresses.insert(a.clone());
    }
    let user = ledger.users[index].as_mut().expect("addressed users exist");
    if let Some(a) = address {
        user.address = a;
    }
    for (name, slot) in [("UserFirst", &mut user.first), ("UserLast", &mut user.last), ("UserEmail", &mut user.email)] {
        if let Some(v) = get(form, name) {
            v.clone_into(slot);
        }
    }
    if let Some(r) = role {
        user.role = r;
    }
    if let Some(s) = suspended {
        user.suspended = s;
    }
    Ok(xml(format!(
        "<UpdateUser><result>OK</result><user><UserID>{}</UserID><PartnerUserID>{}</PartnerUserID></user></UpdateUser>",
        user.user_id,
        esc(id)
    )))
}

async fn delete_user(
    State(sandbox): State<Arc<Sandbox>>,
    Form(form): Form<Fields>,
) -> Result<axum::response::Response, Fail> {
    delete(&sandbox, &form)
}

async fn delete_user_by_get(
    State(sandbox): State<Arc<Sandbox>>,
    Query(form): Query<Fields>,
) -> Result<axum::response::Response, Fail> {
    delete(&sandbox, &form)
}

/// `DeleteUser`: permanent; the PartnerUserID and UserAddress are free again.
fn delete(sandbox: &Sandbox, form: &Fields) -> Result<axum::response::Response, Fail> {
    authenticate(form)?;
    let mut ledger = sandbox.ledger.lock().expect("sandbox lock");
    let (id, index) = addressed(&ledger, form)?;
    let id = id.to_owned();
    let user = ledger.users[index].take().expect("addressed users exist");
    ledger.by_partner_user_id.remove(&id);
    ledger.addresses.remove(&user.address);
    *ledger.deletions.entry(id.clone()).or_default() += 1;
    Ok(xml(format!("<DeleteUser><result>OK</result><PartnerUserID>{}</PartnerUserID></DeleteUser>", esc(&id))))
}

/// ShowUsers filters: exact, or `*` at the start and/or end as a wildcard.
fn pattern_matches(pattern: &str, value: &str, fold: bool) -> bool {
    use std::borrow::Cow;
    let (p, v): (Cow<str>, Cow<str>) = if fold {
        (pattern.to_ascii_lowercase().into(), value.to_ascii_lowercase().into())
    } else {
        (pattern.into(), value.into())
    };
    match (p.strip_prefix('*'), p.strip_suffix('*')) {
        (Some(rest), _) if rest.ends_with('*') => v.contains(rest.trim_end_matches('*')),
        (Some(rest), None) => v.ends_with(rest),
        (None, Some(rest)) => v.starts_with(rest),
        (Some(_), Some(_)) => true,
        (None, None) => v == p,
    }
}

fn within(form: &Fields, name: &str, max: usize) -> Result<(), Fail> {
    match get(form, name) {
        Some(v) if v.chars().count() > max => {
            Err(failure("InvalidInput", &format!("{name} must be at most {max} characters")))
        }
        _ => Ok(()),
    }
}

async fn show_users(
    State(sandbox): State<Arc<Sandbox>>,
    Form(form): Form<Fields>,
) -> Result<axum::response::Response, Fail> {
    list(&sandbox, &form)
}

async fn show_users_by_get(
    State(sandbox): State<Arc<Sandbox>>,
    Query(form): Query<Fields>,
) -> Result<axum::response::Response, Fail> {
    list(&sandbox, &form)
}

fn list(sandbox: &Sandbox, form: &Fields) -> Result<axum::response::Response, Fail> {
    authenticate(form)?;
    let page_count = match get(form, "PageCount").and_then(|v| v.trim().parse::<usize>().ok()) {
        Some(n) if (1..=1000).contains(&n) => n,
        _ => return Err(failure("InvalidInput", "PageCount is required and must be 1 to 1000")),
    };
    for (name, max) in [("PartnerUserID", 255), ("UserAddress", 127), ("UserRole", 255), ("PageStart", 15)] {
        within(form, name, max)?;
    }
    let start = match get(form, "PageStart").filter(|s| !s.is_empty()) {
        None => 0,
        Some(s) => match s.parse::<usize>() {
            Ok(n) => n,
            Err(_) => return Err(failure("InvalidInput", "PageStart must be a value from a previous answer")),
        },
    };
    let ledger = sandbox.ledger.lock().expect("sandbox lock");
    // An exact PartnerUserID (the adapter's lookup) is one index probe; wildcards walk.
    let exact = get(form, "PartnerUserID").filter(|p| !p.starts_with('*') && !p.ends_with('*'));
    let candidates: Box<dyn Iterator<Item = &StoredUser>> = match exact {
        Some(p) => Box::new(ledger.user(p).into_iter()),
        None => Box::new(ledger.users.iter().flatten()),
    };
    let matching: Vec<&StoredUser> = candidates
        .filter(|u| {
            get(form, "PartnerUserID").is_none_or(|p| p != NO_ROLE && pattern_matches(p, &u.partner_user_id, false))
        })
        .filter(|u| get(form, "UserAddress").is_none_or(|p| pattern_matches(p, &u.address, true)))
        .filter(|u| {
            get(form, "UserRole").is_none_or(|p| {
                if p.eq_ignore_ascii_case(NO_ROLE) {
                    u.role.is_empty() || u.role.eq_ignore_ascii_case(NO_ROLE)
                } else {
                    u.role.eq_ignore_ascii_case(p)
                }
            })
        })
        .collect();
    let page: Vec<String> = matching
        .iter()
        .skip(start)
        .take(page_count)
        .map(|u| {
            format!(
                "<user><UserID>{}</UserID><PartnerUserID>{}</PartnerUserID><UserAddress>{}</UserAddress>\
                 <UserFirst>{}</UserFirst><UserLast>{}</UserLast><UserEmail>{}</UserEmail><UserRole>{}</UserRole>\
                 <UserSuspended>{}</UserSuspended></user>",
                u.user_id,
                esc(&u.partner_user_id),
                esc(&u.address),
                esc(&u.first),
                esc(&u.last),
                esc(&u.email),
                esc(if u.role.is_empty() { NO_ROLE } else { &u.role }),
                u8::from(u.suspended)
            )
        })
        .collect();
    let next = (start + page_count < matching.len()).then(|| format!("<PageStart>{}</PageStart>", start + page_count));
    Ok(xml(format!(
        "<ShowUsers><users count=\"{}\">{}</users>{}</ShowUsers>",
        page.len(),
        page.concat(),
        next.unwrap_or_default()
    )))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::VendorSettings;
    use crate::vendors::glance::adapter::tests::{adapter_with, change_job, jane, job};
    use crate::vendors::glance::adapter::Adapter as GlanceAdapter;
    use crate::vendors::testing::{FRESH, SEEN};
    use crate::vendors::{Adapter as _, VendorFailure};

    async fn serve() -> (Arc<Sandbox>, String) {
        let sandbox = Arc::new(Sandbox::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(sandbox.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (sandbox, format!("http://{addr}"))
    }

    fn password_adapter(base: &str, login: &str, pw: &str) -> GlanceAdapter {
        adapter_with(
            base,
            &[("PartnerLogin", login), ("PartnerID", &SANDBOX_PARTNER_ID.to_string())],
            ("PartnerPW", pw),
            &VendorSettings::default(),
        )
    }

    fn sandbox_adapter(base: &str) -> GlanceAdapter {
        password_adapter(base, SANDBOX_PARTNER_LOGIN, SANDBOX_PARTNER_PW)
    }

    #[tokio::test]
    async fn round_trip_and_redelivery_create_exactly_once() {
        let (sandbox, base) = serve().await;
        let a = sandbox_adapter(&base);
        let created = a.create_user(&jane(), FRESH).await.unwrap();
        assert!(!created.existing);
        assert!(created.details["dialIn"].as_str().unwrap().starts_with("1 (555) 010-"));
        assert!(created.details["audio"].get("hostCode").is_none(), "host codes stay out of events");
        let again = a.create_user(&jane(), SEEN).await.unwrap();
        assert!(again.existing);
        assert_eq!(again.vendor_user_id, created.vendor_user_id);
        // Without the flag: Glance says "already used", the adapter looks up and decides.
        let replay = a.create_user(&jane(), FRESH).await.unwrap();
        assert!(replay.existing);
        assert_eq!(sandbox.creations("EMP-1"), 1);
        assert_eq!(sandbox.user_count(), 1);
    }

    #[tokio::test]
    async fn a_different_user_on_the_same_identity_is_a_conflict() {
        let (sandbox, base) = serve().await;
        let a = sandbox_adapter(&base);
        a.create_user(&jane(), FRESH).await.unwrap();
        let john = job(json!({"PartnerUserID": "EMP-1", "UserAddress": "john.acme.glance.net", "UserFirst": "John"}));
        for ctx in [FRESH, SEEN] {
            let e = a.create_user(&john, ctx).await.unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Conflict, "partner_user_id_taken"));
        }
        let thief = job(json!({"PartnerUserID": "EMP-2", "UserAddress": "jdoe.acme.glance.net"}));
        let e = a.create_user(&thief, FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Conflict, "user_address_taken"));
        assert!(e.message.contains("PartnerUserID EMP-1"), "{}", e.message);
        sandbox.reserve_foreign_address("taken.acme.glance.net");
        let foreign = job(json!({"PartnerUserID": "EMP-3", "UserAddress": "Taken.acme.glance.net"}));
        let e = a.create_user(&foreign, FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Conflict, "user_address_taken"));
        assert!(e.message.contains("outside this group"), "{}", e.message);
        assert_eq!(sandbox.user_count(), 1);
        assert_eq!(sandbox.creations("EMP-2") + sandbox.creations("EMP-3"), 0);
    }

    #[tokio::test]
    async fn wrong_or_inactive_credentials_are_auth() {
        let (sandbox, base) = serve().await;
        for a in [
            password_adapter(&base, SANDBOX_PARTNER_LOGIN, "wrong-pw"),
            password_adapter(&base, SANDBOX_INACTIVE_LOGIN, SANDBOX_PARTNER_PW),
        ] {
            let e = a.create_user(&jane(), FRESH).await.unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Auth, "credentials_refused"));
            assert!(!e.message.contains("wrong-pw") && !e.message.contains(SANDBOX_PARTNER_PW), "{}", e.message);
        }
        assert_eq!(sandbox.user_count(), 0);
    }

    #[tokio::test]
    async fn login_keys_work_when_they_sign_the_admin_id_and_fail_as_auth_otherwise() {
        let (sandbox, base) = serve().await;
        let pid = SANDBOX_PARTNER_ID.to_string();
        let good = adapter_with(
            &base,
            &[
                ("PartnerLogin", SANDBOX_PARTNER_LOGIN),
                ("PartnerID", &pid),
                ("admin_partner_user_id", SANDBOX_ADMIN_PARTNER_USER_ID),
            ],
            ("api_key", SANDBOX_API_KEY),
            &VendorSettings::default(),
        );
        assert!(!good.create_user(&jane(), FRESH).await.unwrap().existing);
        assert!(good.create_user(&jane(), SEEN).await.unwrap().existing);
        let other_subject = adapter_with(
            &base,
            &[("PartnerLogin", SANDBOX_PARTNER_LOGIN), ("PartnerID", &pid), ("login_key_user", "new_user")],
            ("api_key", SANDBOX_API_KEY),
            &VendorSettings::default(),
        );
        let e = other_subject.create_user(&jane(), SEEN).await.unwrap_err();
        assert_eq!(e.failure, VendorFailure::Auth);
        assert_eq!(sandbox.creations("EMP-1"), 1);
    }

    #[tokio::test]
    async fn the_sandbox_enforces_roles_and_field_rules() {
        let (sandbox, base) = serve().await;
        let a = sandbox_adapter(&base);
        let boss = job(json!({"PartnerUserID": "EMP-9", "UserAddress": "boss.acme.glance.net", "UserRole": "Boss"}));
        let e = a.create_user(&boss, FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, "role_not_provisioned"));
        let sales = job(json!({"PartnerUserID": "EMP-8", "UserAddress": "s.acme.glance.net", "UserRole": "sales"}));
        assert!(!a.create_user(&sales, FRESH).await.unwrap().existing);
        // Glance's page sets no UserPW minimum, and neither does the sandbox: an account that
        // asks for none creates a user with a three-character password.
        let short_pw = job(json!({"PartnerUserID": "EMP-7", "UserAddress": "p.acme.glance.net", "UserPW": "abc"}));
        assert!(!a.create_user(&short_pw, FRESH).await.unwrap().existing);
        assert_eq!(sandbox.user_count(), 2);
    }

    /// The sandbox's own rule table against forms sent by hand, bypassing the job validators.
    #[tokio::test]
    async fn the_sandbox_follows_the_vendor_facts_from_its_own_table() {
        let (sandbox, base) = serve().await;
        let auth = [("PartnerLogin", SANDBOX_PARTNER_LOGIN), ("PartnerPW", SANDBOX_PARTNER_PW)];
        let role_70 = "r".repeat(70);
        let role_71 = "r".repeat(71);
        let pw_50 = "p".repeat(50);
        // (PartnerUserID, UserAddress, the other fields, the refusal if any)
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], Option<&'a str>);
        let cases: [Case<'_>; 9] = [
            ("E1", "a.glance.net", &[("UserPW", "x")], None),
            ("E2", "b.glance.net", &[("UserPW", pw_50.as_str())], Some("UserPW must be at most 49")),
            ("E3", "c.glance.net", &[("UserRole", role_70.as_str())], Some("RoleNotProvisioned")),
            ("E4", "d.glance.net", &[("UserRole", role_71.as_str())], Some("UserRole must be at most 70")),
            ("E5", "e..glance.net", &[], Some("not a valid Glance Address")),
            ("E6", "f.example.com", &[], Some("not a valid Glance Address")),
            // Wildcards and -none- only matter to ShowUsers; NewUser takes them as ids.
            ("E7*", "g.glance.net", &[], None),
            ("E8", "h.glance.net", &[("AudioProvider", "2")], Some("AudioProvider must be 1")),
            ("E9", "i.glance.net", &[("AudioProvider", "666")], None),
        ];
        for (id, address, extra, refused) in cases {
            let mut form = auth.to_vec();
            form.extend([("PartnerUserID", id), ("UserAddress", address)]);
            form.extend_from_slice(extra);
            let body = post_form(&base, NEW_USER_PATH, &form).await;
            match refused {
                None => assert!(body.contains("<result>OK</result>"), "{id}: {body}"),
                Some(message) => assert!(body.contains(message), "{id}: {body}"),
            }
            assert_eq!(sandbox.creations(id), u32::from(refused.is_none()), "{id}");
        }
    }

    /// Glance documents only `<dialIn>` of the audio account data: the sandbox invents no
    /// other element.
    #[tokio::test]
    async fn the_dial_in_document_has_only_the_documented_element() {
        let (_, base) = serve().await;
        let form = [
            ("PartnerLogin", SANDBOX_PARTNER_LOGIN),
            ("PartnerPW", SANDBOX_PARTNER_PW),
            ("PartnerUserID", "EMP-1"),
            ("UserAddress", "a.glance.net"),
            ("AudioProvider", "1"),
        ];
        let body = post_form(&base, NEW_USER_PATH, &form).await;
        assert!(body.contains("<dialIn>1 (555) 010-"), "{body}");
        assert!(!body.contains("<audio>") && !body.contains("Code>"), "{body}");
        let created = sandbox_adapter(&base)
            .create_user(
                &job(json!({"PartnerUserID": "EMP-2", "UserAddress": "b.glance.net", "AudioProvider": 1})),
                FRESH,
            )
            .await
            .unwrap();
        assert!(created.details["dialIn"].as_str().unwrap().starts_with("1 (555) 010-"), "{created:?}");
    }

    /// GET is "technically accepted" with the fields in the query string (the worker posts).
    #[tokio::test]
    async fn get_is_accepted_as_the_facts_say() {
        let (sandbox, base) = serve().await;
        let query = [
            ("PartnerLogin", SANDBOX_PARTNER_LOGIN),
            ("PartnerPW", SANDBOX_PARTNER_PW),
            ("PartnerUserID", "EMP-G"),
            ("UserAddress", "g.glance.net"),
        ];
        let url = format!("{base}{NEW_USER_PATH}?{}", serde_urlencoded::to_string(query).unwrap());
        let body = reqwest::get(url).await.unwrap().text().await.unwrap();
        assert!(body.contains("<result>OK</result>"), "{body}");
        assert_eq!(sandbox.creations("EMP-G"), 1);
        let list = [
            ("PartnerLogin", SANDBOX_PARTNER_LOGIN),
            ("PartnerPW", SANDBOX_PARTNER_PW),
            ("PartnerUserID", "EMP-G"),
            ("PageCount", "10"),
        ];
        let url = format!("{base}{SHOW_USERS_PATH}?{}", serde_urlencoded::to_string(list).unwrap());
        let body = reqwest::get(url).await.unwrap().text().await.unwrap();
        assert!(body.contains("<PartnerUserID>EMP-G</PartnerUserID>"), "{body}");
    }

    async fn post_form(base: &str, path: &str, form: &[(&str, &str)]) -> String {
        reqwest::Client::new()
            .post(format!("{base}{path}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn with_the_sandbox_success_marker_a_create_needs_no_show_users() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let sandbox = Arc::new(Sandbox::new());
        let show_users_calls = Arc::new(AtomicUsize::new(0));
        let counted = show_users_calls.clone();
        let app = router(sandbox.clone()).layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                if req.uri().path() == SHOW_USERS_PATH {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                next.run(req)
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        // Without markers (the default) an answer is confirmed with ShowUsers: fail closed.
        assert!(!sandbox_adapter(&base).create_user(&jane(), FRESH).await.unwrap().existing);
        assert_eq!(show_users_calls.load(Ordering::SeqCst), 1);
        let marked = adapter_with(
            &base,
            &[("PartnerLogin", SANDBOX_PARTNER_LOGIN), ("success_markers", SANDBOX_SUCCESS_MARKER)],
            ("PartnerPW", SANDBOX_PARTNER_PW),
            &VendorSettings::default(),
        );
        let other = job(json!({"PartnerUserID": "EMP-2", "UserAddress": "other.acme.glance.net"}));
        let receipt = marked.create_user(&other, FRESH).await.unwrap();
        assert!(!receipt.existing && receipt.vendor_user_id.is_some(), "{receipt:?}");
        assert_eq!(show_users_calls.load(Ordering::SeqCst), 1, "the marked create was confirmed by its own answer");
        assert_eq!(sandbox.creations("EMP-2"), 1);
    }

    /// An account that may delete, reading answers by the sandbox's success markers or, with
    /// `markers = false`, with none (Glance's success document is unconfirmed: every answer is
    /// then checked with ShowUsers).
    fn lifecycle_adapter(base: &str, markers: bool) -> GlanceAdapter {
        let mut settings = vec![("PartnerLogin", SANDBOX_PARTNER_LOGIN), ("hard_delete", "true")];
        if markers {
            settings.push(("success_markers", SANDBOX_SUCCESS_MARKERS));
        }
        adapter_with(base, &settings, ("PartnerPW", SANDBOX_PARTNER_PW), &VendorSettings::default())
    }

    #[tokio::test]
    async fn lifecycle_round_trip_with_and_without_success_markers() {
        for markers in [true, false] {
            let (sandbox, base) = serve().await;
            let a = lifecycle_adapter(&base, markers);
            let emp1 = || json!({"PartnerUserID": "EMP-1"});
            assert!(!a.create_user(&jane(), FRESH).await.unwrap().existing);

            let update = change_job(
                "update_user",
                json!({"PartnerUserID": "EMP-1", "UserLast": "Smith", "UserRole": "Sales", "UserEmail": "j@acme.example"}),
            );
            let updated = a.update_user(&update, FRESH).await.unwrap();
            assert!(!updated.existing, "markers={markers}");
            let listed = show(&base, &[("PageCount", "10"), ("PartnerUserID", "EMP-1")]).await;
            assert!(listed.contains("<UserLast>Smith</UserLast>") && listed.contains("<UserRole>Sales</UserRole>"));
            assert!(listed.contains("<UserFirst>Jane</UserFirst>"), "fields not named stay: {listed}");
            assert!(a.update_user(&update, SEEN).await.unwrap().existing, "unchanged, markers={markers}");

            let suspend = change_job("suspend_user", emp1());
            assert!(!a.suspend_user(&suspend, FRESH).await.unwrap().existing);
            assert_eq!(sandbox.suspended("EMP-1"), Some(true));
            assert!(a.suspend_user(&suspend, FRESH).await.unwrap().existing);
            let restore = change_job("restore_user", emp1());
            assert!(!a.restore_user(&restore, FRESH).await.unwrap().existing);
            assert_eq!(sandbox.suspended("EMP-1"), Some(false));
            assert!(a.restore_user(&restore, FRESH).await.unwrap().existing);

            let delete = change_job("delete_user", emp1());
            let deleted = a.delete_user(&delete, FRESH).await.unwrap();
            assert!(!deleted.existing);
            assert_eq!(sandbox.user_count(), 0);
            assert!(a.delete_user(&delete, FRESH).await.unwrap().existing, "already gone is unchanged");
            for kind in ["suspend_user", "restore_user"] {
                let e = a.run_kind(&change_job(kind, emp1())).await.unwrap_err();
                assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, "no_such_user"), "{kind}");
            }
            let e = a.update_user(&update, FRESH).await.unwrap_err();
            assert_eq!(e.code, "no_such_user");

            // A deleted user's PartnerUserID and UserAddress may be used again.
            assert!(!a.create_user(&jane(), FRESH).await.unwrap().existing);
            assert_eq!(sandbox.creations("EMP-1"), 2);
        }
    }

    #[tokio::test]
    async fn a_renamed_address_frees_the_old_one_and_a_taken_one_is_a_conflict() {
        let (_sandbox, base) = serve().await;
        let a = lifecycle_adapter(&base, true);
        a.create_user(&jane(), FRESH).await.unwrap();
        a.create_user(&job(json!({"PartnerUserID": "EMP-2", "UserAddress": "john.acme.glance.net"})), FRESH)
            .await
            .unwrap();
        let taken = change_job("update_user", json!({"PartnerUserID": "EMP-1", "UserAddress": "John.acme.glance.net"}));
        let e = a.update_user(&taken, FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Conflict, "user_address_taken"));
        let moved = change_job("update_user", json!({"PartnerUserID": "EMP-1", "UserAddress": "jane.acme.glance.net"}));
        assert!(!a.update_user(&moved, FRESH).await.unwrap().existing);
        assert!(a.update_user(&moved, FRESH).await.unwrap().existing);
        let reuse = job(json!({"PartnerUserID": "EMP-3", "UserAddress": "jdoe.acme.glance.net"}));
        assert!(!a.create_user(&reuse, FRESH).await.unwrap().existing, "the old address is free");
        let boss = change_job("update_user", json!({"PartnerUserID": "EMP-1", "UserRole": "Boss"}));
        let e = a.update_user(&boss, FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, "role_not_provisioned"));
    }

    #[tokio::test]
    async fn a_delete_the_account_does_not_allow_never_reaches_the_sandbox() {
        let (sandbox, base) = serve().await;
        let a = sandbox_adapter(&base);
        a.create_user(&jane(), FRESH).await.unwrap();
        let e = a.delete_user(&change_job("delete_user", json!({"PartnerUserID": "EMP-1"})), FRESH).await.unwrap_err();
        assert_eq!(e.code, "hard_delete_not_allowed");
        assert_eq!(sandbox.user_count(), 1);
    }

    #[tokio::test]
    async fn an_injected_fault_then_success() {
        use crate::sandbox::faults::{FaultState, Faults};
        let sandbox = Arc::new(Sandbox::new());
        let faults = FaultState::new(Faults::default(), 7);
        let app = crate::sandbox::with_faults(router(sandbox.clone()), faults.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let a = lifecycle_adapter(&base, true);
        a.create_user(&jane(), FRESH).await.unwrap();
        let update = change_job("update_user", json!({"PartnerUserID": "EMP-1", "UserFirst": "Janet"}));
        let suspend = change_job("suspend_user", json!({"PartnerUserID": "EMP-1"}));
        let delete = change_job("delete_user", json!({"PartnerUserID": "EMP-1"}));
        for (job, check) in [(&update, "UserFirst"), (&suspend, "UserSuspended"), (&delete, "deleted")] {
            faults.set(Faults { fail_next: 1, ..Faults::default() });
            let e = a.run_kind(job).await.unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Transient, "http_503"), "{check}");
            faults.set(Faults {
                throttle_next: 1,
                retry_after: std::time::Duration::from_secs(3),
                ..Faults::default()
            });
            let e = a.run_kind(job).await.unwrap_err();
            assert_eq!((e.failure, e.retry_after), (VendorFailure::Throttled, Some(std::time::Duration::from_secs(3))));
            assert!(!a.run_kind(job).await.unwrap().existing, "{check} went through after the faults");
        }
        assert_eq!(sandbox.user_count(), 0);
    }

    /// The sandbox's UpdateUser and DeleteUser against forms sent by hand.
    #[tokio::test]
    async fn the_sandbox_update_and_delete_follow_the_vendor_facts() {
        let (sandbox, base) = serve().await;
        sandbox_adapter(&base).create_user(&jane(), FRESH).await.unwrap();
        let auth = [("PartnerLogin", SANDBOX_PARTNER_LOGIN), ("PartnerPW", SANDBOX_PARTNER_PW)];
        let call = |p: &'static str, extra: &'static [(&'static str, &'static str)]| {
            let base = base.clone();
            async move {
                let mut form = auth.to_vec();
                form.extend_from_slice(extra);
                post_form(&base, p, &form).await
            }
        };
        for (extra, answer) in [
            (&[("PartnerUserID", "EMP-9"), ("UserFirst", "X")][..], "UserNotFound"),
            (&[("UserFirst", "X")][..], "PartnerUserID is required"),
            (&[("PartnerUserID", "EMP-1"), ("UserSuspended", "maybe")][..], "UserSuspended must be 1, 0"),
            (&[("PartnerUserID", "EMP-1"), ("UserRole", "Boss")][..], "RoleNotProvisioned"),
            (&[("PartnerUserID", "EMP-1"), ("UserAddress", "x..glance.net")][..], "not a valid Glance Address"),
        ] {
            let body = call(UPDATE_USER_PATH, extra).await;
            assert!(body.contains(answer), "{extra:?}: {body}");
        }
        // The deprecated UserActive suspends; UserSuspended wins when both are given.
        assert!(call(UPDATE_USER_PATH, &[("PartnerUserID", "EMP-1"), ("UserActive", "no")]).await.contains("OK"));
        assert_eq!(sandbox.suspended("EMP-1"), Some(true));
        let both = &[("PartnerUserID", "EMP-1"), ("UserActive", "no"), ("UserSuspended", "false")];
        assert!(call(UPDATE_USER_PATH, both).await.contains("OK"));
        assert_eq!(sandbox.suspended("EMP-1"), Some(false));
        assert!(call(DELETE_USER_PATH, &[("PartnerUserID", "EMP-9")]).await.contains("UserNotFound"));
        assert!(call(DELETE_USER_PATH, &[("PartnerUserID", "EMP-1")]).await.contains("<DeleteUser>"));
        assert!(call(DELETE_USER_PATH, &[("PartnerUserID", "EMP-1")]).await.contains("UserNotFound"));
        assert_eq!(sandbox.suspended("EMP-1"), None);
        let wrong =
            post_form(&base, DELETE_USER_PATH, &[("PartnerLogin", SANDBOX_PARTNER_LOGIN), ("PartnerPW", "x")]).await;
        assert!(wrong.contains("Wrong PartnerPW"), "{wrong}");
    }

    async fn show(base: &str, extra: &[(&str, &str)]) -> String {
        let mut form = vec![("PartnerLogin", SANDBOX_PARTNER_LOGIN), ("PartnerPW", SANDBOX_PARTNER_PW)];
        form.extend_from_slice(extra);
        reqwest::Client::new()
            .post(format!("{base}{SHOW_USERS_PATH}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(&form).unwrap())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn show_users_filters_wildcards_and_pages() {
        let (_sandbox, base) = serve().await;
        let a = sandbox_adapter(&base);
        for (id, addr) in
            [("Sales-1", "a.ri.acme.glance.net"), ("Sales-2", "b.ri.acme.glance.net"), ("X-34", "c.acme.glance.net")]
        {
            a.create_user(&job(json!({"PartnerUserID": id, "UserAddress": addr})), FRESH).await.unwrap();
        }
        let count = |s: &str| s.matches("<user>").count();
        assert_eq!(count(&show(&base, &[("PageCount", "10"), ("PartnerUserID", "Sales*")]).await), 2);
        assert_eq!(count(&show(&base, &[("PageCount", "10"), ("PartnerUserID", "*34")]).await), 1);
        assert_eq!(count(&show(&base, &[("PageCount", "10"), ("PartnerUserID", "X-34")]).await), 1);
        assert_eq!(count(&show(&base, &[("PageCount", "10"), ("PartnerUserID", "X-3")]).await), 0);
        assert_eq!(count(&show(&base, &[("PageCount", "10"), ("UserAddress", "*.ri.acme.glance.net")]).await), 2);
        assert_eq!(count(&show(&base, &[("PageCount", "10"), ("UserRole", "-none-")]).await), 3);
        let first = show(&base, &[("PageCount", "2")]).await;
        assert_eq!(count(&first), 2);
        assert!(first.contains("<PageStart>2</PageStart>"), "{first}");
        let rest = show(&base, &[("PageCount", "2"), ("PageStart", "2")]).await;
        assert_eq!(count(&rest), 1);
        assert!(!rest.contains("PageStart"));
        let refused = show(&base, &[]).await;
        assert!(refused.contains("<error>") && refused.contains("PageCount"), "{refused}");
        assert!(refused.starts_with(r#"<?xml version="1.0" standalone="yes"?>"#));
    }
}
