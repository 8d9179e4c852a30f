//! The connection manager's timers, retries, pipelining and back-pressure, in memory on a
//! virtual clock: each test runs in microseconds whatever the timeouts it exercises, and no
//! outcome depends on how busy the machine is.

use std::time::Duration;

use super::{Harness, Listening, Peer, bootstrap, hcm, status};

const ORIGIN: &str = "127.0.0.1:9001";
const SECOND: &str = "127.0.0.1:9002";

/// [`bootstrap`] with the router as the only HTTP filter.
fn config(hcm: &str, route: &str, hosts: &[&str]) -> String {
    bootstrap(hcm, "", route, hosts)
}

const GET: &str = "GET / HTTP/1.1\r\nhost: a\r\n\r\n";

fn ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Sends one request from a new client and returns the client and the origin's connection.
fn forwarded(h: &mut Harness, request: &str) -> (Peer, Peer) {
    let client = h.client(0);
    client.send(request);
    h.settle();
    let origin = h.accept(ORIGIN);
    (client, origin)
}

#[test]
fn a_request_goes_through_and_the_connection_is_pooled() {
    let mut h = Harness::new(&config("", "", &[ORIGIN]));
    let (client, origin) = forwarded(&mut h, GET);
    let request = origin.take_text();
    assert!(request.starts_with("GET / HTTP/1.1\r\n"), "{request}");
    origin.send(ok("hello"));
    h.settle();
    let response = client.take_text();
    assert_eq!(status(&response), 200);
    assert!(response.ends_with("\r\n\r\nhello"), "{response}");
    // The next request reuses the pooled connection.
    client.send(GET);
    h.settle();
    assert!(h.accepted(ORIGIN).is_empty(), "no new connection");
    assert!(origin.take_text().starts_with("GET / "));
    assert_eq!(h.stat("cluster.backend.upstream_cx_total"), 1);
}

#[test]
fn idle_connections_close_after_the_idle_timeout_and_busy_ones_do_not() {
    let mut h = Harness::new(&config(
        &hcm("common_http_protocol_options: { idle_timeout: 3s }"),
        "",
        &[ORIGIN],
    ));
    let idle = h.client(0);
    let (busy, origin) = forwarded(&mut h, GET);
    h.advance(Duration::from_millis(2900));
    assert!(!idle.worker_finished());
    h.advance(Duration::from_millis(200));
    assert!(idle.worker_finished(), "closed at 3 s");
    assert!(!busy.worker_finished(), "a request in flight is not idle");
    origin.send(ok("late"));
    h.settle();
    assert_eq!(status(&busy.take_text()), 200);
    h.advance(Duration::from_secs(3));
    assert!(busy.worker_finished(), "idle again after its response");
    assert_eq!(h.stat("http.test.downstream_cx_idle_timeout"), 2);
}

#[test]
fn request_timeout_is_408_when_the_body_stalls() {
    let mut h = Harness::new(&config(&hcm("request_timeout: 5s"), "", &[ORIGIN]));
    let (client, origin) = forwarded(
        &mut h,
        "POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 100\r\n\r\n0123456789",
    );
    h.advance(Duration::from_secs(5));
    let response = client.take_text();
    assert_eq!(status(&response), 408);
    assert!(response.contains("connection: close\r\n"));
    assert!(response.ends_with("request timeout"));
    assert!(
        origin.worker_closed(),
        "the half-sent request's connection is closed"
    );
    assert_eq!(h.stat("http.test.downstream_rq_timeout"), 1);
}

#[test]
fn request_timeout_stops_when_the_response_begins() {
    let mut h = Harness::new(&config(&hcm("request_timeout: 5s"), "", &[ORIGIN]));
    let (client, origin) = forwarded(
        &mut h,
        "POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 20\r\n\r\n0123456789",
    );
    origin.send("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab");
    h.advance(Duration::from_secs(8));
    client.send("0123456789");
    h.settle();
    origin.send("cde");
    h.settle();
    let response = client.take_text();
    assert_eq!(status(&response), 200);
    assert!(response.ends_with("abcde"), "{response}");
    assert_eq!(h.stat("http.test.downstream_rq_timeout"), 0);
}

