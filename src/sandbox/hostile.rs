//! Hostile answers: what a broken or malicious vendor could send, served by the sandboxes in place of a vendor call's answer, to show the worker stays up and bounded.
//!
//! A hostile answer is never a vendor success. Every kind but one answers without processing
//! the request, so it creates no user; the exception, `token_expires_forever`, issues a real
//! NetSapiens token (creating nothing) and lies only about how long it lives. Which kind
//! answers a request goes in rotation, per surface (Glance, the NetSapiens API, its token
//! endpoint, ClientToolbox), over the kinds that surface can be sent, so every kind is served
//! early and a run is repeatable given the order of requests.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt;

/// How deep the nesting bomb goes: far past any parser's sensible recursion.
pub const NESTING_DEPTH: usize = 100_000;
/// The size of a huge answer. It is streamed from one shared 64 KiB chunk, never held.
pub const HUGE_BYTES: u64 = 80 * 1024 * 1024;
/// A wide document stays just under the default 1 MiB answer cap, so a client reads it
/// whole and has to bound the tree it builds from it.
pub const WIDE_BYTES: usize = 1_000_000;
/// A slow drip sends this every [`DRIP_EVERY`]: a few bytes per second.
pub const DRIP: &[u8] = b"<a>";
pub const DRIP_EVERY: Duration = Duration::from_secs(1);
/// A drip nobody gives up on still ends, so a forgotten connection cannot live forever.
pub const DRIP_FOR: Duration = Duration::from_secs(600);
/// How long a `Retry-After` answer takes to come: slow as well as absurd.
pub const SLOW_ANSWER: Duration = Duration::from_secs(1);
/// `u64::MAX`, as the `Retry-After` seconds and the token's `expires_in`.
pub const FOREVER: &str = "18446744073709551615";

/// One kind of hostile answer. The docs' table (docs/vendors.md, The sandboxes) lists the
/// same kinds under the same names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// 200 with 100,000 nested elements (`<a>` …) or JSON objects (`{"a":` …).
    DeepNesting,
    /// 200 with a shallow document just under 1 MiB holding a quarter of a million elements
    /// or half a million JSON values.
    WideDocument,
    /// 200 with an 80 MiB body and its `Content-Length`.
    HugeBody,
    /// The same 80 MiB, chunked, with no `Content-Length`.
    HugeChunked,
    /// 200 with the start of a document, then three bytes a second until the client gives up.
    SlowDrip,
    /// 429 or 503 (in turn) with `Retry-After: 18446744073709551615`, a second late.
    RetryAfterForever,
    /// 200 with invalid UTF-8 (overlong, surrogate and stray bytes) inside the document.
    InvalidUtf8,
    /// 200 with a billion-laughs DOCTYPE (XML, also where JSON was expected).
    EntityBomb,
    /// 200 with a proxy's HTML error page.
    HtmlErrorPage,
    /// 200 with a success document cut off halfway.
    Truncated,
    /// NetSapiens' token endpoint only: a real token, with `expires_in` 18446744073709551615.
    TokenExpiresForever,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::DeepNesting,
        Kind::WideDocument,
        Kind::HugeBody,
        Kind::HugeChunked,
        Kind::SlowDrip,
        Kind::RetryAfterForever,
        Kind::InvalidUtf8,
        Kind::EntityBomb,
        Kind::HtmlErrorPage,
        Kind::Truncated,
        Kind::TokenExpiresForever,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::DeepNesting => "deep_nesting",
            Kind::WideDocument => "wide_document",
            Kind::HugeBody => "huge_body",
            Kind::HugeChunked => "huge_chunked",
            Kind::SlowDrip => "slow_drip",
            Kind::RetryAfterForever => "retry_after_forever",
            Kind::InvalidUtf8 => "invalid_utf8",
            Kind::EntityBomb => "entity_bomb",
            Kind::HtmlErrorPage => "html_error_page",
            Kind::Truncated => "truncated",
            Kind::TokenExpiresForever => "token_expires_forever",
        }
    }

    fn index(self) -> usize {
        Kind::ALL.iter().position(|k| *k == self).expect("every kind is in ALL")
    }
}

