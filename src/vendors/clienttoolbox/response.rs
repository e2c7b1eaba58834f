//! Pure reading of ClientToolbox answers (XML or JSON) to every call into receipts, lookup results or classified errors.
//!
//! The vendor answers errors with HTTP 200 and `status="error"` in the body (very likely; the
//! status code is undocumented), so the body decides and the status code only speaks when the
//! body cannot. The JSON shape is unconfirmed, so both formats are read into one small tree
//! and searched tolerantly; which format came back is decided by the body, not the request.

use std::time::Duration;

use reqwest::header::HeaderMap;

use super::account::{Classifier, LookupMethod};
use super::fields::{Changes, NewUser, TimezoneSelector};
use crate::vendors::{http, Receipt, VendorError, VendorFailure};

/// Codes of the errors this module produces; stable, so dashboards and tests can rely on them.
pub mod code {
    pub const AUTH: &str = "auth_refused";
    pub const UNKNOWN_ACCOUNT: &str = "unknown_account";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const DUPLICATE_USER_NAME: &str = "duplicate_user_name";
    pub const DUPLICATE_PIN: &str = "duplicate_pin";
    pub const USER_NAME_TAKEN: &str = "user_name_taken";
    pub const REJECTED: &str = "rejected";
    pub const UNREADABLE: &str = "unreadable_body";
    pub const WRONG_ENDPOINT: &str = "wrong_endpoint";
    /// An update, suspend or restore of a user the account does not hold.
    pub const NO_SUCH_USER: &str = "no_such_user";
    pub const SUSPEND_NOT_CONFIGURED: &str = "suspend_not_configured";
    pub const RESTORE_NOT_CONFIGURED: &str = "restore_not_configured";
}

/// One element (XML) or member (JSON) of an answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim()).filter(|t| !t.is_empty())
    }

    fn descendants(&self) -> Vec<&Node> {
        let mut out = vec![self];
        let mut i = 0;
        while i < out.len() {
            out.extend(out[i].children.iter());
            i += 1;
        }
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Success,
    Error,
}

/// What the body said, once read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: Status,
    /// The text of `<error>` (or the JSON `error` member); empty when the vendor gave none.
    pub message: String,
    pub root: Node,
}

/// Reads an XML or JSON body; `None` when it is neither, or carries no recognisable status.
pub fn read_answer(body: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    let root = match trimmed.chars().next()? {
        '<' => parse_xml(trimmed)?,
        '{' => {
            http::json_within_budget(trimmed.as_bytes()).ok()?;
            json_node("", &serde_json::from_str(trimmed).ok()?)
        }
        _ => return None,
    };
    let status = find_status(&root)?;
    let message = find_message(&root).unwrap_or_default();
    Some(Answer { status, message, root })
}

fn find_status(root: &Node) -> Option<Status> {
    let mut candidates = vec![root];
    if let Some(r) = root.child("response") {
        candidates.push(r);
    }
    for node in candidates {
        let raw = node
            .attr("status")
            .or_else(|| node.child_text("status"))
            .or_else(|| node.child_text("@status"))
            .or_else(|| node.child("@attributes").and_then(|a| a.child_text("status")));
        if let Some(raw) = raw {
            return match raw.trim().to_ascii_lowercase().as_str() {
                "success" | "ok" => Some(Status::Success),
                "error" | "fail" | "failed" | "failure" => Some(Status::Error),
                _ => None,
            };
        }
    }
    None
}

fn find_message(root: &Node) -> Option<String> {
    for name in ["error", "error_message", "message", "errors"] {
        let found = root.descendants().into_iter().find(|n| n.name.eq_ignore_ascii_case(name)).map(all_text);
        if let Some(text) = found.filter(|t| !t.is_empty()) {
            return Some(text);
        }
    }
    None
}

fn all_text(node: &Node) -> String {
    let mut parts = Vec::new();
    for n in node.descendants() {
        if !n.text.trim().is_empty() {
            parts.push(n.text.trim().to_owned());
        }
    }
    parts.join("; ")
}

fn parse_xml(text: &str) -> Option<Node> {
    use quick_xml::events::Event;
    use quick_xml::XmlVersion;

    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Node> = Vec::new();
    let mut root = None;
    let mut budget = http::TreeBudget::default();
    let open = |e: &quick_xml::events::BytesStart<'_>| -> Option<Node> {
        let name = e.local_name().as_ref().to_owned();
        let mut attrs = Vec::new();
        for a in e.attributes() {
            let a = a.ok()?;
            let value = a.normalized_value(XmlVersion::Implicit1_0).ok()?.into_owned();
            attrs.push((a.key.local_name().as_ref().to_owned(), value));
        }
        Some(Node { name, attrs, ..Node::default() })
    };
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                budget.open().ok()?;
                stack.push(open(&e)?);
            }
            Event::Empty(e) => {
                budget.open().ok()?;
                budget.close();
                let node = open(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::End(_) => {
                budget.close();
                let node = stack.pop()?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().ok()? {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::resolve_predefined_entity(&r.xml10_content())?.to_owned(),
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return None;
    }
    root
}

fn json_node(name: &str, value: &serde_json::Value) -> Node {
    use serde_json::Value;
    let mut node = Node { name: name.to_owned(), ..Node::default() };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    // A list becomes repeated children of the same name, as XML would write it.
                    Value::Array(items) => node.children.extend(items.iter().map(|i| json_node(k, i))),
                    _ => node.children.push(json_node(k, v)),
                }
            }
        }
        Value::Array(items) => node.children.extend(items.iter().map(|i| json_node("item", i))),
        Value::String(s) => node.text = s.clone(),
        Value::Number(n) => node.text = n.to_string(),
        Value::Bool(b) => node.text = b.to_string(),
        Value::Null => {}
    }
    node
}

