//! Message framing through the proxy: chunked bodies both ways, close-delimited responses to
//! HTTP/1.1 and HTTP/1.0 clients, HEAD, 204 and 304, pipelining, `Expect: 100-continue`, and
//! malformed requests, which get 400 and a closed connection without reaching the origin.

mod support;

use support::{
    Closed, Config, Origin, Reply, chunked_body, chunked_response, eventually, raw_response,
    response, sleep_ms,
};
use weir_http1::BodyKind;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// An origin that answers with the request's target as body.
fn target_echo() -> Origin {
    Origin::start(|req| Reply::Send(response(200, &[], req.target.as_bytes())))
}

#[test]
fn chunked_request_body_is_rechunked_for_the_origin() {
    let origin = Origin::ok("got it");
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    let mut request =
        b"POST /chunked HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    request.extend_from_slice(
        b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: t\r\n\r\n",
    );
    let resp = client.request(&request);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"got it");

    let req = origin.last();
    assert_eq!(req.framing, BodyKind::Chunked);
    assert_eq!(req.body, b"hello world");
    assert_eq!(req.header_all("transfer-encoding"), vec!["chunked"]);
    assert!(!req.has("content-length"));
    // Re-framed by the proxy: its own chunk lines, no client extensions, an empty trailer.
    assert!(
        !contains(&req.raw, b"ext=1"),
        "{}",
        String::from_utf8_lossy(&req.raw)
    );
    assert!(req.raw.ends_with(b"0\r\n\r\n"));

    // A large chunked body sent in uneven pieces arrives byte-exact.
    let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let pieces: Vec<&[u8]> = body.chunks(12_345).collect();
    let mut request =
        b"PUT /big HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    request.extend_from_slice(&chunked_body(&pieces, true));
    let resp = client.request(&request);
    assert_eq!(resp.status, 200);
    let req = origin.last();
    assert_eq!(req.method, "PUT");
    assert!(req.body == body, "the chunked body changed on the way");
    assert_eq!(
        origin.accepted(),
        1,
        "the upstream connection was reused after both"
    );
}

#[test]
fn chunked_request_sent_slowly_in_pieces() {
    let origin = Origin::ok("ok");
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    client.send("POST /slow HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n");
    for piece in [
        &b"3\r\nab"[..],
        b"c\r\n",
        b"4\r\ndefg\r",
        b"\n0\r\n",
        b"\r\n",
    ] {
        sleep_ms(20);
        client.send(piece);
    }
    let resp = client.read_response(false);
    assert_eq!(resp.status, 200);
    assert_eq!(origin.last().body, b"abcdefg");
}

#[test]
fn chunked_response_reaches_the_client() {
    let origin = Origin::start(|_| {
        Reply::Send(chunked_response(
            200,
            &[("content-type", "text/plain")],
            &[b"first ", b"second ", b"third"],
        ))
    });
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    for _ in 0..3 {
        let resp = client.get("/");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.framing, BodyKind::Chunked);
        assert_eq!(resp.header_all("transfer-encoding"), vec!["chunked"]);
        assert!(!resp.has("content-length"));
        assert_eq!(resp.body, b"first second third");
        assert!(resp.raw.ends_with(b"0\r\n\r\n"));
        assert!(resp.keep_alive);
    }
    assert_eq!(origin.accepted(), 1);
}

#[test]
fn close_delimited_response_becomes_chunked_for_http11() {
    let origin = Origin::start(|_| {
        Reply::SendClose(raw_response(
            200,
            &[("content-type", "text/plain")],
            b"until close",
        ))
    });
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    for _ in 0..2 {
        let resp = client.get("/");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.framing, BodyKind::Chunked);
        assert!(resp.complete);
        assert_eq!(resp.body, b"until close");
        // The client connection is not tied to the origin's.
        assert!(resp.keep_alive);
    }
    assert_eq!(
        origin.accepted(),
        2,
        "a close-delimited connection is never reused"
    );
}