/// Kinds every surface is sent, in rotation order.
const EVERY_SURFACE: [Kind; 10] = [
    Kind::DeepNesting,
    Kind::WideDocument,
    Kind::HugeBody,
    Kind::HugeChunked,
    Kind::SlowDrip,
    Kind::RetryAfterForever,
    Kind::InvalidUtf8,
    Kind::EntityBomb,
    Kind::HtmlErrorPage,
    Kind::Truncated,
];

/// The token endpoint's rotation: every kind, in `Kind::ALL`'s order, which puts the lie about
/// the token's lifetime last, since a client that believes it stops asking for tokens.
const TOKEN_ENDPOINT: [Kind; 11] = Kind::ALL;

/// Which vendor API a request is for, from its path (the vendors' paths do not overlap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Surface {
    Glance,
    Netsapiens,
    NetsapiensToken,
    Clienttoolbox,
}

impl Surface {
    const COUNT: usize = 4;

    fn of(path: &str) -> Self {
        if path.starts_with("/PAPI/") {
            Surface::Glance
        } else if path == "/ns-api/v2/tokens" {
            Surface::NetsapiensToken
        } else if path.starts_with("/ns-api/") {
            Surface::Netsapiens
        } else {
            // `/api.php` and `/`: the adapter asks for XML by default.
            Surface::Clienttoolbox
        }
    }

    fn json(self) -> bool {
        matches!(self, Surface::Netsapiens | Surface::NetsapiensToken)
    }

    fn kinds(self) -> &'static [Kind] {
        match self {
            Surface::NetsapiensToken => &TOKEN_ENDPOINT,
            _ => &EVERY_SURFACE,
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The start of this surface's success document, cut off before it closes.
    fn truncated_success(self) -> &'static str {
        match self {
            Surface::Glance => concat!(
                r#"<?xml version="1.0" standalone="yes"?>"#,
                "\n<NewUser><result>OK</result><user><UserID>100001</UserID><PartnerUserID>EMP-0"
            ),
            Surface::Clienttoolbox => concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?>"#,
                "\n<response status=\"success\">\n  <users>\n    <user><user_name>jd"
            ),
            Surface::Netsapiens => r#"{"domain":"sandbox.example","user":"1042","name-first-name":"Ja"#,
            Surface::NetsapiensToken => {
                r#"{"access_token":"nsa_sandbox_access_9","token_type":"Bearer","expires_in":36"#
            }
        }
    }
}

/// The rotation and what was served: shared by every request of one sandbox server.
#[derive(Debug, Default)]
pub struct HostileState {
    turns: [AtomicUsize; Surface::COUNT],
    served: [AtomicU64; Kind::ALL.len()],
    streaming: Arc<[AtomicU64; Kind::ALL.len()]>,
}

impl HostileState {
    /// How many answers of each kind were served, every kind listed.
    pub fn served(&self) -> Vec<(Kind, u64)> {
        Kind::ALL.iter().map(|k| (*k, self.served[k.index()].load(Ordering::SeqCst))).collect()
    }

    /// Bodies of this kind (huge or dripping) still being sent: a client that reads them is
    /// reading them now.
    pub fn streaming(&self, kind: Kind) -> u64 {
        self.streaming[kind.index()].load(Ordering::SeqCst)
    }

    fn next(&self, surface: Surface) -> (Kind, u64) {
        let kinds = surface.kinds();
        let kind = kinds[self.turns[surface.index()].fetch_add(1, Ordering::SeqCst) % kinds.len()];
        (kind, self.served[kind.index()].fetch_add(1, Ordering::SeqCst))
    }
}