/// Replaces every secret (and its form-encoded spelling) with `***`, drops control
/// characters and caps the length: vendor text goes into events and logs.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut out = crate::vendors::http::scrub(&flat, secrets);
    const MAX: usize = 200;
    if out.chars().count() > MAX {
        // Cut after scrubbing, then scrub the cut again: no secret prefix may survive.
        out = crate::vendors::http::scrub(&(out.chars().take(MAX).collect::<String>() + "…"), secrets);
    }
    out.trim().to_owned()
}

fn excerpt(body: &[u8], secrets: &[&str]) -> String {
    let text = scrub(&String::from_utf8_lossy(body), secrets);
    let short: String = text.chars().take(80).collect();
    crate::vendors::http::scrub(&short, secrets)
}

fn err(failure: VendorFailure, code: &str, message: String, retry_after: Option<Duration>) -> VendorError {
    VendorError { retry_after, ..VendorError::new(failure, code, message) }
}

/// A `status="error"` message, classified by the account's patterns.
pub fn classify_error(
    message: &str,
    cls: &Classifier,
    retry_after: Option<Duration>,
    secrets: &[&str],
    echoes: &[&str],
) -> VendorError {
    let shown = if message.trim().is_empty() { "(no reason given)".to_owned() } else { scrub(message, secrets) };
    // The patterns see the message without the job's own words; the operator sees it all.
    let message = &crate::vendors::unechoed(message, echoes);
    if cls.auth.matches(message) {
        return err(
            VendorFailure::Auth,
            code::AUTH,
            format!("ClientToolbox refused the caller: {shown}. Fix the account's user_id and credentials (the caller must be allowed to manage users), then replay"),
            None,
        );
    }
    if cls.account.matches(message) {
        return err(
            VendorFailure::Auth,
            code::UNKNOWN_ACCOUNT,
            format!("ClientToolbox does not accept the account: {shown}. Fix the account's settings.account_id, then replay"),
            None,
        );
    }
    if cls.rate_limit.matches(message) {
        return err(
            VendorFailure::Throttled,
            code::RATE_LIMITED,
            format!("ClientToolbox asks to slow down: {shown}"),
            retry_after,
        );
    }
    if cls.duplicate.matches(message) {
        if cls.pin.matches(message) {
            return err(
                VendorFailure::Conflict,
                code::DUPLICATE_PIN,
                format!("another user of the account already has this user_PIN ({shown}); send a different PIN"),
                None,
            );
        }
        return err(
            VendorFailure::Conflict,
            code::DUPLICATE_USER_NAME,
            format!("the user_name is already taken in the account ({shown})"),
            None,
        );
    }
    err(
        VendorFailure::Rejected,
        code::REJECTED,
        format!("ClientToolbox refused the input: {shown}. Fix the job; sending it unchanged cannot help"),
        None,
    )
}

/// The HTTP status alone, for answers whose body says nothing readable.
fn by_status(status: u16, retry_after: Option<Duration>, body: &[u8], secrets: &[&str]) -> VendorError {
    let seen = excerpt(body, secrets);
    let seen = if seen.is_empty() { "an empty body".to_owned() } else { format!("{seen:?}") };
    match status {
        200..=299 => err(
            VendorFailure::Transient,
            code::UNREADABLE,
            format!("ClientToolbox answered HTTP {status} with {seen}, neither a success nor an error document"),
            retry_after,
        ),
        401 | 403 => err(
            VendorFailure::Auth,
            &format!("http_{status}"),
            format!("ClientToolbox answered HTTP {status}; fix the account's credentials, then replay"),
            None,
        ),
        300..=399 | 404 | 405 | 410 => err(
            VendorFailure::Auth,
            code::WRONG_ENDPOINT,
            format!("ClientToolbox answered HTTP {status}: the account's base_url or settings.path is wrong (expected …/api.php)"),
            None,
        ),
        429 => err(
            VendorFailure::Throttled,
            "http_429",
            "ClientToolbox answered HTTP 429; slow down and try again later".to_owned(),
            retry_after,
        ),
        408 | 500..=599 => err(
            VendorFailure::Transient,
            &format!("http_{status}"),
            format!("ClientToolbox answered HTTP {status}; try again later"),
            retry_after,
        ),
        400..=499 => err(
            VendorFailure::Rejected,
            &format!("http_{status}"),
            format!("ClientToolbox answered HTTP {status} with {seen}; fix the job"),
            None,
        ),
        _ => err(VendorFailure::Transient, &format!("http_{status}"), format!("unexpected HTTP {status}"), retry_after),
    }
}

