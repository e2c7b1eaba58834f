//! Who may post hires: the intake's credentials, as it keeps and compares them, and which
//! tenants each admits.
//!
//! No comparison leaks a secret's content or length: a bearer token is compared as the
//! SHA-256 of what was sent against the SHA-256 of the configured one, and a signature as
//! a 32-byte HMAC-SHA256, both with `subtle`, so every comparison is of 32 bytes whatever
//! the request sent.
//!
//! The global credential (`intake.token`, `intake.hmac_secret`) admits every tenant; a
//! tenant's own (`tenants.<name>.intake_token`, `intake_hmac_secret`) admits only that
//! tenant's hires. Requests name no tenant outside the body, so the body's top-level `tenant`
//! is read first, without building the document, only to try that tenant's credential
//! before the others. Whose hire it is, is decided on the decoded hire (`Caller::admits`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;

use axum::http::{header, HeaderMap};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::replay::{ReplayCache, Seen};
use super::signature::{legacy_mac, Signature, Timestamped};
use crate::config::{ConfigError, SecretSource, Settings};

/// The shortest intake secret accepted, in bytes: HMAC-SHA256's own key size, and out of
/// reach of guessing.
pub const MIN_SECRET_BYTES: usize = 32;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-signature";

/// Resolves an intake secret, refusing one shorter than [`MIN_SECRET_BYTES`]; the error names
/// the key, never the secret.
pub(super) fn resolve(source: &SecretSource, key: &str) -> Result<SecretString, ConfigError> {
    let secret = source.resolve(key)?;
    if secret.expose_secret().len() < MIN_SECRET_BYTES {
        return Err(ConfigError::Invalid {
            key: key.to_owned(),
            message: format!(
                "the secret is shorter than {MIN_SECRET_BYTES} bytes; use at least {MIN_SECRET_BYTES} random bytes, e.g. `openssl rand -hex 32`"
            ),
        });
    }
    Ok(secret)
}

/// What a bearer token is compared as: its SHA-256, 32 bytes whatever its length.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct TokenDigest([u8; 32]);

impl TokenDigest {
    fn of(token: &[u8]) -> Self {
        Self(Sha256::digest(token).into())
    }

    fn matches(&self, given: &str) -> bool {
        bool::from(Self::of(given.as_bytes()).0.ct_eq(&self.0))
    }
}

/// One set of intake secrets: a bearer token, an HMAC key, or both.
pub(super) struct Credential {
    token: Option<TokenDigest>,
    /// Keyed once; each signature check works on a clone.
    hmac: Option<Hmac<Sha256>>,
}

impl Credential {
    fn new(token: Option<&SecretString>, hmac: Option<&SecretString>) -> Self {
        Self {
            token: token.map(|t| TokenDigest::of(t.expose_secret().as_bytes())),
            hmac: hmac.map(|k| Hmac::new_from_slice(k.expose_secret().as_bytes()).expect("HMAC takes any key")),
        }
    }

    fn is_empty(&self) -> bool {
        self.token.is_none() && self.hmac.is_none()
    }

    fn bearer(&self, given: &str) -> bool {
        self.token.is_some_and(|t| t.matches(given))
    }

    /// The MAC that verified, for the replay cache.
    fn timestamped(&self, signature: &Timestamped, body: &[u8]) -> Option<[u8; 32]> {
        self.hmac.as_ref().and_then(|key| signature.verify(key, body))
    }

    fn legacy(&self, sent: &[u8; 32], body: &[u8]) -> bool {
        self.hmac.as_ref().is_some_and(|key| bool::from(legacy_mac(key, body).ct_eq(sent)))
    }
}

/// Whose credential a request proved it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Caller<'a> {
    /// `intake.token` / `intake.hmac_secret`: every tenant.
    Global,
    /// `tenants.<name>.intake_*`: that tenant only.
    Tenant(&'a str),
}

impl Caller<'_> {
    /// Whether this caller may post a hire of `tenant`.
    pub(super) fn admits(&self, tenant: &str) -> bool {
        match self {
            Caller::Global => true,
            Caller::Tenant(own) => *own == tenant,
        }
    }
}

impl fmt::Display for Caller<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Global => f.write_str("global"),
            Caller::Tenant(name) => write!(f, "tenant {name}"),
        }
    }
}

/// Why a request is not admitted.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// No credential, a wrong one, or a malformed signature: the caller is not told which.
    Unauthorized,
    /// A signature whose timestamp is outside the tolerance.
    Expired,
    /// A signature already accepted once within its window.
    Replayed,
    /// The replay cache is full of signatures still in their window.
    Busy { retry_after: u64 },
}

