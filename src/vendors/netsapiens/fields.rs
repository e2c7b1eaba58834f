//! NetSapiens create-user field rules as types: a job's `user` becomes a [`NewUser`] only if every value is one the vendor documents as acceptable.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use crate::contract::{FieldError, FieldValue, UserFields};

/// The extension is addressed as the path parameter `/users/{user}`, documented as at most
/// 16 characters; a longer one could be created but never read back or reconciled.
pub const MAX_EXTENSION_LEN: usize = 16;
/// The documented length limit of the path parameter `domain`.
pub const MAX_DOMAIN_LEN: usize = 64;

fn has_control(s: &str) -> bool {
    crate::contract::unsafe_char(s).is_some()
}

/// The extension (`user`): 1–16 ASCII digits, unique within the domain.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Extension(String);

impl Extension {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > MAX_EXTENSION_LEN || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "must be 1 to {MAX_EXTENSION_LEN} digits (the extension, e.g. \"1042\"), so it stays addressable as /users/{{user}}"
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The tenant a user is created in: the path parameter `domain`, 1–64 of `[A-Za-z0-9._-]`.
///
/// `~` ("the domain bound to my key") is documented for reads only; a worker serving several
/// tenants must name the real one, so it is refused. Dot-only names are refused because URL
/// normalisation would turn `/domains/../users` into a different path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw == "~" {
            return Err("must name the real domain; `~` (the key's own domain) is only meant for reads".into());
        }
        let charset_ok = raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if raw.is_empty() || raw.len() > MAX_DOMAIN_LEN || !charset_ok || raw.bytes().all(|b| b == b'.') {
            return Err(format!(
                "must be 1 to {MAX_DOMAIN_LEN} characters of letters, digits, '.', '_' and '-' (e.g. \"acme.example\")"
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A first or last name: required, so it must carry at least one visible character.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.trim().is_empty() || has_control(raw) {
            return Err("must be a non-empty name without control characters".into());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free text the vendor stores as given (department, site, status message, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreeText(String);

impl FreeText {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if has_control(raw) {
            return Err("must be text without control characters".into());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name or id of something that must already exist at the vendor (dial plan, dial
/// policy, emergency address): an empty value can never name one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingName(String);

impl ExistingName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.trim().is_empty() || has_control(raw) {
            return Err("must name an existing object: non-empty, without control characters".into());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `login-username`: unique on the whole platform; a login name cannot hold blanks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginUsername(String);

impl LoginUsername {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must be a non-empty login name without spaces (default is <user>@<domain>)".into());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The e-mail field: one address or several separated by `;`. Sent re-joined without blanks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailList(Vec<String>);

impl EmailList {
    pub fn parse(raw: &str) -> Result<Self, String> {
        const RULE: &str = "must be one e-mail address (name@example.com) or several separated by ';'";
        let mut out = Vec::new();
        for part in raw.split(';') {
            let addr = part.trim();
            if !is_email(addr) {
                return Err(RULE.into());
            }
            out.push(addr.to_owned());
        }
        Ok(Self(out))
    }

    pub fn addresses(&self) -> &[String] {
        &self.0
    }

    pub fn to_wire(&self) -> String {
        self.0.join(";")
    }

    /// Whether another list names the same mailboxes; domains are case-insensitive and
    /// providers are known to lower-case whole addresses.
    pub fn same_as(&self, other: &str) -> bool {
        let norm = |s: &str| s.split(';').map(|a| a.trim().to_ascii_lowercase()).filter(|a| !a.is_empty()).collect();
        let mine: std::collections::BTreeSet<String> = norm(&self.to_wire());
        let theirs: std::collections::BTreeSet<String> = norm(other);
        mine == theirs
    }
}

fn is_email(addr: &str) -> bool {
    let Some((local, domain)) = addr.split_once('@') else { return false };
    let bad_char = |c: char| c.is_whitespace() || c.is_control() || matches!(c, '@' | ',' | ';' | '<' | '>');
    !local.is_empty()
        && local.len() <= 64
        && addr.len() <= 254
        && !local.chars().any(bad_char)
        && !domain.chars().any(bad_char)
        && domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty())
}

/// One documented string enum, spelled exactly as the vendor spells it (case- and
/// space-sensitive).
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            pub fn parse(raw: &str) -> Result<Self, String> {
                Self::ALL.iter().copied().find(|v| v.as_str() == raw).ok_or_else(|| {
                    let allowed: Vec<String> = Self::ALL.iter().map(|v| format!("\"{}\"", v.as_str())).collect();
                    format!("must be {} exactly: one of {}", $what, allowed.join(", "))
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// `user-scope`: the new user's permission level.
    UserScope, "a user scope", {
        BasicUser => "Basic User",
        SimpleUser => "Simple User",
        AdvancedUser => "Advanced User",
        CallCenterAgent => "Call Center Agent",
        SiteManager => "Site Manager",
        CallCenterSupervisor => "Call Center Supervisor",
        OfficeManager => "Office Manager",
        Reseller => "Reseller",
        SuperUser => "Super User",
        Ndp => "NDP",
        NoPortal => "No Portal",
    }
);

string_enum!(
    /// The API's booleans: the strings `yes` and `no`, never JSON booleans.
    YesNo, "\"yes\" or \"no\"", { Yes => "yes", No => "no" }
);

string_enum!(
    /// `email-send-alert-new-voicemail-behavior`.
    VoicemailAlertBehavior, "a voicemail alert behaviour", {
        No => "no",
        Yes => "yes",
        AttNew => "attnew",
        AttSave => "attsave",
        AttTrash => "atttrash",
        Brief => "brief",
        BriefAttNew => "briefattnew",
        BriefAttSave => "briefattsave",
        BriefAttTrash => "briefatttrash",
    }
);

string_enum!(
    /// `voicemail-transcription-enabled`: despite its name, a vendor choice.
    Transcription, "a transcription setting (case as shown)", {
        No => "no",
        Deepgram => "Deepgram",
        Google => "Google",
        Mutare => "Mutare",
        Voicebase => "Voicebase",
    }
);

string_enum!(
    /// `recording-configuration`.
    RecordingConfiguration, "a recording configuration", {
        Yes => "yes",
        YesWithTranscription => "yes-with-transcription",
        YesWithTranscriptionAndSentiment => "yes-with-transcription-and-sentiment",
        No => "no",
    }
);

/// `time-zone`: one of the 221 names the vendor's schema enumerates. Legacy aliases are in
/// the list and some canonical names are not (`Asia/Kolkata` must be sent as
/// `Asia/Calcutta`), so the list is the rule, not the IANA database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeZone(&'static str);

impl TimeZone {
    pub fn parse(raw: &str) -> Result<Self, String> {
        TIME_ZONES.iter().find(|tz| **tz == raw).map(|tz| Self(tz)).ok_or_else(|| {
            "must be one of the vendor's 221 time-zone names, e.g. \"America/New_York\" or \"US/Eastern\" \
             (legacy aliases: \"Asia/Calcutta\" for Asia/Kolkata, \"America/Buenos_Aires\", \"Europe/Kiev\")"
                .to_owned()
        })
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

/// `voicemail-login-pin`: digits only, and a secret: it is never printed, and error
/// messages about it never repeat it.
#[derive(Clone)]
pub struct VoicemailPin(SecretString);

impl VoicemailPin {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must be a string of digits (the voicemail PIN)".into());
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for VoicemailPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VoicemailPin(***)")
    }
}

impl PartialEq for VoicemailPin {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

/// An integer inside a documented inclusive range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounded(i64);

impl Bounded {
    pub fn parse(raw: i64, min: i64, max: i64) -> Result<Self, String> {
        if raw < min || raw > max {
            return Err(if max == i64::MAX {
                format!("must be an integer of at least {min}")
            } else {
                format!("must be an integer from {min} to {max}")
            });
        }
        Ok(Self(raw))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// `language-token`: a locale token such as `en_US` or `es_MX`. No list is published, so the
/// shape is the rule: a 2–3 letter lower-case language, `_`, a 2 letter upper-case region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LanguageToken(String);

impl LanguageToken {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = raw.split_once('_').is_some_and(|(lang, region)| {
            (2..=3).contains(&lang.len())
                && lang.bytes().all(|b| b.is_ascii_lowercase())
                && region.len() == 2
                && region.bytes().all(|b| b.is_ascii_uppercase())
        });
        if !ok {
            return Err("must be a locale token like \"en_US\", \"es_MX\" or \"en_UK\"".into());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `email-send-alert-new-voicemail-cc-list-csv`: extensions separated by commas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionList(Vec<Extension>);

impl ExtensionList {
    pub fn parse(raw: &str) -> Result<Self, String> {
        raw.split(',')
            .map(|p| Extension::parse(p.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
            .map_err(|_| "must be extensions separated by commas, e.g. \"1001,1002\"".to_owned())
    }

    pub fn to_wire(&self) -> String {
        self.0.iter().map(Extension::as_str).collect::<Vec<_>>().join(",")
    }
}

/// A caller-id number: digits (an optional leading `+`, at most 15 digits as in E.164), or
/// the literal `[*]` the vendor's examples show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let digits = raw.strip_prefix('+').unwrap_or(raw);
        let ok =
            raw == "[*]" || (!digits.is_empty() && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return Err(
                "must be a phone number of 1 to 15 digits (optionally with a leading '+'), e.g. \"18585551234\"".into(),
            );
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The documented time-zone enum, in the vendor's order.
pub const TIME_ZONES: [&str; 221] = [
    "US/Alaska",
    "US/Central",
    "US/Eastern",
    "US/Hawaii",
    "US/Mountain",
    "US/Pacific",
    "Africa/Addis_Ababa",
    "Africa/Algiers",
    "Africa/Brazzaville",
    "Africa/Cairo",
    "Africa/Casablanca",
    "Africa/Dakar",
    "Africa/Dar_es_Salaam",
    "Africa/Djibouti",
    "Africa/Johannesburg",
    "Africa/Khartoum",
    "Africa/Kigali",
    "Africa/Kinshasa",
    "Africa/Lagos",
    "Africa/Nairobi",
    "Africa/Timbuktu",
    "Africa/Tripoli",
    "Africa/Tunis",
    "America/Antigua",
    "America/Aruba",
    "America/Belize",
    "America/Bogota",
    "America/Buenos_Aires",
    "America/Cancun",
    "America/Caracas",
    "America/Cayman",
    "America/Chihuahua",
    "America/Costa_Rica",
    "America/Denver",
    "America/Detroit",
    "America/Edmonton",
    "America/El_Salvador",
    "America/Ensenada",
    "America/Grenada",
    "America/Guadeloupe",
    "America/Guatemala",
    "America/Havana",
    "America/Indianapolis",
    "America/Jamaica",
    "America/Juneau",
    "America/La_Paz",
    "America/Lima",
    "America/Los_Angeles",
    "America/Louisville",
    "America/Martinique",
    "America/Mazatlan",
    "America/Mendoza",
    "America/Menominee",
    "America/Merida",
    "America/Mexico_City",
    "America/Miquelon",
    "America/Moncton",
    "America/Monterrey",
    "America/Montevideo",
    "America/Montreal",
    "America/Montserrat",
    "America/Nassau",
    "America/New_York",
    "America/Panama",
    "America/Phoenix",
    "America/Port-au-Prince",
    "America/Port_of_Spain",
    "America/Regina",
    "America/Santiago",
    "America/Santo_Domingo",
    "America/Sao_Paulo",
    "America/Thule",
    "America/Thunder_Bay",
    "America/Tijuana",
    "America/Toronto",
    "America/Vancouver",
    "America/Winnipeg",
    "America/Yellowknife",
    "Antarctica/South_Pole",
    "Arctic/Longyearbyen",
    "Asia/Amman",
    "Asia/Baghdad",
    "Asia/Bahrain",
    "Asia/Bangkok",
    "Asia/Beirut",
    "Asia/Brunei",
    "Asia/Calcutta",
    "Asia/Colombo",
    "Asia/Dacca",
    "Asia/Damascus",
    "Asia/Dhaka",
    "Asia/Dubai",
    "Asia/Gaza",
    "Asia/Hong_Kong",
    "Asia/Istanbul",
    "Asia/Jakarta",
    "Asia/Jerusalem",
    "Asia/Kabul",
    "Asia/Katmandu",
    "Asia/Kuala_Lumpur",
    "Asia/Kuching",
    "Asia/Kuwait",
    "Asia/Macau",
    "Asia/Manila",
    "Asia/Muscat",
    "Asia/Phnom_Penh",
    "Asia/Rangoon",
    "Asia/Riyadh",
    "Asia/Saigon",
    "Asia/Seoul",
    "Asia/Shanghai",
    "Asia/Singapore",
    "Asia/Taipei",
    "Asia/Tehran",
    "Asia/Tel_Aviv",
    "Asia/Thimphu",
    "Asia/Tokyo",
    "Asia/Ulan_Bator",
    "Asia/Vientiane",
    "Asia/Vladivostok",
    "Atlantic/Azores",
    "Atlantic/Bermuda",
    "Atlantic/Canary",
    "Atlantic/Cape_Verde",
    "Atlantic/Faeroe",
    "Atlantic/Reykjavik",
    "Australia/ACT",
    "Australia/Adelaide",
    "Australia/Brisbane",
    "Australia/Canberra",
    "Australia/Darwin",
    "Australia/LHI",
    "Australia/Melbourne",
    "Australia/North",
    "Australia/NSW",
    "Australia/Perth",
    "Australia/Queensland",
    "Australia/South",
    "Australia/Sydney",
    "Australia/Tasmania",
    "Australia/Victoria",
    "Australia/West",
    "Canada/Atlantic",
    "Canada/Central",
    "Canada/Eastern",
    "Canada/Mountain",
    "Canada/Newfoundland",
    "Canada/Pacific",
    "Canada/Saskatchewan",
    "Canada/Yukon",
    "Cuba",
    "Greenwich",
    "Etc/GMT",
    "Etc/GMT+1",
    "Etc/GMT+10",
    "Etc/GMT+11",
    "Etc/GMT+12",
    "Etc/GMT+2",
    "Etc/GMT+3",
    "Etc/GMT+4",
    "Etc/GMT+5",
    "Etc/GMT+6",
    "Etc/GMT+7",
    "Etc/GMT+8",
    "Etc/GMT+9",
    "Etc/GMT-1",
    "Etc/GMT-10",
    "Etc/GMT-11",
    "Etc/GMT-12",
    "Etc/GMT-13",
    "Etc/GMT-14",
    "Etc/GMT-2",
    "Etc/GMT-3",
    "Etc/GMT-4",
    "Etc/GMT-5",
    "Etc/GMT-6",
    "Etc/GMT-7",
    "Etc/GMT-8",
    "Etc/GMT-9",
    "Etc/Greenwich",
    "Europe/Amsterdam",
    "Europe/Athens",
    "Europe/Belfast",
    "Europe/Belgrade",
    "Europe/Berlin",
    "Europe/Brussels",
    "Europe/Bucharest",
    "Europe/Budapest",
    "Europe/Copenhagen",
    "Europe/Dublin",
    "Europe/Helsinki",
    "Europe/Istanbul",
    "Europe/Kiev",
    "Europe/Lisbon",
    "Europe/Ljubljana",
    "Europe/London",
    "Europe/Madrid",
    "Europe/Malta",
    "Europe/Monaco",
    "Europe/Moscow",
    "Europe/Oslo",
    "Europe/Paris",
    "Europe/Prague",
    "Europe/Rome",
    "Europe/Sofia",
    "Europe/Stockholm",
    "Europe/Vienna",
    "Europe/Warsaw",
    "Europe/Zurich",
    "Pacific/Auckland",
    "Pacific/Easter",
    "Pacific/Fiji",
    "Pacific/Galapagos",
    "Pacific/Gambier",
    "Pacific/Guam",
    "Pacific/Honolulu",
    "Pacific/Marquesas",
    "Pacific/Midway",
    "Pacific/Palau",
    "Pacific/Rarotonga",
    "Pacific/Tahiti",
];

/// Which wire name carries the e-mail field. Spec snapshots disagree (`email` in the current
/// one, `email-address` in earlier ones and in every example), so it is per account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EmailField {
    #[default]
    Email,
    EmailAddress,
}

impl EmailField {
    pub const NAMES: [&'static str; 2] = ["email", "email-address"];

    pub fn as_str(self) -> &'static str {
        match self {
            EmailField::Email => "email",
            EmailField::EmailAddress => "email-address",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "email" => Some(EmailField::Email),
            "email-address" => Some(EmailField::EmailAddress),
            _ => None,
        }
    }
}

/// A validated optional field value, ready for the wire.
#[derive(Clone, Debug, PartialEq)]
pub enum Wire {
    Text(FreeText),
    Existing(ExistingName),
    YesNo(YesNo),
    Int(Bounded),
    TimeZone(TimeZone),
    Pin(VoicemailPin),
    Language(LanguageToken),
    Extensions(ExtensionList),
    Behavior(VoicemailAlertBehavior),
    Transcription(Transcription),
    Recording(RecordingConfiguration),
    Phone(PhoneNumber),
    /// The fields a create requires; an update may change them like any other.
    Name(PersonName),
    Login(LoginUsername),
    Email(EmailList),
    Scope(UserScope),
}

impl Wire {
    /// The JSON the vendor expects. Exposes the PIN: only the request builder calls it.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Wire::Text(v) => Value::from(v.as_str()),
            Wire::Existing(v) => Value::from(v.as_str()),
            Wire::YesNo(v) => Value::from(v.as_str()),
            Wire::Int(v) => Value::from(v.get()),
            Wire::TimeZone(v) => Value::from(v.as_str()),
            Wire::Pin(v) => Value::from(v.expose()),
            Wire::Language(v) => Value::from(v.as_str()),
            Wire::Extensions(v) => Value::from(v.to_wire()),
            Wire::Behavior(v) => Value::from(v.as_str()),
            Wire::Transcription(v) => Value::from(v.as_str()),
            Wire::Recording(v) => Value::from(v.as_str()),
            Wire::Phone(v) => Value::from(v.as_str()),
            Wire::Name(v) => Value::from(v.as_str()),
            Wire::Login(v) => Value::from(v.as_str()),
            Wire::Email(v) => Value::from(v.to_wire()),
            Wire::Scope(v) => Value::from(v.as_str()),
        }
    }

    pub fn is_secret(&self) -> bool {
        matches!(self, Wire::Pin(_))
    }

    /// Whether a value the vendor shows for this field is this one, as the vendor would
    /// compare it: numbers may come back as strings (and the reverse), e-mail and extension
    /// lists compare as sets, login names and yes/no ignore case, surrounding blanks are
    /// not kept. A secret never compares equal: the vendor does not show it, so a change to
    /// it is always sent.
    pub fn same_as(&self, shown: &serde_json::Value) -> bool {
        use serde_json::Value;
        let shown = match shown {
            Value::String(s) => s.trim().to_owned(),
            Value::Number(n) => n.to_string(),
            _ => return false,
        };
        let exact = |want: &str| shown == want.trim();
        match self {
            Wire::Pin(_) => false,
            Wire::Int(v) => shown.parse::<i64>().is_ok_and(|n| n == v.get()),
            Wire::Email(v) => v.same_as(&shown),
            Wire::Extensions(v) => {
                let set = |s: &str| -> std::collections::BTreeSet<String> {
                    s.split(',').map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).collect()
                };
                set(&shown) == set(&v.to_wire())
            }
            Wire::Login(v) => shown.eq_ignore_ascii_case(v.as_str()),
            Wire::YesNo(v) => shown.eq_ignore_ascii_case(v.as_str()),
            Wire::Text(v) => exact(v.as_str()),
            Wire::Existing(v) => exact(v.as_str()),
            Wire::Name(v) => exact(v.as_str()),
            Wire::TimeZone(v) => exact(v.as_str()),
            Wire::Language(v) => exact(v.as_str()),
            Wire::Behavior(v) => exact(v.as_str()),
            Wire::Transcription(v) => exact(v.as_str()),
            Wire::Recording(v) => exact(v.as_str()),
            Wire::Phone(v) => exact(v.as_str()),
            Wire::Scope(v) => exact(v.as_str()),
        }
    }
}

/// The rule each documented field follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rule {
    Extension,
    Name,
    Login,
    Email,
    Scope,
    Text,
    Existing,
    YesNo,
    Range(i64, i64),
    TimeZone,
    Pin,
    Language,
    Extensions,
    Behavior,
    Transcription,
    Recording,
    Phone,
}

const UNBOUNDED: i64 = i64::MAX;

pub(super) fn rule(name: &str) -> Option<Rule> {
    Some(match name {
        "user" => Rule::Extension,
        "name-first-name" | "name-last-name" => Rule::Name,
        "login-username" => Rule::Login,
        "email" | "email-address" => Rule::Email,
        "user-scope" => Rule::Scope,
        "department" | "site" | "status-message" | "service-code" => Rule::Text,
        // Providers often cut caller-id names at 15 characters (unconfirmed): that is their
        // truncation, not a refusal, so any length is accepted.
        "caller-id-name" => Rule::Text,
        "dial-plan" | "dial-policy" | "emergency-address-id" => Rule::Existing,
        "privacy"
        | "voicemail-user-control-enabled"
        | "phone-numbers-to-allow-enabled"
        | "phone-numbers-to-reject-enabled"
        | "call-screening-enabled"
        | "directory-announce-in-dial-by-name-enabled"
        | "voicemail-enabled"
        | "voicemail-receive-broadcast-enabled"
        | "reject-anonymous-calls-enabled"
        | "voicemail-playback-announce-datetime-received"
        | "voicemail-playback-announce-caller-id"
        | "voicemail-playback-sort-newest-to-oldest"
        | "email-send-alert-new-voicemail-enabled"
        | "email-send-alert-new-missed-call-enabled"
        | "email-send-alert-data-storage-limit-reached-enabled"
        | "directory-name-visible-in-list-enabled"
        | "call-recordings-hide-from-others-enabled"
        | "music-on-hold-randomized-enabled" => Rule::YesNo,
        "directory-name-number-dtmf-mapping" | "area-code" => Rule::Range(100, 999),
        "ring-no-answer-timeout-seconds"
        | "limits-max-active-calls-total"
        | "music-on-hold-comfort-message-repeat-interval-seconds" => Rule::Range(0, 3600),
        "directory-override-order-duplicate-dtmf-mapping" => Rule::Range(0, 100),
        "limits-max-data-storage-kilobytes" | "voicemail-greeting-index" => Rule::Range(0, UNBOUNDED),
        "time-zone" => Rule::TimeZone,
        "voicemail-login-pin" => Rule::Pin,
        "language-token" => Rule::Language,
        "email-send-alert-new-voicemail-cc-list-csv" => Rule::Extensions,
        "email-send-alert-new-voicemail-behavior" => Rule::Behavior,
        "voicemail-transcription-enabled" => Rule::Transcription,
        "recording-configuration" => Rule::Recording,
        "caller-id-number" | "caller-id-number-emergency" => Rule::Phone,
        _ => return None,
    })
}

fn text(value: &FieldValue) -> Result<&str, String> {
    match value {
        FieldValue::Text(s) => Ok(s),
        FieldValue::Integer(_) => Err("must be a string".into()),
    }
}

fn parse_optional(rule: Rule, value: &FieldValue) -> Result<Wire, String> {
    Ok(match rule {
        Rule::Text => Wire::Text(FreeText::parse(text(value)?)?),
        Rule::Existing => Wire::Existing(ExistingName::parse(text(value)?)?),
        Rule::YesNo => Wire::YesNo(YesNo::parse(text(value)?)?),
        Rule::Range(min, max) => match value {
            FieldValue::Integer(i) => Wire::Int(Bounded::parse(*i, min, max)?),
            FieldValue::Text(_) => return Err("must be an integer (a JSON number)".into()),
        },
        Rule::TimeZone => Wire::TimeZone(TimeZone::parse(text(value)?)?),
        Rule::Pin => Wire::Pin(VoicemailPin::parse(text(value)?)?),
        Rule::Language => Wire::Language(LanguageToken::parse(text(value)?)?),
        Rule::Extensions => Wire::Extensions(ExtensionList::parse(text(value)?)?),
        Rule::Behavior => Wire::Behavior(VoicemailAlertBehavior::parse(text(value)?)?),
        Rule::Transcription => Wire::Transcription(Transcription::parse(text(value)?)?),
        Rule::Recording => Wire::Recording(RecordingConfiguration::parse(text(value)?)?),
        // `caller-id-number-emergency` is documented as integer or string; both become digits.
        Rule::Phone => Wire::Phone(PhoneNumber::parse(&value.to_wire())?),
        Rule::Extension | Rule::Name | Rule::Login | Rule::Email | Rule::Scope => {
            unreachable!("identity fields are parsed by NewUser::parse")
        }
    })
}

/// A create-user request body the vendor will accept, minus the transport switches
/// (`synchronous`) and the choice of e-mail wire name, which belong to the account.
#[derive(Clone, Debug, PartialEq)]
pub struct NewUser {
    user: Extension,
    first_name: PersonName,
    last_name: PersonName,
    email: EmailList,
    scope: UserScope,
    login_username: Option<LoginUsername>,
    others: BTreeMap<&'static str, Wire>,
}

impl NewUser {
    /// Parses a job's `user` object, collecting every problem so the HR integrator can fix
    /// them all in one round. Field paths are `user.<wire name>`.
    pub fn parse(fields: &UserFields) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let path = |name: &str| format!("user.{name}");
        let mut required = |name: &'static str| {
            let v = fields.get(name);
            if v.is_none() {
                errors.push(FieldError::new(path(name), "is required"));
            }
            v
        };
        let user = required("user");
        let first = required("name-first-name");
        let last = required("name-last-name");
        let scope = required("user-scope");

        let user = user.and_then(|v| keep(&mut errors, "user", text(v).and_then(Extension::parse)));
        let first_name = first.and_then(|v| keep(&mut errors, "name-first-name", text(v).and_then(PersonName::parse)));
        let last_name = last.and_then(|v| keep(&mut errors, "name-last-name", text(v).and_then(PersonName::parse)));
        let scope = scope.and_then(|v| keep(&mut errors, "user-scope", text(v).and_then(UserScope::parse)));
        let login_username = fields
            .get("login-username")
            .and_then(|v| keep(&mut errors, "login-username", text(v).and_then(LoginUsername::parse)));

        let email = match (fields.get("email"), fields.get("email-address")) {
            (Some(v), None) => keep(&mut errors, "email", text(v).and_then(EmailList::parse)),
            (None, Some(v)) => keep(&mut errors, "email-address", text(v).and_then(EmailList::parse)),
            (None, None) => {
                errors.push(FieldError::new(
                    path("email"),
                    "is required (as `email` or `email-address`; the account decides which name is sent)",
                ));
                None
            }
            (Some(_), Some(_)) => {
                errors.push(FieldError::new(
                    path("email-address"),
                    "give the e-mail once, as either `email` or `email-address`, not both",
                ));
                None
            }
        };

        let mut others = BTreeMap::new();
        for (name, value) in fields.iter() {
            match rule(name) {
                None => errors.push(FieldError::new(path(name), "is not a documented NetSapiens create-user field")),
                Some(Rule::Extension | Rule::Name | Rule::Login | Rule::Email | Rule::Scope) => {}
                Some(r) => match parse_optional(r, value) {
                    Ok(w) => {
                        others.insert(name, w);
                    }
                    Err(m) => errors.push(FieldError::new(path(name), m)),
                },
            }
        }

        match (user, first_name, last_name, email, scope) {
            (Some(user), Some(first_name), Some(last_name), Some(email), Some(scope)) if errors.is_empty() => {
                Ok(Self { user, first_name, last_name, email, scope, login_username, others })
            }
            _ => Err(errors),
        }
    }

    pub fn user(&self) -> &Extension {
        &self.user
    }
    pub fn first_name(&self) -> &PersonName {
        &self.first_name
    }
    pub fn last_name(&self) -> &PersonName {
        &self.last_name
    }
    pub fn email(&self) -> &EmailList {
        &self.email
    }
    pub fn scope(&self) -> UserScope {
        self.scope
    }
    pub fn login_username(&self) -> Option<&LoginUsername> {
        self.login_username.as_ref()
    }
    /// The optional fields, by wire name, in a stable order.
    pub fn others(&self) -> impl Iterator<Item = (&'static str, &Wire)> {
        self.others.iter().map(|(k, v)| (*k, v))
    }
    /// Secret values, so the adapter can scrub any vendor text that echoes one.
    pub(crate) fn secrets(&self) -> Vec<&str> {
        self.others
            .values()
            .filter_map(|w| match w {
                Wire::Pin(p) => Some(p.expose()),
                _ => None,
            })
            .collect()
    }
}

/// The value of one field an update changes, by the create's rule for it.
fn parse_change(rule: Rule, value: &FieldValue) -> Result<Wire, String> {
    Ok(match rule {
        Rule::Name => Wire::Name(PersonName::parse(text(value)?)?),
        Rule::Login => Wire::Login(LoginUsername::parse(text(value)?)?),
        Rule::Email => Wire::Email(EmailList::parse(text(value)?)?),
        Rule::Scope => Wire::Scope(UserScope::parse(text(value)?)?),
        Rule::Extension => return Err("is the user's address and cannot be changed".into()),
        other => parse_optional(other, value)?,
    })
}

/// Changes to an existing user: documented fields by wire name, each parsed by the create's
/// rule for it, never the extension (the user's address). The e-mail is kept under `email`
/// whichever of its two names it came under; the request builder sends it under the
/// account's.
#[derive(Clone, Debug, PartialEq)]
pub struct Changes(BTreeMap<&'static str, Wire>);

impl Changes {
    /// The fields of `fields` other than `user`, collecting every problem. At least one is
    /// required: an update that changes nothing is a mistake in the job or the setting.
    pub fn parse(fields: &UserFields) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut out = BTreeMap::new();
        if fields.get("email").is_some() && fields.get("email-address").is_some() {
            errors.push(FieldError::new(
                "user.email-address",
                "give the e-mail once, as either `email` or `email-address`, not both",
            ));
        }
        for (name, value) in fields.iter().filter(|(n, _)| *n != "user") {
            let Some(rule) = rule(name) else {
                errors.push(FieldError::new(format!("user.{name}"), "is not a documented NetSapiens user field"));
                continue;
            };
            match parse_change(rule, value) {
                Ok(w) => {
                    out.insert(if rule == Rule::Email { "email" } else { name }, w);
                }
                Err(m) => errors.push(FieldError::new(format!("user.{name}"), m)),
            }
        }
        if out.is_empty() && errors.is_empty() {
            errors.push(FieldError::new("user", "names no field to change besides user"));
        }
        if errors.is_empty() {
            Ok(Self(out))
        } else {
            Err(errors)
        }
    }

    /// An account setting's table of changes (`settings.suspend`, `settings.restore`): a JSON
    /// object of wire names to values, as in an `update_user` job's `user`, without `user`
    /// and without secrets (a secret is never written in a config file). The error names the
    /// field and says what is wrong with it.
    pub fn from_setting(raw: &str) -> Result<Self, String> {
        use crate::contract::VendorKey;
        const SHAPE: &str = r#"a JSON object of user fields to set, e.g. '{"user-scope": "No Portal"}'"#;
        let table: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(raw).map_err(|_| format!("must be {SHAPE}"))?;
        let mut fields = BTreeMap::new();
        for (name, value) in &table {
            let spec = VendorKey::Netsapiens
                .field(name)
                .ok_or_else(|| format!("{name:?} is not a NetSapiens user field; must be {SHAPE}"))?;
            if spec.name == "user" {
                return Err("must not name `user`: the job names the user, the setting only what to change".into());
            }
            if spec.secret {
                return Err(format!("must not set {name}: a secret is never written in a config file"));
            }
            let value = match value {
                serde_json::Value::String(s) => FieldValue::Text(s.clone()),
                serde_json::Value::Number(n) if n.is_i64() => FieldValue::Integer(n.as_i64().unwrap_or_default()),
                _ => return Err(format!("{name} must be a string or an integer, as in an update_user job")),
            };
            fields.insert(spec.name, value);
        }
        Self::parse(&UserFields::new(VendorKey::Netsapiens, fields)).map_err(|errors| {
            let all: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", e.field.strip_prefix("user.").unwrap_or(&e.field), e.message))
                .collect();
            all.join("; ")
        })
    }

    /// The changes by wire name (the e-mail as `email`), in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Wire)> {
        self.0.iter().map(|(k, v)| (*k, v))
    }

    /// Only the named changes: what is left to send once a lookup shows the others done.
    pub fn only(&self, names: &[&str]) -> Self {
        Self(self.0.iter().filter(|(k, _)| names.contains(k)).map(|(k, v)| (*k, v.clone())).collect())
    }

    pub fn has_secret(&self) -> bool {
        self.0.values().any(Wire::is_secret)
    }

    /// Secret values, so the adapter can scrub any vendor text that echoes one.
    pub(crate) fn secrets(&self) -> Vec<&str> {
        self.0
            .values()
            .filter_map(|w| match w {
                Wire::Pin(p) => Some(p.expose()),
                _ => None,
            })
            .collect()
    }
}

/// An `update_user` job's user, parsed: the extension to change and the changes.
#[derive(Clone, Debug, PartialEq)]
pub struct UserChange {
    user: Extension,
    changes: Changes,
}

impl UserChange {
    pub fn parse(fields: &UserFields) -> Result<Self, Vec<FieldError>> {
        let user = UserRef::extension(fields);
        let changes = Changes::parse(fields);
        match (user, changes) {
            (Ok(user), Ok(changes)) => Ok(Self { user, changes }),
            (user, changes) => Err(user.err().into_iter().chain(changes.err().into_iter().flatten()).collect()),
        }
    }

    pub fn user(&self) -> &Extension {
        &self.user
    }

    pub fn changes(&self) -> &Changes {
        &self.changes
    }
}

/// A `suspend_user`, `restore_user` or `delete_user` job's user, parsed: the extension, and
/// nothing else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRef {
    user: Extension,
}

impl UserRef {
    pub fn parse(fields: &UserFields) -> Result<Self, Vec<FieldError>> {
        let mut errors: Vec<FieldError> = fields
            .iter()
            .filter(|(n, _)| *n != "user")
            .map(|(n, _)| FieldError::new(format!("user.{n}"), "this job names its user by `user` only"))
            .collect();
        match Self::extension(fields) {
            Ok(user) if errors.is_empty() => Ok(Self { user }),
            Ok(_) => Err(errors),
            Err(e) => {
                errors.insert(0, e);
                Err(errors)
            }
        }
    }

    fn extension(fields: &UserFields) -> Result<Extension, FieldError> {
        let value = fields.get("user").ok_or_else(|| FieldError::new("user.user", "is required"))?;
        text(value).and_then(Extension::parse).map_err(|m| FieldError::new("user.user", m))
    }

    pub fn user(&self) -> &Extension {
        &self.user
    }
}

fn keep<T>(errors: &mut Vec<FieldError>, name: &str, r: Result<T, String>) -> Option<T> {
    r.map_err(|m| errors.push(FieldError::new(format!("user.{name}"), m))).ok()
}

/// Every documented rule of the create call, for `provisioner validate` and the decoder.
pub fn validate(user: &UserFields) -> Vec<FieldError> {
    NewUser::parse(user).err().unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::contract::VendorKey;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    /// A `UserFields` from JSON, as the decoder would build it (names from the catalog).
    pub(crate) fn fields(v: Value) -> UserFields {
        let map = v
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let name =
                    VendorKey::Netsapiens.field(k).map(|f| f.name).unwrap_or_else(|| panic!("not in catalog: {k}"));
                let value = match v {
                    Value::String(s) => FieldValue::Text(s.clone()),
                    Value::Number(n) => FieldValue::Integer(n.as_i64().unwrap()),
                    other => panic!("unsupported {other}"),
                };
                (name, value)
            })
            .collect();
        UserFields::new(VendorKey::Netsapiens, map)
    }

    pub(crate) fn minimal() -> Value {
        json!({"user": "1042", "name-first-name": "Jane", "name-last-name": "Doe",
               "email": "jane.doe@acme.example", "user-scope": "Basic User"})
    }

    fn with(field: &str, value: Value) -> Vec<FieldError> {
        let mut v = minimal();
        v[field] = value;
        validate(&fields(v))
    }

    #[test]
    fn names_refuse_bidi_overrides_as_well_as_control_characters() {
        for bad in ["\u{202e}enaJ", "Jane\0", "Jane\r\n"] {
            assert!(PersonName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_minimal_documented_body_is_valid() {
        assert_eq!(validate(&fields(minimal())), vec![]);
    }

    #[test]
    fn every_catalog_field_has_a_rule() {
        for spec in VendorKey::Netsapiens.user_fields() {
            assert!(rule(spec.name).is_some(), "{} has no rule", spec.name);
        }
    }

    /// One accepted and one refused value for every documented field.
    #[test]
    fn every_rule_accepts_one_value_and_refuses_another() {
        let cases: &[(&str, Value, Value)] = &[
            ("user", json!("1042"), json!("10a2")),
            ("user", json!("1234567890123456"), json!("12345678901234567")),
            ("name-first-name", json!("Jane"), json!("  ")),
            ("name-last-name", json!("Doe"), json!("Do\ne")),
            ("login-username", json!("1042@acme.example"), json!("jane doe")),
            ("email", json!("a@acme.example;b@acme.example"), json!("a@acme.example;")),
            ("email", json!("jane@acme.example"), json!("jane.acme.example")),
            ("user-scope", json!("No Portal"), json!("No Portal ")),
            ("user-scope", json!("Call Center Supervisor"), json!("basic user")),
            ("department", json!("Support"), json!("Sup\u{7}port")),
            ("site", json!("Head Office"), json!("Head\tOffice")),
            ("status-message", json!("Out until Monday"), json!("a\u{0}b")),
            ("service-code", json!("system-queue"), json!("x\ry")),
            ("caller-id-name", json!("A name longer than fifteen"), json!("a\nb")),
            ("dial-plan", json!("acme.example"), json!("")),
            ("dial-policy", json!("US and Canada"), json!(" ")),
            ("emergency-address-id", json!("addr-17"), json!("")),
            ("time-zone", json!("America/New_York"), json!("Asia/Kolkata")),
            ("time-zone", json!("Etc/GMT-14"), json!("america/new_york")),
            ("voicemail-login-pin", json!("482913"), json!("48a913")),
            ("language-token", json!("en_US"), json!("english")),
            ("email-send-alert-new-voicemail-cc-list-csv", json!("1001,1002"), json!("1001;1002")),
            ("email-send-alert-new-voicemail-behavior", json!("briefatttrash"), json!("attach")),
            ("voicemail-transcription-enabled", json!("Deepgram"), json!("deepgram")),
            ("recording-configuration", json!("yes-with-transcription-and-sentiment"), json!("yes-with-sentiment")),
            ("caller-id-number", json!("18585551234"), json!("858-555-1234")),
            ("caller-id-number", json!("[*]"), json!("")),
            ("caller-id-number-emergency", json!(18585551234_i64), json!(-1)),
            ("caller-id-number-emergency", json!("+18585551234"), json!("911x")),
            ("directory-name-number-dtmf-mapping", json!(764), json!(99)),
            ("area-code", json!(999), json!(1000)),
            ("ring-no-answer-timeout-seconds", json!(0), json!(3601)),
            ("limits-max-active-calls-total", json!(3600), json!(-1)),
            ("music-on-hold-comfort-message-repeat-interval-seconds", json!(30), json!(4000)),
            ("directory-override-order-duplicate-dtmf-mapping", json!(100), json!(101)),
            ("limits-max-data-storage-kilobytes", json!(1_000_000), json!(-5)),
            ("voicemail-greeting-index", json!(0), json!(-1)),
        ];
        let yes_no = [
            "privacy",
            "voicemail-user-control-enabled",
            "phone-numbers-to-allow-enabled",
            "phone-numbers-to-reject-enabled",
            "call-screening-enabled",
            "directory-announce-in-dial-by-name-enabled",
            "voicemail-enabled",
            "voicemail-receive-broadcast-enabled",
            "reject-anonymous-calls-enabled",
            "voicemail-playback-announce-datetime-received",
            "voicemail-playback-announce-caller-id",
            "voicemail-playback-sort-newest-to-oldest",
            "email-send-alert-new-voicemail-enabled",
            "email-send-alert-new-missed-call-enabled",
            "email-send-alert-data-storage-limit-reached-enabled",
            "directory-name-visible-in-list-enabled",
            "call-recordings-hide-from-others-enabled",
            "music-on-hold-randomized-enabled",
        ];
        let yes_no_cases =
            yes_no.iter().flat_map(|f| [(*f, json!("yes"), json!("true")), (*f, json!("no"), json!("Yes"))]);
        let mut covered = std::collections::BTreeSet::new();
        for (field, good, bad) in cases.iter().cloned().chain(yes_no_cases) {
            covered.insert(field);
            assert_eq!(with(field, good.clone()), vec![], "{field} = {good} must be accepted");
            let errs = with(field, bad.clone());
            assert_eq!(errs.len(), 1, "{field} = {bad} must be refused once: {errs:?}");
            assert_eq!(errs[0].field, format!("user.{field}"));
        }
        for spec in VendorKey::Netsapiens.user_fields() {
            assert!(covered.contains(spec.name) || spec.name == "email-address", "{} has no case", spec.name);
        }
    }

    #[test]
    fn range_fields_want_numbers_and_text_fields_want_strings() {
        assert_eq!(with("area-code", json!("858"))[0].message, "must be an integer (a JSON number)");
        assert_eq!(with("department", json!(5))[0].message, "must be a string");
    }

    #[test]
    fn required_fields_are_named_when_missing() {
        for field in ["user", "name-first-name", "name-last-name", "user-scope", "email"] {
            let mut v = minimal();
            v.as_object_mut().unwrap().remove(field);
            let errs = validate(&fields(v));
            assert_eq!(errs, vec![FieldError::new(format!("user.{field}"), errs[0].message.clone())]);
            assert!(errs[0].message.starts_with("is required"), "{errs:?}");
        }
    }

    #[test]
    fn the_email_comes_under_exactly_one_of_its_two_names() {
        let mut v = minimal();
        let email = v.as_object_mut().unwrap().remove("email").unwrap();
        v["email-address"] = email.clone();
        let user = NewUser::parse(&fields(v.clone())).unwrap();
        assert_eq!(user.email().to_wire(), "jane.doe@acme.example");
        v["email"] = email;
        let errs = validate(&fields(v));
        assert_eq!(errs[0].field, "user.email-address");
        assert!(errs[0].message.contains("not both"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let v = json!({"user": "x", "name-first-name": "", "name-last-name": "Doe", "email": "nope",
                       "user-scope": "Boss", "area-code": 5});
        let errs: Vec<String> = validate(&fields(v)).into_iter().map(|e| e.field).collect();
        assert_eq!(
            errs,
            ["user.user", "user.name-first-name", "user.user-scope", "user.email", "user.area-code"].map(String::from)
        );
    }

    #[test]
    fn pin_errors_never_echo_the_pin() {
        let errs = with("voicemail-login-pin", json!("12x4567"));
        assert!(!format!("{errs:?}").contains("12x4567"));
        let user = NewUser::parse(&fields({
            let mut v = minimal();
            v["voicemail-login-pin"] = json!("9137264");
            v
        }))
        .unwrap();
        assert!(!format!("{user:?}").contains("9137264"), "{user:?}");
        assert_eq!(user.secrets(), ["9137264"]);
    }

    #[test]
    fn domains_follow_the_path_rule() {
        assert!(Domain::parse("acme.example").is_ok());
        assert!(Domain::parse("a_b-c.d").is_ok());
        assert!(Domain::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "~", "..", ".", "acme/example", "acme example", &"a".repeat(65)] {
            assert!(Domain::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_time_zone_list_is_the_documented_one() {
        let unique: std::collections::BTreeSet<_> = TIME_ZONES.iter().collect();
        assert_eq!(unique.len(), 221);
        for tz in ["US/Eastern", "Asia/Calcutta", "Asia/Saigon", "Cuba", "Greenwich", "Pacific/Tahiti"] {
            assert!(TimeZone::parse(tz).is_ok(), "{tz}");
        }
        for tz in ["Asia/Kolkata", "America/Argentina/Buenos_Aires", "Europe/Kyiv", "UTC"] {
            assert!(TimeZone::parse(tz).is_err(), "{tz}");
        }
    }

    #[test]
    fn email_lists_compare_as_sets_of_mailboxes() {
        let l = EmailList::parse(" a@x.example ; B@x.example").unwrap();
        assert_eq!(l.to_wire(), "a@x.example;B@x.example");
        assert!(l.same_as("b@x.example;a@X.example"));
        assert!(!l.same_as("a@x.example"));
    }

    fn field_names(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn an_update_parses_its_changes_by_the_create_rules() {
        let c = UserChange::parse(&fields(json!({"user": "1042", "email-address": "a@acme.example",
            "user-scope": "No Portal", "area-code": 212, "name-first-name": "Janet"})))
        .unwrap();
        assert_eq!(c.user().as_str(), "1042");
        let names: Vec<&str> = c.changes().iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["area-code", "email", "name-first-name", "user-scope"], "the e-mail kept as `email`");
        let errors = UserChange::parse(&fields(json!({"user": "x", "user-scope": "Boss", "area-code": 5,
            "email": "a@acme.example", "email-address": "b@acme.example"})))
        .unwrap_err();
        assert_eq!(field_names(&errors), ["user.user", "user.email-address", "user.area-code", "user.user-scope"]);
        assert_eq!(field_names(&UserChange::parse(&fields(json!({"user": "1042"}))).unwrap_err()), ["user"]);
        assert_eq!(field_names(&UserChange::parse(&fields(json!({"site": "HQ"}))).unwrap_err()), ["user.user"]);
    }

    #[test]
    fn a_pin_change_is_secret_and_never_echoed() {
        let c = UserChange::parse(&fields(json!({"user": "1042", "voicemail-login-pin": "918273"}))).unwrap();
        assert!(c.changes().has_secret());
        assert_eq!(c.changes().secrets(), ["918273"]);
        assert!(!format!("{c:?}").contains("918273"));
        let errors = UserChange::parse(&fields(json!({"user": "1042", "voicemail-login-pin": "91x273"}))).unwrap_err();
        assert!(!format!("{errors:?}").contains("91x273"));
    }

    #[test]
    fn a_user_ref_is_the_extension_alone() {
        assert_eq!(UserRef::parse(&fields(json!({"user": "1042"}))).unwrap().user().as_str(), "1042");
        let errors = UserRef::parse(&fields(json!({"user": "1042", "site": "HQ"}))).unwrap_err();
        assert_eq!(field_names(&errors), ["user.site"]);
        let errors = UserRef::parse(&fields(json!({"user": "12345678901234567", "site": "HQ"}))).unwrap_err();
        assert_eq!(field_names(&errors), ["user.user", "user.site"]);
        assert_eq!(field_names(&UserRef::parse(&fields(json!({}))).unwrap_err()), ["user.user"]);
    }

    #[test]
    fn a_settings_table_is_an_update_without_user_or_secrets() {
        let c = Changes::from_setting(r#"{"user-scope": "No Portal", "limits-max-active-calls-total": 0}"#).unwrap();
        let sent: Vec<(&str, Value)> = c.iter().map(|(n, w)| (n, w.to_json())).collect();
        assert_eq!(sent, [("limits-max-active-calls-total", json!(0)), ("user-scope", json!("No Portal"))]);
        let refused = [
            ("", "must be a JSON object"),
            ("user-scope = No Portal", "must be a JSON object"),
            (r#"["No Portal"]"#, "must be a JSON object"),
            ("{}", "names no field to change"),
            (r#"{"scope": "No Portal"}"#, r#""scope" is not a NetSapiens user field"#),
            (r#"{"user": "1042"}"#, "must not name `user`"),
            (r#"{"voicemail-login-pin": "1234"}"#, "a secret is never written in a config file"),
            (r#"{"privacy": true}"#, "privacy must be a string or an integer"),
            (r#"{"area-code": 2.5}"#, "area-code must be a string or an integer"),
            (r#"{"user-scope": "No Portal "}"#, "user-scope: must be a user scope exactly"),
            (r#"{"area-code": "212"}"#, "area-code: must be an integer"),
        ];
        for (raw, want) in refused {
            let e = Changes::from_setting(raw).unwrap_err();
            assert!(e.contains(want), "{raw}: {e}");
        }
    }

    #[test]
    fn shown_values_compare_as_the_vendor_keeps_them() {
        let wire = |name: &str, v: Value| {
            let c = UserChange::parse(&fields(json!({"user": "1042", name: v}))).unwrap();
            let w = c.changes().iter().next().unwrap().1.clone();
            w
        };
        let same = [
            (wire("area-code", json!(212)), json!("212")),
            (wire("area-code", json!(212)), json!(212)),
            (wire("caller-id-number-emergency", json!(18585551234_i64)), json!(18585551234_i64)),
            (wire("email", json!("a@x.example;b@x.example")), json!("B@x.example; a@x.example")),
            (wire("email-send-alert-new-voicemail-cc-list-csv", json!("1001,1002")), json!("1002, 1001")),
            (wire("login-username", json!("Jane@acme.example")), json!("jane@ACME.example")),
            (wire("privacy", json!("no")), json!("No")),
            (wire("department", json!("Support")), json!(" Support ")),
        ];
        for (w, shown) in same {
            assert!(w.same_as(&shown), "{w:?} vs {shown}");
        }
        let different = [
            (wire("area-code", json!(212)), json!("213")),
            (wire("area-code", json!(212)), json!(null)),
            (wire("department", json!("Support")), json!("support")),
            (wire("user-scope", json!("No Portal")), json!("Basic User")),
            (wire("email", json!("a@x.example")), json!("a@x.example;b@x.example")),
            (wire("privacy", json!("no")), json!(["no"])),
            (wire("voicemail-login-pin", json!("1234")), json!("1234")),
        ];
        for (w, shown) in different {
            assert!(!w.same_as(&shown), "{w:?} vs {shown}");
        }
    }

    proptest! {
        #[test]
        fn extensions_round_trip(s in "[0-9]{1,16}") {
            let e = Extension::parse(&s).unwrap();
            prop_assert_eq!(Extension::parse(e.as_str()).unwrap(), e);
        }

        #[test]
        fn non_digit_or_long_extensions_are_refused(s in "[0-9]{0,8}[^0-9][0-9]{0,8}|[0-9]{17,30}") {
            prop_assert!(Extension::parse(&s).is_err());
        }

        #[test]
        fn domains_round_trip(s in "[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}") {
            let d = Domain::parse(&s).unwrap();
            prop_assert_eq!(Domain::parse(d.as_str()).unwrap(), d);
        }

        #[test]
        fn domains_with_other_characters_are_refused(s in "[a-z]{0,10}[^A-Za-z0-9._-][a-z]{0,10}") {
            prop_assert!(Domain::parse(&s).is_err());
        }

        #[test]
        fn email_lists_round_trip(s in "[a-z0-9._+-]{1,20}@[a-z0-9-]{1,20}\\.[a-z]{2,6}(;[a-z0-9]{1,10}@[a-z]{1,10}\\.[a-z]{2,3}){0,3}") {
            let l = EmailList::parse(&s).unwrap();
            prop_assert_eq!(EmailList::parse(&l.to_wire()).unwrap(), l);
        }

        #[test]
        fn addresses_without_an_at_sign_are_refused(s in "[a-z0-9.]{1,30}") {
            prop_assert!(EmailList::parse(&s).is_err());
        }

        #[test]
        fn bounded_accepts_exactly_its_range(v in -10_000i64..10_000) {
            prop_assert_eq!(Bounded::parse(v, 0, 3600).is_ok(), (0..=3600).contains(&v));
            prop_assert_eq!(Bounded::parse(v, 100, 999).is_ok(), (100..=999).contains(&v));
        }

        #[test]
        fn pins_are_digits_only(s in "[0-9]{1,12}", bad in "[0-9]{0,4}[^0-9][0-9]{0,4}") {
            prop_assert!(VoicemailPin::parse(&s).is_ok());
            prop_assert!(VoicemailPin::parse(&bad).is_err());
            let shown = format!("{:?}", VoicemailPin::parse(&s).unwrap());
            prop_assert!(!shown.contains(&s));
        }

        #[test]
        fn enums_accept_only_their_exact_spelling(s in "[A-Za-z -]{1,25}") {
            if let Ok(scope) = UserScope::parse(&s) {
                prop_assert_eq!(scope.as_str(), s.as_str());
            }
            if let Ok(tz) = TimeZone::parse(&s) {
                prop_assert_eq!(tz.as_str(), s.as_str());
            }
            prop_assert_eq!(YesNo::parse(&s).is_ok(), s == "yes" || s == "no");
        }

        #[test]
        fn language_tokens_round_trip(s in "[a-z]{2,3}_[A-Z]{2}", bad in "[a-z]{2}-[A-Z]{2}|[A-Z]{2}_[a-z]{2}") {
            let token = LanguageToken::parse(&s).unwrap();
            prop_assert_eq!(token.as_str(), s.as_str());
            prop_assert!(LanguageToken::parse(&bad).is_err());
        }

        #[test]
        fn phone_numbers_round_trip(s in "\\+?[0-9]{1,15}", bad in "[0-9]{0,5}[^0-9+\\[][0-9]{0,5}|[0-9]{16,20}") {
            let number = PhoneNumber::parse(&s).unwrap();
            prop_assert_eq!(number.as_str(), s.as_str());
            prop_assert!(PhoneNumber::parse(&bad).is_err());
        }
    }
}