#[test]
fn close_delimited_response_stays_close_delimited_for_http10() {
    let origin = Origin::start(|_| {
        Reply::SendClose(raw_response(
            200,
            &[("content-type", "text/plain")],
            b"old school",
        ))
    });
    let proxy = Config::forward_all(&[origin.addr()])
        .accept_http10()
        .start();
    let mut client = proxy.client();
    let resp =
        client.request("GET / HTTP/1.0\r\nHost: example.com\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.framing, BodyKind::CloseDelimited);
    assert!(!resp.has("transfer-encoding"));
    assert!(!resp.has("content-length"));
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(resp.body, b"old school");
    assert!(resp.complete);
}

#[test]
fn head_response_has_length_and_no_body() {
    let origin = Origin::start(|req| {
        if req.method == "HEAD" {
            Reply::Send(raw_response(
                200,
                &[("content-length", "1234"), ("x-head", "yes")],
                b"",
            ))
        } else {
            Reply::Send(response(200, &[], b"after head"))
        }
    });
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    let resp = client.request("HEAD /thing HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), Some("1234"));
    assert_eq!(resp.header("x-head"), Some("yes"));
    assert!(resp.body.is_empty());
    assert!(resp.raw.ends_with(b"\r\n\r\n"), "nothing after the head");
    assert_eq!(origin.last().method, "HEAD");
    // The next response on the same connections is in sync.
    let resp = client.get("/next");
    assert_eq!(resp.body, b"after head");
    assert_eq!(origin.accepted(), 1);
}

#[test]
fn head_response_with_chunked_header_has_no_body() {
    let origin = Origin::start(|req| {
        if req.method == "HEAD" {
            Reply::Send(raw_response(200, &[("transfer-encoding", "chunked")], b""))
        } else {
            Reply::Send(response(200, &[], b"in sync"))
        }
    });
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    let resp = client.request("HEAD / HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(resp.status, 200);
    assert!(resp.body.is_empty());
    assert_eq!(client.get("/").body, b"in sync");
}

#[test]
fn no_content_and_not_modified() {
    let origin = Origin::start(|req| match req.target.as_str() {
        "/204" => Reply::Send(raw_response(204, &[("x-kind", "no-content")], b"")),
        "/304" => Reply::Send(raw_response(
            304,
            &[("etag", "\"v1\""), ("content-length", "50")],
            b"",
        )),
        _ => Reply::Send(response(200, &[], b"plain")),
    });
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    for _ in 0..2 {
        let resp = client.get("/204");
        assert_eq!(resp.status, 204);
        assert_eq!(resp.header("x-kind"), Some("no-content"));
        assert!(resp.body.is_empty());
        assert!(!resp.has("transfer-encoding"));

        let resp = client
            .request("GET /304 HTTP/1.1\r\nHost: example.com\r\nIf-None-Match: \"v1\"\r\n\r\n");
        assert_eq!(resp.status, 304);
        assert_eq!(resp.header("etag"), Some("\"v1\""));
        assert!(resp.body.is_empty());
        assert!(!resp.has("transfer-encoding"));

        assert_eq!(client.get("/plain").body, b"plain");
    }
    assert_eq!(origin.accepted(), 1);
    assert_eq!(origin.request_count(), 6);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let origin = target_echo();
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    client.send(
        "GET /one HTTP/1.1\r\nHost: example.com\r\n\r\n\
         POST /two HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\nabc\
         GET /three HTTP/1.1\r\nHost: example.com\r\n\r\n",
    );
    for want in ["/one", "/two", "/three"] {
        let resp = client.read_response(false);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), want);
    }
    let requests = origin.requests();
    let targets: Vec<&str> = requests.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, vec!["/one", "/two", "/three"]);
    assert_eq!(requests[1].body, b"abc");

    // Pipelined with a close at the end: all three answered, then the connection closes.
    client.send(
        "GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n\
         GET /b HTTP/1.1\r\nHost: example.com\r\n\r\n\
         GET /c HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
    );
    for want in ["/a", "/b", "/c"] {
        assert_eq!(client.read_response(false).text(), want);
    }
    client.expect_closed();
}

