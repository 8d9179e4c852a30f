//! SIGTERM / SIGINT: weir stops accepting, finishes in-flight requests with `connection:
//! close`, closes idle connections, and exits 0; `--drain-time-s` bounds the wait.

mod differential_support;
mod support;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::{Client, Origin, Weir, echo_fields, get, proxy_config};

/// Polls `f` every 20 ms until it is true or `timeout` passes.
fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A connection attempt made after the drain began is refused, or (if it was already queued)
/// closed without any response.
fn assert_new_connections_rejected(addr: SocketAddr) {
    match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Err(e) => eprintln!("new connection after the signal: {e} (refused)"),
        Ok(mut socket) => {
            socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let mut buf = [0u8; 64];
            match socket.read(&mut buf) {
                Ok(0) => eprintln!("new connection after the signal: closed by weir"),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    eprintln!("new connection after the signal: reset by weir");
                }
                other => panic!("a connection made while draining was not closed: {other:?}"),
            }
        }
    }
}

#[test]
fn sigterm_drains_an_in_flight_request() {
    let origin = Origin::standard();
    let mut weir = Weir::start(&proxy_config(origin.addr), &["--concurrency", "2"]);
    let (addr, admin) = (weir.addr(), weir.admin);

    let mut client = Client::connect(addr).expect("connect");
    client
        .send(b"GET /slow?delay_ms=1000 HTTP/1.1\r\nhost: t\r\n\r\n")
        .expect("send");
    assert!(
        wait_until(Duration::from_secs(5), || origin
            .stats
            .started
            .load(Ordering::Relaxed)
            == 1),
        "the request never reached the origin"
    );
    assert_eq!(
        origin.stats.served.load(Ordering::Relaxed),
        0,
        "the request must still be in flight when the signal is sent"
    );

    weir.signal("TERM");
    assert!(
        weir.wait_for_log("draining", Duration::from_secs(5))
            .is_some(),
        "weir did not log that it is draining"
    );
    // The admin listener stays up while draining and says so.
    assert!(
        wait_until(Duration::from_secs(3), || get(admin, "/ready")
            .is_ok_and(|r| r.status() == 503 && r.text().trim() == "DRAINING")),
        "/ready did not turn 503 DRAINING"
    );
    assert_new_connections_rejected(addr);

    // The in-flight request completes, marked as the connection's last.
    let response = client.read_response().expect("the in-flight response");
    assert_eq!(response.status(), 200, "{}", response.text());
    assert!(
        response.head.connection_has("close"),
        "a response finished while draining must carry `connection: close`: {:?}",
        response.head
    );
    assert_eq!(echo_fields(&response.body)["target"], "/slow?delay_ms=1000");
    assert!(
        client.closed_by_peer(),
        "weir must close the connection after it"
    );
    drop(client);

    let status = weir.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "weir exited with {status}");
    assert!(
        weir.log_lines()
            .iter()
            .any(|l| l.contains("drained; exiting"))
    );
}

#[test]
fn sigint_closes_idle_connections_and_exits_promptly() {
    let origin = Origin::standard();
    let mut weir = Weir::start(&proxy_config(origin.addr), &["--concurrency", "1"]);
    let mut client = Client::connect(weir.addr()).expect("connect");
    assert_eq!(client.get("/before").expect("response").status(), 200);

    let signalled = Instant::now();
    weir.signal("INT");
    // The idle keep-alive connection is closed at once (not after the 10 s drain time).
    client
        .set_read_timeout(Duration::from_secs(5))
        .expect("timeout");
    assert!(
        client.closed_by_peer(),
        "an idle connection must be closed by a drain"
    );
    let status = weir.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "weir exited with {status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "an idle weir must not wait out the drain time"
    );
}

