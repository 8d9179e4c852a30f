//! What a peer can do wrong: one variant per violation.

use std::fmt;

/// A protocol violation by the peer, found while decoding. One variant per violation, so tests
/// can compare them; [`Error::status`] maps each to the status a server answers with.
///
/// After returning an error a decoder is poisoned and the connection must be closed: the
/// stream's framing can no longer be trusted.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    // ---- sizes ------------------------------------------------------------------------------
    /// The head (start line, header lines and final CRLF) is longer than
    /// [`Limits::max_head_bytes`](crate::Limits::max_head_bytes).
    HeadTooLarge,
    /// More header (or trailer) fields than [`Limits::max_headers`](crate::Limits::max_headers).
    TooManyHeaders,
    /// The request line alone is longer than
    /// [`Limits::max_head_bytes`](crate::Limits::max_head_bytes).
    UriTooLong,
    /// The method alone (no space yet) fills
    /// [`Limits::max_head_bytes`](crate::Limits::max_head_bytes): a bad request, not a long URI.
    MethodTooLong,
    /// A trailer section longer than [`Limits::max_head_bytes`](crate::Limits::max_head_bytes).
    TrailersTooLarge,
    /// A chunk-size line (with extensions) longer than [`MAX_CHUNK_LINE`](crate::MAX_CHUNK_LINE).
    ChunkLineTooLong,

    // ---- line structure (heads, chunk lines and trailers) -------------------------------------
    /// A LF not preceded by CR.
    BareLf,
    /// A CR not followed by LF.
    BareCr,
    /// A NUL byte.
    NulByte,
    /// A field line that starts with whitespace: obsolete line folding, or whitespace between
    /// the start line and the first header.
    ObsFold,
    /// Whitespace between a field name and its colon.
    WhitespaceBeforeColon,

    // ---- start line ---------------------------------------------------------------------------
    /// A request line that is not `method SP request-target SP HTTP-version`.
    InvalidRequestLine,
    /// A method that is not a token.
    InvalidMethod,
    /// A request-target with invalid bytes, or not of a form allowed for its method.
    InvalidTarget,
    /// Something that is not an HTTP version where one belongs.
    InvalidVersion,
    /// A well-formed HTTP version whose major version is not 1 (e.g. `HTTP/2.0`, `HTTP/0.9`).
    /// `HTTP/1.2` and later minor versions are read as HTTP/1.1 (RFC 9110 §2.5).
    UnsupportedVersion,
    /// A status line that is not `HTTP-version SP 3DIGIT [SP reason-phrase]`.
    InvalidStatusLine,
    /// A status code outside 100..=599.
    InvalidStatus,

    // ---- fields -------------------------------------------------------------------------------
    /// A field line without a colon, or whose name is empty or not a token.
    InvalidHeaderName,
    /// A field value with a byte that is not allowed (a control character).
    InvalidHeaderValue,
    /// An HTTP/1.1 request without a `Host` header.
    MissingHost,
    /// A request with more than one `Host` header.
    MultipleHosts,
    /// A `Host` header that is not `host [":" port]`, or that holds a comma (a list of hosts).
    InvalidHost,
    /// An empty `Host` header on a request whose target names no authority (origin-form or
    /// `*`): an `http` URI always has a host, so nothing says where the request is for.
    EmptyHost,
    /// A `Connection` header that names `content-length`, `transfer-encoding` or `host`.
    ConnectionNamesFramingHeader,

    // ---- framing ------------------------------------------------------------------------------
    /// Both `Content-Length` and `Transfer-Encoding`.
    ContentLengthAndTransferEncoding,
    /// `Content-Length` values that differ.
    DifferentContentLengths,
    /// A request with more than one `Content-Length` value, even identical ones (two fields, or
    /// a list such as `5, 5`). RFC 9110 §8.6 lets a recipient reject these or merge them; a
    /// request is rejected, so the next hop never has to choose.
    RepeatedContentLength,
    /// A request field whose name is `Content-Length` or `Transfer-Encoding` with other
    /// separators or none (`Transfer_Encoding`, `content.length`, `TransferEncoding`): valid
    /// tokens that servers which fold `_` into `-` (CGI, some frameworks) read as framing
    /// fields this decoder does not see.
    LookalikeFramingHeader,
    /// A `Content-Length` that is not a decimal number fitting in 64 bits.
    InvalidContentLength,
    /// A `Transfer-Encoding` that is empty or not a list of codings.
    InvalidTransferEncoding,
    /// A `Transfer-Encoding` whose final coding is not `chunked`.
    TransferEncodingNotChunked,
    /// `chunked` applied more than once.
    ChunkedAppliedTwice,
    /// A transfer coding other than `chunked` (e.g. `gzip, chunked`): not implemented.
    UnsupportedTransferCoding,
    /// A `Transfer-Encoding` on an HTTP/1.0 message.
    TransferEncodingInHttp10,
    /// A 1xx or 204 response with `Transfer-Encoding` or a non-zero `Content-Length`.
    BodyNotAllowed,

    // ---- chunked body -------------------------------------------------------------------------
    /// A chunk size that is empty, not hex, or longer than 16 hex digits; or junk after it.
    InvalidChunkSize,
    /// A chunk extension that is not `;name[=token|quoted-string]`.
    InvalidChunkExtension,
    /// Chunk data not followed by CRLF.
    MissingChunkCrlf,

    // ---- stream -------------------------------------------------------------------------------
    /// The peer closed in the middle of a message.
    Incomplete,
    /// `decode` was called after a 101 (Switching Protocols) response: the connection no longer
    /// speaks HTTP/1.1.
    SwitchedProtocols,
}

