//! Reloading a running weir (`POST /reload`, `SIGHUP`): a new route table takes the next
//! request of a keep-alive connection that stays open, a request in flight finishes on the
//! table it started with, endpoints move, and a config that is invalid or changes what a
//! reload cannot change is refused with its paths, changing nothing. A filter chain changed
//! beyond its routes (its stat prefix, server name, certificates) takes new connections at
//! once on the same listening socket, while a connection made before finishes on the chain
//! it has and closes after its next response; keep-alive clients under load lose no request.
//! Listeners are added (bound by the reload, which fails on an address in use) and removed
//! (their sockets close, their connections close after their next response, and what is left
//! after the drain time).

mod differential_support;
mod support;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use support::pki::{pki, served, tls_config};
use support::{Client, Origin, Reply, Weir, proxy_config, run_program};

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

fn get_on(client: &mut Client, path: &str) -> String {
    let response = client.get(path).expect("a response");
    assert_eq!(response.head.status(), 200, "{}", response.text());
    response.text()
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
    let (status, text) = weir.admin_post("/reload");
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
    assert_eq!(weir.stat("server.config_reload_total"), 1);
    assert!(weir.stat("server.last_config_reload_time") > 0);

    // Reloading an unchanged file applies nothing.
    let (status, text) = weir.admin_post("/reload");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("no change"), "{text}");
    let dump = support::get(weir.admin, "/config_dump")
        .expect("dump")
        .text();
    assert!(
        dump.contains("\"cluster\": \"other\""),
        "the dump shows the config in force"
    );
    let dump: serde_json::Value = serde_json::from_str(&dump).expect("json");
    let versions: Vec<&str> = (dump["configs"].as_array().expect("configs").iter())
        .filter_map(|c| c["version_info"].as_str())
        .collect();
    assert_eq!(
        versions,
        ["2", "2"],
        "the listener and cluster dumps name version 2"
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
    let changed = moved.replace("id: weir-bintest", "id: renamed");
    std::fs::write(weir.config_path(), changed).expect("rewrite");
    let (status, text) = weir.admin_post("/reload");
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("node.id: cannot change at run time"),
        "{text}"
    );
    std::fs::write(
        weir.config_path(),
        moved.replace("lb_policy: ROUND_ROBIN", "lb_policy: NOPE"),
    )
    .expect("rewrite");
    let (status, text) = weir.admin_post("/reload");
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("static_resources.clusters[0].lb_policy"),
        "{text}"
    );
    assert_eq!(weir.stat("server.config_reload_failed"), 2);
    assert_eq!(weir.stat("server.config_reload_total"), 1);
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
    assert_eq!(weir.stat("server.config_reload_total"), 1);
}

/// `text` with its connection manager's stat prefix `prefix` and server name `server`.
fn renamed(text: &str, prefix: &str, server: &str) -> String {
    let line = "          stat_prefix: ingress\n";
    assert!(text.contains(line));
    text.replacen(
        line,
        &format!("          stat_prefix: {prefix}\n          server_name: {server}\n"),
        1,
    )
}