#[test]
fn pipelined_requests_with_a_half_closed_client() {
    let origin = target_echo();
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    client.send(
        "GET /x HTTP/1.1\r\nHost: example.com\r\n\r\nGET /y HTTP/1.1\r\nHost: example.com\r\n\r\n",
    );
    client.shutdown_write();
    assert_eq!(client.read_response(false).text(), "/x");
    assert_eq!(client.read_response(false).text(), "/y");
    assert_eq!(client.expect_closed(), Closed::Fin);
}

#[test]
fn expect_100_continue() {
    let origin = Origin::start(|req| Reply::Send(response(200, &[], &req.body)));
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    client.send(
        "POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n",
    );
    // The client waits for the go-ahead before sending its body.
    let interim = client.read_response(false);
    assert_eq!(interim.status, 100);
    assert_eq!(interim.raw, b"HTTP/1.1 100 Continue\r\n\r\n");
    client.send("hello world");
    let resp = client.read_response(false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"hello world");
    let req = origin.last();
    assert!(!req.has("expect"), "the origin does not see Expect");
    assert_eq!(req.body, b"hello world");
    // The connection carries on.
    assert_eq!(client.get("/after").status, 200);
}

/// Envoy (without `proxy_100_continue`) answers `Expect: 100-continue` as it reads the head,
/// before routing, so a request answered locally gets `100 Continue` first too; the answer
/// comes before the body, so the connection then closes.
#[test]
fn expect_100_continue_is_answered_before_a_local_reply_as_envoy_does() {
    let routes = r#"
        virtual_hosts:
          - name: local
            domains: ["*"]
            routes:
              - match: { prefix: / }
                direct_response: { status: 403, body: { inline_string: "no uploads" } }
    "#;
    let proxy = Config::new().routes(routes).start();
    let mut client = proxy.client();
    client.send(
        "POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n",
    );
    let (bytes, _) = client.read_to_close();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 403 "),
        "{text}"
    );
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert!(text.ends_with("no uploads"), "{text}");
}