/// What the answer to a call that writes (`user_new`, `user_update`, `user_delete`) says
/// before the call's own reading of a refusal.
enum Written {
    Done,
    /// A `status="error"` answer: its message, for the caller to classify.
    Refused {
        message: String,
        retry_after: Option<Duration>,
    },
}

/// Throttling and server faults are transient whatever the body says; an error answer is the
/// caller's to classify; a success counts only with a 2xx status; anything else is read by
/// its status.
fn read_written(status: u16, headers: &HeaderMap, body: &[u8], secrets: &[&str]) -> Result<Written, VendorError> {
    let retry_after = http::retry_after(headers);
    if status == 429 || status >= 500 {
        return Err(by_status(status, retry_after, body, secrets));
    }
    match read_answer(body) {
        Some(a) if a.status == Status::Error => Ok(Written::Refused { message: a.message, retry_after }),
        Some(_) if (200..300).contains(&status) => Ok(Written::Done),
        _ => Err(by_status(status, retry_after, body, secrets)),
    }
}

/// Reads the answer to `user_new`. A duplicate `user_name` comes back as `Conflict` with code
/// [`code::DUPLICATE_USER_NAME`], for the adapter to settle with a lookup.
pub fn interpret_create(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    cls: &Classifier,
    wire_user_name: &str,
    secrets: &[&str],
    echoes: &[&str],
) -> Result<Receipt, VendorError> {
    match read_written(status, headers, body, secrets)? {
        Written::Done => Ok(receipt(wire_user_name, false)),
        Written::Refused { message, retry_after } => Err(classify_error(&message, cls, retry_after, secrets, echoes)),
    }
}

/// How a `status="error"` answer to a call that names an existing user reads.
enum Refusal {
    /// The vendor does not hold the user (the account's `not_found_patterns`).
    NoSuchUser,
    Other(VendorError),
}

/// Refusals of the caller, the account and the rate come first: "Account not found" is the
/// account's problem, not the user's.
fn refusal(
    message: &str,
    cls: &Classifier,
    retry_after: Option<Duration>,
    secrets: &[&str],
    echoes: &[&str],
) -> Refusal {
    let e = classify_error(message, cls, retry_after, secrets, echoes);
    let mine = matches!(e.failure, VendorFailure::Auth | VendorFailure::Throttled);
    if !mine && cls.not_found.matches(&crate::vendors::unechoed(message, echoes)) {
        return Refusal::NoSuchUser;
    }
    Refusal::Other(e)
}

/// The refusal of a change to a user ClientToolbox does not hold (or holds only marked deleted).
pub fn no_such_user(wire_user_name: &str) -> VendorError {
    VendorError::new(
        VendorFailure::Rejected,
        code::NO_SUCH_USER,
        format!(
            "ClientToolbox holds no user {wire_user_name} in this account (a deleted user counts as none); check the user_name, or send create_user first"
        ),
    )
}

/// Reads the answer to `user_update`; a user the vendor does not hold is `Rejected`
/// [`code::NO_SUCH_USER`].
pub fn interpret_update(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    cls: &Classifier,
    wire_user_name: &str,
    secrets: &[&str],
    echoes: &[&str],
) -> Result<Receipt, VendorError> {
    match read_written(status, headers, body, secrets)? {
        Written::Done => Ok(receipt(wire_user_name, false)),
        Written::Refused { message, retry_after } => Err(match refusal(&message, cls, retry_after, secrets, echoes) {
            Refusal::NoSuchUser => no_such_user(wire_user_name),
            Refusal::Other(e) => e,
        }),
    }
}

/// Reads the answer to `user_delete`; a user the vendor does not hold is already deleted:
/// `existing` (`unchanged`), never an error. `permanent` says which delete was sent.
pub fn interpret_delete(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    cls: &Classifier,
    wire_user_name: &str,
    permanent: bool,
    secrets: &[&str],
) -> Result<Receipt, VendorError> {
    let done = |existing| {
        let mut r = receipt(wire_user_name, existing);
        r.details.insert("deletion".into(), if permanent { "permanent" } else { "marked_deleted" }.into());
        r
    };
    match read_written(status, headers, body, secrets)? {
        Written::Done => Ok(done(false)),
        Written::Refused { message, retry_after } => {
            match refusal(&message, cls, retry_after, secrets, &[wire_user_name]) {
                Refusal::NoSuchUser => Ok(done(true)),
                Refusal::Other(e) => Err(e),
            }
        }
    }
}