#[test]
fn a_changed_chain_takes_new_connections_and_old_ones_close_after_their_next_response() {
    let origin = Origin::start(|_| Ok(Reply::text(200, "ok")));
    let text = proxy_config(origin.addr);
    let args = ["--concurrency", "1", "--file-flush-interval-msec", "50"];
    let weir = Weir::start(&text, &args);
    let mut old = Client::connect(weir.addr()).expect("connect");
    let before = old.get("/").expect("a response");
    assert!(!before.head.connection_has("close"));
    let old_server = before.head.header("server").map(str::to_owned);

    std::fs::write(weir.config_path(), renamed(&text, "ingress_v2", "v2")).expect("rewrite");
    let (status, applied) = weir.admin_post("/reload");
    assert_eq!(status, 200, "{applied}");
    assert!(applied.contains("listener ingress"), "{applied}");
    assert!(applied.contains("filter chain ingress/"), "{applied}");

    // A new connection gets the new chain: its server name, its stats scope.
    let mut fresh = Client::connect(weir.addr()).expect("connect");
    let new = fresh.get("/").expect("a response");
    assert_eq!(new.head.header("server"), Some("v2"));
    assert!(
        !new.head.connection_has("close"),
        "a new chain's connection stays"
    );
    // The connection from before finishes on its own chain and closes after this response.
    let last = old.get("/").expect("a response");
    assert_eq!(last.status(), 200);
    assert_eq!(last.head.header("server").map(str::to_owned), old_server);
    assert!(last.head.connection_has("close"), "{:?}", last.head);
    assert!(old.get("/").is_err(), "closed after its response");
    assert_eq!(weir.stat("http.ingress_v2.downstream_rq_total"), 1);
    assert_eq!(weir.stat("http.ingress.downstream_rq_total"), 2);
    assert_eq!(weir.stat("http.ingress.downstream_cx_drain_close"), 1);

    // A new access log file: opened by the reload, written by the chain it replaces.
    let log = support::TempFile::new("reloaded-access.log", "");
    std::fs::remove_file(log.path()).expect("the reload creates it");
    let access_log = |path: &std::path::Path| {
        format!(
            "          stat_prefix: ingress_v2\n          access_log: [{{ name: envoy.access_loggers.file, typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: {}, log_format: {{ text_format_source: {{ inline_string: \"%REQ(:PATH)% %RESPONSE_CODE%\\n\" }} }} }} }}]\n",
            path.display()
        )
    };
    let with_log = |path: &std::path::Path| {
        renamed(&text, "ingress_v2", "v2").replacen(
            "          stat_prefix: ingress_v2\n",
            &access_log(path),
            1,
        )
    };
    // One it cannot open is refused with its path, and nothing changes.
    let nowhere = support::TempFile::unique_path("no-such-dir").join("access.log");
    std::fs::write(weir.config_path(), with_log(&nowhere)).expect("rewrite");
    let (status, refused) = weir.admin_post("/reload");
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused.contains("static_resources.listeners[0].filter_chains[0]: access log"),
        "{refused}"
    );
    assert_eq!(get_on(&mut fresh, "/"), "ok", "nothing changed");
    std::fs::write(weir.config_path(), with_log(log.path())).expect("rewrite");
    let (status, applied) = weir.admin_post("/reload");
    assert_eq!(status, 200, "{applied}");
    let mut logged_client = Client::connect(weir.addr()).expect("connect");
    assert_eq!(get_on(&mut logged_client, "/logged"), "ok");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(log.path())
        .unwrap_or_default()
        .contains("/logged 200")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the new access log got no line"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_reload_swaps_a_certificate_for_new_handshakes_on_the_same_socket() {
    let pki = pki();
    let origin = Origin::start(|_| Ok(Reply::text(200, "ok")));
    let text = tls_config(origin.addr, &pki, "", "");
    let weir = Weir::start(&text, &["--concurrency", "1"]);
    assert!(served(&weir, &pki, "a.test").ends_with("a.test"));
    // Only `b.test`'s certificate from now on: SNI a.test gets it too.
    let (a_cert, a_key) = (pki.a.0.path().display(), pki.a.1.path().display());
    let a = format!(
        "\n            - certificate_chain: {{ filename: {a_cert} }}\n              private_key: {{ filename: {a_key} }}"
    );
    assert!(text.contains(&a));
    std::fs::write(weir.config_path(), text.replacen(&a, "", 1)).expect("rewrite");
    let (status, applied) = weir.admin_post("/reload");
    assert_eq!(status, 200, "{applied}");
    assert!(served(&weir, &pki, "a.test").ends_with("b.test"));
    let url = format!("https://b.test:{}/local", weir.addr().port());
    let resolve = format!("b.test:{}:127.0.0.1", weir.addr().port());
    let ca = pki.ca.path().display().to_string();
    let args = ["-sS", "--cacert", &ca, "--resolve", &resolve, &url];
    let ran = run_program("curl", &args, Duration::from_secs(20));
    assert_eq!(ran.stdout, "local\n", "{ran}");
}

