//! Property tests: random valid requests and responses (RFC 9110/9112 tokens, targets, field
//! values; bodies with Content-Length or chunked with random chunk sizes; pipelined), written
//! with weir's own encoders, decode back to what was encoded; and the same bytes fed in random
//! pieces decode to exactly the same events as when fed whole.

mod common;

use common::{Client, Ev, Outcome, Server, run};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use weir_http1::{
    BodyKind, Bytes, CRLF, Header, Headers, LAST_CHUNK, Limits, Request, RequestDecoder,
    RequestHead, Response, ResponseHead, Version, chunk_header, encode_request_head,
    encode_response_head, reason_phrase,
};

/// 256 cases per property keeps the whole file to a few seconds in a debug build.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

// ---- generators ----------------------------------------------------------------------------

const TCHAR: &[u8] =
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// pchar less pct-encoded (RFC 3986): unreserved, sub-delims, ":" and "@".
const PCHAR: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@";
const REG_NAME: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-.";
/// Header names the generator must not produce at random: they change framing or the
/// connection, and are added on purpose instead.
const FRAMING: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "expect",
];

fn token(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(select(TCHAR), 1..=max)
}

fn header_name() -> impl Strategy<Value = Vec<u8>> {
    token(16).prop_filter("framing header", |n| {
        !FRAMING.iter().any(|f| n.eq_ignore_ascii_case(f.as_bytes()))
    })
}

/// A field value as a decoder hands it back: VCHAR and obs-text, with SP and HTAB only inside.
fn field_value() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        8 => 0x21u8..=0x7e,
        1 => 0x80u8..=0xff,
        1 => select(&b" \t"[..]),
    ];
    prop::collection::vec(byte, 0..40).prop_map(|v| {
        let start = v.iter().position(|&b| b != b' ' && b != b'\t');
        let end = v.iter().rposition(|&b| b != b' ' && b != b'\t');
        match (start, end) {
            (Some(s), Some(e)) => v[s..=e].to_vec(),
            _ => Vec::new(),
        }
    })
}

fn fields() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    prop::collection::vec((header_name(), field_value()), 0..8)
}

fn segment() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        8 => select(PCHAR).prop_map(|b| vec![b]),
        1 => (0u8..=255).prop_map(|b| format!("%{b:02X}").into_bytes()),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|p| p.concat())
}

/// `/seg/seg?query`.
fn origin_form() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(segment(), 1..4),
        prop::option::of(prop::collection::vec(
            prop_oneof![segment(), Just(b"/".to_vec()), Just(b"?".to_vec())],
            0..4,
        )),
    )
        .prop_map(|(segments, query)| {
            let mut t = Vec::new();
            for s in segments {
                t.push(b'/');
                t.extend(s);
            }
            if let Some(q) = query {
                t.push(b'?');
                t.extend(q.concat());
            }
            t
        })
}

/// `host[:port]`: a reg-name, an IPv4 address or an IPv6 literal.
fn authority() -> impl Strategy<Value = Vec<u8>> {
    let host = prop_oneof![
        4 => prop::collection::vec(select(REG_NAME), 1..20),
        1 => any::<[u8; 4]>()
            .prop_map(|a| format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]).into_bytes()),
        1 => Just(b"[::1]".to_vec()),
        1 => Just(b"[2001:db8::7%25eth0]".to_vec()),
    ];
    (host, prop::option::of(any::<u16>())).prop_map(|(mut h, port)| {
        if let Some(p) = port {
            h.extend(format!(":{p}").into_bytes());
        }
        h
    })
}

/// A body and how it is framed. Chunked bodies are a list of chunks (never empty ones).
#[derive(Clone, Debug)]
enum Body {
    /// No body and no framing header.
    None,
    /// `Content-Length: 0`.
    Zero,
    Length(Vec<u8>),
    Chunked(Vec<Vec<u8>>),
    /// Until the connection closes (responses only; the last message).
    Close(Vec<u8>),
}

