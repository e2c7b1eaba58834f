//! The NetSapiens adapter: one pooled client and one token cache per account, build → send → interpret, looking the user up whenever a create might be a repeat.

use std::sync::Arc;
use std::time::Instant;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};

use super::account::{self, Account, Auth, OAuthClient};
use super::fields::{Domain, Extension, NewUser};
use super::request::{self, Request};
use super::response::{self, code, Answer, FoundUser, Token};
use crate::config::{AccountSettings, ConfigError, VendorSettings};
use crate::contract::{Job, VendorKey};
use crate::vendors::{http, CallContext, Receipt, VendorError, VendorFailure, INVALID_FIELD};

/// One NetSapiens account's client. Cheap to clone: clones share the connection pool and
/// the OAuth token.
#[derive(Clone, Debug)]
pub struct Adapter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    account: Account,
    base: http::BaseUrl,
    http: http::Client,
    /// Held across a token fetch, so concurrent jobs wait for one grant instead of each
    /// starting their own.
    token: tokio::sync::Mutex<Option<CachedToken>>,
}

#[derive(Debug)]
struct CachedToken {
    token: Token,
    /// When to stop using it: expiry minus the account's margin. `None`: until a 401.
    replace_at: Option<Instant>,
}

impl CachedToken {
    fn usable(&self, now: Instant) -> bool {
        self.replace_at.is_none_or(|t| now < t)
    }
}

/// Builds the adapter of one configured account.
pub fn build(name: &str, account: &AccountSettings, http: &VendorSettings) -> Result<Adapter, ConfigError> {
    if account.vendor != VendorKey::Netsapiens {
        return Err(ConfigError::Invalid {
            key: format!("accounts.{name}.vendor"),
            message: format!("is {}, not netsapiens", account.vendor),
        });
    }
    Ok(Adapter::new(account::from_settings(name, account)?, http::client(http)))
}

impl Adapter {
    pub fn new(account: Account, http: http::Client) -> Self {
        let base = http::BaseUrl::new(&account.base_url);
        Self { inner: Arc::new(Inner { account, base, http, token: tokio::sync::Mutex::new(None) }) }
    }

    pub fn account(&self) -> &Account {
        &self.inner.account
    }

    /// The job's own domain wins over the account's.
    fn domain_for(&self, job: &Job) -> Result<Domain, VendorError> {
        match (&job.domain, &self.inner.account.domain) {
            (Some(d), _) => Domain::parse(d)
                .map_err(|m| VendorError::new(VendorFailure::Rejected, "invalid_domain", format!("domain {m}"))),
            (None, Some(d)) => Ok(d.clone()),
            (None, None) => Err(VendorError::new(
                VendorFailure::Auth,
                code::NO_DOMAIN,
                format!(
                    "no domain to create the user in: set accounts.{}.settings.domain or give the job a top-level domain",
                    self.inner.account.name
                ),
            )),
        }
    }

    /// The job's user under the vendor's rules; a refusal is never sent.
    fn parse_user(&self, job: &Job) -> Result<NewUser, VendorError> {
        NewUser::parse(&job.user).map_err(|errors| {
            let summary: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
            VendorError::new(VendorFailure::Rejected, INVALID_FIELD, summary.join("; "))
        })
    }

    /// The whole flow: parse, look before a create that might repeat one, create, settle.
    async fn run(&self, job: &Job, ctx: CallContext) -> Result<Receipt, VendorError> {
        let user = self.parse_user(job)?;
        let domain = self.domain_for(job)?;
        let result = self.look_then_create(&user, &domain, ctx).await;
        // Vendor text may echo what it was sent; no secret of this call may leave in an error.
        let mut secrets = self.account_secrets().await;
        secrets.extend(user.secrets().into_iter().map(str::to_owned));
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        result.map_err(|e| http::scrub_error(e, &secrets))
    }

