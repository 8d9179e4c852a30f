//! Upgrades and CONNECT on a whole worker, in memory: what the route allows becomes a byte
//! tunnel both ways, with back-pressure and both closes; the rest gets Envoy's 403.

use std::time::Duration;

use super::{Harness, Peer, bootstrap, bootstrap_with_routes, status};

const ORIGIN: &str = "127.0.0.1:9001";

const WS: &str = "GET /chat HTTP/1.1\r\nhost: a\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-key: x\r\n\r\n";
const SWITCHED: &str =
    "HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n";

const WS_HCM: &str = "          upgrade_configs: [ { upgrade_type: websocket } ]";
const CONNECT_HCM: &str = "          upgrade_configs: [ { upgrade_type: CONNECT } ]";
const CONNECT_ROUTE: &str = "              - match: { connect_matcher: {} }\n                route: { cluster: backend, upgrade_configs: [ { upgrade_type: CONNECT, connect_config: {} } ] }\n";
const CONNECT: &str = "CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n";

/// A worker whose connection manager allows WebSocket upgrades (`hcm`: more of its fields).
fn websocket_worker(hcm: &str) -> Harness {
    Harness::new(&bootstrap(&format!("{WS_HCM}\n{hcm}"), "", "", &[ORIGIN]))
}

/// A worker with a route that ends CONNECTs (`filters`: HTTP filters before the router).
fn connect_worker(filters: &str) -> Harness {
    Harness::new(&bootstrap_with_routes(
        CONNECT_HCM,
        filters,
        CONNECT_ROUTE,
        "",
        &[ORIGIN],
    ))
}

/// A client whose upgrade request (and `then`) was sent, the origin connection it reached, and
/// what that origin received.
fn upgrade_sent(h: &mut Harness, then: &str) -> (Peer, Peer, String) {
    let client = h.client(0);
    client.send(format!("{WS}{then}"));
    h.settle();
    let origin = h.accept(ORIGIN);
    let request = origin.take_text();
    (client, origin, request)
}

/// A client and origin joined by a tunnel: the upgrade went through and its 101 was answered.
fn tunnel(h: &mut Harness) -> (Peer, Peer) {
    let (client, origin, _) = upgrade_sent(h, "");
    origin.send(SWITCHED);
    h.settle();
    client.take();
    (client, origin)
}

#[test]
fn an_upgrade_without_upgrade_configs_is_403() {
    let mut h = Harness::new(&bootstrap("", "", "", &[ORIGIN]));
    let client = h.client(0);
    client.send(WS);
    h.settle();
    let answer = client.take_text();
    assert_eq!(status(&answer), 403);
    assert!(answer.contains("connection: close\r\n"), "{answer}");
    assert!(h.accepted(ORIGIN).is_empty());
}

#[test]
fn a_websocket_upgrade_becomes_a_tunnel_both_ways() {
    let mut h = websocket_worker("");
    let (client, origin, request) = upgrade_sent(&mut h, "");
    assert!(request.contains("connection: upgrade\r\n"), "{request}");
    assert!(request.contains("upgrade: websocket\r\n"), "{request}");
    origin.send(SWITCHED);
    h.settle();
    let answer = client.take_text();
    assert!(
        answer.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("connection: Upgrade\r\n") && answer.contains("upgrade: websocket\r\n"),
        "{answer}"
    );
    assert!(!answer.contains("transfer-encoding") && !answer.contains("connection: close"));

    // Bytes both ways, unframed.
    client.send("\u{81}\u{2}hi");
    h.settle();
    assert_eq!(origin.take_text(), "\u{81}\u{2}hi");
    origin.send("\u{81}\u{3}yes");
    h.settle();
    assert_eq!(client.take_text(), "\u{81}\u{3}yes");

    // The client closes: the origin gets FIN, answers its last bytes and closes; the client
    // gets them, then FIN.
    client.finish();
    h.settle();
    assert!(
        origin.worker_finished(),
        "the client's FIN goes on to the origin"
    );
    assert!(!client.worker_finished(), "the other direction still runs");
    origin.send("bye");
    origin.finish();
    h.settle();
    assert_eq!(client.take_text(), "bye");
    assert!(client.worker_finished());
    assert_eq!(
        h.stat("cluster.backend.upstream_cx_active"),
        0,
        "a tunnel's connection is never pooled"
    );
}

#[test]
fn an_origin_that_refuses_the_upgrade_answers_and_the_connection_closes() {
    let mut h = websocket_worker("");
    let (client, origin, _) = upgrade_sent(&mut h, "");
    origin.send("HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\nno");
    h.settle();
    let answer = client.take_text();
    assert_eq!(status(&answer), 400);
    assert!(answer.contains("connection: close\r\n"), "{answer}");
    assert!(client.worker_finished());
}

#[test]
fn a_route_can_disable_an_upgrade_the_connection_manager_allows() {
    let route = ", upgrade_configs: [ { upgrade_type: websocket, enabled: false } ]";
    let mut h = Harness::new(&bootstrap(WS_HCM, "", route, &[ORIGIN]));
    let client = h.client(0);
    client.send(WS);
    h.settle();
    assert_eq!(status(&client.take_text()), 403);
}

