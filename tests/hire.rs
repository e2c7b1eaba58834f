//! Hire events against a real RabbitMQ and the vendor sandboxes: fan-out over AMQP, the HTTP
//! intake's authentication (timestamped signatures, replays, per-tenant credentials), limits
//! and headers, the documented Python example, and its 503 while the broker is unreachable.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Probe;
use hmac::{Hmac, Mac};
use provisioner::config::{SecretSource, Settings};
use provisioner::contract::VendorKey;
use provisioner::metrics::Metrics;
use provisioner::pipeline::Pipeline;
use provisioner::transport::headers as h;
use provisioner::transport::{Headers, Outbound, OutboundKind, Publisher};
use provisioner::vendors::build_adapters;
use provisioner::worker::Worker;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "intake-test-token-of-at-least-32-bytes";
const HMAC_SECRET: &str = "intake-test-hmac-key-of-at-least-32-bytes";

/// Sandbox accounts for the three vendors and tenant `acme` mapping a hire onto each.
async fn hire_settings() -> (Settings, common::TestVendors) {
    common::acme_settings().await
}

fn hire(event_id: &str, first: &str, last: &str) -> Value {
    json!({"event_id": event_id, "type": "hire", "tenant": "acme",
           "employee": {"id": "000731", "first_name": first, "last_name": last,
                        "email": "jane.doe@acme.example", "extension": "1731", "start_date": "2026-12-01"}})
}

async fn publish_hire(probe: &Probe, body: &Value) {
    let msg = Outbound {
        kind: OutboundKind::Job,
        exchange: probe.settings.topology.hr_exchange.clone(),
        routing_key: "hire".into(),
        body: body.to_string().into_bytes(),
        message_id: body["event_id"].as_str().map(str::to_owned),
        content_type: Some("application/json".into()),
        timestamp: None,
        headers: Headers::new(),
    };
    probe.publisher.publish(&msg).await.expect("hire publish confirmed");
}

fn spawn_worker(settings: &Settings) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let pipeline = Arc::new(Pipeline::new(settings, build_adapters(settings).unwrap(), &Metrics::new(), None));
    let shutdown = CancellationToken::new();
    let worker = Worker::new(Arc::new(settings.clone()), pipeline, Metrics::new(), Default::default());
    let stop = shutdown.clone();
    (shutdown, tokio::spawn(async move { worker.run(stop).await.unwrap() }))
}

/// The next three events, as `(outcome, vendor, job_id)`, sorted.
async fn three_events(observer: &mut common::Observer, what: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for _ in 0..3 {
        let e = observer.next_json(WAIT, what).await;
        let d = &e["data"];
        out.push((
            d["outcome"].as_str().unwrap().to_owned(),
            d["vendor"].as_str().unwrap().to_owned(),
            d["job_id"].as_str().unwrap().to_owned(),
        ));
    }
    out.sort();
    out
}

#[tokio::test]
async fn one_hire_creates_the_user_in_all_three_sandboxes_and_the_same_hire_again_only_existing() {
    let (settings, vendors) = hire_settings().await;
    let probe = Probe::new(&settings).await;
    let mut events = probe.observe_events().await;
    let (shutdown, worker) = spawn_worker(&settings);

    publish_hire(&probe, &hire("hire-000731", "José", "Núñez")).await;
    let first = three_events(&mut events, "three events for the hire").await;
    let expected_ids =
        ["hire-000731:clienttoolbox:acme-ctb", "hire-000731:glance:acme-glance", "hire-000731:netsapiens:acme-ns"];
    assert_eq!(first.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["created"; 3], "{first:?}");
    assert_eq!(first.iter().map(|e| e.2.as_str()).collect::<Vec<_>>(), expected_ids);

    publish_hire(&probe, &hire("hire-000731", "José", "Núñez")).await;
    let second = three_events(&mut events, "three events for the same hire again").await;
    assert_eq!(second.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["existing"; 3], "{second:?}");
    assert_eq!(second.iter().map(|e| e.2.as_str()).collect::<Vec<_>>(), expected_ids, "same job ids");
    events.assert_quiet(Duration::from_millis(300)).await;

    assert_eq!(vendors.creations(VendorKey::Glance, "EMP-000731"), 1);
    assert_eq!(vendors.creations(VendorKey::Netsapiens, "1731"), 1);
    assert_eq!(vendors.creations(VendorKey::Clienttoolbox, "jose_nunez"), 1);

    shutdown.cancel();
    tokio::time::timeout(WAIT, worker).await.expect("worker stops").unwrap();
    probe.teardown().await;
}

