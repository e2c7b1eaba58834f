//! Everything that knows a vendor: the vendor keys, their field catalogs and the adapter interface.
//!
//! The generic pipeline only sees [`Adapter`], [`Receipt`] and [`VendorError`]; status codes,
//! XML and wire names stay behind this module.

pub mod clienttoolbox;
pub mod glance;
pub mod http;
pub mod netsapiens;
mod policy;
mod rules;

pub use policy::Policy;
pub use rules::{FieldRules, Rulebook};

use std::time::Duration;

use crate::contract::{Job, JobKind, VendorKey};
use crate::retry::Retryable;

/// The vendor's own field rules beyond the catalog (lengths, character sets, enums, ranges,
/// formats), under the account's settings when `rules` are given and the documented
/// defaults otherwise, applied when a job is decoded so `validate` and the worker agree. A
/// job that fails them is `invalid` and never sent. A create needs the whole user; the
/// other kinds are checked by [`change_errors`].
pub fn validate_user(
    vendor: VendorKey,
    kind: JobKind,
    user: &crate::contract::UserFields,
    rules: Option<&FieldRules>,
) -> Vec<crate::contract::FieldError> {
    match rules {
        Some(rules) if rules.vendor() == vendor => rules.check(kind, user),
        _ => FieldRules::defaults(vendor).check(kind, user),
    }
}

/// The fields of a vendor's user that an update can change: every catalog field but the
/// identity, less what the vendor's update operation does not take.
pub fn updatable_fields(vendor: VendorKey) -> impl Iterator<Item = &'static str> {
    let fixed: &[&str] = match vendor {
        VendorKey::Glance => glance::NOT_UPDATABLE,
        VendorKey::Netsapiens => netsapiens::NOT_UPDATABLE,
        VendorKey::Clienttoolbox => clienttoolbox::NOT_UPDATABLE,
    };
    vendor.user_fields().iter().map(|f| f.name).filter(move |n| *n != vendor.identity_field() && !fixed.contains(n))
}

/// The errors of a job that is not a create, given `create_errors`, what the vendor's
/// create rules say of the same `user`: only those about fields the job names count (a
/// change leaves the rest as they are), and the kind's own shape is checked. A suspend,
/// restore or delete names the user by its identity only; an update names it and at least
/// one field it may change.
pub fn change_errors(
    vendor: VendorKey,
    kind: JobKind,
    user: &crate::contract::UserFields,
    create_errors: Vec<crate::contract::FieldError>,
) -> Vec<crate::contract::FieldError> {
    use crate::contract::FieldError;
    let identity = vendor.identity_field();
    let named = |path: &str| path.strip_prefix("user.").is_some_and(|name| user.get(name).is_some());
    let mut errors: Vec<FieldError> = create_errors.into_iter().filter(|e| named(&e.field)).collect();
    if user.get(identity).is_none() {
        errors.insert(
            0,
            FieldError::new(format!("user.{identity}"), format!("is required: a {kind} job names its user by it")),
        );
    }
    let others: Vec<&str> = user.iter().map(|(n, _)| n).filter(|n| *n != identity).collect();
    if kind.names_user_only() {
        for name in others {
            errors.push(FieldError::new(
                format!("user.{name}"),
                format!("a {kind} job names its user by {identity} only; send field changes as an update_user job"),
            ));
        }
    } else if kind == JobKind::UpdateUser {
        let updatable: Vec<&str> = updatable_fields(vendor).collect();
        for name in &others {
            if !updatable.contains(name) {
                errors.push(FieldError::new(
                    format!("user.{name}"),
                    format!("{vendor} cannot change {name} of an existing user; it is reported here, not ignored"),
                ));
            }
        }
        if others.is_empty() {
            errors.push(FieldError::new(
                "user",
                format!("an update_user job names at least one field to change besides {identity}"),
            ));
        }
    }
    errors
}

