//! Valid requests of every framing, each fed whole, byte by byte and split at every point.

mod common;

use common::{Ev, Rq, X, assert_events, run, run_all_splits, server};
use weir_http1::{BodyKind, Bytes, BytesMut, Limits, RequestDecoder, RequestEvent, Version};

use BodyKind::{Chunked, Empty, Length};
use Version::{Http10, Http11};
use X::{D, E, H};

type Case = (&'static str, &'static str, Vec<X<Rq>>);

fn valid_cases() -> Vec<Case> {
    vec![
        (
            "get",
            "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
            vec![H(Rq("GET", "/", Http11, Empty, true)), E],
        ),
        (
            "get with query and many headers",
            "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\nUser-Agent: t/1.0\r\nX-Empty:\r\nX-Spaces: \t a  b \t\r\n\r\n",
            vec![H(Rq("GET", "/a/b?x=1&y=2", Http11, Empty, true)), E],
        ),
        (
            "content-length body",
            "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world",
            vec![
                H(Rq("POST", "/upload", Http11, Length(11), true)),
                D("hello world"),
                E,
            ],
        ),
        (
            "content-length zero",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            vec![H(Rq("POST", "/", Http11, Empty, true)), E],
        ),
        (
            "content-length with surrounding whitespace",
            "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: \t 3  \r\n\r\nabc",
            vec![H(Rq("PUT", "/x", Http11, Length(3), true)), D("abc"), E],
        ),
        (
            "a higher minor version is read as http/1.1",
            "GET / HTTP/1.2\r\nHost: a\r\n\r\n",
            vec![H(Rq("GET", "/", Http11, Empty, true)), E],
        ),
        (
            "names that only contain a framing field's name",
            "GET / HTTP/1.1\r\nHost: a\r\nX-Content-Length: 5\r\nTransfer-Encodings: x\r\nContent-Length-Range: 1\r\n\r\n",
            vec![H(Rq("GET", "/", Http11, Empty, true)), E],
        ),
        (
            "chunked",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            vec![
                H(Rq("POST", "/", Http11, Chunked, true)),
                D("hello world"),
                E,
            ],
        ),
        (
            "chunked with extensions and trailers",
            "POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: Chunked\r\n\r\n\
             5;name=value;flag\r\nhello\r\n\
             6 ; q=\"a \\\"quoted\\\" ; string\" ; x = y\r\n world\r\n\
             A\r\n0123456789\r\n\
             0;last\r\nExpires: never\r\nX-Checksum: abc\r\n\r\n",
            vec![
                H(Rq("POST", "/", Http11, Chunked, true)),
                D("hello world0123456789"),
                E,
            ],
        ),
        (
            "chunked with leading zeros and upper-case hex",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n000B\r\nhello world\r\n00\r\n\r\n",
            vec![
                H(Rq("POST", "/", Http11, Chunked, true)),
                D("hello world"),
                E,
            ],
        ),
        (
            "transfer-encoding list with empty elements",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked ,\r\n\r\n1\r\nx\r\n0\r\n\r\n",
            vec![H(Rq("POST", "/", Http11, Chunked, true)), D("x"), E],
        ),
        (
            "http/1.0 closes by default",
            "GET /old HTTP/1.0\r\n\r\n",
            vec![H(Rq("GET", "/old", Http10, Empty, false)), E],
        ),
        (
            "http/1.0 keep-alive",
            "GET /old HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: a\r\n\r\n",
            vec![H(Rq("GET", "/old", Http10, Empty, true)), E],
        ),
        (
            "http/1.0 with body",
            "POST /old HTTP/1.0\r\nContent-Length: 2\r\n\r\nok",
            vec![H(Rq("POST", "/old", Http10, Length(2), false)), D("ok"), E],
        ),
        (
            "connection close",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, CLOSE\r\n\r\n",
            vec![H(Rq("GET", "/", Http11, Empty, false)), E],
        ),
        (
            "connection naming other headers",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade, x-foo\r\nConnection: te\r\n\r\n",
            vec![H(Rq("GET", "/", Http11, Empty, true)), E],
        ),
        (
            "empty lines before the request line",
            "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            vec![H(Rq("GET", "/", Http11, Empty, true)), E],
        ),
        (
            "absolute-form",
            "GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n",
            vec![
                H(Rq("GET", "http://example.com/x?y", Http11, Empty, true)),
                E,
            ],
        ),
        (
            "asterisk-form",
            "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
            vec![H(Rq("OPTIONS", "*", Http11, Empty, true)), E],
        ),
        (
            "authority-form",
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
            vec![H(Rq("CONNECT", "example.com:443", Http11, Empty, true)), E],
        ),
        (
            "ip-literal host",
            "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
            vec![H(Rq("GET", "/", Http11, Empty, true)), E],
        ),
        (
            "ipv6 host with zone id",
            "GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n",
            vec![H(Rq("GET", "/", Http11, Empty, true)), E],
        ),
        (
            // The target names the authority; the empty Host is ignored (RFC 9112 §3.2.2).
            "empty host with an absolute-form target",
            "GET http://example.com/ HTTP/1.1\r\nHost:\r\n\r\n",
            vec![H(Rq("GET", "http://example.com/", Http11, Empty, true)), E],
        ),
        (
            "extension method and obs-text value",
            "PURGE /c HTTP/1.1\r\nHost: a\r\nX-Latin: caf\u{e9}\r\n\r\n",
            vec![H(Rq("PURGE", "/c", Http11, Empty, true)), E],
        ),
        (
            "pipelined requests of every framing",
            "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n\
             POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\
             POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n\
             \r\n\
             HEAD /4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            vec![
                H(Rq("GET", "/1", Http11, Empty, true)),
                E,
                H(Rq("POST", "/2", Http11, Length(3), true)),
                D("abc"),
                E,
                H(Rq("POST", "/3", Http11, Chunked, true)),
                D("de"),
                E,
                H(Rq("HEAD", "/4", Http11, Empty, false)),
                E,
            ],
        ),
    ]
}