impl Error {
    /// The status a server answers a request with when this error happens decoding it.
    pub fn status(&self) -> u16 {
        match self {
            Error::HeadTooLarge | Error::TooManyHeaders | Error::TrailersTooLarge => 431,
            Error::UriTooLong => 414,
            Error::UnsupportedVersion => 505,
            Error::UnsupportedTransferCoding => 501,
            Error::ChunkLineTooLong
            | Error::BareLf
            | Error::BareCr
            | Error::NulByte
            | Error::ObsFold
            | Error::WhitespaceBeforeColon
            | Error::InvalidRequestLine
            | Error::InvalidMethod
            | Error::MethodTooLong
            | Error::InvalidTarget
            | Error::InvalidVersion
            | Error::InvalidStatusLine
            | Error::InvalidStatus
            | Error::InvalidHeaderName
            | Error::InvalidHeaderValue
            | Error::MissingHost
            | Error::MultipleHosts
            | Error::InvalidHost
            | Error::EmptyHost
            | Error::ConnectionNamesFramingHeader
            | Error::ContentLengthAndTransferEncoding
            | Error::DifferentContentLengths
            | Error::RepeatedContentLength
            | Error::LookalikeFramingHeader
            | Error::InvalidContentLength
            | Error::InvalidTransferEncoding
            | Error::TransferEncodingNotChunked
            | Error::ChunkedAppliedTwice
            | Error::TransferEncodingInHttp10
            | Error::BodyNotAllowed
            | Error::InvalidChunkSize
            | Error::InvalidChunkExtension
            | Error::MissingChunkCrlf
            | Error::Incomplete
            | Error::SwitchedProtocols => 400,
        }
    }

    fn as_str(&self) -> &'static str {
        match self {
            Error::HeadTooLarge => "head too large",
            Error::TooManyHeaders => "too many header fields",
            Error::UriTooLong => "request line too long",
            Error::TrailersTooLarge => "trailer section too large",
            Error::ChunkLineTooLong => "chunk line too long",
            Error::BareLf => "bare lf",
            Error::BareCr => "bare cr",
            Error::NulByte => "nul byte",
            Error::ObsFold => "field line starts with whitespace (obs-fold)",
            Error::WhitespaceBeforeColon => "whitespace between field name and colon",
            Error::InvalidRequestLine => "invalid request line",
            Error::InvalidMethod => "invalid method",
            Error::MethodTooLong => "method too long",
            Error::InvalidTarget => "invalid request target",
            Error::InvalidVersion => "invalid http version",
            Error::UnsupportedVersion => "unsupported http version",
            Error::InvalidStatusLine => "invalid status line",
            Error::InvalidStatus => "status code out of range",
            Error::InvalidHeaderName => "invalid header name",
            Error::InvalidHeaderValue => "invalid header value",
            Error::MissingHost => "missing host",
            Error::MultipleHosts => "more than one host",
            Error::InvalidHost => "invalid host",
            Error::EmptyHost => "empty host",
            Error::ConnectionNamesFramingHeader => "connection header names a framing header",
            Error::ContentLengthAndTransferEncoding => "both content-length and transfer-encoding",
            Error::DifferentContentLengths => "different content-length values",
            Error::RepeatedContentLength => "more than one content-length value",
            Error::LookalikeFramingHeader => {
                "field name mimics content-length or transfer-encoding"
            }
            Error::InvalidContentLength => "invalid content-length",
            Error::InvalidTransferEncoding => "invalid transfer-encoding",
            Error::TransferEncodingNotChunked => "final transfer coding is not chunked",
            Error::ChunkedAppliedTwice => "chunked applied more than once",
            Error::UnsupportedTransferCoding => "unsupported transfer coding",
            Error::TransferEncodingInHttp10 => "transfer-encoding in http/1.0",
            Error::BodyNotAllowed => "body framing on a response that has no body",
            Error::InvalidChunkSize => "invalid chunk size",
            Error::InvalidChunkExtension => "invalid chunk extension",
            Error::MissingChunkCrlf => "missing crlf after chunk data",
            Error::Incomplete => "connection closed mid-message",
            Error::SwitchedProtocols => "decode after switching protocols",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for Error {}