impl Body {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Body::None | Body::Zero => Vec::new(),
            Body::Length(b) | Body::Close(b) => b.clone(),
            Body::Chunked(chunks) => chunks.concat(),
        }
    }

    fn kind(&self) -> BodyKind {
        match self {
            Body::None | Body::Zero => BodyKind::Empty,
            Body::Length(b) => BodyKind::Length(b.len() as u64),
            Body::Chunked(_) => BodyKind::Chunked,
            Body::Close(_) => BodyKind::CloseDelimited,
        }
    }

    /// The framing header the head carries (chunked is added by the encoder itself).
    fn framing_header(&self) -> Option<Header> {
        let n = match self {
            Body::Zero => 0,
            Body::Length(b) => b.len(),
            _ => return None,
        };
        Some(Header {
            name: Bytes::from_static(b"Content-Length"),
            value: Bytes::from(n.to_string()),
        })
    }

    /// The body on the wire, chunked with weir's chunk framing.
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Body::None | Body::Zero => {}
            Body::Length(b) | Body::Close(b) => out.extend_from_slice(b),
            Body::Chunked(chunks) => {
                for c in chunks {
                    out.extend_from_slice(&chunk_header(c.len()));
                    out.extend_from_slice(c);
                    out.extend_from_slice(CRLF);
                }
                out.extend_from_slice(LAST_CHUNK);
            }
        }
    }
}

fn body(chunked_allowed: bool, close_allowed: bool) -> impl Strategy<Value = Body> {
    let data = || prop::collection::vec(any::<u8>(), 1..200);
    let chunks = prop::collection::vec(prop::collection::vec(any::<u8>(), 1..64), 0..6);
    prop_oneof![
        Just(Body::None),
        Just(Body::Zero),
        data().prop_map(Body::Length),
        chunks.prop_map(Body::Chunked),
        data().prop_map(Body::Close),
    ]
    .prop_map(move |b| match b {
        Body::Chunked(c) if !chunked_allowed => Body::Length(c.concat()).non_empty(),
        Body::Close(d) if !close_allowed => Body::Length(d),
        b => b,
    })
}

impl Body {
    fn non_empty(self) -> Body {
        match self {
            Body::Length(b) if b.is_empty() => Body::None,
            b => b,
        }
    }
}

/// `Connection` as sent: absent, `close` or `keep-alive`.
#[derive(Clone, Copy, Debug)]
enum Conn {
    Absent,
    Close,
    KeepAlive,
}

fn conn() -> impl Strategy<Value = Conn> {
    prop_oneof![Just(Conn::Absent), Just(Conn::Close), Just(Conn::KeepAlive)]
}

impl Conn {
    fn header(self) -> Option<Header> {
        let value: &'static [u8] = match self {
            Conn::Absent => return None,
            Conn::Close => b"close",
            Conn::KeepAlive => b"keep-alive",
        };
        Some(Header {
            name: Bytes::from_static(b"Connection"),
            value: Bytes::from_static(value),
        })
    }

    fn keep_alive(self, version: Version) -> bool {
        // HTTP/1.1 persists unless told to close; HTTP/1.0 only when told to keep alive.
        !matches!(
            (self, version),
            (Conn::Close, _) | (Conn::Absent, Version::Http10)
        )
    }
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![1 => Just(Version::Http10), 4 => Just(Version::Http11)]
}

fn to_headers(fields: &[(Vec<u8>, Vec<u8>)]) -> Headers {
    fields
        .iter()
        .map(|(n, v)| Header {
            name: Bytes::from(n.clone()),
            value: Bytes::from(v.clone()),
        })
        .collect()
}

// ---- requests --------------------------------------------------------------------------------

/// What these properties check of a decoded [`Request`] (all of it but flags they don't set up).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rq {
    head: RequestHead,
    body: BodyKind,
    keep_alive: bool,
    expect_continue: bool,
}

impl From<&Request> for Rq {
    fn from(r: &Request) -> Self {
        Rq {
            head: r.head.clone(),
            body: r.body,
            keep_alive: r.keep_alive,
            expect_continue: r.expect_continue,
        }
    }
}

/// What these properties check of a decoded [`Response`].
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rs {
    head: ResponseHead,
    body: BodyKind,
    keep_alive: bool,
}

impl From<&Response> for Rs {
    fn from(r: &Response) -> Self {
        Rs {
            head: r.head.clone(),
            body: r.body,
            keep_alive: r.keep_alive,
        }
    }
}