#[test]
fn valid_requests_at_every_split() {
    for (name, input, want) in valid_cases() {
        let out = run_all_splits(server, input.as_bytes(), true);
        assert_eq!(out.error, None, "{name}");
        assert!(out.left.is_empty(), "{name}: left {:?}", out.left);
        assert_events(name, &out.events, &want, |e: &Rq, r| e.matches(r));
    }
}

fn only_head(input: &str) -> weir_http1::Request {
    let out = run(server(), &[input.as_bytes()], false);
    assert_eq!(out.error, None);
    match out.events.into_iter().next() {
        Some(Ev::Head(h)) => h,
        other => panic!("no head: {other:?}"),
    }
}

#[test]
fn header_fields_are_kept_in_order_and_trimmed() {
    let r = only_head(
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a:  2 \t\r\nX-Empty:\r\nX-In:  a  b  \r\n\r\n",
    );
    let h = &r.head.headers;
    assert_eq!(h.len(), 5);
    let names: Vec<&[u8]> = h.iter().map(|h| &h.name[..]).collect();
    assert_eq!(names, [&b"Host"[..], b"X-A", b"x-a", b"X-Empty", b"X-In"]);
    assert_eq!(h.get("x-a").unwrap(), "1");
    let all: Vec<&Bytes> = h.get_all("X-A").collect();
    assert_eq!(all, ["1", "2"]);
    assert_eq!(h.get("x-empty").unwrap(), "");
    assert_eq!(h.get("x-in").unwrap(), "a  b");
}

#[test]
fn head_fields_are_slices_of_the_received_buffer() {
    let mut buf = BytesMut::from(
        &b"GET /p HTTP/1.1\r\nHost: a\r\nX-Long: abcdefghijklmnopqrstuvwxyz\r\n\r\n"[..],
    );
    let start = buf.as_ptr() as usize;
    let end = start + buf.len();
    let mut dec = RequestDecoder::new(Limits::default());
    let Some(RequestEvent::Head(r)) = dec.decode(&mut buf).unwrap() else {
        panic!("no head");
    };
    let inside = |b: &Bytes| {
        let p = b.as_ptr() as usize;
        p >= start && p + b.len() <= end
    };
    assert!(inside(&r.head.method) && inside(&r.head.target));
    for h in &r.head.headers {
        assert!(inside(&h.name) && inside(&h.value));
    }
    // Room for the fields a proxy adds, so adding them does not grow the list.
    assert!(r.head.headers.capacity() >= r.head.headers.len() + weir_http1::SPARE_FIELDS);
}

