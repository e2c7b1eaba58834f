//! Pure interpretation of Glance PAPI answers: XML bodies that carry success and failure alike.
//!
//! The failure document's shape is unconfirmed, so failure is recognised by configurable
//! markers (element names, status attributes or elements and their values) and classified by
//! configurable message patterns, in this order: Login Key, credentials, role, duplicate,
//! audio, else bad input (a create); Login Key, credentials, no such user, role, duplicate,
//! else bad input (an update or a delete).

use reqwest::header::HeaderMap;
use serde_json::{Map, Value};

use super::fields::{NewUser, PartnerUserId, UserChange, UserRole, NO_ROLE};
use super::xml::{self, Element};
use crate::vendors::{http, Receipt, VendorError, VendorFailure};

/// The code of a refused Login Key: transient once (a fresh key is minted), then auth.
pub const LOGIN_KEY_REJECTED: &str = "login_key_rejected";
/// Longest vendor text or body excerpt copied into an error message.
const EXCERPT: usize = 200;

/// How failure documents, lookup records and audio data are recognised. Names and patterns
/// are lowercase; patterns match as substrings of "<code> <message>".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Markers {
    pub(super) failure_elements: Vec<String>,
    pub(super) status_names: Vec<String>,
    pub(super) status_failure_values: Vec<String>,
    pub(super) message_names: Vec<String>,
    pub(super) code_names: Vec<String>,
    pub(super) success_markers: Vec<String>,
    pub(super) lookup_user_element: String,
    /// Record elements whose boolean says the user is suspended (`UserSuspended`).
    pub(super) suspended_names: Vec<String>,
    /// Record elements whose boolean says the user is active: the inverse (`UserActive`).
    pub(super) active_names: Vec<String>,
    pub(super) login_key_patterns: Vec<String>,
    pub(super) auth_patterns: Vec<String>,
    pub(super) role_patterns: Vec<String>,
    pub(super) duplicate_patterns: Vec<String>,
    pub(super) audio_patterns: Vec<String>,
    pub(super) audio_secret_patterns: Vec<String>,
    pub(super) not_found_patterns: Vec<String>,
}

fn strings(s: &str) -> Vec<String> {
    s.split(',').map(str::to_owned).collect()
}

impl Default for Markers {
    fn default() -> Self {
        Self {
            failure_elements: strings("error,errors,failure,fault"),
            status_names: strings("status,result,success"),
            status_failure_values: strings("error,errors,fail,failed,failure,false"),
            message_names: strings("message,description,errormessage,errortext,text,msg,reason,detail"),
            code_names: strings("code,errorcode,number,errornumber"),
            success_markers: Vec::new(),
            lookup_user_element: "user".into(),
            suspended_names: strings("usersuspended,suspended"),
            active_names: strings("useractive"),
            login_key_patterns: strings("partnerauth,login key,loginkey"),
            auth_patterns: strings(
                "partnerlogin,partnerpw,partnerid,not authorized,unauthorized,authentication,invalid login,\
                 unknown login,inactive",
            ),
            role_patterns: strings("not provisioned,unknown role,no such role,invalid role"),
            duplicate_patterns: strings("already,duplicate,in use,exists,taken"),
            audio_patterns: strings("audio,conferenc"),
            audio_secret_patterns: strings("pin,pass,pw,host,secret,key"),
            not_found_patterns: strings(
                "not found,no such,does not exist,unknown user,unknown partneruserid,no user,already deleted",
            ),
        }
    }
}

/// What a `NewUser` answer means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateAnswer {
    Created(Receipt),
    /// The PartnerUserID or UserAddress is taken: look up before deciding.
    AlreadyExists {
        message: String,
    },
    /// Audio provisioning failed; whether the user exists is unconfirmed.
    AudioFailed {
        message: String,
    },
    /// XML without a failure marker and without a configured success marker (always so while
    /// none is configured): the adapter confirms it with ShowUsers.
    Unrecognised {
        /// What the answer would say if it is a success: its audio data and ids, kept for the
        /// receipt once ShowUsers confirms the user.
        candidate: Box<Receipt>,
        excerpt: String,
    },
    Failed(VendorError),
}

/// One user record of a `ShowUsers` answer; fields Glance did not return are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FoundUser {
    pub user_id: Option<String>,
    pub partner_user_id: Option<String>,
    pub address: Option<String>,
    pub first: Option<String>,
    pub last: Option<String>,
    pub email: Option<String>,
    pub role: Option<String>,
    /// Whether the user is suspended, when the record shows it (see [`Markers`]).
    pub suspended: Option<bool>,
}

/// What an `UpdateUser` or `DeleteUser` answer means, when it is not a failure to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeAnswer {
    /// A configured success marker proves the call was carried out.
    Done,
    /// Glance has no user with that PartnerUserID.
    NoSuchUser,
    /// XML without a failure marker and without a configured success marker (always so while
    /// none is configured): the adapter checks it with ShowUsers.
    Unrecognised { excerpt: String },
}

/// Printable, short, single-line: fit for an error message. Secrets are scrubbed by the
/// adapter, which knows them.
pub fn excerpt(s: &str) -> String {
    let flat: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= EXCERPT {
        flat
    } else {
        format!("{}…", flat.chars().take(EXCERPT).collect::<String>())
    }
}