/// Requests the codec must reject; none of them may reach the origin.
const MALFORMED: &[(&str, &[u8], u16)] = &[
    (
        "content-length with transfer-encoding",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    ("bare LF", b"GET / HTTP/1.1\nHost: a\n\n", 400),
    (
        "bare LF in a header line",
        b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n",
        400,
    ),
    (
        "obs-fold",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
        400,
    ),
    (
        "invalid content-length",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5x\r\n\r\nhello",
        400,
    ),
    (
        "negative content-length",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        400,
    ),
    (
        "different content-lengths",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
    ),
    (
        "whitespace before colon",
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        400,
    ),
    ("missing host", b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400),
    (
        "two hosts",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
    ),
    (
        "transfer-encoding on HTTP/1.0",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "gzip transfer coding",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    ("NUL in a header", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 400),
    ("garbage request line", b"HELLO\r\n\r\n", 400),
    ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
];

#[test]
fn malformed_requests_get_400_close_and_never_reach_the_origin() {
    let origin = Origin::ok("must not be reached");
    let proxy = Config::forward_all(&[origin.addr()]).start();
    for &(name, bytes, status) in MALFORMED {
        let mut client = proxy.client();
        client.send(bytes);
        let resp = client.read_response(false);
        assert_eq!(resp.status, status, "{name}");
        assert_eq!(resp.header("connection"), Some("close"), "{name}");
        let closed = client.expect_closed();
        assert!(matches!(closed, Closed::Fin | Closed::Reset), "{name}");
    }
    assert_eq!(origin.accepted(), 0, "no connection reached the origin");
    assert_eq!(origin.bytes_received(), 0);
    assert_eq!(proxy.class(4) + proxy.class(5), MALFORMED.len() as u64);

    // A malformed request after a good one on the same connection: the good one is served,
    // the bad one closes the connection.
    let mut client = proxy.client();
    assert_eq!(client.get("/good").status, 200);
    client.send("GET /bad HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n");
    assert_eq!(client.read_response(false).status, 400);
    client.expect_closed();
    assert_eq!(origin.request_count(), 1);
}

#[test]
fn oversized_head_gets_431() {
    let origin = Origin::ok("unreached");
    let proxy = Config::forward_all(&[origin.addr()])
        .hcm("max_request_headers_kb: 1")
        .start();
    let mut client = proxy.client();
    let big = "x".repeat(2000);
    client.send(format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n"));
    let resp = client.read_response(false);
    assert_eq!(resp.status, 431);
    client.expect_closed();
    assert_eq!(origin.accepted(), 0);
}

/// A chunked body that turns malformed after its head was forwarded: the origin must never
/// see a complete request, and the client gets 400 and a closed connection.
#[test]
fn malformed_chunked_body_aborts_the_upstream_request() {
    let origin = Origin::ok("unreached");
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    client.send("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    sleep_ms(50);
    client.send("zz\r\nnot hex\r\n0\r\n\r\n");
    let resp = client.read_response(false);
    assert_eq!(resp.status, 400);
    client.expect_closed();
    // The head may have gone upstream, but that connection is closed, never completed.
    assert!(eventually(2000, || proxy.stat("upstream_cx_active") == 0));
    assert_eq!(origin.request_count(), 0);
}

#[test]
fn chunked_response_to_an_http10_client_is_close_delimited() {
    let origin = Origin::start(|_| Reply::Send(chunked_response(200, &[], &[b"one ", b"two"])));
    let proxy = Config::forward_all(&[origin.addr()])
        .accept_http10()
        .start();
    let mut client = proxy.client();
    let resp = client.request("GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.framing, BodyKind::CloseDelimited);
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(resp.body, b"one two");
    assert!(resp.complete);
    // The origin's chunked connection ended cleanly and is pooled.
    assert_eq!(proxy.client().get("/").body, b"one two");
    assert_eq!(origin.accepted(), 1);
}

#[test]
fn informational_responses_from_the_origin_are_dropped() {
    let origin = Origin::start(|_| {
        let mut bytes =
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n".to_vec();
        bytes.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        bytes.extend_from_slice(&response(200, &[], b"final"));
        Reply::Send(bytes)
    });
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    for _ in 0..2 {
        let resp = client.get("/");
        assert_eq!(
            resp.status, 200,
            "the first thing the client sees is the final response"
        );
        assert_eq!(resp.body, b"final");
        assert!(!resp.has("link"));
    }
    assert_eq!(origin.accepted(), 1);
}

/// An origin that sends more than its content-length: the client gets exactly the declared
/// body, and the connection with stray bytes is never reused.
#[test]
fn bytes_after_a_response_are_not_forwarded_and_retire_the_connection() {
    let origin = Origin::start(|_| {
        let mut bytes = response(200, &[], b"ok");
        bytes.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nsmuggled");
        Reply::Send(bytes)
    });
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    for _ in 0..3 {
        let resp = client.get("/");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"ok");
    }
    assert_eq!(
        origin.accepted(),
        3,
        "a connection with stray bytes is closed, not pooled"
    );
}

/// The origin answers (413) as soon as it has the head, without reading the body: the client
/// gets the answer with `connection: close`, and the unread body does not confuse anything.
#[test]
fn early_response_before_the_request_body_is_complete() {
    use std::io::Write;
    let origin_addr = support::raw_origin(|mut conn| {
        let _ = conn.write_all(&response(413, &[], b"too big"));
        // Keep the connection open a little, reading nothing.
        sleep_ms(300);
    });
    let proxy = Config::forward_all(&[origin_addr]).start();
    let mut client = proxy.client();
    client.send("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n");
    client.send(vec![b'u'; 1000]);
    let resp = client.read_response(false);
    assert_eq!(resp.status, 413);
    assert_eq!(resp.body, b"too big");
    assert_eq!(resp.header("connection"), Some("close"));
    // The rest of the body is read and dropped until the connection closes.
    let _ = client.stream().write_all(&[b'u'; 5000]);
    let (rest, _) = client.read_to_close();
    assert!(rest.is_empty(), "nothing after the response");
    assert!(eventually(2000, || proxy.stat("upstream_cx_active") == 0));
}

/// The origin answers (401) as soon as it has the head and closes at once with the body
/// unread, so the kernel resets the connection: weir's next write of the body fails, and the
/// answer already received must still reach the client (not a 503, and no replay).
#[test]
fn an_early_response_survives_the_reset_that_follows_it() {
    use std::io::Write;
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    let origin_addr = support::raw_origin(move |mut conn| {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Wait until body bytes sit unread, so that the close sends a reset.
        sleep_ms(50);
        let _ = conn.write_all(&response(401, &[], b"who are you"));
    });
    let proxy = Config::forward_all(&[origin_addr]).start();
    let mut client = proxy.client();
    let len = 4 << 20;
    client.send(format!(
        "PUT /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {len}\r\n\r\n"
    ));
    // The body goes on in the background while the client waits for the answer.
    let mut writer = client.stream().try_clone().unwrap();
    let body = std::thread::spawn(move || {
        let piece = vec![b'u'; 64 * 1024];
        for _ in 0..len / piece.len() {
            if writer.write_all(&piece).is_err() {
                return;
            }
        }
    });
    let resp = client.read_response(false);
    assert_eq!(resp.status, 401);
    assert_eq!(resp.body, b"who are you");
    drop(client);
    let _ = body.join();
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the answered request was not replayed"
    );
}

/// An origin that sends a body after a HEAD response anyway: the client gets the head only,
/// and the connection with the stray body is not reused.
#[test]
fn stray_body_after_a_head_response_is_dropped() {
    let origin = Origin::start(|req| {
        if req.method == "HEAD" {
            Reply::Send(response(200, &[], b"should not be here"))
        } else {
            Reply::Send(response(200, &[], b"get"))
        }
    });
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    let resp = client.request("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), Some("18"));
    assert!(resp.body.is_empty());
    let resp = client.get("/");
    assert_eq!(resp.body, b"get");
    assert_eq!(origin.accepted(), 2);
}

#[test]
fn limits_on_header_count_and_request_line() {
    let origin = Origin::ok("unreached");
    let proxy = Config::forward_all(&[origin.addr()]).start();

    let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..120 {
        many += &format!("x-h{i}: {i}\r\n");
    }
    many += "\r\n";
    let mut client = proxy.client();
    client.send(&many);
    assert_eq!(client.read_response(false).status, 431);
    client.expect_closed();

    let mut client = proxy.client();
    client.send(format!(
        "GET /{} HTTP/1.1\r\nHost: a\r\n\r\n",
        "p".repeat(70 * 1024)
    ));
    assert_eq!(client.read_response(false).status, 414);
    client.expect_closed();

    // A method that fills the limit is not a long URI: 400.
    let mut client = proxy.client();
    client.send("M".repeat(100 * 1024));
    assert_eq!(client.read_response(false).status, 400);
    client.expect_closed();

    // An empty Host on an origin-form request names no authority: 400.
    let mut client = proxy.client();
    client.send("GET / HTTP/1.1\r\nHost:\r\n\r\n");
    assert_eq!(client.read_response(false).status, 400);
    client.expect_closed();

    assert_eq!(origin.accepted(), 0);
}
