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
pub fn client(settings: &VendorSettings) -> Client {
    let inner = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.request_timeout)
        .user_agent(concat!("provisioner/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a rustls client with timeouts always builds");
    Client { inner, max_response_bytes: settings.max_response_bytes }
}

/// An account's pooled HTTP client, and how much of an answer it reads.
#[derive(Clone, Debug)]
pub struct Client {
    inner: reqwest::Client,
    /// `vendors.<vendor>.max_response_bytes`: an answer is never read past this, so a broken
    /// or hostile vendor can cost a transient failure, never the process's memory.
    max_response_bytes: usize,
}

/// Credentials travel to vendors in headers and bodies, so a base URL must be `https`.
/// Plain `http` is allowed only for a loopback host (a sandbox on this machine) or when
/// the account sets `settings.allow_http = true` (a sandbox on another host).
pub fn require_https(url: &reqwest::Url, allow_http: bool) -> Result<(), String> {
    let loopback = crate::config::is_loopback_host(url.host_str().unwrap_or_default());
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback || allow_http => Ok(()),
        "http" => Err("must be https: credentials would travel in clear; set settings.allow_http = true for a sandbox on another host".into()),
        other => Err(format!("unsupported scheme {other}; expected https")),
    }
}

/// `settings.allow_http` of an account: `true` or `false` (the default).
pub fn allow_http(settings: &std::collections::BTreeMap<String, String>) -> Result<bool, String> {
    match settings.get("allow_http").map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if matches!(v.as_str(), "true" | "yes" | "1") => Ok(true),
        Some(v) if matches!(v.as_str(), "false" | "no" | "0") => Ok(false),
        Some(_) => Err("must be true or false".into()),
    }
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
    pub fn request(&self, client: &Client, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let client = &client.inner;
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

/// How deep an answer's elements may nest. Vendors' documents are a few levels deep; the
/// limit keeps a hostile one from driving any recursion, the tree's drop included.
pub const MAX_ANSWER_DEPTH: usize = 64;
/// How many elements (or JSON values) an answer may hold once read into a tree.
pub const MAX_ANSWER_NODES: usize = 10_000;

/// Counts the elements of one answer as it is read into a tree, refusing it once it nests
/// deeper than [`MAX_ANSWER_DEPTH`] or holds more than [`MAX_ANSWER_NODES`].
#[derive(Debug, Default)]
pub struct TreeBudget {
    depth: usize,
    nodes: usize,
}

impl TreeBudget {
    /// An element opens (an empty one opens and closes).
    pub fn open(&mut self) -> Result<(), String> {
        self.depth += 1;
        self.nodes += 1;
        if self.depth > MAX_ANSWER_DEPTH {
            return Err(format!("the answer nests deeper than {MAX_ANSWER_DEPTH} elements"));
        }
        if self.nodes > MAX_ANSWER_NODES {
            return Err(format!("the answer has more than {MAX_ANSWER_NODES} elements"));
        }
        Ok(())
    }

    pub fn close(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }
}

/// Checks a JSON answer against the same budget as [`TreeBudget`] before anything is built
/// from it: serde_json spends a 32-byte `Value` on every value (and a map entry on every
/// key), so a 1 MiB answer of `[0,0,…]` costs over 16 MiB per call in flight before it could
/// be counted. The scan counts every object and array, and every `,` and `:` outside
/// strings, which is at least as many as the values; it allocates nothing.
pub fn json_within_budget(body: &[u8]) -> Result<(), String> {
    let mut budget = TreeBudget::default();
    let (mut in_string, mut escaped) = (false, false);
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => budget.open()?,
            b'}' | b']' => budget.close(),
            b',' | b':' => {
                budget.open()?;
                budget.close();
            }
            _ => {}
        }
    }
    Ok(())
}

/// The code of an answer this service would not read: over the size cap, or not text.
pub const UNREADABLE_ANSWER: &str = "unreadable_answer";

