//! Requests: their head, and the server-side decoder that reads them off a connection.

use bytes::{Buf, Bytes, BytesMut};

use crate::body::{BodyEvent, BodyState};
use crate::error::Error;
use crate::framing::{self, Fields};
use crate::headers::{Header, Headers};
use crate::scan::{Block, BlockKind, BlockScanner};
use crate::{BodyKind, Limits, Version};

/// A request's start line and header fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// The method, case-sensitive (`GET`, `POST`…), a token.
    pub method: Bytes,
    /// The request-target as sent: origin-form (`/path?query`), absolute-form
    /// (`http://host/path`), authority-form (`host:port`, CONNECT only) or `*` (OPTIONS only).
    pub target: Bytes,
    /// The HTTP version.
    pub version: Version,
    /// The header fields, in order.
    pub headers: Headers,
}

impl RequestHead {
    /// The path: for origin-form the target up to `?`; for absolute-form the path part after
    /// the authority, up to `?` (`/` if empty); for the asterisk and authority forms the whole
    /// target.
    pub fn path(&self) -> &[u8] {
        let target: &[u8] = &self.target;
        if target.first() == Some(&b'/') {
            return until_query(target);
        }
        match absolute_form_split(target) {
            Some((_, rest)) => {
                let path = until_query(rest);
                if path.is_empty() { b"/" } else { path }
            }
            None => target,
        }
    }

    /// The query: what follows the first `?` of the target, if there is one.
    pub fn query(&self) -> Option<&[u8]> {
        let target: &[u8] = &self.target;
        memchr::memchr(b'?', target).map(|i| &target[i + 1..])
    }

    /// True for a HEAD request (its response has no body).
    pub fn is_head(&self) -> bool {
        &self.method[..] == b"HEAD"
    }

    /// The authority the request is for: from an absolute-form or authority-form target, else
    /// the `Host` header's value (RFC 9112 §3.2.2: the target's authority wins).
    pub fn authority(&self) -> Option<&[u8]> {
        let target: &[u8] = &self.target;
        if let Some((authority, _)) = absolute_form_split(target) {
            return Some(authority);
        }
        if &self.method[..] == b"CONNECT" {
            return Some(target);
        }
        self.headers.get("host").map(|v| &v[..])
    }
}

/// `s` up to its first `?`.
fn until_query(s: &[u8]) -> &[u8] {
    memchr::memchr(b'?', s).map_or(s, |i| &s[..i])
}

/// For an absolute-form target `scheme://authority rest`, returns `(authority, rest)`.
fn absolute_form_split(target: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = memchr::memchr(b':', target)?;
    let scheme = &target[..colon];
    let valid_scheme = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    let after = target[colon..].strip_prefix(b"://")?;
    if !valid_scheme {
        return None;
    }
    let end = after
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(after.len());
    Some((&after[..end], &after[end..]))
}

/// A decoded request head with what it says about its body and the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Start line and header fields.
    pub head: RequestHead,
    /// How the body is delimited (never [`BodyKind::CloseDelimited`]).
    pub body: BodyKind,
    /// The connection may carry another request after this one: HTTP/1.1 without
    /// `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`.
    pub keep_alive: bool,
    /// The client sent `Expect: 100-continue` on an HTTP/1.1 request with a body and waits for a
    /// `100 Continue` (or a final response) before sending the body.
    pub expect_continue: bool,
    /// The request is valid, but other implementations are known to frame it differently: a
    /// body on GET, HEAD or DELETE, whose content "has no generally defined semantics" and may
    /// be ignored by a server that then reads the body as the next request (RFC 9110 §9.3.1,
    /// §9.3.2, §9.3.5). A proxy that forwards it must not reuse that upstream connection after
    /// it.
    pub ambiguous: bool,
    /// An HTTP/1.1 request whose `Connection` names `upgrade`: the client asks to switch to the
    /// protocol its `Upgrade` field names (RFC 9110 §7.8).
    pub upgrade: bool,
}

/// What a [`RequestDecoder`] returns: a head, body bytes, the end of the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestEvent {
    /// The request head; body events follow.
    Head(Box<Request>),
    /// Body bytes (never empty; for chunked bodies only chunk payloads).
    Data(Bytes),
    /// The request is complete; the next event belongs to the next request.
    End,
}

/// Decodes requests on the server side of a connection.
///
/// See the [crate documentation](crate) for the calling convention. Bytes are consumed from
/// the front of the caller's buffer only as events come out; a partial head stays in the
/// buffer and scanning resumes where it stopped, never beyond
/// [`Limits::max_head_bytes`].
#[derive(Clone, Debug)]
pub struct RequestDecoder {
    limits: Limits,
    state: RequestState,
}

