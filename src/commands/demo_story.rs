//! The demo's second part: one person's whole story in person events (hire, surname change, leave, rehire), then a mass leave the safeguard holds.
//!
//! Everything runs as in production, in memory: each event goes through the person-event
//! consumer's decision (the tenant's mapping, the ledger's links), its jobs through the
//! pipeline and the real adapters against the sandboxes, and every outcome back into the
//! ledger through the projection, so the next event sees what the last one did.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::demo_outcomes::{project, tally, Row};
use crate::config::{Settings, TopologySettings};
use crate::contract::VendorKey;
use crate::hire::Mapper;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::sandbox;
use crate::transport::memory::MemoryBroker;
use crate::transport::{Inbound, Outbound, Publisher};
use crate::vendors::build_adapters;

/// At most this many suspends and deletes per account in ten minutes, so the mass leave
/// trips the safeguard after a handful.
pub const STORY_MAX_REMOVALS: u32 = 5;

/// How many people the mass leave lets go at once.
pub const MASS_LEAVE: usize = 8;

/// The tenant's mapping: the development config's, with ClientToolbox suspending (through
/// the account's `settings.suspend`) so the rehire can restore it.
const TENANT: &str = r#"
[tenants.acme]
default_targets = ["glance", "netsapiens", "clienttoolbox"]

[tenants.acme.glance]
account = "story-glance"
fields.PartnerUserID = "EMP-{id}"
fields.UserAddress = "{first_name|slug}.{last_name|slug}.acme.glance.net"
fields.UserFirst = "{first_name}"
fields.UserLast = "{last_name}"

[tenants.acme.netsapiens]
account = "story-netsapiens"
fields.user = "{extension|digits}"
fields.name-first-name = "{first_name}"
fields.name-last-name = "{last_name}"
fields.email = "{email}"
fields.user-scope = "Basic User"

[tenants.acme.clienttoolbox]
account = "story-clienttoolbox"
on_leave = "suspend"
fields.user_name = { template = "{first_name|slug:_}_{last_name|slug:_}", filters = ["truncate:20"] }
fields.user_new_password = { generate = "password" }
fields.user_first_name = "{first_name}"
fields.user_last_name = "{last_name}"
fields.user_role = "K"
fields.allowed_campaigns = "all"
"#;

/// One act of the story: the event, and what each of its jobs ended as.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Act {
    pub title: String,
    /// Outcome name → how many of the act's jobs ended so.
    pub outcomes: BTreeMap<String, usize>,
    /// Removals the safeguard held for an operator.
    pub held: usize,
    #[serde(skip)]
    pub rows: Vec<Row>,
    /// What the events found and did not act on (the `noted` step).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The settings of the story: three accounts on the sandboxes at `sandbox_url`, the tenant mapping,
/// and a safeguard that trips after [`STORY_MAX_REMOVALS`].
pub fn story_settings(sandbox_url: &str) -> anyhow::Result<Settings> {
    use figment::providers::{Format, Toml};
    #[derive(serde::Deserialize)]
    struct Tenants {
        tenants: BTreeMap<String, crate::config::TenantSettings>,
    }
    let mut s = Settings { topology: TopologySettings::default(), ..Settings::default() };
    s.retry.tiers = vec![std::time::Duration::from_millis(200)];
    s.safeguard.max_removals = STORY_MAX_REMOVALS;
    for vendor in VendorKey::ALL {
        s.accounts.insert(format!("story-{vendor}"), sandbox::account(vendor, sandbox_url));
    }
    s.tenants = figment::Figment::from(Toml::string(TENANT)).extract::<Tenants>()?.tenants;
    Ok(s)
}

/// The story's machinery: the broker, the pipeline and the ledger it shares across acts.
struct Stage {
    settings: Settings,
    mapper: Mapper,
    ledger: Ledger,
    pipeline: Arc<Pipeline>,
    broker: MemoryBroker,
    /// How many events and dead letters the ledger has been given so far.
    projected: (usize, usize),
}

impl Stage {
    /// Hands the events to the person-event consumer's decision and publishes what it says.
    async fn send(&self, events: &[Value]) -> anyhow::Result<Vec<String>> {
        let mut notes = Vec::new();
        for event in events {
            let msg = Inbound {
                body: event.to_string().into_bytes(),
                exchange: self.settings.topology.hr_exchange.clone(),
                routing_key: event["type"].as_str().unwrap_or("hire").to_owned(),
                ..Default::default()
            };
            let d = crate::hire::consumer::disposition(
                &self.mapper,
                &self.settings.topology,
                Some(&self.ledger),
                &msg,
                chrono::Utc::now(),
            )
            .await;
            for out in &d.publish {
                if out.routing_key.starts_with("job.noted") {
                    notes.extend(noted(out));
                }
                self.broker.publish(out).await?;
            }
        }
        Ok(notes)
    }

