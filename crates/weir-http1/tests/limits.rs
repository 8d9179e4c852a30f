//! Bounds on what a peer can make a decoder buffer or scan.

mod common;

use common::{Client, Server, run};
use weir_http1::{
    BytesMut, Error, Limits, MAX_CHUNK_LINE, RequestDecoder, RequestEvent, ResponseDecoder,
};

fn limits(max_head_bytes: usize, max_headers: usize) -> Limits {
    Limits {
        max_head_bytes,
        max_headers,
    }
}

/// A request head of exactly `len` bytes (`len` ≥ 32).
fn request_head_of(len: usize) -> String {
    let fixed = "GET / HTTP/1.1\r\nHost: a\r\nX: \r\n\r\n".len();
    format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "v".repeat(len - fixed)
    )
}

#[test]
fn defaults() {
    assert_eq!(limits(60 * 1024, 100), Limits::default());
}

#[test]
fn head_at_the_limit_is_accepted_one_byte_more_is_not() {
    for max in [64, 100, 1000] {
        let ok = request_head_of(max);
        assert_eq!(ok.len(), max);
        let out = run(
            Server(RequestDecoder::new(limits(max, 100))),
            &[ok.as_bytes()],
            true,
        );
        assert_eq!(out.error, None, "{max}");
        let over = request_head_of(max + 1);
        let out = run(
            Server(RequestDecoder::new(limits(max, 100))),
            &[over.as_bytes()],
            true,
        );
        assert_eq!(out.error, Some(Error::HeadTooLarge), "{max}");
        // Byte by byte, the error comes as soon as the limit is reached.
        let bytes: Vec<&[u8]> = over.as_bytes().chunks(1).collect();
        let out = run(Server(RequestDecoder::new(limits(max, 100))), &bytes, true);
        assert_eq!(out.error, Some(Error::HeadTooLarge), "{max}");
        assert_eq!(
            out.left.len(),
            max,
            "{max}: stopped as soon as the limit was reached"
        );
    }
}

