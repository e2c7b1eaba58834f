//! Who may post hires: the intake's secrets, as it keeps and compares them.
//!
//! No comparison leaks a secret's content or length: a bearer token is compared as the
//! SHA-256 of what was sent against the SHA-256 of the configured one, and a signature as
//! a 32-byte HMAC-SHA256, both with `subtle`, so every comparison is of 32 bytes whatever
//! the request sent.

use axum::http::{header, HeaderMap};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ConfigError, SecretSource};

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
#[derive(Clone, Copy)]
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
    /// Resolves both secrets, each named by its key in errors.
    pub(super) fn resolve(
        token: Option<(&SecretSource, &str)>,
        hmac: Option<(&SecretSource, &str)>,
    ) -> Result<Self, ConfigError> {
        let token = token.map(|(s, key)| resolve(s, key)).transpose()?;
        let hmac = hmac.map(|(s, key)| resolve(s, key)).transpose()?;
        Ok(Self::new(token.as_ref(), hmac.as_ref()))
    }

    fn new(token: Option<&SecretString>, hmac: Option<&SecretString>) -> Self {
        Self {
            token: token.map(|t| TokenDigest::of(t.expose_secret().as_bytes())),
            hmac: hmac.map(|k| Hmac::new_from_slice(k.expose_secret().as_bytes()).expect("HMAC takes any key")),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.token.is_none() && self.hmac.is_none()
    }

    /// Whether the request proves it knows this credential's secret.
    pub(super) fn authenticated(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if let (Some(given), Some(token)) = (bearer, &self.token) {
            if token.matches(given) {
                return true;
            }
        }
        let signature = headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().strip_prefix("sha256="))
            .and_then(|hex_sig| hex::decode(hex_sig).ok())
            .and_then(|sig| <[u8; 32]>::try_from(sig).ok());
        if let (Some(sig), Some(key)) = (signature, &self.hmac) {
            let mut mac = key.clone();
            mac.update(body);
            let computed: [u8; 32] = mac.finalize().into_bytes().into();
            return bool::from(computed.ct_eq(&sig));
        }
        false
    }
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

    fn credential() -> Credential {
        Credential::new(Some(&secret("t0ken").into()), Some(&secret("shh").into()))
    }

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn a_bearer_token_or_a_signature_authenticates_and_nothing_else_does() {
        let c = credential();
        let (token, key) = (secret("t0ken"), secret("shh"));
        let body = br#"{"event_id":"e"}"#;
        assert!(c.authenticated(&with("authorization", &format!("Bearer {token}")), body));
        assert!(!c.authenticated(&with("authorization", &format!("Bearer {}", &token[..31])), body));
        assert!(!c.authenticated(&with("authorization", &token), body));
        assert!(!c.authenticated(&HeaderMap::new(), body));
        assert!(c.authenticated(&with("x-signature", &sign(&key, body)), body));
        assert!(!c.authenticated(&with("x-signature", &sign(&key, body)), b"{\"event_id\":\"f\"}"), "body changed");
        assert!(!c.authenticated(&with("x-signature", &sign(&secret("other"), body)), body));
        assert!(!c.authenticated(&with("x-signature", "sha256=zz"), body));
        let token_only = Credential::new(Some(&token.clone().into()), None);
        assert!(!token_only.authenticated(&with("x-signature", &sign(&key, body)), body));
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
