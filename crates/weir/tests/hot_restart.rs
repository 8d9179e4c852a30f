//! Binary upgrade (`--hot-restart PATH`) over real sockets: a new weir takes the running
//! one's listening sockets while clients keep connecting and sending, and not one connection
//! is refused or one request fails; the old weir drains and exits on its own, and the new one
//! serves on the same address and waits on PATH for the next.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{Client, Origin, Reply, TempFile, Weir, proxy_config};

/// A port nothing listens on now (the kernel's pick, let go at once).
fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
    probe.local_addr().expect("address").port()
}

#[test]
fn a_new_weir_takes_the_sockets_over_under_load_and_the_old_one_drains_away() {
    let origin = Origin::start(|_| Ok(Reply::text(200, "ok")));
    let port = free_port();
    let text = on_port(&proxy_config(origin.addr), port);
    assert!(text.contains(&format!("port_value: {port}")), "{text}");
    let socket = TempFile::unique_path("hot-restart.sock");
    let socket_arg = socket.display().to_string();
    let args = [
        "--concurrency",
        "2",
        "--drain-time-s",
        "3",
        "--hot-restart",
        &socket_arg,
    ];
    let mut old = Weir::start(&text, &args);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(old.addr(), addr);

    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (new, failures, served) = std::thread::scope(|scope| {
        // A keep-alive client (it reconnects when told `connection: close`) and one that
        // opens a connection per request: bounded by count and by time.
        let keep_alive = scope.spawn(|| {
            let (mut served, mut failed) = (0u32, Vec::new());
            let mut client = Client::connect(addr).expect("connect");
            for _ in 0..20_000 {
                if stop.load(Ordering::Acquire) || Instant::now() > deadline {
                    break;
                }
                match client.get("/") {
                    Ok(r) if r.status() == 200 => {
                        served += 1;
                        if r.head.connection_has("close") {
                            client = Client::connect(addr).expect("reconnect");
                        }
                    }
                    other => {
                        failed.push(format!("keep-alive: {:?}", other.map(|r| r.status())));
                        client = Client::connect(addr).expect("reconnect");
                    }
                }
            }
            (served, failed)
        });
        let fresh = scope.spawn(|| {
            let (mut served, mut failed) = (0u32, Vec::new());
            for _ in 0..20_000 {
                if stop.load(Ordering::Acquire) || Instant::now() > deadline {
                    break;
                }
                match Client::connect(addr).and_then(|mut c| c.get("/")) {
                    Ok(r) if r.status() == 200 => served += 1,
                    other => failed.push(format!("fresh: {:?}", other.map(|r| r.status()))),
                }
            }
            (served, failed)
        });
        std::thread::sleep(Duration::from_millis(300));
        let before = old.stat("http.ingress.downstream_rq_total");
        assert!(before > 0);
        let new = Weir::start(&text, &args);
        // Once the old one drains, the new one's counters go on from the old one's.
        assert!(
            old.wait_for_log("handed over to a new weir", Duration::from_secs(10))
                .is_some()
        );
        assert!(new.stat("http.ingress.downstream_rq_total") >= before);
        // The old one drains (its keep-alive connections close after their next response)
        // and exits on its own.
        let status = old.wait_exit(Duration::from_secs(10));
        assert!(status.success(), "the old weir exited with {status}");
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Release);
        let mut failures = Vec::new();
        let mut served = 0;
        for client in [keep_alive, fresh] {
            let (n, failed) = client.join().expect("client");
            served += n;
            failures.extend(failed);
        }
        (new, failures, served)
    });
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    eprintln!("{served} requests served across the hand-over");
    assert!(served > 0);
    assert_eq!(new.addr(), addr, "the same address");
    assert!(
        new.stat("http.ingress.downstream_rq_total") > 0,
        "the new weir serves"
    );
    assert!(
        old.log_lines()
            .iter()
            .any(|l| l.contains("handed over to a new weir")),
        "the old weir says why it drained"
    );
    assert!(
        socket.exists(),
        "the new weir waits for the next on the same path"
    );
}

/// `text` with its listener on `port`.
fn on_port(text: &str, port: u16) -> String {
    text.replacen(
        "    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }\n    filter_chains:",
        &format!("    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}\n    filter_chains:"),
        1,
    )
}