    async fn look_then_create(
        &self,
        user: &NewUser,
        domain: &Domain,
        ctx: CallContext,
    ) -> Result<Receipt, VendorError> {
        // POST is not idempotent and has no idempotency key: if an earlier attempt may have
        // reached the vendor (redelivery, replay, retry after a timeout), look first.
        if ctx.maybe_seen_before || ctx.inline_attempt > 1 {
            if let Some(found) = self.send_lookup(domain, user.user()).await? {
                tracing::debug!(%domain, user = %user.user(), "netsapiens user found before create");
                return response::reconcile(domain, user, &found);
            }
        }
        match self.send_create(user, domain).await {
            Err(e) if e.code == code::ALREADY_EXISTS => self.settle_duplicate(user, domain).await,
            other => other,
        }
    }

    /// NetSapiens said the extension exists: find out whose it is.
    async fn settle_duplicate(&self, user: &NewUser, domain: &Domain) -> Result<Receipt, VendorError> {
        match self.send_lookup(domain, user.user()).await? {
            Some(found) => response::reconcile(domain, user, &found),
            None => Err(response::login_username_taken(domain, user)),
        }
    }

    /// One `POST /domains/{domain}/users`.
    async fn send_create(&self, user: &NewUser, domain: &Domain) -> Result<Receipt, VendorError> {
        let account = &self.inner.account;
        self.call(
            |bearer| request::create_user(account, domain, user, bearer),
            |answer| response::interpret_create(answer, domain, user.user(), account.domain_not_found),
        )
        .await
    }

    /// One `GET /domains/{domain}/users/{user}`.
    async fn send_lookup(&self, domain: &Domain, user: &Extension) -> Result<Option<FoundUser>, VendorError> {
        let account = &self.inner.account;
        self.call(
            |bearer| request::get_user(account, domain, user, bearer),
            |answer| response::interpret_lookup(answer, domain, user, account.domain_not_found),
        )
        .await
    }