fn project<H, P: for<'a> From<&'a H>>(events: &[Ev<H>]) -> Vec<Ev<P>> {
    events
        .iter()
        .map(|e| match e {
            Ev::Head(h) => Ev::Head(P::from(h)),
            Ev::Data(d) => Ev::Data(d.clone()),
            Ev::End => Ev::End,
        })
        .collect()
}

/// A request as encoded, and the request the decoder must return for it.
#[derive(Clone, Debug)]
struct Req {
    head: RequestHead,
    body: Body,
    conn: Conn,
}

impl Req {
    fn encode(&self, out: &mut Vec<u8>) {
        let chunked = matches!(self.body, Body::Chunked(_));
        encode_request_head(&self.head, chunked, out);
        self.body.encode(out);
    }

    fn expected(&self) -> Vec<Ev<Rq>> {
        let mut head = self.head.clone();
        if matches!(self.body, Body::Chunked(_)) {
            head.headers.append("transfer-encoding", "chunked");
        }
        let request = Rq {
            head,
            body: self.body.kind(),
            keep_alive: self.conn.keep_alive(self.head.version),
            expect_continue: false,
        };
        message_events(Ev::Head(request), self.body.bytes())
    }
}

fn message_events<H>(head: Ev<H>, body: Vec<u8>) -> Vec<Ev<H>> {
    let mut events = vec![head];
    if !body.is_empty() {
        events.push(Ev::Data(body));
    }
    events.push(Ev::End);
    events
}

fn request() -> impl Strategy<Value = Req> {
    let method_and_target = prop_oneof![
        6 => (
            prop_oneof![
                select(&["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"][..])
                    .prop_map(|m| m.as_bytes().to_vec()),
                token(10).prop_filter("CONNECT needs authority-form", |m| m != b"CONNECT"),
            ],
            prop_oneof![
                4 => origin_form(),
                1 => (select(&["http", "https", "HTTP"][..]), authority(), origin_form())
                    .prop_map(|(s, a, p)| [s.as_bytes(), b"://", &a, &p].concat()),
            ],
        ),
        // authority-form: `host:port` (an IPv6 literal without a port has colons but no port).
        1 => authority()
            .prop_filter("authority-form needs a port", |a| !a.ends_with(b"]") && a.contains(&b':'))
            .prop_map(|a| (b"CONNECT".to_vec(), a)),
        1 => Just((b"OPTIONS".to_vec(), b"*".to_vec())),
    ];
    (
        method_and_target,
        version(),
        prop::option::of(authority()),
        fields(),
        conn(),
        any::<bool>(),
    )
        .prop_flat_map(|(mt, version, host, fields, conn, host_first)| {
            let chunked_allowed = version == Version::Http11;
            body(chunked_allowed, false).prop_map(move |body| {
                let (method, target) = mt.clone();
                let mut headers = to_headers(&fields);
                // HTTP/1.1 requires Host; HTTP/1.0 may leave it out.
                let host = match (&host, version) {
                    (Some(h), _) => Some(h.clone()),
                    (None, Version::Http11) => Some(b"example.com".to_vec()),
                    (None, Version::Http10) => None,
                };
                let mut extra: Vec<Header> = Vec::new();
                if let Some(h) = host {
                    extra.push(Header {
                        name: Bytes::from_static(b"Host"),
                        value: Bytes::from(h),
                    });
                }
                extra.extend(conn.header());
                extra.extend(body.framing_header());
                if host_first {
                    extra.extend(headers.iter().cloned());
                    headers = extra.into_iter().collect();
                } else {
                    headers.extend(extra);
                }
                let body = body.non_empty();
                Req {
                    head: RequestHead {
                        method: Bytes::from(method),
                        target: Bytes::from(target),
                        version,
                        headers,
                    },
                    body,
                    conn,
                }
            })
        })
}

// ---- responses -------------------------------------------------------------------------------

/// A response as encoded (with the 1xx heads before it), whether its request was HEAD, and the
/// events the decoder must return for it.
#[derive(Clone, Debug)]
struct Resp {
    informational: Vec<ResponseHead>,
    head: ResponseHead,
    body: Body,
    conn: Conn,
    head_request: bool,
}

