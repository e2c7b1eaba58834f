//! The ClientToolbox adapter: build the call, send it over the account's pooled client, interpret the answer.
//!
//! `user_new` is not idempotent and returns no id, so a redelivered job looks the user up
//! first, and a "user name already exists" answer is settled by a lookup too: the same user is
//! `existing`, anyone else is a `conflict`. The other kinds name an existing user: a lookup
//! (when the account has a usable one) tells a missing user and a change already made
//! (`unchanged`) before `user_update` or `user_delete` is sent. ClientToolbox documents no
//! suspend, so suspend and restore set what the account configures.

use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use secrecy::ExposeSecret;

use super::account::{self, Account, Auth, UnverifiedDuplicate};
use super::fields::{Changes, NewUser, UserChange, UserRef};
use super::request::{self, ApiRequest, FORM_CONTENT_TYPE};
use super::response::{self, code, Lookup};
use crate::config::{AccountSettings, ConfigError, VendorSettings};
use crate::contract::{FieldError, Job, JobKind};
use crate::vendors::{http, CallContext, LedgerProof, Receipt, VendorError, VendorFailure, INVALID_FIELD};

/// One account's client. Cheap to clone: the HTTP pool and the account are shared.
#[derive(Clone, Debug)]
pub struct Adapter {
    account: Arc<Account>,
    base: http::BaseUrl,
    client: http::Client,
}

/// Reads the account config and builds its pooled client once.
pub fn build(name: &str, account: &AccountSettings, http: &VendorSettings) -> Result<Adapter, ConfigError> {
    Ok(Adapter::new(account::from_settings(name, account)?, http))
}

struct Raw {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Adapter {
    pub fn new(account: Account, settings: &VendorSettings) -> Self {
        let base = http::BaseUrl::new(&account.base_url);
        Self { account: Arc::new(account), base, client: http::client(settings) }
    }

    pub fn account(&self) -> &Account {
        &self.account
    }