    /// Sends an authorised call and reads its answer. With OAuth, a 401 replaces the token
    /// once and tries again; a static API key that gets a 401 is simply wrong.
    async fn call<T>(
        &self,
        build: impl Fn(&SecretString) -> Request,
        read: impl Fn(&Answer<'_>) -> Result<T, VendorError>,
    ) -> Result<T, VendorError> {
        let mut replaced = false;
        loop {
            let bearer = self.bearer().await?;
            let req = build(&bearer);
            let (status, headers, body) = self.send(&req).await?;
            match read(&Answer { status, headers: &headers, body: &body }) {
                Err(e) if e.code == code::UNAUTHORIZED && !replaced && self.uses_oauth() => {
                    tracing::debug!("netsapiens refused the cached token; fetching a new one");
                    self.forget(&bearer).await;
                    replaced = true;
                }
                other => return other,
            }
        }
    }

    async fn send(&self, req: &Request) -> Result<(reqwest::StatusCode, HeaderMap, Vec<u8>), VendorError> {
        let mut builder = self.inner.base.request(&self.inner.http, req.method.clone(), &req.path);
        for (name, value) in &req.headers {
            let value = HeaderValue::from_str(value).map_err(|_| {
                VendorError::new(VendorFailure::Auth, "bad_header", format!("header {name} has an invalid value"))
            })?;
            builder = builder.header(*name, value);
        }
        if let Some(auth) = req.authorization() {
            let mut value = HeaderValue::from_str(&auth).map_err(|_| {
                VendorError::new(
                    VendorFailure::Auth,
                    "bad_credentials",
                    "the API key or token is not a valid header value",
                )
            })?;
            value.set_sensitive(true);
            builder = builder.header(AUTHORIZATION, value);
        }
        if let Some(ct) = req.content_type() {
            builder = builder.header(CONTENT_TYPE, ct).body(req.body_bytes());
        }
        let started = Instant::now();
        let answer = self.inner.http.exchange(builder).await?;
        tracing::debug!(
            method = %req.method, path = %req.path, status = answer.status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64, "netsapiens call"
        );
        Ok((answer.status, answer.headers, answer.body))
    }

    fn uses_oauth(&self) -> bool {
        matches!(self.inner.account.auth, Auth::OAuth(_))
    }

    /// The bearer token: the API key, or a cached OAuth token replaced before it expires.
    async fn bearer(&self) -> Result<SecretString, VendorError> {
        let client = match &self.inner.account.auth {
            Auth::ApiKey(key) => return Ok(key.clone()),
            Auth::OAuth(client) => client,
        };
        let mut slot = self.inner.token.lock().await;
        if let Some(cached) = slot.as_ref().filter(|c| c.usable(Instant::now())) {
            return Ok(cached.token.access_token.clone());
        }
        let refresh = slot.take().and_then(|c| c.token.refresh_token);
        let token = self.grant(client, refresh).await?;
        let access = token.access_token.clone();
        let margin = self.inner.account.token_refresh_margin;
        let replace_at = token.expires_in.and_then(|ttl| Instant::now().checked_add(ttl.saturating_sub(margin)));
        *slot = Some(CachedToken { token, replace_at });
        Ok(access)
    }

    /// A refresh grant when there is a refresh token, falling back to the password grant
    /// when the refresh token is refused (it expires too).
    async fn grant(&self, client: &OAuthClient, refresh: Option<SecretString>) -> Result<Token, VendorError> {
        let account = &self.inner.account;
        if let Some(rt) = refresh {
            match self.fetch_token(&request::token_refresh(account, client, &rt)).await {
                Err(e) if e.failure == VendorFailure::Auth => {
                    tracing::debug!("netsapiens refused the refresh token; using the password grant");
                }
                other => return other,
            }
        }
        self.fetch_token(&request::token_password(account, client)).await
    }

    async fn fetch_token(&self, req: &Request) -> Result<Token, VendorError> {
        let (status, headers, body) = self.send(req).await?;
        response::token(&Answer { status, headers: &headers, body: &body })
    }

    /// Marks the token a call was refused with as unusable, unless another job already
    /// replaced it.
    async fn forget(&self, refused: &SecretString) {
        let mut slot = self.inner.token.lock().await;
        if let Some(c) = slot.as_mut() {
            if c.token.access_token.expose_secret() == refused.expose_secret() {
                c.replace_at = Some(Instant::now());
            }
        }
    }

    /// The credentials and the current OAuth tokens, to scrub from vendor text.
    async fn account_secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = match &self.inner.account.auth {
            Auth::ApiKey(k) => vec![k.expose_secret().to_owned()],
            Auth::OAuth(c) => [&c.client_id, &c.client_secret, &c.username, &c.password]
                .into_iter()
                .map(|s| s.expose_secret().to_owned())
                .collect(),
        };
        if let Some(c) = self.inner.token.lock().await.as_ref() {
            out.push(c.token.access_token.expose_secret().to_owned());
            out.extend(c.token.refresh_token.as_ref().map(|r| r.expose_secret().to_owned()));
        }
        out
    }
}

impl crate::vendors::Adapter for Adapter {
    async fn create_user(&self, job: &Job, ctx: CallContext) -> Result<Receipt, VendorError> {
        self.run(job, ctx).await
    }

    async fn update_user(&self, job: &Job, _ctx: CallContext) -> Result<Receipt, VendorError> {
        Err(crate::vendors::unsupported(crate::contract::VendorKey::Netsapiens, job.kind))
    }

    async fn suspend_user(&self, job: &Job, _ctx: CallContext) -> Result<Receipt, VendorError> {
        Err(crate::vendors::unsupported(crate::contract::VendorKey::Netsapiens, job.kind))
    }

    async fn restore_user(&self, job: &Job, _ctx: CallContext) -> Result<Receipt, VendorError> {
        Err(crate::vendors::unsupported(crate::contract::VendorKey::Netsapiens, job.kind))
    }

    async fn delete_user(&self, job: &Job, _ctx: CallContext) -> Result<Receipt, VendorError> {
        Err(crate::vendors::unsupported(crate::contract::VendorKey::Netsapiens, job.kind))
    }

