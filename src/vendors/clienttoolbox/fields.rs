//! The `user_new` fields as domain values: each rule of vendors/clienttoolbox.md lives in one `parse`.
//!
//! Validation is the parse: [`NewUser::parse`] either yields values that can only be valid, or
//! every reason the job is not acceptable, addressed as `user.<WireName>`. Messages say what
//! is allowed and never echo a secret.

use std::collections::BTreeSet;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use crate::contract::{FieldError, FieldValue, UserFields};

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

    /// Whether `raw`, as a lookup shows it, grants the same campaigns: ids in any order.
    pub fn same_as(&self, raw: &str) -> bool {
        let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
        match (self, Self::parse(&compact)) {
            (Self::Ids(want), Ok(Self::Ids(have))) => {
                want.iter().collect::<BTreeSet<_>>() == have.iter().collect::<BTreeSet<_>>()
            }
            (want, Ok(have)) => *want == have,
            (_, Err(_)) => false,
        }
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

/// Free text: anything but control and bidirectional-override characters (the vendor
/// publishes no other rule).
fn free_text(raw: &str) -> Result<String, String> {
    match crate::contract::unsafe_char(raw) {
        Some(c) => Err(crate::contract::unsafe_char_message(c)),
        None => Ok(raw.to_owned()),
    }
}

impl NewUser {
    /// The job's own words that ClientToolbox may echo back in a message (secrets are
    /// scrubbed apart).
    pub fn echoes(&self) -> Vec<&str> {
        let texts = [&self.first_name, &self.last_name, &self.custom1].into_iter().flatten().map(String::as_str);
        std::iter::once(self.user_name.as_given()).chain(texts).collect()
    }

    /// Every documented rule of `user_new`, all at once so the producer can fix everything in
    /// one round.
    pub fn parse(user: &UserFields) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let user_name = required(user, "user_name", &mut errors, ClientToolboxUserName::parse);
        let password = required(user, "user_new_password", &mut errors, NewUserPassword::parse);
        let first_name = optional(user, "user_first_name", &mut errors, free_text);
        let last_name = optional(user, "user_last_name", &mut errors, free_text);
        let custom1 = optional(user, "user_custom1", &mut errors, free_text);
        let pin = optional(user, "user_PIN", &mut errors, UserPin::parse);
        let language = optional(user, "language_selector", &mut errors, LanguageSelector::parse);
        let timezone = timezone(user, &mut errors);
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

/// `timezone_selector`, documented as a string or an integer.
fn timezone(user: &UserFields, errors: &mut Vec<FieldError>) -> Option<TimezoneSelector> {
    match user.get("timezone_selector") {
        None => None,
        Some(FieldValue::Integer(n)) => keep(TimezoneSelector::from_integer(*n), "timezone_selector", errors),
        Some(FieldValue::Text(s)) => keep(TimezoneSelector::parse(s), "timezone_selector", errors),
    }
}

/// What a `user_update` sets besides the `user_name` it addresses, every field optional:
/// the fields of an `update_user` job, or an account's `settings.suspend` and
/// `settings.restore`. Each value obeys the same rule as in `user_new`.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    pub password: Option<NewUserPassword>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub custom1: Option<String>,
    pub pin: Option<UserPin>,
    pub language: Option<LanguageSelector>,
    pub timezone: Option<TimezoneSelector>,
    pub role: Option<UserRole>,
    pub allowed_campaigns: Option<AllowedCampaigns>,
}

impl Changes {
    /// Every field of `user` but `user_name`, each under its `user_new` rule, all errors at once.
    pub fn parse(user: &UserFields) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let changes = Self {
            password: optional(user, "user_new_password", &mut errors, NewUserPassword::parse),
            first_name: optional(user, "user_first_name", &mut errors, free_text),
            last_name: optional(user, "user_last_name", &mut errors, free_text),
            custom1: optional(user, "user_custom1", &mut errors, free_text),
            pin: optional(user, "user_PIN", &mut errors, UserPin::parse),
            language: optional(user, "language_selector", &mut errors, LanguageSelector::parse),
            timezone: timezone(user, &mut errors),
            role: optional(user, "user_role", &mut errors, UserRole::parse),
            allowed_campaigns: optional(user, "allowed_campaigns", &mut errors, AllowedCampaigns::parse),
        };
        if errors.is_empty() {
            Ok(changes)
        } else {
            Err(errors)
        }
    }

    /// The wire names of the fields set, in the order `user_update` sends them.
    pub fn names(&self) -> Vec<&'static str> {
        let set = [
            ("user_new_password", self.password.is_some()),
            ("user_first_name", self.first_name.is_some()),
            ("user_last_name", self.last_name.is_some()),
            ("user_custom1", self.custom1.is_some()),
            ("user_PIN", self.pin.is_some()),
            ("language_selector", self.language.is_some()),
            ("timezone_selector", self.timezone.is_some()),
            ("user_role", self.role.is_some()),
            ("allowed_campaigns", self.allowed_campaigns.is_some()),
        ];
        set.into_iter().filter(|(_, is_set)| *is_set).map(|(name, _)| name).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.names().is_empty()
    }

    /// Whether a password or PIN is among the changes: no lookup shows one, so such an
    /// update can never be proven made already and is always sent.
    pub fn has_secret(&self) -> bool {
        self.password.is_some() || self.pin.is_some()
    }

    /// The secret values, so vendor text that echoes one can be scrubbed.
    pub fn secrets(&self) -> Vec<&str> {
        let password = self.password.as_ref().map(NewUserPassword::expose);
        password.into_iter().chain(self.pin.as_ref().map(UserPin::expose)).collect()
    }

    /// The free-text values ClientToolbox may echo back in a message.
    pub fn echoes(&self) -> Vec<&str> {
        [&self.first_name, &self.last_name, &self.custom1].into_iter().flatten().map(String::as_str).collect()
    }
}

