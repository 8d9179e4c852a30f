//! "Why did this request fail?" in memory: each failure class of the failing-origins tests
//! (refused, reset, timeouts, protocol error, retries exhausted, circuit breakers, no healthy
//! host) leaves a record whose attempts, retry decisions and summary say what happened; a
//! request that goes well leaves none.

use std::time::Duration;

use super::{Harness, Peer, bootstrap, status};
use crate::upstream::circuit_breaker::Resource;
use crate::why::{ConnectionUse, FailureRecord, Outcome, Verdict};

const ORIGIN: &str = "127.0.0.1:9001";
const GET: &str = "GET /p HTTP/1.1\r\nhost: a\r\nx-request-id: r1\r\n\r\n";
const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
const BUSY: &str = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";

fn harness(route: &str) -> Harness {
    harness_plus(route, "")
}

/// [`harness`] with `tail` after the cluster (its fields, indented 4, or top-level ones).
fn harness_plus(route: &str, tail: &str) -> Harness {
    Harness::new(&(bootstrap("", "", route, &[ORIGIN]) + tail))
}

/// A new client's GET is answered 503: the failure the worker kept of it.
fn refused_503(h: &mut Harness) -> FailureRecord {
    let client = send(h);
    assert_eq!(status(&client.take_text()), 503);
    only_failure(h)
}

/// A new client that sends one GET.
fn send(h: &mut Harness) -> Peer {
    let client = h.client(0);
    client.send(GET);
    h.settle();
    client
}

/// A new client's GET, forwarded: the client, and the origin connection that took it.
fn forwarded(h: &mut Harness) -> (Peer, Peer) {
    let client = send(h);
    let origin = h.accept(ORIGIN);
    origin.take_text();
    (client, origin)
}

/// The reasons of a flow's `why` events.
fn why_events(flow: &weir_flow::Flow) -> Vec<String> {
    (flow.events.iter())
        .filter_map(|e| match &e.kind {
            weir_flow::EventKind::Why { reason } => Some(reason.to_string()),
            _ => None,
        })
        .collect()
}

/// The one failure the worker kept.
fn only_failure(h: &Harness) -> FailureRecord {
    let kept: Vec<_> = h.worker.failures.recent().cloned().collect();
    assert_eq!(kept.len(), 1, "failures kept: {kept:#?}");
    kept.into_iter().next().expect("one")
}

fn outcomes(f: &FailureRecord) -> Vec<Outcome> {
    f.notes.attempts.iter().map(|a| a.outcome).collect()
}

fn verdicts(f: &FailureRecord) -> Vec<Option<Verdict>> {
    f.notes.attempts.iter().map(|a| a.verdict).collect()
}

#[test]
fn a_request_that_goes_well_leaves_nothing() {
    let mut h = harness("");
    let (client, origin) = forwarded(&mut h);
    origin.send(OK);
    h.settle();
    assert_eq!(status(&client.take_text()), 200);
    assert_eq!(h.worker.failures.recent().count(), 0);
}

#[test]
fn a_refused_connect_without_a_retry_policy() {
    let mut h = harness("");
    h.listen(ORIGIN, None);
    let f = refused_503(&mut h);
    assert_eq!((f.status, f.flags), (503, "UF"));
    assert_eq!(f.notes.local_details, Some(f.details));
    assert_eq!((&*f.method, &*f.path), ("GET", "/p"));
    assert_eq!(f.request_id.as_deref(), Some("r1"));
    assert_eq!(f.cluster.as_deref(), Some("backend"));
    let attempt = &f.notes.attempts[0];
    assert_eq!(attempt.outcome, Outcome::ConnectRefused);
    assert_eq!(attempt.connection, ConnectionUse::New);
    assert_eq!(attempt.host, Some(ORIGIN.parse().expect("addr")));
    assert_eq!(verdicts(&f), [Some(Verdict::NoPolicy)]);
    assert_eq!(
        f.summary(),
        "connection refused (127.0.0.1:9001); not retried: the route has no retry policy"
    );
}

