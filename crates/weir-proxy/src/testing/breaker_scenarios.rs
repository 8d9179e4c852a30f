//! Circuit breakers in memory on a virtual clock: requests that wait for a connection, the
//! ones refused 503 `UO`, and the counts and gauges they leave.

use std::time::Duration;

use super::{Harness, Peer, bootstrap, status};

const ORIGIN: &str = "127.0.0.1:9001";
const GET: &str = "GET / HTTP/1.1\r\nhost: a\r\n\r\n";
const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// One origin behind a cluster with `breakers` (a `circuit_breakers` value), and `route`
/// added to the route's action.
fn harness(breakers: &str, route: &str) -> Harness {
    let yaml = format!(
        "{}    circuit_breakers: {breakers}\n",
        bootstrap("", "", route, &[ORIGIN])
    );
    Harness::new(&yaml)
}

/// A new client that sends one GET.
fn send(h: &mut Harness) -> Peer {
    let client = h.client(0);
    client.send(GET);
    h.settle();
    client
}

#[test]
fn past_max_connections_requests_wait_for_a_connection_and_past_max_pending_are_refused() {
    let mut h = harness(
        "{ thresholds: [{ max_connections: 1, max_pending_requests: 1, track_remaining: true }] }",
        "",
    );
    let first = send(&mut h);
    let origin = h.accept(ORIGIN);
    assert!(origin.take_text().starts_with("GET / "));
    assert_eq!(
        h.stat("cluster.backend.circuit_breakers.default.cx_open"),
        1
    );

    // The one connection is busy and no other may open: the second request waits.
    let second = send(&mut h);
    assert!(h.accepted(ORIGIN).is_empty(), "no second connection");
    assert_eq!(second.take_text(), "");
    assert_eq!(h.stat("cluster.backend.upstream_cx_overflow"), 1);
    assert_eq!(h.stat("cluster.backend.upstream_rq_pending_active"), 1);
    let remaining = "cluster.backend.circuit_breakers.default.remaining_pending";
    assert_eq!(h.stat(remaining), 0);

    // The queue is full: the third is refused at once, as Envoy refuses it.
    let third = send(&mut h);
    let refused = third.take_text();
    assert_eq!(status(&refused), 503);
    assert!(
        refused.contains("x-envoy-overloaded: true\r\n"),
        "{refused}"
    );
    assert!(
        refused.ends_with(
            "upstream connect error or disconnect/reset before headers. reset reason: overflow"
        ),
        "{refused}"
    );
    assert_eq!(h.stat("cluster.backend.upstream_rq_pending_overflow"), 1);

    // The first response frees the connection: the waiting request takes it.
    origin.send(OK);
    h.settle();
    assert_eq!(status(&first.take_text()), 200);
    assert!(
        origin.take_text().starts_with("GET / "),
        "on the same connection"
    );
    origin.send(OK);
    h.settle();
    assert_eq!(status(&second.take_text()), 200);
    assert_eq!(h.stat("cluster.backend.upstream_cx_total"), 1);
    assert_eq!(h.stat("cluster.backend.upstream_rq_pending_active"), 0);
    assert_eq!(h.stat(remaining), 1);
    assert_eq!(h.stat("cluster.backend.upstream_rq_pending_total"), 2);
}

#[test]
fn a_waiting_request_that_times_out_leaves_the_queue() {
    let mut h = harness("{ thresholds: [{ max_connections: 1 }] }", ", timeout: 2s");
    let first = send(&mut h);
    let origin = h.accept(ORIGIN);
    origin.take_text();
    let second = send(&mut h);
    h.advance(Duration::from_millis(2001));
    let (first, second) = (first.take_text(), second.take_text());
    // Both timed out: the first on its connection, the second in the queue.
    assert_eq!(status(&first), 504);
    assert_eq!(status(&second), 504);
    assert_eq!(h.stat("cluster.backend.upstream_rq_pending_active"), 0);
    // The connection of the first was abandoned mid-request; a new request connects anew
    // and nothing stale rides on it.
    let third = send(&mut h);
    let origin = h.accept(ORIGIN);
    assert!(origin.take_text().starts_with("GET / "));
    origin.send(OK);
    h.settle();
    assert_eq!(status(&third.take_text()), 200);
    assert!(
        origin.take_text().is_empty(),
        "the timed-out request never went"
    );
}

