//! Internal requests (`internal_address_config`): the connection manager marks them
//! `x-envoy-internal` and keeps their `x-envoy-*` headers, and the router takes its retries and
//! timeouts from those headers, as Envoy's does; an external request's are removed and do
//! nothing. On a virtual clock, so timeouts and back-offs are exact.

use std::time::Duration;

use super::{Harness, Peer, bootstrap, hcm, status};

const ORIGIN: &str = "127.0.0.1:9001";

/// The harness's clients come from 127.0.0.1: internal here unless `internal` is false.
fn config(internal: bool, route: &str) -> String {
    let mut lines = hcm("use_remote_address: true");
    if internal {
        lines.push('\n');
        lines.push_str(&hcm(
            "internal_address_config: { cidr_ranges: [{ address_prefix: 127.0.0.0, prefix_len: 8 }] }",
        ));
    }
    bootstrap(&lines, "", route, &[ORIGIN])
}

fn request(headers: &str) -> String {
    format!("GET /a HTTP/1.1\r\nhost: a\r\n{headers}\r\n")
}

fn respond(origin: &Peer, status: u16, extra: &str) {
    origin.send(format!(
        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\n{extra}\r\n"
    ));
}

/// The origin connection that carries the next request (pooled or new).
fn next_origin(h: &mut Harness, pooled: Option<Peer>) -> Peer {
    h.accepted(ORIGIN)
        .pop()
        .or(pooled)
        .expect("an origin connection")
}

#[test]
fn an_internal_request_steers_retries_with_its_headers() {
    let mut h = Harness::new(&config(true, ""));
    let client = h.client(0);
    client.send(request(
        "x-envoy-retry-on: 5xx\r\nx-envoy-max-retries: 2\r\nx-envoy-internal: false\r\nx-request-id: mine\r\n",
    ));
    h.settle();
    let mut origin = h.accept(ORIGIN);
    let received = origin.take_text();
    assert!(
        received.contains("x-envoy-internal: true\r\n"),
        "{received}"
    );
    assert_eq!(received.matches("x-envoy-internal").count(), 1);
    assert!(
        received.contains("x-request-id: mine\r\n"),
        "not an edge request"
    );
    assert!(!received.contains("x-envoy-retry-on") && !received.contains("x-envoy-max-retries"));
    assert!(!received.contains("x-envoy-external-address"));
    for _ in 0..2 {
        respond(&origin, 503, "");
        h.settle();
        h.advance(Duration::from_secs(1));
        origin = next_origin(&mut h, Some(origin));
        assert!(origin.take_text().starts_with("GET /a "));
    }
    respond(&origin, 200, "");
    h.settle();
    assert_eq!(status(&client.take_text()), 200);
    assert_eq!(h.stat("cluster.backend.upstream_rq_retry"), 2);
}

#[test]
fn an_external_requests_headers_do_nothing() {
    let mut h = Harness::new(&config(false, ""));
    let client = h.client(0);
    client.send(request(
        "x-envoy-retry-on: 5xx\r\nx-envoy-upstream-rq-timeout-ms: 10\r\nx-envoy-internal: true\r\n",
    ));
    h.settle();
    let origin = h.accept(ORIGIN);
    let received = origin.take_text();
    for gone in [
        "x-envoy-retry-on",
        "x-envoy-upstream-rq-timeout-ms",
        "x-envoy-internal",
    ] {
        assert!(!received.contains(gone), "{gone}: {received}");
    }
    assert!(
        received.contains("x-envoy-external-address: 127.0.0.1\r\n"),
        "an edge request"
    );
    // Neither the 10 ms timeout nor the retry applies.
    h.advance(Duration::from_secs(1));
    respond(&origin, 503, "");
    h.settle();
    assert_eq!(status(&client.take_text()), 503);
    assert_eq!(h.stat("cluster.backend.upstream_rq_retry"), 0);
}

#[test]
fn timeout_headers_set_the_route_and_per_try_timeouts() {
    let mut h = Harness::new(&config(true, ""));
    let client = h.client(0);
    client.send(request("x-envoy-upstream-rq-timeout-ms: 300\r\n"));
    h.settle();
    let origin = h.accept(ORIGIN);
    let received = origin.take_text();
    assert!(
        received.contains("x-envoy-expected-rq-timeout-ms: 300\r\n"),
        "{received}"
    );
    assert!(!received.contains("x-envoy-upstream-rq-timeout-ms"));
    h.advance(Duration::from_millis(299));
    assert_eq!(client.take_text(), "");
    h.advance(Duration::from_millis(2));
    let response = client.take_text();
    assert_eq!(status(&response), 504);
    assert!(response.ends_with("upstream request timeout"));

    // The alternative answer: 204, no body.
    client.send(request(
        "x-envoy-upstream-rq-timeout-ms: 100\r\nx-envoy-upstream-rq-timeout-alt-response: 1\r\n",
    ));
    h.settle();
    h.advance(Duration::from_millis(101));
    let response = client.take_text();
    assert_eq!(status(&response), 204, "{response}");

    // A per-try timeout with a retry condition: two attempts of 50 ms, then 504.
    let client = h.client(0);
    client.send(request(
        "x-envoy-upstream-rq-per-try-timeout-ms: 50\r\nx-envoy-retry-on: 5xx\r\n",
    ));
    h.settle();
    let first = h.accepted(ORIGIN).pop().expect("a new connection");
    assert!(
        first
            .take_text()
            .contains("x-envoy-expected-rq-timeout-ms: 50\r\n")
    );
    h.advance(Duration::from_millis(51));
    h.advance(Duration::from_millis(300));
    h.advance(Duration::from_millis(51));
    let response = client.take_text();
    assert_eq!(status(&response), 504, "{response}");
    assert_eq!(h.stat("cluster.backend.upstream_rq_per_try_timeout"), 2);
}