#[test]
fn endless_header_block_stops_at_the_limit() {
    let limits = Limits::default();
    let mut dec = RequestDecoder::new(limits);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\n");
    let line = format!("X-Pad: {}\r\n", "p".repeat(1000));
    let mut fed = 0;
    let err = loop {
        buf.extend_from_slice(line.as_bytes());
        fed += 1;
        assert!(fed < 1000, "never stopped");
        match dec.decode(&mut buf) {
            Ok(None) => assert!(buf.len() < limits.max_head_bytes),
            Ok(Some(ev)) => panic!("unexpected event {ev:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(err, Error::HeadTooLarge);
    assert!(buf.len() < limits.max_head_bytes + line.len());
    // Stays failed.
    assert_eq!(dec.decode(&mut buf), Err(Error::HeadTooLarge));
}

#[test]
fn head_fed_byte_by_byte_is_scanned_once() {
    // A head near the limit, fed one byte per call: linear work if the scan resumes where it
    // stopped (a decoder that rescanned would do ~1.8e9 byte checks here).
    let head = request_head_of(60 * 1024 - 1);
    let mut dec = RequestDecoder::new(Limits::default());
    let mut buf = BytesMut::with_capacity(head.len());
    let mut got = None;
    for &b in head.as_bytes() {
        buf.extend_from_slice(&[b]);
        if let Some(ev) = dec.decode(&mut buf).unwrap() {
            got = Some(ev);
        }
    }
    assert!(matches!(got, Some(RequestEvent::Head(_))));
    assert!(buf.is_empty());
}

#[test]
fn a_method_that_fills_the_limit_is_a_bad_request_not_a_long_uri() {
    // 100 KB of method and nothing else yet, fed in pieces.
    let method = "A".repeat(100 * 1024);
    let chunks: Vec<&[u8]> = method.as_bytes().chunks(4096).collect();
    let out = run(
        Server(RequestDecoder::new(limits(128, 100))),
        &chunks,
        false,
    );
    assert_eq!(out.error, Some(Error::MethodTooLong));
    assert_eq!(Error::MethodTooLong.status(), 400);
    // Empty lines before it (which a server skips) do not count as a space.
    let line = format!("\r\n\r\n{}", "A".repeat(200));
    let out = run(
        Server(RequestDecoder::new(limits(128, 100))),
        &[line.as_bytes()],
        false,
    );
    assert_eq!(out.error, Some(Error::MethodTooLong));
    // Once a space has come, the rest of an over-long line is the target: 414.
    let line = format!("GET /{}", "a".repeat(200));
    let out = run(
        Server(RequestDecoder::new(limits(128, 100))),
        &[line.as_bytes()],
        false,
    );
    assert_eq!(out.error, Some(Error::UriTooLong));
}

#[test]
fn request_line_over_the_limit_is_uri_too_long() {
    let line = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(200));
    let out = run(
        Server(RequestDecoder::new(limits(128, 100))),
        &[line.as_bytes()],
        false,
    );
    assert_eq!(out.error, Some(Error::UriTooLong));
    assert_eq!(Error::UriTooLong.status(), 414);
    // A request line that fits, with headers that do not, is a head too large.
    let head = format!(
        "GET /{} HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "a".repeat(50),
        "b".repeat(100)
    );
    let out = run(
        Server(RequestDecoder::new(limits(128, 100))),
        &[head.as_bytes()],
        false,
    );
    assert_eq!(out.error, Some(Error::HeadTooLarge));
}

#[test]
fn header_count() {
    let head = |n: usize| {
        let mut s = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 1..n {
            s.push_str(&format!("X-{i}: {i}\r\n"));
        }
        s + "\r\n"
    };
    let out = run(
        Server(RequestDecoder::new(limits(4096, 5))),
        &[head(5).as_bytes()],
        false,
    );
    assert_eq!(out.error, None);
    assert_eq!(out.events.len(), 2);
    let out = run(
        Server(RequestDecoder::new(limits(4096, 5))),
        &[head(6).as_bytes()],
        false,
    );
    assert_eq!(out.error, Some(Error::TooManyHeaders));
    assert_eq!(Error::TooManyHeaders.status(), 431);
    // The default allows 100.
    let out = run(
        Server(RequestDecoder::new(Limits::default())),
        &[head(100).as_bytes()],
        false,
    );
    assert_eq!(out.error, None);
    let out = run(
        Server(RequestDecoder::new(Limits::default())),
        &[head(101).as_bytes()],
        false,
    );
    assert_eq!(out.error, Some(Error::TooManyHeaders));
}

#[test]
fn trailer_limits() {
    let chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n";
    let big = format!("{chunked}T: {}\r\n\r\n", "t".repeat(300));
    let out = run(
        Server(RequestDecoder::new(limits(256, 100))),
        &[big.as_bytes()],
        false,
    );
    assert_eq!(out.error, Some(Error::TrailersTooLarge));
    let many = format!("{chunked}{}\r\n", "T: 1\r\n".repeat(4));
    let out = run(
        Server(RequestDecoder::new(limits(256, 3))),
        &[many.as_bytes()],
        false,
    );
    assert_eq!(out.error, Some(Error::TooManyHeaders));
    let few = format!("{chunked}{}\r\n", "T: 1\r\n".repeat(3));
    let out = run(
        Server(RequestDecoder::new(limits(256, 3))),
        &[few.as_bytes()],
        false,
    );
    assert_eq!(out.error, None);
}

#[test]
fn chunk_line_limit() {
    let chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    // "1;" + name + CRLF is exactly MAX_CHUNK_LINE bytes.
    let fits = format!(
        "{chunked}1;{}\r\nx\r\n0\r\n\r\n",
        "e".repeat(MAX_CHUNK_LINE - 4)
    );
    let out = run(
        Server(RequestDecoder::new(Limits::default())),
        &[fits.as_bytes()],
        false,
    );
    assert_eq!(out.error, None);
    let over = format!(
        "{chunked}1;{}\r\nx\r\n0\r\n\r\n",
        "e".repeat(MAX_CHUNK_LINE - 3)
    );
    let out = run(
        Server(RequestDecoder::new(Limits::default())),
        &[over.as_bytes()],
        false,
    );
    assert_eq!(out.error, Some(Error::ChunkLineTooLong));
    // An endless chunk line fed in pieces stops at the limit.
    let mut dec = RequestDecoder::new(Limits::default());
    let mut buf = BytesMut::from(chunked.as_bytes());
    assert!(matches!(
        dec.decode(&mut buf),
        Ok(Some(RequestEvent::Head(_)))
    ));
    buf.extend_from_slice(b"1;");
    let err = loop {
        buf.extend_from_slice(&[b'e'; 100]);
        assert!(buf.len() < 2 * MAX_CHUNK_LINE, "never stopped");
        match dec.decode(&mut buf) {
            Ok(None) => {}
            Ok(Some(ev)) => panic!("unexpected {ev:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(err, Error::ChunkLineTooLong);
}

#[test]
fn response_head_limit() {
    let status = format!("HTTP/1.1 200 {}\r\n\r\n", "r".repeat(200));
    let out = run(
        Client {
            dec: ResponseDecoder::new(limits(128, 100)),
            head_requests: Default::default(),
        },
        &[status.as_bytes()],
        false,
    );
    assert_eq!(out.error, Some(Error::HeadTooLarge));
    let head = format!("HTTP/1.1 200 OK\r\n{}\r\n", "X: y\r\n".repeat(6));
    let out = run(Client::new(limits(128, 5), &[]), &[head.as_bytes()], false);
    assert_eq!(out.error, Some(Error::TooManyHeaders));
}

#[test]
fn zero_limits_reject_without_panicking() {
    let mut dec = RequestDecoder::new(limits(0, 0));
    let mut buf = BytesMut::new();
    assert_eq!(dec.decode(&mut buf), Ok(None));
    buf.extend_from_slice(b"G");
    assert_eq!(dec.decode(&mut buf), Err(Error::MethodTooLong));
    let mut dec = RequestDecoder::new(limits(1024, 0));
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..]);
    assert_eq!(dec.decode(&mut buf), Err(Error::TooManyHeaders));
}