/// The JSON Schema of a job's `user` object for `vendor` under the default rules (no
/// account), built beside each vendor's rules; [`crate::job::job_schema`] assembles them.
pub fn user_schema(vendor: VendorKey) -> serde_json::Value {
    match vendor {
        VendorKey::Glance => glance::schema::user_schema(),
        VendorKey::Netsapiens => netsapiens::schema::user_schema(),
        VendorKey::Clienttoolbox => clienttoolbox::schema::user_schema(),
    }
}

/// The code of a job whose fields an adapter refuses before sending anything: the same in
/// every vendor's result events.
pub const INVALID_FIELD: &str = "invalid_field";

/// What a vendor call produced when it succeeded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Receipt {
    /// `true` when the vendor already held what the job asks for: for a create, the user
    /// existed with the same identity (a redelivery or replay: `existing`); for the other
    /// kinds, it already had those values or that state (`unchanged`).
    pub existing: bool,
    /// The vendor's own id or key for the user, when it returns one.
    pub vendor_user_id: Option<String>,
    /// Other values the vendor returned that a consumer of the event needs (e.g. Glance `dialIn`).
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// How a vendor call failed, classified by the adapter so nothing generic reads status codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VendorFailure {
    /// The vendor refused the input; sending it again cannot help.
    Rejected,
    /// A different user already holds the identity.
    Conflict,
    /// Credentials or account configuration are wrong; an operator must fix config.
    Auth,
    /// Worth trying again later: 5xx, timeouts, resets, unreadable bodies.
    Transient,
    /// The vendor asked us to slow down (429 or its own words for it): worth trying again,
    /// and the account's rate limiter slows down.
    Throttled,
}

/// A classified vendor error. `message` must never contain a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{failure:?} ({code}): {message}")]
pub struct VendorError {
    pub failure: VendorFailure,
    /// A short stable code, e.g. `http_503` or `duplicate_address`.
    pub code: String,
    pub message: String,
    /// The vendor's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

impl VendorError {
    pub fn new(failure: VendorFailure, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { failure, code: code.into(), message: message.into(), retry_after: None }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self.failure, VendorFailure::Transient | VendorFailure::Throttled)
    }
}

// The classifier's verdict drives the generic inline retry: transient and throttled
// failures are worth another call, and a vendor's Retry-After is honoured.
impl Retryable for VendorError {
    fn retry_inline(&self) -> bool {
        self.is_transient()
    }

    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// What a vendor's message says once the job's own words are taken out, lower-cased: the
/// only text classification phrases are matched against. A vendor that echoes the job (a
/// role named "Unauthorized", a surname "Inactive") must never make that echo decide the
/// error class, least of all `auth`, which opens the whole account's breaker. Values
/// shorter than 3 characters are left in: removing every "a" would say nothing at all.
pub fn unechoed(message: &str, job_values: &[&str]) -> String {
    let mut heard = message.to_lowercase();
    let mut values: Vec<String> =
        job_values.iter().map(|v| v.trim().to_lowercase()).filter(|v| v.chars().count() >= 3).collect();
    // Longest first, so a value containing another is taken out whole.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    for v in values {
        heard = heard.replace(&v, " ");
    }
    heard
}

/// Facts about the current delivery that an adapter needs to stay idempotent.
#[derive(Clone, Copy, Debug, Default)]
pub struct CallContext {
    /// The broker says it delivered this message before, or it came back from a retry tier:
    /// a previous attempt may have created the user, so look before creating.
    pub maybe_seen_before: bool,
    /// 1-based attempt number within this delivery's inline retries.
    pub inline_attempt: u32,
    /// What the ledger proved about the identity before the call.
    pub ledger: LedgerProof,
}

/// What the ledger proved about a job's vendor identity before the create was sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LedgerProof {
    /// Nothing: no ledger, or the identity's holder cannot be told apart from this job.
    #[default]
    Nothing,
    /// The identity was claimed or created for this job or this job's person: an "already
    /// exists" answer is this person's user, `existing`.
    ThisPerson,
}