#[test]
fn a_reset_before_the_response_and_one_after_it_started() {
    let mut h = harness("");
    let (client, origin) = forwarded(&mut h);
    origin.reset();
    h.settle();
    assert_eq!(status(&client.take_text()), 503);
    let f = only_failure(&h);
    assert_eq!(f.flags, "UR");
    assert_eq!(outcomes(&f), [Outcome::Reset]);
    assert_eq!(f.notes.attempts[0].response_status, None);
    assert!(!f.cut);
    assert!(
        f.summary()
            .starts_with("the origin reset the connection before the response")
    );

    let mut h = harness("");
    let (client, origin) = forwarded(&mut h);
    origin.send("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789");
    h.settle();
    origin.reset();
    h.settle();
    assert!(client.take_text().starts_with("HTTP/1.1 200"));
    let f = only_failure(&h);
    assert!(f.cut, "the response was cut short");
    assert_eq!((f.status, f.flags, f.details), (200, "UR", "via_upstream"));
    let attempt = &f.notes.attempts[0];
    assert_eq!(
        (attempt.response_status, attempt.response_bytes),
        (Some(200), 10)
    );
    assert_eq!(attempt.verdict, Some(Verdict::ResponseStarted));
    assert!(
        f.summary().starts_with(
            "the origin reset the connection after the response head (200) and 10 body bytes"
        ),
        "{}",
        f.summary()
    );
}

#[test]
fn timeouts_say_which_one() {
    // The route's timeout.
    let mut h = harness(", timeout: 2s");
    let client = send(&mut h);
    h.accept(ORIGIN).take_text();
    h.advance(Duration::from_secs(3));
    assert_eq!(status(&client.take_text()), 504);
    let f = only_failure(&h);
    assert_eq!((f.flags, f.details), ("UT", "upstream_response_timeout"));
    assert_eq!(outcomes(&f), [Outcome::RouteTimeout]);

    // A per-try timeout, retried, then the route's.
    let route = ", timeout: 5s, retry_policy: { retry_on: 5xx, num_retries: 1, per_try_timeout: 1s, retry_back_off: { base_interval: 0.01s } }";
    let mut h = harness(route);
    let client = send(&mut h);
    h.accept(ORIGIN).take_text();
    h.advance(Duration::from_millis(1100));
    h.accept(ORIGIN).take_text();
    h.advance(Duration::from_millis(1100));
    assert_eq!(status(&client.take_text()), 504);
    let f = only_failure(&h);
    assert_eq!(f.flags, "URX,UT");
    assert_eq!(
        outcomes(&f),
        [Outcome::PerTryTimeout, Outcome::PerTryTimeout]
    );
    assert_eq!(
        verdicts(&f),
        [
            Some(Verdict::Retry { retry: 1, of: 1 }),
            Some(Verdict::LimitReached { num_retries: 1 })
        ]
    );
    assert!(f.notes.attempts[0].backoff.is_some());

    // The cluster's connect timeout (1s) at a host that drops SYNs.
    let mut h = harness("");
    h.listen(ORIGIN, Some(super::pipe::Listening::BlackHole));
    let client = send(&mut h);
    h.advance(Duration::from_millis(1500));
    assert_eq!(status(&client.take_text()), 503);
    let f = only_failure(&h);
    assert_eq!(outcomes(&f), [Outcome::ConnectTimeout]);
    assert_eq!(f.notes.attempts[0].connection, ConnectionUse::New);
}

#[test]
fn a_malformed_response() {
    let mut h = harness("");
    let (client, origin) = forwarded(&mut h);
    origin.send("HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n");
    h.settle();
    assert_eq!(status(&client.take_text()), 502);
    let f = only_failure(&h);
    assert_eq!(f.flags, "UPE");
    assert_eq!(outcomes(&f), [Outcome::ProtocolError]);
}

#[test]
fn retries_exhausted_on_error_statuses_with_their_back_off() {
    let route = ", retry_policy: { retry_on: 5xx, num_retries: 1, retry_back_off: { base_interval: 0.01s } }";
    let mut h = harness(route);
    let (client, origin) = forwarded(&mut h);
    origin.send(BUSY);
    h.advance(Duration::from_millis(50));
    let origin = h.accept(ORIGIN);
    origin.take_text();
    origin.send(BUSY);
    h.settle();
    assert_eq!(status(&client.take_text()), 503);
    let f = only_failure(&h);
    assert_eq!((f.flags, f.details), ("URX", "via_upstream"));
    assert_eq!(f.notes.local_details, None, "the origin's answer");
    assert_eq!(outcomes(&f), [Outcome::Status(503), Outcome::Status(503)]);
    assert_eq!(
        verdicts(&f),
        [
            Some(Verdict::Retry { retry: 1, of: 1 }),
            Some(Verdict::LimitReached { num_retries: 1 })
        ]
    );
    let backoff = f.notes.attempts[0].backoff.expect("a back-off");
    assert!(backoff <= Duration::from_millis(10), "{backoff:?}");
    // The retry under way held one of the cluster's retries.
    assert_eq!(f.notes.attempts[1].breakers.retries.in_use, 1);
    assert_eq!(
        f.summary(),
        "the origin answered 503 (127.0.0.1:9001, attempt 2); not retried: retries exhausted (num_retries 1)"
    );
}

