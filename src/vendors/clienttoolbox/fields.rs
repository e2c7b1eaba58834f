//! The `user_new` fields as domain values: each rule of vendors/clienttoolbox.md lives in one `parse`.
//!
//! Validation is the parse: [`NewUser::parse`] either yields values that can only be valid, or
//! every reason the job is not acceptable, addressed as `user.<WireName>`. Messages say what
//! is allowed and never echo a secret.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use crate::job::{FieldError, FieldValue, UserFields};

/// The login of the new user: 1–20 characters of `[A-Za-z0-9_]`, unique within the account.
///
/// The vendor does not say whether user names are case-sensitive, so uniqueness and
/// comparisons use the lower-case form, which is also what is sent by default
/// (`user_name_case = lower`). The spelling as given is kept for `preserve`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientToolboxUserName {
    given: String,
}

impl ClientToolboxUserName {
    pub const MAX_LEN: usize = 20;

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("must not be empty; 1 to 20 characters of A-Z, a-z, 0-9 and _".into());
        }
        if let Some(c) = raw.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_')) {
            return Err(format!("may only contain A-Z, a-z, 0-9 and _ (found {c:?})"));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(format!("must be at most {} characters, got {}", Self::MAX_LEN, raw.len()));
        }
        Ok(Self { given: raw.to_owned() })
    }

    /// The spelling the job used.
    pub fn as_given(&self) -> &str {
        &self.given
    }

    /// The form identities are compared in (and sent in, by default).
    pub fn canonical(&self) -> String {
        self.given.to_ascii_lowercase()
    }

    /// Same user name as far as the vendor's (presumed case-insensitive) uniqueness goes.
    pub fn matches(&self, other: &str) -> bool {
        self.given.eq_ignore_ascii_case(other.trim())
    }
}

impl fmt::Display for ClientToolboxUserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.given)
    }
}

/// `allowed_campaigns`: `all`, `none`, or comma-separated numeric campaign ids.
///
/// Ids are long digit strings (e.g. `0239471023412`, with a leading zero), so they stay strings:
/// an integer would drop the zero and overflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedCampaigns {
    All,
    None,
    Ids(Vec<CampaignId>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CampaignId(String);

impl CampaignId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("campaign id {raw:?} must be digits only"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AllowedCampaigns {
    const RULE: &'static str =
        "must be `all`, `none` or comma-separated numeric campaign ids (e.g. `12971184024723,0239471023412`)";

    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "all" => return Ok(Self::All),
            "none" => return Ok(Self::None),
            "" => return Err(Self::RULE.into()),
            _ => {}
        }
        let ids: Result<Vec<_>, _> = raw.split(',').map(CampaignId::parse).collect();
        ids.map(Self::Ids).map_err(|e| format!("{}; {e}", Self::RULE))
    }

    pub fn to_wire(&self) -> String {
        match self {
            Self::All => "all".into(),
            Self::None => "none".into(),
            Self::Ids(ids) => ids.iter().map(CampaignId::as_str).collect::<Vec<_>>().join(","),
        }
    }
}

/// `user_role`: one upper-case letter from the "User Permission Levels" page.
///
/// Only `A` (Administrator) and `K` (used for clerks in every example) are confirmed; the page
/// with the other letters could not be retrieved, so any single upper-case letter is accepted
/// here and an account may narrow it with `settings.roles`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserRole(char);

impl UserRole {
    pub const ADMINISTRATOR: UserRole = UserRole('A');

    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut chars = raw.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_uppercase() => Ok(Self(c)),
            _ => Err(
                "must be one upper-case role letter from the User Permission Levels, e.g. `A` (Administrator) or `K`"
                    .into(),
            ),
        }
    }

    pub fn letter(self) -> char {
        self.0
    }
}

impl fmt::Display for UserRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `language_selector`: a two-letter upper-case code from "Available Languages", e.g. `EN`.
/// The full list was not retrieved; an account may narrow it with `settings.languages`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LanguageSelector([u8; 2]);

impl LanguageSelector {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.as_bytes() {
            [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Ok(Self([*a, *b])),
            _ => Err("must be a two-letter upper-case language code from Available Languages, e.g. `EN`".into()),
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("two ASCII letters")
    }
}

/// `timezone_selector`: a positive platform-specific integer code from the "Timezones" page
/// (e.g. `68`), not an IANA name. Jobs may send it as a number or a string of digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimezoneSelector(u32);

impl TimezoneSelector {
    const RULE: &'static str =
        "must be a positive numeric time-zone code from the ClientToolbox Timezones page (e.g. 68), not an IANA name";

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Self::RULE.into());
        }
        match raw.parse::<u32>() {
            Ok(n) if n > 0 => Ok(Self(n)),
            _ => Err(Self::RULE.into()),
        }
    }

    pub fn from_integer(n: i64) -> Result<Self, String> {
        match u32::try_from(n) {
            Ok(n) if n > 0 => Ok(Self(n)),
            _ => Err(Self::RULE.into()),
        }
    }

    pub fn code(self) -> u32 {
        self.0
    }
}