#[test]
fn another_concurrency_is_refused_with_the_one_to_use_and_the_old_weir_carries_on() {
    let origin = Origin::start(|_| Ok(Reply::text(200, "ok")));
    let text = on_port(&proxy_config(origin.addr), free_port());
    let socket = TempFile::unique_path("hot-restart.sock");
    let socket = socket.display().to_string();
    let old = Weir::start(&text, &["--concurrency", "2", "--hot-restart", &socket]);
    let config = TempFile::new("weir.yaml", &text);
    let config = config.path().display().to_string();
    let args = [
        "-c",
        &config,
        "--concurrency",
        "1",
        "--hot-restart",
        &socket,
    ];
    let ran = support::run_program(support::weir_bin(), &args, Duration::from_secs(20));
    assert!(!ran.status.success(), "{}", ran.stderr);
    assert!(ran.stderr.contains("--concurrency 2"), "{}", ran.stderr);
    let mut client = Client::connect(old.addr()).expect("connect");
    assert_eq!(client.get("/").expect("a response").status(), 200);
    // And a weir that gets it right takes over after all.
    let new = Weir::start(&text, &["--concurrency", "2", "--hot-restart", &socket]);
    assert_eq!(new.addr(), old.addr());
}

#[test]
fn a_listener_a_reload_added_is_handed_over_too() {
    let origin = Origin::start(|_| Ok(Reply::text(200, "ok")));
    let text = on_port(&proxy_config(origin.addr), free_port());
    let second_port = free_port();
    let second = format!(
        "  - name: second\n    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {second_port} }} }}\n    filter_chains:\n    - filters:\n      - name: envoy.filters.network.http_connection_manager\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n          stat_prefix: second\n          route_config: {{ virtual_hosts: [ {{ name: all, domains: [\"*\"], routes: [ {{ match: {{ prefix: / }}, direct_response: {{ status: 200, body: {{ inline_string: second }} }} }} ] }} ] }}\n          http_filters: [ {{ name: envoy.filters.http.router, typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }} ]\n"
    );
    let with_second = text.replacen("  clusters:\n", &format!("{second}  clusters:\n"), 1);
    let socket = TempFile::unique_path("hot-restart.sock");
    let socket = socket.display().to_string();
    let args = ["--concurrency", "1", "--hot-restart", &socket];
    let old = Weir::start(&text, &args);
    std::fs::write(old.config_path(), &with_second).expect("rewrite");
    assert_eq!(old.admin_post("/reload").0, 200);
    let new = Weir::start(&with_second, &args);
    let handed = new.log_lines();
    let handed: Vec<_> = handed
        .iter()
        .filter(|l| l.contains("handed_over=true"))
        .collect();
    assert_eq!(handed.len(), 2, "both listeners' sockets: {handed:?}");
    let addr = SocketAddr::from(([127, 0, 0, 1], second_port));
    let mut client = Client::connect(addr).expect("connect");
    let response = client.get("/").expect("a response");
    assert_eq!(response.text(), "second");
}

/// A download under way and an open WebSocket on the old weir go on after a new weir took
/// the sockets over (within the drain time): they are its connections, not the sockets'.
/// New connections meanwhile reach the new weir.
#[test]
fn a_long_download_and_a_websocket_finish_on_the_old_weir() {
    use std::io::Read;
    let origin = support::raw_origin();
    let anchor = "          stat_prefix: ingress\n";
    let text = on_port(&proxy_config(origin), free_port()).replacen(
        anchor,
        &format!("{anchor}          upgrade_configs: [ {{ upgrade_type: websocket }} ]\n"),
        1,
    );
    let socket = TempFile::unique_path("hot-restart.sock");
    let socket = socket.display().to_string();
    let args = [
        "--concurrency",
        "1",
        "--drain-time-s",
        "20",
        "--hot-restart",
        &socket,
    ];
    let mut old = Weir::start(&text, &args);
    let echo = support::echo;
    let mut ws = support::open_websocket(old.addr());
    echo(&mut ws, b"before");
    let mut download = support::start_download(old.addr());
    let mut body = vec![0u8; 1 << 20];
    download.read_exact(&mut body).expect("the first MiB");

    let new = Weir::start(&text, &args);
    assert!(
        old.wait_for_log("handed over to a new weir", Duration::from_secs(10))
            .is_some(),
        "the old weir drains"
    );
    // New connections reach the new weir (the old one stops accepting as it drains).
    let until = Instant::now() + Duration::from_secs(10);
    while new.stat("http.ingress.downstream_rq_total") == 0 {
        assert!(Instant::now() < until, "the new weir never served");
        let mut fresh = Client::connect(new.addr()).expect("connect");
        assert_eq!(fresh.get("/").expect("a response").status(), 200);
    }
    echo(&mut ws, b"after the hand-over");
    support::finish_download(&mut download, body.len());
    echo(&mut ws, b"still there");
    // Once both end, the old weir has nothing left, and exits.
    drop((ws, download));
    let status = old.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{status}");
}
