//! Settings: layered TOML files in `config/`, then `PROVISIONER__…` environment overrides,
//! with secrets resolved from env vars or mounted files.
//!
//! Every setting has a default in code (`Default` impls below) and `config/default.toml`
//! spells the same defaults out for operators; a test keeps the two equal.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};

use crate::contract::VendorKey;
use crate::rate_limit::Rate;

mod tenants;

pub use tenants::{FieldRuleSettings, FieldRuleTable, Generate, OnLeave, TargetSettings, TenantSettings};

/// A configuration problem, always naming the key an operator has to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration error: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration error: key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { key: key.into(), message: message.into() }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub amqp: AmqpSettings,
    pub topology: TopologySettings,
    pub worker: WorkerSettings,
    pub retry: RetrySettings,
    pub vendors: VendorsSettings,
    /// How accounts slow down when a vendor answers 429.
    pub rate_limit: crate::rate_limit::AdaptiveSettings,
    pub circuit_breaker: crate::circuit_breaker::BreakerSettings,
    pub admin: AdminSettings,
    pub log: LogSettings,
    pub events: EventSettings,
    pub accounts: BTreeMap<String, AccountSettings>,
    pub hire: HireSettings,
    pub intake: IntakeSettings,
    /// Where the service keeps what it knows: links, intents, history (see `crate::ledger`).
    pub ledger: LedgerSettings,
    /// Timeouts and the connection cap of the admin port and the hire intake.
    pub http: crate::http_server::ServerLimits,
    /// Per-tenant mappings from hire events to vendor jobs (see `crate::hire`).
    pub tenants: BTreeMap<String, TenantSettings>,
    /// Mass suspends and deletes held for an operator (see `crate::safeguard`).
    pub safeguard: SafeguardSettings,
}

/// When an account's removals (suspends and deletes) are held instead of sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SafeguardSettings {
    pub enabled: bool,
    /// More removals than this for one account within `window` trips it.
    pub max_removals: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// More removals within `window` than this share of the account's active links in the
    /// ledger trips it too (only with the ledger, and only once it knows an active link).
    pub max_share: f64,
    /// How often each replica reads every account's held queue (and its active links):
    /// what keeps an account tripped across restarts and replicas, and clears it once an
    /// operator emptied its held queue.
    #[serde(with = "humantime_serde")]
    pub refresh: Duration,
}

impl Default for SafeguardSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_removals: 20,
            window: Duration::from_secs(600),
            max_share: 0.05,
            refresh: Duration::from_secs(5),
        }
    }
}

/// The ledger's database and its projection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LedgerSettings {
    /// Off: no identity decisions, no history, `dlq` walks the queue. For a deployment that
    /// has nowhere to keep a file or a database.
    pub enabled: bool,
    /// `sqlite:<path>` (embedded, one replica; the directory is created) or
    /// `postgres://user@host/db` (shared by replicas). A password in a PostgreSQL URL is
    /// allowed only for a database on this machine; elsewhere set `ledger.password`.
    pub url: String,
    pub password: Option<SecretSource>,
    /// The whole URL, password included, from an `env:` or `file:` secret (e.g. the `uri`
    /// key of a database operator's Secret); replaces `url` and `password`.
    pub url_secret: Option<SecretSource>,
    pub max_connections: u32,
    /// The longest one ledger call may take before it counts as "the ledger is down".
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The projection commits up to this many events per transaction...
    pub batch_size: u16,
    /// ...or whatever it has after waiting this long for more.
    #[serde(with = "humantime_serde")]
    pub batch_linger: Duration,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            url: "sqlite:data/ledger.sqlite".into(),
            password: None,
            url_secret: None,
            max_connections: 8,
            timeout: Duration::from_secs(2),
            batch_size: 256,
            batch_linger: Duration::from_millis(50),
        }
    }
}

impl LedgerSettings {
    /// The URL with `ledger.password` put in, for connecting. Never log it.
    pub fn resolved_url(&self) -> Result<String, ConfigError> {
        use secrecy::ExposeSecret;
        if let Some(source) = &self.url_secret {
            let url = source.resolve("ledger.url_secret")?.expose_secret().trim().to_owned();
            if !["sqlite:", "postgres://", "postgresql://"].iter().any(|p| url.starts_with(p)) {
                return Err(ConfigError::invalid("ledger.url_secret", "must hold a sqlite: or postgres:// URL"));
            }
            return Ok(url);
        }
        let Some(source) = &self.password else { return Ok(self.url.clone()) };
        let password = source.resolve("ledger.password")?;
        let mut url = reqwest::Url::parse(&self.url)
            .map_err(|e| ConfigError::invalid("ledger.url", format!("is not a URL: {e}")))?;
        url.set_password(Some(password.expose_secret()))
            .map_err(|()| ConfigError::invalid("ledger.url", "cannot carry a password (an sqlite: URL?)"))?;
        Ok(url.into())
    }

    fn check(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        let url = self.url.as_str();
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::invalid("ledger.url", "must start with sqlite: or postgres://"));
        }
        if let Ok(parsed) = reqwest::Url::parse(url) {
            if parsed.password().is_some_and(|p| !p.is_empty())
                && !is_loopback_host(parsed.host_str().unwrap_or_default())
            {
                return Err(ConfigError::invalid(
                    "ledger.url",
                    "carries a password for a database that is not on this machine; leave it out of the URL and \
                     set ledger.password to an env: or file: secret",
                ));
            }
        }
        if self.batch_size == 0 {
            return Err(ConfigError::invalid("ledger.batch_size", "must be at least 1"));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::invalid("ledger.timeout", "must be more than 0"));
        }
        Ok(())
    }
}

/// The hire-event consumer on `topology.hr_queue`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HireSettings {
    /// Consume hire events in `provisioner run`.
    pub consume: bool,
    /// Hire events the broker may push ahead of acks; also how many are mapped at once.
    pub prefetch: u16,
}

impl Default for HireSettings {
    fn default() -> Self {
        Self { consume: true, prefetch: 16 }
    }
}

