//! HTTP plumbing shared by the vendor adapters: one pooled client per account, and the
//! vendor-neutral reading of transport failures and `Retry-After`.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::{Receipt, VendorError, VendorFailure};
use crate::config::VendorSettings;

/// A pooled rustls client with the vendor's connect and total timeouts. Build one per account
/// and keep it: connections are reused across jobs.
///
/// Redirects are never followed: a 307/308 would re-send a body full of credentials to
/// another host, a 301/302 would turn the POST into a body-less GET whose answer the adapter
/// would misread, and custom auth headers survive cross-host hops. An adapter sees the 3xx
/// and reports it as a configuration problem instead.
pub fn client(settings: &VendorSettings) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.request_timeout)
        .user_agent(concat!("provisioner/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a rustls client with timeouts always builds")
}

/// An account's base URL, parsed once when its adapter is built: appending a path to a parsed
/// base parses only the path, where parsing the whole URL text again, host included, cost
/// about 2 % of a job's instructions.
#[derive(Clone, Debug)]
pub struct BaseUrl {
    raw: String,
    /// `None` for a base that does not parse, ends in `/`, or has a query or fragment: it is
    /// sent as text, and reqwest reads (or refuses) it on every call, as before.
    parsed: Option<reqwest::Url>,
}

impl BaseUrl {
    pub fn new(raw: &str) -> Self {
        let parsed = reqwest::Url::parse(raw)
            .ok()
            .filter(|u| !raw.ends_with('/') && !u.cannot_be_a_base() && u.query().is_none() && u.fragment().is_none());
        Self { raw: raw.to_owned(), parsed }
    }

    /// A request to the base followed by `path`, the same URL as `format!("{base}{path}")`.
    pub fn request(&self, client: &reqwest::Client, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        match &self.parsed {
            Some(base) if path.starts_with('/') && !path.contains(['?', '#']) => {
                let mut url = base.clone();
                // A base without a path parses to `/`, which the path replaces.
                let prefix = if base.path() == "/" { "" } else { base.path() };
                url.set_path(&format!("{prefix}{path}"));
                client.request(method, url)
            }
            _ => client.request(method, format!("{}{path}", self.raw)),
        }
    }
}

/// One answer, read whole: what every adapter's `interpret_*` functions are given.
#[derive(Debug)]
pub struct Exchange<B> {
    pub status: reqwest::StatusCode,
    pub headers: HeaderMap,
    pub body: B,
}

/// Sends one call and reads its whole answer as bytes. A failure below HTTP, or while the
/// body is read, is a classified transient error naming no URL.
pub async fn exchange(request: reqwest::RequestBuilder) -> Result<Exchange<Vec<u8>>, VendorError> {
    let (status, headers, response) = start(request).await?;
    let body = response.bytes().await.map_err(|e| transport_error(&e))?.to_vec();
    Ok(Exchange { status, headers, body })
}

/// [`exchange`], with the body decoded as text in the charset the answer declares (UTF-8
/// when it declares none): a legacy server may answer in ISO-8859-1.
pub async fn exchange_text(request: reqwest::RequestBuilder) -> Result<Exchange<String>, VendorError> {
    let (status, headers, response) = start(request).await?;
    let body = response.text().await.map_err(|e| transport_error(&e))?;
    Ok(Exchange { status, headers, body })
}

async fn start(
    request: reqwest::RequestBuilder,
) -> Result<(reqwest::StatusCode, HeaderMap, reqwest::Response), VendorError> {
    let response = request.send().await.map_err(|e| transport_error(&e))?;
    Ok((response.status(), response.headers().clone(), response))
}

/// A failure below HTTP (connect, TLS, timeout, reset) is transient. The message never
/// includes the URL: query strings may carry credentials.
pub fn transport_error(e: &reqwest::Error) -> VendorError {
    let code = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "transport"
    };
    let mut source: &dyn std::error::Error = e;
    let mut message = String::from("request failed");
    // The innermost cause says what happened (e.g. "connection refused"); the outer ones
    // repeat the URL.
    while let Some(inner) = source.source() {
        source = inner;
        message = inner.to_string();
    }
    VendorError::new(VendorFailure::Transient, code, message)
}