#[test]
fn stream_idle_timeout_is_504_after_the_request_408_during_it_and_activity_postpones_it() {
    let mut h = Harness::new(&config(
        &hcm("stream_idle_timeout: 1s"),
        ", timeout: 0s",
        &[ORIGIN],
    ));
    let (client, origin) = forwarded(&mut h, GET);
    origin.send("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n");
    // A byte every 0.8 s: never 1 s without activity.
    for piece in ["a", "b", "c"] {
        h.advance(Duration::from_millis(800));
        origin.send(piece);
        h.settle();
    }
    let response = client.take_text();
    assert!(response.ends_with("abc"), "{response}");

    client.send(GET);
    h.settle();
    h.advance(Duration::from_millis(999));
    assert_eq!(client.take_text(), "");
    h.advance(Duration::from_millis(2));
    // The whole request was sent: the wait is the proxy's side (Envoy's 504).
    let response = client.take_text();
    assert_eq!(status(&response), 504);
    assert!(response.ends_with("stream timeout"));

    // A body still owed by the client: 408.
    let client = h.client(0);
    client.send("POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 10\r\n\r\n01234");
    h.settle();
    h.advance(Duration::from_millis(1001));
    let response = client.take_text();
    assert_eq!(status(&response), 408);
    assert!(response.ends_with("stream timeout"));
    assert_eq!(h.stat("http.test.downstream_rq_idle_timeout"), 2);
}

#[test]
fn request_headers_timeout_is_408_for_a_head_that_never_ends() {
    let mut h = Harness::new(&config(&hcm("request_headers_timeout: 2s"), "", &[ORIGIN]));
    let client = h.client(0);
    client.send("GET / HTTP/1.1\r\nhost");
    h.advance(Duration::from_secs(2));
    let response = client.take_text();
    assert_eq!(status(&response), 408);
    assert!(client.worker_finished());
    assert!(h.accepted(ORIGIN).is_empty());
}

#[test]
fn route_timeout_is_504_and_the_upstream_connection_is_not_pooled() {
    let mut h = Harness::new(&config("", ", timeout: 15s", &[ORIGIN]));
    let (client, origin) = forwarded(&mut h, GET);
    h.advance(Duration::from_millis(14_999));
    assert_eq!(client.take_text(), "");
    h.advance(Duration::from_millis(2));
    let response = client.take_text();
    assert_eq!(status(&response), 504);
    assert!(response.ends_with("upstream request timeout"), "{response}");
    assert!(origin.worker_closed());
    assert_eq!(h.stat("cluster.backend.upstream_rq_timeout"), 1);
}

#[test]
fn connect_timeout_is_503_uf() {
    let mut h = Harness::new(&config("", "", &[ORIGIN]));
    h.listen(ORIGIN, Some(Listening::BlackHole));
    let client = h.client(0);
    client.send(GET);
    h.settle();
    h.advance(Duration::from_millis(999));
    assert_eq!(client.take_text(), "");
    h.advance(Duration::from_millis(2));
    let response = client.take_text();
    assert_eq!(status(&response), 503);
    assert!(response.ends_with("upstream connect error or disconnect/reset before headers. reset reason: connection timeout"), "{response}");
    assert_eq!(h.stat("cluster.backend.upstream_cx_connect_timeout"), 1);
}