/// Keep-alive clients send requests without pause while the config flips between two
/// versions of the chain; a client whose response says `connection: close` reconnects, as
/// HTTP clients do. No request fails, and both versions answered.
#[test]
fn keep_alive_clients_under_load_lose_no_request_across_chain_reloads() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let origin = Origin::start(|_| Ok(Reply::text(200, "ok")));
    let text = proxy_config(origin.addr);
    let versions = [
        renamed(&text, "ingress", "one"),
        renamed(&text, "ingress_two", "two"),
    ];
    let weir = Weir::start(&versions[0], &["--concurrency", "2"]);
    let stop = AtomicBool::new(false);
    let (addr, deadline) = (
        weir.addr(),
        std::time::Instant::now() + Duration::from_secs(30),
    );
    let results = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let (mut served, mut failed, mut servers) = (0u32, Vec::new(), Vec::new());
                    let mut client = Client::connect(addr).expect("connect");
                    // Bounded: 3,000 requests or 30 s at most.
                    for _ in 0..3_000 {
                        if stop.load(Ordering::Acquire) || std::time::Instant::now() > deadline {
                            break;
                        }
                        match client.get("/") {
                            Ok(r) if r.status() == 200 => {
                                served += 1;
                                let server = r.head.header("server").unwrap_or("").to_owned();
                                if !servers.contains(&server) {
                                    servers.push(server);
                                }
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
                    (served, failed, servers)
                })
            })
            .collect();
        for round in 1..=10 {
            std::thread::sleep(Duration::from_millis(60));
            std::fs::write(weir.config_path(), &versions[round % 2]).expect("rewrite");
            let (status, applied) = weir.admin_post("/reload");
            assert_eq!(status, 200, "{applied}");
        }
        std::thread::sleep(Duration::from_millis(60));
        stop.store(true, Ordering::Release);
        clients
            .into_iter()
            .map(|c| c.join().expect("client"))
            .collect::<Vec<_>>()
    });
    let mut seen = Vec::new();
    for (served, failed, servers) in &results {
        assert!(failed.is_empty(), "failed requests: {failed:?}");
        assert!(*served > 0);
        seen.extend(servers.iter().cloned());
    }
    assert!(
        seen.iter().any(|s| s == "one") && seen.iter().any(|s| s == "two"),
        "{seen:?}"
    );
    assert_eq!(weir.stat("server.config_reload_total"), 10);
}

/// `text` with a second listener `second` (port 0) whose routes answer `second` locally.
fn with_second_listener(text: &str) -> String {
    let second = r#"  - name: second
    address: { socket_address: { address: 127.0.0.1, port_value: PORT } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: second
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: / }
                direct_response: { status: 200, body: { inline_string: "second" } }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#;
    text.replacen("  clusters:\n", &format!("{second}  clusters:\n"), 1)
}

#[test]
fn a_reload_adds_and_removes_listeners() {
    let origin = Origin::start(|_| Ok(Reply::text(200, "ok")));
    let text = proxy_config(origin.addr);
    let weir = Weir::start(&text, &["--concurrency", "2", "--drain-time-s", "1"]);
    let mut first = Client::connect(weir.addr()).expect("connect");
    assert_eq!(get_on(&mut first, "/"), "ok");

    // An address another socket holds: refused before anything changes.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    std::fs::write(
        weir.config_path(),
        with_second_listener(&text).replace("PORT", &port),
    )
    .expect("rewrite");
    let (status, refused) = weir.admin_post("/reload");
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused.contains("static_resources.listeners[1].address: listener second"),
        "{refused}"
    );
    drop(taken);

    std::fs::write(
        weir.config_path(),
        with_second_listener(&text).replace("PORT", "0"),
    )
    .expect("rewrite");
    let (status, applied) = weir.admin_post("/reload");
    assert_eq!(status, 200, "{applied}");
    let address: SocketAddr = (applied.lines())
        .find_map(|l| l.trim().strip_prefix("listener second added, on "))
        .unwrap_or_else(|| panic!("{applied}"))
        .parse()
        .expect("an address");
    // Four connections at once (the kernel spreads them over both workers' sockets).
    let mut clients: Vec<Client> = (0..4)
        .map(|_| Client::connect(address).expect("connect"))
        .collect();
    for c in &mut clients {
        assert_eq!(get_on(c, "/"), "second");
    }
    let listed = support::get(weir.admin, "/listeners")
        .expect("/listeners")
        .text();
    assert!(listed.contains(&format!("second::{address}")), "{listed}");
    let scope = format!("listener.{}_{}", address.ip(), address.port());
    assert_eq!(weir.stat(&format!("{scope}.downstream_cx_total")), 4);
    assert_eq!(weir.stat("http.second.downstream_rq_total"), 4);

    // Removed: no new connection; the open ones close after their next response, or at the
    // drain time if they send none.
    std::fs::write(weir.config_path(), &text).expect("rewrite");
    let (status, applied) = weir.admin_post("/reload");
    assert_eq!(status, 200, "{applied}");
    assert!(applied.contains("listener second removed"), "{applied}");
    // While it drains, its stats still show, as a draining listener's do in Envoy.
    assert_eq!(weir.stat("listener_manager.total_listeners_draining"), 1);
    assert_eq!(weir.stat(&format!("{scope}.downstream_cx_total")), 4);
    let refused = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        std::net::TcpStream::connect(address).is_err()
    });
    assert!(refused, "the removed listener stopped accepting");
    let last = clients[0].get("/").expect("a response");
    assert_eq!(last.text(), "second");
    assert!(last.head.connection_has("close"), "{:?}", last.head);
    let idle = &mut clients[1];
    let closed = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        idle.get("/").is_err()
    });
    assert!(closed, "an idle connection closes at the drain time");
    // The first listener never noticed.
    assert_eq!(get_on(&mut first, "/"), "ok");
    let listed = support::get(weir.admin, "/listeners")
        .expect("/listeners")
        .text();
    assert!(!listed.contains("second::"), "{listed}");
    // Its stats leave once its drain is over, as in Envoy.
    let gone = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        let stats = support::get(weir.admin, "/stats").expect("/stats").text();
        !stats.contains(&format!("{scope}."))
    });
    assert!(gone, "the removed listener's stats left");
    assert_eq!(weir.stat("listener_manager.total_listeners_active"), 1);
    assert_eq!(weir.stat("listener_manager.total_listeners_draining"), 0);
}

