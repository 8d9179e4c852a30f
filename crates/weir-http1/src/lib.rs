//! Sans-IO HTTP/1.1 codec for weir: bytes in, events out.
//!
//! This crate never touches a socket, a clock or a thread. The caller reads bytes into a
//! [`BytesMut`], hands it to a decoder, and acts on the events that come out; to send, it asks
//! the encoders for bytes and writes them itself.
//!
//! # Decoding
//!
//! [`RequestDecoder`] (server side) and [`ResponseDecoder`] (client side) share one calling
//! convention, in the style of `httparse`'s `Complete`/`Partial`:
//!
//! * `decode(&mut buf)` returns `Ok(Some(event))` and consumes from the front of `buf` exactly
//!   the bytes that event used, or `Ok(None)` when it needs more bytes (it leaves them in `buf`
//!   and resumes where it stopped on the next call: a head is never rescanned), or `Err(error)`
//!   when the peer broke the protocol. After an error the decoder is poisoned: every later call
//!   returns the same error, and the connection must be closed.
//! * Call `decode` in a loop until it returns `Ok(None)`, then read more bytes.
//! * When the peer half-closes, call `decode_eof` in a loop instead: it returns the events still
//!   buffered, then tells a clean close (`Ok(None)`), the end of a close-delimited response
//!   (`Ok(Some(End))`) or a truncated message ([`Error::Incomplete`]).
//!
//! A message comes out as `Head`, zero or more `Data` (never empty, zero-copy slices of the
//! caller's buffer), then `End`. Bytes after `End` stay in the buffer for the next (pipelined)
//! message.
//!
//! ```
//! use weir_http1::{BytesMut, Limits, RequestDecoder, RequestEvent};
//!
//! let mut decoder = RequestDecoder::new(Limits::default());
//! let mut buf = BytesMut::from(
//!     &b"POST /echo HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello"[..],
//! );
//! let mut body = Vec::new();
//! while let Some(event) = decoder.decode(&mut buf)? {
//!     match event {
//!         RequestEvent::Head(request) => {
//!             assert_eq!(request.head.path(), b"/echo");
//!             assert!(request.keep_alive);
//!         }
//!         RequestEvent::Data(data) => body.extend_from_slice(&data),
//!         RequestEvent::End => break,
//!     }
//! }
//! assert_eq!(body, b"hello");
//! assert!(decoder.is_idle());
//! # Ok::<(), weir_http1::Error>(())
//! ```
//!
//! # Strictness
//!
//! The decoders follow RFC 9112 and reject, never guess: bare CR or LF, NUL, obs-fold,
//! whitespace before a colon, conflicting or malformed framing headers, unknown transfer
//! codings, malformed chunk lines and everything else a request-smuggling attack could lean on
//! is an [`Error`], and [`Error::status`] says what a server answers. Requests are held to a
//! little more than the RFC's minimum: a repeated `Content-Length` (even with equal values) and
//! a field named like a framing field with other separators (`Transfer_Encoding`) are errors,
//! and a valid request that other servers are known to frame differently (a body on GET, HEAD
//! or DELETE) comes out with [`Request::ambiguous`] set.
//!
//! # Encoding
//!
//! [`encode_request_head`] and [`encode_response_head`] write a head verbatim from a
//! [`RequestHead`] / [`ResponseHead`]; the caller decides which headers are present. Their
//! `_as` variants write header names in a [`NameCase`] (lower case, proper case, or as a
//! received message spelled them). Chunked
//! bodies go out as [`chunk_header`], the data, [`CRLF`], and finally [`LAST_CHUNK`], so the data
//! itself is never copied.
//!
//! ```
//! use weir_http1::{Bytes, CRLF, Headers, LAST_CHUNK, ResponseHead, Version, chunk_header};
//!
//! let mut headers = Headers::new();
//! headers.append("content-type", "text/plain");
//! let head = ResponseHead { version: Version::Http11, status: 200, reason: Bytes::new(), headers };
//! let mut out = Vec::new();
//! weir_http1::encode_response_head(&head, true, &mut out);
//! let data = Bytes::from_static(b"hello");
//! // One writev of these pieces; the data is not copied.
//! let pieces = [
//!     Bytes::from(out),
//!     chunk_header(data.len()),
//!     data,
//!     Bytes::from_static(CRLF),
//!     Bytes::from_static(LAST_CHUNK),
//! ];
//! let wire: Vec<u8> = pieces.concat();
//! assert_eq!(
//!     wire,
//!     b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n\
//!       5\r\nhello\r\n0\r\n\r\n"
//! );
//! ```

// `unsafe_code = "forbid"`, `missing_docs` and `unreachable_pub` come from the workspace lints.

mod ascii;
mod body;
mod chunked;
mod encode;
mod error;
mod framing;
mod headers;
mod request;
mod response;
mod scan;

pub use ascii::eq_ignore_case;
pub use bytes::{Bytes, BytesMut};

pub use encode::{
    CRLF, LAST_CHUNK, NameCase, chunk_header, encode_request_head, encode_request_head_as,
    encode_response_head, encode_response_head_as, reason_phrase,
};
pub use error::Error;
pub use headers::{Header, Headers, list_tokens};
pub use request::{Request, RequestDecoder, RequestEvent, RequestHead};
pub use response::{Response, ResponseDecoder, ResponseEvent, ResponseHead};

/// The longest chunk-size line (size, extensions and CRLF) a decoder accepts, in bytes.
pub const MAX_CHUNK_LINE: usize = 4096;

/// The HTTP version of a message. Only HTTP/1.0 and HTTP/1.1 are spoken; any other version is
/// [`Error::UnsupportedVersion`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `HTTP/1.0`.
    Http10,
    /// `HTTP/1.1`.
    Http11,
}

impl Version {
    /// The version as it appears on the wire: `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How a message body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// No body: no `Data` follows the head, only `End`. Also used for `Content-Length: 0`, for
    /// responses to HEAD, and for 1xx, 204 and 304 responses.
    Empty,
    /// A body of exactly this many bytes (`Content-Length`, never 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`; `Data` carries the chunk payloads only.
    Chunked,
    /// The body runs until the server closes the connection (responses only).
    CloseDelimited,
}

/// Spare room in a decoded head's field list: a proxy adds a few fields of its own (forwarding
/// headers, `date`, `server`…), and they fit without the list growing (an allocation per
/// message).
pub const SPARE_FIELDS: usize = 6;

/// Bounds on what a peer may make a decoder buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest head: start line, header lines and the final empty line, in bytes. The same bound
    /// applies to a chunked body's trailer section. Default 60 KiB.
    pub max_head_bytes: usize,
    /// Most header fields in a head (and trailer fields in a trailer section). Default 100.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 60 * 1024,
            max_headers: 100,
        }
    }
}
