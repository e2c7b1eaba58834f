//! The ClientToolbox adapter: build the call, send it over the account's pooled client, interpret the answer.
//!
//! `user_new` is not idempotent and returns no id, so a redelivered job looks the user up
//! first, and a "user name already exists" answer is settled by a lookup too: the same user is
//! `existing`, anyone else is a `conflict`.

use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use secrecy::ExposeSecret;

use super::account::{self, Account, Auth, UnverifiedDuplicate};
use super::fields::NewUser;
use super::request::{self, ApiRequest, FORM_CONTENT_TYPE};
use super::response::{self, code, Lookup};
use crate::config::{AccountSettings, ConfigError, VendorSettings};
use crate::job::Job;
use crate::vendors::{http, CallContext, Receipt, VendorError, VendorFailure};

/// One account's client. Cheap to clone: the HTTP pool and the account are shared.
#[derive(Clone, Debug)]
pub struct Adapter {
    account: Arc<Account>,
    client: reqwest::Client,
}

/// Reads the account config and builds its pooled client once.
pub fn build(name: &str, account: &AccountSettings, http: &VendorSettings) -> Result<Adapter, ConfigError> {
    Ok(Adapter::new(account::from_settings(name, account)?, http))
}

struct Raw {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Adapter {
    pub fn new(account: Account, settings: &VendorSettings) -> Self {
        Self { account: Arc::new(account), client: http::client(settings) }
    }

    pub fn account(&self) -> &Account {
        &self.account
    }

    async fn send(&self, req: &ApiRequest) -> Result<Raw, VendorError> {
        let url = format!("{}{}", self.account.base_url, req.path);
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(FORM_CONTENT_TYPE));
        for (name, value) in req.header_values() {
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                VendorError::new(
                    VendorFailure::Auth,
                    "bad_credential",
                    format!("the {name} credential of account {} is not a valid header value", self.account.name),
                )
            })?;
            value.set_sensitive(true);
            headers.insert(HeaderName::from_static(name), value);
        }
        let resp = self
            .client
            .post(url)
            .headers(headers)
            .body(req.body())
            .send()
            .await
            .map_err(|e| http::transport_error(&e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| http::transport_error(&e))?.to_vec();
        Ok(Raw { status, headers, body })
    }

    /// Every secret this call could expose, for scrubbing vendor text.
    fn secrets<'a>(&'a self, req: &'a ApiRequest) -> Vec<&'a str> {
        let mut s = req.secrets();
        match &self.account.auth {
            Auth::Password(p) | Auth::Header(p) => s.push(p.expose_secret()),
        }
        s
    }

    /// `None` when the account has no lookup configured.
    async fn lookup(&self, user: &NewUser, wire: &str) -> Result<Option<Lookup>, VendorError> {
        let Some(req) = request::lookup(&self.account, wire) else { return Ok(None) };
        let raw = self.send(&req).await?;
        let mut secrets = self.secrets(&req);
        secrets.push(user.password.expose());
        if let Some(pin) = &user.pin {
            secrets.push(pin.expose());
        }
        let found = response::interpret_lookup(
            self.account.lookup,
            raw.status,
            &raw.headers,
            &raw.body,
            &self.account.classifier,
            wire,
            &secrets,
        )?;
        if let Lookup::Unsupported(reason) = &found {
            tracing::warn!(account = %self.account.name, reason = %reason,
                "ClientToolbox lookup could not answer; check accounts.<name>.settings.lookup");
        }
        Ok(Some(found))
    }

    /// The vendor says the name is taken: decide whose user it is.
    async fn settle_duplicate(&self, user: &NewUser, wire: &str, dup: VendorError) -> Result<Receipt, VendorError> {
        match self.lookup(user, wire).await? {
            Some(Lookup::Found(record)) => response::decide(&record, user, wire),
            Some(Lookup::Absent) => Err(VendorError::new(
                VendorFailure::Conflict,
                code::USER_NAME_TAKEN,
                format!(
                    "ClientToolbox says user_name {wire} exists but the lookup does not list it (a user marked deleted keeps its name); choose another user_name or restore that user"
                ),
            )),
            None | Some(Lookup::Unsupported(_)) => match self.account.on_unverified_duplicate {
                UnverifiedDuplicate::Existing => Ok(response::created(wire, true)),
                UnverifiedDuplicate::Conflict => Err(VendorError {
                    message: format!(
                        "{}; no lookup could tell whether it is this job's user, so it is treated as someone else's. Check the user in ClientToolbox; if it is this person, replay with settings.on_unverified_duplicate = existing or enable settings.lookup",
                        dup.message
                    ),
                    ..dup
                }),
            },
        }
    }

    async fn create(&self, job: &Job, ctx: CallContext) -> Result<Receipt, VendorError> {
        // Decoding already applied these rules; parsing again is what turns the job's fields
        // into values that cannot be invalid.
        let user = NewUser::parse(&job.user).map_err(|errors| {
            let summary = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
            VendorError::new(VendorFailure::Rejected, "invalid_job", format!("not sent: {summary}"))
        })?;
        self.account.check(&user).map_err(|(field, message)| {
            VendorError::new(VendorFailure::Rejected, "not_sent", format!("not sent: {field} {message}; fix the job"))
        })?;
        let wire = self.account.wire_user_name(&user);

        if ctx.maybe_seen_before {
            match self.lookup(&user, &wire).await? {
                Some(Lookup::Found(record)) => return response::decide(&record, &user, &wire),
                Some(Lookup::Absent | Lookup::Unsupported(_)) | None => {}
            }
        }

        let req = request::create(&self.account, &user);
        let raw = self.send(&req).await?;
        let result = response::interpret_create(
            raw.status,
            &raw.headers,
            &raw.body,
            &self.account.classifier,
            &wire,
            &self.secrets(&req),
        );
        match result {
            Err(e) if e.code == code::DUPLICATE_USER_NAME => self.settle_duplicate(&user, &wire, e).await,
            other => other,
        }
    }
}

impl crate::vendors::Adapter for Adapter {
    async fn create_user(&self, job: &Job, ctx: CallContext) -> Result<Receipt, VendorError> {
        let result = self.create(job, ctx).await.map(|mut receipt| {
            receipt.details.insert("account_id".into(), self.account.account_id.clone().into());
            receipt
        });
        match &result {
            Ok(r) => {
                tracing::debug!(account = %self.account.name, existing = r.existing, "ClientToolbox user_new done")
            }
            Err(e) => tracing::debug!(account = %self.account.name, code = %e.code, "ClientToolbox user_new failed"),
        }
        result
    }
}