/// Counts a streaming body as open until the body is dropped: sent whole, or abandoned
/// when the client hung up.
struct Streaming(Arc<[AtomicU64; Kind::ALL.len()]>, usize);

impl Streaming {
    fn open(state: &HostileState, kind: Kind) -> Self {
        state.streaming[kind.index()].fetch_add(1, Ordering::SeqCst);
        Self(state.streaming.clone(), kind.index())
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        self.0[self.1].fetch_sub(1, Ordering::SeqCst);
    }
}

const XML_TYPE: &str = "text/xml; charset=utf-8";
const JSON_TYPE: &str = "application/json";

fn respond(status: StatusCode, content_type: &'static str, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Answers `req` with the next hostile kind for its surface. Only `token_expires_forever`
/// runs the vendor's handler.
pub(super) async fn answer(state: &HostileState, req: Request, next: Next) -> Response {
    let surface = Surface::of(req.uri().path());
    let (kind, nth) = state.next(surface);
    let doc_type = if surface.json() { JSON_TYPE } else { XML_TYPE };
    match kind {
        Kind::DeepNesting => respond(StatusCode::OK, doc_type, Body::from(deep_nesting(surface.json()))),
        Kind::WideDocument => respond(StatusCode::OK, doc_type, Body::from(wide_document(surface.json()))),
        Kind::HugeBody | Kind::HugeChunked => {
            let body = Body::from_stream(huge(surface.json(), Streaming::open(state, kind)));
            let mut r = respond(StatusCode::OK, doc_type, body);
            if kind == Kind::HugeBody {
                r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(HUGE_BYTES));
            }
            r
        }
        Kind::SlowDrip => {
            let body = Body::from_stream(drip(surface.json(), Streaming::open(state, kind)));
            respond(StatusCode::OK, doc_type, body)
        }
        Kind::RetryAfterForever => {
            tokio::time::sleep(SLOW_ANSWER).await;
            let status = if nth % 2 == 0 { StatusCode::TOO_MANY_REQUESTS } else { StatusCode::SERVICE_UNAVAILABLE };
            let body = if surface.json() {
                format!(r#"{{"code":{},"message":"come back in {FOREVER} seconds"}}"#, status.as_u16())
            } else {
                format!("<?xml version=\"1.0\"?>\n<error><message>come back in {FOREVER} seconds</message></error>")
            };
            let mut r = respond(status, doc_type, Body::from(body));
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(FOREVER));
            r
        }
        Kind::InvalidUtf8 => respond(StatusCode::OK, doc_type, Body::from(invalid_utf8(surface.json()))),
        Kind::EntityBomb => respond(StatusCode::OK, XML_TYPE, Body::from(entity_bomb())),
        Kind::HtmlErrorPage => respond(StatusCode::OK, "text/html", Body::from(HTML_ERROR_PAGE)),
        Kind::Truncated => respond(StatusCode::OK, doc_type, Body::from(surface.truncated_success())),
        Kind::TokenExpiresForever => token_expires_forever(next.run(req).await).await,
    }
}