/// A valid `update_user` job's user: the `user_name` it addresses (which cannot be renamed)
/// and at least one field to change.
#[derive(Clone, Debug)]
pub struct UserChange {
    pub user_name: ClientToolboxUserName,
    pub changes: Changes,
}

impl UserChange {
    pub fn parse(user: &UserFields) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let user_name = required(user, "user_name", &mut errors, ClientToolboxUserName::parse);
        let changes = Changes::parse(user).map_err(|e| errors.extend(e)).ok();
        if changes.as_ref().is_some_and(Changes::is_empty) {
            errors.push(FieldError::new(
                "user",
                "an update_user job names at least one field to change besides user_name",
            ));
        }
        match (user_name, changes) {
            (Some(user_name), Some(changes)) if errors.is_empty() => Ok(Self { user_name, changes }),
            _ => Err(errors),
        }
    }

    /// The job's own words ClientToolbox may echo back.
    pub fn echoes(&self) -> Vec<&str> {
        std::iter::once(self.user_name.as_given()).chain(self.changes.echoes()).collect()
    }
}

/// A valid `suspend_user`, `restore_user` or `delete_user` job's user: its `user_name` only
/// (decoding refuses any other field).
#[derive(Clone, Debug)]
pub struct UserRef {
    pub user_name: ClientToolboxUserName,
}

impl UserRef {
    pub fn parse(user: &UserFields) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        match required(user, "user_name", &mut errors, ClientToolboxUserName::parse) {
            Some(user_name) => Ok(Self { user_name }),
            None => Err(errors),
        }
    }
}

/// What an account narrows in the job rules (the settings `roles`, `languages`, `timezones`
/// and `min_password_length`): the reference tables could not be retrieved and the vendor
/// publishes no password rule, so by default any well-formed value goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// The account's name, for messages that name the setting to change.
    pub account: String,
    /// Allow-lists; `None` = any well-formed value.
    pub roles: Option<BTreeSet<UserRole>>,
    pub languages: Option<BTreeSet<LanguageSelector>>,
    pub timezones: Option<BTreeSet<TimezoneSelector>>,
    pub min_password_length: usize,
}

impl Rules {
    /// Everything in `user` these rules refuse, each naming the field and the setting.
    pub fn check(&self, user: &NewUser) -> Vec<FieldError> {
        self.check_values(Some(user.role), user.language, user.timezone, Some(&user.password))
    }

    /// Everything in an update's `changes` these rules refuse: only the fields it sets.
    pub fn check_changes(&self, changes: &Changes) -> Vec<FieldError> {
        self.check_values(changes.role, changes.language, changes.timezone, changes.password.as_ref())
    }