/// The HTTP hire intake (`POST /v1/hires`), off unless `listen` is set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeSettings {
    pub listen: Option<SocketAddr>,
    /// Accept `Authorization: Bearer <token>`; an `env:` or `file:` secret of 32 bytes or more.
    pub token: Option<SecretSource>,
    /// Accept `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`; an `env:`
    /// or `file:` secret of 32 bytes or more.
    pub hmac_secret: Option<SecretSource>,
    /// Larger bodies are refused with 413 before they are read in full.
    pub max_body_bytes: usize,
    /// How long a request waits for the broker (connect and confirms) before answering 503.
    #[serde(with = "humantime_serde")]
    pub broker_timeout: Duration,
    /// How far a signature's timestamp may be from the server's clock, either way; at most
    /// [`MAX_SIGNATURE_TOLERANCE`].
    #[serde(with = "humantime_serde")]
    pub signature_tolerance: Duration,
    /// Signatures remembered so that none is accepted twice within the tolerance. When it is
    /// full of signatures still in their window, signed requests get 503 until one expires.
    pub replay_cache_size: usize,
    /// Also accept the body-only `X-Signature: sha256=<hex>` of earlier versions, which
    /// carries no timestamp and can be replayed forever; only while integrations move over.
    pub accept_legacy_signatures: bool,
}

/// The longest `intake.signature_tolerance` accepted. Each replica has its own replay cache,
/// so within the window a captured signed request could still reach each other replica once.
pub const MAX_SIGNATURE_TOLERANCE: Duration = Duration::from_secs(15 * 60);
/// The largest `intake.replay_cache_size` accepted (about 100 bytes each).
pub const MAX_REPLAY_CACHE_SIZE: usize = 10_000_000;

impl Default for IntakeSettings {
    fn default() -> Self {
        Self {
            listen: None,
            token: None,
            hmac_secret: None,
            max_body_bytes: 64 * 1024,
            broker_timeout: Duration::from_secs(5),
            signature_tolerance: Duration::from_secs(5 * 60),
            replay_cache_size: 100_000,
            accept_legacy_signatures: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpSettings {
    /// Broker URL. A password here is allowed for local use; in production leave it out
    /// and set `amqp.password` to an `env:` or `file:` secret.
    pub url: String,
    /// The nodes of a broker cluster, tried in turn: on a connection loss the worker moves
    /// to the next one. When set, it replaces `url`. The same password rule applies to each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Applies to every address.
    pub password: Option<SecretSource>,
    pub connection_name: String,
    #[serde(with = "humantime_serde")]
    pub reconnect_initial_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub reconnect_max_delay: Duration,
    /// How long a publish may wait for the broker's confirm. A confirm can stall while a
    /// quorum queue elects a new leader; past this the delivery is requeued, not acked.
    #[serde(with = "humantime_serde")]
    pub confirm_timeout: Duration,
    /// How long each step of opening a session may take: the connection, the topology, each
    /// channel and consumer, and each step of closing one. A node that accepts TCP but never
    /// answers (booting, stopping, partitioned) must not hold the worker; past this the
    /// worker moves to the next address.
    #[serde(with = "humantime_serde")]
    pub setup_timeout: Duration,
    /// Which address of `amqp.urls` a worker tries first: `random` spreads replicas over the
    /// nodes, `first` keeps the listed order (a preferred node first).
    pub start_at: StartAt,
    /// A consumer that has room for more, on a queue with messages ready, yet has received
    /// nothing for this long is stuck (a consumer the broker dropped without telling): the
    /// worker reconnects. Checked every tenth of it.
    #[serde(with = "humantime_serde")]
    pub consumer_stall_timeout: Duration,
}

/// Which broker address a worker tries first (`amqp.start_at`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    #[default]
    Random,
    First,
}

impl Default for AmqpSettings {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            urls: Vec::new(),
            password: None,
            connection_name: "provisioner".into(),
            reconnect_initial_delay: Duration::from_millis(500),
            reconnect_max_delay: Duration::from_secs(30),
            confirm_timeout: Duration::from_secs(30),
            setup_timeout: Duration::from_secs(30),
            start_at: StartAt::Random,
            consumer_stall_timeout: Duration::from_secs(60),
        }
    }
}

/// The most addresses `amqp.urls` may list.
pub const MAX_BROKER_URLS: usize = 16;

impl AmqpSettings {
    /// The broker addresses in the order they are tried, each with its settings key:
    /// `amqp.urls` when set, else `amqp.url` alone.
    pub fn addresses(&self) -> Vec<(String, &str)> {
        if self.urls.is_empty() {
            vec![("amqp.url".to_owned(), self.url.as_str())]
        } else {
            self.urls.iter().enumerate().map(|(i, u)| (format!("amqp.urls[{i}]"), u.as_str())).collect()
        }
    }

    /// Every address with its password masked, for logs.
    pub fn redacted(&self) -> String {
        self.addresses().iter().map(|(_, u)| redact_url(u)).collect::<Vec<_>>().join(", ")
    }
}

/// Names of everything the service declares on the broker. Tests give each run its own
/// names; production keeps the documented defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopologySettings {
    pub jobs_exchange: String,
    pub events_exchange: String,
    pub retry_exchange: String,
    pub dead_exchange: String,
    pub dead_queue: String,
    /// Job queues are `<job_queue_prefix>.<vendor>`.
    pub job_queue_prefix: String,
    /// Retry tier queues are `<retry_queue_prefix>.<delay>`, e.g. `provisioning.retry.10s`.
    pub retry_queue_prefix: String,
    /// A queue bound to every event so that events are never unroutable; "" declares none.
    pub audit_queue: String,
    /// Oldest audit events are dropped beyond this many.
    pub audit_max_length: u32,
    /// Quorum `x-delivery-limit`: a message redelivered more often than this (crash loops,
    /// poison messages) is dead-lettered by the broker itself.
    pub delivery_limit: u32,
    /// Hire events are published here (topic; any routing key, e.g. `hire`).
    pub hr_exchange: String,
    /// The quorum queue the hire consumer reads, bound to `hr_exchange` with `#`.
    pub hr_queue: String,
    /// The quorum queue the ledger's projection reads: bound to every event and to the
    /// dead-letter exchange. Declared only when `ledger.enabled` is on.
    pub ledger_queue: String,
    /// Oldest entries are dropped beyond this many, so a ledger left down for days cannot
    /// fill the broker; the lag alert fires long before.
    pub ledger_max_length: u32,
    /// Removals the safeguard holds wait in `<held_queue_prefix>.<account>`, one quorum queue
    /// per configured account (see `crate::safeguard`).
    pub held_queue_prefix: String,
}

impl Default for TopologySettings {
    fn default() -> Self {
        Self {
            jobs_exchange: "provisioning.jobs".into(),
            events_exchange: "provisioning.events".into(),
            retry_exchange: "provisioning.retry".into(),
            dead_exchange: "provisioning.dead".into(),
            dead_queue: "provisioning.dead".into(),
            job_queue_prefix: "provisioning.jobs".into(),
            retry_queue_prefix: "provisioning.retry".into(),
            audit_queue: "provisioning.events.audit".into(),
            audit_max_length: 100_000,
            delivery_limit: 50,
            hr_exchange: "provisioning.hr".into(),
            hr_queue: "provisioning.hr".into(),
            ledger_queue: "provisioning.ledger".into(),
            ledger_max_length: 1_000_000,
            held_queue_prefix: "provisioning.held".into(),
        }
    }
}

