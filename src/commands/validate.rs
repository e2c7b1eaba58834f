//! `provisioner validate FILE`: checks jobs offline, from a JSON array or NDJSON.

use std::io::Write;

use serde::Serialize;

use super::terminal::{self, printable};
use crate::config::Settings;
use crate::contract::FieldError;
use crate::job::{self, Rejection};
use crate::vendors::{FieldRules, Rulebook};

/// One job's verdict; with `--json`, one line of output.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Verdict {
    pub index: usize,
    pub job_id: Option<String>,
    pub valid: bool,
    pub errors: Vec<FieldError>,
}

/// Splits the input into job values: a JSON array of jobs, or one job per line (NDJSON).
/// A line that is not JSON stays a job of its own, so its error is reported in place.
pub fn split_jobs(input: &str) -> Vec<Result<serde_json::Value, String>> {
    let trimmed = input.trim_start();
    if trimmed.starts_with('[') {
        if let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(trimmed) {
            return items.into_iter().map(Ok).collect();
        }
    }
    input
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("not JSON: {e}")))
        .collect()
}

/// Checks every job; with `settings`, under its account's own field rules and policy, and
/// that its account exists and serves its vendor. Without, under the documented defaults.
pub fn check(input: &str, settings: Option<&Settings>) -> Vec<Verdict> {
    let mut rules = Rulebook::default();
    // An account whose rule settings are wrong is reported on its jobs, which are then
    // checked under the defaults.
    let mut broken = std::collections::BTreeMap::new();
    for (name, account) in settings.map(|s| &s.accounts).into_iter().flatten() {
        match FieldRules::from_settings(name, account) {
            Ok(r) => rules.insert(name.clone(), r),
            Err(e) => {
                broken.insert(name.as_str(), e.to_string());
            }
        }
    }
    split_jobs(input)
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let value = match item {
                Ok(v) => v,
                Err(message) => {
                    return Verdict { index, job_id: None, valid: false, errors: vec![FieldError::new("", message)] }
                }
            };
            let job_id = value.get("job_id").and_then(|v| v.as_str()).map(str::to_owned);
            let mut errors = match &value {
                serde_json::Value::Object(obj) => match job::decode::decode_object_with(obj, &rules) {
                    Ok(job) => account_errors(&job, settings),
                    Err(Rejection::Invalid(inv)) => inv.errors,
                    Err(Rejection::Undecodable(m)) => vec![FieldError::new("", m)],
                },
                _ => vec![FieldError::new("", "expected a JSON object")],
            };
            if let Some(e) = value.get("account").and_then(|a| a.as_str()).and_then(|a| broken.get(a)) {
                errors.insert(0, FieldError::new("account", e.clone()));
            }
            errors.dedup();
            Verdict { index, job_id, valid: errors.is_empty(), errors }
        })
        .collect()
}

fn account_errors(job: &crate::contract::Job, settings: Option<&Settings>) -> Vec<FieldError> {
    let Some(settings) = settings else { return Vec::new() };
    match settings.account(job.account.as_str()) {
        None => vec![FieldError::new("account", format!("no account named {:?} is configured", job.account.as_str()))],
        Some(a) if a.vendor != job.vendor => vec![FieldError::new(
            "account",
            format!("account {:?} is a {} account, not {}", job.account.as_str(), a.vendor, job.vendor),
        )],
        Some(a) => match crate::vendors::Policy::from_settings(job.account.as_str(), a) {
            Ok(policy) => policy.check(job),
            Err(e) => vec![FieldError::new("account", e.to_string())],
        },
    }
}

