//! Requests through the proxy and what the origin receives: GET and POST with the raw client
//! and with curl, bodies byte-exact, hop-by-hop headers removed both ways, and the forwarding
//! headers (`x-forwarded-proto`, `x-request-id`, `x-forwarded-for`).

mod support;

use support::{Config, Origin, Reply, curl, response};
use weir_http1::{BodyKind, Version};

/// An origin that answers with the request body it received.
fn echo_origin() -> Origin {
    Origin::start(|req| Reply::Send(response(200, &[("x-origin", "echo")], &req.body)))
}

/// Bytes that would break anything that treats a body as text or lines.
fn binary_body(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| match i % 7 {
            0 => 0,
            1 => b'\r',
            2 => b'\n',
            _ => (i * 31 % 256) as u8,
        })
        .collect()
}

#[test]
fn get_through_the_proxy() {
    let origin = Origin::ok("hello from origin");
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();

    let resp = client
        .request("GET /some/path?q=1&r=2 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"hello from origin");
    assert_eq!(resp.header("content-length"), Some("17"));
    assert!(
        resp.keep_alive,
        "an HTTP/1.1 keep-alive exchange stays open"
    );

    let req = origin.last();
    assert_eq!(req.method, "GET");
    assert_eq!(req.target, "/some/path?q=1&r=2");
    assert_eq!(req.header("host"), Some("example.com"));
    assert_eq!(req.header("accept"), Some("*/*"));
    assert_eq!(req.framing, BodyKind::Empty);
    assert!(req.body.is_empty());
    assert_eq!(origin.request_count(), 1);
}

#[test]
fn post_body_arrives_byte_exact() {
    let origin = echo_origin();
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();

    for len in [1, 1000, 70_000, 300_000] {
        let body = binary_body(len);
        let mut request = format!(
            "POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n"
        )
        .into_bytes();
        request.extend_from_slice(&body);
        let resp = client.request(&request);
        assert_eq!(resp.status, 200, "len {len}");
        assert!(resp.body == body, "the echoed body of {len} bytes differs");

        let req = origin.last();
        assert_eq!(req.method, "POST");
        assert_eq!(req.framing, BodyKind::Length(len as u64));
        assert_eq!(req.header("content-length"), Some(len.to_string().as_str()));
        assert_eq!(req.header("transfer-encoding"), None);
        assert!(
            req.body == body,
            "the origin's copy of the {len}-byte body differs"
        );
    }
    assert_eq!(
        origin.accepted(),
        1,
        "all four POSTs share one upstream connection"
    );
}

#[test]
fn get_and_post_with_curl() {
    let origin = echo_origin();
    let proxy = Config::forward_all(&[origin.addr()]).start();

    let got = curl(&[&proxy.url("/curl/get?x=y")]);
    assert_eq!(got.status, 200);
    assert_eq!(got.header("x-origin"), Some("echo"));
    assert!(got.body.is_empty());
    let req = origin.last();
    assert_eq!(req.method, "GET");
    assert_eq!(req.target, "/curl/get?x=y");
    assert_eq!(req.header("host"), Some(proxy.addr.to_string().as_str()));
    assert!(
        req.header("user-agent")
            .is_some_and(|ua| ua.starts_with("curl/"))
    );

    let body = binary_body(5000);
    let file = std::env::temp_dir().join(format!("weir-proxy-post-{}", std::process::id()));
    std::fs::write(&file, &body).unwrap();
    let data = format!("@{}", file.display());
    // `Expect:` off: this case is about a plain content-length POST.
    let posted = curl(&[
        "-H",
        "Expect:",
        "--data-binary",
        &data,
        &proxy.url("/curl/post"),
    ]);
    let _ = std::fs::remove_file(&file);
    assert_eq!(posted.status, 200);
    assert!(posted.body == body, "curl got back a different body");
    let req = origin.last();
    assert_eq!(req.method, "POST");
    assert_eq!(req.target, "/curl/post");
    assert_eq!(req.header("content-length"), Some("5000"));
    assert!(
        req.body == body,
        "the origin got a different body from curl"
    );
}

#[test]
fn curl_post_with_expect_continue() {
    let origin = echo_origin();
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let body = binary_body(4096);
    let file = std::env::temp_dir().join(format!("weir-proxy-expect-{}", std::process::id()));
    std::fs::write(&file, &body).unwrap();
    let data = format!("@{}", file.display());
    // curl waits up to a second for 100 Continue; a proxy that never sends it would still
    // pass, so the heads curl saw are checked too.
    let posted = curl(&[
        "-H",
        "Expect: 100-continue",
        "--expect100-timeout",
        "5",
        "--data-binary",
        &data,
        &proxy.url("/expect"),
    ]);
    let _ = std::fs::remove_file(&file);
    assert!(
        posted.raw_heads.starts_with("HTTP/1.1 100 Continue\r\n"),
        "curl saw: {}",
        posted.raw_heads
    );
    assert_eq!(posted.status, 200);
    assert!(posted.body == body);
    let req = origin.last();
    assert!(!req.has("expect"), "Expect is not forwarded");
    assert!(req.body == body);
}

/// (`Upgrade: h2c` is no upgrade weir makes: the request is served as a plain one, its upgrade
/// headers dropped with the other hop-by-hop ones.)
#[test]
fn hop_by_hop_headers_are_not_forwarded() {
    let origin = Origin::start(|_| {
        Reply::Send(response(
            200,
            &[
                ("Connection", "keep-alive, X-Origin-Private"),
                ("Keep-Alive", "timeout=30"),
                ("X-Origin-Private", "secret"),
                ("Proxy-Authenticate", "Basic"),
                ("Upgrade", "h2c"),
                ("X-Origin-Public", "visible"),
            ],
            b"ok",
        ))
    });
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    let resp = client.request(
        "GET / HTTP/1.1\r\n\
         Host: example.com\r\n\
         Connection: keep-alive, X-Private, Upgrade\r\n\
         Keep-Alive: timeout=5\r\n\
         TE: trailers\r\n\
         Upgrade: h2c\r\n\
         Proxy-Connection: keep-alive\r\n\
         X-Private: do-not-forward\r\n\
         X-Public: forward-me\r\n\
         \r\n",
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"ok");

    let req = origin.last();
    for name in [
        "connection",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-connection",
        "x-private",
    ] {
        assert!(!req.has(name), "{name} was forwarded: {:?}", req.headers);
    }
    assert_eq!(req.header("x-public"), Some("forward-me"));

    for name in [
        "keep-alive",
        "x-origin-private",
        "proxy-authenticate",
        "upgrade",
    ] {
        assert!(
            !resp.has(name),
            "{name} reached the client: {:?}",
            resp.headers
        );
    }
    // The proxy's own connection decision, not the origin's header, is what the client sees.
    assert!(
        resp.header("connection")
            .is_none_or(|v| !v.contains("X-Origin-Private"))
    );
    assert_eq!(resp.header("x-origin-public"), Some("visible"));
}

#[test]
fn forwarding_headers_by_default() {
    let origin = Origin::ok("ok");
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();

    client.get_host("example.com", "/", &["x-forwarded-for: 203.0.113.7"]);
    let first = origin.last();
    assert_eq!(first.header("x-forwarded-proto"), Some("http"));
    let id = first
        .header("x-request-id")
        .expect("x-request-id is generated");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(id.matches('-').count(), 4, "a hyphenated UUID: {id}");
    // use_remote_address is false: x-forwarded-for passes untouched.
    assert_eq!(first.header_all("x-forwarded-for"), vec!["203.0.113.7"]);

    client.get_host("example.com", "/", &[]);
    let second = origin.last();
    let id2 = second.header("x-request-id").expect("generated again");
    assert_ne!(id, id2, "each request gets its own id");
    assert!(
        !second.has("x-forwarded-for"),
        "not added without use_remote_address"
    );

    client.get_host(
        "example.com",
        "/",
        &["x-request-id: my-trace-42", "x-forwarded-proto: https"],
    );
    let third = origin.last();
    assert_eq!(third.header_all("x-request-id"), vec!["my-trace-42"]);
    // Without use_remote_address Envoy keeps a downstream x-forwarded-proto.
    assert_eq!(third.header_all("x-forwarded-proto"), vec!["https"]);
}

#[test]
fn x_forwarded_for_is_appended_with_use_remote_address() {
    let origin = Origin::ok("ok");
    let proxy = Config::forward_all(&[origin.addr()])
        .hcm("use_remote_address: true")
        .start();
    let mut client = proxy.client();

    client.get_host(
        "example.com",
        "/",
        &["x-forwarded-for: 203.0.113.7, 198.51.100.1"],
    );
    let req = origin.last();
    assert_eq!(
        req.header_all("x-forwarded-for"),
        vec!["203.0.113.7, 198.51.100.1,127.0.0.1"]
    );
    assert_eq!(req.header("x-forwarded-proto"), Some("http"));

    client.get_host("example.com", "/", &["x-forwarded-proto: https"]);
    let req = origin.last();
    assert_eq!(req.header_all("x-forwarded-for"), vec!["127.0.0.1"]);
    // The edge proxy sets the scheme it saw, whatever the client claimed.
    assert_eq!(req.header_all("x-forwarded-proto"), vec!["http"]);
}

#[test]
fn request_id_generation_can_be_disabled() {
    let origin = Origin::ok("ok");
    let proxy = Config::forward_all(&[origin.addr()])
        .hcm("generate_request_id: false")
        .start();
    proxy.client().get("/");
    assert!(!origin.last().has("x-request-id"));
}

#[test]
fn absolute_form_target_becomes_origin_form() {
    let origin = Origin::ok("ok");
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let resp = proxy
        .client()
        .request("GET http://absolute.example/p/q?x=1 HTTP/1.1\r\nHost: ignored.example\r\n\r\n");
    assert_eq!(resp.status, 200);
    let req = origin.last();
    assert_eq!(req.target, "/p/q?x=1");
    assert_eq!(req.header_all("host"), vec!["absolute.example"]);
}

/// As in Envoy, HTTP/1.0 is refused unless `http_protocol_options.accept_http_10`: 426 in
/// HTTP/1.1, and the connection closes; nothing goes upstream.
#[test]
fn http10_is_refused_426_unless_accepted() {
    let origin = Origin::ok("unreached");
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    let resp =
        client.request("GET / HTTP/1.0\r\nHost: example.com\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!((resp.version, resp.status), (Version::Http11, 426));
    assert_eq!(resp.reason, "Upgrade Required");
    assert_eq!(resp.text(), "Upgrade Required");
    assert_eq!(resp.header("connection"), Some("close"));
    client.expect_closed();
    assert_eq!(origin.accepted(), 0);
}

#[test]
fn http10_client_gets_an_http10_answer_and_close() {
    let origin = Origin::ok("ten");
    let proxy = Config::forward_all(&[origin.addr()])
        .accept_http10()
        .start();
    let mut client = proxy.client();
    let resp = client.request("GET /old HTTP/1.0\r\nHost: example.com\r\n\r\n");
    // As Envoy's codec answers it.
    assert_eq!((resp.version, resp.status), (Version::Http10, 200));
    assert_eq!(resp.body, b"ten");
    assert_eq!(resp.header("connection"), Some("close"));
    client.expect_closed();
    // Upstream the request is HTTP/1.1.
    let req = origin.last();
    assert_eq!(req.version, weir_http1::Version::Http11);
    assert_eq!(req.target, "/old");
}

#[test]
fn http10_keep_alive_is_honoured() {
    let origin = Origin::ok("ten");
    let proxy = Config::forward_all(&[origin.addr()])
        .accept_http10()
        .start();
    let mut client = proxy.client();
    for _ in 0..3 {
        let resp =
            client.request("GET / HTTP/1.0\r\nHost: example.com\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("connection"), Some("keep-alive"));
        assert_eq!(resp.body, b"ten");
    }
    assert_eq!(proxy.stat("downstream_cx_total"), 1);
}

#[test]
fn client_connection_close_is_honoured() {
    let origin = Origin::ok("bye");
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    let resp = client.request("GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(resp.body, b"bye");
    client.expect_closed();
    assert!(!origin.last().has("connection"));
}

/// HTTP/1.0 may omit Host, but the request goes upstream as HTTP/1.1, which must carry one:
/// as Envoy does, the proxy answers 400 instead of sending an invalid request.
#[test]
fn http10_without_host_is_400() {
    let origin = Origin::ok("unreached");
    let proxy = Config::forward_all(&[origin.addr()])
        .accept_http10()
        .start();
    let mut client = proxy.client();
    let resp = client.request("GET / HTTP/1.0\r\n\r\n");
    assert_eq!(resp.status, 400);
    assert_eq!(resp.text(), "");
    assert_eq!(resp.header("content-length"), Some("0"));
    client.expect_closed();
    assert_eq!(origin.accepted(), 0);

    // With an absolute-form target the authority comes from the target.
    let resp = proxy
        .client()
        .request("GET http://named.example/x HTTP/1.0\r\n\r\n");
    assert_eq!(resp.status, 200);
    let req = origin.last();
    assert_eq!(req.header("host"), Some("named.example"));
    assert_eq!(req.target, "/x");
}

/// An HTTP/1.1 request without Host is answered 400 without a body, as Envoy's connection
/// manager does; other malformed requests carry the reason phrase as their body.
#[test]
fn http11_without_host_is_400_without_a_body() {
    let origin = Origin::ok("unreached");
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    let resp = client.request("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n");
    assert_eq!(resp.status, 400);
    assert_eq!(resp.text(), "");
    assert_eq!(resp.header("content-length"), Some("0"));
    assert_eq!(resp.header("content-type"), None);
    client.expect_closed();
    let resp = proxy
        .client()
        .request("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n");
    assert_eq!((resp.status, resp.text().as_str()), (400, "Bad Request"));
    assert_eq!(origin.accepted(), 0);
}

/// `default_host_for_http_10` is the Host of an HTTP/1.0 request without one, as in Envoy.
#[test]
fn http10_without_host_gets_the_default_host() {
    let origin = Origin::ok("ten");
    let proxy = Config::forward_all(&[origin.addr()])
        .hcm("http_protocol_options: { accept_http_10: true, default_host_for_http_10: dflt.test }")
        .start();
    let resp = proxy.client().request("GET /x HTTP/1.0\r\n\r\n");
    assert_eq!(resp.status, 200);
    assert_eq!(origin.last().header("host"), Some("dflt.test"));
    // A Host sent is kept.
    let resp = proxy
        .client()
        .request("GET /x HTTP/1.0\r\nHost: own.test\r\n\r\n");
    assert_eq!(resp.status, 200);
    assert_eq!(origin.last().header_all("host"), vec!["own.test"]);
}

/// Field values may carry obs-text (bytes 0x80–0xFF); they are forwarded byte-exact. Header
/// names go out in lower case both ways, as Envoy's codec writes them.
#[test]
fn header_bytes_are_forwarded_exactly() {
    let origin = Origin::ok("ok");
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut request = b"GET / HTTP/1.1\r\nHost: a\r\nX-Latin: caf".to_vec();
    request.extend_from_slice(&[0xe9, b' ', 0xff]);
    request.extend_from_slice(b"\r\nX-MiXeD-CaSe: v\r\n\r\n");
    assert_eq!(proxy.client().request(&request).status, 200);
    let raw = origin.last().raw;
    let mut expected = b"x-latin: caf".to_vec();
    expected.extend_from_slice(&[0xe9, b' ', 0xff, b'\r', b'\n']);
    assert!(
        raw.windows(expected.len())
            .any(|w| w == expected.as_slice()),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    assert!(raw.windows(17).any(|w| w == b"x-mixed-case: v\r\n"));
    assert!(raw.windows(9).any(|w| w == b"\r\nhost: a"));
    // And the origin's names reach the client in lower case.
    let origin = Origin::start(|_| Reply::Send(response(200, &[("X-Origin-Name", "V")], b"")));
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    let resp = client.request("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(
        resp.raw.windows(17).any(|w| w == b"x-origin-name: V\r"),
        "{}",
        String::from_utf8_lossy(&resp.raw)
    );
}