#[test]
fn a_tunnel_pushes_back_on_a_side_that_does_not_read() {
    let mut h = websocket_worker("");
    let (client, origin) = tunnel(&mut h);
    let piece = vec![b'x'; 1024 * 1024];
    for _ in 0..8 {
        client.send(&piece);
    }
    h.settle();
    let held_by_weir = 8 * 1024 * 1024 - client.unsent() - origin.unread();
    assert!(
        held_by_weir <= 1024 * 1024 + 64 * 1024,
        "weir holds {held_by_weir} bytes"
    );
    let mut received = 0;
    for _ in 0..1000 {
        received += origin.take().len();
        h.settle();
        if client.unsent() == 0 && origin.unread() == 0 {
            break;
        }
    }
    assert_eq!(received, 8 * 1024 * 1024);
}

#[test]
fn an_idle_tunnel_ends_with_the_stream_idle_timeout() {
    let mut h = websocket_worker("          stream_idle_timeout: 10s");
    let (client, origin) = tunnel(&mut h);
    h.advance(Duration::from_secs(9));
    client.send("ping");
    h.settle();
    h.advance(Duration::from_secs(9));
    assert!(!client.worker_finished(), "activity keeps it");
    h.advance(Duration::from_secs(2));
    assert!(client.worker_finished(), "ten idle seconds end it");
    assert!(origin.worker_closed());
}

#[test]
fn a_terminated_connect_tunnels_to_the_cluster() {
    let mut h = connect_worker("");
    let client = h.client(0);
    client.send(CONNECT);
    h.settle();
    let origin = h.accept(ORIGIN);
    let answer = client.take_text();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        !answer.contains("content-length") && !answer.contains("transfer-encoding"),
        "{answer}"
    );
    client.send("hello through");
    h.settle();
    assert_eq!(
        origin.take_text(),
        "hello through",
        "the origin sees only the tunnel's bytes"
    );
    origin.send("and back");
    h.settle();
    assert_eq!(client.take_text(), "and back");
    origin.finish();
    h.settle();
    assert!(client.worker_finished());
}

#[test]
fn a_connect_with_no_connect_route_is_404() {
    let mut h = Harness::new(&bootstrap("", "", "", &[ORIGIN]));
    let client = h.client(0);
    client.send(CONNECT);
    h.settle();
    assert_eq!(status(&client.take_text()), 404);
    assert!(h.accepted(ORIGIN).is_empty());
}

/// Bytes a client sends right after its upgrade head wait for the 101: a request pipelined
/// behind it must not reach the origin without being routed (Envoy holds them too).
#[test]
fn bytes_after_an_upgrade_head_wait_for_the_101() {
    let mut h = websocket_worker("");
    let pipelined = "GET /admin HTTP/1.1\r\nhost: a\r\n\r\n";
    let (_, origin, before) = upgrade_sent(&mut h, pipelined);
    assert!(before.starts_with("GET /chat "), "{before}");
    assert!(
        !before.contains("/admin"),
        "nothing past the upgrade head: {before}"
    );
    origin.send(SWITCHED);
    h.settle();
    assert_eq!(origin.take_text(), pipelined, "now a tunnel's bytes");

    // An origin that refuses the upgrade never sees them.
    let (client, origin, _) = upgrade_sent(&mut h, pipelined);
    origin.send("HTTP/1.1 426 Upgrade Required\r\ncontent-length: 0\r\n\r\n");
    h.settle();
    assert_eq!(status(&client.take_text()), 426);
    assert_eq!(origin.take_text(), "");
    assert!(client.worker_finished());
}

/// A CONNECT answered by weir itself (here a fault abort with a 2xx status) is a plain
/// response that closes the connection, not an open tunnel.
#[test]
fn a_local_2xx_to_a_connect_is_no_tunnel() {
    let fault = "          - name: envoy.filters.http.fault\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault\n              abort: { http_status: 200, percentage: { numerator: 100 } }\n";
    let mut h = connect_worker(fault);
    let client = h.client(0);
    client.send(CONNECT);
    h.settle();
    let answer = client.take_text();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.contains("content-length: 18\r\n"),
        "a framed body: {answer}"
    );
    assert!(answer.contains("connection: close\r\n"), "{answer}");
    assert!(client.worker_finished());
    assert!(h.accepted(ORIGIN).is_empty());
}

/// A client that half-closes right after its CONNECT: the FIN goes to the origin only once the
/// tunnel is up, and the origin's answer still comes back.
#[test]
fn a_connect_half_closed_at_once_still_tunnels() {
    let mut h = connect_worker("");
    let client = h.client(0);
    client.send(format!("{CONNECT}ping"));
    client.finish();
    h.settle();
    let origin = h.accept(ORIGIN);
    assert!(client.take_text().starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(origin.take_text(), "ping");
    assert!(
        origin.worker_finished(),
        "the client's FIN follows its bytes"
    );
    origin.send("pong");
    origin.finish();
    h.settle();
    assert_eq!(client.take_text(), "pong");
    assert!(client.worker_finished());
}