/// Whether the user as looked up already holds every value `changes` sets. A password or
/// PIN is never shown, and a field the lookup does not return cannot be proven equal: both
/// mean the update must be sent.
pub fn already_applied(found: &FoundUser, changes: &Changes) -> bool {
    if changes.has_secret() {
        return false;
    }
    fn shown(have: &Option<String>) -> Option<&str> {
        have.as_deref().map(str::trim)
    }
    let text = |want: &Option<String>, have: &Option<String>| {
        want.as_deref().is_none_or(|w| shown(have).is_some_and(|h| h == w.trim()))
    };
    text(&changes.first_name, &found.first_name)
        && text(&changes.last_name, &found.last_name)
        && text(&changes.custom1, &found.custom1)
        && changes.role.is_none_or(|r| shown(&found.role).is_some_and(|h| h == r.to_string()))
        && changes.language.is_none_or(|l| shown(&found.language).is_some_and(|h| h.eq_ignore_ascii_case(l.as_str())))
        && changes
            .timezone
            .is_none_or(|t| shown(&found.timezone).and_then(|h| TimezoneSelector::parse(h).ok()) == Some(t))
        && changes
            .allowed_campaigns
            .as_ref()
            .is_none_or(|c| shown(&found.allowed_campaigns).is_some_and(|h| c.same_as(h)))
}

/// A call's receipt: ClientToolbox returns no id, so the user is addressed by its `user_name`.
pub fn receipt(wire_user_name: &str, existing: bool) -> Receipt {
    let mut details = serde_json::Map::new();
    details.insert("user_name".into(), wire_user_name.into());
    Receipt { existing, vendor_user_id: Some(wire_user_name.to_owned()), details }
}

/// A user as the lookup calls describe it; every field but the name is optional because the
/// shape of these calls is not documented.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FoundUser {
    pub user_name: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `user_addtl_info` (or `user_custom1`).
    pub custom1: Option<String>,
    pub role: Option<String>,
    pub language: Option<String>,
    pub timezone: Option<String>,
    pub allowed_campaigns: Option<String>,
    /// The record says the user is marked deleted (see [`marked_deleted`]): it then counts
    /// as absent.
    pub marked_deleted: bool,
}

/// Whether a user record shows the user marked deleted. The lookups are undocumented, so a
/// small set of spellings is read: `deleted`, `user_deleted` or `is_deleted` of `1`, `true`,
/// `yes` or `y`, or `user_status` / `status` of `deleted`. A lookup that hides such users
/// (as the sandbox's does) answers absent instead, which reads the same.
fn marked_deleted(record: &Node) -> bool {
    let flag = ["deleted", "user_deleted", "is_deleted"]
        .iter()
        .filter_map(|k| record.child_text(k))
        .any(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "y"));
    let status = ["user_status", "status"]
        .iter()
        .filter_map(|k| record.child_text(k))
        .any(|v| v.eq_ignore_ascii_case("deleted"));
    flag || status
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    Found(FoundUser),
    Absent,
    /// The lookup could not say (e.g. the call type is unknown to this vendor instance); the
    /// reason is scrubbed vendor text.
    Unsupported(String),
}

fn records(root: &Node) -> Vec<FoundUser> {
    root.descendants()
        .into_iter()
        .filter_map(|n| {
            let name = n.child_text("user_name")?;
            let text = |k: &str| n.child_text(k).map(str::to_owned);
            Some(FoundUser {
                user_name: name.to_owned(),
                first_name: text("user_first_name"),
                last_name: text("user_last_name"),
                custom1: text("user_addtl_info").or_else(|| text("user_custom1")),
                role: text("user_role"),
                language: text("language_selector"),
                timezone: text("timezone_selector"),
                allowed_campaigns: text("allowed_campaigns"),
                marked_deleted: marked_deleted(n),
            })
        })
        .collect()
}

/// Reads the answer to `user_info` / `users_list` for one `user_name` (compared
/// case-insensitively, like the vendor's uniqueness is presumed to be).
// Each argument is one plain fact of the exchange; a struct for them would only be unpacked here.
#[allow(clippy::too_many_arguments)]
pub fn interpret_lookup(
    method: LookupMethod,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    cls: &Classifier,
    wire_user_name: &str,
    secrets: &[&str],
    echoes: &[&str],
) -> Result<Lookup, VendorError> {
    let retry_after = http::retry_after(headers);
    if status == 429 || status >= 500 {
        return Err(by_status(status, retry_after, body, secrets));
    }
    let answer = match read_answer(body) {
        Some(a) => a,
        None => return Err(by_status(status, retry_after, body, secrets)),
    };
    if answer.status == Status::Error {
        if cls.not_found.matches(&answer.message) {
            return Ok(Lookup::Absent);
        }
        let e = classify_error(&answer.message, cls, retry_after, secrets, echoes);
        return match e.failure {
            VendorFailure::Transient | VendorFailure::Throttled => Err(e),
            // "Invalid type", or a caller allowed to create users but not to read them: this
            // lookup cannot answer, which must not fail a job the create call could still do
            // (wrong credentials fail the create itself as `auth`).
            VendorFailure::Auth | VendorFailure::Rejected | VendorFailure::Conflict => {
                Ok(Lookup::Unsupported(scrub(&answer.message, secrets)))
            }
        };
    }
    let all = records(&answer.root);
    if let Some(found) = all.iter().find(|r| r.user_name.eq_ignore_ascii_case(wire_user_name)) {
        // A user marked deleted keeps its name but is no one's account any more.
        return Ok(if found.marked_deleted { Lookup::Absent } else { Lookup::Found(found.clone()) });
    }
    match method {
        // An empty list is a plausible answer; a user_info success without a user is not.
        LookupMethod::UsersList => Ok(Lookup::Absent),
        LookupMethod::UserInfo if all.is_empty() => {
            Ok(Lookup::Unsupported("user_info answered success without a recognisable user record".into()))
        }
        LookupMethod::UserInfo | LookupMethod::None => Ok(Lookup::Absent),
    }
}