/// `user_PIN`: digits, unique per account (the vendor enforces uniqueness). Secret: it opens
/// terminals, so it is never shown.
#[derive(Clone)]
pub struct UserPin(SecretString);

impl UserPin {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            // Never echo the value: it is a secret even when it is wrong.
            return Err("must be digits only (0-9)".into());
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for UserPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserPin(***)")
    }
}

/// `user_new_password`: required; the vendor publishes no rule, so anything non-empty goes
/// (an account may set `settings.min_password_length`). Secret.
#[derive(Clone)]
pub struct NewUserPassword(SecretString);

impl NewUserPassword {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn char_count(&self) -> usize {
        self.0.expose_secret().chars().count()
    }
}

impl fmt::Debug for NewUserPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewUserPassword(***)")
    }
}

/// A whole valid `user_new` payload (everything but the auth and output fields, which belong
/// to the account).
#[derive(Clone, Debug)]
pub struct NewUser {
    pub user_name: ClientToolboxUserName,
    pub password: NewUserPassword,
    /// Free text; the vendor publishes no limit.
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Shown as "Location"; read back as `user_addtl_info`.
    pub custom1: Option<String>,
    pub pin: Option<UserPin>,
    pub language: Option<LanguageSelector>,
    pub timezone: Option<TimezoneSelector>,
    pub role: UserRole,
    pub allowed_campaigns: AllowedCampaigns,
}

impl NewUser {
    /// Every documented rule of `user_new`, all at once so the producer can fix everything in
    /// one round.
    pub fn parse(user: &UserFields) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let user_name = required(user, "user_name", &mut errors, ClientToolboxUserName::parse);
        let password = required(user, "user_new_password", &mut errors, NewUserPassword::parse);
        let first_name = optional(user, "user_first_name", &mut errors, |s| Ok(s.to_owned()));
        let last_name = optional(user, "user_last_name", &mut errors, |s| Ok(s.to_owned()));
        let custom1 = optional(user, "user_custom1", &mut errors, |s| Ok(s.to_owned()));
        let pin = optional(user, "user_PIN", &mut errors, UserPin::parse);
        let language = optional(user, "language_selector", &mut errors, LanguageSelector::parse);
        let timezone = match user.get("timezone_selector") {
            None => None,
            Some(FieldValue::Integer(n)) => keep(TimezoneSelector::from_integer(*n), "timezone_selector", &mut errors),
            Some(FieldValue::Text(s)) => keep(TimezoneSelector::parse(s), "timezone_selector", &mut errors),
        };
        let role = required(user, "user_role", &mut errors, UserRole::parse);
        let allowed_campaigns = required(user, "allowed_campaigns", &mut errors, AllowedCampaigns::parse);
        match (user_name, password, role, allowed_campaigns) {
            (Some(user_name), Some(password), Some(role), Some(allowed_campaigns)) if errors.is_empty() => Ok(Self {
                user_name,
                password,
                first_name,
                last_name,
                custom1,
                pin,
                language,
                timezone,
                role,
                allowed_campaigns,
            }),
            _ => Err(errors),
        }
    }
}

/// The ClientToolbox arm of [`crate::vendors::validate_user`].
pub fn validate(user: &UserFields) -> Vec<FieldError> {
    NewUser::parse(user).err().unwrap_or_default()
}

fn required<T>(
    user: &UserFields,
    name: &str,
    errors: &mut Vec<FieldError>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    if user.get(name).is_none() {
        errors.push(FieldError::new(format!("user.{name}"), "is required"));
        return None;
    }
    optional(user, name, errors, parse)
}

fn optional<T>(
    user: &UserFields,
    name: &str,
    errors: &mut Vec<FieldError>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    match user.get(name)? {
        FieldValue::Text(s) => keep(parse(s), name, errors),
        // The catalog only lets text through for these fields; reaching here means a caller
        // built `UserFields` by hand.
        FieldValue::Integer(_) => {
            errors.push(FieldError::new(format!("user.{name}"), "must be a string"));
            None
        }
    }
}

fn keep<T>(result: Result<T, String>, name: &str, errors: &mut Vec<FieldError>) -> Option<T> {
    result.map_err(|message| errors.push(FieldError::new(format!("user.{name}"), message))).ok()
}