/// The intake's door: its credentials, the signature rules and the replay cache.
pub(super) struct Gate {
    global: Credential,
    tenants: BTreeMap<String, Credential>,
    tolerance_secs: u64,
    accept_legacy: bool,
    replay: Mutex<ReplayCache>,
}

impl Gate {
    /// Resolves every intake secret now, so a missing or weak one stops start-up; no two
    /// credentials may share a secret, or a request could not tell whose it is.
    pub(super) fn new(settings: &Settings) -> Result<Self, ConfigError> {
        let intake = &settings.intake;
        let mut fingerprints = HashMap::new();
        let mut credential =
            |owner: &str, token: Option<(&SecretSource, String)>, hmac: Option<(&SecretSource, String)>| {
                let mut resolved = [None, None];
                for (slot, secret) in resolved.iter_mut().zip([token, hmac]) {
                    let Some((source, key)) = secret else { continue };
                    let value = resolve(source, &key)?;
                    let fingerprint = TokenDigest::of(value.expose_secret().as_bytes());
                    match fingerprints.insert(fingerprint, (owner.to_owned(), key.clone())) {
                        Some((other_owner, other_key)) if other_owner != owner => {
                            return Err(ConfigError::Invalid {
                                key,
                                message: format!(
                                    "the same secret as {other_key}; every tenant's intake credential must be its own"
                                ),
                            })
                        }
                        _ => {}
                    }
                    *slot = Some(value);
                }
                Ok::<_, ConfigError>(Credential::new(resolved[0].as_ref(), resolved[1].as_ref()))
            };
        let global = credential(
            "",
            intake.token.as_ref().map(|s| (s, "intake.token".to_owned())),
            intake.hmac_secret.as_ref().map(|s| (s, "intake.hmac_secret".to_owned())),
        )?;
        let mut tenants = BTreeMap::new();
        for (name, t) in &settings.tenants {
            let own = credential(
                name,
                t.intake_token.as_ref().map(|s| (s, format!("tenants.{name}.intake_token"))),
                t.intake_hmac_secret.as_ref().map(|s| (s, format!("tenants.{name}.intake_hmac_secret"))),
            )?;
            if !own.is_empty() {
                tenants.insert(name.clone(), own);
            }
        }
        if global.is_empty() && tenants.is_empty() {
            return Err(ConfigError::Invalid {
                key: "intake.token".into(),
                message: "set intake.token or intake.hmac_secret, or a tenant's intake_token or intake_hmac_secret: the intake never runs unauthenticated".into(),
            });
        }
        let any_hmac = global.hmac.is_some() || tenants.values().any(|c| c.hmac.is_some());
        if intake.accept_legacy_signatures && any_hmac {
            tracing::warn!(
                "intake.accept_legacy_signatures is on: body-only `X-Signature: sha256=` signatures are accepted, and each can be replayed forever; turn it off once every integration sends `t=…,v1=…`"
            );
        }
        Ok(Self {
            global,
            tenants,
            tolerance_secs: intake.signature_tolerance.as_secs(),
            accept_legacy: intake.accept_legacy_signatures,
            replay: Mutex::new(ReplayCache::new(intake.replay_cache_size)),
        })
    }

    pub(super) fn tolerance_secs(&self) -> u64 {
        self.tolerance_secs
    }

