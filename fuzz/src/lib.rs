//! What the fuzz targets share: how an input becomes an HTTP answer, and the fixed jobs,
//! hires and links the inputs are read against.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Headers read from one input at most; more only slows the fuzzer down.
const MAX_HEADERS: usize = 16;

/// An HTTP answer as a vendor's client hands it to the response readers.
pub struct HttpAnswer<'a> {
    /// Always a status `http::StatusCode` accepts (100–999), as a real answer's is.
    pub status: u16,
    pub headers: HeaderMap,
    pub body: &'a [u8],
}

/// Reads an input as a small HTTP answer, so seeds stay readable:
///
/// ```text
/// 429
/// retry-after: 30
/// content-type: application/json
///
/// {"code":429,"message":"slow down"}
/// ```
///
/// The part before the first blank line is the status line, then one header per line (lines
/// that are not a valid header are skipped); the rest is the body. An input without a blank
/// line is all body, answered with 200.
pub fn http_answer(data: &[u8]) -> HttpAnswer<'_> {
    let Some(split) = data.windows(2).position(|w| w == b"\n\n") else {
        return HttpAnswer { status: 200, headers: HeaderMap::new(), body: data };
    };
    let (head, body) = (&data[..split], &data[split + 2..]);
    let mut lines = head.split(|b| *b == b'\n');
    let status = lines
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
        .and_then(|l| l.trim().parse::<u16>().ok())
        .filter(|s| (100..=999).contains(s))
        .unwrap_or(200);
    let mut headers = HeaderMap::new();
    for line in lines.take(MAX_HEADERS) {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let name = HeaderName::from_bytes(line[..colon].trim_ascii());
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) = (name, value) {
            headers.append(name, value);
        }
    }
    HttpAnswer { status, headers, body }
}

/// A decoded job, as the worker has it before calling the vendor; panics on an invalid one,
/// which would be a broken target, not a finding.
pub fn job(json: &str) -> provisioner::contract::Job {
    provisioner::job::decode(json.as_bytes()).expect("the fixed job of a fuzz target is valid")
}

/// The documented Glance example job.
pub const GLANCE_JOB: &str = r#"{"job_id": "hire-000731-glance", "vendor": "glance", "account": "acme",
    "user": {"PartnerUserID": "EMP-000731", "UserAddress": "jdoe.acme.glance.net", "UserFirst": "Jane",
             "UserLast": "Doe", "UserEmail": "jane.doe@acme.example", "UserRole": "Support Tier 1",
             "AudioProvider": 1}}"#;

/// The documented NetSapiens example job.
pub const NETSAPIENS_JOB: &str = r#"{"job_id": "hire-000731-ns", "vendor": "netsapiens", "account": "acme-ns",
    "domain": "acme.example",
    "user": {"user": "1042", "name-first-name": "Jane", "name-last-name": "Doe",
             "email": "jane.doe@acme.example", "user-scope": "Basic User"}}"#;

/// The documented ClientToolbox example job.
pub const CLIENTTOOLBOX_JOB: &str = r#"{"job_id": "hire-000731-ctb", "vendor": "clienttoolbox",
    "account": "acme-ctb",
    "user": {"user_name": "JDoe", "user_new_password": "S3cure!pass", "user_first_name": "Jane",
             "user_last_name": "Doe", "user_custom1": "Downtown Store", "user_PIN": "4321",
             "language_selector": "EN", "timezone_selector": 68, "user_role": "K",
             "allowed_campaigns": "all"}}"#;

/// The example tenant mapping of docs/hire-events.md (tenant `acme`, one account per vendor).
pub const MAPPING: &str = r#"
[accounts.acme-glance]
vendor = "glance"
[accounts.acme-ns]
vendor = "netsapiens"
settings = { domain = "acme.example", suspend = { "user-scope" = "No Portal" }, restore = { "user-scope" = "Basic User" } }
[accounts.acme-ctb]
vendor = "clienttoolbox"

[tenants.acme.glance]
account = "acme-glance"
fields.PartnerUserID = "EMP-{id}"
fields.UserAddress = "{first_name|slug}.{last_name|slug}.acme.glance.net"
fields.UserFirst = "{first_name}"
fields.UserLast = "{last_name}"
fields.UserEmail = { template = "{email}", optional = true }

[tenants.acme.netsapiens]
account = "acme-ns"
fields.user = "{extension|digits}"
fields.name-first-name = "{first_name}"
fields.name-last-name = "{last_name}"
fields.email = { template = "{email}", optional = true }
fields.department = { template = "{department|truncate:40}", optional = true }
fields.user-scope = "Basic User"

[tenants.acme.clienttoolbox]
account = "acme-ctb"
fields.user_name = { template = "{first_name|slug:_}_{last_name|slug:_}", filters = ["truncate:20"] }
fields.user_new_password = { generate = "password" }
fields.user_first_name = "{first_name}"
fields.user_last_name = "{last_name}"
fields.user_custom1 = { template = "{location|trim}", optional = true }
fields.user_role = "K"
fields.allowed_campaigns = "all"
"#;

/// The service's settings with [`MAPPING`] merged in, as `config/` files would give them.
pub fn mapping_settings() -> provisioner::config::Settings {
    use figment::providers::{Format, Serialized, Toml};
    figment::Figment::from(Serialized::defaults(provisioner::config::Settings::default()))
        .merge(Toml::string(MAPPING))
        .extract()
        .expect("the example mapping is valid settings")
}

/// The accounts employee 000731 of tenant `acme` holds in [`MAPPING`]'s accounts, in every
/// state: what a person event's update, leave and rehire act on.
pub fn links() -> Vec<provisioner::ledger::Link> {
    use provisioner::contract::VendorKey;
    use provisioner::ledger::{Link, LinkState};
    let link = |vendor, account: &str, identity: &str, state| Link {
        vendor,
        account: account.to_owned(),
        identity: identity.to_owned(),
        identity_extra: None,
        person: Some(provisioner::contract::Person { tenant: "acme".into(), employee_id: "000731".into() }),
        job_id: "hire-000731:glance:acme-glance".into(),
        correlation_id: None,
        vendor_user_id: None,
        state,
        created_at: 0,
        updated_at: 0,
    };
    vec![
        link(VendorKey::Glance, "acme-glance", "EMP-000731", LinkState::Active),
        link(VendorKey::Netsapiens, "acme-ns", "1731@acme.example", LinkState::Suspended),
        link(VendorKey::Clienttoolbox, "acme-ctb", "jane_doe", LinkState::Active),
        link(VendorKey::Clienttoolbox, "acme-ctb", "jane_doe_2", LinkState::Deleted),
        link(VendorKey::Glance, "acme-glance", "EMP-000731-b", LinkState::Intent),
    ]
}