impl TopologySettings {
    /// How long a person event waits in each of the `<hr_queue>.wait.<delay>` queues: a
    /// leave effective later goes to the longest one not past its time, and comes back to
    /// the person-event queue when it expires; so it takes effect at most a minute late.
    pub const HR_WAITS: [std::time::Duration; 5] = [
        std::time::Duration::from_secs(60),
        std::time::Duration::from_secs(10 * 60),
        std::time::Duration::from_secs(60 * 60),
        std::time::Duration::from_secs(6 * 60 * 60),
        std::time::Duration::from_secs(24 * 60 * 60),
    ];

    /// The queue a person event waits `delay` in (one of [`Self::HR_WAITS`]), e.g.
    /// `provisioning.hr.wait.1h`.
    pub fn hr_wait_queue(&self, delay: std::time::Duration) -> String {
        format!("{}.wait.{}", self.hr_queue, humantime::format_duration(delay).to_string().replace(' ', ""))
    }

    /// The wait for an event due in `remaining`: the longest wait not past it, or the shortest.
    pub fn hr_wait_for(remaining: std::time::Duration) -> std::time::Duration {
        Self::HR_WAITS.into_iter().rev().find(|w| *w <= remaining).unwrap_or(Self::HR_WAITS[0])
    }

    /// The same topology with every name suffixed, so concurrent test runs never share queues.
    pub fn namespaced(suffix: &str) -> Self {
        let d = Self::default();
        let n = |s: String| format!("{s}.{suffix}");
        Self {
            jobs_exchange: n(d.jobs_exchange),
            events_exchange: n(d.events_exchange),
            retry_exchange: n(d.retry_exchange),
            dead_exchange: n(d.dead_exchange),
            dead_queue: n(d.dead_queue),
            job_queue_prefix: n(d.job_queue_prefix),
            retry_queue_prefix: n(d.retry_queue_prefix),
            audit_queue: n(d.audit_queue),
            hr_exchange: n(d.hr_exchange),
            hr_queue: n(d.hr_queue),
            ledger_queue: n(d.ledger_queue),
            held_queue_prefix: n(d.held_queue_prefix),
            ..d
        }
    }

    pub fn job_queue(&self, vendor: VendorKey) -> String {
        format!("{}.{vendor}", self.job_queue_prefix)
    }

    /// The queue holding the account's removals that wait for an operator.
    pub fn held_queue(&self, account: &str) -> String {
        format!("{}.{account}", self.held_queue_prefix)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// After SIGTERM, how long jobs in flight may take to finish before the connection is
    /// closed and the broker redelivers them. Keep it below Kubernetes'
    /// terminationGracePeriodSeconds.
    #[serde(with = "humantime_serde")]
    pub drain_deadline: Duration,
    /// How long a delivery whose event (or retry or DLQ copy) the broker refused is held
    /// before it is requeued, so a broker-side problem does not become a hot loop.
    #[serde(with = "humantime_serde")]
    pub publish_failure_delay: Duration,
    /// The longest one delivery may be handled. A handler stuck past it is abandoned and its
    /// delivery requeued, so the quorum delivery limit dead-letters a job that keeps
    /// stalling. Keep it well above what a job can legitimately take: the wait for its account
    /// (`rate_limit.max_wait`) plus every inline attempt (`request_timeout` each).
    #[serde(with = "humantime_serde")]
    pub handler_timeout: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            drain_deadline: Duration::from_secs(20),
            publish_failure_delay: Duration::from_secs(1),
            handler_timeout: Duration::from_secs(300),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    pub inline: InlineRetrySettings,
    /// Durable retry tiers, in order. After the last one a transient failure becomes
    /// `unavailable` and is dead-lettered.
    #[serde(with = "humantime_serde_vec")]
    pub tiers: Vec<Duration>,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            inline: InlineRetrySettings::default(),
            tiers: [10, 60, 300, 1800, 7200].into_iter().map(Duration::from_secs).collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InlineRetrySettings {
    /// Vendor calls per delivery, the first one included.
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub initial_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// No inline retry starts once this much time has passed since the first attempt.
    #[serde(with = "humantime_serde")]
    pub budget: Duration,
}

impl Default for InlineRetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            budget: Duration::from_secs(5),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VendorsSettings {
    pub glance: VendorSettings,
    pub netsapiens: VendorSettings,
    pub clienttoolbox: VendorSettings,
}

impl Default for VendorsSettings {
    /// None of the vendors documents a rate limit. Glance's docs advise serialising calls
    /// per group, and a NetSapiens load-generator keeps to 10 sockets per host; these
    /// defaults follow them. Raise them per vendor or per account once the vendor agrees.
    fn default() -> Self {
        let with = |rate, concurrency| VendorSettings {
            account_rate: Rate::per_second(rate),
            account_concurrency: concurrency,
            ..VendorSettings::default()
        };
        Self { glance: with(10, 1), netsapiens: with(20, 10), clienttoolbox: with(10, 8) }
    }
}

impl VendorsSettings {
    pub fn get(&self, vendor: VendorKey) -> &VendorSettings {
        match vendor {
            VendorKey::Glance => &self.glance,
            VendorKey::Netsapiens => &self.netsapiens,
            VendorKey::Clienttoolbox => &self.clienttoolbox,
        }
    }

    pub fn get_mut(&mut self, vendor: VendorKey) -> &mut VendorSettings {
        match vendor {
            VendorKey::Glance => &mut self.glance,
            VendorKey::Netsapiens => &mut self.netsapiens,
            VendorKey::Clienttoolbox => &mut self.clienttoolbox,
        }
    }
}

/// Per-vendor consumer settings: each vendor has its own queue, consumer and limits so a
/// slow vendor never holds up the others.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VendorSettings {
    pub enabled: bool,
    /// Messages the broker may push ahead of acks. At least `concurrency`.
    pub prefetch: u16,
    /// Jobs of this vendor processed at once.
    pub concurrency: u16,
    /// TCP and TLS connect timeout of vendor calls.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Total time one vendor HTTP call may take.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Each account's request rate, unless the account sets `rate`.
    pub account_rate: Rate,
    /// Each account's calls in flight at once (per replica), unless the account sets
    /// `concurrency`.
    pub account_concurrency: u16,
    /// This vendor's durable retry schedule; `retry.tiers` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "humantime_serde_opt_vec")]
    pub retry_tiers: Option<Vec<Duration>>,
    /// An answer is read up to this many bytes; a larger one is a transient
    /// `unreadable_answer`.
    pub max_response_bytes: usize,
}

impl Default for VendorSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            prefetch: 32,
            concurrency: 16,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            account_rate: Rate::per_second(10),
            account_concurrency: 4,
            retry_tiers: None,
            max_response_bytes: 1024 * 1024,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    pub listen: SocketAddr,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self { listen: "0.0.0.0:9464".parse().expect("valid literal") }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON when stdout is not a terminal (production), text when it is.
    Auto,
    Json,
    Text,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing filter directive; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { format: LogFormat::Auto, level: "info".into() }
    }
}

