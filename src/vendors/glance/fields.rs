//! Glance `NewUser` field rules as domain types: a value of these types is one Glance accepts.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use crate::contract::{FieldError, FieldValue, UserFields};

pub const ADDRESS_MAX: usize = 127;
pub const PARTNER_USER_ID_MAX: usize = 255;
pub const NAME_MAX: usize = 49;
pub const EMAIL_MAX: usize = 127;
pub const USER_PW_MAX: usize = 49;
/// help.glance.net says 31; help.glance.cx and the newer mirror say 70.
pub const USER_ROLE_MAX_SAFE: usize = 31;
pub const USER_ROLE_MAX_NEWER_DOCS: usize = 70;
/// Only the older summary page asks for at least 8 characters; the current page sets no
/// minimum, so neither does the default (an account may, with `user_pw_min_length`).
pub const USER_PW_MIN_OLDER_DOC: usize = 8;
pub const DEFAULT_ADDRESS_SUFFIX: &str = ".glance.net";
/// The role values that mean "no role".
pub const NO_ROLE: &str = "-none-";

/// The rules that the docs leave open, fixed per account (see `account.rs`). The defaults
/// follow the vendor's current page where it speaks (`UserPW` up to 49 characters, no
/// minimum) and the safer reading where its pages disagree (`UserRole` at most 31, not 70).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    pub(super) address_suffixes: Vec<String>,
    pub(super) user_role_max: usize,
    pub(super) user_pw_min: usize,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            address_suffixes: vec![DEFAULT_ADDRESS_SUFFIX.to_owned()],
            user_role_max: USER_ROLE_MAX_SAFE,
            user_pw_min: 0,
        }
    }
}

impl Rules {
    pub fn address_suffixes(&self) -> &[String] {
        &self.address_suffixes
    }
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// A Glance Address (login name), lowercased: `[a-z0-9.-]`, no leading or trailing `.`/`-`,
/// no `..`, ending in an accepted suffix (`.glance.net` by default), at most 127 characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct GlanceAddress(String);

impl GlanceAddress {
    pub fn parse(raw: &str, suffixes: &[String]) -> Result<Self, String> {
        let wanted = suffixes.join(" or ");
        let example = suffixes.first().map_or(DEFAULT_ADDRESS_SUFFIX, String::as_str);
        if raw.is_empty() {
            return Err(format!("is required: a Glance Address such as jdoe.acme{example}"));
        }
        if chars(raw) > ADDRESS_MAX {
            return Err(format!("must be at most {ADDRESS_MAX} characters, got {}", chars(raw)));
        }
        if let Some(c) = raw.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))) {
            return Err(format!("may only contain ASCII letters, digits, '.' and '-', found {c:?}"));
        }
        if raw.starts_with(['.', '-']) || raw.ends_with(['.', '-']) {
            return Err("must not start or end with '.' or '-'".into());
        }
        if raw.contains("..") {
            return Err("must not contain '..'".into());
        }
        let lower = raw.to_ascii_lowercase();
        let fits = suffixes.iter().any(|s| {
            lower.strip_suffix(s.as_str()).and_then(|p| p.chars().last()).is_some_and(|c| c.is_ascii_alphanumeric())
        });
        if !fits {
            return Err(format!("must be a name ending in {wanted}, e.g. jdoe.acme{example}"));
        }
        Ok(Self(lower))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GlanceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for GlanceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GlanceAddress({})", self.0)
    }
}

/// The caller's id for the user, the idempotency key: 1 to 255 characters. Because lookups
/// must address exactly one user, a leading or trailing `*` (a ShowUsers wildcard) and the
/// literal `-none-` (matches users without an id) are refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PartnerUserId(String);