    fn check_values(
        &self,
        role: Option<UserRole>,
        language: Option<LanguageSelector>,
        timezone: Option<TimezoneSelector>,
        password: Option<&NewUserPassword>,
    ) -> Vec<FieldError> {
        let setting = |k: &str| format!("accounts.{}.settings.{k}", self.account);
        let mut errors = Vec::new();
        if let (Some(roles), Some(role)) = (&self.roles, role) {
            if !roles.contains(&role) {
                errors.push(FieldError::new(
                    "user.user_role",
                    format!("role {role} is not allowed for this account ({})", setting("roles")),
                ));
            }
        }
        if let (Some(list), Some(lang)) = (&self.languages, &language) {
            if !list.contains(lang) {
                errors.push(FieldError::new(
                    "user.language_selector",
                    format!("{} is not a known language code ({})", lang.as_str(), setting("languages")),
                ));
            }
        }
        if let (Some(list), Some(tz)) = (&self.timezones, &timezone) {
            if !list.contains(tz) {
                errors.push(FieldError::new(
                    "user.timezone_selector",
                    format!("{} is not a known time-zone code ({})", tz.code(), setting("timezones")),
                ));
            }
        }
        if password.is_some_and(|p| p.char_count() < self.min_password_length) {
            errors.push(FieldError::new(
                "user.user_new_password",
                format!(
                    "must be at least {} characters ({})",
                    self.min_password_length,
                    setting("min_password_length")
                ),
            ));
        }
        errors
    }
}

/// The ClientToolbox arm of [`crate::vendors::validate_user`] without an account: the
/// documented defaults.
pub fn validate(user: &UserFields) -> Vec<FieldError> {
    NewUser::parse(user).err().unwrap_or_default()
}

/// The vendor's rules, then the account's narrowing of them.
pub fn validate_with(user: &UserFields, rules: &Rules) -> Vec<FieldError> {
    match NewUser::parse(user) {
        Ok(parsed) => rules.check(&parsed),
        Err(errors) => errors,
    }
}