#[test]
fn circuit_breakers_that_refused() {
    // max_pending_requests: a request waits for its new connection as a pending one.
    let breakers = "    circuit_breakers: { thresholds: [{ max_pending_requests: 0 }] }\n";
    let f = refused_503(&mut harness_plus("", breakers));
    assert_eq!(f.flags, "UO");
    assert_eq!(outcomes(&f), [Outcome::Overflow(Resource::Pending)]);
    let attempt = &f.notes.attempts[0];
    assert_eq!(attempt.connection, ConnectionUse::None);
    assert_eq!(attempt.host, Some(ORIGIN.parse().expect("addr")));
    assert_eq!(
        (
            attempt.breakers.pending.in_use,
            attempt.breakers.pending.max
        ),
        (0, 0)
    );
    assert!(
        f.summary().contains("max_pending_requests"),
        "{}",
        f.summary()
    );

    // max_retries: the retry the policy wanted was refused.
    let yaml = format!(
        "{}    circuit_breakers: {{ thresholds: [{{ max_retries: 0 }}] }}\n",
        bootstrap(
            "",
            "",
            ", retry_policy: { retry_on: 5xx, num_retries: 3 }",
            &[ORIGIN]
        )
    );
    let mut h = Harness::new(&yaml);
    let (client, origin) = forwarded(&mut h);
    origin.send(BUSY);
    h.settle();
    assert_eq!(status(&client.take_text()), 503);
    let f = only_failure(&h);
    assert_eq!(f.flags, "UO");
    assert_eq!(
        verdicts(&f),
        [Some(Verdict::RetryBreakerOpen { in_use: 0, max: 0 })]
    );
}

#[test]
fn no_healthy_host_says_why_none_was() {
    // Its one host marked unhealthy, and no panic to fall back on.
    let yaml = bootstrap("", "", "", &[ORIGIN]).replace(
        "          - endpoint:",
        "          - health_status: UNHEALTHY\n            endpoint:",
    ) + "    common_lb_config: { healthy_panic_threshold: { value: 0 } }\n";
    let f = refused_503(&mut Harness::new(&yaml));
    assert_eq!((f.flags, f.details), ("UH", "no_healthy_upstream"));
    let hosts = f.notes.hosts.expect("the hosts then");
    assert_eq!(
        (hosts.total, hosts.healthy, hosts.unhealthy_status),
        (1, 0, 1)
    );
    assert_eq!(
        f.summary(),
        "no healthy host in cluster backend: 1 hosts, 0 healthy (1 marked unhealthy by health_status)"
    );

    // A new pool refused by max_connection_pools.
    let breakers = "    circuit_breakers: { thresholds: [{ max_connection_pools: 0 }] }\n";
    let f = refused_503(&mut harness_plus("", breakers));
    assert!(f.notes.hosts.expect("hosts").pools_full);
    assert!(
        f.summary().contains("max_connection_pools"),
        "{}",
        f.summary()
    );
}

#[test]
fn weirs_own_error_answers_are_kept_and_its_configured_answers_are_not() {
    let routes = "              - match: { prefix: /moved }\n                redirect: { path_redirect: /new }\n";
    let yaml = super::bootstrap_with_routes("", "", routes, "", &[ORIGIN])
        .replace("domains: [\"*\"]", "domains: [\"a\"]");
    let mut h = Harness::new(&yaml);
    let client = h.client(0);
    client.send("GET /moved HTTP/1.1\r\nhost: a\r\n\r\n");
    h.settle();
    assert_eq!(status(&client.take_text()), 301);
    assert_eq!(
        h.worker.failures.recent().count(),
        0,
        "a redirect is no failure"
    );
    client.send("GET /x HTTP/1.1\r\nhost: elsewhere\r\n\r\n");
    h.settle();
    assert_eq!(status(&client.take_text()), 404);
    let f = only_failure(&h);
    assert_eq!((f.flags, f.details), ("NR", "route_not_found"));
    assert_eq!(
        (&*f.method, &*f.authority, &*f.path),
        ("GET", "elsewhere", "/x")
    );
    assert_eq!(f.summary(), "no route matched the request");
}