    fn identity(&self, job: &Job) -> Result<crate::vendors::VendorIdentity, VendorError> {
        let user = self.parse_user(job)?;
        let domain = self.domain_for(job)?;
        Ok(crate::vendors::VendorIdentity { key: format!("{}@{domain}", user.user().as_str()), extra: None })
    }

    /// `GET /domains/{domain}/users/{user}` reads back the record the job asked for.
    fn proves_identity(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};
    use wiremock::matchers::{body_json, body_partial_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::vendors::netsapiens::account::tests::settings;
    use crate::vendors::testing::{FRESH, INLINE_RETRY, SEEN};
    use crate::vendors::Adapter as _;

    const KEY: &str = "nsr_TEST_API_KEY";
    const PIN: &str = "8675309";
    const USERS: &str = "/ns-api/v2/domains/acme.example/users";
    const USER: &str = "/ns-api/v2/domains/acme.example/users/1042";
    const OAUTH: &[(&str, &str)] = &[
        ("client_id", "cid"),
        ("client_secret", "client-s3cret"),
        ("username", "admin@acme"),
        ("password", "pa55word"),
    ];

    struct Fixture {
        server: MockServer,
        adapter: Adapter,
        _dir: tempfile::TempDir,
    }

    async fn fixture(set: &[(&str, &str)], creds: &[(&str, &str)]) -> Fixture {
        let server = MockServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let mut all = vec![("domain", "acme.example")];
        all.extend_from_slice(set);
        let s = settings(&dir, &format!("{}/ns-api/v2", server.uri()), &all, creds);
        let adapter = build("acme", &s, &VendorSettings::default()).unwrap();
        Fixture { server, adapter, _dir: dir }
    }

    async fn with_key() -> Fixture {
        fixture(&[], &[("api_key", KEY)]).await
    }

    fn job_with(user: Value) -> Job {
        let v = json!({"job_id": "hire-1", "vendor": "netsapiens", "account": "acme", "user": user});
        crate::job::decode(v.to_string().as_bytes()).unwrap()
    }

    fn user_json() -> Value {
        json!({"user": "1042", "name-first-name": "Jane", "name-last-name": "Doe",
               "email": "jane.doe@acme.example", "user-scope": "Basic User", "voicemail-login-pin": PIN})
    }

    fn job() -> Job {
        job_with(user_json())
    }

    fn remote(first: &str) -> Value {
        json!({"domain": "acme.example", "user": "1042", "name-first-name": first, "name-last-name": "Doe",
               "email": "jane.doe@acme.example", "user-scope": "Basic User", "login-username": "1042@acme.example",
               "account-status": "new"})
    }

    fn error(status: u16, message: &str) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_json(json!({"code": status, "message": message}))
    }

    #[tokio::test]
    async fn a_synchronous_create_sends_the_documented_request() {
        let f = with_key().await;
        Mock::given(method("POST"))
            .and(path(USERS))
            .and(header("authorization", format!("Bearer {KEY}").as_str()))
            .and(header("content-type", "application/json"))
            .and(header("accept", "application/json"))
            .and(body_json(json!({"synchronous": "yes", "user": "1042", "name-first-name": "Jane",
                "name-last-name": "Doe", "email": "jane.doe@acme.example", "user-scope": "Basic User",
                "voicemail-login-pin": PIN})))
            .respond_with(ResponseTemplate::new(200).set_body_json(remote("Jane")))
            .expect(1)
            .mount(&f.server)
            .await;
        let r = f.adapter.create_user(&job(), FRESH).await.unwrap();
        assert!(!r.existing);
        assert_eq!(r.vendor_user_id.as_deref(), Some("1042@acme.example"));
        assert_eq!(r.details["login-username"], "1042@acme.example");
    }