/// The vendor's unique key for the user a job asks for: what the ledger links to a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VendorIdentity {
    /// Glance `PartnerUserID`, NetSapiens `user@domain`, ClientToolbox `user_name` as sent.
    pub key: String,
    /// A second value the vendor keeps unique, searchable in `whois` (Glance `UserAddress`).
    pub extra: Option<String>,
}

/// One vendor account's client. Implementations own the request building, the I/O and the
/// interpretation of the answer; they return a receipt or a classified error.
pub trait Adapter: Send + Sync {
    fn create_user(
        &self,
        job: &Job,
        ctx: CallContext,
    ) -> impl std::future::Future<Output = Result<Receipt, VendorError>> + Send;

    /// Changes the fields an `update_user` job names, and only those. Values the user
    /// already has are `existing` (`unchanged`), never an error.
    fn update_user(
        &self,
        job: &Job,
        ctx: CallContext,
    ) -> impl std::future::Future<Output = Result<Receipt, VendorError>> + Send;

    /// Takes the user's access away, reversibly; a user already suspended is `existing`.
    fn suspend_user(
        &self,
        job: &Job,
        ctx: CallContext,
    ) -> impl std::future::Future<Output = Result<Receipt, VendorError>> + Send;

    /// Gives a suspended user access again; a user not suspended is `existing`.
    fn restore_user(
        &self,
        job: &Job,
        ctx: CallContext,
    ) -> impl std::future::Future<Output = Result<Receipt, VendorError>> + Send;

    /// Deletes the user in the least destructive documented way, unless the account allows
    /// hard deletes; a user already gone is `existing`.
    fn delete_user(
        &self,
        job: &Job,
        ctx: CallContext,
    ) -> impl std::future::Future<Output = Result<Receipt, VendorError>> + Send;

    /// The identity the job's user would have at this vendor; the same error the create
    /// would give when the job cannot be parsed.
    fn identity(&self, job: &Job) -> Result<VendorIdentity, VendorError>;

    /// Whether the vendor's own record proves, after the fact, that an existing user is the
    /// one a job asked for (a lookup by an id the job chose and the vendor keeps). When it
    /// cannot, the pipeline records an intent in the ledger before every create.
    fn proves_identity(&self) -> bool;
}

/// Every adapter this build knows, as one type, so the pipeline needs no boxing or dyn;
/// with the account's policy, checked before any call.
pub struct AnyAdapter {
    client: Client,
    policy: Policy,
}

/// A new vendor adds a variant here and a module beside this one.
enum Client {
    Glance(glance::Adapter),
    Netsapiens(netsapiens::Adapter),
    Clienttoolbox(clienttoolbox::Adapter),
}

impl AnyAdapter {
    pub fn vendor(&self) -> VendorKey {
        match self.client {
            Client::Glance(_) => VendorKey::Glance,
            Client::Netsapiens(_) => VendorKey::Netsapiens,
            Client::Clienttoolbox(_) => VendorKey::Clienttoolbox,
        }
    }

    /// The account's own field rules, which decoding applies to its jobs.
    pub fn field_rules(&self) -> FieldRules {
        match &self.client {
            Client::Glance(a) => FieldRules::Glance(a.account().rules().clone()),
            Client::Netsapiens(_) => FieldRules::Netsapiens,
            Client::Clienttoolbox(a) => FieldRules::Clienttoolbox(a.account().rules().clone()),
        }
    }

    /// What `job` asks for that the account's policy does not allow.
    pub fn policy_errors(&self, job: &Job) -> Vec<crate::contract::FieldError> {
        self.policy.check(job)
    }
}