impl Client {
    /// Sends one call and reads its answer as bytes, up to `max_response_bytes`. A failure
    /// below HTTP, or while the body is read, is a classified transient error naming no
    /// URL; so is a larger answer (`unreadable_answer`): the vendor may be broken, and a
    /// later try may find it mended.
    pub async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<Exchange<Vec<u8>>, VendorError> {
        let mut response = request.send().await.map_err(|e| transport_error(&e))?;
        let (status, headers) = (response.status(), response.headers().clone());
        let cap = self.max_response_bytes;
        let over = |size: String| {
            VendorError::new(
                VendorFailure::Transient,
                UNREADABLE_ANSWER,
                format!(
                    "the answer is {size} bytes, over vendors.<vendor>.max_response_bytes = {cap}; it was not read"
                ),
            )
        };
        // A declared length over the cap is refused before a byte of the body is read.
        if let Some(declared) = response.content_length().filter(|&n| n > cap as u64) {
            return Err(over(declared.to_string()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(&e))? {
            if body.len() + chunk.len() > cap {
                return Err(over(format!("more than {cap}")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Exchange { status, headers, body })
    }

    /// [`Client::exchange`], with the body read as UTF-8 text; invalid sequences become
    /// U+FFFD rather than an error, so a legacy page's stray byte cannot fail the call.
    pub async fn exchange_text(&self, request: reqwest::RequestBuilder) -> Result<Exchange<String>, VendorError> {
        let Exchange { status, headers, body } = self.exchange(request).await?;
        Ok(Exchange { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
    }
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

/// The longest `Retry-After` this service believes: a vendor's (or an impostor's) "come
/// back in 584 billion years" is read as an hour, so no arithmetic on it can overflow. The
/// rate limiter then caps the pause it takes at `rate_limit.max_pause`.
pub const RETRY_AFTER_CEILING: Duration = Duration::from_secs(3600);

/// Reads `Retry-After` as delta-seconds or an HTTP date in any of RFC 9110's three forms
/// (IMF-fixdate, RFC 850, asctime), clamped to [`RETRY_AFTER_CEILING`]; a date in the past
/// means now. Anything else is ignored.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = if value.bytes().all(|b| b.is_ascii_digit()) && !value.is_empty() {
        // Digits beyond u64 are as good as "forever".
        value.parse::<u64>().map_or(RETRY_AFTER_CEILING, Duration::from_secs)
    } else {
        let when = httpdate::parse_http_date(value).ok()?;
        when.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(RETRY_AFTER_CEILING))
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn capped(max_response_bytes: usize) -> Client {
        client(&VendorSettings { max_response_bytes, ..VendorSettings::default() })
    }

    #[tokio::test]
    async fn an_answer_over_the_cap_is_a_transient_unreadable_answer() {
        use wiremock::{matchers::any, Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'x'; 2048]))
            .mount(&server)
            .await;
        let c = capped(1024);
        let e = c.exchange(c.inner.get(server.uri())).await.unwrap_err();
        assert_eq!((e.failure, e.code.as_str()), (VendorFailure::Transient, UNREADABLE_ANSWER));
        assert!(e.message.contains("max_response_bytes = 1024"), "{}", e.message);
        let ok = capped(2048).exchange(c.inner.get(server.uri())).await.unwrap();
        assert_eq!(ok.body.len(), 2048, "an answer at the cap is read whole");
    }

    /// A chunked answer declares no length: the cap must stop the read itself, long before
    /// the (endless) body ends.
    #[tokio::test]
    async fn a_chunked_answer_is_cut_off_at_the_cap() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = sent.clone();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = s.read(&mut request).await;
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").await;
            let chunk = format!("{:x}\r\n{}\r\n", 4096, "y".repeat(4096));
            // 64 MiB if nobody stops reading.
            for _ in 0..16_384 {
                if s.write_all(chunk.as_bytes()).await.is_err() {
                    break;
                }
                counter.fetch_add(4096, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let c = capped(64 * 1024);
        let e = c.exchange(c.inner.get(format!("http://{addr}/"))).await.unwrap_err();
        assert_eq!(e.code, UNREADABLE_ANSWER);
        assert!(sent.load(std::sync::atomic::Ordering::Relaxed) < 32 * 1024 * 1024, "the whole body was read");
    }

    #[test]
    fn retry_after_reads_every_http_date_form_and_clamps_what_overflows() {
        let at = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, v.parse().unwrap());
            retry_after(&h)
        };
        let later = std::time::SystemTime::now() + Duration::from_secs(120);
        let imf = httpdate::fmt_http_date(later);
        for form in [
            imf.clone(),
            // RFC 850 and asctime spell the same instant differently.
            chrono::DateTime::<chrono::Utc>::from(later).format("%A, %d-%b-%y %H:%M:%S GMT").to_string(),
            chrono::DateTime::<chrono::Utc>::from(later).format("%a %b %e %H:%M:%S %Y").to_string(),
        ] {
            let wait = at(&form).unwrap_or_else(|| panic!("{form} not read"));
            assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120), "{form}: {wait:?}");
        }
        assert_eq!(at("18446744073709551615"), Some(RETRY_AFTER_CEILING));
        assert_eq!(at("99999999999999999999999999"), Some(RETRY_AFTER_CEILING));
        assert_eq!(at("Fri, 31 Dec 9999 23:59:59 GMT"), Some(RETRY_AFTER_CEILING));
        assert_eq!(at("-5"), None);
        assert_eq!(at("soon"), None);
    }

    #[test]
    fn the_tree_budget_refuses_depth_and_breadth() {
        let mut deep = TreeBudget::default();
        for _ in 0..MAX_ANSWER_DEPTH {
            deep.open().unwrap();
        }
        assert!(deep.open().unwrap_err().contains("deeper"));
        let mut wide = TreeBudget::default();
        for _ in 0..MAX_ANSWER_NODES {
            wide.open().unwrap();
            wide.close();
        }
        assert!(wide.open().unwrap_err().contains("more than"));
    }

    /// Found by the hostile suite: a flat 1 MB JSON answer took tens of MiB to parse, per
    /// call in flight, before its values could be counted.
    #[test]
    fn the_json_budget_is_checked_before_parsing() {
        let wide = format!("{{\"a\":[{}0]}}", "0,".repeat(20_000));
        assert!(json_within_budget(wide.as_bytes()).unwrap_err().contains("more than 10000"));
        let deep = format!("{}0{}", "[".repeat(MAX_ANSWER_DEPTH + 1), "]".repeat(MAX_ANSWER_DEPTH + 1));
        assert!(json_within_budget(deep.as_bytes()).unwrap_err().contains("deeper than 64"));
        let fine = format!("{}0{}", "[".repeat(MAX_ANSWER_DEPTH), "]".repeat(MAX_ANSWER_DEPTH));
        assert!(json_within_budget(fine.as_bytes()).is_ok());
        // Brackets, commas and colons inside strings (escaped quotes included) are text.
        let text = format!(r#"{{"message":"{}\" ,:[{{"}}"#, "[,:{".repeat(20_000));
        assert!(json_within_budget(text.as_bytes()).is_ok());
        let user = r#"{"user":"1042","name-first-name":"Jane","email":"jane@acme.example","area-code":858}"#;
        assert!(json_within_budget(user.as_bytes()).is_ok());
    }

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
        let client = client(&VendorSettings::default());
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
        let err = client(&settings).inner.get("http://127.0.0.1:9/secret?PartnerPW=hunter2").send().await.unwrap_err();
        let v = transport_error(&err);
        assert_eq!(v.failure, VendorFailure::Transient);
        assert_eq!(v.code, "connect");
        assert!(!v.message.contains("hunter2"), "{}", v.message);
    }
}