#[test]
fn grpc_and_status_code_conditions_from_headers() {
    let mut h = Harness::new(&config(true, ""));
    let client = h.client(0);
    client.send(request("x-envoy-retry-grpc-on: unavailable\r\n"));
    h.settle();
    let origin = h.accept(ORIGIN);
    origin.take_text();
    respond(&origin, 200, "grpc-status: 14\r\n");
    h.settle();
    h.advance(Duration::from_secs(1));
    let origin = next_origin(&mut h, Some(origin));
    assert!(origin.take_text().starts_with("GET /a "), "retried");
    respond(&origin, 200, "grpc-status: 0\r\n");
    h.settle();
    assert_eq!(status(&client.take_text()), 200);

    client.send(request(
        "x-envoy-retry-on: retriable-status-codes\r\nx-envoy-retriable-status-codes: 418\r\n",
    ));
    h.settle();
    let origin = next_origin(&mut h, Some(origin));
    origin.take_text();
    respond(&origin, 418, "");
    h.settle();
    h.advance(Duration::from_secs(1));
    let origin = next_origin(&mut h, Some(origin));
    assert!(origin.take_text().starts_with("GET /a "), "retried");
    respond(&origin, 200, "");
    h.settle();
    assert_eq!(status(&client.take_text()), 200);
    assert_eq!(h.stat("cluster.backend.upstream_rq_retry"), 2);
}

#[test]
fn a_route_policy_without_retry_on_is_enabled_by_the_header() {
    let mut h = Harness::new(&config(true, ", retry_policy: { num_retries: 1 }"));
    let client = h.client(0);
    client.send(request(""));
    h.settle();
    let origin = h.accept(ORIGIN);
    origin.take_text();
    respond(&origin, 503, "");
    h.settle();
    assert_eq!(status(&client.take_text()), 503, "no condition: no retry");

    client.send(request("x-envoy-retry-on: gateway-error\r\n"));
    h.settle();
    let origin = next_origin(&mut h, Some(origin));
    origin.take_text();
    respond(&origin, 503, "");
    h.settle();
    h.advance(Duration::from_secs(1));
    let origin = next_origin(&mut h, Some(origin));
    assert!(origin.take_text().starts_with("GET /a "), "retried");
    respond(&origin, 503, "");
    h.settle();
    h.advance(Duration::from_secs(1));
    assert_eq!(
        status(&client.take_text()),
        503,
        "one retry: the route's num_retries"
    );
    assert_eq!(h.stat("cluster.backend.upstream_rq_retry"), 1);
}

#[test]
fn the_request_id_goes_back_on_force_trace_or_when_always_set() {
    let mut h = Harness::new(&config(true, ""));
    let client = h.client(0);
    client.send(request("x-request-id: abc\r\nx-envoy-force-trace: 1\r\n"));
    h.settle();
    let origin = h.accept(ORIGIN);
    assert!(origin.take_text().contains("x-envoy-force-trace: 1\r\n"));
    respond(&origin, 200, "");
    h.settle();
    assert!(client.take_text().contains("x-request-id: abc\r\n"));
    // Without force-trace, no echo.
    client.send(request("x-request-id: abc\r\n"));
    h.settle();
    origin.take_text();
    respond(&origin, 200, "");
    h.settle();
    assert!(!client.take_text().contains("x-request-id"));

    // An external request's force-trace is removed: no echo; with
    // `always_set_request_id_in_response`, the (new, edge) id goes back, on local replies too.
    let yaml = config(false, "").replace(
        "use_remote_address: true",
        "use_remote_address: true\n          always_set_request_id_in_response: true",
    );
    let mut h = Harness::new(&yaml);
    let client = h.client(0);
    client.send("GET /a HTTP/1.1\r\nhost: a\r\nx-request-id: abc\r\nupgrade: foo\r\nconnection: upgrade\r\n\r\n");
    h.settle();
    let response = client.take_text();
    assert_eq!(status(&response), 403, "{response}");
    let id = response
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .expect("an id");
    assert!(id.len() == 36 && id != "abc", "{id}");
}
