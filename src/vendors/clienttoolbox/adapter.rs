//! The ClientToolbox adapter: build the call, send it over the account's pooled client, interpret the answer.
//!
//! `user_new` is not idempotent and returns no id, so a redelivered job looks the user up
//! first, and a "user name already exists" answer is settled by a lookup too: the same user is
//! `existing`, anyone else is a `conflict`.

use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use secrecy::ExposeSecret;

use super::account::{self, Account, Auth, UnverifiedDuplicate};
use super::fields::NewUser;
use super::request::{self, ApiRequest, FORM_CONTENT_TYPE};
use super::response::{self, code, Lookup};
use crate::config::{AccountSettings, ConfigError, VendorSettings};
use crate::contract::Job;
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

    /// One lookup call (`user_info` or `users_list`); `None` when the account has none configured.
    async fn send_lookup(&self, user: &NewUser, wire: &str) -> Result<Option<Lookup>, VendorError> {
        let Some(req) = request::lookup(&self.account, wire) else { return Ok(None) };
        let raw = self.send(&req).await?;
        let mut secrets = self.secrets(&req);
        secrets.push(user.password.expose());
        if let Some(pin) = &user.pin {
            secrets.push(pin.expose());
        }
        let found = response::interpret_lookup(
            self.account.lookup,
            raw.status,
            &raw.headers,
            &raw.body,
            &self.account.classifier,
            wire,
            &secrets,
            &user.echoes(),
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
            return Ok(response::created(wire, true));
        }
        match self.send_lookup(user, wire).await? {
            Some(Lookup::Found(found)) => response::reconcile(&found, user, wire),
            Some(Lookup::Absent) => Err(VendorError::new(
                VendorFailure::Conflict,
                code::USER_NAME_TAKEN,
                format!(
                    "ClientToolbox says user_name {wire} exists but the lookup does not list it (a user marked deleted keeps its name); choose another user_name or restore that user"
                ),
            )),
            None | Some(Lookup::Unsupported(_)) => match self.account.on_unverified_duplicate {
                UnverifiedDuplicate::Existing => Ok(response::created(wire, true)),
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
        let user = NewUser::parse(&job.user).map_err(|errors| {
            let summary = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
            VendorError::new(VendorFailure::Rejected, INVALID_FIELD, format!("not sent: {summary}"))
        })?;
        // Decoding applied this account's rules too; checking again keeps a job decoded
        // without them (a test, a replay tool) from slipping through.
        self.account.check(&user).map_err(|(field, message)| {
            VendorError::new(VendorFailure::Rejected, "not_sent", format!("not sent: {field} {message}; fix the job"))
        })?;
        Ok(user)
    }

    /// The whole flow: parse, look before a create that might repeat one, create, settle.
    async fn run(&self, job: &Job, ctx: CallContext) -> Result<Receipt, VendorError> {
        let user = self.parse_user(job)?;
        let wire = self.account.wire_user_name(&user);
        if ctx.maybe_seen_before {
            match self.send_lookup(&user, &wire).await? {
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

impl crate::vendors::Adapter for Adapter {
    async fn create_user(&self, job: &Job, ctx: CallContext) -> Result<Receipt, VendorError> {
        let result = self.run(job, ctx).await.map(|mut receipt| {
            receipt.details.insert("account_id".into(), self.account.account_id.clone().into());
            receipt
        });
        match &result {
            Ok(r) => {
                tracing::debug!(account = %self.account.name, existing = r.existing, "ClientToolbox user_new done")
            }
            Err(e) => tracing::debug!(account = %self.account.name, code = %e.code, "ClientToolbox user_new failed"),
        }
        result
    }

    async fn update_user(&self, job: &Job, _ctx: CallContext) -> Result<Receipt, VendorError> {
        Err(crate::vendors::unsupported(crate::contract::VendorKey::Clienttoolbox, job.kind))
    }

    async fn suspend_user(&self, job: &Job, _ctx: CallContext) -> Result<Receipt, VendorError> {
        Err(crate::vendors::unsupported(crate::contract::VendorKey::Clienttoolbox, job.kind))
    }

    async fn restore_user(&self, job: &Job, _ctx: CallContext) -> Result<Receipt, VendorError> {
        Err(crate::vendors::unsupported(crate::contract::VendorKey::Clienttoolbox, job.kind))
    }

    async fn delete_user(&self, job: &Job, _ctx: CallContext) -> Result<Receipt, VendorError> {
        Err(crate::vendors::unsupported(crate::contract::VendorKey::Clienttoolbox, job.kind))
    }

    fn identity(&self, job: &Job) -> Result<crate::vendors::VendorIdentity, VendorError> {
        let user = self.parse_user(job)?;
        Ok(crate::vendors::VendorIdentity { key: self.account.wire_user_name(&user), extra: None })
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
}