/// Reads account settings of any TOML shape as text, so the vendors read one form whether a
/// value came from a file (`hard_delete = true`, a table) or the environment (always text).
fn settings_as_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, text)
        })
        .collect())
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventSettings {
    /// The CloudEvents `source` attribute of every result event.
    pub source: String,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self { source: "urn:provisioner".into() }
    }
}

/// One vendor account. Jobs name it; it holds everything a job must not carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSettings {
    pub vendor: VendorKey,
    /// The vendor API's base URL; the built-in stand-in vendor ignores it.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Vendor-level settings that are not secret (e.g. NetSapiens `domain`, ClientToolbox
    /// `account_id`), each as text: a boolean or number as written, a table (NetSapiens
    /// `suspend = { "user-scope" = "No Portal" }`) as the JSON object it spells.
    #[serde(default, deserialize_with = "settings_as_text")]
    pub settings: BTreeMap<String, String>,
    /// Credentials, each an `env:NAME` or `file:PATH` reference.
    #[serde(default)]
    pub credentials: BTreeMap<String, SecretSource>,
    /// Request rate, e.g. `10/s`; `vendors.<vendor>.account_rate` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// Calls in flight at once; `vendors.<vendor>.account_concurrency` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u16>,
    /// What jobs for this account may ask for (NetSapiens `domains`, `user_scopes`; Glance
    /// and ClientToolbox `roles`), each a list that replaces the vendor's default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policy: BTreeMap<String, Vec<String>>,
}

/// `localhost`, or an IPv4 or IPv6 loopback address (with or without brackets): a host
/// whose traffic never leaves this machine.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Where a secret comes from. Literal secrets are refused so none can end up in git.
#[derive(Clone, Debug, Serialize)]
#[serde(into = "String")]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
    /// Built in by code, e.g. the demo's sandbox credentials. Never read from configuration.
    Value(SecretString),
}

impl PartialEq for SecretSource {
    fn eq(&self, other: &Self) -> bool {
        use secrecy::ExposeSecret;
        match (self, other) {
            (SecretSource::Env(a), SecretSource::Env(b)) => a == b,
            (SecretSource::File(a), SecretSource::File(b)) => a == b,
            (SecretSource::Value(a), SecretSource::Value(b)) => a.expose_secret() == b.expose_secret(),
            _ => false,
        }
    }
}

impl Eq for SecretSource {}

impl From<SecretSource> for String {
    fn from(s: SecretSource) -> String {
        match s {
            SecretSource::Env(name) => format!("env:{name}"),
            SecretSource::File(path) => format!("file:{}", path.display()),
            // Serialising must never write a secret out; this form is refused when read back.
            SecretSource::Value(_) => "value:***".to_owned(),
        }
    }
}

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        if let Some(name) = raw.strip_prefix("env:").filter(|n| !n.is_empty()) {
            Ok(SecretSource::Env(name.to_owned()))
        } else if let Some(path) = raw.strip_prefix("file:").filter(|p| !p.is_empty()) {
            Ok(SecretSource::File(PathBuf::from(path)))
        } else {
            // Never echo the value: it may well be the secret itself.
            Err(serde::de::Error::custom(
                "a secret must be `env:VARIABLE` or `file:/path/to/file`; literal secrets are not accepted",
            ))
        }
    }
}

impl SecretSource {
    /// Reads the secret. Trailing newlines of mounted files are dropped, since Kubernetes
    /// Secrets and `echo > file` both tend to add one.
    pub fn resolve(&self, key: &str) -> Result<SecretString, ConfigError> {
        let value = match self {
            SecretSource::Value(v) => return Ok(v.clone()),
            SecretSource::Env(name) => std::env::var(name)
                .map_err(|_| ConfigError::invalid(key, format!("environment variable {name} is not set")))?,
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map_err(|e| ConfigError::invalid(key, format!("cannot read {}: {e}", path.display())))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        };
        if value.is_empty() {
            return Err(ConfigError::invalid(key, "the secret is empty"));
        }
        Ok(SecretString::from(value))
    }
}

/// `humantime` for a list of durations (`["10s", "1m"]`).
mod humantime_serde_vec {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|d| humantime::format_duration(*d).to_string()))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| humantime::parse_duration(s).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// `humantime` for an optional list of durations.
mod humantime_serde_opt_vec {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<Vec<Duration>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => super::humantime_serde_vec::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Duration>>, D::Error> {
        Option::<Vec<String>>::deserialize(d)?
            .map(|v| v.iter().map(|s| humantime::parse_duration(s).map_err(serde::de::Error::custom)).collect())
            .transpose()
    }
}

/// Where to read settings from.
#[derive(Clone, Debug)]
pub struct Sources {
    pub dir: PathBuf,
    /// Selects `<dir>/<environment>.toml` on top of `<dir>/default.toml`.
    pub environment: Option<String>,
    pub use_env_vars: bool,
}

impl Sources {
    pub fn dir(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), environment: std::env::var("PROVISIONER_ENV").ok(), use_env_vars: true }
    }
}

