//! `accounts.<name>.policy`: what jobs for one account may ask of it, within what the vendor allows.
//!
//! A vendor key reaches further than any one producer should: a NetSapiens key can create
//! users in every domain it administers and with any scope, a ClientToolbox caller can make
//! Administrators. The policy says what jobs may ask for; a job outside it is `invalid` and
//! never sent. The defaults are the least a producer normally needs:
//! - NetSapiens `domains`: only the account's own `settings.domain`;
//! - NetSapiens `user_scopes`: every scope but `Super User`, `Reseller` and `NDP`;
//! - ClientToolbox `roles`: every role letter but `A` (Administrator);
//! - Glance `roles`: any role.
//!
//! Listing values replaces the default with exactly that list (compared case-insensitively).

use std::collections::BTreeSet;

use crate::config::{AccountSettings, ConfigError};
use crate::contract::{FieldError, Job, VendorKey};

/// Which values a job may use: exactly a list, or anything but a list.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Allowed {
    Only(BTreeSet<String>),
    AllBut(BTreeSet<String>),
}

impl Allowed {
    fn admits(&self, value: &str) -> bool {
        let value = value.trim().to_lowercase();
        match self {
            Allowed::Only(list) => list.contains(&value),
            Allowed::AllBut(list) => !list.contains(&value),
        }
    }

    fn describe(&self) -> String {
        let list = |l: &BTreeSet<String>| l.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", ");
        match self {
            Allowed::Only(l) if l.is_empty() => "none".into(),
            Allowed::Only(l) => format!("only {}", list(l)),
            Allowed::AllBut(l) => format!("any but {}", list(l)),
        }
    }
}

/// One account's policy, read once from its settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    account: String,
    vendor: VendorKey,
    /// NetSapiens: the domains a job may name.
    domains: Allowed,
    /// NetSapiens: the `user-scope` values a job may ask for.
    user_scopes: Allowed,
    /// ClientToolbox role letters, or Glance roles.
    roles: Allowed,
}

/// The policy keys of each vendor.
fn keys(vendor: VendorKey) -> &'static [&'static str] {
    match vendor {
        VendorKey::Glance => &["roles"],
        VendorKey::Netsapiens => &["domains", "user_scopes"],
        VendorKey::Clienttoolbox => &["roles"],
    }
}

fn lower(values: &[String]) -> BTreeSet<String> {
    values.iter().map(|v| v.trim().to_lowercase()).collect()
}

impl Policy {
    /// Reads `accounts.<name>.policy`; an unknown key is an error naming it.
    pub fn from_settings(name: &str, account: &AccountSettings) -> Result<Self, ConfigError> {
        let vendor = account.vendor;
        if let Some(unknown) = account.policy.keys().find(|k| !keys(vendor).contains(&k.as_str())) {
            return Err(ConfigError::invalid(
                format!("accounts.{name}.policy.{unknown}"),
                format!("unknown {vendor} policy key; known: {}", keys(vendor).join(", ")),
            ));
        }
        let listed = |key: &str| account.policy.get(key).map(|v| Allowed::Only(lower(v)));
        let own_domain = account.settings.get("domain").map(|d| vec![d.clone()]).unwrap_or_default();
        let default_roles = match vendor {
            VendorKey::Clienttoolbox => Allowed::AllBut(lower(&["A".into()])),
            _ => Allowed::AllBut(BTreeSet::new()),
        };
        Ok(Self {
            account: name.to_owned(),
            vendor,
            domains: listed("domains").unwrap_or(Allowed::Only(lower(&own_domain))),
            user_scopes: listed("user_scopes")
                .unwrap_or_else(|| Allowed::AllBut(lower(&["Super User".into(), "Reseller".into(), "NDP".into()]))),
            roles: listed("roles").unwrap_or(default_roles),
        })
    }

