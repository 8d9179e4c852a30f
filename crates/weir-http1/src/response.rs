//! Responses: their head, and the client-side decoder that reads them off an upstream
//! connection.

use bytes::{Bytes, BytesMut};

use crate::body::{BodyEvent, BodyState};
use crate::error::Error;
use crate::framing::{self, Fields};
use crate::headers::{Header, Headers};
use crate::scan::{Block, BlockKind, BlockScanner};
use crate::{BodyKind, Limits, Version};

/// A response's status line and header fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// The HTTP version.
    pub version: Version,
    /// The status code, 100..=599.
    pub status: u16,
    /// The reason phrase as sent (may be empty). When encoding, empty means the canonical
    /// phrase for the status.
    pub reason: Bytes,
    /// The header fields, in order.
    pub headers: Headers,
}

/// A decoded response head with what it says about its body and the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status line and header fields.
    pub head: ResponseHead,
    /// How the body is delimited. Always [`BodyKind::Empty`] for 1xx, 204 and 304 responses and
    /// for responses to HEAD, whatever the headers say.
    pub body: BodyKind,
    /// The connection may carry another request: HTTP/1.1 without `Connection: close`, or
    /// HTTP/1.0 with `Connection: keep-alive`; never for a close-delimited body or a 101.
    pub keep_alive: bool,
}

/// What a [`ResponseDecoder`] returns: a head, body bytes, the end of the response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseEvent {
    /// A response head. For an informational (1xx) status other than 101 no `Data` or `End`
    /// follows: the next event is the head of the next (informational or final) response to
    /// the same request. After a 101 the decoder stops: every later call is
    /// [`Error::SwitchedProtocols`]. For a final status, body events and `End` follow.
    Head(Box<Response>),
    /// Body bytes (never empty; for chunked bodies only chunk payloads).
    Data(Bytes),
    /// The final response is complete.
    End,
}

/// Decodes responses on the client side of an upstream connection.
///
/// Call [`expect`](Self::expect) before each response to say whether its request was HEAD;
/// otherwise the calling convention is the [crate's](crate). Bytes are consumed from the front
/// of the caller's buffer only as events come out.
#[derive(Clone, Debug)]
pub struct ResponseDecoder {
    limits: Limits,
    /// The response being waited for answers a HEAD request.
    head_request: bool,
    state: ResponseState,
}

/// Where a [`ResponseDecoder`] is, named for what it waits for.
///
/// ```text
///                     ┌──── 1xx Head (not 101) ────┐
///                     v                            │
///   ┌────────> ExpectHead{informational} ──────────┘
///   │                 │    │
///   │                 │    └── 101 Head ──> Switched ── every call: Err(SwitchedProtocols)
///   │          final Head (≥ 200)
///   │                 v
///   └── End ── ExpectBody(body state, see `BodyState`) ── Data* ──┐
///              (close-delimited: End comes from decode_eof)  <────┘
///
///   any error ──> Failed(error) ── every call: Err(error)
/// ```
///
/// `informational` is set once a 1xx head has been returned for the current request, so the
/// decoder is not idle until the final response ends. `decode_eof` in `ExpectHead` with
/// nothing buffered and no 1xx seen is a clean close; in a close-delimited body it is the
/// body's `End`; anywhere else it is [`Error::Incomplete`].
#[derive(Clone, Debug)]
enum ResponseState {
    /// A response head.
    ExpectHead {
        /// Scans the head being received.
        scanner: BlockScanner,
        /// A 1xx head was already returned for this request.
        informational: bool,
    },
    /// The body of the final response whose head was returned, then its `End`.
    ExpectBody(BodyState),
    /// A 101 was returned: the connection is no longer HTTP/1.1.
    Switched,
    /// A peer violation was found; the connection must close.
    Failed(Error),
}

impl ResponseState {
    fn expect_head(informational: bool) -> Self {
        ResponseState::ExpectHead {
            scanner: BlockScanner::new(BlockKind::ResponseHead),
            informational,
        }
    }
}

impl ResponseDecoder {
    /// A decoder waiting for the first response.
    pub fn new(limits: Limits) -> Self {
        ResponseDecoder {
            limits,
            head_request: false,
            state: ResponseState::expect_head(false),
        }
    }

    /// Prepares for the response to a request; `head_request`: the request was HEAD, so the
    /// response has no body whatever its headers say. Applies to the next final response only.
    pub fn expect(&mut self, head_request: bool) {
        self.head_request = head_request;
    }