/// Whether the user found under the job's `user_name` is the job's user: the non-secret
/// fields the job sets must match what the vendor holds (fields the lookup does not return
/// cannot disagree). The same user means `existing`; anyone else holding the name is a conflict.
pub fn reconcile(record: &FoundUser, user: &NewUser, wire_user_name: &str) -> Result<Receipt, VendorError> {
    let role = user.role.to_string();
    let pairs = [
        ("user_first_name", user.first_name.as_deref(), record.first_name.as_deref()),
        ("user_last_name", user.last_name.as_deref(), record.last_name.as_deref()),
        ("user_custom1", user.custom1.as_deref(), record.custom1.as_deref()),
        ("user_role", Some(role.as_str()), record.role.as_deref()),
    ];
    let differing: Vec<&str> = pairs
        .iter()
        .filter(|(_, want, have)| matches!((want, have), (Some(w), Some(h)) if w.trim() != h.trim()))
        .map(|(name, _, _)| *name)
        .collect();
    if differing.is_empty() {
        return Ok(receipt(wire_user_name, true));
    }
    Err(VendorError::new(
        VendorFailure::Conflict,
        code::USER_NAME_TAKEN,
        format!(
            "a different user already holds user_name {wire_user_name} (differs in {}); choose another user_name or reconcile the existing user",
            differing.join(", ")
        ),
    ))
}

#[cfg(test)]
mod hostile_tests {
    use super::*;

    /// A job whose first name reads like a refusal of the caller: echoed back, it is the
    /// job's problem, not an account-wide auth failure.
    #[test]
    fn an_echoed_job_value_never_decides_the_error_class() {
        let cls = Classifier::default();
        let echoed = classify_error("invalid first name: Permission Denied", &cls, None, &[], &["Permission Denied"]);
        assert_eq!(echoed.failure, VendorFailure::Rejected, "{echoed:?}");
        assert!(echoed.message.contains("Permission Denied"), "{}", echoed.message);
        let own = classify_error("permission denied", &cls, None, &[], &["Jane"]);
        assert_eq!(own.failure, VendorFailure::Auth);
    }