    async fn send(&self, req: &ApiRequest) -> Result<Raw, VendorError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(FORM_CONTENT_TYPE));
        for (name, value) in req.header_values() {
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                VendorError::new(
                    VendorFailure::Auth,
                    "bad_credential",
                    format!("the {name} credential of account {} is not a valid header value", self.account.name),
                )
            })?;
            value.set_sensitive(true);
            headers.insert(HeaderName::from_static(name), value);
        }
        let request =
            self.base.request(&self.client, reqwest::Method::POST, &req.path).headers(headers).body(req.body());
        let answer = self.client.exchange(request).await?;
        Ok(Raw { status: answer.status.as_u16(), headers: answer.headers, body: answer.body })
    }

    /// Every secret this call could expose, for scrubbing vendor text.
    fn secrets<'a>(&'a self, req: &'a ApiRequest) -> Vec<&'a str> {
        let mut s = req.secrets();
        match &self.account.auth {
            Auth::Password(p) | Auth::Header(p) => s.push(p.expose_secret()),
        }
        s
    }

    /// One lookup call (`user_info` or `users_list`); `None` when the account has none
    /// configured. `secrets` and `echoes` are the job's, kept out of and away from vendor text.
    async fn send_lookup(&self, wire: &str, secrets: &[&str], echoes: &[&str]) -> Result<Option<Lookup>, VendorError> {
        let Some(req) = request::lookup(&self.account, wire) else { return Ok(None) };
        let raw = self.send(&req).await?;
        let mut all = self.secrets(&req);
        all.extend_from_slice(secrets);
        let found = response::interpret_lookup(
            self.account.lookup,
            raw.status,
            &raw.headers,
            &raw.body,
            &self.account.classifier,
            wire,
            &all,
            echoes,
        )?;
        if let Lookup::Unsupported(reason) = &found {
            tracing::warn!(account = %self.account.name, reason = %reason,
                "ClientToolbox lookup could not answer; check accounts.<name>.settings.lookup");
        }
        Ok(Some(found))
    }

    /// The vendor says the name is taken: decide whose user it is. The ledger decides first:
    /// when it proved the name was claimed for this job or this person, the user is theirs
    /// (the create went through before a crash, or the person already had it). Otherwise a
    /// lookup, which can only compare names, decides as it did before there was a ledger.
    async fn settle_duplicate(
        &self,
        user: &NewUser,
        wire: &str,
        dup: VendorError,
        ctx: CallContext,
    ) -> Result<Receipt, VendorError> {
        if ctx.ledger == LedgerProof::ThisPerson {
            return Ok(response::receipt(wire, true));
        }
        match self.send_lookup(wire, &new_user_secrets(user), &user.echoes()).await? {
            Some(Lookup::Found(found)) => response::reconcile(&found, user, wire),
            Some(Lookup::Absent) => Err(VendorError::new(
                VendorFailure::Conflict,
                code::USER_NAME_TAKEN,
                format!(
                    "ClientToolbox says user_name {wire} exists but the lookup does not list it (a user marked deleted keeps its name); choose another user_name or restore that user"
                ),
            )),
            None | Some(Lookup::Unsupported(_)) => match self.account.on_unverified_duplicate {
                UnverifiedDuplicate::Existing => Ok(response::receipt(wire, true)),
                UnverifiedDuplicate::Conflict => Err(VendorError {
                    message: format!(
                        "{}; no lookup could tell whether it is this job's user, so it is treated as someone else's. Check the user in ClientToolbox; if it is this person, replay with settings.on_unverified_duplicate = existing or enable settings.lookup",
                        dup.message
                    ),
                    ..dup
                }),
            },
        }
    }

    /// The job's user under the vendor's and this account's rules; a refusal is never sent.
    fn parse_user(&self, job: &Job) -> Result<NewUser, VendorError> {
        // Decoding already applied the vendor's rules; parsing again is what turns the job's
        // fields into values that cannot be invalid.
        let user = NewUser::parse(&job.user).map_err(invalid_field)?;
        // Decoding applied this account's rules too; checking again keeps a job decoded
        // without them (a test, a replay tool) from slipping through.
        self.account.check(&user).map_err(|(field, message)| not_sent(&field, &message))?;
        Ok(user)
    }

    /// An `update_user` job's user, under the same rules as [`Self::parse_user`].
    fn parse_change(&self, job: &Job) -> Result<UserChange, VendorError> {
        let change = UserChange::parse(&job.user).map_err(invalid_field)?;
        match self.account.rules.check_changes(&change.changes).into_iter().next() {
            None => Ok(change),
            Some(e) => Err(not_sent(&e.field, &e.message)),
        }
    }

    /// A suspend, restore or delete job's user: its name.
    fn parse_ref(&self, job: &Job) -> Result<UserRef, VendorError> {
        UserRef::parse(&job.user).map_err(invalid_field)
    }

    /// Sets `changes` on the user, unless the lookup proves it holds them already
    /// (`existing`) or holds no such user. Without a usable lookup the update is sent and
    /// `updated` is all that can be said: `unchanged` cannot be proven.
    async fn change(&self, wire: &str, changes: &Changes, echoes: &[&str]) -> Result<Receipt, VendorError> {
        match self.send_lookup(wire, &changes.secrets(), echoes).await? {
            Some(Lookup::Found(found)) if response::already_applied(&found, changes) => {
                return Ok(response::receipt(wire, true))
            }
            Some(Lookup::Absent) => return Err(response::no_such_user(wire)),
            Some(Lookup::Found(_) | Lookup::Unsupported(_)) | None => {}
        }
        self.send_update(wire, changes, echoes).await
    }

    /// One `user_update` call.
    async fn send_update(&self, wire: &str, changes: &Changes, echoes: &[&str]) -> Result<Receipt, VendorError> {
        let req = request::update(&self.account, wire, changes);
        let raw = self.send(&req).await?;
        response::interpret_update(
            raw.status,
            &raw.headers,
            &raw.body,
            &self.account.classifier,
            wire,
            &self.secrets(&req),
            echoes,
        )
    }

    /// Suspend or restore: the account's `settings.suspend` / `settings.restore` applied as
    /// an update, refused before anything is sent when the account sets none.
    async fn switch(&self, job: &Job, kind: JobKind) -> Result<Receipt, VendorError> {
        let user = self.parse_ref(job)?;
        let wire = self.account.wire_name(&user.user_name);
        let (changes, setting, code) = match kind {
            JobKind::SuspendUser => (&self.account.suspend, "suspend", code::SUSPEND_NOT_CONFIGURED),
            _ => (&self.account.restore, "restore", code::RESTORE_NOT_CONFIGURED),
        };
        let Some(changes) = changes else {
            return Err(VendorError::new(
                VendorFailure::Rejected,
                code,
                format!(
                    "ClientToolbox has no {setting} call and account {name} sets none, so nothing was sent; set \
                     accounts.{name}.settings.{setting} to the user fields a {kind} job sets (a JSON object, e.g. \
                     '{{\"allowed_campaigns\": \"none\"}}'), then replay",
                    name = self.account.name
                ),
            ));
        };
        self.change(&wire, changes, &[user.user_name.as_given()]).await
    }

    /// Delete: by default `user_delete` only marks the user deleted; `settings.hard_delete`
    /// sends `action=permanent`. A user already gone is `existing`, found by the lookup or
    /// told by the vendor's not-found answer.
    async fn remove(&self, job: &Job) -> Result<Receipt, VendorError> {
        let user = self.parse_ref(job)?;
        let wire = self.account.wire_name(&user.user_name);
        // A permanent delete is sent whatever the lookup says: a user marked deleted reads
        // as absent there, yet is still held and must really go.
        if !self.account.hard_delete {
            if let Some(Lookup::Absent) = self.send_lookup(&wire, &[], &[user.user_name.as_given()]).await? {
                let mut r = response::receipt(&wire, true);
                r.details.insert("deletion".into(), "marked_deleted".into());
                return Ok(r);
            }
        }
        self.send_delete(&wire).await
    }

    /// One `user_delete` call.
    async fn send_delete(&self, wire: &str) -> Result<Receipt, VendorError> {
        let req = request::delete(&self.account, wire);
        let raw = self.send(&req).await?;
        response::interpret_delete(
            raw.status,
            &raw.headers,
            &raw.body,
            &self.account.classifier,
            wire,
            self.account.hard_delete,
            &self.secrets(&req),
        )
    }

    /// Every call's receipt names the account; its outcome is logged without the job's values.
    fn finish(&self, kind: JobKind, result: Result<Receipt, VendorError>) -> Result<Receipt, VendorError> {
        let result = result.map(|mut receipt| {
            receipt.details.insert("account_id".into(), self.account.account_id.clone().into());
            receipt
        });
        match &result {
            Ok(r) => {
                tracing::debug!(account = %self.account.name, %kind, existing = r.existing, "ClientToolbox call done")
            }
            Err(e) => tracing::debug!(account = %self.account.name, %kind, code = %e.code, "ClientToolbox call failed"),
        }
        result
    }

    /// The whole flow: parse, look before a create that might repeat one, create, settle.
    async fn run(&self, job: &Job, ctx: CallContext) -> Result<Receipt, VendorError> {
        let user = self.parse_user(job)?;
        let wire = self.account.wire_user_name(&user);
        if ctx.maybe_seen_before {
            match self.send_lookup(&wire, &new_user_secrets(&user), &user.echoes()).await? {
                Some(Lookup::Found(found)) => return response::reconcile(&found, &user, &wire),
                Some(Lookup::Absent | Lookup::Unsupported(_)) | None => {}
            }
        }
        match self.send_create(&user, &wire).await {
            Err(e) if e.code == code::DUPLICATE_USER_NAME => self.settle_duplicate(&user, &wire, e, ctx).await,
            other => other,
        }
    }

    /// One `user_new` call.
    async fn send_create(&self, user: &NewUser, wire: &str) -> Result<Receipt, VendorError> {
        let req = request::create(&self.account, user);
        let raw = self.send(&req).await?;
        response::interpret_create(
            raw.status,
            &raw.headers,
            &raw.body,
            &self.account.classifier,
            wire,
            &self.secrets(&req),
            &user.echoes(),
        )
    }
}

