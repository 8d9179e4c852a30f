//! Regression tests from a review of the data plane: each one failed before its fix.
//!
//! Stalls, lost response bytes, reuse of connections the origin had closed, and connections
//! that no timer would ever end.

mod support;

use std::time::Duration;

use support::{Client, Config, Origin, Reply, eventually, pattern_slice, raw_response, sleep_ms};

/// An origin streaming `len` bytes of the pattern with a content-length.
fn streaming_origin(len: usize) -> Origin {
    Origin::start(move |_| Reply::Stream {
        head: raw_response(200, &[("content-length", &len.to_string())], b""),
        len,
    })
}

/// Reads one response and checks its body against the pattern; returns (bytes, complete).
fn read_pattern_body(client: &mut Client) -> (usize, bool) {
    client.record_raw = false;
    let mut received = 0usize;
    let mut good = true;
    let resp = client.read_response_with(false, &mut |data| {
        let mut at = 0;
        while at < data.len() {
            let n = (data.len() - at).min(64 * 1024);
            good &= &data[at..at + n] == pattern_slice(received + at, n);
            at += n;
        }
        received += data.len();
    });
    assert_eq!(resp.status, 200);
    assert!(good, "the body differs from what the origin sent");
    (received, resp.complete)
}

/// A client that sends its request and half-closes (`curl -T`, `nc -N`, scripts) must still get
/// the whole response, even when the response is larger than the kernel buffers and the client
/// is slow to read. The FIN, read once the stream ended, closed the connection with the rest
/// of the response still queued in user space.
#[test]
fn half_closed_client_gets_the_whole_response_still_queued() {
    const LEN: usize = 8 << 20;
    let origin = streaming_origin(LEN);
    let proxy = Config::forward_all(&[origin.addr()]).start_with_listener_limit(32 << 20);
    let mut client = proxy.client();
    client.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
    client.shutdown_write();
    // The whole response reaches the proxy (its queue limit is above it) while the client
    // reads nothing, so most of it waits in the proxy's queue when the stream ends.
    assert!(eventually(5000, || origin.bytes_sent() >= LEN));
    sleep_ms(300);
    let (received, complete) = read_pattern_body(&mut client);
    assert_eq!(received, LEN);
    assert!(complete, "the response was cut");
    client.expect_closed();
    assert!(eventually(2000, || proxy.stat("downstream_cx_active") == 0));
}

/// `per_connection_buffer_limit_bytes: 0` is accepted by the config, and made every response
/// wait forever: "queued >= 0" always paused, and nothing ever resumed.
#[test]
fn zero_buffer_limits_do_not_stall() {
    let origin = Origin::start(|req| Reply::Send(support::response(200, &[], &req.body)));
    let config = Config::new()
        .cluster_with(
            "backend",
            &[(origin.addr(), 1)],
            "connect_timeout: 1s\nper_connection_buffer_limit_bytes: 0",
        )
        .route_all_to("backend");
    let proxy = config.start_with_listener_limit(0);
    let mut client = proxy.client();
    client
        .stream()
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let resp = client.get("/");
    assert_eq!(resp.status, 200);
    let body = vec![b'x'; 300_000];
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let resp = client.request(req);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), body.len());
}

/// The idle timeout must not cut a response that is still leaving: the stream ended (its
/// response is fully queued) but the client reads slowly. Envoy flushes before closing.
#[test]
fn idle_timeout_does_not_cut_a_response_still_being_written() {
    const LEN: usize = 8 << 20;
    let origin = streaming_origin(LEN);
    let config = Config::forward_all(&[origin.addr()])
        .hcm("common_http_protocol_options: { idle_timeout: 0.3s }");
    let proxy = config.start_with_listener_limit(32 << 20);
    let mut client = proxy.client();
    client.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(eventually(5000, || origin.bytes_sent() >= LEN));
    // Longer than the idle timeout, with the response queued in the proxy.
    sleep_ms(800);
    let (received, complete) = read_pattern_body(&mut client);
    assert_eq!(received, LEN);
    assert!(complete, "the response was cut by the idle timeout");
}

/// A connection closing after its response (here `connection: close`) whose client never
/// reads must still end: before, no timer was armed in that state, so the connection and its
/// queued response stayed forever.
#[test]
fn a_closing_connection_whose_client_never_reads_is_closed_by_a_timer() {
    const LEN: usize = 8 << 20;
    let origin = streaming_origin(LEN);
    let config = Config::forward_all(&[origin.addr()])
        .hcm("common_http_protocol_options: { idle_timeout: 0.3s }");
    let proxy = config.start_with_listener_limit(32 << 20);
    let mut client = proxy.client();
    client.send("GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert!(eventually(5000, || origin.bytes_sent() >= LEN));
    assert!(
        eventually(5000, || proxy.stat("downstream_cx_active") == 0),
        "the connection is still open"
    );
}

/// An origin that answers keep-alive and then closes at once: epoll reports the response and
/// the FIN together, the read of the response is short, and the connection went to the pool
/// with the FIN unread. The next request took it, and with a body too large to replay it
/// failed with 503 instead of going out on a fresh connection.
#[test]
fn a_connection_whose_fin_came_with_the_response_is_not_pooled() {
    let origin = Origin::start(|req| {
        if req.method == "GET" {
            Reply::SendClose(support::response(200, &[], b"ok"))
        } else {
            Reply::Send(support::response(200, &[], b"posted"))
        }
    });
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let body = vec![b'b'; 200_000];
    let mut post = format!(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    post.extend_from_slice(&body);
    for i in 0..20 {
        let mut client = proxy.client();
        assert_eq!(client.get("/").status, 200);
        // Long enough for the FIN to have arrived whatever the order of events.
        sleep_ms(30);
        let resp = client.request(&post);
        assert_eq!(resp.status, 200, "attempt {i}: {}", resp.text());
        assert_eq!(resp.body, b"posted");
    }
    assert_eq!(proxy.class(5), 0);
    assert_eq!(proxy.stat("upstream_rq_retry"), 0);
}
