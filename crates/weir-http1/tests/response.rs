//! Valid responses of every framing, each fed whole, byte by byte and split at every point.

mod common;

use common::{Client, Rs, X, assert_events, run_all_splits};
use weir_http1::{
    BodyKind, Bytes, BytesMut, Error, Limits, ResponseDecoder, ResponseEvent, Version,
};

use BodyKind::{Chunked, CloseDelimited, Empty, Length};
use X::{D, E, H};

/// (name, whether each request was HEAD, input, expected events)
type Case = (&'static str, &'static [bool], &'static str, Vec<X<Rs>>);

fn valid_cases() -> Vec<Case> {
    vec![
        (
            "content-length",
            &[],
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            vec![H(Rs(200, Length(5), true)), D("hello"), E],
        ),
        (
            "content-length zero",
            &[],
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            vec![H(Rs(200, Empty, true)), E],
        ),
        (
            "chunked with extensions and trailers",
            &[],
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
             4;a=b\r\nwiki\r\n5 ;c=\"d;e\"\r\npedia\r\ne\r\n in\r\n\r\nchunks.\r\n\
             0\r\nServer-Timing: db;dur=53\r\n\r\n",
            vec![
                H(Rs(200, Chunked, true)),
                D("wikipedia in\r\n\r\nchunks."),
                E,
            ],
        ),
        (
            "response to head with content-length",
            &[true, false],
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n\
             HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
            vec![
                H(Rs(200, Empty, true)),
                E,
                H(Rs(200, Length(2), true)),
                D("hi"),
                E,
            ],
        ),
        (
            "response to head with chunked",
            &[true],
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            vec![H(Rs(200, Empty, true)), E],
        ),
        (
            "100 continue then final",
            &[],
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
            vec![
                H(Rs(100, Empty, true)),
                H(Rs(201, Length(2), true)),
                D("ok"),
                E,
            ],
        ),
        (
            "several 1xx then final",
            &[],
            "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n\
             HTTP/1.1 204 No Content\r\n\r\n",
            vec![
                H(Rs(102, Empty, true)),
                H(Rs(103, Empty, true)),
                H(Rs(204, Empty, true)),
                E,
            ],
        ),
        (
            "204 with content-length 0 has no body",
            &[],
            "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
            vec![
                H(Rs(204, Empty, true)),
                E,
                H(Rs(200, Length(1), true)),
                D("x"),
                E,
            ],
        ),
        (
            "304 with content-length has no body",
            &[],
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\nETag: \"x\"\r\n\r\n",
            vec![H(Rs(304, Empty, true)), E],
        ),
        (
            "304 with transfer-encoding has no body",
            &[],
            "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
            vec![H(Rs(304, Empty, true)), E],
        ),
        (
            "close-delimited",
            &[],
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end\r\n\r\nof the stream",
            vec![
                H(Rs(200, CloseDelimited, false)),
                D("until the end\r\n\r\nof the stream"),
                E,
            ],
        ),
        (
            "close-delimited and empty",
            &[],
            "HTTP/1.1 200 OK\r\n\r\n",
            vec![H(Rs(200, CloseDelimited, false)), E],
        ),
        (
            "a higher minor version is read as http/1.1",
            &[],
            "HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok",
            vec![H(Rs(200, Length(2), true)), D("ok"), E],
        ),
        (
            "identical content-lengths are accepted from an origin",
            &[],
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2, 2\r\n\r\nok",
            vec![H(Rs(200, Length(2), true)), D("ok"), E],
        ),
        (
            "http/1.0 closes by default",
            &[],
            "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
            vec![H(Rs(200, Length(2), false)), D("ok"), E],
        ),
        (
            "http/1.0 keep-alive",
            &[],
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
            vec![H(Rs(200, Length(2), true)), D("ok"), E],
        ),
        (
            "http/1.0 close-delimited",
            &[],
            "HTTP/1.0 200 OK\r\n\r\nbody",
            vec![H(Rs(200, CloseDelimited, false)), D("body"), E],
        ),
        (
            "connection close",
            &[],
            "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
            vec![H(Rs(500, Length(1), false)), D("x"), E],
        ),
        (
            "empty and missing reason phrase",
            &[],
            "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\nHTTP/1.1 404\r\nContent-Length: 0\r\n\r\n",
            vec![H(Rs(200, Empty, true)), E, H(Rs(404, Empty, true)), E],
        ),
        (
            "pipelined responses",
            &[false, true, false],
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na\
             HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n\
             HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nc\r\n0\r\n\r\n",
            vec![
                H(Rs(200, Length(1), true)),
                D("a"),
                E,
                H(Rs(200, Empty, true)),
                E,
                H(Rs(200, Chunked, true)),
                D("c"),
                E,
            ],
        ),
    ]
}

#[test]
fn valid_responses_at_every_split() {
    for (name, heads, input, want) in valid_cases() {
        let out = run_all_splits(
            || Client::new(Limits::default(), heads),
            input.as_bytes(),
            true,
        );
        assert_eq!(out.error, None, "{name}");
        assert!(out.left.is_empty(), "{name}: left {:?}", out.left);
        assert_events(name, &out.events, &want, |e: &Rs, r| e.matches(r));
    }
}

fn decode_all(dec: &mut ResponseDecoder, buf: &mut BytesMut) -> Vec<ResponseEvent> {
    let mut events = Vec::new();
    while let Some(ev) = dec.decode(buf).unwrap() {
        events.push(ev);
    }
    events
}

#[test]
fn status_line_fields() {
    let mut dec = ResponseDecoder::new(Limits::default());
    let mut buf = BytesMut::from(
        &b"HTTP/1.0 418 I'm a\tteapot \r\nServer: x\r\nContent-Length: 0\r\n\r\n"[..],
    );
    let events = decode_all(&mut dec, &mut buf);
    let ResponseEvent::Head(r) = &events[0] else {
        panic!("no head");
    };
    assert_eq!(r.head.version, Version::Http10);
    assert_eq!(r.head.status, 418);
    assert_eq!(r.head.reason, "I'm a\tteapot ");
    assert_eq!(r.head.headers.get("server").unwrap(), "x");
    // Room for the fields a proxy adds, so adding them does not grow the list.
    assert!(r.head.headers.capacity() >= r.head.headers.len() + weir_http1::SPARE_FIELDS);
}

#[test]
fn switching_protocols_stops_decoding() {
    let mut dec = ResponseDecoder::new(Limits::default());
    let mut buf = BytesMut::from(
        &b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\x81\x05hello"[..],
    );
    let Ok(Some(ResponseEvent::Head(r))) = dec.decode(&mut buf) else {
        panic!("no head");
    };
    assert_eq!((r.head.status, r.body, r.keep_alive), (101, Empty, false));
    assert_eq!(
        &buf[..],
        b"\x81\x05hello",
        "bytes after a 101 are not consumed"
    );
    assert_eq!(dec.decode(&mut buf), Err(Error::SwitchedProtocols));
    assert_eq!(dec.decode_eof(&mut buf), Err(Error::SwitchedProtocols));
}

#[test]
fn idle_only_between_final_responses() {
    let mut dec = ResponseDecoder::new(Limits::default());
    assert!(dec.is_idle());
    let mut buf = BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\n"[..]);
    assert!(matches!(
        dec.decode(&mut buf),
        Ok(Some(ResponseEvent::Head(_)))
    ));
    assert!(!dec.is_idle(), "a 1xx leaves the final response pending");
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert_eq!(dec.decode_eof(&mut buf), Err(Error::Incomplete));

    let mut dec = ResponseDecoder::new(Limits::default());
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP"[..]);
    let events = decode_all(&mut dec, &mut buf);
    assert_eq!(events.len(), 3);
    assert_eq!(events[1], ResponseEvent::Data(Bytes::from_static(b"x")));
    assert!(!dec.is_idle(), "part of the next response has been seen");
    assert_eq!(&buf[..], b"HTTP");
}

#[test]
fn head_request_flag_applies_to_one_response() {
    let mut dec = ResponseDecoder::new(Limits::default());
    dec.expect(true);
    let mut buf = BytesMut::from(
        &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"[..],
    );
    let events = decode_all(&mut dec, &mut buf);
    let bodies: Vec<BodyKind> = events
        .iter()
        .filter_map(|e| match e {
            ResponseEvent::Head(r) => Some(r.body),
            _ => None,
        })
        .collect();
    // The HEAD flag survives the 1xx and covers the final response only.
    assert_eq!(bodies, [Empty, Empty, Length(3)]);
}

#[test]
fn eof_ends_a_close_delimited_body_only() {
    let mut dec = ResponseDecoder::new(Limits::default());
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\n\r\npartial"[..]);
    assert!(matches!(
        dec.decode(&mut buf),
        Ok(Some(ResponseEvent::Head(_)))
    ));
    assert_eq!(
        dec.decode(&mut buf),
        Ok(Some(ResponseEvent::Data(Bytes::from_static(b"partial"))))
    );
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert_eq!(dec.decode_eof(&mut buf), Ok(Some(ResponseEvent::End)));
    assert_eq!(dec.decode_eof(&mut buf), Ok(None));

    let mut dec = ResponseDecoder::new(Limits::default());
    let mut buf = BytesMut::new();
    assert_eq!(
        dec.decode_eof(&mut buf),
        Ok(None),
        "clean close between responses"
    );
}
