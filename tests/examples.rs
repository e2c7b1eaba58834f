//! The producer examples in Python (pika) and Node (amqplib), run as an HR integrator runs
//! them, against a real RabbitMQ and the real `provisioner run` binary on the vendor
//! sandboxes: publish a job with confirms (and a returned one), post a signed hire to the
//! intake, and read the result events they caused.
//!
//! `./scripts/test` installs their pinned dependencies (examples/python/requirements.txt,
//! examples/node/package-lock.json) when missing.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{settings_with, wait_until, Probe, WorkerProcess};
use provisioner::config::{SecretSource, Settings, TenantSettings};
use provisioner::contract::VendorKey;
use provisioner::sandbox::Faults;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
const HMAC_SECRET: &str = "examples-test-hmac-key-of-at-least-32-bytes";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The three sandbox accounts of config/development.toml and its tenant `acme`, read from
/// that file, so the examples run against the mapping the docs show; the intake on a free
/// port, signed with a secret from a file.
async fn settings(dir: &Path) -> (Settings, common::TestVendors) {
    let (mut settings, vendors) = settings_with(
        &[
            ("acme-glance", VendorKey::Glance),
            ("acme-netsapiens", VendorKey::Netsapiens),
            ("acme-clienttoolbox", VendorKey::Clienttoolbox),
        ],
        Faults::default(),
    )
    .await;
    let development: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo("config/development.toml")).unwrap()).unwrap();
    let acme: TenantSettings = development["tenants"]["acme"].clone().try_into().expect("tenant acme parses");
    settings.tenants.insert("acme".into(), acme);
    let secret = dir.join("intake-hmac");
    std::fs::write(&secret, HMAC_SECRET).unwrap();
    settings.intake.listen = Some("127.0.0.1:0".parse().unwrap());
    settings.intake.hmac_secret = Some(SecretSource::File(secret));
    settings.check().expect("the examples' settings are valid");
    (settings, vendors)
}

/// The intake's address, from the worker's start-up log.
async fn intake_url(worker: &mut WorkerProcess) -> String {
    worker.admin_when_consuming().await;
    wait_until(WAIT, "the worker logs the intake address", || worker.logged("hire intake listening")).await;
    let logs = worker.all_logs();
    let line = logs.lines().find(|l| l.contains("hire intake listening")).unwrap();
    let v: Value = serde_json::from_str(line).unwrap();
    format!("http://{}/v1/hires", v["intake"].as_str().unwrap())
}