    /// Whose credential the request proves it holds, `now` being the server's clock in unix
    /// seconds. A bearer token is tried first, then the signature; an accepted timestamped
    /// signature is recorded, so the same one is refused for the rest of its window.
    ///
    /// The credentials are tried in this order: the tenant the body names, the global one,
    /// then every other tenant's, so that another tenant's credential is recognised (and its
    /// hire refused as that tenant's, 403) rather than called unknown. A wrong signature thus
    /// costs one HMAC of the body (at most `intake.max_body_bytes`) per configured key.
    pub(super) fn admit(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<Caller<'_>, Refusal> {
        let claimed = if self.tenants.is_empty() { None } else { claimed_tenant(body) };
        let claimed = claimed.as_deref().and_then(|name| self.tenants.get_key_value(name));
        let candidates = || {
            let first = claimed.map(|(name, c)| (Caller::Tenant(name.as_str()), c));
            let others = self
                .tenants
                .iter()
                .filter(move |(name, _)| claimed.is_none_or(|(own, _)| own != *name))
                .map(|(name, c)| (Caller::Tenant(name.as_str()), c));
            first.into_iter().chain([(Caller::Global, &self.global)]).chain(others)
        };
        if let Some(given) = bearer(headers) {
            if let Some((caller, _)) = candidates().find(|(_, c)| c.bearer(given)) {
                return Ok(caller);
            }
        }
        let mut values = headers.get_all(SIGNATURE_HEADER).iter();
        let header = match (values.next(), values.next()) {
            (Some(one), None) => one.to_str().map_err(|_| Refusal::Unauthorized)?,
            _ => return Err(Refusal::Unauthorized),
        };
        let signature = Signature::parse(header).map_err(|e| {
            tracing::debug!(error = %e, "hire intake: signature refused");
            Refusal::Unauthorized
        })?;
        match signature {
            Signature::Legacy(sent) if self.accept_legacy => {
                candidates().find(|(_, c)| c.legacy(&sent, body)).map(|(caller, _)| caller).ok_or(Refusal::Unauthorized)
            }
            Signature::Legacy(_) => Err(Refusal::Unauthorized),
            Signature::Timestamped(signature) => {
                if !signature.is_within(now, self.tolerance_secs) {
                    return Err(Refusal::Expired);
                }
                let (caller, mac) = candidates()
                    .find_map(|(caller, c)| c.timestamped(&signature, body).map(|mac| (caller, mac)))
                    .ok_or(Refusal::Unauthorized)?;
                let until = signature.t.saturating_add_unsigned(self.tolerance_secs);
                match self.replay.lock().expect("the replay cache never panics").record(mac, until, now) {
                    Seen::First => Ok(caller),
                    Seen::Again => Err(Refusal::Replayed),
                    Seen::Full { retry_after } => Err(Refusal::Busy { retry_after }),
                }
            }
        }
    }
}

