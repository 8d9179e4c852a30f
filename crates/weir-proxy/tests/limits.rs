//! Slow and greedy clients: `request_headers_timeout`, `max_connection_duration`,
//! `max_requests_per_connection`, the global connection limit, and 500 slowloris connections
//! that must not slow a normal client down.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{Config, Origin, Proxy, eventually, sleep_ms};

/// Reads until the peer closes (or 5 s pass); returns what arrived.
fn read_to_close(socket: &mut TcpStream) -> String {
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut out = Vec::new();
    let _ = socket.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn an_unfinished_request_head_gets_408_when_request_headers_timeout_passes() {
    let origin = Origin::ok("ok");
    let proxy = Config::forward_all(&[origin.addr()])
        .hcm("request_headers_timeout: 0.2s")
        .start();
    let mut slow = TcpStream::connect(proxy.addr).expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
        .expect("send");
    let answer = read_to_close(&mut slow);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert_eq!(proxy.stat("downstream_rq_header_timeout"), 1);
    assert_eq!(origin.request_count(), 0);
}

#[test]
fn request_headers_timeout_does_not_touch_an_idle_keep_alive_connection() {
    let origin = Origin::ok("ok");
    let proxy = Config::forward_all(&[origin.addr()])
        .hcm("request_headers_timeout: 0.2s")
        .start();
    let mut client = proxy.client();
    assert_eq!(client.get("/one").status, 200);
    // Idle between requests for longer than the timeout: the timer runs only while a head
    // is arriving (a stray CRLF between requests, which RFC 9112 lets servers ignore, does
    // not start one).
    client.send("\r\n");
    sleep_ms(400);
    assert_eq!(client.get("/two").status, 200);
    assert_eq!(proxy.stat("downstream_rq_header_timeout"), 0);
}

#[test]
fn max_connection_duration_closes_an_idle_connection_and_ends_a_busy_one_after_its_response() {
    let origin = Origin::start(|req| {
        let body = req.target.as_bytes().to_vec();
        if req.target == "/slow" {
            support::Reply::after_ms(
                400,
                support::Reply::Send(support::response(200, &[], &body)),
            )
        } else {
            support::Reply::Send(support::response(200, &[], &body))
        }
    });
    let proxy = Config::forward_all(&[origin.addr()])
        .hcm("common_http_protocol_options: { max_connection_duration: 0.2s }")
        .start();
    let mut idle = proxy.client();
    assert_eq!(idle.get("/a").status, 200);
    let mut busy = proxy.client();
    busy.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    let resp = busy.read_response(false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), Some("close"));
    busy.expect_closed();
    // The idle connection was closed at its deadline.
    idle.expect_closed();
    assert_eq!(proxy.stat("downstream_cx_max_duration_reached"), 2);
}

#[test]
fn max_requests_per_connection_closes_after_the_last_response() {
    let origin = Origin::ok("ok");
    let proxy = Config::forward_all(&[origin.addr()])
        .hcm("common_http_protocol_options: { max_requests_per_connection: 3 }")
        .start();
    let mut client = proxy.client();
    for i in 1..=3 {
        let resp = client.get(&format!("/{i}"));
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.header("connection") == Some("close"),
            i == 3,
            "request {i}"
        );
    }
    client.expect_closed();
    assert_eq!(proxy.stat("downstream_cx_max_requests_reached"), 1);
}

#[test]
fn past_the_global_connection_limit_new_connections_are_closed_and_old_ones_work() {
    let origin = Origin::ok("ok");
    let yaml = Config::forward_all(&[origin.addr()]).yaml()
        + "overload_manager:\n  resource_monitors:\n    - name: envoy.resource_monitors.global_downstream_max_connections\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig\n        max_active_downstream_connections: 2\n";
    let proxy = Proxy::start(&yaml, 2, Duration::from_secs(1));
    let mut first = proxy.client();
    let mut second = proxy.client();
    assert_eq!(first.get("/1").status, 200);
    assert_eq!(second.get("/2").status, 200);
    let mut third = TcpStream::connect(proxy.addr).expect("the kernel accepts");
    third.write_all(b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n").ok();
    assert_eq!(read_to_close(&mut third), "", "closed without an answer");
    assert!(eventually(2000, || proxy.server().stat(&format!(
        "listener.127.0.0.1_{}.downstream_global_cx_overflow",
        proxy.addr.port()
    )) == Some(1)));
    // The established connections are untouched.
    assert_eq!(first.get("/again").status, 200);
    assert_eq!(second.get("/again").status, 200);
    // A place frees when a connection closes.
    drop(first);
    assert!(eventually(2000, || {
        let mut c = TcpStream::connect(proxy.addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(2))).ok();
        c.write_all(b"GET /4 HTTP/1.1\r\nHost: a\r\n\r\n").is_ok() && {
            let mut buf = [0u8; 12];
            c.read_exact(&mut buf).is_ok() && &buf == b"HTTP/1.1 200"
        }
    }));
}

/// 500 connections dribble a request head a byte at a time; a normal client's requests are
/// served meanwhile, and `request_headers_timeout` ends the slow ones.
#[test]
fn five_hundred_slowloris_connections_do_not_delay_a_normal_client() {
    const SLOW: usize = 500;
    let origin = Origin::ok("ok");
    let proxy = Config::forward_all(&[origin.addr()])
        .hcm("request_headers_timeout: 2s")
        .start_with(2);
    let addr = proxy.addr;
    let dribbler = std::thread::spawn(move || {
        let mut sockets: Vec<TcpStream> = (0..SLOW)
            .map(|_| TcpStream::connect(addr).expect("slow connect"))
            .collect();
        let head = b"GET /slow HTTP/1.1\r\nHost: a\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        // One byte per socket every 50 ms, for at most 60 rounds (3 s).
        for round in 0..60 {
            for s in &mut sockets {
                let _ = s.write_all(&head[round % head.len()..][..1]);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        sockets
    });
    sleep_ms(300);
    let mut latencies = Vec::new();
    let mut client = proxy.client();
    for i in 0..50 {
        let started = Instant::now();
        assert_eq!(client.get(&format!("/n{i}")).status, 200);
        latencies.push(started.elapsed());
        sleep_ms(20);
    }
    latencies.sort();
    println!(
        "normal client during {SLOW} slowloris connections: p50 {:?}, p99 {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100],
        latencies[latencies.len() - 1]
    );
    let _sockets = dribbler.join().expect("dribbler");
    assert!(
        eventually(5000, || proxy.stat("downstream_rq_header_timeout")
            == SLOW as u64),
        "every slow head timed out: {}",
        proxy.stat("downstream_rq_header_timeout")
    );
    assert!(eventually(5000, || proxy.stat("downstream_cx_active") == 1));
}
