//! Upstream failures and what the client gets: Envoy's status codes and bodies for connect
//! refused, connect timeout, a close or reset before the response, a malformed response and
//! a route timeout; cut responses stay cut (never padded); and after every failure the proxy
//! keeps serving.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::{Closed, Config, Origin, Proxy, Reply, chunked_body, eventually, raw_response};
use weir_http1::BodyKind;

const PREFIX: &str = "upstream connect error or disconnect/reset before headers. reset reason: ";

/// A proxy with two clusters: `/ok…` goes to a healthy origin, everything else to `bad`
/// (with a 0.5 s route timeout).
fn proxy_with(bad: &[SocketAddr], bad_extra: &str) -> (Proxy, Origin) {
    let healthy = Origin::ok("healthy");
    let bad: Vec<(SocketAddr, u32)> = bad.iter().map(|&a| (a, 1)).collect();
    let routes = r#"
        virtual_hosts:
          - name: all
            domains: ["*"]
            routes:
              - match: { prefix: /ok }
                route: { cluster: backend }
              - match: { prefix: / }
                route: { cluster: bad, timeout: 0.5s }
    "#;
    let proxy = Config::new()
        .cluster("backend", &[healthy.addr()])
        .cluster_with("bad", &bad, bad_extra)
        .routes(routes)
        .accept_http10()
        .start();
    (proxy, healthy)
}

/// After a failure: the same connection (when it stayed open) and a new one both work.
fn still_serving(proxy: &Proxy) {
    let mut client = proxy.client();
    for _ in 0..2 {
        let resp = client.get("/ok");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"healthy");
    }
}

fn assert_local_failure(resp: &support::Resp, status: u16, reason: &str) {
    assert_eq!(resp.status, status, "{}", resp.text());
    let body = if reason.starts_with("upstream request timeout") {
        reason.to_owned()
    } else {
        format!("{PREFIX}{reason}")
    };
    assert_eq!(resp.text(), body);
    assert_eq!(
        resp.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    assert!(resp.complete);
}

#[test]
fn connect_refused_is_503() {
    let (_reserved, closed) = support::refusing_address();
    let (proxy, _healthy) = proxy_with(&[closed], "connect_timeout: 1s");
    let mut client = proxy.client();
    let resp = client.get("/refused");
    assert_local_failure(&resp, 503, "remote connection failure");
    assert!(
        resp.keep_alive,
        "a failed bodiless request keeps the client connection"
    );
    assert_eq!(proxy.stat("upstream_cx_connect_fail"), 1);
    // The same connection carries on.
    assert_eq!(client.get("/ok").status, 200);
    still_serving(&proxy);
}

/// A listener with backlog 0 that never accepts: once one connection sits in its accept
/// queue, Linux drops further SYNs, so a connect to it hangs, which is a connect timeout on
/// loopback.
fn black_hole() -> (socket2::Socket, Vec<TcpStream>, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => fillers.push(s),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return (socket, fillers, addr),
            Err(e) => panic!("filling the accept queue: {e}"),
        }
    }
    panic!("a backlog-0 listener kept completing handshakes; cannot make a connect hang");
}

#[test]
fn connect_timeout_is_503_connection_timeout() {
    let (_hole, _fillers, addr) = black_hole();
    let (proxy, _healthy) = proxy_with(&[addr], "connect_timeout: 0.25s");
    let mut client = proxy.client();
    let resp = client.get("/hangs");
    assert_local_failure(&resp, 503, "connection timeout");
    assert_eq!(proxy.stat("upstream_cx_active"), 0);
    assert_eq!(client.get("/ok").status, 200);
    still_serving(&proxy);
}

#[test]
fn origin_close_before_headers_is_503_connection_termination() {
    let bad = Origin::start(|_| Reply::Close);
    let (proxy, _healthy) = proxy_with(&[bad.addr()], "connect_timeout: 1s");
    let mut client = proxy.client();
    let resp = client.get("/closes");
    assert_local_failure(&resp, 503, "connection termination");
    assert_eq!(
        bad.request_count(),
        1,
        "the origin got the request once (no retry)"
    );
    assert_eq!(proxy.stat("upstream_rq_retry"), 0);
    still_serving(&proxy);
}

#[test]
fn origin_close_inside_headers_is_503() {
    let bad = Origin::start(|_| Reply::SendClose(b"HTTP/1.1 200 OK\r\nContent-Le".to_vec()));
    let (proxy, _healthy) = proxy_with(&[bad.addr()], "connect_timeout: 1s");
    let resp = proxy.client().get("/half-head");
    assert_local_failure(&resp, 503, "connection termination");
    still_serving(&proxy);
}