    /// Decodes the next event from the front of `buf`, consuming exactly the bytes it used.
    ///
    /// `Ok(None)`: more bytes are needed; what is in `buf` stays there and the next call
    /// resumes where this one stopped. After `End` the decoder waits for the next response;
    /// bytes after it stay in `buf`. `Data` events are zero-copy slices of `buf`, never empty.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<ResponseEvent>, Error> {
        let result = self.step(buf);
        if let Err(e) = result {
            self.state = ResponseState::Failed(e);
        }
        result
    }

    /// Like [`decode`](Self::decode), after upstream closed: returns the events still
    /// buffered, then `Ok(Some(End))` for a close-delimited body, `Ok(None)` between responses
    /// with nothing buffered, or [`Error::Incomplete`] if a response was partly received.
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<ResponseEvent>, Error> {
        if let Some(event) = self.decode(buf)? {
            return Ok(Some(event));
        }
        match &self.state {
            ResponseState::ExpectBody(body) if body.is_close_delimited() => {
                self.state = ResponseState::expect_head(false);
                Ok(Some(ResponseEvent::End))
            }
            ResponseState::ExpectHead {
                informational: false,
                ..
            } if buf.is_empty() => Ok(None),
            _ => {
                self.state = ResponseState::Failed(Error::Incomplete);
                Err(Error::Incomplete)
            }
        }
    }

    /// True between responses: no byte of the next response has been seen by `decode` yet, and
    /// no 1xx is pending a final response.
    pub fn is_idle(&self) -> bool {
        matches!(&self.state, ResponseState::ExpectHead { scanner, informational: false }
            if !scanner.started())
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<ResponseEvent>, Error> {
        match &mut self.state {
            ResponseState::Failed(e) => Err(*e),
            ResponseState::Switched => Err(Error::SwitchedProtocols),
            ResponseState::ExpectHead { scanner, .. } => {
                let limits = self.limits;
                let Some(block) = scanner.scan(buf, limits.max_head_bytes, limits.max_headers)?
                else {
                    return Ok(None);
                };
                let head = buf.split_to(block.len).freeze();
                let head = parse_response_head(&head, &block)?;
                let response = self.frame(head)?;
                self.state = match response.head.status {
                    101 => ResponseState::Switched,
                    100..=199 => ResponseState::expect_head(true),
                    _ => {
                        self.head_request = false;
                        ResponseState::ExpectBody(BodyState::new(response.body))
                    }
                };
                Ok(Some(ResponseEvent::Head(Box::new(response))))
            }
            ResponseState::ExpectBody(body) => match body.decode(buf, &self.limits)? {
                None => Ok(None),
                Some(BodyEvent::Data(data)) => Ok(Some(ResponseEvent::Data(data))),
                Some(BodyEvent::End) => {
                    self.state = ResponseState::expect_head(false);
                    Ok(Some(ResponseEvent::End))
                }
            },
        }
    }

    /// Decides how the body of a response is delimited (RFC 9112 §6.3).
    fn frame(&self, head: ResponseHead) -> Result<Response, Error> {
        let fields = Fields::read(&head.headers, head.version)?;
        let status = head.status;
        let no_body_allowed = status < 200 || status == 204;
        if no_body_allowed && (fields.chunked || fields.content_length.is_some_and(|n| n > 0)) {
            return Err(Error::BodyNotAllowed);
        }
        let body = if no_body_allowed || status == 304 || self.head_request {
            BodyKind::Empty
        } else if fields.chunked {
            BodyKind::Chunked
        } else {
            match fields.content_length {
                Some(0) => BodyKind::Empty,
                Some(n) => BodyKind::Length(n),
                None => BodyKind::CloseDelimited,
            }
        };
        let keep_alive =
            status != 101 && body != BodyKind::CloseDelimited && fields.keep_alive(head.version);
        Ok(Response {
            head,
            body,
            keep_alive,
        })
    }
}

/// Parses a complete head (whose lines the scanner checked) into a response head.
fn parse_response_head(head: &Bytes, block: &Block) -> Result<ResponseHead, Error> {
    let copy = framing::with_version_httparse_knows(head, 0);
    let head = copy.as_ref().unwrap_or(head);
    let line = &head[..block.start_line_len];
    // HTTP-version SP 3DIGIT [ SP reason-phrase ]
    let sp = memchr::memchr(b' ', line);
    let version = framing::version(&line[..sp.unwrap_or(line.len())])?;
    let sp = sp.ok_or(Error::InvalidStatusLine)?;
    let rest = &line[sp + 1..];
    let code = match rest {
        [a, b, c, ..] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(Error::InvalidStatusLine),
    };
    if rest.len() > 3 && rest[3] != b' ' {
        return Err(Error::InvalidStatusLine);
    }
    if !(100..=599).contains(&code) {
        return Err(Error::InvalidStatus);
    }
    let reason = if rest.len() > 4 {
        head.slice(sp + 5..line.len())
    } else {
        Bytes::new()
    };

    let headers = framing::with_field_slots(block.fields, |slots| {
        let mut res = httparse::Response::new(slots);
        match res.parse(head) {
            Ok(httparse::Status::Complete(n)) if n == head.len() => {}
            Ok(_) => return Err(Error::InvalidStatusLine),
            Err(httparse::Error::Version) => return Err(Error::InvalidVersion),
            Err(httparse::Error::Status | httparse::Error::Token) => {
                return Err(Error::InvalidStatusLine);
            }
            Err(e) => return Err(framing::field_error(e)),
        }
        // Room for the fields a proxy adds (`date`, `server`, `connection`…) without growing.
        let mut headers = Headers::with_capacity(res.headers.len() + crate::SPARE_FIELDS);
        headers.extend(res.headers.iter().map(|h| Header {
            name: head.slice_ref(h.name.as_bytes()),
            value: head.slice_ref(h.value),
        }));
        Ok(headers)
    })?;
    Ok(ResponseHead {
        version,
        status: code,
        reason,
        headers,
    })
}