/// The job's own secrets, so vendor text that echoes one can be scrubbed.
fn new_user_secrets(user: &NewUser) -> Vec<&str> {
    std::iter::once(user.password.expose()).chain(user.pin.as_ref().map(|p| p.expose())).collect()
}

/// A job whose fields fail the vendor's rules: never sent.
fn invalid_field(errors: Vec<FieldError>) -> VendorError {
    let summary = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
    VendorError::new(VendorFailure::Rejected, INVALID_FIELD, format!("not sent: {summary}"))
}

/// A job outside this account's narrowing of the rules: never sent.
fn not_sent(field: &str, message: &str) -> VendorError {
    VendorError::new(VendorFailure::Rejected, "not_sent", format!("not sent: {field} {message}; fix the job"))
}

impl crate::vendors::Adapter for Adapter {
    async fn create_user(&self, job: &Job, ctx: CallContext) -> Result<Receipt, VendorError> {
        self.finish(JobKind::CreateUser, self.run(job, ctx).await)
    }

    async fn update_user(&self, job: &Job, _ctx: CallContext) -> Result<Receipt, VendorError> {
        let result = async {
            let change = self.parse_change(job)?;
            let wire = self.account.wire_name(&change.user_name);
            self.change(&wire, &change.changes, &change.echoes()).await
        };
        self.finish(JobKind::UpdateUser, result.await)
    }

    async fn suspend_user(&self, job: &Job, _ctx: CallContext) -> Result<Receipt, VendorError> {
        self.finish(JobKind::SuspendUser, self.switch(job, JobKind::SuspendUser).await)
    }

    async fn restore_user(&self, job: &Job, _ctx: CallContext) -> Result<Receipt, VendorError> {
        self.finish(JobKind::RestoreUser, self.switch(job, JobKind::RestoreUser).await)
    }

    async fn delete_user(&self, job: &Job, _ctx: CallContext) -> Result<Receipt, VendorError> {
        self.finish(JobKind::DeleteUser, self.remove(job).await)
    }

    /// The `user_name` as sent, whatever the kind: a create's whole user, an update's
    /// change or the bare name of the other kinds, each under the rules its call applies.
    fn identity(&self, job: &Job) -> Result<crate::vendors::VendorIdentity, VendorError> {
        let name = match job.kind {
            JobKind::CreateUser => self.parse_user(job)?.user_name,
            JobKind::UpdateUser => self.parse_change(job)?.user_name,
            JobKind::SuspendUser | JobKind::RestoreUser | JobKind::DeleteUser => self.parse_ref(job)?.user_name,
        };
        Ok(crate::vendors::VendorIdentity { key: self.account.wire_name(&name), extra: None })
    }