#[test]
fn drain_time_bounds_the_wait_for_a_slow_request() {
    let origin = Origin::standard();
    let mut weir = Weir::start(
        &proxy_config(origin.addr),
        &["--concurrency", "1", "--drain-time-s", "1"],
    );
    let mut client = Client::connect(weir.addr()).expect("connect");
    client
        .send(b"GET /slower?delay_ms=8000 HTTP/1.1\r\nhost: t\r\n\r\n")
        .expect("send");
    assert!(
        wait_until(Duration::from_secs(5), || origin
            .stats
            .started
            .load(Ordering::Relaxed)
            == 1),
        "the request never reached the origin"
    );
    weir.signal("TERM");
    // After the 1 s drain time the unfinished exchange is closed and weir exits 0, long before
    // the origin would have answered.
    let status = weir.wait_exit(Duration::from_secs(6));
    assert!(status.success(), "weir exited with {status}");
    assert!(
        client.read_response().is_err(),
        "no response can have been completed"
    );
    assert!(
        weir.log_lines()
            .iter()
            .any(|l| l.contains("drain time is up")),
        "weir should log that the drain time ran out"
    );
    assert_eq!(origin.stats.served.load(Ordering::Relaxed), 0);
}

/// Two listeners answering directly, the second with `drain_type: MODIFY_ONLY`; `ports`:
/// admin, first, second (0: any).
fn drain_type_config(ports: [u16; 3]) -> String {
    let listener = |name: &str, port: u16, extra: &str| {
        format!(
            r#"  - name: {name}
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}{extra}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {name}
          route_config: {{ virtual_hosts: [ {{ name: all, domains: ["*"], routes: [ {{ match: {{ prefix: / }}, direct_response: {{ status: 200, body: {{ inline_string: "{name}" }} }} }} ] }} ] }}
          http_filters: [ {{ name: envoy.filters.http.router, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }} ]
"#
        )
    };
    format!(
        "admin:\n  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }}\nstatic_resources:\n  listeners:\n{}{}",
        ports[0],
        listener("ingress", ports[1], ""),
        listener("egress", ports[2], "\n    drain_type: MODIFY_ONLY"),
    )
}

/// After `POST /healthcheck/fail`, whether a response on each listener says
/// `connection: close`.
fn closes_after_health_check_fail(admin: SocketAddr, listeners: [SocketAddr; 2]) -> [bool; 2] {
    let mut client = Client::connect(admin).expect("admin");
    client
        .send(b"POST /healthcheck/fail HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n")
        .expect("send");
    assert_eq!(client.read_response().expect("a response").status(), 200);
    listeners.map(|l| {
        let response = Client::connect(l)
            .expect("connect")
            .get("/")
            .expect("a response");
        assert_eq!(response.status(), 200);
        response.head.connection_has("close")
    })
}

/// `drain_type` as Envoy 1.40 runs it: a failed health check drains a DEFAULT listener's
/// connections (`connection: close`) and leaves a MODIFY_ONLY one's alone.
#[test]
fn a_failed_health_check_drains_default_listeners_but_not_modify_only_ones_as_envoy_does() {
    let weir = Weir::start(&drain_type_config([0, 0, 0]), &["--concurrency", "1"]);
    let address = |name: &str| {
        (weir.listeners.iter())
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
            .expect("the listener")
    };
    let listeners = [address("ingress"), address("egress")];
    let from_weir = closes_after_health_check_fail(weir.admin, listeners);
    assert_eq!(from_weir, [true, false]);
    let Some(envoy_bin) = differential_support::envoy_or_skip() else {
        return;
    };
    let free = differential_support::free_port;
    let ports = [free(), free(), free()];
    let _envoy = differential_support::Envoy::start(
        &envoy_bin,
        "drain_type.yaml",
        &drain_type_config(ports),
        Some(ports[0]),
        ports[1],
    );
    let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let from_envoy = closes_after_health_check_fail(at(ports[0]), [at(ports[1]), at(ports[2])]);
    assert_eq!(from_weir, from_envoy);
}