impl AnyAdapter {
    /// The vendor call a job's kind asks for.
    pub async fn run(&self, job: &Job, ctx: CallContext) -> Result<Receipt, VendorError> {
        match job.kind {
            JobKind::CreateUser => self.create_user(job, ctx).await,
            JobKind::UpdateUser => self.update_user(job, ctx).await,
            JobKind::SuspendUser => self.suspend_user(job, ctx).await,
            JobKind::RestoreUser => self.restore_user(job, ctx).await,
            JobKind::DeleteUser => self.delete_user(job, ctx).await,
        }
    }
}

/// Every method is the same match over the client; the macro keeps the five in step.
macro_rules! each_client {
    ($self:ident, $a:ident => $call:expr) => {
        match &$self.client {
            Client::Glance($a) => $call,
            Client::Netsapiens($a) => $call,
            Client::Clienttoolbox($a) => $call,
        }
    };
}

impl Adapter for AnyAdapter {
    async fn create_user(&self, job: &Job, ctx: CallContext) -> Result<Receipt, VendorError> {
        each_client!(self, a => a.create_user(job, ctx).await)
    }

    async fn update_user(&self, job: &Job, ctx: CallContext) -> Result<Receipt, VendorError> {
        each_client!(self, a => a.update_user(job, ctx).await)
    }

    async fn suspend_user(&self, job: &Job, ctx: CallContext) -> Result<Receipt, VendorError> {
        each_client!(self, a => a.suspend_user(job, ctx).await)
    }

    async fn restore_user(&self, job: &Job, ctx: CallContext) -> Result<Receipt, VendorError> {
        each_client!(self, a => a.restore_user(job, ctx).await)
    }

    async fn delete_user(&self, job: &Job, ctx: CallContext) -> Result<Receipt, VendorError> {
        each_client!(self, a => a.delete_user(job, ctx).await)
    }

    fn identity(&self, job: &Job) -> Result<VendorIdentity, VendorError> {
        match &self.client {
            Client::Glance(a) => a.identity(job),
            Client::Netsapiens(a) => a.identity(job),
            Client::Clienttoolbox(a) => a.identity(job),
        }
    }

    fn proves_identity(&self) -> bool {
        match &self.client {
            Client::Glance(a) => a.proves_identity(),
            Client::Netsapiens(a) => a.proves_identity(),
            Client::Clienttoolbox(a) => a.proves_identity(),
        }
    }
}

/// One adapter per configured account, each with its own pooled HTTP client. Every account
/// is checked and every secret resolved here, so a bad account stops start-up.
pub fn build_adapters(
    settings: &crate::config::Settings,
) -> Result<std::collections::HashMap<String, AnyAdapter>, crate::config::ConfigError> {
    let mut out = std::collections::HashMap::new();
    for (name, account) in &settings.accounts {
        let http = settings.vendors.get(account.vendor);
        let client = match account.vendor {
            VendorKey::Glance => Client::Glance(glance::build(name, account, http)?),
            VendorKey::Netsapiens => Client::Netsapiens(netsapiens::build(name, account, http)?),
            VendorKey::Clienttoolbox => Client::Clienttoolbox(clienttoolbox::build(name, account, http)?),
        };
        out.insert(name.clone(), AnyAdapter { client, policy: Policy::from_settings(name, account)? });
    }
    Ok(out)
}

/// Delivery contexts shared by every vendor's tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::CallContext;

    /// A first delivery: nothing can have reached the vendor yet.
    pub(crate) const FRESH: CallContext =
        CallContext { maybe_seen_before: false, inline_attempt: 1, ledger: super::LedgerProof::Nothing };
    /// A redelivery (or a replay from a retry tier): an earlier attempt may have created the user.
    pub(crate) const SEEN: CallContext =
        CallContext { maybe_seen_before: true, inline_attempt: 1, ledger: super::LedgerProof::Nothing };
    /// A first delivery's second inline attempt: the first may have reached the vendor.
    pub(crate) const INLINE_RETRY: CallContext =
        CallContext { maybe_seen_before: false, inline_attempt: 2, ledger: super::LedgerProof::Nothing };
}
