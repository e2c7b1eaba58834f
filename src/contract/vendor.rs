//! The vendors this service can provision into, and what the contract knows of each.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::catalog::{self, FieldSpec};

/// The vendors this service can provision into.
// A closed set, so it is safe as a metric label. The doc line above is also its description
// in the job and hire JSON Schemas.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    schemars::JsonSchema,
)]
#[value(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "Vendor")]
pub enum VendorKey {
    Glance,
    Netsapiens,
    Clienttoolbox,
}

impl VendorKey {
    pub const ALL: [VendorKey; 3] = [VendorKey::Glance, VendorKey::Netsapiens, VendorKey::Clienttoolbox];

    pub fn as_str(self) -> &'static str {
        match self {
            VendorKey::Glance => "glance",
            VendorKey::Netsapiens => "netsapiens",
            VendorKey::Clienttoolbox => "clienttoolbox",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The documented create-call fields a job's `user` object may carry, by wire name.
    pub fn user_fields(self) -> &'static [FieldSpec] {
        match self {
            VendorKey::Glance => catalog::GLANCE_USER,
            VendorKey::Netsapiens => catalog::NETSAPIENS_USER,
            VendorKey::Clienttoolbox => catalog::CLIENTTOOLBOX_USER,
        }
    }

    /// Wire names of the vendor's authentication fields. They belong to the account config,
    /// so a job that carries one is refused rather than forwarded.
    pub fn auth_fields(self) -> &'static [&'static str] {
        match self {
            VendorKey::Glance => catalog::GLANCE_AUTH,
            VendorKey::Netsapiens => catalog::NETSAPIENS_AUTH,
            VendorKey::Clienttoolbox => catalog::CLIENTTOOLBOX_AUTH,
        }
    }

    /// The user field that identifies the user at the vendor (what "already exists" is keyed on).
    pub fn identity_field(self) -> &'static str {
        match self {
            VendorKey::Glance => "PartnerUserID",
            VendorKey::Netsapiens => "user",
            VendorKey::Clienttoolbox => "user_name",
        }
    }

    pub fn field(self, name: &str) -> Option<&'static FieldSpec> {
        self.user_fields().iter().find(|f| f.name == name)
    }
}

impl fmt::Display for VendorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every auth field name of every vendor: refused anywhere in a job, whatever its vendor says.
pub fn all_auth_fields() -> impl Iterator<Item = &'static str> {
    VendorKey::ALL.into_iter().flat_map(|v| v.auth_fields().iter().copied())
}