    /// `user_new` returns no id, and a lookup (when an account has one) can only compare
    /// names: a namesake looks the same. Every create is preceded by an intent.
    fn proves_identity(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use wiremock::matchers::{body_string_contains, header, method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    use super::super::testing::{self, API_KEY, PASSWORD};
    use super::*;
    use crate::vendors::testing::{FRESH, SEEN};
    use crate::vendors::Adapter as _;

    const SUCCESS: &str = "<response status=\"success\">\n</response>\n";

    fn xml_error(message: &str) -> String {
        format!("<response status=\"error\">\n  <error>{message}</error>\n</response>\n")
    }

    fn user_xml(first: &str) -> String {
        format!(
            "<response status=\"success\"><user><user_name>jdoe</user_name><user_first_name>{first}</user_first_name>\
             <user_last_name>Doe</user_last_name><user_role>K</user_role></user></response>"
        )
    }

    fn adapter(base_url: &str, settings: &[(&str, &str)]) -> Adapter {
        let f = testing::account(Some(base_url), settings);
        build("acme", &f.settings, &VendorSettings::default()).unwrap()
    }

    async fn answer(server: &MockServer, kind: &str, response: ResponseTemplate, times: u64) {
        Mock::given(method("POST"))
            .and(path("/api.php"))
            .and(body_string_contains(format!("type={kind}&")))
            .respond_with(response)
            .expect(times)
            .mount(server)
            .await;
    }

    fn xml(body: impl Into<String>) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_string(body.into()).insert_header("content-type", "text/xml")
    }

    async fn run(server: &MockServer, settings: &[(&str, &str)], ctx: CallContext) -> Result<Receipt, VendorError> {
        adapter(&server.uri(), settings).create_user(&testing::job("jdoe", json!({})), ctx).await
    }

    #[tokio::test]
    async fn created_sends_one_form_post_and_reports_the_user_name() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api.php"))
            .and(header("content-type", FORM_CONTENT_TYPE))
            .and(body_string_contains("type=user_new&user_id=provisioner&user_password=sandbox-password&"))
            .respond_with(xml(SUCCESS))
            .expect(1)
            .mount(&server)
            .await;
        let r = run(&server, &[], FRESH).await.unwrap();
        assert!(!r.existing);
        assert_eq!(r.vendor_user_id.as_deref(), Some("jdoe"));
        assert_eq!(r.details["account_id"], "acmerewards");
    }