/// Reads `Retry-After` as delta-seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// Replaces every secret with `***` wherever vendor text may echo it: as sent, form-encoded
/// (`+` for spaces) and percent-encoded. Text that was cut short before it got here may end
/// in the first characters of a secret; those are masked too, so no prefix of a credential
/// survives a truncation.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 3) {
        let form: String =
            serde_urlencoded::to_string([("", secret)]).unwrap_or_default().trim_start_matches('=').to_owned();
        let percent = form.replace('+', "%20");
        for spelling in [secret.to_string(), form, percent] {
            if !spelling.is_empty() {
                out = out.replace(&spelling, crate::contract::REDACTED);
            }
        }
        let (body, ellipsis) = match out.strip_suffix('…') {
            Some(b) => (b.to_owned(), "…"),
            None => (out.clone(), ""),
        };
        let cut =
            (3..secret.len()).rev().filter(|k| secret.is_char_boundary(*k)).find(|k| body.ends_with(&secret[..*k]));
        if let Some(k) = cut {
            out = format!("{}{}{ellipsis}", &body[..body.len() - k], crate::contract::REDACTED);
        }
    }
    out
}

/// [`scrub`] applied to an error's message, the only vendor text an error carries.
pub fn scrub_error(mut e: VendorError, secrets: &[&str]) -> VendorError {
    e.message = scrub(&e.message, secrets);
    e
}

/// [`scrub`] applied to every string a receipt carries: its details may copy vendor text.
pub fn scrub_receipt(mut r: Receipt, secrets: &[&str]) -> Receipt {
    r.details.values_mut().for_each(|v| scrub_value(v, secrets));
    r.vendor_user_id = r.vendor_user_id.map(|v| scrub(&v, secrets));
    r
}

fn scrub_value(v: &mut serde_json::Value, secrets: &[&str]) {
    match v {
        serde_json::Value::String(s) => *s = scrub(s, secrets),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|i| scrub_value(i, secrets)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|i| scrub_value(i, secrets)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_masks_raw_encoded_and_truncated_secrets() {
        let secret = "p@ss w0rd/$1";
        let sent = serde_urlencoded::to_string([("PartnerPW", secret)]).unwrap();
        let echoed = format!("bad login: {sent} and {secret} and p%40ss%20w0rd%2F%241");
        let shown = scrub(&echoed, &[secret]);
        assert!(!shown.contains("w0rd"), "{shown}");
        assert_eq!(scrub("cut at p@ss w…", &[secret]), "cut at ***…");
        assert_eq!(scrub("nothing here", &[secret]), "nothing here");
        assert_eq!(scrub("ab", &["ab"]), "ab", "too short to be told apart from text");
    }

    #[test]
    fn a_parsed_base_gives_the_url_the_text_did() {
        let client = reqwest::Client::new();
        let bases = [
            "http://127.0.0.1:8700",
            "https://www.glance.net",
            "https://PBX.Example.com:443/ns-api/v2",
            "https://pbx.example.com/a b/ns-api",
            "https://bücher.example/api",
            "https://pbx.example.com/",
            "https://pbx.example.com/x?tenant=1",
            "https://",
            "not a url",
        ];
        let paths = ["/PAPI/NewUser.asp", "/domains/acme.example/users/1042", "/api.php", "/a%20b/c d", "/q?x=1", ""];
        for base in bases {
            for path in paths {
                let built = BaseUrl::new(base).request(&client, reqwest::Method::POST, path).build();
                let expected = reqwest::Url::parse(&format!("{base}{path}"));
                match (built, expected) {
                    (Ok(req), Ok(url)) => assert_eq!(req.url(), &url, "{base} + {path}"),
                    (Err(_), Err(_)) => {}
                    (built, expected) => panic!("{base} + {path}: {built:?} vs {expected:?}"),
                }
            }
        }
        assert!(BaseUrl::new("http://127.0.0.1:8700").parsed.is_some(), "the usual base takes the fast path");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a date in the past means now");
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[tokio::test]
    async fn connection_refused_is_transient_and_names_no_url() {
        let settings = VendorSettings::default();
        let err = client(&settings).get("http://127.0.0.1:9/secret?PartnerPW=hunter2").send().await.unwrap_err();
        let v = transport_error(&err);
        assert_eq!(v.failure, VendorFailure::Transient);
        assert_eq!(v.code, "connect");
        assert!(!v.message.contains("hunter2"), "{}", v.message);
    }
}
