//! The connection manager's timers and client aborts: idle connections are closed, a request
//! that does not arrive in time gets 408, a stream with no activity gets 408 while one that
//! keeps trickling does not, and a client that goes away releases its upstream connection.

mod support;

use std::time::Duration;

use support::{Closed, Config, Origin, Reply, eventually, raw_response, response, sleep_ms};

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    let origin = Origin::ok("ok");
    let proxy = Config::forward_all(&[origin.addr()])
        .hcm("common_http_protocol_options: { idle_timeout: 0.3s }")
        .start();

    // After a request…
    let mut used = proxy.client();
    assert_eq!(used.get("/").status, 200);
    // …and without any.
    let mut unused = proxy.client();

    assert_eq!(used.expect_closed(), Closed::Fin);
    assert_eq!(unused.expect_closed(), Closed::Fin);
    assert!(eventually(2000, || proxy.stat("downstream_cx_active") == 0));
}

#[test]
fn a_request_in_progress_is_not_cut_by_the_idle_timeout() {
    let origin = Origin::start(|_| Reply::after_ms(600, Reply::Send(response(200, &[], b"late"))));
    let proxy = Config::forward_all(&[origin.addr()])
        .hcm("common_http_protocol_options: { idle_timeout: 0.3s }")
        .start();
    let mut client = proxy.client();
    let resp = client.get("/");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"late");
}

#[test]
fn request_timeout_is_408_when_the_body_stalls() {
    let origin = Origin::ok("unreached");
    let proxy = Config::forward_all(&[origin.addr()])
        .hcm("request_timeout: 0.3s")
        .start();
    let mut client = proxy.client();
    client.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789");
    let resp = client.read_response(false);
    assert_eq!(resp.status, 408);
    assert_eq!(resp.text(), "request timeout");
    assert_eq!(resp.header("connection"), Some("close"));
    client.expect_closed();
    assert_eq!(
        origin.request_count(),
        0,
        "no complete request reached the origin"
    );
    assert!(eventually(2000, || proxy.stat("upstream_cx_active") == 0));
}

/// Envoy's request_timeout is disarmed once the response begins: an origin that answers while
/// the upload is still arriving (here it streams its answer around the body) is not cut when
/// the timeout passes mid-upload.
#[test]
fn request_timeout_stops_when_the_response_begins() {
    use std::io::{Read, Write};
    let origin_addr = support::raw_origin(|mut conn| {
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab");
        let mut body = [0u8; 20];
        if conn.read_exact(&mut body).is_ok() {
            let _ = conn.write_all(b"cde");
        }
        sleep_ms(300);
    });
    let proxy = Config::forward_all(&[origin_addr])
        .hcm("request_timeout: 0.3s")
        .start();
    let mut client = proxy.client();
    client.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n0123456789");
    sleep_ms(700);
    client.send("0123456789");
    let resp = client.read_response(false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"abcde");
    assert!(resp.complete, "the response was not cut");
    assert_eq!(proxy.stat("downstream_rq_timeout"), 0);
}

#[test]
fn stream_idle_timeout_is_408_when_nothing_happens() {
    let origin = Origin::start(|_| Reply::Stall);
    let proxy = Config::forward_all(&[origin.addr()])
        .hcm("stream_idle_timeout: 0.3s")
        .start();
    let mut client = proxy.client();
    let resp = client.get("/");
    assert_eq!(resp.status, 408);
    assert_eq!(resp.text(), "stream timeout");
}

#[test]
fn stream_idle_timeout_is_reset_by_activity() {
    // Six pieces 250 ms apart: 1.25 s in all, never 1 s without a byte.
    let origin = Origin::start(|_| {
        let mut pieces = vec![raw_response(200, &[("content-length", "5")], b"")];
        pieces.extend([b"a", b"b", b"c", b"d", b"e"].map(|p| p.to_vec()));
        Reply::Trickle {
            pieces,
            gap: Duration::from_millis(250),
        }
    });
    let proxy = Config::new()
        .cluster("backend", &[origin.addr()])
        .route_all_with_timeout("backend", "0s")
        .hcm("stream_idle_timeout: 1s")
        .start();
    let mut client = proxy.client();
    let resp = client.get("/");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"abcde");
    assert!(resp.complete);
}

#[test]
fn route_timeout_zero_disables_it() {
    let origin = Origin::start(|_| Reply::after_ms(700, Reply::Send(response(200, &[], b"slow"))));
    let proxy = Config::new()
        .cluster("backend", &[origin.addr()])
        .route_all_with_timeout("backend", "0s")
        .start();
    assert_eq!(proxy.client().get("/").body, b"slow");
}

/// A FIN after a complete request is taken as a half-close that still gets its answer, so a
/// client that went away while waiting is only noticed when its stream ends: here by the
/// route timeout. Then the upstream connection is closed (never pooled mid-response) and
/// the client connection is gone.
#[test]
fn client_gone_while_waiting_releases_the_upstream_connection() {
    let origin = Origin::start(|req| {
        if req.target == "/stall" {
            Reply::Stall
        } else {
            Reply::Send(response(200, &[], b"ok"))
        }
    });
    let proxy = Config::new()
        .cluster("backend", &[origin.addr()])
        .route_all_with_timeout("backend", "0.5s")
        .start();
    {
        let mut client = proxy.client();
        client.send("GET /stall HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(eventually(2000, || origin.request_count() == 1));
    }
    assert!(eventually(3000, || {
        proxy.stat("upstream_cx_active") == 0 && proxy.stat("downstream_cx_active") == 0
    }));
    let resp = proxy.client().get("/next");
    assert_eq!(resp.status, 200);
    assert_eq!(
        origin.accepted(),
        2,
        "the abandoned connection was not pooled"
    );
}

/// A client that resets while its request waits for a stalled origin is noticed at once (the
/// reset raises EPOLLERR|EPOLLHUP even though the downstream is not being read): its upstream
/// connection is closed long before the 30 s route timeout.
#[test]
fn client_reset_while_waiting_aborts_the_upstream_request() {
    let origin = Origin::start(|req| {
        if req.target == "/stall" {
            Reply::Stall
        } else {
            Reply::Send(response(200, &[], b"ok"))
        }
    });
    let proxy = Config::new()
        .cluster("backend", &[origin.addr()])
        .route_all_with_timeout("backend", "30s")
        .start();
    {
        let mut client = proxy.client();
        client.send("GET /stall HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(eventually(2000, || origin.request_count() == 1));
        assert_eq!(proxy.stat("upstream_cx_active"), 1);
        socket2::SockRef::from(client.stream())
            .set_linger(Some(std::time::Duration::ZERO))
            .expect("SO_LINGER");
    }
    assert!(
        eventually(5000, || {
            proxy.stat("upstream_cx_active") == 0 && proxy.stat("downstream_cx_active") == 0
        }),
        "the reset client's upstream request was abandoned"
    );
    assert_eq!(proxy.client().get("/next").status, 200);
}

#[test]
fn client_gone_mid_body_aborts_the_upstream_request() {
    let origin = Origin::ok("ok");
    let proxy = Config::forward_all(&[origin.addr()]).start();
    {
        let mut client = proxy.client();
        client.send("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\npartial");
        sleep_ms(100);
    }
    assert!(eventually(2000, || {
        proxy.stat("upstream_cx_active") == 0 && proxy.stat("downstream_cx_active") == 0
    }));
    assert_eq!(
        origin.request_count(),
        0,
        "the origin never saw a complete request"
    );
    assert_eq!(proxy.client().get("/").status, 200);
}
