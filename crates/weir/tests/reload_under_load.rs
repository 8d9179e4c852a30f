//! Every kind of reload, one after another, under one continuous load: keep-alive clients, a
//! long download and an open WebSocket stay up while a reload changes a route, adds and
//! removes a listener, adds and removes a cluster, moves a cluster's endpoints, and an
//! invalid config is refused. Not one request fails, no established connection is cut, and
//! the download and the WebSocket go on through all of it.

mod support;

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{Client, Origin, Reply, Weir, proxy_config};

/// A route `path` to cluster `cluster`, before the catch-all one.
fn with_route(text: &str, path: &str, cluster: &str) -> String {
    let route = format!(
        "              - match: {{ prefix: {path} }}\n                route: {{ cluster: {cluster} }}\n"
    );
    text.replacen(
        "              - match: { prefix: / }\n",
        &format!("{route}              - match: {{ prefix: / }}\n"),
        1,
    )
}

/// A `STATIC` cluster `name` at `address`.
fn with_cluster(text: &str, name: &str, address: SocketAddr) -> String {
    format!(
        "{text}  - name: {name}\n    type: STATIC\n    connect_timeout: 1s\n    load_assignment:\n      cluster_name: {name}\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}\n",
        address.port()
    )
}

/// A listener `second` on a port of its own that answers `second`.
fn with_second_listener(text: &str) -> String {
    let second = "  - name: second\n    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }\n    filter_chains:\n    - filters:\n      - name: envoy.filters.network.http_connection_manager\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n          stat_prefix: second\n          route_config: { virtual_hosts: [ { name: all, domains: [\"*\"], routes: [ { match: { prefix: / }, direct_response: { status: 200, body: { inline_string: second } } } ] } ] }\n          http_filters: [ { name: envoy.filters.http.router, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } } ]\n";
    text.replacen("  clusters:\n", &format!("{second}  clusters:\n"), 1)
}

#[test]
fn every_kind_of_reload_under_load_fails_no_request_and_cuts_no_connection() {
    let first = Origin::start(|_| Ok(Reply::text(200, "ok")));
    let moved = Origin::start(|_| Ok(Reply::text(200, "ok")));
    let other = Origin::start(|_| Ok(Reply::text(200, "other")));
    let raw = support::raw_origin();
    let anchor = "          stat_prefix: ingress\n";
    let base = with_cluster(
        &with_route(
            &with_route(&proxy_config(first.addr), "/ws", "raw"),
            "/big",
            "raw",
        ),
        "raw",
        raw,
    )
    .replacen(
        anchor,
        &format!("{anchor}          upgrade_configs: [ {{ upgrade_type: websocket }} ]\n"),
        1,
    );
    let weir = Weir::start(&base, &["--concurrency", "2"]);
    let addr = weir.addr();

    let echo = support::echo;
    let mut ws = support::open_websocket(addr);
    let mut download = support::start_download(addr);
    let mut received = 0;
    let mut chunk = vec![0u8; 1 << 20];
    let mut read_some = |download: &mut std::net::TcpStream| {
        download
            .read_exact(&mut chunk)
            .expect("the download goes on");
        assert!(chunk.iter().all(|&b| b == b'x'));
        received += chunk.len();
    };

    let mut step = 0;
    let mut reload = |config: &str| {
        step += 1;
        std::fs::write(weir.config_path(), config).expect("rewrite");
        weir.admin_post("/reload")
    };
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(60);
    let failures = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..3)
            .map(|_| {
                scope.spawn(|| {
                    let mut failed = Vec::new();
                    let mut client = Client::connect(addr).expect("connect");
                    // Bounded: 50,000 requests or 60 s at most.
                    for _ in 0..50_000 {
                        if stop.load(Ordering::Acquire) || Instant::now() > deadline {
                            break;
                        }
                        match client.get("/") {
                            Ok(r) if r.status() == 200 => {
                                if r.head.connection_has("close") {
                                    client = Client::connect(addr).expect("reconnect");
                                }
                            }
                            other => {
                                failed.push(format!("{:?}", other.map(|r| r.status())));
                                client = Client::connect(addr).expect("reconnect");
                            }
                        }
                    }
                    failed
                })
            })
            .collect();
        let pause = || std::thread::sleep(Duration::from_millis(150));
        let steps = [
            // A route: a new timeout.
            (base.replace("timeout: 14s", "timeout: 13s"), "routes of"),
            // A listener added, then removed.
            (with_second_listener(&base), "listener second added"),
            (base.clone(), "listener second removed"),
            // A cluster added with a route to it, then removed.
            (
                with_cluster(&with_route(&base, "/other", "other"), "other", other.addr),
                "cluster other added",
            ),
            (base.clone(), "cluster other removed"),
            // The origin's endpoint moved.
            (
                base.replacen(
                    &format!("port_value: {} }}", first.addr.port()),
                    &format!("port_value: {} }}", moved.addr.port()),
                    1,
                ),
                "endpoints of cluster origin",
            ),
        ];
        let mut last = base.clone();
        for (config, says) in steps {
            pause();
            let (status, applied) = reload(&config);
            assert_eq!(status, 200, "{applied}");
            assert!(applied.contains(says), "{says}: {applied}");
            read_some(&mut download);
            echo(&mut ws, b"through a reload");
            last = config;
        }
        // An invalid config changes nothing.
        pause();
        let (status, refused) = reload(&last.replace("lb_policy: ROUND_ROBIN", "lb_policy: NOPE"));
        assert_eq!(status, 400, "{refused}");
        pause();
        stop.store(true, Ordering::Release);
        clients
            .into_iter()
            .flat_map(|c| c.join().expect("client"))
            .collect::<Vec<_>>()
    });
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert_eq!(step, 7);
    support::finish_download(&mut download, received);
    echo(&mut ws, b"after every reload");
    assert_eq!(weir.stat("server.config_reload_total"), 6);
    assert_eq!(weir.stat("server.config_reload_failed"), 1);
}