/// Vendor consumers off, so derived jobs stay countable in their queues.
fn without_vendor_consumers(mut settings: Settings) -> Settings {
    for v in VendorKey::ALL {
        settings.vendors.get_mut(v).enabled = false;
    }
    settings
}

async fn queued_jobs(probe: &Probe) -> u32 {
    let mut n = 0;
    for v in VendorKey::ALL {
        n += probe.ready_count(&probe.settings.topology.job_queue(v)).await;
    }
    n
}

#[tokio::test]
async fn an_invalid_hire_is_dead_lettered_with_its_reasons_and_publishes_no_job_at_all() {
    let (settings, _vendors) = hire_settings().await;
    let settings = without_vendor_consumers(settings);
    let probe = Probe::new(&settings).await;
    let mut dead = probe.observe_dead_letters().await;
    let (shutdown, worker) = spawn_worker(&settings);

    // NetSapiens alone could be made (the extension is fine), but all or nothing.
    publish_hire(&probe, &hire("hire-bad", "🙂", "Doe")).await;
    let dl = dead.next(WAIT, "the invalid hire in the DLQ").await;
    assert_eq!(h::text(&dl.headers, h::REASON), Some("invalid"));
    assert_eq!(h::text(&dl.headers, h::JOB_ID), Some("hire-bad"));
    let message = h::text(&dl.headers, h::ERROR_MESSAGE).unwrap();
    assert!(message.contains("glance.user.UserAddress: employee.first_name became empty"), "{message}");
    assert!(message.contains("clienttoolbox.user.user_name"), "{message}");

    // A valid hire after it lands three jobs, so the zero above is not an accident.
    publish_hire(&probe, &hire("hire-ok", "Jane", "Doe")).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while queued_jobs(&probe).await != 3 {
        assert!(tokio::time::Instant::now() < deadline, "three jobs were not queued within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(probe.drain_ids(&settings.topology.job_queue(VendorKey::Glance)).await, ["hire-ok:glance:acme-glance"]);

    shutdown.cancel();
    tokio::time::timeout(WAIT, worker).await.expect("worker stops").unwrap();
    probe.teardown().await;
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// `X-Signature: t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, as docs/hire-events.md says.
fn sign_at(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn sign(body: &[u8]) -> String {
    sign_at(HMAC_SECRET, unix_now(), body)
}

/// The body-only form of earlier versions.
fn sign_legacy(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(HMAC_SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn with_intake(mut settings: Settings) -> Settings {
    settings.intake.listen = Some("127.0.0.1:0".parse().unwrap());
    settings.intake.token = Some(SecretSource::Value(TOKEN.to_owned().into()));
    settings.intake.hmac_secret = Some(SecretSource::Value(HMAC_SECRET.to_owned().into()));
    settings.intake.max_body_bytes = 4096;
    settings.intake.broker_timeout = Duration::from_secs(3);
    settings
}

async fn start_intake(settings: &Settings, stop: &CancellationToken) -> String {
    let (addr, _) = provisioner::hire::intake::serve(Arc::new(settings.clone()), stop.clone()).await.unwrap().unwrap();
    format!("http://{addr}/v1/hires")
}

#[tokio::test]
async fn the_intake_refuses_bad_credentials_oversized_bodies_and_invalid_hires_and_accepts_a_signed_one() {
    let (settings, _vendors) = hire_settings().await;
    let settings = with_intake(without_vendor_consumers(settings));
    let probe = Probe::new(&settings).await;
    let stop = CancellationToken::new();
    let url = start_intake(&settings, &stop).await;
    let http = reqwest::Client::new();
    let body = hire("hire-http-1", "Zoë", "O'Brien-Smith").to_string();
    let post = |b: String, headers: Vec<(&'static str, String)>| {
        let mut r = http.post(&url).header("content-type", "application/json").body(b);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.send()
    };

    let r = post(body.clone(), vec![]).await.unwrap();
    assert_eq!(r.status(), 401, "no credentials");
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["error"], "unauthorized", "{answer}");
    assert_eq!(post(body.clone(), vec![("authorization", "Bearer wrong".into())]).await.unwrap().status(), 401);
    let other = hire("hire-http-2", "Zoë", "O'Brien-Smith").to_string();
    assert_eq!(
        post(body.clone(), vec![("x-signature", sign(other.as_bytes()))]).await.unwrap().status(),
        401,
        "signature of another body"
    );
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(5000));
    assert_eq!(post(big.clone(), vec![("x-signature", sign(big.as_bytes()))]).await.unwrap().status(), 413);
    let invalid = json!({"event_id": "hire-http-3", "type": "hire", "tenant": "acme", "employee": {"id": "1", "first_name": "A"}}).to_string();
    let r = post(invalid, vec![("authorization", format!("Bearer {TOKEN}"))]).await.unwrap();
    assert_eq!(r.status(), 422);
    let errors: Value = r.json().await.unwrap();
    assert_eq!(errors["errors"][0]["field"], "employee.last_name", "{errors}");
    let r = post("{not json".into(), vec![("authorization", format!("Bearer {TOKEN}"))]).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(queued_jobs(&probe).await, 0, "nothing refused was published");

    let r = post(body.clone(), vec![("x-signature", sign_legacy(body.as_bytes()))]).await.unwrap();
    assert_eq!(r.status(), 401, "the body-only signature of earlier versions");
    assert_eq!(queued_jobs(&probe).await, 0, "nothing refused was published");

    let signature = sign(body.as_bytes());
    let r = post(body.clone(), vec![("x-signature", signature.clone())]).await.unwrap();
    assert_eq!(r.status(), 202);
    let accepted: Value = r.json().await.unwrap();
    assert_eq!(
        accepted["job_ids"],
        json!([
            "hire-http-1:glance:acme-glance",
            "hire-http-1:netsapiens:acme-ns",
            "hire-http-1:clienttoolbox:acme-ctb"
        ])
    );
    // 202 comes after the confirms, so the jobs are already in their queues.
    assert_eq!(queued_jobs(&probe).await, 3);
    let r = post(body.clone(), vec![("x-signature", signature)]).await.unwrap();
    assert_eq!(r.status(), 409, "the same signature again");
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["error"], "signature_replayed", "{answer}");
    assert_eq!(queued_jobs(&probe).await, 3, "the replay published nothing");
    let r = post(body.clone(), vec![("x-signature", sign_at(HMAC_SECRET, unix_now() - 330, body.as_bytes()))])
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "signed more than 5 minutes ago");
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["error"], "signature_expired", "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("outside the tolerance of 5m"), "{answer}");
    let r = post(body.clone(), vec![("x-signature", sign_at(HMAC_SECRET, unix_now() + 330, body.as_bytes()))])
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "signed more than 5 minutes ahead");
    let r = post(body.clone(), vec![("authorization", format!("Bearer {TOKEN}"))]).await.unwrap();
    assert_eq!(r.status(), 202, "the bearer token works too");

    stop.cancel();
    probe.teardown().await;
}

#[tokio::test]
async fn the_intake_does_not_start_with_a_secret_shorter_than_32_bytes() {
    let mut settings = with_intake(Settings::default());
    settings.intake.hmac_secret = Some(SecretSource::Value("0123456789abcdef0123456789abcde".to_owned().into()));
    let err = provisioner::hire::intake::serve(Arc::new(settings), CancellationToken::new()).await.unwrap_err();
    let err = err.to_string();
    assert!(err.contains("intake.hmac_secret") && err.contains("32 bytes"), "{err}");
    assert!(!err.contains("0123456789abcdef"), "the secret is never echoed: {err}");
}

const ACME_TOKEN: &str = "acme-intake-token-of-at-least-32-bytes";
const BETA_HMAC: &str = "beta-intake-hmac-key-of-at-least-32-bytes";

#[tokio::test]
async fn a_tenant_credential_admits_only_its_own_tenant_and_the_global_one_every_tenant() {
    let (mut settings, _vendors) = hire_settings().await;
    // Tenant `beta` maps onto the same accounts as `acme`; each has a credential of its own.
    let mut beta = settings.tenants["acme"].clone();
    beta.intake_hmac_secret = Some(SecretSource::Value(BETA_HMAC.to_owned().into()));
    settings.tenants.insert("beta".into(), beta);
    settings.tenants.get_mut("acme").unwrap().intake_token = Some(SecretSource::Value(ACME_TOKEN.to_owned().into()));
    let settings = with_intake(without_vendor_consumers(settings));
    let probe = Probe::new(&settings).await;
    let stop = CancellationToken::new();
    let url = start_intake(&settings, &stop).await;
    let http = reqwest::Client::new();
    let of = |event_id: &str, tenant: &str| {
        let mut h = hire(event_id, "Jane", "Doe");
        h["tenant"] = json!(tenant);
        h.to_string()
    };
    let with_token = |token: &str, body: String| http.post(&url).bearer_auth(token).body(body).send();
    let signed_by = |secret: &str, body: String| {
        http.post(&url).header("x-signature", sign_at(secret, unix_now(), body.as_bytes())).body(body).send()
    };

    assert_eq!(with_token(ACME_TOKEN, of("t-1", "acme")).await.unwrap().status(), 202, "acme's own hire");
    assert_eq!(queued_jobs(&probe).await, 3);
    let r = with_token(ACME_TOKEN, of("t-2", "beta")).await.unwrap();
    assert_eq!(r.status(), 403, "acme's token, beta's hire");
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["error"], "tenant_mismatch", "{answer}");
    let message = answer["message"].as_str().unwrap();
    assert!(message.contains("tenant acme") && message.contains("\"beta\""), "{message}");
    assert!(!answer.to_string().contains(ACME_TOKEN), "{answer}");
    let r = signed_by(BETA_HMAC, of("t-3", "acme")).await.unwrap();
    assert_eq!(r.status(), 403, "beta's signature, acme's hire");
    assert_eq!(queued_jobs(&probe).await, 3, "nothing of another tenant was published");

    assert_eq!(signed_by(BETA_HMAC, of("t-4", "beta")).await.unwrap().status(), 202, "beta's own hire");
    assert_eq!(with_token(TOKEN, of("t-5", "beta")).await.unwrap().status(), 202, "the global token, any tenant");
    assert_eq!(signed_by(HMAC_SECRET, of("t-6", "acme")).await.unwrap().status(), 202, "the global key, any tenant");
    assert_eq!(queued_jobs(&probe).await, 12);

    stop.cancel();
    probe.teardown().await;
}

