//! Simulators of the vendor APIs, served over HTTP on the vendors' real paths, with fault
//! injection and a control API (`/_sandbox/faults`, `/_sandbox/ledger`) that tests, the
//! demo and the chaos suite drive.

pub mod faults;
pub mod hostile;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;

pub use faults::{FaultState, Faults};

use crate::contract::VendorKey;
use crate::vendors::{clienttoolbox, glance, netsapiens};

/// The three vendor simulators behind one listener (their paths do not overlap), sharing one
/// fault state.
#[derive(Clone)]
pub struct Sandboxes {
    pub glance: Arc<glance::sandbox::Sandbox>,
    pub netsapiens: Arc<netsapiens::sandbox::Sandbox>,
    pub clienttoolbox: Arc<clienttoolbox::sandbox::Sandbox>,
    pub faults: FaultState,
}

/// The sandboxes are a load-test target as much as a simulator: the bench holds 1,002 calls
/// in flight at once, so they allow far more connections than a production port. The
/// timeouts stay as everywhere else.
const SANDBOX_LIMITS: crate::http_server::ServerLimits = crate::http_server::ServerLimits {
    header_read_timeout: std::time::Duration::from_secs(10),
    request_timeout: std::time::Duration::from_secs(30),
    max_connections: 8192,
};

impl Sandboxes {
    pub fn new(faults: Faults, seed: u64) -> Self {
        Self {
            glance: Arc::new(glance::sandbox::Sandbox::new()),
            netsapiens: Arc::new(netsapiens::sandbox::Sandbox::new()),
            clienttoolbox: Arc::new(clienttoolbox::sandbox::Sandbox::new()),
            faults: FaultState::new(faults, seed),
        }
    }

    /// How many times the vendor created the user with this identity; never more than 1.
    pub fn creations(&self, vendor: VendorKey, identity: &str) -> u32 {
        match vendor {
            VendorKey::Glance => self.glance.creations(identity),
            VendorKey::Netsapiens => self.netsapiens.creations(identity),
            VendorKey::Clienttoolbox => self.clienttoolbox.creations(identity),
        }
    }

    /// How many updates (a suspend and a restore are updates too) the user took. A bare
    /// NetSapiens extension is taken in [`netsapiens::sandbox::SANDBOX_DOMAIN`].
    pub fn updates(&self, vendor: VendorKey, identity: &str) -> u32 {
        match vendor {
            VendorKey::Glance => self.glance.updates(identity),
            VendorKey::Netsapiens => self.netsapiens.updates(&in_sandbox_domain(identity)),
            VendorKey::Clienttoolbox => self.clienttoolbox.updates(identity),
        }
    }

    /// How many deletes the user took.
    pub fn deletions(&self, vendor: VendorKey, identity: &str) -> u32 {
        match vendor {
            VendorKey::Glance => self.glance.deletions(identity),
            VendorKey::Netsapiens => self.netsapiens.deletions(&in_sandbox_domain(identity)),
            VendorKey::Clienttoolbox => self.clienttoolbox.deletions(identity),
        }
    }

    /// The user as the vendor's lookup shows it, under its wire names; `None` when it is gone.
    pub fn user(&self, vendor: VendorKey, identity: &str) -> Option<serde_json::Value> {
        match vendor {
            VendorKey::Glance => self.glance.user(identity),
            VendorKey::Netsapiens => {
                let qualified = in_sandbox_domain(identity);
                let (user, domain) = qualified.split_once('@').expect("qualified above");
                self.netsapiens.user(domain, user)
            }
            // A user marked deleted is gone to its lookup, as to every API caller.
            VendorKey::Clienttoolbox => self.clienttoolbox.user(identity).filter(|u| u["deleted"] != true),
        }
    }

    pub fn user_count(&self, vendor: VendorKey) -> usize {
        match vendor {
            VendorKey::Glance => self.glance.user_count(),
            VendorKey::Netsapiens => self.netsapiens.user_count(),
            VendorKey::Clienttoolbox => self.clienttoolbox.user_count(),
        }
    }

    pub fn router(&self) -> Router {
        let ledger = {
            let this = self.clone();
            Router::new().route(
                "/_sandbox/ledger",
                get(move || {
                    let this = this.clone();
                    async move {
                        let users: serde_json::Map<String, serde_json::Value> =
                            VendorKey::ALL.iter().map(|v| (v.to_string(), this.user_count(*v).into())).collect();
                        let hostile: serde_json::Map<String, serde_json::Value> = this
                            .faults
                            .hostile()
                            .served()
                            .into_iter()
                            .map(|(kind, n)| (kind.as_str().to_owned(), n.into()))
                            .collect();
                        Json(serde_json::json!({ "users": users, "hostile_served": hostile }))
                    }
                }),
            )
        };
        let vendors = glance::sandbox::router(self.glance.clone())
            .merge(netsapiens::sandbox::router(self.netsapiens.clone()))
            .merge(clienttoolbox::sandbox::router(self.clienttoolbox.clone()))
            .merge(ledger);
        with_faults(vendors, self.faults.clone())
    }