/// Non-2xx statuses. Glance documents none (it answers 200 with XML), so these are the
/// generic readings of a web server in front of it.
fn http_status(status: u16, headers: &HeaderMap) -> Option<VendorError> {
    let (failure, message) = match status {
        200..=299 => return None,
        429 => (VendorFailure::Throttled, "Glance asked us to slow down; retry later"),
        408 | 425 => (VendorFailure::Transient, "Glance timed the request out; retry later"),
        500..=599 => (VendorFailure::Transient, "Glance is failing; retry later"),
        300..=399 => {
            (VendorFailure::Auth, "Glance redirected the call; set the account's base_url to the final https URL")
        }
        401 | 403 => (VendorFailure::Auth, "Glance refused the call; check the account's credentials and base_url"),
        404 | 405 => (VendorFailure::Auth, "no Glance PAPI endpoint at the account's base_url; fix base_url"),
        _ => (VendorFailure::Rejected, "Glance refused the request; fix the job"),
    };
    let mut e = VendorError::new(failure, format!("http_{status}"), format!("HTTP {status}: {message}"));
    e.retry_after = http::retry_after(headers);
    Some(e)
}

fn parse_body(body: &str) -> Result<Element, VendorError> {
    xml::parse(body).map_err(|why| {
        VendorError::new(
            VendorFailure::Transient,
            "unreadable_answer",
            format!("Glance answered with no readable XML ({why}): {:?}; retry later", excerpt(body)),
        )
    })
}

/// The vendor's own code and message from a failure document.
#[derive(Clone, Debug, PartialEq, Eq)]
struct VendorMessage {
    code: String,
    message: String,
    /// Code and message without the job's own words: what patterns are matched against.
    heard: String,
}

fn named(e: &Element, names: &[String]) -> Option<String> {
    for (depth, d) in e.walk() {
        if depth > 0 && names.contains(&d.name) {
            let t = d.all_text();
            if !t.is_empty() {
                return Some(t);
            }
        }
    }
    for (depth, d) in e.walk() {
        if depth <= 1 {
            if let Some((_, v)) = d.attributes.iter().find(|(n, v)| names.contains(n) && !v.trim().is_empty()) {
                return Some(v.trim().to_owned());
            }
        }
    }
    None
}

fn carrier<'a>(e: &'a Element, depth: usize, m: &Markers) -> Option<&'a Element> {
    if m.failure_elements.contains(&e.name) {
        return Some(e);
    }
    let failing = |v: &str| m.status_failure_values.contains(&v.trim().to_ascii_lowercase());
    if e.attributes.iter().any(|(n, v)| m.status_names.contains(n) && failing(v)) {
        return Some(e);
    }
    if e.children.iter().any(|c| c.is_leaf() && m.status_names.contains(&c.name) && failing(&c.text)) {
        return Some(e);
    }
    if depth >= 2 {
        return None;
    }
    e.children.iter().find_map(|c| carrier(c, depth + 1, m))
}

/// The failure in a document, if it is one. Only the root and two levels below it are
/// searched, so user data deeper down cannot look like a failure.
fn failure(doc: &Element, m: &Markers, echoes: &[&str]) -> Option<VendorMessage> {
    let e = carrier(doc, 0, m)?;
    let code = named(e, &m.code_names).unwrap_or_default();
    let message = named(e, &m.message_names)
        .or_else(|| Some(e.text.trim().to_owned()).filter(|t| !t.is_empty()))
        .unwrap_or_else(|| {
            let all = e.all_text();
            if all.is_empty() {
                "no message".to_owned()
            } else {
                all
            }
        });
    let heard = crate::vendors::unechoed(&format!("{code} {message}"), echoes);
    Some(VendorMessage { code, message: excerpt(&message), heard })
}

fn matches(patterns: &[String], v: &VendorMessage) -> bool {
    patterns.iter().any(|p| v.heard.contains(p.as_str()))
}

fn shown(v: &VendorMessage) -> String {
    if v.code.is_empty() {
        format!("{:?}", v.message)
    } else {
        format!("{:?} (code {})", v.message, v.code)
    }
}

/// Failures every call shares: credentials and Login Keys.
fn auth_failure(v: &VendorMessage, m: &Markers) -> Option<VendorError> {
    if matches(&m.login_key_patterns, v) {
        return Some(VendorError::new(
            VendorFailure::Transient,
            LOGIN_KEY_REJECTED,
            format!(
                "Glance refused the Login Key: {}; check the api_key credential, PartnerID, login_key_user and the \
                 clock",
                shown(v)
            ),
        ));
    }
    if matches(&m.auth_patterns, v) {
        return Some(VendorError::new(
            VendorFailure::Auth,
            "credentials_refused",
            format!(
                "Glance refused the account's credentials: {}; fix PartnerLogin, PartnerPW or PartnerID of the \
                 account, then replay",
                shown(v)
            ),
        ));
    }
    None
}

/// Interprets a `NewUser` answer. `user` is what was sent, for the receipt.
pub fn interpret_create(status: u16, headers: &HeaderMap, body: &str, m: &Markers, user: &NewUser) -> CreateAnswer {
    if let Some(e) = http_status(status, headers) {
        return CreateAnswer::Failed(e);
    }
    let doc = match parse_body(body) {
        Ok(d) => d,
        Err(e) => return CreateAnswer::Failed(e),
    };
    if let Some(v) = failure(&doc, m, &user.echoes()) {
        if let Some(e) = auth_failure(&v, m) {
            return CreateAnswer::Failed(e);
        }
        if matches(&m.role_patterns, &v) {
            return CreateAnswer::Failed(VendorError::new(
                VendorFailure::Rejected,
                "role_not_provisioned",
                format!(
                    "Glance refused UserRole: {}; provision the role for the group (see ShowRoles) or fix the job",
                    shown(&v)
                ),
            ));
        }
        if matches(&m.duplicate_patterns, &v) {
            return CreateAnswer::AlreadyExists { message: shown(&v) };
        }
        if user.audio.is_some() && matches(&m.audio_patterns, &v) {
            return CreateAnswer::AudioFailed { message: shown(&v) };
        }
        return CreateAnswer::Failed(VendorError::new(
            VendorFailure::Rejected,
            "user_refused",
            format!("Glance refused the user: {}; fix the job", shown(&v)),
        ));
    }
    // Glance's success document is unconfirmed. Without configured success markers an
    // answer with no failure marker is no proof of a user: the adapter confirms it with
    // ShowUsers rather than ack a job whose user may not exist (fail closed).
    if m.success_markers.is_empty() || !doc.walk().iter().any(|(_, e)| m.success_markers.contains(&e.name)) {
        return CreateAnswer::Unrecognised {
            excerpt: excerpt(body),
            candidate: Box::new(created_receipt(&doc, m, user)),
        };
    }
    CreateAnswer::Created(created_receipt(&doc, m, user))
}