/// The repository root, where `examples/` and `docs/` are.
fn repo_file(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs `python3` with `args` off the runtime's thread, so the intake keeps answering.
async fn python3(args: Vec<String>, env: Vec<(&'static str, String)>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(args)
            .envs(env)
            .output()
            .expect("python3 runs (the documented example is Python)")
    })
    .await
    .unwrap()
}

#[test]
fn the_python_example_in_the_docs_is_examples_sign_hire_py() {
    let docs = std::fs::read_to_string(repo_file("docs/hire-events.md")).unwrap();
    let block = docs.split("```python\n").nth(1).and_then(|rest| rest.split("```").next()).expect("a python block");
    let example = std::fs::read_to_string(repo_file("examples/python/sign_hire.py")).unwrap();
    assert_eq!(block, example, "docs/hire-events.md shows examples/python/sign_hire.py as it is");
}

#[tokio::test]
async fn the_documented_python_example_signs_as_the_intake_verifies_and_its_hire_is_accepted() {
    // Its signing function, at a fixed time, gives the header this suite signs with.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hire.json");
    let body = format!("{}\n", hire("hire-python", "Zoë", "O'Brien-Smith"));
    std::fs::write(&file, &body).unwrap();
    let script = format!(
        "import sys; sys.path.insert(0, {examples:?}); import sign_hire; \
         sys.stdout.write(sign_hire.signature({HMAC_SECRET:?}.encode(), open({file:?}, 'rb').read(), 1700000000))",
        examples = repo_file("examples/python").display().to_string(),
        file = file.display().to_string(),
    );
    let out = python3(vec!["-c".into(), script], vec![]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), sign_at(HMAC_SECRET, 1_700_000_000, body.as_bytes()));

    // And the script itself, as an integrator runs it, gets its hire accepted.
    let (settings, _vendors) = hire_settings().await;
    let settings = with_intake(without_vendor_consumers(settings));
    let probe = Probe::new(&settings).await;
    let stop = CancellationToken::new();
    let url = start_intake(&settings, &stop).await;
    let args =
        vec![repo_file("examples/python/sign_hire.py").display().to_string(), url.clone(), file.display().to_string()];
    let out = python3(args, vec![("HMAC_SECRET", HMAC_SECRET.to_owned())]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("202 ") && stdout.contains("hire-python:glance:acme-glance"), "{stdout}");
    assert_eq!(queued_jobs(&probe).await, 3);

    stop.cancel();
    probe.teardown().await;
}