    #[tokio::test]
    async fn an_asynchronous_create_is_accepted_with_202() {
        let f = fixture(&[("synchronous", "no")], &[("api_key", KEY)]).await;
        Mock::given(method("POST"))
            .and(path(USERS))
            .and(body_partial_json(json!({"synchronous": "no"})))
            .respond_with(ResponseTemplate::new(202).set_body_json(json!({"code": 202, "message": "Accepted"})))
            .expect(1)
            .mount(&f.server)
            .await;
        let r = f.adapter.create_user(&job(), FRESH).await.unwrap();
        assert!(!r.existing);
        assert_eq!(r.details["domain"], "acme.example");
    }

    #[tokio::test]
    async fn the_jobs_domain_overrides_the_accounts() {
        let f = with_key().await;
        Mock::given(method("POST"))
            .and(path("/ns-api/v2/domains/other.example/users"))
            .respond_with(ResponseTemplate::new(202))
            .expect(1)
            .mount(&f.server)
            .await;
        let v = json!({"job_id": "j", "vendor": "netsapiens", "account": "acme", "domain": "other.example",
                       "user": user_json()});
        let job = crate::job::decode(v.to_string().as_bytes()).unwrap();
        assert_eq!(f.adapter.create_user(&job, FRESH).await.unwrap().vendor_user_id.unwrap(), "1042@other.example");
    }

    #[tokio::test]
    async fn a_409_for_the_same_user_is_existing() {
        let f = with_key().await;
        Mock::given(method("POST"))
            .and(path(USERS))
            .respond_with(error(409, "UID already exists."))
            .expect(1)
            .mount(&f.server)
            .await;
        Mock::given(method("GET"))
            .and(path(USER))
            .respond_with(ResponseTemplate::new(200).set_body_json(remote("Jane")))
            .expect(1)
            .mount(&f.server)
            .await;
        let r = f.adapter.create_user(&job(), FRESH).await.unwrap();
        assert!(r.existing);
        assert_eq!(r.details["account-status"], "new");
    }