fn leaf_text<'a>(doc: &'a Element, name: &str) -> Option<&'a str> {
    doc.walk()
        .into_iter()
        .find(|(_, e)| e.name == name && e.is_leaf() && !e.text.trim().is_empty())
        .map(|(_, e)| e.text.trim())
}

const IDENTITY_NAMES: &[&str] = &["partneruserid", "useraddress", "userid", "glanceuserid", "status", "result"];

fn created_receipt(doc: &Element, m: &Markers, user: &NewUser) -> Receipt {
    let mut details = Map::new();
    details.insert("PartnerUserID".into(), Value::from(user.partner_user_id.as_str()));
    details.insert("UserAddress".into(), Value::from(user.address.as_str()));
    let holder = doc.walk().into_iter().map(|(_, e)| e).find(|e| e.children.iter().any(|c| c.name == "dialin"));
    let holder = holder.or_else(|| (doc.name == "dialin").then_some(doc));
    if let Some(holder) = holder {
        let leaves: Vec<&Element> =
            if holder.name == "dialin" { vec![holder] } else { holder.children.iter().collect() };
        let mut audio = Map::new();
        for leaf in leaves.into_iter().filter(|e| e.is_leaf() && !e.text.trim().is_empty()) {
            let secret = m.audio_secret_patterns.iter().any(|p| leaf.name.contains(p.as_str()));
            if secret || IDENTITY_NAMES.contains(&leaf.name.as_str()) {
                continue;
            }
            if leaf.name == "dialin" {
                details.insert("dialIn".into(), Value::from(leaf.text.trim()));
            }
            audio.insert(leaf.tag.clone(), Value::from(leaf.text.trim()));
        }
        details.insert("audio".into(), Value::Object(audio));
    }
    let vendor_user_id = leaf_text(doc, "userid").or_else(|| leaf_text(doc, "glanceuserid")).map(str::to_owned);
    if let Some(id) = &vendor_user_id {
        details.insert("UserID".into(), Value::from(id.as_str()));
    }
    Receipt {
        existing: false,
        vendor_user_id: Some(vendor_user_id.unwrap_or_else(|| user.partner_user_id.as_str().to_owned())),
        details,
    }
}

/// Glance's documented boolean spellings: `1|0|yes|no|true|false`.
fn flag(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" => Some(true),
        "0" | "no" | "false" => Some(false),
        _ => None,
    }
}

fn record(e: &Element, m: &Markers) -> FoundUser {
    let get = |name: &str| {
        e.children
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.all_text())
            .or_else(|| e.attribute(name).map(|v| v.trim().to_owned()))
    };
    FoundUser {
        user_id: get("userid").or_else(|| get("glanceuserid")).filter(|s| !s.is_empty()),
        partner_user_id: get("partneruserid"),
        address: get("useraddress"),
        first: get("userfirst"),
        last: get("userlast"),
        email: get("useremail"),
        role: get("userrole"),
        suspended: m
            .suspended_names
            .iter()
            .find_map(|n| get(n).as_deref().and_then(flag))
            .or_else(|| m.active_names.iter().find_map(|n| get(n).as_deref().and_then(flag)).map(|active| !active)),
    }
}

/// Interprets a `ShowUsers` answer into the records it holds (possibly none). Records are the
/// configured user element; failing that, any element carrying a `PartnerUserID`.
pub fn interpret_lookup(
    status: u16,
    headers: &HeaderMap,
    body: &str,
    m: &Markers,
    echoes: &[&str],
) -> Result<Vec<FoundUser>, VendorError> {
    if let Some(e) = http_status(status, headers) {
        return Err(e);
    }
    let doc = parse_body(body)?;
    if let Some(v) = failure(&doc, m, echoes) {
        return Err(auth_failure(&v, m).unwrap_or_else(|| {
            VendorError::new(
                VendorFailure::Transient,
                "lookup_failed",
                format!("Glance refused the ShowUsers lookup: {}; retry later", shown(&v)),
            )
        }));
    }
    let all = doc.walk();
    let mut records: Vec<&Element> =
        all.iter().map(|(_, e)| *e).filter(|e| e.name == m.lookup_user_element && !e.is_leaf()).collect();
    if records.is_empty() {
        records = all
            .iter()
            .map(|(_, e)| *e)
            .filter(|e| e.child("partneruserid").is_some() || e.attribute("partneruserid").is_some())
            .collect();
    }
    Ok(records.into_iter().map(|r| record(r, m)).collect())
}

/// Decides what a user holding our PartnerUserID means for this job: the same profile (a
/// replay or redelivery) is `existing`; a different one is a conflict.
pub fn reconcile(user: &NewUser, found: &FoundUser) -> Result<Receipt, VendorError> {
    match difference(user, found) {
        None => Ok(existing_receipt(user, found)),
        Some(field) => Err(VendorError::new(
            VendorFailure::Conflict,
            "partner_user_id_taken",
            format!(
                "PartnerUserID {} already belongs to a different Glance user ({field} differs); choose another \
                 PartnerUserID or correct that user in Glance",
                user.partner_user_id
            ),
        )),
    }
}

