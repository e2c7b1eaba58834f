//! Test harness: a real RabbitMQ, a topology of its own per test, and helpers that wait on
//! real conditions with deadlines (never sleep-and-hope).
#![allow(dead_code)] // each test binary uses its own subset

pub mod ledger;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use provisioner::config::{AccountSettings, Settings, TopologySettings};
use provisioner::contract::VendorKey;
use provisioner::sandbox::{Faults, Sandboxes};
use provisioner::transport::rabbitmq::{self, ConfirmPublisher};
use provisioner::transport::{Headers, Inbound, Outbound, OutboundKind, Publisher};

pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub fn broker_url() -> String {
    std::env::var("PROVISIONER_TEST_AMQP_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// Settings for one test: its own topology names and connection name, short retry tiers,
/// and no accounts (add them with [`TestVendors::account`]).
pub fn test_settings() -> Settings {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut s = Settings { topology: TopologySettings::namespaced(&format!("test-{id}")), ..Settings::default() };
    s.amqp.url = broker_url();
    s.amqp.connection_name = format!("provisioner-test-{id}");
    s.amqp.reconnect_initial_delay = Duration::from_millis(100);
    s.amqp.reconnect_max_delay = Duration::from_secs(1);
    s.topology.audit_queue = String::new();
    s.retry.tiers = vec![Duration::from_secs(1)];
    s.retry.inline.initial_delay = Duration::from_millis(10);
    s.retry.inline.max_delay = Duration::from_millis(50);
    s.retry.inline.budget = Duration::from_millis(500);
    s.worker.drain_deadline = Duration::from_secs(10);
    s.admin.listen = "127.0.0.1:0".parse().unwrap();
    // Each test its own ledger file, shared by the worker processes it starts.
    s.ledger.url = format!("sqlite:{}", std::env::temp_dir().join(format!("provisioner-test-{id}.sqlite")).display());
    s
}

/// The vendor sandboxes for one test, served in this process over real HTTP; they stop when
/// this is dropped.
pub struct TestVendors {
    pub sandboxes: Sandboxes,
    pub url: String,
    _stop: tokio_util::sync::DropGuard,
}

impl TestVendors {
    pub async fn start(faults: Faults) -> Self {
        let stop = tokio_util::sync::CancellationToken::new();
        let sandboxes = Sandboxes::new(faults, 7);
        let (addr, _) = sandboxes.serve("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
        Self { sandboxes, url: format!("http://{addr}"), _stop: stop.drop_guard() }
    }

    /// An account on these sandboxes with their credentials.
    pub fn account(&self, vendor: VendorKey) -> AccountSettings {
        provisioner::sandbox::account(vendor, &self.url)
    }

    pub fn creations(&self, vendor: VendorKey, identity: &str) -> u32 {
        self.sandboxes.creations(vendor, identity)
    }
}

/// Test settings with accounts `(name, vendor)` on freshly started sandboxes.
pub async fn settings_with(accounts: &[(&str, VendorKey)], faults: Faults) -> (Settings, TestVendors) {
    let vendors = TestVendors::start(faults).await;
    let mut settings = test_settings();
    for (name, vendor) in accounts {
        settings.accounts.insert((*name).to_owned(), vendors.account(*vendor));
    }
    (settings, vendors)
}

/// Sandbox accounts for the three vendors (`acme-glance`, `acme-ns`, `acme-ctb`) and tenant
/// `acme` mapping a person onto each, with every vendor's default `on_leave`.
pub async fn acme_settings() -> (Settings, TestVendors) {
    use provisioner::config::{FieldRuleSettings, FieldRuleTable, Generate, TargetSettings, TenantSettings};
    let (mut settings, vendors) = settings_with(
        &[
            ("acme-glance", VendorKey::Glance),
            ("acme-ns", VendorKey::Netsapiens),
            ("acme-ctb", VendorKey::Clienttoolbox),
        ],
        Faults::default(),
    )
    .await;
    let tpl = |s: &str| FieldRuleSettings::Template(s.to_owned());
    let target = |account: &str, pairs: Vec<(&str, FieldRuleSettings)>| TargetSettings {
        account: account.into(),
        domain: None,
        on_leave: None,
        fields: pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    };
    let tenant = TenantSettings {
        glance: Some(target(
            "acme-glance",
            vec![
                ("PartnerUserID", tpl("EMP-{id}")),
                ("UserAddress", tpl("{first_name|slug}.{last_name|slug}.acme.glance.net")),
                ("UserFirst", tpl("{first_name}")),
                ("UserLast", tpl("{last_name}")),
                ("UserEmail", tpl("{email}")),
            ],
        )),
        netsapiens: Some(target(
            "acme-ns",
            vec![
                ("user", tpl("{extension|digits}")),
                ("name-first-name", tpl("{first_name}")),
                ("name-last-name", tpl("{last_name}")),
                ("email", tpl("{email}")),
                ("user-scope", tpl("Basic User")),
            ],
        )),
        clienttoolbox: Some(target(
            "acme-ctb",
            vec![
                (
                    "user_name",
                    FieldRuleSettings::Table(FieldRuleTable {
                        template: Some("{first_name|slug:_}_{last_name|slug:_}".into()),
                        filters: vec!["truncate:20".into()],
                        ..Default::default()
                    }),
                ),
                (
                    "user_new_password",
                    FieldRuleSettings::Table(FieldRuleTable {
                        generate: Some(Generate::Password),
                        ..Default::default()
                    }),
                ),
                ("user_first_name", tpl("{first_name}")),
                ("user_last_name", tpl("{last_name}")),
                ("user_role", tpl("K")),
                ("allowed_campaigns", tpl("all")),
            ],
        )),
        ..Default::default()
    };
    settings.tenants.insert("acme".into(), tenant);
    settings.check().expect("the test mapping is valid");
    (settings, vendors)
}

/// The settings as a `default.toml` for a child process, plus the environment it needs:
/// secrets built into the settings become `env:` references, since a config file may not
/// hold a literal secret.
pub fn child_config(settings: &Settings) -> (String, Vec<(String, String)>) {
    use provisioner::config::SecretSource;
    use secrecy::ExposeSecret;
    let mut settings = settings.clone();
    let mut env = Vec::new();
    for (account, a) in settings.accounts.iter_mut() {
        for (key, source) in a.credentials.iter_mut() {
            if let SecretSource::Value(v) = source {
                let var = format!("PROVISIONER_TEST_{}_{}", account, key).to_uppercase().replace(['-', '.'], "_");
                env.push((var.clone(), v.expose_secret().to_owned()));
                *source = SecretSource::Env(var);
            }
        }
    }
    (toml_of(&settings), env)
}

/// A connection for the test itself (publishing jobs, observing events and the DLQ).
pub struct Probe {
    pub conn: Connection,
    pub channel: Channel,
    pub publisher: ConfirmPublisher,
    pub settings: Arc<Settings>,
}

impl Probe {
    /// Connects and declares the test's topology. Fails loudly when there is no broker.
    pub async fn new(settings: &Settings) -> Self {
        // A name of its own, so forcing the worker's connection closed spares the probe's.
        let mut own = settings.clone();
        own.amqp.connection_name = format!("probe-of-{}", settings.amqp.connection_name);
        let conn = match rabbitmq::connect(&own).await {
            Ok(c) => c,
            Err(e) => panic!(
                "these tests need a real RabbitMQ at {} ({e}).\n\
                 Start one with `rabbitmq-server -detached` (or point PROVISIONER_TEST_AMQP_URL at one).",
                broker_url()
            ),
        };
        let channel = rabbitmq::confirm_channel(&conn).await.unwrap();
        rabbitmq::declare(&channel, settings).await.unwrap();
        let publisher = ConfirmPublisher::new(channel.clone());
        Self { conn, channel, publisher, settings: Arc::new(settings.clone()) }
    }

    /// Binds a fresh exclusive queue to the result events (`user.#`) and consumes it.
    pub async fn observe_events(&self) -> Observer {
        let name = self.event_queue(&self.channel, "observer").await;
        self.consume(&name).await
    }

    /// Like [`Probe::observe_events`], with the `job.*` step events (parked, published, …) too.
    pub async fn observe_all_events(&self) -> Observer {
        let name = self.bound_queue(&self.channel, "observer", "#").await;
        self.consume(&name).await
    }

    /// Declares an exclusive queue on `channel` bound to every result event and returns its name.
    pub async fn event_queue(&self, channel: &Channel, prefix: &str) -> String {
        self.bound_queue(channel, prefix, "user.#").await
    }

    async fn bound_queue(&self, channel: &Channel, prefix: &str, binding: &str) -> String {
        let name = format!("{prefix}.{}", uuid::Uuid::new_v4().simple());
        let opts = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
        channel.queue_declare(name.as_str().into(), opts, FieldTable::default()).await.unwrap();
        let exchange = self.settings.topology.events_exchange.as_str();
        channel
            .queue_bind(
                name.as_str().into(),
                exchange.into(),
                binding.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        name
    }

    /// Consumes the test's dead-letter queue.
    pub async fn observe_dead_letters(&self) -> Observer {
        let name = self.settings.topology.dead_queue.clone();
        self.consume(&name).await
    }

    async fn consume(&self, queue: &str) -> Observer {
        let ch = self.conn.create_channel().await.unwrap();
        let consumer = ch
            .basic_consume(queue.into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await
            .unwrap();
        Observer { _channel: ch, consumer }
    }

    /// Publishes a job with confirms, as a producer would.
    pub async fn publish_job(&self, vendor: VendorKey, body: &serde_json::Value) {
        self.publish_raw(
            &provisioner::contract::Job::routing_key(vendor),
            body.to_string().into_bytes(),
            body["job_id"].as_str(),
        )
        .await;
    }

    pub async fn publish_raw(&self, routing_key: &str, body: Vec<u8>, message_id: Option<&str>) {
        let msg = Outbound {
            kind: OutboundKind::Job,
            exchange: self.settings.topology.jobs_exchange.clone(),
            routing_key: routing_key.to_owned(),
            body,
            message_id: message_id.map(str::to_owned),
            content_type: Some("application/json".into()),
            timestamp: Some(chrono::Utc::now().timestamp() as u64),
            headers: Headers::new(),
        };
        self.publisher.publish(&msg).await.expect("job publish confirmed");
    }

    /// Messages ready in a queue (not counting unacked ones).
    pub async fn ready_count(&self, queue: &str) -> u32 {
        let opts = QueueDeclareOptions { passive: true, ..Default::default() };
        self.channel.queue_declare(queue.into(), opts, FieldTable::default()).await.unwrap().message_count()
    }

    /// Deletes everything the test declared.
    pub async fn teardown(self) {
        rabbitmq::delete_topology(&self.channel, &self.settings).await;
        let _ = self.conn.close(200, "test done".into()).await;
    }
}

pub struct Observer {
    _channel: Channel,
    consumer: Consumer,
}

impl Observer {
    /// The next message, acked, or a panic naming what did not arrive in time.
    pub async fn next(&mut self, within: Duration, what: &str) -> Inbound {
        let d = tokio::time::timeout(within, self.consumer.next())
            .await
            .unwrap_or_else(|_| panic!("{what} did not arrive within {within:?}"))
            .expect("consumer open")
            .expect("delivery");
        d.ack(BasicAckOptions::default()).await.unwrap();
        rabbitmq::inbound(&d)
    }

    /// The next message as JSON.
    pub async fn next_json(&mut self, within: Duration, what: &str) -> serde_json::Value {
        serde_json::from_slice(&self.next(within, what).await.body).unwrap()
    }

    /// Asserts nothing arrives for `quiet`: used only after the positive condition was met,
    /// to show no second message follows.
    pub async fn assert_quiet(&mut self, quiet: Duration) {
        if let Ok(Some(Ok(d))) = tokio::time::timeout(quiet, self.consumer.next()).await {
            panic!("unexpected message: {}", String::from_utf8_lossy(&d.data));
        }
    }
}

/// A terminal event as an [`EventRecorder`] saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: tokio::time::Instant,
    pub job_id: String,
    /// `created`, `existing` or `failed`.
    pub outcome: String,
    pub class: Option<String>,
}

/// Routing key of the marker [`EventRecorder::finish`] publishes once no more events can
/// come: a recorder that reads it has read every event before it.
/// Under `user.#`, where the recorder listens.
const SENTINEL: &str = "user.sentinel.test";

/// Records every event on a connection of the test's own (a forced close of the worker's
/// connection does not touch it), as it arrives, until [`EventRecorder::finish`].
pub struct EventRecorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl EventRecorder {
    pub async fn start(probe: &Probe) -> Self {
        let ch = probe.conn.create_channel().await.unwrap();
        let queue = probe.event_queue(&ch, "recorder").await;
        let consume = BasicConsumeOptions { no_ack: true, ..Default::default() };
        let mut consumer =
            ch.basic_consume(queue.as_str().into(), "".into(), consume, FieldTable::default()).await.unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            let _channel = ch;
            while let Some(delivery) = consumer.next().await {
                let d = delivery.expect("the recorder's connection stays up");
                if d.routing_key.as_str() == SENTINEL {
                    return;
                }
                let e: serde_json::Value = serde_json::from_slice(&d.data).expect("events are JSON");
                let outcome =
                    e["type"].as_str().unwrap_or_default().trim_start_matches("provisioning.user.").to_owned();
                sink.lock().unwrap().push(Seen {
                    at: tokio::time::Instant::now(),
                    job_id: e["subject"].as_str().unwrap_or_default().to_owned(),
                    outcome,
                    class: e["data"]["error"]["class"].as_str().map(str::to_owned),
                });
            }
            panic!("the recorder's consumer ended before the sentinel");
        });
        Self { seen, task }
    }

    /// The events recorded so far.
    pub fn seen(&self) -> std::sync::MutexGuard<'_, Vec<Seen>> {
        self.seen.lock().unwrap()
    }

    /// Every event published before this call: publishes the sentinel and reads up to it.
    /// Call it once no worker can publish any more.
    pub async fn finish(self, probe: &Probe, within: Duration) -> Vec<Seen> {
        let sentinel = Outbound {
            kind: OutboundKind::Event,
            exchange: probe.settings.topology.events_exchange.clone(),
            routing_key: SENTINEL.into(),
            body: b"{}".to_vec(),
            message_id: None,
            content_type: None,
            timestamp: None,
            headers: Headers::new(),
        };
        probe.publisher.publish(&sentinel).await.expect("sentinel confirmed");
        tokio::time::timeout(within, self.task).await.expect("the recorder reads up to the sentinel").unwrap();
        Arc::try_unwrap(self.seen)
            .map(|m| m.into_inner().unwrap())
            .unwrap_or_else(|shared| shared.lock().unwrap().clone())
    }
}

/// Waits until `check` holds, polling, or panics with `what` after `within`.
pub async fn wait_until<F: FnMut() -> bool>(within: Duration, what: &str, mut check: F) {
    let deadline = tokio::time::Instant::now() + within;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {within:?} waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`wait_until`] for a condition that has to be awaited (an HTTP call, a query).
pub async fn wait_until_async<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {within:?} waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `rabbitmqctl` and returns its stdout; panics with its stderr on failure.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let out =
        std::process::Command::new("rabbitmqctl").args(args).output().expect("rabbitmqctl is installed with RabbitMQ");
    assert!(out.status.success(), "rabbitmqctl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Closes the broker-side connections whose client name is `connection_name`, as
/// `rabbitmqctl close_connection` does during a broker maintenance.
pub fn force_close_connections(connection_name: &str) -> usize {
    let listing = rabbitmqctl(&["list_connections", "pid", "client_properties", "--no-table-headers", "--quiet"]);
    let pids: Vec<&str> = listing
        .lines()
        .filter(|l| l.contains(&format!("\"{connection_name}\"")))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for pid in &pids {
        rabbitmqctl(&["close_connection", pid, "forced close by test"]);
    }
    pids.len()
}

/// Messages (ready and unacked) in the named queues, from the broker's own count.
pub fn messages_in(queues: &[String]) -> u64 {
    let listing = rabbitmqctl(&["list_queues", "name", "messages", "--no-table-headers", "--quiet"]);
    listing
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(name, _)| queues.iter().any(|q| q == name))
        .filter_map(|(_, n)| n.trim().parse::<u64>().ok())
        .sum()
}

/// The settings as a `default.toml` for a child process.
pub fn toml_of(settings: &Settings) -> String {
    toml::to_string(settings).expect("settings serialise to TOML")
}

/// A dead letter as the worker writes one, for seeding the DLQ.
pub fn dead_letter(settings: &Settings, job: &serde_json::Value, reason: &str) -> Outbound {
    use provisioner::transport::headers as h;
    let mut headers = Headers::new();
    let vendor = job["vendor"].as_str().unwrap_or("glance");
    h::set_text(&mut headers, h::REASON, reason);
    h::set_text(&mut headers, h::ERROR_CODE, format!("{reason}_code"));
    h::set_text(&mut headers, h::ERROR_MESSAGE, format!("it failed as {reason}"));
    h::set_int(&mut headers, h::ATTEMPTS, 3);
    h::set_text(&mut headers, h::FIRST_FAILED_AT, "2026-11-20T10:00:00.000Z");
    h::set_text(&mut headers, h::LAST_FAILED_AT, "2026-11-20T11:00:00.000Z");
    h::set_text(&mut headers, h::ORIGINAL_ROUTING_KEY, format!("create_user.{vendor}"));
    if let Some(id) = job["job_id"].as_str() {
        h::set_text(&mut headers, h::JOB_ID, id);
    }
    h::set_text(&mut headers, h::VENDOR, vendor);
    if let Some(a) = job["account"].as_str() {
        h::set_text(&mut headers, h::ACCOUNT, a);
    }
    Outbound {
        kind: OutboundKind::DeadLetter,
        exchange: settings.topology.dead_exchange.clone(),
        routing_key: format!("create_user.{vendor}"),
        body: job.to_string().into_bytes(),
        message_id: job["job_id"].as_str().map(str::to_owned),
        content_type: Some("application/json".into()),
        timestamp: Some(chrono::Utc::now().timestamp() as u64),
        headers,
    }
}

impl Probe {
    /// Publishes many messages with pipelined confirms: each is awaited, but not one by one.
    pub async fn publish_many(&self, msgs: Vec<Outbound>) {
        use futures_util::stream::{self, StreamExt as _};
        let results: Vec<_> =
            stream::iter(msgs.iter().map(|m| self.publisher.publish(m))).buffer_unordered(256).collect().await;
        assert!(results.iter().all(Result::is_ok), "every seeded message must be confirmed");
    }

    /// Takes every ready message of `queue` (acking it) and returns their job ids in order.
    pub async fn drain_ids(&self, queue: &str) -> Vec<String> {
        use lapin::options::BasicGetOptions;
        let mut ids = Vec::new();
        while let Some(m) = self.channel.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.unwrap() {
            let msg = rabbitmq::inbound(&m.delivery);
            let body: serde_json::Value = serde_json::from_slice(&msg.body).unwrap_or_default();
            ids.push(body["job_id"].as_str().map(str::to_owned).or(msg.message_id).unwrap_or_default());
        }
        ids
    }
}

/// How long a worker process may take to start and connect.
const STARTUP_WAIT: Duration = Duration::from_secs(20);

/// A worker process with its stderr (JSON logs) collected line by line.
pub struct WorkerProcess {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    _config: tempfile::TempDir,
}

impl WorkerProcess {
    pub fn start(settings: &Settings) -> Self {
        let config = tempfile::tempdir().unwrap();
        let mut file = settings.clone();
        file.log.format = provisioner::config::LogFormat::Json;
        let (toml, env) = child_config(&file);
        std::fs::write(config.path().join("default.toml"), toml).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_provisioner"))
            .args(["run", "--config", config.path().to_str().unwrap()])
            .envs(env)
            .env_remove("PROVISIONER_ENV")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, logs, _config: config }
    }

    pub fn logged(&self, needle: &str) -> bool {
        self.logs.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    pub fn all_logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// The admin address the worker logged at start-up.
    pub async fn admin(&self) -> std::net::SocketAddr {
        wait_until(STARTUP_WAIT, "the worker logs its admin address", || self.logged("provisioner starting")).await;
        let logs = self.logs.lock().unwrap();
        let line = logs.iter().find(|l| l.contains("provisioner starting")).unwrap();
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        v["admin"].as_str().unwrap().parse().unwrap()
    }

    /// The admin address from the start-up log line, once the worker consumes.
    pub async fn admin_when_consuming(&mut self) -> std::net::SocketAddr {
        let deadline = tokio::time::Instant::now() + STARTUP_WAIT;
        while !self.logged("connected and consuming") {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the worker exited with {status}:\n{}", self.all_logs());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the worker did not connect and consume within {STARTUP_WAIT:?}:\n{}",
                self.all_logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let logs = self.logs.lock().unwrap();
        let line = logs.iter().find(|l| l.contains("provisioner starting")).expect("start-up line logged");
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        v["admin"].as_str().unwrap().parse().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How the worker exited, if it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "kill {sig} failed");
    }

    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the worker did not exit within {within:?}:\n{}",
                self.all_logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET of the worker's admin port; an empty string while it does not answer.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else { return String::new() };
    let _ = s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes()).await;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out
}

