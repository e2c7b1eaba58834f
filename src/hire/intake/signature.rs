//! The `X-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
//!
//! The timestamp is signed with the body, so a captured request stops working once it falls
//! outside the tolerance, and the replay cache refuses it within. Several `v1=` values may
//! be sent (one per key while a secret is rotated); any one valid one passes. Parts of other
//! names are ignored, so a later scheme can be added beside `v1`.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

/// `v1=` values one header may carry.
pub(super) const MAX_V1: usize = 8;
/// Comma-separated parts one header may have, of any name.
const MAX_PARTS: usize = 16;
/// Digits of a timestamp: unix seconds for the next thirty thousand years.
const MAX_TIMESTAMP_DIGITS: usize = 12;

/// A parsed `X-Signature` header.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Signature {
    Timestamped(Timestamped),
    /// The body-only `sha256=<hex>` of earlier versions, which can be replayed forever;
    /// accepted only with `intake.accept_legacy_signatures`.
    Legacy([u8; 32]),
}

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Timestamped {
    /// The timestamp as sent, which is what was signed (leading zeros and all).
    signed: String,
    /// Its value, unix seconds.
    pub(super) t: i64,
    pub(super) v1: Vec<[u8; 32]>,
}

/// Why a header is not a signature; for the debug log, never for the caller.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed X-Signature: {0}")]
pub(super) struct Malformed(&'static str);

impl Signature {
    pub(super) fn parse(header: &str) -> Result<Self, Malformed> {
        let header = header.trim();
        if let Some(hex) = header.strip_prefix("sha256=") {
            return mac_of_hex(hex).map(Signature::Legacy);
        }
        let mut timestamp = None;
        let mut v1 = Vec::new();
        for (i, part) in header.split(',').enumerate() {
            if i == MAX_PARTS {
                return Err(Malformed("too many parts"));
            }
            let (name, value) = part.trim().split_once('=').ok_or(Malformed("a part is not name=value"))?;
            match name {
                "t" if timestamp.is_some() => return Err(Malformed("two timestamps")),
                "t" => {
                    let digits = !value.is_empty()
                        && value.len() <= MAX_TIMESTAMP_DIGITS
                        && value.bytes().all(|b| b.is_ascii_digit());
                    let t = value.parse::<i64>().ok().filter(|_| digits).ok_or(Malformed("t is not unix seconds"))?;
                    timestamp = Some((value.to_owned(), t));
                }
                "v1" if v1.len() == MAX_V1 => return Err(Malformed("too many v1 values")),
                "v1" => v1.push(mac_of_hex(value)?),
                _ => {}
            }
        }
        let (signed, t) = timestamp.ok_or(Malformed("no t="))?;
        if v1.is_empty() {
            return Err(Malformed("no v1="));
        }
        Ok(Signature::Timestamped(Timestamped { signed, t, v1 }))
    }
}

impl Timestamped {
    /// Whether the timestamp is within `tolerance_secs` of `now`, either way.
    pub(super) fn is_within(&self, now: i64, tolerance_secs: u64) -> bool {
        self.t.abs_diff(now) <= tolerance_secs
    }

    /// HMAC-SHA256 of `"<t>.<body>"` under `key`, when one of the `v1` values is it.
    /// Every value is compared, in constant time.
    pub(super) fn verify(&self, key: &Hmac<Sha256>, body: &[u8]) -> Option<[u8; 32]> {
        let mac = timestamped_mac(key, &self.signed, body);
        let any = self.v1.iter().fold(Choice::from(0), |any, v| any | v.ct_eq(&mac));
        bool::from(any).then_some(mac)
    }
}

/// HMAC-SHA256 of `"<t>.<body>"`: what a `v1=` value is.
pub(super) fn timestamped_mac(key: &Hmac<Sha256>, t: &str, body: &[u8]) -> [u8; 32] {
    let mut mac = key.clone();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA256 of the body alone: what a legacy `sha256=` value is.
pub(super) fn legacy_mac(key: &Hmac<Sha256>, body: &[u8]) -> [u8; 32] {
    let mut mac = key.clone();
    mac.update(body);
    mac.finalize().into_bytes().into()
}

fn mac_of_hex(hex: &str) -> Result<[u8; 32], Malformed> {
    let mut mac = [0; 32];
    if hex.len() != 64 || hex::decode_to_slice(hex, &mut mac).is_err() {
        return Err(Malformed("a signature is not 64 hex digits"));
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

    fn timestamped(header: &str) -> Timestamped {
        match Signature::parse(header) {
            Ok(Signature::Timestamped(t)) => t,
            other => panic!("{header}: {other:?}"),
        }
    }

    #[test]
    fn a_timestamp_and_one_or_more_v1_values_parse() {
        let s = timestamped(&format!("t=1700000000,v1={A}"));
        assert_eq!((s.t, s.signed.as_str(), s.v1.len()), (1_700_000_000, "1700000000", 1));
        let s = timestamped(&format!(" v1={A} , t=01700000000 ,v1={B},v0=ignored,scheme2=x "));
        assert_eq!((s.t, s.signed.as_str()), (1_700_000_000, "01700000000"), "the signed text is kept as sent");
        assert_eq!(s.v1, [[0xaa; 32], [0xbb; 32]]);
    }

    #[test]
    fn malformed_headers_are_refused() {
        let many = vec![format!("v1={A}"); MAX_V1 + 1].join(",");
        let parts = vec!["x=1"; MAX_PARTS].join(",");
        for header in [
            String::new(),
            "t=1700000000".into(),
            format!("v1={A}"),
            format!("t=,v1={A}"),
            format!("t=-5,v1={A}"),
            format!("t=+5,v1={A}"),
            format!("t=17e8,v1={A}"),
            format!("t=1700000000000,v1={A}"),
            format!("t=1,t=2,v1={A}"),
            format!("t=1700000000,v1={}", &A[1..]),
            format!("t=1700000000,v1={A}a"),
            format!("t=1700000000,v1={}", "zz".repeat(32)),
            format!("t=1700000000;v1={A}"),
            format!("t=1700000000,{many}"),
            format!("t=1700000000,v1={A},{parts}"),
            "sha256=zz".into(),
            format!("sha256={}", &A[2..]),
        ] {
            assert!(Signature::parse(&header).is_err(), "{header}");
        }
    }

    #[test]
    fn the_legacy_form_parses_as_legacy() {
        assert_eq!(Signature::parse(&format!("sha256={A}")), Ok(Signature::Legacy([0xaa; 32])));
    }

    #[test]
    fn the_tolerance_holds_both_ways_and_includes_its_bound() {
        let s = timestamped(&format!("t=1000,v1={A}"));
        assert!(s.is_within(1000, 300));
        assert!(s.is_within(1300, 300) && s.is_within(700, 300));
        assert!(!s.is_within(1301, 300), "stale");
        assert!(!s.is_within(699, 300), "from the future");
    }

    #[test]
    fn any_one_matching_v1_value_verifies() {
        let key = Hmac::<Sha256>::new_from_slice(b"k").unwrap();
        let mac = hex::encode(timestamped_mac(&key, "1000", b"body"));
        for header in [format!("t=1000,v1={mac}"), format!("t=1000,v1={A},v1={mac}"), format!("t=1000,v1={mac},v1={A}")]
        {
            assert!(timestamped(&header).verify(&key, b"body").is_some(), "{header}");
        }
        assert_eq!(timestamped(&format!("t=1000,v1={mac}")).verify(&key, b"body!"), None, "another body");
        assert_eq!(timestamped(&format!("t=1001,v1={mac}")).verify(&key, b"body"), None, "another timestamp");
        assert_eq!(timestamped(&format!("t=01000,v1={mac}")).verify(&key, b"body"), None, "signed as sent");
        let other = Hmac::<Sha256>::new_from_slice(b"other").unwrap();
        assert_eq!(timestamped(&format!("t=1000,v1={mac}")).verify(&other, b"body"), None, "another key");
    }
}
