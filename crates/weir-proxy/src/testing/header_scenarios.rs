//! The headers the connection manager and the router write themselves, as Envoy's do, on a
//! virtual clock (so `x-envoy-upstream-service-time` and the time a retry has left are exact):
//! the status line's phrase, `date`, `server` by `server_header_transformation`, the router's
//! `x-envoy-*` headers and `suppress_envoy_headers`, local replies' framing and texts, and the
//! 404 for a target that is not a path.

use std::time::Duration;

use super::{Harness, Peer, bootstrap, bootstrap_with_routes, hcm};

const ORIGIN: &str = "127.0.0.1:9001";
const GET: &str = "GET /a HTTP/1.1\r\nhost: a\r\n\r\n";

/// The router with `suppress_envoy_headers: true`.
fn suppressed(yaml: String) -> String {
    let router = "filters.http.router.v3.Router }";
    assert!(yaml.contains(router));
    yaml.replace(
        router,
        "filters.http.router.v3.Router, suppress_envoy_headers: true }",
    )
}

/// The value of header `name` in the first head of `text` (names compared in any case).
fn header(text: &str, name: &str) -> Option<String> {
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// Sends `request` from a new client; returns the client, the origin's connection and the
/// request the origin received.
fn forwarded(h: &mut Harness, request: &str) -> (Peer, Peer, String) {
    let client = h.client(0);
    client.send(request);
    h.settle();
    let origin = h.accept(ORIGIN);
    let received = origin.take_text();
    (client, origin, received)
}

#[test]
fn a_proxied_response_gets_envoys_phrase_date_server_and_service_time() {
    let mut h = Harness::new(&bootstrap("", "", "", &[ORIGIN]));
    let (client, origin, received) = forwarded(&mut h, GET);
    // The route timeout (Envoy's default, 15 s) is what the origin is told it has.
    assert_eq!(
        header(&received, "x-envoy-expected-rq-timeout-ms").as_deref(),
        Some("15000")
    );
    h.advance(Duration::from_millis(37));
    origin.send("HTTP/1.1 200 Fine\r\nserver: origin\r\ncontent-length: 2\r\n\r\nhi");
    h.settle();
    let response = client.take_text();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert_eq!(header(&response, "server").as_deref(), Some("weir"));
    assert_eq!(response.matches("server:").count(), 1, "{response}");
    assert!(header(&response, "date").is_some_and(|d| d.ends_with(" GMT")));
    assert_eq!(
        header(&response, "x-envoy-upstream-service-time").as_deref(),
        Some("37")
    );
    // A status Envoy's table does not name is `Unknown`; the origin's own date stays.
    client.send(GET);
    h.settle();
    origin.take_text();
    origin.send("HTTP/1.1 451 For Legal Reasons\r\ndate: Sun, 06 Dec 2026 00:00:00 GMT\r\ncontent-length: 0\r\n\r\n");
    h.settle();
    let response = client.take_text();
    assert!(
        response.starts_with("HTTP/1.1 451 Unknown\r\n"),
        "{response}"
    );
    assert_eq!(
        header(&response, "date").as_deref(),
        Some("Sun, 06 Dec 2026 00:00:00 GMT")
    );
}

#[test]
fn an_early_response_has_no_service_time() {
    // Envoy counts from the request's end: a response before it has no such header.
    let mut h = Harness::new(&bootstrap("", "", "", &[ORIGIN]));
    let (client, origin, _) = forwarded(
        &mut h,
        "POST /a HTTP/1.1\r\nhost: a\r\ncontent-length: 10\r\n\r\n01234",
    );
    origin.send("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    h.settle();
    let response = client.take_text();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert_eq!(header(&response, "x-envoy-upstream-service-time"), None);
}

#[test]
fn suppress_envoy_headers_drops_the_routers_headers() {
    let route = ", prefix_rewrite: /b/, host_rewrite_literal: b.test";
    for suppress in [false, true] {
        let yaml = bootstrap("", "", route, &[ORIGIN]);
        let mut h = Harness::new(&if suppress { suppressed(yaml) } else { yaml });
        let (client, origin, received) = forwarded(&mut h, GET);
        assert!(received.starts_with("GET /b/a HTTP/1.1\r\n"), "{received}");
        let expected = header(&received, "x-envoy-expected-rq-timeout-ms");
        let original = header(&received, "x-envoy-original-path");
        let original_host = header(&received, "x-envoy-original-host");
        assert_eq!(header(&received, "host").as_deref(), Some("b.test"));
        origin.send("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        h.settle();
        let response = client.take_text();
        let service_time = header(&response, "x-envoy-upstream-service-time");
        if suppress {
            assert_eq!((expected, original, service_time), (None, None, None));
            assert_eq!(original_host, None);
        } else {
            assert_eq!(expected.as_deref(), Some("15000"));
            assert_eq!(original.as_deref(), Some("/a"));
            assert_eq!(original_host.as_deref(), Some("a"));
            assert_eq!(service_time.as_deref(), Some("0"));
        }
        // The connection manager's headers are not the router's.
        assert!(header(&response, "date").is_some() && header(&response, "server").is_some());
    }
}

#[test]
fn a_retry_is_told_what_the_route_timeout_leaves() {
    let route = ", timeout: 1s, retry_policy: { retry_on: 5xx, num_retries: 1, \
                 per_try_timeout: 0.7s, retry_back_off: { base_interval: 0.001s } }";
    let mut h = Harness::new(&bootstrap("", "", route, &[ORIGIN]));
    let (client, first, received) = forwarded(&mut h, GET);
    // The per-try timeout, shorter than the route's.
    assert_eq!(
        header(&received, "x-envoy-expected-rq-timeout-ms").as_deref(),
        Some("700")
    );
    h.advance(Duration::from_millis(703));
    assert!(first.worker_closed());
    let second = h.accept(ORIGIN);
    let received = second.take_text();
    let left: u64 = header(&received, "x-envoy-expected-rq-timeout-ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{received}"));
    assert!((297..=299).contains(&left), "{left}");
    h.advance(Duration::from_millis(10));
    second.send("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    h.settle();
    // Service time counts from the request's end, the first attempt included.
    let response = client.take_text();
    assert_eq!(
        header(&response, "x-envoy-upstream-service-time").as_deref(),
        Some("713")
    );
}

#[test]
fn server_header_transformation_and_server_name() {
    let direct = "              - match: { prefix: /direct }\n                \
                  direct_response: { status: 200, body: { inline_string: hi } }";
    let cases = [
        ("PASS_THROUGH", Some("origin"), None),
        ("APPEND_IF_ABSENT", Some("origin"), Some("edge")),
        ("OVERWRITE", Some("edge"), Some("edge")),
    ];
    for (mode, proxied, local) in cases {
        let lines = format!(
            "{}\n{}",
            hcm("server_name: edge"),
            hcm(&format!("server_header_transformation: {mode}"))
        );
        let yaml = bootstrap_with_routes(&lines, "", direct, "", &[ORIGIN]);
        let mut h = Harness::new(&yaml);
        let (client, origin, _) = forwarded(&mut h, GET);
        origin.send("HTTP/1.1 200 OK\r\nserver: origin\r\ncontent-length: 0\r\n\r\n");
        h.settle();
        let response = client.take_text();
        assert_eq!(header(&response, "server").as_deref(), proxied, "{mode}");
        client.send("GET /direct HTTP/1.1\r\nhost: a\r\n\r\n");
        h.settle();
        let response = client.take_text();
        assert_eq!(header(&response, "server").as_deref(), local, "{mode}");
    }
}

#[test]
fn local_replies_are_framed_and_typed_as_envoys() {
    let routes = "              - match: { prefix: /empty }\n                \
                  direct_response: { status: 204 }\n              \
                  - match: { prefix: /json }\n                \
                  direct_response: { status: 200, body: { inline_string: \"{}\" } }\n                \
                  response_headers_to_add: [ { header: { key: content-type, value: application/json } } ]\n              \
                  - match: { prefix: /text }\n                \
                  direct_response: { status: 418, body: { inline_string: tea } }\n              \
                  - match: { prefix: /moved }\n                \
                  direct_response: { status: 302 }";
    let mut h = Harness::new(&bootstrap_with_routes("", "", routes, "", &[ORIGIN]));
    let client = h.client(0);
    client.send("GET /empty HTTP/1.1\r\nhost: a\r\n\r\n");
    h.settle();
    let response = client.take_text();
    assert!(
        response.starts_with("HTTP/1.1 204 No Content\r\n"),
        "{response}"
    );
    assert_eq!(header(&response, "content-length"), None, "{response}");
    client.send("GET /json HTTP/1.1\r\nhost: a\r\n\r\n");
    h.settle();
    let response = client.take_text();
    assert_eq!(response.matches("content-type").count(), 1, "{response}");
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some("application/json")
    );
    // A 201 or 3xx direct response points at the request's own URL, as Envoy's does; it
    // counts as a direct response, not a redirect.
    client.send("GET /moved?q=1 HTTP/1.1\r\nhost: a:8080\r\n\r\n");
    h.settle();
    let response = client.take_text();
    assert!(response.starts_with("HTTP/1.1 302 Found\r\n"), "{response}");
    assert_eq!(
        header(&response, "location").as_deref(),
        Some("http://a:8080/moved?q=1")
    );
    assert_eq!(h.stat("http.test.rq_direct_response"), 3);
    assert_eq!(h.stat("http.test.rq_redirect"), 0);
    client.send("GET /text HTTP/1.1\r\nhost: a\r\n\r\n");
    h.settle();
    let response = client.take_text();
    assert!(
        response.starts_with("HTTP/1.1 418 Unknown\r\n"),
        "{response}"
    );
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some("text/plain")
    );
    assert_eq!(header(&response, "content-length").as_deref(), Some("3"));
}

#[test]
fn a_failure_after_retries_says_it_was_retried() {
    let route = ", retry_policy: { retry_on: connect-failure, num_retries: 1, \
                 retry_back_off: { base_interval: 0.001s } }";
    for (route, retried) in [("", false), (route, true)] {
        let mut h = Harness::new(&bootstrap("", "", route, &[ORIGIN]));
        h.listen(ORIGIN, None);
        let client = h.client(0);
        client.send(GET);
        h.advance(Duration::from_millis(10));
        let response = client.take_text();
        assert!(
            response.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{response}"
        );
        let body = if retried {
            "upstream connect error or disconnect/reset before headers. retried and the latest \
             reset reason: remote connection failure"
        } else {
            "upstream connect error or disconnect/reset before headers. reset reason: remote \
             connection failure"
        };
        assert!(response.ends_with(body), "{response}");
    }
}

#[test]
fn a_target_that_is_not_a_path_is_answered_404_before_routing() {
    // This route would match `*`: Envoy never routes it, and neither does weir.
    let routes = "              - match: { safe_regex: { regex: \"[*]\" } }\n                \
                  direct_response: { status: 200, body: { inline_string: star } }";
    let mut h = Harness::new(&bootstrap_with_routes("", "", routes, "", &[ORIGIN]));
    let client = h.client(0);
    client.send("OPTIONS * HTTP/1.1\r\nhost: a\r\n\r\n");
    h.settle();
    let response = client.take_text();
    assert!(
        response.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{response}"
    );
    assert_eq!(header(&response, "content-length").as_deref(), Some("0"));
    assert_eq!(h.stat("http.test.downstream_rq_non_relative_path"), 1);
    assert_eq!(h.stat("http.test.rq_direct_response"), 0);
    assert_eq!(h.stat("http.test.no_route"), 0);
    assert!(h.accepted(ORIGIN).is_empty());
    // The connection stays usable, and a path is routed as before.
    client.send(GET);
    h.settle();
    assert_eq!(h.accepted(ORIGIN).len(), 1);
    assert!(!client.worker_closed());
}