/// Takes every ready job of every vendor queue (acking it) and returns their headers, less
/// the broker's own (`x-delivery-count`).
async fn drain_job_headers(probe: &Probe) -> Vec<Headers> {
    use lapin::options::BasicGetOptions;
    let mut out = Vec::new();
    for v in VendorKey::ALL {
        let queue = probe.settings.topology.job_queue(v);
        while let Some(m) =
            probe.channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap()
        {
            let mut headers = provisioner::transport::rabbitmq::inbound(&m.delivery).headers;
            headers.retain(|name, _| !name.starts_with("x-"));
            out.push(headers);
        }
    }
    out
}

#[tokio::test]
async fn the_intake_carries_a_w3c_traceparent_onto_its_jobs_and_no_other_request_header() {
    let (settings, _vendors) = hire_settings().await;
    let settings = with_intake(without_vendor_consumers(settings));
    let probe = Probe::new(&settings).await;
    let stop = CancellationToken::new();
    let url = start_intake(&settings, &stop).await;
    let http = reqwest::Client::new();
    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let send = |event_id: &str, traceparent: String| {
        http.post(&url)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("traceparent", traceparent)
            // Producer-set service headers must never reach a job.
            .header(h::ATTEMPTS, "99")
            .header(h::REASON, "conflict")
            .header(h::REPLAY_COUNT, "7")
            .body(hire(event_id, "Jane", "Doe").to_string())
            .send()
    };

    assert_eq!(send("hire-tp-junk", format!("00-{}", "a".repeat(8 * 1024))).await.unwrap().status(), 202);
    let headers = drain_job_headers(&probe).await;
    assert_eq!(headers.len(), 3);
    assert!(headers.iter().all(Headers::is_empty), "neither the 8 KB traceparent nor any other header: {headers:?}");

    assert_eq!(send("hire-tp-valid", valid.to_owned()).await.unwrap().status(), 202);
    let headers = drain_job_headers(&probe).await;
    assert_eq!(headers.len(), 3);
    for job in &headers {
        assert_eq!(job.keys().collect::<Vec<_>>(), [h::TRACEPARENT], "{job:?}");
        assert_eq!(h::text(job, h::TRACEPARENT), Some(valid));
    }

    stop.cancel();
    probe.teardown().await;
}

