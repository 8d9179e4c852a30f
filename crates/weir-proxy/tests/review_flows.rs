//! Review of the flow recorder, its admin endpoints and the flow source: regressions for bugs
//! found in review.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::*;
use weir_config::FlowTraceMode;

/// The test config with an admin listener on 127.0.0.1:0.
fn with_admin(config: &Config) -> String {
    config.yaml().replacen(
        "static_resources:",
        "admin:\n  address:\n    socket_address: { address: 127.0.0.1, port_value: 0 }\nstatic_resources:",
        1,
    )
}

fn admin(proxy: &Proxy) -> SocketAddr {
    proxy.server().admin_address().expect("admin configured")
}

/// Writes `request` to the admin listener, optionally half-closes, and reads until EOF.
fn raw(admin: SocketAddr, request: &str, half_close: bool) -> String {
    let mut s = TcpStream::connect(admin).expect("connect admin");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    if half_close {
        s.shutdown(Shutdown::Write).unwrap();
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A HEAD request gets the head only: a body after it would be read as the next response.
#[test]
fn admin_head_has_no_body() {
    let origin = Origin::ok("ok\n");
    let yaml = with_admin(&Config::forward_all(&[origin.addr()]));
    let proxy = Proxy::start(&yaml, 1, Duration::from_secs(5));
    let out = raw(
        admin(&proxy),
        "HEAD /ready HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
        false,
    );
    assert!(out.starts_with("HTTP/1.1 200"), "{out:?}");
    assert!(out.contains("content-length: 5"), "{out:?}");
    assert!(
        out.ends_with("\r\n\r\n"),
        "a HEAD response has no body: {out:?}"
    );
}

/// A client that sends its request and then shuts down its side (`nc -N`, a half-close)
/// still gets the answer.
#[test]
fn admin_answers_a_half_closed_request() {
    let origin = Origin::ok("ok\n");
    let yaml = with_admin(&Config::forward_all(&[origin.addr()]));
    let proxy = Proxy::start(&yaml, 1, Duration::from_secs(5));
    let out = raw(
        admin(&proxy),
        "GET /ready HTTP/1.1\r\nhost: a\r\n\r\n",
        true,
    );
    assert!(out.starts_with("HTTP/1.1 200"), "{out:?}");
    assert!(out.ends_with("LIVE\n"), "{out:?}");
}

/// Once the workers have exited (a drain that finished while the admin listener still
/// runs), asking for flows answers at once instead of waiting out the 2 s deadline, and the
/// unanswered queries do not pile up.
#[test]
fn flows_after_the_workers_exited_do_not_wait() {
    let origin = Origin::ok("ok\n");
    let mut proxy = Config::forward_all(&[origin.addr()]).start_traced(FlowTraceMode::All);
    assert_eq!(proxy.client().get("/a").status, 200);
    let server = proxy.take();
    server.drain();
    sleep_ms(300); // no connections: the worker exits at once
    let t = Instant::now();
    let _ = server.flows(10);
    let took = t.elapsed();
    server.wait();
    assert!(took < Duration::from_secs(1), "flows() took {took:?}");
}

/// SAMPLED 1-in-2: of four one-request connections, two are kept. A connection's close after
/// its response is no request and must not use up a draw (it made every request picked).
#[test]
fn sampled_draws_are_not_used_by_closing_connections() {
    let origin = Origin::ok("ok\n");
    let proxy =
        Config::forward_all(&[origin.addr()]).start_traced(FlowTraceMode::Sampled { one_in: 2 });
    for i in 1..=4 {
        let mut c = proxy.client();
        assert_eq!(c.get(&format!("/s{i}")).status, 200);
        drop(c);
        // Let the proxy see the close before the next connection comes.
        sleep_ms(100);
    }
    sleep_ms(200);
    let flows = proxy.server().flows(100);
    let paths: Vec<&str> = flows.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["/s3", "/s1"]);
}

/// Two pipelined requests, the first with a response larger than the buffers, from a client
/// that does not read at first: the second request's head is decoded while the first
/// response is still being written. Both flows are kept, each with its own request.
#[test]
fn pipelined_requests_behind_an_unsent_response_keep_both_flows() {
    let big = vec![b'x'; 8 << 20];
    let origin = Origin::start(move |req| {
        if req.target == "/big" {
            Reply::Send(response(200, &[], &big))
        } else {
            Reply::Send(response(200, &[], b"small"))
        }
    });
    // A listener buffer larger than the response, so the /big stream can end (its response
    // wholly queued in weir) while the client is not reading yet.
    let yaml = Config::forward_all(&[origin.addr()]).yaml().replacen(
        "      address:\n",
        "      per_connection_buffer_limit_bytes: 67108864\n      address:\n",
        1,
    );
    let proxy = Proxy::start_traced(&yaml, 1, Duration::from_secs(5), Some(FlowTraceMode::All));
    let mut client = proxy.client();
    client.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\nGET /small HTTP/1.1\r\nHost: a\r\n\r\n");
    // Not reading yet: the big response waits in weir while /small is decoded.
    assert!(eventually(5_000, || origin.request_count() == 2));
    sleep_ms(200);
    assert_eq!(client.read_response(false).body.len(), 8 << 20);
    assert_eq!(client.read_response(false).body, b"small");
    assert!(eventually(5_000, || proxy.server().flows(10).len() == 2));
    let flows = proxy.server().flows(10);
    let mut paths: Vec<&str> = flows.iter().map(|f| f.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["/big", "/small"]);
}