impl Resp {
    fn encode(&self, out: &mut Vec<u8>) {
        for info in &self.informational {
            encode_response_head(info, false, out);
        }
        let chunked = matches!(self.body, Body::Chunked(_));
        encode_response_head(&self.head, chunked, out);
        if !self.no_body() {
            self.body.encode(out);
        }
    }

    /// The response has no body whatever its headers say: a HEAD request's, a 204 or a 304.
    fn no_body(&self) -> bool {
        self.head_request || matches!(self.head.status, 204 | 304)
    }

    fn expected(&self) -> Vec<Ev<Rs>> {
        let decoded = |head: &ResponseHead| {
            let mut head = head.clone();
            if head.reason.is_empty() {
                head.reason = Bytes::from_static(reason_phrase(head.status).as_bytes());
            }
            head
        };
        let mut events: Vec<Ev<Rs>> = self
            .informational
            .iter()
            .map(|info| {
                Ev::Head(Rs {
                    head: decoded(info),
                    body: BodyKind::Empty,
                    keep_alive: info.version == Version::Http11,
                })
            })
            .collect();
        let mut head = decoded(&self.head);
        if matches!(self.body, Body::Chunked(_)) {
            head.headers.append("transfer-encoding", "chunked");
        }
        let no_body = self.no_body();
        let body = if no_body {
            BodyKind::Empty
        } else {
            self.body.kind()
        };
        let response = Rs {
            keep_alive: body != BodyKind::CloseDelimited && self.conn.keep_alive(head.version),
            head,
            body,
        };
        let data = if no_body {
            Vec::new()
        } else {
            self.body.bytes()
        };
        events.extend(message_events(Ev::Head(response), data));
        events
    }
}

/// A reason phrase: `*( HTAB / SP / VCHAR / obs-text )`; empty means "the canonical one".
fn reason() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => Just(Vec::new()),
        1 => prop::collection::vec(
            prop_oneof![8 => 0x21u8..=0x7e, 1 => 0x80u8..=0xff, 1 => select(&b" \t"[..])],
            1..30,
        ),
    ]
}

fn informational() -> impl Strategy<Value = ResponseHead> {
    (select(&[100u16, 102, 103][..]), reason(), fields()).prop_map(|(status, reason, fields)| {
        ResponseHead {
            version: Version::Http11,
            status,
            reason: Bytes::from(reason),
            headers: to_headers(&fields),
        }
    })
}

/// A response; `last`: it may be close-delimited.
fn response(last: bool) -> impl Strategy<Value = Resp> {
    (
        prop::collection::vec(informational(), 0..3),
        prop_oneof![
            4 => select(&[200u16, 201, 204, 206, 301, 304, 404, 500, 503][..]),
            1 => 200u16..=599,
        ],
        reason(),
        version(),
        fields(),
        conn(),
        any::<bool>(),
    )
        .prop_flat_map(
            move |(informational, status, reason, version, fields, conn, head_request)| {
                let chunked_allowed = version == Version::Http11 && status != 204;
                body(chunked_allowed, last && !head_request).prop_map(move |body| {
                    // 204 carries no body and no framing; 304 may carry Content-Length.
                    let body = match (status, body) {
                        (204, _) => Body::None,
                        (304, Body::Chunked(_) | Body::Close(_)) => Body::None,
                        (_, Body::Chunked(c)) if head_request => {
                            // The framing header stays, the body is not sent.
                            Body::Chunked(c)
                        }
                        (_, b) => b.non_empty(),
                    };
                    let mut headers = to_headers(&fields);
                    headers.extend(conn.header());
                    headers.extend(body.framing_header());
                    // Without Content-Length or chunked framing the body runs to EOF.
                    let body = match body {
                        Body::None if !last && !head_request && !matches!(status, 204 | 304) => {
                            headers.append("content-length", "0");
                            Body::Zero
                        }
                        Body::None if !matches!(status, 204 | 304) && !head_request => {
                            Body::Close(Vec::new())
                        }
                        b => b,
                    };
                    Resp {
                        informational: informational.clone(),
                        head: ResponseHead {
                            version,
                            status,
                            reason: Bytes::from(reason.clone()),
                            headers,
                        },
                        body,
                        conn,
                        head_request,
                    }
                })
            },
        )
}