    /// Runs every job to its end, and gives the ledger what the projection would.
    async fn settle(&mut self) -> anyhow::Result<()> {
        crate::worker::run_until_idle(&self.broker, self.pipeline.clone(), Metrics::new(), 8, CancellationToken::new())
            .await;
        let (events, dead) = (self.broker.events(), self.broker.dead_letters());
        let fresh = events[self.projected.0..].iter().chain(&dead[self.projected.1..]);
        project(&self.ledger, &self.settings.topology, fresh).await?;
        self.projected = (events.len(), dead.len());
        Ok(())
    }

    /// One act: the events, their jobs run, and the outcomes of this act's jobs.
    async fn act(&mut self, title: &str, events: &[Value]) -> anyhow::Result<Act> {
        let (seen, held_before) = (self.broker.events().len(), self.broker.held().len());
        let notes = self.send(events).await?;
        self.settle().await?;
        let fresh = &self.broker.events()[seen..];
        let rows = tally(fresh, &[]).rows;
        let mut outcomes = BTreeMap::new();
        for r in &rows {
            *outcomes.entry(r.outcome.clone()).or_default() += 1;
        }
        let held = self.broker.held().len() - held_before;
        Ok(Act { title: title.to_owned(), outcomes, held, rows, notes })
    }
}

/// The notes of a `noted` step event.
fn noted(out: &Outbound) -> Vec<String> {
    let doc: Value = serde_json::from_slice(&out.body).unwrap_or_default();
    doc["data"]["notes"]
        .as_array()
        .map(|n| n.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn person_event(event_id: &str, kind: &str, employee: Value) -> Value {
    json!({"event_id": event_id, "type": kind, "tenant": "acme", "employee": employee})
}

/// Zoë's hire, her surname change, her leave and her rehire; then [`MASS_LEAVE`] colleagues
/// hired at Glance and let go at once, of whom the safeguard holds all past the limit.
pub async fn run(sandbox_url: &str) -> anyhow::Result<Vec<Act>> {
    let settings = story_settings(sandbox_url)?;
    let mapper = Mapper::new(&settings).map_err(|e| anyhow::anyhow!("{e}"))?;
    let ledger = Ledger::in_memory().await?;
    let pipeline =
        Arc::new(Pipeline::new(&settings, build_adapters(&settings)?, &Metrics::new(), Some(ledger.clone())));
    let broker = MemoryBroker::new(settings.topology.clone());
    let mut stage = Stage { settings, mapper, ledger, pipeline, broker, projected: (0, 0) };

    let zoe = json!({"id": "000731", "first_name": "Zoë", "last_name": "O'Brien", "email": "zoe@acme.example",
                     "extension": "1731"});
    let mut acts =
        vec![stage.act("hire: Zoë O'Brien joins", &[person_event("story-hire", "hire", zoe.clone())]).await?];
    // The address template reads both names: the update sends both.
    let married = json!({"id": "000731", "first_name": "Zoë", "last_name": "Smith"});
    acts.push(
        stage.act("update: her surname becomes Smith", &[person_event("story-update", "update", married)]).await?,
    );
    acts.push(stage.act("leave: she leaves", &[person_event("story-leave", "leave", json!({"id": "000731"}))]).await?);
    let mut back = zoe;
    back["last_name"] = json!("Smith");
    acts.push(stage.act("rehire: she comes back", &[person_event("story-rehire", "rehire", back)]).await?);

    let staff: Vec<String> = (1..=MASS_LEAVE).map(|i| format!("{:06}", 800 + i)).collect();
    let hires: Vec<Value> = staff
        .iter()
        .map(|id| {
            let mut e = person_event(
                &format!("story-hire-{id}"),
                "hire",
                json!({"id": id, "first_name": "Sam", "last_name": format!("Staff{id}")}),
            );
            e["targets"] = json!(["glance"]);
            e
        })
        .collect();
    acts.push(stage.act(&format!("{MASS_LEAVE} colleagues join (Glance only)"), &hires).await?);
    let leaves: Vec<Value> =
        staff.iter().map(|id| person_event(&format!("story-leave-{id}"), "leave", json!({"id": id}))).collect();
    acts.push(
        stage
            .act(
                &format!(
                    "a mass leave of all {MASS_LEAVE}: the safeguard lets {STORY_MAX_REMOVALS} removals an account \
                     through in 10 minutes (Zoë's suspend among them) and holds the rest"
                ),
                &leaves,
            )
            .await?,
    );
    Ok(acts)
}