#[test]
fn origin_reset_before_headers_is_503_remote_reset() {
    let bad = Origin::start(|_| Reply::Reset);
    let (proxy, _healthy) = proxy_with(&[bad.addr()], "connect_timeout: 1s");
    let mut client = proxy.client();
    let resp = client.get("/resets");
    assert_local_failure(&resp, 503, "remote reset");
    assert_eq!(client.get("/ok").status, 200);
    still_serving(&proxy);
}

#[test]
fn garbage_from_origin_is_502() {
    let bad = Origin::start(|_| Reply::Send(b"this is not http at all\r\n\r\n".to_vec()));
    let (proxy, _healthy) = proxy_with(&[bad.addr()], "connect_timeout: 1s");
    let mut client = proxy.client();
    let resp = client.get("/garbage");
    assert_local_failure(&resp, 502, "protocol error");
    assert_eq!(client.get("/ok").status, 200);
    // The garbage connection is not pooled: the next request opens a fresh one.
    let resp = client.get("/garbage-again");
    assert_eq!(resp.status, 502);
    assert_eq!(bad.accepted(), 2);
    still_serving(&proxy);
}

#[test]
fn malformed_response_framing_is_502() {
    // Both framings at once: a response-smuggling vector, rejected.
    let bad = Origin::start(|_| {
        Reply::Send(raw_response(
            200,
            &[("content-length", "5"), ("transfer-encoding", "chunked")],
            b"0\r\n\r\n",
        ))
    });
    let (proxy, _healthy) = proxy_with(&[bad.addr()], "connect_timeout: 1s");
    let resp = proxy.client().get("/smuggle");
    assert_local_failure(&resp, 502, "protocol error");
    still_serving(&proxy);
}

#[test]
fn stalled_origin_is_504_after_the_route_timeout() {
    let bad = Origin::start(|_| Reply::Stall);
    let (proxy, _healthy) = proxy_with(&[bad.addr()], "connect_timeout: 1s");
    let mut client = proxy.client();
    let resp = client.get("/stalls");
    assert_local_failure(&resp, 504, "upstream request timeout");
    // The stalled upstream connection was closed, not pooled.
    assert!(eventually(2000, || proxy.stat("upstream_cx_active") <= 1));
    assert_eq!(client.get("/ok").status, 200);
    still_serving(&proxy);
}

#[test]
fn origin_stalling_mid_body_is_cut_by_the_route_timeout() {
    let bad = Origin::start(|_| {
        let mut partial = raw_response(200, &[("content-length", "100")], b"");
        partial.extend_from_slice(&[b'x'; 10]);
        Reply::After(Duration::ZERO, Box::new(Reply::Send(partial)))
    });
    let (proxy, _healthy) = proxy_with(&[bad.addr()], "connect_timeout: 1s");
    let mut client = proxy.client();
    let resp = client.get("/stalls-mid-body");
    assert_eq!(resp.status, 200, "the head had gone out already");
    assert_eq!(resp.header("content-length"), Some("100"));
    assert_eq!(resp.body, [b'x'; 10]);
    assert!(!resp.complete, "cut, not padded");
    client.expect_closed();
    still_serving(&proxy);
}

#[test]
fn content_length_body_cut_by_the_origin_stays_cut() {
    let bad = Origin::start(|_| {
        let mut partial = raw_response(200, &[("content-length", "100")], b"");
        partial.extend_from_slice(&[b'y'; 40]);
        Reply::SendClose(partial)
    });
    let (proxy, _healthy) = proxy_with(&[bad.addr()], "connect_timeout: 1s");
    let mut client = proxy.client();
    let resp = client.get("/cut");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.framing, BodyKind::Length(100));
    assert_eq!(resp.body, [b'y'; 40], "exactly what the origin sent");
    assert!(!resp.complete);
    client.expect_closed();
    still_serving(&proxy);
}

#[test]
fn chunked_body_cut_by_the_origin_has_no_last_chunk() {
    let bad = Origin::start(|_| {
        let mut partial = raw_response(200, &[("transfer-encoding", "chunked")], b"");
        partial.extend_from_slice(&chunked_body(&[b"hello", b" world"], false));
        Reply::SendClose(partial)
    });
    let (proxy, _healthy) = proxy_with(&[bad.addr()], "connect_timeout: 1s");
    let mut client = proxy.client();
    let resp = client.get("/cut-chunked");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.framing, BodyKind::Chunked);
    assert_eq!(resp.body, b"hello world");
    assert!(!resp.complete, "no terminating chunk");
    assert!(!resp.raw.ends_with(b"0\r\n\r\n"));
    client.expect_closed();
    still_serving(&proxy);
}