/// Interprets an `UpdateUser` answer (an update, a suspend or a restore).
pub fn interpret_update(
    status: u16,
    headers: &HeaderMap,
    body: &str,
    m: &Markers,
    echoes: &[&str],
) -> Result<ChangeAnswer, VendorError> {
    let refusal = match read_change(status, headers, body, m, echoes)? {
        Read::Answer(a) => return Ok(a),
        Read::Refused(v) => v,
    };
    if matches(&m.role_patterns, &refusal) {
        return Err(VendorError::new(
            VendorFailure::Rejected,
            "role_not_provisioned",
            format!(
                "Glance refused UserRole: {}; provision the role for the group (see ShowRoles) or fix the job",
                shown(&refusal)
            ),
        ));
    }
    if matches(&m.duplicate_patterns, &refusal) {
        return Err(VendorError::new(
            VendorFailure::Conflict,
            "user_address_taken",
            format!("Glance refused the new UserAddress: {}; choose another UserAddress", shown(&refusal)),
        ));
    }
    Err(VendorError::new(
        VendorFailure::Rejected,
        "user_refused",
        format!("Glance refused the change: {}; fix the job", shown(&refusal)),
    ))
}

/// Interprets a `DeleteUser` answer.
pub fn interpret_delete(
    status: u16,
    headers: &HeaderMap,
    body: &str,
    m: &Markers,
    echoes: &[&str],
) -> Result<ChangeAnswer, VendorError> {
    match read_change(status, headers, body, m, echoes)? {
        Read::Answer(a) => Ok(a),
        Read::Refused(refusal) => Err(VendorError::new(
            VendorFailure::Rejected,
            "user_refused",
            format!("Glance refused to delete the user: {}; check the user in Glance, then replay", shown(&refusal)),
        )),
    }
}

/// What the part every change answer shares found: an answer, or a refusal the caller
/// classifies further.
enum Read {
    Answer(ChangeAnswer),
    Refused(VendorMessage),
}

/// Status, body, credentials and "no such user": alike for `UpdateUser` and `DeleteUser`.
fn read_change(
    status: u16,
    headers: &HeaderMap,
    body: &str,
    m: &Markers,
    echoes: &[&str],
) -> Result<Read, VendorError> {
    if let Some(e) = http_status(status, headers) {
        return Err(e);
    }
    let doc = parse_body(body)?;
    if let Some(v) = failure(&doc, m, echoes) {
        if let Some(e) = auth_failure(&v, m) {
            return Err(e);
        }
        if matches(&m.not_found_patterns, &v) {
            return Ok(Read::Answer(ChangeAnswer::NoSuchUser));
        }
        return Ok(Read::Refused(v));
    }
    // As for a create: without a configured success marker, an answer with no failure marker
    // is no proof, and the adapter checks the user with ShowUsers (fail closed).
    if m.success_markers.is_empty() || !doc.walk().iter().any(|(_, e)| m.success_markers.contains(&e.name)) {
        return Ok(Read::Answer(ChangeAnswer::Unrecognised { excerpt: excerpt(body) }));
    }
    Ok(Read::Answer(ChangeAnswer::Done))
}