    #[tokio::test]
    async fn a_409_for_someone_else_is_a_conflict() {
        let f = with_key().await;
        Mock::given(method("POST"))
            .and(path(USERS))
            .respond_with(error(409, "UID already exists."))
            .mount(&f.server)
            .await;
        Mock::given(method("GET"))
            .and(path(USER))
            .respond_with(ResponseTemplate::new(200).set_body_json(remote("John")))
            .mount(&f.server)
            .await;
        let e = f.adapter.create_user(&job(), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Conflict, code::USER_DIFFERS));
        assert!(e.message.contains("name-first-name"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_409_without_the_user_in_the_domain_is_a_taken_login() {
        let f = with_key().await;
        Mock::given(method("POST"))
            .and(path(USERS))
            .respond_with(error(409, "login-username already in use"))
            .mount(&f.server)
            .await;
        Mock::given(method("GET")).and(path(USER)).respond_with(error(404, "Record not found")).mount(&f.server).await;
        let e = f.adapter.create_user(&job(), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Conflict, code::LOGIN_USERNAME_TAKEN));
    }

    #[tokio::test]
    async fn a_redelivery_looks_first_and_never_posts_for_an_existing_user() {
        let f = with_key().await;
        Mock::given(method("GET"))
            .and(path(USER))
            .respond_with(ResponseTemplate::new(200).set_body_json(remote("Jane")))
            .expect(2)
            .mount(&f.server)
            .await;
        Mock::given(method("POST")).respond_with(ResponseTemplate::new(500)).expect(0).mount(&f.server).await;
        assert!(f.adapter.create_user(&job(), SEEN).await.unwrap().existing);
        // An inline retry (a timeout may have reached the vendor) looks first as well.
        assert!(f.adapter.create_user(&job(), INLINE_RETRY).await.unwrap().existing);
    }

    #[tokio::test]
    async fn a_redelivery_of_a_user_never_created_creates_it() {
        let f = with_key().await;
        Mock::given(method("GET"))
            .and(path(USER))
            .respond_with(error(404, "Record not found"))
            .expect(1)
            .mount(&f.server)
            .await;
        Mock::given(method("POST"))
            .and(path(USERS))
            .respond_with(ResponseTemplate::new(200).set_body_json(remote("Jane")))
            .expect(1)
            .mount(&f.server)
            .await;
        assert!(!f.adapter.create_user(&job(), SEEN).await.unwrap().existing);
    }

    #[tokio::test]
    async fn every_error_class_through_the_adapter() {
        let cases: Vec<(ResponseTemplate, VendorFailure, &str)> = vec![
            (error(400, "Missing required field name-last-name"), VendorFailure::Rejected, code::BAD_REQUEST),
            (error(401, "Authentication Required"), VendorFailure::Auth, code::UNAUTHORIZED),
            (error(403, "Domain not found or access denied"), VendorFailure::Auth, code::FORBIDDEN),
            (error(404, "Domain acme.example does not exist"), VendorFailure::Auth, code::DOMAIN_NOT_FOUND),
            (
                error(429, "Too Many Requests").insert_header("Retry-After", "3"),
                VendorFailure::Throttled,
                code::RATE_LIMITED,
            ),
            (error(500, "Internal Server Error"), VendorFailure::Transient, "http_500"),
            (
                ResponseTemplate::new(503).set_body_string("<html>upstream down</html>"),
                VendorFailure::Transient,
                "http_503",
            ),
            (
                ResponseTemplate::new(404).set_body_raw("<html>nginx</html>", "text/html"),
                VendorFailure::Auth,
                code::WRONG_HOST,
            ),
            (
                ResponseTemplate::new(200).set_body_string("}{ not json"),
                VendorFailure::Transient,
                code::UNREADABLE_BODY,
            ),
        ];
        for (template, failure, code) in cases {
            let f = with_key().await;
            // With a static key a 401 is final: exactly one POST.
            Mock::given(method("POST")).and(path(USERS)).respond_with(template).expect(1).mount(&f.server).await;
            let e = f.adapter.create_user(&job(), FRESH).await.unwrap_err();
            assert_eq!((e.failure, e.code.as_str()), (failure, code), "{e}");
            if code == code::RATE_LIMITED {
                assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(3)));
            }
        }
    }

    #[tokio::test]
    async fn a_missing_domain_is_retried_when_the_account_says_so() {
        let f = fixture(&[("domain_not_found", "transient")], &[("api_key", KEY)]).await;
        Mock::given(method("POST"))
            .respond_with(error(404, "Domain acme.example does not exist"))
            .mount(&f.server)
            .await;
        assert_eq!(f.adapter.create_user(&job(), FRESH).await.unwrap_err().failure, VendorFailure::Transient);
    }

    #[tokio::test]
    async fn the_email_goes_out_under_the_accounts_wire_name() {
        let f = fixture(&[("email_field", "email-address")], &[("api_key", KEY)]).await;
        Mock::given(method("POST"))
            .and(body_partial_json(json!({"email-address": "jane.doe@acme.example"})))
            .respond_with(ResponseTemplate::new(202))
            .expect(1)
            .mount(&f.server)
            .await;
        f.adapter.create_user(&job(), FRESH).await.unwrap();
        let sent: Value = serde_json::from_slice(&f.server.received_requests().await.unwrap()[0].body).unwrap();
        assert!(sent.get("email").is_none(), "{sent}");
    }

    #[tokio::test]
    async fn an_unreachable_vendor_is_transient() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(&dir, "http://127.0.0.1:9/ns-api/v2", &[("domain", "acme.example")], &[("api_key", KEY)]);
        let adapter = build("acme", &s, &VendorSettings::default()).unwrap();
        let e = adapter.create_user(&job(), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Transient, "connect"));
    }

    #[tokio::test]
    async fn without_any_domain_the_account_must_be_fixed() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(&dir, "http://127.0.0.1:9/ns-api/v2", &[], &[("api_key", KEY)]);
        let e = build("acme", &s, &VendorSettings::default()).unwrap().create_user(&job(), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Auth, code::NO_DOMAIN));
        assert!(e.message.contains("accounts.acme.settings.domain"));
    }

    fn token_body(access: &str, expires_in: u64) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(json!({"access_token": access, "token_type": "Bearer",
            "expires_in": expires_in, "refresh_token": format!("refresh-{access}"), "scope": "Reseller"}))
    }

    #[tokio::test]
    async fn oauth_tokens_are_fetched_once_and_reused() {
        let f = fixture(&[], OAUTH).await;
        Mock::given(method("POST"))
            .and(path("/ns-api/v2/tokens"))
            .and(body_json(json!({"grant_type": "password", "client_id": "cid", "client_secret": "client-s3cret",
                "username": "admin@acme", "password": "pa55word"})))
            .respond_with(token_body("tok-1", 3600))
            .expect(1)
            .mount(&f.server)
            .await;
        Mock::given(method("POST"))
            .and(path(USERS))
            .and(header("authorization", "Bearer tok-1"))
            .respond_with(ResponseTemplate::new(202))
            .expect(2)
            .mount(&f.server)
            .await;
        f.adapter.create_user(&job(), FRESH).await.unwrap();
        f.adapter.clone().create_user(&job(), FRESH).await.unwrap();
    }

    #[tokio::test]
    async fn oauth_tokens_are_refreshed_before_they_expire() {
        // 30 s of validity is inside the default 60 s margin: every use needs a new token.
        let f = fixture(&[("token_encoding", "form")], OAUTH).await;
        Mock::given(method("POST"))
            .and(path("/ns-api/v2/tokens"))
            .and(header("content-type", "application/x-www-form-urlencoded"))
            .and(wiremock::matchers::body_string_contains("grant_type=password"))
            .respond_with(token_body("tok-1", 30))
            .expect(1)
            .mount(&f.server)
            .await;
        Mock::given(method("POST"))
            .and(path("/ns-api/v2/tokens"))
            .and(wiremock::matchers::body_string_contains("grant_type=refresh_token"))
            .and(wiremock::matchers::body_string_contains("refresh_token=refresh-tok-1"))
            .respond_with(token_body("tok-2", 3600))
            .expect(1)
            .mount(&f.server)
            .await;
        Mock::given(method("POST"))
            .and(path(USERS))
            .and(header("authorization", "Bearer tok-1"))
            .respond_with(ResponseTemplate::new(202))
            .expect(1)
            .mount(&f.server)
            .await;
        Mock::given(method("POST"))
            .and(path(USERS))
            .and(header("authorization", "Bearer tok-2"))
            .respond_with(ResponseTemplate::new(202))
            .expect(1)
            .mount(&f.server)
            .await;
        f.adapter.create_user(&job(), FRESH).await.unwrap();
        f.adapter.create_user(&job(), FRESH).await.unwrap();
    }

    #[tokio::test]
    async fn a_401_with_oauth_replaces_the_token_once() {
        let f = fixture(&[], OAUTH).await;
        Mock::given(method("POST"))
            .and(path("/ns-api/v2/tokens"))
            .and(body_partial_json(json!({"grant_type": "password"})))
            .respond_with(token_body("tok-1", 3600))
            .expect(1)
            .mount(&f.server)
            .await;
        Mock::given(method("POST"))
            .and(path("/ns-api/v2/tokens"))
            .and(body_partial_json(json!({"grant_type": "refresh_token"})))
            .respond_with(token_body("tok-2", 3600))
            .expect(1)
            .mount(&f.server)
            .await;
        Mock::given(method("POST"))
            .and(path(USERS))
            .and(header("authorization", "Bearer tok-1"))
            .respond_with(error(401, "Authentication Required"))
            .expect(1)
            .mount(&f.server)
            .await;
        Mock::given(method("POST"))
            .and(path(USERS))
            .and(header("authorization", "Bearer tok-2"))
            .respond_with(error(401, "Authentication Required"))
            .expect(1)
            .mount(&f.server)
            .await;
        // Replaced once, refused again: credentials are wrong, no third attempt.
        let e = f.adapter.create_user(&job(), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Auth, code::UNAUTHORIZED));
    }

    #[tokio::test]
    async fn a_refused_refresh_token_falls_back_to_the_password_grant_and_a_refused_login_is_auth() {
        let f = fixture(&[], OAUTH).await;
        Mock::given(method("POST"))
            .and(path("/ns-api/v2/tokens"))
            .and(body_partial_json(json!({"grant_type": "password"})))
            .respond_with(token_body("tok-1", 1))
            .up_to_n_times(1)
            .expect(1)
            .mount(&f.server)
            .await;
        Mock::given(method("POST"))
            .and(path("/ns-api/v2/tokens"))
            .and(body_partial_json(json!({"grant_type": "refresh_token"})))
            .respond_with(error(400, "invalid_grant"))
            .expect(1)
            .mount(&f.server)
            .await;
        Mock::given(method("POST"))
            .and(path("/ns-api/v2/tokens"))
            .and(body_partial_json(json!({"grant_type": "password"})))
            .respond_with(error(401, "Invalid username or password"))
            .expect(1)
            .mount(&f.server)
            .await;
        Mock::given(method("POST"))
            .and(path(USERS))
            .respond_with(ResponseTemplate::new(202))
            .expect(1)
            .mount(&f.server)
            .await;
        f.adapter.create_user(&job(), FRESH).await.unwrap();
        let e = f.adapter.create_user(&job(), FRESH).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Auth, code::TOKEN_REFUSED));
    }

    #[tokio::test]
    async fn secrets_appear_in_no_error_receipt_or_debug_output() {
        let f = fixture(&[], OAUTH).await;
        // A careless vendor echoing everything it was sent, in every answer.
        let echo = format!("bad pin {PIN} for admin@acme/pa55word client-s3cret tok-1");
        Mock::given(method("POST"))
            .and(path("/ns-api/v2/tokens"))
            .respond_with(token_body("tok-1", 3600))
            .mount(&f.server)
            .await;
        Mock::given(method("POST"))
            .and(path(USERS))
            .respond_with(error(400, &echo))
            .up_to_n_times(1)
            .mount(&f.server)
            .await;
        Mock::given(method("POST"))
            .and(path(USERS))
            .respond_with(ResponseTemplate::new(200).set_body_string(format!("<html>{echo}</html>")))
            .up_to_n_times(1)
            .mount(&f.server)
            .await;
        let mut with_pin = remote("Jane");
        with_pin["voicemail-login-pin"] = json!(PIN);
        Mock::given(method("POST"))
            .and(path(USERS))
            .respond_with(ResponseTemplate::new(200).set_body_json(with_pin))
            .mount(&f.server)
            .await;

        let rejected = f.adapter.create_user(&job(), FRESH).await.unwrap_err();
        let garbage = f.adapter.create_user(&job(), FRESH).await.unwrap_err();
        let created = f.adapter.create_user(&job(), FRESH).await.unwrap();
        let shown =
            format!("{rejected}\n{rejected:?}\n{garbage}\n{garbage:?}\n{created:?}\n{:?}\n{:?}", f.adapter, job());
        assert!(rejected.message.contains("bad pin ***"), "{rejected}");
        for secret in [PIN, "pa55word", "client-s3cret", "admin@acme", "tok-1"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        let f = with_key().await;
        Mock::given(method("POST")).respond_with(error(401, &format!("key {KEY} revoked"))).mount(&f.server).await;
        let e = f.adapter.create_user(&job(), FRESH).await.unwrap_err();
        let shown = format!("{e}\n{e:?}\n{:?}", f.adapter);
        assert!(!shown.contains(KEY), "{shown}");
    }

    #[test]
    fn build_refuses_another_vendors_account() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(&dir, "https://pbx.example.com/ns-api/v2", &[], &[("api_key", "k")]);
        s.vendor = VendorKey::Glance;
        match build("g", &s, &VendorSettings::default()).unwrap_err() {
            ConfigError::Invalid { key, .. } => assert_eq!(key, "accounts.g.vendor"),
            other => panic!("{other}"),
        }
    }
}