#[test]
fn reset_mid_body_is_cut() {
    let bad = Origin::start(|_| {
        let mut partial = raw_response(200, &[("content-length", "1000")], b"");
        partial.extend_from_slice(&[b'z'; 300]);
        Reply::SendReset(partial)
    });
    let (proxy, _healthy) = proxy_with(&[bad.addr()], "connect_timeout: 1s");
    let mut client = proxy.client();
    // The reset may overtake the head inside the proxy's socket, so either the head went out
    // (then the body is cut) or nothing did (then it is a 503).
    let resp = client.get("/reset-mid-body");
    if resp.status == 200 {
        assert!(resp.body.len() <= 300 && resp.body.iter().all(|&b| b == b'z'));
        assert!(!resp.complete);
        client.expect_closed();
    } else {
        assert_local_failure(&resp, 503, "remote reset");
    }
    still_serving(&proxy);
}

/// A close-delimited body cut by a reset: an HTTP/1.0 client could not tell a FIN from the
/// end, so the proxy resets its connection too.
#[test]
fn close_delimited_body_cut_by_a_reset_resets_the_http10_client() {
    let bad = Origin::start(|_| {
        let mut partial = raw_response(200, &[("content-type", "text/plain")], b"");
        partial.extend_from_slice(&[b'q'; 300]);
        Reply::After(Duration::ZERO, Box::new(Reply::SendReset(partial)))
    });
    let (proxy, _healthy) = proxy_with(&[bad.addr()], "connect_timeout: 1s");
    let mut client = proxy.client();
    client.send("GET /cd HTTP/1.0\r\nHost: a\r\n\r\n");
    let (bytes, closed) = client.read_to_close();
    let text = String::from_utf8_lossy(&bytes);
    if text.starts_with("HTTP/1.0 200") {
        assert_eq!(
            closed,
            Closed::Reset,
            "a cut close-delimited body must not end in FIN"
        );
    } else {
        assert!(text.starts_with("HTTP/1.0 503"), "{text}");
    }
    still_serving(&proxy);
}

#[test]
fn no_healthy_upstream_when_a_cluster_is_empty() {
    // A cluster with no endpoints at all.
    let healthy = Origin::ok("healthy");
    let routes = r#"
        virtual_hosts:
          - name: all
            domains: ["*"]
            routes:
              - match: { prefix: /ok }
                route: { cluster: backend }
              - match: { prefix: / }
                route: { cluster: empty }
    "#;
    let proxy = Config::new()
        .cluster("backend", &[healthy.addr()])
        .cluster("empty", &[])
        .routes(routes)
        .start();
    let resp = proxy.client().get("/nobody");
    assert_eq!(resp.status, 503);
    assert_eq!(resp.text(), "no healthy upstream");
    still_serving(&proxy);
}

#[test]
fn failure_statistics() {
    let bad = Origin::start(|_| Reply::Close);
    let (proxy, _healthy) = proxy_with(&[bad.addr()], "connect_timeout: 1s");
    for _ in 0..3 {
        assert_eq!(proxy.client().get("/x").status, 503);
    }
    still_serving(&proxy);
    // Counted as each stream ends, which may be just after its last byte reached the client.
    assert!(eventually(2000, || proxy.class(5) == 3 && proxy.class(2) == 2));
    assert_eq!(proxy.stat("downstream_rq_total"), 5);
}

#[test]
fn oversized_response_head_is_502() {
    let bad = Origin::start(|_| {
        let big = "v".repeat(70 * 1024);
        Reply::Send(raw_response(
            200,
            &[("x-big", &big), ("content-length", "0")],
            b"",
        ))
    });
    let (proxy, _healthy) = proxy_with(&[bad.addr()], "connect_timeout: 1s");
    let resp = proxy.client().get("/big-head");
    assert_local_failure(&resp, 502, "protocol error");
    still_serving(&proxy);
}

#[test]
fn switching_protocols_from_the_origin_is_502() {
    let bad = Origin::start(|_| {
        Reply::Send(raw_response(
            101,
            &[("upgrade", "websocket"), ("connection", "upgrade")],
            b"",
        ))
    });
    let (proxy, _healthy) = proxy_with(&[bad.addr()], "connect_timeout: 1s");
    let resp = proxy.client().get("/upgrade");
    assert_local_failure(&resp, 502, "protocol error");
    still_serving(&proxy);
}
