//! The committed JSON Schemas: regenerating them changes nothing, and on the job corpus an
//! off-the-shelf JSON Schema 2020-12 validator (Python `jsonschema`) and `provisioner validate`
//! give the same verdict job by job, except the listed rules JSON Schema cannot express.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_provisioner");
const FILES: [&str; 3] = ["job.schema.json", "hire-event.schema.json", "result-event.schema.json"];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn committed_schemas_are_what_the_code_generates() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(&["schema", "--write", dir.path().to_str().unwrap()], None);
    assert!(ok, "{err}");
    for (file, flag) in FILES.iter().zip([None, Some("--hire"), Some("--result")]) {
        let fresh = std::fs::read_to_string(dir.path().join(file)).unwrap();
        let committed = std::fs::read_to_string(repo().join("schemas").join(file)).unwrap_or_default();
        assert!(
            fresh == committed,
            "schemas/{file} is stale: regenerate with `cargo run -- schema --write schemas/` and commit it"
        );
        let printed = run(&["schema"].into_iter().chain(flag).collect::<Vec<_>>(), None).1;
        assert_eq!(printed, fresh, "`provisioner schema {}` prints schemas/{file}", flag.unwrap_or(""));
        let schema: Value = serde_json::from_str(&fresh).unwrap();
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema", "{file}");
        assert!(schema["$id"].as_str().is_some_and(|id| id.starts_with("urn:provisioner:schema:")), "{file}");
    }
}

fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/corpus/jobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// The schema's verdict on each corpus file, from Python `jsonschema`.
fn schema_verdicts(files: &[PathBuf]) -> BTreeMap<String, (bool, String)> {
    let import = Command::new("python3").args(["-c", "import jsonschema"]).output();
    assert!(
        import.is_ok_and(|o| o.status.success()),
        "Python jsonschema is missing: run the suite through ./scripts/test, which installs it \
         (python3 -m pip install jsonschema==4.26.0)"
    );
    let script = repo().join("tests/corpus/schema_verdicts.py");
    let out =
        Command::new("python3").arg(script).arg(repo().join("schemas/job.schema.json")).args(files).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let file = name(Path::new(v["file"].as_str().unwrap()));
            (file, (v["valid"].as_bool().unwrap(), v["errors"].to_string()))
        })
        .collect()
}

/// `provisioner validate`'s verdict on each corpus file, without a config (the defaults).
fn validate_verdicts(files: &[PathBuf]) -> BTreeMap<String, (bool, String)> {
    let jobs: Vec<Value> =
        files.iter().map(|f| serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap()).collect();
    let (_, out, err) = run(&["validate", "--json", "-"], Some(&Value::Array(jobs).to_string()));
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), files.len(), "{err}");
    files.iter().zip(lines).map(|(f, v)| (name(f), (v["valid"].as_bool().unwrap(), v["errors"].to_string()))).collect()
}

fn exceptions() -> BTreeMap<String, String> {
    let listed = std::fs::read_to_string(repo().join("tests/corpus/schema-exceptions.txt")).unwrap();
    let names: BTreeSet<&str> = provisioner::job::NOT_EXPRESSIBLE.iter().map(|(n, _)| *n).collect();
    listed
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (file, rule) = l.split_once(' ').unwrap_or_else(|| panic!("`file rule` expected: {l}"));
            assert!(names.contains(rule.trim()), "{rule} is not a rule the job schema lists as not expressible");
            (file.to_owned(), rule.trim().to_owned())
        })
        .collect()
}

#[test]
fn the_schema_and_validate_agree_job_by_job_except_the_listed_rules() {
    let files = corpus();
    assert!(files.len() >= 100, "the corpus is in tests/corpus/jobs");
    let by_schema = schema_verdicts(&files);
    let by_validate = validate_verdicts(&files);
    let exceptions = exceptions();
    let mut problems = Vec::new();
    for f in &files {
        let file = name(f);
        let (schema_ok, schema_errors) = &by_schema[&file];
        let (validate_ok, validate_errors) = &by_validate[&file];
        // The file name says what the job is meant to be, so a rule both sides lost is caught too.
        if *validate_ok != file.starts_with("valid-") {
            problems.push(format!("{file}: validate says valid={validate_ok} {validate_errors}"));
        }
        match (schema_ok == validate_ok, exceptions.get(&file)) {
            (true, None) => {}
            (false, Some(_)) => {}
            (true, Some(rule)) => problems.push(format!("{file}: listed under {rule}, but both agree: unlist it")),
            (false, None) => problems.push(format!(
                "{file}: schema valid={schema_ok} {schema_errors}, validate valid={validate_ok} {validate_errors}"
            )),
        }
    }
    for listed in exceptions.keys().filter(|f| !by_schema.contains_key(*f)) {
        problems.push(format!("{listed}: listed, but not in the corpus"));
    }
    assert!(problems.is_empty(), "schema and validate disagree:\n{}", problems.join("\n"));
}