    /// Binds now (so a taken port fails at once) and serves until `shutdown`.
    pub async fn serve(
        &self,
        listen: SocketAddr,
        shutdown: CancellationToken,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let app = self.router();
        let handle = tokio::spawn(async move {
            crate::http_server::serve(listener, app, SANDBOX_LIMITS, shutdown).await;
        });
        Ok((addr, handle))
    }
}

/// `user@domain`: a bare NetSapiens extension is taken in the sandbox's domain.
fn in_sandbox_domain(identity: &str) -> String {
    if identity.contains('@') {
        identity.to_owned()
    } else {
        format!("{identity}@{}", netsapiens::sandbox::SANDBOX_DOMAIN)
    }
}

/// Wraps vendor routers with the fault layer and adds `GET`/`PUT /_sandbox/faults`.
pub fn with_faults(router: Router, state: FaultState) -> Router {
    let control = Router::new().route("/_sandbox/faults", get(get_faults).put(put_faults)).with_state(state.clone());
    router.merge(control).layer(axum::middleware::from_fn_with_state(state, faults::inject))
}

async fn get_faults(State(state): State<FaultState>) -> Json<Faults> {
    Json(state.get())
}

async fn put_faults(State(state): State<FaultState>, Json(faults): Json<Faults>) -> Json<Faults> {
    state.set(faults);
    Json(state.get())
}