#[test]
fn body_data_is_a_slice_of_the_received_buffer() {
    let mut buf =
        BytesMut::from(&b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody"[..]);
    let body_at = buf.as_ptr() as usize + buf.len() - 4;
    let mut dec = RequestDecoder::new(Limits::default());
    assert!(matches!(
        dec.decode(&mut buf),
        Ok(Some(RequestEvent::Head(_)))
    ));
    let Some(RequestEvent::Data(d)) = dec.decode(&mut buf).unwrap() else {
        panic!("no data");
    };
    assert_eq!(d, "body");
    assert_eq!(d.as_ptr() as usize, body_at);
}

#[test]
fn expect_continue() {
    let cases = [
        (
            "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            true,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nexpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n",
            true,
        ),
        // No body: nothing to wait for.
        (
            "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
            false,
        ),
        // HTTP/1.0: the expectation must be ignored (RFC 9110 §10.1.1).
        (
            "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            false,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n",
            false,
        ),
    ];
    for (input, want) in cases {
        assert_eq!(only_head(input).expect_continue, want, "{input:?}");
    }
}

/// A body on GET, HEAD or DELETE is valid but has no defined semantics: such a request is
/// flagged so a proxy does not reuse the upstream connection after it.
#[test]
fn a_body_on_a_method_without_body_semantics_is_ambiguous() {
    let cases = [
        (
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n",
            true,
        ),
        (
            "HEAD / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            true,
        ),
        (
            "DELETE / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n",
            true,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            false,
        ),
        ("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", false),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n",
            false,
        ),
        (
            "get / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n",
            false,
        ),
    ];
    for (input, want) in cases {
        assert_eq!(only_head(input).ambiguous, want, "{input:?}");
    }
}

#[test]
fn request_head_accessors() {
    let cases: &[(&str, &str, Option<&str>, Option<&str>)] = &[
        // (request line target, path, query, authority)
        ("GET /a/b?c=d HTTP/1.1", "/a/b", Some("c=d"), Some("h")),
        ("GET /a/b HTTP/1.1", "/a/b", None, Some("h")),
        ("GET /? HTTP/1.1", "/", Some(""), Some("h")),
        ("GET http://ex.com HTTP/1.1", "/", None, Some("ex.com")),
        (
            "GET http://ex.com?q HTTP/1.1",
            "/",
            Some("q"),
            Some("ex.com"),
        ),
        (
            "GET https://ex.com:8443/p/q?r HTTP/1.1",
            "/p/q",
            Some("r"),
            Some("ex.com:8443"),
        ),
        ("OPTIONS * HTTP/1.1", "*", None, Some("h")),
        (
            "CONNECT ex.com:443 HTTP/1.1",
            "ex.com:443",
            None,
            Some("ex.com:443"),
        ),
    ];
    for (line, path, query, authority) in cases {
        let r = only_head(&format!("{line}\r\nHost: h\r\n\r\n"));
        assert_eq!(r.head.path(), path.as_bytes(), "{line}");
        assert_eq!(r.head.query(), query.map(str::as_bytes), "{line}");
        assert_eq!(r.head.authority(), authority.map(str::as_bytes), "{line}");
    }
    assert!(
        only_head("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
            .head
            .is_head()
    );
    assert!(
        !only_head("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            .head
            .is_head()
    );
}

#[test]
fn idle_between_requests_only() {
    let mut dec = RequestDecoder::new(Limits::default());
    assert!(dec.is_idle());
    let mut buf =
        BytesMut::from(&b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nokGE"[..]);
    assert!(matches!(
        dec.decode(&mut buf),
        Ok(Some(RequestEvent::Head(_)))
    ));
    assert!(!dec.is_idle());
    assert_eq!(
        dec.decode(&mut buf),
        Ok(Some(RequestEvent::Data(Bytes::from_static(b"ok"))))
    );
    assert!(!dec.is_idle());
    assert_eq!(dec.decode(&mut buf), Ok(Some(RequestEvent::End)));
    assert!(dec.is_idle());
    assert_eq!(&buf[..], b"GE", "bytes after End stay in the buffer");
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert!(!dec.is_idle(), "part of the next request has been seen");
    assert_eq!(&buf[..], b"GE");
}

#[test]
fn clean_close_between_requests() {
    let mut dec = RequestDecoder::new(Limits::default());
    let mut buf = BytesMut::new();
    assert_eq!(dec.decode_eof(&mut buf), Ok(None));
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\r\n"[..]);
    let mut dec = RequestDecoder::new(Limits::default());
    assert!(matches!(
        dec.decode_eof(&mut buf),
        Ok(Some(RequestEvent::Head(_)))
    ));
    assert_eq!(dec.decode_eof(&mut buf), Ok(Some(RequestEvent::End)));
    // A stray CRLF after a request is not the start of another one.
    assert_eq!(dec.decode_eof(&mut buf), Ok(None));
}

#[test]
fn data_never_exceeds_the_chunk() {
    // Two chunks arriving together come out as two Data events, one per chunk.
    let mut buf = BytesMut::from(
        &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"[..],
    );
    let mut dec = RequestDecoder::new(Limits::default());
    let mut events = Vec::new();
    while let Some(ev) = dec.decode(&mut buf).unwrap() {
        events.push(ev);
    }
    assert_eq!(
        events[1..],
        [
            RequestEvent::Data(Bytes::from_static(b"abc")),
            RequestEvent::Data(Bytes::from_static(b"de")),
            RequestEvent::End
        ]
    );
}
