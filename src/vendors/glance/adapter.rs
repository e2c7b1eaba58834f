//! The Glance adapter: build → send → interpret, looking the user up with `ShowUsers` before
//! any create that might repeat an earlier one, and after every "already exists".

use std::sync::Arc;

use reqwest::header::{HeaderMap, CONTENT_TYPE};

use super::account::{from_settings, Account, AudioFailure, Auth};
use super::fields::NewUser;
use super::request::{self, LookupKey, Request};
use super::response::{self, CreateAnswer, FoundUser, LOGIN_KEY_REJECTED};
use crate::config::{AccountSettings, ConfigError, VendorSettings};
use crate::job::Job;
use crate::vendors::{http, CallContext, Receipt, VendorError, VendorFailure};

/// One Glance account's client: its config and one pooled HTTP client, built once.
#[derive(Clone, Debug)]
pub struct Adapter {
    name: String,
    account: Arc<Account>,
    client: reqwest::Client,
}

/// Builds the adapter of account `name`; errors name the key to fix.
pub fn build(name: &str, account: &AccountSettings, http: &VendorSettings) -> Result<Adapter, ConfigError> {
    Ok(Adapter::new(name, from_settings(name, account)?, http))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Replaces every secret with `***`; a vendor may echo what it was sent.
fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s, crate::job::REDACTED);
    }
    out
}

fn scrub_error(mut e: VendorError, secrets: &[&str]) -> VendorError {
    e.message = scrub(&e.message, secrets);
    e
}

fn scrub_receipt(mut r: Receipt, secrets: &[&str]) -> Receipt {
    let shown = serde_json::Value::Object(std::mem::take(&mut r.details)).to_string();
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&scrub(&shown, secrets)) {
        r.details = map;
    }
    r.vendor_user_id = r.vendor_user_id.map(|v| scrub(&v, secrets));
    r
}

impl Adapter {
    pub fn new(name: &str, account: Account, http_settings: &VendorSettings) -> Self {
        Self { name: name.to_owned(), account: Arc::new(account), client: http::client(http_settings) }
    }

    pub fn account(&self) -> &Account {
        &self.account
    }

    fn account_secret(&self) -> &str {
        use secrecy::ExposeSecret;
        match &self.account.auth {
            Auth::Password(pw) => pw.expose_secret(),
            Auth::LoginKey { api_key, .. } => api_key.expose_secret(),
        }
    }

