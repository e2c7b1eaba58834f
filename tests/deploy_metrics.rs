//! The deployment refers only to what the service really has: every metric the chart's alerts
//! (the PrometheusRule) and the Grafana dashboard use is scraped from the real binary's
//! `/metrics`, or for `rabbitmq_*` names from RabbitMQ's prometheus plugin, with the metric
//! families docs/deployment.md tells operators to scrape. Needs RabbitMQ on 127.0.0.1:5672 with
//! the `rabbitmq_prometheus` plugin enabled (`./scripts/test` enables it); it fails, never skips,
//! when either cannot be reached. The worker keeps its limits in Redis (127.0.0.1:6379).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{test_settings, Probe, WorkerProcess};
use provisioner::config::Settings;

const WAIT: Duration = Duration::from_secs(20);
const RULES: &str = "helm/provisioner/templates/prometheusrule.yaml";
const DASHBOARD: &str = "helm/provisioner/files/dashboards/provisioner.json";
/// The RabbitMQ families docs/deployment.md says to scrape (`/metrics/detailed?family=...`).
const RABBITMQ_FAMILIES: &[&str] = &["queue_coarse_metrics", "queue_consumer_count"];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Every `provisioner_*` and `rabbitmq_*` identifier in a text (PromQL in a template or JSON).
fn metric_names_in(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("provisioner_") || t.starts_with("rabbitmq_"))
        .map(str::to_owned)
        .collect()
}

/// The names of the series in a Prometheus text exposition (not just declared families: a
/// family without series would leave a panel empty all the same).
fn series_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

async fn scrape(url: &str) -> Result<String, String> {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("GET {url}: HTTP {}", response.status()));
    }
    response.text().await.map_err(|e| format!("GET {url}: {e}"))
}

fn rabbitmq_metrics_url() -> String {
    let base =
        std::env::var("PROVISIONER_TEST_RABBITMQ_METRICS_URL").unwrap_or_else(|_| "http://127.0.0.1:15692".to_owned());
    let families: Vec<String> = RABBITMQ_FAMILIES.iter().map(|f| format!("family={f}")).collect();
    format!("{base}/metrics/detailed?{}", families.join("&"))
}

#[test]
fn metric_names_are_found_in_the_alerts_and_the_dashboard() {
    let rules = metric_names_in(&read(RULES));
    let dashboard = metric_names_in(&read(DASHBOARD));
    // Guards the parsing itself: an empty set would make the real test pass vacuously.
    for name in ["provisioner_broker_connected", "provisioner_end_to_end_latency_seconds_bucket"] {
        assert!(rules.contains(name), "{RULES} should use {name}; found {rules:?}");
        assert!(dashboard.contains(name), "{DASHBOARD} should use {name}; found {dashboard:?}");
    }
    assert!(rules.iter().any(|n| n.starts_with("rabbitmq_")), "{rules:?}");
    assert!(dashboard.len() >= 10, "{dashboard:?}");
    assert_eq!(
        series_names("# HELP a_total x\na_total{v=\"1\"} 0\nb 1\n\nc_bucket{le=\"+Inf\"} 2\n"),
        ["a_total", "b", "c_bucket"].map(str::to_owned).into()
    );
}

#[tokio::test]
async fn every_metric_in_the_alerts_and_the_dashboard_exists() {
    let mut settings = test_settings();
    // With the limits in Redis, so the series only that backend exports are there too
    // (Redis on 127.0.0.1:6379, which `./scripts/test` starts).
    settings.rate_limit.backend = provisioner::rate_limit::Backend::Redis;
    settings.rate_limit.redis_url = Some("redis://127.0.0.1:6379/0".into());
    settings.rate_limit.redis_key_prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let probe = Probe::new(&settings).await;
    let mut worker = WorkerProcess::start(&settings);
    let admin = worker.admin_when_consuming().await;

    let service = scrape(&format!("http://{admin}/metrics")).await.unwrap_or_else(|e| {
        panic!("cannot scrape the service: {e}\n{}", worker.all_logs());
    });
    let rabbitmq_url = rabbitmq_metrics_url();
    // The plugin lists queues as the broker sees them: wait until this test's topology shows.
    let dead_queue = format!("queue=\"{}\"", settings.topology.dead_queue);
    let mut rabbitmq = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !rabbitmq.contains(&dead_queue) {
        assert!(tokio::time::Instant::now() < deadline, "{rabbitmq_url} never listed {dead_queue}:\n{rabbitmq}");
        rabbitmq = scrape(&rabbitmq_url).await.unwrap_or_else(|e| {
            panic!(
                "cannot scrape RabbitMQ's prometheus plugin: {e}.\n\
                 Run the suite with `./scripts/test`, which enables it, or enable it with \
                 `rabbitmq-plugins enable rabbitmq_prometheus` \
                 (or point PROVISIONER_TEST_RABBITMQ_METRICS_URL at it)."
            )
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let exported: BTreeSet<String> = series_names(&service).union(&series_names(&rabbitmq)).cloned().collect();
    let mut missing = Vec::new();
    for (file, names) in [(RULES, metric_names_in(&read(RULES))), (DASHBOARD, metric_names_in(&read(DASHBOARD)))] {
        for name in names.difference(&exported) {
            missing.push(format!("{name} (used in {file})"));
        }
    }
    assert!(
        missing.is_empty(),
        "metrics used by the deployment that neither the service nor RabbitMQ exports:\n  {}\n\
         service /metrics had: {:?}\nRabbitMQ ({rabbitmq_url}) had: {:?}",
        missing.join("\n  "),
        series_names(&service),
        series_names(&rabbitmq),
    );

    drop(worker);
    probe.teardown().await;
}

#[test]
fn the_chart_ships_the_same_default_toml_as_the_binary() {
    assert_eq!(
        read("helm/provisioner/files/default.toml"),
        read("config/default.toml"),
        "helm/provisioner/files/default.toml must be a copy of config/default.toml"
    );
}

#[test]
fn the_chart_defaults_agree_with_the_service_defaults() {
    let values = read("helm/provisioner/values.yaml");
    let d = Settings::default();
    for line in [
        format!("jobQueuePrefix: {}", d.topology.job_queue_prefix),
        format!("deadQueue: {}", d.topology.dead_queue),
        format!("drainDeadlineSeconds: {}", d.worker.drain_deadline.as_secs()),
        format!("port: {}", d.admin.listen.port()),
    ] {
        assert!(values.lines().any(|l| l.trim() == line), "helm/provisioner/values.yaml should say `{line}`");
    }
}
