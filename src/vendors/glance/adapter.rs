//! The Glance adapter: build → send → interpret, looking the user up with `ShowUsers` before
//! any create that might repeat an earlier one, after every "already exists", and before every
//! update, suspend, restore or delete (to learn whether Glance already holds what it asks).

use std::sync::Arc;

use reqwest::header::{HeaderMap, CONTENT_TYPE};

use super::account::{from_settings, Account, AudioFailure, Auth};
use super::fields::{NewUser, PartnerUserId, UserChange, UserRef};
use super::request::{self, LookupKey, Request};
use super::response::{self, ChangeAnswer, CreateAnswer, FoundUser, Shows, LOGIN_KEY_REJECTED};
use crate::config::{AccountSettings, ConfigError, VendorSettings};
use crate::contract::{FieldError, Job, JobKind};
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

    /// One `ShowUsers` call. `id` is the user the job is about (a Login Key may sign it);
    /// `echoes` are the job's words Glance may repeat in a message.
    async fn send_lookup(
        &self,
        id: &PartnerUserId,
        key: LookupKey<'_>,
        echoes: &[&str],
    ) -> Result<Vec<FoundUser>, VendorError> {
        let markers = self.account.markers();
        self.call(
            |now| request::show_users(&self.account, key, id, now),
            |s, h, b| response::interpret_lookup(s, h, b, markers, echoes),
        )
        .await
    }

    /// The user holding this PartnerUserID, if Glance shows one.
    async fn find(&self, id: &PartnerUserId, echoes: &[&str]) -> Result<Option<FoundUser>, VendorError> {
        let found = self.send_lookup(id, LookupKey::PartnerUserId(id), echoes).await?;
        // An exact lookup; a record without a PartnerUserID is taken as the one asked for.
        Ok(found.into_iter().find(|f| f.partner_user_id.as_deref().is_none_or(|p| p == id.as_str())))
    }

    /// One `UpdateUser` call (an update, a suspend or a restore).
    async fn send_update(&self, change: &UserChange) -> Result<ChangeAnswer, VendorError> {
        let markers = self.account.markers();
        let echoes = change.echoes();
        self.call(
            |now| request::update(&self.account, change, now),
            |s, h, b| response::interpret_update(s, h, b, markers, &echoes),
        )
        .await
    }

    /// One `DeleteUser` call.
    async fn send_delete(&self, user: &UserRef) -> Result<ChangeAnswer, VendorError> {
        let markers = self.account.markers();
        let echoes = user.echoes();
        self.call(
            |now| request::delete(&self.account, user, now),
            |s, h, b| response::interpret_delete(s, h, b, markers, &echoes),
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
        let found = self.find(&user.partner_user_id, &user.echoes()).await?;
        Ok(found.map(|f| response::reconcile(user, &f)))
    }

    /// Glance said the PartnerUserID or the UserAddress is taken: find out by whom.
    async fn settle_duplicate(&self, user: &NewUser, message: &str) -> Result<Receipt, VendorError> {
        if let Some(decided) = self.by_partner_user_id(user).await? {
            return decided;
        }
        let found = self.send_lookup(&user.partner_user_id, LookupKey::Address(&user.address), &user.echoes()).await?;
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
        NewUser::parse(&job.user, self.account.rules()).map_err(refused)
    }

    /// An `update_user` job's user: its PartnerUserID and the fields to change.
    fn parse_change(&self, job: &Job) -> Result<UserChange, VendorError> {
        UserChange::parse(&job.user, self.account.rules()).map_err(refused)
    }

    /// A suspend, restore or delete job's user: its PartnerUserID.
    fn parse_ref(&self, job: &Job) -> Result<UserRef, VendorError> {
        UserRef::parse(&job.user).map_err(refused)
    }

    /// Secrets out of whatever a call returns: the account's and the job's password.
    fn scrubbed(&self, job: &Job, result: Result<Receipt, VendorError>) -> Result<Receipt, VendorError> {
        let pw = job.user.text("UserPW").unwrap_or_default();
        let secrets = [self.account_secret(), pw];
        match result {
            Ok(r) => Ok(http::scrub_receipt(r, &secrets)),
            Err(e) => Err(http::scrub_error(e, &secrets)),
        }
    }

    /// An update, suspend or restore: look the user up, send only what Glance does not
    /// already show, and check an unrecognised answer with a second lookup.
    async fn apply(&self, change: &UserChange, kind: JobKind) -> Result<Receipt, VendorError> {
        let id = &change.partner_user_id;
        let echoes = change.echoes();
        let found = self.find(id, &echoes).await?.ok_or_else(|| no_such_user(id, kind))?;
        // A password cannot be compared (ShowUsers never shows it), so a change that carries
        // one is always sent; what the record does not show is sent too.
        if change.password.is_none() && response::compare(change, &found) == Shows::Same {
            return Ok(response::change_receipt(id, Some(&found), Some(change), true));
        }
        match self.send_update(change).await? {
            ChangeAnswer::Done => Ok(response::change_receipt(id, Some(&found), Some(change), false)),
            ChangeAnswer::NoSuchUser => Err(no_such_user(id, kind)),
            ChangeAnswer::Unrecognised { excerpt } => {
                let Some(now) = self.find(id, &echoes).await? else { return Err(no_such_user(id, kind)) };
                // What ShowUsers shows must be as asked; what it cannot show (a password, a
                // state it does not report) is taken on the word of an answer that carried no
                // failure marker.
                match response::compare(change, &now) {
                    Shows::Differs(field) => {
                        Err(unrecognised(&excerpt, &format!("ShowUsers still shows the old {field}")))
                    }
                    Shows::Same | Shows::Unknown(_) => {
                        Ok(response::change_receipt(id, Some(&now), Some(change), false))
                    }
                }
            }
        }
    }

    /// A delete: refused unless the account allows Glance's permanent delete; a user already
    /// gone is `existing` (unchanged).
    async fn remove(&self, user: &UserRef) -> Result<Receipt, VendorError> {
        if !self.account.allows_hard_delete() {
            return Err(VendorError::new(
                VendorFailure::Rejected,
                "hard_delete_not_allowed",
                format!(
                    "not sent: Glance's DeleteUser is permanent; set accounts.{}.settings.hard_delete = true to allow \
                     it, or send suspend_user",
                    self.name
                ),
            ));
        }
        let id = &user.partner_user_id;
        let echoes = user.echoes();
        let Some(found) = self.find(id, &echoes).await? else {
            return Ok(response::change_receipt(id, None, None, true));
        };
        match self.send_delete(user).await? {
            ChangeAnswer::Done => Ok(response::change_receipt(id, Some(&found), None, false)),
            // Gone between the lookup and the delete: someone else deleted it.
            ChangeAnswer::NoSuchUser => Ok(response::change_receipt(id, Some(&found), None, true)),
            ChangeAnswer::Unrecognised { excerpt } => match self.find(id, &echoes).await? {
                None => Ok(response::change_receipt(id, Some(&found), None, false)),
                Some(_) => Err(unrecognised(&excerpt, "ShowUsers still shows the user")),
            },
        }
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

/// A refusal by the account's field rules, never sent.
fn refused(errors: Vec<FieldError>) -> VendorError {
    let summary: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
    VendorError::new(
        VendorFailure::Rejected,
        INVALID_FIELD,
        format!("not sent, this account's Glance rules refuse it: {}; fix the job", summary.join("; ")),
    )
}

fn no_such_user(id: &PartnerUserId, kind: JobKind) -> VendorError {
    VendorError::new(
        VendorFailure::Rejected,
        "no_such_user",
        format!(
            "Glance has no user with PartnerUserID {id} in this group, so the {kind} job cannot apply; create the \
             user first (create_user) or correct the PartnerUserID, then replay"
        ),
    )
}

/// An answer neither success nor failure that a lookup could not confirm: retried, as the
/// create's.
fn unrecognised(excerpt: &str, why: &str) -> VendorError {
    VendorError::new(
        VendorFailure::Transient,
        "unrecognised_answer",
        format!(
            "Glance answered neither success nor a known failure ({excerpt:?}) and {why}; retry later, or adjust \
             success_markers/failure_elements"
        ),
    )
}

impl crate::vendors::Adapter for Adapter {
    async fn create_user(&self, job: &Job, ctx: CallContext) -> Result<Receipt, VendorError> {
        let result = self.run(job, ctx).await;
        self.scrubbed(job, result)
    }

    async fn update_user(&self, job: &Job, _ctx: CallContext) -> Result<Receipt, VendorError> {
        let result = match self.parse_change(job) {
            Ok(change) => self.apply(&change, job.kind).await,
            Err(e) => Err(e),
        };
        self.scrubbed(job, result)
    }

    async fn suspend_user(&self, job: &Job, _ctx: CallContext) -> Result<Receipt, VendorError> {
        let result = match self.parse_ref(job) {
            Ok(user) => self.apply(&UserChange::suspension(&user, true), job.kind).await,
            Err(e) => Err(e),
        };
        self.scrubbed(job, result)
    }

    async fn restore_user(&self, job: &Job, _ctx: CallContext) -> Result<Receipt, VendorError> {
        let result = match self.parse_ref(job) {
            Ok(user) => self.apply(&UserChange::suspension(&user, false), job.kind).await,
            Err(e) => Err(e),
        };
        self.scrubbed(job, result)
    }

    async fn delete_user(&self, job: &Job, _ctx: CallContext) -> Result<Receipt, VendorError> {
        let result = match self.parse_ref(job) {
            Ok(user) => self.remove(&user).await,
            Err(e) => Err(e),
        };
        self.scrubbed(job, result)
    }

    /// `PartnerUserID`, and the `UserAddress` when the job names one (a create always does; an
    /// update may, to change it; a suspend, restore or delete never does).
    fn identity(&self, job: &Job) -> Result<crate::vendors::VendorIdentity, VendorError> {
        let (id, address) = match job.kind {
            JobKind::CreateUser => {
                let user = self.parse_user(job)?;
                (user.partner_user_id, Some(user.address))
            }
            JobKind::UpdateUser => {
                let change = self.parse_change(job)?;
                (change.partner_user_id, change.address)
            }
            JobKind::SuspendUser | JobKind::RestoreUser | JobKind::DeleteUser => {
                (self.parse_ref(job)?.partner_user_id, None)
            }
        };
        Ok(crate::vendors::VendorIdentity {
            key: id.as_str().to_owned(),
            extra: address.map(|a| a.as_str().to_owned()),
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

    impl Adapter {
        /// The call the job's kind asks for, as a first delivery.
        pub(crate) async fn run_kind(&self, job: &Job) -> Result<Receipt, VendorError> {
            match job.kind {
                JobKind::CreateUser => self.create_user(job, FRESH).await,
                JobKind::UpdateUser => self.update_user(job, FRESH).await,
                JobKind::SuspendUser => self.suspend_user(job, FRESH).await,
                JobKind::RestoreUser => self.restore_user(job, FRESH).await,
                JobKind::DeleteUser => self.delete_user(job, FRESH).await,
            }
        }
    }

    /// A job of `kind` for the account, decoded as the worker decodes it.
    pub(crate) fn change_job(kind: &str, user: serde_json::Value) -> Job {
        let v = json!({"job_id": "j-2", "kind": kind, "vendor": "glance", "account": "acme", "user": user});
        crate::job::decode(v.to_string().as_bytes()).unwrap()
    }

    fn emp1() -> serde_json::Value {
        json!({"PartnerUserID": "EMP-1"})
    }

    /// An account that reads UpdateUser and DeleteUser answers by their root element and
    /// allows permanent deletes.
    fn changer(server: &MockServer) -> Adapter {
        let settings = [("PartnerID", "40123"), ("success_markers", "updateuser, deleteuser"), ("hard_delete", "true")];
        adapter_with(&server.uri(), &settings, ("PartnerPW", PW), &VendorSettings::default())
    }

    fn record(state: &str) -> String {
        format!(
            "<ShowUsers><users><user><UserID>77</UserID><PartnerUserID>EMP-1</PartnerUserID>\
             <UserAddress>jdoe.acme.glance.net</UserAddress><UserFirst>Jane</UserFirst>{state}</user></users>\
             </ShowUsers>"
        )
    }

    async fn on_body(server: &MockServer, p: &str, body: &str, response: ResponseTemplate, times: u64) {
        Mock::given(method("POST"))
            .and(path(p))
            .and(body_string_contains(body))
            .respond_with(response)
            .expect(times)
            .mount(server)
            .await;
    }

    async fn bodies(server: &MockServer, p: &str) -> Vec<String> {
        let requests = server.received_requests().await.unwrap();
        requests.iter().filter(|r| r.url.path() == p).map(|r| String::from_utf8_lossy(&r.body).into_owned()).collect()
    }

    #[tokio::test]
    async fn an_update_looks_the_user_up_and_sends_only_the_named_fields() {
        let server = MockServer::start().await;
        on_body(&server, "/PAPI/ShowUsers.asp", "PartnerUserID=EMP-1&PageCount=10", xml(JANE_RECORD), 1).await;
        on(&server, "/PAPI/UpdateUser.asp", xml("<UpdateUser/>"), 1).await;
        let job = change_job("update_user", json!({"PartnerUserID": "EMP-1", "UserLast": "Smith"}));
        let r = changer(&server).update_user(&job, FRESH).await.unwrap();
        assert!(!r.existing);
        assert_eq!(r.vendor_user_id.as_deref(), Some("77"));
        assert_eq!(r.details["UserAddress"], "jdoe.acme.glance.net");
        let sent = bodies(&server, "/PAPI/UpdateUser.asp").await;
        assert_eq!(
            sent,
            ["PartnerLogin=provisioner.acme.glance.net&PartnerPW=hunter2-partner-pw&PartnerID=40123\
              &PartnerUserID=EMP-1&UserLast=Smith"]
        );
    }

    #[tokio::test]
    async fn an_update_glance_already_shows_is_unchanged_and_not_sent() {
        let server = MockServer::start().await;
        on(&server, "/PAPI/ShowUsers.asp", xml(JANE_RECORD), 1).await;
        on(&server, "/PAPI/UpdateUser.asp", xml("<UpdateUser/>"), 0).await;
        let job = change_job(
            "update_user",
            json!({"PartnerUserID": "EMP-1", "UserAddress": "JDoe.acme.glance.net", "UserFirst": "Jane"}),
        );
        let r = changer(&server).update_user(&job, FRESH).await.unwrap();
        assert!(r.existing, "unchanged");
        assert_eq!(r.vendor_user_id.as_deref(), Some("77"));
    }

    #[tokio::test]
    async fn what_the_lookup_cannot_show_and_passwords_are_always_sent() {
        // JANE_RECORD shows no UserEmail: equal cannot be proven.
        let server = MockServer::start().await;
        on(&server, "/PAPI/ShowUsers.asp", xml(JANE_RECORD), 2).await;
        on(&server, "/PAPI/UpdateUser.asp", xml("<UpdateUser/>"), 2).await;
        let a = changer(&server);
        let email = change_job("update_user", json!({"PartnerUserID": "EMP-1", "UserEmail": "j@acme.example"}));
        assert!(!a.update_user(&email, FRESH).await.unwrap().existing);
        // Every other field equal, but a password cannot be compared.
        let pw =
            change_job("update_user", json!({"PartnerUserID": "EMP-1", "UserFirst": "Jane", "UserPW": "N3w-pw-1"}));
        let r = a.update_user(&pw, FRESH).await.unwrap();
        assert!(!r.existing);
        assert!(!format!("{r:?}").contains("N3w-pw-1"));
        assert!(bodies(&server, "/PAPI/UpdateUser.asp").await[1].contains("UserPW=N3w-pw-1"));
    }

    #[tokio::test]
    async fn a_change_to_an_unknown_user_is_no_such_user_and_not_sent() {
        for kind in ["update_user", "suspend_user", "restore_user"] {
            let server = MockServer::start().await;
            on(&server, "/PAPI/ShowUsers.asp", xml(NOBODY), 1).await;
            on(&server, "/PAPI/UpdateUser.asp", xml("<UpdateUser/>"), 0).await;
            let user =
                if kind == "update_user" { json!({"PartnerUserID": "EMP-1", "UserFirst": "Jo"}) } else { emp1() };
            let a = changer(&server);
            let e = a.run_kind(&change_job(kind, user)).await.unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, "no_such_user"), "{kind}");
            assert!(e.message.contains("PartnerUserID EMP-1") && e.message.contains("create_user"), "{}", e.message);
        }
    }

    #[tokio::test]
    async fn update_user_refusals_are_classified() {
        for (message, class, code) in [
            ("PartnerUserID EMP-1 not found", VendorFailure::Rejected, "no_such_user"),
            ("UserAddress new.acme.glance.net is already taken", VendorFailure::Conflict, "user_address_taken"),
            ("UserRole Boss is not provisioned", VendorFailure::Rejected, "role_not_provisioned"),
            ("UserFirst is too long", VendorFailure::Rejected, "user_refused"),
            ("Unknown or inactive PartnerLogin", VendorFailure::Auth, "credentials_refused"),
        ] {
            let server = MockServer::start().await;
            on(&server, "/PAPI/ShowUsers.asp", xml(JANE_RECORD), 1).await;
            on(&server, "/PAPI/UpdateUser.asp", failure(message), 1).await;
            let job =
                change_job("update_user", json!({"PartnerUserID": "EMP-1", "UserAddress": "new.acme.glance.net"}));
            let e = changer(&server).update_user(&job, FRESH).await.unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (class, code), "{message}");
        }
    }

    #[tokio::test]
    async fn an_unrecognised_update_answer_is_checked_with_show_users() {
        // Without success markers (the default) the second lookup decides.
        for (after, outcome) in [("Janet", Ok(false)), ("Jane", Err("unrecognised_answer"))] {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .and(path("/PAPI/ShowUsers.asp"))
                .respond_with(xml(JANE_RECORD))
                .up_to_n_times(1)
                .mount(&server)
                .await;
            on(&server, "/PAPI/ShowUsers.asp", xml(&JANE_RECORD.replace("Jane<", &format!("{after}<"))), 1).await;
            on(&server, "/PAPI/UpdateUser.asp", xml("<Whatever/>"), 1).await;
            let a = adapter_with(&server.uri(), &[], ("PartnerPW", PW), &VendorSettings::default());
            let job = change_job("update_user", json!({"PartnerUserID": "EMP-1", "UserFirst": "Janet"}));
            let got = a.update_user(&job, FRESH).await;
            match outcome {
                Ok(existing) => assert_eq!(got.unwrap().existing, existing),
                Err(code) => {
                    let e = got.unwrap_err();
                    assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Transient, code));
                    assert!(e.message.contains("UserFirst"), "{}", e.message);
                }
            }
        }
    }

    #[tokio::test]
    async fn suspend_and_restore_send_user_suspended_unless_the_record_already_shows_it() {
        // (kind, what the record shows, what is sent, unchanged)
        for (kind, state, sent, unchanged) in [
            ("suspend_user", "<UserSuspended>0</UserSuspended>", Some("UserSuspended=1"), false),
            ("suspend_user", "<UserSuspended>1</UserSuspended>", None, true),
            ("suspend_user", "<UserSuspended>True</UserSuspended>", None, true),
            ("restore_user", "<UserSuspended>1</UserSuspended>", Some("UserSuspended=0"), false),
            ("restore_user", "<UserSuspended>no</UserSuspended>", None, true),
            // The deprecated UserActive, read inversely.
            ("suspend_user", "<UserActive>0</UserActive>", None, true),
            ("restore_user", "<UserActive>0</UserActive>", Some("UserSuspended=0"), false),
            // No state shown (or an unreadable one): sent anyway.
            ("suspend_user", "", Some("UserSuspended=1"), false),
            ("restore_user", "<UserSuspended>maybe</UserSuspended>", Some("UserSuspended=0"), false),
        ] {
            let server = MockServer::start().await;
            on(&server, "/PAPI/ShowUsers.asp", xml(&record(state)), 1).await;
            on(&server, "/PAPI/UpdateUser.asp", xml("<UpdateUser/>"), u64::from(sent.is_some())).await;
            let r = changer(&server).run_kind(&change_job(kind, emp1())).await.unwrap();
            assert_eq!(r.existing, unchanged, "{kind} {state}");
            assert_eq!(r.details["UserSuspended"], kind == "suspend_user", "{kind} {state}");
            if let Some(sent) = sent {
                let body = bodies(&server, "/PAPI/UpdateUser.asp").await.remove(0);
                assert!(body.ends_with(&format!("PartnerUserID=EMP-1&{sent}")), "{kind} {state}: {body}");
            }
        }
    }

    #[tokio::test]
    async fn the_state_elements_are_settings() {
        let with = |server: &MockServer, pairs: &[(&str, &str)]| {
            let mut settings = vec![("success_markers", "updateuser")];
            settings.extend_from_slice(pairs);
            adapter_with(&server.uri(), &settings, ("PartnerPW", PW), &VendorSettings::default())
        };
        // An element the defaults do not know: unknown state, sent; named in the setting: read.
        let server = MockServer::start().await;
        on(&server, "/PAPI/ShowUsers.asp", xml(&record("<IsDisabled>yes</IsDisabled>")), 2).await;
        on(&server, "/PAPI/UpdateUser.asp", xml("<UpdateUser/>"), 1).await;
        let suspend = change_job("suspend_user", emp1());
        assert!(!with(&server, &[]).suspend_user(&suspend, FRESH).await.unwrap().existing);
        let custom = with(&server, &[("lookup_suspended_elements", "IsDisabled")]);
        assert!(custom.suspend_user(&suspend, FRESH).await.unwrap().existing);
        // Both emptied: the record is never read for the state, every suspend is sent.
        let server = MockServer::start().await;
        on(&server, "/PAPI/ShowUsers.asp", xml(&record("<UserSuspended>1</UserSuspended>")), 1).await;
        on(&server, "/PAPI/UpdateUser.asp", xml("<UpdateUser/>"), 1).await;
        let blind = with(&server, &[("lookup_suspended_elements", ""), ("lookup_active_elements", "")]);
        assert!(!blind.suspend_user(&suspend, FRESH).await.unwrap().existing);
    }

    #[tokio::test]
    async fn an_unrecognised_suspend_answer_is_checked_with_show_users() {
        for (after, ok) in
            [("<UserSuspended>1</UserSuspended>", true), ("<UserSuspended>0</UserSuspended>", false), ("", true)]
        {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .and(path("/PAPI/ShowUsers.asp"))
                .respond_with(xml(&record("<UserSuspended>0</UserSuspended>")))
                .up_to_n_times(1)
                .mount(&server)
                .await;
            on(&server, "/PAPI/ShowUsers.asp", xml(&record(after)), 1).await;
            on(&server, "/PAPI/UpdateUser.asp", xml("<Whatever/>"), 1).await;
            let a = adapter_with(&server.uri(), &[], ("PartnerPW", PW), &VendorSettings::default());
            let got = a.suspend_user(&change_job("suspend_user", emp1()), FRESH).await;
            // A state the record does not show cannot contradict the answer.
            assert_eq!(got.is_ok(), ok, "{after}: {got:?}");
        }
    }

    #[tokio::test]
    async fn a_delete_is_refused_before_sending_unless_the_account_allows_it() {
        let server = MockServer::start().await;
        let a = adapter(&server);
        let e = a.delete_user(&change_job("delete_user", emp1()), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, "hard_delete_not_allowed"));
        assert!(e.message.contains("is permanent"), "{}", e.message);
        assert!(e.message.contains("set accounts.acme.settings.hard_delete = true"), "{}", e.message);
        assert!(e.message.contains("suspend_user"), "{}", e.message);
        assert!(server.received_requests().await.unwrap().is_empty(), "nothing was sent");
    }

    #[tokio::test]
    async fn an_allowed_delete_looks_up_then_deletes() {
        let server = MockServer::start().await;
        on(&server, "/PAPI/ShowUsers.asp", xml(JANE_RECORD), 1).await;
        on_body(&server, "/PAPI/DeleteUser.asp", "PartnerID=40123&PartnerUserID=EMP-1", xml("<DeleteUser/>"), 1).await;
        let r = changer(&server).delete_user(&change_job("delete_user", emp1()), FRESH).await.unwrap();
        assert!(!r.existing);
        assert_eq!(r.vendor_user_id.as_deref(), Some("77"));
    }

    #[tokio::test]
    async fn a_user_already_gone_is_unchanged_never_an_error() {
        // Not shown by ShowUsers: nothing is sent.
        let server = MockServer::start().await;
        on(&server, "/PAPI/ShowUsers.asp", xml(NOBODY), 1).await;
        on(&server, "/PAPI/DeleteUser.asp", xml("<DeleteUser/>"), 0).await;
        let job = change_job("delete_user", emp1());
        let r = changer(&server).delete_user(&job, FRESH).await.unwrap();
        assert!(r.existing);
        assert_eq!(r.vendor_user_id.as_deref(), Some("EMP-1"));
        // Gone between the lookup and the delete: Glance's not-found answer.
        let server = MockServer::start().await;
        on(&server, "/PAPI/ShowUsers.asp", xml(JANE_RECORD), 1).await;
        on(&server, "/PAPI/DeleteUser.asp", failure("No such PartnerUserID EMP-1"), 1).await;
        assert!(changer(&server).delete_user(&job, FRESH).await.unwrap().existing);
        // Its wording is unconfirmed: the patterns are a setting.
        let server = MockServer::start().await;
        on(&server, "/PAPI/ShowUsers.asp", xml(JANE_RECORD), 2).await;
        on(&server, "/PAPI/DeleteUser.asp", failure("Nobody by that id"), 2).await;
        let e = changer(&server).delete_user(&job, FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, "user_refused"));
        let custom = adapter_with(
            &server.uri(),
            &[("hard_delete", "true"), ("not_found_error_patterns", "nobody by that id")],
            ("PartnerPW", PW),
            &VendorSettings::default(),
        );
        assert!(custom.delete_user(&job, FRESH).await.unwrap().existing);
    }

    #[tokio::test]
    async fn an_unrecognised_delete_answer_is_checked_with_show_users() {
        for (after, deleted) in [(NOBODY, true), (JANE_RECORD, false)] {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .and(path("/PAPI/ShowUsers.asp"))
                .respond_with(xml(JANE_RECORD))
                .up_to_n_times(1)
                .mount(&server)
                .await;
            on(&server, "/PAPI/ShowUsers.asp", xml(after), 1).await;
            on(&server, "/PAPI/DeleteUser.asp", xml("<Whatever/>"), 1).await;
            let a =
                adapter_with(&server.uri(), &[("hard_delete", "yes")], ("PartnerPW", PW), &VendorSettings::default());
            match a.delete_user(&change_job("delete_user", emp1()), FRESH).await {
                Ok(r) => assert!(deleted && !r.existing, "{r:?}"),
                Err(e) => assert!(!deleted && e.code == "unrecognised_answer", "{e}"),
            }
        }
    }

    #[tokio::test]
    async fn lifecycle_calls_classify_like_the_create() {
        for (kind, p) in [
            ("update_user", "/PAPI/UpdateUser.asp"),
            ("suspend_user", "/PAPI/UpdateUser.asp"),
            ("restore_user", "/PAPI/UpdateUser.asp"),
            ("delete_user", "/PAPI/DeleteUser.asp"),
        ] {
            let user =
                if kind == "update_user" { json!({"PartnerUserID": "EMP-1", "UserFirst": "Jo"}) } else { emp1() };
            let job = change_job(kind, user);
            let state = if kind == "restore_user" { "<UserSuspended>1</UserSuspended>" } else { "" };
            for (status, class) in [(503, VendorFailure::Transient), (429, VendorFailure::Throttled)] {
                // The call itself, after a good lookup.
                let server = MockServer::start().await;
                on(&server, "/PAPI/ShowUsers.asp", xml(&record(state)), 1).await;
                on(&server, p, ResponseTemplate::new(status).insert_header("retry-after", "12"), 1).await;
                let e = changer(&server).run_kind(&job).await.unwrap_err();
                assert_eq!((e.failure, e.code.clone()), (class, format!("http_{status}")), "{kind}");
                assert_eq!(e.retry_after, Some(Duration::from_secs(12)), "{kind}");
                // The lookup before it.
                let server = MockServer::start().await;
                on(&server, "/PAPI/ShowUsers.asp", ResponseTemplate::new(status), 1).await;
                on(&server, p, xml("<UpdateUser/>"), 0).await;
                assert_eq!(changer(&server).run_kind(&job).await.unwrap_err().failure, class, "{kind}");
            }
            let server = MockServer::start().await;
            on(&server, "/PAPI/ShowUsers.asp", xml(&record(state)), 1).await;
            on(&server, p, failure("Wrong PartnerPW for PartnerLogin"), 1).await;
            let e = changer(&server).run_kind(&job).await.unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Auth, "credentials_refused"), "{kind}");
            let server = MockServer::start().await;
            on(&server, "/PAPI/ShowUsers.asp", xml(&record(state)), 1).await;
            on(&server, p, ResponseTemplate::new(200).set_body_string("<html>Runtime Error"), 1).await;
            let e = changer(&server).run_kind(&job).await.unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Transient, "unreadable_answer"), "{kind}");
        }
    }

    #[tokio::test]
    async fn a_refused_login_key_on_an_update_is_minted_afresh_once() {
        let server = MockServer::start().await;
        on(&server, "/PAPI/ShowUsers.asp", xml(JANE_RECORD), 1).await;
        Mock::given(method("POST"))
            .and(path("/PAPI/UpdateUser.asp"))
            .respond_with(failure("PartnerAuth expired"))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        on(&server, "/PAPI/UpdateUser.asp", xml("<UpdateUser/>"), 1).await;
        let a = adapter_with(
            &server.uri(),
            &[("PartnerID", "40123"), ("admin_partner_user_id", "ADMIN-1"), ("success_markers", "updateuser")],
            ("api_key", "example-api-key"),
            &VendorSettings::default(),
        );
        let job = change_job("update_user", json!({"PartnerUserID": "EMP-1", "UserFirst": "Jo"}));
        assert!(!a.update_user(&job, FRESH).await.unwrap().existing);
    }

    #[tokio::test]
    async fn passwords_never_surface_from_lifecycle_calls() {
        let echo = |req: &MockRequest| {
            let body = String::from_utf8_lossy(&req.body).replace('&', " ");
            failure(&format!("cannot parse {}", quick_xml::escape::escape(body.as_str())))
        };
        let echo_ok = |req: &MockRequest| {
            let body = String::from_utf8_lossy(&req.body).replace('&', " ");
            xml(&format!("<UpdateUser><note>{}</note></UpdateUser>", quick_xml::escape::escape(body.as_str())))
        };
        let job = change_job("update_user", json!({"PartnerUserID": "EMP-1", "UserPW": "N3w-secret-pw"}));
        for p in ["/PAPI/ShowUsers.asp", "/PAPI/UpdateUser.asp"] {
            let server = MockServer::start().await;
            if p == "/PAPI/UpdateUser.asp" {
                on(&server, "/PAPI/ShowUsers.asp", xml(JANE_RECORD), 1).await;
            }
            Mock::given(method("POST")).and(path(p)).respond_with(echo).mount(&server).await;
            let a = changer(&server);
            let e = a.update_user(&job, FRESH).await.unwrap_err();
            let shown = format!("{e} {e:?}");
            assert!(shown.contains("PartnerPW=***"), "{shown}");
            assert!(!shown.contains(PW) && !shown.contains("N3w-secret-pw"), "{shown}");
        }
        // An unrecognised answer that echoes everything, confirmed by the lookup.
        let server = MockServer::start().await;
        on(&server, "/PAPI/ShowUsers.asp", xml(JANE_RECORD), 2).await;
        Mock::given(method("POST")).and(path("/PAPI/UpdateUser.asp")).respond_with(echo_ok).mount(&server).await;
        let a = adapter_with(&server.uri(), &[], ("PartnerPW", PW), &VendorSettings::default());
        let r = a.update_user(&job, FRESH).await.unwrap();
        let shown = format!("{r:?}");
        assert!(!shown.contains(PW) && !shown.contains("N3w-secret-pw"), "{shown}");
        // The delete and the suspend carry the account's password only.
        let server = MockServer::start().await;
        on(&server, "/PAPI/ShowUsers.asp", xml(JANE_RECORD), 2).await;
        Mock::given(method("POST")).and(path("/PAPI/DeleteUser.asp")).respond_with(echo).mount(&server).await;
        Mock::given(method("POST")).and(path("/PAPI/UpdateUser.asp")).respond_with(echo).mount(&server).await;
        for kind in ["delete_user", "suspend_user"] {
            let e = changer(&server).run_kind(&change_job(kind, emp1())).await.unwrap_err();
            assert!(!format!("{e} {e:?}").contains(PW), "{kind}: {e}");
        }
    }

    #[tokio::test]
    async fn the_identity_of_every_kind() {
        let server = MockServer::start().await;
        let a = adapter(&server);
        let id = a.identity(&jane()).unwrap();
        assert_eq!((id.key.as_str(), id.extra.as_deref()), ("EMP-1", Some("jdoe.acme.glance.net")));
        let moved = change_job("update_user", json!({"PartnerUserID": "EMP-1", "UserAddress": "New.acme.glance.net"}));
        let id = a.identity(&moved).unwrap();
        assert_eq!((id.key.as_str(), id.extra.as_deref()), ("EMP-1", Some("new.acme.glance.net")));
        let renamed = change_job("update_user", json!({"PartnerUserID": "EMP-1", "UserFirst": "Jo"}));
        assert_eq!(a.identity(&renamed).unwrap().extra, None);
        for kind in ["suspend_user", "restore_user", "delete_user"] {
            let id = a.identity(&change_job(kind, emp1())).unwrap();
            assert_eq!((id.key.as_str(), id.extra), ("EMP-1", None), "{kind}");
        }
        // The account's rules still apply: an address outside its suffixes is refused.
        let strict = adapter_with(
            &server.uri(),
            &[("address_suffixes", ".acme.glance.net")],
            ("PartnerPW", PW),
            &VendorSettings::default(),
        );
        let elsewhere =
            change_job("update_user", json!({"PartnerUserID": "EMP-1", "UserAddress": "x.other.glance.net"}));
        let e = strict.identity(&elsewhere).unwrap_err();
        assert_eq!(e.code, INVALID_FIELD);
        let e = strict.update_user(&elsewhere, FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Rejected, INVALID_FIELD));
        assert!(server.received_requests().await.unwrap().is_empty());
    }
}