    #[tokio::test]
    async fn header_auth_sends_the_key_as_a_header_only() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(header("api_access_key", API_KEY))
            .and(|r: &Request| !String::from_utf8_lossy(&r.body).contains("user_password"))
            .respond_with(xml(SUCCESS))
            .expect(1)
            .mount(&server)
            .await;
        run(&server, &[("auth", "api_access_key")], FRESH).await.unwrap();
    }

    #[tokio::test]
    async fn simple_classes() {
        let cases: Vec<(ResponseTemplate, VendorFailure, &str)> = vec![
            (
                xml(xml_error("Authentication failed: invalid user_id or user_password")),
                VendorFailure::Auth,
                code::AUTH,
            ),
            (xml(xml_error("Invalid account_id")), VendorFailure::Auth, code::UNKNOWN_ACCOUNT),
            (xml(xml_error("Invalid user_role")), VendorFailure::Rejected, code::REJECTED),
            (xml(xml_error("User PIN already exists")), VendorFailure::Conflict, code::DUPLICATE_PIN),
            (xml(xml_error("Too many requests")), VendorFailure::Throttled, code::RATE_LIMITED),
            (ResponseTemplate::new(503), VendorFailure::Transient, "http_503"),
            (xml("<html>maintenance</html>"), VendorFailure::Transient, code::UNREADABLE),
            (ResponseTemplate::new(404), VendorFailure::Auth, code::WRONG_ENDPOINT),
            (
                ResponseTemplate::new(200).set_body_string("{\"status\":\"error\",\"error\":\"Invalid user_role\"}"),
                VendorFailure::Rejected,
                code::REJECTED,
            ),
        ];
        for (response, failure, code) in cases {
            let server = MockServer::start().await;
            answer(&server, "user_new", response, 1).await;
            let e = run(&server, &[], FRESH).await.unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (failure, code), "{e}");
        }
    }

    #[tokio::test]
    async fn throttling_carries_retry_after() {
        let server = MockServer::start().await;
        answer(&server, "user_new", ResponseTemplate::new(429).insert_header("Retry-After", "3"), 1).await;
        let e = run(&server, &[], FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.retry_after), (VendorFailure::Throttled, Some(Duration::from_secs(3))));
    }

    #[tokio::test]
    async fn connection_refused_is_transient() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let a = adapter(&format!("http://{addr}"), &[]);
        let e = a.create_user(&testing::job("jdoe", json!({})), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Transient, "connect"));
    }

    #[tokio::test]
    async fn duplicate_of_the_same_user_is_existing() {
        let server = MockServer::start().await;
        answer(&server, "user_new", xml(xml_error("User name already exists")), 1).await;
        answer(&server, "user_info", xml(user_xml("Jane")), 1).await;
        let r = run(&server, &[], FRESH).await.unwrap();
        assert!(r.existing);
        assert_eq!(r.vendor_user_id.as_deref(), Some("jdoe"));
    }

    #[tokio::test]
    async fn duplicate_of_someone_else_is_a_conflict() {
        let server = MockServer::start().await;
        answer(&server, "user_new", xml(xml_error("User name already exists")), 1).await;
        answer(&server, "user_info", xml(user_xml("Bob")), 1).await;
        let e = run(&server, &[], FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Conflict, code::USER_NAME_TAKEN));
    }

    #[tokio::test]
    async fn duplicate_the_lookup_does_not_list_is_a_conflict() {
        let server = MockServer::start().await;
        answer(&server, "user_new", xml(xml_error("User name already exists")), 1).await;
        answer(&server, "user_info", xml(xml_error("User not found")), 1).await;
        let e = run(&server, &[], FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Conflict, code::USER_NAME_TAKEN));
        assert!(e.message.contains("deleted"), "{}", e.message);
    }

    #[tokio::test]
    async fn unverifiable_duplicate_follows_the_setting() {
        for (settings, lookups) in [(&[][..], 1), (&[("lookup", "none")][..], 0)] {
            let server = MockServer::start().await;
            answer(&server, "user_new", xml(xml_error("User name already exists")), 1).await;
            answer(&server, "user_info", xml(xml_error("Invalid type: user_info")), lookups).await;
            let e = run(&server, settings, FRESH).await.unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Conflict, code::DUPLICATE_USER_NAME));
            assert!(e.message.contains("on_unverified_duplicate"), "{}", e.message);

            let mut existing = settings.to_vec();
            existing.push(("on_unverified_duplicate", "existing"));
            let server = MockServer::start().await;
            answer(&server, "user_new", xml(xml_error("User name already exists")), 1).await;
            answer(&server, "user_info", xml(xml_error("Invalid type: user_info")), lookups).await;
            assert!(run(&server, &existing, FRESH).await.unwrap().existing);
        }
    }

    #[tokio::test]
    async fn users_list_lookup_settles_a_duplicate() {
        let server = MockServer::start().await;
        answer(&server, "user_new", xml(xml_error("User name already exists")), 1).await;
        let list = "<response status=\"success\"><users><user><user_name>bob</user_name></user>\
                    <user><user_name>JDOE</user_name><user_first_name>Jane</user_first_name></user></users></response>";
        Mock::given(body_string_contains("type=users_list&")).respond_with(xml(list)).expect(1).mount(&server).await;
        assert!(run(&server, &[("lookup", "users_list")], FRESH).await.unwrap().existing);
    }

    #[tokio::test]
    async fn a_redelivery_looks_before_creating() {
        let server = MockServer::start().await;
        answer(&server, "user_info", xml(user_xml("Jane")), 1).await;
        answer(&server, "user_new", xml(SUCCESS), 0).await;
        assert!(run(&server, &[], SEEN).await.unwrap().existing);

        let server = MockServer::start().await;
        answer(&server, "user_info", xml(xml_error("User not found")), 1).await;
        answer(&server, "user_new", xml(SUCCESS), 1).await;
        assert!(!run(&server, &[], SEEN).await.unwrap().existing);

        // A caller allowed to create users but not to read them: the create still happens.
        let server = MockServer::start().await;
        answer(&server, "user_info", xml(xml_error("Permission denied")), 1).await;
        answer(&server, "user_new", xml(SUCCESS), 1).await;
        assert!(!run(&server, &[], SEEN).await.unwrap().existing);

        // Wrong credentials fail the create itself as auth.
        let server = MockServer::start().await;
        answer(&server, "user_info", xml(xml_error("Authentication failed")), 1).await;
        answer(&server, "user_new", xml(xml_error("Authentication failed")), 1).await;
        assert_eq!(run(&server, &[], SEEN).await.unwrap_err().failure, VendorFailure::Auth);
    }

    #[tokio::test]
    async fn account_rules_refuse_before_sending() {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(xml(SUCCESS)).expect(0).mount(&server).await;
        let e = run(&server, &[("roles", "A")], FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, "not_sent"));
        assert!(e.message.contains("user.user_role"), "{}", e.message);
        let e = run(&server, &[("min_password_length", "50")], FRESH).await.unwrap_err();
        assert!(e.message.contains("user.user_new_password") && !e.message.contains("S3cure!pass"), "{}", e.message);
    }

    #[tokio::test]
    async fn secrets_never_reach_errors_receipts_or_debug() {
        let echo = format!("Invalid user_PIN 4321 for password S3cure!pass (caller {PASSWORD}, key {API_KEY})");
        // Only the credential in use is ever sent, so only it could be echoed back.
        for (auth, credential) in [("user_password", PASSWORD), ("api_access_key", API_KEY)] {
            let check = |shown: &str| {
                for secret in ["S3cure!pass", "4321", credential] {
                    assert!(!shown.contains(secret), "{secret} leaked: {shown}");
                }
            };
            let server = MockServer::start().await;
            answer(&server, "user_new", xml(xml_error(&echo)), 1).await;
            let a = adapter(&server.uri(), &[("auth", auth)]);
            let e = a.create_user(&testing::job("jdoe", json!({})), FRESH).await.unwrap_err();
            check(&format!("{e} {e:?}"));
            check(&format!("{a:?}"));

            let server = MockServer::start().await;
            answer(&server, "user_new", xml(format!("garbage {echo}")), 1).await;
            let a = adapter(&server.uri(), &[("auth", auth)]);
            let e = a.create_user(&testing::job("jdoe", json!({})), FRESH).await.unwrap_err();
            check(&format!("{e} {e:?}"));

            let server = MockServer::start().await;
            answer(&server, "user_new", xml(SUCCESS), 1).await;
            let r = adapter(&server.uri(), &[("auth", auth)])
                .create_user(&testing::job("jdoe", json!({})), FRESH)
                .await
                .unwrap();
            check(&format!("{r:?} {}", serde_json::Value::Object(r.details.clone())));
        }
    }

    // ---- update, suspend, restore, delete ----

    fn record(fields: &str) -> String {
        format!("<response status=\"success\"><user><user_name>jdoe</user_name>{fields}</user></response>")
    }

    const JANE: &str = "<user_first_name>Jane</user_first_name><user_last_name>Doe</user_last_name>\
        <user_role>K</user_role><allowed_campaigns>all</allowed_campaigns>";

    fn update(fields: serde_json::Value) -> Job {
        testing::job_of("update_user", "JDoe", fields)
    }

    fn named(kind: &str) -> Job {
        testing::job_of(kind, "JDoe", json!({}))
    }

    /// A form body equal to `expected`, so a test sees every field that was sent.
    fn body_is(expected: &'static str) -> impl Fn(&Request) -> bool + Send + Sync + 'static {
        move |r: &Request| String::from_utf8_lossy(&r.body) == expected
    }

    const SUSPEND: (&str, &str) = ("suspend", r#"{"allowed_campaigns": "none"}"#);
    const RESTORE: (&str, &str) = ("restore", r#"{"allowed_campaigns": "all", "user_role": "K"}"#);

    #[tokio::test]
    async fn update_sends_only_the_named_fields_after_a_lookup() {
        let server = MockServer::start().await;
        answer(&server, "user_info", xml(record(JANE)), 1).await;
        Mock::given(method("POST"))
            .and(body_is(
                "type=user_update&user_id=provisioner&user_password=sandbox-password&account_id=acmerewards\
                 &user_name=jdoe&user_first_name=Janet&timezone_selector=70&output=XML",
            ))
            .respond_with(xml(SUCCESS))
            .expect(1)
            .mount(&server)
            .await;
        let a = adapter(&server.uri(), &[]);
        let r = a.update_user(&update(json!({"user_first_name": "Janet", "timezone_selector": 70})), FRESH).await;
        let r = r.unwrap();
        assert!(!r.existing);
        assert_eq!(r.vendor_user_id.as_deref(), Some("jdoe"));
        assert_eq!(r.details["account_id"], "acmerewards");
    }

    #[tokio::test]
    async fn update_the_user_already_reflects_is_unchanged() {
        let server = MockServer::start().await;
        let shown = "<user_first_name> Janet </user_first_name><user_role>K</user_role><language_selector>en\
            </language_selector><timezone_selector>070</timezone_selector>\
            <allowed_campaigns>0239471023412, 12971184024723</allowed_campaigns><user_addtl_info>Downtown</user_addtl_info>";
        answer(&server, "user_info", xml(record(shown)), 1).await;
        answer(&server, "user_update", xml(SUCCESS), 0).await;
        let job = update(json!({"user_first_name": "Janet", "user_role": "K", "language_selector": "EN",
            "timezone_selector": "70", "allowed_campaigns": "12971184024723,0239471023412", "user_custom1": "Downtown"}));
        assert!(adapter(&server.uri(), &[]).update_user(&job, FRESH).await.unwrap().existing);
    }

    #[tokio::test]
    async fn update_is_sent_when_equality_cannot_be_proven() {
        // A secret is never shown; a field the record lacks cannot be compared; a differing one changes.
        let cases = [
            json!({"user_first_name": "Jane", "user_new_password": "N3w!pass"}),
            json!({"user_first_name": "Jane", "user_PIN": "9876"}),
            json!({"language_selector": "FR"}),
            json!({"user_first_name": "Jane", "user_role": "A"}),
        ];
        for fields in cases {
            let server = MockServer::start().await;
            answer(&server, "user_info", xml(record(JANE)), 1).await;
            answer(&server, "user_update", xml(SUCCESS), 1).await;
            let r = adapter(&server.uri(), &[]).update_user(&update(fields.clone()), FRESH).await.unwrap();
            assert!(!r.existing, "{fields}");
        }
    }

    #[tokio::test]
    async fn update_of_a_missing_user_is_no_such_user() {
        // The lookup says so: nothing is sent.
        for missing in [xml_error("User not found"), record("<user_deleted>1</user_deleted>")] {
            let server = MockServer::start().await;
            answer(&server, "user_info", xml(missing), 1).await;
            answer(&server, "user_update", xml(SUCCESS), 0).await;
            let e = adapter(&server.uri(), &[]).update_user(&update(json!({"user_last_name": "X"})), FRESH).await;
            let e = e.unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, code::NO_SUCH_USER));
            assert!(e.message.contains("jdoe") && e.message.contains("create_user"), "{}", e.message);
        }
        // Without a lookup, the vendor's own answer says so.
        let server = MockServer::start().await;
        answer(&server, "user_update", xml(xml_error("User does not exist")), 1).await;
        let a = adapter(&server.uri(), &[("lookup", "none")]);
        let e = a.update_user(&update(json!({"user_last_name": "X"})), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, code::NO_SUCH_USER));
    }

    #[tokio::test]
    async fn update_without_a_usable_lookup_is_sent_and_updated() {
        // `lookup = none`, or a lookup the vendor does not serve (unconfirmed calls).
        for (settings, lookups) in [(&[("lookup", "none")][..], 0), (&[][..], 1)] {
            let server = MockServer::start().await;
            answer(&server, "user_info", xml(xml_error("Invalid type: user_info")), lookups).await;
            answer(&server, "user_update", xml(SUCCESS), 1).await;
            let a = adapter(&server.uri(), settings);
            let r = a.update_user(&update(json!({"user_first_name": "Jane"})), FRESH).await.unwrap();
            assert!(!r.existing, "{settings:?}: unchanged cannot be proven without a lookup");
        }
    }

    #[tokio::test]
    async fn update_errors_are_classified_like_the_create() {
        let cases: Vec<(ResponseTemplate, VendorFailure, &str)> = vec![
            (xml(xml_error("Authentication failed")), VendorFailure::Auth, code::AUTH),
            (xml(xml_error("Account not found")), VendorFailure::Auth, code::UNKNOWN_ACCOUNT),
            (xml(xml_error("User PIN already exists")), VendorFailure::Conflict, code::DUPLICATE_PIN),
            (xml(xml_error("Invalid user_role")), VendorFailure::Rejected, code::REJECTED),
            (xml(xml_error("Too many requests")), VendorFailure::Throttled, code::RATE_LIMITED),
            (ResponseTemplate::new(503), VendorFailure::Transient, "http_503"),
            (xml("<html>oops</html>"), VendorFailure::Transient, code::UNREADABLE),
        ];
        for (response, failure, code) in cases {
            let server = MockServer::start().await;
            answer(&server, "user_update", response, 1).await;
            let a = adapter(&server.uri(), &[("lookup", "none")]);
            let e = a.update_user(&update(json!({"user_role": "K"})), FRESH).await.unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (failure, code), "{e}");
        }
        let server = MockServer::start().await;
        answer(&server, "user_info", ResponseTemplate::new(429).insert_header("Retry-After", "4"), 1).await;
        let e = adapter(&server.uri(), &[]).update_user(&update(json!({"user_role": "K"})), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.retry_after), (VendorFailure::Throttled, Some(Duration::from_secs(4))));
    }

    #[tokio::test]
    async fn update_outside_the_account_rules_is_not_sent() {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(xml(SUCCESS)).expect(0).mount(&server).await;
        let a = adapter(&server.uri(), &[("roles", "K"), ("min_password_length", "20")]);
        let e = a.update_user(&update(json!({"user_role": "A"})), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, "not_sent"));
        let e = a.update_user(&update(json!({"user_new_password": "short!pw"})), FRESH).await.unwrap_err();
        assert!(e.message.contains("user_new_password") && !e.message.contains("short!pw"), "{}", e.message);
    }

    #[tokio::test]
    async fn suspend_and_restore_refuse_before_sending_unless_configured() {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(xml(SUCCESS)).expect(0).mount(&server).await;
        let a = adapter(&server.uri(), &[]);
        let e = a.suspend_user(&named("suspend_user"), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, code::SUSPEND_NOT_CONFIGURED));
        assert!(e.message.contains("accounts.acme.settings.suspend"), "{}", e.message);
        let e = a.restore_user(&named("restore_user"), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, code::RESTORE_NOT_CONFIGURED));
        assert!(e.message.contains("accounts.acme.settings.restore"), "{}", e.message);
        // Only the setting of the kind asked counts.
        let a = adapter(&server.uri(), &[SUSPEND]);
        assert_eq!(a.restore_user(&named("restore_user"), FRESH).await.unwrap_err().code, code::RESTORE_NOT_CONFIGURED);
    }

    #[tokio::test]
    async fn suspend_applies_the_configured_fields_once() {
        let server = MockServer::start().await;
        answer(&server, "user_info", xml(record(JANE)), 1).await;
        Mock::given(body_string_contains("type=user_update&"))
            .and(body_string_contains("&user_name=jdoe&allowed_campaigns=none&output=XML"))
            .respond_with(xml(SUCCESS))
            .expect(1)
            .mount(&server)
            .await;
        let a = adapter(&server.uri(), &[SUSPEND, RESTORE]);
        assert!(!a.suspend_user(&named("suspend_user"), FRESH).await.unwrap().existing);

        let server = MockServer::start().await;
        answer(&server, "user_info", xml(record("<allowed_campaigns>none</allowed_campaigns>")), 1).await;
        answer(&server, "user_update", xml(SUCCESS), 0).await;
        let a = adapter(&server.uri(), &[SUSPEND, RESTORE]);
        assert!(a.suspend_user(&named("suspend_user"), SEEN).await.unwrap().existing, "already suspended");

        // Restoring compares every configured field: the role is not shown, so it is sent.
        let server = MockServer::start().await;
        answer(&server, "user_info", xml(record("<allowed_campaigns>all</allowed_campaigns>")), 1).await;
        answer(&server, "user_update", xml(SUCCESS), 1).await;
        let a = adapter(&server.uri(), &[SUSPEND, RESTORE]);
        assert!(!a.restore_user(&named("restore_user"), FRESH).await.unwrap().existing);

        let server = MockServer::start().await;
        answer(&server, "user_info", xml(xml_error("User not found")), 1).await;
        answer(&server, "user_update", xml(SUCCESS), 0).await;
        let a = adapter(&server.uri(), &[SUSPEND, RESTORE]);
        let e = a.suspend_user(&named("suspend_user"), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, code::NO_SUCH_USER));
    }

    #[tokio::test]
    async fn delete_by_default_only_marks_the_user_deleted() {
        let server = MockServer::start().await;
        answer(&server, "user_info", xml(record(JANE)), 1).await;
        Mock::given(body_is(
            "type=user_delete&user_id=provisioner&user_password=sandbox-password&account_id=acmerewards\
             &user_name=jdoe&output=XML",
        ))
        .respond_with(xml(SUCCESS))
        .expect(1)
        .mount(&server)
        .await;
        let r = adapter(&server.uri(), &[]).delete_user(&named("delete_user"), FRESH).await.unwrap();
        assert!(!r.existing);
        assert_eq!(
            (&r.details["deletion"], &r.details["account_id"]),
            (&json!("marked_deleted"), &json!("acmerewards"))
        );
    }

    #[tokio::test]
    async fn delete_of_a_user_already_gone_is_unchanged() {
        // The lookup hides a deleted user, or shows it marked deleted (unconfirmed: both read the same).
        for gone in [
            xml_error("User not found"),
            record("<user_status>Deleted</user_status>"),
            record("<deleted>yes</deleted>"),
        ] {
            let server = MockServer::start().await;
            answer(&server, "user_info", xml(gone), 1).await;
            answer(&server, "user_delete", xml(SUCCESS), 0).await;
            assert!(adapter(&server.uri(), &[]).delete_user(&named("delete_user"), SEEN).await.unwrap().existing);
        }
        // Without a lookup, the vendor's not-found answer says so.
        let server = MockServer::start().await;
        answer(&server, "user_delete", xml(xml_error("User not found")), 1).await;
        let a = adapter(&server.uri(), &[("lookup", "none")]);
        assert!(a.delete_user(&named("delete_user"), SEEN).await.unwrap().existing);
    }

    #[tokio::test]
    async fn hard_delete_sends_action_permanent_whatever_the_lookup_would_say() {
        let server = MockServer::start().await;
        answer(&server, "user_info", xml(xml_error("User not found")), 0).await;
        Mock::given(body_string_contains("type=user_delete&"))
            .and(body_string_contains("&user_name=jdoe&action=permanent&output=XML"))
            .respond_with(xml(SUCCESS))
            .expect(1)
            .mount(&server)
            .await;
        let a = adapter(&server.uri(), &[("hard_delete", "true")]);
        let r = a.delete_user(&named("delete_user"), FRESH).await.unwrap();
        assert_eq!((r.existing, &r.details["deletion"]), (false, &json!("permanent")));

        let server = MockServer::start().await;
        answer(&server, "user_delete", xml(xml_error("User not found")), 1).await;
        let a = adapter(&server.uri(), &[("hard_delete", "true")]);
        assert!(a.delete_user(&named("delete_user"), SEEN).await.unwrap().existing);
    }

    #[tokio::test]
    async fn delete_errors_are_classified_like_the_create() {
        let cases: Vec<(ResponseTemplate, VendorFailure, &str)> = vec![
            (xml(xml_error("Permission denied: Administrators only")), VendorFailure::Auth, code::AUTH),
            (xml(xml_error("Invalid account_id")), VendorFailure::Auth, code::UNKNOWN_ACCOUNT),
            (xml(xml_error("User has open transactions")), VendorFailure::Rejected, code::REJECTED),
            (ResponseTemplate::new(502), VendorFailure::Transient, "http_502"),
            (ResponseTemplate::new(429).insert_header("Retry-After", "2"), VendorFailure::Throttled, "http_429"),
            (xml(""), VendorFailure::Transient, code::UNREADABLE),
        ];
        for (response, failure, code) in cases {
            let server = MockServer::start().await;
            answer(&server, "user_delete", response, 1).await;
            let a = adapter(&server.uri(), &[("lookup", "none")]);
            let e = a.delete_user(&named("delete_user"), FRESH).await.unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (failure, code), "{e}");
        }
    }

    #[tokio::test]
    async fn secrets_never_reach_errors_or_receipts_of_the_other_kinds() {
        let echo = format!("Invalid user_PIN 9876 for password N3w!pass (caller {PASSWORD})");
        let job = update(json!({"user_new_password": "N3w!pass", "user_PIN": "9876"}));
        let check = |shown: &str| {
            for secret in ["N3w!pass", "9876", PASSWORD] {
                assert!(!shown.contains(secret), "{secret} leaked: {shown}");
            }
        };
        for body in [xml_error(&echo), format!("garbage {echo}")] {
            let server = MockServer::start().await;
            answer(&server, "user_update", xml(body), 1).await;
            let e = adapter(&server.uri(), &[("lookup", "none")]).update_user(&job, FRESH).await.unwrap_err();
            check(&format!("{e} {e:?}"));
        }
        let server = MockServer::start().await;
        answer(&server, "user_info", xml(xml_error(&echo)), 1).await;
        answer(&server, "user_update", xml(SUCCESS), 1).await;
        let r = adapter(&server.uri(), &[]).update_user(&job, FRESH).await.unwrap();
        check(&format!("{r:?} {}", serde_json::Value::Object(r.details.clone())));
        let server = MockServer::start().await;
        answer(&server, "user_delete", xml(xml_error(&echo)), 1).await;
        let e = adapter(&server.uri(), &[("lookup", "none")]).delete_user(&named("delete_user"), FRESH).await;
        let shown = format!("{:?}", e.unwrap_err());
        assert!(!shown.contains(PASSWORD), "{shown}");
    }

    #[test]
    fn identity_is_the_wire_user_name_for_every_kind() {
        let a = adapter("http://127.0.0.1:9", &[]);
        let jobs = [
            testing::job("JDoe", json!({})),
            update(json!({"user_first_name": "Jane"})),
            named("suspend_user"),
            named("restore_user"),
            named("delete_user"),
        ];
        for job in jobs {
            let id = a.identity(&job).unwrap();
            assert_eq!((id.key.as_str(), id.extra), ("jdoe", None), "{}", job.kind);
        }
        let preserve = adapter("http://127.0.0.1:9", &[("user_name_case", "preserve")]);
        assert_eq!(preserve.identity(&named("delete_user")).unwrap().key, "JDoe");
    }
}