/// The rules of a job that is not a create: each field it names under its `user_new` rule
/// and this account's narrowing of it. Which fields such a job must or may name is
/// [`crate::vendors::change_errors`]'s to say.
pub fn validate_change_with(user: &UserFields, rules: &Rules) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if user.get("user_name").is_some() {
        optional(user, "user_name", &mut errors, ClientToolboxUserName::parse);
    }
    match Changes::parse(user) {
        Ok(changes) => errors.extend(rules.check_changes(&changes)),
        Err(e) => errors.extend(e),
    }
    errors
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::contract::VendorKey;

    fn user(fields: &[(&'static str, FieldValue)]) -> UserFields {
        UserFields::new(VendorKey::Clienttoolbox, fields.iter().cloned().collect::<BTreeMap<_, _>>())
    }

    fn t(s: &str) -> FieldValue {
        FieldValue::Text(s.to_owned())
    }

    fn valid() -> Vec<(&'static str, FieldValue)> {
        vec![
            ("user_name", t("jdoe_front")),
            ("user_new_password", t("S3cure!pass")),
            ("user_first_name", t("Jane")),
            ("user_last_name", t("Doe")),
            ("user_custom1", t("Downtown Store")),
            ("user_PIN", t("4321")),
            ("language_selector", t("EN")),
            ("timezone_selector", t("68")),
            ("user_role", t("K")),
            ("allowed_campaigns", t("all")),
        ]
    }

    /// The errors of the valid user with `name` replaced (or removed with `None`).
    fn errors_with(name: &'static str, value: Option<FieldValue>) -> Vec<FieldError> {
        let mut fields: Vec<_> = valid().into_iter().filter(|(k, _)| *k != name).collect();
        if let Some(v) = value {
            fields.push((name, v));
        }
        validate(&user(&fields))
    }

    fn accepted(name: &'static str, value: FieldValue) {
        let errs = errors_with(name, Some(value.clone()));
        assert!(errs.is_empty(), "{name} = {:?} should pass: {errs:?}", value.to_wire());
    }

    fn refused(name: &'static str, value: Option<FieldValue>) -> String {
        let errs = errors_with(name, value);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, format!("user.{name}"));
        errs[0].message.clone()
    }

    #[test]
    fn the_documented_example_is_valid() {
        let parsed = NewUser::parse(&user(&valid())).unwrap();
        assert_eq!(parsed.user_name.as_given(), "jdoe_front");
        assert_eq!(parsed.timezone.unwrap().code(), 68);
        assert_eq!(parsed.allowed_campaigns, AllowedCampaigns::All);
    }

    #[test]
    fn user_name_is_at_most_20_of_letters_digits_and_underscore() {
        accepted("user_name", t("Jane_Doe_2024"));
        accepted("user_name", t(&"a".repeat(20)));
        assert!(refused("user_name", Some(t(&"a".repeat(21)))).contains("at most 20"));
        assert!(refused("user_name", Some(t("jane.doe"))).contains("A-Z, a-z, 0-9 and _"));
        refused("user_name", Some(t("jöe")));
        refused("user_name", Some(t("")));
        assert_eq!(refused("user_name", None), "is required");
    }

    #[test]
    fn user_name_is_compared_case_insensitively_and_lowered() {
        let n = ClientToolboxUserName::parse("JDoe_Front").unwrap();
        assert_eq!(n.canonical(), "jdoe_front");
        assert_eq!(n.as_given(), "JDoe_Front");
        assert!(n.matches("jdoe_FRONT"));
        assert!(!n.matches("jdoe_back"));
    }

    #[test]
    fn new_password_is_required_and_never_echoed() {
        accepted("user_new_password", t("x"));
        assert_eq!(refused("user_new_password", None), "is required");
        refused("user_new_password", Some(t("")));
    }

    #[test]
    fn pin_is_digits_and_never_echoed() {
        accepted("user_PIN", t("0042"));
        let msg = refused("user_PIN", Some(t("12ab9")));
        assert!(msg.contains("digits"), "{msg}");
        assert!(!msg.contains("12ab9"), "{msg}");
        refused("user_PIN", Some(t("")));
        accepted("user_PIN", t("1")); // optional, any length of digits
        assert!(errors_with("user_PIN", None).is_empty(), "user_PIN is optional");
    }

    #[test]
    fn role_is_one_upper_case_letter() {
        accepted("user_role", t("A"));
        accepted("user_role", t("K"));
        assert!(refused("user_role", Some(t("k"))).contains("upper-case"));
        refused("user_role", Some(t("AK")));
        refused("user_role", Some(t("Clerk")));
        assert_eq!(refused("user_role", None), "is required");
    }

    #[test]
    fn allowed_campaigns_forms() {
        accepted("allowed_campaigns", t("all"));
        accepted("allowed_campaigns", t("none"));
        accepted("allowed_campaigns", t("12971184024723"));
        accepted("allowed_campaigns", t("12971184024723,0239471023412"));
        for bad in ["", "All", "12971184024723,", ",1", "12, 34", "abc", "12;34", "all,12"] {
            let msg = refused("allowed_campaigns", Some(t(bad)));
            assert!(msg.contains("`all`, `none`"), "{bad:?}: {msg}");
        }
        assert_eq!(refused("allowed_campaigns", None), "is required");
    }

    #[test]
    fn campaign_ids_keep_leading_zeros() {
        let c = AllowedCampaigns::parse("0239471023412,12971184024723").unwrap();
        assert_eq!(c.to_wire(), "0239471023412,12971184024723");
    }

    #[test]
    fn language_is_two_upper_case_letters() {
        accepted("language_selector", t("FR"));
        refused("language_selector", Some(t("en")));
        refused("language_selector", Some(t("ENG")));
        refused("language_selector", Some(t("E1")));
        assert!(errors_with("language_selector", None).is_empty());
    }

    #[test]
    fn timezone_is_a_positive_code_as_number_or_digits() {
        accepted("timezone_selector", FieldValue::Integer(68));
        accepted("timezone_selector", t("68"));
        assert!(refused("timezone_selector", Some(t("Australia/Sydney"))).contains("not an IANA name"));
        refused("timezone_selector", Some(FieldValue::Integer(0)));
        refused("timezone_selector", Some(FieldValue::Integer(-5)));
        refused("timezone_selector", Some(t("+68")));
        refused("timezone_selector", Some(t("")));
        refused("timezone_selector", Some(FieldValue::Integer(i64::from(u32::MAX) + 1)));
    }

    #[test]
    fn free_text_refuses_control_and_bidi_override_characters() {
        for bad in ["Jane\0", "Jane\r\nX-Injected: 1", "\u{202e}enaJ", "\u{1b}]0;PWNED\u{7}"] {
            for field in ["user_first_name", "user_last_name", "user_custom1"] {
                let errs = errors_with(field, Some(t(bad)));
                assert!(errs.iter().any(|e| e.message.contains("control")), "{field} {bad:?}: {errs:?}");
            }
        }
    }

    #[test]
    fn free_text_fields_have_no_published_rule() {
        accepted("user_first_name", t("Zoë-Ann O'Neil"));
        accepted("user_custom1", t(""));
        assert!(errors_with("user_first_name", None).is_empty());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let errs = validate(&user(&[("user_name", t("bad name")), ("user_PIN", t("x"))]));
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        for f in
            ["user.user_name", "user.user_new_password", "user.user_PIN", "user.user_role", "user.allowed_campaigns"]
        {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
    }

    #[test]
    fn decoding_a_job_applies_these_rules() {
        let job = json!({"job_id": "j1", "vendor": "clienttoolbox", "account": "a",
            "user": {"user_name": "too-long-and-dashed-name", "user_new_password": "pw", "user_role": "K",
                     "allowed_campaigns": "all", "timezone_selector": 68}});
        match crate::job::decode(job.to_string().as_bytes()) {
            Err(crate::job::Rejection::Invalid(inv)) => {
                assert_eq!(inv.errors.len(), 1, "{:?}", inv.errors);
                assert_eq!(inv.errors[0].field, "user.user_name");
            }
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let parsed = NewUser::parse(&user(&valid())).unwrap();
        let shown = format!("{parsed:?}");
        assert!(!shown.contains("S3cure!pass") && !shown.contains("4321"), "{shown}");
        assert!(shown.contains("jdoe_front"));
    }

    #[test]
    fn a_change_names_its_user_and_at_least_one_field() {
        let c = UserChange::parse(&user(&[("user_name", t("JDoe")), ("user_role", t("A"))])).unwrap();
        assert_eq!((c.user_name.as_given(), c.changes.names()), ("JDoe", vec!["user_role"]));
        assert!(!c.changes.has_secret());
        let errs = UserChange::parse(&user(&[("user_name", t("JDoe"))])).unwrap_err();
        assert_eq!(errs[0].field, "user");
        let errs = UserChange::parse(&user(&[("user_role", t("k")), ("user_PIN", t("12x"))])).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["user.user_name", "user.user_PIN", "user.user_role"]);
        assert!(errs.iter().all(|e| !e.message.contains("12x")));
        let secret = UserChange::parse(&user(&[("user_name", t("j")), ("user_new_password", t("pw"))])).unwrap();
        assert!(secret.changes.has_secret());
        assert_eq!(secret.changes.secrets(), ["pw"]);
        assert!(!format!("{secret:?}").contains("\"pw\""));
        assert_eq!(UserRef::parse(&user(&[("user_name", t("J_1"))])).unwrap().user_name.as_given(), "J_1");
        assert_eq!(UserRef::parse(&user(&[])).unwrap_err()[0].field, "user.user_name");
    }

    #[test]
    fn campaigns_compare_in_any_order() {
        let ids = AllowedCampaigns::parse("12971184024723,0239471023412").unwrap();
        assert!(ids.same_as("0239471023412, 12971184024723"));
        assert!(!ids.same_as("12971184024723"));
        assert!(!ids.same_as("239471023412,12971184024723"), "leading zeros matter");
        assert!(AllowedCampaigns::All.same_as(" all "));
        assert!(!AllowedCampaigns::All.same_as("none") && !AllowedCampaigns::None.same_as("garbage"));
    }

    /// Decoding an update holds the fields it names to the account's allow-lists, which a
    /// partial user would otherwise skip.
    #[test]
    fn an_update_is_held_to_the_account_rules_field_by_field() {
        let mut book = crate::vendors::Rulebook::default();
        let rules = Rules {
            account: "acme-ctb".into(),
            roles: Some([UserRole::parse("K").unwrap()].into()),
            min_password_length: 12,
            ..Rules::default()
        };
        book.insert("acme-ctb", crate::vendors::FieldRules::Clienttoolbox(rules));
        let decode = |user: serde_json::Value| {
            let body = json!({"job_id": "u1", "kind": "update_user", "vendor": "clienttoolbox",
                "account": "acme-ctb", "user": user});
            crate::job::decode_with(body.to_string().as_bytes(), &book)
        };
        let refused = |user: serde_json::Value| match decode(user) {
            Err(crate::job::Rejection::Invalid(inv)) => inv.errors.into_iter().map(|e| e.field).collect::<Vec<_>>(),
            other => panic!("expected invalid, got {other:?}"),
        };
        assert_eq!(refused(json!({"user_name": "jdoe", "user_role": "A"})), ["user.user_role"]);
        assert_eq!(refused(json!({"user_name": "jdoe", "user_new_password": "short"})), ["user.user_new_password"]);
        assert_eq!(refused(json!({"user_name": "jdoe", "language_selector": "en"})), ["user.language_selector"]);
        assert_eq!(refused(json!({"user_name": "bad name", "user_role": "K"})), ["user.user_name"]);
        assert_eq!(refused(json!({"user_name": "jdoe"})), ["user"]);
        assert!(decode(json!({"user_name": "jdoe", "user_role": "K", "user_last_name": "Roe"})).is_ok());
        let delete = json!({"job_id": "d1", "kind": "delete_user", "vendor": "clienttoolbox", "account": "acme-ctb",
            "user": {"user_name": "jdoe"}});
        assert!(crate::job::decode_with(delete.to_string().as_bytes(), &book).is_ok());
    }

    proptest! {
        #[test]
        fn user_names_that_parse_reparse_in_every_spelling(raw in "[A-Za-z0-9_]{1,20}") {
            let n = ClientToolboxUserName::parse(&raw).unwrap();
            prop_assert_eq!(n.as_given(), raw.as_str());
            let lowered = ClientToolboxUserName::parse(&n.canonical()).unwrap();
            prop_assert!(lowered.matches(n.as_given()));
        }

        #[test]
        fn over_long_user_names_are_refused(raw in "[A-Za-z0-9_]{21,40}") {
            prop_assert!(ClientToolboxUserName::parse(&raw).is_err());
        }

        #[test]
        fn user_names_with_any_other_character_are_refused(
            head in "[A-Za-z0-9_]{0,9}", bad in "[^A-Za-z0-9_]", tail in "[A-Za-z0-9_]{0,9}"
        ) {
            let raw = format!("{head}{bad}{tail}");
            prop_assert!(ClientToolboxUserName::parse(&raw).is_err());
        }

        #[test]
        fn campaign_lists_round_trip(ids in proptest::collection::vec("[0-9]{1,16}", 1..5)) {
            let raw = ids.join(",");
            let parsed = AllowedCampaigns::parse(&raw).unwrap();
            prop_assert_eq!(parsed.to_wire(), raw.clone());
            prop_assert_eq!(AllowedCampaigns::parse(&parsed.to_wire()).unwrap(), parsed);
        }

        #[test]
        fn campaign_lists_with_a_non_digit_are_refused(ids in "[0-9]{1,5}", bad in "[^0-9,]") {
            let with_bad = format!("{ids},{bad}{ids}");
            prop_assert!(AllowedCampaigns::parse(&with_bad).is_err());
        }

        #[test]
        fn timezone_codes_round_trip(n in 1u32..=u32::MAX) {
            let tz = TimezoneSelector::parse(&n.to_string()).unwrap();
            prop_assert_eq!(tz.code(), n);
            prop_assert_eq!(TimezoneSelector::from_integer(i64::from(n)).unwrap(), tz);
        }

        #[test]
        fn pins_are_digits_only(ok in "[0-9]{1,12}", bad in "[0-9]{2,4}[^0-9][0-9]{2,4}") {
            prop_assert_eq!(UserPin::parse(&ok).unwrap().expose().to_owned(), ok.clone());
            let err = UserPin::parse(&bad).unwrap_err();
            prop_assert!(!err.contains(&bad));
        }

        #[test]
        fn roles_and_languages(letter in "[A-Z]", other in "[^A-Z]", pair in "[A-Z]{2}") {
            prop_assert_eq!(UserRole::parse(&letter).unwrap().to_string(), letter.clone());
            prop_assert!(UserRole::parse(&other).is_err());
            prop_assert_eq!(LanguageSelector::parse(&pair).unwrap().as_str().to_owned(), pair.clone());
            prop_assert!(LanguageSelector::parse(&letter).is_err());
        }
    }
}