impl Settings {
    /// Loads defaults, then `default.toml`, then `<environment>.toml`, then `PROVISIONER__*`.
    /// A missing config directory is an error; missing files inside it are not.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        if !sources.dir.is_dir() {
            return Err(ConfigError::invalid("--config", format!("{} is not a directory", sources.dir.display())));
        }
        let mut fig = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::file(sources.dir.join("default.toml")));
        if let Some(env) = &sources.environment {
            let file = sources.dir.join(format!("{env}.toml"));
            if !file.is_file() {
                return Err(ConfigError::invalid("PROVISIONER_ENV", format!("{} does not exist", file.display())));
            }
            fig = fig.merge(Toml::file(file));
        }
        if sources.use_env_vars {
            fig = fig.merge(Env::prefixed("PROVISIONER__").split("__"));
        }
        let settings: Settings = fig.extract().map_err(Box::new)?;
        settings.check()?;
        Ok(settings)
    }

    /// Rules serde cannot express. Each error names the key to fix.
    pub fn check(&self) -> Result<(), ConfigError> {
        for vendor in VendorKey::ALL {
            let v = self.vendors.get(vendor);
            if v.concurrency == 0 {
                return Err(ConfigError::invalid(format!("vendors.{vendor}.concurrency"), "must be at least 1"));
            }
            if v.connect_timeout.is_zero() || v.request_timeout.is_zero() {
                return Err(ConfigError::invalid(
                    format!("vendors.{vendor}.request_timeout"),
                    "timeouts must be longer than 0s",
                ));
            }
            if v.prefetch < v.concurrency {
                return Err(ConfigError::invalid(
                    format!("vendors.{vendor}.prefetch"),
                    format!("must be at least concurrency ({}), or workers sit idle", v.concurrency),
                ));
            }
        }
        let inline = &self.retry.inline;
        if inline.max_attempts == 0 {
            return Err(ConfigError::invalid("retry.inline.max_attempts", "must be at least 1"));
        }
        if inline.initial_delay > inline.max_delay {
            return Err(ConfigError::invalid("retry.inline.initial_delay", "must not exceed retry.inline.max_delay"));
        }
        let mut schedules = vec![("retry.tiers".to_owned(), &self.retry.tiers)];
        for vendor in VendorKey::ALL {
            if let Some(tiers) = &self.vendors.get(vendor).retry_tiers {
                schedules.push((format!("vendors.{vendor}.retry_tiers"), tiers));
            }
        }
        for (key, tiers) in schedules {
            if tiers.is_empty() {
                // An open circuit breaker parks jobs in a tier; there must be one.
                return Err(ConfigError::invalid(key, "must list at least one tier"));
            }
            if tiers.iter().any(Duration::is_zero) {
                return Err(ConfigError::invalid(key, "every tier must be longer than 0s"));
            }
        }
        for vendor in VendorKey::ALL {
            if self.vendors.get(vendor).account_concurrency == 0 {
                return Err(ConfigError::invalid(
                    format!("vendors.{vendor}.account_concurrency"),
                    "must be at least 1",
                ));
            }
        }
        for (name, account) in &self.accounts {
            if account.concurrency == Some(0) {
                return Err(ConfigError::invalid(format!("accounts.{name}.concurrency"), "must be at least 1"));
            }
        }
        self.rate_limit.check().map_err(|(key, message)| ConfigError::invalid(key, message))?;
        if let Some(url) = &self.rate_limit.redis_url {
            check_redis_url(url)?;
        }
        self.circuit_breaker.check().map_err(|(key, message)| ConfigError::invalid(key, message))?;
        if self.worker.handler_timeout <= self.rate_limit.max_wait + self.retry.inline.budget {
            return Err(ConfigError::invalid(
                "worker.handler_timeout",
                "must be longer than rate_limit.max_wait plus retry.inline.budget, or a job queued for its account is abandoned",
            ));
        }
        if self.topology.delivery_limit == 0 {
            return Err(ConfigError::invalid("topology.delivery_limit", "must be at least 1"));
        }
        let t = &self.topology;
        for (key, value) in [
            ("jobs_exchange", &t.jobs_exchange),
            ("events_exchange", &t.events_exchange),
            ("retry_exchange", &t.retry_exchange),
            ("dead_exchange", &t.dead_exchange),
            ("dead_queue", &t.dead_queue),
            ("job_queue_prefix", &t.job_queue_prefix),
            ("retry_queue_prefix", &t.retry_queue_prefix),
            ("hr_exchange", &t.hr_exchange),
            ("hr_queue", &t.hr_queue),
            ("held_queue_prefix", &t.held_queue_prefix),
        ] {
            if value.is_empty() || value.len() > 200 {
                return Err(ConfigError::invalid(format!("topology.{key}"), "must be 1 to 200 characters"));
            }
        }
        if self.amqp.urls.len() > MAX_BROKER_URLS {
            return Err(ConfigError::invalid("amqp.urls", format!("lists more than {MAX_BROKER_URLS} addresses")));
        }
        if self.amqp.confirm_timeout.is_zero() {
            return Err(ConfigError::invalid("amqp.confirm_timeout", "must be longer than 0s"));
        }
        if self.amqp.setup_timeout.is_zero() {
            return Err(ConfigError::invalid("amqp.setup_timeout", "must be longer than 0s"));
        }
        if self.amqp.consumer_stall_timeout < Duration::from_secs(1) {
            return Err(ConfigError::invalid("amqp.consumer_stall_timeout", "must be at least 1s"));
        }
        for (key, address) in self.amqp.addresses() {
            if address.parse::<lapin::uri::AMQPUri>().is_err() {
                return Err(ConfigError::invalid(key, "is not a valid amqp:// or amqps:// URL"));
            }
            // Literal secrets are refused everywhere else; a broker password in the URL is
            // tolerated only for a broker on this machine (the defaults, the demo, the tests).
            if let Ok(url) = reqwest::Url::parse(address) {
                if url.password().is_some_and(|p| !p.is_empty())
                    && !is_loopback_host(url.host_str().unwrap_or_default())
                {
                    return Err(ConfigError::invalid(
                        key,
                        "carries a password for a broker that is not on this machine; leave it out of the URL and \
                         set amqp.password to an env: or file: secret",
                    ));
                }
            }
        }
        for (name, account) in &self.accounts {
            if let Err(e) = crate::contract::AccountName::parse(name) {
                return Err(ConfigError::invalid(format!("accounts.{name}"), format!("account name {e}")));
            }
            if let Some(url) = &account.base_url {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(ConfigError::invalid(format!("accounts.{name}.base_url"), "must be an http(s) URL"));
                }
            }
        }
        self.ledger.check()?;
        // AMQP names are at most 255 bytes: `<held_queue_prefix>.<account>` must fit.
        if let Some(longest) = self.accounts.keys().map(String::len).max() {
            if self.topology.held_queue_prefix.len() + 1 + longest > 255 {
                return Err(ConfigError::invalid(
                    "topology.held_queue_prefix",
                    "with the longest account name it makes a held queue name longer than 255 bytes; shorten it",
                ));
            }
        }
        let guard = &self.safeguard;
        if guard.max_removals == 0 {
            return Err(ConfigError::invalid("safeguard.max_removals", "must be at least 1"));
        }
        if guard.window.is_zero() {
            return Err(ConfigError::invalid("safeguard.window", "must be longer than 0s"));
        }
        if !(guard.max_share > 0.0 && guard.max_share <= 1.0) {
            return Err(ConfigError::invalid("safeguard.max_share", "must be above 0 and at most 1"));
        }
        if guard.refresh < Duration::from_millis(100) {
            return Err(ConfigError::invalid("safeguard.refresh", "must be at least 100ms"));
        }
        if self.hire.prefetch == 0 {
            return Err(ConfigError::invalid("hire.prefetch", "must be at least 1"));
        }
        let tenant_credentials =
            self.tenants.values().any(|t| t.intake_token.is_some() || t.intake_hmac_secret.is_some());
        if self.intake.listen.is_some()
            && self.intake.token.is_none()
            && self.intake.hmac_secret.is_none()
            && !tenant_credentials
        {
            return Err(ConfigError::invalid(
                "intake.listen",
                "the intake needs intake.token or intake.hmac_secret, or a tenant's intake_token or intake_hmac_secret: it never runs unauthenticated",
            ));
        }
        if let Err((key, message)) = self.http.check() {
            return Err(ConfigError::invalid(format!("http.{key}"), message));
        }
        if self.intake.max_body_bytes == 0 {
            return Err(ConfigError::invalid("intake.max_body_bytes", "must be at least 1"));
        }
        let tolerance = self.intake.signature_tolerance;
        if tolerance < Duration::from_secs(1) || tolerance > MAX_SIGNATURE_TOLERANCE {
            return Err(ConfigError::invalid(
                "intake.signature_tolerance",
                format!("must be from 1s to {}", humantime::format_duration(MAX_SIGNATURE_TOLERANCE)),
            ));
        }
        if !(1..=MAX_REPLAY_CACHE_SIZE).contains(&self.intake.replay_cache_size) {
            return Err(ConfigError::invalid(
                "intake.replay_cache_size",
                format!("must be from 1 to {MAX_REPLAY_CACHE_SIZE}"),
            ));
        }
        Ok(())
    }

    /// Every broker address (see [`AmqpSettings::addresses`]) with `amqp.password` applied.
    pub fn amqp_uris(&self) -> Result<Vec<lapin::uri::AMQPUri>, ConfigError> {
        let password = match &self.amqp.password {
            Some(source) => {
                use secrecy::ExposeSecret;
                Some(source.resolve("amqp.password")?.expose_secret().to_owned())
            }
            None => None,
        };
        self.amqp
            .addresses()
            .into_iter()
            .map(|(key, address)| {
                let mut uri =
                    address.parse::<lapin::uri::AMQPUri>().map_err(|e| ConfigError::invalid(key, e.to_string()))?;
                if let Some(password) = &password {
                    uri.authority.userinfo.password.clone_from(password);
                }
                Ok(uri)
            })
            .collect()
    }

    /// `rate_limit.redis_url`, its secret read when it is an `env:` or `file:` reference;
    /// `None` unless `rate_limit.backend = "redis"`.
    pub fn redis_url(&self) -> Result<Option<SecretString>, ConfigError> {
        const KEY: &str = "rate_limit.redis_url";
        if self.rate_limit.backend != crate::rate_limit::Backend::Redis {
            return Ok(None);
        }
        let Some(url) = &self.rate_limit.redis_url else {
            return Err(ConfigError::invalid(KEY, "must be set when rate_limit.backend is \"redis\""));
        };
        if url.starts_with("env:") || url.starts_with("file:") {
            let source: SecretSource = serde_json::from_value(serde_json::Value::String(url.clone()))
                .map_err(|e| ConfigError::invalid(KEY, e.to_string()))?;
            let resolved = source.resolve(KEY)?;
            use secrecy::ExposeSecret;
            if !is_redis_url(resolved.expose_secret()) {
                return Err(ConfigError::invalid(KEY, "the secret is not a redis:// or rediss:// URL"));
            }
            return Ok(Some(resolved));
        }
        Ok(Some(SecretString::from(url.clone())))
    }

    /// The vendor's durable retry schedule.
    pub fn retry_tiers(&self, vendor: VendorKey) -> &[Duration] {
        self.vendors.get(vendor).retry_tiers.as_deref().unwrap_or(&self.retry.tiers)
    }

    /// Every tier of every schedule, shortest first, once each: the tier queues to declare.
    pub fn all_retry_tiers(&self) -> Vec<Duration> {
        let mut all: Vec<Duration> = VendorKey::ALL.iter().flat_map(|v| self.retry_tiers(*v).iter().copied()).collect();
        all.extend(&self.retry.tiers);
        all.sort();
        all.dedup();
        all
    }

    pub fn account(&self, name: &str) -> Option<&AccountSettings> {
        self.accounts.get(name)
    }
}