/// Where a [`RequestDecoder`] is, named for what it waits for.
///
/// ```text
///            ┌───────────────────────────── End ─────────────────────────────┐
///            v                                                               │
///   ExpectHead ── Head ──> ExpectBody(body state, see `BodyState`) ── Data* ─┘
///       │                        │
///       └──── any error ─────────┴──> Failed(error) ── every call: Err(error)
/// ```
///
/// `ExpectHead` first drops empty lines (CRLF) left before a request line (RFC 9112 §2.2),
/// then scans the head incrementally. `decode_eof` in `ExpectHead` with nothing buffered is a
/// clean close; anywhere else it is [`Error::Incomplete`].
#[derive(Clone, Debug)]
enum RequestState {
    /// The next request's head.
    ExpectHead(BlockScanner),
    /// The body of the request whose head was returned, then its `End`.
    ExpectBody(BodyState),
    /// A peer violation was found; the connection must close.
    Failed(Error),
}

impl RequestDecoder {
    /// A decoder waiting for the first request.
    pub fn new(limits: Limits) -> Self {
        RequestDecoder {
            limits,
            state: RequestState::ExpectHead(BlockScanner::new(BlockKind::RequestHead)),
        }
    }

    /// Decodes the next event from the front of `buf`, consuming exactly the bytes it used.
    ///
    /// `Ok(None)`: more bytes are needed; what is in `buf` stays there and the next call
    /// resumes where this one stopped (empty lines before a request line are the exception:
    /// they are consumed and ignored, RFC 9112 §2.2). After `End` the decoder is ready for the
    /// next (pipelined) request, whose bytes stay in `buf`. `Data` events are zero-copy slices of
    /// `buf`, never empty, never more than the current chunk or length still owes; chunk
    /// framing, extensions and trailers are checked and consumed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<RequestEvent>, Error> {
        let result = self.step(buf);
        if let Err(e) = result {
            self.state = RequestState::Failed(e);
        }
        result
    }

    /// Like [`decode`](Self::decode), after the peer half-closed: returns the events still
    /// buffered, then `Ok(None)` if the close came between requests with nothing buffered (a
    /// clean close), or [`Error::Incomplete`] if a request was partly received.
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<RequestEvent>, Error> {
        if let Some(event) = self.decode(buf)? {
            return Ok(Some(event));
        }
        match &self.state {
            RequestState::ExpectHead(_) if buf.is_empty() => Ok(None),
            _ => {
                self.state = RequestState::Failed(Error::Incomplete);
                Err(Error::Incomplete)
            }
        }
    }

    /// True between requests: no byte of the next request has been seen by `decode` yet.
    pub fn is_idle(&self) -> bool {
        matches!(&self.state, RequestState::ExpectHead(scanner) if !scanner.started())
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<RequestEvent>, Error> {
        match &mut self.state {
            RequestState::Failed(e) => Err(*e),
            RequestState::ExpectHead(scanner) => {
                if !scanner.started() {
                    while buf.starts_with(b"\r\n") {
                        buf.advance(2);
                    }
                }
                let limits = self.limits;
                let Some(block) = scanner.scan(buf, limits.max_head_bytes, limits.max_headers)?
                else {
                    return Ok(None);
                };
                let head = buf.split_to(block.len).freeze();
                let request = parse_request(&head, &block)?;
                self.state = RequestState::ExpectBody(BodyState::new(request.body));
                Ok(Some(RequestEvent::Head(Box::new(request))))
            }
            RequestState::ExpectBody(body) => match body.decode(buf, &self.limits)? {
                None => Ok(None),
                Some(BodyEvent::Data(data)) => Ok(Some(RequestEvent::Data(data))),
                Some(BodyEvent::End) => {
                    self.state =
                        RequestState::ExpectHead(BlockScanner::new(BlockKind::RequestHead));
                    Ok(Some(RequestEvent::End))
                }
            },
        }
    }
}

