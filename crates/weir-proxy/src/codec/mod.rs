//! The codec seam (Envoy's `envoy/http/codec.h`): between a connection's bytes and its streams.
//!
//! A downstream (server) codec decodes requests into protocol-neutral parts (head, data, end)
//! and encodes responses; an upstream (client) codec encodes requests and decodes responses.
//! Everything wire-specific lives behind it: framing out (chunked, close-delimited), `100
//! Continue`, keep-alive and pipelining, the status line, and which 1xx responses pass. The
//! connection manager and the router above it speak only heads, data and ends.
//!
//! Codecs are sans-IO: they decode from a connection's input buffer and encode into an
//! [`Output`]; they never touch a socket or a clock.

pub(crate) mod http1;
pub(crate) mod status;

use bytes::Bytes;
use weir_config::HeaderKeyFormat;
use weir_http1::{Headers, NameCase, RequestHead, ResponseHead};

use crate::network::connection::Connection;

/// Where a codec puts the bytes it encodes: a connection's write queue (or a test's buffer).
pub(crate) trait Output {
    /// Appends bytes to what will be written.
    fn queue(&mut self, bytes: Bytes);
    /// Ends the write side once everything queued has left (FIN): how a tunnel's half ends.
    fn finish(&mut self);
}

impl Output for Connection {
    fn queue(&mut self, bytes: Bytes) {
        Connection::queue(self, bytes);
    }

    fn finish(&mut self) {
        self.finish_after_flush();
    }
}

/// A test's buffer: the bytes, and `FIN` for the end of the write side.
impl Output for Vec<Bytes> {
    fn queue(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.push(bytes);
        }
    }

    fn finish(&mut self) {
        self.push(Bytes::from_static(b"FIN"));
    }
}

/// A stream on a connection, as its codec names it: HTTP/1 numbers its requests (from 1);
/// HTTP/2 will use its stream ids. Server-side events carry the key of the stream they belong
/// to, and response parts are encoded for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamKey(pub(crate) u32);

/// A request's head as a downstream codec hands it to the connection manager.
#[derive(Debug)]
pub(crate) struct RequestStart {
    /// Method, target and header fields. Its `version` is not the client's: the codec keeps
    /// that, and upstream codecs write their own.
    pub(crate) head: RequestHead,
    /// No body follows: the request is complete with its head.
    pub(crate) end_stream: bool,
    /// The client waits for `100 Continue` (or a final answer) before sending its body.
    pub(crate) expect_continue: bool,
    /// Other implementations may frame this request differently (a body on GET, HEAD or
    /// DELETE, RFC 9110 §9.3.1): the upstream connection that carries it must not be reused.
    pub(crate) single_use: bool,
    /// The request asks to become a tunnel: its `Upgrade` (`websocket`…) or, for CONNECT,
    /// `connect`. What follows the head is the tunnel's bytes, as `Data`, until the client
    /// closes.
    pub(crate) upgrade: Option<Bytes>,
    /// Its header names as the client spelled them, kept when the connection manager's
    /// `header_key_format` is `preserve_case`: the upstream codec writes them so.
    pub(crate) names: Option<ReceivedNames>,
}

/// A message's header names as received, kept (only) when the receiving side's
/// `header_key_format` is `preserve_case`, as Envoy's `PreserveCaseHeaderFormatter` remembers
/// them: the codec that writes the message on the other side spells each name the way it came,
/// whatever its own `header_key_format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReceivedNames {
    /// The names in order (slices of the received head: no copy).
    names: Vec<Bytes>,
    /// Names weir adds go out in proper case (`formatter_type_on_envoy_headers: PROPER_CASE`),
    /// else in lower case.
    proper_others: bool,
    /// A response's reason phrase, kept with `forward_reason_phrase` (else empty).
    pub(crate) reason: Bytes,
}

impl ReceivedNames {
    /// The names of `headers` as `format` keeps them: `None` unless it is `preserve_case`.
    /// `reason` is kept with `forward_reason_phrase`.
    pub(crate) fn keep(format: HeaderKeyFormat, headers: &Headers, reason: &Bytes) -> Option<Self> {
        let HeaderKeyFormat::PreserveCase {
            forward_reason_phrase,
            proper_case_envoy_headers,
        } = format
        else {
            return None;
        };
        Some(ReceivedNames {
            names: headers.iter().map(|h| h.name.clone()).collect(),
            proper_others: proper_case_envoy_headers,
            reason: if forward_reason_phrase {
                reason.clone()
            } else {
                Bytes::new()
            },
        })
    }
}

/// How a codec writes a message's header names: as it was received when its names were kept
/// (the receiving side's `preserve_case`), else by the writing side's own `format` (proper
/// case, or lower case as Envoy's default).
pub(crate) fn name_case(format: HeaderKeyFormat, names: Option<&ReceivedNames>) -> NameCase<'_> {
    match (names, format) {
        (Some(n), _) => NameCase::Preserved {
            received: &n.names,
            proper_others: n.proper_others,
        },
        (None, HeaderKeyFormat::ProperCase) => NameCase::Proper,
        (None, _) => NameCase::Lower,
    }
}

/// What a downstream codec decoded, for the stream its key names (a `Headers` starts it).
#[derive(Debug)]
pub(crate) enum RequestPart {
    /// A new request.
    Headers(RequestStart),
    /// Body bytes (never empty).
    Data(Bytes),
    /// The request is complete.
    End,
}

/// What an upstream codec decoded. Informational responses the proxy does not pass on are
/// the codec's business and never appear here.
#[derive(Debug)]
pub(crate) enum ResponsePart {
    /// The final response head; `end_stream`: no body follows. `names`: its header names as
    /// the origin spelled them, kept when the cluster's `header_key_format` is `preserve_case`.
    Headers {
        head: ResponseHead,
        end_stream: bool,
        names: Option<ReceivedNames>,
    },
    /// Body bytes (never empty).
    Data(Bytes),
    /// The response is complete.
    End,
}