fn is_redis_url(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "redis" | "rediss") && u.host_str().is_some())
}

/// A literal `rate_limit.redis_url` must be a Redis URL, and carries a password only for a
/// Redis on this machine (as `amqp.url`); else it is an `env:` or `file:` secret.
fn check_redis_url(url: &str) -> Result<(), ConfigError> {
    const KEY: &str = "rate_limit.redis_url";
    if url.starts_with("env:") || url.starts_with("file:") {
        return serde_json::from_value::<SecretSource>(serde_json::Value::String(url.to_owned()))
            .map(|_| ())
            .map_err(|e| ConfigError::invalid(KEY, e.to_string()));
    }
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Err(ConfigError::invalid(KEY, "is not a redis:// or rediss:// URL, nor an env: or file: secret"));
    };
    if !is_redis_url(url) {
        return Err(ConfigError::invalid(KEY, "is not a redis:// or rediss:// URL, nor an env: or file: secret"));
    }
    if parsed.password().is_some_and(|p| !p.is_empty()) && !is_loopback_host(parsed.host_str().unwrap_or_default()) {
        return Err(ConfigError::invalid(
            KEY,
            "carries a password for a Redis that is not on this machine; put the whole URL in an env: or file: secret",
        ));
    }
    Ok(())
}

/// The URL with any password masked, for logs.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split(':').next().unwrap_or("");
                format!("{scheme}://{user}:***@{host}")
            }
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The directory holding `default.toml` when `--config` is not given.
pub fn default_dir() -> &'static Path {
    Path::new("config")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_settings_of_any_toml_shape_are_read_as_text() {
        use figment::providers::{Format, Serialized, Toml};
        let toml = r#"
[accounts.acme-ns]
vendor = "netsapiens"
settings = { domain = "acme.example", hard_delete = true, retries = 3, suspend = { "user-scope" = "No Portal" } }
"#;
        let s: Settings = figment::Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::string(toml))
            .extract()
            .unwrap();
        let settings = &s.accounts["acme-ns"].settings;
        assert_eq!(settings["domain"], "acme.example");
        assert_eq!(settings["hard_delete"], "true");
        assert_eq!(settings["retries"], "3");
        let suspend: serde_json::Value = serde_json::from_str(&settings["suspend"]).unwrap();
        assert_eq!(suspend, serde_json::json!({"user-scope": "No Portal"}));
    }

    fn sources(dir: &Path) -> Sources {
        Sources { dir: dir.to_owned(), environment: None, use_env_vars: false }
    }

    #[test]
    fn a_broker_password_in_the_url_is_refused_unless_the_broker_is_local() {
        let with_url =
            |url: &str| Settings { amqp: AmqpSettings { url: url.into(), ..Default::default() }, ..Default::default() };
        let e = with_url("amqp://app:s3cret@rabbitmq.prod:5672/%2f").check().unwrap_err().to_string();
        assert!(e.contains("`amqp.url`") && e.contains("amqp.password") && !e.contains("s3cret"), "{e}");
        for fine in
            ["amqp://guest:guest@127.0.0.1:5672/%2f", "amqp://u:p@localhost/%2f", "amqp://app@rabbitmq.prod:5672/%2f"]
        {
            assert!(with_url(fine).check().is_ok(), "{fine}");
        }
    }

    #[test]
    fn the_redis_url_is_required_checked_and_a_secret_when_it_carries_a_password() {
        use crate::rate_limit::Backend;
        let with = |backend, url: Option<&str>| {
            let mut s = Settings::default();
            s.rate_limit.backend = backend;
            s.rate_limit.redis_url = url.map(str::to_owned);
            s
        };
        let e = with(Backend::Redis, None).check().unwrap_err().to_string();
        assert!(e.contains("rate_limit.redis_url"), "{e}");
        let e = with(Backend::Redis, Some("redis://:s3cret@redis.prod:6379/0")).check().unwrap_err().to_string();
        assert!(e.contains("rate_limit.redis_url") && e.contains("secret") && !e.contains("s3cret"), "{e}");
        for bad in ["http://redis.prod", "redis.prod:6379", "env:"] {
            assert!(with(Backend::Redis, Some(bad)).check().is_err(), "{bad}");
        }
        for fine in
            ["redis://127.0.0.1:6379/0", "redis://:pw@localhost/0", "rediss://redis.prod:6380/0", "env:REDIS_URL"]
        {
            assert!(with(Backend::Redis, Some(fine)).check().is_ok(), "{fine}");
        }
        assert!(with(Backend::Local, None).redis_url().unwrap().is_none(), "local needs no Redis");

        let dir = tempdir_with("");
        let file = dir.path().join("redis-url");
        std::fs::write(&file, "rediss://:s3cret@redis.prod:6380/0\n").unwrap();
        let s = with(Backend::Redis, Some(&format!("file:{}", file.display())));
        s.check().unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(s.redis_url().unwrap().unwrap().expose_secret(), "rediss://:s3cret@redis.prod:6380/0");
        std::fs::write(&file, "s3cret").unwrap();
        let e = s.redis_url().unwrap_err().to_string();
        assert!(e.contains("not a redis://") && !e.contains("s3cret"), "{e}");
    }

    #[test]
    fn several_broker_addresses_replace_the_single_url_and_each_keeps_the_password_rule() {
        let with_urls = |urls: &[&str]| Settings {
            amqp: AmqpSettings { urls: urls.iter().map(|u| (*u).to_owned()).collect(), ..Default::default() },
            ..Default::default()
        };
        let s = with_urls(&["amqp://app@rabbit-0:5672/%2f", "amqp://app@rabbit-1:5672/%2f"]);
        assert!(s.check().is_ok());
        let hosts: Vec<String> = s.amqp_uris().unwrap().into_iter().map(|u| u.authority.host).collect();
        assert_eq!(hosts, ["rabbit-0", "rabbit-1"], "amqp.urls wins over amqp.url, in order");
        assert_eq!(Settings::default().amqp_uris().unwrap().len(), 1, "without amqp.urls, amqp.url alone");

        let e = with_urls(&["amqp://guest:guest@127.0.0.1:5681/%2f", "amqp://app:s3cret@rabbit-1/%2f"])
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("`amqp.urls[1]`") && e.contains("amqp.password") && !e.contains("s3cret"), "{e}");
        let e = with_urls(&["amqp://guest:guest@127.0.0.1:5681/%2f", "http://x"]).check().unwrap_err().to_string();
        assert!(e.contains("`amqp.urls[1]`"), "{e}");
        let e = with_urls(&["amqp://app@rabbit/%2f"; MAX_BROKER_URLS + 1]).check().unwrap_err().to_string();
        assert!(e.contains("`amqp.urls`"), "{e}");

        // amqp.password applies to every address.
        let dir = tempdir_with("");
        std::fs::write(dir.path().join("amqp-password"), "from-the-secret\n").unwrap();
        let mut s = with_urls(&["amqp://app@rabbit-0/%2f", "amqp://app@rabbit-1/%2f"]);
        s.amqp.password = Some(SecretSource::File(dir.path().join("amqp-password")));
        let passwords: Vec<String> =
            s.amqp_uris().unwrap().into_iter().map(|u| u.authority.userinfo.password).collect();
        assert_eq!(passwords, ["from-the-secret", "from-the-secret"]);
        assert!(!s.amqp.redacted().contains("from-the-secret"));
    }

    #[test]
    fn loopback_hosts() {
        for host in ["localhost", "127.0.0.1", "127.8.0.3", "[::1]", "::1", "LOCALHOST"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["", "rabbitmq", "10.0.0.1", "localhost.evil.example", "[::2]"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn shipped_default_toml_matches_the_defaults_in_code() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let text = std::fs::read_to_string(dir.join("default.toml")).unwrap();
        let from_file: Settings = Figment::from(Toml::string(&text)).extract().unwrap();
        assert_eq!(from_file, Settings::default());
    }

    #[test]
    fn a_wrong_type_names_the_key() {
        let dir = tempdir_with("[vendors.glance]\nprefetch = \"lots\"\n");
        let err = Settings::load(&sources(dir.path())).unwrap_err().to_string();
        assert!(err.contains("vendors.glance.prefetch"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let dir = tempdir_with("[worker]\ndrain_dedline = \"5s\"\n");
        let err = Settings::load(&sources(dir.path())).unwrap_err().to_string();
        assert!(err.contains("drain_dedline"), "{err}");
    }

    #[test]
    fn a_rule_violation_names_the_key() {
        let dir = tempdir_with("[vendors.netsapiens]\nprefetch = 4\nconcurrency = 8\n");
        let err = Settings::load(&sources(dir.path())).unwrap_err().to_string();
        assert!(err.contains("vendors.netsapiens.prefetch"), "{err}");
    }

    #[test]
    fn a_vendor_may_have_its_own_retry_schedule_and_every_tier_gets_a_queue() {
        let dir = tempdir_with(
            "[retry]\ntiers = [\"10s\", \"1m\"]\n[vendors.glance]\nretry_tiers = [\"30s\", \"1m\", \"1h\"]\n",
        );
        let s = Settings::load(&sources(dir.path())).unwrap();
        let secs = |t: &[Duration]| t.iter().map(Duration::as_secs).collect::<Vec<_>>();
        assert_eq!(secs(s.retry_tiers(VendorKey::Glance)), [30, 60, 3600]);
        assert_eq!(secs(s.retry_tiers(VendorKey::Netsapiens)), [10, 60]);
        assert_eq!(secs(&s.all_retry_tiers()), [10, 30, 60, 3600]);

        let dir = tempdir_with("[vendors.clienttoolbox]\nretry_tiers = []\n");
        let err = Settings::load(&sources(dir.path())).unwrap_err().to_string();
        assert!(err.contains("vendors.clienttoolbox.retry_tiers") && err.contains("at least one"), "{err}");
    }

    #[test]
    fn account_limits_default_per_vendor_and_a_bad_rate_names_its_key() {
        let dir = tempdir_with("[vendors.netsapiens]\naccount_concurrency = 3\n");
        let s = Settings::load(&sources(dir.path())).unwrap();
        assert_eq!(s.vendors.glance.account_concurrency, 1, "Glance keeps its own default");
        assert_eq!(s.vendors.netsapiens.account_concurrency, 3);
        assert_eq!(s.vendors.netsapiens.account_rate, Rate::per_second(20), "untouched keys keep the vendor's default");

        let dir = tempdir_with("[accounts.acme]\nvendor = \"glance\"\nrate = \"fast\"\n");
        let err = Settings::load(&sources(dir.path())).unwrap_err().to_string();
        assert!(err.contains("accounts.acme.rate") && err.contains("10/s"), "{err}");
        let dir = tempdir_with("[circuit_breaker]\nfailure_ratio = 1.5\n");
        let err = Settings::load(&sources(dir.path())).unwrap_err().to_string();
        assert!(err.contains("circuit_breaker.failure_ratio"), "{err}");
    }

    #[test]
    fn the_intake_needs_a_credential_of_its_own_or_of_a_tenant() {
        let listen = "[intake]\nlisten = \"127.0.0.1:0\"\n";
        let err = Settings::load(&sources(tempdir_with(listen).path())).unwrap_err().to_string();
        assert!(err.contains("intake.listen") && err.contains("never runs unauthenticated"), "{err}");
        let tenant_only = format!("{listen}[tenants.acme]\nintake_token = \"env:ACME_INTAKE_TOKEN\"\n");
        let s = Settings::load(&sources(tempdir_with(&tenant_only).path())).unwrap();
        assert_eq!(s.tenants["acme"].intake_token, Some(SecretSource::Env("ACME_INTAKE_TOKEN".into())));
        let literal = "[tenants.acme]\nintake_hmac_secret = \"hunter2hunter2hunter2hunter2hunter2\"\n";
        let err = Settings::load(&sources(tempdir_with(literal).path())).unwrap_err().to_string();
        assert!(err.contains("literal secrets are not accepted") && !err.contains("hunter2"), "{err}");
    }

    #[test]
    fn the_signature_tolerance_and_the_replay_cache_are_bounded() {
        for (toml, key) in [
            ("[intake]\nsignature_tolerance = \"16m\"\n", "intake.signature_tolerance"),
            ("[intake]\nsignature_tolerance = \"0s\"\n", "intake.signature_tolerance"),
            ("[intake]\nreplay_cache_size = 0\n", "intake.replay_cache_size"),
            ("[intake]\nreplay_cache_size = 10000001\n", "intake.replay_cache_size"),
        ] {
            let err = Settings::load(&sources(tempdir_with(toml).path())).unwrap_err().to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
        let s = Settings::load(&sources(tempdir_with("[intake]\nsignature_tolerance = \"15m\"\n").path())).unwrap();
        assert_eq!(s.intake.signature_tolerance, MAX_SIGNATURE_TOLERANCE);
    }

    #[test]
    fn literal_secrets_are_refused_without_echoing_them() {
        let dir = tempdir_with("[accounts.acme]\nvendor = \"glance\"\ncredentials = { PartnerPW = \"hunter2\" }\n");
        let err = Settings::load(&sources(dir.path())).unwrap_err().to_string();
        assert!(err.contains("literal secrets are not accepted"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn secrets_resolve_from_files_and_name_the_key_when_missing() {
        let dir = tempdir_with("");
        let secret_file = dir.path().join("pw");
        std::fs::write(&secret_file, "s3cret\n").unwrap();
        let src = SecretSource::File(secret_file);
        use secrecy::ExposeSecret;
        assert_eq!(src.resolve("k").unwrap().expose_secret(), "s3cret");
        let missing = SecretSource::Env("PROVISIONER_TEST_SURELY_UNSET".into());
        let err = missing.resolve("accounts.a.credentials.x").unwrap_err().to_string();
        assert!(err.contains("accounts.a.credentials.x") && err.contains("PROVISIONER_TEST_SURELY_UNSET"), "{err}");
    }

    #[test]
    fn missing_environment_file_is_an_error() {
        let dir = tempdir_with("");
        let mut s = sources(dir.path());
        s.environment = Some("nope".into());
        assert!(Settings::load(&s).unwrap_err().to_string().contains("PROVISIONER_ENV"));
    }

    #[test]
    fn a_ledger_url_with_its_password_comes_only_from_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let uri = dir.path().join("uri");
        std::fs::write(&uri, "postgres://app:s3cret@db.internal/provisioner\n").unwrap();
        let literal =
            LedgerSettings { url: "postgres://app:s3cret@db.internal/provisioner".into(), ..Default::default() };
        let e = literal.check().unwrap_err().to_string();
        assert!(e.contains("ledger.url") && !e.contains("s3cret"), "{e}");
        let from_secret = LedgerSettings { url_secret: Some(SecretSource::File(uri.clone())), ..Default::default() };
        from_secret.check().unwrap();
        assert_eq!(from_secret.resolved_url().unwrap(), "postgres://app:s3cret@db.internal/provisioner");
        std::fs::write(&uri, "mysql://app:s3cret@db.internal/x").unwrap();
        let e = from_secret.resolved_url().unwrap_err().to_string();
        assert!(e.contains("ledger.url_secret") && !e.contains("s3cret"), "{e}");
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("amqp://user:pw@host:5672/%2f"), "amqp://user:***@host:5672/%2f");
        assert_eq!(redact_url("amqp://host"), "amqp://host");
    }

    fn tempdir_with(default_toml: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("default.toml"), default_toml).unwrap();
        dir
    }
}