fn deep_nesting(json: bool) -> String {
    if json {
        format!("{}0{}", r#"{"a":"#.repeat(NESTING_DEPTH), "}".repeat(NESTING_DEPTH))
    } else {
        format!("<?xml version=\"1.0\"?>\n{}{}", "<a>".repeat(NESTING_DEPTH), "</a>".repeat(NESTING_DEPTH))
    }
}

fn wide_document(json: bool) -> String {
    let (open, item, close) = if json { (r#"{"a":["#, "0,", "0]}") } else { ("<response>", "<a/>", "</response>") };
    let items = (WIDE_BYTES - open.len() - close.len()) / item.len();
    format!("{open}{}{close}", item.repeat(items))
}

/// Overlong, surrogate, out-of-range and stray bytes, where a status or message would be.
/// Read leniently it is a document that says neither success nor failure.
fn invalid_utf8(json: bool) -> Vec<u8> {
    const BAD: &[u8] = b"\xc0\xaf \xed\xa0\x80 \xf8\x88\x80\x80\x80 \xff\xfe \x80";
    let (head, middle, tail): (&[u8], &[u8], &[u8]) = if json {
        (br#"{"code":"#, br#","message":""#, br#""}"#)
    } else {
        (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response status=\"", b"\">", b"</response>")
    };
    [head, BAD, middle, BAD, tail].concat()
}

/// Ten entities of ten references each: a billion `lol`s for a parser that expands them.
fn entity_bomb() -> String {
    let mut doc = String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n  <!ENTITY lol0 \"lol\">\n");
    for level in 1..=9 {
        let refs = format!("&lol{};", level - 1).repeat(10);
        doc.push_str(&format!("  <!ENTITY lol{level} \"{refs}\">\n"));
    }
    doc.push_str("]>\n<lolz>&lol9;</lolz>\n");
    doc
}

/// nginx's own 502 page, as a proxy in front of a vendor would serve it.
const HTML_ERROR_PAGE: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// [`HUGE_BYTES`] of a document whose text never ends, from one shared chunk.
fn huge(json: bool, open: Streaming) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send {
    const CHUNK: usize = 64 * 1024;
    let (head, tail): (&'static [u8], &'static [u8]) =
        if json { (br#"{"padding":""#, br#""}"#) } else { (b"<?xml version=\"1.0\"?>\n<response>", b"</response>") };
    let filler = Bytes::from(vec![b'x'; CHUNK]);
    let fill = HUGE_BYTES as usize - head.len() - tail.len();
    let chunks = std::iter::once(Bytes::from_static(head))
        .chain(std::iter::repeat_n(filler.clone(), fill / CHUNK))
        .chain(std::iter::once(filler.slice(..fill % CHUNK)))
        .chain(std::iter::once(Bytes::from_static(tail)));
    futures_util::stream::iter(chunks).map(move |chunk| {
        let _open = &open;
        Ok(chunk)
    })
}

/// The start of a document, then [`DRIP`] every [`DRIP_EVERY`] for up to [`DRIP_FOR`].
fn drip(json: bool, open: Streaming) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send {
    let head: &'static [u8] = if json { br#"{"users":["# } else { b"<?xml version=\"1.0\"?>\n<response>" };
    let drops = (DRIP_FOR.as_secs() / DRIP_EVERY.as_secs().max(1)) as usize;
    futures_util::stream::once(async move { Ok(Bytes::from_static(head)) }).chain(futures_util::stream::unfold(
        (0usize, open),
        move |(n, open)| async move {
            if n >= drops {
                return None;
            }
            tokio::time::sleep(DRIP_EVERY).await;
            Some((Ok(Bytes::from_static(DRIP)), (n + 1, open)))
        },
    ))
}

/// The vendor's token answer with `expires_in` replaced by [`FOREVER`]; a refused grant is
/// passed through as it is.
async fn token_expires_forever(issued: Response) -> Response {
    if issued.status() != StatusCode::OK {
        return issued;
    }
    let (parts, body) = issued.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return respond(StatusCode::INTERNAL_SERVER_ERROR, JSON_TYPE, Body::from(r#"{"code":500}"#));
    };
    let mut token: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if let Some(obj) = token.as_object_mut() {
        obj.insert("expires_in".into(), serde_json::Value::from(u64::MAX));
    }
    let mut r = Response::from_parts(parts, Body::from(token.to_string()));
    r.headers_mut().remove(header::CONTENT_LENGTH);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_their_vendor() {
        assert_eq!(Surface::of("/PAPI/NewUser.asp"), Surface::Glance);
        assert_eq!(Surface::of("/PAPI/ShowUsers.asp"), Surface::Glance);
        assert_eq!(Surface::of("/ns-api/v2/tokens"), Surface::NetsapiensToken);
        assert_eq!(Surface::of("/ns-api/v2/domains/sandbox.example/users"), Surface::Netsapiens);
        assert_eq!(Surface::of("/api.php"), Surface::Clienttoolbox);
        assert_eq!(Surface::of("/"), Surface::Clienttoolbox);
    }

    #[test]
    fn each_surface_rotates_over_its_kinds() {
        let state = HostileState::default();
        let glance: Vec<Kind> = (0..EVERY_SURFACE.len()).map(|_| state.next(Surface::Glance).0).collect();
        assert_eq!(glance, EVERY_SURFACE);
        assert_eq!(state.next(Surface::Glance).0, EVERY_SURFACE[0], "the rotation starts over");
        let token: Vec<Kind> = (0..TOKEN_ENDPOINT.len()).map(|_| state.next(Surface::NetsapiensToken).0).collect();
        assert_eq!(token.last(), Some(&Kind::TokenExpiresForever));
        assert!(!EVERY_SURFACE.contains(&Kind::TokenExpiresForever), "only a token endpoint is sent a token");
        let served: u64 = state.served().iter().map(|(_, n)| n).sum();
        assert_eq!(served as usize, EVERY_SURFACE.len() + 1 + TOKEN_ENDPOINT.len());
    }

    #[test]
    fn documents_are_what_they_claim() {
        for json in [false, true] {
            let deep = deep_nesting(json);
            assert!(deep.len() < 1024 * 1024, "under the default cap, so a client parses it");
            assert_eq!(deep.matches(if json { "{" } else { "<a>" }).count(), NESTING_DEPTH);
            let wide = wide_document(json);
            assert!(wide.len() <= WIDE_BYTES && wide.len() > WIDE_BYTES - 8, "{}", wide.len());
            assert!(std::str::from_utf8(&invalid_utf8(json)).is_err());
        }
        assert!(serde_json::from_str::<serde_json::Value>(&wide_document(true)).is_ok(), "wide JSON is valid JSON");
        let bomb = entity_bomb();
        assert_eq!(bomb.matches("<!ENTITY").count(), 10);
        assert!(bomb.contains("&lol8;&lol8;"));
        for surface in [Surface::Glance, Surface::Netsapiens, Surface::NetsapiensToken, Surface::Clienttoolbox] {
            let doc = surface.truncated_success();
            if surface.json() {
                assert!(serde_json::from_str::<serde_json::Value>(doc).is_err(), "{doc}");
            } else {
                assert!(!doc.trim_end().ends_with('>'), "{doc}");
            }
        }
    }

    #[tokio::test]
    async fn a_huge_body_is_streamed_to_its_exact_length_and_a_drip_is_slow() {
        let state = HostileState::default();
        let mut total = 0u64;
        let mut chunks = 0usize;
        let mut stream = Box::pin(huge(false, Streaming::open(&state, Kind::HugeChunked)));
        while let Some(Ok(c)) = stream.next().await {
            total += c.len() as u64;
            chunks += 1;
            assert!(c.len() <= 64 * 1024, "no chunk is larger than the shared filler");
        }
        assert_eq!(total, HUGE_BYTES);
        assert!(chunks > 1000);
        drop(stream);
        assert_eq!(state.streaming(Kind::HugeChunked), 0, "the stream closes its count when dropped");

        tokio::time::pause();
        let mut drip = std::pin::pin!(drip(true, Streaming::open(&state, Kind::SlowDrip)));
        assert_eq!(drip.next().await.unwrap().unwrap(), Bytes::from_static(br#"{"users":["#));
        let before = tokio::time::Instant::now();
        assert_eq!(drip.next().await.unwrap().unwrap(), Bytes::from_static(DRIP));
        assert!(before.elapsed() >= DRIP_EVERY, "a drop comes a second after the last");
        assert_eq!(state.streaming(Kind::SlowDrip), 1);
    }
}