    /// Everything `job` asks for that this account's policy does not allow, each naming the
    /// policy key that decides it.
    pub fn check(&self, job: &Job) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut refuse = |field: &str, what: &str, value: &str, key: &str, allowed: &Allowed| {
            errors.push(FieldError::new(
                field,
                format!(
                    "{what} {value:?} is not allowed for account {}: accounts.{}.policy.{key} allows {}",
                    self.account,
                    self.account,
                    allowed.describe()
                ),
            ));
        };
        match self.vendor {
            VendorKey::Netsapiens => {
                if let Some(domain) = job.domain.as_deref().filter(|d| !self.domains.admits(d)) {
                    refuse("domain", "domain", domain, "domains", &self.domains);
                }
                if let Some(scope) = job.user.text("user-scope").filter(|s| !self.user_scopes.admits(s)) {
                    refuse("user.user-scope", "user scope", scope, "user_scopes", &self.user_scopes);
                }
            }
            VendorKey::Clienttoolbox => {
                if let Some(role) = job.user.text("user_role").filter(|r| !self.roles.admits(r)) {
                    refuse("user.user_role", "role", role, "roles", &self.roles);
                }
            }
            VendorKey::Glance => {
                if let Some(role) = job.user.text("UserRole").filter(|r| !self.roles.admits(r)) {
                    refuse("user.UserRole", "role", role, "roles", &self.roles);
                }
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::contract::{AccountName, FieldValue, JobId, UserFields};

    fn account(vendor: VendorKey, settings: &[(&str, &str)], policy: &[(&str, &[&str])]) -> AccountSettings {
        AccountSettings {
            vendor,
            base_url: None,
            settings: settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            credentials: BTreeMap::new(),
            rate: None,
            concurrency: None,
            policy: policy
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
                .collect(),
        }
    }

    fn job(vendor: VendorKey, domain: Option<&str>, fields: &[(&'static str, &str)]) -> Job {
        let user = fields.iter().map(|(k, v)| (*k, FieldValue::Text((*v).to_owned()))).collect();
        Job {
            id: JobId::parse("j").unwrap(),
            kind: crate::contract::JobKind::CreateUser,
            vendor,
            account: AccountName::parse("acme").unwrap(),
            correlation_id: None,
            requested_at: None,
            domain: domain.map(str::to_owned),
            person: None,
            user: UserFields::new(vendor, user),
        }
    }

    fn fields_refused(policy: &Policy, job: &Job) -> Vec<String> {
        policy.check(job).into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn netsapiens_defaults_to_its_own_domain_and_no_powerful_scopes() {
        let p =
            Policy::from_settings("acme", &account(VendorKey::Netsapiens, &[("domain", "acme.example")], &[])).unwrap();
        let ns = |domain, scope| job(VendorKey::Netsapiens, domain, &[("user-scope", scope)]);
        assert!(fields_refused(&p, &ns(None, "Basic User")).is_empty());
        assert!(fields_refused(&p, &ns(Some("ACME.example"), "Office Manager")).is_empty());
        assert_eq!(fields_refused(&p, &ns(Some("other.example"), "Basic User")), ["domain"]);
        for scope in ["Super User", "reseller", "NDP"] {
            assert_eq!(fields_refused(&p, &ns(None, scope)), ["user.user-scope"], "{scope}");
        }
        let e = &p.check(&ns(Some("other.example"), "Super User"))[0];
        assert!(e.message.contains("accounts.acme.policy.domains"), "{}", e.message);

        let listed = account(
            VendorKey::Netsapiens,
            &[("domain", "acme.example")],
            &[("domains", &["acme.example", "branch.example"]), ("user_scopes", &["Basic User"])],
        );
        let p = Policy::from_settings("acme", &listed).unwrap();
        assert!(fields_refused(&p, &ns(Some("branch.example"), "Basic User")).is_empty());
        assert_eq!(fields_refused(&p, &ns(None, "Office Manager")), ["user.user-scope"]);
    }

    #[test]
    fn clienttoolbox_refuses_administrators_unless_listed() {
        let ctb = |role| job(VendorKey::Clienttoolbox, None, &[("user_role", role)]);
        let p = Policy::from_settings("acme", &account(VendorKey::Clienttoolbox, &[], &[])).unwrap();
        assert!(fields_refused(&p, &ctb("K")).is_empty());
        assert_eq!(fields_refused(&p, &ctb("A")), ["user.user_role"]);
        let p = Policy::from_settings("acme", &account(VendorKey::Clienttoolbox, &[], &[("roles", &["A"])])).unwrap();
        assert!(fields_refused(&p, &ctb("A")).is_empty());
        assert_eq!(fields_refused(&p, &ctb("K")), ["user.user_role"]);
    }

    #[test]
    fn glance_allows_any_role_unless_listed() {
        let glance = |role| job(VendorKey::Glance, None, &[("UserRole", role)]);
        let p = Policy::from_settings("acme", &account(VendorKey::Glance, &[], &[])).unwrap();
        assert!(fields_refused(&p, &glance("Group Admin")).is_empty());
        let p = Policy::from_settings("acme", &account(VendorKey::Glance, &[], &[("roles", &["Sales"])])).unwrap();
        assert!(fields_refused(&p, &glance("sales")).is_empty());
        assert_eq!(fields_refused(&p, &glance("Group Admin")), ["user.UserRole"]);
    }

    #[test]
    fn an_unknown_policy_key_names_itself() {
        let e = Policy::from_settings("acme", &account(VendorKey::Glance, &[], &[("domains", &["x"])])).unwrap_err();
        assert!(e.to_string().contains("accounts.acme.policy.domains"), "{e}");
    }
}