/// One to three responses; only the last may run to EOF.
fn responses() -> impl Strategy<Value = Vec<Resp>> {
    (prop::collection::vec(response(false), 0..3), response(true)).prop_map(|(mut v, last)| {
        v.push(last);
        v
    })
}

// ---- decoding ----------------------------------------------------------------------------------

/// Cuts `wire` at the given points (sorted, deduplicated).
fn split<'a>(wire: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
    at.sort_unstable();
    at.dedup();
    let mut pieces = Vec::new();
    let mut from = 0;
    for a in at {
        pieces.push(&wire[from..a]);
        from = a;
    }
    pieces.push(&wire[from..]);
    pieces
}

fn decode_requests(pieces: &[&[u8]]) -> Outcome<Request> {
    run(Server(RequestDecoder::new(Limits::default())), pieces, true)
}

fn decode_responses(resps: &[Resp], pieces: &[&[u8]]) -> Outcome<Response> {
    let heads: Vec<bool> = resps.iter().map(|r| r.head_request).collect();
    run(Client::new(Limits::default(), &heads), pieces, true)
}

fn wire_of_requests(reqs: &[Req]) -> Vec<u8> {
    let mut wire = Vec::new();
    for r in reqs {
        r.encode(&mut wire);
    }
    wire
}

fn wire_of_responses(resps: &[Resp]) -> Vec<u8> {
    let mut wire = Vec::new();
    for r in resps {
        r.encode(&mut wire);
    }
    wire
}

fn show(wire: &[u8]) -> String {
    wire.escape_ascii().to_string()
}

// ---- properties ----------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Encoded requests (pipelined) decode to exactly what was encoded, then a clean close.
    #[test]
    fn requests_round_trip(reqs in prop::collection::vec(request(), 1..4)) {
        let wire = wire_of_requests(&reqs);
        let got = decode_requests(&[&wire]);
        let want: Vec<Ev<Rq>> = reqs.iter().flat_map(Req::expected).collect();
        prop_assert_eq!(got.error, None, "{}", show(&wire));
        prop_assert_eq!(project::<_, Rq>(&got.events), want, "{}", show(&wire));
        prop_assert!(got.left.is_empty());
    }

    /// The same bytes fed in random pieces decode to the same events as fed whole.
    #[test]
    fn requests_decode_identically_in_any_split(
        reqs in prop::collection::vec(request(), 1..4),
        cuts in prop::collection::vec(any::<Index>(), 0..12),
    ) {
        let wire = wire_of_requests(&reqs);
        let whole = decode_requests(&[&wire]);
        let split = decode_requests(&split(&wire, &cuts));
        prop_assert_eq!(split, whole, "{}", show(&wire));
    }

    /// Encoded responses (1xx heads, HEAD requests, every framing, pipelined) decode to exactly
    /// what was encoded.
    #[test]
    fn responses_round_trip(resps in responses()) {
        let wire = wire_of_responses(&resps);
        let got = decode_responses(&resps, &[&wire]);
        let want: Vec<Ev<Rs>> = resps.iter().flat_map(Resp::expected).collect();
        prop_assert_eq!(got.error, None, "{}", show(&wire));
        prop_assert_eq!(project::<_, Rs>(&got.events), want, "{}", show(&wire));
        prop_assert!(got.left.is_empty());
    }

    /// The same bytes fed in random pieces decode to the same events as fed whole.
    #[test]
    fn responses_decode_identically_in_any_split(
        resps in responses(),
        cuts in prop::collection::vec(any::<Index>(), 0..12),
    ) {
        let wire = wire_of_responses(&resps);
        let whole = decode_responses(&resps, &[&wire]);
        let split = decode_responses(&resps, &split(&wire, &cuts));
        prop_assert_eq!(split, whole, "{}", show(&wire));
    }

    /// `chunk_header` writes the length in lowercase hex, which reads back as the length.
    #[test]
    fn chunk_header_round_trip(len in 1usize..) {
        let line = chunk_header(len);
        prop_assert!(line.ends_with(CRLF));
        let hex = std::str::from_utf8(&line[..line.len() - 2]).unwrap();
        prop_assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        prop_assert_eq!(usize::from_str_radix(hex, 16).unwrap(), len);
    }
}