    async fn send(&self, req: &Request) -> Result<(u16, HeaderMap, String), VendorError> {
        let url = format!("{}{}", self.account.base_url(), req.path);
        let resp = self
            .client
            .post(url)
            .header(CONTENT_TYPE, req.content_type())
            .body(req.body())
            .send()
            .await
            .map_err(|e| http::transport_error(&e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.map_err(|e| http::transport_error(&e))?;
        Ok((status, headers, body))
    }

    /// One call, with the documented Login Key recovery: a refused key is minted afresh and
    /// tried once more; refused again, it is a configuration problem.
    async fn call<T>(
        &self,
        make: impl Fn(i64) -> Request,
        read: impl Fn(u16, &HeaderMap, &str) -> Result<T, VendorError>,
    ) -> Result<T, VendorError> {
        let mut retried = false;
        loop {
            let req = make(now());
            let secrets = req.secrets();
            let result = match self.send(&req).await {
                Ok((status, headers, body)) => read(status, &headers, &body),
                Err(e) => Err(e),
            };
            match result {
                Err(e) if e.code == LOGIN_KEY_REJECTED => {
                    if self.account.uses_login_key() && !retried {
                        tracing::warn!(account = %self.name, "Glance refused the Login Key; minting a new one");
                        retried = true;
                        continue;
                    }
                    let mut e = scrub_error(e, &secrets);
                    e.failure = VendorFailure::Auth;
                    return Err(e);
                }
                Err(e) => return Err(scrub_error(e, &secrets)),
                Ok(v) => return Ok(v),
            }
        }
    }

    async fn lookup(&self, user: &NewUser, key: LookupKey<'_>) -> Result<Vec<FoundUser>, VendorError> {
        let markers = self.account.markers();
        self.call(
            |now| request::show_users(&self.account, key, &user.partner_user_id, now),
            |s, h, b| response::interpret_lookup(s, h, b, markers),
        )
        .await
    }

    async fn create(&self, user: &NewUser) -> Result<CreateAnswer, VendorError> {
        let markers = self.account.markers();
        self.call(
            |now| request::new_user(&self.account, user, now),
            |s, h, b| match response::interpret_create(s, h, b, markers, user) {
                CreateAnswer::Failed(e) => Err(e),
                other => Ok(other),
            },
        )
        .await
    }

    /// The user holding our PartnerUserID, judged: same profile → existing, else conflict.
    async fn by_partner_user_id(&self, user: &NewUser) -> Result<Option<Result<Receipt, VendorError>>, VendorError> {
        let found = self.lookup(user, LookupKey::PartnerUserId(&user.partner_user_id)).await?;
        let ours =
            found.iter().find(|f| f.partner_user_id.as_deref().is_none_or(|p| p == user.partner_user_id.as_str()));
        Ok(ours.map(|f| match response::difference(user, f) {
            None => Ok(response::existing_receipt(user, f)),
            Some(field) => Err(VendorError::new(
                VendorFailure::Conflict,
                "partner_user_id_taken",
                format!(
                    "PartnerUserID {} already belongs to a different Glance user ({field} differs); choose another \
                     PartnerUserID or correct that user in Glance",
                    user.partner_user_id
                ),
            )),
        }))
    }

    /// Glance said the PartnerUserID or the UserAddress is taken: find out by whom.
    async fn after_duplicate(&self, user: &NewUser, message: &str) -> Result<Receipt, VendorError> {
        if let Some(decided) = self.by_partner_user_id(user).await? {
            return decided;
        }
        let found = self.lookup(user, LookupKey::Address(&user.address)).await?;
        let holder = found.first().and_then(|f| f.partner_user_id.clone());
        let message = match holder {
            Some(p) => format!(
                "UserAddress {} already belongs to PartnerUserID {p} in this group; choose another UserAddress",
                user.address
            ),
            None => format!(
                "UserAddress {} is taken outside this group (Glance said {message}); choose another UserAddress",
                user.address
            ),
        };
        Err(VendorError::new(VendorFailure::Conflict, "user_address_taken", message))
    }

    async fn run(&self, job: &Job, ctx: CallContext) -> Result<Receipt, VendorError> {
        let user = NewUser::parse(&job.user, self.account.rules()).map_err(|errors| {
            let summary: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
            VendorError::new(
                VendorFailure::Rejected,
                "invalid_field",
                format!("not sent, this account's Glance rules refuse it: {}; fix the job", summary.join("; ")),
            )
        })?;
        if ctx.maybe_seen_before {
            // A previous attempt may have created the user; never create blindly.
            if let Some(decided) = self.by_partner_user_id(&user).await? {
                tracing::info!(account = %self.name, partner_user_id = %user.partner_user_id, "found before creating");
                return decided;
            }
        }
        match self.create(&user).await? {
            CreateAnswer::Created(receipt) => Ok(receipt),
            CreateAnswer::Failed(e) => Err(e),
            CreateAnswer::AlreadyExists { message } => self.after_duplicate(&user, &message).await,
            CreateAnswer::AudioFailed { message } => {
                let refused = VendorError::new(
                    VendorFailure::Rejected,
                    "audio_failed",
                    format!("Glance could not provision audio: {message}; drop AudioProvider or ask Glance"),
                );
                if self.account.audio_failure == AudioFailure::Reject {
                    return Err(refused);
                }
                match self.by_partner_user_id(&user).await? {
                    Some(Ok(mut receipt)) => {
                        receipt.existing = false;
                        receipt.details.insert("audio_error".into(), serde_json::Value::from(message));
                        Ok(receipt)
                    }
                    Some(Err(conflict)) => Err(conflict),
                    None => Err(refused),
                }
            }
            CreateAnswer::Unrecognised { excerpt } => match self.by_partner_user_id(&user).await? {
                Some(Ok(mut receipt)) => {
                    receipt.existing = false;
                    Ok(receipt)
                }
                Some(Err(conflict)) => Err(conflict),
                None => Err(VendorError::new(
                    VendorFailure::Transient,
                    "unrecognised_answer",
                    format!(
                        "Glance answered neither success nor a known failure ({excerpt:?}) and ShowUsers does not \
                         show the user; retry later, or adjust success_markers/failure_elements"
                    ),
                )),
            },
        }
    }
}

impl crate::vendors::Adapter for Adapter {
    async fn create_user(&self, job: &Job, ctx: CallContext) -> Result<Receipt, VendorError> {
        let pw = job.user.text("UserPW").unwrap_or_default();
        let secrets = [self.account_secret(), pw];
        match self.run(job, ctx).await {
            Ok(r) => Ok(scrub_receipt(r, &secrets)),
            Err(e) => Err(scrub_error(e, &secrets)),
        }
    }
}