impl PartnerUserId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.trim().is_empty() {
            return Err("is required: the caller's own id for the user".into());
        }
        if chars(raw) > PARTNER_USER_ID_MAX {
            return Err(format!("must be at most {PARTNER_USER_ID_MAX} characters, got {}", chars(raw)));
        }
        if raw.starts_with('*') || raw.ends_with('*') {
            return Err("must not start or end with '*': ShowUsers reads that as a wildcard".into());
        }
        if raw.eq_ignore_ascii_case(NO_ROLE) {
            return Err("must not be -none-: ShowUsers reads that as 'users without an id'".into());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PartnerUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bounded(raw: &str, max: usize) -> Result<String, String> {
    if let Some(c) = crate::contract::unsafe_char(raw) {
        return Err(crate::contract::unsafe_char_message(c));
    }
    if chars(raw) > max {
        return Err(format!("must be at most {max} characters, got {}", chars(raw)));
    }
    Ok(raw.to_owned())
}

/// `UserFirst` / `UserLast`: at most 49 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        bounded(raw, NAME_MAX).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `UserEmail`: at most 127 characters; Glance documents no further format check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        bounded(raw, EMAIL_MAX).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `UserRole`: a role provisioned for the group; empty or `-none-` means no role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRole(String);

impl UserRole {
    pub fn parse(raw: &str, max: usize) -> Result<Self, String> {
        bounded(raw, max).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_none(&self) -> bool {
        self.0.trim().is_empty() || self.0.trim().eq_ignore_ascii_case(NO_ROLE)
    }
}

/// `UserPW`: at most 49 characters, and at least the account's minimum (none by default).
/// `Debug` never shows it.
#[derive(Clone)]
pub struct UserPw(SecretString);

impl UserPw {
    pub fn parse(raw: &str, min: usize) -> Result<Self, String> {
        let n = chars(raw);
        if n > USER_PW_MAX {
            return Err(format!("must be at most {USER_PW_MAX} characters"));
        }
        if n < min {
            return Err(format!(
                "must be at least {min} characters, or be left out when the user signs in through SSO"
            ));
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for UserPw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserPw(***)")
    }
}

/// `AudioProvider`: 1 = Glance Free Conferencing, 666 = testing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioProvider {
    GlanceFreeConferencing,
    Testing,
}

impl AudioProvider {
    pub fn parse(raw: i64) -> Result<Self, String> {
        match raw {
            1 => Ok(Self::GlanceFreeConferencing),
            666 => Ok(Self::Testing),
            _ => Err("must be 1 (Glance Free Conferencing) or 666 (testing); leave it out for no audio".into()),
        }
    }

    pub fn code(self) -> u16 {
        match self {
            Self::GlanceFreeConferencing => 1,
            Self::Testing => 666,
        }
    }
}

/// A complete, valid `NewUser` call body (without the auth fields).
#[derive(Clone, Debug)]
pub struct NewUser {
    pub partner_user_id: PartnerUserId,
    pub address: GlanceAddress,
    pub password: Option<UserPw>,
    pub first: Option<PersonName>,
    pub last: Option<PersonName>,
    pub email: Option<Email>,
    pub role: Option<UserRole>,
    pub audio: Option<AudioProvider>,
}

impl NewUser {
    /// The job's own words that Glance may echo back in a message (secrets are scrubbed apart).
    pub fn echoes(&self) -> Vec<&str> {
        let optional = [&self.first, &self.last].into_iter().flatten().map(PersonName::as_str);
        [self.partner_user_id.as_str(), self.address.as_str()]
            .into_iter()
            .chain(optional)
            .chain(self.email.as_ref().map(Email::as_str))
            .chain(self.role.as_ref().map(UserRole::as_str))
            .collect()
    }
}

fn text_field<'a>(user: &'a UserFields, name: &str, errors: &mut Vec<FieldError>) -> Option<&'a str> {
    match user.get(name) {
        None => None,
        Some(FieldValue::Text(s)) => Some(s),
        Some(FieldValue::Integer(_)) => {
            errors.push(FieldError::new(format!("user.{name}"), "must be a string"));
            None
        }
    }
}

fn check<T>(name: &str, result: Result<T, String>, errors: &mut Vec<FieldError>) -> Option<T> {
    result.map_err(|m| errors.push(FieldError::new(format!("user.{name}"), m))).ok()
}

/// The optional profile fields `NewUser` and `UpdateUser` share, each under its rule.
struct Profile {
    password: Option<UserPw>,
    first: Option<PersonName>,
    last: Option<PersonName>,
    email: Option<Email>,
    role: Option<UserRole>,
}