/// Prints the verdicts; returns whether every job was valid.
pub fn print(verdicts: &[Verdict], json: bool, out: &mut impl Write) -> std::io::Result<bool> {
    for v in verdicts {
        if json {
            writeln!(out, "{}", terminal::json(v, false))?;
        } else if v.valid {
            writeln!(out, "#{} {}: valid", v.index, printable(v.job_id.as_deref().unwrap_or("?")))?;
        } else {
            writeln!(out, "#{} {}: INVALID", v.index, printable(v.job_id.as_deref().unwrap_or("?")))?;
            for e in &v.errors {
                let field = if e.field.is_empty() { "(job)".into() } else { printable(&e.field) };
                writeln!(out, "    {field}: {}", printable(&e.message))?;
            }
        }
    }
    let invalid = verdicts.iter().filter(|v| !v.valid).count();
    if !json {
        writeln!(out, "{} jobs, {} valid, {invalid} invalid", verdicts.len(), verdicts.len() - invalid)?;
    }
    Ok(invalid == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_arrays_and_ndjson_alike() {
        let one = r#"{"job_id":"a","vendor":"glance","account":"x","user":{"PartnerUserID":"1","UserAddress":"a.glance.net"}}"#;
        let array = format!("[{one},{one}]");
        let ndjson = format!("{one}\n\n{one}\n");
        assert_eq!(check(&array, None), check(&ndjson, None));
        assert!(check(&array, None).iter().all(|v| v.valid));
    }

    /// An unknown key is quoted in the error; printed raw, it would retitle and clear the
    /// operator's terminal.
    #[test]
    fn hostile_text_is_printed_escaped() {
        // JSON escapes, so the decoded key and job id carry the raw characters.
        let input = r#"{"job_id":"a\u202e","\u001b]0;PWNED\u0007\u001b[2J":1}"#;
        let verdicts = check(input, None);
        for json in [false, true] {
            let mut out = Vec::new();
            print(&verdicts, json, &mut out).unwrap();
            let out = String::from_utf8(out).unwrap();
            assert!(!out.contains('\u{1b}') && !out.contains('\u{7}') && !out.contains('\u{202e}'), "{out}");
            assert!(out.contains("PWNED"), "the key is still shown: {out}");
        }
    }

    #[test]
    fn with_a_config_the_accounts_policy_applies() {
        use crate::contract::VendorKey;
        let mut settings = Settings::default();
        settings.accounts.insert("ctb".into(), crate::sandbox::account(VendorKey::Clienttoolbox, "http://127.0.0.1:1"));
        let mut job = crate::pipeline::sample_job("j", VendorKey::Clienttoolbox, "ctb", "jadmin");
        job["user"]["user_role"] = "A".into();
        let verdict = &check(&job.to_string(), Some(&settings))[0];
        assert!(!verdict.valid);
        assert_eq!(verdict.errors[0].field, "user.user_role");
        assert!(check(&job.to_string(), None)[0].valid, "without a config there is no account, so no policy");
    }

    #[test]
    fn with_a_config_the_accounts_field_rules_apply_both_ways() {
        use crate::contract::VendorKey;
        let mut settings = Settings::default();
        let mut ctb = crate::sandbox::account(VendorKey::Clienttoolbox, "http://127.0.0.1:1");
        ctb.settings.insert("roles".into(), "A,K".into());
        settings.accounts.insert("ctb".into(), ctb);
        let mut glance = crate::sandbox::account(VendorKey::Glance, "http://127.0.0.1:1");
        glance.settings.insert("user_role_max_length".into(), "70".into());
        settings.accounts.insert("gl".into(), glance);

        let mut tightened = crate::pipeline::sample_job("j1", VendorKey::Clienttoolbox, "ctb", "jzed");
        tightened["user"]["user_role"] = "Z".into();
        assert!(check(&tightened.to_string(), None)[0].valid, "any letter by default");
        let verdict = &check(&tightened.to_string(), Some(&settings))[0];
        assert_eq!(verdict.errors[0].field, "user.user_role", "{verdict:?}");
        assert!(verdict.errors[0].message.contains("accounts.ctb.settings.roles"), "{verdict:?}");

        let mut relaxed = crate::pipeline::sample_job("j2", VendorKey::Glance, "gl", "EMP-2");
        relaxed["user"]["UserRole"] = "r".repeat(70).into();
        assert!(!check(&relaxed.to_string(), None)[0].valid, "31 by default");
        assert!(check(&relaxed.to_string(), Some(&settings))[0].valid);

        settings.accounts.get_mut("gl").unwrap().settings.insert("user_role_max_length".into(), "500".into());
        let verdict = &check(&relaxed.to_string(), Some(&settings))[0];
        assert_eq!(verdict.errors[0].field, "account");
        assert!(verdict.errors[0].message.contains("user_role_max_length"), "{verdict:?}");
    }

    #[test]
    fn a_broken_line_is_reported_in_place() {
        let input = "{\"job_id\":\"a\"}\nnot json\n";
        let v = check(input, None);
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].index, 1);
        assert!(v[1].errors[0].message.starts_with("not JSON"));
    }
}