/// `provisioner_jobs_in_flight` summed over vendors, from the worker's `/metrics`.
pub async fn jobs_in_flight(admin: std::net::SocketAddr) -> u32 {
    http_get(admin, "/metrics")
        .await
        .lines()
        .filter(|l| l.starts_with("provisioner_jobs_in_flight{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u32>().ok())
        .sum()
}

/// An HTTP relay in front of the sandboxes that passes every call on and, while it holds,
/// keeps the answer of each `PUT` and `DELETE` it passed on: the vendor acted, and the
/// caller never hears so, as a worker killed in the middle of a call would not.
pub struct HoldingRelay {
    pub url: String,
    hold: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl HoldingRelay {
    /// Relays to `target` (e.g. [`TestVendors::url`]), passing answers on until [`Self::hold_writes`].
    pub async fn start(target: &str) -> Self {
        use axum::http::{header, Method, StatusCode};
        use axum::response::IntoResponse;
        let hold = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let http = reqwest::Client::new();
        let (holding, target) = (hold.clone(), target.to_owned());
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (http, target, holding) = (http.clone(), target.clone(), holding.clone());
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
                let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                let mut out = http.request(parts.method.clone(), format!("{target}{path}")).body(body);
                for (name, value) in &parts.headers {
                    if name != header::HOST && name != header::CONTENT_LENGTH {
                        out = out.header(name, value);
                    }
                }
                let answer = out.send().await;
                if holding.load(std::sync::atomic::Ordering::SeqCst)
                    && matches!(parts.method, Method::PUT | Method::DELETE)
                {
                    std::future::pending::<()>().await;
                }
                let Ok(answer) = answer else { return StatusCode::BAD_GATEWAY.into_response() };
                let status = answer.status();
                let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
                let bytes = answer.bytes().await.unwrap_or_default();
                let mut response = (status, bytes).into_response();
                if let Some(ct) = content_type {
                    response.headers_mut().insert(header::CONTENT_TYPE, ct);
                }
                response
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url: format!("http://{addr}"), hold, task }
    }

    /// From now on, keeps (`true`) or passes on (`false`) the answers of writes.
    pub fn hold_writes(&self, on: bool) {
        self.hold.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for HoldingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