impl Profile {
    fn parse(user: &UserFields, rules: &Rules, e: &mut Vec<FieldError>) -> Self {
        let password =
            text_field(user, "UserPW", e).and_then(|r| check("UserPW", UserPw::parse(r, rules.user_pw_min), e));
        let first = text_field(user, "UserFirst", e).and_then(|r| check("UserFirst", PersonName::parse(r), e));
        let last = text_field(user, "UserLast", e).and_then(|r| check("UserLast", PersonName::parse(r), e));
        let email = text_field(user, "UserEmail", e).and_then(|r| check("UserEmail", Email::parse(r), e));
        let role =
            text_field(user, "UserRole", e).and_then(|r| check("UserRole", UserRole::parse(r, rules.user_role_max), e));
        Self { password, first, last, email, role }
    }
}

fn partner_user_id(user: &UserFields, e: &mut Vec<FieldError>) -> Option<PartnerUserId> {
    let raw = text_field(user, "PartnerUserID", e).unwrap_or("");
    check("PartnerUserID", PartnerUserId::parse(raw), e)
}

impl NewUser {
    /// Every documented rule of the create call, all errors at once, each naming its field.
    pub fn parse(user: &UserFields, rules: &Rules) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let e = &mut errors;
        let partner_user_id = partner_user_id(user, e);
        let address = match text_field(user, "UserAddress", e) {
            Some(raw) => check("UserAddress", GlanceAddress::parse(raw, &rules.address_suffixes), e),
            None => check("UserAddress", GlanceAddress::parse("", &rules.address_suffixes), e),
        };
        let Profile { password, first, last, email, role } = Profile::parse(user, rules, e);
        let audio = match user.get("AudioProvider") {
            None => None,
            Some(FieldValue::Integer(i)) => check("AudioProvider", AudioProvider::parse(*i), e),
            Some(FieldValue::Text(_)) => check("AudioProvider", Err("must be an integer, 1 or 666".to_owned()), e),
        };
        for (name, _) in user.iter() {
            if !KNOWN.contains(&name) {
                errors.push(FieldError::new(format!("user.{name}"), "is not a Glance NewUser field"));
            }
        }
        match (partner_user_id, address) {
            (Some(partner_user_id), Some(address)) if errors.is_empty() => {
                Ok(Self { partner_user_id, address, password, first, last, email, role, audio })
            }
            _ => Err(errors),
        }
    }
}

/// A valid `UpdateUser` call body (without the auth fields): the user, by its PartnerUserID,
/// and only the fields to change, for Glance changes only the fields it is given.
#[derive(Clone, Debug)]
pub struct UserChange {
    pub partner_user_id: PartnerUserId,
    pub address: Option<GlanceAddress>,
    pub password: Option<UserPw>,
    pub first: Option<PersonName>,
    pub last: Option<PersonName>,
    pub email: Option<Email>,
    pub role: Option<UserRole>,
    /// `UserSuspended`: never from a job's `user` (no catalog field), only from a
    /// `suspend_user` (`true`) or `restore_user` (`false`) job.
    pub suspended: Option<bool>,
}

impl UserChange {
    /// An `update_user` job's user under the account's rules: PartnerUserID and at least one
    /// field `UpdateUser` takes.
    pub fn parse(user: &UserFields, rules: &Rules) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let e = &mut errors;
        let partner_user_id = partner_user_id(user, e);
        let address = text_field(user, "UserAddress", e)
            .and_then(|raw| check("UserAddress", GlanceAddress::parse(raw, &rules.address_suffixes), e));
        let Profile { password, first, last, email, role } = Profile::parse(user, rules, e);
        for (name, _) in user.iter() {
            if !KNOWN.contains(&name) || super::NOT_UPDATABLE.contains(&name) {
                errors.push(FieldError::new(format!("user.{name}"), "is not a field Glance's UpdateUser takes"));
            }
        }
        if user.iter().all(|(name, _)| name == "PartnerUserID") {
            errors.push(FieldError::new("user", "names no field to change besides PartnerUserID"));
        }
        match partner_user_id {
            Some(partner_user_id) if errors.is_empty() => {
                Ok(Self { partner_user_id, address, password, first, last, email, role, suspended: None })
            }
            _ => Err(errors),
        }
    }

    /// The change a `suspend_user` (`true`) or `restore_user` (`false`) job makes.
    pub fn suspension(user: &UserRef, suspended: bool) -> Self {
        Self {
            partner_user_id: user.partner_user_id.clone(),
            address: None,
            password: None,
            first: None,
            last: None,
            email: None,
            role: None,
            suspended: Some(suspended),
        }
    }

    /// The job's own words that Glance may echo back in a message (secrets are scrubbed apart).
    pub fn echoes(&self) -> Vec<&str> {
        [Some(self.partner_user_id.as_str()), self.address.as_ref().map(GlanceAddress::as_str)]
            .into_iter()
            .chain([&self.first, &self.last].into_iter().map(|v| v.as_ref().map(PersonName::as_str)))
            .chain([self.email.as_ref().map(Email::as_str), self.role.as_ref().map(UserRole::as_str)])
            .flatten()
            .collect()
    }
}