#[test]
fn a_connection_closed_under_the_limit_lets_a_waiting_request_connect() {
    let mut h = harness("{ thresholds: [{ max_connections: 1 }] }", "");
    let first = send(&mut h);
    let origin = h.accept(ORIGIN);
    origin.take_text();
    let second = send(&mut h);
    // The origin answers with `connection: close`: the connection goes, and the waiting
    // request gets a new one.
    origin.send("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok");
    origin.finish();
    h.settle();
    assert_eq!(status(&first.take_text()), 200);
    let next = h.accept(ORIGIN);
    assert!(next.take_text().starts_with("GET / "));
    next.send(OK);
    h.settle();
    assert_eq!(status(&second.take_text()), 200);
    assert_eq!(h.stat("cluster.backend.upstream_cx_total"), 2);
}

#[test]
fn past_max_requests_a_request_is_refused_when_its_connection_is_ready() {
    let mut h = harness("{ thresholds: [{ max_requests: 1 }] }", "");
    let first = send(&mut h);
    let origin = h.accept(ORIGIN);
    origin.take_text();
    assert_eq!(
        h.stat("cluster.backend.circuit_breakers.default.rq_open"),
        1
    );
    // A second connection opens (connections are not limited); once it is ready the request
    // would be the second in flight.
    let second = send(&mut h);
    let refused = second.take_text();
    assert_eq!(status(&refused), 503, "{refused}");
    assert_eq!(h.stat("cluster.backend.upstream_rq_active_overflow"), 1);
    origin.send(OK);
    h.settle();
    assert_eq!(status(&first.take_text()), 200);
    // With the first done, the pooled connection takes the next.
    let third = send(&mut h);
    assert!(origin.take_text().starts_with("GET / "));
    origin.send(OK);
    h.settle();
    assert_eq!(status(&third.take_text()), 200);
}

#[test]
fn past_max_retries_the_failure_is_the_answer() {
    let route = ", retry_policy: { retry_on: 5xx, num_retries: 3 }";
    let mut h = harness("{ thresholds: [{ max_retries: 0 }] }", route);
    let client = send(&mut h);
    let origin = h.accept(ORIGIN);
    origin.take_text();
    origin.send("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy");
    h.settle();
    let response = client.take_text();
    assert_eq!(status(&response), 503);
    assert!(response.ends_with("busy"), "the origin's own: {response}");
    assert_eq!(h.stat("cluster.backend.upstream_rq_retry_overflow"), 1);
    assert_eq!(h.stat("cluster.backend.upstream_rq_retry"), 0);
}

#[test]
fn a_retry_holds_its_place_until_its_attempt_is_answered() {
    let route = ", retry_policy: { retry_on: 5xx, num_retries: 3, retry_back_off: { base_interval: 0.01s } }";
    let mut h = harness(
        "{ thresholds: [{ max_retries: 1, track_remaining: true }] }",
        route,
    );
    let client = send(&mut h);
    let origin = h.accept(ORIGIN);
    origin.take_text();
    let retries = "cluster.backend.circuit_breakers.default.remaining_retries";
    assert_eq!(h.stat(retries), 1);
    origin.send("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
    h.advance(Duration::from_millis(20));
    assert_eq!(h.stat(retries), 0, "the retry is under way");
    // The answered attempt's connection is not reused: the retry connects anew.
    let origin = h.accept(ORIGIN);
    assert!(origin.take_text().starts_with("GET / "), "retried");
    origin.send(OK);
    h.settle();
    assert_eq!(status(&client.take_text()), 200);
    assert_eq!(h.stat(retries), 1, "given back");
}

#[test]
fn max_connection_pools_refuses_a_new_pool_as_no_healthy_upstream() {
    let mut h = harness("{ thresholds: [{ max_connection_pools: 0 }] }", "");
    let client = send(&mut h);
    let response = client.take_text();
    assert_eq!(status(&response), 503);
    assert!(response.ends_with("no healthy upstream"), "{response}");
    assert_eq!(h.stat("cluster.backend.upstream_cx_pool_overflow"), 1);
}

#[test]
fn a_waiting_request_keeps_its_body_for_the_connection_it_gets() {
    let mut h = harness("{ thresholds: [{ max_connections: 1 }] }", "");
    let first = send(&mut h);
    let origin = h.accept(ORIGIN);
    origin.take_text();
    let second = h.client(0);
    second.send("POST /upload HTTP/1.1\r\nhost: a\r\ncontent-length: 10\r\n\r\n01234");
    h.settle();
    second.send("56789");
    h.settle();
    origin.send(OK);
    h.settle();
    assert_eq!(status(&first.take_text()), 200);
    let request = origin.take_text();
    assert!(request.starts_with("POST /upload "), "{request}");
    assert!(request.ends_with("\r\n\r\n0123456789"), "{request}");
    origin.send(OK);
    h.settle();
    assert_eq!(status(&second.take_text()), 200);
}