    #[test]
    fn deep_or_huge_answers_are_unreadable_not_a_crash() {
        let deep = format!("<response status=\"error\">{}{}</response>", "<a>".repeat(100_000), "</a>".repeat(100_000));
        assert!(read_answer(deep.as_bytes()).is_none());
        let wide = format!("<response status=\"error\">{}</response>", "<a/>".repeat(20_000));
        assert!(read_answer(wide.as_bytes()).is_none());
        let json = format!("{{\"status\":\"error\",\"x\":[{}1]}}", "1,".repeat(20_000));
        assert!(read_answer(json.as_bytes()).is_none());
        let fine = r#"<response status="error"><message>no</message></response>"#;
        assert_eq!(read_answer(fine.as_bytes()).unwrap().message, "no");
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::RETRY_AFTER;

    use super::super::testing;
    use super::*;

    const SECRETS: &[&str] = &["S3cure!pass", "4321", "sandbox-password"];

    fn create(status: u16, body: &str) -> Result<Receipt, VendorError> {
        interpret_create(status, &HeaderMap::new(), body.as_bytes(), &Classifier::default(), "jdoe", SECRETS, &[])
    }

    fn create_err(status: u16, body: &str) -> VendorError {
        create(status, body).unwrap_err()
    }

    fn xml_error(message: &str) -> String {
        format!("<response status=\"error\">\n  <error>{message}</error>\n</response>")
    }

    fn lookup(method: LookupMethod, body: &str) -> Result<Lookup, VendorError> {
        interpret_lookup(method, 200, &HeaderMap::new(), body.as_bytes(), &Classifier::default(), "jdoe", SECRETS, &[])
    }

    #[test]
    fn documented_success_is_created_and_addressed_by_user_name() {
        let r = create(200, "<response status=\"success\">\n</response>").unwrap();
        assert!(!r.existing);
        assert_eq!(r.vendor_user_id.as_deref(), Some("jdoe"));
        assert_eq!(r.details["user_name"], "jdoe");
        // With a declaration, a self-closing root, or as JSON in either shape.
        for body in [
            "<?xml version=\"1.0\"?>\n<response status=\"success\"/>",
            "{\"status\": \"success\"}",
            "{\"response\": {\"status\": \"success\"}}",
            "{\"@attributes\": {\"status\": \"success\"}}",
        ] {
            assert!(create(200, body).is_ok(), "{body}");
        }
    }

    #[test]
    fn documented_error_with_http_200_is_classified_by_its_message() {
        let e = create_err(200, &xml_error("User name already exists"));
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Conflict, code::DUPLICATE_USER_NAME));
        let e = create_err(200, "{\"status\": \"error\", \"error\": \"User name already exists\"}");
        assert_eq!(e.code, code::DUPLICATE_USER_NAME, "the JSON form reads the same");
    }

    #[test]
    fn every_error_class() {
        let cases = [
            ("User PIN already exists", VendorFailure::Conflict, code::DUPLICATE_PIN),
            ("Authentication failed: invalid user_id or user_password", VendorFailure::Auth, code::AUTH),
            ("Permission denied: this user may not manage users", VendorFailure::Auth, code::AUTH),
            ("Invalid account_id", VendorFailure::Auth, code::UNKNOWN_ACCOUNT),
            ("Too many requests, slow down", VendorFailure::Throttled, code::RATE_LIMITED),
            ("Invalid user_role", VendorFailure::Rejected, code::REJECTED),
            ("Invalid campaign id: 123", VendorFailure::Rejected, code::REJECTED),
            ("Missing required field: user_new_password", VendorFailure::Rejected, code::REJECTED),
            ("", VendorFailure::Rejected, code::REJECTED),
        ];
        for (message, failure, code) in cases {
            let e = create_err(200, &xml_error(message));
            assert_eq!((e.failure, e.code.as_str()), (failure, code), "{message:?}: {e}");
        }
    }

    #[test]
    fn messages_say_what_to_do() {
        assert!(create_err(200, &xml_error("Invalid user_role")).message.contains("Fix the job"));
        assert!(create_err(200, &xml_error("Invalid account_id")).message.contains("settings.account_id"));
        assert!(create_err(200, &xml_error("Authentication failed")).message.contains("credentials"));
    }

    #[test]
    fn an_error_body_wins_over_an_unusual_status() {
        let e = create_err(400, &xml_error("Invalid user_role"));
        assert_eq!(e.code, code::REJECTED);
        let e = create_err(403, &xml_error("Authentication failed"));
        assert_eq!(e.code, code::AUTH);
    }

    #[test]
    fn server_faults_throttling_and_garbage_are_transient() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        let e = interpret_create(429, &h, b"", &Classifier::default(), "jdoe", SECRETS, &[]).unwrap_err();
        assert_eq!(
            (e.failure, e.code.as_str(), e.retry_after),
            (VendorFailure::Throttled, "http_429", Some(Duration::from_secs(7)))
        );
        let e = interpret_create(503, &h, &xml_error("x").into_bytes(), &Classifier::default(), "jdoe", SECRETS, &[])
            .unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Transient, "http_503"));
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        for body in [
            "",
            "   ",
            "<html><body>Bad gateway</body></html>",
            "<response>",
            "{\"customers\": []}",
            "<response status=\"maybe\"/>",
            "\u{0}\u{1}binary",
            "{not json",
        ] {
            let e = create_err(200, body);
            assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Transient, code::UNREADABLE), "{body:?}");
        }
        let e = create_err(408, "");
        assert_eq!(e.failure, VendorFailure::Transient);
    }

    #[test]
    fn bare_statuses_without_a_readable_body() {
        assert_eq!(create_err(401, "").failure, VendorFailure::Auth);
        let e = create_err(404, "Not Found");
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Auth, code::WRONG_ENDPOINT));
        assert_eq!(create_err(302, "").code, code::WRONG_ENDPOINT);
        let e = create_err(422, "nope");
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, "http_422"));
        let e = create_err(404, "<response status=\"success\"/>");
        assert_eq!(e.code, code::WRONG_ENDPOINT, "a success document under an error status is not trusted");
    }

    #[test]
    fn secrets_are_scrubbed_from_vendor_text() {
        let e = create_err(200, &xml_error("Invalid user_new_password S3cure!pass for PIN 4321"));
        assert!(!e.message.contains("S3cure!pass") && !e.message.contains("4321"), "{}", e.message);
        let e = create_err(200, "oops user_password=sandbox-password&user_new_password=S3cure%21pass");
        assert!(!e.message.contains("sandbox-password") && !e.message.contains("S3cure"), "{}", e.message);
        let long = "x".repeat(1000);
        assert!(create_err(200, &xml_error(&long)).message.chars().count() < 400);
    }

    #[test]
    fn xml_entities_and_cdata_are_read() {
        let e =
            create_err(200, "<response status=\"error\"><error>User &amp; name &#65;lready exists</error></response>");
        assert!(e.message.contains("User & name Already exists"), "{}", e.message);
        let e = create_err(200, "<response status=\"error\"><error><![CDATA[Invalid <role>]]></error></response>");
        assert!(e.message.contains("Invalid <role>"), "{}", e.message);
    }

    #[test]
    fn configured_patterns_change_the_classification() {
        let mut cls = Classifier::default();
        let german = xml_error("Benutzername schon vergeben");
        let e = interpret_create(200, &HeaderMap::new(), german.as_bytes(), &cls, "jdoe", SECRETS, &[]).unwrap_err();
        assert_eq!(e.code, code::REJECTED, "unknown wording is a rejection by default");
        cls.duplicate = super::super::account::Patterns::parse("schon vergeben").unwrap();
        let e = interpret_create(200, &HeaderMap::new(), german.as_bytes(), &cls, "jdoe", SECRETS, &[]).unwrap_err();
        assert_eq!(e.code, code::DUPLICATE_USER_NAME);
    }

    const USER_XML: &str = "<response status=\"success\">\n  <user>\n    <user_name>JDoe</user_name>\n    \
        <user_first_name>Jane</user_first_name>\n    <user_last_name>Doe</user_last_name>\n    \
        <user_addtl_info>Downtown Store</user_addtl_info>\n    <user_role>K</user_role>\n  </user>\n</response>";

    fn jane() -> FoundUser {
        FoundUser {
            user_name: "JDoe".into(),
            first_name: Some("Jane".into()),
            last_name: Some("Doe".into()),
            custom1: Some("Downtown Store".into()),
            role: Some("K".into()),
            ..FoundUser::default()
        }
    }

    #[test]
    fn lookup_finds_the_user_in_xml_and_json() {
        assert_eq!(lookup(LookupMethod::UserInfo, USER_XML).unwrap(), Lookup::Found(jane()));
        let json = r#"{"status":"success","user":{"user_name":"JDoe","user_first_name":"Jane",
            "user_last_name":"Doe","user_custom1":"Downtown Store","user_role":"K"}}"#;
        assert_eq!(lookup(LookupMethod::UserInfo, json).unwrap(), Lookup::Found(jane()));
        let list = r#"{"status":"success","users":[{"user_name":"other"},{"user_name":"jdoe","user_role":"A"}]}"#;
        match lookup(LookupMethod::UsersList, list).unwrap() {
            Lookup::Found(r) => assert_eq!(r.role.as_deref(), Some("A")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lookup_absent_unsupported_and_failing() {
        assert_eq!(lookup(LookupMethod::UserInfo, &xml_error("User not found")).unwrap(), Lookup::Absent);
        let empty = "<response status=\"success\"><users></users></response>";
        assert_eq!(lookup(LookupMethod::UsersList, empty).unwrap(), Lookup::Absent);
        let others = "<response status=\"success\"><users><user><user_name>bob</user_name></user></users></response>";
        assert_eq!(lookup(LookupMethod::UsersList, others).unwrap(), Lookup::Absent);
        assert!(matches!(lookup(LookupMethod::UserInfo, empty).unwrap(), Lookup::Unsupported(_)));
        assert!(matches!(
            lookup(LookupMethod::UserInfo, &xml_error("Invalid type: user_info")).unwrap(),
            Lookup::Unsupported(_)
        ));
        // A refused lookup cannot answer; whether the credentials work, the create call says.
        assert!(matches!(
            lookup(LookupMethod::UserInfo, &xml_error("Authentication failed")).unwrap(),
            Lookup::Unsupported(_)
        ));
        assert_eq!(lookup(LookupMethod::UserInfo, "garbage").unwrap_err().failure, VendorFailure::Transient);
        let e = interpret_lookup(
            LookupMethod::UserInfo,
            502,
            &HeaderMap::new(),
            b"",
            &Classifier::default(),
            "jdoe",
            SECRETS,
            &[],
        );
        assert_eq!(e.unwrap_err().failure, VendorFailure::Transient);
    }

    #[test]
    fn reconcile_same_user_is_existing_and_another_is_a_conflict() {
        let user = NewUser::parse(&testing::job("jdoe", serde_json::json!({})).user).unwrap();
        let r = reconcile(&jane(), &user, "jdoe").unwrap();
        assert!(r.existing);
        assert_eq!(r.vendor_user_id.as_deref(), Some("jdoe"));
        let sparse = FoundUser { user_name: "jdoe".into(), ..FoundUser::default() };
        assert!(
            reconcile(&sparse, &user, "jdoe").unwrap().existing,
            "fields the lookup does not return cannot disagree"
        );
        let bob = FoundUser { first_name: Some("Bob".into()), role: Some("A".into()), ..jane() };
        let e = reconcile(&bob, &user, "jdoe").unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Conflict, code::USER_NAME_TAKEN));
        assert!(e.message.contains("user_first_name, user_role"), "{}", e.message);
    }

    // ---- update, delete ----

    fn update(status: u16, body: &str) -> Result<Receipt, VendorError> {
        interpret_update(status, &HeaderMap::new(), body.as_bytes(), &Classifier::default(), "jdoe", SECRETS, &[])
    }

    fn delete(status: u16, body: &str, permanent: bool) -> Result<Receipt, VendorError> {
        interpret_delete(status, &HeaderMap::new(), body.as_bytes(), &Classifier::default(), "jdoe", permanent, SECRETS)
    }

    #[test]
    fn update_answers() {
        let r = update(200, "<response status=\"success\"/>").unwrap();
        assert_eq!((r.existing, r.vendor_user_id.as_deref()), (false, Some("jdoe")));
        let cases = [
            ("User not found", VendorFailure::Rejected, code::NO_SUCH_USER),
            ("No such user: jdoe", VendorFailure::Rejected, code::NO_SUCH_USER),
            // The account's problem comes before the user's.
            ("Account not found", VendorFailure::Auth, code::UNKNOWN_ACCOUNT),
            ("Authentication failed", VendorFailure::Auth, code::AUTH),
            ("User PIN already exists", VendorFailure::Conflict, code::DUPLICATE_PIN),
            ("Invalid language_selector", VendorFailure::Rejected, code::REJECTED),
        ];
        for (message, failure, code) in cases {
            let e = update(200, &xml_error(message)).unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (failure, code), "{message}");
        }
        assert_eq!(update(503, "").unwrap_err().failure, VendorFailure::Transient);
        assert_eq!(update(200, "nope").unwrap_err().code, code::UNREADABLE);
        let e = update(200, &xml_error("Invalid user_new_password S3cure!pass")).unwrap_err();
        assert!(!e.message.contains("S3cure!pass"), "{}", e.message);
    }

    #[test]
    fn a_job_value_that_reads_like_not_found_is_not_the_answer() {
        let cls = Classifier::default();
        let body = xml_error("Invalid user_last_name: Not Found");
        let e = interpret_update(200, &HeaderMap::new(), body.as_bytes(), &cls, "jdoe", SECRETS, &["Not Found"]);
        assert_eq!(e.unwrap_err().code, code::REJECTED);
    }

    #[test]
    fn delete_answers() {
        let r = delete(200, "<response status=\"success\"/>", false).unwrap();
        assert_eq!((r.existing, &r.details["deletion"]), (false, &serde_json::json!("marked_deleted")));
        let r = delete(200, "{\"status\": \"success\"}", true).unwrap();
        assert_eq!((r.existing, &r.details["deletion"]), (false, &serde_json::json!("permanent")));
        let r = delete(200, &xml_error("User does not exist"), true).unwrap();
        assert!(r.existing, "a user already gone is unchanged");
        let e = delete(200, &xml_error("Permission denied"), false).unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Auth, code::AUTH));
        let e = delete(200, &xml_error("Invalid account_id"), false).unwrap_err();
        assert_eq!(e.code, code::UNKNOWN_ACCOUNT);
        let e = delete(200, &xml_error("Cannot delete the last Administrator"), false).unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, code::REJECTED));
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "5".parse().unwrap());
        let e = interpret_delete(429, &h, b"", &Classifier::default(), "jdoe", false, SECRETS).unwrap_err();
        assert_eq!((e.failure, e.retry_after), (VendorFailure::Throttled, Some(Duration::from_secs(5))));
        assert_eq!(delete(500, "", false).unwrap_err().failure, VendorFailure::Transient);
        assert_eq!(delete(404, "", false).unwrap_err().code, code::WRONG_ENDPOINT);
    }

    #[test]
    fn a_record_marked_deleted_is_absent() {
        for mark in [
            "<user_deleted>1</user_deleted>",
            "<deleted>true</deleted>",
            "<is_deleted>Y</is_deleted>",
            "<user_status>deleted</user_status>",
            "<status>Deleted</status>",
        ] {
            let body =
                format!("<response status=\"success\"><user><user_name>jdoe</user_name>{mark}</user></response>");
            assert_eq!(lookup(LookupMethod::UserInfo, &body).unwrap(), Lookup::Absent, "{mark}");
        }
        for live in ["<user_deleted>0</user_deleted>", "<user_status>active</user_status>", ""] {
            let body =
                format!("<response status=\"success\"><user><user_name>jdoe</user_name>{live}</user></response>");
            assert!(matches!(lookup(LookupMethod::UserInfo, &body).unwrap(), Lookup::Found(_)), "{live}");
        }
        let list = r#"{"status":"success","users":[{"user_name":"jdoe","deleted":"1"}]}"#;
        assert_eq!(lookup(LookupMethod::UsersList, list).unwrap(), Lookup::Absent);
    }

    fn changes(fields: serde_json::Value) -> Changes {
        Changes::parse(&testing::job_of("update_user", "jdoe", fields).user).unwrap()
    }

    #[test]
    fn already_applied_needs_every_value_shown_and_equal() {
        let found = FoundUser {
            language: Some("EN".into()),
            timezone: Some("68".into()),
            allowed_campaigns: Some("all".into()),
            ..jane()
        };
        for same in [
            serde_json::json!({"user_first_name": "Jane"}),
            serde_json::json!({"user_first_name": " Jane ", "user_role": "K", "user_custom1": "Downtown Store"}),
            serde_json::json!({"language_selector": "EN", "timezone_selector": 68, "allowed_campaigns": "all"}),
        ] {
            assert!(already_applied(&found, &changes(same.clone())), "{same}");
        }
        for differs in [
            serde_json::json!({"user_first_name": "jane"}),
            serde_json::json!({"user_role": "A"}),
            serde_json::json!({"timezone_selector": "69"}),
            serde_json::json!({"allowed_campaigns": "none"}),
            serde_json::json!({"user_first_name": "Jane", "user_new_password": "x"}),
            serde_json::json!({"user_PIN": "1234"}),
        ] {
            assert!(!already_applied(&found, &changes(differs.clone())), "{differs}");
        }
        assert!(!already_applied(&jane(), &changes(serde_json::json!({"language_selector": "EN"}))), "not shown");
    }
}
