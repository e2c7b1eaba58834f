//! The vendors' documented create-call field names, which a job's `user` object must use.
//!
//! Only names and coarse kinds live here; the per-field rules (lengths, enums, formats)
//! belong with each vendor's adapter.

/// The JSON shape a field accepts in a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Integer,
    /// Documented as "string or integer" (e.g. ClientToolbox `timezone_selector`).
    TextOrInteger,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    pub name: &'static str,
    pub kind: FieldKind,
    pub required: bool,
    /// Passwords and PINs: redacted wherever a job is shown.
    pub secret: bool,
}

const fn text(name: &'static str) -> FieldSpec {
    FieldSpec { name, kind: FieldKind::Text, required: false, secret: false }
}
const fn required(name: &'static str) -> FieldSpec {
    FieldSpec { name, kind: FieldKind::Text, required: true, secret: false }
}
const fn int(name: &'static str) -> FieldSpec {
    FieldSpec { name, kind: FieldKind::Integer, required: false, secret: false }
}
const fn text_or_int(name: &'static str) -> FieldSpec {
    FieldSpec { name, kind: FieldKind::TextOrInteger, required: false, secret: false }
}
const fn secret(name: &'static str, required: bool) -> FieldSpec {
    FieldSpec { name, kind: FieldKind::Text, required, secret: true }
}

/// Glance `NewUser` (vendors/glance.md). `OKURL` is deliberately absent: a browser redirect
/// has no meaning for a worker.
pub(super) const GLANCE_USER: &[FieldSpec] = &[
    required("PartnerUserID"),
    required("UserAddress"),
    secret("UserPW", false),
    text("UserFirst"),
    text("UserLast"),
    text("UserEmail"),
    text("UserRole"),
    int("AudioProvider"),
];
pub(super) const GLANCE_AUTH: &[&str] = &["PartnerLogin", "PartnerPW", "PartnerAuth", "PartnerID"];

/// NetSapiens v2 `POST /domains/{domain}/users`, minus the read-only properties and the
/// write-only `synchronous` switch, which the adapter owns.
pub(super) const NETSAPIENS_USER: &[FieldSpec] = &[
    required("user"),
    required("name-first-name"),
    required("name-last-name"),
    text("login-username"),
    text("email"),
    text("email-address"),
    // The schema marks it required although it documents a default: always sent.
    required("user-scope"),
    text("department"),
    text("site"),
    text("time-zone"),
    secret("voicemail-login-pin", false),
    text("privacy"),
    text("dial-plan"),
    text("dial-policy"),
    text("status-message"),
    int("directory-name-number-dtmf-mapping"),
    text("voicemail-user-control-enabled"),
    text("phone-numbers-to-allow-enabled"),
    text("phone-numbers-to-reject-enabled"),
    text("call-screening-enabled"),
    int("ring-no-answer-timeout-seconds"),
    text("language-token"),
    int("limits-max-data-storage-kilobytes"),
    int("limits-max-active-calls-total"),
    text("directory-announce-in-dial-by-name-enabled"),
    int("directory-override-order-duplicate-dtmf-mapping"),
    int("voicemail-greeting-index"),
    text("voicemail-enabled"),
    text("voicemail-receive-broadcast-enabled"),
    text("reject-anonymous-calls-enabled"),
    text("voicemail-playback-announce-datetime-received"),
    text("voicemail-playback-announce-caller-id"),
    text("voicemail-playback-sort-newest-to-oldest"),
    text("email-send-alert-new-voicemail-cc-list-csv"),
    text("email-send-alert-new-voicemail-behavior"),
    text("email-send-alert-new-voicemail-enabled"),
    text("email-send-alert-new-missed-call-enabled"),
    text("email-send-alert-data-storage-limit-reached-enabled"),
    text("caller-id-number"),
    text("caller-id-name"),
    text_or_int("caller-id-number-emergency"),
    int("area-code"),
    text("directory-name-visible-in-list-enabled"),
    text("service-code"),
    text("voicemail-transcription-enabled"),
    text("emergency-address-id"),
    text("call-recordings-hide-from-others-enabled"),
    text("music-on-hold-randomized-enabled"),
    int("music-on-hold-comfort-message-repeat-interval-seconds"),
    text("recording-configuration"),
];
/// NetSapiens authenticates with a Bearer key or an OAuth token; none of these may ride in a job.
pub(super) const NETSAPIENS_AUTH: &[&str] =
    &["api_key", "apikey", "access_token", "client_id", "client_secret", "username", "password", "Authorization"];

/// ClientToolbox `type=user_new`, minus `type`, `output`, `callback` and `condensed`, which
/// the adapter owns.
pub(super) const CLIENTTOOLBOX_USER: &[FieldSpec] = &[
    required("user_name"),
    secret("user_new_password", true),
    text("user_first_name"),
    text("user_last_name"),
    text("user_custom1"),
    secret("user_PIN", false),
    text("language_selector"),
    text_or_int("timezone_selector"),
    required("user_role"),
    required("allowed_campaigns"),
];
pub(super) const CLIENTTOOLBOX_AUTH: &[&str] = &["user_id", "user_password", "api_access_key", "account_id"];
