//! A built-in stand-in vendor: an in-process ledger that behaves like a vendor API
//! (creates, detects existing users and conflicts, fails on demand) until the real
//! adapters and their sandboxes replace it.
//!
//! Its behaviour per account comes from the account's `settings.standin_mode`:
//! `normal` (default), `auth_failure`, `outage` (always transient) or `flaky` (the first
//! call for each user fails transiently). A user whose identity starts with `REJECT` is
//! refused, as a vendor refuses bad input.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Adapter, CallContext, Receipt, VendorError, VendorFailure, VendorKey};
use crate::job::Job;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    AuthFailure,
    Outage,
    Flaky,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "normal" => Some(Mode::Normal),
            "auth_failure" => Some(Mode::AuthFailure),
            "outage" => Some(Mode::Outage),
            "flaky" => Some(Mode::Flaky),
            _ => None,
        }
    }
}

/// The users the stand-in holds, shared by all its accounts, with a count of creations so
/// tests can prove "created exactly once".
#[derive(Debug, Default)]
pub struct Ledger {
    inner: Mutex<LedgerInner>,
}

#[derive(Debug, Default)]
struct LedgerInner {
    /// (account, identity) → fingerprint of the non-secret fields.
    users: HashMap<(String, String), String>,
    creations: HashMap<(String, String), u32>,
    calls: HashMap<(String, String), u32>,
}

impl Ledger {
    pub fn creations(&self, account: &str, identity: &str) -> u32 {
        let inner = self.inner.lock().expect("ledger lock");
        inner.creations.get(&(account.to_owned(), identity.to_owned())).copied().unwrap_or(0)
    }

    pub fn total_creations(&self) -> u32 {
        self.inner.lock().expect("ledger lock").creations.values().sum()
    }

    /// Users created more than once: must always be empty.
    pub fn duplicates(&self) -> Vec<(String, String)> {
        let inner = self.inner.lock().expect("ledger lock");
        inner.creations.iter().filter(|(_, n)| **n > 1).map(|(k, _)| k.clone()).collect()
    }
}

#[derive(Clone, Debug)]
pub struct StandIn {
    vendor: VendorKey,
    account: String,
    mode: Mode,
    latency: Duration,
    ledger: Arc<Ledger>,
}

impl StandIn {
    pub fn new(vendor: VendorKey, account: &str, mode: Mode, latency: Duration, ledger: Arc<Ledger>) -> Self {
        Self { vendor, account: account.to_owned(), mode, latency, ledger }
    }

    pub fn vendor(&self) -> VendorKey {
        self.vendor
    }

    fn call(&self, job: &Job) -> Result<Receipt, VendorError> {
        let identity = job.identity().unwrap_or_default().to_owned();
        let key = (self.account.clone(), identity.clone());
        let mut inner = self.ledger.inner.lock().expect("ledger lock");
        let calls = {
            let c = inner.calls.entry(key.clone()).or_default();
            *c += 1;
            *c
        };
        match self.mode {
            Mode::AuthFailure => {
                return Err(VendorError::new(
                    VendorFailure::Auth,
                    "standin_auth",
                    "the stand-in refuses this account's credentials",
                ))
            }
            Mode::Outage => {
                return Err(VendorError::new(VendorFailure::Transient, "standin_outage", "the stand-in vendor is down"))
            }
            Mode::Flaky if calls == 1 => {
                return Err(VendorError::new(
                    VendorFailure::Transient,
                    "standin_flaky",
                    "the stand-in failed this first call",
                ))
            }
            Mode::Flaky | Mode::Normal => {}
        }
        if identity.starts_with("REJECT") {
            return Err(VendorError::new(
                VendorFailure::Rejected,
                "standin_rejected",
                format!("the stand-in refuses user {identity}"),
            ));
        }
        // Secrets are left out of the fingerprint: the vendor would never echo them back.
        let fingerprint = job.user.redacted().to_string();
        let vendor_user_id = Some(format!("{}-{}", self.vendor, identity));
        match inner.users.get(&key) {
            Some(existing) if *existing == fingerprint => {
                Ok(Receipt { existing: true, vendor_user_id, details: Default::default() })
            }
            Some(_) => Err(VendorError::new(
                VendorFailure::Conflict,
                "standin_conflict",
                format!("a different user already holds identity {identity}"),
            )),
            None => {
                inner.users.insert(key.clone(), fingerprint);
                *inner.creations.entry(key).or_default() += 1;
                Ok(Receipt { existing: false, vendor_user_id, details: Default::default() })
            }
        }
    }
}

impl Adapter for StandIn {
    async fn create_user(&self, job: &Job, _ctx: CallContext) -> Result<Receipt, VendorError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        self.call(job)
    }
}