/// An account of `vendor` pointing at a sandbox served at `base` (e.g.
/// `http://127.0.0.1:8700`), with the sandbox's credentials built in.
pub fn account(vendor: VendorKey, base: &str) -> crate::config::AccountSettings {
    use crate::config::{AccountSettings, SecretSource};
    let secret = |s: &str| SecretSource::Value(secrecy::SecretString::from(s.to_owned()));
    let map = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let (base_url, settings, credentials) = match vendor {
        VendorKey::Glance => (
            base.to_owned(),
            map(&[("PartnerLogin", glance::sandbox::SANDBOX_PARTNER_LOGIN), ("PartnerID", "40123")]),
            [("PartnerPW".to_owned(), secret(glance::sandbox::SANDBOX_PARTNER_PW))].into(),
        ),
        VendorKey::Netsapiens => (
            format!("{base}/ns-api/v2"),
            // NetSapiens documents no suspend: a leaver loses the portal (see docs/vendors.md).
            map(&[
                ("domain", netsapiens::sandbox::SANDBOX_DOMAIN),
                ("suspend", r#"{"user-scope": "No Portal"}"#),
                ("restore", r#"{"user-scope": "Basic User"}"#),
            ]),
            [("api_key".to_owned(), secret(netsapiens::sandbox::SANDBOX_API_KEY))].into(),
        ),
        VendorKey::Clienttoolbox => (
            base.to_owned(),
            map(&[
                ("account_id", clienttoolbox::sandbox::SANDBOX_ACCOUNT_ID),
                ("user_id", clienttoolbox::sandbox::SANDBOX_USER_ID),
                // ClientToolbox documents no suspend either: a suspended clerk keeps no campaign.
                ("suspend", r#"{"allowed_campaigns": "none"}"#),
                ("restore", r#"{"allowed_campaigns": "all"}"#),
            ]),
            [("user_password".to_owned(), secret(clienttoolbox::sandbox::SANDBOX_PASSWORD))].into(),
        ),
    };
    AccountSettings {
        vendor,
        base_url: Some(base_url),
        settings,
        credentials,
        rate: None,
        concurrency: None,
        policy: Default::default(),
    }
}

/// What `provisioner sandbox` prints: how to point a local worker at it.
pub fn usage(addr: SocketAddr) -> String {
    let base = format!("http://{addr}");
    format!(
        "vendor sandboxes listening on {base}
  Glance        {base}/PAPI/NewUser.asp, /PAPI/ShowUsers.asp   PartnerLogin {gl}  PartnerPW {gp}  PartnerID 40123
  NetSapiens    {base}/ns-api/v2/domains/{nd}/users            api_key {nk}
  ClientToolbox {base}/api.php                                 account_id {ca}  user_id {cu}  user_password {cp}
  control       GET/PUT {base}/_sandbox/faults, GET {base}/_sandbox/ledger

These are public sandbox credentials, not secrets. For config/development.toml:
  export SANDBOX_GLANCE_PW={gp} SANDBOX_NETSAPIENS_KEY={nk} SANDBOX_CLIENTTOOLBOX_PW={cp}
",
        gl = glance::sandbox::SANDBOX_PARTNER_LOGIN,
        gp = glance::sandbox::SANDBOX_PARTNER_PW,
        nd = netsapiens::sandbox::SANDBOX_DOMAIN,
        nk = netsapiens::sandbox::SANDBOX_API_KEY,
        ca = clienttoolbox::sandbox::SANDBOX_ACCOUNT_ID,
        cu = clienttoolbox::sandbox::SANDBOX_USER_ID,
        cp = clienttoolbox::sandbox::SANDBOX_PASSWORD,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn faults_apply_to_vendor_paths_and_can_be_changed_live() {
        let state = FaultState::new(Faults::default(), 1);
        let base = serve(with_faults(Router::new().route("/api.php", get(|| async { "ok" })), state.clone())).await;
        let http = reqwest::Client::new();
        let status = |path: &'static str| {
            let (http, base) = (http.clone(), base.clone());
            async move { http.get(format!("{base}{path}")).send().await.unwrap().status().as_u16() }
        };
        assert_eq!(status("/api.php").await, 200);

        let put = http
            .put(format!("{base}/_sandbox/faults"))
            .json(&serde_json::json!({"fail_next": 2, "retry_after": "3s"}))
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 200);
        assert_eq!(status("/api.php").await, 503);
        assert_eq!(status("/api.php").await, 503);
        assert_eq!(status("/api.php").await, 200, "only the next two requests fail");

        state.set(Faults { throttle_rate: 1.0, retry_after: std::time::Duration::from_secs(3), ..Faults::default() });
        let r = http.get(format!("{base}/api.php")).send().await.unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "3");

        state.set(Faults { outage: true, ..Faults::default() });
        assert_eq!(status("/api.php").await, 503);
        assert_eq!(status("/_sandbox/faults").await, 200, "the control API is never faulted");
    }

    /// A request that arrived under the old faults and is answered after a forced throttle
    /// was set takes it with the Retry-After set with it, not the old default.
    #[tokio::test]
    async fn a_forced_throttle_answers_its_own_retry_after_to_a_request_already_waiting() {
        use std::time::Duration;
        let state = FaultState::new(Faults { latency: Duration::from_millis(300), ..Faults::default() }, 1);
        let base = serve(with_faults(Router::new().route("/api.php", get(|| async { "ok" })), state.clone())).await;
        let waiting = tokio::spawn(reqwest::get(format!("{base}/api.php")));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while state.requests() == 0 {
            assert!(tokio::time::Instant::now() < deadline, "the request never arrived");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The request is in its latency now, holding the faults it arrived under.
        state.set(Faults { throttle_next: 1, retry_after: Duration::from_secs(3), ..Faults::default() });
        let r = waiting.await.unwrap().unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "3");
    }

    /// Every kind, on every vendor's create: none is a success, none creates a user, and the
    /// token endpoint's lie is a real token.
    #[tokio::test]
    async fn hostile_answers_are_never_a_success_and_create_no_user() {
        use hostile::Kind;
        let sandboxes = Sandboxes::new(Faults { hostile_rate: 1.0, ..Faults::default() }, 3);
        let stop = CancellationToken::new();
        let (addr, _) = sandboxes.serve("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
        let base = format!("http://{addr}");
        // Shorter than a drip's second drop and than the slow Retry-After.
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_millis(300)).build().unwrap();
        let glance = [
            ("PartnerLogin", glance::sandbox::SANDBOX_PARTNER_LOGIN),
            ("PartnerPW", glance::sandbox::SANDBOX_PARTNER_PW),
            ("PartnerUserID", "EMP-1"),
            ("UserAddress", "jdoe.acme.glance.net"),
            ("UserFirst", "Jane"),
            ("UserLast", "Doe"),
            ("UserEmail", "jane.doe@acme.example"),
        ];
        let ctb = [
            ("type", "user_new"),
            ("account_id", clienttoolbox::sandbox::SANDBOX_ACCOUNT_ID),
            ("user_id", clienttoolbox::sandbox::SANDBOX_USER_ID),
            ("user_password", clienttoolbox::sandbox::SANDBOX_PASSWORD),
            ("user_name", "jdoe"),
            ("user_new_password", "S3cure!pass"),
            ("user_first_name", "Jane"),
            ("user_last_name", "Doe"),
            ("user_role", "K"),
            ("allowed_campaigns", "all"),
        ];
        let ns = serde_json::json!({"user": "1042", "name-first-name": "Jane", "name-last-name": "Doe",
                                    "email": "jane.doe@acme.example", "user-scope": "Basic User"});
        let calls = || {
            [
                http.post(format!("{base}/PAPI/NewUser.asp")).form(&glance),
                http.post(format!("{base}/api.php")).form(&ctb),
                http.post(format!("{base}/ns-api/v2/domains/{}/users", netsapiens::sandbox::SANDBOX_DOMAIN))
                    .bearer_auth(netsapiens::sandbox::SANDBOX_API_KEY)
                    .json(&ns),
            ]
        };
        let mut seen = std::collections::BTreeMap::<(String, u16), u32>::new();
        for _ in 0..10 {
            for (vendor, call) in ["glance", "clienttoolbox", "netsapiens"].into_iter().zip(calls()) {
                // A timeout (the drip, the slow Retry-After) is an answer that never came.
                let status = match call.send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(e) if e.is_timeout() => 0,
                    Err(e) => panic!("{vendor}: {e}"),
                };
                *seen.entry((vendor.to_owned(), status)).or_default() += 1;
            }
        }
        for v in VendorKey::ALL {
            assert_eq!(sandboxes.user_count(v), 0, "{v}: a hostile answer created a user");
        }
        let served: std::collections::BTreeMap<Kind, u64> = sandboxes.faults.hostile().served().into_iter().collect();
        for kind in Kind::ALL.into_iter().filter(|k| *k != Kind::TokenExpiresForever) {
            assert_eq!(served[&kind], 3, "{kind:?} once per vendor: {served:?}");
        }
        // 200s carry the documents; the rest are 429/503 with Retry-After, or timeouts.
        assert!(seen.keys().all(|(_, s)| [0, 200, 429, 503].contains(s)), "{seen:?}");

        // The token endpoint: ten other kinds first, then a real token that claims forever.
        let grant = serde_json::json!({"grant_type": "password",
            "client_id": netsapiens::sandbox::SANDBOX_CLIENT_ID, "client_secret": netsapiens::sandbox::SANDBOX_CLIENT_SECRET,
            "username": netsapiens::sandbox::SANDBOX_USERNAME, "password": netsapiens::sandbox::SANDBOX_PASSWORD});
        let token_url = format!("{base}/ns-api/v2/tokens");
        for _ in 0..10 {
            let _ = http.post(&token_url).json(&grant).send().await;
        }
        let token: serde_json::Value = http.post(&token_url).json(&grant).send().await.unwrap().json().await.unwrap();
        assert_eq!(token["expires_in"].to_string(), hostile::FOREVER);
        let user = http
            .get(format!("{base}/ns-api/v2/domains/{}/users/1042", netsapiens::sandbox::SANDBOX_DOMAIN))
            .bearer_auth(token["access_token"].as_str().unwrap());
        sandboxes.faults.set(Faults::default());
        assert_eq!(user.send().await.unwrap().status(), 404, "the token is real: the user is simply not there");

        // The same calls, answered by the vendors, do create the users.
        for call in calls() {
            assert!(call.send().await.unwrap().status().is_success());
        }
        for v in VendorKey::ALL {
            assert_eq!(sandboxes.user_count(v), 1, "{v}: the call the hostile answers replaced was a valid create");
        }
        stop.cancel();
    }

    /// The 80 MiB answers: one declares its length and one is chunked; a client that stops
    /// reading closes them, and the sandbox never holds the body.
    #[tokio::test]
    async fn huge_answers_declare_their_length_or_stream_chunked() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let sandboxes = Sandboxes::new(Faults { hostile_rate: 1.0, ..Faults::default() }, 3);
        let stop = CancellationToken::new();
        let (addr, _) = sandboxes.serve("127.0.0.1:0".parse().unwrap(), stop.clone()).await.unwrap();
        let head = |n: usize| {
            // Skips the rotation to the kind wanted, on ClientToolbox's path.
            async move {
                for _ in 0..n {
                    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                    s.write_all(b"POST /api.php HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n").await.unwrap();
                    let mut buf = [0u8; 256];
                    let _ = s.read(&mut buf).await;
                }
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                s.write_all(b"POST /api.php HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n").await.unwrap();
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap();
                (String::from_utf8_lossy(&buf[..n]).to_lowercase(), s)
            }
        };
        let (with_length, s) = head(2).await;
        assert!(with_length.contains(&format!("content-length: {}", hostile::HUGE_BYTES)), "{with_length}");
        assert_eq!(sandboxes.faults.hostile().streaming(hostile::Kind::HugeBody), 1);
        drop(s);
        let (chunked, s) = head(0).await;
        assert!(chunked.contains("transfer-encoding: chunked"), "{chunked}");
        assert!(!chunked.contains("content-length"), "{chunked}");
        drop(s);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let open = || hostile::Kind::ALL.iter().map(|k| sandboxes.faults.hostile().streaming(*k)).sum::<u64>();
        while open() > 0 {
            assert!(tokio::time::Instant::now() < deadline, "a body outlived its client");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        stop.cancel();
    }
}
