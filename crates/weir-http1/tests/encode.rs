//! Encoders: exact output, and round trips through the decoders.

mod common;

use common::{Client, Ev, run, server};
use weir_http1::{
    BodyKind, Bytes, CRLF, Headers, LAST_CHUNK, RequestHead, ResponseHead, Version, chunk_header,
    encode_request_head, encode_response_head, reason_phrase,
};

fn headers(fields: &[(&'static str, &'static str)]) -> Headers {
    let mut h = Headers::new();
    for (n, v) in fields {
        h.append(
            Bytes::from_static(n.as_bytes()),
            Bytes::from_static(v.as_bytes()),
        );
    }
    h
}

fn request(
    method: &'static str,
    target: &'static str,
    version: Version,
    fields: &[(&'static str, &'static str)],
) -> RequestHead {
    RequestHead {
        method: Bytes::from_static(method.as_bytes()),
        target: Bytes::from_static(target.as_bytes()),
        version,
        headers: headers(fields),
    }
}

fn response(
    version: Version,
    status: u16,
    reason: &'static str,
    fields: &[(&'static str, &'static str)],
) -> ResponseHead {
    ResponseHead {
        version,
        status,
        reason: Bytes::from_static(reason.as_bytes()),
        headers: headers(fields),
    }
}

#[test]
fn request_head_bytes() {
    let head = request(
        "POST",
        "/a?b",
        Version::Http11,
        &[("Host", "x"), ("X-Two", "1"), ("x-two", "2")],
    );
    let mut out = Vec::new();
    encode_request_head(&head, true, &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "POST /a?b HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nx-two: 2\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let mut out = b"prefix".to_vec();
    encode_request_head(&request("GET", "/", Version::Http10, &[]), false, &mut out);
    assert_eq!(out, b"prefixGET / HTTP/1.0\r\n\r\n", "appends to dst");
}

#[test]
fn response_head_bytes() {
    let mut out = Vec::new();
    encode_response_head(
        &response(Version::Http11, 200, "", &[("Content-Length", "0")]),
        false,
        &mut out,
    );
    assert_eq!(out, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let mut out = Vec::new();
    encode_response_head(&response(Version::Http10, 404, "Nope", &[]), true, &mut out);
    assert_eq!(
        out,
        b"HTTP/1.0 404 Nope\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let mut out = Vec::new();
    encode_response_head(&response(Version::Http11, 599, "", &[]), false, &mut out);
    assert_eq!(
        out, b"HTTP/1.1 599 \r\n\r\n",
        "unknown status: empty reason, SP kept"
    );
}

#[test]
fn reason_phrases() {
    for (status, reason) in [
        (100, "Continue"),
        (200, "OK"),
        (204, "No Content"),
        (304, "Not Modified"),
        (400, "Bad Request"),
        (413, "Content Too Large"),
        (414, "URI Too Long"),
        (431, "Request Header Fields Too Large"),
        (501, "Not Implemented"),
        (502, "Bad Gateway"),
        (503, "Service Unavailable"),
        (504, "Gateway Timeout"),
        (505, "HTTP Version Not Supported"),
        (299, ""),
    ] {
        assert_eq!(reason_phrase(status), reason);
    }
}

#[test]
fn request_heads_round_trip() {
    let heads = [
        request("GET", "/", Version::Http11, &[("Host", "example.com")]),
        request(
            "GET",
            "/a/b?c=d&e",
            Version::Http11,
            &[
                ("Host", "h"),
                ("Accept", "*/*"),
                ("X-Empty", ""),
                ("x-dup", "1"),
                ("X-Dup", "2"),
            ],
        ),
        request("DELETE", "/x", Version::Http10, &[]),
        request("OPTIONS", "*", Version::Http11, &[("Host", "h")]),
        request(
            "GET",
            "http://h:8080/p",
            Version::Http11,
            &[("Host", "h:8080"), ("Via", "1.1 weir"), ("X", "a \t b")],
        ),
        request(
            "POST",
            "/up",
            Version::Http11,
            &[("Host", "h"), ("Content-Length", "3")],
        ),
    ];
    for head in heads {
        let mut wire = Vec::new();
        encode_request_head(&head, false, &mut wire);
        let out = run(server(), &[&wire], false);
        assert_eq!(out.error, None, "{head:?}");
        let Some(Ev::Head(r)) = out.events.first() else {
            panic!("no head for {head:?}")
        };
        assert_eq!(r.head, head);
    }
}

#[test]
fn chunked_request_round_trip() {
    let head = request("PUT", "/f", Version::Http11, &[("Host", "h")]);
    let mut wire = Vec::new();
    encode_request_head(&head, true, &mut wire);
    for piece in [&b"hello "[..], &[b'x'; 300], b"end"] {
        wire.extend_from_slice(&chunk_header(piece.len()));
        wire.extend_from_slice(piece);
        wire.extend_from_slice(CRLF);
    }
    wire.extend_from_slice(LAST_CHUNK);
    let out = run(server(), &[&wire], true);
    assert_eq!(out.error, None);
    let [Ev::Head(r), Ev::Data(data), Ev::End] = &out.events[..] else {
        panic!("{:?}", out.events)
    };
    assert_eq!(r.body, BodyKind::Chunked);
    let mut want_headers = head.headers.clone();
    want_headers.append("transfer-encoding", "chunked");
    assert_eq!(r.head.headers, want_headers);
    assert_eq!(data.len(), 6 + 300 + 3);
    assert!(data.starts_with(b"hello x") && data.ends_with(b"xend"));
}

#[test]
fn response_heads_round_trip() {
    let heads = [
        response(Version::Http11, 200, "OK", &[("Content-Length", "0")]),
        response(
            Version::Http11,
            404,
            "Not Found",
            &[("Content-Length", "0"), ("Server", "weir")],
        ),
        response(
            Version::Http10,
            302,
            "Found",
            &[("Location", "/x"), ("Content-Length", "0")],
        ),
        response(Version::Http11, 204, "Custom reason, with spaces", &[]),
        response(Version::Http11, 599, "", &[("Content-Length", "0")]),
        response(
            Version::Http11,
            103,
            "Early Hints",
            &[("Link", "</a.css>; rel=preload")],
        ),
    ];
    for head in heads {
        let mut wire = Vec::new();
        encode_response_head(&head, false, &mut wire);
        let out = run(Client::new(Default::default(), &[]), &[&wire], false);
        assert_eq!(out.error, None, "{head:?}");
        let Some(Ev::Head(r)) = out.events.first() else {
            panic!("no head for {head:?}")
        };
        assert_eq!(r.head, head);
    }
}

#[test]
fn canonical_reason_decodes_back() {
    let head = response(Version::Http11, 503, "", &[("Content-Length", "0")]);
    let mut wire = Vec::new();
    encode_response_head(&head, false, &mut wire);
    let out = run(Client::new(Default::default(), &[]), &[&wire], false);
    let Some(Ev::Head(r)) = out.events.first() else {
        panic!()
    };
    assert_eq!(r.head.reason, "Service Unavailable");
}
