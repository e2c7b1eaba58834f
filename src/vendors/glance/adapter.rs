//! The Glance adapter: build → send → interpret, looking the user up with `ShowUsers` before
//! any create that might repeat an earlier one, and after every "already exists".

use std::sync::Arc;

use reqwest::header::{HeaderMap, CONTENT_TYPE};

use super::account::{from_settings, Account, AudioFailure, Auth};
use super::fields::NewUser;
use super::request::{self, LookupKey, Request};
use super::response::{self, CreateAnswer, FoundUser, LOGIN_KEY_REJECTED};
use crate::config::{AccountSettings, ConfigError, VendorSettings};
use crate::contract::Job;
use crate::vendors::{http, CallContext, Receipt, VendorError, VendorFailure, INVALID_FIELD};

/// One Glance account's client: its config and one pooled HTTP client, built once.
#[derive(Clone, Debug)]
pub struct Adapter {
    name: String,
    account: Arc<Account>,
    base: http::BaseUrl,
    client: http::Client,
}

/// Builds the adapter of account `name`; errors name the key to fix.
pub fn build(name: &str, account: &AccountSettings, http: &VendorSettings) -> Result<Adapter, ConfigError> {
    Ok(Adapter::new(name, from_settings(name, account)?, http))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Adapter {
    pub fn new(name: &str, account: Account, http_settings: &VendorSettings) -> Self {
        let base = http::BaseUrl::new(account.base_url());
        Self { name: name.to_owned(), account: Arc::new(account), base, client: http::client(http_settings) }
    }

    pub fn account(&self) -> &Account {
        &self.account
    }

    fn account_secret(&self) -> &str {
        use secrecy::ExposeSecret;
        match &self.account.auth {
            Auth::Password(pw) => pw.expose_secret(),
            Auth::LoginKey { api_key, .. } => api_key.expose_secret(),
        }
    }

    async fn send(&self, req: &Request) -> Result<(u16, HeaderMap, String), VendorError> {
        let request = self
            .base
            .request(&self.client, reqwest::Method::POST, req.path)
            .header(CONTENT_TYPE, req.content_type())
            .body(req.body());
        // As text: Glance's legacy pages may declare a charset other than UTF-8.
        let answer = self.client.exchange_text(request).await?;
        Ok((answer.status.as_u16(), answer.headers, answer.body))
    }

    /// One call, with the documented Login Key recovery: a refused key is minted afresh and
    /// tried once more; refused again, it is a configuration problem.
    async fn call<T>(
        &self,
        make: impl Fn(i64) -> Request,
        read: impl Fn(u16, &HeaderMap, &str) -> Result<T, VendorError>,
    ) -> Result<T, VendorError> {
        let mut retried = false;
        loop {
            let req = make(now());
            let secrets = req.secrets();
            let result = match self.send(&req).await {
                Ok((status, headers, body)) => read(status, &headers, &body),
                Err(e) => Err(e),
            };
            match result {
                Err(e) if e.code == LOGIN_KEY_REJECTED => {
                    if self.account.uses_login_key() && !retried {
                        tracing::warn!(account = %self.name, "Glance refused the Login Key; minting a new one");
                        retried = true;
                        continue;
                    }
                    let mut e = http::scrub_error(e, &secrets);
                    e.failure = VendorFailure::Auth;
                    return Err(e);
                }
                Err(e) => return Err(http::scrub_error(e, &secrets)),
                Ok(v) => return Ok(v),
            }
        }
    }

    /// One `ShowUsers` call.
    async fn send_lookup(&self, user: &NewUser, key: LookupKey<'_>) -> Result<Vec<FoundUser>, VendorError> {
        let markers = self.account.markers();
        self.call(
            |now| request::show_users(&self.account, key, &user.partner_user_id, now),
            |s, h, b| response::interpret_lookup(s, h, b, markers, &user.echoes()),
        )
        .await
    }

    /// One `NewUser` call.
    async fn send_create(&self, user: &NewUser) -> Result<CreateAnswer, VendorError> {
        let markers = self.account.markers();
        self.call(
            |now| request::new_user(&self.account, user, now),
            |s, h, b| match response::interpret_create(s, h, b, markers, user) {
                CreateAnswer::Failed(e) => Err(e),
                other => Ok(other),
            },
        )
        .await
    }

    /// The user holding our PartnerUserID, judged: same profile → existing, else conflict.
    async fn by_partner_user_id(&self, user: &NewUser) -> Result<Option<Result<Receipt, VendorError>>, VendorError> {
        let found = self.send_lookup(user, LookupKey::PartnerUserId(&user.partner_user_id)).await?;
        let ours =
            found.iter().find(|f| f.partner_user_id.as_deref().is_none_or(|p| p == user.partner_user_id.as_str()));
        Ok(ours.map(|f| response::reconcile(user, f)))
    }

    /// Glance said the PartnerUserID or the UserAddress is taken: find out by whom.
    async fn settle_duplicate(&self, user: &NewUser, message: &str) -> Result<Receipt, VendorError> {
        if let Some(decided) = self.by_partner_user_id(user).await? {
            return decided;
        }
        let found = self.send_lookup(user, LookupKey::Address(&user.address)).await?;
        let holder = found.first().and_then(|f| f.partner_user_id.clone());
        let message = match holder {
            Some(p) => format!(
                "UserAddress {} already belongs to PartnerUserID {p} in this group; choose another UserAddress",
                user.address
            ),
            None => format!(
                "UserAddress {} is taken outside this group (Glance said {message}); choose another UserAddress",
                user.address
            ),
        };
        Err(VendorError::new(VendorFailure::Conflict, "user_address_taken", message))
    }

    /// The job's user under this account's rules; a refusal is never sent.
    fn parse_user(&self, job: &Job) -> Result<NewUser, VendorError> {
        NewUser::parse(&job.user, self.account.rules()).map_err(|errors| {
            let summary: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
            VendorError::new(
                VendorFailure::Rejected,
                INVALID_FIELD,
                format!("not sent, this account's Glance rules refuse it: {}; fix the job", summary.join("; ")),
            )
        })
    }

    /// The whole flow: parse, look before a create that might repeat one, create, settle.
    async fn run(&self, job: &Job, ctx: CallContext) -> Result<Receipt, VendorError> {
        let user = self.parse_user(job)?;
        if ctx.maybe_seen_before {
            // A previous attempt may have created the user; never create blindly.
            if let Some(decided) = self.by_partner_user_id(&user).await? {
                tracing::info!(account = %self.name, partner_user_id = %user.partner_user_id, "found before creating");
                return decided;
            }
        }
        match self.send_create(&user).await? {
            CreateAnswer::Created(receipt) => Ok(receipt),
            CreateAnswer::Failed(e) => Err(e),
            CreateAnswer::AlreadyExists { message } => self.settle_duplicate(&user, &message).await,
            CreateAnswer::AudioFailed { message } => {
                let refused = VendorError::new(
                    VendorFailure::Rejected,
                    "audio_failed",
                    format!("Glance could not provision audio: {message}; drop AudioProvider or ask Glance"),
                );
                if self.account.audio_failure == AudioFailure::Reject {
                    return Err(refused);
                }
                match self.by_partner_user_id(&user).await? {
                    Some(Ok(mut receipt)) => {
                        receipt.existing = false;
                        receipt.details.insert("audio_error".into(), serde_json::Value::from(message));
                        Ok(receipt)
                    }
                    Some(Err(conflict)) => Err(conflict),
                    None => Err(refused),
                }
            }
            CreateAnswer::Unrecognised { excerpt, candidate } => match self.by_partner_user_id(&user).await? {
                Some(Ok(mut receipt)) => {
                    // Confirmed: the answer was a success after all, so what it returned
                    // (audio data, ids) belongs in the event.
                    receipt.existing = false;
                    receipt.vendor_user_id = candidate.vendor_user_id.or(receipt.vendor_user_id);
                    receipt.details.extend(candidate.details);
                    Ok(receipt)
                }
                Some(Err(conflict)) => Err(conflict),
                None => Err(VendorError::new(
                    VendorFailure::Transient,
                    "unrecognised_answer",
                    format!(
                        "Glance answered neither success nor a known failure ({excerpt:?}) and ShowUsers does not \
                         show the user; retry later, or adjust success_markers/failure_elements"
                    ),
                )),
            },
        }
    }
}

impl crate::vendors::Adapter for Adapter {
    async fn create_user(&self, job: &Job, ctx: CallContext) -> Result<Receipt, VendorError> {
        let pw = job.user.text("UserPW").unwrap_or_default();
        let secrets = [self.account_secret(), pw];
        match self.run(job, ctx).await {
            Ok(r) => Ok(http::scrub_receipt(r, &secrets)),
            Err(e) => Err(http::scrub_error(e, &secrets)),
        }
    }

    async fn update_user(&self, job: &Job, _ctx: CallContext) -> Result<Receipt, VendorError> {
        Err(crate::vendors::unsupported(crate::contract::VendorKey::Glance, job.kind))
    }

    async fn suspend_user(&self, job: &Job, _ctx: CallContext) -> Result<Receipt, VendorError> {
        Err(crate::vendors::unsupported(crate::contract::VendorKey::Glance, job.kind))
    }

    async fn restore_user(&self, job: &Job, _ctx: CallContext) -> Result<Receipt, VendorError> {
        Err(crate::vendors::unsupported(crate::contract::VendorKey::Glance, job.kind))
    }

    async fn delete_user(&self, job: &Job, _ctx: CallContext) -> Result<Receipt, VendorError> {
        Err(crate::vendors::unsupported(crate::contract::VendorKey::Glance, job.kind))
    }

    fn identity(&self, job: &Job) -> Result<crate::vendors::VendorIdentity, VendorError> {
        let user = self.parse_user(job)?;
        Ok(crate::vendors::VendorIdentity {
            key: user.partner_user_id.as_str().to_owned(),
            extra: Some(user.address.as_str().to_owned()),
        })
    }

    /// `ShowUsers` finds the user by the `PartnerUserID` the job chose.
    fn proves_identity(&self) -> bool {
        true
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde_json::json;
    use wiremock::matchers::{body_string_contains, method, path};
    use wiremock::{Mock, MockServer, Request as MockRequest, ResponseTemplate};

    use super::*;
    use crate::config::SecretSource;
    use crate::contract::VendorKey;
    use crate::vendors::testing::{FRESH, SEEN};
    use crate::vendors::Adapter as _;

    pub(crate) const PW: &str = "hunter2-partner-pw";
    const PROLOG: &str = r#"<?xml version="1.0" standalone="yes"?>"#;

    /// An account against `base_url`; the credential file is read at build time.
    pub(crate) fn adapter_with(
        base_url: &str,
        pairs: &[(&str, &str)],
        cred: (&str, &str),
        http_settings: &VendorSettings,
    ) -> Adapter {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, cred.1).unwrap();
        let mut settings: BTreeMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        settings.entry("PartnerLogin".into()).or_insert_with(|| "provisioner.acme.glance.net".into());
        let a = AccountSettings {
            vendor: VendorKey::Glance,
            base_url: Some(base_url.to_owned()),
            settings,
            credentials: [(cred.0.to_owned(), SecretSource::File(file))].into_iter().collect(),
            rate: None,
            concurrency: None,
            policy: Default::default(),
        };
        build("acme", &a, http_settings).unwrap()
    }

    fn adapter(server: &MockServer) -> Adapter {
        let markers = [("PartnerID", "40123"), ("success_markers", "newuser")];
        adapter_with(&server.uri(), &markers, ("PartnerPW", PW), &VendorSettings::default())
    }

    pub(crate) fn job(user: serde_json::Value) -> Job {
        let v = json!({"job_id": "j-1", "vendor": "glance", "account": "acme", "user": user});
        crate::job::decode(v.to_string().as_bytes()).unwrap()
    }

    pub(crate) fn jane() -> Job {
        job(json!({"PartnerUserID": "EMP-1", "UserAddress": "jdoe.acme.glance.net", "UserFirst": "Jane",
                   "UserLast": "Doe", "UserPW": "Sup3r-secret-pw", "AudioProvider": 1}))
    }

    fn xml(body: &str) -> ResponseTemplate {
        ResponseTemplate::new(200).insert_header("content-type", "text/xml").set_body_string(format!("{PROLOG}{body}"))
    }

    fn failure(message: &str) -> ResponseTemplate {
        xml(&format!("<error><message>{message}</message></error>"))
    }

    async fn on(server: &MockServer, p: &str, response: ResponseTemplate, times: u64) {
        Mock::given(method("POST")).and(path(p)).respond_with(response).expect(times).mount(server).await;
    }

    const JANE_RECORD: &str = "<ShowUsers><users><user><UserID>77</UserID><PartnerUserID>EMP-1</PartnerUserID>\
        <UserAddress>jdoe.acme.glance.net</UserAddress><UserFirst>Jane</UserFirst><UserLast>Doe</UserLast>\
        </user></users></ShowUsers>";
    const JOHN_RECORD: &str = "<ShowUsers><users><user><PartnerUserID>EMP-1</PartnerUserID>\
        <UserAddress>jdoe.acme.glance.net</UserAddress><UserFirst>John</UserFirst></user></users></ShowUsers>";
    const NOBODY: &str = "<ShowUsers><users/></ShowUsers>";

    #[tokio::test]
    async fn created_sends_the_form_and_returns_the_audio_data() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/PAPI/NewUser.asp"))
            .and(wiremock::matchers::header("content-type", "application/x-www-form-urlencoded"))
            .and(body_string_contains(
                "PartnerLogin=provisioner.acme.glance.net&PartnerPW=hunter2-partner-pw&PartnerID=40123&\
                 PartnerUserID=EMP-1&UserAddress=jdoe.acme.glance.net&UserPW=Sup3r-secret-pw&UserFirst=Jane&\
                 UserLast=Doe&AudioProvider=1",
            ))
            .respond_with(xml("<NewUser><UserID>77</UserID><audio><dialIn>1 (555) 010-2030</dialIn></audio></NewUser>"))
            .expect(1)
            .mount(&server)
            .await;
        let r = adapter(&server).create_user(&jane(), FRESH).await.unwrap();
        assert!(!r.existing);
        assert_eq!(r.vendor_user_id.as_deref(), Some("77"));
        assert_eq!(r.details["dialIn"], "1 (555) 010-2030");
    }

    #[tokio::test]
    async fn credentials_refused_is_auth() {
        let server = MockServer::start().await;
        on(&server, "/PAPI/NewUser.asp", failure("Unknown or inactive PartnerLogin"), 1).await;
        let e = adapter(&server).create_user(&jane(), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Auth, "credentials_refused"));
    }

    fn login_key_adapter(server: &MockServer) -> Adapter {
        adapter_with(
            &server.uri(),
            &[("PartnerID", "40123"), ("admin_partner_user_id", "ADMIN-1"), ("success_markers", "newuser")],
            ("api_key", "example-api-key"),
            &VendorSettings::default(),
        )
    }

    #[tokio::test]
    async fn a_refused_login_key_is_retried_once_then_auth() {
        let server = MockServer::start().await;
        on(&server, "/PAPI/NewUser.asp", failure("PartnerAuth expired"), 2).await;
        let e = login_key_adapter(&server).create_user(&jane(), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Auth, LOGIN_KEY_REJECTED));
    }

    #[tokio::test]
    async fn a_refused_login_key_then_success_is_created() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/PAPI/NewUser.asp"))
            .and(body_string_contains("PartnerAuth=%241%24"))
            .respond_with(failure("PartnerAuth expired"))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        on(&server, "/PAPI/NewUser.asp", xml("<NewUser/>"), 1).await;
        let r = login_key_adapter(&server).create_user(&jane(), FRESH).await.unwrap();
        assert!(!r.existing);
    }

    #[tokio::test]
    async fn bad_input_and_unprovisioned_roles_are_rejected() {
        for (message, code) in
            [("UserAddress is malformed", "user_refused"), ("UserRole Boss is not provisioned", "role_not_provisioned")]
        {
            let server = MockServer::start().await;
            on(&server, "/PAPI/NewUser.asp", failure(message), 1).await;
            let e = adapter(&server).create_user(&jane(), FRESH).await.unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, code));
        }
    }

    #[tokio::test]
    async fn already_used_with_the_same_profile_is_existing() {
        let server = MockServer::start().await;
        on(&server, "/PAPI/NewUser.asp", failure("PartnerUserID EMP-1 is already used"), 1).await;
        Mock::given(method("POST"))
            .and(path("/PAPI/ShowUsers.asp"))
            .and(body_string_contains("PartnerUserID=EMP-1&PageCount=10"))
            .respond_with(xml(JANE_RECORD))
            .expect(1)
            .mount(&server)
            .await;
        let r = adapter(&server).create_user(&jane(), FRESH).await.unwrap();
        assert!(r.existing);
        assert_eq!(r.vendor_user_id.as_deref(), Some("77"));
    }

    #[tokio::test]
    async fn already_used_by_someone_else_is_a_conflict() {
        let server = MockServer::start().await;
        on(&server, "/PAPI/NewUser.asp", failure("PartnerUserID EMP-1 is already used"), 1).await;
        on(&server, "/PAPI/ShowUsers.asp", xml(JOHN_RECORD), 1).await;
        let e = adapter(&server).create_user(&jane(), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Conflict, "partner_user_id_taken"));
        assert!(e.message.contains("UserFirst differs"), "{}", e.message);
    }

    #[tokio::test]
    async fn an_address_taken_elsewhere_is_a_conflict() {
        let server = MockServer::start().await;
        on(&server, "/PAPI/NewUser.asp", failure("UserAddress jdoe.acme.glance.net is already taken"), 1).await;
        on(&server, "/PAPI/ShowUsers.asp", xml(NOBODY), 2).await;
        let e = adapter(&server).create_user(&jane(), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Conflict, "user_address_taken"));
        let requests = server.received_requests().await.unwrap();
        let last = String::from_utf8_lossy(&requests[2].body).into_owned();
        assert!(last.contains("UserAddress=jdoe.acme.glance.net&PageCount=10"), "{last}");
    }

    #[tokio::test]
    async fn a_possible_redelivery_looks_up_first_and_does_not_create() {
        let server = MockServer::start().await;
        on(&server, "/PAPI/ShowUsers.asp", xml(JANE_RECORD), 1).await;
        on(&server, "/PAPI/NewUser.asp", xml("<NewUser/>"), 0).await;
        let r = adapter(&server).create_user(&jane(), SEEN).await.unwrap();
        assert!(r.existing);
    }

    #[tokio::test]
    async fn a_possible_redelivery_of_an_unknown_user_creates_it() {
        let server = MockServer::start().await;
        on(&server, "/PAPI/ShowUsers.asp", xml(NOBODY), 1).await;
        on(&server, "/PAPI/NewUser.asp", xml("<NewUser/>"), 1).await;
        assert!(!adapter(&server).create_user(&jane(), SEEN).await.unwrap().existing);
    }

    #[tokio::test]
    async fn server_errors_and_throttling_are_transient_with_retry_after() {
        for (status, failure) in [(503, VendorFailure::Transient), (429, VendorFailure::Throttled)] {
            let server = MockServer::start().await;
            on(&server, "/PAPI/NewUser.asp", ResponseTemplate::new(status).insert_header("retry-after", "12"), 1).await;
            let e = adapter(&server).create_user(&jane(), FRESH).await.unwrap_err();
            assert_eq!((e.failure, e.code.clone()), (failure, format!("http_{status}")));
            assert!(e.is_transient());
            assert_eq!(e.retry_after, Some(Duration::from_secs(12)));
        }
    }

    #[tokio::test]
    async fn a_non_xml_body_is_transient() {
        let server = MockServer::start().await;
        on(&server, "/PAPI/NewUser.asp", ResponseTemplate::new(200).set_body_string("<html>Runtime Error"), 1).await;
        let e = adapter(&server).create_user(&jane(), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Transient, "unreadable_answer"));
    }

    #[tokio::test]
    async fn a_timeout_is_transient() {
        let server = MockServer::start().await;
        on(&server, "/PAPI/NewUser.asp", xml("<NewUser/>").set_delay(Duration::from_secs(30)), 1).await;
        let settings = VendorSettings { request_timeout: Duration::from_millis(100), ..VendorSettings::default() };
        let a = adapter_with(&server.uri(), &[], ("PartnerPW", PW), &settings);
        let e = a.create_user(&jane(), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Transient, "timeout"));
    }

    #[tokio::test]
    async fn audio_failure_looks_the_user_up_or_rejects() {
        let server = MockServer::start().await;
        on(&server, "/PAPI/NewUser.asp", failure("Audio account could not be created"), 2).await;
        on(&server, "/PAPI/ShowUsers.asp", xml(JANE_RECORD), 1).await;
        let r = adapter(&server).create_user(&jane(), FRESH).await.unwrap();
        assert!(!r.existing);
        assert!(r.details["audio_error"].as_str().unwrap().contains("Audio account"));
        let strict =
            adapter_with(&server.uri(), &[("audio_failure", "reject")], ("PartnerPW", PW), &Default::default());
        let e = strict.create_user(&jane(), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, "audio_failed"));
    }

    #[tokio::test]
    async fn an_unrecognised_answer_is_confirmed_by_lookup() {
        let server = MockServer::start().await;
        on(&server, "/PAPI/NewUser.asp", xml("<Whatever/>"), 2).await;
        Mock::given(method("POST"))
            .and(path("/PAPI/ShowUsers.asp"))
            .respond_with(xml(JANE_RECORD))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        on(&server, "/PAPI/ShowUsers.asp", xml(NOBODY), 1).await;
        let a = adapter_with(&server.uri(), &[("success_markers", "newuser")], ("PartnerPW", PW), &Default::default());
        assert!(!a.create_user(&jane(), FRESH).await.unwrap().existing);
        let e = a.create_user(&jane(), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Transient, "unrecognised_answer"));
    }

    #[tokio::test]
    async fn account_rules_refuse_before_sending() {
        let server = MockServer::start().await;
        let a = adapter_with(&server.uri(), &[("user_pw_min_length", "20")], ("PartnerPW", PW), &Default::default());
        let e = a.create_user(&jane(), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, "invalid_field"));
        assert!(e.message.contains("user.UserPW") && !e.message.contains("Sup3r-secret-pw"), "{}", e.message);
        assert!(server.received_requests().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn passwords_never_surface_even_when_glance_echoes_them() {
        let server = MockServer::start().await;
        let echo = |req: &MockRequest| {
            let body = String::from_utf8_lossy(&req.body).replace('&', " ");
            failure(&format!("cannot parse {}", quick_xml::escape::escape(body.as_str())))
        };
        Mock::given(method("POST")).and(path("/PAPI/NewUser.asp")).respond_with(echo).mount(&server).await;
        let a = adapter(&server);
        let e = a.create_user(&jane(), FRESH).await.unwrap_err();
        assert!(e.message.contains("PartnerPW=***"), "{}", e.message);
        let shown = format!("{e} {e:?} {a:?}");
        for secret in [PW, "Sup3r-secret-pw"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        // Receipts too: a success document that echoes the password.
        let server = MockServer::start().await;
        let echo_ok = |req: &MockRequest| {
            let body = String::from_utf8_lossy(&req.body).replace('&', " ");
            xml(&format!(
                "<NewUser><audio><dialIn>1</dialIn><note>{}</note></audio></NewUser>",
                quick_xml::escape::escape(body.as_str())
            ))
        };
        Mock::given(method("POST")).and(path("/PAPI/NewUser.asp")).respond_with(echo_ok).mount(&server).await;
        let r = adapter(&server).create_user(&jane(), FRESH).await.unwrap();
        let shown = format!("{r:?}");
        assert!(shown.contains("note") && !shown.contains(PW) && !shown.contains("Sup3r-secret-pw"), "{shown}");
    }
}