/// The token of `Authorization: Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The top-level `tenant` string of a JSON object body, read with every other value skipped
/// unbuilt: only to choose which credential to try first. A repeated key counts as the hire
/// decoder counts it, the last one winning; anything unexpected is `None`.
fn claimed_tenant(body: &[u8]) -> Option<String> {
    struct Claim(Option<String>);

    struct TopLevel;

    impl<'de> Visitor<'de> for TopLevel {
        type Value = Claim;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claim, A::Error> {
            let mut tenant = None;
            while let Some(key) = map.next_key::<String>()? {
                if key == "tenant" {
                    tenant = Some(map.next_value::<String>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(Claim(tenant))
        }
    }

    impl<'de> Deserialize<'de> for Claim {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(TopLevel)
        }
    }

    serde_json::from_slice::<Claim>(body).ok().and_then(|c| c.0)
}

#[cfg(test)]
pub(super) mod testing {
    /// A secret of exactly [`MIN_SECRET_BYTES`], distinct per `name`.
    pub(crate) fn secret(name: &str) -> String {
        format!("{name:-<32}")
    }
}

#[cfg(test)]
mod tests {
    use super::testing::secret;
    use super::*;

    const NOW: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"event_id":"e","tenant":"acme"}"#;

    fn value(secret: &str) -> Option<SecretSource> {
        Some(SecretSource::Value(secret.to_owned().into()))
    }

    fn gate_with(tweak: impl FnOnce(&mut Settings)) -> Gate {
        let mut settings = Settings::default();
        settings.intake.token = value(&secret("t0ken"));
        settings.intake.hmac_secret = value(&secret("shh"));
        tweak(&mut settings);
        Gate::new(&settings).unwrap()
    }

    fn gate() -> Gate {
        gate_with(|_| {})
    }

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    fn mac(key: &str, t: i64, body: &[u8]) -> String {
        let key = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        hex::encode(super::super::signature::timestamped_mac(&key, &t.to_string(), body))
    }

    /// The documented header: `t=<t>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>`.
    fn signed(key: &str, t: i64, body: &[u8]) -> HeaderMap {
        with("x-signature", &format!("t={t},v1={}", mac(key, t, body)))
    }

    fn legacy(key: &str, body: &[u8]) -> HeaderMap {
        let key = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        with("x-signature", &format!("sha256={}", hex::encode(legacy_mac(&key, body))))
    }

    #[test]
    fn a_bearer_token_or_a_timestamped_signature_admits_and_nothing_else_does() {
        let g = gate();
        let (token, key) = (secret("t0ken"), secret("shh"));
        assert_eq!(g.admit(&with("authorization", &format!("Bearer {token}")), BODY, NOW), Ok(Caller::Global));
        for refused in [
            with("authorization", &format!("Bearer {}", &token[..31])),
            with("authorization", &format!("Bearer {token}x")),
            with("authorization", &token),
            HeaderMap::new(),
            signed(&secret("other"), NOW, BODY),
        ] {
            assert_eq!(g.admit(&refused, BODY, NOW), Err(Refusal::Unauthorized), "{refused:?}");
        }
        assert_eq!(g.admit(&signed(&key, NOW, BODY), BODY, NOW), Ok(Caller::Global));
        assert_eq!(g.admit(&signed(&key, NOW, BODY), br#"{"event_id":"f"}"#, NOW), Err(Refusal::Unauthorized));
        let token_only = gate_with(|s| s.intake.hmac_secret = None);
        assert_eq!(token_only.admit(&signed(&key, NOW, BODY), BODY, NOW), Err(Refusal::Unauthorized));
    }

    #[test]
    fn a_timestamp_outside_the_tolerance_either_way_is_refused_as_expired() {
        let (g, key) = (gate(), secret("shh"));
        assert_eq!(g.tolerance_secs(), 300, "5 minutes by default");
        assert_eq!(g.admit(&signed(&key, NOW - 301, BODY), BODY, NOW), Err(Refusal::Expired), "stale");
        assert_eq!(g.admit(&signed(&key, NOW + 301, BODY), BODY, NOW), Err(Refusal::Expired), "from the future");
        assert_eq!(g.admit(&signed(&key, NOW - 300, BODY), BODY, NOW), Ok(Caller::Global), "at the edge");
        assert_eq!(g.admit(&signed(&key, NOW + 300, BODY), BODY, NOW), Ok(Caller::Global), "at the other edge");
        let tight = gate_with(|s| s.intake.signature_tolerance = std::time::Duration::from_secs(30));
        assert_eq!(tight.admit(&signed(&key, NOW - 31, BODY), BODY, NOW), Err(Refusal::Expired));
        assert_eq!(tight.admit(&signed(&key, NOW - 30, BODY), BODY, NOW), Ok(Caller::Global));
    }

    #[test]
    fn the_same_signature_is_refused_for_the_rest_of_its_window() {
        let (g, key) = (gate(), secret("shh"));
        let first = signed(&key, NOW, BODY);
        assert_eq!(g.admit(&first, BODY, NOW), Ok(Caller::Global));
        assert_eq!(g.admit(&first, BODY, NOW), Err(Refusal::Replayed));
        assert_eq!(g.admit(&first, BODY, NOW + 300), Err(Refusal::Replayed), "the last second of its window");
        assert_eq!(g.admit(&first, BODY, NOW + 301), Err(Refusal::Expired), "then the timestamp refuses it");
        // The same v1 among other values, in another order, is the same signature.
        let shuffled = with("x-signature", &format!("v1={},t={NOW},v1={}", "0".repeat(64), mac(&key, NOW, BODY)));
        assert_eq!(g.admit(&shuffled, BODY, NOW + 1), Err(Refusal::Replayed));
        // A retry signed anew (a later timestamp) is a new signature.
        assert_eq!(g.admit(&signed(&key, NOW + 1, BODY), BODY, NOW + 1), Ok(Caller::Global));
        let other = br#"{"event_id":"e2","tenant":"acme"}"#;
        assert_eq!(
            g.admit(&signed(&key, NOW, other), other, NOW),
            Ok(Caller::Global),
            "another body in the same second"
        );
        // A bearer token is not a signature: it may be sent again.
        let bearer = with("authorization", &format!("Bearer {}", secret("t0ken")));
        assert_eq!(g.admit(&bearer, BODY, NOW), Ok(Caller::Global));
        assert_eq!(g.admit(&bearer, BODY, NOW), Ok(Caller::Global));
    }

    #[test]
    fn during_a_key_rotation_any_one_valid_v1_value_passes() {
        let (old, new) = (secret("old"), secret("new"));
        let both = with("x-signature", &format!("t={NOW},v1={},v1={}", mac(&old, NOW, BODY), mac(&new, NOW, BODY)));
        let before = gate_with(|s| s.intake.hmac_secret = value(&old));
        let after = gate_with(|s| s.intake.hmac_secret = value(&new));
        assert_eq!(before.admit(&both, BODY, NOW), Ok(Caller::Global), "the server still on the old key");
        assert_eq!(after.admit(&both, BODY, NOW), Ok(Caller::Global), "the server on the new key");
        let neither = with("x-signature", &format!("t={NOW},v1={},v1={}", mac(&old, NOW, BODY), "ab".repeat(32)));
        assert_eq!(after.admit(&neither, BODY, NOW), Err(Refusal::Unauthorized));
    }

    #[test]
    fn a_malformed_signature_header_is_unauthorized_and_no_more_is_said() {
        let (g, key) = (gate(), secret("shh"));
        let good = mac(&key, NOW, BODY);
        for header in [
            format!("v1={good}"),
            format!("t={NOW}"),
            format!("t={NOW},v1={}", &good[..63]),
            format!("t={NOW}.0,v1={good}"),
            format!("t={NOW} v1={good}"),
            format!("t=-{NOW},v1={good}"),
            "garbage".into(),
        ] {
            assert_eq!(g.admit(&with("x-signature", &header), BODY, NOW), Err(Refusal::Unauthorized), "{header}");
        }
        let mut two = signed(&key, NOW, BODY);
        two.append("x-signature", format!("t={NOW},v1={}", "0".repeat(64)).parse().unwrap());
        assert_eq!(g.admit(&two, BODY, NOW), Err(Refusal::Unauthorized), "two X-Signature headers");
    }

    #[test]
    fn the_legacy_body_only_form_is_refused_unless_explicitly_accepted() {
        let key = secret("shh");
        assert_eq!(gate().admit(&legacy(&key, BODY), BODY, NOW), Err(Refusal::Unauthorized));
        let opted_in = gate_with(|s| s.intake.accept_legacy_signatures = true);
        assert_eq!(opted_in.admit(&legacy(&key, BODY), BODY, NOW), Ok(Caller::Global));
        assert_eq!(opted_in.admit(&legacy(&secret("other"), BODY), BODY, NOW), Err(Refusal::Unauthorized));
        assert_eq!(opted_in.admit(&signed(&key, NOW, BODY), BODY, NOW), Ok(Caller::Global), "the new form still works");
    }

    #[test]
    fn a_full_replay_cache_refuses_new_signatures_until_one_expires() {
        let (g, key) = (gate_with(|s| s.intake.replay_cache_size = 1), secret("shh"));
        assert_eq!(g.admit(&signed(&key, NOW, BODY), BODY, NOW), Ok(Caller::Global));
        assert_eq!(g.admit(&signed(&key, NOW + 1, BODY), BODY, NOW), Err(Refusal::Busy { retry_after: 301 }));
        assert_eq!(g.admit(&signed(&key, NOW + 301, BODY), BODY, NOW + 301), Ok(Caller::Global));
    }

    /// Global secrets, and tenants `acme` and `beta` with their own.
    fn tenants_gate(tweak: impl FnOnce(&mut Settings)) -> Gate {
        gate_with(|s| {
            for name in ["acme", "beta"] {
                let tenant = s.tenants.entry(name.to_owned()).or_default();
                tenant.intake_token = value(&secret(&format!("{name}-token")));
                tenant.intake_hmac_secret = value(&secret(&format!("{name}-hmac")));
            }
            tweak(s);
        })
    }

    fn hire_of(tenant: &str) -> Vec<u8> {
        format!(r#"{{"event_id":"e","tenant":"{tenant}","employee":{{"id":"1"}}}}"#).into_bytes()
    }

    #[test]
    fn a_tenant_credential_is_recognised_as_that_tenant_and_admits_only_its_hires() {
        let g = tenants_gate(|_| {});
        let (acme, beta) = (hire_of("acme"), hire_of("beta"));
        let acme_token = with("authorization", &format!("Bearer {}", secret("acme-token")));
        assert_eq!(g.admit(&acme_token, &acme, NOW), Ok(Caller::Tenant("acme")), "its own hire");
        // Another tenant's hire: still recognised as acme's credential, so the intake can
        // answer 403 naming both rather than a bare 401.
        assert_eq!(g.admit(&acme_token, &beta, NOW), Ok(Caller::Tenant("acme")));
        assert_eq!(g.admit(&acme_token, b"not json", NOW), Ok(Caller::Tenant("acme")));
        let beta_signed = signed(&secret("beta-hmac"), NOW, &acme);
        assert_eq!(g.admit(&beta_signed, &acme, NOW), Ok(Caller::Tenant("beta")));
        let global = with("authorization", &format!("Bearer {}", secret("t0ken")));
        assert_eq!(g.admit(&global, &beta, NOW), Ok(Caller::Global));
        assert_eq!(g.admit(&signed(&secret("shh"), NOW, &beta), &beta, NOW), Ok(Caller::Global));
        let unknown = with("authorization", &format!("Bearer {}", secret("gamma-token")));
        assert_eq!(g.admit(&unknown, &beta, NOW), Err(Refusal::Unauthorized));

        assert!(Caller::Tenant("acme").admits("acme"));
        assert!(!Caller::Tenant("acme").admits("beta"));
        assert!(!Caller::Tenant("acme").admits("acme2"));
        assert!(Caller::Global.admits("acme") && Caller::Global.admits("beta"));
    }

    #[test]
    fn tenant_credentials_alone_are_enough() {
        let g = tenants_gate(|s| (s.intake.token, s.intake.hmac_secret) = (None, None));
        let acme = hire_of("acme");
        assert_eq!(g.admit(&signed(&secret("acme-hmac"), NOW, &acme), &acme, NOW), Ok(Caller::Tenant("acme")));
        let none = Gate::new(&Settings::default()).err().unwrap().to_string();
        assert!(none.contains("never runs unauthenticated"), "{none}");
    }

    #[test]
    fn a_tenant_secret_must_be_strong_and_its_own() {
        let weak = |s: &mut Settings| {
            s.tenants.entry("acme".into()).or_default().intake_hmac_secret = value("short");
        };
        let mut settings = Settings::default();
        weak(&mut settings);
        let err = Gate::new(&settings).err().unwrap().to_string();
        assert!(err.contains("tenants.acme.intake_hmac_secret") && err.contains("32 bytes"), "{err}");

        let mut settings = Settings::default();
        settings.intake.token = value(&secret("shared"));
        settings.tenants.entry("acme".into()).or_default().intake_hmac_secret = value(&secret("shared"));
        let err = Gate::new(&settings).err().unwrap().to_string();
        assert!(err.contains("tenants.acme.intake_hmac_secret") && err.contains("intake.token"), "{err}");
        assert!(!err.contains(&secret("shared")), "{err}");
        // One credential may use one secret for both forms: it is the same holder.
        let mut settings = Settings::default();
        settings.intake.token = value(&secret("same"));
        settings.intake.hmac_secret = value(&secret("same"));
        assert!(Gate::new(&settings).is_ok());
    }

    #[test]
    fn the_claimed_tenant_is_the_top_level_one_read_as_the_decoder_reads_it() {
        assert_eq!(claimed_tenant(&hire_of("acme")).as_deref(), Some("acme"));
        assert_eq!(claimed_tenant(br#"{"employee":{"tenant":"beta"},"tenant":"acme"}"#).as_deref(), Some("acme"));
        assert_eq!(claimed_tenant(br#"{"tenant":"beta","tenant":"acme"}"#).as_deref(), Some("acme"), "last wins");
        assert_eq!(claimed_tenant(br#"{"ten\u0061nt":"acme"}"#).as_deref(), Some("acme"), "escaped key");
        for body in
            [&br#"{"employee":{"tenant":"beta"}}"#[..], br#"{"tenant":7}"#, b"[]", b"{", b"", br#"{"tenant":"acme"} x"#]
        {
            assert_eq!(claimed_tenant(body), None, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn a_token_is_compared_as_a_fixed_size_digest_whatever_was_sent() {
        let token = secret("t0ken");
        let digest = TokenDigest::of(token.as_bytes());
        // Shorter, longer, empty and prefixed guesses all become 32 bytes before the
        // comparison, so none of them returns earlier than a full-length wrong guess.
        for given in ["", "t", &token[..31], &format!("{token}x"), &"x".repeat(4096)] {
            assert_eq!(TokenDigest::of(given.as_bytes()).0.len(), 32);
            assert!(!digest.matches(given), "{given:?}");
        }
        assert!(digest.matches(&token));
    }

    #[test]
    fn a_secret_shorter_than_32_bytes_is_refused_naming_its_key_and_not_the_secret() {
        let weak = "0123456789abcdef0123456789abcde"; // 31 bytes
        let err = resolve(&SecretSource::Value(weak.to_owned().into()), "intake.hmac_secret").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("intake.hmac_secret") && text.contains("32 bytes"), "{text}");
        assert!(!text.contains(weak), "{text}");
        let ok = format!("{weak}f");
        assert!(resolve(&SecretSource::Value(ok.into()), "intake.token").is_ok(), "exactly 32 bytes is enough");
    }
}