/// Parses a complete head (whose lines the scanner checked) into a request.
fn parse_request(head: &Bytes, block: &Block) -> Result<Request, Error> {
    let line = &head[..block.start_line_len];
    let version_at = memchr::memrchr(b' ', line).map_or(0, |sp| sp + 1);
    let copy = framing::with_version_httparse_knows(head, version_at);
    let head = copy.as_ref().unwrap_or(head);
    let line = &head[..block.start_line_len];
    // method SP request-target SP HTTP-version, single spaces.
    let first_sp = memchr::memchr(b' ', line).ok_or(Error::InvalidRequestLine)?;
    let last_sp = memchr::memrchr(b' ', line).ok_or(Error::InvalidRequestLine)?;
    if first_sp == last_sp {
        return Err(Error::InvalidRequestLine);
    }
    let version = framing::version(&line[last_sp + 1..])?;
    if first_sp == 0 {
        return Err(Error::InvalidMethod);
    }
    let method = &line[..first_sp];
    let target = &line[first_sp + 1..last_sp];
    check_target(method, target)?;

    let headers = framing::with_field_slots(block.fields, |slots| {
        let mut req = httparse::Request::new(slots);
        match req.parse(head) {
            Ok(httparse::Status::Complete(n)) if n == head.len() => {}
            Ok(_) => return Err(Error::InvalidRequestLine),
            Err(httparse::Error::Token) if req.method.is_none() => {
                return Err(Error::InvalidMethod);
            }
            Err(httparse::Error::Token) => return Err(Error::InvalidTarget),
            Err(httparse::Error::Version) => return Err(Error::InvalidVersion),
            Err(e) => return Err(framing::field_error(e)),
        }
        // Room for the fields a proxy adds (`x-forwarded-*`, `x-request-id`…) without growing.
        let mut headers = Headers::with_capacity(req.headers.len() + crate::SPARE_FIELDS);
        headers.extend(req.headers.iter().map(|h| Header {
            name: head.slice_ref(h.name.as_bytes()),
            value: head.slice_ref(h.value),
        }));
        Ok(headers)
    })?;
    let head = RequestHead {
        method: head.slice(..first_sp),
        target: head.slice(first_sp + 1..last_sp),
        version,
        headers,
    };

    if head
        .headers
        .iter()
        .any(|h| framing::lookalike_framing_name(&h.name))
    {
        return Err(Error::LookalikeFramingHeader);
    }
    let fields = Fields::read(&head.headers, version)?;
    if fields.content_length_values > 1 {
        return Err(Error::RepeatedContentLength);
    }
    match fields.hosts {
        0 if version == Version::Http11 => return Err(Error::MissingHost),
        0 | 1 => {}
        _ => return Err(Error::MultipleHosts),
    }
    if let Some(host) = &fields.host {
        if !framing::valid_host(host) {
            return Err(Error::InvalidHost);
        }
        // An empty Host is allowed only where the target carries the authority (absolute-
        // and authority-form, RFC 9112 §3.2.2).
        let target: &[u8] = &head.target;
        if host.is_empty() && (target.first() == Some(&b'/') || target == b"*") {
            return Err(Error::EmptyHost);
        }
    }
    let body = match (fields.chunked, fields.content_length) {
        (true, _) => BodyKind::Chunked,
        (false, Some(n)) if n > 0 => BodyKind::Length(n),
        (false, _) => BodyKind::Empty,
    };
    let method: &[u8] = &head.method;
    Ok(Request {
        keep_alive: fields.keep_alive(version),
        expect_continue: fields.expect_continue
            && version == Version::Http11
            && body != BodyKind::Empty,
        ambiguous: body != BodyKind::Empty && matches!(method, b"GET" | b"HEAD" | b"DELETE"),
        upgrade: fields.upgrade && version == Version::Http11,
        body,
        head,
    })
}

/// Checks the request-target's bytes and that its form suits the method (RFC 9112 §3.2).
fn check_target(method: &[u8], target: &[u8]) -> Result<(), Error> {
    if target.is_empty() || target.iter().any(|&b| framing::is_bad_target_byte(b)) {
        return Err(Error::InvalidTarget);
    }
    let ok = if method == b"CONNECT" {
        // authority-form: uri-host ":" port, both present.
        framing::split_host_port(target)
            .is_some_and(|(_, port)| port.is_some_and(|p| !p.is_empty()))
    } else if target == b"*" {
        method == b"OPTIONS"
    } else if target[0] == b'/' {
        true
    } else {
        // absolute-form, for the http and https schemes only (RFC 9110 §4.2).
        let http = |scheme: &[u8]| {
            target
                .get(..scheme.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
        };
        (http(b"http://") || http(b"https://"))
            && absolute_form_split(target).is_some_and(|(authority, _)| {
                !authority.is_empty() && framing::valid_host(authority)
            })
    };
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidTarget)
    }
}
