//! Every malformed or ambiguous message, with the error it must produce and the status a
//! server answers with. Each is fed whole, byte by byte and split at every point: the error
//! must not depend on how the bytes arrive.

mod common;

use common::{Client, run_all_splits, server};
use weir_http1::{BytesMut, Error, Limits, RequestDecoder};

use Error::*;

const H: &str = "GET / HTTP/1.1\r\nHost: a\r\n";
const POST: &str = "POST / HTTP/1.1\r\nHost: a\r\n";
const CHUNKED: &str = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

fn request_cases() -> Vec<(String, Error)> {
    let h = |rest: &str| format!("{H}{rest}");
    let post = |rest: &str| format!("{POST}{rest}");
    let chunked = |rest: &str| format!("{CHUNKED}{rest}");
    let line = |l: &str| format!("{l}\r\nHost: a\r\n\r\n");
    vec![
        // ---- line structure
        ("GET / HTTP/1.1\nHost: a\r\n\r\n".into(), BareLf),
        (h("X: a\n\r\n"), BareLf),
        (h("\n"), BareLf),
        ("GET / HTTP/1.1\r\nHost: a\n\n".into(), BareLf),
        ("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n".into(), BareLf),
        (h("X: a\rb\r\n\r\n"), BareCr),
        ("GET / HTTP/1.1\r\r\n".into(), BareCr),
        (h("\r\r\n"), BareCr),
        (h("X: a\0b\r\n\r\n"), NulByte),
        ("GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n".into(), NulByte),
        (h("X: a\r\n b\r\n\r\n"), ObsFold),
        (h("X: a\r\n\tb\r\n\r\n"), ObsFold),
        ("GET / HTTP/1.1\r\n Host: a\r\n\r\n".into(), ObsFold),
        (h("X : a\r\n\r\n"), WhitespaceBeforeColon),
        (h("X\t: a\r\n\r\n"), WhitespaceBeforeColon),
        (
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n".into(),
            WhitespaceBeforeColon,
        ),
        // ---- field names and values
        (h("X a\r\n\r\n"), InvalidHeaderName),
        (h(": a\r\n\r\n"), InvalidHeaderName),
        (h("X\"Y: a\r\n\r\n"), InvalidHeaderName),
        (h("X(Y): a\r\n\r\n"), InvalidHeaderName),
        (h("X\u{e9}: a\r\n\r\n"), InvalidHeaderName),
        (h("X: a\x01b\r\n\r\n"), InvalidHeaderValue),
        (h("X: a\x7fb\r\n\r\n"), InvalidHeaderValue),
        (h("X: \x1b[31m\r\n\r\n"), InvalidHeaderValue),
        // ---- request line
        (line("GET /"), InvalidRequestLine),
        (line("GET"), InvalidRequestLine),
        ("\r\nHTTP/1.1\r\n\r\n".into(), InvalidRequestLine),
        (line(" / HTTP/1.1"), InvalidMethod),
        (line("G(T / HTTP/1.1"), InvalidMethod),
        (line("G\tT / HTTP/1.1"), InvalidMethod),
        (line("GET  / HTTP/1.1"), InvalidTarget),
        (line("GET /a b HTTP/1.1"), InvalidTarget),
        (line("GET a HTTP/1.1"), InvalidTarget),
        (line("GET /a#frag HTTP/1.1"), InvalidTarget),
        (line("GET /\x7f HTTP/1.1"), InvalidTarget),
        (line("GET /\u{e9} HTTP/1.1"), InvalidTarget),
        (line("GET /\t HTTP/1.1"), InvalidTarget),
        (line("GET * HTTP/1.1"), InvalidTarget),
        // An HTTP server serves http and https URIs only (RFC 9110 §4.2); another scheme would
        // be routed by Host yet name a different authority to the next hop.
        (line("GET foo://internal/admin HTTP/1.1"), InvalidTarget),
        (line("GET ftp://a/ HTTP/1.1"), InvalidTarget),
        (line("CONNECT / HTTP/1.1"), InvalidTarget),
        (line("CONNECT example.com HTTP/1.1"), InvalidTarget),
        (line("CONNECT example.com: HTTP/1.1"), InvalidTarget),
        (line("GET http:///x HTTP/1.1"), InvalidTarget),
        (line("GET http://user@host/ HTTP/1.1"), InvalidTarget),
        (line("GET 1http://h/ HTTP/1.1"), InvalidTarget),
        (line("GET / HTTP/1.1 "), InvalidVersion),
        (line("GET / http/1.1"), InvalidVersion),
        (line("GET / HTTP/1"), InvalidVersion),
        (line("GET / HTTP/1.10"), InvalidVersion),
        (line("GET / HTTPS/1.1"), InvalidVersion),
        (line("GET / HTTP/2.0"), UnsupportedVersion),
        (line("GET / HTTP/0.9"), UnsupportedVersion),
        (line("GET / HTTP/1.a"), InvalidVersion),
        // ---- host
        ("GET / HTTP/1.1\r\n\r\n".into(), MissingHost),
        ("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n".into(), MissingHost),
        (h("Host: b\r\n\r\n"), MultipleHosts),
        (h("host: a\r\n\r\n"), MultipleHosts),
        (
            "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n".into(),
            MultipleHosts,
        ),
        ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n".into(), InvalidHost),
        ("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n".into(), InvalidHost),
        ("GET / HTTP/1.1\r\nHost: a:b\r\n\r\n".into(), InvalidHost),
        ("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n".into(), InvalidHost),
        ("GET / HTTP/1.1\r\nHost: :80\r\n\r\n".into(), InvalidHost),
        ("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n".into(), InvalidHost),
        ("GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n".into(), InvalidHost),
        ("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n".into(), InvalidHost),
        ("GET / HTTP/1.1\r\nHost: a, b\r\n\r\n".into(), InvalidHost),
        // An empty Host where the target names no authority: nothing says where it is for.
        ("GET / HTTP/1.1\r\nHost:\r\n\r\n".into(), EmptyHost),
        ("GET / HTTP/1.1\r\nHost:   \r\n\r\n".into(), EmptyHost),
        ("GET / HTTP/1.0\r\nHost:\r\n\r\n".into(), EmptyHost),
        ("OPTIONS * HTTP/1.1\r\nHost:\r\n\r\n".into(), EmptyHost),
        (line("GET http://a,b/ HTTP/1.1"), InvalidTarget),
        // ---- connection
        (
            h("Connection: close, Content-Length\r\n\r\n"),
            ConnectionNamesFramingHeader,
        ),
        (
            h("Connection: Transfer-Encoding\r\n\r\n"),
            ConnectionNamesFramingHeader,
        ),
        (
            h("Connection: keep-alive\r\nConnection: HOST\r\n\r\n"),
            ConnectionNamesFramingHeader,
        ),
        // ---- content-length
        (
            post("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            ContentLengthAndTransferEncoding,
        ),
        (
            post("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
            ContentLengthAndTransferEncoding,
        ),
        (
            post("Transfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\n"),
            ContentLengthAndTransferEncoding,
        ),
        (
            post("Content-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            DifferentContentLengths,
        ),
        (
            post("Content-Length: 5, 6\r\n\r\n"),
            DifferentContentLengths,
        ),
        (
            post("Content-Length: 5\r\nContent-Length: 5, 6\r\n\r\n"),
            DifferentContentLengths,
        ),
        (
            post("Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
            RepeatedContentLength,
        ),
        (
            post("Content-Length: 5\r\ncontent-length: 5\r\n\r\nhello"),
            RepeatedContentLength,
        ),
        (
            post("Content-Length: 5, 5\r\n\r\nhello"),
            RepeatedContentLength,
        ),
        (
            post("Content-Length: 5,5\r\n\r\nhello"),
            RepeatedContentLength,
        ),
        // ---- names that mimic framing fields
        (
            post("Transfer_Encoding: chunked\r\n\r\n"),
            LookalikeFramingHeader,
        ),
        (
            post("transfer-_encoding: chunked\r\n\r\n"),
            LookalikeFramingHeader,
        ),
        (
            post("TransferEncoding: chunked\r\n\r\n"),
            LookalikeFramingHeader,
        ),
        (
            post("Transfer---Encoding: chunked\r\n\r\n"),
            LookalikeFramingHeader,
        ),
        (
            post("_Transfer-Encoding: chunked\r\n\r\n"),
            LookalikeFramingHeader,
        ),
        (post("Content_Length: 5\r\n\r\n"), LookalikeFramingHeader),
        (post("content.length: 5\r\n\r\n"), LookalikeFramingHeader),
        (post("Content-Length-: 5\r\n\r\n"), LookalikeFramingHeader),
        (post("Content-Length: abc\r\n\r\n"), InvalidContentLength),
        (post("Content-Length: -5\r\n\r\n"), InvalidContentLength),
        (post("Content-Length: +5\r\n\r\n"), InvalidContentLength),
        (post("Content-Length:\r\n\r\n"), InvalidContentLength),
        (post("Content-Length: 5 5\r\n\r\n"), InvalidContentLength),
        (post("Content-Length: 5,\r\n\r\n"), InvalidContentLength),
        (post("Content-Length: 0x5\r\n\r\n"), InvalidContentLength),
        (post("Content-Length: 5.0\r\n\r\n"), InvalidContentLength),
        (
            post("Content-Length: 18446744073709551616\r\n\r\n"),
            InvalidContentLength,
        ),
        (
            post("Content-Length: 99999999999999999999999\r\n\r\n"),
            InvalidContentLength,
        ),
        // ---- transfer-encoding
        (
            post("Transfer-Encoding: gzip\r\n\r\n"),
            TransferEncodingNotChunked,
        ),
        (
            post("Transfer-Encoding: identity\r\n\r\n"),
            TransferEncodingNotChunked,
        ),
        (
            post("Transfer-Encoding: chunked, gzip\r\n\r\n"),
            TransferEncodingNotChunked,
        ),
        (
            post("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"),
            TransferEncodingNotChunked,
        ),
        (
            post("Transfer-Encoding: gzip, chunked\r\n\r\n"),
            UnsupportedTransferCoding,
        ),
        (
            post("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"),
            UnsupportedTransferCoding,
        ),
        (
            post("Transfer-Encoding: chunked, chunked\r\n\r\n"),
            ChunkedAppliedTwice,
        ),
        (
            post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
            ChunkedAppliedTwice,
        ),
        (post("Transfer-Encoding:\r\n\r\n"), InvalidTransferEncoding),
        (
            post("Transfer-Encoding: ,\r\n\r\n"),
            InvalidTransferEncoding,
        ),
        (
            post("Transfer-Encoding: chunked;q=1\r\n\r\n"),
            InvalidTransferEncoding,
        ),
        (
            post("Transfer-Encoding: \"chunked\"\r\n\r\n"),
            InvalidTransferEncoding,
        ),
        (
            post("Transfer-Encoding: x chunked\r\n\r\n"),
            InvalidTransferEncoding,
        ),
        (
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
            TransferEncodingInHttp10,
        ),
        // ---- chunk size lines
        (chunked("\r\n"), InvalidChunkSize),
        (chunked("x\r\n"), InvalidChunkSize),
        (chunked("+5\r\nhello\r\n0\r\n\r\n"), InvalidChunkSize),
        (chunked("-1\r\n"), InvalidChunkSize),
        (chunked("0x5\r\nhello\r\n0\r\n\r\n"), InvalidChunkSize),
        (chunked("5 \r\nhello\r\n0\r\n\r\n"), InvalidChunkSize),
        (chunked("5\t\r\nhello\r\n0\r\n\r\n"), InvalidChunkSize),
        (chunked(" 5\r\nhello\r\n0\r\n\r\n"), InvalidChunkSize),
        (chunked("10000000000000000\r\n"), InvalidChunkSize),
        (chunked("00000000000000005\r\n"), InvalidChunkSize),
        (chunked("5\nhello\r\n"), BareLf),
        (chunked("5\rhello\r\n"), BareCr),
        (chunked("5\0\r\n"), NulByte),
        // ---- chunk extensions
        (chunked("5;\r\nhello\r\n0\r\n\r\n"), InvalidChunkExtension),
        (chunked("5;a=\r\nhello\r\n0\r\n\r\n"), InvalidChunkExtension),
        (
            chunked("5;a=\"b\r\nhello\r\n0\r\n\r\n"),
            InvalidChunkExtension,
        ),
        (
            chunked("5;a b\r\nhello\r\n0\r\n\r\n"),
            InvalidChunkExtension,
        ),
        (chunked("5;a \r\nhello\r\n0\r\n\r\n"), InvalidChunkExtension),
        (
            chunked("5;a=\x01\r\nhello\r\n0\r\n\r\n"),
            InvalidChunkExtension,
        ),
        (
            chunked("5;a=\"\x7f\"\r\nhello\r\n0\r\n\r\n"),
            InvalidChunkExtension,
        ),
        (
            chunked("5;a=b=c\r\nhello\r\n0\r\n\r\n"),
            InvalidChunkExtension,
        ),
        (chunked("5;a\nb\r\n"), BareLf),
        (chunked("5;a\rb\r\n"), BareCr),
        // ---- chunk data
        (chunked("5\r\nhelloX\r\n0\r\n\r\n"), MissingChunkCrlf),
        (chunked("5\r\nhello\rX0\r\n\r\n"), MissingChunkCrlf),
        (chunked("5\r\nhello\n0\r\n\r\n"), MissingChunkCrlf),
        (chunked("5\r\nhello0\r\n\r\n"), MissingChunkCrlf),
        // ---- trailers
        (chunked("0\r\nX : a\r\n\r\n"), WhitespaceBeforeColon),
        (chunked("0\r\nX: a\r\n b\r\n\r\n"), ObsFold),
        (chunked("0\r\n b\r\n\r\n"), ObsFold),
        (chunked("0\r\nX: \x01\r\n\r\n"), InvalidHeaderValue),
        (chunked("0\r\nX\r\n\r\n"), InvalidHeaderName),
        (chunked("0\r\nX{: a\r\n\r\n"), InvalidHeaderName),
        (chunked("0\r\nX: a\n\r\n"), BareLf),
        (chunked("0\r\n\n"), BareLf),
        (chunked("0\r\nX: a\r\r\n"), BareCr),
        (chunked("0\r\nX: \0\r\n\r\n"), NulByte),
    ]
}

/// The status a server answers with, for a sample of each class.
#[test]
fn statuses() {
    let cases = [
        (HeadTooLarge, 431),
        (TooManyHeaders, 431),
        (TrailersTooLarge, 431),
        (UriTooLong, 414),
        (MethodTooLong, 400),
        (EmptyHost, 400),
        (UnsupportedVersion, 505),
        (UnsupportedTransferCoding, 501),
        (BareLf, 400),
        (ContentLengthAndTransferEncoding, 400),
        (MissingHost, 400),
        (InvalidChunkSize, 400),
        (Incomplete, 400),
    ];
    for (e, status) in cases {
        assert_eq!(e.status(), status, "{e:?}");
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(
        ContentLengthAndTransferEncoding.to_string(),
        "both content-length and transfer-encoding"
    );
}

#[test]
fn malformed_requests() {
    for (input, want) in request_cases() {
        let out = run_all_splits(server, input.as_bytes(), false);
        assert_eq!(
            out.error,
            Some(want),
            "{:?}",
            input.escape_default().to_string()
        );
    }
}

#[test]
fn a_failed_decoder_stays_failed() {
    let mut dec = RequestDecoder::new(Limits::default());
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n"[..]);
    assert_eq!(dec.decode(&mut buf), Err(WhitespaceBeforeColon));
    let mut fresh = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..]);
    assert_eq!(dec.decode(&mut fresh), Err(WhitespaceBeforeColon));
    assert_eq!(dec.decode_eof(&mut fresh), Err(WhitespaceBeforeColon));
    assert!(!dec.is_idle());
}

#[test]
fn truncated_requests() {
    let cases = [
        "G",
        "GET / HTTP/1.1\r\nHost: a\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n\r",
        "\r",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhell",
        CHUNKED,
        &format!("{CHUNKED}5"),
        &format!("{CHUNKED}5\r\nhel"),
        &format!("{CHUNKED}5\r\nhello"),
        &format!("{CHUNKED}5\r\nhello\r\n"),
        &format!("{CHUNKED}5\r\nhello\r\n0\r\n"),
        &format!("{CHUNKED}5\r\nhello\r\n0\r\nX: y\r\n"),
        // A complete request followed by the start of another.
        "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET",
    ];
    for input in cases {
        let out = run_all_splits(server, input.as_bytes(), true);
        assert_eq!(out.error, Some(Incomplete), "{input:?}");
    }
}

fn response_cases() -> Vec<(&'static str, Error)> {
    vec![
        ("HTTP/1.1 99 OK\r\n\r\n", InvalidStatusLine),
        ("HTTP/1.1 20 OK\r\n\r\n", InvalidStatusLine),
        ("HTTP/1.1 2000 OK\r\n\r\n", InvalidStatusLine),
        ("HTTP/1.1  200 OK\r\n\r\n", InvalidStatusLine),
        ("HTTP/1.1 2x0 OK\r\n\r\n", InvalidStatusLine),
        ("HTTP/1.1\r\n\r\n", InvalidStatusLine),
        ("HTTP/1.1 200 O\x01K\r\n\r\n", InvalidStatusLine),
        ("\r\nHTTP/1.1 200 OK\r\n\r\n", InvalidStatusLine),
        ("HTTP/1.1 099 Low\r\n\r\n", InvalidStatus),
        ("HTTP/1.1 600 High\r\n\r\n", InvalidStatus),
        ("HTTP/1.1 000 Zero\r\n\r\n", InvalidStatus),
        ("HTTP/2.0 200 OK\r\n\r\n", UnsupportedVersion),
        ("HTTP/1.a 200 OK\r\n\r\n", InvalidVersion),
        ("HTTP/1.1x 200 OK\r\n\r\n", InvalidVersion),
        ("ICY 200 OK\r\n\r\n", InvalidVersion),
        ("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", BareLf),
        ("HTTP/1.1 200 OK\r\nContent-Length: 0\n\n", BareLf),
        ("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", BareCr),
        ("HTTP/1.1 200 OK\r\nX: \0\r\n\r\n", NulByte),
        (
            "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
            ObsFold,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
            WhitespaceBeforeColon,
        ),
        ("HTTP/1.1 200 OK\r\nX@: 0\r\n\r\n", InvalidHeaderName),
        ("HTTP/1.1 200 OK\r\nX: \x08\r\n\r\n", InvalidHeaderValue),
        (
            "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
            BodyNotAllowed,
        ),
        (
            "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
            BodyNotAllowed,
        ),
        (
            "HTTP/1.1 100 Continue\r\nContent-Length: 1\r\n\r\n",
            BodyNotAllowed,
        ),
        (
            "HTTP/1.1 103 Early Hints\r\nTransfer-Encoding: chunked\r\n\r\n",
            BodyNotAllowed,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            TransferEncodingNotChunked,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            TransferEncodingNotChunked,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: deflate, chunked\r\n\r\n",
            UnsupportedTransferCoding,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            ChunkedAppliedTwice,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
            ContentLengthAndTransferEncoding,
        ),
        (
            "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
            ContentLengthAndTransferEncoding,
        ),
        (
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            TransferEncodingInHttp10,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            DifferentContentLengths,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 1a\r\n\r\n",
            InvalidContentLength,
        ),
        (
            "HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 1\r\n\r\n",
            ConnectionNamesFramingHeader,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
            MissingChunkCrlf,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
            InvalidChunkSize,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;\"x\"\r\n",
            InvalidChunkExtension,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX:\x01\r\n\r\n",
            InvalidHeaderValue,
        ),
        (
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            SwitchedProtocols,
        ),
    ]
}

#[test]
fn malformed_responses() {
    for (input, want) in response_cases() {
        let out = run_all_splits(
            || Client::new(Limits::default(), &[]),
            input.as_bytes(),
            false,
        );
        assert_eq!(
            out.error,
            Some(want),
            "{:?}",
            input.escape_default().to_string()
        );
    }
}

#[test]
fn truncated_responses() {
    let cases = [
        "H",
        "HTTP/1.1 200 OK\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
        "HTTP/1.1 100 Continue\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200",
    ];
    for input in cases {
        let out = run_all_splits(
            || Client::new(Limits::default(), &[]),
            input.as_bytes(),
            true,
        );
        assert_eq!(out.error, Some(Incomplete), "{input:?}");
    }
}