#[test]
fn retries_wait_their_back_off_and_go_to_the_next_host() {
    let route = ", retry_policy: { retry_on: 5xx, num_retries: 2, retry_back_off: { base_interval: 1s, max_interval: 1s } }";
    let mut h = Harness::new(&config("", route, &[ORIGIN, SECOND]));
    let (client, first) = forwarded(&mut h, GET);
    first.send("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
    h.settle();
    assert_eq!(client.take_text(), "", "the 503 is not the answer");
    // The back-off is a random delay up to 1 s: nothing before it, the retry by its end.
    assert!(h.accepted(SECOND).is_empty() && h.accepted(ORIGIN).is_empty());
    h.advance(Duration::from_millis(1001));
    let second = h.accept(SECOND);
    assert!(second.take_text().starts_with("GET / HTTP/1.1\r\n"));
    second.send(ok("second"));
    h.settle();
    let response = client.take_text();
    assert_eq!(status(&response), 200);
    assert!(response.ends_with("second"));
    assert_eq!(h.stat("cluster.backend.upstream_rq_retry"), 1);
    assert_eq!(h.stat("cluster.backend.upstream_rq_retry_success"), 1);
}

#[test]
fn per_try_timeout_abandons_the_attempt_and_retries() {
    let route = ", retry_policy: { retry_on: 5xx, num_retries: 1, per_try_timeout: 2s, retry_back_off: { base_interval: 0.01s } }";
    let mut h = Harness::new(&config("", route, &[ORIGIN]));
    let (client, first) = forwarded(&mut h, GET);
    h.advance(Duration::from_millis(2001));
    assert!(first.worker_closed(), "the first attempt is abandoned");
    h.advance(Duration::from_millis(100));
    let second = h.accept(ORIGIN);
    second.send(ok("again"));
    h.settle();
    assert!(client.take_text().ends_with("again"));
    assert_eq!(h.stat("cluster.backend.upstream_rq_per_try_timeout"), 1);
}

#[test]
fn pipelined_requests_are_answered_in_order_one_at_a_time() {
    let mut h = Harness::new(&config("", "", &[ORIGIN]));
    let client = h.client(0);
    client.send(format!("{GET}GET /two HTTP/1.1\r\nhost: a\r\n\r\n"));
    h.settle();
    let origin = h.accept(ORIGIN);
    let first = origin.take_text();
    assert!(first.starts_with("GET / "), "{first}");
    assert!(
        !first.contains("/two"),
        "the second waits for the first's response"
    );
    origin.send(ok("1"));
    h.settle();
    let second = origin.take_text();
    assert!(second.starts_with("GET /two "), "{second}");
    origin.send(ok("2"));
    h.settle();
    let responses = client.take_text();
    assert!(
        responses.find("\r\n\r\n1").expect("first") < responses.find("\r\n\r\n2").expect("second")
    );
}

#[test]
fn a_client_that_does_not_read_stops_the_upstream_being_read() {
    let mut h = Harness::new(&config("", "", &[ORIGIN]));
    let (client, origin) = forwarded(&mut h, GET);
    let total = 8 * 1024 * 1024;
    origin.send(format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {total}\r\n\r\n"
    ));
    let piece = vec![b'x'; 1024 * 1024];
    for _ in 0..8 {
        origin.send(&piece);
    }
    h.settle();
    // The client's pipe holds what it can; weir holds about its buffer limit (1 MiB) and
    // one read more; the rest waits unread upstream.
    let held_by_weir = total - origin.unsent() - client.unread();
    assert!(
        held_by_weir <= 1024 * 1024 + 64 * 1024 + 64,
        "weir holds {held_by_weir} bytes"
    );
    let mut received = 0;
    for _ in 0..1000 {
        let got = client.take().len();
        received += got;
        h.settle();
        if got == 0 && client.unread() == 0 {
            break;
        }
    }
    assert!(
        received > total,
        "the whole body arrived once the client read: {received}"
    );
}

#[test]
fn a_client_reset_while_waiting_releases_the_upstream_at_once() {
    let mut h = Harness::new(&config("", ", timeout: 30s", &[ORIGIN]));
    let (client, origin) = forwarded(&mut h, GET);
    assert_eq!(h.stat("cluster.backend.upstream_cx_active"), 1);
    client.reset();
    h.settle();
    assert!(origin.worker_closed());
    assert_eq!(h.stat("cluster.backend.upstream_cx_active"), 0);
    assert_eq!(h.stat("http.test.downstream_cx_active"), 0);
}