/// An example script running as a child process, its output collected line by line.
struct Script {
    what: String,
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Script {
    fn start(program: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let what = format!("{program} {}", args.join(" "));
        let mut child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program} ({e}): the examples need python3 and node on the PATH"));
        let mut readers = Vec::new();
        let mut collect = |pipe: Box<dyn Read + Send>| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let sink = lines.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            }));
            lines
        };
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        Self { what, child, stdout, stderr, readers }
    }

    fn output(&self) -> String {
        format!(
            "{}:\n--- stdout\n{}\n--- stderr\n{}",
            self.what,
            self.stdout.lock().unwrap().join("\n"),
            self.stderr.lock().unwrap().join("\n")
        )
    }

    /// Waits for the exit and the end of its output, or panics with what it printed.
    /// Returns the exit status, the stdout lines, and everything it printed (for messages).
    async fn finish(mut self, within: Duration) -> (std::process::ExitStatus, Vec<String>, String) {
        let deadline = tokio::time::Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if tokio::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("{} did not finish within {within:?}\n{}", self.what, self.output());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The process is gone, so its pipes are at their end: the readers finish at once.
        let readers = std::mem::take(&mut self.readers);
        tokio::task::spawn_blocking(move || readers.into_iter().for_each(|r| r.join().unwrap())).await.unwrap();
        let lines = self.stdout.lock().unwrap().clone();
        (status, lines, self.output())
    }

    fn stderr_has(&self, needle: &str) -> bool {
        self.stderr.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails, saying how to install them, when an example's packages are missing.
fn require_packages(interpreter: &str) {
    let (check, install): (&[&str], &str) = match interpreter {
        "python3" => (&["-c", "import pika"], "python3 -m pip install -r examples/python/requirements.txt"),
        _ => (&["-e", "require('amqplib')"], "npm ci --prefix examples/node"),
    };
    let dir = if interpreter == "python3" { repo("examples/python") } else { repo("examples/node") };
    let ok = Command::new(interpreter).args(check).current_dir(dir).output().is_ok_and(|o| o.status.success());
    assert!(ok, "the {interpreter} examples' packages are missing: ./scripts/test installs them ({install})");
}

/// Runs one language's three examples against a worker and checks what they print.
async fn run_examples(interpreter: &str, dir: &str, publish: &str, post_hire: &str, watch: &str) {
    require_packages(interpreter);
    let tmp = tempfile::tempdir().unwrap();
    let (settings, _vendors) = settings(tmp.path()).await;
    let probe = Probe::new(&settings).await;
    let mut worker = WorkerProcess::start(&settings);
    let url = intake_url(&mut worker).await;
    let amqp = settings.amqp.url.clone();
    let t = &settings.topology;
    let script = |name: &str| repo(&format!("examples/{dir}/{name}")).display().to_string();

    // The watcher first, with its queue bound before anything is published.
    let watcher = Script::start(
        interpreter,
        &[&script(watch), "--amqp", &amqp, "--exchange", &t.events_exchange, "--count", "4", "--timeout", "60"],
        &[],
    );
    wait_until(WAIT, "the watcher bound its queue", || watcher.stderr_has("watching")).await;

    // A job, confirmed; and the same job under a routing key no queue is bound to: returned.
    let job = json!({"job_id": format!("{dir}-job-1"), "vendor": "clienttoolbox", "account": "acme-clienttoolbox",
        "correlation_id": format!("{dir}-example"),
        "user": {"user_name": format!("{dir}_example"), "user_new_password": "Example-pw-2026",
                 "user_first_name": "Ada", "user_last_name": "Lovelace", "user_role": "K", "allowed_campaigns": "all"}});
    let job_file = tmp.path().join("job.json");
    std::fs::write(&job_file, job.to_string()).unwrap();
    let job_path = job_file.display().to_string();
    let args = [
        script(publish),
        job_path.clone(),
        "--amqp".into(),
        amqp.clone(),
        "--exchange".into(),
        t.jobs_exchange.clone(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, lines, out) = Script::start(interpreter, &args, &[]).finish(WAIT).await;
    assert!(status.success(), "{out}");
    assert_eq!(lines, [format!("confirmed {dir}-job-1")], "{out}");

    let mut returned = args.clone();
    returned.extend(["--routing-key", "create_user.nobody"]);
    let (status, lines, out) = Script::start(interpreter, &returned, &[]).finish(WAIT).await;
    assert_eq!(status.code(), Some(1), "an unroutable job is a failure: {out}");
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].starts_with(&format!("returned {dir}-job-1: unroutable")), "{out}");

    // A hire, signed and posted to the intake: three jobs, one per vendor of tenant acme.
    let hire = json!({"event_id": format!("{dir}-hire-1"), "type": "hire", "tenant": "acme",
        "employee": {"id": "000731", "first_name": "Zoë", "last_name": "O'Brien-Smith",
                     "email": "zoe.obrien-smith@acme.example", "extension": "1731"}});
    let hire_file = tmp.path().join("hire.json");
    std::fs::write(&hire_file, format!("{hire}\n")).unwrap();
    let (status, lines, out) = Script::start(
        interpreter,
        &[&script(post_hire), &url, hire_file.to_str().unwrap()],
        &[("HMAC_SECRET", HMAC_SECRET)],
    )
    .finish(WAIT)
    .await;
    assert!(status.success(), "{out}");
    assert!(lines.len() == 1 && lines[0].starts_with("202 "), "{out}");
    let answer: Value = serde_json::from_str(&lines[0][4..]).unwrap();
    assert_eq!(answer["job_ids"].as_array().unwrap().len(), 3, "{out}");

    // The watcher printed the four result events, each a CloudEvent, and exited.
    let (status, lines, out) = watcher.finish(Duration::from_secs(60)).await;
    assert!(status.success(), "{out}\n--- worker\n{}", worker.all_logs());
    let mut seen: Vec<(String, String, String)> = lines
        .iter()
        .map(|l| {
            let e: Value = serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}\n{out}"));
            assert_eq!(e["specversion"], "1.0", "{l}");
            assert_eq!(e["data"]["outcome"], "created", "{l}");
            (
                e["subject"].as_str().unwrap().into(),
                e["type"].as_str().unwrap().into(),
                e["data"]["vendor"].as_str().unwrap().into(),
            )
        })
        .collect();
    seen.sort();
    let created = "provisioning.user.created".to_owned();
    assert_eq!(
        seen,
        [
            (format!("{dir}-hire-1:clienttoolbox:acme-clienttoolbox"), created.clone(), "clienttoolbox".into()),
            (format!("{dir}-hire-1:glance:acme-glance"), created.clone(), "glance".into()),
            (format!("{dir}-hire-1:netsapiens:acme-netsapiens"), created.clone(), "netsapiens".into()),
            (format!("{dir}-job-1"), created, "clienttoolbox".into()),
        ],
        "{out}"
    );

    worker.signal("-TERM");
    assert!(worker.wait_exit(WAIT).await.success(), "{}", worker.all_logs());
    probe.teardown().await;
}

#[tokio::test]
async fn the_python_examples_publish_a_job_post_a_signed_hire_and_print_the_result_events() {
    run_examples("python3", "python", "publish_job.py", "sign_hire.py", "watch_events.py").await;
}

#[tokio::test]
async fn the_node_examples_publish_a_job_post_a_signed_hire_and_print_the_result_events() {
    run_examples("node", "node", "publish_job.js", "post_hire.js", "watch_events.js").await;
}