/// A thousand reloads, each replacing the chain, with a keep-alive client on it throughout:
/// the old versions are freed (the lineage holds the newest weakly, and each connection
/// leaves its retired chain when it closes), so memory after the thousandth is where it was
/// after the hundredth.
#[test]
fn a_thousand_reloads_under_load_leave_memory_where_it_was() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let origin = Origin::start(|_| Ok(Reply::text(200, "ok")));
    let text = proxy_config(origin.addr);
    let versions = [
        renamed(&text, "ingress", "one"),
        renamed(&text, "ingress", "two"),
    ];
    let weir = Weir::start(&versions[0], &["--concurrency", "1"]);
    let stop = AtomicBool::new(false);
    let addr = weir.addr();
    let rss = |weir: &Weir| weir.proc_status_kib("VmRSS");
    let (warm, after, served) = std::thread::scope(|scope| {
        let client = scope.spawn(|| {
            let mut served = 0u32;
            let mut client = Client::connect(addr).expect("connect");
            // Bounded: 100,000 requests at most; the reloads end it sooner.
            for _ in 0..100_000 {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let r = client.get("/").expect("a response");
                assert_eq!(r.status(), 200);
                served += 1;
                if r.head.connection_has("close") {
                    client = Client::connect(addr).expect("reconnect");
                }
            }
            served
        });
        let mut warm = 0;
        for round in 1..=1_000 {
            std::fs::write(weir.config_path(), &versions[round % 2]).expect("rewrite");
            let (status, applied) = weir.admin_post("/reload");
            assert_eq!(status, 200, "{applied}");
            if round == 100 {
                warm = rss(&weir);
            }
        }
        let after = rss(&weir);
        stop.store(true, Ordering::Release);
        (warm, after, client.join().expect("client"))
    });
    assert!(served > 0);
    eprintln!("RSS: {warm} KiB after 100 reloads, {after} KiB after 1000");
    assert_eq!(weir.stat("server.config_reload_total"), 1_000);
    // A snapshot and its chains are tens of KiB: 900 leaked would be tens of MiB.
    assert!(
        after <= warm + 4 * 1024,
        "RSS {warm} KiB after 100 reloads, {after} KiB after 1000"
    );
}

