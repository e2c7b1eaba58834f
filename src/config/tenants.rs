//! `[tenants.<name>]`: the per-tenant hire mappings as configured, before they are compiled.
//!
//! Only the shape lives here; the hire `Mapper` compiles and checks the templates, field
//! names and accounts, and the intake resolves the tenant's own credentials, so config never
//! depends on the hire code that uses it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::SecretSource;
use crate::contract::VendorKey;

/// `[tenants.<name>]`: which vendors a tenant's hires go to and how each field is derived.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// The vendors a hire without `targets` goes to; absent means every mapped vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_targets: Option<Vec<VendorKey>>,
    /// A bearer token of the HTTP intake that admits only this tenant's hires; an `env:` or
    /// `file:` secret of 32 bytes or more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intake_token: Option<SecretSource>,
    /// An HMAC key of the HTTP intake's signatures that admits only this tenant's hires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intake_hmac_secret: Option<SecretSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glance: Option<TargetSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netsapiens: Option<TargetSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clienttoolbox: Option<TargetSettings>,
}

impl TenantSettings {
    pub fn target(&self, vendor: VendorKey) -> Option<&TargetSettings> {
        match vendor {
            VendorKey::Glance => self.glance.as_ref(),
            VendorKey::Netsapiens => self.netsapiens.as_ref(),
            VendorKey::Clienttoolbox => self.clienttoolbox.as_ref(),
        }
    }
}

/// `[tenants.<name>.<vendor>]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSettings {
    /// A configured account of this vendor.
    pub account: String,
    /// NetSapiens only: the domain, when it is not the account's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Vendor wire name → how to derive it.
    pub fields: BTreeMap<String, FieldRuleSettings>,
    /// What a leave does at this vendor; absent means the vendor's least destructive
    /// documented action ([`OnLeave::default_for`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_leave: Option<OnLeave>,
}

/// What a leave does to a leaver's accounts at one vendor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnLeave {
    /// A `suspend_user` job: Glance's own suspend; at NetSapiens and ClientToolbox, which
    /// document none, the update the account configures as its suspend
    /// (`accounts.<name>.settings.suspend`). `update` is accepted for it too: at those two it
    /// is exactly that configured update, and the ledger marks the link suspended, so a
    /// rehire restores it.
    #[serde(alias = "update")]
    Suspend,
    /// A `delete_user` job: the least destructive delete the account allows (ClientToolbox
    /// marks the user deleted; permanent deletes only with `hard_delete = true`).
    Delete,
    /// Nothing: the leave is recorded and no job is published.
    None,
}

impl OnLeave {
    /// The least destructive documented action that removes access: Glance and NetSapiens
    /// suspend, ClientToolbox's soft delete (it has no suspend and its delete only marks).
    pub fn default_for(vendor: VendorKey) -> Self {
        match vendor {
            VendorKey::Glance | VendorKey::Netsapiens => OnLeave::Suspend,
            VendorKey::Clienttoolbox => OnLeave::Delete,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OnLeave::Suspend => "suspend",
            OnLeave::Delete => "delete",
            OnLeave::None => "none",
        }
    }
}

/// A field rule: a template string, or a table for the longer forms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldRuleSettings {
    Template(String),
    Table(FieldRuleTable),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FieldRuleTable {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Filters applied to the whole rendered value, e.g. `["truncate:20"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<String>,
    /// Leave the field out when a placeholder is empty, instead of failing the hire.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// `password`: a random 20-character password, for vendors that require an initial one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<Generate>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Generate {
    Password,
}
