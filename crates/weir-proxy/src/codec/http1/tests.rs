//! The HTTP/1 codecs on bytes in memory: what goes out for each kind of exchange.

use super::*;
use weir_http1::Headers;

fn concat(out: &[Bytes]) -> String {
    out.iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

/// The stream key of a connection's first request.
const FIRST: StreamKey = StreamKey(1);

/// A server that decoded `request`, the connection's first, and what it decoded.
fn server_with(request: &str) -> (Http1Server, Vec<RequestPart>) {
    let mut server = Http1Server::new(Limits::default(), HeaderKeyFormat::Lower);
    let mut input = BytesMut::from(request);
    let mut parts = Vec::new();
    while let Some((key, part)) = server.decode(&mut input).expect("valid request") {
        assert_eq!(key, FIRST);
        parts.push(part);
    }
    (server, parts)
}

fn response(status: u16, headers: &[(&'static str, &'static str)]) -> ResponseHead {
    let mut h = Headers::new();
    for &(n, v) in headers {
        h.append(n, v);
    }
    ResponseHead {
        version: Version::Http11,
        status,
        reason: Bytes::new(),
        headers: h,
    }
}

#[test]
fn a_response_without_length_is_chunked_for_http11_and_kept_alive() {
    let (mut server, parts) = server_with("GET / HTTP/1.1\r\nhost: a\r\n\r\n");
    assert!(matches!(&parts[..], [RequestPart::Headers(s), RequestPart::End] if s.end_stream));
    let mut out = Vec::new();
    let mut head = response(200, &[]);
    server.encode_headers(FIRST, &mut head, None, false, false, &mut out);
    server.encode_data(FIRST, Bytes::from_static(b"hello"), &mut out);
    server.encode_end(FIRST, &mut out);
    assert_eq!(
        concat(&out),
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    );
    assert!(!server.closes_connection());
}

#[test]
fn the_status_line_carries_envoys_phrase_not_the_origins() {
    for (status, line) in [
        (200, "HTTP/1.1 200 OK\r\n"),
        (451, "HTTP/1.1 451 Unknown\r\n"),
        (299, "HTTP/1.1 299 Unknown\r\n"),
    ] {
        let (mut server, _) = server_with("GET / HTTP/1.1\r\nhost: a\r\n\r\n");
        let mut out = Vec::new();
        let mut head = response(status, &[("content-length", "0")]);
        head.reason = Bytes::from_static(b"Echo");
        server.encode_headers(FIRST, &mut head, None, true, false, &mut out);
        assert!(concat(&out).starts_with(line), "{}", concat(&out));
    }
}

#[test]
fn a_refused_http10_request_gets_an_http11_answer_that_closes() {
    let (mut server, _) = server_with("GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n");
    assert!(server.http10(FIRST));
    server.refuse_http10(FIRST);
    let mut out = Vec::new();
    let mut head = response(426, &[("content-length", "0")]);
    server.encode_headers(FIRST, &mut head, None, true, false, &mut out);
    assert_eq!(
        concat(&out),
        "HTTP/1.1 426 Upgrade Required\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    assert!(server.closes_connection());
}

#[test]
fn an_http10_client_gets_a_close_delimited_body_and_connection_close() {
    let (mut server, _) = server_with("GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n");
    let mut out = Vec::new();
    let mut head = response(200, &[]);
    server.encode_headers(FIRST, &mut head, None, false, false, &mut out);
    server.encode_data(FIRST, Bytes::from_static(b"x"), &mut out);
    server.encode_end(FIRST, &mut out);
    assert_eq!(
        concat(&out),
        "HTTP/1.0 200 OK\r\nconnection: close\r\n\r\nx"
    );
    assert!(server.closes_connection() && server.close_delimited(FIRST));
}

#[test]
fn an_http10_keep_alive_client_is_told_the_connection_stays() {
    let (mut server, _) = server_with("GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n");
    let mut out = Vec::new();
    let mut head = response(204, &[]);
    server.encode_headers(FIRST, &mut head, None, true, false, &mut out);
    assert_eq!(
        concat(&out),
        "HTTP/1.0 204 No Content\r\nconnection: keep-alive\r\n\r\n"
    );
    assert!(!server.closes_connection());
    assert_eq!(server.protocol(FIRST), "HTTP/1.0");
}

#[test]
fn an_answer_before_the_body_ends_closes_the_connection() {
    let (mut server, parts) =
        server_with("POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 10\r\n\r\nabc");
    assert!(matches!(&parts[..], [RequestPart::Headers(s), RequestPart::Data(_)] if !s.end_stream));
    let mut out = Vec::new();
    let mut head = response(413, &[("content-length", "0")]);
    server.encode_headers(FIRST, &mut head, None, true, false, &mut out);
    assert!(server.closes_connection());
    assert_eq!(
        head.headers.get("connection").map(|v| &v[..]),
        Some(&b"close"[..])
    );
}

#[test]
fn a_head_response_carries_no_body_bytes() {
    let (mut server, _) = server_with("HEAD / HTTP/1.1\r\nhost: a\r\n\r\n");
    let mut out = Vec::new();
    let mut head = response(200, &[("content-length", "5")]);
    server.encode_headers(FIRST, &mut head, None, false, false, &mut out);
    assert_eq!(
        server.encode_data(FIRST, Bytes::from_static(b"hello"), &mut out),
        0
    );
    server.encode_end(FIRST, &mut out);
    assert_eq!(concat(&out), "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
}

#[test]
fn the_proxy_can_close_a_connection_the_client_would_keep() {
    let (mut server, _) = server_with("GET / HTTP/1.1\r\nhost: a\r\n\r\n");
    let mut out = Vec::new();
    let mut head = response(200, &[("content-length", "0")]);
    server.encode_headers(FIRST, &mut head, None, true, true, &mut out);
    assert!(server.closes_connection());
    assert!(concat(&out).contains("connection: close\r\n"));
}

#[test]
fn a_request_without_length_goes_upstream_chunked() {
    let (_, parts) = server_with(
        "POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    let [
        RequestPart::Headers(start),
        RequestPart::Data(data),
        RequestPart::End,
    ] = &parts[..]
    else {
        panic!("parts: {parts:?}");
    };
    let mut client = Http1Client::new(HeaderKeyFormat::Lower);
    let mut out = Vec::new();
    let mut head = start.head.clone();
    head.headers.remove("transfer-encoding");
    client.encode_headers(&head, None, start.end_stream, false, &mut out);
    client.encode_data(data.clone(), &mut out);
    client.encode_end(&mut out);
    assert_eq!(
        concat(&out),
        "POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    );
}

#[test]
fn an_http10_request_goes_upstream_as_http11() {
    let (_, parts) = server_with("GET / HTTP/1.0\r\nhost: a\r\n\r\n");
    let RequestPart::Headers(start) = &parts[0] else {
        panic!("parts: {parts:?}");
    };
    let mut client = Http1Client::new(HeaderKeyFormat::Lower);
    let mut out = Vec::new();
    client.encode_headers(&start.head, None, true, false, &mut out);
    assert_eq!(concat(&out), "GET / HTTP/1.1\r\nhost: a\r\n\r\n");
}

/// A client codec that sent a plain `GET /` (no upgrade).
fn client_after_get() -> Http1Client {
    let parts = server_with("GET / HTTP/1.1\r\nhost: a\r\n\r\n").1;
    let Some(RequestPart::Headers(start)) = parts.into_iter().next() else {
        panic!("a head")
    };
    let mut client = Http1Client::new(HeaderKeyFormat::Lower);
    client.encode_headers(&start.head, None, true, false, &mut Vec::new());
    client
}

/// The parts `decode` makes of `input` until it needs more bytes (statuses for heads), and
/// what is left of `input`.
fn decoded(client: &mut Http1Client, input: &str) -> (Vec<String>, BytesMut) {
    let mut input = BytesMut::from(input);
    let mut parts = Vec::new();
    while let Some(part) = client.decode(&mut input).expect("valid") {
        parts.push(match part {
            ResponsePart::Headers {
                head, end_stream, ..
            } => {
                format!("{} end={end_stream}", head.status)
            }
            ResponsePart::Data(data) => format!("data {}", data.len()),
            ResponsePart::End => "end".into(),
        });
    }
    (parts, input)
}

#[test]
fn informational_responses_are_dropped_and_101_is_refused() {
    let mut client = client_after_get();
    let (parts, _) = decoded(
        &mut client,
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
    );
    assert_eq!(parts, ["200 end=false", "data 2", "end"]);
    assert_eq!(client.streams_available(), 1);

    let mut client = client_after_get();
    let mut input = BytesMut::from("HTTP/1.1 101 Switching Protocols\r\n\r\n");
    assert_eq!(
        client.decode(&mut input).unwrap_err(),
        Error::SwitchedProtocols
    );
}

#[test]
fn a_close_delimited_response_ends_at_eof_and_a_cut_one_is_incomplete() {
    let mut client = client_after_get();
    let (parts, mut rest) = decoded(&mut client, "HTTP/1.1 200 OK\r\n\r\nbody");
    assert_eq!(parts, ["200 end=false", "data 4"]);
    assert!(matches!(
        client.decode_eof(&mut rest),
        Ok(Some(ResponsePart::End))
    ));
    assert_eq!(client.streams_available(), 0);

    let mut client = client_after_get();
    let (parts, mut rest) = decoded(
        &mut client,
        "HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nbody",
    );
    assert_eq!(parts, ["200 end=false", "data 4"]);
    assert_eq!(client.decode_eof(&mut rest).unwrap_err(), Error::Incomplete);
}

#[test]
fn a_101_to_an_upgrade_opens_a_tunnel_of_raw_bytes() {
    let parts = server_with(
        "GET /chat HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\nraw",
    )
    .1;
    let [RequestPart::Headers(start), RequestPart::Data(data)] = &parts[..] else {
        panic!("{parts:?}")
    };
    assert!(
        !start.end_stream,
        "a tunnel's request runs until the client closes"
    );
    assert_eq!(start.upgrade.as_deref(), Some(&b"websocket"[..]));
    assert_eq!(&data[..], b"raw", "what follows the head is the tunnel's");
    let mut client = Http1Client::new(HeaderKeyFormat::Lower);
    let mut out = Vec::new();
    client.encode_headers(&start.head, None, false, true, &mut out);
    client.encode_data(data.clone(), &mut out);
    client.encode_end(&mut out);
    assert!(
        concat(&out).ends_with("\r\n\r\nrawFIN"),
        "no chunking: {}",
        concat(&out)
    );
    let (parts, mut rest) = decoded(
        &mut client,
        "HTTP/1.1 101 Switching Protocols\r\n\r\nframes",
    );
    assert_eq!(parts, ["101 end=false", "data 6"]);
    assert!(matches!(
        client.decode_eof(&mut rest),
        Ok(Some(ResponsePart::End))
    ));
    assert_eq!(
        client.streams_available(),
        0,
        "a tunnel's connection is never reused"
    );
}

// ---------------------------------------------------------------------------------------------
// header_key_format
// ---------------------------------------------------------------------------------------------

const PRESERVE: HeaderKeyFormat = HeaderKeyFormat::PreserveCase {
    forward_reason_phrase: false,
    proper_case_envoy_headers: false,
};

/// A request decoded by a server codec with `format`: its head and the names it kept.
fn request_with(format: HeaderKeyFormat, request: &str) -> RequestStart {
    let mut server = Http1Server::new(Limits::default(), format);
    let mut input = BytesMut::from(request);
    match server.decode(&mut input).expect("valid request") {
        Some((_, RequestPart::Headers(start))) => start,
        other => panic!("not a head: {other:?}"),
    }
}

/// The head a client codec with `format` writes for `start` (plus an `x-added` of weir's own).
fn upstream_head(format: HeaderKeyFormat, start: &RequestStart) -> String {
    let mut head = start.head.clone();
    head.headers.append("x-added", "1");
    let mut client = Http1Client::new(format);
    let mut out = Vec::new();
    client.encode_headers(&head, start.names.as_ref(), false, false, &mut out);
    concat(&out)
}

const MIXED: &str = "POST /p HTTP/1.1\r\nHost: a\r\nX-Mixed_case: 1\r\nx-DUP: a\r\nX-Dup: b\r\n\
                     content-length: 2\r\n\r\nok";

#[test]
fn names_go_upstream_in_lower_case_unless_the_cluster_asks_for_proper_case() {
    let start = request_with(HeaderKeyFormat::Lower, MIXED);
    assert_eq!(start.names, None, "nothing is kept without preserve_case");
    assert_eq!(
        upstream_head(HeaderKeyFormat::Lower, &start),
        "POST /p HTTP/1.1\r\nhost: a\r\nx-mixed_case: 1\r\nx-dup: a\r\nx-dup: b\r\n\
         content-length: 2\r\nx-added: 1\r\n\r\n"
    );
    assert_eq!(
        upstream_head(HeaderKeyFormat::ProperCase, &start),
        "POST /p HTTP/1.1\r\nHost: a\r\nX-Mixed_Case: 1\r\nX-Dup: a\r\nX-Dup: b\r\n\
         Content-Length: 2\r\nX-Added: 1\r\n\r\n"
    );
}

#[test]
fn names_the_connection_manager_kept_go_upstream_as_the_client_spelled_them() {
    let start = request_with(PRESERVE, MIXED);
    // The request's own spelling wins over the cluster's format; a name repeated in another
    // case takes the first spelling (as Envoy's formatter); weir's own are in lower case.
    let want = "POST /p HTTP/1.1\r\nHost: a\r\nX-Mixed_case: 1\r\nx-DUP: a\r\nx-DUP: b\r\n\
                content-length: 2\r\nx-added: 1\r\n\r\n";
    assert_eq!(upstream_head(HeaderKeyFormat::Lower, &start), want);
    assert_eq!(upstream_head(HeaderKeyFormat::ProperCase, &start), want);
    let proper_others = HeaderKeyFormat::PreserveCase {
        forward_reason_phrase: false,
        proper_case_envoy_headers: true,
    };
    let start = request_with(proper_others, MIXED);
    assert!(upstream_head(HeaderKeyFormat::Lower, &start).ends_with("\r\nX-Added: 1\r\n\r\n"));
}

/// The response a client codec with `format` decodes from `wire`, as a server codec with
/// `server_format` writes it (plus a `date` of weir's own).
fn downstream_head(format: HeaderKeyFormat, server_format: HeaderKeyFormat, wire: &str) -> String {
    let start = request_with(server_format, "GET / HTTP/1.1\r\nhost: a\r\n\r\n");
    let mut client = Http1Client::new(format);
    client.encode_headers(&start.head, None, true, false, &mut Vec::new());
    let mut input = BytesMut::from(wire);
    let Some(ResponsePart::Headers {
        mut head, names, ..
    }) = client.decode(&mut input).expect("valid response")
    else {
        panic!("not a head");
    };
    head.headers.append("date", "now");
    let mut server = Http1Server::new(Limits::default(), server_format);
    server
        .decode(&mut BytesMut::from("GET / HTTP/1.1\r\nhost: a\r\n\r\n"))
        .unwrap();
    let mut out = Vec::new();
    server.encode_headers(FIRST, &mut head, names.as_ref(), true, false, &mut out);
    concat(&out)
}

const ORIGIN: &str = "HTTP/1.1 200 Fine Thanks\r\nX-Origin: o\r\nCONTENT-length: 0\r\n\r\n";

#[test]
fn response_names_go_downstream_as_the_connection_manager_says() {
    assert_eq!(
        downstream_head(HeaderKeyFormat::Lower, HeaderKeyFormat::Lower, ORIGIN),
        "HTTP/1.1 200 OK\r\nx-origin: o\r\ncontent-length: 0\r\ndate: now\r\n\r\n"
    );
    assert_eq!(
        downstream_head(HeaderKeyFormat::Lower, HeaderKeyFormat::ProperCase, ORIGIN),
        "HTTP/1.1 200 OK\r\nX-Origin: o\r\nContent-Length: 0\r\nDate: now\r\n\r\n"
    );
    // The connection manager's preserve_case keeps request names only: what it writes itself
    // is in lower case.
    assert_eq!(
        downstream_head(HeaderKeyFormat::Lower, PRESERVE, ORIGIN),
        "HTTP/1.1 200 OK\r\nx-origin: o\r\ncontent-length: 0\r\ndate: now\r\n\r\n"
    );
}

#[test]
fn names_and_phrase_the_cluster_kept_go_downstream_as_the_origin_sent_them() {
    assert_eq!(
        downstream_head(PRESERVE, HeaderKeyFormat::ProperCase, ORIGIN),
        "HTTP/1.1 200 OK\r\nX-Origin: o\r\nCONTENT-length: 0\r\ndate: now\r\n\r\n"
    );
    let forward = HeaderKeyFormat::PreserveCase {
        forward_reason_phrase: true,
        proper_case_envoy_headers: true,
    };
    assert_eq!(
        downstream_head(forward, HeaderKeyFormat::Lower, ORIGIN),
        "HTTP/1.1 200 Fine Thanks\r\nX-Origin: o\r\nCONTENT-length: 0\r\nDate: now\r\n\r\n"
    );
    // An origin's empty phrase is not forwarded: Envoy's own goes out.
    let empty = "HTTP/1.1 404 \r\ncontent-length: 0\r\n\r\n";
    assert!(
        downstream_head(forward, HeaderKeyFormat::Lower, empty)
            .starts_with("HTTP/1.1 404 Not Found\r\n")
    );
}

#[test]
fn a_chunked_response_names_transfer_encoding_in_the_same_case() {
    let mut server = Http1Server::new(Limits::default(), HeaderKeyFormat::ProperCase);
    let mut input = BytesMut::from("GET / HTTP/1.1\r\nhost: a\r\n\r\n");
    server.decode(&mut input).expect("valid request");
    let mut out = Vec::new();
    server.encode_headers(
        FIRST,
        &mut response(200, &[("x-a", "1")]),
        None,
        false,
        true,
        &mut out,
    );
    assert_eq!(
        concat(&out),
        "HTTP/1.1 200 OK\r\nX-A: 1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
}

#[test]
fn pipelined_requests_are_streams_with_successive_keys_one_at_a_time() {
    let mut server = Http1Server::new(Limits::default(), HeaderKeyFormat::Lower);
    let mut input =
        BytesMut::from("GET /a HTTP/1.1\r\nhost: a\r\n\r\nGET /b HTTP/1.1\r\nhost: a\r\n\r\n");
    let mut out = Vec::new();
    for (expected, target) in [(StreamKey(1), "/a"), (StreamKey(2), "/b")] {
        assert!(server.may_start_stream(), "no response is under way");
        let Some((key, RequestPart::Headers(start))) = server.decode(&mut input).unwrap() else {
            panic!("a head first");
        };
        assert_eq!((key, &start.head.target[..]), (expected, target.as_bytes()));
        assert!(
            matches!(server.decode(&mut input).unwrap(), Some((k, RequestPart::End)) if k == key)
        );
        assert!(
            !server.may_start_stream(),
            "HTTP/1 carries one stream at a time"
        );
        let mut head = response(204, &[]);
        server.encode_headers(key, &mut head, None, true, false, &mut out);
        assert!(!server.may_start_stream(), "until its response has ended");
        server.encode_end(key, &mut out);
    }
    assert!(server.may_start_stream());
}

#[test]
fn a_tunnels_bytes_belong_to_its_stream() {
    let mut server = Http1Server::new(Limits::default(), HeaderKeyFormat::Lower);
    let mut input = BytesMut::from(
        "GET / HTTP/1.1\r\nhost: a\r\n\r\n\
         GET /ws HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\nhello",
    );
    let mut out = Vec::new();
    let mut decode = |server: &mut Http1Server| server.decode(&mut input).unwrap().unwrap();
    assert_eq!(decode(&mut server).0, StreamKey(1));
    assert_eq!(decode(&mut server).0, StreamKey(1));
    server.encode_headers(
        StreamKey(1),
        &mut response(204, &[]),
        None,
        true,
        false,
        &mut out,
    );
    server.encode_end(StreamKey(1), &mut out);
    let (key, part) = decode(&mut server);
    assert!(matches!(part, RequestPart::Headers(s) if s.upgrade.is_some()));
    assert_eq!(key, StreamKey(2));
    let mut switched = response(101, &[("connection", "upgrade"), ("upgrade", "websocket")]);
    server.encode_headers(key, &mut switched, None, false, false, &mut out);
    assert!(server.tunnel_open(key));
    assert!(matches!(decode(&mut server), (k, RequestPart::Data(d)) if k == key && d == "hello"));
}