/// A TCP relay to the broker that the test can cut, standing in for a stopped broker without
/// stopping the RabbitMQ other tests share.
struct Relay {
    stop: CancellationToken,
}

impl Relay {
    async fn start(listen: std::net::SocketAddr) -> (Self, std::net::SocketAddr) {
        let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            loop {
                let (mut inbound, _) = tokio::select! {
                    _ = s.cancelled() => break,
                    a = listener.accept() => a.unwrap(),
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let mut outbound = tokio::net::TcpStream::connect("127.0.0.1:5672").await.unwrap();
                    tokio::select! {
                        _ = s.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        (Self { stop }, addr)
    }
}

#[tokio::test]
async fn while_the_broker_is_unreachable_the_intake_answers_503_and_accepts_nothing() {
    let (settings, _vendors) = hire_settings().await;
    let settings = with_intake(without_vendor_consumers(settings));
    let probe = Probe::new(&settings).await;
    let (relay, relay_addr) = Relay::start("127.0.0.1:0".parse().unwrap()).await;
    let mut via_relay = settings.clone();
    via_relay.amqp.url = format!("amqp://guest:guest@{relay_addr}/%2f");
    let stop = CancellationToken::new();
    let url = start_intake(&via_relay, &stop).await;
    let http = reqwest::Client::new();
    let send = |event_id: &str| {
        http.post(&url)
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(hire(event_id, "Jane", "Doe").to_string())
            .send()
    };

    assert_eq!(send("hire-before").await.unwrap().status(), 202);
    assert_eq!(queued_jobs(&probe).await, 3);

    relay.stop.cancel();
    for id in ["hire-during-1", "hire-during-2"] {
        let r = send(id).await.unwrap();
        assert_eq!(r.status(), 503, "{id}");
        assert_eq!(r.headers()["retry-after"], "5");
    }
    assert_eq!(queued_jobs(&probe).await, 3, "nothing was accepted while the broker was unreachable");

    let (_relay, _) = Relay::start(relay_addr).await;
    assert_eq!(send("hire-after").await.unwrap().status(), 202, "it reconnects once the broker is back");
    assert_eq!(queued_jobs(&probe).await, 6);

    stop.cancel();
    probe.teardown().await;
}
