//! Reloading a running weir (`POST /reload`, `SIGHUP`): a new route table takes the next
//! request of a keep-alive connection that stays open, a request in flight finishes on the
//! table it started with, endpoints move, and a config that is invalid or changes what a
//! reload cannot change is refused with its paths, changing nothing.

mod differential_support;
mod support;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use support::{Client, Origin, Reply, Weir, proxy_config};

/// [`proxy_config`] with a second cluster `other` at `other`, and every route to `route_to`.
fn config(origin: SocketAddr, other: SocketAddr, route_to: &str) -> String {
    let other_cluster = format!(
        "  - name: other\n    type: STATIC\n    connect_timeout: 1s\n    load_assignment:\n      cluster_name: other\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}\n",
        other.port()
    );
    proxy_config(origin).replace(
        "cluster: origin, timeout: 14s",
        &format!("cluster: {route_to}, timeout: 14s"),
    ) + &other_cluster
}

fn post(weir: &Weir, path: &str) -> (u16, String) {
    let mut client = Client::connect(weir.admin).expect("connect admin");
    let request = format!("POST {path} HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n");
    client.send(request.as_bytes()).expect("send");
    let response = client.read_response().expect("a response");
    (response.head.status(), response.text())
}

fn get_on(client: &mut Client, path: &str) -> String {
    let response = client.get(path).expect("a response");
    assert_eq!(response.head.status(), 200, "{}", response.text());
    response.text()
}

fn stat(weir: &Weir, name: &str) -> u64 {
    let text = support::get(weir.admin, &format!("/stats?filter=^{name}$"))
        .expect("/stats")
        .text();
    text.split(": ")
        .nth(1)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text:?}"))
}

#[test]
fn a_reload_changes_routes_for_the_next_request_and_keeps_connections() {
    // The first origin holds `/slow` until told, to show a request in flight through a reload.
    let (release, held) = mpsc::channel::<()>();
    let held = std::sync::Mutex::new(held);
    let first = Origin::start(move |req| {
        if req.target() == "/slow" {
            let _ = held
                .lock()
                .expect("lock")
                .recv_timeout(Duration::from_secs(10));
        }
        Ok(Reply::text(200, "first"))
    });
    let second = Origin::start(|_| Ok(Reply::text(200, "second")));
    let weir = Weir::start(
        &config(first.addr, second.addr, "origin"),
        &["--concurrency", "1"],
    );
    let mut keep_alive = Client::connect(weir.addr()).expect("connect");
    assert_eq!(get_on(&mut keep_alive, "/a"), "first");
    let mut in_flight = Client::connect(weir.addr()).expect("connect");
    in_flight
        .send(b"GET /slow HTTP/1.1\r\nhost: a\r\n\r\n")
        .expect("send");
    std::thread::sleep(Duration::from_millis(100));

    std::fs::write(weir.config_path(), config(first.addr, second.addr, "other"))
        .expect("rewrite the config");
    let (status, text) = post(&weir, "/reload");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("applied config version 2"), "{text}");
    assert!(text.contains("routes of ingress/"), "{text}");

    // The same connection's next request, and a new connection's, use the new table.
    assert_eq!(get_on(&mut keep_alive, "/b"), "second");
    let mut fresh = Client::connect(weir.addr()).expect("connect");
    assert_eq!(get_on(&mut fresh, "/c"), "second");
    // The request in flight finishes where it started.
    release.send(()).expect("release");
    let slow = in_flight.read_response().expect("the slow response");
    assert_eq!(slow.text(), "first");
    assert_eq!(stat(&weir, "server.config_reload_total"), 1);
    assert!(stat(&weir, "server.last_config_reload_time") > 0);

    // Reloading an unchanged file applies nothing.
    let (status, text) = post(&weir, "/reload");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("no change"), "{text}");
    let dump = support::get(weir.admin, "/config_dump")
        .expect("dump")
        .text();
    assert!(
        dump.contains("\"cluster\": \"other\""),
        "the dump shows the config in force"
    );
}

#[test]
fn a_reload_moves_endpoints_and_refuses_what_it_cannot_apply() {
    let first = Origin::start(|_| Ok(Reply::text(200, "first")));
    let second = Origin::start(|_| Ok(Reply::text(200, "second")));
    let text = config(first.addr, second.addr, "origin");
    let weir = Weir::start(&text, &["--concurrency", "1"]);
    let mut keep_alive = Client::connect(weir.addr()).expect("connect");
    assert_eq!(get_on(&mut keep_alive, "/"), "first");

    // The cluster's endpoint moves to the second origin: SIGHUP applies it.
    let moved = text.replacen(
        &format!("port_value: {} ", first.addr.port()),
        &format!("port_value: {} ", second.addr.port()),
        1,
    );
    assert_ne!(moved, text);
    std::fs::write(weir.config_path(), &moved).expect("rewrite");
    weir.signal("HUP");
    assert!(
        weir.wait_for_log("endpoints of cluster origin", Duration::from_secs(5))
            .is_some(),
        "the reload is logged"
    );
    let mut fresh = Client::connect(weir.addr()).expect("connect");
    assert_eq!(get_on(&mut fresh, "/"), "second");

    // A change a reload does not apply, and an invalid config: refused with their paths.
    let changed = moved.replace("connect_timeout: 1s", "connect_timeout: 3s");
    std::fs::write(weir.config_path(), changed).expect("rewrite");
    let (status, text) = post(&weir, "/reload");
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("static_resources.clusters[1].connect_timeout: cannot change at run time"),
        "{text}"
    );
    std::fs::write(
        weir.config_path(),
        moved.replace("lb_policy: ROUND_ROBIN", "lb_policy: NOPE"),
    )
    .expect("rewrite");
    let (status, text) = post(&weir, "/reload");
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("static_resources.clusters[0].lb_policy"),
        "{text}"
    );
    assert_eq!(stat(&weir, "server.config_reload_failed"), 2);
    assert_eq!(stat(&weir, "server.config_reload_total"), 1);
    // Nothing changed: the connection from before still works, on the moved endpoint.
    assert_eq!(get_on(&mut keep_alive, "/"), "second");
}

#[test]
fn watch_reloads_when_the_file_changes() {
    let first = Origin::start(|_| Ok(Reply::text(200, "first")));
    let second = Origin::start(|_| Ok(Reply::text(200, "second")));
    let weir = Weir::start(
        &config(first.addr, second.addr, "origin"),
        &["--concurrency", "1", "--watch"],
    );
    let mut client = Client::connect(weir.addr()).expect("connect");
    assert_eq!(get_on(&mut client, "/"), "first");
    std::fs::write(weir.config_path(), config(first.addr, second.addr, "other")).expect("rewrite");
    // Looked at four times a second, applied once settled: well within five seconds.
    let changed = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        get_on(&mut client, "/") == "second"
    });
    assert!(changed, "the watcher applied the new routes");
    assert_eq!(stat(&weir, "server.config_reload_total"), 1);
}
