//! The HTTP filters on a whole worker, from Envoy configs, in memory on a virtual clock.

use std::time::Duration;

use super::{Harness, Peer, bootstrap, bootstrap_with_routes, status};

const ORIGIN: &str = "127.0.0.1:9001";

const FAULT: &str = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault";
const BUFFER: &str = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer";
const HEALTH: &str =
    "type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck";

fn filter(name: &str, typed: &str, fields: &str) -> String {
    format!(
        "          - name: {name}\n            typed_config:\n              \"@type\": {typed}\n{fields}"
    )
}

fn text(peer: &Peer) -> String {
    peer.take_text()
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

#[test]
fn a_fault_delay_holds_the_request_for_its_time() {
    let fault = filter(
        "envoy.filters.http.fault",
        FAULT,
        "              delay: { fixed_delay: 3s, percentage: { numerator: 100 } }\n",
    );
    let mut h = Harness::new(&bootstrap("", &fault, "", &[ORIGIN]));
    let client = h.client(0);
    client.send("GET / HTTP/1.1\r\nhost: a\r\n\r\n");
    h.settle();
    h.advance(Duration::from_millis(2990));
    assert!(h.accepted(ORIGIN).is_empty(), "held for the delay");
    assert_eq!(h.stat("http.test.fault.active_faults"), 1);
    h.advance(Duration::from_millis(20));
    let origin = h.accept(ORIGIN);
    assert!(origin.take_text().starts_with("GET / "));
    origin.send(OK);
    h.settle();
    assert_eq!(status(&text(&client)), 200);
    assert_eq!(h.stat("http.test.fault.delays_injected"), 1);
    assert_eq!(h.stat("http.test.fault.active_faults"), 0);
}

#[test]
fn a_fault_abort_answers_and_a_route_can_turn_the_filter_off() {
    let fault = filter(
        "envoy.filters.http.fault",
        FAULT,
        "              abort: { http_status: 503, percentage: { numerator: 100 } }\n",
    );
    let quiet = "              - match: { prefix: /quiet }\n                route: { cluster: backend }\n                typed_per_filter_config:\n                  envoy.filters.http.fault:\n                    \"@type\": type.googleapis.com/envoy.config.route.v3.FilterConfig\n                    disabled: true\n";
    let mut h = Harness::new(&bootstrap_with_routes("", &fault, quiet, "", &[ORIGIN]));
    let client = h.client(0);
    client.send("GET / HTTP/1.1\r\nhost: a\r\n\r\n");
    h.settle();
    let answer = text(&client);
    assert_eq!(status(&answer), 503);
    assert!(answer.ends_with("fault filter abort"), "{answer}");
    assert!(h.accepted(ORIGIN).is_empty());
    client.send("GET /quiet HTTP/1.1\r\nhost: a\r\n\r\n");
    h.settle();
    let origin = h.accept(ORIGIN);
    origin.send(OK);
    h.settle();
    assert_eq!(status(&text(&client)), 200);
    assert_eq!(h.stat("http.test.fault.aborts_injected"), 1);
}

#[test]
fn the_buffer_filter_sends_the_whole_body_sized_and_refuses_a_large_one() {
    let buffer = filter(
        "envoy.filters.http.buffer",
        BUFFER,
        "              max_request_bytes: 16\n",
    );
    let mut h = Harness::new(&bootstrap("", &buffer, "", &[ORIGIN]));
    let client = h.client(0);
    client.send("POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n4\r\nabcd\r\n");
    h.settle();
    assert!(
        h.accepted(ORIGIN).is_empty(),
        "nothing goes before the whole body"
    );
    client.send("2\r\nef\r\n0\r\n\r\n");
    h.settle();
    let origin = h.accept(ORIGIN);
    let request = origin.take_text();
    assert!(request.contains("content-length: 6\r\n"), "{request}");
    assert!(!request.contains("transfer-encoding"), "{request}");
    assert!(request.ends_with("\r\n\r\nabcdef"), "{request}");
    origin.send(OK);
    h.settle();
    assert_eq!(status(&text(&client)), 200);

    let big = h.client(0);
    big.send("POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 40\r\n\r\n0123456789012345678");
    h.settle();
    let answer = text(&big);
    assert_eq!(status(&answer), 413);
    assert!(answer.contains("connection: close\r\n"));
    assert!(big.worker_finished());
}

#[test]
fn health_checks_are_answered_at_the_proxy_until_the_health_check_fails() {
    let health = filter(
        "envoy.filters.http.health_check",
        HEALTH,
        "              pass_through_mode: false\n              headers: [ { name: \":path\", string_match: { exact: /healthz } } ]\n",
    );
    let mut h = Harness::new(&bootstrap("", &health, "", &[ORIGIN]));
    let client = h.client(0);
    client.send("GET /healthz HTTP/1.1\r\nhost: a\r\n\r\n");
    h.settle();
    let answer = text(&client);
    assert_eq!(status(&answer), 200);
    assert!(
        answer.contains("x-envoy-upstream-healthchecked-cluster: \r\n"),
        "{answer}"
    );
    assert!(h.accepted(ORIGIN).is_empty());

    h.fail_health_check();
    client.send("GET /healthz HTTP/1.1\r\nhost: a\r\n\r\n");
    h.settle();
    let answer = text(&client);
    assert_eq!(status(&answer), 503);
    assert!(
        answer.contains("connection: close\r\n"),
        "a failed health check drains"
    );
}

/// A body that arrives whole while a fault delay holds the request reaches a buffer filter after
/// it, and the request goes upstream when the delay ends (it used to wait for the stream idle
/// timeout).
#[test]
fn a_body_sent_during_a_delay_goes_on_through_a_buffer_filter() {
    let filters = format!(
        "{}{}",
        filter(
            "envoy.filters.http.fault",
            FAULT,
            "              delay: { fixed_delay: 1s, percentage: { numerator: 100 } }\n",
        ),
        filter(
            "envoy.filters.http.buffer",
            BUFFER,
            "              max_request_bytes: 1000\n"
        ),
    );
    let mut h = Harness::new(&bootstrap("", &filters, "", &[ORIGIN]));
    let client = h.client(0);
    client.send("POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nhello");
    h.settle();
    h.advance(Duration::from_millis(1001));
    let origin = h.accept(ORIGIN);
    assert!(origin.take_text().ends_with("\r\n\r\nhello"));
    origin.send(OK);
    h.settle();
    assert_eq!(status(&text(&client)), 200);
}

/// Bodiless requests through a filter chain leave no timer behind (the router's end used to
/// run twice and leak a route timer per request).
#[test]
fn requests_through_filters_leave_no_timers_behind() {
    let fault = filter(
        "envoy.filters.http.fault",
        FAULT,
        "              abort: { http_status: 503, percentage: { numerator: 0 } }\n",
    );
    let mut h = Harness::new(&bootstrap("", &fault, "", &[ORIGIN]));
    let client = h.client(0);
    let baseline = h.worker.timers.len();
    let mut origin = None;
    for _ in 0..20 {
        client.send("GET / HTTP/1.1\r\nhost: a\r\n\r\n");
        h.settle();
        // One pooled connection carries them all.
        let conn = origin.get_or_insert_with(|| h.accept(ORIGIN));
        assert!(conn.take_text().starts_with("GET / "));
        conn.send(OK);
        h.settle();
        assert_eq!(status(&text(&client)), 200);
    }
    assert!(
        h.worker.timers.len() <= baseline + 1,
        "{} timers after 20 requests, {baseline} before",
        h.worker.timers.len()
    );
}
