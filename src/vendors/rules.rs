//! Each account's own field rules (what its settings tighten, relax or allow-list), read without its secrets, so decoding knows the account.
//!
//! The vendor docs leave some rules open (Glance `UserPW` minimum, `UserRole` length, address
//! suffixes; the ClientToolbox reference tables). Each is an account setting with a
//! documented default; a job decoded without a config (`provisioner validate` alone) gets the
//! defaults, and one decoded by the worker, `validate --config` or `map` gets its account's.

use std::collections::HashMap;

use crate::config::{AccountSettings, ConfigError, Settings};
use crate::contract::{FieldError, JobKind, UserFields, VendorKey};

use super::{clienttoolbox, glance, netsapiens};

/// One account's field rules, by vendor. NetSapiens has no setting that changes a field
/// rule (its domains and scopes are the account's policy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldRules {
    Glance(glance::Rules),
    Netsapiens,
    Clienttoolbox(clienttoolbox::fields::Rules),
}

impl FieldRules {
    /// The documented defaults, for a job whose account is not known.
    pub fn defaults(vendor: VendorKey) -> Self {
        match vendor {
            VendorKey::Glance => FieldRules::Glance(glance::Rules::default()),
            VendorKey::Netsapiens => FieldRules::Netsapiens,
            VendorKey::Clienttoolbox => FieldRules::Clienttoolbox(clienttoolbox::fields::Rules::default()),
        }
    }

    /// Reads the rule settings of `accounts.<name>`; an error names the key to fix. Secrets
    /// are not resolved, so this works where they are absent (`validate --config`).
    pub fn from_settings(name: &str, account: &AccountSettings) -> Result<Self, ConfigError> {
        Ok(match account.vendor {
            VendorKey::Glance => FieldRules::Glance(glance::account::rules_from_settings(name, account)?),
            VendorKey::Netsapiens => FieldRules::Netsapiens,
            VendorKey::Clienttoolbox => {
                FieldRules::Clienttoolbox(clienttoolbox::account::rules_from_settings(name, account)?)
            }
        })
    }

    pub fn vendor(&self) -> VendorKey {
        match self {
            FieldRules::Glance(_) => VendorKey::Glance,
            FieldRules::Netsapiens => VendorKey::Netsapiens,
            FieldRules::Clienttoolbox(_) => VendorKey::Clienttoolbox,
        }
    }

    /// Every field of `user` these rules refuse for a job of `kind`, each naming its field.
    pub fn check(&self, kind: JobKind, user: &UserFields) -> Vec<FieldError> {
        let create_errors = match self {
            FieldRules::Glance(rules) => glance::fields::validate_with(user, rules),
            FieldRules::Netsapiens => netsapiens::validate(user),
            FieldRules::Clienttoolbox(rules) if kind == JobKind::CreateUser => {
                clienttoolbox::fields::validate_with(user, rules)
            }
            // A partial user never parses as a whole one, which would skip the account's
            // allow-lists: a change is held to them field by field.
            FieldRules::Clienttoolbox(rules) => clienttoolbox::fields::validate_change_with(user, rules),
        };
        match kind {
            JobKind::CreateUser => create_errors,
            kind => super::change_errors(self.vendor(), kind, user, create_errors),
        }
    }
}

/// The field rules of every configured account, by account name.
#[derive(Clone, Debug, Default)]
pub struct Rulebook {
    accounts: HashMap<String, FieldRules>,
}

impl Rulebook {
    /// Every account's rules; the first account whose settings are wrong is the error.
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let accounts = settings
            .accounts
            .iter()
            .map(|(name, account)| Ok((name.clone(), FieldRules::from_settings(name, account)?)))
            .collect::<Result<_, ConfigError>>()?;
        Ok(Self { accounts })
    }

    pub fn insert(&mut self, account: impl Into<String>, rules: FieldRules) {
        self.accounts.insert(account.into(), rules);
    }

    /// The rules a job for `account` and `vendor` is held to: the account's own when it is
    /// configured for that vendor, else `None` (the defaults; routing reports the mismatch).
    pub fn get(&self, account: &str, vendor: VendorKey) -> Option<&FieldRules> {
        self.accounts.get(account).filter(|r| r.vendor() == vendor)
    }
}