#[test]
fn route_timeout_zero_disables_it() {
    let mut h = Harness::new(&config("", ", timeout: 0s", &[ORIGIN]));
    let (client, origin) = forwarded(&mut h, GET);
    h.advance(Duration::from_secs(120));
    origin.send(ok("slow"));
    h.settle();
    assert!(client.take_text().ends_with("slow"));
}

/// A FIN after a complete request is a half-close that still gets its answer; the client is
/// only found gone when its stream ends (here by the route timeout). The upstream connection
/// is then closed, never pooled mid-response.
#[test]
fn a_client_that_half_closes_while_waiting_is_answered_then_closed() {
    let mut h = Harness::new(&config("", ", timeout: 2s", &[ORIGIN]));
    let (client, origin) = forwarded(&mut h, GET);
    client.finish();
    h.settle();
    assert!(
        !origin.worker_closed(),
        "a half-close still waits for the answer"
    );
    h.advance(Duration::from_secs(2));
    assert_eq!(status(&client.take_text()), 504);
    assert!(origin.worker_closed());
    assert!(client.worker_closed());
    assert_eq!(h.stat("cluster.backend.upstream_cx_active"), 0);
}

#[test]
fn a_client_gone_mid_body_aborts_the_upstream_request() {
    let mut h = Harness::new(&config("", "", &[ORIGIN]));
    let (client, origin) = forwarded(
        &mut h,
        "POST /upload HTTP/1.1\r\nhost: a\r\ncontent-length: 1000\r\n\r\npartial",
    );
    client.finish();
    h.settle();
    assert!(origin.worker_closed());
    assert!(client.worker_closed());
    assert_eq!(h.stat("http.test.downstream_cx_active"), 0);
}

/// A response cut short must not look complete: to an HTTP/1.0 client, whose body ends when
/// the connection does, the cut is a reset.
#[test]
fn a_cut_close_delimited_response_is_reset() {
    let accept = hcm("http_protocol_options: { accept_http_10: true }");
    let mut h = Harness::new(&config(&accept, "", &[ORIGIN]));
    let (client, origin) = forwarded(&mut h, "GET / HTTP/1.0\r\nhost: a\r\n\r\n");
    origin.send("HTTP/1.1 200 OK\r\n\r\npartial");
    h.settle();
    origin.reset();
    h.settle();
    let response = client.take_text();
    assert!(response.ends_with("partial"), "{response}");
    assert!(client.was_reset());
}

#[test]
fn without_http_filters_a_request_waits_for_the_stream_idle_timeout() {
    // Envoy accepts a connection manager with no HTTP filters; nothing answers its requests.
    let yaml = config(&hcm("stream_idle_timeout: 2s"), "", &[ORIGIN]);
    let router = yaml
        .find("          - name: envoy.filters.http.router")
        .expect("router");
    let end = yaml[router..].find("  clusters:").expect("clusters") + router;
    let yaml = format!("{}{}", &yaml[..router], &yaml[end..]);
    let mut h = Harness::new(&yaml);
    let client = h.client(0);
    client.send(GET);
    h.settle();
    h.advance(Duration::from_millis(1999));
    assert_eq!(client.take_text(), "");
    assert!(
        h.accepted(ORIGIN).is_empty(),
        "no router: nothing goes upstream"
    );
    h.advance(Duration::from_millis(2));
    let response = client.take_text();
    assert_eq!(status(&response), 504, "{response}");
    assert_eq!(h.stat("http.test.downstream_rq_idle_timeout"), 1);
}

#[test]
fn a_filter_chain_without_network_filters_closes_its_connections() {
    let yaml = config("", "", &[ORIGIN]);
    let start = yaml.find("    - filters:").expect("chain");
    let end = yaml.find("  clusters:").expect("clusters");
    let yaml = format!("{}    - filters: []\n{}", &yaml[..start], &yaml[end..]);
    let mut h = Harness::new(&yaml);
    let client = h.client(0);
    client.send(GET);
    h.settle();
    assert!(client.worker_closed(), "closed as soon as accepted");
    assert_eq!(client.take_text(), "");
    assert_eq!(
        h.stat("listener.127.0.0.1_10000.network_extension_config_missing"),
        1
    );
}