/// A user named by its PartnerUserID alone: what a suspend, restore or delete job carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRef {
    pub partner_user_id: PartnerUserId,
}

impl UserRef {
    pub fn parse(user: &UserFields) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let partner_user_id = partner_user_id(user, &mut errors);
        for (name, _) in user.iter().filter(|(name, _)| *name != "PartnerUserID") {
            errors.push(FieldError::new(format!("user.{name}"), "the user is named by PartnerUserID only"));
        }
        match partner_user_id {
            Some(partner_user_id) if errors.is_empty() => Ok(Self { partner_user_id }),
            _ => Err(errors),
        }
    }

    pub fn echoes(&self) -> Vec<&str> {
        vec![self.partner_user_id.as_str()]
    }
}

const KNOWN: &[&str] =
    &["PartnerUserID", "UserAddress", "UserPW", "UserFirst", "UserLast", "UserEmail", "UserRole", "AudioProvider"];

/// The `validate_user` hook without an account: the documented default rules.
pub fn validate(user: &UserFields) -> Vec<FieldError> {
    validate_with(user, &Rules::default())
}

pub fn validate_with(user: &UserFields, rules: &Rules) -> Vec<FieldError> {
    NewUser::parse(user, rules).err().unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::contract::VendorKey;

    pub(crate) fn user(pairs: &[(&'static str, FieldValue)]) -> UserFields {
        UserFields::new(VendorKey::Glance, pairs.iter().cloned().collect::<BTreeMap<_, _>>())
    }

    fn t(s: &str) -> FieldValue {
        FieldValue::Text(s.to_owned())
    }

    fn base() -> Vec<(&'static str, FieldValue)> {
        vec![("PartnerUserID", t("EMP-000731")), ("UserAddress", t("jdoe.acme.glance.net"))]
    }

    fn errors_with(extra: (&'static str, FieldValue)) -> Vec<FieldError> {
        let mut pairs = base();
        pairs.retain(|(k, _)| *k != extra.0);
        pairs.push(extra);
        validate(&user(&pairs))
    }

    fn accepted(extra: (&'static str, FieldValue)) {
        let errs = errors_with(extra.clone());
        assert!(errs.is_empty(), "{} should be accepted: {errs:?}", extra.0);
    }

    fn refused(extra: (&'static str, FieldValue)) -> String {
        let name = extra.0;
        let errs = errors_with(extra);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, format!("user.{name}"));
        errs[0].message.clone()
    }

    fn suffixes() -> Vec<String> {
        vec![DEFAULT_ADDRESS_SUFFIX.to_owned()]
    }

    #[test]
    fn the_design_example_is_valid() {
        let mut pairs = base();
        pairs.extend([
            ("UserFirst", t("Jane")),
            ("UserLast", t("Doe")),
            ("UserEmail", t("jane.doe@acme.example")),
            ("UserRole", t("Support Tier 1")),
        ]);
        assert_eq!(validate(&user(&pairs)), vec![]);
    }

    #[test]
    fn required_fields() {
        let errs = validate(&user(&[]));
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["user.PartnerUserID", "user.UserAddress"]);
        assert!(refused(("PartnerUserID", t("  "))).contains("required"));
        assert!(refused(("UserAddress", t(""))).contains("required"));
    }

    #[test]
    fn partner_user_id_rules() {
        accepted(("PartnerUserID", t(&"x".repeat(255))));
        assert!(refused(("PartnerUserID", t(&"x".repeat(256)))).contains("at most 255"));
        accepted(("PartnerUserID", t("jdoe.acme.glance.net")));
        assert!(refused(("PartnerUserID", t("Sales*"))).contains("wildcard"));
        assert!(refused(("PartnerUserID", t("*34"))).contains("wildcard"));
        accepted(("PartnerUserID", t("a*b")));
        assert!(refused(("PartnerUserID", t("-none-"))).contains("-none-"));
    }

    #[test]
    fn address_characters() {
        accepted(("UserAddress", t("agent-0042.ri.example.glance.net")));
        assert!(refused(("UserAddress", t("j_doe.acme.glance.net"))).contains("'_'"));
        assert!(refused(("UserAddress", t("jdoe@acme.glance.net"))).contains("'@'"));
        assert!(refused(("UserAddress", t("jdöe.acme.glance.net"))).contains("ASCII"));
    }

    #[test]
    fn address_ends() {
        assert!(refused(("UserAddress", t(".jdoe.glance.net"))).contains("start or end"));
        assert!(refused(("UserAddress", t("-jdoe.glance.net"))).contains("start or end"));
        assert!(refused(("UserAddress", t("jdoe.glance.net."))).contains("start or end"));
        assert!(refused(("UserAddress", t("jdoe-.glance.net"))).contains("ending in"));
        assert!(refused(("UserAddress", t("jdoe..acme.glance.net"))).contains(".."));
    }

    #[test]
    fn address_suffix() {
        accepted(("UserAddress", t("x.glance.net")));
        assert!(refused(("UserAddress", t("glance.net"))).contains(".glance.net"));
        assert!(refused(("UserAddress", t("jdoe.acme.example"))).contains(".glance.net"));
        assert!(refused(("UserAddress", t("jdoe.glance.net.evil"))).contains(".glance.net"));
        let custom = Rules { address_suffixes: vec![".glance.net".into(), ".partner.com".into()], ..Rules::default() };
        let u = user(&[("PartnerUserID", t("1")), ("UserAddress", t("xyz.partner.com"))]);
        assert_eq!(validate_with(&u, &custom), vec![]);
        assert_eq!(validate(&u)[0].field, "user.UserAddress");
    }

    #[test]
    fn address_length_and_case() {
        let ok = format!("{}.glance.net", "a".repeat(127 - 11));
        accepted(("UserAddress", t(&ok)));
        let long = format!("{}.glance.net", "a".repeat(128 - 11));
        assert!(refused(("UserAddress", t(&long))).contains("at most 127"));
        let a = GlanceAddress::parse("JDoe.ACME.Glance.NET", &suffixes()).unwrap();
        assert_eq!(a.as_str(), "jdoe.acme.glance.net");
    }

    #[test]
    fn names_and_email_lengths() {
        for name in ["UserFirst", "UserLast"] {
            accepted((name, t(&"é".repeat(49))));
            assert!(refused((name, t(&"a".repeat(50)))).contains("at most 49"));
        }
        accepted(("UserEmail", t(&"e".repeat(127))));
        assert!(refused(("UserEmail", t(&"e".repeat(128)))).contains("at most 127"));
    }

    #[test]
    fn role_length_is_31_unless_the_account_allows_70() {
        accepted(("UserRole", t(&"r".repeat(31))));
        accepted(("UserRole", t("-none-")));
        accepted(("UserRole", t("")));
        assert!(refused(("UserRole", t(&"r".repeat(32)))).contains("at most 31"));
        let newer = Rules { user_role_max: USER_ROLE_MAX_NEWER_DOCS, ..Rules::default() };
        let u =
            user(&[("PartnerUserID", t("1")), ("UserAddress", t("a.glance.net")), ("UserRole", t(&"r".repeat(70)))]);
        assert_eq!(validate_with(&u, &newer), vec![]);
        let u =
            user(&[("PartnerUserID", t("1")), ("UserAddress", t("a.glance.net")), ("UserRole", t(&"r".repeat(71)))]);
        assert_eq!(validate_with(&u, &newer).len(), 1);
        assert!(UserRole::parse("-NONE-", 31).unwrap().is_none());
        assert!(!UserRole::parse("Sales", 31).unwrap().is_none());
    }

    #[test]
    fn password_length_never_echoed() {
        accepted(("UserPW", t("eight888")));
        accepted(("UserPW", t("abc")));
        accepted(("UserPW", t(&"p".repeat(49))));
        let msg = refused(("UserPW", t(&"Secret9".repeat(8))));
        assert!(msg.contains("at most 49") && !msg.contains("Secret9"), "{msg}");
        let strict = Rules { user_pw_min: USER_PW_MIN_OLDER_DOC, ..Rules::default() };
        let u = user(&[("PartnerUserID", t("1")), ("UserAddress", t("a.glance.net")), ("UserPW", t("short77"))]);
        let errs = validate_with(&u, &strict);
        assert!(errs[0].message.contains("at least 8") && !errs[0].message.contains("short77"), "{errs:?}");
        assert_eq!(validate(&u), vec![], "no minimum by default");
        assert!(!format!("{:?}", UserPw::parse("hunter2hunter2", 8).unwrap()).contains("hunter2"));
    }

    #[test]
    fn audio_provider_enum() {
        accepted(("AudioProvider", FieldValue::Integer(1)));
        accepted(("AudioProvider", FieldValue::Integer(666)));
        assert!(refused(("AudioProvider", FieldValue::Integer(2))).contains("1 (Glance"));
        assert!(refused(("AudioProvider", t("1"))).contains("integer"));
    }

    #[test]
    fn wrong_kinds_are_named() {
        assert!(refused(("UserFirst", FieldValue::Integer(3))).contains("string"));
    }

    #[test]
    fn a_change_names_the_user_and_at_least_one_field_update_user_takes() {
        let c = UserChange::parse(&user(&[("PartnerUserID", t("EMP-1")), ("UserLast", t("Smith"))]), &Rules::default())
            .unwrap();
        assert_eq!((c.partner_user_id.as_str(), c.last.as_ref().map(PersonName::as_str)), ("EMP-1", Some("Smith")));
        assert!(c.address.is_none() && c.first.is_none() && c.suspended.is_none());
        assert_eq!(c.echoes(), ["EMP-1", "Smith"]);
        let fields = |pairs: &[(&'static str, FieldValue)]| {
            let errs = UserChange::parse(&user(pairs), &Rules::default()).unwrap_err();
            errs.into_iter().map(|e| e.field).collect::<Vec<_>>()
        };
        assert_eq!(fields(&[("PartnerUserID", t("EMP-1"))]), ["user"]);
        assert_eq!(fields(&[("UserLast", t("Smith"))]), ["user.PartnerUserID"]);
        assert_eq!(
            fields(&[("PartnerUserID", t("EMP-1")), ("AudioProvider", FieldValue::Integer(1))]),
            ["user.AudioProvider"]
        );
        assert_eq!(
            fields(&[("PartnerUserID", t("EMP-1")), ("UserAddress", t("a..b.glance.net"))]),
            ["user.UserAddress"]
        );
        assert_eq!(fields(&[("PartnerUserID", t("EMP*")), ("UserFirst", t("Jo"))]), ["user.PartnerUserID"]);
        let custom = Rules { address_suffixes: vec![".partner.com".into()], ..Rules::default() };
        let moved = user(&[("PartnerUserID", t("EMP-1")), ("UserAddress", t("Jo.Partner.com"))]);
        assert_eq!(UserChange::parse(&moved, &custom).unwrap().address.unwrap().as_str(), "jo.partner.com");
        let pw = user(&[("PartnerUserID", t("EMP-1")), ("UserPW", t("n3w-secret"))]);
        assert!(!format!("{:?}", UserChange::parse(&pw, &Rules::default()).unwrap()).contains("n3w-secret"));
    }

    #[test]
    fn a_reference_is_the_partner_user_id_alone() {
        let r = UserRef::parse(&user(&[("PartnerUserID", t("EMP-1"))])).unwrap();
        assert_eq!(r.partner_user_id.as_str(), "EMP-1");
        let s = UserChange::suspension(&r, true);
        assert_eq!((s.suspended, s.partner_user_id.as_str()), (Some(true), "EMP-1"));
        assert!(s.password.is_none() && s.role.is_none() && s.address.is_none());
        let errs = UserRef::parse(&user(&[("PartnerUserID", t("EMP-1")), ("UserFirst", t("Jo"))])).unwrap_err();
        assert_eq!(errs[0].field, "user.UserFirst");
        assert_eq!(UserRef::parse(&user(&[])).unwrap_err()[0].field, "user.PartnerUserID");
        assert!(UserRef::parse(&user(&[("PartnerUserID", t("-none-"))])).is_err());
    }

    fn valid_address() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?(\\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?){0,4}"
            .prop_map(|p| format!("{p}.glance.net"))
    }

    #[test]
    fn free_text_refuses_control_and_bidi_override_characters() {
        for bad in ["Jane\0", "Jane\r\nX: 1", "\u{202e}enaJ", "\u{1b}[2J"] {
            assert!(PersonName::parse(bad).unwrap_err().contains("control"), "{bad:?}");
            assert!(Email::parse(bad).is_err(), "{bad:?}");
            assert!(UserRole::parse(bad, 31).is_err(), "{bad:?}");
        }
        assert!(PersonName::parse("Zoë-Ann O'Neil").is_ok());
    }

    proptest! {
        #[test]
        fn accepted_addresses_reparse_to_themselves(raw in valid_address()) {
            let a = GlanceAddress::parse(&raw, &suffixes()).unwrap();
            prop_assert_eq!(a.as_str(), raw.to_ascii_lowercase());
            let again = GlanceAddress::parse(a.as_str(), &suffixes()).unwrap();
            prop_assert_eq!(again, a);
        }

        #[test]
        fn anything_parse_accepts_follows_the_documented_rules(raw in "\\PC{0,140}") {
            if let Ok(a) = GlanceAddress::parse(&raw, &suffixes()) {
                let s = a.as_str();
                prop_assert!(s.len() <= 127 && s.ends_with(".glance.net") && !s.contains(".."));
                prop_assert!(s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-'));
                prop_assert!(!s.starts_with(['.', '-']));
            }
        }

        #[test]
        fn addresses_with_a_forbidden_character_are_refused(
            prefix in "[a-z0-9]{1,10}", bad in "[^a-zA-Z0-9.-]", rest in "[a-z0-9]{1,10}"
        ) {
            let raw = format!("{prefix}{bad}{rest}.glance.net");
            prop_assert!(GlanceAddress::parse(&raw, &suffixes()).is_err());
        }

        #[test]
        fn addresses_with_double_dots_are_refused(a in "[a-z0-9]{1,10}", b in "[a-z0-9]{1,10}") {
            let raw = format!("{a}..{b}.glance.net");
            prop_assert!(GlanceAddress::parse(&raw, &suffixes()).is_err());
        }

        #[test]
        fn partner_user_ids_round_trip_and_respect_the_limit(raw in "\\PC{0,300}") {
            match PartnerUserId::parse(&raw) {
                Ok(id) => {
                    prop_assert_eq!(id.as_str(), raw.as_str());
                    prop_assert!(raw.chars().count() <= 255 && !raw.trim().is_empty());
                    prop_assert!(PartnerUserId::parse(id.as_str()).is_ok());
                }
                Err(_) => prop_assert!(
                    raw.chars().count() > 255 || raw.trim().is_empty() || raw.starts_with('*')
                        || raw.ends_with('*') || raw.eq_ignore_ascii_case("-none-")
                ),
            }
        }

        #[test]
        fn bounded_texts_accept_exactly_up_to_their_limit(raw in "\\PC{0,140}") {
            prop_assert_eq!(PersonName::parse(&raw).is_ok(), raw.chars().count() <= 49);
            prop_assert_eq!(Email::parse(&raw).is_ok(), raw.chars().count() <= 127);
            prop_assert_eq!(UserRole::parse(&raw, 31).is_ok(), raw.chars().count() <= 31);
            let n = raw.chars().count();
            prop_assert_eq!(UserPw::parse(&raw, 8).is_ok(), (8..=49).contains(&n));
        }
    }
}