#[test]
fn the_worker_keeps_its_latest_failures_only() {
    let mut h = harness("");
    h.listen(ORIGIN, None);
    for _ in 0..crate::why::KEPT + 5 {
        let client = send(&mut h);
        assert_eq!(status(&client.take_text()), 503);
    }
    let kept: Vec<u64> = h.worker.failures.recent().map(|f| f.stream).collect();
    assert_eq!(kept.len(), crate::why::KEPT);
    assert!(kept.windows(2).all(|w| w[0] > w[1]), "newest first");
}

#[test]
fn a_traced_failure_says_why_in_its_flow() {
    let mut h = harness_plus("", "weir:\n  flow_trace:\n    mode: ALL\n");
    h.listen(ORIGIN, None);
    let f = refused_503(&mut h);
    let flow = h.worker.recorder.flows().next().expect("a flow");
    assert_eq!(
        flow.stream, f.stream,
        "the flow and the record are the same stream's"
    );
    let why = why_events(flow);
    assert_eq!(why, [f.summary()]);
}

#[test]
fn an_error_status_whose_body_then_fails_is_one_attempt() {
    let mut h = harness("");
    let (client, origin) = forwarded(&mut h);
    origin.send("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 1000\r\n\r\n0123456789");
    h.settle();
    origin.reset();
    h.settle();
    assert!(client.take_text().starts_with("HTTP/1.1 503"));
    let f = only_failure(&h);
    assert_eq!(outcomes(&f), [Outcome::Reset], "{:#?}", f.notes.attempts);
    let attempt = &f.notes.attempts[0];
    assert_eq!(
        (attempt.response_status, attempt.response_bytes),
        (Some(503), 10)
    );
    assert_eq!(attempt.verdict, Some(Verdict::ResponseStarted));
}

#[test]
fn a_request_refused_when_its_new_connection_is_ready_is_told_with_that_connection() {
    let breakers = "    circuit_breakers: { thresholds: [{ max_requests: 1 }] }\n";
    let mut h = harness_plus("", breakers);
    let _first = send(&mut h);
    h.accept(ORIGIN).take_text();
    let f = refused_503(&mut h);
    assert_eq!(f.flags, "UO");
    let attempt = &f.notes.attempts[0];
    assert_eq!(attempt.outcome, Outcome::Overflow(Resource::Requests));
    assert_eq!(attempt.connection, ConnectionUse::New);
    assert_eq!(attempt.breakers.requests.in_use, 1);
}

#[test]
fn configured_answers_are_no_failures_unless_they_are_5xx() {
    let routes = "              - match: { prefix: /gone }\n                direct_response: { status: 404 }\n              - match: { prefix: /down }\n                direct_response: { status: 503 }\n";
    let mut h = Harness::new(&super::bootstrap_with_routes("", "", routes, "", &[ORIGIN]));
    let client = h.client(0);
    client.send("GET /gone HTTP/1.1\r\nhost: a\r\n\r\n");
    h.settle();
    assert_eq!(status(&client.take_text()), 404);
    assert_eq!(h.worker.failures.recent().count(), 0, "a configured 404");
    client.send("GET /down HTTP/1.1\r\nhost: a\r\n\r\n");
    h.settle();
    assert_eq!(status(&client.take_text()), 503);
    let f = only_failure(&h);
    assert_eq!(f.details, "direct_response");
    assert_eq!(f.summary(), "weir answered 503 (direct_response)");
}

#[test]
fn a_traced_request_whose_client_left_during_a_retry_says_why_in_its_flow() {
    let route = ", retry_policy: { retry_on: connect-failure, num_retries: 2, retry_back_off: { base_interval: 1s } }";
    let mut h = harness_plus(route, "weir:\n  flow_trace:\n    mode: ALL\n");
    h.listen(ORIGIN, None);
    let client = send(&mut h);
    // The first attempt was refused; the retry waits for its back-off when the client resets.
    client.reset();
    h.settle();
    let f = only_failure(&h);
    assert_eq!((f.status, f.flags), (0, "DC"));
    let flow = h.worker.recorder.flows().next().expect("a flow");
    let why = why_events(flow);
    assert_eq!(why, [f.summary()]);
    assert!(why[0].starts_with("the client went away"), "{why:?}");
}