/// How a found user compares with a change: every named field as asked; some field the
/// record does not show (a lookup cannot prove it); or a field shown with another value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shows {
    Same,
    Unknown(&'static str),
    Differs(&'static str),
}

/// Compares what a change asks for with what ShowUsers shows. A password is never shown and
/// never compared: the caller sends a change that carries one.
pub fn compare(change: &UserChange, found: &FoundUser) -> Shows {
    let text = |ours: &str, theirs: &Option<String>, fold: bool| {
        theirs
            .as_deref()
            .map(|t| if fold { ours.trim().eq_ignore_ascii_case(t.trim()) } else { ours.trim() == t.trim() })
    };
    let role = |ours: &UserRole, theirs: &Option<String>| {
        theirs.as_deref().map(|t| {
            let theirs_none = t.trim().is_empty() || t.trim().eq_ignore_ascii_case(NO_ROLE);
            if ours.is_none() {
                theirs_none
            } else {
                ours.as_str().trim().eq_ignore_ascii_case(t.trim())
            }
        })
    };
    // Per field the change names: shown as asked, shown otherwise, or not shown (`None`).
    let asked: [(&'static str, Option<Option<bool>>); 6] = [
        ("UserAddress", change.address.as_ref().map(|v| text(v.as_str(), &found.address, true))),
        ("UserFirst", change.first.as_ref().map(|v| text(v.as_str(), &found.first, false))),
        ("UserLast", change.last.as_ref().map(|v| text(v.as_str(), &found.last, false))),
        ("UserEmail", change.email.as_ref().map(|v| text(v.as_str(), &found.email, true))),
        ("UserRole", change.role.as_ref().map(|v| role(v, &found.role))),
        ("UserSuspended", change.suspended.map(|s| found.suspended.map(|f| f == s))),
    ];
    let mut shows = Shows::Same;
    for (name, same) in asked {
        match same {
            Some(Some(false)) => return Shows::Differs(name),
            Some(None) if shows == Shows::Same => shows = Shows::Unknown(name),
            _ => {}
        }
    }
    shows
}

/// The receipt of an update, suspend, restore or delete: the user as the lookup found it,
/// with what the change set. `existing` when Glance already held it (`unchanged`).
pub fn change_receipt(
    id: &PartnerUserId,
    found: Option<&FoundUser>,
    change: Option<&UserChange>,
    existing: bool,
) -> Receipt {
    let mut details = Map::new();
    details.insert("PartnerUserID".into(), Value::from(id.as_str()));
    let address = change
        .and_then(|c| c.address.as_ref().map(|a| a.as_str().to_owned()))
        .or_else(|| found.and_then(|f| f.address.clone()));
    if let Some(address) = address {
        details.insert("UserAddress".into(), Value::from(address));
    }
    let user_id = found.and_then(|f| f.user_id.clone());
    if let Some(user_id) = &user_id {
        details.insert("UserID".into(), Value::from(user_id.as_str()));
    }
    if let Some(suspended) = change.and_then(|c| c.suspended) {
        details.insert("UserSuspended".into(), Value::from(suspended));
    }
    Receipt { existing, vendor_user_id: Some(user_id.unwrap_or_else(|| id.as_str().to_owned())), details }
}

/// Why a found user is not the job's user: the first field that differs.
pub fn difference(user: &NewUser, found: &FoundUser) -> Option<&'static str> {
    let differs = |ours: Option<&str>, theirs: &Option<String>, fold: bool| match (ours, theirs) {
        (Some(a), Some(b)) if fold => !a.trim().eq_ignore_ascii_case(b.trim()),
        (Some(a), Some(b)) => a.trim() != b.trim(),
        _ => false,
    };
    if found.partner_user_id.as_deref().is_some_and(|p| p != user.partner_user_id.as_str()) {
        return Some("PartnerUserID");
    }
    if differs(Some(user.address.as_str()), &found.address, true) {
        return Some("UserAddress");
    }
    if differs(user.first.as_ref().map(|v| v.as_str()), &found.first, false) {
        return Some("UserFirst");
    }
    if differs(user.last.as_ref().map(|v| v.as_str()), &found.last, false) {
        return Some("UserLast");
    }
    if differs(user.email.as_ref().map(|v| v.as_str()), &found.email, true) {
        return Some("UserEmail");
    }
    if let (Some(ours), Some(theirs)) = (&user.role, &found.role) {
        let theirs_none = theirs.trim().is_empty() || theirs.trim().eq_ignore_ascii_case(NO_ROLE);
        let same = if ours.is_none() { theirs_none } else { ours.as_str().trim().eq_ignore_ascii_case(theirs.trim()) };
        if !same {
            return Some("UserRole");
        }
    }
    None
}

/// The receipt for a user that already exists as the job describes it.
pub fn existing_receipt(user: &NewUser, found: &FoundUser) -> Receipt {
    let mut details = Map::new();
    details.insert("PartnerUserID".into(), Value::from(user.partner_user_id.as_str()));
    details.insert("UserAddress".into(), Value::from(found.address.as_deref().unwrap_or(user.address.as_str())));
    if let Some(id) = &found.user_id {
        details.insert("UserID".into(), Value::from(id.as_str()));
    }
    Receipt {
        existing: true,
        vendor_user_id: Some(found.user_id.clone().unwrap_or_else(|| user.partner_user_id.as_str().to_owned())),
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::FieldValue;
    use crate::vendors::glance::fields::{tests::user, Rules};

    /// A role named like a credential failure, echoed back by Glance, is a role problem of
    /// this job, never an auth failure that would open the whole account's breaker.
    #[test]
    fn an_echoed_role_never_decides_the_error_class() {
        let t = |s: &str| FieldValue::Text(s.to_owned());
        for role in ["Unauthorized", "Inactive staff"] {
            let pairs =
                [("PartnerUserID", t("EMP-1")), ("UserAddress", t("jdoe.acme.glance.net")), ("UserRole", t(role))];
            let user = NewUser::parse(&user(&pairs), &Rules::default()).unwrap();
            let body = format!("{PROLOG}<error><message>Unknown role {role}</message></error>");
            let CreateAnswer::Failed(e) = interpret_create(200, &HeaderMap::new(), &body, &Markers::default(), &user)
            else {
                panic!("expected a failure")
            };
            assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, "role_not_provisioned"), "{role}");
            assert!(e.message.contains(role), "the operator still sees the vendor's words: {}", e.message);
        }
        // The same words from the vendor itself, with no job value in them, still mean auth.
        let body = format!("{PROLOG}<error><message>Unauthorized</message></error>");
        let CreateAnswer::Failed(e) =
            interpret_create(200, &HeaderMap::new(), &body, &Markers::default(), &jane(false))
        else {
            panic!("expected a failure")
        };
        assert_eq!(e.failure, VendorFailure::Auth);
    }

    fn jane(audio: bool) -> NewUser {
        let t = |s: &str| FieldValue::Text(s.to_owned());
        let mut pairs = vec![
            ("PartnerUserID", t("EMP-1")),
            ("UserAddress", t("jdoe.acme.glance.net")),
            ("UserFirst", t("Jane")),
            ("UserEmail", t("Jane@acme.example")),
            ("UserRole", t("-none-")),
        ];
        if audio {
            pairs.push(("AudioProvider", FieldValue::Integer(1)));
        }
        NewUser::parse(&user(&pairs), &Rules::default()).unwrap()
    }

    /// Markers as an operator sets them once Glance's success document is known.
    fn with_success() -> Markers {
        let names = ["newuser", "success", "response", "ok", "dialin"];
        Markers { success_markers: names.map(String::from).to_vec(), ..Markers::default() }
    }

    fn create(body: &str) -> CreateAnswer {
        interpret_create(200, &HeaderMap::new(), body, &with_success(), &jane(false))
    }

    fn failed(body: &str) -> VendorError {
        match create(body) {
            CreateAnswer::Failed(e) => e,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    const PROLOG: &str = r#"<?xml version="1.0" standalone="yes"?>"#;

    #[test]
    fn plain_success_documents_are_created() {
        for body in [
            format!("{PROLOG}<NewUser><result>OK</result><user><UserID>1001</UserID></user></NewUser>"),
            format!("{PROLOG}<success/>"),
            format!(r#"{PROLOG}<response status="ok"/>"#),
        ] {
            let CreateAnswer::Created(r) = create(&body) else { panic!("{body}") };
            assert!(!r.existing);
            assert_eq!(r.details["UserAddress"], "jdoe.acme.glance.net");
        }
        let CreateAnswer::Created(r) = create(&format!("{PROLOG}<NewUser><UserID>1001</UserID></NewUser>")) else {
            panic!()
        };
        assert_eq!(r.vendor_user_id.as_deref(), Some("1001"));
        let CreateAnswer::Created(r) = create(&format!("{PROLOG}<ok/>")) else { panic!() };
        assert_eq!(r.vendor_user_id.as_deref(), Some("EMP-1"));
    }

    #[test]
    fn audio_data_goes_into_the_receipt_without_host_codes() {
        let body = format!(
            "{PROLOG}<NewUser><audio><dialIn>1 (555) 010-2030</dialIn><participantCode>123456</participantCode>\
             <hostCode>9999</hostCode><moderatorPIN>4321</moderatorPIN></audio></NewUser>"
        );
        let CreateAnswer::Created(r) = create(&body) else { panic!() };
        assert_eq!(r.details["dialIn"], "1 (555) 010-2030");
        assert_eq!(r.details["audio"]["participantCode"], "123456");
        let shown = serde_json::to_string(&r.details).unwrap();
        assert!(!shown.contains("9999") && !shown.contains("4321"), "{shown}");
        // The documented sample: dialIn as the whole document.
        let CreateAnswer::Created(r) = create(&format!("{PROLOG}<dialIn>1 (555) 010-2030</dialIn>")) else { panic!() };
        assert_eq!(r.details["dialIn"], "1 (555) 010-2030");
    }

    #[test]
    fn failure_shapes_are_recognised() {
        for body in [
            format!("{PROLOG}<error><code>7</code><message>UserFirst is too long</message></error>"),
            format!("{PROLOG}<failure>UserFirst is too long</failure>"),
            format!(r#"{PROLOG}<result status="Error" message="UserFirst is too long"/>"#),
            format!(r#"{PROLOG}<Response><Error Number="7" Description="UserFirst is too long"/></Response>"#),
            format!("{PROLOG}<NewUser><status>failed</status><reason>UserFirst is too long</reason></NewUser>"),
            format!("{PROLOG}<r><success>false</success><text>UserFirst is too long</text></r>"),
        ] {
            let e = failed(&body);
            assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, "user_refused"), "{body}");
            assert!(e.message.contains("UserFirst is too long"), "{body}: {}", e.message);
        }
    }

    #[test]
    fn failure_markers_are_configurable() {
        let body = format!("{PROLOG}<Problem><Why>UserFirst is too long</Why></Problem>");
        assert!(
            matches!(create(&body), CreateAnswer::Unrecognised { .. }),
            "unknown markers are never read as success"
        );
        let m = Markers {
            failure_elements: vec!["problem".into()],
            message_names: vec!["why".into()],
            ..Markers::default()
        };
        let CreateAnswer::Failed(e) = interpret_create(200, &HeaderMap::new(), &body, &m, &jane(false)) else {
            panic!()
        };
        assert_eq!(e.failure, VendorFailure::Rejected);
        assert!(e.message.contains("UserFirst is too long"));
    }

    #[test]
    fn success_markers_make_unknown_documents_unrecognised() {
        let m = Markers { success_markers: vec!["newuser".into()], ..Markers::default() };
        let a = interpret_create(200, &HeaderMap::new(), &format!("{PROLOG}<Other/>"), &m, &jane(false));
        assert!(matches!(a, CreateAnswer::Unrecognised { .. }), "{a:?}");
        let a = interpret_create(200, &HeaderMap::new(), &format!("{PROLOG}<NewUser/>"), &m, &jane(false));
        assert!(matches!(a, CreateAnswer::Created(_)));
    }

    #[test]
    fn error_classes() {
        let e = failed(&format!("{PROLOG}<error><message>Unknown or inactive PartnerLogin</message></error>"));
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Auth, "credentials_refused"));
        let e = failed(&format!("{PROLOG}<error><message>Wrong PartnerPW</message></error>"));
        assert_eq!(e.failure, VendorFailure::Auth);
        let e = failed(&format!("{PROLOG}<error><message>PartnerAuth expired</message></error>"));
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Transient, LOGIN_KEY_REJECTED));
        let e = failed(&format!("{PROLOG}<error><message>UserRole Boss is not provisioned</message></error>"));
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, "role_not_provisioned"));
        let e = failed(&format!("{PROLOG}<error><message>malformed UserAddress</message></error>"));
        assert_eq!(e.failure, VendorFailure::Rejected);
        for dup in ["PartnerUserID EMP-1 is already used", "UserAddress already taken by another group"] {
            let a = create(&format!("{PROLOG}<error><message>{dup}</message></error>"));
            assert!(matches!(a, CreateAnswer::AlreadyExists { .. }), "{a:?}");
        }
    }

    #[test]
    fn without_success_markers_no_answer_is_taken_as_success() {
        let body = format!("{PROLOG}<NewUser><UserID>1001</UserID></NewUser>");
        let a = interpret_create(200, &HeaderMap::new(), &body, &Markers::default(), &jane(false));
        assert!(matches!(a, CreateAnswer::Unrecognised { .. }), "{a:?}");
    }

    #[test]
    fn audio_failures_only_when_audio_was_asked_for() {
        let body = format!("{PROLOG}<error><message>Audio conference account could not be set up</message></error>");
        let a = interpret_create(200, &HeaderMap::new(), &body, &Markers::default(), &jane(true));
        assert!(matches!(a, CreateAnswer::AudioFailed { .. }), "{a:?}");
        assert!(matches!(create(&body), CreateAnswer::Failed(e) if e.failure == VendorFailure::Rejected));
    }

    #[test]
    fn http_and_body_failures_are_transient_or_config() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "30".parse().unwrap());
        for (status, failure) in [
            (503, VendorFailure::Transient),
            (500, VendorFailure::Transient),
            (429, VendorFailure::Throttled),
            (401, VendorFailure::Auth),
            (404, VendorFailure::Auth),
            (302, VendorFailure::Auth),
            (400, VendorFailure::Rejected),
        ] {
            let CreateAnswer::Failed(e) = interpret_create(status, &h, "", &Markers::default(), &jane(false)) else {
                panic!()
            };
            assert_eq!((e.failure, e.code.clone()), (failure, format!("http_{status}")));
            assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(30)));
        }
        for body in ["", "<html><body>Service Unavailable", "Object moved", "<a>unterminated"] {
            let e = failed(body);
            assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Transient, "unreadable_answer"), "{body}");
        }
        let e = failed(&"x".repeat(5000));
        assert!(e.message.len() < 400, "the excerpt is bounded");
    }

    #[test]
    fn lookup_records_in_several_shapes() {
        let m = Markers::default();
        let h = HeaderMap::new();
        let body = format!(
            "{PROLOG}<ShowUsers><users><user><UserID>9</UserID><PartnerUserID>EMP-1</PartnerUserID>\
             <UserAddress>jdoe.acme.glance.net</UserAddress><UserFirst>Jane</UserFirst></user></users></ShowUsers>"
        );
        let found = interpret_lookup(200, &h, &body, &m, &[]).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].user_id.as_deref(), Some("9"));
        assert_eq!(found[0].first.as_deref(), Some("Jane"));
        let attrs = format!(r#"{PROLOG}<users><account PartnerUserID="EMP-1" UserAddress="x.glance.net"/></users>"#);
        let found = interpret_lookup(200, &h, &attrs, &m, &[]).unwrap();
        assert_eq!(found[0].address.as_deref(), Some("x.glance.net"));
        assert_eq!(interpret_lookup(200, &h, &format!("{PROLOG}<users/>"), &m, &[]).unwrap(), vec![]);
        let e = interpret_lookup(200, &h, &format!("{PROLOG}<error>PartnerPW wrong</error>"), &m, &[]).unwrap_err();
        assert_eq!(e.failure, VendorFailure::Auth);
        let e = interpret_lookup(200, &h, &format!("{PROLOG}<error>PageCount missing</error>"), &m, &[]).unwrap_err();
        assert_eq!(e.failure, VendorFailure::Transient);
        assert!(interpret_lookup(502, &h, "", &m, &[]).unwrap_err().is_transient());
    }

    fn change(pairs: &[(&'static str, &str)]) -> UserChange {
        let fields: Vec<_> = pairs.iter().map(|(k, v)| (*k, FieldValue::Text((*v).to_owned()))).collect();
        UserChange::parse(&user(&fields), &Rules::default()).unwrap()
    }

    /// `interpret_update` or `interpret_delete`.
    type Interpret = fn(u16, &HeaderMap, &str, &Markers, &[&str]) -> Result<ChangeAnswer, VendorError>;

    fn answer(interpret: Interpret, body: &str) -> Result<ChangeAnswer, VendorError> {
        let m = Markers { success_markers: vec!["updateuser".into(), "deleteuser".into()], ..Markers::default() };
        interpret(200, &HeaderMap::new(), &format!("{PROLOG}{body}"), &m, &["EMP-1"])
    }

    #[test]
    fn update_answers() {
        let err = |body: &str| answer(interpret_update, body).unwrap_err();
        assert_eq!(answer(interpret_update, "<UpdateUser><result>OK</result></UpdateUser>"), Ok(ChangeAnswer::Done));
        assert!(matches!(answer(interpret_update, "<Other/>"), Ok(ChangeAnswer::Unrecognised { .. })));
        for gone in ["PartnerUserID EMP-1 not found", "No such user", "User does not exist"] {
            let a = answer(interpret_update, &format!("<error><message>{gone}</message></error>"));
            assert!(matches!(a, Ok(ChangeAnswer::NoSuchUser)), "{gone}: {a:?}");
        }
        for (message, failure, code) in [
            ("Wrong PartnerPW", VendorFailure::Auth, "credentials_refused"),
            ("PartnerAuth expired", VendorFailure::Transient, LOGIN_KEY_REJECTED),
            ("UserRole Boss is not provisioned", VendorFailure::Rejected, "role_not_provisioned"),
            ("UserAddress x.glance.net is already taken", VendorFailure::Conflict, "user_address_taken"),
            ("UserFirst is too long", VendorFailure::Rejected, "user_refused"),
        ] {
            let e = err(&format!("<error><message>{message}</message></error>"));
            assert_eq!((e.failure, e.code.as_str()), (failure, code), "{message}");
            assert!(e.message.contains(message), "{}", e.message);
        }
        let e = interpret_update(503, &HeaderMap::new(), "", &Markers::default(), &[]).unwrap_err();
        assert_eq!(e.failure, VendorFailure::Transient);
        assert_eq!(err("<html>").code, "unreadable_answer");
        // Without success markers nothing is taken as done.
        let a = interpret_update(200, &HeaderMap::new(), "<UpdateUser/>", &Markers::default(), &[]);
        assert!(matches!(a, Ok(ChangeAnswer::Unrecognised { .. })), "{a:?}");
    }

    #[test]
    fn delete_answers() {
        assert_eq!(answer(interpret_delete, "<DeleteUser/>"), Ok(ChangeAnswer::Done));
        let a = answer(interpret_delete, "<error><message>Unknown PartnerUserID EMP-1</message></error>");
        assert!(matches!(a, Ok(ChangeAnswer::NoSuchUser)), "{a:?}");
        // "Already" on a delete is no duplicate: it is refused, and the replay looks up first.
        let e =
            answer(interpret_delete, "<error><message>User is locked, already in use</message></error>").unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, "user_refused"));
        let e =
            answer(interpret_delete, "<error><message>Unknown or inactive PartnerLogin</message></error>").unwrap_err();
        assert_eq!(e.failure, VendorFailure::Auth);
        let mut h = HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        let e = interpret_delete(429, &h, "", &Markers::default(), &[]).unwrap_err();
        assert_eq!((e.failure, e.retry_after), (VendorFailure::Throttled, Some(std::time::Duration::from_secs(7))));
    }

    #[test]
    fn the_suspended_state_is_read_from_the_configured_elements() {
        let h = HeaderMap::new();
        let state = |inner: &str, m: &Markers| {
            let body = format!("{PROLOG}<users><user><PartnerUserID>EMP-1</PartnerUserID>{inner}</user></users>");
            interpret_lookup(200, &h, &body, m, &[]).unwrap()[0].suspended
        };
        let m = Markers::default();
        assert_eq!(state("<UserSuspended>1</UserSuspended>", &m), Some(true));
        assert_eq!(state("<Suspended>false</Suspended>", &m), Some(false));
        assert_eq!(state("<UserActive>Yes</UserActive>", &m), Some(false));
        assert_eq!(state("<UserActive>0</UserActive>", &m), Some(true));
        assert_eq!(state("<UserSuspended>1</UserSuspended><UserActive>1</UserActive>", &m), Some(true));
        assert_eq!(state("<UserSuspended>perhaps</UserSuspended>", &m), None);
        assert_eq!(state("<Disabled>1</Disabled>", &m), None);
        let body = format!(r#"{PROLOG}<users><user PartnerUserID="EMP-1" UserSuspended="yes"/></users>"#);
        assert_eq!(interpret_lookup(200, &h, &body, &m, &[]).unwrap()[0].suspended, Some(true));
        let custom = Markers { suspended_names: vec!["disabled".into()], active_names: vec![], ..Markers::default() };
        assert_eq!(state("<Disabled>1</Disabled>", &custom), Some(true));
        assert_eq!(state("<UserActive>0</UserActive>", &custom), None);
    }

    #[test]
    fn a_change_compared_with_the_record() {
        let found = FoundUser {
            partner_user_id: Some("EMP-1".into()),
            address: Some("JDoe.acme.glance.net".into()),
            first: Some("Jane".into()),
            email: Some("Jane@Acme.example".into()),
            role: Some("-none-".into()),
            suspended: Some(false),
            ..FoundUser::default()
        };
        let same = change(&[
            ("PartnerUserID", "EMP-1"),
            ("UserAddress", "jdoe.acme.glance.net"),
            ("UserFirst", "Jane"),
            ("UserEmail", "jane@acme.example"),
            ("UserRole", ""),
        ]);
        assert_eq!(compare(&same, &found), Shows::Same);
        assert_eq!(
            compare(&change(&[("PartnerUserID", "EMP-1"), ("UserFirst", "jane")]), &found),
            Shows::Differs("UserFirst")
        );
        assert_eq!(
            compare(&change(&[("PartnerUserID", "EMP-1"), ("UserRole", "Sales")]), &found),
            Shows::Differs("UserRole")
        );
        // Not shown: unknown, but a shown difference wins.
        assert_eq!(
            compare(&change(&[("PartnerUserID", "EMP-1"), ("UserLast", "Doe")]), &found),
            Shows::Unknown("UserLast")
        );
        let both = change(&[("PartnerUserID", "EMP-1"), ("UserLast", "Doe"), ("UserFirst", "Jo")]);
        assert_eq!(compare(&both, &found), Shows::Differs("UserFirst"));
        let who = super::super::fields::UserRef::parse(&user(&[("PartnerUserID", FieldValue::Text("EMP-1".into()))]))
            .unwrap();
        assert_eq!(compare(&UserChange::suspension(&who, false), &found), Shows::Same);
        assert_eq!(compare(&UserChange::suspension(&who, true), &found), Shows::Differs("UserSuspended"));
        let unknown = FoundUser { suspended: None, ..found.clone() };
        assert_eq!(compare(&UserChange::suspension(&who, true), &unknown), Shows::Unknown("UserSuspended"));
        let r = change_receipt(&who.partner_user_id, Some(&found), Some(&UserChange::suspension(&who, true)), true);
        assert_eq!((r.existing, r.vendor_user_id.as_deref()), (true, Some("EMP-1")));
        assert_eq!(r.details["UserSuspended"], true);
        assert_eq!(r.details["UserAddress"], "JDoe.acme.glance.net");
    }

    #[test]
    fn profile_comparison() {
        let u = jane(false);
        let same = FoundUser {
            partner_user_id: Some("EMP-1".into()),
            address: Some("JDOE.acme.glance.net".into()),
            first: Some("Jane".into()),
            email: Some("jane@ACME.example".into()),
            role: Some("".into()),
            last: Some("Whatever".into()),
            ..FoundUser::default()
        };
        assert_eq!(difference(&u, &same), None);
        assert_eq!(difference(&u, &FoundUser::default()), None, "fields Glance did not return are not compared");
        let other = FoundUser { first: Some("John".into()), ..same.clone() };
        assert_eq!(difference(&u, &other), Some("UserFirst"));
        let other = FoundUser { partner_user_id: Some("EMP-2".into()), ..same.clone() };
        assert_eq!(difference(&u, &other), Some("PartnerUserID"));
        let other = FoundUser { role: Some("Sales".into()), ..same.clone() };
        assert_eq!(difference(&u, &other), Some("UserRole"));
        let r = existing_receipt(&u, &FoundUser { user_id: Some("9".into()), ..same });
        assert!(r.existing);
        assert_eq!(r.vendor_user_id.as_deref(), Some("9"));
    }
}