/// The config version that served each request, in the access log (`%WEIR_CONFIG_VERSION%`)
/// and in its flow: a route change moves a kept connection to the new version; a chain
/// change leaves it on the version before, and a new connection on the new one.
#[test]
fn the_access_log_and_the_flow_say_which_config_version_served_a_request() {
    let origin = Origin::start(|_| Ok(Reply::text(200, "ok")));
    let log = support::TempFile::new("versions.log", "");
    let logger = format!(
        "          access_log:\n          - name: envoy.access_loggers.file\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n              path: {}\n              log_format: {{ text_format_source: {{ inline_string: \"%REQ(:PATH)% %WEIR_CONFIG_VERSION%\\n\" }} }}\n",
        log.path().display()
    );
    let anchor = "          stat_prefix: ingress\n";
    let text = proxy_config(origin.addr).replacen(anchor, &format!("{anchor}{logger}"), 1);
    let args = [
        "--concurrency",
        "1",
        "--flow-trace",
        "all",
        "--file-flush-interval-msec",
        "50",
    ];
    let weir = Weir::start(&text, &args);
    let mut kept = Client::connect(weir.addr()).expect("connect");
    assert_eq!(get_on(&mut kept, "/one"), "ok");
    // Version 2 changes a route only: the kept connection moves to it.
    let routes = text.replace("timeout: 14s", "timeout: 13s");
    std::fs::write(weir.config_path(), &routes).expect("rewrite");
    assert_eq!(weir.admin_post("/reload").0, 200);
    assert_eq!(get_on(&mut kept, "/two"), "ok");
    // Version 3 replaces the chain: the kept connection's last request is on version 2.
    std::fs::write(weir.config_path(), renamed(&routes, "ingress", "three")).expect("rewrite");
    assert_eq!(weir.admin_post("/reload").0, 200);
    assert_eq!(get_on(&mut kept, "/old"), "ok");
    let mut fresh = Client::connect(weir.addr()).expect("connect");
    assert_eq!(get_on(&mut fresh, "/new"), "ok");
    let want = ["/one 1", "/two 2", "/old 2", "/new 3"];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let logged = loop {
        let logged = std::fs::read_to_string(log.path()).unwrap_or_default();
        if logged.lines().count() >= want.len() || std::time::Instant::now() > deadline {
            break logged;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(logged.lines().collect::<Vec<_>>(), want);
    let flows = support::get(weir.admin, "/flows?format=json&limit=50")
        .expect("/flows")
        .text();
    let mut heads: Vec<String> = (flows.lines())
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "request_head")
        .map(|v| format!("{} {}", v["path"].as_str().unwrap_or(""), v["config"]))
        .collect();
    heads.sort();
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(heads, want);
}

/// A download that is under way and an open WebSocket both go on through a reload that
/// replaces their chain: they finish on the chain they started with, and only then does
/// the download's connection close, after its next response.
#[test]
fn a_long_download_and_a_websocket_keep_going_on_their_old_chain_and_cluster() {
    use std::io::{Read, Write};
    let origin = support::raw_origin();
    let anchor = "          stat_prefix: ingress\n";
    let text = proxy_config(origin).replacen(
        anchor,
        &format!("{anchor}          upgrade_configs: [ {{ upgrade_type: websocket }} ]\n"),
        1,
    );
    let weir = Weir::start(&text, &["--concurrency", "1", "--drain-time-s", "1"]);
    let echo = support::echo;
    let mut ws = support::open_websocket(weir.addr());
    echo(&mut ws, b"before the reload");
    let mut download = support::start_download(weir.addr());
    let mut body = vec![0u8; 1 << 20];
    download.read_exact(&mut body).expect("the first MiB");
    // Both streams are in flight (the download held back by its slow reader).
    assert_eq!(weir.stat("http.ingress.downstream_rq_active"), 2);

    // The chain and the cluster both replaced; past the drain time, the old cluster's hosts
    // are removed, and its two busy connections go on.
    let replaced =
        renamed(&text, "ingress_v2", "v2").replace("connect_timeout: 2s", "connect_timeout: 3s");
    std::fs::write(weir.config_path(), replaced).expect("rewrite");
    let (status, applied) = weir.admin_post("/reload");
    assert_eq!(status, 200, "{applied}");
    assert!(applied.contains("cluster origin replaced"), "{applied}");
    std::thread::sleep(Duration::from_millis(1_500));

    echo(&mut ws, b"after the reload");
    let mut rest = vec![0u8; support::BIG - body.len()];
    download
        .read_exact(&mut rest)
        .expect("the rest of the download");
    body.extend_from_slice(&rest);
    assert!(
        body.iter().all(|&b| b == b'x'),
        "the download arrived whole"
    );
    // Its response went out before the reload without `connection: close`, so the
    // connection stayed; its next request names the old cluster, whose hosts are gone: 503
    // `NC`, and the connection closes.
    download
        .write_all(b"GET /next HTTP/1.1\r\nhost: a\r\n\r\n")
        .expect("send");
    let head = support::read_raw_head(&mut download);
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert_eq!(weir.stat("http.ingress.no_cluster"), 1);
    echo(&mut ws, b"still on its old chain");
}
